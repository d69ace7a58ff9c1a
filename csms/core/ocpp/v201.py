"""OCPP 2.0.1 adapter: every message a charging station sends to the CSMS."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201.enums import Action

from csms.core.domain import AuthorizationResult
from csms.core.ocpp.connection import StationConnection
from csms.core.ocpp.validation import NUMBER_LIMIT, V201, OcppError, error_code
from csms.core.services import ev_schedules
from csms.core.services.data_transfer import vendor_answer
from csms.core.services.sessions import Sample
from csms.core.services.smart_charging import external_limits
from csms.core.timeutil import ocpp_ts, parse_ts, utcnow
from csms.plugins import hook_impls

_UNIT_SCALE = {"kWh": (1000.0, "Wh"), "kW": (1000.0, "W"), "kvar": (1000.0, "var"), "kvarh": (1000.0, "varh"),
               "kVA": (1000.0, "VA")}
MAX_MULTIPLIER = 9  # unitOfMeasure.multiplier: a power of ten; beyond ±9 it is no meter's unit
_POWERS = {m: 10.0 ** m for m in range(-MAX_MULTIPLIER, MAX_MULTIPLIER + 1)}


def id_token_info(auth: AuthorizationResult) -> dict[str, Any]:
    info: dict[str, Any] = {"status": auth.status}
    if auth.expires_at is not None:
        info["cacheExpiryDateTime"] = ocpp_ts(auth.expires_at)
    if auth.group_id:
        info["groupIdToken"] = {"idToken": auth.group_id[:36], "type": "Central"}
    return info


def samples_201(meter_values: list[dict[str, Any]]) -> list[Sample]:
    samples = []
    for mv in meter_values:
        ts = parse_ts(mv["timestamp"]) or utcnow()
        for sv in mv["sampledValue"]:
            measurand = sv.get("measurand", "Energy.Active.Import.Register")
            uom = sv.get("unitOfMeasure") or {}
            unit = uom.get("unit", "Wh" if measurand.startswith("Energy") else "")
            power = _POWERS.get(uom.get("multiplier", 0))
            if power is None:
                raise OcppError(error_code(V201, "property"),
                                f"unitOfMeasure.multiplier must be between -{MAX_MULTIPLIER} and {MAX_MULTIPLIER}")
            scale, unit = _UNIT_SCALE.get(unit, (1.0, unit))
            value = sv["value"] * power * scale
            if not abs(value) <= NUMBER_LIMIT:
                raise OcppError(error_code(V201, "property"),
                                f"sampledValue.value {sv['value']} x 10^{uom.get('multiplier', 0)} {unit} is out of range")
            samples.append(Sample(ts, measurand, float(value), sv.get("phase", ""), unit,
                                  sv.get("context", "Sample.Periodic"), sv.get("location", "")))
    return samples


def signed_201(meter_values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sampled values that carry a ``signedMeterValue`` (with their meter value's timestamp);
    their plain values are stored as samples too."""
    return [{"timestamp": mv["timestamp"], **sv} for mv in meter_values for sv in mv["sampledValue"]
            if sv.get("signedMeterValue")]


class StationConnection201(StationConnection):
    version = V201
    subprotocol = "ocpp2.0.1"

    @on(Action.boot_notification)
    async def on_boot_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        cs = p["chargingStation"]
        modem = cs.get("modem") or {}
        status = await self.core.stations.boot(
            self.station_id, vendor=cs["vendorName"], model=cs["model"], serial_number=cs.get("serialNumber", ""),
            firmware_version=cs.get("firmwareVersion", ""), iccid=modem.get("iccid", ""), imsi=modem.get("imsi", ""),
            reason=p["reason"], triggered=self.answering_trigger,
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
        status = p["connectorStatus"]
        await self.core.stations.status(
            self.state, evse_id=p["evseId"], connector_id=p["connectorId"], status=status,
            error_code="NoError", timestamp=parse_ts(p["timestamp"]),
        )
        return {}

    @on(Action.authorize)
    async def on_authorize(self, p: dict[str, Any]) -> dict[str, Any]:
        token = p["idToken"]
        auth = await self.core.auth.authorize(self.station_id, token["idToken"], token["type"], purpose="authorize")
        auth, certificate_status = await self.core.auth.contract(  # C07: Plug & Charge
            self.station_id, auth, id_token=token["idToken"], token_type=token["type"],
            certificate=p.get("certificate"), hash_data=p.get("iso15118CertificateHashData"))
        info = id_token_info(auth)
        if auth.accepted:  # I01: the driver's tariff on the station's display
            message = await self.core.tariff_messages.personal(self.station_id, id_token=token["idToken"])
            if message is not None:
                info["personalMessage"] = message
        answer: dict[str, Any] = {"idTokenInfo": info}
        if certificate_status is not None:
            answer["certificateStatus"] = certificate_status
        return answer

    @on(Action.transaction_event)
    async def on_transaction_event(self, p: dict[str, Any]) -> dict[str, Any]:
        info = p["transactionInfo"]
        evse = p.get("evse") or {}
        token = p.get("idToken") or {}
        auth = await self.core.sessions.transaction_event(
            self.state, event_type=p["eventType"], transaction_id=info["transactionId"], seq_no=p["seqNo"],
            timestamp=parse_ts(p["timestamp"]) or utcnow(), trigger_reason=p["triggerReason"],
            evse_id=evse.get("id"), connector_id=evse.get("connectorId"), id_token=token.get("idToken"),
            token_type=token.get("type", ""), charging_state=info.get("chargingState"),
            stopped_reason=info.get("stoppedReason"), remote_start_id=info.get("remoteStartId"),
            reservation_id=p.get("reservationId"), offline=bool(p.get("offline")),
            samples=samples_201(p.get("meterValue") or []),
        )
        signed = signed_201(p.get("meterValue") or [])
        if signed:  # kept for the session's signed readings (e.g. a roaming CDR's signed_data)
            await self.core.reports.record(self.state, "signed_meter_values", "TransactionEvent", evse_id=evse.get("id"),
                                           details={"transaction_id": info["transactionId"], "values": signed})
        answer: dict[str, Any] = {"idTokenInfo": id_token_info(auth)} if auth is not None else {}
        await self._tariff_text(p, answer, auth)
        if p["eventType"] == "Ended":
            cost = await self.core.settlement.final_cost(self.state.pk, info["transactionId"])
            if cost is not None:
                answer["totalCost"] = float(cost.total_incl_vat)
        return answer

    async def _tariff_text(self, p: dict[str, Any], answer: dict[str, Any], auth: AuthorizationResult | None) -> None:
        """The driver's tariff text in a TransactionEvent answer: ``personalMessage`` with an
        accepted token (I01), ``updatedPersonalMessage`` when it changed during the transaction (I06)."""
        transaction_id = p["transactionInfo"]["transactionId"]
        if p["eventType"] == "Ended":
            self.core.tariff_messages.ended(self.station_id, transaction_id)
            return
        evse_id = (p.get("evse") or {}).get("id")
        token = (p.get("idToken") or {}).get("idToken")
        if auth is not None and auth.accepted and token:
            message = await self.core.tariff_messages.personal(self.station_id, id_token=token, evse_id=evse_id,
                                                               transaction_id=transaction_id)
            if message is not None:
                answer["idTokenInfo"]["personalMessage"] = message
            return
        live = self.core.sessions.find(self.station_id, transaction_id)
        if live is not None and live.id_token:
            message = await self.core.tariff_messages.updated(self.station_id, transaction_id=transaction_id,
                                                              id_token=live.id_token, evse_id=live.evse_id)
            if message is not None:
                answer["updatedPersonalMessage"] = message

    @on(Action.meter_values)
    async def on_meter_values(self, p: dict[str, Any]) -> dict[str, Any]:
        evse_id = p["evseId"]
        session = self.core.sessions.on_evse(self.station_id, evse_id) if evse_id else None
        await self.core.sessions.meter_values(
            self.state, evse_id=evse_id, transaction_id=session.transaction_id if session else None,
            samples=samples_201(p["meterValue"]),
        )
        signed = signed_201(p["meterValue"])
        if signed:
            await self.core.reports.record(self.state, "signed_meter_values", "MeterValues", evse_id=evse_id,
                                           details={"transaction_id": session.transaction_id if session else None,
                                                    "values": signed})
        return {}

    @on(Action.notify_report)
    async def on_notify_report(self, p: dict[str, Any]) -> dict[str, Any]:
        count = await self.core.reports.device_report(self.state, p.get("reportData") or [])
        await self.core.reports.record(self.state, "report", "NotifyReport",
                                       summary=f"report {p['requestId']} part {p['seqNo']}: {count} attributes",
                                       details={"request_id": p["requestId"], "seq_no": p["seqNo"],
                                                "tbc": p.get("tbc", False)})
        return {}

    @on(Action.notify_event)
    async def on_notify_event(self, p: dict[str, Any]) -> dict[str, Any]:
        stamps = [parse_ts(item["timestamp"]) for item in p["eventData"]]  # all refused before any is stored
        for item, timestamp in zip(p["eventData"], stamps):
            comp, var = item["component"], item["variable"]
            evse = comp.get("evse") or {}
            await self.core.reports.record(
                self.state, "event", f"{comp['name']}.{var['name']}",
                summary=f"{item['trigger']} {item['actualValue']}"[:255], details=item,
                evse_id=evse.get("id"), connector_id=evse.get("connectorId"), timestamp=timestamp,
            )
        return {}

    @on(Action.notify_monitoring_report)
    async def on_notify_monitoring_report(self, p: dict[str, Any]) -> dict[str, Any]:
        count = await self.core.monitoring.report(self.state, request_id=p["requestId"], monitors=p.get("monitor") or [],
                                                  last=not p.get("tbc", False))
        await self.core.reports.record(self.state, "monitoring", "NotifyMonitoringReport",
                                       summary=f"monitoring report {p['requestId']} part {p['seqNo']}: {count} monitors",
                                       details=p)
        return {}

    @on(Action.firmware_status_notification)
    async def on_firmware_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.firmware_status(self.state, p["status"], request_id=p.get("requestId"))
        return {}

    @on(Action.publish_firmware_status_notification)
    async def on_publish_firmware_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.record(self.state, "firmware_publish", p["status"], details=p)
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
        decided = await self.core.certificates.sign_request(
            self.state, p["csr"], p.get("certificateType", "ChargingStationCertificate"))
        if decided["status"] == "Accepted":
            return {"status": "Accepted"}
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidCSR",
                                                     "additionalInfo": decided.get("reason", "")[:512]}}

    @on(Action.get_15118_ev_certificate)
    async def on_get15118_ev_certificate(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.record(self.state, "certificate", "Get15118EVCertificate",
                                       summary=f"{p['action']} for schema {p['iso15118SchemaVersion']}", details=p)
        return await self.core.certificates.ev_certificate(
            self.state, schema_version=p["iso15118SchemaVersion"], action=p["action"], exi_request=p["exiRequest"])

    @on(Action.get_certificate_status)
    async def on_get_certificate_status(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.record(self.state, "certificate", "GetCertificateStatus", details=p)
        return await self.core.certificates.certificate_status(self.state, p["ocspRequestData"])

    @on(Action.reservation_status_update)
    async def on_reservation_status_update(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reservations.status_update(self.state.pk, p["reservationId"], p["reservationUpdateStatus"])
        await self.core.reports.record(self.state, "reservation", p["reservationUpdateStatus"], details=p)
        return {}

    @on(Action.notify_charging_limit)
    async def on_notify_charging_limit(self, p: dict[str, Any]) -> dict[str, Any]:
        limit = p["chargingLimit"]
        await external_limits.store(self.state.pk, evse_id=p.get("evseId") or 0,
                                    limit_source=limit["chargingLimitSource"],
                                    grid_critical=limit.get("isGridCritical"), schedules=p.get("chargingSchedule"))
        await self.core.reports.record(self.state, "charging_limit", limit["chargingLimitSource"],
                                       evse_id=p.get("evseId"), details=p)
        return {}

    @on(Action.cleared_charging_limit)
    async def on_cleared_charging_limit(self, p: dict[str, Any]) -> dict[str, Any]:
        await external_limits.clear(self.state.pk, evse_id=p.get("evseId"), limit_source=p["chargingLimitSource"])
        await self.core.reports.record(self.state, "charging_limit", "cleared", evse_id=p.get("evseId"), details=p)
        return {}

    @on(Action.notify_ev_charging_needs)
    async def on_notify_ev_charging_needs(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.record(self.state, "ev_charging_needs", p["chargingNeeds"]["requestedEnergyTransfer"],
                                       evse_id=p["evseId"], details=p)
        # Accepted promises a schedule: only when a smart-charging allocator is installed.
        return {"status": "Accepted" if hook_impls("allocate_capacity") else "Rejected"}

    @on(Action.notify_ev_charging_schedule)
    async def on_notify_ev_charging_schedule(self, p: dict[str, Any]) -> dict[str, Any]:
        reason = await ev_schedules.check(self.core, self.state, evse_id=p["evseId"], schedule=p["chargingSchedule"],
                                          time_base=parse_ts(p["timeBase"]) or utcnow())
        answer: dict[str, Any] = {"status": "Rejected" if reason else "Accepted"}
        if reason:
            answer["statusInfo"] = {"reasonCode": "ExceedsLimits", "additionalInfo": reason[:512]}
        await self.core.reports.record(self.state, "ev_charging_schedule", "NotifyEVChargingSchedule",
                                       summary=f"{answer['status']}: {reason}" if reason else answer["status"],
                                       evse_id=p["evseId"], details={**p, "answer": answer})
        return answer

    @on(Action.report_charging_profiles)
    async def on_report_charging_profiles(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.charging_profiles(self.state, evse_id=p["evseId"], profiles=p["chargingProfile"],
                                                  limit_source=p["chargingLimitSource"])
        await self.core.reports.record(self.state, "charging_profiles", "ReportChargingProfiles",
                                       summary=f"request {p['requestId']}: {len(p['chargingProfile'])} profiles",
                                       evse_id=p["evseId"], details={"request_id": p["requestId"],
                                                                     "tbc": p.get("tbc", False)})
        return {}

    @on(Action.notify_customer_information)
    async def on_notify_customer_information(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.record(self.state, "customer_information", str(p["requestId"]),
                                       summary=p["data"][:255], details=p)
        return {}

    @on(Action.notify_display_messages)
    async def on_notify_display_messages(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.display_messages.report(self.state, p.get("messageInfo") or [])
        await self.core.reports.record(self.state, "display_messages", str(p["requestId"]), details=p)
        return {}

    @on(Action.data_transfer)
    async def on_data_transfer(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.record(self.state, "data_transfer", p["vendorId"][:64],
                                       summary=p.get("messageId", ""), details=p)
        return await vendor_answer(self.station_id, self.version, p["vendorId"], p.get("messageId"), p.get("data"))
