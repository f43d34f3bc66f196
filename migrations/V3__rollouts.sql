-- Guarded rollouts (issue 18), by distribution id: part of the control state, raised with the revision
-- like the policies they drive.
CREATE TABLE edgesplit_rollouts (
    distribution text PRIMARY KEY,
    document bytea NOT NULL
);
