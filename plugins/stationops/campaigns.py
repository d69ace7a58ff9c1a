"""Firmware campaigns: a version rolled out to a selection of stations, in waves.

A campaign's stations (targets) are chosen when it is created. The driver
(:class:`CampaignDriver`, a background task started by the plugin) sends the update to the
stations of the current wave, at most ``concurrency`` at a time, only inside the maintenance
window (in the station's local time) and never to a station with a running session unless the
campaign is forced. Progress comes from the stations' FirmwareStatusNotifications (the core's
``station.reported`` events of category ``firmware``); an attempt fails on a failure status, a
refused command or no news for ``progress_timeout_s``, and is retried ``max_retries`` times
after ``retry_delay_s``. A station succeeds when it boots with the target version.

Target statuses: ``pending`` (not sent yet; ``detail`` says what it waits for), ``sent``,
``downloading``, ``downloaded``, ``installing``, ``installed`` (waiting for the reboot),
``succeeded``, ``failed``, ``cancelled``.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from datetime import datetime, time, timedelta
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from litestar.exceptions import ValidationException

from csms.plugin_api import (
    GLOBAL, N_, ChargingSession, CommandTimeout, OcppError, Scope, Site, Station, StationOffline, UnknownStation,
    events as ev, get_core, jsonable, owner_by, owner_for_new, register_kind, restrict, scope_for, utcnow,
    wait_event,
)
from plugins.stationops.events import FirmwareProgress
from plugins.stationops.firmware import OpsError, applies_to, download_url, firmware_row
from plugins.stationops.tables import Campaign, CampaignTarget, Firmware

log = logging.getLogger("csms.stationops.campaigns")

IN_FLIGHT = ("sent", "downloading", "downloaded", "installing", "installed")
TERMINAL = ("succeeded", "failed", "cancelled")
TARGET_STATUSES = ("pending", *IN_FLIGHT, *TERMINAL)
# FirmwareStatusNotification statuses of 1.6, 1.6 security extension and 2.0.1 -> target status
STATION_PHASES = {
    "DownloadScheduled": "downloading", "Downloading": "downloading", "DownloadPaused": "downloading",
    "Downloaded": "downloaded", "SignatureVerified": "downloaded",
    "InstallScheduled": "installing", "Installing": "installing", "InstallRebooting": "installing",
    "Installed": "installed",
}
STATION_FAILURES = frozenset({"DownloadFailed", "InstallationFailed", "InstallVerificationFailed", "InvalidSignature"})
_NOT_SUPPORTED = ("NotImplemented", "NotSupported")

# Route rules name campaigns: another organization's campaign is a 404.
register_kind("campaign", owner_by(Campaign.id, Campaign.organization))


def parse_hhmm(value: str) -> time | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise OpsError(N_("a maintenance window time is HH:MM, not %(value)s"), value=repr(value)) from None


def in_window(now: datetime, start: str, end: str, tz: str) -> bool:
    """Whether ``now`` (UTC) is inside the daily window ``start``-``end`` in time zone ``tz``.

    A window may wrap past midnight (22:00-04:00); an empty window is always open.
    """
    begin, finish = parse_hhmm(start), parse_hhmm(end)
    if begin is None or finish is None:
        return True
    local = now.astimezone(ZoneInfo(tz or "UTC")).time()
    if begin <= finish:
        return begin <= local < finish
    return local >= begin or local < finish


def check_timezone(tz: str) -> None:
    if tz:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise OpsError(N_("unknown time zone %(zone)s"), zone=repr(tz)) from None


# -- choosing stations -----------------------------------------------------------------------------


async def select_stations(selection: dict[str, Any], firmware: dict[str, Any],
                          scope: Scope = GLOBAL) -> list[dict[str, Any]]:
    """The stations a campaign of ``firmware`` with ``selection`` reaches among those ``scope``
    sees (a campaign of an organization: the stations of that organization and those below it).

    ``selection`` keys (each optional, all given ones must match): ``stations`` (ids),
    ``sites`` (site ids), ``vendors``, ``models``, ``versions`` (current firmware versions).
    Stations the firmware does not apply to (its vendor/model) are left out.
    """
    unknown = set(selection) - {"stations", "sites", "vendors", "models", "versions"}
    if unknown:
        raise OpsError(N_("unknown selection keys: %(keys)s"), keys=", ".join(sorted(unknown)))
    query = restrict(Station.select(Station.station_id, Station.vendor, Station.model, Station.firmware_version,
                                    Station.site), Station.organization, scope)
    for key, column in (("stations", Station.station_id), ("sites", Station.site), ("vendors", Station.vendor),
                        ("models", Station.model), ("versions", Station.firmware_version)):
        values = selection.get(key)
        if values:
            if not isinstance(values, list):
                raise OpsError(N_("selection.%(key)s must be a list"), key=key)
            query = query.where(column.is_in(values))
    rows = await query.order_by(Station.station_id)
    return [r for r in rows if applies_to(firmware, r["vendor"], r["model"])]


async def create_campaign(*, name: str, firmware_id: int, selection: dict[str, Any], base_url: str,
                          wave_size: int = 0, concurrency: int = 5, window_start: str = "", window_end: str = "",
                          timezone: str = "", force: bool = False, require_signed: bool = False,
                          max_retries: int = 2, retry_delay_s: int = 300, progress_timeout_s: int = 3600,
                          start: bool = False, by: str = "", organization: int | None = None,
                          scope: Scope = GLOBAL) -> dict[str, Any]:
    """A new campaign of ``organization`` (one ``scope`` manages; default: the caller's own)."""
    try:
        organization = await owner_for_new(scope, organization, what="a campaign")
    except ValidationException as exc:
        raise OpsError(str(exc.detail), 422) from None
    firmware = await firmware_row(firmware_id)
    if not name.strip():
        raise OpsError(N_("a campaign needs a name"))
    if concurrency < 1 or wave_size < 0 or max_retries < 0 or retry_delay_s < 0 or progress_timeout_s < 1:
        raise OpsError(N_("concurrency must be >= 1; wave_size, max_retries and retry_delay_s >= 0; "
                          "progress_timeout_s >= 1"))
    if bool(window_start.strip()) != bool(window_end.strip()):
        raise OpsError(N_("a maintenance window needs both a start and an end"))
    parse_hhmm(window_start), parse_hhmm(window_end)
    check_timezone(timezone)
    if require_signed and not firmware["signature"]:
        raise OpsError(N_("require_signed needs a firmware with a signature and signing certificate"))
    if not firmware["url"] and not base_url:
        raise OpsError(N_("no public URL for the firmware file: set CSMS_STATIONOPS_PUBLIC_URL"))
    stations = await select_stations(selection, firmware, await scope_for(organization))
    if not stations:
        raise OpsError(N_("the selection matches no station this firmware applies to"))
    campaign = Campaign(
        name=name.strip()[:200], firmware=firmware_id, selection=selection, wave_size=wave_size,
        concurrency=concurrency, window_start=window_start.strip(), window_end=window_end.strip(),
        timezone=timezone, force=force, require_signed=require_signed, max_retries=max_retries,
        retry_delay_s=retry_delay_s, progress_timeout_s=progress_timeout_s, base_url=base_url, created_by=by,
        organization=organization,
    )
    await campaign.save()
    now = utcnow()
    await CampaignTarget.insert(*[
        CampaignTarget(campaign=campaign.id, station_id=s["station_id"], from_version=s["firmware_version"],
                       wave=(i // wave_size) if wave_size else 0, updated_at=now,
                       history=[{"at": now.isoformat(), "status": "pending"}])
        for i, s in enumerate(stations)
    ])
    if start:
        await change_campaign(campaign.id, "start")
    return await campaign_detail(campaign.id)


async def campaign_row(campaign_id: int) -> dict[str, Any]:
    row = await Campaign.select().where(Campaign.id == campaign_id).output(load_json=True).first()
    if row is None:
        raise OpsError(N_("no campaign with id %(campaign)s"), 404, campaign=campaign_id)
    return row


_TRANSITIONS = {
    "start": ({"draft"}, "running"),
    "pause": ({"running"}, "paused"),
    "resume": ({"paused"}, "running"),
    "cancel": ({"draft", "running", "paused"}, "cancelled"),
}


@asynccontextmanager
async def exclusive() -> AsyncIterator[None]:
    """Changes by people wait for the driver's pass (which could otherwise undo them)."""
    if _driver is None:
        yield
        return
    async with _driver.lock:
        yield


async def change_campaign(campaign_id: int, action: str) -> dict[str, Any]:
    """Start, pause, resume or cancel. Cancelling drops the stations not sent yet; stations
    already updating finish (and are followed) but are not retried."""
    async with exclusive():
        await _change_campaign(campaign_id, action)
    wake_driver()
    return await campaign_detail(campaign_id)


async def _change_campaign(campaign_id: int, action: str) -> None:
    row = await campaign_row(campaign_id)
    if action not in _TRANSITIONS:
        raise OpsError(N_("unknown action %(action)s"), action=repr(action))
    allowed, new = _TRANSITIONS[action]
    if row["status"] not in allowed:
        raise OpsError(N_("a %(state)s campaign cannot %(action)s"), 409, state=row["status"], action=action)
    now = utcnow()
    values: dict[Any, Any] = {Campaign.status: new}
    if action == "start":
        values[Campaign.started_at] = now
    if action == "cancel":
        values[Campaign.finished_at] = now
        pending = await CampaignTarget.select().where(
            (CampaignTarget.campaign == campaign_id) & (CampaignTarget.status == "pending")).output(load_json=True)
        for t in pending:
            await _set_target(t, "cancelled", detail="campaign cancelled", finished=True)
    await Campaign.update(values).where(Campaign.id == campaign_id)


EDITABLE = ("name", "concurrency", "window_start", "window_end", "timezone", "force", "max_retries", "retry_delay_s",
            "progress_timeout_s")


async def update_campaign(campaign_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """Change how a campaign goes on (window, pace, retries, force); not its firmware or stations."""
    row = await campaign_row(campaign_id)
    if row["status"] in ("cancelled", "completed"):
        raise OpsError(N_("a %(state)s campaign cannot change"), 409, state=row["status"])
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise OpsError(N_("these cannot change: %(fields)s"), fields=", ".join(sorted(unknown)))
    merged = {**{k: row[k] for k in EDITABLE}, **values}
    if merged["concurrency"] < 1 or merged["max_retries"] < 0 or merged["retry_delay_s"] < 0 \
            or merged["progress_timeout_s"] < 1 or not str(merged["name"]).strip():
        raise OpsError(N_("concurrency must be >= 1, max_retries and retry_delay_s >= 0, progress_timeout_s >= 1, "
                          "and the name not empty"))
    if bool(merged["window_start"].strip()) != bool(merged["window_end"].strip()):
        raise OpsError(N_("a maintenance window needs both a start and an end"))
    parse_hhmm(merged["window_start"]), parse_hhmm(merged["window_end"])
    check_timezone(merged["timezone"])
    if values:
        async with exclusive():
            await Campaign.update({getattr(Campaign, k): v for k, v in values.items()}).where(
                Campaign.id == campaign_id)
    wake_driver()
    return await campaign_detail(campaign_id)


async def retry_target(campaign_id: int, target_id: int) -> dict[str, Any]:
    """Send a failed (or cancelled) station of a running or paused campaign once more."""
    campaign = await campaign_row(campaign_id)
    target = await CampaignTarget.select().where(
        (CampaignTarget.id == target_id) & (CampaignTarget.campaign == campaign_id)).output(load_json=True).first()
    if target is None:
        raise OpsError(N_("no target %(target)s in campaign %(campaign)s"), 404, target=target_id, campaign=campaign_id)
    if target["status"] not in ("failed", "cancelled"):
        raise OpsError(N_("only failed or cancelled stations are retried, this one is %(state)s"), 409,
                       state=target["status"])
    async with exclusive():
        if campaign["status"] in ("cancelled", "completed"):
            await Campaign.update({Campaign.status: "running", Campaign.finished_at: None}).where(
                Campaign.id == campaign_id)
        await _set_target(target, "pending", detail="retry requested", next_attempt_at=None,
                          finished_at=None)
    wake_driver()
    return await campaign_detail(campaign_id)


async def campaign_detail(campaign_id: int) -> dict[str, Any]:
    row = await campaign_row(campaign_id)
    firmware = await Firmware.select(Firmware.id, Firmware.version, Firmware.vendor, Firmware.model).where(
        Firmware.id == row["firmware"]).first()
    targets = await CampaignTarget.select().where(CampaignTarget.campaign == campaign_id).order_by(
        CampaignTarget.wave).order_by(CampaignTarget.station_id).output(load_json=True)
    counts = {s: 0 for s in TARGET_STATUSES}
    for t in targets:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    done = counts["succeeded"] + counts["failed"] + counts["cancelled"]
    return {**jsonable(row), "firmware": firmware, "counts": counts, "total": len(targets),
            "progress_pct": round(100.0 * done / len(targets), 1) if targets else 100.0,
            "targets": [jsonable(t) for t in targets]}


async def campaign_list(status: str | None = None, scope: Scope = GLOBAL) -> list[dict[str, Any]]:
    query = restrict(Campaign.select(Campaign.all_columns(), Campaign.firmware.version.as_alias("version")),
                     Campaign.organization, scope)
    if status:
        query = query.where(Campaign.status == status)
    rows = await query.order_by(Campaign.id, ascending=False).output(load_json=True)
    out = []
    for r in rows:
        targets = await CampaignTarget.select(CampaignTarget.status).where(CampaignTarget.campaign == r["id"])
        counts: dict[str, int] = {}
        for t in targets:
            counts[t["status"]] = counts.get(t["status"], 0) + 1
        out.append({**jsonable(r), "counts": counts, "total": len(targets)})
    return out


# -- targets --------------------------------------------------------------------------------------


async def _set_target(target: dict[str, Any], status: str, *, detail: str | None = None, station_status: str = "",
                      finished: bool = False, emit: bool = True, event_status: str | None = None,
                      expect: str | None = None, **values: Any) -> bool:
    """Move a target to ``status`` (with a history entry and a FirmwareProgress event); with
    ``expect``, only if it is still in that status (False, and nothing written, otherwise)."""
    now = utcnow()
    entry = {"at": now.isoformat(), "status": status}
    if station_status:
        entry["station_status"] = station_status
    if detail:
        entry["detail"] = detail
    history = list(target.get("history") or [])
    history.append(entry)
    update: dict[Any, Any] = {CampaignTarget.status: status, CampaignTarget.updated_at: now,
                              CampaignTarget.history: history[-100:]}
    if detail is not None:
        update[CampaignTarget.detail] = detail[:255]
    if station_status:
        update[CampaignTarget.station_status] = station_status
    if finished:
        update[CampaignTarget.finished_at] = now
    for key, value in values.items():
        update[getattr(CampaignTarget, key)] = value
    where = CampaignTarget.id == target["id"]
    if expect is not None:
        where &= CampaignTarget.status == expect
    if not await CampaignTarget.update(update).where(where).returning(CampaignTarget.id):
        return False
    target.update({"status": status, "history": history, "updated_at": now})
    if emit:
        version = await Campaign.select(Campaign.firmware.version.as_alias("v")).where(
            Campaign.id == target["campaign"]).first()
        get_core().events.emit(FirmwareProgress(
            target["station_id"], campaign_id=target["campaign"], target_id=target["id"],
            version=version["v"] if version else "", status=event_status or status, station_status=station_status,
            attempt=values.get("attempts", target.get("attempts", 0)), detail=detail or ""))
    return True


async def _fail(target: dict[str, Any], campaign: dict[str, Any], reason: str, station_status: str = "",
                expect: str | None = None) -> bool:
    """An attempt failed: retry later while attempts remain and the campaign goes on (with
    ``expect``: only if the target is still in that status)."""
    attempts = target["attempts"]
    if campaign["status"] in ("running", "paused") and attempts <= campaign["max_retries"]:
        retry_at = utcnow() + timedelta(seconds=campaign["retry_delay_s"])
        return await _set_target(target, "pending", detail=f"attempt {attempts} failed: {reason}; retrying",
                                 station_status=station_status, event_status="retrying", next_attempt_at=retry_at,
                                 expect=expect)
    return await _set_target(target, "failed", detail=f"attempt {attempts} failed: {reason}",
                             station_status=station_status, finished=True, expect=expect)


async def _in_flight_target(station_id: str) -> dict[str, Any] | None:
    return await CampaignTarget.select().where(
        (CampaignTarget.station_id == station_id) & CampaignTarget.status.is_in(list(IN_FLIGHT))
    ).order_by(CampaignTarget.id, ascending=False).output(load_json=True).first()


# -- the driver -----------------------------------------------------------------------------------

_driver: CampaignDriver | None = None


def wake_driver() -> None:
    if _driver is not None:
        _driver.wake.set()


class CampaignDriver:
    """Sends updates for running campaigns and follows what the stations report."""

    def __init__(self, *, interval: float, drive: bool = True) -> None:
        self.interval = interval
        self.drive = drive
        self.wake = asyncio.Event()
        self.lock = asyncio.Lock()  # one of: a pass over the campaigns, or one station report
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        global _driver
        _driver = self
        if self.drive:
            self._task = asyncio.create_task(self._loop(), name="stationops-campaigns")

    async def stop(self) -> None:
        global _driver
        if _driver is self:
            _driver = None
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        while True:
            await wait_event(self.wake, self.interval)
            self.wake.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaign pass failed")

    # -- what stations report -----------------------------------------------------------------

    async def on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.StationReported) and event.category == "firmware":
            async with self.lock:
                await self._on_firmware_status(event.station_id, event.kind, event.details.get("request_id"))
        elif isinstance(event, ev.StationBooted):
            async with self.lock:
                await self._on_boot(event.station_id, event.firmware_version)
        if isinstance(event, (ev.StationConnected, ev.SessionStopped, ev.StationBooted)):
            self.wake.set()

    async def _on_firmware_status(self, station_id: str, status: str, request_id: Any) -> None:
        target = await _in_flight_target(station_id)
        if target is None:
            return
        if request_id is not None and target["request_id"] is not None and int(request_id) != target["request_id"]:
            return  # the status of another update (sent by hand)
        campaign = await campaign_row(target["campaign"])
        if status in STATION_FAILURES:
            await _fail(target, campaign, f"the station reported {status}", station_status=status)
        elif status in STATION_PHASES:
            await _set_target(target, STATION_PHASES[status], detail="", station_status=status)
        else:  # Idle and the like: remember, nothing moves
            await CampaignTarget.update({CampaignTarget.station_status: status}).where(
                CampaignTarget.id == target["id"])
        self.wake.set()

    async def _on_boot(self, station_id: str, firmware_version: str) -> None:
        target = await _in_flight_target(station_id)
        if target is None:
            return
        campaign = await campaign_row(target["campaign"])
        version = (await firmware_row(campaign["firmware"]))["version"]
        if firmware_version == version:
            await _set_target(target, "succeeded", detail=f"booted with {version}", finished=True)
        elif target["status"] == "installed":
            await _fail(target, campaign, f"booted with {firmware_version or 'no version'}, expected {version}")
        self.wake.set()

    # -- sending ------------------------------------------------------------------------------

    async def run_once(self) -> None:
        """One pass over the running campaigns (the background task calls it; so can tests)."""
        async with self.lock:
            for campaign in await Campaign.select().where(Campaign.status == "running").output(load_json=True):
                try:
                    await self._drive(campaign)
                except Exception:
                    log.exception("campaign %s: pass failed", campaign["id"])

    async def _drive(self, campaign: dict[str, Any]) -> None:
        now = utcnow()
        firmware = await firmware_row(campaign["firmware"])
        targets = await CampaignTarget.select().where(CampaignTarget.campaign == campaign["id"]).order_by(
            CampaignTarget.id).output(load_json=True)
        for t in targets:
            if t["status"] in IN_FLIGHT and (now - t["updated_at"]).total_seconds() > campaign["progress_timeout_s"]:
                # only if still as read: a report handled meanwhile (on the node that holds the station) stands
                await _fail(t, campaign, f"no news from the station for {campaign['progress_timeout_s']} s",
                            expect=t["status"])
        open_targets = [t for t in targets if t["status"] not in TERMINAL]
        if not open_targets:
            await Campaign.update({Campaign.status: "completed", Campaign.finished_at: now}).where(
                Campaign.id == campaign["id"])
            return
        wave = min(t["wave"] for t in open_targets)
        in_flight = sum(1 for t in targets if t["status"] in IN_FLIGHT)
        busy = {r["station_id"] for r in await CampaignTarget.select(CampaignTarget.station_id).where(
            CampaignTarget.status.is_in(list(IN_FLIGHT)))}
        for t in open_targets:
            if t["status"] != "pending":
                continue
            if t["wave"] != wave:
                await self._note(t, f"waiting for wave {t['wave'] + 1}")
                continue
            if in_flight >= campaign["concurrency"]:
                await self._note(t, "waiting for a free slot")
                continue
            if t["next_attempt_at"] is not None and t["next_attempt_at"] > now:
                continue
            if t["station_id"] in busy:
                await self._note(t, "another firmware update of this station is running")
                continue
            reason = await self._not_ready(t, campaign, firmware, now)
            if reason == "done":
                continue
            if reason:
                await self._note(t, reason)
                continue
            if await self._send(t, campaign, firmware):
                in_flight += 1
                busy.add(t["station_id"])

    @staticmethod
    async def _note(target: dict[str, Any], detail: str) -> None:
        if target["detail"] != detail:
            target["detail"] = detail
            await CampaignTarget.update({CampaignTarget.detail: detail}).where(CampaignTarget.id == target["id"])

    async def _not_ready(self, target: dict[str, Any], campaign: dict[str, Any], firmware: dict[str, Any],
                         now: datetime) -> str:
        """Why the station cannot be sent the update now ("" when it can, "done" when it has it)."""
        core = get_core()
        station = await Station.select(Station.firmware_version, Station.site).where(
            Station.station_id == target["station_id"]).first()
        if station is None:
            await _set_target(target, "failed", detail="the station was deleted", finished=True)
            return "done"
        if station["firmware_version"] == firmware["version"]:
            await _set_target(target, "succeeded", detail=f"already runs {firmware['version']}", finished=True)
            return "done"
        if core.commands.version_of(target["station_id"]) is None:
            return "station offline"
        tz = campaign["timezone"]
        if not tz and station["site"] is not None:
            site = await Site.select(Site.timezone).where(Site.id == station["site"]).first()
            tz = site["timezone"] if site else ""
        try:
            inside = in_window(now, campaign["window_start"], campaign["window_end"], tz or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            inside = in_window(now, campaign["window_start"], campaign["window_end"], "UTC")
        if not inside:
            return f"outside the maintenance window ({campaign['window_start']}-{campaign['window_end']} {tz or 'UTC'})"
        if not campaign["force"] and await ChargingSession.exists().where(
            (ChargingSession.station.station_id == target["station_id"]) & (ChargingSession.state == "active")
        ):
            return "a session is running"
        return ""

    async def _send(self, target: dict[str, Any], campaign: dict[str, Any], firmware: dict[str, Any]) -> bool:
        """Send the update; True when the station took it."""
        ops = get_core().operations
        station_id = target["station_id"]
        signed = bool(firmware["signature"] and firmware["signing_certificate"])
        attempt = target["attempts"] + 1
        location = download_url(firmware, campaign["base_url"])
        by = f"campaign:{campaign['id']}"

        async def update(secure: bool) -> dict[str, Any]:
            return await ops.update_firmware(
                station_id, location=location, retrieve_at=utcnow(),
                signing_certificate=firmware["signing_certificate"] if secure else None,
                signature=firmware["signature"] if secure else None, by=by)

        # In flight before the request goes out: in a cluster the station's first
        # FirmwareStatusNotification (a quick DownloadFailed) can reach the node that holds the
        # station before the answer reaches this one, and it moves the target only if it finds
        # it in flight. Whatever this pass learns after the call is written only if the target
        # is still "sent" (the station's own report wins).
        before = {k: target[k] for k in ("status", "history", "attempts", "sent_at", "request_id")}
        before_signed = signed
        await _set_target(target, "sent", detail=f"{'signed update' if signed else 'update'} sent (attempt {attempt})",
                          attempts=attempt, request_id=None, signed=signed, sent_at=utcnow(), next_attempt_at=None)
        target["attempts"] = attempt
        try:
            try:
                result = await update(signed)
            except OcppError as exc:
                if not (signed and exc.code in _NOT_SUPPORTED and not campaign["require_signed"]
                        and ops.version(station_id) == "1.6"):
                    raise
                signed = False  # a 1.6 station without the security extension: the plain update
                result = await update(False)
        except (StationOffline, UnknownStation):  # nothing reached the station: as before the pass
            if await CampaignTarget.update({
                CampaignTarget.status: before["status"], CampaignTarget.detail: "station offline",
                CampaignTarget.history: before["history"], CampaignTarget.attempts: before["attempts"],
                CampaignTarget.sent_at: before["sent_at"], CampaignTarget.request_id: before["request_id"],
            }).where((CampaignTarget.id == target["id"]) & (CampaignTarget.status == "sent")).returning(
                    CampaignTarget.id):
                target.update(before, detail="station offline")
            return False
        except CommandTimeout:
            await _fail(target, campaign, "the station did not answer the update request", expect="sent")
            return False
        except OcppError as exc:
            await _fail(target, campaign, f"the station answered {exc.code}: {exc.description}"[:200], expect="sent")
            return False
        status = result.get("status", "Accepted")
        if status not in ("Accepted", "AcceptedCanceled"):
            await _fail(target, campaign, f"the station answered {status}", expect="sent")
            return False
        # the request id that matches the station's reports, and whether the plain update went
        # after all (a 1.6 station without the security extension)
        await CampaignTarget.update({CampaignTarget.request_id: result.get("request_id"),
                                     CampaignTarget.signed: signed}).where(
            (CampaignTarget.id == target["id"]) & CampaignTarget.status.is_in(list(IN_FLIGHT)))
        if signed != before_signed:
            await CampaignTarget.update({CampaignTarget.detail: f"update sent (attempt {attempt})"}).where(
                (CampaignTarget.id == target["id"]) & (CampaignTarget.status == "sent"))
        return True
