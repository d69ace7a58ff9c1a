"""The roaming admin pages in headless Chromium, desktop and phone: the invite shows token A once,
clearly; a failed registration and a refused resend answer an HTML page with a readable message;
the deliveries page lists a parked push with its reason and resends it."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from csms.testing import admin_browser, screenshot
from plugins.roaming_ocpi import outbox
from plugins.roaming_ocpi.tests.fake_partner import fake_partner, now
from plugins.roaming_ocpi.tests.test_delivery import partner_id
from plugins.roaming_ocpi.tests.test_delivery import tariff as tariff_body
from plugins.roaming_ocpi.tests.test_transport import register_fake

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("device", [("desktop", 1280, 900), ("phone", 390, 844)])
async def test_invite_register_and_deliveries_pages(server, device):
    name, width, height = device
    backend = "pg" if "postgres" in str(getattr(server, "database_url", "")) else "db"
    async with admin_browser(server, "admin", width=width, height=height) as page:
        await page.goto("/admin/roaming")
        await page.get_by_text("Invite a partner").click()
        await page.get_by_label("Name").first.fill(f"Browser partner {name}")
        await page.get_by_label("Its role, should it speak OCPI 2.1.1").first.select_option("CPO")
        await screenshot(page, f"roaming-invite-form-{name}-{backend}")
        async with page.expect_response(lambda r: r.url.endswith("/admin/roaming/invite")) as answer:
            await page.get_by_role("button", name="Issue token A").click()
        response = await answer.value
        assert response.headers["content-type"].startswith("text/html")
        token = page.locator("#token-a")
        await expect(token).to_be_visible()
        assert len((await token.inner_text()).strip()) >= 32
        await expect(page.get_by_text("It is shown only now")).to_be_visible()
        await screenshot(page, f"roaming-invite-{name}-{backend}")
        invited = [p for p in (await server.api.get("/roaming/partners")).json()["items"]
                   if p["name"] == f"Browser partner {name}"]
        assert invited and invited[0]["role_211"] == "CPO"  # the 2.1.1 role chosen on the form

        await page.goto("/admin/roaming")
        await page.get_by_text("Register with a partner").click()
        form = page.locator("form[action='/admin/roaming/register']")
        await form.get_by_label("Name").fill("Unreachable")
        await form.get_by_label("Partner's versions URL").fill("http://127.0.0.1:9/ocpi/versions")
        await form.get_by_label("Token A from the partner").fill("whatever-token")
        async with page.expect_response(lambda r: r.url.endswith("/admin/roaming/register")) as answer:
            await form.get_by_role("button", name="Register").click()
        response = await answer.value
        assert response.status == 502 and response.headers["content-type"].startswith("text/html")
        await expect(page.get_by_role("alert")).to_contain_text("Registration failed")
        await screenshot(page, f"roaming-register-failed-{name}-{backend}")

        async with fake_partner(party_id=f"BR{name[0].upper()}") as fake:
            await register_fake(server, fake)
            pid = await partner_id(server, fake.party_id)
            refused = (400, {"status_code": 2001, "status_message": "unknown currency", "timestamp": now()})
            for tariff in ("T-ONE", "T-TWO"):
                fake.answers[f"/tariffs/NL/CPO/{tariff}"] = refused
                await outbox.enqueue(pid, "PUT", f"tariff:{tariff}", module="tariffs", path=f"/NL/CPO/{tariff}",
                                     body=tariff_body(tariff))
            await page.goto("/admin/roaming/deliveries")
            one, two = (page.locator("tr", has_text=t).first for t in ("T-ONE", "T-TWO"))
            for _ in range(50):
                if await two.count() and "unknown currency" in await two.inner_text():
                    break
                await page.wait_for_timeout(200)
                await page.reload()
            await expect(one).to_contain_text("unknown currency")
            await expect(two).to_contain_text("unknown currency")
            await screenshot(page, f"roaming-deliveries-{name}-{backend}")
            fake.answers.clear()
            await one.get_by_role("button", name="Resend").click()
            await expect(page.get_by_role("status")).to_contain_text("queued again")
            await fake.wait_for("PUT", "tariffs")
            # meanwhile someone else resends T-TWO: this page's button is stale, the answer says so
            push = next(p for p in (await server.api.get("/roaming/outbox", params={"partner": pid})).json()["items"]
                        if p["object_key"] == "tariff:T-TWO")
            assert (await server.api.post(f"/roaming/outbox/{push['id']}/resend")).status_code == 200
            await two.get_by_role("button", name="Resend").click()
            await expect(page.get_by_role("alert")).to_contain_text("Not queued again")
            await screenshot(page, f"roaming-resend-refused-{name}-{backend}")


@pytest.mark.parametrize("device", [("desktop", 1280, 900), ("phone", 390, 844)])
async def test_an_organizations_admin_invites_partners_for_its_own_organization(server, device):
    name, width, height = device
    backend = "pg" if "postgres" in str(getattr(server, "database_url", "")) else "db"
    org = (await server.api.post("/organizations", json={"name": f"Fleet {name}"})).json()["id"]
    child = (await server.api.post("/organizations", json={"name": f"Fleet {name} depot", "parent": org})).json()["id"]
    other = await server.api.post("/roaming/partners", json={"name": f"Installation partner {name}"})
    assert other.status_code == 201
    async with admin_browser(server, "admin", width=width, height=height, organization=org) as page:
        await page.goto("/admin/roaming")
        await expect(page.get_by_text(f"Installation partner {name}")).to_have_count(0)
        await page.get_by_text("Invite a partner").click()
        form = page.locator("form[action='/admin/roaming/invite']")
        select = form.get_by_label("Organization")
        assert await select.input_value() == str(org)  # its own organization by default
        assert sorted(await select.locator("option").all_inner_texts()) == [f"Fleet {name}", f"Fleet {name} depot"]
        await form.get_by_label("Name").fill(f"Depot partner {name}")
        await select.select_option(str(child))
        await form.get_by_role("button", name="Issue token A").click()
        await expect(page.locator("#token-a")).to_be_visible()
        row = page.locator("tr", has_text=f"Depot partner {name}")
        await expect(row).to_contain_text(f"Fleet {name} depot")
        await screenshot(page, f"roaming-organization-invite-{name}-{backend}")
        partner = next(p for p in (await server.api.get("/roaming/partners")).json()["items"]
                       if p["name"] == f"Depot partner {name}")
        assert partner["organization"] == child
        await page.goto(f"/admin/roaming/partners/{partner['id']}")
        await expect(page.locator("dd", has_text=f"Fleet {name} depot")).to_be_visible()
        answer = await page.goto(f"/admin/roaming/partners/{other.json()['id']}")
        assert answer is not None and answer.status == 404
    async with admin_browser(server, "admin", width=width, height=height) as page:
        await page.goto("/admin/roaming")
        await expect(page.locator("tr", has_text=f"Installation partner {name}")).to_contain_text("installation-wide")
        await page.get_by_text("Invite a partner").click()
        select = page.locator("form[action='/admin/roaming/invite']").get_by_label("Organization")
        assert await select.input_value() == ""  # a global admin's partner: the installation's by default
        await screenshot(page, f"roaming-global-invite-form-{name}-{backend}")
