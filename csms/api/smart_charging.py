"""Smart charging over REST: a site's live capacity, allocation and draw; dry runs; session targets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.exceptions import NotFoundException, ValidationException

from csms.api.audit import audited
from csms.api.auth import require
from csms.core.runtime import get_core


class SimulatedCar(msgspec.Struct, forbid_unknown_fields=True):
    """A car for a dry run: under a station of the site (its limits and phase rotation apply) or
    directly under the grid connection; ``phases`` is a count of phases or a list of grid phases."""

    id: str | None = None
    station_id: str | None = None
    phases: int | list[int] = 3
    max_current_a: float = 32.0
    min_current_a: float | None = None
    measured_a: float | None = None
    priority: int = 0


class SimulateBody(msgspec.Struct, forbid_unknown_fields=True):
    cars: list[SimulatedCar]
    capacity_a: list[float] | None = None  # instead of the site's capacity now


class SessionTargets(msgspec.Struct, forbid_unknown_fields=True):
    departure_at: datetime | None = None
    energy_target_wh: float | None = None


class SmartChargingController(Controller):
    path = "/"
    tags = ["smart charging"]
    opt = {"tenant": {"site_id": "site", "session_id": "session"}}

    @get("/sites/{site_id:int}/smart-charging", guards=[require("viewer")])
    async def site_state(self, site_id: int) -> dict[str, Any]:
        """Capacity vs allocation vs measured draw per phase, the tree of limits with each hub's
        stations online/offline, and per connector the limit sent and whether it was acknowledged."""
        try:
            return await get_core().smart_charging.site_view(site_id)
        except LookupError:
            raise NotFoundException(f"no site with id {site_id}") from None

    @post("/sites/{site_id:int}/smart-charging/simulate", guards=[require("viewer")], status_code=200)
    async def simulate(self, site_id: int, data: SimulateBody) -> dict[str, Any]:
        """How the site's capacity would be shared among the given cars; nothing is sent."""
        if len(data.cars) > 1000:
            raise ValidationException("at most 1000 cars")
        try:
            return await get_core().smart_charging.simulate(
                site_id, [msgspec.structs.asdict(c) for c in data.cars], capacity_a=data.capacity_a)
        except LookupError:
            raise NotFoundException(f"no site with id {site_id}") from None
        except ValueError as exc:
            raise ValidationException(str(exc)) from None

    @put("/sessions/{session_id:int}/smart-charging", guards=[require("operator")])
    async def session_targets(self, request: Request, session_id: int, data: SessionTargets) -> dict[str, Any]:
        """When the driver leaves and how much energy (Wh, whole session) they want."""
        if data.energy_target_wh is not None and data.energy_target_wh < 0:
            raise ValidationException("energy_target_wh must be >= 0")
        departure = data.departure_at
        if departure is not None and departure.tzinfo is None:
            raise ValidationException("departure_at needs a time zone (for example 2030-01-01T18:00:00Z)")
        try:
            answer = await get_core().smart_charging.set_session_targets(
                session_id, departure_at=departure, energy_target_wh=data.energy_target_wh)
        except LookupError:
            raise NotFoundException(f"no session with id {session_id}") from None
        await audited(request, "update", "session", session_id, summary="smart-charging targets",
                      after={"departure_at": departure, "energy_target_wh": data.energy_target_wh})
        return answer
