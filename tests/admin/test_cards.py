"""Cards, drivers and organizations: create, block and unblock, bulk import with a report."""

from __future__ import annotations

from playwright.async_api import expect

from csms.core.tables import Driver, IdToken, Organization
from tests.admin.conftest import screenshot


async def test_create_and_block_a_token(page_as, server):
    await Organization(name="ACME Fleet", kind="employer").save()
    page = await page_as("operator")

    await page.goto("/admin/drivers/new")
    await page.get_by_label("Name").fill("Dana Driver")
    await page.get_by_label("E-mail").fill("not-an-address")
    await page.get_by_role("button", name="Save driver").click()
    await expect(page.get_by_role("alert")).to_contain_text("is not an e-mail address")
    assert not await Driver.exists().where(Driver.name == "Dana Driver")
    await page.get_by_label("E-mail").fill("dana@example.org")
    await page.get_by_label("Organization").select_option(label="ACME Fleet")
    await page.get_by_role("button", name="Save driver").click()
    await expect(page.locator("#drivers")).to_contain_text("Dana Driver")

    await page.goto("/admin/tokens")
    await page.get_by_role("button", name="New token").click()
    await page.get_by_label("Id token").fill("04A1B2C3D4")
    await page.get_by_label("Label").fill("Dana's card")
    await page.get_by_label("Group").fill("ACME")
    await page.get_by_label("Expires at (UTC)").fill("2031-06-30T23:59")
    await page.get_by_label("Driver").select_option(label="Dana Driver")
    await page.get_by_role("button", name="Save token").click()
    row = page.locator("tr[data-token='04A1B2C3D4']")
    await expect(row).to_contain_text("Accepted")
    await expect(row).to_contain_text("2031-06-30 23:59")
    await expect(row).to_contain_text("Dana Driver")

    await row.get_by_role("button", name="Block 04A1B2C3D4").click()
    await expect(row.locator(".token-status")).to_have_text("Blocked")
    assert (await IdToken.select(IdToken.status).where(IdToken.id_token == "04A1B2C3D4").first())["status"] == \
        "Blocked"
    await screenshot(page, "tokens")
    await row.get_by_role("button", name="Unblock 04A1B2C3D4").click()
    await expect(row.locator(".token-status")).to_have_text("Accepted")

    # the same id twice is refused with a message, nothing stored twice
    await page.goto("/admin/tokens/new")
    await page.get_by_label("Id token").fill("04A1B2C3D4")
    await page.get_by_role("button", name="Save token").click()
    await expect(page.get_by_role("alert")).to_contain_text("already exists")
    assert await IdToken.count().where(IdToken.id_token == "04A1B2C3D4") == 1


async def test_csv_import_reports_every_rejected_row(page_as, server, tmp_path):
    await Driver(name="Erik", email="erik@example.org").save()
    await Organization(name="Leasing AG", kind="leasing_partner").save()
    await IdToken(id_token="EXISTING-1").save()
    csv_file = tmp_path / "tokens.csv"
    csv_file.write_text(
        "id_token,type,status,label,group_id,expires_at,driver_email,organization\n"
        "CARD-001,ISO14443,Accepted,First,FLEET,2030-12-31,erik@example.org,Leasing AG\n"
        "CARD-002,,,Second,,,,\n"
        ",ISO14443,Accepted,no id,,,,\n"
        "CARD-003,Magnetic,Accepted,bad type,,,,\n"
        "CARD-004,ISO14443,Sleeping,bad status,,,,\n"
        "CARD-005,ISO14443,Accepted,bad date,,31/12/2030,,\n"
        "CARD-006,ISO14443,Accepted,unknown driver,,,nobody@example.org,\n"
        "CARD-001,ISO14443,Accepted,duplicate,,,,\n"
        "EXISTING-1,ISO14443,Accepted,exists,,,,\n"
        "THIS-TOKEN-IS-FAR-TOO-LONG-FOR-OCPP-2-0-1-ID,ISO14443,Accepted,long,,,,\n",
        encoding="utf-8")
    page = await page_as("operator")
    await page.goto("/admin/tokens")
    await page.get_by_role("button", name="Import CSV").click()
    await page.get_by_label("CSV file").set_input_files(str(csv_file))
    await page.get_by_role("button", name="Import").click()
    await expect(page.locator("#import-summary")).to_have_text("2 created, 0 updated, 8 rejected.")
    reasons = {
        4: "id_token is empty", 5: "unknown type “Magnetic”", 6: "unknown status “Sleeping”",
        7: "is not a date", 8: "no driver with e-mail nobody@example.org",
        9: "appears more than once", 10: "already exists", 11: "longer than 36 characters",
    }
    for line, reason in reasons.items():
        await expect(page.locator(f"#import-report tr[data-line='{line}']")).to_contain_text(reason)
    await screenshot(page, "token-import")
    rows = {r["id_token"]: r for r in await IdToken.select().where(IdToken.id_token.like("CARD-%"))}
    assert set(rows) == {"CARD-001", "CARD-002"}
    assert rows["CARD-001"]["group_id"] == "FLEET" and rows["CARD-001"]["driver"] is not None
    assert rows["CARD-002"]["type"] == "ISO14443" and rows["CARD-002"]["status"] == "Accepted"

    # pasted text, updating the existing token this time
    await page.get_by_label("…or paste CSV").fill("id_token,status\nEXISTING-1,Blocked\n")
    await page.get_by_label("Update existing tokens").check()
    await page.get_by_role("button", name="Import").click()
    await expect(page.locator("#import-summary")).to_have_text("0 created, 1 updated, 0 rejected.")
    assert (await IdToken.select(IdToken.status).where(IdToken.id_token == "EXISTING-1").first())["status"] == \
        "Blocked"

    await page.get_by_role("button", name="Import").click()
    await expect(page.locator("#import-error")).to_contain_text("Choose a CSV file")


async def test_csv_import_is_checked_in_the_cpu_pool(server, users, monkeypatch):
    """The file is read and checked off the event loop (it may be large); the import still
    creates, updates and rejects row by row."""
    import threading

    from csms.admin import cards
    from tests.admin.conftest import http_login

    await IdToken(id_token="POOL-OLD").save()
    threads: list[str] = []
    check = cards._check_import

    def recording(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return check(*args, **kwargs)

    monkeypatch.setattr(cards, "_check_import", recording)
    text = "id_token,status\nPOOL-NEW,Accepted\nPOOL-OLD,Blocked\n,Accepted\n"
    async with http_login(server.base_url, "operator") as client:
        r = await client.post("/admin/tokens/import", data={"text": text, "update_existing": "on",
                                                            "_csrf_token": client.cookies.get("csms_csrftoken")})
    assert r.status_code == 200 and "1 created, 1 updated, 1 rejected" in r.text
    assert len(threads) == 1 and threads[0].startswith("csms-cpu")
    statuses = {r["id_token"]: r["status"] for r in await IdToken.select().where(IdToken.id_token.like("POOL-%"))}
    assert statuses == {"POOL-NEW": "Accepted", "POOL-OLD": "Blocked"}
