"""The plugin contract: every hook documented, and each family exercised end to end."""

from __future__ import annotations

import asyncio
import inspect
import re
from decimal import Decimal
from pathlib import Path

import pytest
from litestar import get
from ocpp.v201 import call

from csms import AuthorizationResult, SessionCost, hookimpl, hookspecs
from csms.core import events as ev
from csms.plugins import pm
from tests.stations import connect

DOCS = Path(__file__).parent.parent / "docs" / "hooks.md"


def hook_names() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "csms_spec")]


def test_every_hook_is_documented():
    documented = set(re.findall(r"^### `(\w+)\(", DOCS.read_text(), flags=re.M))
    names = hook_names()
    assert names, "no hook specs found"
    missing = set(names) - documented
    assert not missing, f"hooks without documentation in docs/hooks.md: {sorted(missing)}"
    assert not documented - set(names), "docs/hooks.md documents hooks that do not exist"


def test_documented_arguments_match_specs():
    text = DOCS.read_text()
    for name in hook_names():
        args = list(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"### `{name}({', '.join(args)})`" in text, f"signature of {name} differs in docs"


class RecordingPlugin:
    """A plugin touching every family; registered for one test and removed after."""

    def __init__(self) -> None:
        self.events: list[ev.Event] = []
        self.settled: list[int] = []
        self.fail_settle_once = True
        self.started = False

    @hookimpl
    def startup(self, app):
        self.started = True

    @hookimpl
    def authorize_token(self, id_token):
        if id_token.startswith("ROAM-"):
            async def remote_check():
                await asyncio.sleep(0)
                return AuthorizationResult("Accepted", group_id="ROAMING")
            return remote_check()  # an awaitable: the core awaits it
        return None

    @hookimpl
    def price_session(self, session, final):
        return SessionCost("EUR", Decimal("0.30") * Decimal(str(session["energy_wh"])) / 1000,
                           Decimal("0.36") * Decimal(str(session["energy_wh"])) / 1000, final=final)

    @hookimpl
    def settle_session(self, session, cost):
        if self.fail_settle_once:
            self.fail_settle_once = False
            raise RuntimeError("payment provider unavailable")
        assert cost.final and cost.currency == "EUR"
        self.settled.append(session["id"])

    @hookimpl
    def event(self, event):
        self.events.append(event)


class BrokenPlugin:
    @hookimpl(tryfirst=True)
    def authorize_token(self):
        raise RuntimeError("a bug in a plugin")

    @hookimpl
    def event(self, event):
        raise RuntimeError("another bug")


@pytest.fixture
def plugin():
    p, broken = RecordingPlugin(), BrokenPlugin()
    pm.register(p, name="recording")
    pm.register(broken, name="broken")
    yield p
    pm.unregister(name="recording")
    pm.unregister(name="broken")


async def test_families_end_to_end(plugin, tmp_path, monkeypatch):
    from csms.core.services import settlement
    from csms.testing import running_server

    monkeypatch.setattr(settlement, "RETRY_DELAYS", (0.1, 0.1))
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        assert plugin.started
        async with connect(srv.ws_url("HOOKS"), "HOOKS") as cp:
            await cp.call(call.BootNotification(charging_station={"model": "M", "vendor_name": "V"},
                                                reason="PowerUp"))
            # authorization: the plugin answers for roaming tokens (despite a broken plugin first)
            r = await cp.call(call.Authorize(id_token={"id_token": "ROAM-42", "type": "eMAID"}))
            assert r.id_token_info == {"status": "Accepted",
                                       "group_id_token": {"id_token": "ROAMING", "type": "Central"}}
            r = await cp.call(call.Authorize(id_token={"id_token": "LOCAL-1", "type": "ISO14443"}))
            assert r.id_token_info["status"] == "Unknown"
            await cp.call(call.TransactionEvent(
                event_type="Started", timestamp="2026-01-05T10:00:00Z", trigger_reason="Authorized", seq_no=0,
                transaction_info={"transaction_id": "h1"}, evse={"id": 1, "connector_id": 1},
                id_token={"id_token": "ROAM-42", "type": "eMAID"},
                meter_value=[{"timestamp": "2026-01-05T10:00:00Z", "sampled_value": [{"value": 0.0}]}]))
            await cp.call(call.TransactionEvent(
                event_type="Ended", timestamp="2026-01-05T10:30:00Z", trigger_reason="StopAuthorized", seq_no=1,
                transaction_info={"transaction_id": "h1"},
                meter_value=[{"timestamp": "2026-01-05T10:30:00Z", "sampled_value": [{"value": 10000.0}]}]))
        # pricing: the session's cost comes from the plugin
        session = (await srv.api.get("/sessions", params={"station": "HOOKS"})).json()["items"][0]
        detail = (await srv.api.get(f"/sessions/{session['id']}")).json()
        assert detail["cost"]["total_excl_vat"] == "3.000" and detail["cost"]["currency"] == "EUR"
        # settlement: failed once, retried, settled exactly once
        for _ in range(50):  # the core records settled_at once every implementation succeeded
            detail = (await srv.api.get(f"/sessions/{session['id']}")).json()
            if plugin.settled and detail["settled_at"] is not None:
                break
            await asyncio.sleep(0.1)
        assert plugin.settled == [session["id"]]
        assert detail["settled_at"] is not None
        # events: delivered in order, after the answers, despite a failing plugin
        await srv.core.events.drain()
        names = [e.name for e in plugin.events]
        assert names[0] == "station.connected"
        for expected in ("station.booted", "session.started", "meter.values", "session.stopped",
                         "station.disconnected"):
            assert expected in names
        assert names.index("session.started") < names.index("session.stopped")


@get("/api/v1/hello-plugin")
async def hello() -> dict:
    return {"hello": "plugin"}


class RoutePlugin:
    @hookimpl
    def register_routes(self):
        return [hello]


async def test_register_routes(tmp_path):
    from csms.testing import running_server

    pm.register(RoutePlugin(), name="routes")
    try:
        async with running_server(tmp_path) as srv:
            r = await srv.api.get("/hello-plugin")
            assert r.json() == {"hello": "plugin"}
    finally:
        pm.unregister(name="routes")


def test_cli_lists_plugins(capsys):
    from csms.cli import main

    main(["plugins"])
    out = capsys.readouterr().out
    assert "csms.core.default_authorization" in out and "authorize_token" in out

