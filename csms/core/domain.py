"""Version-neutral domain types passed between the core, its hooks and plugins."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class AuthorizationResult:
    """The answer to "may this token charge here?".

    ``status`` uses OCPP 2.0.1 AuthorizationStatus names (Accepted, Blocked, ConcurrentTx,
    Expired, Invalid, NoCredit, NotAllowedTypeEVSE, NotAtThisLocation, NotAtThisTime, Unknown);
    the 1.6 adapter maps them onto 1.6's smaller set.
    """

    status: str
    expires_at: datetime | None = None
    group_id: str | None = None
    driver_id: int | None = None
    source: str = ""  # which plugin decided

    @property
    def accepted(self) -> bool:
        return self.status == "Accepted"


@dataclass(frozen=True)
class CostLine:
    """One line of a cost breakdown (a price component over a period)."""

    component: str  # ENERGY|TIME|PARKING_TIME|FLAT|...
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount_excl_vat: Decimal
    vat_amount: Decimal = Decimal(0)
    period_start: datetime | None = None
    period_end: datetime | None = None


@dataclass(frozen=True)
class SessionCost:
    """The cost of a session as a pricing plugin computed it. Money is Decimal, never float."""

    currency: str
    total_excl_vat: Decimal
    total_incl_vat: Decimal
    lines: tuple[CostLine, ...] = ()
    final: bool = False
    tariff_id: str | None = None
    flags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON form: Decimal amounts as strings so no precision is lost."""
        def ts(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "currency": self.currency, "total_excl_vat": str(self.total_excl_vat),
            "total_incl_vat": str(self.total_incl_vat), "final": self.final, "tariff_id": self.tariff_id,
            "flags": list(self.flags),
            "lines": [{"component": ln.component, "description": ln.description, "quantity": str(ln.quantity),
                       "unit": ln.unit, "unit_price": str(ln.unit_price), "amount_excl_vat": str(ln.amount_excl_vat),
                       "vat_amount": str(ln.vat_amount), "period_start": ts(ln.period_start),
                       "period_end": ts(ln.period_end)} for ln in self.lines],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SessionCost":
        """The inverse of :meth:`to_json`."""
        def ts(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        return cls(
            currency=data["currency"], total_excl_vat=Decimal(data["total_excl_vat"]),
            total_incl_vat=Decimal(data["total_incl_vat"]), final=data["final"], tariff_id=data["tariff_id"],
            flags=tuple(data["flags"]),
            lines=tuple(CostLine(component=ln["component"], description=ln["description"],
                                 quantity=Decimal(ln["quantity"]), unit=ln["unit"],
                                 unit_price=Decimal(ln["unit_price"]), amount_excl_vat=Decimal(ln["amount_excl_vat"]),
                                 vat_amount=Decimal(ln["vat_amount"]), period_start=ts(ln["period_start"]),
                                 period_end=ts(ln["period_end"])) for ln in data["lines"]),
        )


@dataclass(frozen=True)
class CapacityPeriod:
    start: datetime
    limit_a: tuple[float, float, float]


@dataclass(frozen=True)
class CapacitySchedule:
    """Available capacity per phase over time, from ``start`` of each period to the next."""

    periods: tuple[CapacityPeriod, ...]

    def at(self, when: datetime) -> tuple[float, float, float]:
        current = (float("inf"),) * 3
        for p in self.periods:
            if p.start <= when:
                current = p.limit_a
        return current

    @staticmethod
    def minimum(schedules: list["CapacitySchedule"]) -> "CapacitySchedule":
        """The pointwise minimum of several schedules."""
        starts = sorted({p.start for s in schedules for p in s.periods})
        periods = []
        for start in starts:
            values = [s.at(start) for s in schedules]
            periods.append(CapacityPeriod(start, tuple(min(v[i] for v in values) for i in range(3))))  # type: ignore[arg-type]
        return CapacitySchedule(tuple(periods))


@dataclass(frozen=True)
class NavItem:
    """An entry in the admin's navigation, contributed by a plugin through ``admin_nav``."""

    label: str
    href: str
    order: int = 100
    min_role: str = "viewer"


@dataclass
class Load:
    """An active connector as the smart-charging loop sees it."""

    id: str  # "<station_id>/<evse_id>"
    station_id: str
    evse_id: int
    session_id: int
    phases: tuple[int, ...] = (1, 2, 3)  # grid phases drawn from, after the station's phase rotation
    min_a: float = 6.0
    max_a: float = 32.0
    measured_a: float | None = None  # highest measured current of its phases
    power_w: float | None = None
    started_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    node: str = ""  # the topology node it hangs under (its station's)
    priority: int = 0
    departure_at: datetime | None = None
    energy_wh: float = 0.0  # delivered so far
    energy_wh_needed: float | None = None  # still wanted, when the driver or the EV said
    # V2X (an OCPP 2.1 EV that said it can discharge): the most it may feed back, in amps per
    # phase (0: it cannot; then an allocation below 0 counts as 0), and the energy it can spare
    # above its minimum state of charge. An ``allocate_capacity`` answer below 0 (at most
    # ``discharge_max_a``) asks it to discharge; the core sends that as a 2.1 central setpoint.
    discharge_max_a: float = 0.0
    discharge_spare_wh: float = 0.0


@dataclass(frozen=True)
class TopologyNode:
    """A node of a site's electrical tree: the grid connection, a hub, or a station.

    ``limit_a`` is per grid phase (``inf``: no limit of its own) and is what the loads under the
    node may share: the physical limit minus ``reserved_a``, the draw of stations below it that
    the core cannot reach (offline) and that keep their last profiles.
    """

    id: str  # "site:<id>", "hub:<id>", "station:<station_id>"
    kind: str  # site|hub|station
    parent: str | None
    limit_a: tuple[float, float, float]
    name: str = ""
    reserved_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    station_id: str | None = None
    phase_rotation: str = "RST"
    min_current_a: float = 6.0
    online: bool = True


@dataclass(frozen=True)
class SiteTopology:
    """A site's tree of limits, root first (``nodes[0]`` is the grid connection)."""

    site_id: int
    voltage_v: float
    nodes: tuple[TopologyNode, ...]

    @property
    def root(self) -> TopologyNode:
        return self.nodes[0]

    def node(self, node_id: str) -> TopologyNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def path(self, node_id: str) -> list[TopologyNode]:
        """The node and its ancestors up to the root."""
        by_id = {n.id: n for n in self.nodes}
        out: list[TopologyNode] = []
        current: str | None = node_id
        while current is not None:
            n = by_id[current]
            out.append(n)
            current = n.parent
        return out
