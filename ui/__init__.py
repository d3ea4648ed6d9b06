"""The web UI (Streamlit): predict, batch, history, analytics, the closed loop and a label queue.

``ulasan ui`` serves it. Predictions and labels go through the gateway (``ulasan.core.client``),
a replay of a large file through Kafka; everything else is read from PostgreSQL over a
read-only connection and from Prometheus and MLflow. Page logic (queries, log-odds, occlusion)
lives in plain modules tested without Streamlit; ``ui.views`` only draws.
"""
