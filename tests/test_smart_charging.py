"""Smart charging end to end: simulated stations of both versions share a site's fuse, the
profiles they hold never add up to more than it, the ocpp-rpc strict peer takes our profiles,
and the REST views and dry runs; plus the core's pure helpers (safety net, payloads)."""

from __future__ import annotations

import asyncio
import math
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Callable

import pytest

from csms.core.domain import Load, SiteTopology, TopologyNode
from csms.core.ocpp.validation import validate
from csms.core.services.smart_charging import (
    Planned,
    SiteRound,
    SmartChargingSettings,
    build_profile,
    enforce_limits,
    floor_tenth,
    grid_phases,
    phases_in_use,
    scaled_periods,
)
from csms.core.tables import ChargingProfile, ChargingSession, Station
from csms.core.timeutil import utcnow
from csms_tools.simulator import SimStation
from plugins.loadbalancing.plugin import site_panel
from tests.test_ocpp_rpc_strict import create_token, eventually, node_station, strict_station  # noqa: F401

LIMIT = 32.0
INF = math.inf


# ---------------------------------------------------------------------------------------------
# helpers


def fast(server: Any, **overrides: Any) -> None:
    """Tune the loop for tests: measurements count at once, read-back after every change."""
    values = dict(measure_settle_s=0.0, verify_interval_s=0.0, boot_grace_s=0.5, meter_interval_s=0.2,
                  retry_s=1.0)
    values.update(overrides)
    server.core.smart_charging.config = SmartChargingSettings(**values)


async def make_site(api: Any, limit: float = LIMIT, **extra: Any) -> dict[str, Any]:
    r = await api.post("/sites", json={"name": "Depot", "grid_limit_l1_a": limit, "grid_limit_l2_a": limit,
                                       "grid_limit_l3_a": limit, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def make_station(api: Any, station_id: str, site_id: int, *, hub: int | None = None, **patch: Any) -> None:
    r = await api.post("/stations", json={"station_id": station_id, "site": site_id, "hub": hub})
    assert r.status_code == 201, r.text
    if patch:
        r = await api.patch(f"/stations/{station_id}", json=patch)
        assert r.status_code == 200, r.text


class Rounds:
    """The smart-charging rounds of a server, as they finish."""

    def __init__(self, server: Any) -> None:
        self.items: list[SiteRound] = []
        self._changed = asyncio.Event()
        server.core.smart_charging.observers.append(self._seen)

    def _seen(self, r: SiteRound) -> None:
        self.items.append(r)
        self._changed.set()

    def mark(self) -> int:
        return len(self.items)

    async def wait(self, pred: Callable[[SiteRound], bool], *, since: int = 0, timeout: float = 20) -> SiteRound:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for r in self.items[since:]:
                if pred(r):
                    return r
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no round matched within {timeout} s; last rounds: "
                                     + "; ".join(f"#{r.number} limits={r.limits} defaults={r.defaults}"
                                                 for r in self.items[-5:]))
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass


@dataclass
class FuseWatch:
    """Checks, whenever any station's profiles change, that the limits all stations hold (a
    charging EVSE: its effective limit; an idle one: what a car plugging in would get) add up
    to at most the site's limit on every grid phase."""

    limit: float
    stations: list[tuple[SimStation, str]] = field(default_factory=list)  # station, phase rotation
    armed: bool = False
    violations: list[str] = field(default_factory=list)
    checks: int = 0

    def totals(self) -> list[float]:
        totals = [0.0, 0.0, 0.0]
        for st, rotation in self.stations:
            phases = grid_phases(rotation, tuple(range(1, st.phases + 1)))
            for evse_id in st.evses:
                held = st.limit_a(evse_id)
                amps = st.max_current_a if held is None else held
                for p in phases:
                    totals[p - 1] += amps
        return totals

    def check(self, *_: Any) -> None:
        if not self.armed:
            return
        self.checks += 1
        totals = self.totals()
        if any(t > self.limit + 1e-6 for t in totals):
            self.violations.append(f"held limits {totals} exceed {self.limit} A: " + "; ".join(
                f"{st.station_id}: {st.profiles}" for st, _ in self.stations))


def tx_default(st: SimStation) -> dict[str, Any] | None:
    return next((p for p in st.profiles.get(0, []) if p["chargingProfilePurpose"] == "TxDefaultProfile"), None)


def first_limit(profile: dict[str, Any]) -> float:
    schedule = profile["chargingSchedule"]
    schedule = schedule[0] if isinstance(schedule, list) else schedule
    return schedule["chargingSchedulePeriod"][0]["limit"]


@asynccontextmanager
async def charging_at_one_station(server: Any, station_id: str, evses: int) -> AsyncIterator[
        tuple[SimStation, dict[str, Any], Rounds]]:
    """A site of LIMIT amps with one 2.0.1 station of ``evses`` EVSEs, a car charging at each,
    after the first round that saw them all: the station, the site and its rounds."""
    fast(server)
    rounds = Rounds(server)
    site = await make_site(server.api)
    await make_station(server.api, station_id, site["id"])
    await server.api.post("/tokens", json={"id_token": f"CAR-{station_id}"})
    st = SimStation(station_id, server.ws_url(station_id), "2.0.1", evses=evses, check_frames=True)
    try:
        await st.connect()
        await st.boot()
        await st.announce()
        mark = rounds.mark()
        for evse in range(1, evses + 1):
            await st.start_session(evse, f"CAR-{station_id}")
        await rounds.wait(lambda r: len(r.limits) == evses and r.sent > 0, since=mark)
        yield st, site, rounds
    finally:
        await st.close()


# ---------------------------------------------------------------------------------------------
# the site with three cars


async def test_three_cars_share_a_site_and_fallbacks_hold(any_server):
    server, api = any_server, any_server.api
    fast(server)
    rounds = Rounds(server)
    site = await make_site(api)
    # A: OCPP 1.6, two three-phase EVSEs. B: OCPP 2.0.1, two single-phase EVSEs wired L1 → grid L2.
    await make_station(api, "SC-A16", site["id"])
    await make_station(api, "SC-B201", site["id"], phase_rotation="STR")
    for token in ("CAR-1", "CAR-2", "CAR-3"):
        assert (await api.post("/tokens", json={"id_token": token})).status_code == 201
    watch = FuseWatch(LIMIT)
    a = SimStation("SC-A16", server.ws_url("SC-A16"), "1.6", check_frames=True, on_event=watch.check)
    b = SimStation("SC-B201", server.ws_url("SC-B201"), "2.0.1", phases=1, check_frames=True, on_event=watch.check)
    watch.stations = [(a, "RST"), (b, "STR")]
    server.core.smart_charging.observers.append(watch.check)
    try:
        for st in (a, b):
            await st.connect()
            assert await st.boot() == "Accepted"
            await st.announce()

        # Booted with nothing charging: each station holds a fallback within the safe share
        # (32 A over four connectors).
        safe_share = LIMIT / 4
        await eventually(lambda: all(tx_default(st) and first_limit(tx_default(st)) == safe_share
                                     for st in (a, b)), what="fallback TxDefaultProfiles")
        assert watch.totals() == [16.0, 32.0, 16.0]  # B's EVSEs are on grid L2 only
        watch.armed = True
        watch.check()

        # Three cars: two three-phase on A, one single-phase on B's L1 (grid L2). L2 carries all
        # three, so each gets a third of 32 A, rounded down to 0.1 A.
        mark = rounds.mark()
        await a.start_session(1, "CAR-1")
        await a.start_session(2, "CAR-2")
        await b.start_session(1, "CAR-3")
        await rounds.wait(lambda r: len(r.limits) == 3, since=mark)
        for st, evse in ((a, 1), (a, 2), (b, 1)):
            await st.meter_values(evse, advance_s=60)

        def held(st: SimStation, evse: int) -> float | None:
            return st.limit_a(evse)

        await eventually(lambda: (held(a, 1), held(a, 2), held(b, 1)) == (10.6, 10.6, 10.6),
                         what="three cars at 10.6 A", context=lambda: f"{a.profiles}\n{b.profiles}")
        for st, evse in ((a, 1), (a, 2), (b, 1)):
            await st.meter_values(evse, advance_s=60)
        r = await rounds.wait(lambda r: r.limits.get("SC-B201/1") is not None
                              and r.loads and next(x for x in r.loads if x.id == "SC-B201/1").phases == (2,))
        assert r.limits == {"SC-A16/1": 10.6, "SC-A16/2": 10.6, "SC-B201/1": 10.6}
        assert r.defaults == {"SC-A16": 0.0, "SC-B201": 0.0}  # nothing left for a fourth car

        # A car leaves: the others get more in the very next round.
        mark = rounds.mark()
        await a.stop_session(2)
        r = await rounds.wait(lambda r: "SC-A16/2" not in r.limits, since=mark)
        assert r.limits == {"SC-A16/1": 16.0, "SC-B201/1": 16.0}
        assert (held(a, 1), held(b, 1)) == (16.0, 16.0)
        await eventually(lambda: any(c.action == "GetCompositeSchedule" for c in a.received_calls),
                         what="a composite schedule read-back")

        # B loses its connection: its fallback was installed and is within the safe share, and
        # what it holds stays reserved for it (A does not get L2's capacity).
        fallback = tx_default(b)
        assert fallback is not None and 0.0 <= first_limit(fallback) <= safe_share
        assert fallback["id"] == server.core.smart_charging.profile_id(0, "tx_default")
        mark = rounds.mark()
        await b.close()
        r = await rounds.wait(lambda r: r.reserved_a[1] == 16.0, since=mark)
        assert r.limits == {"SC-A16/1": 16.0}
        view = (await api.get(f"/sites/{site['id']}/smart-charging")).json()
        assert view["reserved_a"] == [0.0, 16.0, 0.0]
        station_b = next(c for c in view["tree"]["children"] if c["station_id"] == "SC-B201")
        assert station_b["online"] is False and station_b["reachable"] is False
        assert station_b["default_profile"]["acknowledged"] is True
        assert station_b["default_profile"]["limit_a"] <= safe_share

        # The last car on A leaves: A's idle connectors may take what B does not hold.
        mark = rounds.mark()
        await a.stop_session(1)
        r = await rounds.wait(lambda r: not r.limits, since=mark)
        assert r.defaults == {"SC-A16": safe_share}
        await eventually(lambda: tx_default(a) and first_limit(tx_default(a)) == safe_share)
        watch.check()
        assert watch.checks > 10
        assert not watch.violations, "\n".join(watch.violations)
    finally:
        await a.close()
        await b.close()

    # what was sent is on record, with the stations' answers
    rows = (await api.get("/stations/SC-A16/commands", params={"limit": 200})).json()["items"]
    sent = [c for c in rows if c["action"] == "SetChargingProfile"]
    assert sent and all(c["status"] == "answered" and c["response"]["status"] == "Accepted" for c in sent)


async def test_time_varying_capacity_is_written_into_the_profiles(any_server):
    """A cap that falls later (peak shaving) is already in the profile, scaled to the cap."""
    server, api = any_server, any_server.api
    fast(server)
    site = await make_site(api)
    await make_station(api, "SC-TV", site["id"])
    await api.post("/tokens", json={"id_token": "CAR-TV"})
    start = (utcnow() + timedelta(hours=2)).strftime("%H:%M")
    end = (utcnow() + timedelta(hours=3)).strftime("%H:%M")
    r = await api.post(f"/sites/{site['id']}/peak-shaving/schedules",
                       json={"days": "Mon-Sun", "start_time": start, "end_time": end, "limit_a": [16, 16, 16]})
    assert r.status_code == 201, r.text
    st = SimStation("SC-TV", server.ws_url("SC-TV"), "2.0.1", evses=1, ev_current_a=32, check_frames=True)
    try:
        await st.connect()
        await st.boot()
        await st.announce()
        await st.start_session(1, "CAR-TV")

        def tx_profile() -> dict[str, Any] | None:
            return next((p for p in st.profiles.get(1, []) if p["chargingProfilePurpose"] == "TxProfile"), None)

        profile = await eventually(tx_profile, what="a TxProfile")
        periods = profile["chargingSchedule"][0]["chargingSchedulePeriod"]
        assert [p["limit"] for p in periods] == [32.0, 16.0, 32.0]
        assert 7080 <= periods[1]["startPeriod"] <= 7200  # the window starts on a whole minute
        assert 10680 <= periods[2]["startPeriod"] <= 10800
    finally:
        await st.close()


async def test_station_not_honouring_profiles_is_reported(server):
    class IgnoresProfiles(SimStation):
        def composite_schedule(self, evse_id, duration, unit="A"):
            start, periods = super().composite_schedule(evse_id, duration, unit)
            return start, [{"startPeriod": 0, "limit": 32.0, "numberPhases": 3}]

    api = server.api
    fast(server)
    site = await make_site(api, 16)
    await make_station(api, "SC-LIAR", site["id"])
    await api.post("/tokens", json={"id_token": "CAR-L"})
    st = IgnoresProfiles("SC-LIAR", server.ws_url("SC-LIAR"), "1.6", evses=1, check_frames=True)
    try:
        await st.connect()
        await st.boot()
        await st.announce()
        await st.start_session(1, "CAR-L")

        async def reported() -> list[dict[str, Any]]:
            r = await api.get("/stations/SC-LIAR/events", params={"category": "smart_charging"})
            return [e for e in r.json()["items"] if e["kind"] == "not_honouring_profiles"]

        events = await eventually(reported, what="a not-honouring report")
        assert events[0]["details"]["composite_a"] == 32.0
        assert events[0]["details"]["sent_a"] == 16.0
    finally:
        await st.close()


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_strict_peer_accepts_our_profiles(server, node_station, protocol):  # noqa: F811
    """ocpp-rpc validates every SetChargingProfile (and GetCompositeSchedule) frame we send."""
    v16 = protocol == "ocpp1.6"
    sid = "SCSTRICT16" if v16 else "SCSTRICT201"
    tag = f"{sid}-T"
    fast(server)
    site = await make_site(server.api, 24)
    await make_station(server.api, sid, site["id"], max_current_a=20)
    await create_token(server, tag)
    async with strict_station(node_station, server, sid, protocol, token=tag, linger=60) as st:
        await st.wait_event("lingering", timeout=60)
        mark = st.mark()
        r = await server.api.post(f"/stations/{sid}/remote-start", json={"id_token": tag, "evse_id": 1})
        assert r.status_code == 201, r.text
        await st.wait_event("tx_started", idTag=tag, since=mark)

        def tx_profile_call(e: dict[str, Any]) -> bool:
            if e.get("event") != "call" or e.get("action") != "SetChargingProfile":
                return False
            profile = e["params"]["csChargingProfiles" if v16 else "chargingProfile"]
            return profile["chargingProfilePurpose"] == "TxProfile"

        call = await st.wait_for(tx_profile_call, since=mark, what="a TxProfile")
        reply = await st.wait_for(lambda e: e.get("event") == "reply" and e.get("id") == call["id"], since=mark)
        assert reply["payload"]["status"] == "Accepted"
        purposes = {(e["params"]["csChargingProfiles" if v16 else "chargingProfile"])["chargingProfilePurpose"]
                    for e in st.find_all(lambda e: e.get("event") == "call" and e["action"] == "SetChargingProfile")}
        assert purposes == {"ChargePointMaxProfile" if v16 else "ChargingStationMaxProfile", "TxDefaultProfile",
                            "TxProfile"}
        await st.wait_for(lambda e: e.get("event") == "reply" and e.get("action") == "GetCompositeSchedule",
                          since=mark, what="a composite schedule read-back")
        mark = st.mark()
        r = await server.api.post(f"/stations/{sid}/remote-stop", json={})
        assert r.status_code == 201, r.text
        await st.wait_event("tx_stopped", reason="Remote", since=mark)
        rc = await st.quit()
        st.assert_clean_exit(rc)


async def test_cars_paused_by_a_signal_resume_in_the_round_after_it_ends(any_server, monkeypatch):
    """A grid signal pauses two of three cars; when it is lifted, the very next round gives every
    car its share again instead of holding the paused ones off for min_off_s (5 min). The cars
    charged for min_on_s before (0 here, so that the test needs no minutes of charging)."""
    monkeypatch.setenv("CSMS_LOADBALANCING_MIN_ON_S", "0")
    server, api = any_server, any_server.api
    fast(server)
    rounds = Rounds(server)
    site = await make_site(api)
    await make_station(api, "SC-PS", site["id"])
    await api.post("/tokens", json={"id_token": "CAR-PS"})
    st = SimStation("SC-PS", server.ws_url("SC-PS"), "2.0.1", evses=3, check_frames=True)
    try:
        await st.connect()
        await st.boot()
        await st.announce()
        mark = rounds.mark()
        for evse in (1, 2, 3):
            await st.start_session(evse, "CAR-PS")
        await rounds.wait(lambda r: len(r.limits) == 3 and all(v > 0 for v in r.limits.values()), since=mark)

        mark = rounds.mark()
        until = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        r = await api.put(f"/sites/{site['id']}/peak-shaving/signal", json={"limit_a": [6, 6, 6], "until": until})
        assert r.status_code == 200, r.text
        low = await rounds.wait(lambda r: r.capacity_a == (6.0, 6.0, 6.0), since=mark)
        assert sorted(low.limits.values()) == [0.0, 0.0, 6.0]

        mark = rounds.mark()
        assert (await api.delete(f"/sites/{site['id']}/peak-shaving/signal")).status_code in (200, 204)
        high = await rounds.wait(lambda r: r.capacity_a == (LIMIT, LIMIT, LIMIT), since=mark)
        assert len(high.limits) == 3 and all(v >= 6.0 for v in high.limits.values()), high.limits
    finally:
        await st.close()


async def test_external_limits_cap_their_loads_and_free_the_rest(any_server):
    """K11-K13: a limit set on an EVSE from outside (NotifyChargingLimit with a schedule) caps
    that car and its share goes to the other; one on the whole station (EVSE 0, in W) caps the
    station's sum; ClearedChargingLimit gives the shares back. Both kept as ``external`` profiles."""
    api = any_server.api

    def schedule(limit: float, unit: str = "A") -> list[dict[str, Any]]:
        return [{"id": 1, "chargingRateUnit": unit, "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}]

    async with charging_at_one_station(any_server, "SC-EXT", 2) as (st, _, rounds):
        await rounds.wait(lambda r: r.limits == {"SC-EXT/1": 16.0, "SC-EXT/2": 16.0})

        mark = rounds.mark()
        await st.call("NotifyChargingLimit", {"evseId": 1, "chargingLimit": {"chargingLimitSource": "EMS"},
                                              "chargingSchedule": schedule(8.0)})
        await rounds.wait(lambda r: r.limits == {"SC-EXT/1": 8.0, "SC-EXT/2": 24.0}, since=mark)

        mark = rounds.mark()  # 13.8 kW over three phases at 230 V: 20 A for the station
        await st.call("NotifyChargingLimit", {"chargingLimit": {"chargingLimitSource": "SO", "isGridCritical": True},
                                              "chargingSchedule": schedule(13800.0, "W")})
        await rounds.wait(lambda r: r.limits == {"SC-EXT/1": 8.0, "SC-EXT/2": 12.0}, since=mark)
        stored = await ChargingProfile.select(ChargingProfile.evse_id, ChargingProfile.status).where(
            (ChargingProfile.source == "external") & ChargingProfile.cleared_at.is_null()).order_by(ChargingProfile.id)
        assert stored == [{"evse_id": 1, "status": "EMS"}, {"evse_id": 0, "status": "SO"}]

        mark = rounds.mark()  # a new limit of the same source replaces the old one
        await st.call("NotifyChargingLimit", {"evseId": 1, "chargingLimit": {"chargingLimitSource": "EMS"},
                                              "chargingSchedule": schedule(10.0)})
        await rounds.wait(lambda r: r.limits == {"SC-EXT/1": 10.0, "SC-EXT/2": 10.0}, since=mark)

        mark = rounds.mark()
        await st.call("ClearedChargingLimit", {"chargingLimitSource": "SO"})
        await st.call("ClearedChargingLimit", {"chargingLimitSource": "EMS", "evseId": 1})
        await rounds.wait(lambda r: r.limits == {"SC-EXT/1": 16.0, "SC-EXT/2": 16.0}, since=mark)
        assert not await ChargingProfile.exists().where(
            (ChargingProfile.source == "external") & ChargingProfile.cleared_at.is_null())
        events = (await api.get("/stations/SC-EXT/events", params={"category": "charging_limit"})).json()["items"]
        assert len(events) == 5  # each notification is in the station's event log too


# ---------------------------------------------------------------------------------------------
# REST: the live view with hubs, dry runs, session targets


async def test_live_view_hubs_and_dry_run(any_server):
    server, api = any_server, any_server.api
    fast(server)
    site = await make_site(api, 40)
    hub = (await api.post("/hubs", json={"name": "Garage", "site": site["id"], "max_stations": 2,
                                         "limit_l1_a": 20, "limit_l2_a": 20, "limit_l3_a": 20})).json()
    await make_station(api, "SC-H1", site["id"], hub=hub["id"])
    await make_station(api, "SC-H2", site["id"], hub=hub["id"])
    await make_station(api, "SC-OUT", site["id"], phase_rotation="TRS", max_current_a=16)
    st = SimStation("SC-H1", server.ws_url("SC-H1"), "2.0.1", evses=1, check_frames=True)
    try:
        await st.connect()
        await st.boot()
        await st.announce()
        view = (await api.get(f"/sites/{site['id']}/smart-charging")).json()
        assert view["managed"] is True
        assert view["capacity_a"] == [40.0, 40.0, 40.0]
        assert view["hubs"][0]["stations"] == ["SC-H1", "SC-H2"]
        assert (view["hubs"][0]["online"], view["hubs"][0]["offline"], view["hubs"][0]["status"]) == (1, 1, "partial")
        hub_node = next(c for c in view["tree"]["children"] if c["kind"] == "hub")
        assert hub_node["limit_a"] == [20.0, 20.0, 20.0]
        assert {c["station_id"] for c in hub_node["children"]} == {"SC-H1", "SC-H2"}

        # dry run: two cars behind the hub share its 20 A; a single-phase car on SC-OUT's L1
        # lands on grid L3 (rotation TRS) and is held to the station's 16 A
        body = {"cars": [{"id": "x", "station_id": "SC-H1"}, {"id": "y", "station_id": "SC-H2"},
                         {"id": "z", "station_id": "SC-OUT", "phases": 1, "measured_a": 12}]}
        r = await api.post(f"/sites/{site['id']}/smart-charging/simulate", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        limits = {c["id"]: c["limit_a"] for c in out["allocation"]}
        assert limits == {"x": 10.0, "y": 10.0, "z": 16.0}
        assert next(c for c in out["allocation"] if c["id"] == "z")["phases"] == [3]
        assert out["totals_a"] == [20.0, 20.0, 36.0]
        assert out["measured_a"] == [0.0, 0.0, 12.0]
        r = await api.post(f"/sites/{site['id']}/smart-charging/simulate",
                           json={"cars": [{"phases": 3}, {"phases": 3}], "capacity_a": [12, 12, 12]})
        assert [c["limit_a"] for c in r.json()["allocation"]] == [6.0, 6.0]
        r = await api.post(f"/sites/{site['id']}/smart-charging/simulate",
                           json={"cars": [{"station_id": "NOPE"}]})
        assert r.status_code == 400
        assert (await api.get("/sites/999999/smart-charging")).status_code == 404
    finally:
        await st.close()


async def test_live_view_shows_the_capacity_of_the_round_beside_its_allocation(any_server):
    """Between a change of the capacity and the next round, the view shows the live capacity
    and, beside the allocation, the capacity of the round that made it."""
    server, api = any_server, any_server.api
    fast(server)
    rounds = Rounds(server)
    site = await make_site(api, 40)
    await make_station(api, "SC-RV", site["id"])
    await api.post("/tokens", json={"id_token": "CAR-RV"})
    st = SimStation("SC-RV", server.ws_url("SC-RV"), "2.0.1", evses=1, check_frames=True)
    loop = server.core.smart_charging
    try:
        await st.connect()
        await st.boot()
        await st.announce()
        mark = rounds.mark()
        await st.start_session(1, "CAR-RV")
        first = await rounds.wait(lambda r: r.limits.get("SC-RV/1") == 32.0, since=mark)
        view = (await api.get(f"/sites/{site['id']}/smart-charging")).json()
        assert view["capacity_a"] == view["round_capacity_a"] == [40.0, 40.0, 40.0]
        assert view["allocated_a"] == [32.0, 32.0, 32.0]

        # a signal of 10 A while the site's round cannot run yet (its lock is held)
        until = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        async with loop._locks.setdefault(site["id"], asyncio.Lock()):
            r = await api.put(f"/sites/{site['id']}/peak-shaving/signal", json={"limit_a": [10, 10, 10], "until": until})
            assert r.status_code == 200, r.text
            view = (await api.get(f"/sites/{site['id']}/smart-charging")).json()
            assert view["capacity_a"] == [10.0, 10.0, 10.0]  # now
            assert view["round_capacity_a"] == [40.0, 40.0, 40.0]  # what the 32 A were shared from
            assert view["allocated_a"] == [32.0, 32.0, 32.0]
            last = view["last_round"]
            assert last["number"] >= first.number
            assert (last["capacity_a"], last["reserved_a"], last["available_a"]) == (
                [40.0, 40.0, 40.0], [0.0, 0.0, 0.0], [40.0, 40.0, 40.0])
            html = str(site_panel(view))
            assert "Capacity now (A)" in html and "Capacity, last round (A)" in html

        # the next round shares the 10 A, and the view agrees with itself again
        await rounds.wait(lambda r: r.capacity_a == (10.0, 10.0, 10.0), since=mark)
        view = (await api.get(f"/sites/{site['id']}/smart-charging")).json()
        assert view["capacity_a"] == view["round_capacity_a"] == [10.0, 10.0, 10.0]
        assert view["allocated_a"] == [10.0, 10.0, 10.0]
    finally:
        await st.close()


async def test_session_departure_and_energy(any_server):
    server, api = any_server, any_server.api
    fast(server, learned_departures=True)
    site = await make_site(api)
    await make_station(api, "SC-D", site["id"])
    await api.post("/tokens", json={"id_token": "CAR-D"})
    # the card's past stays at this site, same weekday and hour as now: about 5 h each
    station_pk = (await Station.select(Station.id).where(Station.station_id == "SC-D").first())["id"]
    now = utcnow()
    await ChargingSession.insert(*[ChargingSession(
        station=station_pk, evse_id=1, connector_id=1, transaction_id=f"past-{i}", id_token="CAR-D",
        state="completed", started_at=now - timedelta(days=7 * i),
        stopped_at=now - timedelta(days=7 * i) + timedelta(hours=5, minutes=i)) for i in (1, 2, 3)])
    st = SimStation("SC-D", server.ws_url("SC-D"), "1.6", evses=1, check_frames=True)
    try:
        await st.connect()
        await st.boot()
        tx = await st.start_session(1, "CAR-D")
        session_id = int(tx.transaction_id)
        learned = await eventually(lambda: _connector_with_departure(api, site["id"]))
        assert learned["departure_source"] == "learned" and learned["stated_departure_at"] is None
        assert learned["learned_departure"]["basis"] == "card" and learned["learned_departure"]["stays"] == 3
        started = (await ChargingSession.select(ChargingSession.started_at).where(
            ChargingSession.id == session_id).first())["started_at"]
        assert datetime.fromisoformat(learned["departure_at"]) == started + timedelta(hours=5, minutes=2)
        r = await api.put(f"/sessions/{session_id}/smart-charging",
                          json={"departure_at": "2030-01-01T18:00:00Z", "energy_target_wh": 20000})
        assert r.status_code == 200, r.text
        view = await eventually(lambda: _connector_with_departure(api, site["id"], "driver"))
        assert view["energy_wh_needed"] == pytest.approx(20000 - view["energy_wh"])
        assert view["departure_at"].startswith("2030-01-01T18:00:00")  # the later of stated and learned
        assert view["learned_departure"]["departure_at"] == learned["departure_at"]
        assert (await api.put("/sessions/999999/smart-charging", json={})).status_code == 404
        r = await api.put(f"/sessions/{session_id}/smart-charging", json={"departure_at": "2030-01-01T18:00:00"})
        assert r.status_code == 400
    finally:
        await st.close()


async def _connector_with_departure(api: Any, site_id: int, source: str | None = None) -> dict[str, Any] | None:
    view = (await api.get(f"/sites/{site_id}/smart-charging")).json()
    return next((c for c in view["connectors"] if c["departure_at"] and source in (None, c["departure_source"])),
                None)


async def test_sites_without_limits_are_left_alone(server):
    fast(server)
    r = await server.api.post("/sites", json={"name": "Open"})
    site = r.json()
    await make_station(server.api, "SC-FREE", site["id"])
    st = SimStation("SC-FREE", server.ws_url("SC-FREE"), "2.0.1", evses=1, check_frames=True)
    try:
        await st.connect()
        await st.boot()
        await st.announce()
        round_ = await server.core.smart_charging.run_round(site["id"])
        assert round_ is not None and round_.managed is False
        await asyncio.sleep(0.3)
        assert not [c for c in st.received_calls if c.action == "SetChargingProfile"]
    finally:
        await st.close()


# ---------------------------------------------------------------------------------------------
# pure helpers of the core


def _tree(*nodes: TopologyNode) -> SiteTopology:
    return SiteTopology(1, 230.0, nodes)


def _load(load_id: str, node: str, phases=(1, 2, 3), min_a=6.0, max_a=32.0) -> Load:
    return Load(id=load_id, station_id=load_id, evse_id=1, session_id=1, phases=phases, min_a=min_a,
                max_a=max_a, node=node)


def test_safety_net_keeps_a_misbehaving_allocation_within_every_limit():
    topo = _tree(TopologyNode("site:1", "site", None, (32.0, 32.0, 32.0)),
                 TopologyNode("hub:1", "hub", "site:1", (16.0, INF, INF)),
                 TopologyNode("station:a", "station", "hub:1", (INF, INF, INF)),
                 TopologyNode("station:b", "station", "hub:1", (INF, INF, INF)),
                 TopologyNode("station:c", "station", "site:1", (10.0, 10.0, 10.0)))
    loads = [_load("a", "station:a"), _load("b", "station:b"), _load("c", "station:c", phases=(2,)),
             _load("d", "station:c", phases=(3,), min_a=8.0)]
    out = enforce_limits(topo, loads, {"a": 50, "b": 30, "c": 40, "d": 7, "ghost": 99}, (INF, 30.0, INF))
    assert set(out) == {"a", "b", "c", "d"}
    assert out["d"] == 0.0  # below its minimum
    assert out["a"] + out["b"] <= 16.0  # hub L1
    assert out["c"] <= 10.0  # station c
    assert out["a"] + out["b"] + out["c"] <= 30.0  # root capacity on L2
    assert all(v == floor_tenth(v) for v in out.values())


def test_phase_rotation_and_detection():
    assert grid_phases("RST", (1,)) == (1,)
    assert grid_phases("STR", (1,)) == (2,)
    assert grid_phases("TRS", (1, 2)) == (1, 3)
    assert grid_phases("bogus", (2,)) == (2,)
    assert phases_in_use({"L1": 15.2, "L2": 0.1, "L3": 0.0}, 1.0) == (1,)
    assert phases_in_use({}, 1.0) == (1, 2, 3)
    assert phases_in_use({"L1": 0.0, "L2": 0.0, "L3": 0.0}, 1.0) == (1, 2, 3)


def test_scaled_periods_follow_a_falling_cap_and_respect_the_period_limit():
    now = utcnow().replace(microsecond=0)
    factors = [(now + timedelta(hours=h), f) for h, f in ((1, 0.5), (2, 0.25), (3, 1.0), (4, 0.6))]
    periods = scaled_periods(now, 20.0, factors, 6.0, 24)
    assert [a for _, a in periods] == [20.0, 10.0, 0.0, 20.0, 12.0]  # 5 A is below the minimum: 0
    cut = scaled_periods(now, 20.0, factors, 6.0, 3)
    assert [a for _, a in cut] == [20.0, 10.0, 0.0]  # the last period takes the lowest of the rest


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("unit", ["A", "W"])
def test_profiles_are_valid_for_each_version(version, unit):
    now = utcnow().replace(microsecond=0)
    plans = [
        Planned("X", 0, "station_max", ((now, 32.0),)),
        Planned("X", 0, "tx_default", ((now, 10.6), (now + timedelta(hours=1), 5.3))),
        Planned("X", 2, "tx", ((now, 13.7),), number_phases=1, transaction_id="17"),
    ]
    for plan in plans:
        profile = build_profile(version, plan, profile_id=900_000 + plan.evse_id, stack_level=1, unit=unit)
        key = ("connectorId", "csChargingProfiles") if version == "1.6" else ("evseId", "chargingProfile")
        validate(version, "SetChargingProfile", {key[0]: plan.evse_id, key[1]: profile})
        schedule = profile["chargingSchedule"] if version == "1.6" else profile["chargingSchedule"][0]
        assert schedule["chargingRateUnit"] == unit
        if plan.purpose == "tx":
            assert str(profile["transactionId"]) == "17"
            assert schedule["chargingSchedulePeriod"][0]["numberPhases"] == 1
            if unit == "W":
                assert schedule["chargingSchedulePeriod"][0]["limit"] == math.floor(13.7 * 230)


async def test_a_session_on_priority_charging_is_served_first(server):
    """OCPP 2.1 priority charging (UsePriorityCharging accepted, or the station's
    NotifyPriorityCharging) makes the session's load priority 1: it gets the larger share."""
    async with charging_at_one_station(server, "SC-PRIO", 2) as (_, site, rounds):
        await rounds.wait(lambda r: r.limits == {"SC-PRIO/1": 16.0, "SC-PRIO/2": 16.0})
        await ChargingSession.update({ChargingSession.priority_charging: True}).where(
            (ChargingSession.evse_id == 2) & (ChargingSession.state == "active"))
        mark = rounds.mark()
        server.core.smart_charging.request(site["id"])
        r = await rounds.wait(lambda r: r.limits.get("SC-PRIO/2", 0) > r.limits.get("SC-PRIO/1", 0), since=mark)
        assert [load.priority for load in sorted(r.loads, key=lambda load: load.id)] == [0, 1]


async def test_profiles_cleared_by_hand_are_sent_again(server):
    """An operator clears the loop's profiles at a station (ClearChargingProfile over REST): the
    loop hears of it and its next round sends the station its profiles again, unchanged limits
    included, instead of waiting for the next change."""
    async with charging_at_one_station(server, "SC-CLR", 1) as (st, _, rounds):
        await rounds.wait(lambda r: r.limits == {"SC-CLR/1": 32.0})
        for _ in range(50):
            if st.limit_a(1) == 32.0:
                break
            await asyncio.sleep(0.1)
        assert st.limit_a(1) == 32.0
        mark = rounds.mark()
        cleared = await server.api.post("/stations/SC-CLR/charging-profiles/clear", json={})
        assert cleared.status_code == 201 and cleared.json()["status"] == "Accepted", cleared.text
        assert not any(st.profiles.values())
        await rounds.wait(lambda r: r.sent > 0, since=mark)
        assert st.limit_a(1) == 32.0 and tx_default(st) is not None


def test_an_external_schedule_limits_within_its_time_only():
    from csms.core.services.smart_charging.external_limits import limit_at

    told = datetime.fromisoformat("2026-01-05T10:00:00.400+00:00")
    steps = {"chargingRateUnit": "A", "duration": 3600, "chargingSchedulePeriod": [
        {"startPeriod": 600, "limit": 10.0}, {"startPeriod": 0, "limit": 20.0}]}
    assert limit_at(steps, told, told.replace(microsecond=0), 230.0) == 20.0  # from when it was told
    assert limit_at(steps, told, told + timedelta(minutes=15), 230.0) == 10.0
    assert limit_at(steps, told, told + timedelta(hours=1), 230.0) is None  # its duration is over
    later = {**steps, "startSchedule": "2026-01-05T12:00:00Z"}
    assert limit_at(later, told, datetime.fromisoformat("2026-01-05T11:59:59+00:00"), 230.0) is None
    watts = {"chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 4600.0, "numberPhases": 1}]}
    assert limit_at(watts, told, told, 230.0) == 20.0  # one phase at 230 V
    assert limit_at({"chargingSchedulePeriod": []}, told, told, 230.0) is None
