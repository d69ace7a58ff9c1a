"""Issue 15, walked in Chromium: refused cards are visible (station page, card page, the list of
unknown tokens, turned into a card), "last seen" follows every frame live, and OCPP 1.6
configuration shows what was read and puts a refused value back."""

from __future__ import annotations

import asyncio
import re

from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from playwright.async_api import expect

from csms.core.tables import IdToken
from csms.testing import admin_browser, admin_client
from tests.admin.conftest import login, screenshot
from tests.admin.station import online_station
from tests.stations import Station16, connect

PHONE = {"width": 390, "height": 844}


async def authorize(station, token: str) -> str:
    answer = await station.call(call201.Authorize(id_token={"id_token": token, "type": "ISO14443"}))
    return answer.id_token_info["status"]


async def test_refused_cards_on_the_station_and_card_pages(page_as, server, browser):
    made = await server.api.post("/tokens", json={"id_token": "BLOCK-1", "status": "Blocked", "label": "lost card"})
    assert made.status_code == 201, made.text
    async with online_station(server.ws_url("CP-AUTH"), "CP-AUTH") as station:
        assert await authorize(station, "DEADBEEF") == "Unknown"
        assert await authorize(station, "BLOCK-1") == "Blocked"
        page = await page_as("operator")
        await page.goto("/admin/stations/CP-AUTH")
        panel = page.locator("#station-refusals")
        await expect(panel).to_contain_text("Refused authorizations (2)")
        await expect(panel.locator("tr[data-refused-token='DEADBEEF']")).to_contain_text("Unknown")
        await expect(panel.locator("tr[data-refused-token='BLOCK-1']")).to_contain_text("Blocked")
        await expect(page.locator("body[data-live='open']")).to_have_count(1)
        # a refusal while the page is open appears live
        assert await authorize(station, "DEADBEEF") == "Unknown"
        await expect(panel).to_contain_text("Refused authorizations (3)")
        await expect(panel.locator("tr[data-refused-token='DEADBEEF']")).to_have_count(2)

        # ... also one that comes while the panel's own refresh is on its way (as on a loaded
        # machine): that refresh shows the data read before it, and the refusal's update, which
        # htmx queues on the panel its answer replaces, is not lost
        held: list[str] = []

        async def slow_answer(route):
            answer = await route.fetch()  # read before the refusal below
            held.append(route.request.url)
            await asyncio.sleep(1.5)
            await route.fulfill(response=answer)

        await page.route(lambda url: url.endswith("/admin/stations/CP-AUTH"), slow_answer)
        await page.evaluate("htmx.trigger(document.body, 'live-refresh')")
        for _ in range(100):
            if held:
                break
            await asyncio.sleep(0.05)
        assert held, "the panel's refresh did not go out"
        assert await authorize(station, "DEADBEEF") == "Unknown"
        await expect(panel).to_contain_text("Refused authorizations (4)", timeout=10_000)
        await page.unroute("**/*")
        await expect(panel.locator("tr[data-refused-token='DEADBEEF']")).to_have_count(3)
        await screenshot(page, "issue15-station-refusals")
        phone = await login(browser, server.base_url, "operator", **PHONE)
        await phone.goto("/admin/stations/CP-AUTH")
        await expect(phone.locator("#station-refusals")).to_contain_text("DEADBEEF")
        await phone.locator("#station-refusals").scroll_into_view_if_needed()
        await screenshot(phone, "issue15-station-refusals-phone")

        # the known card: its page lists its refusals
        await panel.locator("tr[data-refused-token='BLOCK-1']").get_by_role("link", name="card").click()
        await expect(page.locator("#token-refusals")).to_contain_text("Refused authorizations (1)")
        await expect(page.locator("#token-refusals")).to_contain_text("CP-AUTH")
        await screenshot(page, "issue15-card-refusals")

        # the unknown token: listed from the cards page, and made a card from there
        await page.goto("/admin/tokens")
        await page.get_by_role("button", name="Refused unknown tokens").click()
        row = page.locator("#refused-tokens tr[data-refused-token='DEADBEEF']")
        await expect(row.locator("td.num")).to_have_text("3")
        await expect(row).to_contain_text("CP-AUTH")
        await expect(page.locator("#refused-tokens tr[data-refused-token='BLOCK-1']")).to_have_count(0)
        await screenshot(page, "issue15-refused-tokens")
        await phone.goto("/admin/tokens/refused")
        await expect(phone.locator("#refused-tokens")).to_contain_text("DEADBEEF")
        await screenshot(phone, "issue15-refused-tokens-phone")
        await row.get_by_role("button", name="Add DEADBEEF as a card").click()
        await expect(page.get_by_label("Id token")).to_have_value("DEADBEEF")
        await expect(page.get_by_label("Type")).to_have_value("ISO14443")
        await page.get_by_role("button", name="Save token").click()
        await expect(page.locator("#tokens")).to_contain_text("DEADBEEF")
        assert await IdToken.exists().where(IdToken.id_token == "DEADBEEF")
        assert await authorize(station, "DEADBEEF") == "Accepted"
        await page.goto("/admin/tokens/refused")
        await expect(page.locator("#refused-tokens")).to_have_count(0)
        await expect(page.get_by_text("No unknown token was refused")).to_be_visible()


async def test_an_organization_sees_the_refusals_of_its_own_stations_only(server):
    orgs = {}
    for name in ("ALPHA", "BRAVO"):
        orgs[name] = (await server.api.post("/organizations", json={"name": name})).json()["id"]
        made = await server.api.post("/stations", json={"station_id": f"{name}-ST", "organization": orgs[name]})
        assert made.status_code == 201, made.text
    card = (await server.api.post("/tokens", json={"id_token": "SHARED-1", "status": "Blocked",
                                                   "organization": orgs["ALPHA"]})).json()
    for name in ("ALPHA", "BRAVO"):
        async with online_station(server.ws_url(f"{name}-ST"), f"{name}-ST") as station:
            assert await authorize(station, f"{name}-UNKNOWN") == "Unknown"
            assert await authorize(station, "SHARED-1") == "Blocked"
    alpha = await admin_client(server, "operator", organization=orgs["ALPHA"])
    try:
        listed = (await alpha.get("/admin/tokens/refused")).text
        assert "ALPHA-UNKNOWN" in listed and "BRAVO" not in listed
        station = (await alpha.get("/admin/stations/ALPHA-ST")).text
        assert "ALPHA-UNKNOWN" in station and "BRAVO" not in station
        assert (await alpha.get("/admin/stations/BRAVO-ST")).status_code == 404
        card_page = (await alpha.get(f"/admin/tokens/{card['id']}/edit")).text
        assert "Refused authorizations (1)" in card_page and "ALPHA-ST" in card_page and "BRAVO-ST" not in card_page
    finally:
        await alpha.aclose()
    everyone = await admin_client(server, "operator")
    try:
        listed = (await everyone.get("/admin/tokens/refused")).text
        assert "ALPHA-UNKNOWN" in listed and "BRAVO-UNKNOWN" in listed
        assert "Refused authorizations (2)" in (await everyone.get(f"/admin/tokens/{card['id']}/edit")).text
    finally:
        await everyone.aclose()


SECONDS_AGO = re.compile(r"^(\d+) s ago$")


async def seconds_ago(locator) -> int:
    text = (await locator.text_content() or "").strip()
    found = SECONDS_AGO.match(text)
    return int(found.group(1)) if found else 10**6


async def test_last_seen_follows_every_frame_live(page_as, server, browser):
    async with online_station(server.ws_url("CP-SEEN"), "CP-SEEN") as station:
        page = await page_as("operator")
        await page.goto("/admin/stations")
        seen = page.locator("tr[data-station='CP-SEEN'] time[data-seen]")
        detail = await login(browser, server.base_url, "operator", **PHONE)
        await detail.goto("/admin/stations/CP-SEEN")
        detail_seen = detail.locator("#station-last-seen time[data-seen]")
        # the words age by themselves ...
        await page.wait_for_function(
            "() => /^([4-9]|\\d\\d) s ago$/.test(document.querySelector(\"tr[data-station='CP-SEEN'] time\").textContent)")
        await expect(detail_seen).to_have_text(re.compile(r"^([4-9]|\d\d) s ago$"))
        # ... and a heartbeat (no event, no page reload) or an answer to a call of ours brings them back
        await station.call(call201.Heartbeat())
        await expect(seen).to_have_text(re.compile(r"^[0-2] s ago$"))
        await expect(detail_seen).to_have_text(re.compile(r"^[0-2] s ago$"))
        await screenshot(page, "issue15-stations-last-seen")
        await screenshot(detail, "issue15-station-last-seen-phone")
        await page.wait_for_function(
            "() => /^([4-9]|\\d\\d) s ago$/.test(document.querySelector(\"tr[data-station='CP-SEEN'] time\").textContent)")
        cleared = await server.core.operations.clear_cache("CP-SEEN")  # the station's CALLRESULT is a frame
        assert cleared["status"] == "Accepted"
        await expect(seen).to_have_text(re.compile(r"^[0-2] s ago$"))
        assert await seconds_ago(seen) <= 2


class PickyStation16(Station16):
    """Takes HeartbeatInterval as a number of seconds, and refuses anything else."""

    values = {"HeartbeatInterval": "300", "NumberOfConnectors": "2"}

    @on(Action16.get_configuration)
    async def on_get_configuration(self, **kwargs):
        return result16.GetConfiguration(configuration_key=[
            {"key": "HeartbeatInterval", "readonly": False, "value": self.values["HeartbeatInterval"]},
            {"key": "NumberOfConnectors", "readonly": True, "value": self.values["NumberOfConnectors"]},
        ])

    @on(Action16.change_configuration)
    async def on_change_configuration(self, key, value, **kwargs):
        if key != "HeartbeatInterval" or not value.isdigit():
            return result16.ChangeConfiguration(status="Rejected")
        self.values = {**self.values, key: value}
        return result16.ChangeConfiguration(status="Accepted")


async def test_16_configuration_read_and_refused_change(server):
    import tests.stations as stations

    original, stations.Station16 = stations.Station16, PickyStation16  # connect() builds this class
    try:
        async with connect(server.ws_url("CP16-CFG"), "CP16-CFG", version="1.6") as cp:
            await cp.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="Picky"))
            for width, name in ((1280, "issue15-configuration-16"), (390, "issue15-configuration-16-phone")):
                async with admin_browser(server, "operator", width=width, height=900 if width > 400 else 844) as page:
                    await page.goto("/admin/stations/CP16-CFG?tab=configuration")
                    result = page.locator("#action-result .outcome")
                    if width > 400:  # the phone pass finds the keys stored by this one
                        await expect(page.get_by_text("No keys known yet")).to_be_visible()
                        await page.get_by_role("button", name="Read from station").click()
                        await expect(result).to_have_attribute("data-outcome", "ok")
                    table = page.locator("#configuration-keys")
                    await expect(table).to_contain_text("HeartbeatInterval")  # no reload
                    await expect(table).to_contain_text("NumberOfConnectors")
                    field = page.get_by_label("Value of HeartbeatInterval")
                    stored = "300" if width > 400 else "120"  # the desktop pass changes it to 120
                    await expect(field).to_have_value(stored)
                    await field.fill("five minutes")
                    await field.locator("xpath=..").get_by_role("button", name="Change").click()
                    await expect(result).to_have_attribute("data-outcome", "rejected")
                    await expect(result).to_contain_text("The station refused HeartbeatInterval = “five minutes”")
                    await expect(result).to_contain_text("keeps its stored value")
                    await expect(page.get_by_label("Value of HeartbeatInterval")).to_have_value(stored)
                    await screenshot(page, name)
                    if width > 400:
                        field = page.get_by_label("Value of HeartbeatInterval")
                        await field.fill("120")
                        await field.locator("xpath=..").get_by_role("button", name="Change").click()
                        await expect(result).to_have_attribute("data-outcome", "ok")
                        await expect(page.get_by_label("Value of HeartbeatInterval")).to_have_value("120")
    finally:
        stations.Station16 = original
