"""A test kit for the CSMS and its plugins: a real server on a free loopback port, on SQLite or
PostgreSQL, with an API key, torn down cleanly. Used by the core's tests and by plugin tests.

    async with running_server(tmp_path, backend="sqlite") as srv:
        ...  # srv.ws_url("CP1"), srv.api (an httpx.AsyncClient with the key), srv.core

Also here for tests: a simulated station (:class:`SimStation`), the plugin manager (:data:`pm`,
to register a test's hook implementations), admin login (:func:`login`, :data:`SESSION_COOKIE`),
role changes (:func:`set_role`) and the smart-charging settings (:class:`SmartChargingSettings`).
Plugin tests import from here and from :mod:`csms.plugin_api` only.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import os
import re
import socket
import sys
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Literal

import httpx

from csms.admin.auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, login
from csms.csvexport import FORMULA_PREFIXES
from csms.plugins import pm
from csms.roles import set_role
from csms.settings import SmartChargingSettings
from csms_tools.simulator import SimStation

PG_ADMIN_URL = os.environ.get("CSMS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

#: Text a CSV injection test plants in idTags, names and labels; every export must neutralise it.
FORMULA_PAYLOADS = ('=HYPERLINK("//x")', "+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def formula_cells(text: str) -> list[str]:
    """The cells of a CSV text a spreadsheet would evaluate as a formula (a safe export has
    none); a plain number such as ``-3.50`` is a number, not a formula."""
    return [cell for row in csv_rows(text) for cell in row
            if cell.startswith(FORMULA_PREFIXES) and not _NUMBER.fullmatch(cell)]


@dataclass
class RunningServer:
    port: int
    api_key: str
    core: Any
    api: httpx.AsyncClient
    database_url: str
    tls: bool = False
    app: Any = None  # the Litestar app (its route table)
    tls_port: int = 0  # the second, TLS listener (settings.tls_port), 0 without one

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def ws_url(self, station_id: str) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/ocpp/{station_id}"

    def wss_url(self, station_id: str) -> str:
        """The station's address on the TLS listener (``tls_port``)."""
        return f"wss://127.0.0.1:{self.tls_port}/ocpp/{station_id}"


@asynccontextmanager
async def temporary_database(tmp_path: Path, backend: str, *, migrated: bool = False) -> AsyncIterator[str]:
    """A fresh database: a new PostgreSQL database, or the SQLite file ``tmp_path/csms.sqlite``
    (the one there, as it is, if an earlier server left one: a restart on the same data). With
    ``migrated`` a new one holds every migration already, copied from a template this process
    migrated once (a migration run costs 0.4 s on SQLite and 0.8 s on PostgreSQL; a copy a few
    milliseconds and 0.1 s)."""
    if backend == "sqlite":
        path = tmp_path / "csms.sqlite"
        if migrated and not path.exists():
            await _copy_sqlite(await _template("sqlite"), path)
        yield f"sqlite:///{path}"
        return
    name = f"csms_test_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{await _template("postgres")}"' if migrated else ""
    await _pg_admin(f'CREATE DATABASE "{name}"{template}')
    try:
        yield _pg_url(name)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_url(name: str) -> str:
    """The URL of database ``name`` on the test PostgreSQL server."""
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


async def _pg_admin(statement: str) -> None:
    """Run ``statement`` (CREATE or DROP DATABASE) on the test PostgreSQL server's admin database."""
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


# per backend: this process's migrated template (a SQLite file's path, a PostgreSQL database's name)
_templates: dict[str, str] = {}


async def _template(backend: str) -> str:
    """This process's migrated template database of ``backend``, made at the first call (two
    first calls at once make one each, and the first stays: no lock, which would bind itself
    to one test's event loop). The migrations are those of the plugins loaded then; a server
    started on a copy applies any that came later (a plugin a test registers) as it always does."""
    if backend not in _templates:
        made = await _make_template(backend)
        _templates.setdefault(backend, made)
    return _templates[backend]


async def _make_template(backend: str) -> str:
    import atexit
    import shutil
    import tempfile

    from csms.db import close_engine, make_engine, migrate, open_engine, use_engine

    if backend == "sqlite":
        folder = tempfile.mkdtemp(prefix="csms-template-")
        atexit.register(shutil.rmtree, folder, True)
        template = os.path.join(folder, "csms.sqlite")
        url = f"sqlite:///{template}"
    else:
        template = f"csms_template_{uuid.uuid4().hex[:12]}"
        await _pg_admin(f'CREATE DATABASE "{template}"')
        atexit.register(_drop_database, template)
        url = _pg_url(template)
    use_engine(make_engine(url))
    await open_engine()
    try:
        await migrate()
    finally:
        await close_engine()
    return template


async def _copy_sqlite(source: str, target: Path) -> None:
    """A consistent copy of a SQLite database (its write-ahead log included), in a thread."""
    import sqlite3

    def copy() -> None:
        with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
        with sqlite3.connect(target) as dst:  # the copy is in rollback-journal mode; the server's is WAL
            dst.execute("PRAGMA journal_mode=WAL")

    target.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(copy)


def _drop_database(name: str) -> None:
    """At the process's exit: drop a template database (nothing is connected to it any more)."""
    try:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except Exception:  # the database server may be gone by then; a leftover template is harmless
        pass


@asynccontextmanager
async def running_server(tmp_path: Path, *, backend: str = "sqlite", tune_collector: bool = False,
                         **overrides: Any) -> AsyncIterator[RunningServer]:
    """A server on a fresh database of ``backend`` ("sqlite" or "postgres")."""
    async with temporary_database(tmp_path, backend, migrated=True) as url:
        if backend != "sqlite":
            overrides["database_url"] = url
        async with server_on(tmp_path, tune_collector=tune_collector, **overrides) as srv:
            yield srv


@asynccontextmanager
async def server_on(tmp_path: Path, *, tune_collector: bool = False, **overrides: Any) -> AsyncIterator[RunningServer]:
    """A server in this process on the database the settings name (migrated on start). The app
    tunes the collector only with ``tune_collector`` (see :func:`csms.app.create_app`): a test
    process starts many."""
    from csms.app import create_app
    from csms.db import close_engine, make_engine, migrate, open_engine, use_engine
    from csms.server import make_server
    from csms.settings import load_settings

    settings = load_settings(data_dir=tmp_path, **overrides)
    use_engine(make_engine(settings.effective_database_url))
    await open_engine()
    await migrate()
    from csms.core.security import new_api_key
    from csms.core.tables import ApiKey

    key, prefix, digest = new_api_key()
    await ApiKey(name="tests", prefix=prefix, key_hash=digest, role="admin").save()
    app = create_app(settings, manage_database=False, tune_collector=tune_collector)
    port = free_port()
    if settings.tls_port == port:
        port = free_port()
    settings = settings.model_copy(update={"port": port})
    server = make_server(app, settings, host="127.0.0.1", port=port, log_level="warning")  # as `csms serve`
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    tls = settings.port_is_tls
    api = httpx.AsyncClient(base_url=f"{'https' if tls else 'http'}://127.0.0.1:{port}/api/v1",
                            headers={"Authorization": f"Bearer {key}"}, timeout=30, verify=False)
    try:
        yield RunningServer(port, key, app.state.core, api, settings.effective_database_url, tls, app,
                            settings.tls_port)
    finally:
        await api.aclose()
        server.should_exit = True
        await stopped(task)
        await close_engine()
        if not tune_collector:
            freeze_what_lives_on()


def freeze_what_lives_on() -> None:
    """Once a test process's first server has stopped (and again after an app that tuned the
    collector has unfrozen everything): freeze what lives on, the modules it imported, compiled
    validators and templates, out of the collector's sight. A test process holds some 400,000
    objects by then, and its full collections (about one a test) scanned them all again: the
    collector's time in three test files went from 22 s to 13 s."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


@asynccontextmanager
async def asgi_server(app: Any, port: int, *, lifespan: Literal["on", "off"] = "off") -> AsyncIterator[Any]:
    """A test's stand-in peer (an ASGI 3 app: a webhook receiver, a push service, a partner) served by
    uvicorn on 127.0.0.1:``port`` while the block runs. Its shutdown waits at most a second for
    open connections (the CSMS under test may hold a keep-alive one to it) and fails the test with
    the tasks' stacks if it still does not end."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan=lifespan, log_level="warning",
                                           interface="asgi3", timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        await stopped(task)


async def stopped(task: asyncio.Task[Any], limit: float = 60.0) -> None:
    """Wait for a server's task to end; one that has not ended after ``limit`` seconds (a
    shutdown step hangs) fails the test with every task's stack printed, not a silent timeout."""
    done, _ = await asyncio.wait({task}, timeout=limit)
    if done:
        task.result()
        return
    out = io.StringIO()
    for other in asyncio.all_tasks():
        if other is not asyncio.current_task():
            other.print_stack(file=out)
    print(out.getvalue(), file=sys.stderr)
    task.cancel()
    raise AssertionError(f"the server did not stop within {limit:.0f} s; the tasks' stacks are printed above")


ADMIN_PASSWORD = "correct-horse-battery-staple"


async def admin_client(srv: RunningServer, role: str = "operator", *,
                       organization: int | None = None, csrf_header: bool = False) -> httpx.AsyncClient:
    """An HTTP client logged in to the admin of ``srv`` as a user with ``role`` (created on first
    use, named after the role, and the organization if given: a user of that organization; else
    global), through the login form as a person would. With ``csrf_header`` its requests carry
    the CSRF header the admin's pages send (HTMX does), so form posts pass the CSRF check without
    a ``_csrf_token`` field."""
    from piccolo.apps.user.tables import BaseUser

    username = role if organization is None else f"{role}-org{organization}"
    if not await BaseUser.exists().where(BaseUser.username == username):
        superuser = role == "admin" and organization is None
        user = await BaseUser.create_user(username=username, password=ADMIN_PASSWORD,
                                          email=f"{username}@example.org", admin=superuser, superuser=superuser,
                                          active=True)
        await set_role(user.id, role, organization)
    client = httpx.AsyncClient(base_url=srv.base_url, timeout=30)
    page = await client.get("/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token is not None, "the login page has no CSRF token"
    done = await client.post("/login", data={"username": username, "password": ADMIN_PASSWORD,
                                             "_csrf_token": token.group(1)})
    assert done.status_code in (302, 303), done.text
    csrf = client.cookies.get(CSRF_COOKIE)
    if csrf_header and csrf:
        client.headers[CSRF_HEADER] = csrf
    return client


async def driver_cookie(driver_id: int) -> dict[str, str]:
    """A driver portal session cookie for driver ``driver_id`` (``name`` and ``value``), as signing
    in by link or password makes one; for a test that is not about signing in."""
    from csms.core.driver_accounts import new_session
    from csms.driver import DRIVER_COOKIE

    return {"name": DRIVER_COOKIE, "value": await new_session(driver_id)}


async def driver_client(srv: RunningServer, driver_id: int) -> httpx.AsyncClient:
    """An HTTP client signed in to the driver portal of ``srv`` as driver ``driver_id``."""
    cookie = await driver_cookie(driver_id)
    return httpx.AsyncClient(base_url=srv.base_url, timeout=30, cookies={cookie["name"]: cookie["value"]})


SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@asynccontextmanager
async def admin_browser(srv: RunningServer, role: str = "operator", *, width: int = 1280,
                        height: int = 900, organization: int | None = None) -> AsyncIterator[Any]:
    """A page of Debian's headless Chromium (Playwright, never a downloaded browser) logged in to
    the admin of ``srv`` through the login form as a user of ``role`` (created on first use; of
    ``organization`` when given, as :func:`admin_client`)."""
    import shutil

    import pytest
    from playwright.async_api import async_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    await (await admin_client(srv, role, organization=organization)).aclose()  # the user, created on first use
    username = role if organization is None else f"{role}-org{organization}"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(base_url=srv.base_url, viewport={"width": width, "height": height})
            page = await context.new_page()
            page.set_default_timeout(15_000)
            await page.goto("/login")
            await page.get_by_label("Username").fill(username)
            await page.get_by_label("Password").fill(ADMIN_PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.wait_for_url(lambda url: "/login" not in url)
            yield page
        finally:
            await browser.close()


async def screenshot(page: Any, name: str) -> Path:
    """A full-page screenshot in test-artifacts/screenshots/<name>.png, to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
