"""Notifications: the events people and systems are told about, built from domain events.

The core's events are turned into the notification events below; events of other plugins
(``alert.opened`` of stationops, ...) pass through under their own name with their fields. A
notification has an id (the same on every retry and replay of its deliveries), an event name,
the station, the time and a ``data`` object:

=========================  ===================================================================
``station.online``         ``ocpp_version``
``station.offline``        ``reason``
``connector.status``       ``evse_id``, ``connector_id``, ``status``, ``previous``, ``error_code``
``session.started``        ``session_id``, ``transaction_id``, ``evse_id``, ``id_token``, ``driver_id``, ``started_at``
``session.charging_complete`` as started, with ``energy_wh`` so far (the EV stopped drawing power)
``session.stopped``        as started, with ``stopped_at``, ``duration_s``, ``energy_wh``, ``stop_reason``,
                           ``cost`` (``currency``, ``total_excl_vat``, ``total_incl_vat`` as strings) or null
``firmware.status``        ``status``, ``request_id`` (any firmware update, also one sent by hand)
``session.outlived_connector`` ``session_id``, ``transaction_id``, ``evse_id``, ``previous``: the connector
                           turned Available while the session is still open (a transaction the
                           station may have lost; closed by hand or by the reboot check)
=========================  ===================================================================
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from csms.plugin_api import N_, ChargingSession, call_hook, events as ev, get_core, gettext, ocpp_ts

NOTIFICATION_EVENTS = (
    "station.online", "station.offline", "connector.status", "session.started", "session.charging_complete",
    "session.stopped", "firmware.status", "firmware.progress", "alert.opened", "alert.acknowledged",
    "alert.closed", "diagnostics.received", "session.outlived_connector",
)
DRIVER_EVENTS = ("session.started", "session.charging_complete", "session.stopped")
_CORE_EVENT_TYPES = set(ev.EVENT_TYPES)


@dataclass
class Notification:
    event: str
    station_id: str
    data: dict[str, Any]
    at: datetime
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    driver_id: int | None = None

    def payload(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.event, "created_at": ocpp_ts(self.at), "station_id": self.station_id,
                "data": self.data}

    def body(self) -> str:
        return json.dumps(self.payload(), separators=(",", ":"), sort_keys=True, default=str)

    @property
    def title(self) -> str:
        return title_of(self.event, self.station_id, self.data)


def title_of(event: str, station_id: str, data: dict[str, Any]) -> str:
    """A one-line human summary (e-mail subject, browser notification) in the current language
    (English where it is logged: see :func:`plugins.notifications.service.enqueue`)."""
    kwh = f"{float(data.get('energy_wh') or 0) / 1000:.2f} kWh"
    cost = data.get("cost")
    values = {"station": station_id, "evse": data.get("evse_id"), "status": data.get("status"), "energy": kwh,
              "version": data.get("version"), "transaction": data.get("transaction_id"),
              "summary": data.get("summary"), "file": data.get("file_name")}
    if event == "session.stopped" and cost:
        return gettext("Session ended at %(station)s: %(energy)s, %(price)s", **values,
                       price=f"{cost['total_incl_vat']} {cost['currency']}")[:255]
    text = TITLES.get(event)
    return gettext(text, **values)[:255] if text else f"{event} {station_id}".strip()[:255]


# Each event's one-line summary (its placeholders: see ``values`` in :func:`title_of`).
TITLES = {
    "station.online": N_("%(station)s is online"),
    "station.offline": N_("%(station)s is offline"),
    "connector.status": N_("%(station)s EVSE %(evse)s: %(status)s"),
    "session.started": N_("Charging started at %(station)s"),
    "session.charging_complete": N_("Charging complete at %(station)s (%(energy)s)"),
    "session.stopped": N_("Session ended at %(station)s: %(energy)s"),
    "firmware.status": N_("%(station)s firmware: %(status)s"),
    "firmware.progress": N_("%(station)s firmware %(version)s: %(status)s"),
    "session.outlived_connector": N_("%(station)s: connector free while transaction %(transaction)s is still open"),
    "alert.opened": N_("Alert: %(summary)s"),
    "alert.acknowledged": N_("Acknowledged: %(summary)s"),
    "alert.closed": N_("Resolved: %(summary)s"),
    "diagnostics.received": N_("Diagnostics from %(station)s: %(file)s"),
    "notification.test": N_("Test notification from the CSMS"),
}


async def session_row(session_id: int) -> dict[str, Any] | None:
    return await ChargingSession.select(
        ChargingSession.all_columns(), ChargingSession.station.station_id.as_alias("station_id")
    ).where(ChargingSession.id == session_id).first()


def _session_data(row: dict[str, Any]) -> dict[str, Any]:
    return {"session_id": row["id"], "transaction_id": row["transaction_id"], "evse_id": row["evse_id"],
            "connector_id": row["connector_id"], "id_token": row["id_token"], "driver_id": row["driver"],
            "started_at": ocpp_ts(row["started_at"])}


def _money(cost: Any) -> dict[str, Any] | None:
    if cost is None:
        return None
    return {"currency": cost.currency, "total_excl_vat": str(cost.total_excl_vat),
            "total_incl_vat": str(cost.total_incl_vat), "tariff_id": cost.tariff_id}


class NotificationBuilder:
    """Turns domain events into notifications; remembers what it needs to see "charging complete"."""

    def __init__(self) -> None:
        self._charging_state: dict[int, str] = {}
        self._completed: set[int] = set()

    async def build(self, event: ev.Event) -> list[Notification]:
        """The notifications an event makes (usually one, often none)."""
        built = await self._build(event)
        extra = await self._completion(event)
        return [n for n in (built, extra) if n is not None]

    async def _completion(self, event: ev.Event) -> Notification | None:
        """``session.charging_complete``: the EV stopped drawing power (2.0.1 charging state,
        1.6 connector status SuspendedEV after Charging), once per session."""
        if isinstance(event, ev.SessionUpdated):
            before = self._charging_state.get(event.session_id, "")
            if event.charging_state:
                self._charging_state[event.session_id] = event.charging_state
            if before == "Charging" and event.charging_state in ("SuspendedEV", "EVConnected", "Idle"):
                return await self._complete(event.session_id, event.at)
        if isinstance(event, ev.ConnectorStatusChanged) and event.status == "SuspendedEV" \
                and event.previous == "Charging":
            session = get_core().sessions.on_evse(event.station_id, event.evse_id)
            if session is not None:
                return await self._complete(session.id, event.at)
        return None

    async def _build(self, event: ev.Event) -> Notification | None:
        station = event.station_id
        if isinstance(event, ev.StationConnected):
            return Notification("station.online", station, {"ocpp_version": event.ocpp_version}, event.at)
        if isinstance(event, ev.StationDisconnected):
            return Notification("station.offline", station, {"reason": event.reason}, event.at)
        if isinstance(event, ev.ConnectorStatusChanged):
            return Notification("connector.status", station, {
                "evse_id": event.evse_id, "connector_id": event.connector_id, "status": event.status,
                "previous": event.previous, "error_code": event.error_code}, event.at)
        if isinstance(event, ev.SessionStarted):
            row = await session_row(event.session_id)
            if row is None:
                return None
            return Notification("session.started", station, _session_data(row), event.at, driver_id=row["driver"])
        if isinstance(event, ev.SessionUpdated):
            return None
        if isinstance(event, ev.SessionStopped):
            self._charging_state.pop(event.session_id, None)
            self._completed.discard(event.session_id)
            row = await session_row(event.session_id)
            if row is None:
                return None
            cost = await call_hook("price_session", session=row, final=True)
            stopped = row["stopped_at"] or event.at
            data = {**_session_data(row), "stopped_at": ocpp_ts(stopped),
                    "duration_s": round((stopped - row["started_at"]).total_seconds()),
                    "energy_wh": row["energy_wh"], "stop_reason": row["stop_reason"], "cost": _money(cost)}
            return Notification("session.stopped", station, data, event.at, driver_id=row["driver"])
        if isinstance(event, ev.StationReported):
            if event.category == "firmware":
                return Notification("firmware.status", station, {
                    "status": event.kind, "request_id": event.details.get("request_id")}, event.at)
            if (event.category, event.kind) == ("transaction", "outlived_connector"):
                keys = ("session_id", "transaction_id", "evse_id", "previous")
                return Notification("session.outlived_connector", station,
                                    {k: event.details.get(k) for k in keys}, event.at)
            return None
        if type(event) in _CORE_EVENT_TYPES:
            return None  # meter values, command answers...: too many, not for people
        data = {k: v for k, v in event.to_dict().items() if k not in ("event", "at", "station_id")}
        return Notification(event.name, station, data, event.at)

    async def _complete(self, session_id: int, at: datetime) -> Notification | None:
        if session_id in self._completed:
            return None
        self._completed.add(session_id)
        await get_core().writer.flush()  # live energy is written in batches
        row = await session_row(session_id)
        if row is None:
            return None
        data = {**_session_data(row), "energy_wh": row["energy_wh"]}
        live = get_core().sessions.find(row["station_id"], row["transaction_id"])
        if live is not None:
            data["energy_wh"] = live.energy_wh
        return Notification("session.charging_complete", row["station_id"], data, at, driver_id=row["driver"])
