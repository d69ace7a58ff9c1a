"""The billing REST API under ``/api/v1/billing`` (see the plugin README for every route)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from litestar import Controller, Request, Response, Router, delete, get, patch, post, put
from litestar.status_codes import HTTP_200_OK

from csms.plugin_api import (
    GLOBAL, GLOBAL_ONLY, SCOPED, N_, Driver, Organization, Scope, Station, audited, caller, check_assignable, jsonable,
    owner_for_new, page_params, require, restrict, restrict_station_ids, run_cpu, tenant_scope, utcnow,
    visible_station_ids,
)
from plugins.billing import settlements as st
from plugins.billing import statements as stm
from plugins.billing.assignments import (
    ASSIGNMENT_FIELDS,
    check_assignment,
    check_home_station,
    describe,
    resolve_assignment,
    session_context,
    session_row,
)
from plugins.billing.config import billing_settings
from plugins.billing.costing import choice_for_version, choose_tariff, quote_session
from plugins.billing.owners import check_tariff_usable, check_visible, readable_tariffs, restrict_home_stations
from plugins.billing.pricing import preview
from plugins.billing.tables import Assignment, HomeStation, Settlement, Statement, Tariff, TariffVersion
from plugins.billing.tariff import Tariff as OcpiTariff
from plugins.billing.tariff import to_decimal
from plugins.billing.tariffs import (
    BillingError,
    archive_tariff,
    create_tariff,
    parse_tariff,
    tariff_json,
    tariff_of,
    tariff_row,
    update_tariff,
    version_row,
)


def billing_error(_: Request, exc: BillingError) -> Response:
    body: dict[str, Any] = {"status_code": exc.status, "detail": exc.message}
    if exc.problems:
        body["extra"] = {"problems": exc.problems}
    return Response(body, status_code=exc.status)


def when(value: Any, name: str, *, required: bool = False) -> datetime | None:
    """An ISO date or datetime from a body or query (naive means UTC)."""
    if value in (None, ""):
        if required:
            raise BillingError(N_("%(name)s is required"), name=name, field=name)
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise BillingError(N_("%(name)s %(value)s is not an ISO 8601 date or time"), name=name, value=repr(value),
                               field=name) from None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def body_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BillingError(N_("the body must be a JSON object"))
    return data


def period_of(data: dict[str, Any]) -> tuple[datetime, datetime]:
    """``month`` ("2026-11", read in ``timezone``) or ``period_start``/``period_end`` (or from/to)."""
    if data.get("month"):
        tz = data.get("timezone") or billing_settings().statement_timezone
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise BillingError(N_("unknown time zone %(zone)s"), zone=repr(tz), field="month") from None
        return stm.month_period(str(data["month"]), tz)
    start = when(data.get("period_start", data.get("from")), "period_start", required=True)
    end = when(data.get("period_end", data.get("to")), "period_end", required=True)
    assert start is not None and end is not None
    if end <= start:
        raise BillingError(N_("the period's end must be after its start"), field="period_end")
    return start, end


# -- tariffs ------------------------------------------------------------------------------------


def _tariff_body(data: Any, *, new: bool = False) -> tuple[dict[str, Any] | None, str | None, int | None]:
    """``{"name": ..., "tariff": {OCPI}}`` (a new one also ``"organization"``) or a bare OCPI
    tariff object: the OCPI JSON, the name and the organization asked for."""
    data = body_object(data)
    allowed = {"name", "tariff", "organization"} if new else {"name", "tariff"}
    if isinstance(data.get("tariff"), dict):
        unknown = set(data) - allowed
        if unknown:
            raise BillingError(N_("unknown fields: %(unknown)s (give %(allowed)s)"), unknown=", ".join(sorted(unknown)),
                               allowed=", ".join(sorted(allowed)))
        organization = data.get("organization")
        if organization is not None and (not isinstance(organization, int) or isinstance(organization, bool)):
            raise BillingError(N_("organization must be an integer id"), field="organization")
        return data["tariff"], data.get("name"), organization
    if "elements" in data or "id" in data:
        return data, None, None
    if set(data) <= {"name"}:
        return None, data.get("name"), None
    raise BillingError(N_("give an OCPI 2.2.1 Tariff object, or {\"name\": ..., \"tariff\": {...}}"))


def _preview(tariff: OcpiTariff, params: dict[str, Any]) -> dict[str, Any]:
    tz = params.get("timezone") or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BillingError(N_("unknown time zone %(zone)s"), zone=repr(tz)) from None
    try:
        start = datetime.fromisoformat(params["start"]) if params.get("start") else \
            datetime.now(ZoneInfo(tz)).replace(tzinfo=None, second=0, microsecond=0)

        def minutes(name: str) -> timedelta:
            return timedelta(minutes=float(to_decimal(params.get(name) or 0, what=name)))

        result = preview(tariff, energy_kwh=params.get("energy_kwh") or 0, duration=minutes("duration_min"),
                         start_local=start, timezone=tz, parking=minutes("parking_min"),
                         power_kw=params.get("power_kw") or None, current_a=params.get("current_a") or None,
                         reservation=minutes("reservation_min"))
    except (TypeError, ValueError) as exc:
        raise BillingError(N_("cannot preview: %(error)s"), error=str(exc)) from None
    return {"inputs": {k: params.get(k) for k in ("energy_kwh", "duration_min", "parking_min", "power_kw",
                                                  "current_a", "reservation_min", "timezone")}
            | {"start_local": start.isoformat()}, "breakdown": result.to_dict()}


TARIFF = {"tariff_id": "tariff"}  # changing names a tariff of the caller's tree (the installation's: global only)
ASSIGNMENT = {"assignment_id": "assignment"}
HOME = {"home_id": "home_station"}


class TariffController(Controller):
    """Reading is open to every tariff the caller reads (its own and the installation's), so the
    read routes are SCOPED and check the tariff themselves; changing one names it in the rule."""

    path = "/tariffs"
    tags = ["billing"]

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_tariffs(self, request: Request, include_archived: bool = False, limit: int = 100,
                           offset: int = 0) -> dict[str, Any]:
        """Tariffs with the OCPI JSON of their current versions."""
        limit, offset = page_params(limit, offset)
        scope = await tenant_scope(request)
        query, count = readable_tariffs(Tariff.select(), scope), readable_tariffs(Tariff.count(), scope)
        if not include_archived:
            query, count = query.where(Tariff.archived == False), count.where(Tariff.archived == False)  # noqa: E712
        rows = await query.order_by(Tariff.code).limit(limit).offset(offset)
        return {"items": [await tariff_json(r) for r in rows], "total": await count, "limit": limit,
                "offset": offset}

    @post("/", guards=[require("operator")], opt={"tenant": SCOPED})
    async def create(self, request: Request, data: Any) -> dict[str, Any]:
        """Create a tariff from OCPI 2.2.1 JSON; problems found by the validator are a 400. It is
        the caller's organization's (or ``organization``, one it manages; global: none, the
        installation's)."""
        ocpi, name, organization = _tariff_body(data, new=True)
        if ocpi is None:
            raise BillingError(N_("the OCPI tariff is missing"))
        owner = await owner_for_new(await tenant_scope(request), organization, what="a tariff")
        row = await create_tariff(ocpi, name=name or "", created_by=caller(request), organization=owner)
        await audited(request, "create", "tariff", row["id"], after=row)
        return await tariff_json(row)

    @get("/{tariff_id:int}", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def read(self, request: Request, tariff_id: int, version: int | None = None) -> dict[str, Any]:
        scope = await tenant_scope(request)
        return await tariff_json(await tariff_row(tariff_id, scope), await version_row(tariff_id, version, scope))

    @get("/{tariff_id:int}/ocpi", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def read_ocpi(self, request: Request, tariff_id: int, version: int | None = None) -> dict[str, Any]:
        """The bare OCPI 2.2.1 Tariff object of the current (or given) version."""
        return json.loads((await version_row(tariff_id, version, await tenant_scope(request)))["ocpi"])

    @put("/{tariff_id:int}", guards=[require("operator")], opt={"tenant": TARIFF})
    async def replace(self, request: Request, tariff_id: int, data: Any) -> dict[str, Any]:
        """New prices add a version (identical ones add none); settled sessions keep theirs."""
        ocpi, name, _ = _tariff_body(data)
        before = await tariff_row(tariff_id)
        row = await update_tariff(tariff_id, ocpi, name=name, created_by=caller(request))
        await audited(request, "update", "tariff", tariff_id, before=before, after=row)
        return await tariff_json(row)

    @delete("/{tariff_id:int}", guards=[require("operator")], opt={"tenant": TARIFF})
    async def archive(self, request: Request, tariff_id: int) -> None:
        """Archive the tariff (refused while assignments use it); its versions are kept."""
        before = await tariff_row(tariff_id)
        await archive_tariff(tariff_id)
        await audited(request, "update", "tariff", tariff_id, before=before, after=await tariff_row(tariff_id),
                      summary=f"tariff {before['code']} archived")

    @get("/{tariff_id:int}/versions", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def versions(self, request: Request, tariff_id: int) -> dict[str, Any]:
        await tariff_row(tariff_id, await tenant_scope(request))
        rows = await TariffVersion.select().where(TariffVersion.tariff == tariff_id).order_by(
            TariffVersion.version, ascending=False)
        return {"items": [{"id": r["id"], "version": r["version"], "currency": r["currency"],
                           "created_at": r["created_at"].isoformat(), "created_by": r["created_by"],
                           "tariff": json.loads(r["ocpi"])} for r in rows]}

    @get("/{tariff_id:int}/preview", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def preview_saved(self, request: Request, tariff_id: int, version: int | None = None) -> dict[str, Any]:
        """What a session would cost: ``energy_kwh``, ``duration_min``, ``start`` (local time),
        ``timezone``, and optionally ``parking_min``, ``power_kw``, ``current_a``, ``reservation_min``."""
        row = await version_row(tariff_id, version, await tenant_scope(request))
        out = _preview(tariff_of(row), dict(request.query_params))
        out["tariff"] = {"id": tariff_id, "version": row["version"]}
        return out

    @post("/preview", guards=[require("viewer")], status_code=HTTP_200_OK, opt={"tenant": SCOPED})
    async def preview_unsaved(self, data: Any) -> dict[str, Any]:
        """Preview a tariff before saving it: ``{"tariff": {OCPI}, "energy_kwh": 20, ...}``."""
        data = body_object(data)
        return _preview(parse_tariff(data.get("tariff")), {k: v for k, v in data.items() if k != "tariff"})

    @post("/validate", guards=[require("viewer")], status_code=HTTP_200_OK, opt={"tenant": SCOPED})
    async def validate(self, data: Any) -> dict[str, Any]:
        """The validator's findings for an OCPI tariff, without saving it (200 either way)."""
        try:
            parse_tariff(body_object(data))
        except BillingError as exc:
            return {"valid": False, "problems": exc.problems or [exc.message]}
        return {"valid": True, "problems": []}


# -- assignments --------------------------------------------------------------------------------


def _assignment_values(data: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    unknown = set(data) - set(ASSIGNMENT_FIELDS)
    if unknown:
        raise BillingError(N_("unknown fields: %(unknown)s"), unknown=", ".join(sorted(unknown)))
    values = {k: (base or {}).get(k) for k in ASSIGNMENT_FIELDS}
    values.update(data)
    for key in ("valid_from", "valid_to"):
        values[key] = when(values.get(key), key)
    for key in ("tariff", "organization_id", "site_id", "evse_id", "organization"):
        if values.get(key) is not None and (not isinstance(values[key], int) or isinstance(values[key], bool)):
            raise BillingError(N_("%(name)s must be an integer id"), name=key)
    return values


def assignment_json(row: dict[str, Any]) -> dict[str, Any]:
    return {**jsonable(row), "scope": describe(row)}


class AssignmentController(Controller):
    path = "/assignments"
    tags = ["billing"]

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_assignments(self, request: Request, tariff: int | None = None, station_id: str | None = None,
                               site_id: int | None = None, organization_id: int | None = None) -> dict[str, Any]:
        """The assignments of the caller's organization tree (global: all)."""
        query = restrict(Assignment.select(), Assignment.organization, await tenant_scope(request))
        for col, value in ((Assignment.tariff, tariff), (Assignment.station_id, station_id),
                           (Assignment.site_id, site_id), (Assignment.organization_id, organization_id)):
            if value is not None:
                query = query.where(col == value)
        return {"items": [assignment_json(r) for r in await query.order_by(Assignment.id)]}

    @post("/", guards=[require("operator")], opt={"tenant": SCOPED})
    async def create(self, request: Request, data: Any) -> dict[str, Any]:
        """Assign a tariff; a contradicting or overlapping assignment is refused (409). It belongs
        to the caller's organization (or ``organization``, one it manages)."""
        scope = await tenant_scope(request)
        values = _assignment_values(body_object(data))
        values["organization"] = await owner_for_new(scope, values.get("organization"), what="an assignment")
        values = await check_assignment(values, scope=scope)
        row = Assignment(**values)
        await row.save()
        after = await _assignment(row.id)
        await audited(request, "create", "assignment", row.id, after=after)
        return assignment_json(after)

    @get("/resolve", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def resolve(self, request: Request, station_id: str, evse_id: int = 0, id_token: str | None = None,
                      driver_id: int | None = None, at: str | None = None) -> dict[str, Any]:
        """Which tariff a card/driver would get at a station (EVSE) at a moment, and why."""
        try:
            await check_visible(await tenant_scope(request), station_id=station_id, driver_id=driver_id,
                                id_token=id_token or "")
        except BillingError as exc:
            raise BillingError(exc.text, status=404, **exc.params) from None
        if not await Station.exists().where(Station.station_id == station_id):
            raise BillingError(N_("no station %(station)s"), station=repr(station_id), status=404)
        session = {"id": None, "station_id": station_id, "evse_id": evse_id, "id_token": id_token or "",
                   "driver": driver_id, "started_at": when(at, "at") or utcnow()}
        ctx = await session_context(session)
        choice = await choose_tariff(ctx)
        assignment = await resolve_assignment(ctx)
        return {"station_id": station_id, "evse_id": evse_id, "at": session["started_at"].isoformat(),
                "groups": list(ctx.groups), "organizations": ctx.organization_ids,
                "tariff": choice.to_json() if choice else None,
                "assignment": assignment_json(assignment) if assignment else None}

    @get("/{assignment_id:int}", guards=[require("viewer")], opt={"tenant": ASSIGNMENT})
    async def read(self, assignment_id: int) -> dict[str, Any]:
        return assignment_json(await _assignment(assignment_id))

    @patch("/{assignment_id:int}", guards=[require("operator")], opt={"tenant": ASSIGNMENT})
    async def update(self, request: Request, assignment_id: int, data: Any) -> dict[str, Any]:
        scope = await tenant_scope(request)
        row = await _assignment(assignment_id)
        values = _assignment_values(body_object(data), row)
        if values["organization"] is not None or not scope.is_global:
            await check_assignable(scope, values["organization"], what="an assignment")
        values = await check_assignment(values, exclude_id=assignment_id, scope=scope)
        await Assignment.update({getattr(Assignment, k): v for k, v in values.items()}).where(
            Assignment.id == assignment_id)
        after = await _assignment(assignment_id)
        await audited(request, "update", "assignment", assignment_id, before=row, after=after)
        return assignment_json(after)

    @delete("/{assignment_id:int}", guards=[require("operator")], opt={"tenant": ASSIGNMENT})
    async def remove(self, request: Request, assignment_id: int) -> None:
        before = await _assignment(assignment_id)
        await Assignment.delete().where(Assignment.id == assignment_id)
        await audited(request, "delete", "assignment", assignment_id, before=before)


async def _assignment(assignment_id: int) -> dict[str, Any]:
    row = await Assignment.select().where(Assignment.id == assignment_id).first()
    if row is None:
        raise BillingError(N_("no assignment %(assignment)s"), assignment=assignment_id, status=404)
    return row


# -- home stations ------------------------------------------------------------------------------

HOME_FIELDS = ("station_id", "driver_id", "organization_id", "mode", "rate_per_kwh", "currency", "tariff",
               "valid_from", "valid_to")


async def check_home_values(data: dict[str, Any], base: dict[str, Any] | None = None,
                            exclude_id: int | None = None, scope: Scope = GLOBAL) -> dict[str, Any]:
    """Checked values of a home station registration as ``scope`` may write it: the station,
    driver, employer and tariff it names are ones the scope sees."""
    unknown = set(data) - set(HOME_FIELDS)
    if unknown:
        raise BillingError(N_("unknown fields: %(unknown)s"), unknown=", ".join(sorted(unknown)))
    v = {k: (base or {}).get(k) for k in HOME_FIELDS}
    v.update(data)
    v["mode"] = v["mode"] or "fixed_rate"
    v["currency"] = v["currency"] or "EUR"
    for key in ("valid_from", "valid_to"):
        v[key] = when(v.get(key), key)
    if not v["station_id"] or not await Station.exists().where(Station.station_id == v["station_id"]):
        raise BillingError(N_("no station %(station)s"), station=repr(v["station_id"]), field="station_id")
    await check_visible(scope, station_id=v["station_id"], driver_id=v["driver_id"],
                        organization_id=v["organization_id"])
    driver = await Driver.select().where(Driver.id == v["driver_id"]).first() if v["driver_id"] is not None else None
    if driver is None:
        raise BillingError(N_("no driver %(driver)s"), driver=v["driver_id"], field="driver_id")
    if driver["kind"] != "employee":
        raise BillingError(N_("driver %(driver)s is a %(kind)s; home stations are for employees"),
                           driver=driver["id"], kind=driver["kind"], field="driver_id")
    if v["organization_id"] is None and driver["organization"] is None:
        raise BillingError(N_("give organization_id (the employer): the driver has no organization"),
                           field="organization_id")
    if v["organization_id"] is not None and not await Organization.exists().where(
            Organization.id == v["organization_id"]):
        raise BillingError(N_("no organization %(organization)s"), organization=v["organization_id"],
                           field="organization_id")
    if v["mode"] not in ("fixed_rate", "tariff"):
        raise BillingError(N_("mode must be fixed_rate or tariff"), field="mode")
    try:
        rate = to_decimal(v["rate_per_kwh"] if v["rate_per_kwh"] is not None else "0", what="rate_per_kwh")
    except (TypeError, ValueError) as exc:
        raise BillingError(str(exc), field="rate_per_kwh") from None
    if rate < 0 or rate.as_tuple().exponent < -4:  # type: ignore[operator]
        raise BillingError(N_("rate_per_kwh must be a non-negative amount with at most 4 decimals"),
                           field="rate_per_kwh")
    if v["mode"] == "fixed_rate" and rate == 0:
        raise BillingError(N_("a fixed_rate home station needs rate_per_kwh"), field="rate_per_kwh")
    v["rate_per_kwh"] = f"{rate:f}"
    if not isinstance(v["currency"], str) or len(v["currency"]) != 3 or not v["currency"].isupper():
        raise BillingError(N_("currency must be an ISO 4217 code such as EUR"), field="currency")
    if v["tariff"] is not None:
        await check_tariff_usable(v["tariff"], scope)
    if v["valid_from"] is not None and v["valid_to"] is not None and v["valid_to"] <= v["valid_from"]:
        raise BillingError(N_("valid_to must be after valid_from"), field="valid_to")
    await check_home_station(v, exclude_id=exclude_id)
    return v


class HomeStationController(Controller):
    path = "/home-stations"
    tags = ["billing"]

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_homes(self, request: Request, driver_id: int | None = None) -> dict[str, Any]:
        """The home stations of the employers in the caller's organization tree (global: all)."""
        query = await restrict_home_stations(HomeStation.select(), await tenant_scope(request))
        if driver_id is not None:
            query = query.where(HomeStation.driver_id == driver_id)
        return {"items": [jsonable(r) for r in await query.order_by(HomeStation.id)]}

    @post("/", guards=[require("operator")], opt={"tenant": SCOPED})
    async def create(self, request: Request, data: Any) -> dict[str, Any]:
        """Register an employee's home station (reimbursed by the employer)."""
        row = HomeStation(**await check_home_values(body_object(data), scope=await tenant_scope(request)))
        await row.save()
        after = await _home(row.id)
        await audited(request, "create", "home_station", row.id, after=after)
        return jsonable(after)

    @get("/{home_id:int}", guards=[require("viewer")], opt={"tenant": HOME})
    async def read(self, home_id: int) -> dict[str, Any]:
        return jsonable(await _home(home_id))

    @patch("/{home_id:int}", guards=[require("operator")], opt={"tenant": HOME})
    async def update(self, request: Request, home_id: int, data: Any) -> dict[str, Any]:
        before = await _home(home_id)
        values = await check_home_values(body_object(data), before, exclude_id=home_id,
                                         scope=await tenant_scope(request))
        await HomeStation.update({getattr(HomeStation, k): v for k, v in values.items()}).where(
            HomeStation.id == home_id)
        after = await _home(home_id)
        await audited(request, "update", "home_station", home_id, before=before, after=after)
        return jsonable(after)

    @delete("/{home_id:int}", guards=[require("operator")], opt={"tenant": HOME})
    async def remove(self, request: Request, home_id: int) -> None:
        before = await _home(home_id)
        await HomeStation.delete().where(HomeStation.id == home_id)
        await audited(request, "delete", "home_station", home_id, before=before)


async def _home(home_id: int) -> dict[str, Any]:
    row = await HomeStation.select().where(HomeStation.id == home_id).first()
    if row is None:
        raise BillingError(N_("no home station %(home)s"), home=home_id, status=404)
    return row


# -- session cost and settlements ---------------------------------------------------------------


async def session_cost_json(session_id: int) -> dict[str, Any]:
    """A session's cost: the settled figures when settled, else priced now (live or final)."""
    session = await session_row(session_id)
    if session is None:
        raise BillingError(N_("no session %(session)s"), session=session_id, status=404)
    out: dict[str, Any] = {"session_id": session_id, "state": session["state"]}
    row = await st.settlement_row(session_id)
    if row is not None and row["status"] == "settled":
        cost = st.stored_cost(row)
        tariff = (await choice_for_version(row["tariff_version"], "the version it was settled with")).to_json() \
            if row["tariff_version"] is not None else {"code": row["tariff_code"]}
        out.update(source="settlement", cost=cost.to_json() if cost else None,
                   breakdown=json.loads(row["breakdown"]), settlement=st.settlement_json(row), tariff=tariff)
        return out
    quote = await quote_session(session, final=session["state"] == "completed")
    out.update(source="final" if session["state"] == "completed" else "live",
               cost=quote.cost.to_json() if quote else None,
               breakdown=quote.breakdown.to_dict() if quote else None,
               tariff=quote.choice.to_json() if quote else None,
               settlement=st.settlement_json(row) if row else None)
    return out


class SessionCostController(Controller):
    path = "/sessions"
    tags = ["billing"]

    @get("/{session_id:int}/cost", guards=[require("viewer")], opt={"tenant": {"session_id": "session"}})
    async def cost(self, session_id: int) -> dict[str, Any]:
        """Live cost of a running session, final cost of an ended one, settled cost once settled."""
        return await session_cost_json(session_id)


class SettlementController(Controller):
    path = "/settlements"
    tags = ["billing"]

    # an organization's users read the settlements of their stations' sessions (tenant rules);
    # running and voiding settlements is the installation's
    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_settlements(self, request: Request, kind: str | None = None, status: str | None = None,
                               payer_kind: str | None = None, payer_id: int | None = None,
                               station_id: str | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """Settlements, newest first; ``from``/``to`` filter on the session's end."""
        limit, offset = page_params(limit, offset)
        conds = []
        for col, value in ((Settlement.kind, kind), (Settlement.status, status),
                           (Settlement.payer_kind, payer_kind), (Settlement.payer_id, payer_id),
                           (Settlement.station_id, station_id)):
            if value is not None:
                conds.append(col == value)
        start, end = when(request.query_params.get("from"), "from"), when(request.query_params.get("to"), "to")
        if start:
            conds.append(Settlement.stopped_at >= start)
        if end:
            conds.append(Settlement.stopped_at < end)
        stations = await visible_station_ids(await tenant_scope(request))
        query = restrict_station_ids(Settlement.select(), Settlement.station_id, stations)
        count = restrict_station_ids(Settlement.count(), Settlement.station_id, stations)
        for c in conds:
            query, count = query.where(c), count.where(c)
        rows = await query.order_by(Settlement.stopped_at, ascending=False).limit(limit).offset(offset)
        return {"items": [st.settlement_json(r) for r in rows], "total": await count, "limit": limit,
                "offset": offset}

    @get("/{session_id:int}", guards=[require("viewer")], opt={"tenant": {"session_id": "session"}})
    async def read(self, session_id: int) -> dict[str, Any]:
        row = await st.settlement_row(session_id)
        if row is None:
            raise BillingError(N_("session %(session)s has no settlement"), session=session_id, status=404)
        return st.settlement_json(row)

    @post("/run", guards=[require("operator")], status_code=HTTP_200_OK,
          opt={"tenant": GLOBAL_ONLY})
    async def run(self, request: Request, data: Any) -> dict[str, Any]:
        """Settle the sessions that ended in a period and are not settled (or were voided):
        ``{"from": ..., "to": ...}`` or ``{"month": "2026-11"}``. Settled ones are left alone."""
        start, end = period_of(body_object(data))
        result = await st.rerun(start, end)
        await audit_settlement_run(request, result)
        return result

    @post("/{session_id:int}/void", guards=[require("operator")], status_code=HTTP_200_OK,
          opt={"tenant": GLOBAL_ONLY})
    async def void(self, request: Request, session_id: int, data: Any) -> dict[str, Any]:
        """Void a settlement (``{"reason": ...}``) so the next run settles the session again."""
        before = await st.settlement_row(session_id)
        after = await st.void(session_id, str(body_object(data).get("reason") or ""))
        await audited(request, "update", "settlement", session_id, before=before, after=after,
                      summary=f"settlement of session {session_id} voided")
        return st.settlement_json(after)


async def audit_settlement_run(request: Request, result: dict[str, Any]) -> None:
    settled = len(result["settled"]) + len(result["resettled"])
    await audited(request, "run", "settlement", "", after={k: result[k] for k in ("start", "end", "settled",
                                                                                 "resettled", "failed")},
                  summary=f"settlement run {result['start']} to {result['end']}: {settled} settled")


# -- statements ---------------------------------------------------------------------------------


class StatementController(Controller):
    path = "/statements"
    tags = ["billing"]

    @post("/", guards=[require("operator")], opt={"tenant": GLOBAL_ONLY})
    async def create(self, request: Request, data: Any) -> dict[str, Any]:
        """Issue a statement: ``{"party_kind": "driver"|"organization"|"leasing_partner",
        "party_id": 3, "month": "2026-11"}`` (or ``period_start``/``period_end``; ``currency``);
        ``"draft": true`` saves a draft (no number; any period), ``"close_early": true`` issues a
        period that has not ended, closing it now."""
        data = body_object(data)
        start, end = period_of(data)
        if not isinstance(data.get("party_id"), int):
            raise BillingError(N_("party_id must be an integer id"))
        row = await stm.create_statement(str(data.get("party_kind")), data["party_id"], start, end,
                                         currency=data.get("currency"), created_by=caller(request),
                                         draft=_flag(data, "draft"), close_early=_flag(data, "close_early"))
        await audited(request, "create", "statement", row["id"], after=row)
        return await _statement_detail(row)

    @post("/run", guards=[require("operator")], status_code=HTTP_200_OK,
          opt={"tenant": GLOBAL_ONLY})
    async def run(self, request: Request, data: Any) -> dict[str, Any]:
        """Issue the statements of a period for every party with settled sessions in it that has
        none yet (the monthly run): ``{"month": "2026-11"}``."""
        start, end = period_of(body_object(data))
        stm.open_period_refused(end)
        parties: set[tuple[str, int]] = set()
        rows = await Settlement.select(Settlement.payer_kind, Settlement.payer_id, Settlement.payee_kind,
                                       Settlement.payee_id).where(
            (Settlement.status == "settled") & (Settlement.stopped_at >= start) & (Settlement.stopped_at < end))
        leasing = {r["id"] for r in await Organization.select(Organization.id).where(
            Organization.kind == "leasing_partner")}
        for r in rows:
            if r["payer_kind"] == "driver":
                parties.add(("driver", r["payer_id"]))
            elif r["payer_kind"] == "organization":
                parties.add(("leasing_partner" if r["payer_id"] in leasing else "organization", r["payer_id"]))
            if r["payee_kind"] == "driver":
                parties.add(("driver", r["payee_id"]))
        created, skipped = [], []
        for kind, party_id in sorted(parties):
            try:
                row = await stm.create_statement(kind, party_id, start, end, created_by=caller(request))
                await audited(request, "create", "statement", row["id"], after=row)
                created.append(stm.statement_json(row))
            except BillingError as exc:
                skipped.append({"party_kind": kind, "party_id": party_id, "reason": exc.message})
        return {"period_start": start.isoformat(), "period_end": end.isoformat(), "created": created,
                "skipped": skipped}

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_statements(self, request: Request, party_kind: str | None = None, party_id: int | None = None,
                              status: str | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """The statements of the caller's organization tree (global: all)."""
        limit, offset = page_params(limit, offset)
        scope = await tenant_scope(request)
        query = restrict(Statement.select(), Statement.organization, scope)
        count = restrict(Statement.count(), Statement.organization, scope)
        for col, value in ((Statement.party_kind, party_kind), (Statement.party_id, party_id),
                           (Statement.status, status)):
            if value is not None:
                query, count = query.where(col == value), count.where(col == value)
        rows = await query.order_by(Statement.id, ascending=False).limit(limit).offset(offset)
        return {"items": [stm.statement_json(r) for r in rows], "total": await count, "limit": limit,
                "offset": offset}

    @get("/{ref:str}", guards=[require("viewer")], opt={"tenant": {"ref": "statement"}})
    async def read(self, ref: str) -> Any:
        """A statement as JSON (``/statements/7``), CSV (``/statements/7.csv``) or PDF (``.pdf``)."""
        number, _, fmt = ref.partition(".")
        if not number.isdigit() or fmt not in ("", "csv", "pdf", "json"):
            raise BillingError(N_("no statement %(statement)s: use /statements/ID, ID.csv or ID.pdf"), statement=repr(ref),
                               status=404)
        row = await stm.statement_row(int(number))
        if fmt in ("", "json"):
            return await _statement_detail(row)
        headers = {"Content-Disposition": f'attachment; filename="{stm.document_filename(row, fmt)}"'}
        if fmt == "csv":  # rendered off the event loop: a statement may have thousands of lines
            return Response(await run_cpu(stm.statement_csv, row, await stm.statement_lines(row["id"])),
                            media_type="text/csv; charset=utf-8", headers=headers)
        return Response(await stm.document_pdf(row), media_type="application/pdf", headers=headers)

    @post("/{statement_id:int}/void", guards=[require("operator")], status_code=HTTP_200_OK,
          opt={"tenant": GLOBAL_ONLY})
    async def void(self, request: Request, statement_id: int) -> dict[str, Any]:
        """Void a statement; its sessions may then go on a new statement."""
        before = await stm.statement_row(statement_id)
        after = await stm.void_statement(statement_id)
        await audited(request, "update", "statement", statement_id, before=before, after=after)
        return await _statement_detail(after)

    @post("/{statement_id:int}/issue", guards=[require("operator")], status_code=HTTP_200_OK,
          opt={"tenant": GLOBAL_ONLY})
    async def issue(self, request: Request, statement_id: int, data: Any = None) -> dict[str, Any]:
        """Issue a draft (its lines regenerated, a number from the seller's series); before its
        period ends only with ``{"close_early": true}``."""
        before = await stm.statement_row(statement_id)
        after = await stm.issue_draft(statement_id, close_early=_flag(body_object(data or {}), "close_early"))
        await audited(request, "update", "statement", statement_id, before=before, after=after,
                      summary=f"statement {statement_id} issued as {after['number']}")
        return await _statement_detail(after)

    @post("/{statement_id:int}/regenerate", guards=[require("operator")], status_code=HTTP_200_OK,
          opt={"tenant": GLOBAL_ONLY})
    async def regenerate(self, request: Request, statement_id: int) -> dict[str, Any]:
        """A draft again from the settlements as they are now."""
        before = await stm.statement_row(statement_id)
        after = await stm.regenerate_draft(statement_id)
        await audited(request, "update", "statement", statement_id, before=before, after=after)
        return await _statement_detail(after)

    @post("/{statement_id:int}/credit", guards=[require("operator")], opt={"tenant": GLOBAL_ONLY})
    async def credit(self, request: Request, statement_id: int, data: Any = None) -> dict[str, Any]:
        """Correct an issued invoice with a credit note (``{"reason": ...}``): 201 with the credit note."""
        reason = body_object(data or {}).get("reason") or ""
        if not isinstance(reason, str):
            raise BillingError(N_("reason must be text"), field="reason")
        note = await stm.credit_statement(statement_id, reason=reason, created_by=caller(request))
        await audited(request, "create", "statement", note["id"], after=note,
                      summary=f"credit note {note['number']} for statement {statement_id}")
        return await _statement_detail(note)

    @delete("/{statement_id:int}", guards=[require("operator")], opt={"tenant": GLOBAL_ONLY})
    async def discard(self, request: Request, statement_id: int) -> None:
        """Discard a draft (issued statements are credited or voided, never deleted)."""
        before = await stm.discard_draft(statement_id)
        await audited(request, "delete", "statement", statement_id, before=before)


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if isinstance(value, str):
        return value.lower() in ("1", "true", "on", "yes")
    if not isinstance(value, bool):
        raise BillingError(N_("%(name)s must be true or false"), name=name, field=name)
    return value


async def _statement_detail(row: dict[str, Any]) -> dict[str, Any]:
    lines = await stm.statement_lines(row["id"])
    out = {**stm.statement_json(row), "lines": await run_cpu(stm.lines_json, lines, row["currency"])}
    if row["corrects"]:
        out["corrects_number"] = stm.statement_number(await stm.statement_row(row["corrects"]))
    notes = await Statement.select(Statement.id, Statement.number).where(
        (Statement.corrects == row["id"]) & (Statement.kind == "credit_note"))
    out["credited_by"] = [{"id": n["id"], "number": n["number"]} for n in notes]
    return out


def billing_api_router() -> Router:
    return Router(path="/api/v1/billing", route_handlers=[
        TariffController, AssignmentController, HomeStationController, SessionCostController,
        SettlementController, StatementController,
    ], exception_handlers={BillingError: billing_error})

