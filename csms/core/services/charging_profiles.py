"""Charging profiles at one station, for the operator: what the CSMS knows the station holds,
asking the station for them (OCPP 2.0.1 GetChargingProfiles, answered in ReportChargingProfiles;
OCPP 1.6 has no such message, only GetCompositeSchedule), and clearing them (ClearChargingProfile
in both versions), plus the schedule of a profile sent with a remote start (K05).

``charging_profile`` holds the profiles the CSMS sent (source ``csms``, with the station's answer)
and those the station reported (source ``station``, its charging limit source as status). A
profile the station accepted to clear is marked cleared (one the CSMS sent) or forgotten (one it
reported) only after its answer. Asking the station forgets the reported profiles the request
covers first, so what is listed afterwards is what the station reported (nothing when it answers
``NoProfiles``); like the display messages this needs no in-memory state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from piccolo.columns.combination import Combinable

from csms.core.ocpp.outbound import StationCalls, calls_for
from csms.core.ocpp.outbound.calls import STATION_MAX, TX, TX_DEFAULT, new_request_id
from csms.core.services.commands import UnknownStation
from csms.core.services.operations import OperationError, calls_with, feature_state, next_profile_id
from csms.core.tables import ChargingProfile, ChargingSession, Station
from csms.core.timeutil import ocpp_ts, utcnow
from csms.i18n import N_

if TYPE_CHECKING:
    from datetime import datetime

    from csms.core.services.commands import CommandService
    from csms.core.services.operations import Operations

PURPOSES = (STATION_MAX, TX_DEFAULT, TX)
LIMIT_SOURCES = ("EMS", "Other", "SO", "CSO")  # ChargingLimitSourceEnumType
UNITS = ("A", "W")
EXTERNAL = "ChargingStationExternalConstraints"  # set by the station's surroundings; the CSMS cannot clear it
MAX_INT = 2**31 - 1
TX_NAME = "TxProfile"  # the purpose's name in every version
MAX_PERIODS = 1024  # no station takes more; the station's own maximum is checked when it said one
KINDS = ("Absolute", "Recurring", "Relative")  # ChargingProfileKindEnumType
RECURRENCIES = ("Daily", "Weekly")  # RecurrencyKindEnumType


def _whole(value: int | None, name: str, *, low: int = 0) -> None:
    if value is not None and not low <= value <= MAX_INT:
        raise OperationError(N_("%(name)s must be a whole number from %(low)s"), name=name, low=low)


def _purpose(purpose: str | None) -> None:
    if purpose is not None and purpose not in PURPOSES:
        raise OperationError(N_("purpose must be one of %(purposes)s"), purposes=", ".join(PURPOSES))


def tx_schedule(*, unit: str, periods: list[dict[str, Any]], duration: int | None = None) -> dict[str, Any]:
    """The schedule of a remote start's TxProfile (relative to the transaction's start), as both
    versions write it; ``periods`` are ``{"start_period", "limit", "number_phases"}`` (seconds from
    the start, amps or watts, 1-3 phases). ``OperationError`` for what a station would refuse."""
    if unit not in UNITS:
        raise OperationError(N_("unit must be A or W"))
    if not periods or len(periods) > MAX_PERIODS:
        raise OperationError(N_("a schedule has 1 to %(maximum)s periods"), maximum=MAX_PERIODS)
    _whole(duration, "duration", low=1)
    out: list[dict[str, Any]] = []
    for number, period in enumerate(periods):
        start, limit, phases = period.get("start_period"), period.get("limit"), period.get("number_phases")
        if not isinstance(start, int) or start < 0 or (number == 0 and start != 0):
            raise OperationError(N_("the first period starts at 0, the others at a whole number of seconds"))
        if out and start <= out[-1]["startPeriod"]:
            raise OperationError(N_("periods must start in increasing order"))
        if not isinstance(limit, (int, float)) or isinstance(limit, bool) or not 0 <= limit <= 10**9:
            raise OperationError(N_("a period's limit is a number of amps or watts, 0 or more"))
        item: dict[str, Any] = {"startPeriod": start, "limit": round(float(limit), 1)}
        if phases is not None:
            if phases not in (1, 2, 3):
                raise OperationError(N_("number_phases must be 1, 2 or 3"))
            item["numberPhases"] = phases
        out.append(item)
    schedule: dict[str, Any] = {"chargingRateUnit": unit, "chargingSchedulePeriod": out}
    if duration is not None:
        schedule["duration"] = duration
    return schedule


def limit_summary(payload: dict[str, Any]) -> str:
    """The first period's limit of a stored profile (either version's shape), e.g. ``16 A``."""
    schedule = payload.get("chargingSchedule") or {}
    schedule = (schedule[0] if schedule else {}) if isinstance(schedule, list) else schedule
    periods = schedule.get("chargingSchedulePeriod") or []
    if not periods:
        return ""
    more = " …" if len(periods) > 1 else ""
    limit = periods[0].get("limit")
    shown = f"{limit:g}" if isinstance(limit, (int, float)) else str(limit)
    return f"{shown} {schedule.get('chargingRateUnit', '')}{more}"


class ChargingProfileService:
    def __init__(self, commands: CommandService, operations: Operations) -> None:
        self.commands = commands
        self.operations = operations
        # told the station id after a clear it accepted (the smart-charging loop listens)
        self.cleared_listeners: list[Callable[[str], None]] = []

    async def set_profile(self, station_id: str, *, evse_id: int, purpose: str, unit: str,
                          periods: list[dict[str, Any]], stack_level: int = 0, profile_id: int | None = None,
                          kind: str = "Absolute", recurrency: str | None = None, start_at: datetime | None = None,
                          duration: int | None = None, valid_from: datetime | None = None,
                          valid_to: datetime | None = None, transaction_id: str | None = None,
                          by: str = "") -> dict[str, Any]:
        """SetChargingProfile of an operator's profile (K01; 1.6 SetChargingProfile): ``purpose``
        ``station_max`` (EVSE 0, never Relative), ``tx_default`` or ``tx`` (an EVSE and the
        ``transaction_id`` running there); ``kind`` Absolute (from ``start_at``, default now),
        Recurring (``recurrency`` Daily or Weekly from ``start_at``) or Relative (from the start
        of the transaction); ``periods`` as :func:`tx_schedule` takes them. What a station would
        refuse (or the spec forbids) is an ``OperationError`` before anything is sent; the stack
        level and periods the station reported allowing are checked too. Without ``profile_id`` the
        next free id below the smart-charging loop's is used. Stored with the station's answer (as
        every profile the CSMS sends); the outcome has the ``profile_id``."""
        _purpose(purpose)
        if purpose is None:
            raise OperationError(N_("purpose must be one of %(purposes)s"), purposes=", ".join(PURPOSES))
        _whole(evse_id, "evse_id")
        _whole(stack_level, "stack_level")
        _whole(profile_id, "profile_id", low=1)
        if kind not in KINDS:
            raise OperationError(N_("kind must be one of %(kinds)s"), kinds=", ".join(KINDS))
        if kind == "Recurring" and recurrency not in RECURRENCIES:
            raise OperationError(N_("a Recurring profile recurs Daily or Weekly"))
        if kind != "Recurring" and recurrency is not None:
            raise OperationError(N_("only a Recurring profile has a recurrency"))
        if kind == "Relative" and start_at is not None:
            raise OperationError(N_("a Relative profile starts with the transaction, not at a time"))
        if purpose == STATION_MAX and (evse_id != 0 or kind == "Relative"):
            raise OperationError(N_("a station maximum profile is for EVSE 0 and not Relative"))
        if purpose == TX and (evse_id == 0 or not transaction_id):
            raise OperationError(N_("a TxProfile names its EVSE and the transaction running there"))
        if purpose != TX and transaction_id:
            raise OperationError(N_("only a TxProfile names a transaction"))
        if valid_from is not None and valid_to is not None and valid_to <= valid_from:
            raise OperationError(N_("valid_to must come after valid_from"))
        pk = await self._station_pk(station_id)
        if purpose == TX and not await ChargingSession.exists().where(
                (ChargingSession.station == pk) & (ChargingSession.transaction_id == transaction_id)
                & (ChargingSession.evse_id == evse_id) & (ChargingSession.state == "active")):
            raise OperationError(N_("transaction %(transaction)s is not running at EVSE %(evse)s"),
                                 transaction=transaction_id, evse=evse_id)
        schedule = tx_schedule(unit=unit, periods=periods, duration=duration)
        if kind != "Relative":
            schedule = {"startSchedule": ocpp_ts(start_at or utcnow()), **schedule}
        calls = calls_for(self.commands.live_version(station_id))
        caps = await calls.station_caps(pk)
        if caps.max_stack_level is not None and stack_level > caps.max_stack_level:
            raise OperationError(N_("the station allows stack levels up to %(maximum)s"), maximum=caps.max_stack_level)
        if caps.max_periods is not None and len(schedule["chargingSchedulePeriod"]) > caps.max_periods:
            raise OperationError(N_("the station allows at most %(maximum)s periods in a schedule"),
                                 maximum=caps.max_periods)
        profile_id = profile_id or await next_profile_id(pk)
        profile = calls.charging_profile(profile_id=profile_id, stack_level=stack_level, purpose=purpose,
                                         schedule=schedule, transaction_id=transaction_id, kind=kind,
                                         recurrency=recurrency, valid_from=valid_from, valid_to=valid_to)
        outcome = await self.operations.set_charging_profile(station_id, evse_id=evse_id, profile=profile, by=by)
        return {**outcome, "profile_id": profile_id}

    async def _station_pk(self, station_id: str) -> int:
        row = await Station.select(Station.id).where(Station.station_id == station_id).first()
        if row is None:
            raise UnknownStation(station_id)
        return row["id"]

    async def listing(self, station_id: str) -> dict[str, Any]:
        """The profiles the station holds as far as the CSMS knows: per source and profile id the
        latest one the station accepted or reported, not cleared, not replaced by a later one
        at the same EVSE, purpose and stack level, and (a TxProfile the CSMS sent) not of a
        transaction that ended. ``reports_supported`` says whether the station
        can be asked for its profiles (None while its version is not known)."""
        pk = await self._station_pk(station_id)
        row = await Station.select(Station.ocpp_version).where(Station.id == pk).first()
        version = self.commands.version_of(station_id) or (row or {}).get("ocpp_version") or None
        rows = await ChargingProfile.select(*ChargingProfile.all_columns(exclude=[ChargingProfile.station])).where(
            (ChargingProfile.station == pk) & ChargingProfile.cleared_at.is_null()
            & ((ChargingProfile.source == "station") | (ChargingProfile.status == "Accepted"))
        ).order_by(ChargingProfile.id, ascending=False).limit(1000).output(load_json=True)
        ended = await self._ended_transactions(pk, [r for r in rows if r["source"] == "csms" and r["purpose"] == TX_NAME])
        items: list[dict[str, Any]] = []
        seen: set[tuple[Any, ...]] = set()
        for r in rows:
            if r["source"] == "csms" and r["purpose"] == TX_NAME and self._ended(r, ended):
                continue  # a TxProfile ends with its transaction
            keys = {(r["source"], "id", r["evse_id"], r["profile_id"]),
                    (r["source"], "slot", r["evse_id"], r["purpose"], r["stack_level"])}
            if keys & seen:
                continue
            seen |= keys
            items.append({**r, "limit": limit_summary(r["payload"])})
        items.sort(key=lambda r: (r["evse_id"], r["purpose"], r["stack_level"], r["profile_id"]))
        return {"station_id": station_id, "ocpp_version": version,
                "reports_supported": feature_state(version, "supports_profile_reports"),
                "items": items}

    @staticmethod
    async def _ended_transactions(pk: int, tx_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The station's sessions that ended since the oldest of ``tx_rows`` was sent."""
        if not tx_rows:
            return []
        since = min(r["sent_at"] for r in tx_rows)
        return await ChargingSession.select(
            ChargingSession.evse_id, ChargingSession.transaction_id, ChargingSession.stopped_at).where(
            (ChargingSession.station == pk) & (ChargingSession.state != "active")
            & (ChargingSession.stopped_at >= since))

    @staticmethod
    def _ended(row: dict[str, Any], ended: list[dict[str, Any]]) -> bool:
        """Whether the transaction of a TxProfile the CSMS sent is over: its own, or for one sent
        with a remote start (no transaction id yet) one at its EVSE that ended after it was sent."""
        if row["transaction_id"] is not None:
            return any(s["transaction_id"] == row["transaction_id"] for s in ended)
        return any(s["stopped_at"] > row["sent_at"] and row["evse_id"] in (0, s["evse_id"]) for s in ended)

    async def request_report(self, station_id: str, *, evse_id: int | None = None, purpose: str | None = None,
                             stack_level: int | None = None, profile_ids: list[int] | None = None,
                             limit_sources: list[str] | None = None, by: str = "") -> dict[str, Any]:
        """GetChargingProfiles (2.0.1) of the profiles matching the criteria (none: all); they
        arrive in ReportChargingProfiles. The outcome has the ``request_id``."""
        _whole(evse_id, "evse_id")
        _whole(stack_level, "stack_level")
        _purpose(purpose)
        for profile_id in profile_ids or []:
            _whole(profile_id, "profile_ids")
        if limit_sources and not set(limit_sources) <= set(LIMIT_SOURCES):
            raise OperationError(N_("limit_sources are some of %(sources)s"), sources=", ".join(LIMIT_SOURCES))
        calls = await calls_with(self.commands, station_id, "supports_profile_reports",
                                 "GetChargingProfiles (OCPP 2.0.1 has; 1.6 has GetCompositeSchedule)")
        pk = await self._station_pk(station_id)
        call = calls.get_charging_profiles(request_id=new_request_id(), evse_id=evse_id, purpose=purpose,
                                           stack_level=stack_level, profile_ids=profile_ids,
                                           limit_sources=limit_sources)
        where = self._matching(calls, pk, evse_id=evse_id, purpose=purpose, stack_level=stack_level,
                               profile_ids=profile_ids) & (ChargingProfile.source == "station")
        if limit_sources:
            where &= ChargingProfile.status.is_in(limit_sources)
        await ChargingProfile.delete().where(where)
        return call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))

    async def clear(self, station_id: str, *, profile_id: int | None = None, evse_id: int | None = None,
                    purpose: str | None = None, stack_level: int | None = None, by: str = "") -> dict[str, Any]:
        """ClearChargingProfile of ``profile_id``, or of the profiles matching the other criteria
        (none: every profile but the external constraints). What the station cleared (answer
        ``Accepted``) is marked cleared here afterwards; ``Unknown`` changes nothing stored."""
        if profile_id is not None and (evse_id is not None or purpose is not None or stack_level is not None):
            raise OperationError(N_("give a profile id or criteria (EVSE, purpose, stack level), not both"))
        _whole(profile_id, "profile_id")
        _whole(evse_id, "evse_id")
        _whole(stack_level, "stack_level")
        _purpose(purpose)
        pk = await self._station_pk(station_id)
        calls = calls_for(self.commands.live_version(station_id))
        call = calls.clear_charging_profile(profile_id=profile_id, evse_id=evse_id, purpose=purpose,
                                            stack_level=stack_level)
        response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
        result = call.outcome(response)
        if result["status"] == "Accepted":
            where = self._matching(calls, pk, evse_id=evse_id, purpose=purpose, stack_level=stack_level,
                                   profile_ids=[profile_id] if profile_id is not None else None)
            where &= ChargingProfile.purpose != EXTERNAL
            await ChargingProfile.update({ChargingProfile.cleared_at: utcnow()}).where(
                where & (ChargingProfile.source == "csms") & ChargingProfile.cleared_at.is_null())
            await ChargingProfile.delete().where(where & (ChargingProfile.source == "station"))
            for listener in self.cleared_listeners:  # the smart-charging loop sends its profiles again
                listener(station_id)
        return result

    @staticmethod
    def _matching(calls: StationCalls, pk: int, *, evse_id: int | None, purpose: str | None,
                  stack_level: int | None, profile_ids: list[int] | None) -> Combinable:
        where: Combinable = ChargingProfile.station == pk
        if profile_ids:
            where &= ChargingProfile.profile_id.is_in(profile_ids)
        if evse_id is not None:
            where &= ChargingProfile.evse_id == evse_id
        if purpose is not None:
            where &= ChargingProfile.purpose == calls.purpose_names[purpose]
        if stack_level is not None:
            where &= ChargingProfile.stack_level == stack_level
        return where
