"""Version-neutral operations on stations, built on the command service.

Each operation builds the payload for the station's protocol version, sends it and returns
``{"status": ..., "response": <the station's answer>}``; answers that carry data (configuration,
variables, profiles, reservations) are stored on the way.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime
from typing import TYPE_CHECKING, Any

from csms.core.ocpp.validation import V16, V201, OcppError
from csms.core.services import passwords
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.services.reservations import ReservationError
from csms.core.tables import ChargingProfile, ChargingSession, Station
from csms.core.timeutil import ocpp_ts

if TYPE_CHECKING:
    from csms.core.runtime import Core

log = logging.getLogger("csms.operations")


class OperationError(ValueError):
    """The operation cannot be expressed for this station (bad arguments or state)."""


class NotSupported(OperationError):
    """The station's protocol version has no such operation (display messages on OCPP 1.6)."""


def _result(response: dict[str, Any]) -> dict[str, Any]:
    return {"status": response.get("status", "Accepted"), "response": response}


class Operations:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def _version(self, station_id: str) -> str:
        """The station's live protocol version; ``UnknownStation`` before ``StationOffline``."""
        try:
            return self.version(station_id)
        except StationOffline:
            if not await Station.exists().where(Station.station_id == station_id):
                raise UnknownStation(station_id) from None
            raise

    async def _send(self, station_id: str, action: str, payload: dict[str, Any], by: str) -> dict[str, Any]:
        return await self.core.commands.send(station_id, action, payload, requested_by=by)

    async def _station_pk(self, station_id: str) -> int:
        row = await Station.select(Station.id).where(Station.station_id == station_id).first()
        if row is None:
            raise OperationError(f"unknown station {station_id!r}")
        return row["id"]

    async def remote_start(self, station_id: str, *, id_token: str, evse_id: int | None = None,
                           token_type: str = "Central", by: str = "") -> dict[str, Any]:
        if await self._version(station_id) == V16:
            payload: dict[str, Any] = {"idTag": id_token[:20]}
            if evse_id:
                payload["connectorId"] = evse_id
            return _result(await self._send(station_id, "RemoteStartTransaction", payload, by))
        payload = {"idToken": {"idToken": id_token, "type": token_type}, "remoteStartId": random.randint(1, 2**31 - 1)}
        if evse_id:
            payload["evseId"] = evse_id
        return _result(await self._send(station_id, "RequestStartTransaction", payload, by))

    async def remote_stop(self, station_id: str, *, transaction_id: str | None = None, session_id: int | None = None,
                          by: str = "") -> dict[str, Any]:
        if transaction_id is None:
            row = await ChargingSession.select(ChargingSession.transaction_id).where(
                ChargingSession.id == session_id).first()
            if row is None:
                raise OperationError(f"unknown session {session_id}")
            transaction_id = row["transaction_id"]
        if await self._version(station_id) == V16:
            try:
                tx = int(transaction_id)
            except ValueError:
                raise OperationError(f"1.6 transaction ids are integers, not {transaction_id!r}") from None
            return _result(await self._send(station_id, "RemoteStopTransaction", {"transactionId": tx}, by))
        return _result(await self._send(station_id, "RequestStopTransaction", {"transactionId": transaction_id}, by))

    async def reset(self, station_id: str, *, kind: str = "soft", evse_id: int | None = None,
                    by: str = "") -> dict[str, Any]:
        """``kind``: soft|hard (1.6), or immediate|on_idle (2.0.1); soft/hard map to OnIdle/Immediate."""
        if await self._version(station_id) == V16:
            type16 = {"soft": "Soft", "hard": "Hard", "on_idle": "Soft", "immediate": "Hard"}.get(kind)
            if type16 is None:
                raise OperationError(f"unknown reset kind {kind!r}")
            return _result(await self._send(station_id, "Reset", {"type": type16}, by))
        type201 = {"soft": "OnIdle", "on_idle": "OnIdle", "hard": "Immediate", "immediate": "Immediate"}.get(kind)
        if type201 is None:
            raise OperationError(f"unknown reset kind {kind!r}")
        payload: dict[str, Any] = {"type": type201}
        if evse_id:
            payload["evseId"] = evse_id
        return _result(await self._send(station_id, "Reset", payload, by))

    async def unlock(self, station_id: str, *, evse_id: int, connector_id: int = 1, by: str = "") -> dict[str, Any]:
        if await self._version(station_id) == V16:
            return _result(await self._send(station_id, "UnlockConnector", {"connectorId": evse_id}, by))
        return _result(await self._send(station_id, "UnlockConnector",
                                        {"evseId": evse_id, "connectorId": connector_id}, by))

    async def change_availability(self, station_id: str, *, operative: bool, evse_id: int = 0,
                                  connector_id: int | None = None, by: str = "") -> dict[str, Any]:
        if await self._version(station_id) == V16:
            payload: dict[str, Any] = {"connectorId": evse_id, "type": "Operative" if operative else "Inoperative"}
            return _result(await self._send(station_id, "ChangeAvailability", payload, by))
        payload = {"operationalStatus": "Operative" if operative else "Inoperative"}
        if evse_id:
            payload["evse"] = {"id": evse_id, **({"connectorId": connector_id} if connector_id else {})}
        return _result(await self._send(station_id, "ChangeAvailability", payload, by))

    async def clear_cache(self, station_id: str, *, by: str = "") -> dict[str, Any]:
        await self._version(station_id)
        return _result(await self._send(station_id, "ClearCache", {}, by))

    async def trigger(self, station_id: str, *, message: str, evse_id: int | None = None,
                      by: str = "") -> dict[str, Any]:
        payload: dict[str, Any] = {"requestedMessage": message}
        if await self._version(station_id) == V16:
            if evse_id:
                payload["connectorId"] = evse_id
        elif evse_id:
            payload["evse"] = {"id": evse_id}
        return _result(await self._send(station_id, "TriggerMessage", payload, by))

    # -- configuration ------------------------------------------------------------------------

    @staticmethod
    def split_key(key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """2.0.1 keys are written ``Component[.instance]/Variable[.instance]`` or ``Component.Variable``."""
        if "/" in key:
            comp, var = key.split("/", 1)
        elif "." in key:
            comp, var = key.split(".", 1)
        else:
            raise OperationError(f"2.0.1 configuration keys are 'Component.Variable', not {key!r}")
        component: dict[str, Any] = {"name": comp.split(".")[0]}
        if "/" in key and "." in comp:
            component["instance"] = comp.split(".", 1)[1]
        variable: dict[str, Any] = {"name": var.split(".")[0] if "/" in key else var}
        if "/" in key and "." in var:
            variable["instance"] = var.split(".", 1)[1]
        return component, variable

    async def get_configuration(self, station_id: str, *, keys: list[str] | None = None,
                                by: str = "") -> dict[str, Any]:
        """Read configuration from the station (1.6 keys or 2.0.1 variables) and store it."""
        state = await self.core.stations.state(station_id)
        if state is None:
            raise UnknownStation(station_id)
        if await self._version(station_id) == V16:
            payload = {"key": keys} if keys else {}
            response = await self._send(station_id, "GetConfiguration", payload, by)
            await self.core.reports.configuration(state, response.get("configurationKey") or [])
            return {"status": "Accepted", "response": response}
        if not keys:
            request_id = random.randint(1, 2**31 - 1)
            response = await self._send(station_id, "GetBaseReport",
                                        {"requestId": request_id, "reportBase": "FullInventory"}, by)
            return _result(response)
        data = []
        for key in keys:
            component, variable = self.split_key(key)
            data.append({"component": component, "variable": variable})
        response = await self._send(station_id, "GetVariables", {"getVariableData": data}, by)
        report = [{"component": r["component"], "variable": r["variable"],
                   "variableAttribute": [{"type": r.get("attributeType", "Actual"), "value": r.get("attributeValue")}]}
                  for r in response["getVariableResult"] if r["attributeStatus"] == "Accepted"]
        await self.core.reports.device_report(state, report)
        return {"status": "Accepted", "response": response}

    async def set_configuration(self, station_id: str, *, key: str, value: str, by: str = "") -> dict[str, Any]:
        state = await self.core.stations.state(station_id)
        if state is None:
            raise UnknownStation(station_id)
        if await self._version(station_id) == V16:
            response = await self._send(station_id, "ChangeConfiguration", {"key": key, "value": value}, by)
            if response["status"] in ("Accepted", "RebootRequired") and not passwords.is_password_key(key):
                await self.core.reports.configuration(state, [{"key": key, "value": value}])
            return _result(response)
        component, variable = self.split_key(key)
        response = await self._send(station_id, "SetVariables", {"setVariableData": [
            {"attributeValue": value, "component": component, "variable": variable}]}, by)
        result = response["setVariableResult"][0]
        if result["attributeStatus"] in ("Accepted", "RebootRequired") and not passwords.is_password_key(key):
            await self.core.reports.set_variable_value(state, component, variable, "Actual", value)
        return {"status": result["attributeStatus"], "response": response}

    async def rotate_password(self, station_id: str, *, by: str = "") -> dict[str, Any]:
        """Give the station a new random Basic-auth password (2.0.1 SetVariables of
        SecurityCtrlr.BasicAuthPassword, 1.6 ChangeConfiguration of AuthorizationKey). The command
        service stores its hash once the station accepts; the password itself is returned to
        nobody (only the station needs it)."""
        password = passwords.generate()
        if await self._version(station_id) == V16:
            response = await self._send(station_id, "ChangeConfiguration", {
                "key": passwords.AUTHORIZATION_KEY, "value": passwords.authorization_key(password)}, by)
            return {"status": response["status"], "response": response}
        response = await self._send(station_id, "SetVariables", {"setVariableData": [{
            "attributeValue": password, "component": {"name": passwords.SECURITY_COMPONENT},
            "variable": {"name": passwords.PASSWORD_VARIABLE}}]}, by)
        result = response["setVariableResult"][0]
        return {"status": result["attributeStatus"], "response": response}

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
                              retries: int | None = None, by: str = "") -> dict[str, Any]:
        """Returns ``request_id`` too (None for a plain 1.6 UpdateFirmware, which has none), to
        match the station's later FirmwareStatusNotifications."""
        request_id = random.randint(1, 2**31 - 1)
        if await self._version(station_id) == V16:
            if signing_certificate and signature:
                signed = {"requestId": request_id, "firmware": {
                    "location": location, "retrieveDateTime": ocpp_ts(retrieve_at),
                    "signingCertificate": signing_certificate, "signature": signature}}
                if retries is not None:
                    signed["retries"] = retries
                response = await self._send(station_id, "SignedUpdateFirmware", signed, by)
                return {**_result(response), "request_id": request_id}
            payload: dict[str, Any] = {"location": location, "retrieveDate": ocpp_ts(retrieve_at)}
            if retries is not None:
                payload["retries"] = retries
            response = await self._send(station_id, "UpdateFirmware", payload, by)
            return {"status": "Accepted", "response": response, "request_id": None}
        firmware: dict[str, Any] = {"location": location, "retrieveDateTime": ocpp_ts(retrieve_at)}
        if signing_certificate:
            firmware["signingCertificate"] = signing_certificate
        if signature:
            firmware["signature"] = signature
        payload = {"requestId": request_id, "firmware": firmware}
        if retries is not None:
            payload["retries"] = retries
        return {**_result(await self._send(station_id, "UpdateFirmware", payload, by)), "request_id": request_id}

    async def get_logs(self, station_id: str, *, location: str, by: str = "") -> dict[str, Any]:
        """1.6 GetDiagnostics / 2.0.1 GetLog (DiagnosticsLog) uploading to ``location``; returns
        ``request_id`` (None for 1.6 GetDiagnostics)."""
        if await self._version(station_id) == V16:
            response = await self._send(station_id, "GetDiagnostics", {"location": location}, by)
            return {"status": "Accepted" if response.get("fileName") else "NoFile", "response": response,
                    "request_id": None}
        request_id = random.randint(1, 2**31 - 1)
        payload = {"logType": "DiagnosticsLog", "requestId": request_id, "log": {"remoteLocation": location}}
        return {**_result(await self._send(station_id, "GetLog", payload, by)), "request_id": request_id}

    # -- smart charging, reservations -----------------------------------------------------------

    async def set_charging_profile(self, station_id: str, *, evse_id: int, profile: dict[str, Any],
                                   by: str = "") -> dict[str, Any]:
        """Send a profile already shaped for the station's version and record it with the answer."""
        version = await self._version(station_id)
        if version == V16:
            payload = {"connectorId": evse_id, "csChargingProfiles": profile}
            pid, purpose = profile["chargingProfileId"], profile["chargingProfilePurpose"]
        else:
            payload = {"evseId": evse_id, "chargingProfile": profile}
            pid, purpose = profile["id"], profile["chargingProfilePurpose"]
        response = await self._send(station_id, "SetChargingProfile", payload, by)
        await ChargingProfile(
            station=await self._station_pk(station_id), evse_id=evse_id, profile_id=pid,
            stack_level=profile["stackLevel"], purpose=purpose, kind=profile["chargingProfileKind"],
            transaction_id=str(profile["transactionId"]) if profile.get("transactionId") is not None else None,
            payload=profile, source="csms", status=response["status"],
        ).save()
        return _result(response)

    async def reserve(self, station_id: str, *, id_token: str, expires_at: datetime, evse_id: int | None = None,
                      by: str = "") -> dict[str, Any]:
        """ReserveNow through :mod:`csms.core.services.reservations` (a 1.6 idTag is cut to 20
        characters here, as roaming tokens may be longer); the answer's status, the answer and the
        reservation id."""
        if await self._version(station_id) == V16:
            id_token = id_token[:20]
        try:
            made = await self.core.reservations.create(station_id, id_token=id_token, expires_at=expires_at,
                                                       evse_id=evse_id, by=by)
        except ReservationError as exc:
            raise OperationError(str(exc)) from None
        return {**_result(made["response"]), "reservation_id": made["reservation_id"]}

    async def cancel_reservation(self, station_id: str, *, reservation_id: int, by: str = "") -> dict[str, Any]:
        await self._version(station_id)
        done = await self.core.reservations.cancel(reservation_id, station_id=station_id, only_active=False, by=by)
        return _result(done["response"])

    def version(self, station_id: str) -> str:
        """The station's live protocol version ("1.6" or "2.0.1"); ``StationOffline`` without one."""
        version = self.core.commands.version_of(station_id)
        if version is None:
            raise StationOffline(station_id)
        return version


__all__ = ["Operations", "OperationError", "NotSupported", "V16", "V201"]
