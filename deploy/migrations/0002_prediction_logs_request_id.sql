-- depends: 0001_initial
-- Gateway predictions are stored too (request_id set, review_id NULL): feedback given by
-- request id joins them through this index, as feedback on a review uses
-- prediction_logs_review_id_idx.
CREATE INDEX prediction_logs_request_id_idx ON prediction_logs (request_id)
    WHERE request_id IS NOT NULL;
