-- Rollback of 0001_initial: drops every table it created (and their data).

DROP TABLE IF EXISTS producer_checkpoints;
DROP TABLE IF EXISTS retrain_runs;
DROP TABLE IF EXISTS drift_reports;
DROP TABLE IF EXISTS model_metrics;
DROP TABLE IF EXISTS feedback;
DROP TABLE IF EXISTS prediction_logs;
DROP TABLE IF EXISTS text_features;
DROP TABLE IF EXISTS reviews;
