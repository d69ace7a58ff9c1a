"""Plans over REST: every caller reads them (with the known feature keys); the installation's
admins (global) change their features and limits. An organization's plan is its ``plan`` field
on ``/organizations`` (chosen by global admins)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, patch
from litestar.exceptions import NotFoundException, ValidationException

from csms.api.audit import actor_of
from csms.api.auth import require
from csms.api.crud import jsonable, plan_limit
from csms.api.tenancy import GLOBAL_ONLY, SCOPED
from csms.core.services import plans


class PlanController(Controller):
    path = "/plans"
    tags = ["plans"]

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_plans(self) -> dict[str, Any]:
        """Every plan (``features``: the keys it includes; ``max_*``: null is no limit) and the
        known feature keys with their labels."""
        return {"items": [jsonable(p) for p in await plans.plans()], "features": plans.known_features()}

    @patch("/{plan_id:int}", guards=[require("admin")], opt={"tenant": GLOBAL_ONLY})
    async def update_plan(self, request: Request, plan_id: int, data: dict[str, Any]) -> dict[str, Any]:
        """Change a plan's name, description, features or limits: 409 when an organization holding
        it has more than a new limit allows (nothing changes then)."""
        if not isinstance(data, dict):
            raise ValidationException("the body must be a JSON object")
        try:
            values = plans.validated(data, plans.known_features())
        except plans.PlanInvalid as exc:
            raise ValidationException(str(exc)) from None
        actor, actor_organization = await actor_of(request)
        try:
            await plans.update_plan(plan_id, values, actor=actor, actor_organization=actor_organization)
        except LookupError:
            raise NotFoundException(f"no plan {plan_id}") from None
        except plans.PlanInvalid as exc:
            raise ValidationException(str(exc)) from None
        except plans.PlanLimitReached as exc:
            raise plan_limit(exc) from None
        return jsonable(next(p for p in await plans.plans() if p["id"] == plan_id))
