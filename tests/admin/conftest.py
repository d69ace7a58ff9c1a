"""Fixtures of the admin tests: users of each role, a headless Debian Chromium (Playwright),
and logged-in pages against the real server (``server`` from tests/conftest.py)."""

from __future__ import annotations

import shutil
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import httpx
import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "correct-horse-battery-staple"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(autouse=True, scope="session")
def patient_expectations() -> None:
    """Live updates cross a WebSocket, the event queue, SSE and a fetch: allow a loaded machine time."""
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)


@pytest.fixture(autouse=True)
def unreachable_map_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """No internet here: point the map at a port nobody listens on, so tiles fail at once."""
    monkeypatch.setenv("CSMS_MAP_TILE_URL", "http://127.0.0.1:9/{z}/{x}/{y}.png")


async def create_users() -> dict[str, Any]:
    from piccolo.apps.user.tables import BaseUser

    from csms.roles import set_role

    users = {}
    for name, role in (("admin", "admin"), ("operator", "operator"), ("viewer", "viewer")):
        user = await BaseUser.create_user(username=name, password=PASSWORD, email=f"{name}@example.org",
                                          admin=role == "admin", superuser=role == "admin", active=True)
        await set_role(user.id, role)
        users[role] = user
    return users


@pytest.fixture
async def users(server) -> dict[str, Any]:
    return await create_users()


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    """Headless Chromium from Debian (never a downloaded browser)."""
    from playwright.async_api import async_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def browser(server, chromium) -> AsyncIterator[Any]:
    """The browser for ``server``: set up after it and closed before it stops, because a
    server shutting down waits for the open SSE streams."""
    yield chromium


async def login(browser: Any, base_url: str, username: str, *, width: int = 1280, height: int = 900,
                javascript: bool = True) -> Any:
    context = await browser.new_context(base_url=base_url, viewport={"width": width, "height": height},
                                        java_script_enabled=javascript)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    await page.goto("/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(lambda url: "/login" not in url)
    return page


@pytest.fixture
def page_as(browser, server, users) -> Callable[..., Awaitable[Any]]:
    async def make(role: str, **kwargs: Any) -> Any:
        return await login(browser, server.base_url, role, **kwargs)

    return make


async def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


@asynccontextmanager
async def http_login(base_url: str, username: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client logged in through the login form (cookies kept), for non-browser checks."""
    async with httpx.AsyncClient(base_url=base_url, follow_redirects=False, timeout=30) as client:
        await client.get("/login")
        response = await client.post("/login", data={"username": username, "password": PASSWORD, "next": "/",
                                                      "_csrf_token": client.cookies.get("csms_csrftoken")})
        assert response.status_code == 303, response.text
        yield client

