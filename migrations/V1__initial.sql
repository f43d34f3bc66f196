-- edgesplit's fleet store (issue 16). Documents are stored as the exact bytes edgesplit writes (bytea,
-- not jsonb: jsonb would reorder keys and round numbers).

-- One row: the revision of the control state, raised by every write; instances compare it with the
-- revision of the state they hold.
CREATE TABLE edgesplit_revision (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    revision bigint NOT NULL
);
INSERT INTO edgesplit_revision (id, revision) VALUES (true, 0);

-- CloudFront continuous deployment policies, by id.
CREATE TABLE edgesplit_policies (
    id text PRIMARY KEY,
    document bytea NOT NULL
);

-- Evidently resources, by store key (`project/P`, `feature/P/F`, ...).
CREATE TABLE edgesplit_evidently (
    key text PRIMARY KEY,
    document bytea NOT NULL
);

-- Bookkeeping shared by the fleet: the cookie key, session epochs, declaration fingerprints.
CREATE TABLE edgesplit_meta (
    key text PRIMARY KEY,
    value bytea NOT NULL
);

-- Metric moments by series bucket.
CREATE TABLE edgesplit_results (
    key text PRIMARY KEY,
    moments bytea NOT NULL
);
