"""Station operations for an organization: its campaigns reach its own stations only, its users
see their own campaigns, diagnostics, alerts and health; the firmware catalogue and the alert
rules stay the installation's."""

from __future__ import annotations

import httpx

from csms.testing import admin_client


async def _org_with_station(srv, name: str) -> int:
    org = (await srv.api.post("/organizations", json={"name": name})).json()["id"]
    made = await srv.api.post("/stations", json={"station_id": f"{name}-ST", "organization": org})
    assert made.status_code == 201, made.text
    return org


async def test_an_organizations_campaigns_diagnostics_and_health(any_server):
    srv = any_server
    alpha = await _org_with_station(srv, "ALPHA")
    bravo = await _org_with_station(srv, "BRAVO")
    firmware = (await srv.api.post("/firmware", json={"version": "2.0", "url": "https://example.org/fw.bin"})).json()
    key = (await srv.api.post("/api-keys", json={"name": "alpha op", "role": "operator",
                                                 "organization": alpha})).json()["key"]
    async with httpx.AsyncClient(base_url=f"{srv.base_url}/api/v1", timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}) as a:
        # the catalogue is readable, not writable, by an organization's operator
        assert [f["id"] for f in (await a.get("/firmware")).json()["items"]] == [firmware["id"]]
        assert (await a.post("/firmware", json={"version": "9", "url": "https://example.org/x"})).status_code == 404
        assert (await a.delete(f"/firmware/{firmware['id']}")).status_code == 404
        # a campaign over "every station" reaches ALPHA's only, and is ALPHA's
        preview = (await a.post("/campaigns/preview", json={"firmware_id": firmware["id"]})).json()
        assert [s["station_id"] for s in preview["stations"]] == ["ALPHA-ST"]
        made = await a.post("/campaigns", json={"name": "all mine", "firmware_id": firmware["id"]})
        assert made.status_code == 201, made.text
        assert made.json()["organization"] == alpha
        assert [t["station_id"] for t in made.json()["targets"]] == ["ALPHA-ST"]
        # naming BRAVO's station reaches nothing; naming BRAVO's organization is refused
        only_bravo = await a.post("/campaigns", json={"name": "theirs", "firmware_id": firmware["id"],
                                                      "selection": {"stations": ["BRAVO-ST"]}})
        assert only_bravo.status_code == 400 and "matches no station" in only_bravo.json()["detail"]
        into_bravo = await a.post("/campaigns", json={"name": "x", "firmware_id": firmware["id"],
                                                      "organization": bravo})
        assert into_bravo.status_code == 422 and into_bravo.json()["detail"]
        # BRAVO's campaign (made by a global operator) is a 404 for ALPHA, and not listed
        theirs = (await srv.api.post("/campaigns", json={"name": "bravo", "firmware_id": firmware["id"],
                                                         "organization": bravo})).json()
        assert [t["station_id"] for t in theirs["targets"]] == ["BRAVO-ST"]
        assert (await a.get(f"/campaigns/{theirs['id']}")).status_code == 404
        assert (await a.post(f"/campaigns/{theirs['id']}/start")).status_code == 404
        assert [c["id"] for c in (await a.get("/campaigns")).json()["items"]] == [made.json()["id"]]
        assert (await srv.api.get(f"/campaigns/{theirs['id']}")).json()["status"] == "draft"
        # diagnostics of BRAVO's station: 404 as for an unknown one
        assert (await a.post("/diagnostics", json={"station_id": "BRAVO-ST"})).status_code == 404
        # health of the fleet: ALPHA's stations only; the alert rules are the installation's
        fleet = (await a.get("/health/fleet")).json()
        assert [r["station_id"] for r in fleet["station_reports"]] == ["ALPHA-ST"]
        assert (await a.get("/alert-rules")).status_code == 404
        assert (await a.post("/alerts/evaluate")).status_code == 404

    viewer = await admin_client(srv, "operator", organization=alpha, csrf_header=True)
    try:
        page = await viewer.get("/admin/firmware")
        assert page.status_code == 200 and "all mine" in page.text and "bravo" not in page.text
        assert 'action="/admin/firmware"' not in page.text  # no catalogue upload form for an organization
        assert "BRAVO" not in (await viewer.get("/admin/health")).text
        alerts = await viewer.get("/admin/alerts")
        assert alerts.status_code == 200 and "/admin/alerts/rules" not in alerts.text
        refused = await viewer.post("/admin/diagnostics", data={"station_id": "BRAVO-ST"}, follow_redirects=True)
        assert "No station" in refused.text
    finally:
        await viewer.aclose()
