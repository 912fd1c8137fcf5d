"""Clients for external systems (Prometheus, Alertmanager, Grafana); no domain logic."""
