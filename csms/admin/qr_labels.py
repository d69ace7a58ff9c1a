"""Printable QR labels: one per EVSE, linking to the driver portal's start page of that EVSE.

``/admin/stations/{station_id}/qr`` is the sheet of one station, ``/admin/sites/{site_id}/qr``
that of every station on a site (of the caller's organizations). Each label carries a QR code
(SVG, made by ``segno``) of the absolute start URL (the ``public_url`` setting, else this
request's base), the station id, the EVSE number and the URL in text underneath; the page's
print CSS leaves only the labels on the paper. Viewers may open it (it changes nothing); the
tenant rule is that of the station and site pages.

The start URL, ``/driver/start/{station_id}/{evse_id}``, is :func:`start_path`; the driver
portal (:mod:`csms.driver.start`) answers it, for stations :func:`public_station` finds only.
A link to the sheet shows on the station's and the site's page (``admin_panels``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import segno
from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.response import Template
from markupsafe import Markup, escape

from csms.admin.templating import page_panel, render
from csms.api.links import public_base_url
from csms.api.tenancy import restrict, tenant_scope
from csms.core.publishing import published_site_ids
from csms.core.tables import Connector, Evse, Site, Station
from csms.i18n import gettext
from csms.plugins import hookimpl

STATION = {"tenant": {"station_id": "station"}}
SITE = {"tenant": {"site_id": "site"}}


def start_path(station_id: str, evse_id: int) -> str:
    """The driver portal's start page of an EVSE (the path a label's QR code holds)."""
    return f"/driver/start/{quote(station_id, safe='')}/{int(evse_id)}"


def qr_svg(url: str) -> Markup:
    """An inline SVG QR code of ``url``: no fixed size (the CSS gives it one), a quiet zone of 4
    modules, error correction of at least level M (raised when it costs no extra size)."""
    return Markup(segno.make(url, error="m", micro=False).svg_inline(scale=1, border=4, omitsize=True,
                                                                      svgclass="qr-code", lineclass=None))


async def public_station(station_id: str) -> dict[str, Any] | None:
    """The station as drivers may see it when it is public, as on the public map: accepted, on a
    site that is published and has coordinates. Its row id, id, connection and organization (for
    the audit), and of its site only what the map shows."""
    row = await Station.select(
        Station.id, Station.station_id, Station.connected, Station.organization, Station.site,
        Station.site.name.as_alias("site_name"), Station.site.address.as_alias("site_address"),
        Station.site.postal_code.as_alias("site_postal_code"), Station.site.city.as_alias("site_city"),
    ).where((Station.station_id == station_id) & (Station.registration_status == "Accepted")
            & Station.site.latitude.is_not_null() & Station.site.longitude.is_not_null()).first()
    if row is None or row["site"] not in await published_site_ids([row["site"]]):
        return None
    return row


async def station_evses(station_pks: list[int]) -> dict[int, list[int]]:
    """The EVSE numbers each station reported (as EVSEs or through its connectors), 0 left out."""
    if not station_pks:
        return {}
    found: dict[int, set[int]] = {}
    for row in [*await Evse.select(Evse.station, Evse.evse_id).where(Evse.station.is_in(station_pks)),
                *await Connector.select(Connector.station, Connector.evse_id).where(
                    Connector.station.is_in(station_pks))]:
        if row["evse_id"] and row["evse_id"] > 0:
            found.setdefault(row["station"], set()).add(row["evse_id"])
    return {pk: sorted(evses) for pk, evses in found.items()}


async def _labels(request: Request, stations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = public_base_url(request)
    evses = await station_evses([s["id"] for s in stations])
    published = {s["id"] for s in stations if await public_station(s["station_id"]) is not None}
    out = []
    for s in stations:
        labels = []
        for evse in evses.get(s["id"], []):
            url = base + start_path(s["station_id"], evse)
            labels.append({"evse": evse, "url": url, "svg": qr_svg(url)})
        out.append({**s, "labels": labels, "published": s["id"] in published})
    return out


def _page(request: Request, title: str, heading: str, stations: list[dict[str, Any]], back: str) -> Any:
    return render(request, "qr_labels.html", title=title, heading=heading, stations=stations, back=back,
                  base_url=public_base_url(request))


@get("/admin/stations/{station_id:str}/qr", include_in_schema=False, opt=STATION)
async def station_labels(request: Request, station_id: str) -> Template:
    row = await Station.select(Station.id, Station.station_id, Station.site.name.as_alias("site_name")).where(
        Station.station_id == station_id).first()
    if row is None:
        raise NotFoundException(gettext("There is no station %(station)s.", station=station_id))
    title = gettext("QR labels of %(name)s", name=station_id)
    return await _page(request, title, title,
                       await _labels(request, [row]), f"/admin/stations/{quote(station_id, safe='')}")


@get("/admin/sites/{site_id:int}/qr", include_in_schema=False, opt=SITE)
async def site_labels(request: Request, site_id: int) -> Template:
    site = await Site.select(Site.id, Site.name).where(Site.id == site_id).first()
    if site is None:
        raise NotFoundException(gettext("There is no site %(site)s.", site=site_id))
    stations = await restrict(Station.select(Station.id, Station.station_id, Station.site.name.as_alias("site_name")),
                              Station.organization, await tenant_scope(request)).where(
        Station.site == site_id).order_by(Station.station_id)
    title = gettext("QR labels of %(name)s", name=site["name"])
    return await _page(request, title, title,
                       await _labels(request, stations), f"/admin/sites/{site_id}")


@hookimpl
@page_panel("station", "site")
async def admin_panels(request: Request, station: dict[str, Any] | None = None,
                       site: dict[str, Any] | None = None) -> Markup:
    """A link to the label sheet on the station's and the site's page."""
    if station is not None:
        href = f"/admin/stations/{quote(station['station_id'], safe='')}/qr"
    else:
        assert site is not None  # page_panel passes the object of the page it is on
        href = f"/admin/sites/{int(site['id'])}/qr"
    return Markup('<article class="qr-labels-panel"><header><h2 class="h-card">{}</h2></header><p>{}</p>'
                  '<a href="{}">{}</a></article>').format(
        gettext("QR labels"), gettext("Drivers scan a label on the charger to start charging from their phone."),
        escape(href), gettext("Print QR labels →"))
