"""Sites and hubs with their grid connection, bad input, and the map without tiles."""

from __future__ import annotations

from playwright.async_api import expect

from csms.core.tables import Hub, Site, Station
from csms.testing.stations import station
from csms_tools.simulator import SimStation
from tests.admin.conftest import screenshot
from tests.admin.station import online_station
from tests.test_charging_profiles import ProfileStation201
from tests.test_smart_charging import Rounds, fast, make_site, make_station


async def fill_site(page, name: str, lat: str, lon: str) -> None:
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Street and number").fill("Hafenstraße 1")
    await page.get_by_label("City").fill("Hamburg")
    await page.get_by_label("Country (ISO 3166 alpha-3)").fill("DEU")
    await page.get_by_label("Time zone").fill("Europe/Berlin")
    await page.get_by_label("Latitude").fill(lat)
    await page.get_by_label("Longitude").fill(lon)
    await page.get_by_label("Grid limit L1 (A)").fill("63")
    await page.get_by_label("Grid limit L2 (A)").fill("63")
    await page.get_by_label("Grid limit L3 (A)").fill("63")



async def open_popup(page, marker) -> None:
    """Click a map marker until its popup shows: a click while the map still moves to fit its
    markers (a loaded machine) can land where the marker was a moment before."""
    popup = page.locator(".leaflet-popup-content")
    for _ in range(3):
        await marker.click()
        try:
            await expect(popup).to_be_visible(timeout=3000)
            return
        except AssertionError:
            pass
    await expect(popup).to_be_visible()

async def test_invalid_coordinates_show_a_message_and_store_nothing(page_as, server):
    page = await page_as("operator")
    await page.goto("/admin/sites/new")
    await fill_site(page, "Harbour depot", "123.4", "east")
    await page.get_by_label("Voltage phase to neutral (V)").fill("12")
    await page.get_by_role("button", name="Save site").click()
    summary = page.get_by_role("alert")
    await expect(summary).to_contain_text("Nothing was saved")
    await expect(summary).to_contain_text("Latitude must be between -90 and 90; “123.4” is outside.")
    await expect(summary).to_contain_text("Longitude must be a number, not “east”.")
    await expect(summary).to_contain_text("Voltage phase to neutral (V) must be between 100 and 1000")
    await expect(page.get_by_label("Latitude")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Latitude")).to_have_value("123.4")  # what was typed is kept
    await screenshot(page, "site-form-errors")
    assert await Site.count() == 0

    await page.get_by_label("Latitude").fill("53.5461")
    await page.get_by_label("Longitude").fill("")
    await page.get_by_label("Voltage phase to neutral (V)").fill("230")
    await page.get_by_role("button", name="Save site").click()
    await expect(page.get_by_role("alert")).to_contain_text("Give both latitude and longitude, or neither.")
    assert await Site.count() == 0


async def test_sites_hubs_and_the_map(page_as, server):
    page = await page_as("operator")
    async with online_station(server.ws_url("CP-H1"), "CP-H1"), online_station(server.ws_url("CP-H2"), "CP-H2"):
        await page.goto("/admin/sites/new")
        await fill_site(page, "Harbour depot", "53.5461", "9.9661")
        await page.get_by_role("button", name="Save site").click()
        await expect(page.get_by_role("heading", name="Harbour depot")).to_be_visible()
        await expect(page.get_by_role("rowheader", name="Capacity", exact=True)).to_be_visible()
        await expect(page.locator("body")).to_contain_text("43.5 kW")  # 3 x 63 A x 230 V

        await page.get_by_label("Assign stations").select_option(["CP-H1", "CP-H2"])
        await page.get_by_role("button", name="Assign to Harbour depot").click()
        await expect(page.locator("#site-stations")).to_contain_text("CP-H1")
        await expect(page.locator("#site-stations")).to_contain_text("CP-H2")

        await page.get_by_role("button", name="New hub here").click()
        await page.get_by_label("Name").fill("Gateway A")
        await page.get_by_label("Maximum stations").fill("20")
        await page.get_by_label("Limit L1 (A)").fill("32")
        await page.get_by_role("button", name="Save hub").click()
        await expect(page.get_by_role("heading", name="Harbour depot")).to_be_visible()
        await expect(page.get_by_role("link", name="Gateway A")).to_be_visible()
        hub = await Hub.select().where(Hub.name == "Gateway A").first()
        site = await Site.select().where(Site.name == "Harbour depot").first()
        assert hub["site"] == site["id"] and hub["limit_l1_a"] == 32.0
        await page.goto(f"/admin/hubs/{hub['id']}/edit")
        await page.get_by_label("CP-H1").check()
        await page.get_by_role("button", name="Save hub").click()
        await expect(page.get_by_role("heading", name="Harbour depot")).to_be_visible()
        assert (await Station.select(Station.hub).where(Station.station_id == "CP-H1").first())["hub"] == hub["id"]

        # the hub's local controller is one of its stations (K03)
        await page.goto(f"/admin/hubs/{hub['id']}/edit")
        controller = page.get_by_label("Local controller")
        await expect(controller.locator("option")).to_have_text(["None", "CP-H1"])
        await controller.select_option("CP-H1")
        await page.get_by_role("checkbox", name="CP-H1").uncheck()  # the controller would leave the hub: refused
        await page.get_by_role("button", name="Save hub").click()
        await expect(page.get_by_role("alert")).to_contain_text("The local controller must be one of the hub's stations")
        await expect(page.get_by_role("checkbox", name="CP-H1")).not_to_be_checked()  # as submitted
        await expect(page.get_by_label("Local controller")).to_have_value("CP-H1")
        await screenshot(page, "hub-form-local-controller-error")
        assert (await Hub.select(Hub.local_controller).where(Hub.id == hub["id"]).first())["local_controller"] == ""
        await page.goto(f"/admin/hubs/{hub['id']}/edit")
        await page.get_by_label("Local controller").select_option("CP-H1")
        await page.get_by_role("button", name="Save hub").click()
        await expect(page.get_by_role("heading", name="Harbour depot")).to_be_visible()
        await expect(page.locator("body")).to_contain_text("local controller CP-H1")
        assert (await Hub.select(Hub.local_controller).where(Hub.id == hub["id"]).first())["local_controller"] == "CP-H1"

        await page.goto("/admin/sites/new")
        await fill_site(page, "Office", "48.1374", "11.5755")
        await page.get_by_role("button", name="Save site").click()
        await expect(page.get_by_role("heading", name="Office")).to_be_visible()
        await page.goto("/admin/sites/new")
        await page.get_by_label("Name").fill("Somewhere without coordinates")
        await page.get_by_role("button", name="Save site").click()
        await expect(page.get_by_role("heading", name="Somewhere without coordinates")).to_be_visible()

        await page.goto("/admin/sites")
        await expect(page.locator("#sites tbody tr")).to_have_count(3)
        await screenshot(page, "sites")

        await page.goto("/admin/map")
        await expect(page.locator("#map")).to_have_attribute("data-markers", "2")
        await expect(page.locator("path.site-marker")).to_have_count(2)
        await expect(page.locator("#map-notice")).to_contain_text("tiles could not be loaded")
        harbour = page.locator("#site-list tr", has_text="Harbour depot")
        await expect(harbour).to_contain_text("2 / 2")
        await expect(page.locator("#site-list")).to_contain_text("no coordinates — not on the map")
        await open_popup(page, page.locator("path.site-marker").first)
        await screenshot(page, "map")
    # both stations went away: the list follows live
    await expect(harbour).to_contain_text("0 / 2")


async def test_a_site_name_is_text_on_the_map_never_markup(page_as, server):
    """Issue 15: a site created through REST by an operator key with markup in its name ran
    script in the admin's browser when the marker's tooltip opened."""
    created = await server.api.post("/sites", json={
        "name": 'Depot<img src=x onerror="window.__xss = 1">', "latitude": 53.5, "longitude": 10.0})
    assert created.status_code == 201
    page = await page_as("admin")
    await page.goto("/admin/map")
    await expect(page.locator("path.site-marker")).to_have_count(1)
    await page.locator("path.site-marker").hover()
    tooltip = page.locator(".leaflet-tooltip")
    await expect(tooltip).to_contain_text('Depot<img src=x onerror="window.__xss = 1">')
    await expect(tooltip.locator("img")).to_have_count(0)
    await open_popup(page, page.locator("path.site-marker"))
    await expect(page.locator(".leaflet-popup-content")).to_contain_text("Depot<img")
    assert await page.evaluate("window.__xss") is None


async def test_the_site_panel_shows_a_hub_balanced_by_its_local_controller(page_as, server):
    """K03 as the operator sees it: the site's smart-charging panel names the hub's local
    controller, whether it is reachable, the hub's limit of the last round and the controller's
    answer to the profile it got."""
    fast(server)
    rounds = Rounds(server)
    site = await make_site(server.api, 32.0)
    hub = (await server.api.post("/hubs", json={"name": "Garage", "site": site["id"]})).json()
    for sid in ("LCP-CTRL", "LCP-A"):
        await make_station(server.api, sid, site["id"], hub=hub["id"])
    r = await server.api.patch(f"/hubs/{hub['id']}", json={"local_controller": "LCP-CTRL"})
    assert r.status_code == 200, r.text
    await server.api.post("/tokens", json={"id_token": "CAR-LCP"})
    car = SimStation("LCP-A", server.ws_url("LCP-A"), "2.0.1", evses=1, check_frames=True)
    try:
        async with station(server, "LCP-CTRL", "2.0.1", cls=ProfileStation201):
            await car.connect()
            await car.boot()
            await car.announce()
            mark = rounds.mark()
            await car.start_session(1, "CAR-LCP")
            done = await rounds.wait(lambda r: f"hub:{hub['id']}" in r.controllers and r.sent > 0, since=mark)
            limit = done.controllers[f"hub:{hub['id']}"]
            for name, width, height in (("desktop", 1280, 900), ("phone", 390, 844)):
                page = await page_as("operator", width=width, height=height)
                await page.goto(f"/admin/sites/{site['id']}")
                row = page.locator("[data-list=local-controllers] tbody tr")
                await expect(row).to_have_count(1)
                await expect(row).to_contain_text("Garage")
                await expect(row).to_contain_text("LCP-CTRL")
                await expect(row).to_contain_text("reachable")
                await expect(row).to_contain_text(f"{limit:.1f}")
                await expect(row).to_contain_text("Accepted")
                await expect(page.locator("body")).to_contain_text("local controller LCP-CTRL")
                await row.scroll_into_view_if_needed()
                await screenshot(page, f"site-local-controller-{name}")
    finally:
        await car.close()
