"""Which tariff applies to a session: tariff assignments and their precedence.

An assignment names a tariff for an *audience* at a *location* during an optional validity
window (``valid_from`` inclusive, ``valid_to`` exclusive, compared with the session's start).

Audience, most specific first:
  1. a named organization (``organization_id``): the organization of the session's id token,
     or of its driver;
  2. a driver group (``driver_group``): the driver's kind, one of employee (alias staff), guest,
     customer, leasing (also every driver or card of a leasing-partner organization), public
     (also every card without a driver);
  3. everyone.

Location, most specific first: the EVSE (``station_id`` + ``evse_id``), the station
(``station_id``), the site (``site_id``), everywhere.

Precedence: the audience decides first, the location second. So "driver group/organization >
EVSE > station > site > default": an organization's tariff at a whole site beats the public
tariff of one EVSE there; among the public tariffs the EVSE's beats the station's, the station's
the site's, and the site's the default (everyone, everywhere). When the card's and the driver's
organizations both have a tariff at the same level, the card's organization wins.

Two assignments for the same audience at the same location with overlapping validity would
contradict each other: the second is refused, naming the first. So is an assignment that mixes
audiences (an organization *and* a group), names both a site and a station, or an EVSE without
its station.

An assignment belongs to an organization (``organization``: the tenant that made it, not its
audience) or to the installation. An organization's users assign their own or the installation's
tariffs, at their own stations or sites only (an assignment everywhere would price other
tenants' sessions), for their own organizations.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator

from csms.plugin_api import GLOBAL, N_, ChargingSession, Driver, IdToken, Organization, Scope, Site, Station
from plugins.billing.owners import check_tariff_usable, check_visible
from plugins.billing.tables import Assignment, HomeStation, Tariff
from plugins.billing.tariffs import BillingError

DRIVER_GROUPS = ("employee", "guest", "customer", "leasing", "public")
GROUP_ALIASES = {"staff": "employee", "leasing_partner": "leasing"}
ASSIGNMENT_FIELDS = ("tariff", "organization_id", "driver_group", "site_id", "station_id", "evse_id",
                     "valid_from", "valid_to", "note", "organization")


@dataclass
class SessionContext:
    """Who charged where and when, as tariff selection and settlement need it."""

    session_id: int | None
    station_id: str
    evse_id: int
    at: datetime
    id_token: str = ""
    site_id: int | None = None
    site_organization_id: int | None = None
    timezone: str = "UTC"
    driver: dict[str, Any] | None = None
    token: dict[str, Any] | None = None
    organizations: dict[int, dict[str, Any]] = field(default_factory=dict)  # token's first, then driver's
    groups: tuple[str, ...] = ()
    home: dict[str, Any] | None = None

    @property
    def organization_ids(self) -> list[int]:
        return list(self.organizations)

    def organization_of(self, kind: str) -> dict[str, Any] | None:
        return next((o for o in self.organizations.values() if o["kind"] == kind), None)


def audience_rank(a: dict[str, Any]) -> int:
    return 2 if a.get("organization_id") is not None else 1 if a.get("driver_group") else 0


def location_rank(a: dict[str, Any]) -> int:
    if a.get("evse_id") is not None:
        return 3
    if a.get("station_id"):
        return 2
    return 1 if a.get("site_id") is not None else 0


def describe(a: dict[str, Any]) -> str:
    """``"organization 4 at EVSE CP1/2"``, ``"group guest at site 3"``, ``"everyone everywhere"``."""
    if a.get("organization_id") is not None:
        who = f"organization {a['organization_id']}"
    elif a.get("driver_group"):
        who = f"group {a['driver_group']}"
    else:
        who = "everyone"
    if a.get("evse_id") is not None:
        where = f"at EVSE {a['station_id']}/{a['evse_id']}"
    elif a.get("station_id"):
        where = f"at station {a['station_id']}"
    elif a.get("site_id") is not None:
        where = f"at site {a['site_id']}"
    else:
        where = "everywhere"
    return f"{who} {where}"


def _window(a: dict[str, Any]) -> str:
    start = a["valid_from"].isoformat() if a.get("valid_from") else "always"
    end = a["valid_to"].isoformat() if a.get("valid_to") else "open end"
    return f"{start} to {end}"


def overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two validity windows ``[valid_from, valid_to)`` share a moment."""
    a_from, a_to, b_from, b_to = a.get("valid_from"), a.get("valid_to"), b.get("valid_from"), b.get("valid_to")
    return (a_to is None or b_from is None or b_from < a_to) and (b_to is None or a_from is None or a_from < b_to)


def in_force(a: dict[str, Any], at: datetime) -> bool:
    return (a.get("valid_from") is None or a["valid_from"] <= at) and (a.get("valid_to") is None or at < a["valid_to"])


def _same_scope(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("organization_id", "driver_group", "site_id", "station_id", "evse_id")
    return all((a.get(k) or None) == (b.get(k) or None) for k in keys)


async def check_assignment(values: dict[str, Any], *, exclude_id: int | None = None,
                           scope: Scope = GLOBAL) -> dict[str, Any]:
    """Normalise and check an assignment as ``scope`` may write it (the tariff, station, site and
    organization it names are ones the scope sees); ``BillingError`` (400 invalid, 409 conflict)
    otherwise. The owner (``organization``) is the caller's to check."""
    v = {k: values.get(k) for k in ASSIGNMENT_FIELDS}
    v["driver_group"] = GROUP_ALIASES.get(v["driver_group"] or "", v["driver_group"] or "")
    v["station_id"] = v["station_id"] or ""
    v["note"] = (v["note"] or "")[:200]
    if v["tariff"] is None:
        raise BillingError(N_("tariff is required (the id of a billing tariff)"), field="tariff")
    tariff = await Tariff.select(Tariff.archived).where(Tariff.id == v["tariff"]).first()
    if tariff is None:
        raise BillingError(N_("no tariff %(tariff)s"), tariff=v["tariff"], field="tariff")
    await check_tariff_usable(v["tariff"], scope)
    if tariff["archived"]:
        raise BillingError(N_("tariff %(tariff)s is archived"), tariff=v["tariff"], field="tariff")
    if v["organization_id"] is not None and v["driver_group"]:
        raise BillingError(N_("an assignment is for an organization or for a driver group, not both"),
                           field="driver_group")
    if v["driver_group"] and v["driver_group"] not in DRIVER_GROUPS:
        raise BillingError(N_("driver_group must be one of %(groups)s (or staff, leasing_partner)"),
                           groups=", ".join(DRIVER_GROUPS), field="driver_group")
    if v["organization_id"] is not None and not await Organization.exists().where(
            Organization.id == v["organization_id"]):
        raise BillingError(N_("no organization %(organization)s"), organization=v["organization_id"],
                           field="organization_id")
    await check_visible(scope, station_id=v["station_id"], site_id=v["site_id"], organization_id=v["organization_id"])
    if not scope.is_global and v["site_id"] is None and not v["station_id"]:
        raise BillingError(N_("an organization's assignment names one of its stations or sites: one for everywhere "
                              "would price other organizations' sessions"), field="station_id")
    if v["site_id"] is not None and v["station_id"]:
        raise BillingError(N_("give site_id or station_id, not both: a station's assignment already applies "
                              "to it alone"), field="station_id")
    if v["evse_id"] is not None and not v["station_id"]:
        raise BillingError(N_("an EVSE assignment needs the station_id of its station"), field="evse_id")
    if v["site_id"] is not None and not await Site.exists().where(Site.id == v["site_id"]):
        raise BillingError(N_("no site %(site)s"), site=v["site_id"], field="site_id")
    if v["station_id"] and not await Station.exists().where(Station.station_id == v["station_id"]):
        raise BillingError(N_("no station %(station)s"), station=repr(v["station_id"]), field="station_id")
    if v["valid_from"] is not None and v["valid_to"] is not None and v["valid_to"] <= v["valid_from"]:
        raise BillingError(N_("valid_to must be after valid_from"), field="valid_to")
    others = await Assignment.select()
    for other in others:
        if other["id"] != exclude_id and _same_scope(v, other) and overlaps(v, other):
            raise BillingError(
                N_("conflicts with assignment %(assignment)s (tariff %(tariff)s for %(theirs)s, valid %(window)s): the "
                   "same %(ours)s would have two tariffs from %(start)s; end one's validity before the other's "
                   "starts"), assignment=other["id"], tariff=other["tariff"], theirs=describe(other),
                window=_window(other), ours=describe(v), start=_overlap_start(v, other), status=409, field="valid_from")
    return v


def _overlap_start(a: dict[str, Any], b: dict[str, Any]) -> str:
    starts = [x for x in (a.get("valid_from"), b.get("valid_from")) if x is not None]
    return max(starts).isoformat() if starts else "the start"


# The context already built for a session while this plugin prices it: the ``select_tariff``
# hook, called from inside the pricing, finds it here instead of querying it again.
_known: ContextVar[SessionContext | None] = ContextVar("billing_session_context", default=None)


@contextmanager
def known_context(ctx: SessionContext) -> Iterator[SessionContext]:
    """``with known_context(ctx):`` lets nested ``session_context`` calls for the same session
    reuse ``ctx`` (within the current task only)."""
    token = _known.set(ctx)
    try:
        yield ctx
    finally:
        _known.reset(token)


async def session_context(session: dict[str, Any]) -> SessionContext:
    """The context of a session (a ``charging_session`` row as hooks receive it)."""
    known = _known.get()
    if known is not None and known.session_id is not None and known.session_id == session.get("id"):
        return known
    station_id = session.get("station_id")
    if not station_id:
        row = await Station.select(Station.station_id).where(Station.id == session["station"]).first()
        station_id = row["station_id"] if row else ""
    ctx = SessionContext(session_id=session.get("id"), station_id=station_id, evse_id=session.get("evse_id") or 0,
                         at=session["started_at"], id_token=session.get("id_token") or "")
    st = await Station.select(Station.site, Station.site.timezone.as_alias("tz"),
                              Station.site.organization.as_alias("site_org")).where(
        Station.station_id == station_id).first()
    if st is not None:
        ctx.site_id, ctx.site_organization_id, ctx.timezone = st["site"], st["site_org"], st["tz"] or "UTC"
    if session.get("id_token"):
        ctx.token = await IdToken.select().where(IdToken.id_token == session["id_token"]).first()
    driver_id = session.get("driver") or (ctx.token or {}).get("driver")
    if driver_id is not None:
        ctx.driver = await Driver.select().where(Driver.id == driver_id).first()
    for org_id in ((ctx.token or {}).get("organization"), (ctx.driver or {}).get("organization")):
        if org_id is not None and org_id not in ctx.organizations:
            org = await Organization.select().where(Organization.id == org_id).first()
            if org is not None:
                ctx.organizations[org_id] = org
    groups = []
    if ctx.driver is not None:
        groups.append(GROUP_ALIASES.get(ctx.driver["kind"], ctx.driver["kind"]))
    else:
        groups.append("public")
    if ctx.organization_of("leasing_partner") is not None and "leasing" not in groups:
        groups.append("leasing")
    ctx.groups = tuple(groups)
    homes = await HomeStation.select().where(HomeStation.station_id == station_id)
    ctx.home = next((h for h in homes if in_force(h, ctx.at)), None)
    return ctx


async def session_row(session_id: int) -> dict[str, Any] | None:
    """A session as hooks receive it: the row plus the station's ident."""
    return await ChargingSession.select(
        ChargingSession.all_columns(), ChargingSession.station.station_id.as_alias("station_id")
    ).where(ChargingSession.id == session_id).first()


def _matches(a: dict[str, Any], ctx: SessionContext) -> bool:
    if a["organization_id"] is not None and a["organization_id"] not in ctx.organizations:
        return False
    if a["driver_group"] and a["driver_group"] not in ctx.groups:
        return False
    if a["station_id"] and a["station_id"] != ctx.station_id:
        return False
    if a["evse_id"] is not None and a["evse_id"] != ctx.evse_id:
        return False
    if a["site_id"] is not None and a["site_id"] != ctx.site_id:
        return False
    return in_force(a, ctx.at)


async def resolve_assignment(ctx: SessionContext) -> dict[str, Any] | None:
    """The assignment that decides the tariff for ``ctx`` (see the module docstring), or None."""
    live = await Assignment.select(Assignment.all_columns()).where(Assignment.tariff.archived == False)  # noqa: E712
    candidates = [a for a in live if _matches(a, ctx)]
    if not candidates:
        return None
    org_order = ctx.organization_ids

    def key(a: dict[str, Any]) -> tuple[int, int, int, int]:
        org_pos = org_order.index(a["organization_id"]) if a["organization_id"] is not None else 0
        return (-audience_rank(a), -location_rank(a), org_pos, a["id"])

    return min(candidates, key=key)


async def check_home_station(values: dict[str, Any], *, exclude_id: int | None = None) -> None:
    """A station is one employee's home station at a time: overlapping registrations conflict."""
    others = await HomeStation.select().where(HomeStation.station_id == values["station_id"])
    for other in others:
        if other["id"] != exclude_id and overlaps(values, other):
            raise BillingError(N_("station %(station)s is already the home station of driver %(driver)s (home "
                                  "station %(home)s, valid %(window)s)"), station=repr(values["station_id"]),
                               driver=other["driver_id"], home=other["id"], window=_window(other), status=409,
                               field="station_id")
