"""JSON logs (CSMS_LOG_FORMAT=json): one object per line, each naming the station and the OCPP
message it concerns."""

from __future__ import annotations

import io
import json
import logging

import websockets

from csms.core import logs
from csms.testing import free_port
from tests.crashkit import ServerProcess


def test_json_lines_carry_station_and_message_ids():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        logs.setup_logging("info", "json", stream=stream)
        log = logging.getLogger("csms.test")
        log.info("outside any station")
        station, message = logs.station_id.set("CP-7"), logs.message_id.set("m-42")
        try:
            log.warning("inside %s", "a call")
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed")
        finally:
            logs.message_id.reset(message)
            logs.station_id.reset(station)
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    outside, inside, failed = (json.loads(line) for line in stream.getvalue().splitlines())
    assert outside["message"] == "outside any station" and outside["station_id"] is None
    assert outside["level"] == "INFO" and outside["logger"] == "csms.test" and "time" in outside
    assert inside["message"] == "inside a call" and inside["level"] == "WARNING"
    assert (inside["station_id"], inside["message_id"]) == ("CP-7", "m-42")
    assert failed["station_id"] == "CP-7" and "ValueError: boom" in failed["exc_info"]


def test_an_unknown_format_is_refused_in_words():
    try:
        logs.setup_logging("info", "yaml")
    except ValueError as exc:
        assert "log format must be one of text, json" in str(exc)
    else:
        raise AssertionError("yaml accepted")


async def test_the_server_logs_json_with_the_station_and_message(tmp_path):
    """``csms serve`` with CSMS_LOG_FORMAT=json: every line it logs is a JSON object (uvicorn's too),
    and the CALLERROR answered to a station's bad CALL is logged with its station and message id."""
    server = ServerProcess(tmp_path / "data", free_port())
    server.env.update(CSMS_LOG_FORMAT="json", CSMS_LOG_LEVEL="info")
    await server.start()
    try:
        async with websockets.connect(server.ws_url("JSONLOG-1"), subprotocols=["ocpp1.6"]) as ws:
            await ws.send(json.dumps([2, "boot-1", "BootNotification",
                                      {"chargePointVendor": "V", "chargePointModel": "M"}]))
            assert json.loads(await ws.recv())[0] == 3
            await ws.send(json.dumps([2, "bad-7", "Heartbeat", {"unexpected": 1}]))
            answer = json.loads(await ws.recv())
            assert answer[0] == 4 and answer[1] == "bad-7"
    finally:
        server.stop()
    text = server.log_path.read_text()
    lines = [line for line in text.splitlines()
             if line.strip() and not line.startswith(("=====", "CSMS on", "  "))]  # the start banner is print()ed
    records = [json.loads(line) for line in lines]  # every logged line is JSON
    assert any(r["logger"].startswith("uvicorn") for r in records)
    error = next(r for r in records if "CALLERROR" in r["message"])
    assert (error["station_id"], error["message_id"]) == ("JSONLOG-1", "bad-7")
