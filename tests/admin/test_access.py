"""Access without a browser: login, roles, CSRF, the REST API with a session, piccolo-admin."""

from __future__ import annotations

import httpx

from csms.core.tables import IdToken, Site
from tests.admin.conftest import PASSWORD, http_login


async def test_pages_need_a_login(server, users):
    async with httpx.AsyncClient(base_url=server.base_url, follow_redirects=False) as anonymous:
        r = await anonymous.get("/admin/stations?q=x")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/admin/stations%3Fq%3Dx"
        r = await anonymous.get("/")
        assert r.headers["location"] == "/login"
        r = await anonymous.get("/admin/dashboard/stats", headers={"HX-Request": "true",
                                                                    "HX-Current-URL": f"{server.base_url}/"})
        assert r.status_code == 401 and r.headers["hx-redirect"] == "/login"
        assert (await anonymous.get("/admin/stream")).status_code == 401


async def test_wrong_password_is_refused(server, users):
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        await client.get("/login")
        r = await client.post("/login", data={"username": "admin", "password": "nope", "_csrf_token":
                                              client.cookies.get("csms_csrftoken")})
        assert r.status_code == 401
        assert "incorrect" in r.text
        assert "id" not in client.cookies


async def test_login_then_logout(server, users):
    async with http_login(server.base_url, "operator") as client:
        assert (await client.get("/admin/sessions")).status_code == 200
        for typed in ("/admin", "/admin/"):  # what an operator types goes to the dashboard
            r = await client.get(typed, follow_redirects=True)
            assert r.status_code == 200 and r.url.path == "/" and "Dashboard" in r.text
        r = await client.post("/logout", data={"_csrf_token": client.cookies.get("csms_csrftoken")})
        assert r.status_code == 303
        assert (await client.get("/admin/sessions")).status_code == 303


async def test_post_without_csrf_token_is_refused(server, users):
    async with http_login(server.base_url, "admin") as client:
        r = await client.post("/admin/tokens/new", data={"id_token": "NOCSRF", "type": "ISO14443",
                                                         "status": "Accepted"})
        assert r.status_code == 403
        assert not await IdToken.exists().where(IdToken.id_token == "NOCSRF")
        r = await client.post("/admin/tokens/new", data={"id_token": "WITHCSRF", "type": "ISO14443",
                                                         "status": "Accepted",
                                                         "_csrf_token": client.cookies.get("csms_csrftoken")})
        assert r.status_code == 303
        assert await IdToken.exists().where(IdToken.id_token == "WITHCSRF")


async def test_viewer_posts_are_refused(server, users):
    async with http_login(server.base_url, "viewer") as client:
        token = client.cookies.get("csms_csrftoken")
        assert (await client.get("/admin/tokens")).status_code == 200
        r = await client.post("/admin/sites/new", data={"name": "Depot", "voltage_v": "230", "_csrf_token": token})
        assert r.status_code == 403
        assert "viewer" in r.text
        assert not await Site.exists().where(Site.name == "Depot")
        r = await client.post("/admin/stations/CP1/actions/reset", data={"kind": "soft", "_csrf_token": token},
                              headers={"HX-Request": "true"})
        assert r.status_code == 403


async def test_session_login_works_for_the_rest_api(server, users):
    async with http_login(server.base_url, "operator") as client:
        r = await client.get("/api/v1/stations/")
        assert r.status_code == 200
        body = {"id_token": "API-BY-SESSION"}
        # a write riding only on the cookie could be forged cross-site: it needs the CSRF header
        assert (await client.post("/api/v1/tokens/", json=body)).status_code == 401
        r = await client.post("/api/v1/tokens/", json=body,
                              headers={"x-csrftoken": client.cookies.get("csms_csrftoken")})
        assert r.status_code == 201, r.text
    async with http_login(server.base_url, "viewer") as viewer:
        r = await viewer.post("/api/v1/tokens/", json={"id_token": "NOPE"},
                              headers={"x-csrftoken": viewer.cookies.get("csms_csrftoken")})
        assert r.status_code == 403


async def test_piccolo_admin_is_for_superusers(server, users):
    async with httpx.AsyncClient(base_url=server.base_url, follow_redirects=False) as anonymous:
        r = await anonymous.get("/admin/db/")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/admin/db/"
    async with http_login(server.base_url, "operator") as operator:
        assert (await operator.get("/admin/db/")).status_code == 403
        assert (await operator.get("/admin/db/api/tables/")).status_code == 403
    async with http_login(server.base_url, "admin") as admin:
        r = await admin.get("/admin/db/")
        assert r.status_code == 200 and "assets/" in r.text
        r = await admin.get("/admin/db/api/tables/")
        assert r.status_code == 200 and "charging_session" in r.json()
        r = await admin.get("/admin/db/api/user/")
        assert r.json()["username"] == "admin"


async def test_next_is_only_a_local_path(server, users):
    async with httpx.AsyncClient(base_url=server.base_url, follow_redirects=False) as client:
        await client.get("/login")
        r = await client.post("/login", data={"username": "admin", "password": PASSWORD,
                                              "next": "//evil.example/", "_csrf_token":
                                                  client.cookies.get("csms_csrftoken")})
        assert r.status_code == 303 and r.headers["location"] == "/"


async def test_password_guessing_is_slowed_down(server, users):
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        await client.get("/login")
        form = {"username": "admin", "password": "guess", "_csrf_token": client.cookies.get("csms_csrftoken")}
        statuses = [(await client.post("/login", data=form)).status_code for _ in range(21)]
        assert statuses[:20] == [401] * 20 and statuses[20] == 429
        r = await client.post("/login", data={**form, "password": PASSWORD})
        assert r.status_code == 429 and "Too many attempts" in r.text  # even the right password, for a while


async def test_login_hashes_passwords_in_the_cpu_pool(server, users, monkeypatch):
    """PBKDF2 of a login (right, wrong or unknown user) runs in csms.core.offload's pool, never on
    the event loop; a right login records last_login and upgrades a hash of an old iteration count."""
    import threading

    from piccolo.apps.user.tables import BaseUser

    original = BaseUser.hash_password
    await BaseUser.update({BaseUser.password: original(PASSWORD, iterations=1000)}).where(
        BaseUser.username == "operator")
    threads: list[str] = []

    def recording(password: str, salt: str = "", iterations: int | None = None) -> str:
        threads.append(threading.current_thread().name)
        return original(password, salt, iterations)

    monkeypatch.setattr(BaseUser, "hash_password", staticmethod(recording))
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        await client.get("/login")
        for username, password, status in (("nobody", PASSWORD, 401), ("operator", "wrong", 401),
                                           ("operator", PASSWORD, 303)):
            r = await client.post("/login", data={"username": username, "password": password,
                                                  "_csrf_token": client.cookies.get("csms_csrftoken")})
            assert r.status_code == status
    assert len(threads) >= 4 and all(name.startswith("csms-cpu") for name in threads), threads
    row = await BaseUser.select(BaseUser.password, BaseUser.last_login).where(
        BaseUser.username == "operator").first()
    assert row["last_login"] is not None
    assert row["password"].split("$")[1] == str(BaseUser._pbkdf2_iteration_count)
