"""The process's OpenTelemetry tracer provider and where its spans are exported.

One SDK provider per process (or the embedding program's own), created on first use; spans
are always recorded so their ids reach the logs, and leave the process only when an OTLP/HTTP
endpoint is configured. ``flush_traces`` exports what is buffered at shutdown. The spans
themselves are made in ``tracing``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

SERVICE_NAME = "cadenza"


class _Installed:
    provider: TracerProvider | None = None
    endpoints: set[str] = set()  # noqa: RUF012 - one per process, like the provider


def install_tracing(otlp_endpoint: str = "") -> TracerProvider:
    """The process-wide SDK tracer provider, created on the first call.

    Spans are always recorded (their ids reach the logs); they leave the process only when an
    OTLP/HTTP endpoint is given: ``http://collector:4318`` (``/v1/traces`` is appended) or a
    full traces URL. The SDK honours ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES`` and
    ``OTEL_TRACES_SAMPLER``.
    """
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider

    if _Installed.provider is None:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):  # set up by the embedding program
            _Installed.provider = current
        else:
            # attributes given to ``create`` win over the environment's: name the service
            # only when OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES do not
            named = OTELResourceDetector().detect().attributes.get("service.name")
            attributes = {} if named else {"service.name": SERVICE_NAME}
            _Installed.provider = TracerProvider(resource=Resource.create(attributes))
            trace.set_tracer_provider(_Installed.provider)
    provider = _Installed.provider
    if otlp_endpoint and otlp_endpoint not in _Installed.endpoints:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter = OTLPSpanExporter(endpoint=traces_url(otlp_endpoint))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        _Installed.endpoints.add(otlp_endpoint)
    return provider


def flush_traces(timeout_s: float = 5.0) -> None:
    """Export what is buffered (shutdown); the provider itself lives as long as the process."""
    if _Installed.provider is not None:
        _Installed.provider.force_flush(int(timeout_s * 1000))


def traces_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    scheme_end = base.find("://")
    has_path = scheme_end >= 0 and "/" in base[scheme_end + 3 :]
    return base if has_path else f"{base}/v1/traces"
