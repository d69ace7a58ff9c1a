"""The Plans page and an organization's plan and usage, as a global admin sees them (Chromium,
desktop and phone)."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from csms.core.tables import Hub, Organization, Plan, Site, Station
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


async def test_plans_are_added_and_removed_on_the_plans_page(page_as, server):
    business = (await Plan.select(Plan.id).where(Plan.name == "BUSINESS").first())["id"]
    await Organization.insert(Organization(name="Acme Logistics", plan=business),
                              Organization(name="Zeta Transport", plan=business))
    page = await page_as("admin")
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))  # "Delete this for good?"

    await page.goto("/admin/plans")
    await page.get_by_role("button", name="New plan").click()
    await page.get_by_label("Name").fill("BUSINESS")
    await page.get_by_label("API access").check()
    await page.get_by_role("button", name="Add plan").click()
    await expect(page.locator("#err-name")).to_contain_text("Another plan is named BUSINESS.")
    await expect(page.get_by_label("API access")).to_be_checked()  # what was ticked stays ticked
    await page.get_by_label("Name").fill("FLEET")
    await page.get_by_label("Description").fill("Company fleets")
    await page.get_by_label("Stations at most").fill("10")
    await screenshot(page, "plans-new")
    await page.get_by_role("button", name="Add plan").click()
    await page.wait_for_url("**/admin/plans")
    await expect(page.locator("#plan-FLEET")).to_contain_text("REST API access with API keys")
    await expect(page.locator("#plan-FLEET")).to_contain_text("10")
    fleet = await Plan.select().where(Plan.name == "FLEET").output(load_json=True).first()
    assert fleet["features"] == ["api_access"] and fleet["max_stations"] == 10 and fleet["max_hubs"] is None

    await page.get_by_role("link", name="BUSINESS").click()
    await page.get_by_role("button", name="Delete").click()
    await expect(page.get_by_role("alert")).to_contain_text(
        "Plan BUSINESS is the plan of Acme Logistics, Zeta Transport: give them another plan first.")
    await screenshot(page, "plans-delete-refused")
    assert await Plan.exists().where(Plan.name == "BUSINESS")

    await page.goto("/admin/plans")
    await page.get_by_role("link", name="FLEET", exact=True).click()
    await page.get_by_role("button", name="Delete").click()
    await page.wait_for_url("**/admin/plans")
    await expect(page.locator("#plan-FLEET")).to_have_count(0)
    assert not await Plan.exists().where(Plan.name == "FLEET")

    phone = await page_as("admin", width=390, height=844)
    phone.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await phone.goto("/admin/plans/new")
    await expect(phone.get_by_role("button", name="Add plan")).to_be_visible()
    await screenshot(phone, "plans-new-phone")
    await phone.goto(f"/admin/plans/{business}/edit")
    await phone.get_by_role("button", name="Delete").click()
    await expect(phone.get_by_role("alert")).to_contain_text("give them another plan first")
    await screenshot(phone, "plans-delete-refused-phone")


async def test_a_move_to_a_full_organizations_site_is_refused_with_the_reason(page_as, server):
    home = (await Plan.select(Plan.id).where(Plan.name == "HOME").first())["id"]
    homes = Organization(name="Home Sweet", plan=home)
    acme = Organization(name="Acme Logistics")
    await Organization.insert(homes, acme)
    garage = Site(name="Garage", organization=homes.id)
    depot = Site(name="Depot", organization=acme.id)
    await Site.insert(garage, depot)
    await Hub.insert(Hub(name="Box", site=garage.id))
    rack = Hub(name="Rack", site=depot.id)
    await Hub.insert(rack)
    await Station.insert(*[Station(station_id=f"HOME-{n}", organization=homes.id, site=garage.id) for n in range(2)],
                         Station(station_id="ACME-1", organization=acme.id, site=depot.id, hub=rack.id))
    page = await page_as("admin")

    await page.goto("/admin/stations/ACME-1")
    await page.locator("#st-site").select_option(label="Garage")
    await page.locator("#st-hub").select_option(label="No hub")
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.locator("main")).to_contain_text(
        "The station was not changed: Plan HOME allows 2 stations: organization Home Sweet would have 3.")
    await screenshot(page, "plans-station-move-refused")

    await page.goto(f"/admin/hubs/{rack.id}/edit")
    await page.get_by_label("Site").select_option(label="Garage")
    await page.get_by_role("button", name="Save hub").click()
    await expect(page.locator("#err-site")).to_contain_text(
        "Plan HOME allows 1 hub: organization Home Sweet would have 2.")
    await screenshot(page, "plans-hub-move-refused")
    assert (await Station.select(Station.organization, Station.site).where(Station.station_id == "ACME-1").first()) \
        == {"organization": acme.id, "site": depot.id}

    phone = await page_as("admin", width=390, height=844)
    await phone.goto(f"/admin/hubs/{rack.id}/edit")
    await phone.get_by_label("Site").select_option(label="Garage")
    await phone.get_by_role("button", name="Save hub").click()
    await expect(phone.locator("#err-site")).to_contain_text("Plan HOME allows 1 hub")
    await screenshot(phone, "plans-hub-move-refused-phone")
