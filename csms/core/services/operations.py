"""Version-neutral operations on stations, built on the command service.

Each operation has the station's outbound adapter (:mod:`csms.core.ocpp.outbound`, picked once by
its protocol version) build the call, sends it and returns ``{"status": ..., "response": <the
station's answer>}``; answers that carry data (configuration, variables, profiles, reservations)
are stored on the way.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from piccolo.query.functions.aggregate import Max

from csms.core.background import BackgroundTasks
from csms.core.ocpp.outbound import Call, OperationError, StationCalls, calls_for, known_calls
from csms.core.ocpp.outbound.calls import DIAGNOSTICS_LOG, LOG_TYPES, answered, new_request_id, positive_int
from csms.core.ocpp.validation import OcppError
from csms.core.services import passwords, per_message
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.services.reservations import ReservationError
from csms.core.tables import ChargingProfile, ChargingSession, ConfigurationKey, Station
from csms.i18n import N_

if TYPE_CHECKING:
    from csms.core.services.commands import CommandService
    from csms.core.services.reports import ReportService
    from csms.core.services.reservations import ReservationService
    from csms.core.services.stations import StationService

MAX_KEYS = "GetConfigurationMaxKeys"  # OCPP 1.6: how many keys one GetConfiguration may name

log = logging.getLogger("csms.operations")

REMOTE_START_PROFILE_IDS = 100_000  # remote starts number their TxProfiles below this
COMPONENT_CRITERIA = ("Active", "Available", "Enabled", "Problem")  # ComponentCriterionEnumType
NAME_LENGTH = 50  # identifierString[50] of component and variable names and instances


def component_variable_of(item: dict[str, Any]) -> dict[str, Any]:
    """A 2.0.1 ComponentVariableType from ``{"component", "component_instance", "evse_id",
    "connector_id", "variable", "variable_instance"}``; ``OperationError`` for a bad one."""
    def name(key: str, *, required: bool = False) -> str | None:
        value = item.get(key)
        if value in (None, "") and not required:
            return None
        if not isinstance(value, str) or not 1 <= len(value) <= NAME_LENGTH or not value.isprintable():
            raise OperationError(N_("%(field)s is a name of 1 to %(maximum)s characters"), field=key,
                                 maximum=NAME_LENGTH)
        return value

    component: dict[str, Any] = {"name": name("component", required=True)}
    if (instance := name("component_instance")) is not None:
        component["instance"] = instance
    evse_id, connector_id = item.get("evse_id"), item.get("connector_id")
    if connector_id is not None and evse_id is None:
        raise OperationError(N_("a connector_id needs its evse_id"))
    for value in (evse_id, connector_id):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**31 - 1):
            raise OperationError(N_("evse_id and connector_id are whole numbers from 0"))
    if evse_id is not None:
        component["evse"] = {"id": evse_id, **({"connectorId": connector_id} if connector_id is not None else {})}
    out: dict[str, Any] = {"component": component}
    if (variable := name("variable")) is not None:
        out["variable"] = {"name": variable}
        if (instance := name("variable_instance")) is not None:
            out["variable"]["instance"] = instance
    elif item.get("variable_instance"):
        raise OperationError(N_("a variable_instance needs its variable"))
    return out


ATTRIBUTE_TYPES = ("Actual", "Target", "MinSet", "MaxSet")


def variable_data(item: dict[str, Any]) -> dict[str, Any]:
    """A 2.0.1 GetVariableData (SetVariableData without its value) of ``{"component",
    "variable", ..., "attribute_type"}``; ``OperationError`` for a bad one."""
    if not item.get("variable"):
        raise OperationError(N_("each variable needs its component and variable"))
    out = component_variable_of(item)
    attribute_type = item.get("attribute_type")
    if attribute_type not in (None, ""):
        if attribute_type not in ATTRIBUTE_TYPES:
            raise OperationError(N_("attribute_type is one of %(types)s"), types=", ".join(ATTRIBUTE_TYPES))
        out["attributeType"] = attribute_type
    return out


def same_variable(data: dict[str, Any], result: dict[str, Any] | None) -> bool:
    """Whether a GetVariableResult answers the GetVariableData ``data``."""
    if not result:
        return False
    return result.get("component") == data["component"] and result.get("variable") == data["variable"] \
        and result.get("attributeType", "Actual") == data.get("attributeType", "Actual")


def _listed(items: list[dict[str, Any]], empty: str) -> list[dict[str, Any]]:
    if not items:
        raise OperationError(empty)
    return items


async def next_profile_id(station_pk: int) -> int:
    """The id for a profile the operator sends the station: the next after its highest below
    :data:`REMOTE_START_PROFILE_IDS` (the smart-charging loop's ids are far above)."""
    top = await ChargingProfile.select(Max(ChargingProfile.profile_id).as_alias("top")).where(
        (ChargingProfile.station == station_pk) & (ChargingProfile.profile_id < REMOTE_START_PROFILE_IDS)).first()
    return int((top or {}).get("top") or 0) + 1


class NotSupported(OperationError):
    """The station's protocol version has no such operation (display messages on OCPP 1.6)."""


async def known_station(station_id: str) -> dict[str, Any]:
    """The station's ``id`` (pk) and stored ``ocpp_version``; :class:`UnknownStation` if none."""
    row = await Station.select(Station.id, Station.ocpp_version).where(Station.station_id == station_id).first()
    if row is None:
        raise UnknownStation(station_id)
    return row


async def calls_with(commands: CommandService, station_id: str, feature: str, missing: str) -> StationCalls:
    """The calls of a known station's live version when they have ``feature`` (a ``supports_*``
    flag of :class:`StationCalls`); else :class:`NotSupported` with ``missing`` (what the version
    lacks, and who has it)."""
    if not await Station.exists().where(Station.station_id == station_id):
        raise UnknownStation(station_id)
    return live_calls_with(commands, station_id, feature, missing)


def live_calls_with(commands: CommandService, station_id: str, feature: str, missing: str) -> StationCalls:
    """:func:`calls_with` for a station already known to exist."""
    version = commands.live_version(station_id)
    calls = calls_for(version)
    if not getattr(calls, feature):
        raise NotSupported(f"OCPP {version} has no {missing}")
    return calls


def feature_state(version: str | None, feature: str) -> bool | None:
    """Whether a station of ``version`` (live or stored) has ``feature``; None while its version
    is not known (a stored version this CSMS does not speak has none)."""
    if version is None:
        return None
    calls = known_calls(version)
    return calls is not None and bool(getattr(calls, feature))


class Operations:
    def __init__(self, commands: CommandService, stations: StationService, reports: ReportService) -> None:
        self.commands = commands
        self.stations = stations
        self.reports = reports
        self.reservations: ReservationService | None = None  # set by attach(): reservations ask this service
        self._background = BackgroundTasks(log, "operation")  # calls sent after the request that made them

    def attach(self, reservations: ReservationService) -> None:
        """The reservation service, which sends its calls for the station's version found here."""
        self.reservations = reservations

    def _reservations(self) -> ReservationService:
        if self.reservations is None:
            raise RuntimeError("Operations.attach(reservations) was not called")
        return self.reservations

    async def _calls(self, station_id: str) -> StationCalls:
        """The outbound adapter of the station's live protocol version; ``UnknownStation`` before
        ``StationOffline``."""
        try:
            return calls_for(self.version(station_id))
        except StationOffline:
            if not await Station.exists().where(Station.station_id == station_id):
                raise UnknownStation(station_id) from None
            raise

    async def _send(self, station_id: str, call: Call, by: str) -> dict[str, Any]:
        """Send ``call``; the station's answer."""
        return await self.commands.send(station_id, call.action, call.payload, requested_by=by)

    async def _run(self, station_id: str, call: Call, by: str) -> dict[str, Any]:
        """Send ``call``; the station's answer as the operation's result."""
        return call.outcome(await self._send(station_id, call, by))

    async def _station_pk(self, station_id: str) -> int:
        row = await Station.select(Station.id).where(Station.station_id == station_id).first()
        if row is None:
            raise OperationError(N_("unknown station %(station)s"), station=repr(station_id))
        return row["id"]

    async def remote_start(self, station_id: str, *, id_token: str, evse_id: int | None = None,
                           token_type: str = "Central", schedule: dict[str, Any] | None = None,
                           stack_level: int = 0, profile_id: int | None = None, by: str = "") -> dict[str, Any]:
        """RemoteStartTransaction / RequestStartTransaction; with ``schedule`` (from
        :func:`csms.core.services.charging_profiles.tx_schedule`) a TxProfile for the transaction
        (K05), checked against the stack level and periods the station allows, and stored once the
        station accepted. Without ``profile_id`` the next id after the station's highest below
        :data:`REMOTE_START_PROFILE_IDS` (the smart-charging loop's ids are far above)."""
        calls = await self._calls(station_id)
        profile = None
        if schedule is not None:
            if not evse_id:
                raise OperationError(N_("a remote start with a charging profile names its EVSE (1.6: connector)"))
            pk = await self._station_pk(station_id)
            caps = await calls.station_caps(pk)
            if caps.max_stack_level is not None and stack_level > caps.max_stack_level:
                raise OperationError(N_("the station allows stack levels up to %(maximum)s"),
                                     maximum=caps.max_stack_level)
            if caps.max_periods is not None and len(schedule["chargingSchedulePeriod"]) > caps.max_periods:
                raise OperationError(N_("the station allows at most %(maximum)s periods in a schedule"),
                                     maximum=caps.max_periods)
            if not 0 <= stack_level <= 2**31 - 1 or (profile_id is not None and not 1 <= profile_id <= 2**31 - 1):
                raise OperationError(N_("stack_level and profile_id are whole numbers (profile_id from 1)"))
            if profile_id is None:
                profile_id = await next_profile_id(pk)
            profile = calls.remote_start_profile(profile_id=profile_id, stack_level=stack_level, schedule=schedule)
        call = calls.remote_start(id_token=id_token, evse_id=evse_id, token_type=token_type, charging_profile=profile)
        result = call.outcome(await self._send(station_id, call, by))
        if profile is not None:
            await ChargingProfile(
                station=await self._station_pk(station_id), evse_id=evse_id or 0, profile_id=calls.profile_id(profile),
                stack_level=stack_level, purpose=profile["chargingProfilePurpose"], kind=profile["chargingProfileKind"],
                payload=profile, source="csms", status=result["status"],
            ).save()
            result["profile_id"] = calls.profile_id(profile)
        return result

    async def remote_stop(self, station_id: str, *, transaction_id: str | None = None, session_id: int | None = None,
                          by: str = "") -> dict[str, Any]:
        if transaction_id is None:
            row = await ChargingSession.select(ChargingSession.transaction_id).where(
                ChargingSession.id == session_id).first()
            if row is None:
                raise OperationError(N_("unknown session %(session)s"), session=session_id)
            transaction_id = row["transaction_id"]
        calls = await self._calls(station_id)
        return await self._run(station_id, calls.remote_stop(transaction_id=transaction_id), by)

    async def reset(self, station_id: str, *, kind: str = "soft", evse_id: int | None = None,
                    by: str = "") -> dict[str, Any]:
        """``kind``: soft|hard (1.6), or immediate|on_idle (2.0.1); soft/hard map to OnIdle/Immediate."""
        calls = await self._calls(station_id)
        return await self._run(station_id, calls.reset(kind=kind, evse_id=evse_id), by)

    async def unlock(self, station_id: str, *, evse_id: int, connector_id: int = 1, by: str = "") -> dict[str, Any]:
        calls = await self._calls(station_id)
        return await self._run(station_id, calls.unlock(evse_id=evse_id, connector_id=connector_id), by)

    async def change_availability(self, station_id: str, *, operative: bool, evse_id: int = 0,
                                  connector_id: int | None = None, by: str = "") -> dict[str, Any]:
        calls = await self._calls(station_id)
        return await self._run(station_id, calls.change_availability(operative=operative, evse_id=evse_id,
                                                                     connector_id=connector_id), by)

    async def clear_cache(self, station_id: str, *, by: str = "") -> dict[str, Any]:
        calls = await self._calls(station_id)
        return await self._run(station_id, calls.clear_cache(), by)

    async def trigger(self, station_id: str, *, message: str, evse_id: int | None = None,
                      by: str = "") -> dict[str, Any]:
        calls = await self._calls(station_id)
        return await self._run(station_id, calls.trigger(message=message, evse_id=evse_id), by)

    async def set_registration_status(self, station_id: str, status: str, *, by: str = "") -> None:
        """The operator's decision on a station (Accepted, Pending, Rejected). A station that is
        connected while it becomes Accepted is asked for a BootNotification (TriggerMessage, allowed
        while Pending in both versions), so that it learns now, not at the end of its boot interval.
        The trigger goes out after this returns (the decision does not wait for the station); one
        that fails is logged, and the station still learns at its next boot."""
        row = await Station.select(Station.registration_status).where(Station.station_id == station_id).first()
        if row is None:
            raise UnknownStation(station_id)
        await self.stations.set_registration_status(station_id, status)
        if status == "Accepted" and row["registration_status"] != "Accepted" and self.commands.version_of(station_id):
            self._background.spawn(self._trigger_boot(station_id, by))

    async def _trigger_boot(self, station_id: str, by: str) -> None:
        try:
            await self.trigger(station_id, message="BootNotification", by=by)
        except (StationOffline, CommandTimeout, OcppError, OperationError) as exc:
            log.warning("%s accepted, but its BootNotification could not be triggered: %r", station_id, exc)

    async def data_transfer(self, station_id: str, *, vendor_id: str, message_id: str | None = None,
                            data: Any = None, by: str = "") -> dict[str, Any]:
        """DataTransfer to the station; its status and its ``data``."""
        calls = await self._calls(station_id)
        return await self._run(station_id, calls.data_transfer(vendor_id=vendor_id, message_id=message_id,
                                                               data=data), by)

    # -- configuration ------------------------------------------------------------------------

    async def get_configuration(self, station_id: str, *, keys: list[str] | None = None,
                                by: str = "") -> dict[str, Any]:
        """Read configuration from the station (1.6 keys or 2.0.1 variables) and store it. Named
        ``keys`` go in as many messages as the station takes (1.6 GetConfigurationMaxKeys, 2.0.1
        DeviceDataCtrlr.ItemsPerMessage/BytesPerMessage[GetVariables]; stored, else asked); the
        answers' lists (``configurationKey``/``unknownKey``, ``getVariableResult``) come back
        joined, with ``messages`` sent."""
        state = await self.stations.state(station_id)
        if state is None:
            raise UnknownStation(station_id)
        calls = await self._calls(station_id)
        chunks: list[list[str] | None] = [None]  # no keys: everything, in one message
        if keys:
            keys = list(dict.fromkeys(keys))
            if calls.supports_variables:
                limits = (await self._limits(station_id, state, calls, "GetVariables", len(keys), by))[0]
            else:
                limits = await self._max_configuration_keys(station_id, state, calls, len(keys), by)

            def payload(chunk: list[str]) -> tuple[str, dict[str, Any]]:
                call = calls.get_configuration(keys=chunk)
                return call.action, call.payload

            chunks = list(per_message.split(keys, limits, payload))
        joined: dict[str, Any] = {}
        for chunk in chunks:
            call = calls.get_configuration(keys=chunk)
            response = await self._send(station_id, call, by)
            await call.record(self.reports, state, response)
            for name, value in response.items():
                joined[name] = [*joined.get(name, []), *value] if isinstance(value, list) else value
        outcome = call.outcome(joined)
        return {**outcome, "messages": len(chunks)} if keys else outcome

    async def _max_configuration_keys(self, station_id: str, state: Any, calls: StationCalls, count: int,
                                      by: str) -> per_message.Limits:
        """A 1.6 station's GetConfigurationMaxKeys: stored, else asked (when ``count`` keys may
        need more than one message); no limit when it does not say."""
        stored = await ConfigurationKey.select(ConfigurationKey.value).where(
            (ConfigurationKey.station == state.pk) & (ConfigurationKey.key == MAX_KEYS)).first()
        limit = positive_int(stored["value"]) if stored else None
        if limit is None and count > 1:
            call = calls.get_configuration(keys=[MAX_KEYS])
            try:
                response = await self._send(station_id, call, by)
            except OcppError:
                return per_message.Limits(None, None)
            await call.record(self.reports, state, response)
            limit = next((positive_int(k.get("value")) for k in response.get("configurationKey", [])
                          if k.get("key") == MAX_KEYS), None)
        return per_message.Limits(limit, None)

    async def get_custom_report(self, station_id: str, *, criteria: list[str] | None = None,
                                component_variables: list[dict[str, Any]] | None = None,
                                by: str = "") -> dict[str, Any]:
        """GetReport (2.0.1 B08) of the chosen components and variables (``{"component",
        "component_instance", "evse_id", "connector_id", "variable", "variable_instance"}``, only
        ``component`` required) and/or those meeting ``criteria`` (Active, Available, Enabled,
        Problem). The NotifyReport parts are stored like a base report's; the outcome has the
        ``request_id``. ``OperationError`` before sending for what the station would refuse."""
        if not criteria and not component_variables:
            raise OperationError(N_("name components or criteria (a full report is “Read from station”)"))
        if criteria and not set(criteria) <= set(COMPONENT_CRITERIA):
            raise OperationError(N_("criteria are some of %(criteria)s"), criteria=", ".join(COMPONENT_CRITERIA))
        wanted = [component_variable_of(item) for item in component_variables or []]
        calls = await calls_with(self.commands, station_id, "supports_custom_reports",
                                 "GetReport (OCPP 2.0.1 has; 1.6 reads chosen keys with GetConfiguration)")
        call = calls.get_custom_report(request_id=new_request_id(), criteria=list(dict.fromkeys(criteria or [])) or None,
                                       component_variables=wanted or None)
        return await self._run(station_id, call, by)

    async def set_configuration(self, station_id: str, *, key: str, value: str, by: str = "") -> dict[str, Any]:
        state = await self.stations.state(station_id)
        if state is None:
            raise UnknownStation(station_id)
        call = (await self._calls(station_id)).set_configuration(key=key, value=value)
        response = await self._send(station_id, call, by)
        result = call.outcome(response)
        if result["status"] in ("Accepted", "RebootRequired") and not passwords.is_password_key(key):
            await call.record(self.reports, state, response)
        return result

    async def get_variables(self, station_id: str, *, variables: list[dict[str, Any]],
                            by: str = "") -> dict[str, Any]:
        """GetVariables (2.0.1 B06) of chosen variables (``{"component", "variable",
        "component_instance", "evse_id", "connector_id", "variable_instance", "attribute_type"}``,
        component and variable required), in as many messages as the station's
        DeviceDataCtrlr.ItemsPerMessage and BytesPerMessage[GetVariables] allow (B06.FR.05): from
        its stored device model, else asked first; a variable asked that is that limit itself is
        answered from the asking. The outcome: ``results``, the station's GetVariableResult of
        each variable in the order asked, ``messages`` sent. Read values are stored."""
        data = [variable_data(item) for item in _listed(variables, N_("name at least one variable"))]
        state, calls = await self._with_variables(station_id)
        limits, asked = await self._limits(station_id, state, calls, "GetVariables", len(data), by)
        results: list[dict[str, Any] | None] = [None] * len(data)
        if asked is not None:  # the limit's own GetVariables answers a variable asked as well
            for n, item in enumerate(data):
                if same_variable(item, asked):
                    results[n] = asked
        todo = [n for n in range(len(data)) if results[n] is None]
        chunks = per_message.split(todo, limits, lambda ns: ("GetVariables", {"getVariableData": [data[n] for n in ns]}))
        for chunk in chunks:  # B06.FR.05
            call = calls.get_variables(data=[data[n] for n in chunk])
            response = await self._send(station_id, call, by)
            await call.record(self.reports, state, response)
            answers = call.outcome(response)["results"]
            for n, result in zip(chunk, answers):
                results[n] = result
        return {"status": "Accepted", "results": [r or {} for r in results],
                "messages": len(chunks) + (asked is not None)}

    async def set_variables(self, station_id: str, *, variables: list[dict[str, Any]],
                            by: str = "") -> dict[str, Any]:
        """SetVariables (2.0.1 B05) of chosen variables (as :meth:`get_variables`, with
        ``value``), in messages of at most DeviceDataCtrlr.ItemsPerMessage and
        BytesPerMessage[SetVariables] (B05.FR.06). The outcome: ``results``, the station's
        SetVariableResult of each in order, ``messages``. Accepted values are stored (a password
        as nothing: the command service keeps its hash)."""
        items = _listed(variables, N_("name at least one variable"))
        data = []
        for item in items:
            value = item.get("value")
            if not isinstance(value, str) or len(value) > 1000:
                raise OperationError(N_("each variable needs a value of at most 1000 characters"))
            data.append({"attributeValue": value, **variable_data(item)})
        state, calls = await self._with_variables(station_id)
        limits, _ = await self._limits(station_id, state, calls, "SetVariables", len(data), by)
        chunks = per_message.split(data, limits, lambda chunk: ("SetVariables", {"setVariableData": chunk}))
        results: list[dict[str, Any]] = []
        for chunk in chunks:  # B05.FR.06
            call = calls.set_variables(data=chunk)
            answers = call.outcome(await self._send(station_id, call, by))["results"]
            for sent, result in zip(chunk, answers):
                results.append(result)
                key = f"{sent['component']['name']}.{sent['variable']['name']}"
                if result.get("attributeStatus") in ("Accepted", "RebootRequired") and not passwords.is_password_key(key):
                    await self.reports.set_variable_value(state, sent["component"], sent["variable"],
                                                          sent.get("attributeType", "Actual"), sent["attributeValue"])
        return {"status": "Accepted", "results": results, "messages": len(chunks)}

    async def _with_variables(self, station_id: str) -> tuple[Any, StationCalls]:
        state = await self.stations.state(station_id)
        if state is None:
            raise UnknownStation(station_id)
        return state, await calls_with(self.commands, station_id, "supports_variables",
                                       "GetVariables/SetVariables (OCPP 2.0.1 has; 1.6 has configuration keys)")

    async def _limits(self, station_id: str, state: Any, calls: StationCalls, message: str, count: int,
                      by: str) -> tuple[per_message.Limits, dict[str, Any] | None]:
        """DeviceDataCtrlr's limits of ``message``: stored, else ItemsPerMessage asked (when
        ``count`` items may need more than one message); with the GetVariableResult of the asking."""
        limits = await per_message.stored_limits(state.pk, "DeviceDataCtrlr", message)
        if limits.items is not None or count < 2:
            return limits, None
        call = calls.items_per_message(component="DeviceDataCtrlr", message=message)
        try:
            response = await self._send(station_id, call, by)
        except OcppError:  # a station without the variable may answer with a CALLERROR
            return limits, None
        await call.record(self.reports, state, response)
        outcome = call.outcome(response)
        return per_message.Limits(outcome["per_message"], limits.bytes), (outcome["results"] or [None])[0]

    async def rotate_password(self, station_id: str, *, by: str = "") -> dict[str, Any]:
        """Give the station a new random Basic-auth password (2.0.1 SetVariables of
        SecurityCtrlr.BasicAuthPassword, 1.6 ChangeConfiguration of AuthorizationKey). The command
        service stores its hash once the station accepts; the password itself is returned to
        nobody (only the station needs it)."""
        password = passwords.generate()
        calls = await self._calls(station_id)
        return await self._run(station_id, calls.rotate_password(password=password), by)

    async def rotate_passwords(self, station_ids: list[str], *, by: str = "",
                               concurrency: int = 16) -> dict[str, str]:
        """Rotate the password of each station (at most ``concurrency`` at once); the outcome per
        station: the station's answer (Accepted, RebootRequired, Rejected, ...), ``Offline``,
        ``Timeout``, ``NotFound`` or ``Error``."""
        gate = asyncio.Semaphore(concurrency)

        async def one(station_id: str) -> str:
            async with gate:
                try:
                    return str((await self.rotate_password(station_id, by=by))["status"])
                except UnknownStation:
                    return "NotFound"
                except StationOffline:
                    return "Offline"
                except CommandTimeout:
                    return "Timeout"
                except OcppError as exc:
                    log.warning("password rotation of %s failed: %s %s", station_id, exc.code, exc.description)
                    return "Error"

        unique = list(dict.fromkeys(station_ids))
        return dict(zip(unique, await asyncio.gather(*(one(s) for s in unique))))

    # -- firmware, logs ------------------------------------------------------------------------

    async def update_firmware(self, station_id: str, *, location: str, retrieve_at: datetime,
                              signing_certificate: str | None = None, signature: str | None = None,
                              retries: int | None = None, install_at: datetime | None = None,
                              by: str = "") -> dict[str, Any]:
        """Returns ``request_id`` too (None for a plain 1.6 UpdateFirmware, which has none), to
        match the station's later FirmwareStatusNotifications. ``install_at`` (L01
        ``installDateTime``) must not come before ``retrieve_at``."""
        if install_at is not None and install_at < retrieve_at:
            raise OperationError(N_("install_at must not be before retrieve_at"))
        calls = await self._calls(station_id)
        return await self._run(station_id, calls.update_firmware(
            location=location, retrieve_at=retrieve_at, signing_certificate=signing_certificate,
            signature=signature, retries=retries, install_at=install_at), by)

    async def get_logs(self, station_id: str, *, location: str, log_type: str = DIAGNOSTICS_LOG,
                       oldest: datetime | None = None, latest: datetime | None = None, retries: int | None = None,
                       retry_interval: int | None = None, by: str = "") -> dict[str, Any]:
        """GetLog uploading to ``location`` where the station takes it (2.0.1; 1.6 with the
        security extension, known from its configuration keys), else 1.6 GetDiagnostics; returns
        ``request_id`` (None for GetDiagnostics) and ``action``, the message sent. The station's
        LogStatusNotification / DiagnosticsStatusNotification land in its events and log status."""
        if log_type not in LOG_TYPES:
            raise OperationError(N_("log_type must be one of %(types)s"), types=", ".join(LOG_TYPES))
        if oldest is not None and latest is not None and latest <= oldest:
            raise OperationError(N_("latest must be after oldest"))
        if (retries is not None and not 0 <= retries <= 2**31 - 1) or (
                retry_interval is not None and not 0 <= retry_interval <= 2**31 - 1):
            raise OperationError(N_("retries and retry_interval are whole numbers from 0"))
        if "://" not in location or len(location) > 512:
            raise OperationError(N_("location must be a URL the station can reach, of at most 512 characters"))
        calls = await self._calls(station_id)
        call = calls.get_logs(location=location, log_type=log_type, oldest=oldest, latest=latest, retries=retries,
                              retry_interval=retry_interval,
                              get_log=await calls.takes_get_log(await self._station_pk(station_id)))
        return {**await self._run(station_id, call, by), "action": call.action}

    # -- smart charging, reservations -----------------------------------------------------------

    async def set_charging_profile(self, station_id: str, *, evse_id: int, profile: dict[str, Any],
                                   by: str = "") -> dict[str, Any]:
        """Send a profile already shaped for the station's version and record it with the answer."""
        calls = await self._calls(station_id)
        call = calls.set_charging_profile(evse_id=evse_id, profile=profile)
        pid, purpose = calls.profile_id(profile), profile["chargingProfilePurpose"]
        # Recorded before it leaves, as Pending: the station may hand the schedule to an ISO 15118
        # EV, whose NotifyEVChargingSchedule can come in before the station's answer does, and is
        # checked against it (K15.FR.12); the answer (or NotDelivered) replaces Pending.
        row = ChargingProfile(
            station=await self._station_pk(station_id), evse_id=evse_id, profile_id=pid,
            stack_level=profile["stackLevel"], purpose=purpose, kind=profile["chargingProfileKind"],
            transaction_id=str(profile["transactionId"]) if profile.get("transactionId") is not None else None,
            payload=profile, source="csms", status="Pending",
        )
        await row.save()
        status = "NotDelivered"
        try:
            response = await self._send(station_id, call, by)
            status = str(response["status"])[:16]
        finally:
            await ChargingProfile.update({ChargingProfile.status: status}).where(ChargingProfile.id == row.id)
        return call.outcome(response)

    async def reserve(self, station_id: str, *, id_token: str, expires_at: datetime, evse_id: int | None = None,
                      by: str = "") -> dict[str, Any]:
        """ReserveNow through :mod:`csms.core.services.reservations` (a 1.6 idTag is cut to 20
        characters here, as roaming tokens may be longer); the answer's status, the answer and the
        reservation id."""
        id_token = (await self._calls(station_id)).fit_id_token(id_token)
        try:
            made = await self._reservations().create(station_id, id_token=id_token, expires_at=expires_at,
                                                     evse_id=evse_id, by=by)
        except ReservationError as exc:
            raise OperationError(exc.text, **exc.params) from None
        return {**answered(made["response"]), "reservation_id": made["reservation_id"]}

    async def cancel_reservation(self, station_id: str, *, reservation_id: int, by: str = "") -> dict[str, Any]:
        await self._calls(station_id)  # UnknownStation, StationOffline before anything is sent
        done = await self._reservations().cancel(reservation_id, station_id=station_id, only_active=False, by=by)
        return answered(done["response"])

    def version(self, station_id: str) -> str:
        """The station's live protocol version ("1.6", "2.0.1" or "2.1"); ``StationOffline`` without one."""
        version = self.commands.live_version(station_id)
        return version


__all__ = ["Operations", "OperationError", "NotSupported"]
