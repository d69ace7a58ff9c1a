"""Stations: registry, live state, event and frame logs, and every command a station takes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post, put, delete
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException, ValidationException
from litestar.status_codes import HTTP_409_CONFLICT
from piccolo.columns.combination import Combinable

from csms.api.audit import actor_of, audited
from csms.api.auth import caller, principal_of, require
from csms.api.bounds import Int32
from csms.api.crud import check_references, hub_full, jsonable, page_params, plan_limit
from csms.api.tenancy import owner_for_new, restrict, tenant_scope
from csms.core.ocpp.validation import ACTIONS, InvalidPayload, OcppError
from csms.core.runtime import get_core
from csms.core.services import hubs, plans
from csms.core.services.charging_profiles import tx_schedule
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.services.operations import NotSupported, OperationError
from csms.core.services.stations import StationInUse
from csms.core.tables import (
    Command,
    ConfigurationKey,
    Connector,
    DeviceVariable,
    Evse,
    MessageLog,
    Station,
    StationEvent,
)
from csms.core.timeutil import utcnow
from csms.textsearch import contains


class StationCreate(msgspec.Struct, forbid_unknown_fields=True):
    station_id: str
    password: str | None = None
    description: str = ""
    registration_status: str = "Accepted"
    site: Int32 | None = None
    hub: Int32 | None = None
    organization: Int32 | None = None


class StationUpdate(msgspec.Struct, forbid_unknown_fields=True):
    description: str | None = None
    # null takes the station off its site (and hub), out of its hub, or clears its current limits
    site: Int32 | None | msgspec.UnsetType = msgspec.UNSET
    hub: Int32 | None | msgspec.UnsetType = msgspec.UNSET
    organization: Int32 | None = None
    phase_rotation: str | None = None
    max_current_a: float | None | msgspec.UnsetType = msgspec.UNSET
    min_current_a: float | None | msgspec.UnsetType = msgspec.UNSET
    registration_status: str | None = None
    security_profile: int | None = None  # 0-3; connections raise it themselves, never lower it


CLEARABLE = {"site", "hub", "max_current_a", "min_current_a"}  # StationUpdate's fields a null clears


class PasswordBody(msgspec.Struct, forbid_unknown_fields=True):
    password: str | None


class SchedulePeriod(msgspec.Struct, forbid_unknown_fields=True):
    limit: float  # amps or watts
    start_period: Int32 = 0  # seconds from the start of the transaction
    number_phases: Int32 | None = None


class RemoteStartProfile(msgspec.Struct, forbid_unknown_fields=True):
    """A TxProfile for the transaction (K05), relative to its start."""

    periods: list[SchedulePeriod]
    unit: str = "A"  # A or W
    duration: Int32 | None = None  # seconds; none: until the transaction ends
    stack_level: Int32 = 0
    profile_id: Int32 | None = None  # none: the next free one below 100000


class RemoteStart(msgspec.Struct, forbid_unknown_fields=True):
    id_token: str
    evse_id: Int32 | None = None
    token_type: str = "Central"
    charging_profile: RemoteStartProfile | None = None


class RemoteStop(msgspec.Struct, forbid_unknown_fields=True):
    transaction_id: str | None = None
    session_id: Int32 | None = None


class ResetBody(msgspec.Struct, forbid_unknown_fields=True):
    kind: str = "soft"
    evse_id: Int32 | None = None


class UnlockBody(msgspec.Struct, forbid_unknown_fields=True):
    evse_id: Int32
    connector_id: Int32 = 1


class AvailabilityBody(msgspec.Struct, forbid_unknown_fields=True):
    operative: bool
    evse_id: Int32 = 0
    connector_id: Int32 | None = None


class DataTransferBody(msgspec.Struct, forbid_unknown_fields=True):
    vendor_id: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    message_id: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] | None = None
    data: Any = None  # any JSON value; a 1.6 station takes text, so other values go as their JSON text


class TriggerBody(msgspec.Struct, forbid_unknown_fields=True):
    message: str
    evse_id: Int32 | None = None


class ConfigurationSet(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    value: str


class ConfigurationGet(msgspec.Struct, forbid_unknown_fields=True):
    keys: list[str] | None = None


class ComponentVariableBody(msgspec.Struct, forbid_unknown_fields=True):
    component: str
    component_instance: str | None = None
    evse_id: Int32 | None = None
    connector_id: Int32 | None = None
    variable: str | None = None  # none: every variable of the component
    variable_instance: str | None = None


class VariableBody(msgspec.Struct, forbid_unknown_fields=True):
    component: str
    variable: str
    component_instance: str | None = None
    evse_id: Int32 | None = None
    connector_id: Int32 | None = None
    variable_instance: str | None = None
    attribute_type: str | None = None  # Actual (default), Target, MinSet, MaxSet
    value: str | None = None  # what to set (variables/set)


class VariablesBody(msgspec.Struct, forbid_unknown_fields=True):
    variables: list[VariableBody]


class CustomReportBody(msgspec.Struct, forbid_unknown_fields=True):
    criteria: list[str] | None = None  # Active, Available, Enabled, Problem
    component_variables: list[ComponentVariableBody] | None = None


class FirmwareBody(msgspec.Struct, forbid_unknown_fields=True):
    location: str
    retrieve_at: datetime | None = None
    signing_certificate: str | None = None
    signature: str | None = None
    retries: Int32 | None = None
    install_at: datetime | None = None  # when the station installs it (2.0.1, 1.6 signed updates)


class LogsBody(msgspec.Struct, forbid_unknown_fields=True):
    location: str  # where the station uploads the file
    log_type: str = "DiagnosticsLog"  # or SecurityLog (GetLog only)
    oldest: datetime | None = None
    latest: datetime | None = None
    retries: Int32 | None = None
    retry_interval: Int32 | None = None  # seconds


REGISTRATION = {"Accepted", "Pending", "Rejected"}
_RESET_KINDS = {"soft", "hard", "immediate", "on_idle"}


def public_columns() -> list[Any]:
    """A station's columns but its password hashes."""
    return Station.all_columns(exclude=[Station.password_hash, Station.pending_password_hash])


async def station_row(station_id: str) -> dict[str, Any]:
    row = await Station.select(*public_columns()).where(Station.station_id == station_id).first()
    if row is None:
        raise NotFoundException(f"no station {station_id!r}")
    return row


async def station_detail(station_id: str) -> dict[str, Any]:
    """A station with its live connection state, EVSEs, connectors and active sessions."""
    core = get_core()
    await core.writer.flush()  # liveness updates are batched; show them
    row = await station_row(station_id)
    evses = await Evse.select().where(Evse.station == row["id"]).order_by(Evse.evse_id)
    connectors = await Connector.select().where(Connector.station == row["id"]).order_by(Connector.evse_id)
    detail = jsonable(row)
    detail["has_password"] = bool(await Station.exists().where(
        (Station.id == row["id"]) & Station.password_hash.is_not_null() & (Station.password_hash != "")))
    detail["online"] = core.commands.version_of(station_id) is not None or row["connected"]
    detail["evses"] = [
        {**jsonable(e), "connectors": [jsonable(c) for c in connectors if c["evse_id"] == e["evse_id"]]}
        for e in evses
    ]
    detail["active_sessions"] = [
        {"id": s.id, "transaction_id": s.transaction_id, "evse_id": s.evse_id, "id_token": s.id_token,
         "energy_wh": s.energy_wh, "power_w": s.power_w, "started_at": s.started_at.isoformat()}
        for s in core.sessions.for_station(station_id)
    ]
    return detail


async def run_command(coro: Any) -> dict[str, Any]:
    """Await a command; map what can go wrong to clear HTTP errors carrying the OCPP code."""
    try:
        return await coro
    except UnknownStation as exc:
        raise NotFoundException(f"no station {exc}") from None
    except StationOffline as exc:
        raise HTTPException(status_code=409, detail=f"station {exc} is offline",
                            extra={"error": "StationOffline"}) from None
    except CommandTimeout as exc:
        raise HTTPException(status_code=504, detail=f"station {exc} did not answer in time",
                            extra={"error": "Timeout"}) from None
    except InvalidPayload as exc:
        raise HTTPException(status_code=400, detail=f"payload rejected before sending: {exc.code}: {exc.description}",
                            extra={"error": exc.code, "details": exc.details}) from None
    except OcppError as exc:  # the station's CALLERROR, or its answer breaking the schema
        raise HTTPException(status_code=502, detail=f"station answered {exc.code}: {exc.description}",
                            extra={"error": exc.code, "details": {k: v for k, v in exc.details.items()
                                                                   if k != "payload"}}) from None
    except NotSupported as exc:
        raise HTTPException(status_code=409, detail=str(exc), extra={"error": "NotSupported"}) from None
    except OperationError as exc:
        raise ValidationException(str(exc)) from None


class StationController(Controller):
    path = "/stations"
    tags = ["stations"]
    opt = {"tenant": {"station_id": "station"}}

    @get("/", guards=[require("viewer")])
    async def list_stations(self, request: Request, q: str | None = None, registration_status: str | None = None,
                            site: int | None = None, hub: int | None = None, connected: bool | None = None,
                            limit: int = 100, offset: int = 0) -> dict[str, Any]:
        limit, offset = page_params(limit, offset)
        where: list[Combinable] = []
        if q:
            where.append(contains(Station.station_id, q) | contains(Station.description, q)
                         | contains(Station.vendor, q) | contains(Station.model, q))
        if registration_status:
            where.append(Station.registration_status == registration_status)
        if site is not None:
            where.append(Station.site == site)
        if hub is not None:
            where.append(Station.hub == hub)
        if connected is not None:
            where.append(Station.connected == connected)
        scope = await tenant_scope(request)
        query = restrict(Station.select(*public_columns()), Station.organization, scope)
        count = restrict(Station.count(), Station.organization, scope)
        for w in where:
            query, count = query.where(w), count.where(w)
        rows = await query.order_by(Station.station_id).limit(limit).offset(offset)
        return {"items": [jsonable(r) for r in rows], "total": await count, "limit": limit, "offset": offset}

    @post("/", guards=[require("operator")])
    async def create_station(self, request: Request, data: StationCreate) -> dict[str, Any]:
        scope = await tenant_scope(request)
        organization = await owner_for_new(scope, data.organization, what="a station")
        await check_references(Station, {"site": data.site, "hub": data.hub}, scope)
        if not data.station_id or len(data.station_id) > 48:
            raise ValidationException("station_id must be 1-48 characters")
        if data.registration_status not in REGISTRATION:
            raise ValidationException(f"registration_status must be one of {sorted(REGISTRATION)}")
        if await Station.exists().where(Station.station_id == data.station_id):
            raise HTTPException(status_code=HTTP_409_CONFLICT, detail=f"station {data.station_id!r} already exists")
        try:
            await get_core().stations.create(data.station_id, password=data.password, description=data.description,
                                             registration_status=data.registration_status, site=data.site,
                                             hub=data.hub, organization=organization)
        except hubs.HubFull as exc:
            raise hub_full(exc) from None
        except plans.PlanLimitReached as exc:
            raise plan_limit(exc) from None
        await audited(request, "create", "station", data.station_id, after=await station_row(data.station_id))
        return await station_detail(data.station_id)

    @get("/{station_id:str}", guards=[require("viewer")])
    async def get_station(self, station_id: str) -> dict[str, Any]:
        return await station_detail(station_id)

    @patch("/{station_id:str}", guards=[require("operator")])
    async def update_station(self, request: Request, station_id: str, data: StationUpdate) -> dict[str, Any]:
        before = await station_row(station_id)
        values = {k: v for k, v in msgspec.structs.asdict(data).items()
                  if v is not msgspec.UNSET and (v is not None or k in CLEARABLE)}
        if "site" in values and values["site"] is None:
            values["hub"] = None  # a station without a site is in no hub
        await check_references(Station, values, await tenant_scope(request))
        profile = values.pop("security_profile", None)
        if profile is not None and profile not in (0, 1, 2, 3):
            raise ValidationException("security_profile must be 0, 1, 2 or 3")
        if profile is not None and profile < (before["security_profile"] or 0) and not (
                await principal_of(request)).can("admin"):  # type: ignore[union-attr]  # behind require()
            raise PermissionDeniedException("lowering a station's security profile needs the admin role")
        status = values.pop("registration_status", None)
        if status is not None:
            if status not in REGISTRATION:
                raise ValidationException(f"registration_status must be one of {sorted(REGISTRATION)}")
            await get_core().operations.set_registration_status(station_id, status, by=caller(request))
        if profile is not None:
            await get_core().stations.set_security_profile(station_id, profile)
        if values:
            try:
                await hubs.update_stations(Station.station_id == station_id,
                                           {getattr(Station, k): v for k, v in values.items()})
            except hubs.HubFull as exc:
                raise hub_full(exc) from None
            except plans.PlanLimitReached as exc:
                raise plan_limit(exc) from None
        await audited(request, "update", "station", station_id, before=before, after=await station_row(station_id))
        return await station_detail(station_id)

    @delete("/{station_id:str}", guards=[require("admin")])
    async def delete_station(self, request: Request, station_id: str) -> None:
        row = await station_row(station_id)

        async def disconnect(station: str) -> None:
            conn = get_core().connections.get(station)
            if conn is not None:
                await conn.close(code=1000, reason="station deleted")

        actor, actor_organization = await actor_of(request)
        try:
            await get_core().stations.delete(row, actor=actor, actor_organization=actor_organization,
                                             disconnect=disconnect)
        except StationInUse as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None

    @post("/{station_id:str}/approve", guards=[require("operator")])
    async def approve(self, request: Request, station_id: str) -> dict[str, Any]:
        before = await station_row(station_id)
        await get_core().operations.set_registration_status(station_id, "Accepted", by=caller(request))
        await audited(request, "update", "station", station_id, before=before, after=await station_row(station_id))
        return await station_detail(station_id)

    @post("/{station_id:str}/reject", guards=[require("operator")])
    async def reject(self, request: Request, station_id: str) -> dict[str, Any]:
        before = await station_row(station_id)
        await get_core().operations.set_registration_status(station_id, "Rejected", by=caller(request))
        await audited(request, "update", "station", station_id, before=before, after=await station_row(station_id))
        return await station_detail(station_id)

    @put("/{station_id:str}/password", guards=[require("admin")])
    async def set_password(self, request: Request, station_id: str, data: PasswordBody) -> dict[str, Any]:
        await station_row(station_id)
        if data.password is not None and not 16 <= len(data.password) <= 40:
            raise ValidationException("OCPP passwords are 16 to 40 characters")
        await get_core().stations.set_password(station_id, data.password)
        await audited(request, "update", "station", station_id,
                      summary="password set" if data.password is not None else "password removed")
        return {"station_id": station_id, "has_password": data.password is not None}

    @get("/{station_id:str}/events", guards=[require("viewer")])
    async def events(self, station_id: str, category: str | None = None, limit: int = 100,
                     offset: int = 0) -> dict[str, Any]:
        limit, offset = page_params(limit, offset)
        query = StationEvent.select().where(StationEvent.station_id == station_id).output(load_json=True)
        if category:
            query = query.where(StationEvent.category == category)
        rows = await query.order_by(StationEvent.id, ascending=False).limit(limit).offset(offset)
        return {"items": [jsonable(r) for r in rows], "limit": limit, "offset": offset}

    @get("/{station_id:str}/messages", guards=[require("viewer")])
    async def messages(self, station_id: str, action: str | None = None, direction: str | None = None,
                       limit: int = 100, offset: int = 0) -> dict[str, Any]:
        limit, offset = page_params(limit, offset)
        query = MessageLog.select().where(MessageLog.station_id == station_id)
        count = MessageLog.count().where(MessageLog.station_id == station_id)
        if action:
            query, count = query.where(MessageLog.action == action), count.where(MessageLog.action == action)
        if direction:
            query = query.where(MessageLog.direction == direction)
            count = count.where(MessageLog.direction == direction)
        rows = await query.order_by(MessageLog.id, ascending=False).limit(limit).offset(offset)
        return {"items": [jsonable(r) for r in rows], "total": await count, "limit": limit, "offset": offset}

    @get("/{station_id:str}/commands", guards=[require("viewer")])
    async def commands(self, station_id: str, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        limit, offset = page_params(limit, offset)
        rows = await Command.select().output(load_json=True).where(Command.station_id == station_id).order_by(
            Command.id, ascending=False).limit(limit).offset(offset)
        return {"items": [jsonable(r) for r in rows], "limit": limit, "offset": offset}

    @get("/{station_id:str}/configuration", guards=[require("viewer")])
    async def configuration(self, station_id: str) -> dict[str, Any]:
        row = await station_row(station_id)
        keys = await ConfigurationKey.select().where(ConfigurationKey.station == row["id"]).order_by(
            ConfigurationKey.key)
        variables = await DeviceVariable.select().where(DeviceVariable.station == row["id"]).order_by(
            DeviceVariable.component).order_by(DeviceVariable.variable)
        return {"configuration_keys": [jsonable(k) for k in keys], "variables": [jsonable(v) for v in variables]}

    # -- friendly, version-neutral commands ---------------------------------------------------

    @post("/{station_id:str}/configuration/refresh", guards=[require("operator")])
    async def refresh_configuration(self, request: Request, station_id: str,
                                    data: ConfigurationGet | None = None) -> dict[str, Any]:
        return await run_command(get_core().operations.get_configuration(
            station_id, keys=data.keys if data else None, by=caller(request)))

    @post("/{station_id:str}/configuration/report", guards=[require("operator")])
    async def custom_report(self, request: Request, station_id: str, data: CustomReportBody) -> dict[str, Any]:
        """OCPP 2.0.1 GetReport of chosen components/variables and/or criteria (B08); the
        NotifyReport parts that follow are stored with the station's variables (1.6: 409)."""
        return await run_command(get_core().operations.get_custom_report(
            station_id, criteria=data.criteria, by=caller(request),
            component_variables=[msgspec.structs.asdict(c) for c in data.component_variables or []] or None))

    @post("/{station_id:str}/variables/get", guards=[require("operator")])
    async def get_variables(self, request: Request, station_id: str, data: VariablesBody) -> dict[str, Any]:
        """OCPP 2.0.1 GetVariables of chosen variables, split as the station's
        DeviceDataCtrlr.ItemsPerMessage/BytesPerMessage[GetVariables] ask (B06.FR.05); one answer
        with the station's result of each variable, in the order asked, and ``messages`` sent."""
        return await run_command(get_core().operations.get_variables(
            station_id, variables=[msgspec.structs.asdict(v) for v in data.variables], by=caller(request)))

    @post("/{station_id:str}/variables/set", guards=[require("operator")])
    async def set_variables(self, request: Request, station_id: str, data: VariablesBody) -> dict[str, Any]:
        """OCPP 2.0.1 SetVariables of chosen variables (each with its ``value``), split as the
        station's DeviceDataCtrlr.ItemsPerMessage/BytesPerMessage[SetVariables] ask (B05.FR.06)."""
        return await run_command(get_core().operations.set_variables(
            station_id, variables=[msgspec.structs.asdict(v) for v in data.variables], by=caller(request)))

    @put("/{station_id:str}/configuration", guards=[require("operator")])
    async def set_configuration(self, request: Request, station_id: str, data: ConfigurationSet) -> dict[str, Any]:
        return await run_command(get_core().operations.set_configuration(
            station_id, key=data.key, value=data.value, by=caller(request)))

    @post("/{station_id:str}/remote-start", guards=[require("operator")])
    async def remote_start(self, request: Request, station_id: str, data: RemoteStart) -> dict[str, Any]:
        profile = data.charging_profile
        extra: dict[str, Any] = {}
        if profile is not None:
            try:
                extra = {"schedule": tx_schedule(unit=profile.unit, duration=profile.duration,
                                                 periods=[msgspec.structs.asdict(p) for p in profile.periods]),
                         "stack_level": profile.stack_level, "profile_id": profile.profile_id}
            except OperationError as exc:
                raise ValidationException(str(exc)) from None
        return await run_command(get_core().operations.remote_start(
            station_id, id_token=data.id_token, evse_id=data.evse_id, token_type=data.token_type,
            by=caller(request), **extra))

    @post("/{station_id:str}/remote-stop", guards=[require("operator")])
    async def remote_stop(self, request: Request, station_id: str, data: RemoteStop) -> dict[str, Any]:
        if data.transaction_id is None and data.session_id is None:
            core = get_core()
            active = core.sessions.for_station(station_id)
            if len(active) != 1:
                await station_row(station_id)  # an unknown station is a 404, not a missing argument
                raise ValidationException("give transaction_id or session_id (the station has "
                                          f"{len(active)} active sessions)")
            data = RemoteStop(transaction_id=active[0].transaction_id)
        return await run_command(get_core().operations.remote_stop(
            station_id, transaction_id=data.transaction_id, session_id=data.session_id, by=caller(request)))

    @post("/{station_id:str}/reset", guards=[require("operator")])
    async def reset(self, request: Request, station_id: str, data: ResetBody) -> dict[str, Any]:
        if data.kind not in _RESET_KINDS:
            raise ValidationException(f"kind must be one of {sorted(_RESET_KINDS)}")
        return await run_command(get_core().operations.reset(station_id, kind=data.kind, evse_id=data.evse_id,
                                                              by=caller(request)))

    @post("/{station_id:str}/unlock", guards=[require("operator")])
    async def unlock(self, request: Request, station_id: str, data: UnlockBody) -> dict[str, Any]:
        return await run_command(get_core().operations.unlock(
            station_id, evse_id=data.evse_id, connector_id=data.connector_id, by=caller(request)))

    @post("/{station_id:str}/availability", guards=[require("operator")])
    async def availability(self, request: Request, station_id: str, data: AvailabilityBody) -> dict[str, Any]:
        return await run_command(get_core().operations.change_availability(
            station_id, operative=data.operative, evse_id=data.evse_id, connector_id=data.connector_id,
            by=caller(request)))

    @post("/{station_id:str}/trigger", guards=[require("operator")])
    async def trigger(self, request: Request, station_id: str, data: TriggerBody) -> dict[str, Any]:
        return await run_command(get_core().operations.trigger(
            station_id, message=data.message, evse_id=data.evse_id, by=caller(request)))

    @post("/{station_id:str}/data-transfer", guards=[require("operator")])
    async def data_transfer(self, request: Request, station_id: str, data: DataTransferBody) -> dict[str, Any]:
        """DataTransfer to the station (2.0.1/2.1 P01, 1.6 CS→CP): its status and its ``data``."""
        return await run_command(get_core().operations.data_transfer(
            station_id, vendor_id=data.vendor_id, message_id=data.message_id, data=data.data, by=caller(request)))

    @post("/{station_id:str}/clear-cache", guards=[require("operator")])
    async def clear_cache(self, request: Request, station_id: str) -> dict[str, Any]:
        return await run_command(get_core().operations.clear_cache(station_id, by=caller(request)))

    @post("/{station_id:str}/firmware", guards=[require("operator")])
    async def update_firmware(self, request: Request, station_id: str, data: FirmwareBody) -> dict[str, Any]:
        return await run_command(get_core().operations.update_firmware(
            station_id, location=data.location, retrieve_at=data.retrieve_at or utcnow() + timedelta(seconds=5),
            signing_certificate=data.signing_certificate, signature=data.signature, retries=data.retries,
            install_at=data.install_at, by=caller(request)))

    @post("/{station_id:str}/logs", guards=[require("operator")])
    async def get_logs(self, request: Request, station_id: str, data: LogsBody) -> dict[str, Any]:
        """GetLog where the station takes it (2.0.1; 1.6 with the security extension), else 1.6
        GetDiagnostics; ``action`` says which was sent, ``request_id`` what its notifications carry."""
        return await run_command(get_core().operations.get_logs(
            station_id, by=caller(request), **msgspec.structs.asdict(data)))

    @post("/{station_id:str}/ocpp/{action:str}", guards=[require("operator")])
    async def raw_call(self, request: Request, station_id: str, action: str, data: dict[str, Any]) -> dict[str, Any]:
        """Send any OCPP action with a raw payload for the station's version; return its answer."""
        core = get_core()
        await station_row(station_id)
        version = core.commands.version_of(station_id)
        if version is None:
            raise HTTPException(status_code=409, detail=f"station {station_id} is offline",
                                extra={"error": "StationOffline"})
        if action not in ACTIONS[version]:
            raise ValidationException(f"{action} is not an OCPP {version} action")
        response = await run_command(core.commands.send(station_id, action, data, requested_by=caller(request)))
        return {"action": action, "ocpp_version": version, "response": response}
