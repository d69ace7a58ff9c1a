"""OpenTelemetry traces, an optional extra (``pip install 'csms[otel]'``), off unless
``otel_endpoint`` names an OTLP/HTTP collector (``http://collector:4318/v1/traces``).

Spans: every HTTP request and WebSocket (Litestar's OpenTelemetry plugin, over the ASGI
instrumentation), every CALL a station sends (``OCPP <Action>``, with ``ocpp.station_id``,
``ocpp.message_id``, ``ocpp.version``), every command sent to a station (``OCPP command <Action>``,
with its outcome). Spans go out in batches from a background thread (``BatchSpanProcessor``).
Switched off, each instrumented place costs one attribute read of a module global.
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, ContextManager, Iterator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from csms.settings import Settings

_tracer: Any = None  # the tracer while tracing is on


def setup(settings: Settings) -> TracerProvider | None:
    """The tracer provider exporting to ``settings.otel_endpoint`` (None when it is empty); turns the
    spans of this module on. Raises a readable error when the ``otel`` extra is not installed."""
    global _tracer
    if not settings.otel_endpoint:
        _tracer = None
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError("otel_endpoint is set but OpenTelemetry is not installed: "
                           "pip install 'csms[otel]'") from exc
    from csms import __version__

    provider = TracerProvider(resource=Resource.create({
        "service.name": settings.otel_service_name, "service.version": __version__,
        **({"service.instance.id": settings.node_id} if settings.node_id else {})}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_endpoint)))
    _tracer = provider.get_tracer("csms")
    return provider


async def shutdown(provider: TracerProvider | None) -> None:
    """Send what is buffered and stop (at server shutdown; the export blocks, so in a thread)."""
    global _tracer
    _tracer = None
    if provider is not None:
        await asyncio.to_thread(provider.shutdown)


def litestar_plugin(provider: TracerProvider | None) -> list[Any]:
    """Litestar's OpenTelemetry plugin for HTTP and WebSocket spans (none when tracing is off)."""
    if provider is None:
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    return [OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=provider, exclude=["/metrics", "/static"]))]


def call_span(station_id: str, version: str, action: str, message_id: str) -> ContextManager[Any]:
    """The span of a CALL a station sent (a no-op context when tracing is off)."""
    if _tracer is None:
        return nullcontext()
    return _tracer.start_as_current_span(f"OCPP {action}", attributes={
        "ocpp.station_id": station_id, "ocpp.version": version, "ocpp.action": action,
        "ocpp.message_id": message_id})


@contextmanager
def command_span(station_id: str, action: str) -> Iterator[Any]:
    """The span of a command sent to a station; yields the span (None when tracing is off) so the
    caller can set ``ocpp.outcome``."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(f"OCPP command {action}", attributes={
            "ocpp.station_id": station_id, "ocpp.action": action}) as span:
        yield span
