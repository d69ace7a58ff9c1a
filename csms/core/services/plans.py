"""Plans: which features an organization may use and how many stations, hubs, users and API
keys it may have, enforced wherever they are written.

**Which plan applies**: an organization's own plan, else the nearest one above it (``parent``);
none anywhere up the tree: no restrictions (an installation without plans works as before). The
organization that holds the plan is the *holder*; the limits count the objects of the holder and
of every organization below it that has no plan of its own (a sub-organization cannot escape its
parent's plan, and a sub-organization given its own plan counts apart). Stations, API keys
(not revoked) and users (their role) count by their organization, hubs by their site's.

**Features** are keys (:data:`CORE_FEATURES` and those plugins declare through the
``plan_features`` hook): a plan lists the ones it includes. **Limits** are ``max_<kind>``
columns of :class:`~csms.core.tables.Plan` (null: no limit).

Every write that adds an object counted by a limit runs inside :func:`within_limits`: one write
transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL with the holder's row locked ``FOR UPDATE``)
that counts before and after the insert and rolls it back when it added to a kind over the
plan's limit, so two simultaneous requests never make one too many. Stations or a hub moved to
another organization's site count against that organization's plan
(:func:`csms.core.services.hubs.adopt`). A change of plan (an organization's, or a plan's
limits) is checked the same way: refused when an organization would be over a limit.

**Cache**: :func:`plan_of` (and so :func:`feature_enabled`, the API-key check) answers from a
per-node memory, emptied on every audited change of a plan or an organization, on every node
(:data:`PLANS_CHANGED`, broadcast by the runtime).
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable, Mapping

from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from csms.core import audit, cluster
from csms.core.tables import ApiKey, Hub, Organization, Plan, Station, UserRole
from csms.i18n import N_

PUBLIC_PUBLISHING = "public_publishing"
DRIVER_PORTAL = "driver_portal"
API_ACCESS = "api_access"

#: The core's feature keys with their labels (plugins add theirs through ``plan_features``).
CORE_FEATURES: dict[str, str] = {
    PUBLIC_PUBLISHING: N_("Public map, feeds and roaming (publishing sites)"),
    DRIVER_PORTAL: N_("Driver portal (sign-in, QR start)"),
    API_ACCESS: N_("REST API access with API keys"),
}

#: What a plan limits, in the order pages show it.
LIMITS = ("stations", "hubs", "users", "api_keys")
LIMIT_WORDS = {"stations": N_("Stations"), "hubs": N_("Hubs"), "users": N_("Users"), "api_keys": N_("API keys")}
_NOUNS = {"stations": ("station", "stations"), "hubs": ("hub", "hubs"), "users": ("user", "users"),
          "api_keys": ("API key", "API keys")}
MAX_LIMIT = 1_000_000

#: How long a node answers which plan applies to an organization from memory. Changes made through
#: the services empty the cache of every node at once (:data:`PLANS_CHANGED`); this bounds how long
#: a change made around them (the superusers' raw table page) takes to count.
CACHE_SECONDS = 60.0
#: The audited object types whose changes can change which plan applies.
CHANGES = frozenset({"plan", "organization"})
#: The broadcast topic that makes every node forget its cached plans.
PLANS_CHANGED = "plans-changed"
_cache: dict[int, tuple[float, dict[str, Any] | None]] = {}  # organization → (read at, its plan)
_generation = 0  # counts forget_cached_plans calls: a read that raced a change is not remembered


@dataclass(frozen=True)
class PlanFeature:
    """A feature key a plugin declares (``plan_features`` hook), with its label (mark it ``N_``)."""

    key: str
    label: str


class PlanLimitReached(Exception):
    """The write would put the organization's plan over one of its limits (nothing is written)."""

    def __init__(self, plan: str, kind: str, limit: int, count: int, organization: str) -> None:
        self.plan, self.kind, self.limit, self.count, self.organization = plan, kind, limit, count, organization
        noun = _NOUNS[kind][0 if limit == 1 else 1]
        super().__init__(f"Plan {plan} allows {limit} {noun}: organization {organization} would have {count}")


class FeatureNotInPlan(Exception):
    """The organization's plan does not include the feature."""

    def __init__(self, plan: str, feature: str, organization: str) -> None:
        self.plan, self.feature, self.organization = plan, feature, organization
        super().__init__(f"Plan {plan} of organization {organization} does not include {feature}")


class PlanInvalid(ValueError):
    """A plan's name, features or limits are not valid."""


class PlanNameTaken(PlanInvalid):
    """Another plan has the name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"another plan is named {name}")


class PlanInUse(Exception):
    """The plan cannot be removed: organizations hold it (``organizations``: their names)."""

    def __init__(self, plan: str, organizations: list[str]) -> None:
        self.plan, self.organizations = plan, organizations
        super().__init__(f"plan {plan} is the plan of {', '.join(organizations)}: give "
                         f"{'it' if len(organizations) == 1 else 'them'} another plan first")


def feature_keys(plugin_features: Iterable[PlanFeature] = ()) -> dict[str, str]:
    """Every known feature key with its label: the core's, then the plugins'."""
    return {**CORE_FEATURES, **{f.key: f.label for f in plugin_features}}


def known_features() -> dict[str, str]:
    """The core's and the loaded plugins' feature keys with their labels."""
    from csms.plugins import call_sync

    return feature_keys(f for f in call_sync("plan_features") if isinstance(f, PlanFeature))


# -- which plan applies --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tree:
    parents: dict[int, int | None]
    plans: dict[int, int | None]  # organization → its own plan
    names: dict[int, str]

    def holder(self, organization: int) -> int | None:
        """The organization whose plan applies to ``organization`` (None: no plan applies)."""
        seen: set[int] = set()
        current: int | None = organization
        while current is not None and current not in seen:
            seen.add(current)
            if self.plans.get(current) is not None:
                return current
            current = self.parents.get(current)
        return None

    def governed(self, holder: int) -> list[int]:
        """The organizations whose plan is ``holder``'s."""
        return [org for org in self.parents if self.holder(org) == holder]


async def _tree() -> _Tree:
    rows = await Organization.select(Organization.id, Organization.parent, Organization.plan, Organization.name)
    return _Tree({r["id"]: r["parent"] for r in rows}, {r["id"]: r["plan"] for r in rows},
                 {r["id"]: r["name"] for r in rows})


async def _plan_row(plan_id: int) -> dict[str, Any] | None:
    return await Plan.select().where(Plan.id == plan_id).output(load_json=True).first()


async def plan_of(organization: int | None) -> dict[str, Any] | None:
    """The plan that applies to ``organization`` (its own or the nearest above it); None: none
    applies (or no organization), so nothing is restricted. Answered from this node's cache
    (:data:`CACHE_SECONDS`; emptied when a plan or an organization changes): do not change the
    row it returns."""
    if organization is None:
        return None
    now = time.monotonic()
    hit = _cache.get(organization)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    generation = _generation
    tree = await _tree()
    holder = tree.holder(organization)
    plan = None if holder is None else await _plan_row(tree.plans[holder])  # type: ignore[arg-type]
    if generation == _generation:  # no change was announced while it was read
        _cache[organization] = (now, plan)
    return plan


def forget_cached_plans(_payload: Any = None) -> None:
    """Empty this node's cache of the plans that apply (a plan or an organization changed)."""
    global _generation
    _generation += 1
    _cache.clear()


def _forget_on_change(object_type: str, action: str) -> None:
    if object_type in CHANGES:
        forget_cached_plans()


# Every change of a plan or an organization is audited: this node forgets the plans at once;
# the runtime tells the other nodes (PLANS_CHANGED, handled there by forget_cached_plans).
audit.CHANGE_LISTENERS.append(_forget_on_change)
cluster.BROADCAST_HANDLERS[PLANS_CHANGED] = forget_cached_plans


def includes(plan: Mapping[str, Any] | None, feature: str) -> bool:
    """Whether ``plan`` (None: no plan) includes ``feature`` (its ``features`` read as JSON)."""
    return plan is None or feature in list(plan.get("features") or [])


async def feature_enabled(organization: int | None, feature: str) -> bool:
    """Whether ``organization`` may use ``feature``: always without an organization or a plan."""
    return includes(await plan_of(organization), feature)


async def plan_names() -> dict[int, tuple[str, bool]]:
    """Each organization that a plan applies to: the plan's name and whether it is inherited
    (the plan of an organization above it)."""
    tree = await _tree()
    names = {r["id"]: r["name"] for r in await Plan.select(Plan.id, Plan.name)}
    out = {}
    for org in tree.parents:
        holder = tree.holder(org)
        if holder is not None:
            out[org] = (names.get(tree.plans[holder], ""), holder != org)
    return out


async def require_feature(organization: int | None, feature: str) -> None:
    """Raise :class:`FeatureNotInPlan` when ``organization``'s plan does not include ``feature``."""
    plan = await plan_of(organization)
    if not includes(plan, feature):
        assert plan is not None and organization is not None
        name = (await Organization.select(Organization.name).where(Organization.id == organization).first()) or {}
        raise FeatureNotInPlan(plan["name"], feature, name.get("name", str(organization)))


async def organizations_without(feature: str) -> set[int]:
    """The organizations whose plan does not include ``feature``."""
    tree = await _tree()
    plans = {r["id"]: r for r in await Plan.select(Plan.id, Plan.features).output(load_json=True)}
    out = set()
    for org in tree.parents:
        holder = tree.holder(org)
        if holder is not None and not includes(plans.get(tree.plans[holder]), feature):
            out.add(org)
    return out


# -- counting ------------------------------------------------------------------------------------


async def _count(kind: str, organizations: list[int]) -> int:
    if not organizations:
        return 0
    if kind == "stations":
        return await Station.count().where(Station.organization.is_in(organizations))
    if kind == "hubs":
        return await Hub.count().where(Hub.site.organization.is_in(organizations))
    if kind == "users":
        return await UserRole.count().where(UserRole.organization.is_in(organizations))
    if kind == "api_keys":
        return await ApiKey.count().where(ApiKey.organization.is_in(organizations)
                                          & (ApiKey.revoked == False))  # noqa: E712
    raise ValueError(f"unknown limit {kind!r}")


async def usage(organization: int) -> dict[str, Any]:
    """The plan that applies to ``organization`` (None: none), the organization holding it, and
    for each limit how many there are under that plan and how many it allows (None: no limit)."""
    tree = await _tree()
    holder = tree.holder(organization)
    plan = None if holder is None else await _plan_row(tree.plans[holder])  # type: ignore[arg-type]
    governed = tree.governed(holder) if holder is not None else [organization]
    counts = {kind: await _count(kind, governed) for kind in LIMITS}
    return {"organization": organization, "plan": plan, "holder": holder, "holder_name": tree.names.get(holder) if holder is not None else None,
            "limits": [{"kind": kind, "count": counts[kind],
                        "limit": plan[f"max_{kind}"] if plan is not None else None} for kind in LIMITS]}


async def _counts(tree: _Tree, holder: int, kinds: Iterable[str], plan: Mapping[str, Any]) -> dict[str, int]:
    """How many of each limited kind the organizations under ``holder``'s plan have."""
    governed = tree.governed(holder)
    return {kind: await _count(kind, governed) for kind in kinds if plan[f"max_{kind}"] is not None}


async def _check(tree: _Tree, holder: int, kinds: Iterable[str], plan: Mapping[str, Any] | None = None, *,
                 before: Mapping[str, int] | None = None) -> None:
    """Refuse when ``holder``'s plan is exceeded; with the counts ``before`` a write, only when
    the write added to a kind over its limit (an organization already over a limit, from before
    its plan was lowered, can still move what it has)."""
    plan = plan if plan is not None else await _plan_row(tree.plans[holder])  # type: ignore[arg-type]
    if plan is None:
        return
    for kind, count in (await _counts(tree, holder, kinds, plan)).items():
        limit = plan[f"max_{kind}"]
        if count > limit and (before is None or count > before.get(kind, 0)):
            raise PlanLimitReached(plan["name"], kind, limit, count, tree.names.get(holder, str(holder)))


@asynccontextmanager
async def write_transaction() -> AsyncIterator[None]:
    """A write transaction that holds the write lock from its start (SQLite ``BEGIN IMMEDIATE``:
    a count taken inside cannot go stale)."""
    db = Station._meta.db
    if isinstance(db, SQLiteEngine):
        async with db.transaction(transaction_type=TransactionType.immediate):
            yield
    else:
        async with db.transaction():
            yield


async def _lock(organization: int) -> None:
    if not isinstance(Organization._meta.db, SQLiteEngine):
        await Organization.raw("SELECT id FROM organization WHERE id = {} FOR UPDATE", organization)


@asynccontextmanager
async def within_limits(organization: int | None, *kinds: str) -> AsyncIterator[None]:
    """Run the enclosed writes (which add ``kinds`` to ``organization``) in one transaction,
    rolled back with :class:`PlanLimitReached` when they put its plan over a limit (counted
    before and after them: writes that add nothing pass even where the plan is exceeded)."""
    if organization is None:
        yield
        return
    async with write_transaction():
        tree = await _tree()
        holder = tree.holder(organization)
        plan = before = None
        if holder is not None:
            await _lock(holder)
            plan = await _plan_row(tree.plans[holder])  # type: ignore[arg-type]
            if plan is not None:
                before = await _counts(tree, holder, kinds or LIMITS, plan)
        yield
        if holder is not None and plan is not None:
            await _check(tree, holder, kinds or LIMITS, plan, before=before)


async def check_organization(organization: int) -> None:
    """Refuse (:class:`PlanLimitReached`) when the plan that now applies to ``organization`` or
    any organization below it is exceeded (run inside the transaction that changed a plan or a
    parent, after the change)."""
    tree = await _tree()
    below = {org for org in tree.parents if _is_below(tree, org, organization)}
    for holder in {h for org in below if (h := tree.holder(org)) is not None}:
        await _check(tree, holder, LIMITS)


async def at_or_below(organization: int) -> list[int]:
    """``organization`` and every organization below it."""
    tree = await _tree()
    return [org for org in tree.parents if _is_below(tree, org, organization)]


def _is_below(tree: _Tree, org: int, root: int) -> bool:
    seen: set[int] = set()
    current: int | None = org
    while current is not None and current not in seen:
        if current == root:
            return True
        seen.add(current)
        current = tree.parents.get(current)
    return False


# -- the plans themselves ------------------------------------------------------------------------



async def plans() -> list[dict[str, Any]]:
    """Every plan, by name, with how many organizations hold it."""
    rows = await Plan.select().order_by(Plan.name).output(load_json=True)
    held: dict[int, int] = {}
    for r in await Organization.select(Organization.plan).where(Organization.plan.is_not_null()):
        held[r["plan"]] = held.get(r["plan"], 0) + 1
    return [{**r, "organizations": held.get(r["id"], 0)} for r in rows]


def validated(values: Mapping[str, Any], known: Mapping[str, str]) -> dict[str, Any]:
    """``values`` (``name``, ``description``, ``features``, ``max_<kind>``) checked: a name of 1 to
    50 characters, known feature keys, limits whole numbers from 0 (None: no limit)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "name":
            if not isinstance(value, str) or not 1 <= len(value.strip()) <= 50:
                raise PlanInvalid("name must be 1-50 characters")
            out[key] = value.strip()
        elif key == "description":
            if not isinstance(value, str) or len(value) > 300:
                raise PlanInvalid("description must be at most 300 characters")
            out[key] = value
        elif key == "features":
            if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
                raise PlanInvalid("features must be a list of feature keys")
            unknown = sorted(set(value) - set(known))
            if unknown:
                raise PlanInvalid(f"unknown features: {', '.join(unknown)} (known: {', '.join(known)})")
            out[key] = sorted(set(value))
        elif key in {f"max_{kind}" for kind in LIMITS}:
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 0 <= value <= MAX_LIMIT):
                raise PlanInvalid(f"{key} must be a whole number from 0 to {MAX_LIMIT}, or null for no limit")
            out[key] = value
        else:
            raise PlanInvalid(f"unknown field {key!r}")
    return out


async def create_plan(values: Mapping[str, Any], *, actor: str, actor_organization: int | None = None) -> int:
    """Add a plan with ``values`` (checked with :func:`validated` first; a ``name`` is needed;
    features none and limits none unless given); its id. :class:`PlanInvalid` without a name,
    :class:`PlanNameTaken` when another plan has it."""
    if not values.get("name"):
        raise PlanInvalid("a plan needs a name")
    async with write_transaction():
        if await Plan.exists().where(Plan.name == values["name"]):
            raise PlanNameTaken(values["name"])
        row = Plan(**values)
        await row.save()
    plan_id: int = row.id
    await audit.record(actor=actor, action="create", object_type="plan", object_id=plan_id,
                       after=await _plan_row(plan_id), actor_organization=actor_organization)
    return plan_id


async def delete_plan(plan_id: int, *, actor: str, actor_organization: int | None = None) -> None:
    """Remove plan ``plan_id``: :class:`LookupError` when there is none, :class:`PlanInUse` (naming
    them) when organizations hold it."""
    async with write_transaction():
        before = await _plan_row(plan_id)
        if before is None:
            raise LookupError(f"no plan {plan_id}")
        holders = await Organization.select(Organization.name).where(Organization.plan == plan_id).order_by(
            Organization.name)
        if holders:
            raise PlanInUse(before["name"], [r["name"] for r in holders])
        await Plan.delete().where(Plan.id == plan_id)
    await audit.record(actor=actor, action="delete", object_type="plan", object_id=plan_id, before=before,
                       actor_organization=actor_organization)


async def update_plan(plan_id: int, values: Mapping[str, Any], *, actor: str,
                      actor_organization: int | None = None) -> None:
    """Change plan ``plan_id`` (``values`` checked with :func:`validated` first); refused with
    :class:`PlanLimitReached` when an organization holding it would be over a new limit, with
    :class:`PlanNameTaken` when another plan has the name. Nothing is written then."""
    before = await _plan_row(plan_id)
    if before is None:
        raise LookupError(f"no plan {plan_id}")
    if "name" in values and await Plan.exists().where((Plan.name == values["name"]) & (Plan.id != plan_id)):
        raise PlanNameTaken(values["name"])
    if not values:
        return  # nothing to change
    async with write_transaction():
        await Plan.update({getattr(Plan, k): v for k, v in values.items()}).where(Plan.id == plan_id)
        plan = await _plan_row(plan_id)
        tree = await _tree()
        for holder in [org for org, held in tree.plans.items() if held == plan_id]:
            await _check(tree, holder, LIMITS, plan)
    await audit.record(actor=actor, action="update", object_type="plan", object_id=plan_id, before=before,
                       after=plan, actor_organization=actor_organization)
