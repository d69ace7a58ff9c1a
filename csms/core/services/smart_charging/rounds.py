"""What one round of a site works with (:class:`SiteModel`) and what it decided (:class:`SiteRound`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from csms.core.domain import CapacitySchedule, Load, SiteTopology
from csms.core.services.smart_charging.phases import INF, Triple


@dataclass
class SiteModel:
    """A site as one round sees it."""

    site: dict[str, Any]
    topology: SiteTopology  # limits after reservations
    physical: dict[str, Triple]  # node id → limits before reservations
    capacity: CapacitySchedule  # min of the grid limit and the site_capacity answers
    loads: list[Load]  # sessions at stations the loop can reach
    pinned: list[Load]  # sessions at stations it cannot reach
    reserved: dict[str, Triple]  # node id → amps held by unreachable stations below it
    stations: dict[str, dict[str, Any]]  # station id → row (+ "evses", "ready", "online")
    shares: dict[str, float]  # station id → safe share per connector
    managed: bool
    # hub node id → its local controller's station row (+ "ready", "online"): OCPP local smart
    # charging (K03), the hub's stations are balanced by the controller within the limit it gets
    controllers: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class SiteRound:
    """The outcome of one round for one site (what the API and admin show)."""

    site_id: int
    number: int
    at: datetime
    managed: bool
    capacity_a: Triple = (INF, INF, INF)  # the capacity this round shared (before reservations)
    reserved_a: Triple = (0.0, 0.0, 0.0)  # of it, held by unreachable stations
    limits: dict[str, float] = field(default_factory=dict)  # load id → amps
    defaults: dict[str, float] = field(default_factory=dict)  # station id → TxDefault amps
    controllers: dict[str, float] = field(default_factory=dict)  # hub node id → local controller's limit (A)
    allocated_by_plugin: bool = True
    sent: int = 0
    failed: int = 0
    loads: list[Load] = field(default_factory=list)
