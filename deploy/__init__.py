"""Deployment: the local stack, Prometheus and Grafana config, containers."""
