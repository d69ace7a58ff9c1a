"""The opening times set for OCPI appear on the public map (the ``public_site_facts`` hook)."""

from __future__ import annotations

import httpx

from plugins.roaming_ocpi.tests.conftest import CPO_ENV, ocpi_server


async def test_public_map_shows_the_opening_times(tmp_path):
    async with ocpi_server(tmp_path, CPO_ENV) as server:
        made = [await server.api.post("/sites", json=body) for body in (
            {"name": "Depot", "address": "Kade 1", "city": "Utrecht", "country": "NLD", "latitude": 52.09,
             "longitude": 5.12, "publish": True},
            {"name": "Hidden", "latitude": 52.1, "longitude": 5.1, "publish": False})]
        assert [m.status_code for m in made] == [201, 201], [m.text for m in made]
        site, hidden = (m.json()["id"] for m in made)
        async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
            assert "Open 24/7" not in (await anonymous.get(f"/map/sites/{site}")).text  # nothing set: not shown
            hours = {"twentyfourseven": False,
                     "regular_hours": [{"weekday": d, "period_begin": "07:00", "period_end": "22:00"}
                                       for d in range(1, 6)]}
            for s in (site, hidden):
                r = await server.api.put(f"/roaming/sites/{s}", json={"opening_times": hours})
                assert r.status_code == 200, r.text
            page = await anonymous.get(f"/map/sites/{site}")
            assert page.status_code == 200 and "Mon–Fri 07:00–22:00" in page.text
            assert "Mon–Fri 07:00–22:00" in (await anonymous.get("/map")).text
            feed = (await anonymous.get("/map/stations.geojson")).json()
            assert [f["properties"]["opening_hours"] for f in feed["features"]] == [["Mon–Fri 07:00–22:00"]]
            assert (await anonymous.get(f"/map/sites/{hidden}")).status_code == 404
