"""The local development stack: Kafka, PostgreSQL, MLflow and Prometheus on 127.0.0.1."""
