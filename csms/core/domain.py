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
    phases: tuple[int, ...] = (1, 2, 3)
    min_a: float = 6.0
    max_a: float = 32.0
    measured_a: float | None = None
    power_w: float | None = None
    started_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
