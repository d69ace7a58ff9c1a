"""Secure by default: every route a plugin registers needs a login (pages) or an API key
(``/api/``), with the core's role rule and CSRF check, unless the plugin declares it public with a
reason, which ``csms plugins`` and the admin's plugins page show."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from litestar import MediaType, Router, get, post
from litestar.routes import HTTPRoute

from csms import hookimpl, public_route
from csms.api.auth import create_api_key
from csms.app import plugin_route_guard
from csms.plugin_routes import public_reason
from csms.plugins import pm
from csms.testing import running_server
from tests.admin.conftest import create_users, http_login

SECRET = "third-party revenue figures"
changes: list[str] = []


@get("/", media_type=MediaType.HTML)
async def page() -> str:
    return f"<p>{SECRET}</p>"


@post("/", media_type=MediaType.HTML)
async def change() -> str:
    changes.append("page")
    return "changed"


@post("/no-csrf", media_type=MediaType.HTML, opt={"exclude_from_csrf": True})  # the middleware skips it
async def no_csrf() -> str:
    changes.append("no-csrf")
    return "changed"


@get("/sneaky", media_type=MediaType.HTML, opt={"public": True})  # no reason: not public
async def sneaky() -> str:
    return SECRET


@get("/api/v1/thirdparty")
async def api_read() -> dict[str, Any]:
    return {"figures": SECRET}


@post("/api/v1/thirdparty")
async def api_write() -> dict[str, Any]:
    changes.append("api")
    return {"changed": True}


@get("/thirdparty/map")
async def public_map() -> dict[str, Any]:
    return {"chargers": 3}


class ThirdParty:
    """A plugin that forgot every guard, and declares one route public on purpose."""

    @hookimpl
    def register_routes(self, settings):
        return [Router(path="/admin/thirdparty", route_handlers=[page, change, no_csrf, sneaky]), api_read, api_write,
                public_route(public_map, "a public map of our chargers, no personal data")]


@pytest.fixture
async def third_party(tmp_path):
    changes.clear()
    pm.register(ThirdParty(), name="thirdparty")
    try:
        async with running_server(tmp_path) as srv:
            await create_users()
            yield srv
    finally:
        pm.unregister(name="thirdparty")


async def test_a_page_that_forgot_its_guard_needs_a_login_a_role_and_a_csrf_token(third_party):
    srv = third_party
    async with httpx.AsyncClient(base_url=srv.base_url) as anonymous:
        for path in ("/admin/thirdparty", "/admin/thirdparty/sneaky"):
            r = await anonymous.get(path)
            assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}"
            assert SECRET not in r.text
        r = await anonymous.post("/admin/thirdparty")
        assert r.status_code == 403 and SECRET not in r.text
    async with http_login(srv.base_url, "viewer") as viewer:
        r = await viewer.get("/admin/thirdparty")
        assert r.status_code == 200 and SECRET in r.text
        token = viewer.cookies.get("csms_csrftoken")
        r = await viewer.post("/admin/thirdparty", headers={"x-csrftoken": token})
        assert r.status_code == 403 and "operator role" in r.text
    async with http_login(srv.base_url, "operator") as operator:
        for path in ("/admin/thirdparty", "/admin/thirdparty/no-csrf"):
            r = await operator.post(path)  # no CSRF token
            assert r.status_code == 403
        assert changes == []
        for path in ("/admin/thirdparty", "/admin/thirdparty/no-csrf"):
            r = await operator.post(path, headers={"x-csrftoken": operator.cookies.get("csms_csrftoken")})
            assert r.status_code == 201
        assert changes == ["page", "no-csrf"]


async def test_an_api_route_that_forgot_its_guard_needs_a_key_with_the_role(third_party):
    srv = third_party
    async with httpx.AsyncClient(base_url=srv.base_url) as anonymous:
        assert (await anonymous.get("/api/v1/thirdparty")).status_code == 401
        assert (await anonymous.post("/api/v1/thirdparty")).status_code == 401
    viewer_key, _ = await create_api_key("viewer", "viewer")
    async with httpx.AsyncClient(base_url=srv.base_url, headers={"Authorization": f"Bearer {viewer_key}"}) as viewer:
        assert (await viewer.get("/api/v1/thirdparty")).json() == {"figures": SECRET}
        assert (await viewer.post("/api/v1/thirdparty")).status_code == 403
    assert changes == []
    assert (await srv.api.post("/thirdparty")).status_code == 201 and changes == ["api"]


async def test_a_route_declared_public_is_open_and_listed_with_its_reason(third_party, capsys):
    from csms.cli import main

    srv = third_party
    async with httpx.AsyncClient(base_url=srv.base_url) as anonymous:
        r = await anonymous.get("/thirdparty/map")
        assert r.status_code == 200 and r.json() == {"chargers": 3}
    main(["plugins"])
    out = capsys.readouterr().out
    assert "    public: /thirdparty/map: a public map of our chargers, no personal data" in out
    assert "public: /admin/thirdparty" not in out
    async with http_login(srv.base_url, "viewer") as viewer:
        r = await viewer.get("/admin/plugins")
        assert r.status_code == 200
        assert "<code>/thirdparty/map</code>: a public map of our chargers, no personal data" in r.text


def test_a_public_declaration_needs_a_reason():
    with pytest.raises(ValueError):
        public_route(page, " ")


def _concrete(path: str) -> str:
    """A request path for a route template: every parameter filled with a plausible value."""
    return re.sub(r"\{(\w+):(\w+)\}", lambda m: "1" if m[2] in ("int", "float", "decimal") else "x", path)


async def test_every_guarded_route_of_the_shipped_plugins_refuses_a_caller_without_credentials(server):
    checked, public = 0, set()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as anonymous:
        for route in server.app.routes:
            if not isinstance(route, HTTPRoute):
                continue
            for handler in route.route_handlers:
                if plugin_route_guard not in handler.resolve_guards():
                    continue  # a core route
                if public_reason(handler.opt):
                    public.add(route.path)
                    continue
                for method in handler.http_methods:
                    r = await anonymous.request(method, _concrete(route.path))
                    # a driver portal page (under /driver/) leads to the portal's sign-in, any other to the admin's
                    sign_in = "/driver" if route.path.startswith("/driver/") else "/login"
                    refused = r.status_code in (401, 403) or (
                        r.status_code == 303 and r.headers["location"].startswith(sign_in))
                    assert refused, f"{method} {route.path} answered {r.status_code} without credentials"
                    checked += 1
    assert checked > 100  # every plugin's admin pages and REST routes
    assert {"/firmware/{file_name:str}", "/notifications/driver/{token:str}", "/ocpi/versions"} <= public
