"""Variable monitoring of a 2.0.1 station, on the station's page: a panel (through
``admin_panels``, a default plugin, see ``csms.plugins.DEFAULT_PLUGINS``) with the monitors the
CSMS knows, the latest event of each component and variable (value, trigger, severity, time),
a form to set a monitor, a button to clear each, "Ask the station" (GetMonitoringReport), and
the monitoring base and level. OCPP 1.6 stations have no monitoring and get no panel.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Template
from markupsafe import Markup

from csms.admin.auth import actor, current_user
from csms.admin.outcomes import command_outcome
from csms.admin.templating import fragment, page_panel, render
from csms.core.ocpp.validation import V16
from csms.core.runtime import get_core
from csms.core.services.commands import UnknownStation
from csms.core.services.monitoring import BASES, MONITOR_TYPES, SEVERITIES, in_words
from csms.core.services.operations import OperationError
from csms.i18n import N_, gettext
from csms.plugins import hookimpl

STATION = {"tenant": {"station_id": "station"}}
TEMPLATE = "stations/_monitoring.html"


async def _context(request: Request, station_id: str, notice: str = "", ok: bool = True,
                   reload: bool = False) -> dict[str, Any]:
    user = await current_user(request)
    try:
        listing = await get_core().monitoring.listing(station_id)
    except UnknownStation:
        raise NotFoundException(gettext("There is no station %(station)s.", station=station_id)) from None
    return {"mon": listing, "sid": station_id, "notice": notice, "ok": ok, "reload": reload,
            "can_operate": bool(user and user.can("operator")), "monitor_types": MONITOR_TYPES,
            "severities": SEVERITIES, "bases": BASES}


@hookimpl
@page_panel("station", when=lambda context: context.get("version") != V16)
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    return fragment(request, TEMPLATE, **await _context(request, station["station_id"]))


def _status_words(done: str) -> Callable[[dict[str, Any]], tuple[bool, str]]:
    def words(result: dict[str, Any]) -> tuple[bool, str]:
        if result["status"] == "Accepted":
            return True, done
        return False, gettext("The station answered %(status)s: %(reason)s.", status=result["status"],
                              reason=gettext(in_words(result["status"])))

    return words


def _results_words(verb: str) -> Callable[[dict[str, Any]], tuple[bool, str]]:
    """Each monitor's result (SetMonitoringResult / ClearMonitoringResult) in words; ``verb``
    (marked with ``N_``) says what an accepted one was."""
    def words(result: dict[str, Any]) -> tuple[bool, str]:
        lines = []
        for r in result["results"]:
            outcome = gettext(r["words"]) + (f" ({gettext(verb)})" if r.get("status") == "Accepted" else "")
            where = f"{r['component'].get('name', '')}.{r['variable'].get('name', '')}" if r.get("component") else ""
            if r.get("id") is not None:
                lines.append(gettext("Monitor %(monitor)s on %(where)s: %(outcome)s", monitor=r["id"], where=where,
                                     outcome=outcome) if where else
                             gettext("Monitor %(monitor)s: %(outcome)s", monitor=r["id"], outcome=outcome))
            else:
                lines.append(gettext("The monitor on %(where)s: %(outcome)s", where=where, outcome=outcome) if where
                             else gettext("The monitor: %(outcome)s", outcome=outcome))
        ok = bool(result["results"]) and all(r.get("status") in ("Accepted", "NotFound") for r in result["results"])
        return ok, "; ".join(lines) or gettext("The station answered without results.")

    return words


async def _panel(request: Request, station_id: str, notice: str = "", ok: bool = True,
                 reload: bool = False) -> Template:
    return await render(request, TEMPLATE, **await _context(request, station_id, notice, ok, reload))


def _again(request: Request, station_id: str, *, reload: bool = False) -> Callable[..., Awaitable[Template]]:
    async def again(notice: str, ok: bool) -> Template:
        return await _panel(request, station_id, notice, ok, reload and ok)

    return again


def _number(value: Any, what: str, *, whole: bool = False) -> Any:
    text = (value or "").strip()
    if not text:
        return None
    try:
        return int(text) if whole else float(text)
    except ValueError:
        raise OperationError(N_("%(name)s: %(value)s is not a whole number") if whole else
                             N_("%(name)s: %(value)s is not a number"), name=what, value=repr(text)) from None


@get("/admin/stations/{station_id:str}/monitoring", include_in_schema=False, opt=STATION)
async def monitoring_panel(request: Request, station_id: str) -> Template:
    """The panel alone (HTMX reloads it after asking the station)."""
    return await _panel(request, station_id)


@post("/admin/stations/{station_id:str}/monitoring", include_in_schema=False, opt=STATION)
async def monitoring_set(request: Request, station_id: str) -> Template:
    form = await request.form()

    async def command() -> dict[str, Any]:
        value, severity = _number(form.get("value"), "value"), _number(form.get("severity"), "severity", whole=True)
        if value is None or severity is None:
            raise OperationError(N_("value and severity are required"))
        return await get_core().monitoring.set(station_id, monitors=[{
            "component": form.get("component") or "", "variable": form.get("variable") or "",
            "component_instance": form.get("component_instance") or "",
            "variable_instance": form.get("variable_instance") or "",
            "evse_id": _number(form.get("evse_id"), "EVSE", whole=True), "type": form.get("type") or "",
            "value": value, "severity": severity, "transaction": bool(form.get("transaction"))}],
            by=await actor(request))

    return await command_outcome(request, station_id, command(), _results_words(N_("set")), _again(request, station_id))


@post("/admin/stations/{station_id:str}/monitoring/{monitor_id:int}/clear", include_in_schema=False, opt=STATION)
async def monitoring_clear(request: Request, station_id: str, monitor_id: int) -> Template:
    return await command_outcome(request, station_id, get_core().monitoring.clear(
        station_id, monitor_ids=[monitor_id], by=await actor(request)), _results_words(N_("cleared")),
        _again(request, station_id))


@post("/admin/stations/{station_id:str}/monitoring/report", include_in_schema=False, opt=STATION)
async def monitoring_report(request: Request, station_id: str) -> Template:
    return await command_outcome(request, station_id, get_core().monitoring.request_report(
        station_id, by=await actor(request)), _status_words(gettext("Asked the station for its monitors.")),
        _again(request, station_id, reload=True))


@post("/admin/stations/{station_id:str}/monitoring/base", include_in_schema=False, opt=STATION)
async def monitoring_base(request: Request, station_id: str) -> Template:
    form = await request.form()
    base = form.get("base") or ""
    return await command_outcome(request, station_id, get_core().monitoring.set_base(
        station_id, base=base, by=await actor(request)), _status_words(gettext("Monitoring base set to %(base)s.", base=base)),
        _again(request, station_id))


@post("/admin/stations/{station_id:str}/monitoring/level", include_in_schema=False, opt=STATION)
async def monitoring_level(request: Request, station_id: str) -> Template:
    form = await request.form()

    async def command() -> dict[str, Any]:
        severity = _number(form.get("severity"), "severity", whole=True)
        if severity is None:
            raise OperationError(N_("severity is required"))
        return await get_core().monitoring.set_level(station_id, severity=severity, by=await actor(request))

    return await command_outcome(request, station_id, command(), _status_words(
        gettext("Monitoring level set: the station reports events of this severity and more severe.")),
        _again(request, station_id))
