"""Viewers see everything and can do nothing; plugins add navigation and panels."""

from __future__ import annotations

import re

from markupsafe import escape
from playwright.async_api import expect

from csms import NavItem, hookimpl
from csms.core.tables import IdToken, Site
from csms.plugins import pm
from tests.admin.conftest import screenshot
from tests.admin.station import online_station


async def test_a_viewer_sees_everything_but_cannot_act(page_as, server):
    await IdToken(id_token="VIEWED-1").save()
    await Site(name="Seen site", latitude=50.0, longitude=8.0).save()
    page = await page_as("viewer", width=390, height=844)  # a phone
    async with online_station(server.ws_url("CP-V"), "CP-V"):
        await expect(page.locator("#stations-online")).to_have_text("1")
        await screenshot(page, "mobile-dashboard")
        await page.goto("/admin/stations/CP-V")
        await expect(page.locator("#station-connection")).to_contain_text("online")
        await screenshot(page, "mobile-station-viewer")
        await expect(page.get_by_role("heading", name="Actions")).to_have_count(0)
        # no button that acts: only the phone's navigation Menu and Log out
        await expect(page.get_by_role("button")).to_have_text(["Menu", "Log out"])
        await page.goto("/admin/stations/CP-V?tab=configuration")
        await expect(page.get_by_role("button", name="Read from station")).to_have_count(0)

        await page.goto("/admin/tokens")
        await expect(page.locator("tr[data-token='VIEWED-1']")).to_be_visible()
        await expect(page.get_by_role("button", name="Block VIEWED-1")).to_have_count(0)
        await expect(page.get_by_role("button", name="New token")).to_have_count(0)
        await page.goto("/admin/sites")
        await expect(page.get_by_role("button", name="New site")).to_have_count(0)
        await screenshot(page, "viewer-sites")

        # and the server refuses what the page does not offer, even with a valid CSRF token
        status = await page.evaluate("""async () => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['x-csrftoken'];
            const r = await fetch('/admin/stations/CP-V/actions/reset', {method: 'POST',
                headers: {'x-csrftoken': token, 'HX-Request': 'true',
                          'content-type': 'application/x-www-form-urlencoded'}, body: 'kind=hard'});
            return [r.status, await r.text()];
        }""")
        assert status[0] == 403 and "operator role" in status[1]
        status = await page.evaluate("""async () => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['x-csrftoken'];
            const r = await fetch('/admin/tokens/new', {method: 'POST',
                headers: {'x-csrftoken': token, 'content-type': 'application/x-www-form-urlencoded'},
                body: 'id_token=SNEAKY&type=Central&status=Accepted'});
            return r.status;
        }""")
        assert status == 403
    assert not await IdToken.exists().where(IdToken.id_token == "SNEAKY")


async def test_a_plugin_adds_navigation_and_panels(page_as, server):
    class Panels:
        @hookimpl
        def admin_nav(self, request):
            return [NavItem("Test tools", "/admin/plugins#test", order=60),
                    NavItem("Secret admin tool", "/admin/plugins#secret", order=61, min_role="admin")]

        @hookimpl
        def admin_panels(self, page, request, context):
            if page == "dashboard":
                return ['<article id="test-panel"><h2>From a plugin</h2><p>dashboard panel</p></article>']
            if page == "station":
                station_id = escape(context["station"]["station_id"])
                return [f'<article id="test-station-panel">panel for {station_id}</article>']

            async def later():  # an awaitable answer works too
                return [f'<p id="test-{page}-panel">panel on {page}</p>'] if page in ("session", "site") else None

            return later()

    plugin = Panels()
    pm.register(plugin, name="test-admin-panels")
    try:
        page = await page_as("operator")
        await expect(page.locator("#test-panel")).to_contain_text("dashboard panel")
        nav = page.get_by_role("navigation", name="Main")
        await expect(nav.get_by_role("link", name="Test tools")).to_be_visible()
        await expect(nav.get_by_role("link", name="Secret admin tool")).to_have_count(0)  # operator < admin
        async with online_station(server.ws_url("CP-PL"), "CP-PL"):
            await page.goto("/admin/stations/CP-PL")
            await expect(page.locator("#test-station-panel")).to_have_text("panel for CP-PL")
        site = Site(name="Panel site")
        await site.save()
        await page.goto(f"/admin/sites/{site.id}")
        await expect(page.locator("#test-site-panel")).to_have_text("panel on site")
        await page.goto("/admin/plugins")
        row = page.locator("tr", has_text="test-admin-panels")
        await expect(row).to_contain_text("admin_nav")
        await expect(row).to_contain_text("admin_panels")
        await expect(page.locator("tr", has_text="csms.admin.nav")).to_contain_text("admin_nav")
        await screenshot(page, "plugins")
    finally:
        pm.unregister(plugin)


async def test_a_superuser_opens_the_piccolo_admin_with_the_same_login(page_as, server):
    await Site(name="Raw table site").save()
    page = await page_as("admin")
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Database").click()
    await expect(page).to_have_url(re.compile(r"/admin/db/(#/)?$"))
    await expect(page.get_by_text("site", exact=True).first).to_be_visible()
    await page.goto("/admin/db/#/site")
    await expect(page.get_by_text("Raw table site")).to_be_visible()
    await screenshot(page, "piccolo-admin")
