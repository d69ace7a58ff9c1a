"""Alert rules and the evaluator that opens and closes alerts.

A rule names a condition (``kind``) with its thresholds; the evaluator (run on events and on a
timer) computes, for every enabled rule, the set of things for which the condition holds now
(a station, a connector, a session), opens an alert for each new one and closes the open alerts
whose condition no longer holds. An acknowledged alert stays open until its condition clears.
Opening, acknowledging and closing emit ``alert.opened`` / ``alert.acknowledged`` /
``alert.closed`` events through the core's dispatcher.

Rule kinds and their parameters:

* ``station_offline`` – disconnected for more than ``minutes``;
* ``connector_faulted`` – a connector in status Faulted for more than ``minutes``;
* ``repeated_reboots`` – ``occurrences`` or more boots within ``minutes``;
* ``session_no_meter_values`` – a running session without meter values for ``minutes``;
* ``session_too_long`` – a session running for more than ``minutes``;
* ``firmware_failed`` – the station's last firmware update failed (it reported a failure status,
  or a campaign gave up on it); clears when a later update gets further;
* ``certificate_expiring`` – a certificate the CSMS signed for the station (SignCertificate),
  the newest it accepted of its type, expires within ``occurrences`` days or has expired; clears
  when a renewed one is accepted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

from piccolo.query.functions.aggregate import Max

from csms.plugin_api import (
    N_, ChargingSession, Connector, Station, StationEvent, events as ev, get_core, gettext, jsonable,
    owner_by_station, register_kind, utcnow, wait_event,
)
from plugins.stationops.campaigns import STATION_FAILURES
from plugins.stationops.events import AlertAcknowledged, AlertClosed, AlertOpened
from plugins.stationops.firmware import OpsError
from plugins.stationops.tables import Alert, AlertRule, CampaignTarget

log = logging.getLogger("csms.stationops.alerts")

# Route rules name alerts: those of another organization's station are a 404.
register_kind("alert", owner_by_station(Alert.station_id))

# Each kind's description, with ``str.format`` fields (``{minutes:g}``): in English in the REST
# API and in a rule's stored name, translated where the admin shows it (:func:`rule_label`).
RULE_KINDS = {
    "station_offline": N_("Station offline longer than {minutes:g} min"),
    "connector_faulted": N_("Connector faulted longer than {minutes:g} min"),
    "repeated_reboots": N_("{occurrences} or more boots within {minutes:g} min"),
    "session_no_meter_values": N_("Session without meter values for {minutes:g} min"),
    "session_too_long": N_("Session running longer than {minutes:g} min"),
    "firmware_failed": N_("Firmware update failed"),
    "certificate_expiring": N_("Station certificate expiring within {occurrences} days"),
}
SEVERITIES = ("info", "warning", "critical")
DEFAULT_RULES = (
    ("station_offline", 15.0, 0, "critical"),
    ("connector_faulted", 5.0, 0, "warning"),
    ("repeated_reboots", 60.0, 3, "warning"),
    ("session_no_meter_values", 30.0, 0, "warning"),
    ("session_too_long", 24 * 60.0, 0, "info"),
    ("firmware_failed", 0.0, 0, "warning"),
    ("certificate_expiring", 0.0, 30, "warning"),
)
# Events after which the evaluator looks again at once (rather than at the next tick).
_WAKING = (ev.StationConnected, ev.StationDisconnected, ev.StationBooted, ev.ConnectorStatusChanged,
           ev.FaultReported, ev.SessionStarted, ev.SessionStopped)


@dataclass(frozen=True)
class Condition:
    """Something for which a rule's condition holds now."""

    station_id: str
    summary: str
    evse_id: int | None = None
    connector_id: int | None = None
    session_id: int | None = None
    details: dict[str, Any] | None = None


def describe(rule: dict[str, Any], translate: Callable[[str], str] = str) -> str:
    """The rule's condition in words (English; ``translate=gettext`` in the viewer's language)."""
    return translate(RULE_KINDS.get(rule["kind"], rule["kind"])).format(minutes=rule["minutes"] or 0,
                                                                       occurrences=rule["occurrences"] or 0)


def rule_label(rule: dict[str, Any]) -> str:
    """A rule's name as the admin shows it: a name described from its condition (the default) in
    the viewer's language, one somebody gave as written."""
    return describe(rule, gettext) if rule["name"] == describe(rule) else rule["name"]


def check_rule(values: dict[str, Any]) -> dict[str, Any]:
    kind = values.get("kind")
    if kind not in RULE_KINDS:
        raise OpsError(N_("kind must be one of %(kinds)s"), kinds=", ".join(RULE_KINDS))
    if values.get("severity", "warning") not in SEVERITIES:
        raise OpsError(N_("severity must be one of %(severities)s"), severities=", ".join(SEVERITIES))
    if (values.get("minutes") or 0) < 0 or (values.get("occurrences") or 0) < 0:
        raise OpsError(N_("minutes and occurrences must not be negative"))
    if kind == "repeated_reboots" and ((values.get("occurrences") or 0) < 1 or (values.get("minutes") or 0) <= 0):
        raise OpsError(N_("repeated_reboots needs occurrences >= 1 and minutes > 0"))
    if kind == "certificate_expiring" and (values.get("occurrences") or 0) < 1:
        raise OpsError(N_("certificate_expiring needs occurrences >= 1 (days before the certificate expires)"))
    values.setdefault("name", "")
    if not values["name"]:
        values["name"] = describe({"kind": kind, "minutes": values.get("minutes") or 0,
                                   "occurrences": values.get("occurrences") or 0})
    return values


async def ensure_default_rules() -> None:
    """The first start creates the default rules (disable them rather than delete them)."""
    if await AlertRule.count() == 0:
        for kind, minutes, occurrences, severity in DEFAULT_RULES:
            await AlertRule(**check_rule({"kind": kind, "minutes": minutes, "occurrences": occurrences,
                                          "severity": severity})).save()


async def rule_row(rule_id: int) -> dict[str, Any]:
    row = await AlertRule.select().where(AlertRule.id == rule_id).first()
    if row is None:
        raise OpsError(N_("no alert rule %(rule)s"), 404, rule=rule_id)
    return row


def rule_json(row: dict[str, Any]) -> dict[str, Any]:
    return {**jsonable(row), "description": describe(row)}


def alert_json(row: dict[str, Any]) -> dict[str, Any]:
    out = jsonable(row)
    out["acknowledged"] = row["acknowledged_at"] is not None
    return out


async def acknowledge(alert_id: int, by: str) -> dict[str, Any]:
    row = await Alert.select().where(Alert.id == alert_id).first()
    if row is None:
        raise OpsError(N_("no alert %(alert)s"), 404, alert=alert_id)
    if row["acknowledged_at"] is None:
        await Alert.update({Alert.acknowledged_at: utcnow(), Alert.acknowledged_by: by[:100]}).where(
            Alert.id == alert_id)
        get_core().events.emit(AlertAcknowledged(row["station_id"], alert_id=alert_id, kind=row["kind"],
                                                 summary=row["summary"], by=by))
    return alert_json(await Alert.select().where(Alert.id == alert_id).first())


# -- conditions ----------------------------------------------------------------------------------


def _scoped(query: Any, rule: dict[str, Any], station_column: Any, site_column: Any) -> Any:
    if rule["station_id"]:
        query = query.where(station_column == rule["station_id"])
    if rule["site"] is not None:
        query = query.where(site_column == rule["site"])
    return query


async def _station_offline(rule: dict[str, Any], now: datetime) -> list[Condition]:
    since = now - timedelta(minutes=rule["minutes"])
    query = Station.select(Station.station_id, Station.last_seen_at).where(
        (Station.connected == False) & Station.last_seen_at.is_not_null() & (Station.last_seen_at <= since)  # noqa: E712
    )
    rows = await _scoped(query, rule, Station.station_id, Station.site)
    return [Condition(r["station_id"], f"{r['station_id']} offline since {r['last_seen_at']:%Y-%m-%d %H:%M:%S} UTC",
                      details={"since": r["last_seen_at"].isoformat()}) for r in rows]


async def _connector_faulted(rule: dict[str, Any], now: datetime) -> list[Condition]:
    since = now - timedelta(minutes=rule["minutes"])
    query = Connector.select(Connector.station.station_id.as_alias("sid"), Connector.evse_id, Connector.connector_id,
                             Connector.error_code, Connector.info, Connector.updated_at).where(
        (Connector.status == "Faulted") & (Connector.updated_at <= since))
    rows = await _scoped(query, rule, Connector.station.station_id, Connector.station.site)
    return [Condition(r["sid"], f"{r['sid']} EVSE {r['evse_id']} connector {r['connector_id']} faulted: "
                                f"{r['error_code']} {r['info']}".strip(),
                      evse_id=r["evse_id"], connector_id=r["connector_id"],
                      details={"error_code": r["error_code"], "since": r["updated_at"].isoformat()}) for r in rows]


def _triggered(details: Any) -> bool:
    """Whether a boot event's details say the CSMS asked for it (JSON is text on SQLite)."""
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            return False
    return isinstance(details, dict) and details.get("triggered") is True


async def _repeated_reboots(rule: dict[str, Any], now: datetime) -> list[Condition]:
    """Boots the station did of itself: a BootNotification the CSMS asked for (TriggerMessage,
    e.g. when a station is approved) is no restart and is not counted."""
    since = now - timedelta(minutes=rule["minutes"])
    query = StationEvent.select(StationEvent.station_id, StationEvent.details).where(
        (StationEvent.category == "boot") & (StationEvent.timestamp >= since))
    if rule["station_id"]:
        query = query.where(StationEvent.station_id == rule["station_id"])
    boots: Counter[str] = Counter(r["station_id"] for r in await query if not _triggered(r["details"]))
    if rule["site"] is not None:
        allowed = {r["station_id"] for r in await Station.select(Station.station_id).where(Station.site == rule["site"])}
        boots = Counter({sid: n for sid, n in boots.items() if sid in allowed})
    return [Condition(sid, f"{sid} booted {n} times in {rule['minutes']:g} min", details={"boots": n})
            for sid, n in sorted(boots.items()) if n >= rule["occurrences"]]


async def _session_query(rule: dict[str, Any], extra: Any) -> list[dict[str, Any]]:
    query = ChargingSession.select(ChargingSession.id, ChargingSession.station.station_id.as_alias("sid"),
                                   ChargingSession.evse_id, ChargingSession.connector_id, ChargingSession.started_at,
                                   ChargingSession.updated_at).where((ChargingSession.state == "active") & extra)
    return await _scoped(query, rule, ChargingSession.station.station_id, ChargingSession.station.site)


async def _session_no_meter_values(rule: dict[str, Any], now: datetime) -> list[Condition]:
    since = now - timedelta(minutes=rule["minutes"])
    await get_core().writer.flush()  # meter progress is written in batches
    rows = await _session_query(rule, (ChargingSession.updated_at <= since) & (ChargingSession.started_at <= since))
    return [Condition(r["sid"], f"session {r['id']} on {r['sid']} EVSE {r['evse_id']}: no meter values since "
                                f"{r['updated_at']:%Y-%m-%d %H:%M:%S} UTC", evse_id=r["evse_id"],
                      connector_id=r["connector_id"], session_id=r["id"]) for r in rows]


async def _session_too_long(rule: dict[str, Any], now: datetime) -> list[Condition]:
    since = now - timedelta(minutes=rule["minutes"])
    rows = await _session_query(rule, ChargingSession.started_at <= since)
    return [Condition(r["sid"], f"session {r['id']} on {r['sid']} EVSE {r['evse_id']} running since "
                                f"{r['started_at']:%Y-%m-%d %H:%M:%S} UTC", evse_id=r["evse_id"],
                      connector_id=r["connector_id"], session_id=r["id"]) for r in rows]


async def _firmware_failed(rule: dict[str, Any], now: datetime) -> list[Condition]:
    query = Station.select(Station.station_id, Station.firmware_status).where(
        Station.firmware_status.is_in(sorted(STATION_FAILURES)))
    failed = {r["station_id"]: f"{r['station_id']}: firmware update failed ({r['firmware_status']})"
              for r in await _scoped(query, rule, Station.station_id, Station.site)}
    last_ids = [r["last"] for r in await CampaignTarget.select(Max(CampaignTarget.id, alias="last")).group_by(
        CampaignTarget.station_id)]
    latest = {t["station_id"]: t for t in await CampaignTarget.select(
        CampaignTarget.station_id, CampaignTarget.status, CampaignTarget.detail).where(
        CampaignTarget.id.is_in(last_ids or [-1]))}
    scope = None
    if rule["site"] is not None or rule["station_id"]:
        scope = {r["station_id"] for r in await _scoped(Station.select(Station.station_id), rule,
                                                        Station.station_id, Station.site)}
    for sid, t in latest.items():
        if t["status"] == "failed" and (scope is None or sid in scope):
            failed[sid] = f"{sid}: firmware campaign gave up ({t['detail']})"[:255]
        elif t["status"] in ("succeeded", "sent", "downloading", "downloaded", "installing", "installed"):
            failed.pop(sid, None)  # a later update got further than the failure
    return [Condition(sid, summary) for sid, summary in failed.items()]


async def _certificate_expiring(rule: dict[str, Any], now: datetime) -> list[Condition]:
    rows = await get_core().certificates.expiring(within_days=rule["occurrences"])
    if rule["station_id"] or rule["site"] is not None:
        allowed = {r["station_id"] for r in await _scoped(Station.select(Station.station_id), rule,
                                                        Station.station_id, Station.site)}
        rows = [r for r in rows if r["station_id"] in allowed]
    by_station: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_station.setdefault(r["station_id"], []).append(r)
    return [Condition(sid, f"{sid}: " + "; ".join(
        f"{c['certificate_type']} {c['serial']} {'expired' if c['not_after'] <= now else 'expires'} "
        f"{c['not_after']:%Y-%m-%d %H:%M} UTC" for c in certs),
        details={"certificates": [{"certificate_type": c["certificate_type"], "serial": c["serial"],
                                   "not_after": c["not_after"].isoformat()} for c in certs]})
        for sid, certs in sorted(by_station.items())]


CONDITIONS: dict[str, Callable[[dict[str, Any], datetime], Awaitable[list[Condition]]]] = {
    "station_offline": _station_offline,
    "connector_faulted": _connector_faulted,
    "repeated_reboots": _repeated_reboots,
    "session_no_meter_values": _session_no_meter_values,
    "session_too_long": _session_too_long,
    "firmware_failed": _firmware_failed,
    "certificate_expiring": _certificate_expiring,
}


def _key(rule: dict[str, Any], c: Condition) -> str:
    return f"{rule['id']}:{c.station_id}:{c.evse_id}:{c.connector_id}:{c.session_id}"


async def evaluate(now: datetime | None = None) -> tuple[int, int]:
    """Open and close alerts for the state of now; returns (opened, closed)."""
    now = now or utcnow()
    holding: dict[str, tuple[dict[str, Any], Condition]] = {}
    for rule in await AlertRule.select().where(AlertRule.enabled == True):  # noqa: E712
        try:
            for c in await CONDITIONS[rule["kind"]](rule, now):
                holding[_key(rule, c)] = (rule, c)
        except Exception:
            log.exception("alert rule %s (%s) failed", rule["id"], rule["kind"])
            for a in await Alert.select(Alert.key).where((Alert.status == "open") & (Alert.rule == rule["id"])):
                holding.setdefault(a["key"], (rule, None))  # type: ignore[arg-type]  # keep them open
    open_alerts = {a["key"]: a for a in await Alert.select().where(Alert.status == "open")}
    emit = get_core().events.emit
    opened = closed = 0
    for key, (rule, c) in holding.items():
        if key in open_alerts or c is None:
            continue
        row = Alert(rule=rule["id"], kind=rule["kind"], key=key, station_id=c.station_id, evse_id=c.evse_id,
                    connector_id=c.connector_id, session_id=c.session_id, severity=rule["severity"],
                    summary=c.summary[:255], details=c.details or {}, opened_at=now)
        await row.save()
        opened += 1
        emit(AlertOpened(c.station_id, alert_id=row.id, kind=rule["kind"], rule=rule["name"],
                         severity=rule["severity"], summary=c.summary, evse_id=c.evse_id,
                         connector_id=c.connector_id, session_id=c.session_id))
    for key, a in open_alerts.items():
        if key in holding:
            continue
        await Alert.update({Alert.status: "closed", Alert.closed_at: now}).where(Alert.id == a["id"])
        closed += 1
        rule_name = ""
        if a["rule"] is not None:
            r = await AlertRule.select(AlertRule.name).where(AlertRule.id == a["rule"]).first()
            rule_name = r["name"] if r else ""
        emit(AlertClosed(a["station_id"], alert_id=a["id"], kind=a["kind"], rule=rule_name, severity=a["severity"],
                         summary=a["summary"], evse_id=a["evse_id"], connector_id=a["connector_id"],
                         session_id=a["session_id"], open_seconds=(now - a["opened_at"]).total_seconds()))
    return opened, closed


class AlertEvaluator:
    """Runs :func:`evaluate` every ``interval`` seconds and soon after relevant events."""

    def __init__(self, *, interval: float) -> None:
        self.interval = interval
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="stationops-alerts")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def on_event(self, event: ev.Event) -> None:
        if isinstance(event, _WAKING) or (isinstance(event, ev.StationReported) and event.category == "firmware") \
                or event.name == "firmware.progress":
            self.wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await evaluate()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert evaluation failed")
            await wait_event(self.wake, self.interval)
            self.wake.clear()
