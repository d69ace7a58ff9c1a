"""The public map in Chromium without logging in, on a desktop and a phone, with map tiles
unreachable (the list still tells everything)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.admin.conftest import screenshot
from tests.test_public_map import SECRET_WORDS, published_world


@pytest.mark.parametrize("viewport", [(1280, 900), (390, 844)], ids=["desktop", "phone"])
async def test_public_map_in_a_browser(browser, server, viewport):
    ids = await published_world()
    width, height = viewport
    context = await browser.new_context(base_url=server.base_url, viewport={"width": width, "height": height},
                                        is_mobile=width < 500, has_touch=width < 500)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    await page.goto("/map")
    await expect(page.get_by_role("heading", name="Charging stations")).to_be_visible()
    await expect(page.locator("#public-map")).to_have_attribute("data-markers", "1")
    await expect(page.locator("#map-notice")).to_contain_text("Map tiles could not be loaded")
    locations = page.get_by_role("list", name="All locations")
    await expect(locations.get_by_role("link", name="Harbour depot")).to_be_visible()
    await expect(locations).to_contain_text("1 of 2 connectors free")
    await expect(locations).to_contain_text("Type 2 · AC, 3 phases · up to 22.0 kW")
    await expect(locations).to_contain_text("In use")
    body = await page.locator("body").inner_text()
    for word in SECRET_WORDS:
        assert word not in body
    if width < 500:  # nothing wider than the phone
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    await screenshot(page, f"public-map-{'phone' if width < 500 else 'desktop'}")

    await page.locator(f"path.site-marker[data-site='{ids['shown']}']").click()
    await expect(page.locator(".leaflet-popup-content")).to_contain_text("1 of 2 connectors free")

    await locations.get_by_role("link", name="Harbour depot").click()
    await expect(page.get_by_role("heading", name="Harbour depot")).to_be_visible()
    await expect(page.get_by_role("region", name="Harbour depot, Charger 1")).to_contain_text("CCS (Combo 2)")
    await screenshot(page, f"public-site-{'phone' if width < 500 else 'desktop'}")

    await page.goto(f"/map/sites/{ids['hidden']}")
    await expect(page.get_by_role("alert")).to_contain_text("There is no such charging location.")
    await context.close()


async def test_list_works_without_script(browser, server):
    await published_world()
    context = await browser.new_context(base_url=server.base_url, java_script_enabled=False,
                                        viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await page.goto("/map")
    await expect(page.get_by_role("list", name="All locations")).to_contain_text("1 of 2 connectors free")
    await context.close()
