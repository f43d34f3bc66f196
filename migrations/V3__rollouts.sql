-- Guarded rollouts (issue 18), by distribution id: part of the control state, raised with the revision
-- like the policies they drive.
CREATE TABLE edgesplit_rollouts (
    distribution text PRIMARY KEY,
    document bytea NOT NULL
);

-- Each instance's counts of both arms over the current step's window, per distribution, for the guards
-- to read the whole fleet: `counts` is JSON (`rollout::SharedWindow`), naming its window, so that only
-- counts of the same rollout step add up. An instance is a process (a new id at each start); rows an
-- instance stopped updating an hour ago are pruned.
CREATE TABLE edgesplit_rollout_counts (
    instance text NOT NULL,
    distribution text NOT NULL,
    counts bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance, distribution)
);

-- The lease of the one instance that drives the fleet's rollouts, renewed at each evaluation and taken
-- over once expired (timed by the database's clock, so instances' clocks need not agree).
CREATE TABLE edgesplit_rollout_lease (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    holder text NOT NULL,
    expires_at timestamptz NOT NULL
);
