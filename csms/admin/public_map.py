"""The public map: published sites with live availability per connector, for anyone, no login.

A site is public when it is published (its own ``publish`` flag and its organization's are on,
:mod:`csms.core.publishing`, the rule roaming follows too) and it has coordinates; of it the public sees its name, address and coordinates, and of each accepted
station on it a label and its connectors (availability, plug type, power type, power), and the
opening hours plugins give through the ``public_site_facts`` hook (the roaming plugin's OCPI
opening times). Never station ids, passwords, cards, sessions or anything of the organization
behind it.

``/map`` is the page (a Leaflet map over the vendored assets, and a list that works without
tiles or script), ``/map/sites/{id}`` one site, ``/map/stations.geojson`` the feed (one
Feature per site, its stations in the properties), with ``ETag``/``If-None-Match`` and
``Cache-Control``; ``/public/locations`` the same sites as OCPI Locations
(:mod:`csms.admin.public_locations`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from litestar import Request, Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.response import Template

from csms import i18n
from csms.admin.sites import BUSY
from csms.api.tenancy import PUBLIC
from csms.core.publishing import published_condition
from csms.core.tables import Connector, Site, Station
from csms.i18n import N_, gettext
from csms.plugins import call_hook

CACHE_CONTROL = "public, max-age=30"
PUBLIC_OPT = {"tenant": PUBLIC}

# what a driver is told about a connector: OCPP's words are the operator's
STATES = {"available": N_("Available"), "occupied": N_("In use"), "out_of_order": N_("Out of order"),
          "offline": N_("Offline"), "unknown": N_("Unknown")}  # translated where shown
PLUGS = {"IEC_62196_T2": "Type 2", "IEC_62196_T2_COMBO": "CCS (Combo 2)", "IEC_62196_T1": "Type 1",
         "IEC_62196_T1_COMBO": "CCS (Combo 1)", "CHADEMO": "CHAdeMO", "DOMESTIC_F": "Schuko (type F)",
         "TESLA_S": "Tesla", "GBT_AC": "GB/T AC", "GBT_DC": "GB/T DC", "NEMA_5_20": "NEMA 5-20",
         "NEMA_14_50": "NEMA 14-50"}
POWER_TYPES = {"AC_1_PHASE": "AC, 1 phase", "AC_2_PHASE": "AC, 2 phases", "AC_2_PHASE_SPLIT": "AC, split phase",
               "AC_3_PHASE": "AC, 3 phases", "DC": "DC"}


WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def opening_hours(hours: Any) -> list[str] | None:
    """Readable lines of an OCPI Hours object (``None``: not known)."""
    if not isinstance(hours, dict):
        return None
    if hours.get("twentyfourseven"):
        return ["Open 24/7"]
    days: dict[int, list[str]] = {}
    for period in hours.get("regular_hours") or []:
        try:
            day, text = int(period["weekday"]), f"{str(period['period_begin'])[:5]}–{str(period['period_end'])[:5]}"
            days.setdefault(day, []).append(text)
        except (KeyError, TypeError, ValueError):
            continue
    lines: list[str] = []
    run: list[int] = []  # consecutive days with the same periods share a line: "Mon–Fri 07:00–22:00"
    for day in [d for d in sorted(days) if 1 <= d <= 7] + [0]:
        if run and (day != run[-1] + 1 or days[day] != days[run[0]]):
            name = WEEKDAYS[run[0] - 1] + (f"–{WEEKDAYS[run[-1] - 1]}" if len(run) > 1 else "")
            lines.append(f"{name} {', '.join(days[run[0]])}")
            run = []
        if day:
            run.append(day)
    return lines or None


async def site_facts(site_ids: list[int]) -> dict[int, dict[str, Any]]:
    """What plugins add to the public view of these sites (first answer per key wins)."""
    facts: dict[int, dict[str, Any]] = {}
    for answer in await call_hook("public_site_facts", site_ids=site_ids):
        if isinstance(answer.value, dict):
            for site_id, values in answer.value.items():
                if site_id in site_ids and isinstance(values, dict):
                    for key, value in values.items():
                        facts.setdefault(site_id, {}).setdefault(key, value)
    return facts


def connector_state(status: str, online: bool) -> str:
    if not online:
        return "offline"
    if status == "Available":
        return "available"
    if status in BUSY:
        return "occupied"
    if status in ("Faulted", "Unavailable"):
        return "out_of_order"
    return "unknown"


async def published_data(site_id: int | None = None, *, offset: int = 0, limit: int | None = None,
                         full_address: bool = False) -> tuple[int, list[dict[str, Any]]]:
    """The published sites with coordinates (one when ``site_id`` is given; a window of them with
    ``offset``/``limit``; with ``full_address`` only those with a street, a city and a 3-letter
    country, as OCPI needs) and how many there are in all. Each site row carries its accepted
    ``stations`` (each with its stored ``connectors``) and the plugins' ``facts``: the raw form
    that the map and the public Locations feed (:mod:`csms.admin.public_locations`) each shape."""
    condition = await published_condition() & Site.latitude.is_not_null() & Site.longitude.is_not_null()
    if full_address:
        # a varchar(3) country of at least 3 characters has exactly 3
        condition = condition & (Site.address != "") & (Site.city != "") & Site.country.like("%___%")
    if site_id is not None:
        condition = condition & (Site.id == site_id)
    query = Site.select(Site.id, Site.name, Site.address, Site.postal_code, Site.city, Site.country, Site.latitude,
                        Site.longitude, Site.timezone, Site.voltage_v, Site.created_at).where(
        condition).order_by(Site.name).order_by(Site.id)
    if limit is not None:
        query = query.offset(offset).limit(limit)
    sites = await query
    total = len(sites) if limit is None else await Site.count().where(condition)
    if not sites:
        return total, []
    ids = [s["id"] for s in sites]
    stations = await Station.select(Station.id, Station.site, Station.connected, Station.max_current_a).where(
        Station.site.is_in(ids) & (Station.registration_status == "Accepted")).order_by(Station.station_id)
    connectors = await Connector.select(
        Connector.station, Connector.evse_id, Connector.connector_id, Connector.status, Connector.standard,
        Connector.power_type, Connector.max_power_w, Connector.updated_at).where(
        Connector.station.is_in([s["id"] for s in stations] or [-1])).order_by(Connector.evse_id).order_by(
        Connector.connector_id)
    facts = await site_facts(ids)
    by_station: dict[int, list[dict[str, Any]]] = {}
    for c in connectors:
        by_station.setdefault(c["station"], []).append(c)
    for site in sites:
        site["stations"] = [{**st, "connectors": by_station.get(st["id"], [])}
                            for st in stations if st["site"] == site["id"]]
        site["facts"] = facts.get(site["id"], {})
    return total, sites


async def published_sites(site_id: int | None = None) -> list[dict[str, Any]]:
    """The published sites with coordinates (one when ``site_id`` is given), each with its
    accepted stations and their connectors, in the public form only."""
    out = []
    for site in (await published_data(site_id))[1]:
        site_stations, counts = [], dict.fromkeys(STATES, 0)
        for number, st in enumerate(site["stations"], start=1):
            conns = []
            for c in st["connectors"]:
                state = connector_state(c["status"], bool(st["connected"]))
                counts[state] += 1
                conns.append({"evse": c["evse_id"], "connector": c["connector_id"], "state": state,
                              "state_label": STATES[state], "plug": PLUGS.get(c["standard"]) or None,
                              "power_type": POWER_TYPES.get(c["power_type"]) or None,
                              "max_power_kw": round(c["max_power_w"] / 1000, 1) if c["max_power_w"] else None})
            site_stations.append({"label": f"Charger {number}", "connectors": conns})
        shown = {k: site[k] for k in ("id", "name", "address", "postal_code", "city", "country", "latitude",
                                      "longitude")}
        out.append({**shown, "url": f"/map/sites/{site['id']}", "stations": site_stations,
                    "opening_hours": opening_hours(site["facts"].get("opening_times")),
                    "connectors": sum(counts.values()), **counts})
    return out


def feature(site: dict[str, Any]) -> dict[str, Any]:
    props = {k: v for k, v in site.items() if k not in ("latitude", "longitude")}
    return {"type": "Feature", "id": site["id"],
            "geometry": {"type": "Point", "coordinates": [site["longitude"], site["latitude"]]},
            "properties": props}


def _tiles(request: Request) -> dict[str, str]:
    settings = request.app.state.admin_settings
    return {"tile_url": settings.map_tile_url, "attribution": settings.map_attribution,
            "language": i18n.current_language()}


def _page_headers(request: Request) -> dict[str, str]:
    """A page in the browser's language: caches keep one copy per ``Accept-Language``."""
    return {"Cache-Control": CACHE_CONTROL, "Vary": "Accept-Language", "Content-Language": i18n.current_language()}


@get("/map", include_in_schema=False, opt=PUBLIC_OPT)
async def public_map(request: Request) -> Template:
    i18n.use_request_language(request)
    sites = await published_sites()
    return Template("public/map.html", media_type="text/html", context={
        "title": gettext("Charging stations"), "sites": sites, **_tiles(request),
        "features": {"type": "FeatureCollection", "features": [feature(s) for s in sites]}},
        headers=_page_headers(request))


@get("/map/sites/{site_id:int}", include_in_schema=False, opt=PUBLIC_OPT)
async def public_site(request: Request, site_id: int) -> Template:
    i18n.use_request_language(request)
    sites = await published_sites(site_id)
    if not sites:
        raise NotFoundException(N_("There is no such charging location."))
    site = sites[0]
    return Template("public/site.html", media_type="text/html", context={
        "title": site["name"], "site": site, **_tiles(request),
        "features": {"type": "FeatureCollection", "features": [feature(site)]}},
        headers=_page_headers(request))


@get("/map/stations.geojson", include_in_schema=False, opt=PUBLIC_OPT)
async def public_feed(request: Request) -> Response[bytes]:
    """The published sites as a GeoJSON FeatureCollection; 304 when ``If-None-Match`` matches."""
    body = json.dumps({"type": "FeatureCollection", "features": [feature(s) for s in await published_sites()]},
                      separators=(",", ":"), ensure_ascii=False).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding"}
    asked = request.headers.get("if-none-match", "")
    if etag in [t.strip().removeprefix("W/") for t in asked.split(",")] or asked.strip() == "*":
        return Response(b"", status_code=304, headers=headers)
    return Response(body, media_type="application/geo+json", headers=headers)


def not_found(request: Request, exc: Exception) -> Response[Any]:
    language = i18n.use_request_language(request)
    return Template("public/not_found.html", status_code=404, media_type="text/html",
                    context={"title": gettext("Not found"), "language": language,
                             "message": gettext(getattr(exc, "detail", "") or "Not found.")})


def public_map_router() -> Router:
    """The public map's routes: no login, no tenant, read only."""
    from csms.admin.public_locations import public_locations  # it builds on this module

    return Router(path="/", route_handlers=[public_map, public_site, public_feed, public_locations], opt=PUBLIC_OPT,
                  exception_handlers={NotFoundException: not_found}, include_in_schema=False)
