"""User management as an organization's admin does it in Chromium: invite with a one-time link,
the new user sets a password and sees their organization only; disable ends their session at
once; role changes, resets, own password; invitations by e-mail through an SMTP stand-in."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from csms.testing import ADMIN_PASSWORD, admin_browser, admin_client, screenshot
from csms.testing.mail import smtp_server
from tests.admin.station import online_station


async def _orgs(srv: Any) -> tuple[int, int]:
    alpha = (await srv.api.post("/organizations", json={"name": "Alpha Fleet"})).json()["id"]
    bravo = (await srv.api.post("/organizations", json={"name": "Bravo Estates"})).json()["id"]
    await srv.api.post("/stations", json={"station_id": "ALPHA-1", "organization": alpha})
    await srv.api.post("/stations", json={"station_id": "BRAVO-1", "organization": bravo})
    return alpha, bravo


async def test_an_organization_admin_invites_and_disables_a_user(server):
    srv = server
    alpha, bravo = await _orgs(srv)
    await (await admin_client(srv, "viewer", organization=bravo)).aclose()  # a user of another organization
    async with admin_browser(srv, "admin", organization=alpha) as page:
        await page.get_by_role("link", name="Users").click()
        await expect(page.locator("#users")).to_contain_text("admin-org")
        await expect(page.locator("#users")).not_to_contain_text("viewer-org")  # Bravo's user
        await page.get_by_role("button", name="Invite a user").click()
        await page.get_by_label("Username").fill("nina")
        await page.get_by_label("E-mail").fill("nina@alpha.example")
        await page.get_by_label("Role").select_option("operator")
        await page.get_by_role("button", name="Invite").click()
        link = await page.locator("#one-time-link").input_value()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/account/password/[\w-]{40,}", link), link
        await screenshot(page, "users-invited")

        # the invited person opens the link in their own browser
        other = await page.context.browser.new_context(base_url=srv.base_url, viewport={"width": 390, "height": 844})
        them = await other.new_page()
        await them.goto(link)
        await them.get_by_label(re.compile(r"^New password")).fill("short")
        await them.get_by_label("The new password again").fill("short")
        await them.get_by_role("button", name="Set password").click()
        await expect(them.locator("body")).to_contain_text("at least 10 characters")
        await them.get_by_label(re.compile(r"^New password")).fill("nina-long-password-1")
        await them.get_by_label("The new password again").fill("nina-long-password-1")
        await screenshot(them, "users-set-password-phone")
        await them.get_by_role("button", name="Set password").click()
        await them.wait_for_url("**/login")
        await them.get_by_label("Username").fill("nina")
        await them.get_by_label("Password").fill("nina-long-password-1")
        await them.get_by_role("button", name="Log in").click()
        await them.wait_for_url(lambda url: "/login" not in url)
        await them.goto("/admin/stations")
        await expect(them.locator("body")).to_contain_text("ALPHA-1")
        await expect(them.locator("body")).not_to_contain_text("BRAVO-1")
        again = await them.goto(link)
        assert again is not None and again.status == 404  # the link worked once

        # disabling ends her session at once
        await page.goto("/admin/users")
        row = page.locator("#users tr", has_text="nina")
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await row.get_by_role("button", name="Disable").click()
        await expect(page.locator("#users tr", has_text="nina")).to_contain_text("disabled")
        await them.goto("/admin/stations")
        await them.wait_for_url("**/login**")
        await screenshot(page, "users-list")
        await other.close()

        # the admin cannot lock themself out
        await page.goto("/admin/users")
        await expect(page.locator("#users tr", has_text="(you)").get_by_role("button", name="Disable")).to_have_count(0)
        await page.goto("/admin/audit")
        await expect(page.locator("#audit")).to_contain_text("disabled; sessions ended")
        await expect(page.locator("#audit")).to_contain_text("invited")
        await screenshot(page, "audit-log")
    async with admin_browser(srv, "admin", organization=alpha, width=390, height=844) as phone:
        await phone.goto("/admin/users")
        await screenshot(phone, "users-list-phone")
        await phone.goto("/admin/audit")
        await screenshot(phone, "audit-log-phone")


async def test_user_rules_hold_at_the_server(server):
    srv = server
    alpha, bravo = await _orgs(srv)
    bravo_user = await admin_client(srv, "viewer", organization=bravo, csrf_header=True)
    await bravo_user.aclose()
    admin = await admin_client(srv, "admin", organization=alpha, csrf_header=True)
    try:
        me = re.search(r'action="/admin/users/(\d+)/role"', (await admin.get("/admin/users")).text)
        assert me is None  # no role form for oneself
        from piccolo.apps.user.tables import BaseUser

        ids = {r["username"]: r["id"] for r in await BaseUser.select(BaseUser.id, BaseUser.username)}
        # another organization's user does not exist for this admin
        for path in ("active", "reset", "role"):
            answer = await admin.post(f"/admin/users/{ids['viewer-org' + str(bravo)]}/{path}", data={"active": "false"})
            assert answer.status_code == 404, path
        # nor can a user be given to an organization the admin does not manage
        invited = await admin.post("/admin/users/new", data={"username": "otto", "email": "otto@x.example",
                                                             "role": "viewer", "organization": str(bravo)})
        assert invited.status_code == 422 and not await BaseUser.exists().where(BaseUser.username == "otto")
        # nor locks themself out
        own = await admin.post(f"/admin/users/{ids['admin-org' + str(alpha)]}/active", data={"active": "false"})
        assert own.status_code == 400 and "yourself" in own.text
        # a role change ends the user's sessions, so the new rights apply at once
        invited = await admin.post("/admin/users/new", data={"username": "olga", "email": "olga@x.example",
                                                             "role": "viewer"})
        link = re.search(r'value="(http[^"]+/account/password/[^"]+)"', invited.text).group(1)
        async with httpx.AsyncClient(base_url=srv.base_url) as olga:
            page = await olga.get(link.replace(srv.base_url, ""))
            token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
            done = await olga.post(link.replace(srv.base_url, ""), data={
                "password": "olga-password-123", "repeat": "olga-password-123", "_csrf_token": token})
            assert done.status_code == 303
        changed = await admin.post(f"/admin/users/{(await BaseUser.select(BaseUser.id).where(BaseUser.username == 'olga').first())['id']}/role",
                                   data={"role": "operator", "organization": str(alpha)})
        assert changed.status_code == 303
        # own password: the current one is asked for; afterwards the sessions end
        wrong = await admin.post("/admin/account", data={"current": "nope", "password": "a-new-password-1",
                                                         "repeat": "a-new-password-1"})
        assert wrong.status_code == 422 and "not your current password" in wrong.text
        right = await admin.post("/admin/account", data={"current": ADMIN_PASSWORD, "password": "a-new-password-1",
                                                         "repeat": "a-new-password-1"})
        assert right.status_code == 303
        assert (await admin.get("/admin/users")).status_code in (302, 303, 401)
    finally:
        await admin.aclose()


@pytest.fixture
def mailbox(monkeypatch):
    with smtp_server(monkeypatch) as box:
        yield box


async def test_invitations_and_resets_go_by_email(server, mailbox):
    admin = await admin_client(server, "admin", csrf_header=True)
    try:
        invited = await admin.post("/admin/users/new", data={"username": "eva", "email": "eva@example.org",
                                                             "role": "viewer"})
        assert invited.status_code == 200 and "was sent to <strong>eva@example.org</strong>" in invited.text
        assert "/account/password/" not in invited.text  # the link went to her, not to the admin's screen
        assert len(mailbox.messages) == 1 and mailbox.messages[0]["To"] == "eva@example.org"
        body = mailbox.messages[0].get_payload(decode=True).decode()
        link = re.search(r"http://\S+/account/password/\S+", body).group(0)
        page = await admin.get(link.replace(server.base_url, ""))
        assert page.status_code == 200 and "eva" in page.text
        from piccolo.apps.user.tables import BaseUser

        eva = (await BaseUser.select(BaseUser.id).where(BaseUser.username == "eva").first())["id"]
        reset = await admin.post(f"/admin/users/{eva}/reset")
        assert reset.status_code == 200 and len(mailbox.messages) == 2
        assert (await admin.get(link.replace(server.base_url, ""))).status_code == 404  # the reset replaced it
    finally:
        await admin.aclose()


async def test_an_organization_in_use_is_not_deleted_and_the_page_says_why(server):
    srv = server
    parent = (await srv.api.post("/organizations", json={"name": "Holding"})).json()["id"]
    child = (await srv.api.post("/organizations", json={"name": "Subsidiary", "parent": parent})).json()["id"]
    staffed = (await srv.api.post("/organizations", json={"name": "Staffed"})).json()["id"]
    await (await admin_client(srv, "viewer", organization=staffed)).aclose()  # a user of Staffed
    admin = await admin_client(srv, "admin", csrf_header=True)
    try:
        below = await admin.post(f"/admin/organizations/{parent}/delete")
        assert below.status_code == 400 and "Organizations below this one come first" in below.text
        assert "text/html" in below.headers["content-type"]
        users = await admin.post(f"/admin/organizations/{staffed}/delete")
        assert users.status_code == 400 and "Users or API keys belong to this organization" in users.text
        assert (await srv.api.get(f"/organizations/{parent}")).status_code == 200
        assert (await srv.api.get(f"/organizations/{staffed}")).status_code == 200
        # over REST the same rule answers 409
        assert (await srv.api.delete(f"/organizations/{parent}")).status_code == 409
        assert (await admin.post(f"/admin/organizations/{child}/delete")).status_code == 303
        assert (await admin.post(f"/admin/organizations/{parent}/delete")).status_code == 303
    finally:
        await admin.aclose()
