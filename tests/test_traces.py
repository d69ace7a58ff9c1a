"""OpenTelemetry traces (``otel_endpoint``): the spans of a station's CALLs, of a command sent to it
and of the REST request that sent it reach an OTLP/HTTP collector -- a stand-in the test runs,
decoding what the real exporter posts with the OTLP protobuf messages."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ocpp.v201 import call
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from csms.core import tracing
from csms.testing import running_server
from tests.stations import connect


class Collector:
    """An OTLP/HTTP traces endpoint on a free port, keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource_spans in request.resource_spans:
                    collector.resources.append({a.key: a.value.string_value
                                                for a in resource_spans.resource.attributes})
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            collector.spans.append({
                                "name": span.name, "trace_id": span.trace_id.hex(),
                                "attributes": {a.key: a.value.string_value or a.value.int_value
                                               for a in span.attributes}})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()
                self.wfile.write(b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, name: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["name"] == name]


async def test_calls_commands_and_requests_are_traced(tmp_path):
    collector = Collector()
    try:
        async with running_server(tmp_path, otel_endpoint=collector.url, otel_service_name="csms-test",
                                  unknown_stations="accept") as server:
            async with connect(server.ws_url("TRACE-1"), "TRACE-1") as cp:
                await cp.call(call.BootNotification(charging_station={"model": "M", "vendor_name": "V"},
                                                    reason="PowerUp"))
                await cp.call(call.Heartbeat())
                r = await server.api.post("/stations/TRACE-1/reset", json={"kind": "soft"})
                assert r.status_code == 201 and r.json()["status"] == "Accepted"
        # the server's shutdown sent what the batch processor held
    finally:
        collector.server.shutdown()
    assert {"service.name": "csms-test"}.items() <= collector.resources[0].items()
    boot = collector.named("OCPP BootNotification")
    assert len(boot) == 1 and boot[0]["attributes"]["ocpp.station_id"] == "TRACE-1"
    assert boot[0]["attributes"]["ocpp.version"] == "2.0.1" and boot[0]["attributes"]["ocpp.message_id"]
    assert len(collector.named("OCPP Heartbeat")) == 1
    command = collector.named("OCPP command Reset")
    assert len(command) == 1 and command[0]["attributes"]["ocpp.outcome"] == "answered"
    # the command is a child of the REST request that sent it: one trace
    request = [s for s in collector.spans if s["trace_id"] == command[0]["trace_id"] and s is not command[0]]
    assert any("/stations/" in s["name"] and "reset" in s["name"] for s in request), \
        [s["name"] for s in collector.spans]


async def test_without_an_endpoint_nothing_is_traced(tmp_path):
    async with running_server(tmp_path) as server:
        assert tracing._tracer is None
        assert all(type(p).__name__ != "OpenTelemetryPlugin" for p in server.app.plugins)
