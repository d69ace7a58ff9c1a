"""The REST API of roaming under ``/api/v1/roaming``: partners (invite, register, update,
unregister, push, pull, request log), what was exchanged (tokens, locations, sessions, CDRs,
tariffs, the outbox) and commands to a partner's stations for our drivers."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Controller, Request, Router, delete, get, patch, post, put
from litestar.exceptions import HTTPException, NotFoundException, ValidationException

from csms.plugin_api import (
    GLOBAL_ONLY, SCOPED, Int32, IdToken, Site, audited, caller, jsonable, owner_for_new, page_params, require,
    tenant_scope, utcnow,
)
from plugins.roaming_ocpi import objects, outbox, schema, sync
from plugins.roaming_ocpi.client import PartnerError, get_all
from plugins.roaming_ocpi.config import ocpi_settings
from plugins.roaming_ocpi.outbox import FAILED
from plugins.roaming_ocpi.cpo import session_object
from plugins.roaming_ocpi.emsp import CommandError, send_command
from plugins.roaming_ocpi.hubclientinfo import client_infos
from plugins.roaming_ocpi.hubclientinfo import pull as pull_client_info
from plugins.roaming_ocpi.parties import (
    base_url,
    endpoint_url,
    partner_row,
    partners_changed,
    speaks_for,
    versions_url,
)
from plugins.roaming_ocpi.registration import (
    RegistrationError,
    invite,
    register_with,
    start_registration,
    unregister,
    update_credentials,
)
from plugins.roaming_ocpi.tenancy import by_partner, restrict_partners, visible_partner_ids
from plugins.roaming_ocpi.tables import (
    Cdr,
    CommandRecord,
    Outbox,
    Partner,
    RemoteObject,
    RequestLog,
    SessionLink,
    SessionProfile,
    SiteDetails,
)


class PartnerIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    versions_url: str | None = None
    token: str | None = None
    raw_tokens: bool = False
    organization: Int32 | None = None  # whose partner it is: one the caller manages (default its own)
    role_211: Literal["CPO", "EMSP", ""] = ""  # the partner's role should it speak OCPI 2.1.1 (default: see README)


class PartnerPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: str | None = None
    raw_tokens: bool | None = None


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True):
    versions_url: str
    token: str


def partner_json(p: dict[str, Any]) -> dict[str, Any]:
    """A partner as the API shows it: never a credentials token."""
    return {
        "id": p["id"], "name": p["name"], "status": p["status"], "country_code": p["country_code"],
        "party_id": p["party_id"], "roles": [{"role": r.get("role"), "country_code": r.get("country_code"),
                                              "party_id": r.get("party_id"),
                                              "name": (r.get("business_details") or {}).get("name"),
                                              "business_details": r.get("business_details") or {}}
                                             for r in p["roles"] or []],
        "versions_url": p["versions_url"], "version": p["version"], "endpoints": p["endpoints"] or [],
        "role_211": p["role_211"] or None, "raw_tokens": p["raw_tokens"], "last_error": p["last_error"], "organization": p["organization"],
        "created_at": p["created_at"].isoformat(), "updated_at": p["updated_at"].isoformat(),
        "registered_at": p["registered_at"].isoformat() if p["registered_at"] else None,
    }


async def audit_partner(request: Request, action: str, partner: dict[str, Any], *,
                        before: dict[str, Any] | None = None) -> None:
    """Log a change of a partner (created, unregistered) in the audit log, with its owner."""
    after = {"name": partner["name"], "status": partner["status"], "organization": partner["organization"]}
    await audited(request, action, "roaming_partner", partner["id"], before=before, after=after,
                  summary=f"roaming partner {partner['name']!r} {action}")


async def _partner(partner_id: int) -> dict[str, Any]:
    row = await partner_row(partner_id)
    if row is None:
        raise NotFoundException(f"no roaming partner {partner_id}")
    return row


def _push_json(row: dict[str, Any]) -> dict[str, Any]:
    item = jsonable(row)
    if item.get("status") == "rejected":  # the name older versions gave a parked push
        item["status"] = "failed"
    return item


def _failed(exc: Exception, partner_id: int | None = None) -> HTTPException:
    """HTTP 502 with the partner's failure; a failed registration names the row kept as ``failed``
    (``POST /partners/{id}/register``, or creating it again under the same name, retries)."""
    message = getattr(exc, "message", str(exc))
    if partner_id is None:
        return HTTPException(status_code=502, detail=message)
    return HTTPException(status_code=502, detail=f"registration failed: {message}",
                         extra={"partner_id": partner_id, "status": "failed"})


ONE = {"partner_id": "roaming_partner"}  # the route names one partner: another organization's is a 404


async def new_owner(request: Request, organization: int | None) -> int | None:
    """The organization a new partner gets: the one asked for (one the caller manages; a global
    caller may name none, the installation's), else the caller's own; 422 otherwise."""
    return await owner_for_new(await tenant_scope(request), organization, what="a roaming partner")


class PartnerController(Controller):
    path = "/partners"
    tags = ["roaming"]

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_partners(self, request: Request) -> dict[str, Any]:
        rows = await restrict_partners(Partner.select(), await tenant_scope(request)).order_by(Partner.id).output(
            load_json=True)
        items = []
        for r in rows:
            item = partner_json(r)
            item["pending_pushes"] = await Outbox.count().where((Outbox.partner == r["id"]) & (Outbox.status == "pending"))
            items.append(item)
        return {"items": items, "total": len(items)}

    @post("/", guards=[require("admin")], status_code=201, opt={"tenant": SCOPED})
    async def create_partner(self, request: Request, data: PartnerIn) -> dict[str, Any]:
        """Invite a partner (no ``versions_url``: answers the token A to hand over with our versions
        URL) or register with one (``versions_url`` and the ``token`` A it issued). ``organization``:
        whose partner it is (default: the caller's organization; a global caller's: none, the
        installation's)."""
        if not data.name.strip():
            raise ValidationException("name is required")
        organization = await new_owner(request, data.organization)
        if data.versions_url or data.token:
            if not (data.versions_url and data.token):
                raise ValidationException("registering needs both versions_url and token")
            partner_id = await start_registration(data.name, raw_tokens=data.raw_tokens, organization=organization,
                                                    role_211=data.role_211)
            try:
                partner = await register_with(partner_id, data.versions_url, data.token, base_url(request))
            except RegistrationError as exc:
                raise _failed(exc, partner_id) from None
            await audit_partner(request, "create", partner)
            return partner_json(partner)
        partner, token_a = await invite(data.name.strip(), raw_tokens=data.raw_tokens, organization=organization,
                                        role_211=data.role_211)
        await audit_partner(request, "create", partner)
        return {**partner_json(partner), "token_a": token_a, "our_versions_url": versions_url(base_url(request))}

    @get("/{partner_id:int}", guards=[require("viewer")], opt={"tenant": ONE})
    async def get_partner(self, partner_id: int) -> dict[str, Any]:
        row = partner_json(await _partner(partner_id))
        for status in ("pending", "done", "failed"):
            row[f"outbox_{status}"] = await Outbox.count().where(
                (Outbox.partner == partner_id) & Outbox.status.is_in(list(FAILED) if status == "failed" else [status]))
        row["client_info"] = await client_infos(partner_id)  # the parties behind a hub (Hub Client Info)
        return row

    @patch("/{partner_id:int}", guards=[require("admin")], opt={"tenant": ONE})
    async def update_partner(self, partner_id: int, data: PartnerPatch) -> dict[str, Any]:
        await _partner(partner_id)
        values: dict[Any, Any] = {}
        if data.name is not None:
            values[Partner.name] = data.name.strip()
        if data.raw_tokens is not None:
            values[Partner.raw_tokens] = data.raw_tokens
        if values:
            await Partner.update(values).where(Partner.id == partner_id)
        return partner_json(await _partner(partner_id))

    @post("/{partner_id:int}/register", guards=[require("admin")], status_code=200, opt={"tenant": ONE})
    async def register_partner(self, request: Request, partner_id: int, data: RegisterIn) -> dict[str, Any]:
        partner = await _partner(partner_id)
        if partner["status"] == "registered":
            raise HTTPException(status_code=409, detail="already registered: update or unregister first")
        try:
            return partner_json(await register_with(partner_id, data.versions_url, data.token, base_url(request)))
        except RegistrationError as exc:
            raise _failed(exc, partner_id) from None

    @post("/{partner_id:int}/credentials", guards=[require("admin")], status_code=200, opt={"tenant": ONE})
    async def renew_credentials(self, request: Request, partner_id: int) -> dict[str, Any]:
        """Send fresh credentials (PUT) and re-fetch the partner's endpoints."""
        await _partner(partner_id)
        try:
            return partner_json(await update_credentials(partner_id, base_url(request)))
        except RegistrationError as exc:
            raise _failed(exc) from None

    @delete("/{partner_id:int}", guards=[require("admin")], status_code=200, opt={"tenant": ONE})
    async def unregister_partner(self, request: Request, partner_id: int) -> dict[str, Any]:
        before = await _partner(partner_id)
        warning = await unregister(partner_id)
        after = await _partner(partner_id)
        await audit_partner(request, "unregister", after, before={"status": before["status"]})
        return {**partner_json(after), "warning": warning}

    @post("/{partner_id:int}/push", guards=[require("operator")], status_code=200, opt={"tenant": ONE})
    async def push(self, partner_id: int) -> dict[str, Any]:
        """Queue all our locations and tariffs (CPO) or tokens (eMSP) for the partner."""
        await _partner(partner_id)
        await sync.push_everything(partner_id)
        return {"pending": await Outbox.count().where((Outbox.partner == partner_id) & (Outbox.status == "pending"))}

    @post("/{partner_id:int}/pull", guards=[require("operator")], status_code=200, opt={"tenant": ONE})
    async def pull(self, partner_id: int) -> dict[str, Any]:
        """GET the partner's Sender interfaces (locations, tariffs, sessions, CDRs, tokens) and store
        what is valid; invalid objects are counted and skipped."""
        partner = await _partner(partner_id)
        if partner["status"] != "registered":
            raise HTTPException(status_code=409, detail="the partner is not registered")
        return await pull_from(partner)

    @get("/{partner_id:int}/log", guards=[require("viewer")], opt={"tenant": ONE})
    async def request_log(self, partner_id: int, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        limit, offset = page_params(limit, offset)
        rows = await RequestLog.select().where(RequestLog.partner == partner_id).order_by(
            RequestLog.id, ascending=False).limit(limit).offset(offset)
        return {"items": [jsonable(r) for r in rows], "total": await RequestLog.count().where(
            RequestLog.partner == partner_id), "limit": limit, "offset": offset}

    @post("/{partner_id:int}/commands/{command:str}", guards=[require("operator")], status_code=200, opt={"tenant": ONE})
    async def command(self, request: Request, partner_id: int, command: str, data: dict[str, Any]) -> dict[str, Any]:
        """Send START_SESSION, STOP_SESSION, RESERVE_NOW, CANCEL_RESERVATION or UNLOCK_CONNECTOR to a
        CPO partner; answers the stored command with the CPO's CommandResponse (the result follows)."""
        await _partner(partner_id)
        try:
            record = await send_command(partner_id, command.upper(), data, base=base_url(request),
                                        requested_by=caller(request))
        except CommandError as exc:
            raise ValidationException(str(exc)) from None
        return jsonable(record)


PULLS = (("locations", "SENDER", schema.LOCATION), ("tariffs", "SENDER", schema.TARIFF),
         ("sessions", "SENDER", schema.SESSION), ("cdrs", "SENDER", schema.CDR), ("tokens", "SENDER", schema.TOKEN))


async def pull_from(partner: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for module, role, spec in PULLS:
        url = endpoint_url(partner, module, role)
        if url is None:
            continue
        params = {"date_from": "1970-01-01T00:00:00Z"} if module == "sessions" else None
        try:
            items = await get_all(partner, url, params=params)
        except PartnerError as exc:
            out[module] = {"error": exc.message}
            continue
        stored = rejected = 0
        for item in items:
            if schema.problems(item, spec) or not speaks_for(partner, item["country_code"], item["party_id"]):
                rejected += 1
                continue
            object_id = item["uid"] if module == "tokens" else item["id"]
            existing = await RemoteObject.select().where(
                (RemoteObject.partner == partner["id"]) & (RemoteObject.module == module)
                & (RemoteObject.country_code == item["country_code"].upper())
                & (RemoteObject.party_id == item["party_id"].upper()) & (RemoteObject.object_id == object_id)
                & (RemoteObject.object_type == (item["type"] if module == "tokens" else ""))).first()
            token_uid = item["uid"] if module == "tokens" else (item.get("cdr_token") or {}).get("uid", "")
            from plugins.roaming_ocpi.transport import parse_datetime

            values = {"payload": item, "last_updated": parse_datetime(item["last_updated"]), "token_uid": token_uid}
            if existing is None:
                await RemoteObject(partner=partner["id"], module=module, country_code=item["country_code"].upper(),
                                   party_id=item["party_id"].upper(), object_id=object_id,
                                   object_type=item["type"] if module == "tokens" else "", **values).save()
            else:
                await RemoteObject.update({getattr(RemoteObject, k): v for k, v in values.items()}).where(
                    RemoteObject.id == existing["id"])
            stored += 1
        out[module] = {"stored": stored, "rejected": rejected}
    parties = await pull_client_info(partner)  # a hub: the parties behind it
    if parties is not None:
        out["hubclientinfo"] = parties
    return out


def _remote_json(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "partner": r["partner"], "country_code": r["country_code"], "party_id": r["party_id"],
            "object_id": r["object_id"], "last_updated": r["last_updated"].isoformat(), "object": r["payload"]}


async def _driver_tokens(driver: int | None) -> list[str] | None:
    if driver is None:
        return None
    return [r["id_token"] for r in await IdToken.select(IdToken.id_token).where(IdToken.driver == driver)]


async def _remote(request: Request, module: str, *, partner: int | None, token: str | None, driver: int | None,
                  limit: int, offset: int) -> dict[str, Any]:
    """What partners the caller sees sent us of ``module``."""
    limit, offset = page_params(limit, offset)
    partners = await visible_partner_ids(await tenant_scope(request))
    query = by_partner(RemoteObject.select().where(RemoteObject.module == module), RemoteObject.partner, partners)
    count = by_partner(RemoteObject.count().where(RemoteObject.module == module), RemoteObject.partner, partners)
    conds = []
    if partner is not None:
        conds.append(RemoteObject.partner == partner)
    if token:
        conds.append(RemoteObject.token_uid == token)
    tokens = await _driver_tokens(driver)
    if tokens is not None:
        conds.append(RemoteObject.token_uid.is_in(tokens or [""]))
    for c in conds:
        query, count = query.where(c), count.where(c)
    rows = await query.order_by(RemoteObject.id, ascending=False).limit(limit).offset(offset).output(load_json=True)
    return {"items": [_remote_json(r) for r in rows], "total": await count, "limit": limit, "offset": offset}


class ExchangeController(Controller):
    """What was exchanged, limited to the partners the caller sees (an organization's users: their
    organization tree's partners) and, for our own data, to the caller's organization tree."""

    path = ""
    tags = ["roaming"]
    opt = {"tenant": SCOPED}

    @get("/tokens", guards=[require("viewer")])
    async def tokens(self, request: Request, partner: int | None = None, token: str | None = None, limit: int = 100,
                     offset: int = 0) -> dict[str, Any]:
        """Partners' tokens pushed to us (we are CPO); ours as published are in ``/published-tokens``."""
        return await _remote(request, "tokens", partner=partner, token=token, driver=None, limit=limit,
                             offset=offset)

    @get("/published-tokens", guards=[require("viewer")])
    async def published_tokens(self, request: Request) -> dict[str, Any]:
        items = await sync.token_list(await tenant_scope(request))
        return {"items": items, "total": len(items)}

    @get("/locations", guards=[require("viewer")])
    async def locations(self, request: Request, partner: int | None = None, limit: int = 100,
                        offset: int = 0) -> dict[str, Any]:
        """Partners' locations pushed to or pulled by us (we are eMSP)."""
        return await _remote(request, "locations", partner=partner, token=None, driver=None, limit=limit,
                             offset=offset)

    @get("/published-locations", guards=[require("viewer")])
    async def published_locations(self, request: Request) -> dict[str, Any]:
        items = await sync.location_list(await tenant_scope(request))
        return {"items": items, "total": len(items)}

    @get("/tariffs", guards=[require("viewer")])
    async def tariffs(self, request: Request, partner: int | None = None, limit: int = 100,
                      offset: int = 0) -> dict[str, Any]:
        return await _remote(request, "tariffs", partner=partner, token=None, driver=None, limit=limit,
                             offset=offset)

    @get("/sessions", guards=[require("viewer")])
    async def sessions(self, request: Request, role: str = "emsp", partner: int | None = None,
                       token: str | None = None, driver: int | None = None, limit: int = 100,
                       offset: int = 0) -> dict[str, Any]:
        """``role=emsp``: our drivers' sessions at partners' stations (filter ``token``, ``driver``);
        ``role=cpo``: partners' drivers' sessions at our stations as reported."""
        if role == "emsp":
            return await _remote(request, "sessions", partner=partner, token=token, driver=driver, limit=limit,
                                 offset=offset)
        if role != "cpo":
            raise ValidationException("role is cpo or emsp")
        limit, offset = page_params(limit, offset)
        partners = await visible_partner_ids(await tenant_scope(request))
        query = by_partner(SessionLink.select(), SessionLink.partner, partners)
        count = by_partner(SessionLink.count(), SessionLink.partner, partners)
        if partner is not None:
            query, count = query.where(SessionLink.partner == partner), count.where(SessionLink.partner == partner)
        rows = await query.order_by(SessionLink.session_id, ascending=False).limit(limit).offset(offset).output(
            load_json=True)
        items = [{"session_id": r["session_id"], "partner": r["partner"], "cdr_id": r["cdr_id"] or None,
                  "object": await session_object(r)} for r in rows]
        return {"items": items, "total": await count, "limit": limit, "offset": offset}

    @get("/cdrs", guards=[require("viewer")])
    async def cdrs(self, request: Request, role: str = "emsp", partner: int | None = None, token: str | None = None,
                   driver: int | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """``role=emsp``: CDRs partners sent us for our drivers; ``role=cpo``: CDRs we issued."""
        if role == "emsp":
            return await _remote(request, "cdrs", partner=partner, token=token, driver=driver, limit=limit,
                                 offset=offset)
        if role != "cpo":
            raise ValidationException("role is cpo or emsp")
        limit, offset = page_params(limit, offset)
        partners = await visible_partner_ids(await tenant_scope(request))
        query, count = by_partner(Cdr.select(), Cdr.partner, partners), by_partner(Cdr.count(), Cdr.partner, partners)
        if partner is not None:
            query, count = query.where(Cdr.partner == partner), count.where(Cdr.partner == partner)
        rows = await query.order_by(Cdr.id, ascending=False).limit(limit).offset(offset).output(load_json=True)
        return {"items": [{"cdr_id": r["cdr_id"], "session_id": r["session_id"], "partner": r["partner"],
                           "location_url": r["location_url"], "object": r["payload"]} for r in rows],
                "total": await count, "limit": limit, "offset": offset}

    @get("/commands", guards=[require("viewer")])
    async def commands(self, request: Request, direction: str | None = None, partner: int | None = None,
                       limit: int = 100, offset: int = 0) -> dict[str, Any]:
        limit, offset = page_params(limit, offset)
        partners = await visible_partner_ids(await tenant_scope(request))
        query = by_partner(CommandRecord.select(), CommandRecord.partner, partners)
        count = by_partner(CommandRecord.count(), CommandRecord.partner, partners)
        for cond in ([CommandRecord.direction == direction] if direction else []) + (
                [CommandRecord.partner == partner] if partner is not None else []):
            query, count = query.where(cond), count.where(cond)
        rows = await query.order_by(CommandRecord.id, ascending=False).limit(limit).offset(offset).output(
            load_json=True)
        return {"items": [jsonable(r) for r in rows], "total": await count, "limit": limit, "offset": offset}

    @get("/commands/{command_id:int}", guards=[require("viewer")], opt={"tenant": {"command_id": "roaming_command"}})
    async def command(self, command_id: int) -> dict[str, Any]:
        row = await CommandRecord.select().where(CommandRecord.id == command_id).output(load_json=True).first()
        if row is None:
            raise NotFoundException(f"no command {command_id}")
        return jsonable(row)

    @get("/outbox", guards=[require("viewer")])
    async def outbox(self, request: Request, partner: int | None = None, status: str | None = None,
                     limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """Pushes to partners, newest first: ``status`` pending (waiting or being retried;
        ``attempts``, ``next_attempt_at`` and ``last_error`` say how it goes), sending, done or
        failed (refused by the partner or breaking the OCPI limits; ``last_error`` says why)."""
        limit, offset = page_params(limit, offset)
        partners = await visible_partner_ids(await tenant_scope(request))
        query = by_partner(Outbox.select(), Outbox.partner, partners)
        count = by_partner(Outbox.count(), Outbox.partner, partners)
        statuses = list(FAILED) if status == "failed" else [status] if status else []
        for cond in ([Outbox.partner == partner] if partner is not None else []) + (
                [Outbox.status.is_in(statuses)] if statuses else []):
            query, count = query.where(cond), count.where(cond)
        rows = await query.order_by(Outbox.id, ascending=False).limit(limit).offset(offset).output(load_json=True)
        return {"items": [_push_json(r) for r in rows], "total": await count, "limit": limit, "offset": offset}

    @post("/outbox/{outbox_id:int}/resend", guards=[require("operator")], status_code=200,
          opt={"tenant": {"outbox_id": "roaming_push"}})
    async def resend_push(self, request: Request, outbox_id: int) -> dict[str, Any]:
        """Queue a failed push again (delivered at once, then retried as usual); 409 when it is not
        failed or a newer push of the same object exists (sending it would bring back an older state)."""
        try:
            row = await outbox.resend(outbox_id)
        except outbox.ResendRefused as exc:
            status = 404 if not await Outbox.exists().where(Outbox.id == outbox_id) else 409
            raise HTTPException(status_code=status, detail=str(exc)) from None
        await audited(request, "resend", "ocpi_push", outbox_id, before={"status": "failed"},
                      after={"status": "pending"}, summary=f"{row['method']} {row['object_key']} to partner "
                                                           f"{row['partner']} queued again")
        return _push_json(row)

    @post("/sync", guards=[require("operator")], status_code=200, opt={"tenant": GLOBAL_ONLY})
    async def sync_now(self) -> dict[str, Any]:
        """Look for changed locations, tariffs and tokens now and deliver what is due (for every
        partner: the installation's; an organization's users push to their own partners with
        ``POST /partners/{id}/push``)."""
        await sync.refresh_all()
        delivered = await sync.deliver_due()
        return {"delivered": delivered,
                "pending": await Outbox.count().where(Outbox.status == "pending")}

    @get("/identity", guards=[require("viewer")])
    async def identity(self, request: Request) -> dict[str, Any]:
        s = ocpi_settings()
        return {"country_code": s.country_code, "party_id": s.party_id, "roles": sorted(s.role_set),
                "versions_url": versions_url(base_url(request))}


class SiteDetailsIn(msgspec.Struct, forbid_unknown_fields=True):
    opening_times: dict[str, Any] | None = None
    facilities: list[str] = []
    charging_when_closed: bool | None = None


async def _site_details(site_id: int) -> dict[str, Any]:
    if not await Site.exists().where(Site.id == site_id):
        raise NotFoundException(f"no site {site_id}")
    row = await SiteDetails.select().where(SiteDetails.site_id == site_id).output(load_json=True).first()
    return {"site_id": site_id, "opening_times": row["opening_times"] if row else None,
            "facilities": row["facilities"] if row else [],
            "charging_when_closed": row["charging_when_closed"] if row else None,
            "location": objects.site_details(row)}


class SiteDetailsController(Controller):
    """What a site's Location says beyond the core's site fields (opening times, facilities)."""

    path = "/sites"
    tags = ["roaming"]
    opt = {"tenant": {"site_id": "site"}}

    @get("/{site_id:int}", guards=[require("viewer")])
    async def get_details(self, site_id: int) -> dict[str, Any]:
        """The site's details; ``location`` is what its Location shows (24/7 when no hours are set)."""
        return await _site_details(site_id)

    @put("/{site_id:int}", guards=[require("operator")])
    async def put_details(self, site_id: int, data: SiteDetailsIn) -> dict[str, Any]:
        """Set the opening times (OCPI Hours; null: 24/7), facilities (OCPI Facility values) and
        ``charging_when_closed``; the Location is pushed to partners when its form changed."""
        await _site_details(site_id)
        found = schema.hours_problems(data.opening_times) if data.opening_times is not None else []
        found += schema.problems(data.facilities, schema.many(schema.FACILITY))
        if found:
            raise ValidationException("; ".join(found))
        values = {"opening_times": data.opening_times, "facilities": sorted(set(data.facilities)),
                  "charging_when_closed": data.charging_when_closed, "updated_at": utcnow()}
        if await SiteDetails.exists().where(SiteDetails.site_id == site_id):
            await SiteDetails.update({getattr(SiteDetails, k): v for k, v in values.items()}).where(
                SiteDetails.site_id == site_id)
        else:
            await SiteDetails(site_id=site_id, **values).save()
        await sync.refresh_locations([site_id])
        return await _site_details(site_id)


class ChargingProfileController(Controller):
    """Charging profiles partners set on sessions at our stations (OCPI chargingprofiles)."""

    path = "/charging-profiles"
    tags = ["roaming"]

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_profiles(self, request: Request, session_id: int | None = None, limit: int = 100,
                            offset: int = 0) -> dict[str, Any]:
        limit, offset = page_params(limit, offset)
        partners = await visible_partner_ids(await tenant_scope(request))
        query = by_partner(SessionProfile.select(), SessionProfile.partner, partners)
        count = by_partner(SessionProfile.count(), SessionProfile.partner, partners)
        if session_id is not None:
            query, count = (query.where(SessionProfile.session_id == session_id),
                            count.where(SessionProfile.session_id == session_id))
        rows = await query.order_by(SessionProfile.id, ascending=False).limit(limit).offset(offset).output(
            load_json=True)
        return {"items": [jsonable(r) for r in rows], "total": await count, "limit": limit, "offset": offset}


def roaming_api_router() -> Router:
    return Router(path="/api/v1/roaming", route_handlers=[PartnerController, ExchangeController,
                                                           SiteDetailsController, ChargingProfileController])
