"""OCPP 2.1 adapter: the 2.0.1 adapter's handlers (2.1 keeps those messages, with optional
additions this CSMS does not need), validated against the 2.1 schemas, plus what 2.1 adds that
the CSMS takes part in: periodic event streams (OpenPeriodicEventStream, ClosePeriodicEventStream
and the NotifyPeriodicEventStream SEND), the station's reports of battery swaps, DER controls and
alarms, payment-terminal settlements and priority charging (stored in the station's event log and
shown on its page), its questions about VAT numbers (the ``vat_number_validation`` hook),
dynamic schedules (the smart-charging loop's current allocation) and certificate chains (the
``certificate_chain_status`` hook), and OCPP-J 2.1's SEND and CALLRESULTERROR frames
(:class:`~csms.core.ocpp.connection.StationConnection`)."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v21.enums import Action

from csms.core.ocpp.v201 import StationConnection201
from csms.core.ocpp.validation import V21
from csms.core.timeutil import parse_ts
from csms.core.vat_numbers import validation_answer

class StationConnection21(StationConnection201):
    version = V21
    subprotocol = "ocpp2.1"
    rpc_2_1 = True

    @on(Action.open_periodic_event_stream)
    async def on_open_periodic_event_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        stream = p["constantStreamData"]
        params = stream["params"]
        await self.core.reports.record(
            self.state, "event_stream", "OpenPeriodicEventStream",
            summary=f"stream {stream['id']} of monitor {stream['variableMonitoringId']} opened "
                    f"(interval {params.get('interval', 0)} s, {params.get('values', 0)} values)",
            details=p)
        return {"status": "Accepted"}

    @on(Action.close_periodic_event_stream)
    async def on_close_periodic_event_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.record(self.state, "event_stream", "ClosePeriodicEventStream",
                                       summary=f"stream {p['id']} closed", details=p)
        return {}

    @on("NotifyPeriodicEventStream")
    async def on_notify_periodic_event_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        """A SEND: stored as an event of the stream, never answered."""
        await self.core.reports.record(
            self.state, "event_stream", "NotifyPeriodicEventStream",
            summary=f"stream {p['id']}: {len(p['data'])} values, {p['pending']} pending",
            details=p, timestamp=parse_ts(p["basetime"]))
        return {}

    @on(Action.transaction_event)
    async def on_transaction_event(self, p: dict[str, Any]) -> dict[str, Any]:
        """As 2.0.1; a station that calculates the cost itself (2.1 local cost calculation) sends
        ``costDetails``, kept in its event log (category ``station_cost``) beside our own cost."""
        answer = await super().on_transaction_event(p)
        if p.get("costDetails"):
            await self._record_station_cost(p["transactionInfo"]["transactionId"], p["eventType"], p["costDetails"])
        return answer

    async def _record_station_cost(self, transaction_id: str, event_type: str, details: dict[str, Any]) -> None:
        cost = details["totalCost"]
        total = cost["total"]
        amount = total.get("inclTax", total.get("exclTax"))
        tax = "incl. tax" if "inclTax" in total else "excl. tax"
        usage = details["totalUsage"]
        summary = (f"{event_type}: {cost['typeOfCost']} cost "
                   f"{'unknown' if amount is None else f'{amount:g}'} {cost['currency']} {tax} "
                   f"for {usage['energy']:g} Wh, {usage['chargingTime']} s charging (transaction {transaction_id})")
        if details.get("failureToCalculate"):
            summary += f"; not calculated: {details.get('failureReason') or 'no reason given'}"
        await self.core.reports.record(self.state, "station_cost", "TransactionEvent",
                                       summary=summary, details={"transaction_id": transaction_id, **details})

    @on(Action.battery_swap)
    async def on_battery_swap(self, p: dict[str, Any]) -> dict[str, Any]:
        """A battery swap station reports batteries put in or taken out (the token was authorized
        before, through Authorize)."""
        batteries = ", ".join(f"{b['serialNumber']} {b['soC']:g} %" for b in p["batteryData"])
        await self.core.reports.record(
            self.state, "battery_swap", p["eventType"],
            summary=f"{p['eventType']} (request {p['requestId']}, token {p['idToken']['idToken']}): {batteries}",
            details=p)
        return {}

    @on(Action.notify_der_alarm)
    async def on_notify_der_alarm(self, p: dict[str, Any]) -> dict[str, Any]:
        state = "ended" if p.get("alarmEnded") else "raised"
        fault = f" ({p['gridEventFault']})" if p.get("gridEventFault") else ""
        await self.core.reports.record(
            self.state, "der", "NotifyDERAlarm", summary=f"{p['controlType']} alarm {state}{fault}",
            details=p, timestamp=parse_ts(p["timestamp"]))
        return {}

    @on(Action.notify_der_start_stop)
    async def on_notify_der_start_stop(self, p: dict[str, Any]) -> dict[str, Any]:
        superseded = f", superseding {', '.join(p['supersededIds'])}" if p.get("supersededIds") else ""
        await self.core.reports.record(
            self.state, "der", "NotifyDERStartStop",
            summary=f"DER control {p['controlId']} {'started' if p['started'] else 'stopped'}{superseded}",
            details=p, timestamp=parse_ts(p["timestamp"]))
        return {}

    @on(Action.report_der_control)
    async def on_report_der_control(self, p: dict[str, Any]) -> dict[str, Any]:
        controls = {k: len(v) for k, v in p.items() if isinstance(v, list)}
        listed = ", ".join(f"{n} {k}" for k, n in sorted(controls.items())) or "no controls"
        more = " (more to follow)" if p.get("tbc") else ""
        await self.core.reports.record(self.state, "der", "ReportDERControl",
                                       summary=f"report {p['requestId']}: {listed}{more}", details=p)
        return {}

    @on(Action.notify_settlement)
    async def on_notify_settlement(self, p: dict[str, Any]) -> dict[str, Any]:
        """A payment terminal at the station settled (or failed to settle) a payment; the receipt
        stays the station's (its id and URL are echoed back, as the CSMS issues none)."""
        tx = f" for transaction {p['transactionId']}" if p.get("transactionId") else ""
        await self.core.reports.record(
            self.state, "payment", "NotifySettlement",
            summary=f"{p['status']} {p['settlementAmount']:g}{tx} (PSP reference {p['pspRef']})",
            details=p, timestamp=parse_ts(p["settlementTime"]))
        return {k: p[k] for k in ("receiptId", "receiptUrl") if k in p}

    @on(Action.notify_priority_charging)
    async def on_notify_priority_charging(self, p: dict[str, Any]) -> dict[str, Any]:
        await self.core.reports.record(
            self.state, "charging_limit", "NotifyPriorityCharging",
            summary=f"priority charging {'activated' if p['activated'] else 'ended'} "
                    f"for transaction {p['transactionId']}", details=p)
        # the station's word on the transaction's priority charging (asked by UsePriorityCharging or not)
        await self.core.energy_controls.priority_charging_reported(self.state.pk, p["transactionId"],
                                                                    bool(p["activated"]))
        return {}

    @on(Action.vat_number_validation)
    async def on_vat_number_validation(self, p: dict[str, Any]) -> dict[str, Any]:
        answer = await validation_answer(self.state.station_id, p["vatNumber"], p.get("evseId"))
        await self.core.reports.record(self.state, "payment", "VatNumberValidation",
                                       summary=f"VAT number {p['vatNumber']}: {answer['status']}",
                                       evse_id=p.get("evseId"), details={**p, "answer": answer})
        return answer

    @on(Action.pull_dynamic_schedule_update)
    async def on_pull_dynamic_schedule_update(self, p: dict[str, Any]) -> dict[str, Any]:
        """A dynamic profile's next value: the smart-charging loop's current one for its profile."""
        update = await self.core.smart_charging.schedule_update(self.state.station_id, p["chargingProfileId"])
        if update is None:
            return {"status": "Rejected", "statusInfo": {
                "reasonCode": "UnknownProfile", "additionalInfo": "not a charging profile of this CSMS's smart charging"}}
        return {"status": "Accepted", "scheduleUpdate": update}

    @on(Action.get_certificate_chain_status)
    async def on_get_certificate_chain_status(self, p: dict[str, Any]) -> dict[str, Any]:
        answer = await self.core.certificates.chain_status(self.state, p["certificateStatusRequests"])
        await self.core.reports.record(
            self.state, "certificate", "GetCertificateChainStatus",
            summary=", ".join(f"{s['certificateHashData']['serialNumber']}: {s['status']}"
                              for s in answer["certificateStatus"]), details={**p, "answer": answer})
        return answer
