"""``GET /public/locations`` (OCPI 2.2.1 Locations for anyone) and the organizations' publish
switch: an organization switched off disappears from the public map, its feed and the Locations,
whatever its sites' own switches say; the switch is set in the admin's organization form and over
REST. On SQLite and PostgreSQL (the column's migration on both). About 6 s."""

from __future__ import annotations

import re
from typing import Any

import httpx

from csms.core.tables import Organization, Site, Station
from csms.testing import admin_client, driver_client
from tests.test_public_map import SECRET_WORDS, published_world

OCPI_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$")
EVSE_STATUSES = {"AVAILABLE", "BLOCKED", "CHARGING", "INOPERATIVE", "OUTOFORDER", "PLANNED", "REMOVED", "RESERVED",
                 "UNKNOWN"}
POWER_TYPES = {"AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"}


def ocpi_problems(loc: dict[str, Any]) -> list[str]:
    """What an OCPI 2.2.1 Location (locations.asciidoc, "Location Object") lacks or gets wrong:
    required fields, their types, lengths and enumerations, for the Location, EVSEs and connectors."""
    problems = []

    def need(obj: dict[str, Any], path: str, field: str, kind: type, max_len: int | None = None) -> None:
        value = obj.get(field)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
            problems.append(f"{path}.{field}: {value!r} is not a {kind.__name__}")
        elif max_len is not None and (len(value) > max_len or not value):
            problems.append(f"{path}.{field}: {value!r} is empty or longer than {max_len}")

    for field, kind, max_len in (("country_code", str, 2), ("party_id", str, 3), ("id", str, 36),
                                 ("address", str, 45), ("city", str, 45), ("country", str, 3),
                                 ("time_zone", str, 255), ("last_updated", str, None), ("publish", bool, None),
                                 ("coordinates", dict, None)):
        need(loc, "location", field, kind, max_len)
    coords = loc.get("coordinates") or {}
    for axis, pattern in (("latitude", r"^-?[0-9]{1,2}\.[0-9]{5,7}$"), ("longitude", r"^-?[0-9]{1,3}\.[0-9]{5,7}$")):
        if not re.match(pattern, str(coords.get(axis))):
            problems.append(f"coordinates.{axis}: {coords.get(axis)!r}")
    for i, evse in enumerate(loc.get("evses") or []):
        path = f"evses[{i}]"
        need(evse, path, "uid", str, 36)
        need(evse, path, "last_updated", str, None)
        if evse.get("status") not in EVSE_STATUSES:
            problems.append(f"{path}.status: {evse.get('status')!r}")
        if not evse.get("connectors"):
            problems.append(f"{path}.connectors: none")
        for j, c in enumerate(evse.get("connectors") or []):
            cpath = f"{path}.connectors[{j}]"
            need(c, cpath, "id", str, 36)
            need(c, cpath, "standard", str, None)
            for field in ("max_voltage", "max_amperage"):
                need(c, cpath, field, int)
            need(c, cpath, "last_updated", str, None)
            if c.get("format") not in ("SOCKET", "CABLE") or c.get("power_type") not in POWER_TYPES:
                problems.append(f"{cpath}: format/power_type {c.get('format')!r}/{c.get('power_type')!r}")
    for stamp in [loc.get("last_updated")] + [e.get("last_updated") for e in loc.get("evses") or []]:
        if not OCPI_TS.match(str(stamp)):
            problems.append(f"timestamp {stamp!r}")
    return problems


async def test_organization_switch_hides_its_sites_from_map_feed_and_locations(any_server):
    srv = any_server
    ids = await published_world()
    org = (await Site.select(Site.organization).where(Site.id == ids["shown"]).first())["organization"]
    station_pk = ids["station"]
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=30) as anonymous:
        r = await anonymous.get("/public/locations")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json"), r.text
        body = r.json()
        assert (body["status_code"], body["status_message"]) == (1000, "Success") and OCPI_TS.match(body["timestamp"])
        assert r.headers["x-total-count"] == "1" and r.headers["x-limit"] == "100" and "link" not in r.headers
        [loc] = body["data"]
        assert ocpi_problems(loc) == [], ocpi_problems(loc)
        assert (loc["id"], loc["name"], loc["address"], loc["city"], loc["country"], loc["postal_code"]) == \
            (str(ids["shown"]), "Harbour depot", "Hafenstraße 1", "Hamburg", "DEU", "20457")
        assert (loc["country_code"], loc["party_id"], loc["publish"]) == ("NL", "CSM", True)
        assert loc["coordinates"] == {"latitude": "53.546100", "longitude": "9.966100"}
        assert [(e["uid"], e["status"]) for e in loc["evses"]] == \
            [(f"{station_pk}-1", "AVAILABLE"), (f"{station_pk}-2", "CHARGING")]  # live status; not CP-PENDING's
        ac, dc = (e["connectors"][0] for e in loc["evses"])
        assert (ac["standard"], ac["format"], ac["power_type"], ac["max_electric_power"]) == \
            ("IEC_62196_T2", "SOCKET", "AC_3_PHASE", 22000)
        assert (dc["standard"], dc["format"], dc["power_type"], dc["max_voltage"], dc["max_amperage"]) == \
            ("IEC_62196_T2_COMBO", "CABLE", "DC", 400, 375)
        for word in SECRET_WORDS:
            assert word not in r.text, word
        same = await anonymous.get("/public/locations", headers={"If-None-Match": r.headers["etag"]})
        assert same.status_code == 304 and "max-age" in same.headers["cache-control"]

        # the organization's switch, over REST: off hides the site everywhere public, its own switch still on
        patched = await srv.api.patch(f"/organizations/{org}", json={"publish": False})
        assert patched.status_code == 200 and patched.json()["publish"] is False, patched.text
        assert (await Site.select(Site.publish).where(Site.id == ids["shown"]).first())["publish"] is True
        assert (await anonymous.get("/public/locations")).json()["data"] == []
        assert (await anonymous.get("/map/stations.geojson")).json()["features"] == []
        assert (await anonymous.get(f"/map/sites/{ids['shown']}")).status_code == 404
        assert "Harbour depot" not in (await anonymous.get("/map")).text
        driver = (await srv.api.post("/drivers", json={"name": "Passer-by"})).json()["id"]
        async with await driver_client(srv, driver) as signed_in:  # the QR start page says no such charger
            assert (await signed_in.get("/driver/start/CP-SECRET-ID/1")).status_code == 404

        # and in the admin's organization form: the box, ticked again, shows the site again
        admin = await admin_client(srv, "admin")
        try:
            form = await admin.get(f"/admin/organizations/{org}/edit")
            assert form.status_code == 200 and 'name="publish"' in form.text and "Publish its sites" in form.text
            token = re.search(r'name="_csrf_token" value="([^"]+)"', form.text).group(1)
            saved = await admin.post(f"/admin/organizations/{org}/edit", data={
                "_csrf_token": token, "name": "Internal GmbH", "kind": "customer", "publish": "on"})
            assert saved.status_code == 303, saved.text
            assert (await Organization.select(Organization.publish).where(Organization.id == org).first())["publish"]
            assert [loc["id"] for loc in (await anonymous.get("/public/locations")).json()["data"]] == \
                [str(ids["shown"])]
            saved = await admin.post(f"/admin/organizations/{org}/edit", data={
                "_csrf_token": token, "name": "Internal GmbH", "kind": "customer"})  # unticked: off
            assert saved.status_code == 303, saved.text
            assert (await anonymous.get("/map/stations.geojson")).json()["features"] == []
        finally:
            await admin.aclose()


async def test_public_locations_are_paged_as_ocpi_pages(server):
    await published_world()
    for n in range(2):  # sites of no organization follow their own switch
        await Site(name=f"Depot {n}", address=f"Kade {n}", city="Utrecht", country="NLD", latitude=52.09,
                   longitude=5.12, publish=True).save()
    await Site(name="No street", city="Utrecht", country="NLD", latitude=52.1, longitude=5.1, publish=True).save()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as anonymous:
        seen, url, pages = [], "/public/locations?limit=2", 0
        while url:
            r = await anonymous.get(url)
            assert r.status_code == 200 and r.headers["x-total-count"] == "3", r.text
            seen += [loc["id"] for loc in r.json()["data"]]
            pages += 1
            link = r.headers.get("link")
            url = re.match(r'<([^>]+)>; rel="next"$', link).group(1) if link else ""
            assert not url or url.startswith(server.base_url)
        assert pages == 2 and len(seen) == len(set(seen)) == 3  # "No street" is no OCPI Location (no address)
        assert "No street" in (await anonymous.get("/map")).text  # while the map shows it
        for bad in ("limit=101", "limit=-1", "offset=-5", "offset=x"):
            r = await anonymous.get(f"/public/locations?{bad}")
            assert r.status_code == 400, (bad, r.status_code)
        await Station.update({Station.connected: False}).where(Station.station_id == "CP-SECRET-ID")
        statuses = {e["status"] for loc in (await anonymous.get("/public/locations")).json()["data"]
                    for e in loc["evses"]}
        assert statuses == {"UNKNOWN"}  # a station offline: its EVSEs' status is not known
