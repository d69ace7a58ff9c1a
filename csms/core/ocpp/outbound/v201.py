"""OCPP 2.0.1 outbound calls: configuration is the device model's variables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.core.ocpp.outbound.calls import (
    DIAGNOSTICS_LOG,
    STATION_MAX,
    TX,
    TX_DEFAULT,
    Call,
    Entry,
    LocalListCapabilities,
    OperationError,
    StationCalls,
    StationCaps,
    accepted,
    answered,
    answered_for,
    bool_or_none,
    get_log_call,
    int_or_none,
    new_request_id,
    positive_int,
)
from csms.core.ocpp.validation import V201
from csms.core.services import passwords
from csms.core.tables import DeviceVariable
from csms.core.timeutil import ocpp_ts
from csms.i18n import N_

if TYPE_CHECKING:
    from datetime import datetime

    from csms.core.domain import SessionCost
    from csms.core.services.reports import ReportService
    from csms.core.services.stations import StationState

RESET_TYPES = {"soft": "OnIdle", "on_idle": "OnIdle", "hard": "Immediate", "immediate": "Immediate"}
CONNECTOR_TYPES = frozenset({  # ConnectorEnumType
    "cCCS1", "cCCS2", "cG105", "cTesla", "cType1", "cType2", "s309-1P-16A", "s309-1P-32A", "s309-3P-16A",
    "s309-3P-32A", "sBS1361", "sCEE-7-7", "sType2", "sType3", "Other1PhMax16A", "Other1PhOver16A", "Other3Ph",
    "Pan", "wInductive", "wResonant", "Undetermined", "Unknown"})
# IdTokenEnumType; a card of another type goes into a list as "Local".
TOKEN_TYPES = frozenset({"Central", "eMAID", "ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress",
                         "NoAuthorization"})
ID_TOKEN_LENGTH = 36  # IdTokenType.idToken
PURPOSE_NAMES = {STATION_MAX: "ChargingStationMaxProfile", TX_DEFAULT: "TxDefaultProfile", TX: "TxProfile"}
INSTALL_CERTIFICATE_TYPES = frozenset({"V2GRootCertificate", "MORootCertificate", "CSMSRootCertificate",
                                       "ManufacturerRootCertificate"})  # InstallCertificateUseEnumType
GET_CERTIFICATE_TYPES = INSTALL_CERTIFICATE_TYPES | {"V2GCertificateChain"}  # GetCertificateIdUseEnumType


def component_variable(key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The component and variable of a key written ``Component[.instance]/Variable[.instance]`` or
    ``Component.Variable``."""
    if "/" in key:
        comp, var = key.split("/", 1)
    elif "." in key:
        comp, var = key.split(".", 1)
    else:
        raise OperationError(N_("OCPP 2.x configuration keys are 'Component.Variable', not %(key)s"), key=repr(key))
    component: dict[str, Any] = {"name": comp.split(".")[0]}
    if "/" in key and "." in comp:
        component["instance"] = comp.split(".", 1)[1]
    variable: dict[str, Any] = {"name": var.split(".")[0] if "/" in key else var}
    if "/" in key and "." in var:
        variable["instance"] = var.split(".", 1)[1]
    return component, variable


def variable_set(response: dict[str, Any]) -> dict[str, Any]:
    """The result of a SetVariables of one variable: that variable's status."""
    return {"status": response["setVariableResult"][0]["attributeStatus"], "response": response}


async def record_variables(reports: ReportService, state: StationState, response: dict[str, Any]) -> None:
    """Store the variables a GetVariables answer read, as a device report."""
    report = [{"component": r["component"], "variable": r["variable"],
               "variableAttribute": [{"type": r.get("attributeType", "Actual"), "value": r.get("attributeValue")}]}
              for r in response["getVariableResult"] if r["attributeStatus"] == "Accepted"]
    await reports.device_report(state, report)


def transaction_status(response: dict[str, Any]) -> dict[str, Any]:
    return {**accepted(response), "messages_in_queue": bool(response.get("messagesInQueue")),
            "ongoing": response.get("ongoingIndicator")}


class Calls201(StationCalls):
    version = V201
    purpose_names = PURPOSE_NAMES
    max_id_token_length = ID_TOKEN_LENGTH
    supports_display_messages = True
    supports_transaction_status = True
    supports_monitoring = True
    supports_customer_information = True
    supports_running_cost = True
    supports_profile_reports = True
    supports_custom_reports = True
    supports_variables = True
    supports_network_profiles = True
    supports_fallback_texts = True

    def fit_id_token(self, id_token: str) -> str:
        return id_token

    def remote_start(self, *, id_token: str, evse_id: int | None, token_type: str,
                     charging_profile: dict[str, Any] | None = None) -> Call:
        payload: dict[str, Any] = {"idToken": {"idToken": id_token, "type": token_type},
                                   "remoteStartId": new_request_id()}
        if evse_id:
            payload["evseId"] = evse_id
        if charging_profile is not None:
            payload["chargingProfile"] = charging_profile
        return Call("RequestStartTransaction", payload)

    def remote_start_profile(self, *, profile_id: int, stack_level: int, schedule: dict[str, Any]) -> dict[str, Any]:
        return {"id": profile_id, "stackLevel": stack_level, "chargingProfilePurpose": PURPOSE_NAMES[TX],
                "chargingProfileKind": "Relative", "chargingSchedule": [{"id": profile_id, **schedule}]}

    def remote_stop(self, *, transaction_id: str) -> Call:
        return Call("RequestStopTransaction", {"transactionId": transaction_id})

    def reset(self, *, kind: str, evse_id: int | None) -> Call:
        reset_type = RESET_TYPES.get(kind)
        if reset_type is None:
            raise OperationError(N_("unknown reset kind %(kind)s"), kind=repr(kind))
        payload: dict[str, Any] = {"type": reset_type}
        if evse_id:
            payload["evseId"] = evse_id
        return Call("Reset", payload)

    def unlock(self, *, evse_id: int, connector_id: int) -> Call:
        return Call("UnlockConnector", {"evseId": evse_id, "connectorId": connector_id})

    def change_availability(self, *, operative: bool, evse_id: int, connector_id: int | None) -> Call:
        payload: dict[str, Any] = {"operationalStatus": "Operative" if operative else "Inoperative"}
        if evse_id:
            payload["evse"] = {"id": evse_id, **({"connectorId": connector_id} if connector_id else {})}
        return Call("ChangeAvailability", payload)

    def trigger(self, *, message: str, evse_id: int | None) -> Call:
        payload: dict[str, Any] = {"requestedMessage": message}
        if evse_id:
            payload["evse"] = {"id": evse_id}
        return Call("TriggerMessage", payload)

    def get_configuration(self, *, keys: list[str] | None) -> Call:
        """GetVariables of ``keys``; without keys a full-inventory GetBaseReport, whose NotifyReports
        are stored as they come."""
        if not keys:
            return Call("GetBaseReport", {"requestId": new_request_id(), "reportBase": "FullInventory"})
        data = []
        for key in keys:
            component, variable = component_variable(key)
            data.append({"component": component, "variable": variable})
        return Call("GetVariables", {"getVariableData": data}, outcome=accepted, record=record_variables)

    def set_configuration(self, *, key: str, value: str) -> Call:
        component, variable = component_variable(key)

        async def record(reports: ReportService, state: StationState, response: dict[str, Any]) -> None:
            await reports.set_variable_value(state, component, variable, "Actual", value)

        return Call("SetVariables", {"setVariableData": [
            {"attributeValue": value, "component": component, "variable": variable}]},
            outcome=variable_set, record=record)

    def get_custom_report(self, *, request_id: int, criteria: list[str] | None,
                          component_variables: list[dict[str, Any]] | None) -> Call:
        payload: dict[str, Any] = {"requestId": request_id}
        if criteria:
            payload["componentCriteria"] = criteria
        if component_variables:
            payload["componentVariable"] = component_variables
        return Call("GetReport", payload, outcome=answered_for(request_id))

    def set_network_profile(self, *, slot: int, url: str, security_profile: int, interface: str,
                            message_timeout: int) -> Call:
        return Call("SetNetworkProfile", {"configurationSlot": slot, "connectionData": {
            "ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": url, "messageTimeout": message_timeout,
            "securityProfile": security_profile, "ocppInterface": interface}})

    def rotate_password(self, *, password: str) -> Call:
        return Call("SetVariables", {"setVariableData": [{
            "attributeValue": password, "component": {"name": passwords.SECURITY_COMPONENT},
            "variable": {"name": passwords.PASSWORD_VARIABLE}}]}, outcome=variable_set)

    def update_firmware(self, *, location: str, retrieve_at: datetime, signing_certificate: str | None,
                        signature: str | None, retries: int | None, install_at: datetime | None = None) -> Call:
        request_id = new_request_id()
        firmware: dict[str, Any] = {"location": location, "retrieveDateTime": ocpp_ts(retrieve_at)}
        if install_at is not None:
            firmware["installDateTime"] = ocpp_ts(install_at)
        if signing_certificate:
            firmware["signingCertificate"] = signing_certificate
        if signature:
            firmware["signature"] = signature
        payload: dict[str, Any] = {"requestId": request_id, "firmware": firmware}
        if retries is not None:
            payload["retries"] = retries
        return Call("UpdateFirmware", payload, outcome=answered_for(request_id))

    def get_logs(self, *, location: str, log_type: str = DIAGNOSTICS_LOG, oldest: datetime | None = None,
                 latest: datetime | None = None, retries: int | None = None, retry_interval: int | None = None,
                 get_log: bool = True) -> Call:
        return get_log_call(location=location, log_type=log_type, oldest=oldest, latest=latest, retries=retries,
                            retry_interval=retry_interval)

    def set_charging_profile(self, *, evse_id: int, profile: dict[str, Any]) -> Call:
        return Call("SetChargingProfile", {"evseId": evse_id, "chargingProfile": profile})

    def profile_id(self, profile: dict[str, Any]) -> int:
        return profile["id"]

    def charging_profile(self, *, profile_id: int, stack_level: int, purpose: str, schedule: dict[str, Any],
                         transaction_id: str | None, kind: str = "Absolute", recurrency: str | None = None,
                         valid_from: datetime | None = None, valid_to: datetime | None = None) -> dict[str, Any]:
        profile: dict[str, Any] = {"id": profile_id, "stackLevel": stack_level,
                                   "chargingProfilePurpose": self.purpose_names[purpose], "chargingProfileKind": kind,
                                   "chargingSchedule": [{"id": profile_id, **schedule}]}
        if recurrency is not None:
            profile["recurrencyKind"] = recurrency
        if valid_from is not None:
            profile["validFrom"] = ocpp_ts(valid_from)
        if valid_to is not None:
            profile["validTo"] = ocpp_ts(valid_to)
        if transaction_id is not None:
            profile["transactionId"] = transaction_id
        return profile

    def clear_charging_profile(self, *, profile_id: int | None, evse_id: int | None, purpose: str | None,
                               stack_level: int | None) -> Call:
        if profile_id is not None:
            return Call("ClearChargingProfile", {"chargingProfileId": profile_id})
        criteria: dict[str, Any] = {}
        if evse_id is not None:
            criteria["evseId"] = evse_id
        if purpose is not None:
            criteria["chargingProfilePurpose"] = self.purpose_names[purpose]
        if stack_level is not None:
            criteria["stackLevel"] = stack_level
        return Call("ClearChargingProfile", {"chargingProfileCriteria": criteria} if criteria else {})

    def get_charging_profiles(self, *, request_id: int, evse_id: int | None, purpose: str | None,
                              stack_level: int | None, profile_ids: list[int] | None,
                              limit_sources: list[str] | None) -> Call:
        criterion: dict[str, Any] = {}
        if purpose is not None:
            criterion["chargingProfilePurpose"] = self.purpose_names[purpose]
        if stack_level is not None:
            criterion["stackLevel"] = stack_level
        if profile_ids:
            criterion["chargingProfileId"] = profile_ids
        if limit_sources:
            criterion["chargingLimitSource"] = limit_sources
        payload: dict[str, Any] = {"requestId": request_id, "chargingProfile": criterion}
        if evse_id is not None:
            payload["evseId"] = evse_id
        return Call("GetChargingProfiles", payload, outcome=answered_for(request_id))

    def get_composite_schedule(self, *, evse_id: int, duration: int, unit: str) -> Call:
        return Call("GetCompositeSchedule", {"duration": duration, "chargingRateUnit": unit, "evseId": evse_id})

    def composite_schedule(self, answer: dict[str, Any]) -> dict[str, Any] | None:
        return answer.get("schedule")

    async def station_caps(self, station_pk: int) -> StationCaps:
        """From the device model's SmartChargingCtrlr (RateUnit, ProfileStackLevel, PeriodsPerSchedule)."""
        caps = StationCaps()
        variables = {r["variable"]: r["value"] for r in await DeviceVariable.select(
            DeviceVariable.variable, DeviceVariable.value).where(
            (DeviceVariable.station == station_pk) & (DeviceVariable.component == "SmartChargingCtrlr")
            & (DeviceVariable.attribute_type == "Actual"))}
        units = variables.get("RateUnit")
        if units and "A" not in [u.strip() for u in units.split(",")] and "W" in units:
            caps.unit = "W"
        caps.max_stack_level = int_or_none(variables.get("ProfileStackLevel"))
        caps.max_periods = int_or_none(variables.get("PeriodsPerSchedule"))
        return caps

    def reservation_refusal(self, *, id_token: str, group_id_token: str | None,
                            connector_type: str | None) -> OperationError | None:
        if connector_type and connector_type not in CONNECTOR_TYPES:
            return OperationError(N_("unknown connector_type %(type)s (an OCPP %(version)s ConnectorEnumType such as "
                                     "cType2, cCCS2 or sType2)"), type=repr(connector_type), version=self.version)
        return None

    def reserve_now(self, *, reservation_id: int, id_token: str, token_type: str, group_id_token: str | None,
                    expires_at: datetime, evse_id: int | None, connector_type: str | None) -> Call:
        payload: dict[str, Any] = {"id": reservation_id, "expiryDateTime": ocpp_ts(expires_at),
                                   "idToken": {"idToken": id_token, "type": token_type}}
        if evse_id:
            payload["evseId"] = evse_id
        if connector_type:
            payload["connectorType"] = connector_type
        if group_id_token:
            payload["groupIdToken"] = {"idToken": group_id_token, "type": "Central"}
        return Call("ReserveNow", payload)

    def local_list_version(self, response: dict[str, Any]) -> int:
        return int(response["versionNumber"])

    def local_list_item(self, id_token: str, entry: Entry | None, token_type: str) -> dict[str, Any]:
        item: dict[str, Any] = {"idToken": {"idToken": id_token, "type": token_type}}
        if entry is not None:
            info: dict[str, Any] = {"status": entry["status"]}
            if entry.get("expires_at"):
                info["cacheExpiryDateTime"] = entry["expires_at"]
            if entry.get("group") and len(entry["group"]) <= ID_TOKEN_LENGTH:
                info["groupIdToken"] = {"idToken": entry["group"], "type": "Central"}  # as Authorize answers it
            item["idTokenInfo"] = info
        return item

    def send_local_list(self, *, list_version: int, update_type: str, items: list[dict[str, Any]]) -> Call:
        payload: dict[str, Any] = {"versionNumber": list_version, "updateType": update_type}
        if items:
            payload["localAuthorizationList"] = items
        return Call("SendLocalList", payload)

    async def local_list_capabilities(self, station_pk: int) -> LocalListCapabilities:
        """From the device model's LocalAuthListCtrlr (Available, Enabled, ItemsPerMessage,
        BytesPerMessage, the maxLimit of Entries)."""
        variables = await DeviceVariable.select(
            DeviceVariable.variable, DeviceVariable.value, DeviceVariable.max_limit).where(
            (DeviceVariable.station == station_pk) & (DeviceVariable.component == "LocalAuthListCtrlr")
            & (DeviceVariable.attribute_type == "Actual"))
        found = {r["variable"]: r for r in variables}

        def value(name: str) -> Any:
            return found[name]["value"] if name in found else None

        entries = found.get("Entries")
        return LocalListCapabilities(
            supported=bool_or_none(value("Available")),
            enabled=bool_or_none(value("Enabled")),
            per_message=positive_int(value("ItemsPerMessage")),
            bytes_per_message=positive_int(value("BytesPerMessage")),
            max_entries=positive_int(entries["max_limit"]) if entries is not None else None)

    def set_display_message(self, *, message: dict[str, Any]) -> Call:
        return Call("SetDisplayMessage", {"message": message})

    def clear_display_message(self, *, message_id: int) -> Call:
        return Call("ClearDisplayMessage", {"id": message_id})

    def get_display_messages(self, *, ids: list[int] | None = None, priority: str | None = None,
                             state: str | None = None) -> Call:
        request_id = new_request_id()
        payload: dict[str, Any] = {"requestId": request_id}
        if ids is not None:
            payload["id"] = ids
        if priority is not None:
            payload["priority"] = priority
        if state is not None:
            payload["state"] = state
        return Call("GetDisplayMessages", payload, outcome=answered_for(request_id))

    def get_transaction_status(self, *, transaction_id: str) -> Call:
        return Call("GetTransactionStatus", {"transactionId": transaction_id}, outcome=transaction_status)

    def publish_firmware(self, *, location: str, checksum: str, retries: int | None,
                         retry_interval_s: int | None) -> Call:
        request_id = new_request_id()
        payload: dict[str, Any] = {"location": location, "checksum": checksum, "requestId": request_id}
        if retries is not None:
            payload["retries"] = retries
        if retry_interval_s is not None:
            payload["retryInterval"] = retry_interval_s
        return Call("PublishFirmware", payload, outcome=answered_for(request_id))

    def unpublish_firmware(self, *, checksum: str) -> Call:
        return Call("UnpublishFirmware", {"checksum": checksum}, outcome=answered)

    def running_cost(self, *, transaction_id: str, cost: SessionCost, meter_wh: float | None, at: datetime,
                     charging: bool) -> Call:
        """CostUpdated: the total incl. VAT so far."""
        return Call("CostUpdated", {"totalCost": float(cost.total_incl_vat), "transactionId": transaction_id},
                    outcome=accepted)

    # -- monitoring

    def set_monitors(self, *, monitors: list[dict[str, Any]]) -> Call:
        return Call("SetVariableMonitoring", {"setMonitoringData": monitors}, outcome=lambda response: {
            **accepted(response), "results": response.get("setMonitoringResult") or []})

    def monitoring_items_per_message(self, *, message: str) -> Call:
        """GetVariables of MonitoringCtrlr.ItemsPerMessage[``message``]: the most monitors one
        SetVariableMonitoring or ClearVariableMonitoring may carry; ``per_message`` None when
        the station does not say."""
        return self.items_per_message(component="MonitoringCtrlr", message=message)

    def items_per_message(self, *, component: str, message: str) -> Call:
        def outcome(response: dict[str, Any]) -> dict[str, Any]:
            result = (response.get("getVariableResult") or [{}])[0]
            value = result.get("attributeValue") if result.get("attributeStatus") == "Accepted" else None
            return {**accepted(response), "per_message": positive_int(value), "results": response.get(
                "getVariableResult") or []}
        return Call("GetVariables", {"getVariableData": [{
            "component": {"name": component},
            "variable": {"name": "ItemsPerMessage", "instance": message}}]}, outcome=outcome, record=record_variables)

    def get_variables(self, *, data: list[dict[str, Any]]) -> Call:
        return Call("GetVariables", {"getVariableData": data}, outcome=lambda response: {
            **accepted(response), "results": response.get("getVariableResult") or []}, record=record_variables)

    def set_variables(self, *, data: list[dict[str, Any]]) -> Call:
        return Call("SetVariables", {"setVariableData": data}, outcome=lambda response: {
            **accepted(response), "results": response.get("setVariableResult") or []})

    def clear_monitors(self, *, monitor_ids: list[int]) -> Call:
        return Call("ClearVariableMonitoring", {"id": monitor_ids}, outcome=lambda response: {
            **accepted(response), "results": response.get("clearMonitoringResult") or []})

    def get_monitoring_report(self, *, request_id: int, criteria: list[str] | None,
                              component_variables: list[dict[str, Any]] | None) -> Call:
        payload: dict[str, Any] = {"requestId": request_id}
        if criteria:
            payload["monitoringCriteria"] = criteria
        if component_variables:
            payload["componentVariable"] = component_variables
        return Call("GetMonitoringReport", payload, outcome=answered_for(request_id))

    def set_monitoring_base(self, *, base: str) -> Call:
        return Call("SetMonitoringBase", {"monitoringBase": base})

    def set_monitoring_level(self, *, severity: int) -> Call:
        return Call("SetMonitoringLevel", {"severity": severity})

    def customer_information(self, *, report: bool, clear: bool, id_token: dict[str, Any] | None,
                             customer_identifier: str | None, customer_certificate: dict[str, Any] | None) -> Call:
        request_id = new_request_id()
        payload: dict[str, Any] = {"requestId": request_id, "report": report, "clear": clear}
        if id_token is not None:
            payload["idToken"] = id_token
        if customer_identifier is not None:
            payload["customerIdentifier"] = customer_identifier
        if customer_certificate is not None:
            payload["customerCertificate"] = customer_certificate
        return Call("CustomerInformation", payload, outcome=answered_for(request_id))

    # -- certificates

    installable_certificate_types = INSTALL_CERTIFICATE_TYPES
    listable_certificate_types = GET_CERTIFICATE_TYPES

    def certificate_signed(self, *, chain: str, certificate_type: str) -> Call:
        return Call("CertificateSigned", {"certificateChain": chain, "certificateType": certificate_type})

    def install_certificate(self, *, certificate_type: str, certificate: str) -> Call:
        self._check_certificate_type(certificate_type)
        return Call("InstallCertificate", {"certificateType": certificate_type, "certificate": certificate})

    def get_installed_certificates(self, *, certificate_types: list[str] | None) -> list[Call]:
        payload: dict[str, Any] = {}
        if certificate_types:
            unknown = sorted(set(certificate_types) - self.listable_certificate_types)
            if unknown:
                raise OperationError(N_("OCPP %(version)s lists certificate types %(types)s, not %(unknown)s"),
                                     version=self.version, types=", ".join(sorted(self.listable_certificate_types)),
                                     unknown=", ".join(unknown))
            payload["certificateType"] = list(dict.fromkeys(certificate_types))

        def outcome(response: dict[str, Any]) -> dict[str, Any]:
            return {"status": response["status"], "response": response, "certificates": [
                {"certificate_type": chain["certificateType"], "hash_data": chain["certificateHashData"],
                 "child_hash_data": chain.get("childCertificateHashData") or []}
                for chain in response.get("certificateHashDataChain") or []]}

        return [Call("GetInstalledCertificateIds", payload, outcome=outcome)]

    def renew_certificate(self, *, certificate_type: str) -> Call:
        messages = {"ChargingStationCertificate": "SignChargingStationCertificate",
                    "V2GCertificate": "SignV2GCertificate",
                    # one certificate for both connections: the station's SignCertificate has no certificateType
                    "CombinedCertificate": "SignCombinedCertificate"}
        if certificate_type not in messages:
            raise OperationError(N_("certificate_type is ChargingStationCertificate, V2GCertificate or "
                                    "CombinedCertificate, not %(type)s"), type=repr(certificate_type))
        return Call("TriggerMessage", {"requestedMessage": messages[certificate_type]})
