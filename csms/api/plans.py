"""Plans over REST: every caller reads them (with the known feature keys); the installation's
admins (global) add plans, change their names, features and limits, and remove those no
organization holds. An organization's plan is its ``plan`` field on ``/organizations`` (chosen
by global admins)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.exceptions import HTTPException, NotFoundException, ValidationException

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

    @post("/", guards=[require("admin")], opt={"tenant": GLOBAL_ONLY})
    async def create_plan(self, request: Request, data: dict[str, Any]) -> dict[str, Any]:
        """Add a plan: ``name`` (unique: 409 when another plan has it), ``description``,
        ``features`` (known keys) and ``max_*`` limits (left out or null: no limit)."""
        values = _validated(data)
        actor, actor_organization = await actor_of(request)
        try:
            plan_id = await plans.create_plan(values, actor=actor, actor_organization=actor_organization)
        except plans.PlanNameTaken as exc:
            raise name_taken(exc) from None
        except plans.PlanInvalid as exc:
            raise ValidationException(str(exc)) from None
        return await _plan(plan_id)

    @delete("/{plan_id:int}", guards=[require("admin")], opt={"tenant": GLOBAL_ONLY})
    async def delete_plan(self, request: Request, plan_id: int) -> None:
        """Remove a plan: 409 naming the organizations that hold it (give them another first)."""
        actor, actor_organization = await actor_of(request)
        try:
            await plans.delete_plan(plan_id, actor=actor, actor_organization=actor_organization)
        except LookupError:
            raise NotFoundException(f"no plan {plan_id}") from None
        except plans.PlanInUse as exc:
            raise HTTPException(status_code=409, detail=str(exc), extra={
                "error": "PlanInUse", "plan": exc.plan, "organizations": exc.organizations}) from None

    @patch("/{plan_id:int}", guards=[require("admin")], opt={"tenant": GLOBAL_ONLY})
    async def update_plan(self, request: Request, plan_id: int, data: dict[str, Any]) -> dict[str, Any]:
        """Change a plan's name, description, features or limits: 409 when an organization holding
        it has more than a new limit allows (nothing changes then)."""
        values = _validated(data)
        actor, actor_organization = await actor_of(request)
        try:
            await plans.update_plan(plan_id, values, actor=actor, actor_organization=actor_organization)
        except LookupError:
            raise NotFoundException(f"no plan {plan_id}") from None
        except plans.PlanNameTaken as exc:
            raise name_taken(exc) from None
        except plans.PlanLimitReached as exc:
            raise plan_limit(exc) from None
        return await _plan(plan_id)


def _validated(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationException("the body must be a JSON object")
    try:
        return plans.validated(data, plans.known_features())
    except plans.PlanInvalid as exc:
        raise ValidationException(str(exc)) from None


def name_taken(exc: plans.PlanNameTaken) -> HTTPException:
    """409: another plan has the name."""
    return HTTPException(status_code=409, detail=str(exc), extra={"error": "PlanNameTaken", "name": exc.name})


async def _plan(plan_id: int) -> dict[str, Any]:
    return jsonable(next(p for p in await plans.plans() if p["id"] == plan_id))
