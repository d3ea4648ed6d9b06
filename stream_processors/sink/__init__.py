"""The PostgreSQL sink: reviews, text_features and prediction_logs, batched and idempotent."""
