"""The plugin contract: each family exercised end to end, and every call through pluggy (tracing,
wrappers, isolation, the rule each spec states, the start-up check of hook names). That every hook
is documented is checked in ``tests/test_docs.py``."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from litestar import get
from ocpp.v201 import call

from csms import AuthorizationResult, CapacityPeriod, CapacitySchedule, SessionCost, hookimpl
from csms import plugins
from csms.core import events as ev
from csms.core.timeutil import utcnow
from csms.hookspecs import Rule
from csms.plugins import PluginError, call_hook, pm
from tests.stations import connect


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



class OneByOne:
    @hookimpl
    def event(self, event):
        self.seen.append(event)

    def __init__(self) -> None:
        self.seen: list[ev.Event] = []


class InBatches:
    def __init__(self) -> None:
        self.batches: list[list[ev.Event]] = []

    @hookimpl
    def event_batch(self, events):
        self.batches.append(list(events))

        async def later():  # an awaitable answer: awaited before the next batch
            await asyncio.sleep(0)
        return later


class BrokenBatches:
    @hookimpl(tryfirst=True)
    def event_batch(self, events):
        raise RuntimeError("a bug in a batch handler")


async def test_event_batch_gets_the_same_events_in_order_in_fewer_calls(tmp_path):
    from csms.testing import running_server

    one, batched = OneByOne(), InBatches()
    for name, p in (("one-by-one", one), ("in-batches", batched), ("broken-batches", BrokenBatches())):
        pm.register(p, name=name)
    try:
        async with running_server(tmp_path, unknown_stations="accept") as srv:
            await short_session(srv, "BATCHED")
            # events emitted together (as under load) reach event_batch in one call
            burst = [ev.StationReported("BATCHED", category="test", kind=str(i)) for i in range(50)]
            for event in burst:
                srv.core.events.emit(event)
            await srv.core.events.drain()
    finally:
        for name in ("one-by-one", "in-batches", "broken-batches"):
            pm.unregister(name=name)
    flat = [event for batch in batched.batches for event in batch]
    assert flat == one.seen  # the same events, the same order, despite the broken plugin
    names = [e.name for e in flat]
    assert names[0] == "station.connected" and "session.started" in names and "station.disconnected" in names
    start = flat.index(burst[0])
    assert flat[start:start + 50] == burst
    batch = next(batch for batch in batched.batches if burst[0] in batch)
    assert batch[batch.index(burst[0]):][:50] == burst  # one call for the whole burst
    assert all(batched.batches)


# ---------------------------------------------------------------------------------------------
# every call through pluggy


async def short_session(srv, station_id: str) -> None:
    """Boot, Authorize, a transaction started and ended, disconnect; every event delivered."""
    async with connect(srv.ws_url(station_id), station_id) as cp:
        await cp.call(call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
        await cp.call(call.Authorize(id_token={"id_token": "NOBODY", "type": "ISO14443"}))
        for seq, (kind, at, wh) in enumerate((("Started", "10:00", 0.0), ("Ended", "10:30", 5000.0))):
            await cp.call(call.TransactionEvent(
                event_type=kind, timestamp=f"2026-01-05T{at}:00Z", trigger_reason="Authorized", seq_no=seq,
                transaction_info={"transaction_id": f"{station_id}-1"}, evse={"id": 1, "connector_id": 1},
                id_token={"id_token": "NOBODY", "type": "NoAuthorization"},
                meter_value=[{"timestamp": f"2026-01-05T{at}:00Z", "sampled_value": [{"value": wh}]}]))
    await srv.core.events.drain()


async def test_tracing_sees_every_hook_call(tmp_path, monkeypatch):
    from csms.testing import running_server

    asked: list[str] = []  # every hook call the core makes, as its helpers see it
    real_answers = plugins._answers

    def answers(hook_name, kwargs, *, sync):
        asked.append(hook_name)
        return real_answers(hook_name, kwargs, sync=sync)

    monkeypatch.setattr(plugins, "_answers", answers)
    traced: list[str] = []
    pm.trace.root.setwriter(traced.append)
    undo = pm.enable_tracing()
    try:
        async with running_server(tmp_path, unknown_stations="accept") as srv:
            await short_session(srv, "TRACED")
    finally:
        undo()
        pm.trace.root.setwriter(None)
    seen = [m.group(1) for line in traced if (m := re.match(r"\s*(\w+) \[hook\]", line))]
    assert seen == asked
    assert {"register_routes", "template_dirs", "startup", "authorize_token", "event", "price_session",
            "settle_session", "shutdown"} <= set(seen)


class Wrapping:
    """Around-advice on async hooks, new style and old style."""

    def __init__(self) -> None:
        self.authorize: list[tuple[str, list[str]]] = []
        self.events: list[str] = []

    @hookimpl(wrapper=True)
    def authorize_token(self, id_token):
        answers = yield
        self.authorize.append((id_token, [a.plugin for a in answers]))
        return answers

    @hookimpl(hookwrapper=True)
    def event(self, event):
        outcome = yield
        assert isinstance(outcome.get_result(), list)
        self.events.append(event.name)


async def test_a_wrapper_sees_async_hook_calls(tmp_path):
    from csms.testing import running_server

    wrapper = Wrapping()
    pm.register(wrapper, name="wrapping")
    try:
        async with running_server(tmp_path, unknown_stations="accept") as srv:
            await short_session(srv, "WRAPPED")
    finally:
        pm.unregister(name="wrapping")
    # the Authorize reached every implementation, down to "unknown is rejected"; the transaction's
    # NoAuthorization token was answered at once by the local lookup, so nothing after it was asked
    assert wrapper.authorize[0][1][-2:] == ["csms.core.default_authorization",
                                            "csms.core.default_authorization:reject_unknown"]
    assert wrapper.authorize[1][1][-1] == "csms.core.default_authorization"
    for name in ("station.connected", "station.booted", "session.started", "session.stopped"):
        assert name in wrapper.events


@pytest.fixture
def fresh_pm(monkeypatch):
    """A plugin manager with the core's hooks and no plugin: the helpers use it for one test."""
    manager = plugins.make_manager()
    monkeypatch.setattr(plugins, "pm", manager)
    return manager


AUTH = dict(station_id="S1", id_token="T1", token_type="ISO14443", evse_id=1, purpose="authorize")


class Raises:
    def __init__(self, when: str) -> None:
        self.when = when

    def _fail(self):
        if self.when == "sync":
            raise RuntimeError("broken at once")

        async def later():
            raise RuntimeError("broken when awaited")
        return later()

    @hookimpl(tryfirst=True)
    def authorize_token(self):
        return self._fail()

    @hookimpl(tryfirst=True)
    def settle_session(self):
        return self._fail()

    @hookimpl
    def site_capacity(self):
        return self._fail()


class Answers:
    def __init__(self) -> None:
        self.settled = 0

    @hookimpl
    def authorize_token(self):
        return AuthorizationResult("Accepted")

    @hookimpl
    def settle_session(self):
        async def settle():
            self.settled += 1
        return settle

    @hookimpl
    def site_capacity(self, now):
        return CapacitySchedule((CapacityPeriod(now, (20.0, 20.0, 20.0)),))


async def test_a_raising_plugin_is_isolated_and_logged(fresh_pm, caplog):
    good = Answers()
    fresh_pm.register(good, name="good")
    fresh_pm.register(Raises("sync"), name="sync-broken")
    fresh_pm.register(Raises("async"), name="async-broken")
    caplog.set_level(logging.ERROR, logger="csms.plugins")

    assert (await call_hook("authorize_token", **AUTH)).status == "Accepted"
    assert await call_hook("settle_session", session={"id": 1}, cost=None) == ["async-broken", "sync-broken"]
    assert good.settled == 1
    answers = await call_hook("site_capacity", site={"id": 1}, now=utcnow())
    assert [a.plugin for a in answers] == ["good"]
    failures = [(r.getMessage(), r.exc_info[1]) for r in caplog.records]
    for hook in ("authorize_token", "settle_session", "site_capacity"):
        for plugin, error in (("sync-broken", "broken at once"), ("async-broken", "broken when awaited")):
            assert any(msg == f"plugin {plugin} failed in hook {hook}" and str(exc) == error
                       for msg, exc in failures), (plugin, hook)


async def test_the_rule_each_spec_states_is_the_rule_applied(fresh_pm):
    from csms.core.services.smart_charging.allocation import site_capacity

    for name, spec in plugins.hook_specs().items():
        assert isinstance(spec.csms_rule, Rule), name
    assert plugins.rule_of("site_capacity") is Rule.MINIMUM
    assert plugins.rule_of("authorize_token") is Rule.FIRST_ANSWER
    assert plugins.rule_of("register_routes") is Rule.WIRING

    called: list[str] = []

    class Auth:
        def __init__(self, name, answer):
            self.name, self.answer = name, answer

        @hookimpl
        def authorize_token(self):
            called.append(self.name)
            if self.answer == "later":
                async def later():
                    return None
                return later()
            return self.answer

    for name, answer in (("third", AuthorizationResult("Blocked")), ("second", AuthorizationResult("Accepted")),
                         ("first", "later")):
        fresh_pm.register(Auth(name, answer), name=name)  # the last registered is called first
    # first answer wins: "first" answers None once awaited, "second" decides, "third" is not even asked
    assert (await call_hook("authorize_token", **AUTH)).status == "Accepted"
    assert called == ["first", "second"]

    # minimum of all answers: the smart-charging loop takes the lowest capacity at every moment
    now = utcnow()

    class Capacity:
        def __init__(self, *periods):
            self.periods = periods

        @hookimpl
        def site_capacity(self, now):
            return CapacitySchedule(tuple(CapacityPeriod(now + timedelta(hours=h), (a, a, a)) for h, a in self.periods))

    fresh_pm.register(Capacity((0, 40.0), (1, 10.0)), name="peak")
    fresh_pm.register(Capacity((0, 25.0)), name="fuse")
    capacity = await site_capacity({"id": 1}, (32.0, 32.0, 32.0), now)
    assert capacity.at(now) == (25.0, 25.0, 25.0)
    assert capacity.at(now + timedelta(hours=2)) == (10.0, 10.0, 10.0)

    # every answer, every implementation and wiring have their own helper; the other refuses
    with pytest.raises(TypeError, match="call_sync"):
        await call_hook("register_routes", settings=None)
    with pytest.raises(TypeError, match="call_hook"):
        plugins.call_sync("event", event=None)


class Misspelt:
    @hookimpl
    def authorise_token(self, id_token):
        return None

    @hookimpl(optionalhook=True)
    def some_other_plugins_hook(self):
        return None


def test_an_unknown_hook_refuses_start_up(monkeypatch, capsys):
    from csms.cli import main

    message = "plugin 'myplug' implements unknown hook 'authorise_token' (did you mean 'authorize_token'?)"
    pm.register(Misspelt(), name="myplug")
    try:
        with pytest.raises(PluginError) as refused:
            plugins.check_hooks()
        assert str(refused.value) == message
        monkeypatch.setattr(plugins, "_loaded", False)  # as at a fresh start
        with pytest.raises(SystemExit) as exited:
            main(["plugins"])
        assert str(exited.value) == message
    finally:
        pm.unregister(name="myplug")
    plugins.check_hooks()  # fine again without it


async def test_trace_hooks_logs_calls_and_answers(tmp_path, monkeypatch, caplog):
    from csms.settings import get_settings
    from csms.testing import running_server

    # CSMS_TRACE_HOOKS turns tracing on when the plugins load
    undo: list = []
    monkeypatch.setenv("CSMS_TRACE_HOOKS", "true")
    get_settings.cache_clear()
    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setattr(plugins, "trace_hooks", lambda: undo.append(True))
    plugins.load_plugins()
    get_settings.cache_clear()
    assert undo == [True]
    monkeypatch.undo()

    caplog.set_level(logging.INFO, logger="csms.plugins")
    logger = logging.getLogger("csms.plugins")
    logger.addHandler(caplog.handler)  # the app's logging set-up replaces the root's handlers
    try:
        stop = plugins.trace_hooks()
        try:
            async with running_server(tmp_path, unknown_stations="accept") as srv:
                async with connect(srv.ws_url("TRACE"), "TRACE") as cp:
                    await cp.call(call.Authorize(id_token={"id_token": "NOBODY", "type": "ISO14443"}))
                await srv.core.events.drain()
        finally:
            stop()
        lines = [r.getMessage() for r in caplog.records if r.name == "csms.plugins"]
        assert any(line.startswith("hook authorize_token(station_id='TRACE', id_token='NOBODY', ") and
                   line.endswith("csms.core.default_authorization, csms.core.default_authorization:reject_unknown")
                   for line in lines), lines
        assert "hook authorize_token: csms.core.default_authorization -> None" in lines
        assert any(line.startswith("hook authorize_token: csms.core.default_authorization:reject_unknown -> "
                                   "AuthorizationResult(status='Unknown'") for line in lines)
        assert any(line.startswith("hook event(event=StationConnected(station_id='TRACE'") for line in lines)
        assert any(line.startswith("hook startup(app=<Litestar>, settings=<Settings>)") for line in lines)
        assert not any("session_secret" in line for line in lines)
        caplog.clear()
        plugins.call_sync("template_dirs")
        assert not caplog.records  # off again
    finally:
        logger.removeHandler(caplog.handler)
