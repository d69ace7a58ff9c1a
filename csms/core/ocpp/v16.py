"""OCPP 1.6J adapter: every station-initiated message of Core, Firmware Management, Local Auth
List, Reservation, Smart Charging, Remote Trigger and the Security extension.

1.6 connector N is modelled as EVSE N with connector 1; connector 0 is the station itself.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ocpp.routing import on
from ocpp.v16.enums import Action

from csms.core.domain import AuthorizationResult
from csms.core.ocpp.connection import StationConnection
from csms.core.ocpp.validation import NUMBER_LIMIT, V16, OcppError, error_code
from csms.core.services.authorization import STATUS_TO_16
from csms.core.services.data_transfer import vendor_answer
from csms.core.services.sessions import Sample
from csms.core.timeutil import ocpp_ts, parse_ts, utcnow

_UNIT_SCALE = {"kWh": (1000.0, "Wh"), "kW": (1000.0, "W"), "kvar": (1000.0, "var"), "kvarh": (1000.0, "varh"),
               "kVA": (1000.0, "VA")}
# A Raw sampled value is a decimal number as text; float() alone would also take NaN, inf and 1_0.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def sampled_number(text: str) -> float:
    """The number in a Raw sampled value; PropertyConstraintViolation when it is none, or not finite."""
    # ASCII without "_": float() takes exactly the decimals (nan and inf are refused below); other
    # text must be a decimal around its whitespace (no other digits) that float() takes as well.
    try:
        value = float(text) if text.isascii() and "_" not in text or _DECIMAL.fullmatch(text.strip()) \
            else math.nan
    except ValueError:  # e.g. "12\x1f": str.strip() takes \x1c-\x1f, float() does not
        value = math.nan
    if not abs(value) <= NUMBER_LIMIT:  # also NaN
        raise OcppError(error_code(V16, "property"),
                        f"sampledValue.value {text[:40]!r} is not a decimal number within ±{NUMBER_LIMIT:.0e}")
    return value


def id_tag_info(auth: AuthorizationResult) -> dict[str, Any]:
    info: dict[str, Any] = {"status": STATUS_TO_16.get(auth.status, "Invalid")}
    if auth.expires_at is not None:
        info["expiryDate"] = ocpp_ts(auth.expires_at)
    if auth.group_id:
        info["parentIdTag"] = auth.group_id[:20]
    return info


def samples_16(meter_values: list[dict[str, Any]]) -> tuple[list[Sample], list[dict[str, Any]]]:
    """Normalise 1.6 meter values; signed data is returned apart. A Raw value that is not a finite
    decimal number is refused (PropertyConstraintViolation)."""
    samples, signed = [], []
    for mv in meter_values:
        ts = parse_ts(mv["timestamp"]) or utcnow()
        for sv in mv["sampledValue"]:
            measurand = sv.get("measurand", "Energy.Active.Import.Register")
            unit = sv.get("unit", "Wh" if measurand.startswith("Energy") else "")
            if sv.get("format") == "SignedData":
                signed.append({"timestamp": mv["timestamp"], **sv})
                continue
            text = sv["value"]
            if text.isascii() and "_" not in text:  # the common case of sampled_number, inline
                try:
                    value = float(text)
                except ValueError:
                    value = math.nan
                if not -NUMBER_LIMIT <= value <= NUMBER_LIMIT:  # also NaN
                    value = sampled_number(text)  # raises with the message
            else:
                value = sampled_number(text)
            scale, unit = _UNIT_SCALE.get(unit, (1.0, unit))
            samples.append(Sample(ts, measurand, value * scale, sv.get("phase", ""), unit,
                                  sv.get("context", "Sample.Periodic"), sv.get("location", "")))
    return samples, signed


class StationConnection16(StationConnection):
    version = V16
    subprotocol = "ocpp1.6"

    @on(Action.boot_notification)
    async def on_boot_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        status = await self.core.stations.boot(
            self.station_id, vendor=p["chargePointVendor"], model=p["chargePointModel"],
            serial_number=p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber", ""),
            firmware_version=p.get("firmwareVersion", ""), iccid=p.get("iccid", ""), imsi=p.get("imsi", ""),
            meter_type=p.get("meterType", ""), meter_serial_number=p.get("meterSerialNumber", ""),
            triggered=self.answering_trigger,
        )
        settings = self.core.settings
        interval = settings.heartbeat_interval if status == "Accepted" else settings.pending_retry_interval
        return {"status": status, "currentTime": ocpp_ts(), "interval": interval}

    @on(Action.heartbeat)
    async def on_heartbeat(self, p: dict[str, Any]) -> dict[str, Any]:
        self.core.stations.heartbeat(self.state)
        return {"currentTime": ocpp_ts()}

    @on(Action.status_notification)
    async def on_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.stations.status(
            self.state, evse_id=p["connectorId"], connector_id=1 if p["connectorId"] else 0, status=p["status"],
            error_code=p["errorCode"], info=p.get("info", ""), vendor_error_code=p.get("vendorErrorCode", ""),
            timestamp=parse_ts(p.get("timestamp")),
        )
        return {}

    @on(Action.authorize)
    async def on_authorize(self, p: dict[str, Any]) -> dict[str, Any]:
        auth = await self.core.auth.authorize(self.station_id, p["idTag"], "", purpose="authorize")
        return {"idTagInfo": id_tag_info(auth)}

    @on(Action.start_transaction)
    async def on_start_transaction(self, p: dict[str, Any]) -> dict[str, Any]:
        tx_id, auth = await self.core.sessions.start_16(
            self.state, connector_id=p["connectorId"], id_tag=p["idTag"], meter_start_wh=float(p["meterStart"]),
            timestamp=parse_ts(p["timestamp"]) or utcnow(), reservation_id=p.get("reservationId"),
        )
        return {"transactionId": tx_id, "idTagInfo": id_tag_info(auth)}

    @on(Action.stop_transaction)
    async def on_stop_transaction(self, p: dict[str, Any]) -> dict[str, Any]:
        samples, signed = samples_16(p.get("transactionData") or [])
        auth = await self.core.sessions.stop_16(
            self.state, transaction_id=p["transactionId"], meter_stop_wh=float(p["meterStop"]),
            timestamp=parse_ts(p["timestamp"]) or utcnow(), id_tag=p.get("idTag"), reason=p.get("reason", "Local"),
            samples=samples,
        )
        if signed:
            await self.core.reports.record(self.state, "signed_meter_values", "StopTransaction",
                                           details={"transaction_id": p["transactionId"], "values": signed})
        return {"idTagInfo": id_tag_info(auth)} if auth is not None else {}

    @on(Action.meter_values)
    async def on_meter_values(self, p: dict[str, Any]) -> dict[str, Any]:
        samples, signed = samples_16(p["meterValue"])
        tx = p.get("transactionId")
        await self.core.sessions.meter_values(
            self.state, evse_id=p["connectorId"], transaction_id=str(tx) if tx is not None else None, samples=samples,
        )
        if signed:
            await self.core.reports.record(self.state, "signed_meter_values", "MeterValues",
                                           evse_id=p["connectorId"], details={"transaction_id": tx, "values": signed})
        return {}

    @on(Action.data_transfer)
    async def on_data_transfer(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.record(self.state, "data_transfer", p["vendorId"][:64],
                                       summary=p.get("messageId", ""), details=p)
        return await vendor_answer(self.station_id, self.version, p["vendorId"], p.get("messageId"), p.get("data"))

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.log_status(self.state, p["status"], kind="diagnostics")
        return {}

    @on(Action.firmware_status_notification)
    async def on_firmware_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.firmware_status(self.state, p["status"])
        return {}

    @on(Action.signed_firmware_status_notification)
    async def on_signed_firmware_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.firmware_status(self.state, p["status"], request_id=p.get("requestId"), signed=True)
        return {}

    @on(Action.log_status_notification)
    async def on_log_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.log_status(self.state, p["status"], request_id=p.get("requestId"))
        return {}

    @on(Action.security_event_notification)
    async def on_security_event_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.record(self.state, "security", p["type"], summary=p.get("techInfo", "")[:255],
                                       details=p, timestamp=parse_ts(p["timestamp"]))
        return {}

    @on(Action.sign_certificate)
    async def on_sign_certificate(self, p: dict[str, Any]) -> dict[str, Any]:
        # The CSR is checked now; an accepted one is signed (issue_certificate hook, the built-in
        # CA last) and sent back in a CertificateSigned after this answer.
        decided = await self.core.certificates.sign_request(self.state, p["csr"], "ChargingStationCertificate")
        return {"status": decided["status"]}
