"""The station page's "Rotate password" button (admin role), in Chromium: it asks first, the
station gets a new password over OCPP, and the page says what the station answered; the audit log
records it in English whatever the admin's language."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from csms.core.tables import AuditEntry
from csms.testing import admin_browser, admin_client, running_server, screenshot
from tests.test_station_passwords import OLD, Keeper201, connected, handshake_status
from tests.stations import basic_auth


async def test_rotate_password_button(tmp_path):
    async with running_server(tmp_path, unknown_stations="reject") as srv:
        await srv.api.post("/stations/", json={"station_id": "ROTUI", "password": OLD})
        cp, ws, task = await connected(srv, "ROTUI", Keeper201, OLD, "ocpp2.0.1")
        try:
            async with admin_browser(srv, "operator") as page:  # operators do not get the button
                await page.goto("/admin/stations/ROTUI")
                await expect(page.get_by_role("heading", name="ROTUI")).to_be_visible()
                await expect(page.locator("#rotate-password")).to_have_count(0)
            async with admin_browser(srv, "admin") as page:
                await page.goto("/admin/stations/ROTUI")
                asked: list[str] = []

                def answer(dialog, accept: bool) -> None:
                    asked.append(dialog.message)
                    asyncio.ensure_future(dialog.accept() if accept else dialog.dismiss())

                page.once("dialog", lambda d: answer(d, False))  # "Cancel" sends nothing
                await page.locator("#rotate-password").click()
                await expect(page.locator("#password-rotation .outcome")).to_have_count(0)
                assert asked and "Give ROTUI a new random password?" in asked[0]
                assert cp.password is None
                page.once("dialog", lambda d: answer(d, True))
                await page.locator("#rotate-password").click()
                result = page.locator("#password-rotation .outcome")
                await expect(result).to_have_attribute("data-outcome", "ok")
                await expect(result).to_contain_text("Password rotation: the station answered Accepted.")
                await screenshot(page, "station-password-rotation")
                assert cp.password and cp.password not in await page.content()
                cp.refuse = True
                page.once("dialog", lambda d: answer(d, True))
                await page.locator("#rotate-password").click()
                await expect(result).to_have_attribute("data-outcome", "rejected")
            # a German admin reads the answer in German; the audit log keeps one language
            client = await admin_client(srv, "admin", csrf_header=True)
            try:
                assert (await client.post("/admin/account/language", data={"language": "de"})).status_code == 303
                cp.refuse = False
                german = await client.post("/admin/stations/ROTUI/rotate-password")
                assert german.status_code == 200 and "Passwortwechsel" in german.text
            finally:
                await client.aclose()
            rows = await AuditEntry.select(AuditEntry.summary).where(
                AuditEntry.object_id == "ROTUI", AuditEntry.summary.like("Password rotation%")).order_by(AuditEntry.id)
            assert [row["summary"] for row in rows] == ["Password rotation: the station answered Accepted",
                                                       "Password rotation: the station answered Rejected",
                                                       "Password rotation: the station answered Accepted"]
        finally:
            task.cancel()
            await ws.close()
        assert (await handshake_status(srv.ws_url("ROTUI"), headers=basic_auth("ROTUI", cp.password)))[0] == 101
        assert (await handshake_status(srv.ws_url("ROTUI"), headers=basic_auth("ROTUI", OLD)))[0] == 401
