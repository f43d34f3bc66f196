-- Experiment and launch assignments made by any instance (issue 16): an event that reaches one instance
-- is attributed to its entity's latest assignment, wherever the evaluation ran. One row per entity and
-- rule, the latest; rows older than the attribution window (an hour) are pruned.
CREATE TABLE edgesplit_exposures (
    project text NOT NULL,
    entity text NOT NULL,
    kind text NOT NULL,
    rule text NOT NULL,
    arm text NOT NULL,
    at_ms bigint NOT NULL,
    PRIMARY KEY (project, entity, kind, rule)
);
CREATE INDEX edgesplit_exposures_at ON edgesplit_exposures (at_ms);
