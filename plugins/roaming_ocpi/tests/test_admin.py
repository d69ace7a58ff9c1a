"""The roaming admin pages: behind the login, in the admin's layout and navigation, and the
invite / partner / exchange pages working through a real login and CSRF-protected forms."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")

PASSWORD = "correct-horse-battery-staple"


def csrf(html: str) -> str:
    return re.search(r'name="_csrf_token" value="([^"]+)"', html).group(1)


async def logged_in(server, username: str, role: str) -> httpx.AsyncClient:
    from piccolo.apps.user.tables import BaseUser

    from csms.testing import set_role

    user = await BaseUser.create_user(username=username, password=PASSWORD, email=f"{username}@example.org",
                                      admin=role == "admin", superuser=role == "admin", active=True)
    await set_role(user.id, role)
    client = httpx.AsyncClient(base_url=server.base_url, follow_redirects=False, timeout=30)
    page = await client.get("/login")
    r = await client.post("/login", data={"username": username, "password": PASSWORD, "next": "/",
                                          "_csrf_token": csrf(page.text)})
    assert r.status_code == 303, r.text
    return client


async def test_roaming_pages(server):
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        r = await anonymous.get("/admin/roaming")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
    admin = await logged_in(server, "roamadmin", "admin")
    try:
        r = await admin.get("/admin/roaming")
        assert r.status_code == 200
        assert 'href="/admin/roaming"' in r.text and "Roaming (OCPI 2.2.1, 2.1.1)" in r.text
        assert "/ocpi/versions" in r.text and "NL/CPO" in r.text
        r = await admin.post("/admin/roaming/invite", data={"name": "Page partner", "_csrf_token": csrf(r.text)})
        assert r.status_code == 200 and "Page partner" in r.text
        assert r.headers["content-type"].startswith("text/html") and r.headers["cache-control"] == "no-store"
        token_a = re.search(r'<pre id="token-a"[^>]*><code>([^<]+)</code></pre>', r.text).group(1)
        assert len(token_a) >= 32
        partner_id = max(p["id"] for p in (await server.api.get("/roaming/partners")).json()["items"])
        r = await admin.get(f"/admin/roaming/partners/{partner_id}")
        assert r.status_code == 200 and "Page partner" in r.text and "invited" in r.text
        assert token_a not in r.text  # shown once, never again
        r = await admin.get("/admin/roaming/exchange")
        assert r.status_code == 200 and "Partners' tokens" in r.text
        r = await admin.post("/admin/roaming/invite", data={"name": "no csrf"})
        assert r.status_code == 403
    finally:
        await admin.aclose()
    viewer = await logged_in(server, "roamviewer", "viewer")
    try:
        r = await viewer.get("/admin/roaming")
        assert r.status_code == 200 and "Issue token A" not in r.text
        r = await viewer.post("/admin/roaming/invite", data={"name": "x", "_csrf_token": csrf(r.text)})
        assert r.status_code == 403
    finally:
        await viewer.aclose()


async def test_failed_registration_in_the_admin(server):
    """The register form against a partner that refuses our token: a clear error, the partner
    listed as failed with its reason, and a retry from its page that registers it."""
    from plugins.roaming_ocpi.tests.fake_partner import fake_partner

    admin = await logged_in(server, "roamregister", "admin")
    try:
        async with fake_partner(role="CPO", party_id="FAD", accepted={"fake-token-a"}) as partner:
            page = await admin.get("/admin/roaming")
            r = await admin.post("/admin/roaming/register", data={
                "name": "Refusing partner", "versions_url": partner.versions_url, "token": "wrong",
                "_csrf_token": csrf(page.text)})
            assert r.status_code == 502
            assert "Registration failed for “Refusing partner”: could not read the partner&#39;s versions" in r.text
            assert "register again to retry" in r.text and 'class="badge bad">failed' in r.text
            partner_id = max(p["id"] for p in (await server.api.get("/roaming/partners")).json()["items"])
            r = await admin.get(f"/admin/roaming/partners/{partner_id}")
            assert r.status_code == 200 and "The registration with this partner failed" in r.text
            assert f'action="/admin/roaming/partners/{partner_id}/register"' in r.text
            r = await admin.post(f"/admin/roaming/partners/{partner_id}/register", data={
                "versions_url": partner.versions_url, "token": "fake-token-a", "_csrf_token": csrf(r.text)})
            # the notice travels as a key and is worded by the page, in the viewer's language
            assert r.status_code == 303 and r.headers["location"] == f"/admin/roaming/partners/{partner_id}?m=registered"
            assert "Registered." in (await admin.get(r.headers["location"])).text
            row = (await server.api.get(f"/roaming/partners/{partner_id}")).json()
            assert row["status"] == "registered" and row["party_id"] == "FAD"
            r = await admin.get(f"/admin/roaming/partners/{partner_id}")
            assert "The registration with this partner failed" not in r.text
            assert f'action="/admin/roaming/partners/{partner_id}/register"' not in r.text
            await server.api.delete(f"/roaming/partners/{partner_id}")
    finally:
        await admin.aclose()
