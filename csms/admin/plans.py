"""The Plans page (the installation's admins only): every plan with its features, limits and the
organizations holding it, forms to add and change one, and removing one no organization holds
(:mod:`csms.core.services.plans`)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template

from csms.admin.forms import Field, FormErrors, parse
from csms.admin.templating import render
from csms.api.audit import actor_of
from csms.api.tenancy import GLOBAL_ONLY
from csms.core.services import plans
from csms.i18n import N_, gettext, ngettext

GLOBAL = {"tenant": GLOBAL_ONLY}
FEATURES_GROUP = N_("Features")
LIMITS_GROUP = N_("Limits (empty: no limit)")
LIMIT_LABELS = {"stations": N_("Stations at most"), "hubs": N_("Hubs at most"), "users": N_("Users at most"),
                "api_keys": N_("API keys at most")}


def limit_message(exc: plans.PlanLimitReached) -> str:
    """The refusal of a write that would break a plan's limit, in the viewer's language."""
    words = {"plan": exc.plan, "organization": exc.organization, "count": exc.count}
    if exc.kind == "stations":
        return ngettext("Plan %(plan)s allows %(num)s station: organization %(organization)s would have %(count)s.",
                        "Plan %(plan)s allows %(num)s stations: organization %(organization)s would have %(count)s.",
                        exc.limit, **words)
    if exc.kind == "hubs":
        return ngettext("Plan %(plan)s allows %(num)s hub: organization %(organization)s would have %(count)s.",
                        "Plan %(plan)s allows %(num)s hubs: organization %(organization)s would have %(count)s.",
                        exc.limit, **words)
    if exc.kind == "users":
        return ngettext("Plan %(plan)s allows %(num)s user: organization %(organization)s would have %(count)s.",
                        "Plan %(plan)s allows %(num)s users: organization %(organization)s would have %(count)s.",
                        exc.limit, **words)
    return ngettext("Plan %(plan)s allows %(num)s API key: organization %(organization)s would have %(count)s.",
                    "Plan %(plan)s allows %(num)s API keys: organization %(organization)s would have %(count)s.",
                    exc.limit, **words)


def _fields(known: dict[str, str]) -> list[Field]:
    return [
        Field("name", N_("Name"), required=True, maxlength=50),
        Field("description", N_("Description"), maxlength=300),
        *[Field(f"feature_{key}", label, "checkbox", group=FEATURES_GROUP) for key, label in known.items()],
        *[Field(f"max_{kind}", LIMIT_LABELS[kind], "integer", min=0, max=plans.MAX_LIMIT, group=LIMITS_GROUP)
          for kind in plans.LIMITS],
    ]


async def _plan(plan_id: int) -> dict[str, Any]:
    plan = next((p for p in await plans.plans() if p["id"] == plan_id), None)
    if plan is None:
        raise NotFoundException(gettext("There is no plan %(pk)s.", pk=plan_id))
    return plan


@get("/admin/plans", include_in_schema=False, opt=GLOBAL)
async def plan_list(request: Request) -> Template:
    return await render(request, "plans.html", title=gettext("Plans"), plans=await plans.plans(),
                        features=plans.known_features(), limits=plans.LIMITS, limit_words=plans.LIMIT_WORDS)


def in_use_message(exc: plans.PlanInUse) -> str:
    """The refusal to remove a plan organizations hold, naming them, in the viewer's language."""
    return ngettext("Plan %(plan)s is the plan of %(organizations)s: give it another plan first.",
                    "Plan %(plan)s is the plan of %(organizations)s: give them another plan first.",
                    len(exc.organizations), plan=exc.plan, organizations=", ".join(exc.organizations))


async def _form(request: Request, plan: dict[str, Any] | None, values: dict[str, Any], errors: FormErrors,
                status_code: int = 200) -> Template:
    if plan is None:
        return await render(request, "form.html", status_code=status_code, title=gettext("New plan"),
                            fields=_fields(plans.known_features()), values=values, errors=errors,
                            action="/admin/plans/new", cancel="/admin/plans", submit=gettext("Add plan"))
    return await render(request, "form.html", status_code=status_code,
                        title=gettext("Edit plan %(name)s", name=plan["name"]),
                        fields=_fields(plans.known_features()), values=values, errors=errors,
                        action=f"/admin/plans/{plan['id']}/edit", cancel="/admin/plans", submit=gettext("Save plan"),
                        delete=f"/admin/plans/{plan['id']}/delete")


def _values(plan: dict[str, Any]) -> dict[str, Any]:
    return {"name": plan["name"], "description": plan["description"],
            **{f"feature_{key}": key in plan["features"] for key in plans.known_features()},
            **{f"max_{kind}": "" if plan[f"max_{kind}"] is None else str(plan[f"max_{kind}"]) for kind in plans.LIMITS}}


@get("/admin/plans/new", include_in_schema=False, opt=GLOBAL)
async def plan_new(request: Request) -> Template:
    return await _form(request, None, {}, FormErrors())


@get("/admin/plans/{plan_id:int}/edit", include_in_schema=False, opt=GLOBAL)
async def plan_edit(request: Request, plan_id: int) -> Template:
    plan = await _plan(plan_id)
    return await _form(request, plan, _values(plan), FormErrors())


async def _save(request: Request, plan: dict[str, Any] | None) -> Template | Redirect:
    raw = await request.form()
    known = plans.known_features()
    parsed, errors = parse(_fields(known), raw)
    features = sorted(key for key in known if parsed.pop(f"feature_{key}", False))
    if plan is not None:  # a feature no loaded plugin declares any more stays as it was
        features += [key for key in plan["features"] if key not in known]
    status = 422
    if not errors:
        actor, actor_organization = await actor_of(request)
        try:
            values = plans.validated({**parsed, "features": sorted(features)}, {**known, **{k: k for k in features}})
            if plan is None:
                await plans.create_plan(values, actor=actor, actor_organization=actor_organization)
            else:
                await plans.update_plan(plan["id"], values, actor=actor, actor_organization=actor_organization)
            return Redirect("/admin/plans", status_code=303)
        except plans.PlanNameTaken:
            errors["name"] = gettext("Another plan is named %(name)s.", name=parsed.get("name"))
            status = 409
        except plans.PlanLimitReached as exc:
            errors[""] = limit_message(exc)
            status = 409
    form_values = dict(raw)
    for key in known:
        form_values[f"feature_{key}"] = key in features
    return await _form(request, plan, form_values, errors, status)


@post("/admin/plans/new", include_in_schema=False, opt=GLOBAL)
async def plan_create(request: Request) -> Template | Redirect:
    return await _save(request, None)


@post("/admin/plans/{plan_id:int}/edit", include_in_schema=False, opt=GLOBAL)
async def plan_update(request: Request, plan_id: int) -> Template | Redirect:
    return await _save(request, await _plan(plan_id))


@post("/admin/plans/{plan_id:int}/delete", include_in_schema=False, opt=GLOBAL)
async def plan_delete(request: Request, plan_id: int) -> Template | Redirect:
    plan = await _plan(plan_id)
    actor, actor_organization = await actor_of(request)
    try:
        await plans.delete_plan(plan_id, actor=actor, actor_organization=actor_organization)
    except LookupError:
        raise NotFoundException(gettext("There is no plan %(pk)s.", pk=plan_id)) from None
    except plans.PlanInUse as exc:
        return await _form(request, plan, _values(plan), FormErrors({"": in_use_message(exc)}), 409)
    return Redirect("/admin/plans", status_code=303)


PLAN_ROUTES = [plan_list, plan_new, plan_create, plan_edit, plan_update, plan_delete]
