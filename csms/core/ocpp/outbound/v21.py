"""OCPP 2.1 outbound calls: 2.0.1's (every message the CSMS sends is unchanged in 2.1, with
optional additions), validated against the 2.1 schemas before they go out. What 2.1 widens is
taken: OEM root certificates, and charging profiles with its V2X fields (``setpoint``,
``dischargeLimit``, ``operationMode`` of a schedule period) pass through SetChargingProfile.
New: the tariffs a station calculates costs with (SetDefaultTariff, GetTariffs, ClearTariffs,
ChangeTransactionTariff), DER controls (SetDERControl, GetDERControl, ClearDERControl) and
RequestBatterySwap; and AFRRSignal, UpdateDynamicSchedule, UsePriorityCharging,
NotifyAllowedEnergyTransfer and NotifyWebPaymentStarted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.core.ocpp.outbound.calls import Call, accepted, answered, answered_for
from csms.core.ocpp.outbound.v201 import GET_CERTIFICATE_TYPES, INSTALL_CERTIFICATE_TYPES, Calls201
from csms.core.ocpp.validation import V21
from csms.core.timeutil import ocpp_ts

if TYPE_CHECKING:
    from datetime import datetime


class Calls21(Calls201):
    version = V21
    installable_certificate_types = INSTALL_CERTIFICATE_TYPES | {"OEMRootCertificate"}  # InstallCertificateUseEnumType
    listable_certificate_types = GET_CERTIFICATE_TYPES | {"OEMRootCertificate"}  # GetCertificateIdUseEnumType
    supports_tariffs = True
    supports_der = True
    supports_energy_controls = True

    def set_default_tariff(self, *, evse_id: int, tariff: dict[str, Any]) -> Call:
        return Call("SetDefaultTariff", {"evseId": evse_id, "tariff": tariff})

    def get_tariffs(self, *, evse_id: int) -> Call:
        return Call("GetTariffs", {"evseId": evse_id},
                    outcome=lambda r: {**answered(r), "assignments": r.get("tariffAssignments") or []})

    def clear_tariffs(self, *, tariff_ids: list[str] | None, evse_id: int | None) -> Call:
        payload: dict[str, Any] = {}
        if tariff_ids:
            payload["tariffIds"] = tariff_ids
        if evse_id is not None:
            payload["evseId"] = evse_id
        return Call("ClearTariffs", payload, outcome=lambda r: {
            "status": "Accepted" if all(x["status"] != "Rejected" for x in r["clearTariffsResult"]) else "Rejected",
            "response": r, "results": r["clearTariffsResult"]})

    def change_transaction_tariff(self, *, transaction_id: str, tariff: dict[str, Any]) -> Call:
        return Call("ChangeTransactionTariff", {"transactionId": transaction_id, "tariff": tariff})

    def set_der_control(self, *, control_id: str, control_type: str, is_default: bool, field: str,
                        control: dict[str, Any]) -> Call:
        return Call("SetDERControl", {"isDefault": is_default, "controlId": control_id, "controlType": control_type,
                                      field: control},
                    outcome=lambda r: {**answered(r), "superseded_ids": r.get("supersededIds") or []})

    def get_der_control(self, *, request_id: int, control_type: str | None, control_id: str | None,
                        is_default: bool | None) -> Call:
        payload: dict[str, Any] = {"requestId": request_id}
        for key, value in (("controlType", control_type), ("controlId", control_id), ("isDefault", is_default)):
            if value is not None:
                payload[key] = value
        return Call("GetDERControl", payload, outcome=answered_for(request_id))

    def clear_der_control(self, *, is_default: bool, control_type: str | None, control_id: str | None) -> Call:
        payload: dict[str, Any] = {"isDefault": is_default}
        if control_type is not None:
            payload["controlType"] = control_type
        if control_id is not None:
            payload["controlId"] = control_id
        return Call("ClearDERControl", payload)

    def request_battery_swap(self, *, request_id: int, id_token: str, token_type: str) -> Call:
        return Call("RequestBatterySwap", {"requestId": request_id, "idToken": {"idToken": id_token, "type": token_type}},
                    outcome=answered_for(request_id))

    def afrr_signal(self, *, timestamp: datetime, signal: int) -> Call:
        return Call("AFRRSignal", {"timestamp": ocpp_ts(timestamp), "signal": signal})

    def update_dynamic_schedule(self, *, profile_id: int, update: dict[str, Any]) -> Call:
        return Call("UpdateDynamicSchedule", {"chargingProfileId": profile_id, "scheduleUpdate": update})

    def use_priority_charging(self, *, transaction_id: str, activate: bool) -> Call:
        return Call("UsePriorityCharging", {"transactionId": transaction_id, "activate": activate})

    def notify_allowed_energy_transfer(self, *, transaction_id: str, modes: list[str]) -> Call:
        return Call("NotifyAllowedEnergyTransfer", {"transactionId": transaction_id, "allowedEnergyTransfer": modes})

    def notify_web_payment_started(self, *, evse_id: int, timeout: int) -> Call:
        return Call("NotifyWebPaymentStarted", {"evseId": evse_id, "timeout": timeout}, outcome=accepted)

    def get_periodic_event_streams(self) -> Call:
        def outcome(response: dict[str, Any]) -> dict[str, Any]:
            return {"status": "Accepted", "response": response, "streams": [
                {"id": s["id"], "monitor_id": s["variableMonitoringId"], "interval": s["params"].get("interval"),
                 "values": s["params"].get("values")} for s in response.get("constantStreamData") or []]}

        return Call("GetPeriodicEventStream", {}, outcome=outcome)

    def adjust_periodic_event_stream(self, *, stream_id: int, interval: int | None, values: int | None) -> Call:
        params = {k: v for k, v in (("interval", interval), ("values", values)) if v is not None}
        return Call("AdjustPeriodicEventStream", {"id": stream_id, "params": params})
