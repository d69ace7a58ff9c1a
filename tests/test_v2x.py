"""OCPP 2.1 V2X in smart charging: an EV that says it can discharge (NotifyEVChargingNeeds with a
bidirectional mode and ``v2xChargingParameters``) feeds the site when other cars cannot have
what they want, the others share what it frees, and every fuse holds in both directions. A
simulated 2.1 station (which checks its own frames against the 2.1 schemas) takes the profiles;
each one it receives is validated against the 2.1 SetChargingProfile schema here too. Plus the
core's safety net and payloads for discharging loads, and the load balancer's choice."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from csms.core.domain import Load, SiteTopology, TopologyNode
from csms.core.ocpp.validation import validate
from csms.core.services.smart_charging import Planned, build_profile, enforce_limits
from csms.core.services.smart_charging.profiles import planned_from_payload
from csms.core.services.smart_charging.targets import v2x_of_needs
from csms.core.timeutil import ocpp_ts, utcnow
from csms_tools.simulator import SimStation
from plugins.loadbalancing.plugin import allocate_site, site_panel
from tests.test_ocpp_rpc_strict import eventually
from tests.test_smart_charging import Rounds, fast, make_site, make_station

INF = math.inf


def needs(*, spare_wh: float, modes: tuple[str, ...] = ("AC_three_phase", "AC_BPT"),
          max_discharge_a: float = 10.0) -> dict[str, Any]:
    """A 2.1 NotifyEVChargingNeeds for EVSE 1: an ISO 15118-20 EV with bidirectional power transfer."""
    return {"evseId": 1, "chargingNeeds": {
        "requestedEnergyTransfer": "AC_BPT", "availableEnergyTransfer": list(modes), "controlMode": "ScheduledControl",
        "v2xChargingParameters": {"maxChargeCurrent": 16.0, "maxDischargeCurrent": max_discharge_a,
                                  "evMinEnergyRequest": -spare_wh, "evTargetEnergyRequest": 20000.0,
                                  "evMaxEnergyRequest": 40000.0}}}


def tx_profile(st: SimStation, evse_id: int) -> dict[str, Any] | None:
    return next((p for p in st.profiles.get(evse_id, []) if p["chargingProfilePurpose"] == "TxProfile"), None)


def first_period(profile: dict[str, Any] | None) -> dict[str, Any]:
    assert profile is not None
    return profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]


def net_a(period: dict[str, Any]) -> float:
    """What a period lets the EV draw per phase (below 0: feed)."""
    return period["setpoint"] if period.get("operationMode") == "CentralSetpoint" else period["limit"]


@asynccontextmanager
async def two_cars(server: Any, sid: str, *, limit: float, station_max: float | None = None
                   ) -> AsyncIterator[tuple[SimStation, dict[str, Any]]]:
    """A site of ``limit`` A with one simulated 2.1 station ``sid`` (two EVSEs), a car charging
    on each; the station and the site."""
    api = server.api
    site = await make_site(api, limit)
    await make_station(api, sid, site["id"], **({"max_current_a": station_max} if station_max else {}))
    for evse in (1, 2):
        assert (await api.post("/tokens", json={"id_token": f"{sid}-CAR{evse}"})).status_code == 201
    st = SimStation(sid, server.ws_url(sid), "2.1", evses=2, check_frames=True)
    try:
        await st.connect()
        assert await st.boot() == "Accepted"
        await st.announce()
        for evse in (1, 2):
            await st.start_session(evse, f"{sid}-CAR{evse}")
        yield st, site
    finally:
        await st.close()


async def test_a_discharging_ev_frees_capacity_for_another_car(any_server):
    server, api = any_server, any_server.api
    fast(server)
    rounds = Rounds(server)
    async with two_cars(server, "V2X-1", limit=16, station_max=16) as (st, site):
        await rounds.wait(lambda r: r.limits == {"V2X-1/1": 8.0, "V2X-1/2": 8.0})

        # The EV on EVSE 1 can feed 10 A and has 5 kWh to spare: it discharges what the other
        # car misses (8 A), which then gets its station's 16 A; the site imports 16 - 8 = 8 A.
        mark = rounds.mark()
        answer = await st.call("NotifyEVChargingNeeds", needs(spare_wh=5000))
        assert answer["status"] == "Accepted"
        r = await rounds.wait(lambda r: r.limits == {"V2X-1/1": -8.0, "V2X-1/2": 16.0}, since=mark)
        (v2x,) = [x for x in r.loads if x.id == "V2X-1/1"]
        assert (v2x.discharge_max_a, v2x.discharge_spare_wh) == (10.0, 5000.0)

        def feeding() -> bool:
            return net_a(first_period(tx_profile(st, 1))) == -8.0 and first_period(tx_profile(st, 2))["limit"] == 16.0

        await eventually(feeding, what="a discharge setpoint and the freed capacity",
                         context=lambda: str(st.profiles))
        period = first_period(tx_profile(st, 1))
        assert period == {"startPeriod": 0, "limit": 0.0, "numberPhases": 3, "operationMode": "CentralSetpoint",
                          "setpoint": -8.0, "setpoint_L2": -8.0, "setpoint_L3": -8.0, "dischargeLimit": -8.0,
                          "dischargeLimit_L2": -8.0, "dischargeLimit_L3": -8.0}
        assert first_period(tx_profile(st, 2)) == {"startPeriod": 0, "limit": 16.0, "numberPhases": 3}
        # a dynamic profile's update (2.1 PullDynamicScheduleUpdate) is the same setpoint
        pulled = await st.call("PullDynamicScheduleUpdate",
                               {"chargingProfileId": server.core.smart_charging.profile_id(1, "tx")})
        assert pulled == {"status": "Accepted", "scheduleUpdate": {
            "limit": 0.0, "setpoint": -8.0, "setpoint_L2": -8.0, "setpoint_L3": -8.0, "dischargeLimit": -8.0,
            "dischargeLimit_L2": -8.0, "dischargeLimit_L3": -8.0}}
        # the EV's own schedule (ISO 15118) is checked in both directions: within the discharge
        # its profile allows, Accepted; beyond it, or a discharge where none is allowed, Rejected
        async def ev_schedule(evse_id: int, period: dict[str, Any]) -> dict[str, Any]:
            return await st.call("NotifyEVChargingSchedule", {
                "timeBase": ocpp_ts(utcnow()), "evseId": evse_id, "chargingSchedule": {
                    "id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [
                        {"startPeriod": 0, "numberPhases": 3, **period}]}})

        assert (await ev_schedule(1, {"limit": -8.0}))["status"] == "Accepted"
        assert (await ev_schedule(1, {"limit": 0.0, "setpoint": -8.0, "setpoint_L2": -8.0, "setpoint_L3": -8.0}
                                  ))["status"] == "Accepted"
        beyond = await ev_schedule(1, {"limit": -12.0})
        assert beyond["status"] == "Rejected" and "discharge limit" in beyond["statusInfo"]["additionalInfo"]
        assert (await ev_schedule(2, {"limit": -2.0}))["status"] == "Rejected"  # a ChargingOnly car
        assert (await ev_schedule(2, {"limit": 16.0}))["status"] == "Accepted"
        sent = [c for c in st.received_calls if c.action == "SetChargingProfile"]
        for call in sent:
            validate("2.1", "SetChargingProfile", call.payload)
        site_view = (await api.get(f"/sites/{site['id']}/smart-charging")).json()
        assert site_view["allocated_a"] == [8.0, 8.0, 8.0]  # within 16 A on every phase
        assert site_view["discharge_a"] == [8.0, 8.0, 8.0]  # of it, fed in by the V2X EV (net 16 - 8)
        assert {c["evse_id"]: c["discharging"] for c in site_view["connectors"]} == {1: True, 2: False}
        html = str(site_panel(site_view))
        assert "Discharge, last round (A)" in html and "discharging" in html

        # Its spare energy used up (the EV now needs 2 kWh to reach its minimum): it charges
        # again (ChargingOnly), the cars share the 16 A.
        mark = rounds.mark()
        await st.call("NotifyEVChargingNeeds", needs(spare_wh=-2000))
        await rounds.wait(lambda r: r.limits == {"V2X-1/1": 8.0, "V2X-1/2": 8.0}, since=mark)
        await eventually(lambda: first_period(tx_profile(st, 1)) == {
            "startPeriod": 0, "limit": 8.0, "numberPhases": 3, "operationMode": "ChargingOnly"}
            and first_period(tx_profile(st, 2))["limit"] == 8.0, what="charging again",
            context=lambda: str(st.profiles))
        for call in st.received_calls:
            if call.action == "SetChargingProfile":
                validate("2.1", "SetChargingProfile", call.payload)


async def test_an_ev_without_a_bidirectional_mode_never_discharges(server):
    """The same parameters without a BPT mode among the EV's modes: it is a plain car."""
    fast(server)
    rounds = Rounds(server)
    async with two_cars(server, "V2X-2", limit=16, station_max=16) as (st, _):
        mark = rounds.mark()
        await st.call("NotifyEVChargingNeeds", needs(spare_wh=5000, modes=("AC_three_phase",)))
        r = await rounds.wait(lambda r: len(r.limits) == 2, since=mark)
        assert r.limits == {"V2X-2/1": 8.0, "V2X-2/2": 8.0}
        assert all(x.discharge_max_a == 0.0 for x in r.loads)
        await eventually(lambda: tx_profile(st, 1) is not None)
        assert "operationMode" not in first_period(tx_profile(st, 1))


# ---------------------------------------------------------------------------------------------
# pure parts


def _tree(*nodes: TopologyNode) -> SiteTopology:
    return SiteTopology(site_id=1, voltage_v=230.0, nodes=nodes)


def _load(load_id: str, node: str, *, discharge_max_a: float = 0.0, spare_wh: float = 0.0, max_a: float = 32.0,
          measured_a: float | None = None) -> Load:
    return Load(id=load_id, station_id=node.split(":", 1)[1], evse_id=1, session_id=1, node=node, max_a=max_a,
                discharge_max_a=discharge_max_a, discharge_spare_wh=spare_wh, measured_a=measured_a,
                started_at=utcnow() - timedelta(minutes=10))


def test_safety_net_counts_discharge_within_the_fuses_in_both_directions():
    topo = _tree(TopologyNode("site:1", "site", None, (20.0, 20.0, 20.0)),
                 TopologyNode("station:a", "station", "site:1", (INF, INF, INF)),
                 TopologyNode("station:b", "station", "site:1", (12.0, 12.0, 12.0)))
    loads = [_load("car", "station:a"), _load("v2x", "station:b", discharge_max_a=16.0),
             _load("plain", "station:b")]
    # the V2X EV feeds 10 A: the car may draw 30 A while the site imports 20 A
    assert enforce_limits(topo, loads, {"car": 30, "v2x": -10, "plain": 0}, (INF,) * 3) == {
        "car": 30.0, "v2x": -10.0, "plain": 0.0}
    # no more than its own maximum, no more than station b's fuse in the export direction; a
    # plain car asked to discharge gets 0
    out = enforce_limits(topo, loads, {"car": 40, "v2x": -40, "plain": -5}, (INF,) * 3)
    assert out["v2x"] == -12.0 and out["plain"] == 0.0
    assert out["car"] + out["v2x"] <= 20.0
    # without the credit, the import is checked as if the EV fed nothing
    out = enforce_limits(topo, loads, {"car": 30, "v2x": -10}, (INF,) * 3, discharge_frees_capacity=False)
    assert out == {"car": 20.0, "v2x": -10.0, "plain": 0.0}
    # the capacity a plugin gives bounds the import, not the export (a fuse does)
    out = enforce_limits(topo, loads, {"car": 6, "v2x": -12}, (5.0, 5.0, 5.0))
    assert out == {"car": 6.0, "v2x": -12.0, "plain": 0.0}


def test_v2x_profiles_are_valid_21_and_read_back():
    now = utcnow().replace(microsecond=0)
    for unit in ("A", "W"):
        for phases, amps in ((3, -7.5), (1, -7.5), (3, 11.0)):
            plan = Planned("X", 1, "tx", ((now, amps),), number_phases=phases, transaction_id="t-1", bidirectional=True)
            profile = build_profile("2.1", plan, profile_id=900_013, stack_level=1, unit=unit)
            validate("2.1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
            period = profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]
            assert period["operationMode"] == ("CentralSetpoint" if amps < 0 else "ChargingOnly")
            back = planned_from_payload("X", 1, "tx", profile, now)
            assert back is not None and back.bidirectional
            assert abs(back.periods[0][1] - amps) < 0.1
            if amps < 0:
                assert period["limit"] == 0.0 and period["dischargeLimit"] == period["setpoint"]
                assert ("setpoint_L2" in period) == (unit == "A" and phases == 3)


def test_what_is_kept_of_the_needs():
    assert v2x_of_needs(needs(spare_wh=3000)["chargingNeeds"]) == {
        "modes": ["AC_three_phase", "AC_BPT"], "max_discharge_a": 10.0, "max_discharge_w": None,
        "min_discharge_a": None, "min_discharge_w": None, "spare_wh": 3000.0, "control_mode": "ScheduledControl"}
    assert v2x_of_needs(needs(spare_wh=3000, modes=("DC",))["chargingNeeds"]) is None
    assert v2x_of_needs(needs(spare_wh=-10)["chargingNeeds"])["spare_wh"] == 0.0  # type: ignore[index]


def test_the_load_balancer_discharges_only_for_cars_that_miss_current():
    now: datetime = utcnow()
    topo = _tree(TopologyNode("site:1", "site", None, (16.0, 16.0, 16.0)),
                 TopologyNode("station:s", "station", "site:1", (32.0, 32.0, 32.0)))
    site = {"id": 1, "simulation": True}
    v2x = _load("v2x", "station:s", discharge_max_a=10.0, spare_wh=4000.0, max_a=16.0)
    car = _load("car", "station:s", max_a=16.0)
    assert allocate_site(site, topo, [v2x, car], None, now) == {"v2x": -8.0, "car": 16.0}
    # no spare energy: both charge
    tired = _load("v2x", "station:s", discharge_max_a=10.0, spare_wh=0.0, max_a=16.0)
    assert allocate_site(site, topo, [tired, car], None, now) == {"v2x": 8.0, "car": 8.0}
    # a car that takes less than it was given is not short: nothing to feed
    slow = _load("car", "station:s", max_a=16.0, measured_a=3.0)
    light = allocate_site(site, topo, [v2x, slow], None, now)
    assert light["v2x"] >= 0
