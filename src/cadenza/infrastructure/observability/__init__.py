"""Metrics (Prometheus), and later tracing and structured logs."""
