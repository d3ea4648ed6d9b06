-- Rollback of 0003_retrain_runs_lease.

DROP INDEX IF EXISTS retrain_runs_unannounced_idx;
ALTER TABLE retrain_runs
    DROP COLUMN IF EXISTS lease_until,
    DROP COLUMN IF EXISTS attempts,
    DROP COLUMN IF EXISTS announced_at;
