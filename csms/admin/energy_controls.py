"""What the CSMS tells an OCPP 2.1 station beyond DER controls, on the station's page: a panel
(through ``admin_panels``, a default plugin, see ``csms.plugins.DEFAULT_PLUGINS``) with the
station's running transactions (their priority charging and allowed energy transfer modes) and
the dynamic profiles it holds (their last schedule update), and a form for each message: an aFRR
signal, UpdateDynamicSchedule of a profile, UsePriorityCharging and NotifyAllowedEnergyTransfer of
a transaction, NotifyWebPaymentStarted at an EVSE; and the station's periodic event streams (each
with its monitor's variable and newest value, :mod:`csms.core.services.event_streams`), a button
that asks the station which it has open and a form to adjust one. Each goes through the service
the REST API's endpoints call and shows the station's answer.
Stations of earlier versions have none of these and get no panel."""

from __future__ import annotations

import math
from typing import Any, get_args

from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.exceptions import NotFoundException
from litestar.response import Template
from markupsafe import Markup

from csms.admin.auth import actor, current_user
from csms.admin.forms import parse_datetime_local
from csms.admin.outcomes import command_outcome
from csms.admin.templating import fragment, page_panel, render, viewer_zone
from csms.api.energy_controls import SCHEDULE_UPDATE_FIELDS, EnergyTransferMode
from csms.core.ocpp.validation import V21
from csms.core.runtime import get_core
from csms.core.services.operations import OperationError
from csms.core.tables import ChargingProfile, ChargingSession, Station
from csms.core.timeutil import utcnow
from csms.i18n import N_, gettext
from csms.plugins import hookimpl

STATION = {"tenant": {"station_id": "station"}}
TEMPLATE = "stations/_energy_controls.html"
MODES = get_args(EnergyTransferMode)
INT32 = 2**31 - 1


async def _context(request: Request, station_id: str, notice: str = "", ok: bool = True) -> dict[str, Any]:
    if not await Station.exists().where(Station.station_id == station_id):
        raise NotFoundException(gettext("There is no station %(station)s.", station=station_id))
    user = await current_user(request)
    sessions = await ChargingSession.select(
        ChargingSession.id, ChargingSession.transaction_id, ChargingSession.evse_id, ChargingSession.id_token,
        ChargingSession.priority_charging, ChargingSession.allowed_energy_transfer).where(
        (ChargingSession.station.station_id == station_id) & (ChargingSession.state == "active")
    ).order_by(ChargingSession.id).output(load_json=True)
    # the profiles UpdateDynamicSchedule may name (as the service checks them)
    profiles = await ChargingProfile.select(
        ChargingProfile.profile_id, ChargingProfile.evse_id, ChargingProfile.purpose, ChargingProfile.source,
        ChargingProfile.schedule_update, ChargingProfile.schedule_updated_at).where(
        (ChargingProfile.station.station_id == station_id) & ChargingProfile.cleared_at.is_null()
        & ((ChargingProfile.source == "station") | (ChargingProfile.status == "Accepted"))
    ).order_by(ChargingProfile.profile_id).output(load_json=True)
    streams = (await get_core().event_streams.listing(station_id, values=0))["streams"]
    return {"sid": station_id, "notice": notice, "ok": ok, "sessions": sessions, "streams": streams,
            "profiles": list({p["profile_id"]: p for p in profiles}.values()),
            "can_operate": bool(user and user.can("operator")), "modes": MODES,
            "schedule_fields": list(SCHEDULE_UPDATE_FIELDS.items())}


@hookimpl
@page_panel("station", when=lambda context: context.get("version") == V21)
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    return fragment(request, TEMPLATE, **await _context(request, station["station_id"]))


@get("/admin/stations/{station_id:str}/energy-controls", include_in_schema=False, opt=STATION)
async def energy_control_panel(request: Request, station_id: str) -> Template:
    """The panel alone."""
    return await render(request, TEMPLATE, **await _context(request, station_id))


async def _outcome(request: Request, station_id: str, command: Any, done: str, **words: Any) -> Template:
    """Await ``command``; the panel comes back with the station's answer (``done`` when accepted)."""

    def said(result: dict[str, Any]) -> tuple[bool, str]:
        if "streams" in result:
            words["count"] = len(result["streams"])
        if result["status"] == "Accepted":
            return True, gettext(done, **words)
        reason = ((result.get("response") or {}).get("statusInfo") or {}).get("reasonCode")
        if reason:
            return False, gettext("The station answered %(status)s (%(reason)s).", status=result["status"],
                                  reason=reason)
        return False, gettext("The station answered %(status)s.", status=result["status"])

    async def again(notice: str, ok: bool) -> Template:
        return await render(request, TEMPLATE, **await _context(request, station_id, notice, ok))

    return await command_outcome(request, station_id, command, said, again)


def _integer(form: FormMultiDict, name: str, low: int, high: int) -> int:
    raw = (form.get(name) or "").strip()
    try:
        value = int(raw)
    except ValueError:
        raise OperationError(N_("%(field)s is not a whole number: %(value)s"), field=name, value=repr(raw)) from None
    if not low <= value <= high:
        raise OperationError(N_("%(field)s is outside %(low)s to %(high)s: %(value)s"), field=name, low=low, high=high,
                             value=value)
    return value


def _number(form: FormMultiDict, name: str) -> float | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw.replace(",", "."))
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise OperationError(N_("%(field)s is not a number: %(value)s"), field=name, value=repr(raw))
    return value


def _transaction(form: FormMultiDict) -> str:
    transaction_id = (form.get("transaction_id") or "").strip()
    if not transaction_id:
        raise OperationError(N_("choose the transaction"))
    return transaction_id


@post("/admin/stations/{station_id:str}/energy-controls/afrr-signal", include_in_schema=False, opt=STATION)
async def energy_control_afrr(request: Request, station_id: str) -> Template:
    form = await request.form()

    async def command() -> dict[str, Any]:
        signal = _integer(form, "signal", -INT32 - 1, INT32)
        raw = (form.get("timestamp") or "").strip()
        try:
            timestamp = parse_datetime_local(raw, viewer_zone()) if raw else utcnow()
        except ValueError:
            raise OperationError(N_("%(value)s is not a date and time"), value=repr(raw)) from None
        return await get_core().energy_controls.afrr_signal(station_id, timestamp=timestamp, signal=signal,
                                                            by=await actor(request))

    return await _outcome(request, station_id, command(), N_("The station accepted the aFRR signal."))


@post("/admin/stations/{station_id:str}/energy-controls/schedule-update", include_in_schema=False, opt=STATION)
async def energy_control_schedule_update(request: Request, station_id: str) -> Template:
    form = await request.form()
    profile = (form.get("profile_id") or "").strip()

    async def command() -> dict[str, Any]:
        profile_id = _integer(form, "profile_id", 0, INT32)
        update = {ocpp: value for name, ocpp in SCHEDULE_UPDATE_FIELDS.items()
                  if (value := _number(form, name)) is not None}
        return await get_core().energy_controls.update_dynamic_schedule(
            station_id, profile_id=profile_id, update=update, by=await actor(request))

    return await _outcome(request, station_id, command(),
                          N_("The station accepted the update of charging profile %(profile)s."), profile=profile)


@post("/admin/stations/{station_id:str}/energy-controls/priority-charging", include_in_schema=False, opt=STATION)
async def energy_control_priority(request: Request, station_id: str) -> Template:
    form = await request.form()
    activate = form.get("activate") != "0"

    async def command() -> dict[str, Any]:
        return await get_core().energy_controls.use_priority_charging(
            station_id, transaction_id=_transaction(form), activate=activate, by=await actor(request))

    return await _outcome(request, station_id, command(), N_("Priority charging started.") if activate
                          else N_("Priority charging stopped."))


@post("/admin/stations/{station_id:str}/energy-controls/allowed-energy-transfer", include_in_schema=False,
      opt=STATION)
async def energy_control_allowed(request: Request, station_id: str) -> Template:
    form = await request.form()

    async def command() -> dict[str, Any]:
        transaction_id = _transaction(form)
        modes = list(dict.fromkeys(form.getall("modes", [])))
        if not modes:
            raise OperationError(N_("choose at least one energy transfer mode"))
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise OperationError(N_("%(value)s is not one of the choices"), value=repr(unknown[0]))
        return await get_core().energy_controls.notify_allowed_energy_transfer(
            station_id, transaction_id=transaction_id, modes=modes, by=await actor(request))

    return await _outcome(request, station_id, command(), N_("The station accepted the allowed energy transfer modes."))


@post("/admin/stations/{station_id:str}/energy-controls/web-payment-started", include_in_schema=False,
      opt=STATION)
async def energy_control_web_payment(request: Request, station_id: str) -> Template:
    form = await request.form()

    async def command() -> dict[str, Any]:
        evse_id = _integer(form, "evse_id", 0, INT32)
        timeout = _integer(form, "timeout", 1, 86400)
        return await get_core().energy_controls.notify_web_payment_started(
            station_id, evse_id=evse_id, timeout=timeout, by=await actor(request))

    return await _outcome(request, station_id, command(), N_("The station knows the web payment started."))


@post("/admin/stations/{station_id:str}/energy-controls/event-streams", include_in_schema=False, opt=STATION)
async def energy_control_event_streams(request: Request, station_id: str) -> Template:
    """Ask the station which periodic event streams it has open (GetPeriodicEventStream)."""
    return await _outcome(request, station_id, get_core().event_streams.refresh(
        station_id, by=await actor(request)), N_("Periodic event streams open at the station: %(count)s."))


@post("/admin/stations/{station_id:str}/energy-controls/event-streams/adjust", include_in_schema=False,
      opt=STATION)
async def energy_control_adjust_stream(request: Request, station_id: str) -> Template:
    form = await request.form()
    stream = (form.get("stream_id") or "").strip()

    async def command() -> dict[str, Any]:
        stream_id = _integer(form, "stream_id", 0, INT32)
        interval = _integer(form, "interval", 0, INT32) if (form.get("interval") or "").strip() else None
        values = _integer(form, "values", 0, INT32) if (form.get("values") or "").strip() else None
        return await get_core().event_streams.adjust(
            station_id, stream_id, interval=interval, values=values, by=await actor(request))

    return await _outcome(request, station_id, command(), N_("The station adjusted event stream %(stream)s."),
                          stream=stream)
