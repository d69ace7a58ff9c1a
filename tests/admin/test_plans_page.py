"""The Plans page and an organization's plan and usage, as a global admin sees them (Chromium,
desktop and phone)."""

from __future__ import annotations

from playwright.async_api import expect

from csms.core.tables import Organization, Plan, Station
from tests.admin.conftest import screenshot


async def test_plans_page_and_an_organizations_usage(page_as, server):
    home = (await Plan.select(Plan.id).where(Plan.name == "HOME").first())["id"]
    business = (await Plan.select(Plan.id).where(Plan.name == "BUSINESS").first())["id"]
    acme = Organization(name="Acme Logistics", plan=business)
    await acme.save()
    flat = Organization(name="Acme Flat 3", parent=acme.id)
    await flat.save()
    await Station.insert(*[Station(station_id=f"ACME-{n}", organization=acme.id) for n in range(3)])
    page = await page_as("admin")

    await page.goto("/admin/plans")
    await expect(page.locator("#plan-HOME")).to_contain_text("Driver portal (sign-in, QR start)")
    await expect(page.locator("#plan-PUBLIC")).to_contain_text("no limit")
    await screenshot(page, "plans-list")

    await page.get_by_role("link", name="BUSINESS").click()
    await expect(page.get_by_label("Load balancing")).to_be_checked()
    await page.get_by_label("Stations at most").fill("2")
    await page.get_by_role("button", name="Save plan").click()
    await expect(page.get_by_role("alert")).to_contain_text(
        "Plan BUSINESS allows 2 stations: organization Acme Logistics would have 3.")
    await screenshot(page, "plans-edit-refused")
    await page.get_by_label("Stations at most").fill("5")
    await page.get_by_label("Roaming (OCPI): locations to partners").check()
    await page.get_by_role("button", name="Save plan").click()
    await page.wait_for_url("**/admin/plans")
    await expect(page.locator("#plan-BUSINESS")).to_contain_text("Roaming (OCPI)")

    await page.goto("/admin/organizations")
    await expect(page.locator("#organizations")).to_contain_text("BUSINESS (from above)")
    await page.goto(f"/admin/organizations/{acme.id}/edit")
    await expect(page.locator("#usage-stations")).to_contain_text("3 / 5")
    await expect(page.locator("#plan-usage")).to_contain_text("Plan BUSINESS.")
    await screenshot(page, "organization-plan-usage")
    await page.locator("#f-plan").select_option(label="HOME")
    await page.get_by_role("button", name="Save organization").click()
    await expect(page.get_by_role("alert")).to_contain_text(
        "Plan HOME allows 2 stations: organization Acme Logistics would have 3.")
    await screenshot(page, "organization-plan-downgrade-refused")
    assert (await Organization.select(Organization.plan).where(Organization.id == acme.id).first())["plan"] == business

    await page.goto(f"/admin/organizations/{flat.id}/edit")
    await expect(page.locator("#plan-usage")).to_contain_text("Plan BUSINESS, of Acme Logistics above it.")
    await screenshot(page, "organization-plan-inherited")

    phone = await page_as("admin", width=390, height=844)
    await phone.goto(f"/admin/organizations/{acme.id}/edit")
    await expect(phone.locator("#usage-stations")).to_contain_text("3 / 5")
    await screenshot(phone, "organization-plan-usage-phone")
    await phone.goto("/admin/plans")
    await expect(phone.locator("#plan-HOME")).to_be_visible()
    await screenshot(phone, "plans-list-phone")
    assert home
