"""The ``allocate_capacity`` hook implementation against hand-made topologies."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from csms.plugin_api import CapacityPeriod, CapacitySchedule, Load, SiteTopology, TopologyNode
from csms.testing import running_server
from plugins.loadbalancing import plugin

INF = math.inf
NOW = datetime(2030, 1, 7, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
async def server(tmp_path):
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh_state():
    plugin._states.clear()
    yield
    plugin._states.clear()


def site(site_id: int = 1, **extra) -> dict:
    return {"id": site_id, "name": "test", "simulation": False, **extra}


def tree(*nodes: TopologyNode, voltage: float = 230.0) -> SiteTopology:
    return SiteTopology(1, voltage, nodes)


def node(node_id: str, parent: str | None, limit=(INF, INF, INF), kind: str = "station") -> TopologyNode:
    return TopologyNode(node_id, kind, parent, limit)


def car(load_id: str, at: str, phases=(1, 2, 3), min_a=6.0, max_a=32.0, **kw) -> Load:
    return Load(id=load_id, station_id=at, evse_id=1, session_id=0, phases=phases, min_a=min_a, max_a=max_a,
                node=at, started_at=NOW - timedelta(minutes=10), **kw)


def flat(limit) -> CapacitySchedule:
    return CapacitySchedule((CapacityPeriod(NOW - timedelta(hours=1), limit),))


def totals(topology: SiteTopology, loads: list[Load], limits: dict[str, float]) -> dict[str, list[float]]:
    out = {n.id: [0.0, 0.0, 0.0] for n in topology.nodes}
    for load in loads:
        for n in topology.path(load.node):
            for p in load.phases:
                out[n.id][p - 1] += limits[load.id]
    return out


def call(topology, loads, capacity=None, s=None):
    return plugin.allocate_capacity(site=s or site(), topology=topology, loads=loads,
                                    capacity=capacity or flat((INF, INF, INF)), now=NOW)


def test_three_cars_share_the_grid_connection_equally():
    t = tree(node("site:1", None, (32.0, 32.0, 32.0), "site"), node("station:a", "site:1"),
             node("station:b", "site:1"))
    loads = [car("a/1", "station:a"), car("a/2", "station:a"), car("b/1", "station:b")]
    limits = call(t, loads)
    assert limits == pytest.approx({"a/1": 32 / 3, "a/2": 32 / 3, "b/1": 32 / 3})


def test_never_above_any_nodes_limit_phase_by_phase():
    t = tree(node("site:1", None, (40.0, 40.0, 25.0), "site"),
             node("hub:1", "site:1", (16.0, 16.0, 16.0), "hub"),
             node("station:a", "hub:1"), node("station:b", "hub:1"),
             node("station:c", "site:1", (10.0, 10.0, 10.0)), node("station:d", "site:1"))
    loads = [car("a", "station:a"), car("b", "station:b", phases=(1,)), car("c", "station:c", phases=(3,)),
             car("d", "station:d", phases=(3,))]
    limits = call(t, loads)
    sums = totals(t, loads, limits)
    limit_of = {n.id: n.limit_a for n in t.nodes}
    for node_id, phase_sums in sums.items():
        for p in range(3):
            assert phase_sums[p] <= limit_of[node_id][p] + 1e-6, (node_id, p, phase_sums)
    assert limits["a"] == pytest.approx(8.0) and limits["b"] == pytest.approx(8.0)  # the hub's L1
    # c and d share what a leaves of grid L3; c's station (10 A) does not bind
    assert limits["c"] == pytest.approx(8.5) and limits["d"] == pytest.approx(8.5)


def test_single_phase_cars_on_different_phases_do_not_compete():
    t = tree(node("site:1", None, (16.0, 16.0, 16.0), "site"), node("station:a", "site:1"),
             node("station:b", "site:1"), node("station:c", "site:1"))
    loads = [car("l1", "station:a", phases=(1,)), car("l2", "station:b", phases=(2,)),
             car("l3", "station:c", phases=(3,))]
    assert call(t, loads) == pytest.approx({"l1": 16.0, "l2": 16.0, "l3": 16.0})


def test_the_capacity_schedule_caps_the_root():
    t = tree(node("site:1", None, (63.0, 63.0, 63.0), "site"), node("station:a", "site:1"))
    loads = [car("a/1", "station:a"), car("a/2", "station:a")]
    assert call(t, loads, flat((20.0, 30.0, 30.0))) == pytest.approx({"a/1": 10.0, "a/2": 10.0})


def test_minimum_current_per_station_pauses_what_does_not_fit():
    t = tree(node("site:1", None, (16.0, 16.0, 16.0), "site"), node("station:a", "site:1"),
             node("station:b", "site:1"))
    loads = [car("a", "station:a", min_a=10.0), car("b", "station:b", min_a=10.0)]
    limits = call(t, loads)
    assert sorted(limits.values()) == [0.0, 16.0]


def test_state_is_kept_per_site_and_dry_runs_leave_it_alone():
    t = tree(node("site:1", None, (16.0, 16.0, 16.0), "site"), node("station:a", "site:1"),
             node("station:b", "site:1"))
    loads = [car("a", "station:a", min_a=10.0), car("b", "station:b", min_a=10.0)]
    first = call(t, loads)
    charging = next(k for k, v in first.items() if v > 0)
    assert set(plugin._states) == {1}
    # a dry run of the same site starts from nothing and keeps nothing
    call(t, loads, s=site(simulation=True))
    assert set(plugin._states[1].loads) == {"a", "b"}
    # the car that got the place keeps it (held on for min_on_s), whatever the order
    again = call(t, list(reversed(loads)))
    assert again[charging] == 16.0
    # another site has its own memory
    call(t, loads, s=site(2))
    assert set(plugin._states) == {1, 2}


def test_a_car_that_takes_less_leaves_the_rest_to_the_others():
    t = tree(node("site:1", None, (32.0, 32.0, 32.0), "site"), node("station:a", "site:1"),
             node("station:b", "site:1"))
    loads = [car("slow", "station:a"), car("fast", "station:b")]
    assert call(t, loads) == pytest.approx({"slow": 16.0, "fast": 16.0})
    loads = [car("slow", "station:a", measured_a=6.5), car("fast", "station:b", measured_a=16.0)]
    limits = call(t, loads)
    assert limits["slow"] == pytest.approx(8.5)  # measured + 2 A of headroom
    assert limits["fast"] == pytest.approx(23.5)


def test_an_earlier_departure_gets_a_larger_share():
    t = tree(node("site:1", None, (20.0, 20.0, 20.0), "site"), node("station:a", "site:1"),
             node("station:b", "site:1"))
    loads = [car("soon", "station:a", departure_at=NOW + timedelta(hours=1), energy_wh_needed=15000),
             car("later", "station:b", departure_at=NOW + timedelta(hours=10), energy_wh_needed=15000)]
    limits = call(t, loads)
    # The car leaving in an hour needs more than the site has; the one leaving in ten can wait.
    assert limits == pytest.approx({"soon": 20.0, "later": 0.0})


async def test_admin_panel_shows_the_site(server):
    """The site page panel: a uPlot chart and the limits sent, from the live view."""
    r = await server.api.post("/sites", json={"name": "Panel", "grid_limit_l1_a": 25})
    site_row = r.json()
    answer = plugin.admin_panels(page="site", request=None, context={"site": site_row})
    html = str(await answer())
    assert "uPlot" in html and "/static/vendor/uplot/uPlot.iife.min.js" in html
    assert "Capacity now (A)" in html and "Capacity, last round (A)" in html and "25.0" in html
    assert plugin.admin_panels(page="station", request=None, context={"site": site_row}) is None
