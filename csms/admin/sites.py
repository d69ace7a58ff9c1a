"""Sites and hubs: where stations are and what their grid connection allows, and the map."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from zoneinfo import available_timezones

from litestar import Request, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.response import Redirect, Template
from piccolo.columns.combination import Combinable

from csms.admin.forms import Field, FormErrors, as_form_values, fk, parse
from csms.admin.plans import limit_message
from csms.admin.templating import choices, paginate, render
from csms.api.audit import actor_of
from csms.api.tenancy import SCOPED, Scope, restrict, tenant_scope
from csms.core.services import hubs, plans, sites
from csms.core.services.hubs import HUB_STATION_LIMIT
from csms.core.tables import Connector, Hub, Organization, Site, Station
from csms.i18n import N_, gettext
from csms.textsearch import contains

OWN = {"tenant": SCOPED}
SITE = {"tenant": {"site_id": "site"}}
HUB = {"tenant": {"hub_id": "hub"}}
BUSY = {"Occupied", "Charging", "Preparing", "SuspendedEV", "SuspendedEVSE", "Finishing", "Reserved"}


async def site_fields(scope: Scope) -> list[Field]:
    orgs = await restrict(Organization.select(Organization.id, Organization.name), Organization.id,
                          scope).order_by(Organization.name)
    return [
        Field("name", N_("Name"), required=True, maxlength=200, group=N_("Site")),
        Field("organization", N_("Organization"), "select", choices=choices(orgs), group=N_("Site")),
        Field("address", N_("Street and number"), maxlength=300, group=N_("Address"), autocomplete="street-address"),
        Field("postal_code", N_("Postal code"), maxlength=20, group=N_("Address"), autocomplete="postal-code"),
        Field("city", N_("City"), maxlength=100, group=N_("Address"), autocomplete="address-level2"),
        Field("country", N_("Country (ISO 3166 alpha-3)"), maxlength=3, placeholder="DEU", group=N_("Address")),
        Field("timezone", N_("Time zone"), maxlength=64, placeholder="Europe/Berlin", group=N_("Address")),
        Field("latitude", N_("Latitude"), "number", min=-90, max=90, step="any", placeholder="52.5200",
              help=N_("Decimal degrees, −90 to 90."), group=N_("Coordinates")),
        Field("longitude", N_("Longitude"), "number", min=-180, max=180, step="any", placeholder="13.4050",
              help=N_("Decimal degrees, −180 to 180."), group=N_("Coordinates")),
        Field("grid_limit_l1_a", N_("Grid limit L1 (A)"), "number", min=0, max=100000, step="any", group=N_("Grid connection")),
        Field("grid_limit_l2_a", N_("Grid limit L2 (A)"), "number", min=0, max=100000, step="any", group=N_("Grid connection")),
        Field("grid_limit_l3_a", N_("Grid limit L3 (A)"), "number", min=0, max=100000, step="any", group=N_("Grid connection")),
        Field("voltage_v", N_("Voltage phase to neutral (V)"), "number", required=True, min=100, max=1000, step="any",
              group=N_("Grid connection")),
        Field("publish", N_("Show on maps and to roaming partners"), "checkbox", group=N_("Grid connection")),
    ]


def check_site(values: dict[str, Any], errors: FormErrors, scope: Scope) -> None:
    if (values.get("latitude") is None) != (values.get("longitude") is None) \
            and "latitude" not in errors and "longitude" not in errors:
        missing = "longitude" if values.get("longitude") is None else "latitude"
        errors[missing] = gettext("Give both latitude and longitude, or neither.")
    country = values.get("country") or ""
    if country and not (len(country) == 3 and country.isalpha()):
        errors["country"] = gettext("Country must be a three-letter ISO 3166 code such as DEU or FRA.")
    values["country"] = country.upper()
    tz = values.get("timezone") or "UTC"
    if tz not in available_timezones() and tz != "UTC":
        errors["timezone"] = f"“{tz}” is not a known time zone (for example Europe/Berlin)."
    values["timezone"] = tz
    values["organization"] = fk(values.get("organization"))
    if values["organization"] is None and not scope.is_global:
        values["organization"] = scope.organization
    elif not scope.sees(values["organization"]) and values["organization"] is not None:
        errors["organization"] = gettext("Choose one of your organizations.")


def _visible_stations(scope: Scope) -> Combinable | None:
    """The stations the caller may place (None: all)."""
    return None if scope.visible is None else Station.organization.is_in(sorted(scope.visible))


@get("/admin/sites", include_in_schema=False, opt=OWN)
async def site_list(request: Request) -> Template:
    q = request.query_params.get("q", "").strip()
    scope = await tenant_scope(request)
    query = restrict(Site.select(*Site.all_columns(), Site.organization.name.as_alias("organization_name")),
                     Site.organization, scope)
    count = restrict(Site.count(), Site.organization, scope)
    if q:
        cond = contains(Site.name, q) | contains(Site.city, q) | contains(Site.address, q)
        query, count = query.where(cond), count.where(cond)
    page = await paginate(request, query.order_by(Site.name), count)
    availability = await site_availability()
    hubs = await restrict(Hub.select(*Hub.all_columns(), Hub.site.name.as_alias("site_name")),
                          Hub.site.organization, scope).order_by(Hub.name)
    return await render(request, "sites/list.html", title=gettext("Sites and hubs"), page=page, q=q,
                        availability=availability, hubs=hubs)


async def site_availability() -> dict[int, dict[str, int]]:
    """Per site: connectors available, busy, faulted, offline and the stations on it."""
    out: dict[int, dict[str, int]] = defaultdict(lambda: {"available": 0, "busy": 0, "faulted": 0, "offline": 0,
                                                          "other": 0, "total": 0, "stations": 0})
    for s in await Station.select(Station.site).where(Station.site.is_not_null()):
        out[s["site"]]["stations"] += 1
    rows = await Connector.select(Connector.status, Connector.station.site.as_alias("site"),
                                  Connector.station.connected.as_alias("online")).where(
        Connector.station.site.is_not_null())
    for r in rows:
        counts = out[r["site"]]
        counts["total"] += 1
        if not r["online"]:
            counts["offline"] += 1
        elif r["status"] == "Available":
            counts["available"] += 1
        elif r["status"] in BUSY:
            counts["busy"] += 1
        elif r["status"] == "Faulted":
            counts["faulted"] += 1
        else:
            counts["other"] += 1
    return dict(out)


async def _site_form(request: Request, *, site_id: int | None, values: dict[str, Any], errors: FormErrors,
                     status_code: int = 200) -> Template:
    title = gettext("New site") if site_id is None else gettext("Edit site %(site)s", site=values.get("name", ""))
    action = "/admin/sites/new" if site_id is None else f"/admin/sites/{site_id}/edit"
    cancel = "/admin/sites" if site_id is None else f"/admin/sites/{site_id}"
    return await render(request, "form.html", status_code=status_code, title=title,
                        fields=await site_fields(await tenant_scope(request)),
                        values=values, errors=errors, action=action, cancel=cancel, submit=gettext("Save site"))


@get("/admin/sites/new", include_in_schema=False, opt=OWN)
async def site_new(request: Request) -> Template:
    return await _site_form(request, site_id=None, values={"voltage_v": "230", "timezone": "UTC", "publish": True},
                            errors=FormErrors())


async def _save_site(request: Request, site_id: int | None) -> Template | Redirect:
    raw = await request.form()
    scope = await tenant_scope(request)
    fields = await site_fields(scope)
    values, errors = parse(fields, raw)
    check_site(values, errors, scope)
    if errors:
        form_values = {k: raw.get(k, "") for k in raw}
        form_values["publish"] = values.get("publish", False)
        return await _site_form(request, site_id=site_id, values=form_values, errors=errors, status_code=422)
    actor, actor_organization = await actor_of(request)
    if site_id is None:
        site_id = await sites.create_site(values, actor=actor, actor_organization=actor_organization)
    else:
        try:
            await sites.update_site(site_id, values, actor=actor, actor_organization=actor_organization)
        except plans.PlanLimitReached as exc:
            errors[""] = limit_message(exc)
            form_values = {k: raw.get(k, "") for k in raw}
            form_values["publish"] = values.get("publish", False)
            return await _site_form(request, site_id=site_id, values=form_values, errors=errors, status_code=409)
    return Redirect(f"/admin/sites/{site_id}", status_code=303)


@post("/admin/sites/new", include_in_schema=False, opt=OWN)
async def site_create(request: Request) -> Template | Redirect:
    return await _save_site(request, None)


async def _site_row(site_id: int) -> dict[str, Any]:
    row = await Site.select(*Site.all_columns(), Site.organization.name.as_alias("organization_name")).where(
        Site.id == site_id).first()
    if row is None:
        raise NotFoundException(gettext("There is no site %(site)s.", site=site_id))
    return row


@get("/admin/sites/{site_id:int}/edit", include_in_schema=False, opt=SITE)
async def site_edit(request: Request, site_id: int) -> Template:
    row = await _site_row(site_id)
    return await _site_form(request, site_id=site_id,
                            values=as_form_values(await site_fields(await tenant_scope(request)), row),
                            errors=FormErrors())


@post("/admin/sites/{site_id:int}/edit", include_in_schema=False, opt=SITE)
async def site_update(request: Request, site_id: int) -> Template | Redirect:
    await _site_row(site_id)
    return await _save_site(request, site_id)


@get("/admin/sites/{site_id:int}", include_in_schema=False, opt=SITE)
async def site_detail(request: Request, site_id: int) -> Template:
    site = await _site_row(site_id)
    stations = await Station.select(Station.id, Station.station_id, Station.description, Station.connected,
                                    Station.status, Station.hub.name.as_alias("hub_name")).where(
        Station.site == site_id).order_by(Station.station_id)
    unassigned = await restrict(Station.select(Station.station_id, Station.site.name.as_alias("site_name")),
                                Station.organization, await tenant_scope(request)).where(
        (Station.site != site_id) | Station.site.is_null()).order_by(Station.station_id).limit(1000)
    hubs = await Hub.select().where(Hub.site == site_id).order_by(Hub.name)
    return await render(request, "sites/detail.html", title=gettext("Site %(site)s", site=site["name"]), panel_page="site", site=site,
                        stations=stations, unassigned=unassigned, hubs=hubs,
                        availability=(await site_availability()).get(site_id))


@post("/admin/sites/{site_id:int}/stations", include_in_schema=False, opt=SITE)
async def site_assign(request: Request, site_id: int) -> Redirect:
    await _site_row(site_id)
    form = await request.form()
    add = [s for s in form.getall("add", []) if s]
    actor, actor_organization = await actor_of(request)
    if add:
        scope = await tenant_scope(request)
        try:
            await sites.add_stations(site_id, add, allowed=_visible_stations(scope), actor=actor,
                                     actor_organization=actor_organization)
        except plans.PlanLimitReached as exc:
            raise HTTPException(status_code=409, detail=gettext("The stations were not added: %(reason)s.",
                                                                reason=limit_message(exc).rstrip("."))) from None
    remove = str(form.get("remove", ""))
    if remove:
        await sites.remove_station(site_id, remove, actor=actor, actor_organization=actor_organization)
    return Redirect(f"/admin/sites/{site_id}", status_code=303)


@post("/admin/sites/{site_id:int}/delete", include_in_schema=False, opt=SITE)
async def site_delete(request: Request, site_id: int) -> Redirect:
    await _site_row(site_id)
    actor, actor_organization = await actor_of(request)
    await sites.delete_site(site_id, actor=actor, actor_organization=actor_organization)
    return Redirect("/admin/sites", status_code=303)


# -- hubs --------------------------------------------------------------------------------------

async def hub_fields(scope: Scope, hub_id: int | None = None) -> list[Field]:
    sites = await restrict(Site.select(Site.id, Site.name), Site.organization, scope).order_by(Site.name)
    members = [] if hub_id is None else await Station.select(Station.station_id).where(
        Station.hub == hub_id).order_by(Station.station_id)
    fields = [
        Field("name", N_("Name"), required=True, maxlength=200),
        Field("site", N_("Site"), "select", choices=choices(sites)),
        Field("device_id", N_("Communication device"), maxlength=100, help=N_("Gateway or router the stations share.")),
        Field("max_stations", N_("Maximum stations"), "integer", required=True, min=1, max=HUB_STATION_LIMIT,
              help=gettext("A hub has at most %(count)s stations.", count=HUB_STATION_LIMIT)),
        Field("limit_l1_a", N_("Limit L1 (A)"), "number", min=0, max=100000, step="any"),
        Field("limit_l2_a", N_("Limit L2 (A)"), "number", min=0, max=100000, step="any"),
        Field("limit_l3_a", N_("Limit L3 (A)"), "number", min=0, max=100000, step="any"),
    ]
    if hub_id is not None:  # a new hub has no stations to choose from yet
        fields.append(Field(
            "local_controller", N_("Local controller"), "select",
            choices=[(m["station_id"], m["station_id"]) for m in members], blank_label=gettext("None"),
            help=N_("One of the hub's stations that balances the others itself (OCPP local smart charging): "
                    "smart charging sends it the hub's limit and no profiles to the other stations.")))
    return fields


async def _hub_form(request: Request, *, hub_id: int | None, values: dict[str, Any], errors: FormErrors,
                    status_code: int = 200, chosen: list[str] | None = None) -> Template:
    """The hub form; ``chosen``: the stations ticked in a submitted form shown again (else the hub's)."""
    stations = []
    scope = await tenant_scope(request)
    if hub_id is not None:
        stations = await restrict(Station.select(Station.station_id, Station.hub), Station.organization,
                                  scope).order_by(Station.station_id).limit(1000)
    return await render(request, "hub_form.html", status_code=status_code,
                        title=gettext("New hub") if hub_id is None else gettext("Edit hub %(hub)s", hub=values.get("name", "")),
                        fields=await hub_fields(scope, hub_id), values=values, errors=errors, hub_id=hub_id, stations=stations,
                        chosen=chosen,
                        action="/admin/hubs/new" if hub_id is None else f"/admin/hubs/{hub_id}/edit",
                        cancel="/admin/sites", submit=gettext("Save hub"))


@get("/admin/hubs/new", include_in_schema=False, opt=OWN)
async def hub_new(request: Request) -> Template:
    site = request.query_params.get("site", "")
    return await _hub_form(request, hub_id=None, values={"max_stations": "20", "site": site}, errors=FormErrors())


async def _save_hub(request: Request, hub_id: int | None) -> Template | Redirect:
    raw = await request.form()
    scope = await tenant_scope(request)
    values, errors = parse(await hub_fields(scope, hub_id), raw)
    values["site"] = fk(values.get("site"))
    if "local_controller" in values:
        values["local_controller"] = values["local_controller"] or ""
    if not scope.is_global and (values["site"] is None or not await restrict(
            Site.exists().where(Site.id == values["site"]), Site.organization, scope)):
        errors["site"] = gettext("Choose one of your sites.")
    members = [s for s in raw.getall("stations", []) if s]
    if hub_id is not None and not errors and values.get("max_stations") and len(members) > values["max_stations"]:
        errors["stations"] = f"The hub takes at most {values['max_stations']} stations; {len(members)} are selected."

    async def again(status_code: int) -> Template:  # the form as it was submitted, with its errors
        return await _hub_form(request, hub_id=hub_id, values={k: raw.get(k, "") for k in raw}, errors=errors,
                               chosen=members, status_code=status_code)

    if errors:
        return await again(422)
    actor, actor_organization = await actor_of(request)
    if hub_id is None:
        try:
            hub_id = await sites.create_hub(values, actor=actor, actor_organization=actor_organization)
        except plans.PlanLimitReached as exc:
            errors["site"] = limit_message(exc)
            return await again(409)
    else:
        try:
            await sites.update_hub(hub_id, values, members, allowed=_visible_stations(scope), actor=actor,
                                   actor_organization=actor_organization)
        except hubs.LocalControllerInvalid:
            errors["local_controller"] = gettext("The local controller must be one of the hub's stations.")
            return await again(422)
        except hubs.HubFull as exc:
            errors["stations"] = f"{str(exc)[0].upper()}{str(exc)[1:]}. Nothing was saved."
            return await again(409)
        except plans.PlanLimitReached as exc:
            errors["site"] = limit_message(exc)
            return await again(409)
    return Redirect(f"/admin/sites/{values['site']}" if values["site"] else "/admin/sites", status_code=303)


@post("/admin/hubs/new", include_in_schema=False, opt=OWN)
async def hub_create(request: Request) -> Template | Redirect:
    return await _save_hub(request, None)


@get("/admin/hubs/{hub_id:int}/edit", include_in_schema=False, opt=HUB)
async def hub_edit(request: Request, hub_id: int) -> Template:
    row = await Hub.select().where(Hub.id == hub_id).first()
    if row is None:
        raise NotFoundException(gettext("There is no hub %(hub)s.", hub=hub_id))
    return await _hub_form(request, hub_id=hub_id, values=as_form_values(
        await hub_fields(await tenant_scope(request), hub_id), row), errors=FormErrors())


@post("/admin/hubs/{hub_id:int}/edit", include_in_schema=False, opt=HUB)
async def hub_update(request: Request, hub_id: int) -> Template | Redirect:
    if not await Hub.exists().where(Hub.id == hub_id):
        raise NotFoundException(gettext("There is no hub %(hub)s.", hub=hub_id))
    return await _save_hub(request, hub_id)


# -- map ---------------------------------------------------------------------------------------

async def map_sites(scope: Scope) -> list[dict[str, Any]]:
    availability = await site_availability()
    rows = await restrict(Site.select(Site.id, Site.name, Site.address, Site.city, Site.latitude, Site.longitude),
                          Site.organization, scope).order_by(Site.name)
    empty = {"available": 0, "busy": 0, "faulted": 0, "offline": 0, "other": 0, "total": 0, "stations": 0}
    return [{**r, **availability.get(r["id"], empty)} for r in rows]


@get("/admin/map", include_in_schema=False, opt=OWN)
async def site_map(request: Request) -> Template:
    settings = request.app.state.admin_settings
    return await render(request, "sites/map.html", title=gettext("Map"), sites=await map_sites(await tenant_scope(request)),
                        tile_url=settings.map_tile_url, attribution=settings.map_attribution)


@get("/admin/map/sites.json", include_in_schema=False, opt=OWN)
async def site_map_data(request: Request) -> list[dict[str, Any]]:
    return await map_sites(await tenant_scope(request))
