"""K03 Local Smart Charging and K14 External Charging Limit with a Local Controller: a hub whose
local controller is one of its stations gets its share of the site as one ChargingStationMaxProfile
on the controller, and its other stations no profiles from the loop; a limit the controller reports
(NotifyChargingLimit) holds the whole hub and frees the rest of the site; an unreachable controller
hands its stations back to the loop. The controller is the ``ocpp`` library's ChargePoint, the
charging stations the simulator with every frame checked against the schemas."""

from __future__ import annotations

from typing import Any

from ocpp.v201 import call as call201

from csms.core.tables import Hub
from csms.testing.stations import station
from csms_tools.simulator import SimStation
from tests.test_charging_profiles import ProfileStation201
from tests.test_ocpp_rpc_strict import eventually
from tests.test_smart_charging import LIMIT, Rounds, fast, make_site, make_station


def held_max(controller: ProfileStation201) -> list[dict[str, Any]]:
    """The ChargingStationMaxProfiles the controller holds on EVSE 0."""
    return [p for evse, p in controller.held.values()
            if evse == 0 and p["charging_profile_purpose"] == "ChargingStationMaxProfile"]


def first_limit(profile: dict[str, Any]) -> float:
    schedule = profile["charging_schedule"]
    schedule = schedule[0] if isinstance(schedule, list) else schedule
    return float(schedule["charging_schedule_period"][0]["limit"])


async def test_a_hub_with_a_local_controller_gets_one_limit_on_the_controller(any_server):
    server, api = any_server, any_server.api
    fast(server)
    rounds = Rounds(server)
    site = await make_site(api, LIMIT)
    hub = (await api.post("/hubs", json={"name": "Garage", "site": site["id"]})).json()
    hid = f"hub:{hub['id']}"
    for sid in ("LC-CTRL", "LC-A", "LC-B"):
        await make_station(api, sid, site["id"], hub=hub["id"])
    await make_station(api, "LC-OUT", site["id"])

    # only one of the hub's stations can be its controller; a new hub has none to choose
    r = await api.patch(f"/hubs/{hub['id']}", json={"local_controller": "LC-OUT"})
    assert r.status_code == 400 and "not one of the hub's stations" in r.text, r.text
    r = await api.post("/hubs", json={"name": "Empty", "site": site["id"], "local_controller": "LC-A"})
    assert r.status_code == 400, r.text
    r = await api.patch(f"/hubs/{hub['id']}", json={"local_controller": "LC-CTRL"})
    assert r.status_code == 200 and r.json()["local_controller"] == "LC-CTRL", r.text

    for sid in ("LC-A", "LC-OUT"):
        await api.post("/tokens", json={"id_token": f"CAR-{sid}"})
    a = SimStation("LC-A", server.ws_url("LC-A"), "2.0.1", evses=1, check_frames=True)
    b = SimStation("LC-B", server.ws_url("LC-B"), "2.0.1", evses=1, check_frames=True)
    out = SimStation("LC-OUT", server.ws_url("LC-OUT"), "2.0.1", evses=1, check_frames=True)
    try:
        async with station(server, "LC-CTRL", "2.0.1", cls=ProfileStation201) as controller:
            for st in (a, b, out):
                await st.connect()
                await st.boot()
                await st.announce()
            mark = rounds.mark()
            await a.start_session(1, "CAR-LC-A")
            await out.start_session(1, "CAR-LC-OUT")
            first = await rounds.wait(lambda r: {"LC-A/1", "LC-OUT/1"} <= set(r.limits) and hid in r.controllers
                                      and r.sent > 0, since=mark)
            hub_limit = first.controllers[hid]
            # the hub's share: its car's limit, or the default for a car plugging in at LC-B
            assert hub_limit >= first.limits["LC-A/1"] and hub_limit >= first.defaults["LC-B"]
            assert hub_limit + first.limits["LC-OUT/1"] <= LIMIT  # the site's fuse holds
            await eventually(lambda: [first_limit(p) for p in held_max(controller)] == [hub_limit])
            # the controller balances its stations: the loop sends them nothing, the others as before
            await a.settle()
            assert a.profiles == {} and b.profiles == {}
            assert out.limit_a(1) is not None

            view = (await api.get(f"/sites/{site['id']}/smart-charging")).json()
            (garage,) = view["hubs"]
            assert garage["stations"] == ["LC-A", "LC-B"]  # the controller is not a charging point
            lc = garage["local_controller"]
            assert (lc["station_id"], lc["reachable"], lc["limit_a"]) == ("LC-CTRL", True, hub_limit)
            assert lc["station_max_profile"]["status"] == "Accepted"
            assert lc["station_max_profile"]["limit_a"] == hub_limit

            # K14: the controller reports a limit from its EMS on the whole group (EVSE 0)
            mark = rounds.mark()
            await controller.call(call201.NotifyChargingLimit(
                charging_limit={"charging_limit_source": "EMS"},
                charging_schedule=[{"id": 1, "charging_rate_unit": "A",
                                    "charging_schedule_period": [{"start_period": 0, "limit": 8.0}]}]))
            capped = await rounds.wait(lambda r: r.controllers.get(hid, 99) <= 8.0, since=mark)
            assert capped.limits["LC-A/1"] <= 8.0
            assert capped.limits["LC-OUT/1"] > first.limits["LC-OUT/1"]  # what the hub cannot use
            await eventually(lambda: [first_limit(p) for p in held_max(controller)] == [capped.controllers[hid]])

        # the controller is gone: the loop takes its stations back
        mark = rounds.mark()
        await rounds.wait(lambda r: hid not in r.controllers and "LC-A/1" in r.limits and r.sent > 0, since=mark)
        await eventually(lambda: a.limit_a(1) is not None)

        # a controller that leaves the hub stops being its controller
        r = await api.patch("/stations/LC-CTRL", json={"hub": None})
        assert r.status_code == 200, r.text
        assert await Hub.select(Hub.local_controller).where(Hub.id == hub["id"]).first() == {"local_controller": ""}
    finally:
        for st in (a, b, out):
            await st.close()

