"""Organizations as tenants: who sees what, and the rule every route declares.

A user or API key belongs to one organization (or to none: *global*, the installation's owner)
and sees the objects of that organization and of every organization below it (``parent``);
a global caller sees everything, including objects that belong to no organization.

**Every route declares its tenant rule** in ``opt["tenant"]``; :func:`tenant_guard` (an
app-level guard, so it runs before the route's own guards) applies it:

* :data:`PUBLIC`: the route knows no tenant (the login page, health, static files, the
  station- and partner-facing endpoints that authenticate otherwise);
* :data:`GLOBAL_ONLY`: installation-wide (plugin list, raw database); a caller of an
  organization gets 404;
* :data:`SCOPED`: the handler filters what it reads and checks what it writes with
  :func:`tenant_scope` and :func:`restrict`;
* a mapping of path parameters to object kinds, e.g. ``{"station_id": "station"}``: the objects
  named in the path must be visible to the caller, else 404 -- exactly the answer for an object
  that does not exist, so another tenant's ids are never confirmed. The handler filters anything
  else it lists as for :data:`SCOPED`.

A route without a rule is treated as :data:`GLOBAL_ONLY` (secure by default), and the suite
fails on it (``tests/test_tenancy_routes.py`` walks the OpenAPI document and the route table).
Object kinds are registered with :func:`register_kind`; plugins do so through
:mod:`csms.plugin_api`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, TypeVar

from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException, ValidationException
from litestar.handlers.base import BaseRouteHandler

from csms.api.auth import Principal, principal_of
from csms.core.tables import ApiKey, ChargingSession, Driver, Hub, IdToken, Organization, Site, Station

PUBLIC = "public"
GLOBAL_ONLY = "global"
SCOPED = "scoped"

Q = TypeVar("Q")


@dataclass(frozen=True)
class Scope:
    """What a caller sees: ``organization`` is its own (None: global); ``visible`` the ids of
    that organization and all below it (None: everything)."""

    organization: int | None
    visible: frozenset[int] | None

    @property
    def is_global(self) -> bool:
        return self.visible is None

    def sees(self, organization: int | None) -> bool:
        """Whether an object of ``organization`` (None: of no organization) is visible."""
        return self.visible is None or (organization is not None and organization in self.visible)


GLOBAL = Scope(None, None)


async def organization_tree() -> dict[int, int | None]:
    """Every organization's parent (id → parent id)."""
    return {r["id"]: r["parent"] for r in await Organization.select(Organization.id, Organization.parent)}


def descendants(tree: Mapping[int, int | None], root: int) -> set[int]:
    """``root`` and every organization below it."""
    children: defaultdict[int, list[int]] = defaultdict(list)
    for org, parent in tree.items():
        if parent is not None:
            children[parent].append(org)
    seen, todo = {root}, [root]
    while todo:
        for child in children[todo.pop()]:
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


async def scope_for(organization: int | None) -> Scope:
    if organization is None:
        return GLOBAL
    return Scope(organization, frozenset(descendants(await organization_tree(), organization)))


def restrict(query: Q, column: Any, scope: Scope) -> Q:
    """``query`` limited to rows whose organization ``column`` the scope sees."""
    if scope.visible is None:
        return query
    return query.where(column.is_in(sorted(scope.visible)))  # type: ignore[attr-defined]


async def check_assignable(scope: Scope, organization: int | None, *, what: str = "the object") -> None:
    """Refuse (422, nothing changed) giving an object to an organization that does not exist or
    the caller cannot see, or to none at all unless the caller is global."""
    if organization is None:
        if not scope.is_global:
            raise ValidationException(f"{what} must belong to an organization you manage")
        return
    if not scope.sees(organization) or not await Organization.exists().where(Organization.id == organization):
        raise ValidationException(f"no organization {organization}" + ("" if scope.is_global else
                                                                        " among those you manage"))


async def owner_for_new(scope: Scope, requested: int | None, *, what: str = "the object") -> int | None:
    """The organization a new object gets: the one asked for (checked), else the caller's own."""
    if requested is None:
        return scope.organization
    await check_assignable(scope, requested, what=what)
    return requested


async def visible_station_ids(scope: Scope) -> list[str] | None:
    """The station ids the scope sees (None: all of them), for tables that name stations by id."""
    if scope.is_global:
        return None
    return [r["station_id"] for r in await restrict(Station.select(Station.station_id), Station.organization, scope)]


def restrict_station_ids(query: Q, column: Any, station_ids: list[str] | None) -> Q:
    """``query`` limited to rows whose station id ``column`` is one of ``station_ids`` (None: all)."""
    if station_ids is None:
        return query
    return query.where(column.is_in(station_ids or [""]))  # type: ignore[attr-defined]


# -- who is calling ---------------------------------------------------------------------------

# How a page request (not under /api/) names its caller: the admin adds its session login here.
page_principal_resolvers: list[Callable[[ASGIConnection], Awaitable[Principal | None]]] = []


async def caller_principal(connection: ASGIConnection) -> Principal | None:
    if connection.scope["path"].startswith("/api/"):
        return await principal_of(connection)
    for resolver in page_principal_resolvers:
        principal = await resolver(connection)
        if principal is not None:
            return principal
    return None


async def tenant_scope(connection: ASGIConnection) -> Scope:
    """The caller's scope (looked up once per request); an anonymous caller sees nothing
    but the routes that are public anyway, so it gets an empty scope."""
    cached: Any = connection.scope.get("csms_tenant")
    if cached is not None:
        return cached
    principal = await caller_principal(connection)
    if principal is None:
        scope = Scope(None, frozenset())
    else:
        scope = await scope_for(principal.organization)
    connection.scope["csms_tenant"] = scope  # type: ignore[typeddict-unknown-key]
    return scope


# -- object kinds: how a path parameter names an object, and whose it is -----------------------

class _Missing:
    pass


MISSING = _Missing()
OwnerLookup = Callable[[Any], Awaitable["int | None | _Missing"]]
KINDS: dict[str, OwnerLookup] = {}


def register_kind(name: str, owner: OwnerLookup) -> None:
    """Declare an object kind for route rules: ``owner(value)`` returns the organization of the
    object a path parameter names (None: of no organization), or :data:`MISSING`."""
    KINDS[name] = owner


def owner_by(column: Any, organization: Any) -> OwnerLookup:
    """An owner lookup: the row whose ``column`` equals the value; its ``organization`` (a
    column of the same table or reached through a foreign key)."""
    table = column._meta.table
    selected = organization.as_alias("owner")

    async def owner(value: Any) -> int | None | _Missing:
        row = await table.select(selected).where(column == value).first()
        return MISSING if row is None else row["owner"]

    return owner


def owner_by_station(column: Any) -> OwnerLookup:
    """An owner lookup for a table that names its station by id in ``column``: the row whose
    primary key is the value; the organization of its station (None: no such station)."""
    table = column._meta.table
    key = table._meta.primary_key

    async def owner(value: Any) -> int | None | _Missing:
        row = await table.select(column.as_alias("station_id")).where(key == value).first()
        if row is None:
            return MISSING
        station = await Station.select(Station.organization).where(Station.station_id == row["station_id"]).first()
        return station["organization"] if station else None

    return owner


async def _user_owner(value: Any) -> int | None | _Missing:
    from piccolo.apps.user.tables import BaseUser

    from csms.core.tables import UserRole

    if not await BaseUser.exists().where(BaseUser.id == value):
        return MISSING
    row = await UserRole.select(UserRole.organization).where(UserRole.user_id == value).first()
    return row["organization"] if row else None


async def _organization_itself(value: Any) -> int | None | _Missing:
    exists = await Organization.exists().where(Organization.id == value)
    return value if exists else MISSING


register_kind("organization", _organization_itself)
register_kind("station", owner_by(Station.station_id, Station.organization))
register_kind("site", owner_by(Site.id, Site.organization))
register_kind("hub", owner_by(Hub.id, Hub.site.organization))
register_kind("session", owner_by(ChargingSession.id, ChargingSession.station.organization))
register_kind("token", owner_by(IdToken.id_token, IdToken.organization))
register_kind("token_pk", owner_by(IdToken.id, IdToken.organization))
register_kind("driver", owner_by(Driver.id, Driver.organization))
register_kind("api_key", owner_by(ApiKey.id, ApiKey.organization))
register_kind("user", _user_owner)


def rule_of(handler: BaseRouteHandler) -> Any:
    """A route's tenant rule: declared, else public for a route a plugin declared public (with
    a reason, :func:`csms.plugin_routes.public_route`), else :data:`GLOBAL_ONLY`."""
    rule = handler.opt.get("tenant")
    if rule is None:
        reason = handler.opt.get("public")
        return PUBLIC if isinstance(reason, str) and reason.strip() else GLOBAL_ONLY
    return rule


async def tenant_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """The app-level guard applying each route's tenant rule (see the module docstring)."""
    rule = rule_of(handler)
    if rule == PUBLIC:
        return
    principal = await caller_principal(connection)
    if principal is None:
        return  # not logged in: the route's own guard answers 401 / the login page
    scope = await tenant_scope(connection)
    if scope.is_global or rule == SCOPED:
        return
    if rule == GLOBAL_ONLY:
        raise NotFoundException(f"no such page: {connection.scope['path']}")
    for param, kind in rule.items():
        value = connection.path_params.get(param)
        if value is None:
            continue
        owner = await KINDS[kind](value)
        if isinstance(owner, _Missing) or not scope.sees(owner):
            raise NotFoundException(f"no {kind.replace('_', ' ')} {value!r}")
