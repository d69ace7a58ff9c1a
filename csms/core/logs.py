"""Logging set-up: plain text for a terminal, or one JSON object per line for a log pipeline.

Every record carries the station and the OCPP message it concerns when there is one:
:data:`station_id` is set for the life of a station's connection (the WebSocket endpoint's task
and every task it starts), :data:`message_id` while one of its CALLs is handled. In JSON each line
has ``time``, ``level``, ``logger``, ``message``, ``station_id`` and ``message_id`` (null outside
a station's context), plus ``exc_info`` for an exception.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import IO

from pythonjsonlogger.json import JsonFormatter

station_id: ContextVar[str | None] = ContextVar("csms_log_station", default=None)
message_id: ContextVar[str | None] = ContextVar("csms_log_message", default=None)

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class StationContext(logging.Filter):
    """Puts the current station and message ids on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.station_id = station_id.get()
        record.message_id = message_id.get()
        return True


def json_formatter() -> logging.Formatter:
    return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(station_id)s %(message_id)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                         datefmt="%Y-%m-%dT%H:%M:%S%z")


def setup_logging(level: str, fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Configure the root logger (replacing its handlers); ``fmt`` is ``text`` or ``json``."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(StationContext())
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # a library's warnings.warn() becomes a record (a JSON line) too
