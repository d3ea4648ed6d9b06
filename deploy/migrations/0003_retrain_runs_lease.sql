-- depends: 0002_prediction_logs_request_id
-- A retrain's claim is a lease: the trainer renews lease_until while it trains (a heartbeat),
-- and a run still 'running' after its lease expired (its trainer died) may be taken over, so
-- the replayed request is trained instead of being ignored as a duplicate. attempts counts the
-- tries of one dedupe key (a request that kills its trainer every time is given up on).
-- announced_at: when the ModelPromoted of promoted_version was delivered (NULL: the alias
-- moved but the workers have not been told yet; the trainer announces it on start).
ALTER TABLE retrain_runs
    ADD COLUMN lease_until  timestamptz,
    ADD COLUMN attempts     integer NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    ADD COLUMN announced_at timestamptz;
CREATE INDEX retrain_runs_unannounced_idx ON retrain_runs (started_at)
    WHERE promoted_version IS NOT NULL AND announced_at IS NULL;
