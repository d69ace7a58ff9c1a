"""OCPP 1.6J outbound calls: connector N is EVSE N; id tags hold 20 characters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.core.ocpp.outbound.calls import Call, OperationError, StationCalls, accepted, answered_for, new_request_id
from csms.core.ocpp.validation import V16
from csms.core.services import passwords
from csms.core.timeutil import ocpp_ts

if TYPE_CHECKING:
    from datetime import datetime

    from csms.core.services.reports import ReportService
    from csms.core.services.stations import StationState

ID_TAG_LENGTH = 20  # CiString20Type
RESET_TYPES = {"soft": "Soft", "hard": "Hard", "on_idle": "Soft", "immediate": "Hard"}


def status_of(response: dict[str, Any]) -> dict[str, Any]:
    return {"status": response["status"], "response": response}


async def record_keys(reports: ReportService, state: StationState, response: dict[str, Any]) -> None:
    await reports.configuration(state, response.get("configurationKey") or [])


class Calls16(StationCalls):
    version = V16

    def fit_id_token(self, id_token: str) -> str:
        return id_token[:ID_TAG_LENGTH]

    def remote_start(self, *, id_token: str, evse_id: int | None, token_type: str) -> Call:
        payload: dict[str, Any] = {"idTag": self.fit_id_token(id_token)}
        if evse_id:
            payload["connectorId"] = evse_id
        return Call("RemoteStartTransaction", payload)

    def remote_stop(self, *, transaction_id: str) -> Call:
        try:
            tx = int(transaction_id)
        except ValueError:
            raise OperationError(f"1.6 transaction ids are integers, not {transaction_id!r}") from None
        return Call("RemoteStopTransaction", {"transactionId": tx})

    def reset(self, *, kind: str, evse_id: int | None) -> Call:
        reset_type = RESET_TYPES.get(kind)
        if reset_type is None:
            raise OperationError(f"unknown reset kind {kind!r}")
        return Call("Reset", {"type": reset_type})

    def unlock(self, *, evse_id: int, connector_id: int) -> Call:
        return Call("UnlockConnector", {"connectorId": evse_id})

    def change_availability(self, *, operative: bool, evse_id: int, connector_id: int | None) -> Call:
        return Call("ChangeAvailability", {"connectorId": evse_id, "type": "Operative" if operative else "Inoperative"})

    def trigger(self, *, message: str, evse_id: int | None) -> Call:
        payload: dict[str, Any] = {"requestedMessage": message}
        if evse_id:
            payload["connectorId"] = evse_id
        return Call("TriggerMessage", payload)

    def get_configuration(self, *, keys: list[str] | None) -> Call:
        return Call("GetConfiguration", {"key": keys} if keys else {}, outcome=accepted, record=record_keys)

    def set_configuration(self, *, key: str, value: str) -> Call:
        async def record(reports: ReportService, state: StationState, response: dict[str, Any]) -> None:
            await reports.configuration(state, [{"key": key, "value": value}])

        return Call("ChangeConfiguration", {"key": key, "value": value}, record=record)

    def rotate_password(self, *, password: str) -> Call:
        return Call("ChangeConfiguration", {"key": passwords.AUTHORIZATION_KEY,
                                            "value": passwords.authorization_key(password)}, outcome=status_of)

    def update_firmware(self, *, location: str, retrieve_at: datetime, signing_certificate: str | None,
                        signature: str | None, retries: int | None) -> Call:
        """SignedUpdateFirmware (Security extension) when signed, else a plain UpdateFirmware, which
        has no request id and no status."""
        request_id = new_request_id()
        if signing_certificate and signature:
            signed: dict[str, Any] = {"requestId": request_id, "firmware": {
                "location": location, "retrieveDateTime": ocpp_ts(retrieve_at),
                "signingCertificate": signing_certificate, "signature": signature}}
            if retries is not None:
                signed["retries"] = retries
            return Call("SignedUpdateFirmware", signed, outcome=answered_for(request_id))
        payload: dict[str, Any] = {"location": location, "retrieveDate": ocpp_ts(retrieve_at)}
        if retries is not None:
            payload["retries"] = retries
        return Call("UpdateFirmware", payload,
                    outcome=lambda response: {"status": "Accepted", "response": response, "request_id": None})

    def get_logs(self, *, location: str) -> Call:
        """GetDiagnostics: no request id; an answer without a file name means there is nothing to upload."""
        return Call("GetDiagnostics", {"location": location}, outcome=lambda response: {
            "status": "Accepted" if response.get("fileName") else "NoFile", "response": response, "request_id": None})

    def set_charging_profile(self, *, evse_id: int, profile: dict[str, Any]) -> Call:
        return Call("SetChargingProfile", {"connectorId": evse_id, "csChargingProfiles": profile})

    def profile_id(self, profile: dict[str, Any]) -> int:
        return profile["chargingProfileId"]

    def reservation_refusal(self, *, id_token: str, group_id_token: str | None,
                            connector_type: str | None) -> str | None:
        if connector_type:
            return "connector_type exists in OCPP 2.0.1 only"
        if len(id_token) > ID_TAG_LENGTH or len(group_id_token or "") > ID_TAG_LENGTH:
            return "OCPP 1.6 id tags are 20 characters at most"
        return None

    def reserve_now(self, *, reservation_id: int, id_token: str, token_type: str, group_id_token: str | None,
                    expires_at: datetime, evse_id: int | None, connector_type: str | None) -> Call:
        """Reserves connector ``evse_id`` (0: the station)."""
        payload: dict[str, Any] = {"connectorId": evse_id or 0, "expiryDate": ocpp_ts(expires_at),
                                   "idTag": id_token, "reservationId": reservation_id}
        if group_id_token:
            payload["parentIdTag"] = group_id_token
        return Call("ReserveNow", payload)
