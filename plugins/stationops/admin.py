"""Admin pages of the stationops plugin: firmware catalogue and campaigns, diagnostics files,
health, alerts and alert rules; and panels on the station and dashboard pages.

Every change goes through the same functions as the REST API, so a page refuses exactly what
the API refuses, with the same message (shown on the page it came from).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Router, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.response import Redirect, Template
from markupsafe import Markup

from csms.plugin_api import (
    ADMIN_EXCEPTION_HANDLERS, GLOBAL_ONLY, SCOPED, N_, Site, Station, admin_guard, caller, current_user, gettext,
    notice_text, notice_url, paginate, audited, render, restrict, restrict_station_ids, run_command, tenant_scope, utcnow, visible_station_ids,
)
from plugins.stationops import alerts as al
from plugins.stationops import campaigns as cp
from plugins.stationops import diagnostics as dg
from plugins.stationops import firmware as fw
from plugins.stationops import health as hl
from plugins.stationops.config import stationops_settings
from plugins.stationops.storage import CHUNK, chunks_of, public_base_url
from plugins.stationops.tables import Alert, AlertRule, Campaign, DiagnosticsFile, DiagnosticsRequest, Firmware

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(v).strip() for k, v in form.items() if k != "_csrf_token" and not hasattr(v, "read")}


# What an action did, shown on the page it redirects to: the redirect names the notice by its key
# (``?m=rule_added``) with its parameters, and the page translates it in the viewer's language.
NOTICES = {
    "firmware_added": N_("Firmware %(version)s added."),
    "firmware_removed": N_("Firmware removed."),
    "campaign_created": N_("Campaign created."),
    "campaign_start": N_("Campaign started."),
    "campaign_pause": N_("Campaign paused."),
    "campaign_resume": N_("Campaign resumed."),
    "campaign_cancel": N_("Campaign cancelled."),
    "target_retried": N_("The station will be sent the update again."),
    "diagnostics_requested": N_("Diagnostics requested from %(station)s; the file appears here when it arrives."),
    "alert_acknowledged": N_("Alert acknowledged."),
    "rule_added": N_("Rule added."),
    "rule_enable": N_("Rule enabled."),
    "rule_disable": N_("Rule disabled."),
    "rule_delete": N_("Rule deleted."),
}


def _back(path: str, *, error: str = "", notice: str = "", **params: Any) -> Redirect:
    """Back to the page an action came from: with the key of a :data:`NOTICES` notice (and its
    parameters), or with the refusal (an ``OpsError``'s message, already in the viewer's language:
    the admin guard made it the request's before the handler ran)."""
    if error:
        return Redirect(f"{path}?{urlencode({'error': error})}", status_code=303)
    return Redirect(notice_url(path, notice, **params) if notice else path, status_code=303)


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        raise fw.OpsError(N_("%(value)s is not a whole number"), value=repr(value)) from None


def _float(value: str | None, default: float = 0.0) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        raise fw.OpsError(N_("%(value)s is not a number"), value=repr(value)) from None


def _list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").replace("\n", ",").split(",") if v.strip()]


def _messages(request: Request) -> dict[str, str]:
    return {"error": request.query_params.get("error", ""), "notice": notice_text(request, NOTICES)}


# -- firmware and campaigns ----------------------------------------------------------------------


CAMPAIGN = {"campaign_id": "campaign"}  # another organization's campaign: 404


@get("/admin/firmware", opt={"tenant": SCOPED})
async def firmware_page(request: Request) -> Template:
    try:
        base = public_base_url(request)
    except ValueError:
        base = ""
    scope = await tenant_scope(request)
    rows = await Firmware.select().order_by(Firmware.id, ascending=False)
    stations = await restrict(Station.select(Station.model, Station.firmware_version), Station.organization, scope)
    return await render(
        request, "stationops/firmware.html", title=gettext("Firmware"), firmware=[fw.firmware_json(r, base) for r in rows],
        campaigns=await cp.campaign_list(scope=scope), catalogue_editable=scope.is_global,
        sites=await restrict(Site.select(Site.id, Site.name), Site.organization, scope).order_by(Site.name),
        models=sorted({r["model"] for r in stations if r["model"]}),
        versions=sorted({r["firmware_version"] for r in stations if r["firmware_version"]}),
        **_messages(request))


@post("/admin/firmware", request_max_body_size=stationops_settings().firmware_max_mb * CHUNK + CHUNK,
      opt={"tenant": GLOBAL_ONLY})
async def firmware_add(request: Request) -> Redirect:
    form = await request.form()
    fields = {k: str(form.get(k) or "").strip() for k in ("version", "vendor", "model", "url", "signature",
                                                          "signing_certificate", "release_notes")}
    upload = form.get("file")
    has_file = upload is not None and hasattr(upload, "read") and bool(getattr(upload, "filename", ""))
    try:
        if has_file:
            url = fields.pop("url")
            if url:
                raise fw.OpsError(N_("give either a download url or a file"))
            row = await fw.create_firmware(**fields, upload_name=upload.filename, upload=chunks_of(upload))
        else:
            row = await fw.create_firmware(**fields)
    except fw.OpsError as exc:
        return _back("/admin/firmware", error=exc.message)
    await audited(request, "create", "firmware", row["id"], after=row)
    return _back("/admin/firmware", notice="firmware_added", version=fields["version"])


@post("/admin/firmware/{firmware_id:int}/delete", opt={"tenant": GLOBAL_ONLY})
async def firmware_delete(request: Request, firmware_id: int) -> Redirect:
    try:
        before = await fw.firmware_row(firmware_id)
        await fw.delete_firmware(firmware_id)
    except fw.OpsError as exc:
        return _back("/admin/firmware", error=exc.message)
    await audited(request, "delete", "firmware", firmware_id, before=before)
    return _back("/admin/firmware", notice="firmware_removed")


@post("/admin/firmware/campaigns", opt={"tenant": SCOPED})
async def campaign_create(request: Request) -> Redirect:
    form = await request.form()
    values = {k: str(v).strip() for k, v in form.items() if k != "_csrf_token"}
    selection: dict[str, Any] = {}
    sites = [int(s) for s in form.getall("sites", []) if str(s).isdigit()] if hasattr(form, "getall") else []
    if sites:
        selection["sites"] = sites
    for key in ("stations", "models", "versions"):
        if _list(values.get(key)):
            selection[key] = _list(values.get(key))
    try:
        base = public_base_url(request)
        detail = await cp.create_campaign(
            name=values.get("name", ""), firmware_id=_int(values.get("firmware_id")), selection=selection,
            base_url=base, wave_size=_int(values.get("wave_size")), concurrency=_int(values.get("concurrency"), 5),
            window_start=values.get("window_start", ""), window_end=values.get("window_end", ""),
            timezone=values.get("timezone", ""), force="force" in values, require_signed="require_signed" in values,
            max_retries=_int(values.get("max_retries"), 2), retry_delay_s=_int(values.get("retry_delay_s"), 300),
            progress_timeout_s=_int(values.get("progress_timeout_s"), 3600), start="start" in values,
            by=caller(request) or "admin", scope=await tenant_scope(request))
    except (fw.OpsError, ValueError) as exc:
        return _back("/admin/firmware", error=getattr(exc, "message", str(exc)))
    await audited(request, "create", "campaign", detail["id"], after=await cp.campaign_row(detail["id"]))
    return _back(f"/admin/firmware/campaigns/{detail['id']}", notice="campaign_created")


@get("/admin/firmware/campaigns/{campaign_id:int}", opt={"tenant": CAMPAIGN})
async def campaign_page(request: Request, campaign_id: int) -> Template:
    try:
        detail = await cp.campaign_detail(campaign_id)
    except fw.OpsError as exc:
        raise NotFoundException(exc.message) from None
    template = "stationops/_campaign_body.html" if request.query_params.get("fragment") else "stationops/campaign.html"
    return await render(request, template, title=gettext("Campaign %(name)s", name=detail["name"]), c=detail, **_messages(request))


@post("/admin/firmware/campaigns/{campaign_id:int}/{action:str}", opt={"tenant": CAMPAIGN})
async def campaign_action(request: Request, campaign_id: int, action: str) -> Redirect:
    try:
        before = await cp.campaign_row(campaign_id)
        await cp.change_campaign(campaign_id, action)
    except fw.OpsError as exc:
        return _back(f"/admin/firmware/campaigns/{campaign_id}", error=exc.message)
    await audited(request, action, "campaign", campaign_id, before=before, after=await cp.campaign_row(campaign_id))
    return _back(f"/admin/firmware/campaigns/{campaign_id}", notice=f"campaign_{action}")


@post("/admin/firmware/campaigns/{campaign_id:int}/targets/{target_id:int}/retry", opt={"tenant": CAMPAIGN})
async def campaign_retry(request: Request, campaign_id: int, target_id: int) -> Redirect:
    try:
        await cp.retry_target(campaign_id, target_id)
    except fw.OpsError as exc:
        return _back(f"/admin/firmware/campaigns/{campaign_id}", error=exc.message)
    await audited(request, "retry", "campaign", campaign_id, summary=f"target {target_id} sent again")
    return _back(f"/admin/firmware/campaigns/{campaign_id}", notice="target_retried")


# -- diagnostics ---------------------------------------------------------------------------------


@get("/admin/diagnostics", opt={"tenant": SCOPED})
async def diagnostics_page(request: Request) -> Template:
    station_id = request.query_params.get("station_id", "")
    scope = await tenant_scope(request)
    visible = await visible_station_ids(scope)
    query = restrict_station_ids(DiagnosticsRequest.select(DiagnosticsRequest.all_columns(
        exclude=[DiagnosticsRequest.token])), DiagnosticsRequest.station_id, visible)
    count = restrict_station_ids(DiagnosticsRequest.count(), DiagnosticsRequest.station_id, visible)
    if station_id:
        query = query.where(DiagnosticsRequest.station_id == station_id)
        count = count.where(DiagnosticsRequest.station_id == station_id)
    page = await paginate(request, query.order_by(DiagnosticsRequest.id, ascending=False), count)
    ids = [r["id"] for r in page.items]
    files: dict[int, list[dict[str, Any]]] = {}
    if ids:
        for f in await DiagnosticsFile.select().where(DiagnosticsFile.request.is_in(ids)).order_by(DiagnosticsFile.id):
            files.setdefault(f["request"], []).append(dg.file_json(f))
    stations = await restrict(Station.select(Station.station_id), Station.organization, scope).order_by(
        Station.station_id).limit(2000)
    return await render(request, "stationops/diagnostics.html", title=gettext("Diagnostics"), page=page, files=files,
                        station_id=station_id, stations=stations, **_messages(request))


@post("/admin/diagnostics", opt={"tenant": SCOPED})
async def diagnostics_request(request: Request) -> Redirect:
    values = await _form(request)
    station_id = values.get("station_id", "")
    back = values.get("back") or "/admin/diagnostics"
    if not back.startswith("/admin/"):
        back = "/admin/diagnostics"
    visible = await visible_station_ids(await tenant_scope(request))
    if visible is not None and station_id not in visible:
        return _back(back, error=gettext("No station %(station)s.", station=repr(station_id)))
    try:
        await run_command(dg.request_diagnostics(station_id, base_url=public_base_url(request),
                                                 by=caller(request) or "admin"))
    except HTTPException as exc:
        return _back(back, error=str(exc.detail))
    except ValueError as exc:
        return _back(back, error=str(exc))
    return _back(back, notice="diagnostics_requested", station=station_id)


# -- health --------------------------------------------------------------------------------------


def _period(request: Request) -> tuple[str, Any, Any]:
    key = request.query_params.get("period", "24h")
    span = PERIODS.get(key, PERIODS["24h"])
    end = utcnow()
    return (key if key in PERIODS else "24h"), end - span, end


@get("/admin/health", opt={"tenant": SCOPED})
async def health_page(request: Request) -> Template:
    key, start, end = _period(request)
    report = await hl.fleet_health(start, end, await visible_station_ids(await tenant_scope(request)))
    return await render(request, "stationops/health.html", title=gettext("Health"), r=report, period=key,
                        periods=list(PERIODS))


@get("/admin/health/sites/{site_id:int}", opt={"tenant": {"site_id": "site"}})
async def site_health_page(request: Request, site_id: int) -> Template:
    key, start, end = _period(request)
    report = await hl.site_health(site_id, start, end)
    if report is None:
        raise NotFoundException(gettext("No site %(site)s.", site=site_id))
    return await render(request, "stationops/health_site.html", title=gettext("Health of %(name)s", name=report["site"]["name"]),
                        r=report, period=key, periods=list(PERIODS))


@get("/admin/health/stations/{station_id:str}", opt={"tenant": {"station_id": "station"}})
async def station_health_page(request: Request, station_id: str) -> Template:
    key, start, end = _period(request)
    if not await Station.exists().where(Station.station_id == station_id):
        raise NotFoundException(gettext("No station %(station)s.", station=repr(station_id)))
    report = await hl.station_health(station_id, start, end)
    return await render(request, "stationops/health_station.html", title=gettext("Health of %(name)s", name=station_id), r=report,
                        period=key, periods=list(PERIODS))


# -- alerts --------------------------------------------------------------------------------------


@get("/admin/alerts", opt={"tenant": SCOPED})
async def alerts_page(request: Request) -> Template:
    state = request.query_params.get("status", "open")
    scope = await tenant_scope(request)
    visible = await visible_station_ids(scope)
    query = restrict_station_ids(Alert.select(), Alert.station_id, visible).where(Alert.status == state).order_by(
        Alert.id, ascending=False).output(load_json=True)
    count = restrict_station_ids(Alert.count(), Alert.station_id, visible).where(Alert.status == state)
    page = await paginate(request, query, count)
    page.items = [al.alert_json(a) for a in page.items]
    # the rules are the installation's: shown to (and changed by) global users only
    rules = [{**al.rule_json(r), "label": al.rule_label(r)} for r in await AlertRule.select().order_by(AlertRule.id)] \
        if scope.is_global else []
    return await render(request, "stationops/alerts.html", title=gettext("Alerts"), page=page, state=state, rules=rules,
                        kinds=al.RULE_KINDS, severities=al.SEVERITIES, rules_editable=scope.is_global,
                        sites=await restrict(Site.select(Site.id, Site.name), Site.organization, scope).order_by(
                            Site.name), **_messages(request))


@post("/admin/alerts/{alert_id:int}/acknowledge", opt={"tenant": {"alert_id": "alert"}})
async def alert_acknowledge(request: Request, alert_id: int) -> Redirect:
    try:
        alert = await al.acknowledge(alert_id, caller(request) or "admin")
    except fw.OpsError as exc:
        return _back("/admin/alerts", error=exc.message)
    await audited(request, "acknowledge", "alert", alert_id, summary=alert["summary"])
    return _back("/admin/alerts", notice="alert_acknowledged")


@post("/admin/alerts/rules", opt={"tenant": GLOBAL_ONLY})
async def rule_create(request: Request) -> Redirect:
    values = await _form(request)
    try:
        row = al.check_rule({"kind": values.get("kind", ""), "name": values.get("name", ""),
                             "minutes": _float(values.get("minutes")), "occurrences": _int(values.get("occurrences")),
                             "severity": values.get("severity", "warning"),
                             "site": _int(values.get("site")) if values.get("site") else None,
                             "station_id": values.get("station_id", ""), "enabled": True})
        rule = AlertRule(**row)
        await rule.save()
    except fw.OpsError as exc:
        return _back("/admin/alerts", error=exc.message)
    await audited(request, "create", "alert_rule", rule.id, after=await al.rule_row(rule.id))
    return _back("/admin/alerts", notice="rule_added")


@post("/admin/alerts/rules/{rule_id:int}/{action:str}", opt={"tenant": GLOBAL_ONLY})
async def rule_action(request: Request, rule_id: int, action: str) -> Redirect:
    if action not in ("enable", "disable", "delete"):
        raise NotFoundException(gettext("Unknown action %(action)s.", action=repr(action)))
    try:
        before = await al.rule_row(rule_id)
    except fw.OpsError as exc:
        return _back("/admin/alerts", error=exc.message)
    if action == "delete":
        await AlertRule.delete().where(AlertRule.id == rule_id)
        await audited(request, "delete", "alert_rule", rule_id, before=before)
    else:
        await AlertRule.update({AlertRule.enabled: action == "enable"}).where(AlertRule.id == rule_id)
        await audited(request, "update", "alert_rule", rule_id, before=before, after=await al.rule_row(rule_id))
    await al.evaluate()
    return _back("/admin/alerts", notice=f"rule_{action}")


# -- panels on core pages ------------------------------------------------------------------------


def _fragment(request: Any, template: str, **context: Any) -> Markup:
    """A template rendered for a panel (with ``request`` in its context, for ``csrf_token()``)."""
    engine = request.app.template_engine
    return Markup(engine.get_template(template).render(**context, request=request))


def panel(page: str, request: Any, context: dict[str, Any]) -> Any:
    """Open alerts on the dashboard; health, firmware and diagnostics on a station page."""

    async def dashboard_panel() -> list[Markup]:
        # a user of an organization sees the alerts of its stations and its own campaigns
        scope = await tenant_scope(request)
        stations = await visible_station_ids(scope)
        alerts = await restrict_station_ids(Alert.select(), Alert.station_id, stations).where(
            Alert.status == "open").order_by(Alert.id, ascending=False).limit(10)
        running = await restrict(Campaign.count(), Campaign.organization, scope).where(Campaign.status == "running")
        total = await restrict_station_ids(Alert.count(), Alert.station_id, stations).where(Alert.status == "open")
        return [_fragment(request, "admin/stationops/_dashboard_panel.html", alerts=alerts, running=running,
                          total=total)]

    async def station_panel() -> list[Markup]:
        station = context.get("station")
        if not station:
            return []
        sid = station["station_id"]
        end = utcnow()
        report = await hl.station_health(sid, end - PERIODS["24h"], end)
        files = await DiagnosticsFile.select().where(DiagnosticsFile.station_id == sid).order_by(
            DiagnosticsFile.id, ascending=False).limit(5)
        alerts = await Alert.select().where((Alert.station_id == sid) & (Alert.status == "open"))
        user = await current_user(request)
        return [_fragment(request, "admin/stationops/_station_panel.html", r=report, sid=sid, alerts=alerts,
                          files=[dg.file_json(f) for f in files], station=station,
                          can_operate=bool(user and user.can("operator")))]

    if page == "dashboard":
        return dashboard_panel
    if page == "station":
        return station_panel
    return None


# -- the router ----------------------------------------------------------------------------------






def stationops_admin_router() -> Router:
    return Router(
        path="/",
        route_handlers=[
            firmware_page, firmware_add, firmware_delete, campaign_create, campaign_page, campaign_action,
            campaign_retry, diagnostics_page, diagnostics_request, health_page, site_health_page,
            station_health_page, alerts_page, alert_acknowledge, rule_create, rule_action,
        ],
        guards=[admin_guard],
        exception_handlers=ADMIN_EXCEPTION_HANDLERS,
        include_in_schema=False,
    )

