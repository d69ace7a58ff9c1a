"""Checks of the ACN adapter's boxes (bench/acn_benchmark.py); not part of the test suite.

    /tmp/venv-acn/bin/pip install acnportal pytest
    /tmp/venv-acn/bin/python -m pytest bench/test_acn_boxes.py -q

The cause found for issue 20: a node's box split in proportion to what each line pair's cars
can use scales a lone car on one pair down by the same factor as eight cars on another, and a
lopsided box holds less current in all than an even one. ``fair_direction`` splits the node
max-min fairly by what the pairs can use instead.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from acn_benchmark import fair_direction, map_infrastructure, network_info, node_box, site_network

CORNERS = np.array(list(itertools.product((0.0, 1.0), repeat=3)))


def nodes_of(site: str, cap: float):
    return {n.id: n for n in map_infrastructure(network_info(site_network(site, cap))).nodes}


def assert_box_feasible(node, box) -> None:
    """Every corner of the box passes the node's exact phasor constraints."""
    finite = np.array([x if math.isfinite(x) else 0.0 for x in box])
    for corner in CORNERS * finite:
        assert np.all(np.abs(node.coeffs @ corner) <= node.limits + 1e-6), (node.id, box)


def test_a_lone_car_on_a_pair_is_not_scaled_down_with_a_crowded_pair():
    # Caltech at 50 kW, a weekday morning (seen on 2019-10-22): eight cars on A-B (240 A
    # wanted), two on B-C (64 A), one on C-A (32 A).
    root = nodes_of("caltech", 50.0)["site"]
    usable = np.array([240.0, 64.0, 32.0])
    proportional = np.array(node_box(root, usable))
    fair = np.array(node_box(root, fair_direction(root, usable)))
    assert proportional[2] < 0.5 * 32.0  # what the old split gave the lone C-A car (14.2 A)
    assert fair[1] >= 64.0 - 1e-6 and fair[2] >= 32.0 - 1e-6  # the small pairs get what they use
    assert fair.sum() > proportional.sum() + 20.0  # and the box holds more in all
    assert_box_feasible(root, fair)


def test_when_every_pair_fits_the_split_follows_demand():
    root = nodes_of("caltech", 50.0)["site"]
    usable = np.array([40.0, 20.0, 10.0])
    assert np.array_equal(fair_direction(root, usable), usable)
    assert np.all(np.array(node_box(root, usable)) >= usable)


@pytest.mark.parametrize(("site", "cap"), [("caltech", 30.0), ("jpl", 40.0), ("generated", 30.0), ("office001", 10.0)])
def test_fair_boxes_are_feasible_and_serve_the_worst_pair_no_worse(site, cap):
    rng = np.random.default_rng(1)
    for node in nodes_of(site, cap).values():
        if not len(node.limits):
            continue
        for _ in range(40):
            usable = rng.choice([0.0, 6.0, 32.0, 100.0, 250.0], size=3) * (node.counts > 0)
            if not usable.any():
                continue
            fair = node_box(node, fair_direction(node, usable))
            assert_box_feasible(node, fair)
            proportional = node_box(node, usable)
            worst = min(min(x, u) for x, u in zip(fair, usable) if u > 0)
            before = min(min(x, u) for x, u in zip(proportional, usable) if u > 0)
            assert worst >= before - 1e-6, (node.id, usable)  # max-min: the pair served least (amps) gets no less
