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
        async with page.expect_response(lambda r: r.url.endswith("/admin/roaming/invite")) as answer:
            await page.get_by_role("button", name="Issue token A").click()
        response = await answer.value
        assert response.headers["content-type"].startswith("text/html")
        token = page.locator("#token-a")
        await expect(token).to_be_visible()
        assert len((await token.inner_text()).strip()) >= 32
        await expect(page.get_by_text("It is shown only now")).to_be_visible()
        await screenshot(page, f"roaming-invite-{name}-{backend}")

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
