"""The gateway: HTTP (FastAPI) and gRPC front door; requests travel as events through Kafka."""
