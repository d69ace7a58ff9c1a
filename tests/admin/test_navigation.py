"""The admin's main navigation on a desktop and on a phone (Chromium): on a phone it folds behind
a Menu button instead of taking four rows above every page."""

from __future__ import annotations

from playwright.async_api import expect

from tests.admin.conftest import screenshot


async def test_the_navigation_folds_behind_a_menu_button_on_a_phone(page_as):
    desktop = await page_as("operator")
    await desktop.goto("/admin/stations")
    nav = desktop.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Sessions")).to_be_visible()
    await expect(desktop.get_by_role("button", name="Menu")).to_be_hidden()

    phone = await page_as("operator", width=390, height=844)
    await phone.goto("/admin/stations")
    menu = phone.get_by_role("button", name="Menu")
    await expect(menu).to_be_visible()
    await expect(menu).to_have_attribute("aria-expanded", "false")
    await expect(phone.get_by_role("navigation", name="Main")).to_be_hidden()
    header = await phone.locator(".site-header").bounding_box()
    assert header is not None and header["height"] < 120, header  # brand, menu and user: not four rows of links
    await screenshot(phone, "nav-phone-closed")

    await menu.click()
    await expect(menu).to_have_attribute("aria-expanded", "true")
    opened = phone.get_by_role("navigation", name="Main")
    await expect(opened.get_by_role("link", name="Stations")).to_have_attribute("aria-current", "page")
    await screenshot(phone, "nav-phone-open")
    await opened.get_by_role("link", name="Sessions").click()
    await phone.wait_for_url("**/admin/sessions")
    await expect(phone.get_by_role("navigation", name="Main")).to_be_hidden()  # closed again on the next page
