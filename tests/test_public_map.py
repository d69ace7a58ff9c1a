"""The public map and its GeoJSON feed: no login, only published sites, nothing private, ETag/304;
on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from csms.admin.public_map import opening_hours
from csms.core.tables import Connector, IdToken, Organization, Site, Station

SECRET_WORDS = ["CP-SECRET-ID", "pbkdf2", "hunter2", "Hidden depot", "Internal GmbH", "DE-CARD-0001", "DE123456789",
                "CP-PENDING", "Nowhere lane"]


async def published_world() -> dict[str, int]:
    org = Organization(name="Internal GmbH", vat_id="DE123456789")
    await org.save()
    shown = Site(name="Harbour depot", organization=org.id, address="Hafenstraße 1", postal_code="20457",
                 city="Hamburg", country="DEU", latitude=53.5461, longitude=9.9661, publish=True)
    hidden = Site(name="Hidden depot", organization=org.id, address="Nowhere lane", city="Hamburg", country="DEU",
                  latitude=53.55, longitude=9.97, publish=False)
    nowhere = Site(name="No coordinates", organization=org.id, publish=True)
    for s in (shown, hidden, nowhere):
        await s.save()
    st = Station(station_id="CP-SECRET-ID", organization=org.id, site=shown.id, connected=True,
                 password_hash="pbkdf2$hunter2", description="hunter2 in the cabinet")
    pending = Station(station_id="CP-PENDING", site=shown.id, registration_status="Pending", connected=True)
    other = Station(station_id="CP-HIDDEN", site=hidden.id, connected=True)
    for s in (st, pending, other):
        await s.save()
    await Connector.insert(
        Connector(station=st.id, evse_id=1, connector_id=1, status="Available", standard="IEC_62196_T2",
                  power_type="AC_3_PHASE", max_power_w=22000),
        Connector(station=st.id, evse_id=2, connector_id=1, status="Charging", standard="IEC_62196_T2_COMBO",
                  power_type="DC", max_power_w=150000),
        Connector(station=pending.id, evse_id=1, connector_id=1, status="Available"),
        Connector(station=other.id, evse_id=1, connector_id=1, status="Available"))
    await IdToken(id_token="DE-CARD-0001", organization=org.id).save()
    return {"shown": shown.id, "hidden": hidden.id, "nowhere": nowhere.id, "station": st.id}


async def test_feed_shows_published_sites_only_with_etag(any_server):
    ids = await published_world()
    async with httpx.AsyncClient(base_url=any_server.base_url) as anonymous:
        feed = await anonymous.get("/map/stations.geojson")
        assert feed.status_code == 200
        assert feed.headers["content-type"].startswith("application/geo+json")
        assert "max-age" in feed.headers["cache-control"] and feed.headers["etag"].startswith('"')
        body = feed.json()
        assert body["type"] == "FeatureCollection"
        assert [f["id"] for f in body["features"]] == [ids["shown"]]
        site = body["features"][0]
        assert site["geometry"] == {"type": "Point", "coordinates": [9.9661, 53.5461]}
        props = site["properties"]
        assert (props["name"], props["available"], props["occupied"], props["connectors"]) == \
            ("Harbour depot", 1, 1, 2)
        assert props["stations"] == [{"label": "Charger 1", "connectors": [
            {"evse": 1, "connector": 1, "state": "available", "state_label": "Available", "plug": "Type 2",
             "power_type": "AC, 3 phases", "max_power_kw": 22.0},
            {"evse": 2, "connector": 1, "state": "occupied", "state_label": "In use", "plug": "CCS (Combo 2)",
             "power_type": "DC", "max_power_kw": 150.0}]}]
        for word in SECRET_WORDS:
            assert word not in feed.text, word
        assert "organization" not in feed.text and "password" not in feed.text

        same = await anonymous.get("/map/stations.geojson", headers={"If-None-Match": feed.headers["etag"]})
        assert same.status_code == 304 and same.content == b""
        assert same.headers["etag"] == feed.headers["etag"] and "max-age" in same.headers["cache-control"]
        assert (await anonymous.get("/map/stations.geojson",
                                    headers={"If-None-Match": f'"x", W/{feed.headers["etag"]}'})).status_code == 304

        await Station.update({Station.connected: False}).where(Station.id == ids["station"])
        changed = await anonymous.get("/map/stations.geojson", headers={"If-None-Match": feed.headers["etag"]})
        assert changed.status_code == 200 and changed.headers["etag"] != feed.headers["etag"]
        assert changed.json()["features"][0]["properties"]["offline"] == 2


async def test_pages_need_no_login_and_hide_the_unpublished(any_server):
    ids = await published_world()
    async with httpx.AsyncClient(base_url=any_server.base_url) as anonymous:
        page = await anonymous.get("/map")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "Harbour depot" in page.text and "1 of 2" in page.text and "Type 2" in page.text
        assert "up to 150.0 kW" in page.text and "No coordinates" not in page.text
        for word in SECRET_WORDS:
            assert word not in page.text, word

        site = await anonymous.get(f"/map/sites/{ids['shown']}")
        assert site.status_code == 200 and "Harbour depot" in site.text and "Hafenstraße 1" in site.text
        for word in SECRET_WORDS:
            assert word not in site.text, word
        for missing in (ids["hidden"], ids["nowhere"], 999999):
            answer = await anonymous.get(f"/map/sites/{missing}")
            assert answer.status_code == 404, missing
            assert "Hidden depot" not in answer.text
        # writes are not a thing here, and the admin stays behind its login
        assert (await anonymous.post("/map/stations.geojson")).status_code in (403, 405)
        assert (await anonymous.get("/admin/map", follow_redirects=False)).status_code in (302, 303)


async def test_site_unpublished_later_disappears(any_server):
    ids = await published_world()
    async with httpx.AsyncClient(base_url=any_server.base_url) as anonymous:
        assert (await anonymous.get(f"/map/sites/{ids['shown']}")).status_code == 200
        await Site.update({Site.publish: False}).where(Site.id == ids["shown"])
        assert (await anonymous.get(f"/map/sites/{ids['shown']}")).status_code == 404
        assert (await anonymous.get("/map/stations.geojson")).json()["features"] == []
        assert "No charging locations are published yet." in (await anonymous.get("/map")).text


def test_opening_hours_read_as_lines():
    assert opening_hours({"twentyfourseven": True}) == ["Open 24/7"]
    week = [{"weekday": d, "period_begin": "07:00", "period_end": "22:00"} for d in range(1, 6)]
    assert opening_hours({"twentyfourseven": False, "regular_hours": week + [
        {"weekday": 6, "period_begin": "09:00", "period_end": "17:30"}]}) == ["Mon–Fri 07:00–22:00", "Sat 09:00–17:30"]
    assert opening_hours({"regular_hours": [
        {"weekday": 1, "period_begin": "07:00", "period_end": "12:00"},
        {"weekday": 1, "period_begin": "13:00", "period_end": "18:00"},
        {"weekday": 3, "period_begin": "07:00", "period_end": "12:00"}, {"weekday": 7}]}) == [
        "Mon 07:00–12:00, 13:00–18:00", "Wed 07:00–12:00"]
    assert opening_hours(None) is None and opening_hours({"twentyfourseven": False}) is None
