"""The example plugin, tested as its author would: a real server with the plugin installed (entry
point ``fleet_limits``), stations built on the ``ocpp`` library, the admin through its login form."""

from __future__ import annotations

import httpx
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.testing import admin_browser, admin_client, running_server, screenshot
from csms.testing.stations import station
from csms_fleet_limits.plugin import fleet_settings


@pytest.fixture
async def server(tmp_path, monkeypatch):
    monkeypatch.setenv("CSMS_FLEET_LIMITS_SESSIONS_PER_DAY", "1")
    fleet_settings.cache_clear()
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        yield srv
    fleet_settings.cache_clear()


async def authorize_201(cp, token: str) -> str:
    answer = await cp.call(call201.Authorize(id_token={"idToken": token, "type": "ISO14443"}))
    return answer.id_token_info["status"]


async def test_a_fleet_card_charges_once_a_day_and_other_cards_are_left_to_the_core(server):
    async with station(server, "FLEET-CP16", "1.6") as cp16, station(server, "FLEET-CP201", "2.0.1") as cp201:
        assert await authorize_201(cp201, "FLEET-0042") == "Accepted"
        assert await authorize_201(cp201, "NOT-A-FLEET-CARD") == "Unknown"  # the core: unknown is rejected
        transaction_id = await cp16.start_session("FLEET-0042")
        assert transaction_id > 0
        assert await authorize_201(cp201, "FLEET-0042") == "NotAtThisTime"  # its one session today is used
        answer = await cp16.call(call16.Authorize(id_tag="FLEET-0042"))
        assert answer.id_tag_info["status"] == "Invalid"  # 1.6 has no NotAtThisTime
        assert await authorize_201(cp201, "FLEET-0043") == "Accepted"  # another card of the fleet
        await cp16.stop_session(transaction_id)  # a stop is never refused

    answer = await server.api.get("/fleet-limits/usage")  # srv.api: /api/v1 with an API key
    assert answer.status_code == 200, answer.text
    usage = answer.json()
    assert usage["limit"] == 1
    assert [(c["id_token"], c["sessions"], c["left"]) for c in usage["cards"]] == [("FLEET-0042", 1, 0)]


async def test_the_admin_page_and_the_rest_route_need_a_login(server):
    async with station(server, "FLEET-CP", "1.6") as cp:
        await cp.stop_session(await cp.start_session("FLEET-7"))
    async with httpx.AsyncClient(base_url=server.base_url) as nobody:
        anonymous = await nobody.get("/admin/fleet-limits")
        assert anonymous.status_code in (302, 303)  # secure by default: the plugin wrote no guard
        assert anonymous.headers["location"].startswith("/login")
        assert "FLEET-7" not in anonymous.text
        assert (await nobody.get("/api/v1/fleet-limits/usage")).status_code == 401

    viewer = await admin_client(server, "viewer")
    try:
        page = await viewer.get("/admin/fleet-limits")
        assert page.status_code == 200
        assert "<code>FLEET-7</code>" in page.text and "Fleet limits" in page.text
        home = await viewer.get("/admin/stations")
        assert 'href="/admin/fleet-limits"' in home.text  # the plugin's navigation entry
    finally:
        await viewer.aclose()


async def test_an_operator_gives_a_card_its_own_limit_through_the_form(server):
    operator = await admin_client(server, "operator")
    viewer = await admin_client(server, "viewer")
    try:
        page = await operator.get("/admin/fleet-limits")
        assert "Set a card's limit" in page.text
        token = operator.cookies["csms_csrftoken"]
        saved = await operator.post("/admin/fleet-limits/cards", data={
            "id_token": "FLEET-9", "sessions_per_day": "2", "note": "night shift", "_csrf_token": token})
        assert saved.status_code in (302, 303)
        page = await operator.get(saved.headers["location"])
        assert "FLEET-9 may start 2 sessions a day." in page.text and "night shift" in page.text

        refused = await operator.post("/admin/fleet-limits/cards", data={
            "id_token": "OTHER-1", "sessions_per_day": "2", "_csrf_token": token})
        page = await operator.get(refused.headers["location"])
        assert "Nothing changed:" in page.text and "starts with FLEET-" in page.text
        assert "OTHER-1" not in page.text
        no_csrf = await operator.post("/admin/fleet-limits/cards", data={"id_token": "FLEET-9", "sessions_per_day": "0"})
        assert no_csrf.status_code == 403  # forms are CSRF-checked as the core's are

        assert "Set a card's limit" not in (await viewer.get("/admin/fleet-limits")).text
        await viewer.get("/admin/fleet-limits")
        as_viewer = await viewer.post("/admin/fleet-limits/cards", data={
            "id_token": "FLEET-9", "sessions_per_day": "0", "_csrf_token": viewer.cookies["csms_csrftoken"]})
        assert as_viewer.status_code == 403  # POST needs the operator role
    finally:
        await operator.aclose()
        await viewer.aclose()

    async with station(server, "FLEET-CP9", "2.0.1") as cp:
        tx = await cp.start_session("FLEET-9")
        assert await authorize_201(cp, "FLEET-9") == "Accepted"  # its own limit is 2, the default 1
        await cp.stop_session(tx)


@pytest.mark.parametrize("width,height,name", [(1280, 900, "desktop"), (390, 844, "phone")])
async def test_the_page_in_chromium(server, width, height, name):
    from playwright.async_api import expect

    async with station(server, "FLEET-CPB", "1.6") as cp:
        await cp.stop_session(await cp.start_session("FLEET-21"))
    async with admin_browser(server, "operator", width=width, height=height) as page:
        await page.goto("/admin/stations")
        assert await page.locator('a[href="/admin/fleet-limits"]').count() > 0  # in the navigation
        await page.goto("/admin/fleet-limits")
        await expect(page.get_by_role("heading", name="Fleet limits")).to_be_visible()
        await expect(page.get_by_role("cell", name="FLEET-21")).to_be_visible()
        await page.get_by_label("Card").fill("NOT-FLEET")
        await page.get_by_label("Sessions per day").fill("4")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("alert")).to_contain_text("A fleet card's id starts with FLEET-")
        await page.get_by_label("Card").fill("FLEET-21")
        await page.get_by_label("Sessions per day").fill("4")
        await page.get_by_label("Note").fill("van 21")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("status")).to_contain_text("FLEET-21 may start 4 sessions a day.")
        await expect(page.get_by_role("cell", name="van 21")).to_be_visible()
        await screenshot(page, f"example-fleet-limits-{name}")
