"""Metrics (Prometheus), traces (OpenTelemetry) and structured logs (structlog); see
docs/observability.md."""
