-- Rollback of 0002_prediction_logs_request_id.

DROP INDEX IF EXISTS prediction_logs_request_id_idx;
