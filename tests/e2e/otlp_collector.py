"""A minimal OTLP/HTTP trace receiver on loopback for tests of real processes: it keeps every
span it is sent (protobuf, as the SDK's OTLP/HTTP exporter sends them) with the
``service.name`` of the process that sent it."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from tests.net import free_port

Value = str | int | float | bool


@dataclass(frozen=True)
class ReceivedSpan:
    service: str  # the sending process's service.name
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Value]
    status: str  # "UNSET", "OK" or "ERROR"
    description: str


def _value(v: AnyValue) -> Value:
    kind = v.WhichOneof("value")
    return (
        getattr(v, kind)
        if kind in ("string_value", "int_value", "double_value", "bool_value")
        else ""
    )


class OtlpCollector:
    """``async with OtlpCollector() as c``: ``c.endpoint`` for ``CADENZA_OTLP_ENDPOINT``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.spans: list[ReceivedSpan] = []
        self._runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            attrs = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            service = str(attrs.get("service.name", ""))
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service,
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            {a.key: _value(a.value) for a in s.attributes},
                            Status.StatusCode.Name(s.status.code).removeprefix("STATUS_CODE_"),
                            s.status.message,
                        )
                    )
        reply = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    async def __aenter__(self) -> OtlpCollector:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
