"""Charging Profiles (mod_charging_profiles), CPO side as Receiver: a partner (the eMSP whose
token charges, or its smart-charging provider) sets, reads and clears a ChargingProfile on one of
our active sessions at ``/ocpi/cpo/2.2.1/chargingprofiles/{session_id}``.

Every request is answered at once with a ChargingProfileResponse (can we act on it?); what the
station did follows as a POST to the partner's ``response_url`` through the outbox: a
ChargingProfileResult (PUT), an ActiveChargingProfileResult with the station's composite
schedule (GET) or a ClearProfileResult (DELETE).

How a profile is enforced depends on who owns the station's power:

* **loop** — the station is at a site and the smart-charging loop shares its capacity (a plugin
  implements ``allocate_capacity``, the loadbalancing plugin by default): the profile becomes a
  cap on the session through the ``session_limit`` hook, and the loop recomputes the site at
  once. The loop keeps every other limit (fuses, hubs, peak shaving) and sends the profiles.
  After a DELETE the hook keeps answering the station's maximum until the session ends, so the
  loop, which holds a TxProfile on the transaction, lifts it again.
* **station** — otherwise the profile is sent to the station as a ``TxProfile`` of the
  transaction (the per-version payload of :func:`csms.core.services.smart_charging.build_profile`,
  in amps), and a DELETE clears it with ``ClearChargingProfile``.

Time: a profile's periods start at its ``start_date_time``, or when we received it when it has
none (the OCPP profile is then *Absolute* from that moment). Watts become amps per phase with
the site's voltage (230 V without a site) and the phases the session draws on: ``A = W /
(voltage × phases)``.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from litestar import Request, Response, delete, get, put

from csms.plugin_api import (
    TX, V16, CommandTimeout, Load, OcppError, Planned, Site, Station, StationOffline, UnknownStation,
    build_profile, floor_tenth, get_core, hook_impls, parse_ts, session_dict, utcnow,
)
from plugins.roaming_ocpi import schema, sync
from plugins.roaming_ocpi.config import ocpi_settings
from plugins.roaming_ocpi.parties import authenticate, require_module
from plugins.roaming_ocpi.recheck import Recheck
from plugins.roaming_ocpi.tables import SessionLink, SessionProfile
from plugins.roaming_ocpi.transport import invalid, json_body, not_found, ocpi_response, ocpi_ts, parse_datetime

log = logging.getLogger("csms.ocpi.chargingprofiles")

PATH = "/cpo/2.2.1/chargingprofiles/{session_id:str}"
PROFILE_ID_BASE = 800_000  # + EVSE id: our TxProfile ids for partners (the loop's start at 900 000)
DEFAULT_VOLTAGE = 230.0
MAX_DURATION_S = 86_400
_STATION_TROUBLE = (StationOffline, UnknownStation, CommandTimeout, OcppError, ConnectionError)



def _response(result: str) -> Response:
    return ocpi_response({"result": result, "timeout": ocpi_settings().command_timeout})


def _response_url(request: Request) -> str:
    url = request.query_params.get("response_url") or ""
    return _checked_url(url)


def _checked_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or len(url) > 255:
        raise invalid("response_url must be an http(s) URL of at most 255 characters")
    return url


def _check_profile(profile: dict[str, Any]) -> None:
    """What the schema cannot say: periods in order from a non-negative start, limits >= 0."""
    periods = profile["charging_profile_period"]
    starts = [p["start_period"] for p in periods]
    if starts[0] < 0 or any(b <= a for a, b in pairwise(starts)):
        raise invalid("charging_profile_period start_period values must be >= 0 and increasing")
    if any(p["limit"] < 0 or math.isnan(p["limit"]) for p in periods):
        raise invalid("charging_profile_period limits must be >= 0")
    if profile.get("duration") is not None and profile["duration"] <= 0:
        raise invalid("duration must be > 0")
    if profile.get("min_charging_rate") is not None and profile["min_charging_rate"] < 0:
        raise invalid("min_charging_rate must be >= 0")


async def _session(partner: dict[str, Any], session_id: str) -> dict[str, Any] | None:
    """The active core session behind one of this partner's OCPI sessions, or None."""
    if not session_id.isdigit():
        return None
    link = await SessionLink.select().where(SessionLink.session_id == int(session_id)).first()
    if link is None or link["partner"] != partner["id"] or link["status"] != "ACTIVE":
        return None
    session = await session_dict(link["session_id"])
    if session is None or session["state"] != "active" or session["transaction_id"] is None:
        return None
    return session


def _reachable(station_id: str) -> bool:
    return get_core().commands.version_of(station_id) is not None


async def _site_of(station_id: str) -> dict[str, Any] | None:
    row = await Station.select(Station.site).where(Station.station_id == station_id).first()
    if row is None or row["site"] is None:
        return None
    return await Site.select(Site.id, Site.voltage_v).where(Site.id == row["site"]).first()


def loop_manages(site: dict[str, Any] | None) -> bool:
    """Whether the smart-charging loop shares this site's power (so it must enforce the profile)."""
    return site is not None and get_core().smart_charging.config.enabled and bool(hook_impls("allocate_capacity"))


# ======================================================================================================
# the Receiver interface
# ======================================================================================================


def _refusal(session: dict[str, Any] | None) -> Response | None:
    """The answer when the request cannot go ahead: not our active session, or its station
    cannot be reached."""
    if session is None:
        return _response("UNKNOWN_SESSION")
    if not _reachable(session["station_id"]):
        return _response("NOT_SUPPORTED")
    return None


@put(PATH, status_code=200)
async def profile_put(request: Request, session_id: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "CPO")
    body = schema.require_valid(await json_body(request), schema.SET_CHARGING_PROFILE, "SetChargingProfile")
    profile = body["charging_profile"]
    _check_profile(profile)
    response_url = _checked_url(body["response_url"])
    session = await _session(partner, session_id)
    refusal = _refusal(session)
    if refusal is not None:
        return refusal
    received = utcnow()
    # whole seconds, as the smart-charging loop's clock goes: a profile without a start is in force at once
    start = parse_datetime(profile["start_date_time"]) if profile.get("start_date_time") else received.replace(
        microsecond=0)
    site = await _site_of(session["station_id"])
    values = {"partner": partner["id"], "station_id": session["station_id"], "evse_id": session["evse_id"],
              "site_id": site["id"] if site else None, "profile": profile, "start_at": start,
              "voltage_v": float(site["voltage_v"] or DEFAULT_VOLTAGE) if site else DEFAULT_VOLTAGE,
              "mode": "loop" if loop_manages(site) else "station", "status": "set", "updated_at": received}
    sid = int(session_id)
    if await SessionProfile.exists().where(SessionProfile.session_id == sid):
        await SessionProfile.update({getattr(SessionProfile, k): v for k, v in values.items()}).where(
            SessionProfile.session_id == sid)
    else:
        await SessionProfile(session_id=sid, **values).save()
    _loop_session_ids.forget()
    sync.spawn(_apply(sid, session, response_url), f"ocpi-chargingprofile-{sid}")
    return _response("ACCEPTED")


@get(PATH)
async def profile_get(request: Request, session_id: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "CPO")
    raw = request.query_params.get("duration") or ""
    if not raw.isdigit() or not 0 < int(raw) <= MAX_DURATION_S:
        raise invalid(f"duration must be a whole number of seconds between 1 and {MAX_DURATION_S}")
    response_url = _response_url(request)
    session = await _session(partner, session_id)
    refusal = _refusal(session)
    if refusal is not None:
        return refusal
    sync.spawn(_composite(partner["id"], int(session_id), session, int(raw), response_url),
               f"ocpi-composite-{session_id}")
    return _response("ACCEPTED")


@delete(PATH, status_code=200)
async def profile_delete(request: Request, session_id: str) -> Response:
    partner = await authenticate(request)
    require_module(request, "CPO")
    response_url = _response_url(request)
    session = await _session(partner, session_id)
    refusal = _refusal(session)
    if refusal is not None:
        return refusal
    sync.spawn(_clear(partner["id"], int(session_id), session, response_url), f"ocpi-clearprofile-{session_id}")
    return _response("ACCEPTED")


ROUTES = [profile_put, profile_get, profile_delete]


# ======================================================================================================
# what the station does, reported to the response_url
# ======================================================================================================


async def _report(partner_id: int, session_id: int, url: str, body: dict[str, Any]) -> None:
    await sync.enqueue(partner_id, "POST", f"chargingprofile:{session_id}", url=url, body=body)


async def _row(session_id: int) -> dict[str, Any]:
    return await SessionProfile.select().where(SessionProfile.session_id == session_id).output(
        load_json=True).first()


async def _apply(session_id: int, session: dict[str, Any], response_url: str) -> None:
    row = await _row(session_id)
    result = "REJECTED"
    try:
        if row["mode"] == "loop":
            result = await _recompute(row, session)
        else:
            result = await _send_to_station(row, session)
    except _STATION_TROUBLE as exc:
        log.warning("charging profile of session %s not applied: %s", session_id, exc)
    except Exception:  # never leave the partner without a result
        log.exception("charging profile of session %s not applied", session_id)
    await _report(row["partner"], session_id, response_url, {"result": result})


async def _recompute(row: dict[str, Any], session: dict[str, Any]) -> str:
    """A round of the site now: ACCEPTED when the station took the session's profile."""
    outcome = await get_core().smart_charging.run_round(row["site_id"])
    load_id = f"{session['station_id']}/{session['evse_id']}"
    if outcome is None or load_id not in outcome.limits or outcome.failed:
        return "REJECTED"
    return "ACCEPTED"


def _amps_periods(row: dict[str, Any], phases: int) -> list[tuple[datetime, float]]:
    profile = row["profile"]
    per_amp = 1.0 if profile["charging_rate_unit"] == "A" else row["voltage_v"] * max(1, phases)
    return [(row["start_at"] + timedelta(seconds=p["start_period"]), max(0.0, p["limit"] / per_amp))
            for p in profile["charging_profile_period"]]


async def _send_to_station(row: dict[str, Any], session: dict[str, Any]) -> str:
    """The profile as the transaction's TxProfile at the station."""
    core = get_core()
    version = core.operations.version(row["station_id"])
    periods = tuple((when, floor_tenth(amps)) for when, amps in _amps_periods(row, 3))
    plan = Planned(row["station_id"], row["evse_id"], TX, periods, transaction_id=session["transaction_id"])
    profile_id = PROFILE_ID_BASE + row["evse_id"]
    profile = build_profile(version, plan, profile_id=profile_id, stack_level=core.smart_charging.config.stack_level)
    duration = row["profile"].get("duration")
    if duration is not None:
        (profile["chargingSchedule"] if version == V16 else profile["chargingSchedule"][0])["duration"] = duration
    answer = await core.operations.set_charging_profile(row["station_id"], evse_id=row["evse_id"], profile=profile,
                                                        by=f"ocpi:partner:{row['partner']}")
    if answer["status"] != "Accepted":
        return "REJECTED"
    await SessionProfile.update({SessionProfile.ocpp_profile_id: profile_id}).where(
        SessionProfile.session_id == row["session_id"])
    return "ACCEPTED"


async def _clear(partner_id: int, session_id: int, session: dict[str, Any], response_url: str) -> None:
    row = await _row(session_id)
    if row is None or row["status"] != "set":
        await _report(partner_id, session_id, response_url, {"result": "UNKNOWN"})
        return
    await SessionProfile.update({SessionProfile.status: "cleared", SessionProfile.updated_at: utcnow()}).where(
        SessionProfile.session_id == session_id)
    result = "REJECTED"
    try:
        if row["mode"] == "loop":
            result = await _recompute(row, session)
        elif row["ocpp_profile_id"] is None:
            result = "UNKNOWN"
        else:
            result = await _clear_at_station(row)
    except _STATION_TROUBLE as exc:
        log.warning("charging profile of session %s not cleared: %s", session_id, exc)
    except Exception:
        log.exception("charging profile of session %s not cleared", session_id)
    await _report(row["partner"], session_id, response_url, {"result": result})


async def _clear_at_station(row: dict[str, Any]) -> str:
    core = get_core()
    version = core.operations.version(row["station_id"])
    payload = {"id": row["ocpp_profile_id"]} if version == V16 else {"chargingProfileId": row["ocpp_profile_id"]}
    answer = await core.commands.send(row["station_id"], "ClearChargingProfile", payload,
                                      requested_by=f"ocpi:partner:{row['partner']}")
    return {"Accepted": "ACCEPTED", "Unknown": "UNKNOWN"}.get(answer.get("status"), "REJECTED")


async def _composite(partner_id: int, session_id: int, session: dict[str, Any], duration: int,
                     response_url: str) -> None:
    """GetCompositeSchedule of the session's EVSE as an ActiveChargingProfileResult."""
    core = get_core()
    station_id, evse_id = session["station_id"], session["evse_id"]
    body: dict[str, Any] = {"result": "REJECTED"}
    try:
        version = core.operations.version(station_id)
        payload: dict[str, Any] = {"duration": duration, "chargingRateUnit": "A"}
        payload["connectorId" if version == V16 else "evseId"] = evse_id
        answer = await core.commands.send(station_id, "GetCompositeSchedule", payload,
                                          requested_by=f"ocpi:partner:{partner_id}")
        active = active_profile(version, answer)
        if active is not None:
            body = {"result": "ACCEPTED", "profile": active}
    except _STATION_TROUBLE as exc:
        log.warning("composite schedule of session %s not read: %s", session_id, exc)
    except Exception:
        log.exception("composite schedule of session %s not read", session_id)
    await _report(partner_id, session_id, response_url, body)


def active_profile(version: str, answer: dict[str, Any]) -> dict[str, Any] | None:
    """A GetCompositeSchedule answer (either version) as an OCPI ActiveChargingProfile."""
    if answer.get("status") != "Accepted":
        return None
    schedule = answer.get("chargingSchedule") if version == V16 else answer.get("schedule")
    if not schedule or not schedule.get("chargingSchedulePeriod"):
        return None
    start = parse_ts(answer.get("scheduleStart") or schedule.get("scheduleStart") or schedule.get("startSchedule"))
    profile: dict[str, Any] = {
        "start_date_time": ocpi_ts(start or utcnow()),
        "charging_rate_unit": schedule.get("chargingRateUnit", "A"),
        "charging_profile_period": [{"start_period": int(p["startPeriod"]), "limit": float(p["limit"])}
                                    for p in sorted(schedule["chargingSchedulePeriod"],
                                                    key=lambda p: p["startPeriod"])],
    }
    if schedule.get("duration") is not None:
        profile["duration"] = int(schedule["duration"])
    if schedule.get("minChargingRate") is not None:
        profile["min_charging_rate"] = float(schedule["minChargingRate"])
    return {"start_date_time": profile["start_date_time"], "charging_profile": profile}


# ======================================================================================================
# the ``session_limit`` hook (loop mode)
# ======================================================================================================


async def _ask_loop_session_ids() -> frozenset[int]:
    rows = await SessionProfile.select(SessionProfile.session_id).where(SessionProfile.mode == "loop")
    return frozenset(r["session_id"] for r in rows)


# The sessions with a partner's profile in loop mode, so that a round asks the database once,
# not once per session.
LOOP_SESSIONS_CHECK_S = 5.0
_loop_session_ids: Recheck[frozenset[int]] = Recheck(LOOP_SESSIONS_CHECK_S, _ask_loop_session_ids)


async def session_limit(load: Load, now: datetime) -> float | None:
    """The cap a partner's profile puts on a session the loop manages (amps per phase)."""
    if load.session_id not in await _loop_session_ids():
        return None
    row = await SessionProfile.select().where(SessionProfile.session_id == load.session_id).output(
        load_json=True).first()
    if row is None or row["mode"] != "loop":
        return None
    if row["status"] != "set":
        return load.max_a  # the loop holds a TxProfile on this transaction: let it lift the cap
    periods = _amps_periods(row, len(load.phases))
    duration = row["profile"].get("duration")
    end = row["start_at"] + timedelta(seconds=duration) if duration is not None else None
    upcoming = [when for when, _ in periods if when > now] + ([end] if end is not None and end > now else [])
    if upcoming and row["site_id"] is not None:  # the next change of the cap
        get_core().smart_charging.request(row["site_id"], delay=(min(upcoming) - utcnow()).total_seconds() + 0.5)
    if now < periods[0][0] or (end is not None and now >= end):
        return load.max_a
    return next(amps for when, amps in reversed(periods) if when <= now)
