"""The stationops plugin's own domain events, delivered through the core's event dispatcher
(``get_core().events.emit``) to the ``event`` and ``event_batch`` hooks like the core's events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from csms.plugin_api import Event


@dataclass(frozen=True)
class FirmwareProgress(Event):
    """A station of a firmware campaign moved on (or failed, or will be retried)."""

    name: ClassVar[str] = "firmware.progress"
    campaign_id: int = 0
    target_id: int = 0
    version: str = ""
    status: str = ""  # the target's status (sent, downloading, ..., succeeded, failed, retrying)
    station_status: str = ""  # the station's FirmwareStatusNotification status, when it sent one
    attempt: int = 0
    detail: str = ""


@dataclass(frozen=True)
class AlertOpened(Event):
    name: ClassVar[str] = "alert.opened"
    alert_id: int = 0
    kind: str = ""
    rule: str = ""
    severity: str = ""
    summary: str = ""
    evse_id: int | None = None
    connector_id: int | None = None
    session_id: int | None = None


@dataclass(frozen=True)
class AlertAcknowledged(Event):
    name: ClassVar[str] = "alert.acknowledged"
    alert_id: int = 0
    kind: str = ""
    summary: str = ""
    by: str = ""


@dataclass(frozen=True)
class AlertClosed(Event):
    name: ClassVar[str] = "alert.closed"
    alert_id: int = 0
    kind: str = ""
    rule: str = ""
    severity: str = ""
    summary: str = ""
    evse_id: int | None = None
    connector_id: int | None = None
    session_id: int | None = None
    open_seconds: float = 0.0


@dataclass(frozen=True)
class DiagnosticsReceived(Event):
    name: ClassVar[str] = "diagnostics.received"
    request_id: int = 0
    file_id: int = 0
    file_name: str = ""
    size: int = 0
