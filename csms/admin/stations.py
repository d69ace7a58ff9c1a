"""Station pages: the list with live status, and a station's detail, logs and actions."""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.response import Redirect, Template
from piccolo.columns.combination import Combinable

from csms.admin.actions import ACTIONS, TRIGGER_MESSAGES, Outcome, audit_summary, configuration_refused, run_action
from csms.admin.auth import actor, current_user
from csms.admin.cards import refusals
from csms.admin.forms import Field, parse
from csms.admin.plans import limit_message
from csms.admin.templating import as_datetime, is_htmx, paginate, render
from csms.api.audit import audited
from csms.api.tenancy import KINDS, MISSING, SCOPED, Scope, restrict, tenant_scope
from csms.core.runtime import get_core
from csms.i18n import N_, gettext
from csms.core.services import hubs, plans
from csms.textsearch import contains
from csms.core.tables import (
    ChargingSession,
    Command,
    ConfigurationKey,
    Connector,
    DeviceVariable,
    Evse,
    Hub,
    IdToken,
    MessageLog,
    Site,
    Station,
    StationEvent,
)

STATUS_FILTERS = [("", N_("Any status")), ("online", N_("Online")), ("offline", N_("Offline")),
                  ("faulted", N_("Faulted")), ("pending", N_("Pending approval"))]  # translated where shown
TABS = [("overview", N_("Overview")), ("configuration", N_("Configuration")), ("messages", N_("OCPP messages")),
        ("sessions", N_("Sessions")), ("events", N_("Events")), ("commands", N_("Commands"))]  # translated where shown
EVENT_CATEGORIES = ["connection", "boot", "status", "fault", "registration", "firmware", "log", "diagnostics",
                    "security", "event", "report", "monitoring", "certificate", "reservation", "charging_limit",
                    "event_stream", "der", "battery_swap", "payment", "station_cost"]


def _json(value: Any) -> Any:
    """JSON columns come back as text on SQLite."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _station_columns() -> list[Any]:
    return [Station.all_columns(exclude=[Station.password_hash, Station.pending_password_hash]),
            Station.site.name.as_alias("site_name"),
            Station.site.timezone.as_alias("site_timezone"), Station.hub.name.as_alias("hub_name")]


def _freshest_seen(row: dict[str, Any]) -> None:
    """The station's last frame as this node knows it, when newer than the stored (batched) time."""
    live = get_core().stations.last_seen(row["station_id"])
    stored = as_datetime(row["last_seen_at"])
    if live is not None and (stored is None or live > stored):
        row["last_seen_at"] = live


async def _faulted_station_ids() -> list[int]:
    ids = {r["station"] for r in await Connector.select(Connector.station).where(Connector.status == "Faulted")}
    ids |= {r["id"] for r in await Station.select(Station.id).where(Station.status == "Faulted")}
    return sorted(ids)


CONFIGURATION_ACTIONS = {"get_configuration", "set_configuration", "custom_report"}
OWN = {"tenant": SCOPED}
STATION = {"tenant": {"station_id": "station"}}


async def _filter_options(scope: Scope) -> dict[str, Any]:
    return {"sites": await restrict(Site.select(Site.id, Site.name), Site.organization, scope).order_by(Site.name),
            "hubs": await restrict(Hub.select(Hub.id, Hub.name), Hub.site.organization, scope).order_by(Hub.name)}


@get("/admin/stations", include_in_schema=False, opt=OWN)
async def station_list(request: Request) -> Template:
    params = request.query_params
    q = params.get("q", "").strip()
    status = params.get("status", "")
    scope = await tenant_scope(request)
    query = restrict(Station.select(*_station_columns()), Station.organization, scope)
    count = restrict(Station.count(), Station.organization, scope)
    conds: list[Combinable] = []
    if q:
        conds.append(contains(Station.station_id, q) | contains(Station.description, q)
                     | contains(Station.vendor, q) | contains(Station.model, q)
                     | contains(Station.serial_number, q))
    if status == "online":
        conds.append(Station.connected == True)  # noqa: E712
    elif status == "offline":
        conds.append(Station.connected == False)  # noqa: E712
    elif status == "pending":
        conds.append(Station.registration_status == "Pending")
    elif status == "faulted":
        ids = await _faulted_station_ids()
        conds.append(Station.id.is_in(ids) if ids else Station.id == -1)
    for name, column in (("site", Station.site), ("hub", Station.hub)):
        value = params.get(name, "")
        if value.isdigit():
            conds.append(column == int(value))
    for cond in conds:
        query, count = query.where(cond), count.where(cond)
    page = await paginate(request, query.order_by(Station.station_id), count)
    for row in page.items:
        _freshest_seen(row)
    ids = [s["id"] for s in page.items]
    connectors: dict[int, list[dict[str, Any]]] = {}
    if ids:
        for c in await Connector.select(Connector.station, Connector.evse_id, Connector.connector_id,
                                        Connector.status, Connector.error_code).where(
                Connector.station.is_in(ids)).order_by(Connector.evse_id).order_by(Connector.connector_id):
            connectors.setdefault(c["station"], []).append(c)
    context: dict[str, Any] = dict(page=page, connectors=connectors, q=q, status=status, status_filters=STATUS_FILTERS,
                   site=params.get("site", ""), hub=params.get("hub", ""), query_string=request.url.query)
    if is_htmx(request):
        return await render(request, "stations/_table.html", **context)
    return await render(request, "stations/list.html", title=gettext("Stations"), **context, **await _filter_options(scope))


async def station_context(station_id: str) -> dict[str, Any]:
    row = await Station.select(*_station_columns()).where(Station.station_id == station_id).first()
    if row is None:
        raise NotFoundException(gettext("There is no station %(station)s.", station=station_id))
    core = get_core()
    _freshest_seen(row)
    # "" is no password too (the column's default when a row is made without one), as at the login
    has_password = await Station.exists().where((Station.id == row["id"]) & Station.password_hash.is_not_null()
                                                & (Station.password_hash != ""))
    version = core.commands.version_of(station_id) or row["ocpp_version"]
    evses = await Evse.select().where(Evse.station == row["id"]).order_by(Evse.evse_id)
    connectors = await Connector.select().where(Connector.station == row["id"]).order_by(
        Connector.evse_id).order_by(Connector.connector_id)
    evse_ids = sorted({e["evse_id"] for e in evses} | {c["evse_id"] for c in connectors})
    evse_rows = []
    for evse_id in evse_ids:
        evse = next((e for e in evses if e["evse_id"] == evse_id), {"evse_id": evse_id, "status": "Unknown"})
        evse_rows.append({**evse, "connectors": [c for c in connectors if c["evse_id"] == evse_id]})
    active = await ChargingSession.select().where(
        (ChargingSession.station == row["id"]) & (ChargingSession.state == "active")).order_by(
        ChargingSession.started_at)
    for s in active:
        live = core.sessions.find(station_id, s["transaction_id"])
        if live is not None:  # fresher than the last batched write
            s.update(energy_wh=live.energy_wh, power_w=live.power_w)
    return {"station": row, "has_password": has_password, "online": bool(row["connected"]), "version": version,
            "evses": evse_rows, "active_sessions": active, "security_profiles": SECURITY_PROFILES}


@get("/admin/stations/{station_id:str}", include_in_schema=False, opt=STATION)
async def station_detail(request: Request, station_id: str) -> Template:
    context = await station_context(station_id)
    tab = request.query_params.get("tab", "overview")
    if tab not in dict(TABS):
        tab = "overview"
    context.update(tab=tab, tabs=TABS)
    pk = context["station"]["id"]
    params = request.query_params
    scope = await tenant_scope(request)
    if tab == "overview":
        context["tokens"] = await restrict(IdToken.select(IdToken.id_token, IdToken.label), IdToken.organization,
                                           scope).where(IdToken.status == "Accepted").order_by(IdToken.id_token).limit(500)
        context["trigger_messages"] = TRIGGER_MESSAGES.get(context["version"], TRIGGER_MESSAGES["2.0.1"])
        context["events"] = await StationEvent.select().where(StationEvent.station_id == station_id).order_by(
            StationEvent.id, ascending=False).limit(10)
        context["refusals"] = await refusals(scope, station_id=station_id, limit=10)
        context.update(await _filter_options(scope))
    elif tab == "configuration":
        q = params.get("q", "").strip()
        keys_q, keys_c = ConfigurationKey.select().where(ConfigurationKey.station == pk), \
            ConfigurationKey.count().where(ConfigurationKey.station == pk)
        vars_q, vars_c = DeviceVariable.select().where(DeviceVariable.station == pk), \
            DeviceVariable.count().where(DeviceVariable.station == pk)
        if q:
            keys_q, keys_c = keys_q.where(contains(ConfigurationKey.key, q)), \
                keys_c.where(contains(ConfigurationKey.key, q))
            cond = contains(DeviceVariable.component, q) | contains(DeviceVariable.variable, q)
            vars_q, vars_c = vars_q.where(cond), vars_c.where(cond)
        if context["version"] == "1.6" or await keys_c:
            context["keys"] = await paginate(request, keys_q.order_by(ConfigurationKey.key), keys_c, size=50)
        context["variables"] = await paginate(
            request, vars_q.order_by(DeviceVariable.component).order_by(DeviceVariable.component_instance)
            .order_by(DeviceVariable.variable).order_by(DeviceVariable.variable_instance), vars_c, size=50)
        context["q"] = q
    elif tab == "messages":
        action, direction = params.get("action", ""), params.get("direction", "")
        query = MessageLog.select().where(MessageLog.station_id == station_id)
        count = MessageLog.count().where(MessageLog.station_id == station_id)
        if action:
            query, count = query.where(MessageLog.action == action), count.where(MessageLog.action == action)
        if direction in ("in", "out"):
            query = query.where(MessageLog.direction == direction)
            count = count.where(MessageLog.direction == direction)
        await get_core().writer.flush()
        context["messages"] = await paginate(request, query.order_by(MessageLog.id, ascending=False), count, size=50)
        context["actions"] = sorted({r["action"] for r in await MessageLog.select(MessageLog.action).where(
            MessageLog.station_id == station_id).distinct() if r["action"]})
        context.update(action=action, direction=direction)
    elif tab == "sessions":
        query = ChargingSession.select().where(ChargingSession.station == pk)
        count = ChargingSession.count().where(ChargingSession.station == pk)
        context["sessions"] = await paginate(request, query.order_by(ChargingSession.started_at, ascending=False),
                                             count)
    elif tab == "events":
        category = params.get("category", "")
        query = StationEvent.select().where(StationEvent.station_id == station_id)
        count = StationEvent.count().where(StationEvent.station_id == station_id)
        if category:
            query = query.where(StationEvent.category == category)
            count = count.where(StationEvent.category == category)
        context["events_page"] = await paginate(request, query.order_by(StationEvent.id, ascending=False), count,
                                                size=50)
        context.update(category=category, categories=EVENT_CATEGORIES)
    elif tab == "commands":
        query = Command.select().where(Command.station_id == station_id)
        count = Command.count().where(Command.station_id == station_id)
        context["commands"] = await paginate(request, query.order_by(Command.id, ascending=False), count)
        for c in context["commands"].items:
            c["payload"], c["response"] = _json(c["payload"]), _json(c["response"])
    return await render(request, "stations/detail.html", title=gettext("Station %(station)s", station=station_id), panel_page="station",
                        **context)


@get("/admin/stations/{station_id:str}/live", include_in_schema=False, opt=STATION)
async def station_live(request: Request, station_id: str) -> Template:
    return await render(request, "stations/_live.html", **await station_context(station_id))


@post("/admin/stations/{station_id:str}/actions/{action:str}", include_in_schema=False, opt=STATION)
async def station_action(request: Request, station_id: str, action: str) -> Template:
    await station_context(station_id)
    if action not in ACTIONS:
        raise NotFoundException(gettext("There is no action %(action)s.", action=action))
    form = await request.form()
    outcome: Outcome = await run_action(action, station_id, form, await actor(request))
    if action == "set_configuration" and outcome.kind == "rejected":
        outcome = configuration_refused(outcome, form)
    context: dict[str, Any] = {"outcome": outcome, "action_label": ACTIONS[action][0], "station_id": station_id}
    if is_htmx(request):
        page = await render(request, "stations/_action_result.html", **context)
        if action in CONFIGURATION_ACTIONS:
            # the configuration tables load again: the keys read, or the stored value back in a
            # field whose change the station refused
            page.headers["HX-Trigger"] = "configuration-changed"
        return page
    return await render(request, "stations/action_page.html", title=gettext(ACTIONS[action][0]), **context)


@post("/admin/stations/{station_id:str}/registration", include_in_schema=False, opt=STATION)
async def station_registration(request: Request, station_id: str) -> Redirect:
    await station_context(station_id)
    form = await request.form()
    status = form.get("status", "")
    if status not in ("Accepted", "Rejected", "Pending"):
        raise NotFoundException(gettext("Unknown registration status."))
    core = get_core()
    before = (await station_context(station_id))["station"]
    await core.operations.set_registration_status(station_id, status, by=await actor(request))
    await audited(request, "update", "station", station_id, before=before,
                  after=(await station_context(station_id))["station"])
    return Redirect(f"/admin/stations/{station_id}", status_code=303)


SECURITY_PROFILES = {0: N_("none yet"), 1: N_("1 (ws + password)"), 2: N_("2 (TLS + password)"),
                     3: N_("3 (TLS + client certificate)")}  # translated where shown


@post("/admin/stations/{station_id:str}/security-profile", include_in_schema=False, opt=STATION)
async def station_security_profile(request: Request, station_id: str) -> Redirect:
    """The operator raises the station's security profile, an admin may lower it (connections only
    ever raise it)."""
    before = (await station_context(station_id))["station"]
    value = (await request.form()).get("security_profile", "")
    if value not in ("0", "1", "2", "3"):
        raise HTTPException(status_code=400, detail=gettext("Choose a security profile from 0 to 3."))
    user = await current_user(request)
    if int(value) < (before["security_profile"] or 0) and not (user and user.can("admin")):
        raise HTTPException(status_code=403, detail=gettext(
            "Lowering a station's security profile needs the admin role: a weaker profile lets anyone "
            "with its password connect as the station again."))
    await get_core().stations.set_security_profile(station_id, int(value))
    await audited(request, "update", "station", station_id, before=before,
                  after=(await station_context(station_id))["station"])
    return Redirect(f"/admin/stations/{station_id}", status_code=303)


PASSWORD_FIELDS = [Field("password", N_("New password"), "password", minlength=16, maxlength=40,
                         help=N_("16 to 40 characters (OCPP security profiles 1 and 2). Leave empty to remove it."),
                         autocomplete="new-password")]


@post("/admin/stations/{station_id:str}/password", include_in_schema=False, opt={**STATION, "role": "admin"})
async def station_password(request: Request, station_id: str) -> Template:
    await station_context(station_id)
    values, errors = parse(PASSWORD_FIELDS, await request.form())
    if not errors:
        await get_core().stations.set_password(station_id, values["password"] or None)
        await audited(request, "update", "station", station_id,
                      summary="password set" if values["password"] else "password removed")
    return await render(request, "stations/_password.html", status_code=422 if errors else 200,
                        station_id=station_id, errors=errors, saved=not errors,
                        has_password=bool(values.get("password")) if not errors else None,
                        fields=PASSWORD_FIELDS)


@post("/admin/stations/{station_id:str}/rotate-password", include_in_schema=False, opt={**STATION, "role": "admin"})
async def station_rotate_password(request: Request, station_id: str) -> Template:
    """Send the station a new random password (stored once it accepts; shown to nobody)."""
    await station_context(station_id)
    outcome = await run_action("rotate_password", station_id, {}, await actor(request))
    await audited(request, "update", "station", station_id, summary=audit_summary("rotate_password", outcome)[:255])
    context: dict[str, Any] = {"outcome": outcome, "action_label": N_("Password rotation"), "station_id": station_id}
    if is_htmx(request):
        return await render(request, "stations/_action_result.html", **context)
    return await render(request, "stations/action_page.html", title=gettext("Password rotation"), **context)


@post("/admin/stations/{station_id:str}/assign", include_in_schema=False, opt=STATION)
async def station_assign(request: Request, station_id: str) -> Redirect:
    context = await station_context(station_id)
    form = await request.form()
    values: dict[Any, Any] = {}
    scope = await tenant_scope(request)
    for name, column in (("site", Station.site), ("hub", Station.hub)):
        raw = str(form.get(name, "")).strip()
        if raw == "":
            values[column] = None
        elif raw.isdigit() and (owner := await KINDS[name](int(raw))) is not MISSING and scope.sees(owner):  # type: ignore[arg-type]
            values[column] = int(raw)
    description = str(form.get("description", context["station"]["description"]))[:200]
    values[Station.description] = description
    try:
        await hubs.update_stations(Station.station_id == station_id, values)
    except hubs.HubFull as exc:
        raise HTTPException(status_code=409, detail=gettext("The station was not changed: %(reason)s.", reason=exc)) from None
    except plans.PlanLimitReached as exc:
        raise HTTPException(status_code=409, detail=gettext("The station was not changed: %(reason)s.",
                                                            reason=limit_message(exc).rstrip("."))) from None
    await audited(request, "update", "station", station_id, before=context["station"],
                  after=(await station_context(station_id))["station"])
    return Redirect(f"/admin/stations/{station_id}", status_code=303)


NEW_STATION_FIELDS = [
    Field("station_id", N_("Station id"), required=True, maxlength=48,
          help=N_("The identity the station uses in its OCPP URL: ws(s)://host/ocpp/<station id>.")),
    Field("description", N_("Description"), maxlength=200),
    Field("password", N_("Password"), "password", minlength=16, maxlength=40, autocomplete="new-password",
          help=N_("Optional HTTP Basic password (16-40 characters) for security profiles 1 and 2.")),
]


@get("/admin/stations/new", include_in_schema=False, opt=OWN)
async def station_new(request: Request) -> Template:
    return await render(request, "form.html", title=gettext("Add a station"), fields=NEW_STATION_FIELDS, values={},
                        errors={}, action="/admin/stations/new", cancel="/admin/stations", submit=gettext("Add station"))


@post("/admin/stations/new", include_in_schema=False, opt=OWN)
async def station_create(request: Request) -> Template | Redirect:
    raw = await request.form()
    values, errors = parse(NEW_STATION_FIELDS, raw)
    sid = values.get("station_id") or ""
    if sid and await Station.exists().where(Station.station_id == sid):
        errors["station_id"] = gettext("A station with id %(station)s already exists.", station=sid)
    if sid and any(ch in sid for ch in "/?#% "):
        errors["station_id"] = gettext("A station id cannot contain spaces or %(characters)s.", characters="/ ? # %")
    if errors:
        return await render(request, "form.html", status_code=422, title=gettext("Add a station"), fields=NEW_STATION_FIELDS,
                            values=dict(raw), errors=errors, action="/admin/stations/new", cancel="/admin/stations",
                            submit=gettext("Add station"))
    try:
        await get_core().stations.create(sid, password=values["password"] or None, description=values["description"],
                                         organization=(await tenant_scope(request)).organization)
    except plans.PlanLimitReached as exc:
        return await render(request, "form.html", status_code=409, title=gettext("Add a station"),
                            fields=NEW_STATION_FIELDS, values=dict(raw), errors={"": limit_message(exc)},
                            action="/admin/stations/new", cancel="/admin/stations", submit=gettext("Add station"))
    await audited(request, "create", "station", sid, after=(await station_context(sid))["station"])
    return Redirect(f"/admin/stations/{sid}", status_code=303)
