"""OCPP 1.6J outbound calls: connector N is EVSE N; id tags hold 20 characters."""

from __future__ import annotations

import json
from decimal import Decimal
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
    answered_for,
    bool_or_none,
    get_log_call,
    int_or_none,
    new_request_id,
    positive_int,
)
from csms.core.ocpp.validation import V16
from csms.core.services import passwords
from csms.core.tables import ConfigurationKey
from csms.core.timeutil import ocpp_ts
from csms.i18n import N_

if TYPE_CHECKING:
    from datetime import datetime

    from csms.core.domain import CostLine, SessionCost
    from csms.core.services.reports import ReportService
    from csms.core.services.stations import StationState

ID_TAG_LENGTH = 20  # CiString20Type
RESET_TYPES = {"soft": "Soft", "hard": "Hard", "on_idle": "Soft", "immediate": "Hard"}
PURPOSE_NAMES = {STATION_MAX: "ChargePointMaxProfile", TX_DEFAULT: "TxDefaultProfile", TX: "TxProfile"}
LIST_STATUSES = frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"})  # AuthorizationStatus
# The neutral (2.0.1) certificate types a 1.6 station installs, and their 1.6 names (CertificateUseEnumType).
CERTIFICATE_TYPES = {"CSMSRootCertificate": "CentralSystemRootCertificate",
                     "ManufacturerRootCertificate": "ManufacturerRootCertificate"}
# Configuration keys only a station with the security extension ("Improved security for OCPP 1.6-J") has.
SECURITY_EXTENSION_KEYS = frozenset({"SecurityProfile", "CpoName", "CertificateStoreMaxLength",
                                     "CertificateSignedMaxChainSize", "AdditionalRootCertificateCheck"})
COST_VENDOR = "org.openchargealliance.costmsg"  # OCA white paper "OCPP & California Pricing Requirements"


def final_cost_data_transfer(transaction_id: str, cost: SessionCost) -> dict[str, Any]:
    """The California Pricing ``FinalCost`` DataTransfer of a 1.6 transaction: the total incl. VAT."""
    total = cost.total_incl_vat
    data = {"transactionId": int(transaction_id), "cost": float(total),
            "priceText": f"Total {total:.2f} {cost.currency} incl. VAT"}
    return {"vendorId": COST_VENDOR, "messageId": "FinalCost", "data": json.dumps(data)}


# CostLine components whose unit price is the RunningCost's chargingPrice (white paper 3.1.4).
_PRICE_FIELDS = {"ENERGY": "kWhPrice", "TIME": "hourPrice", "FLAT": "flatFee"}


def _incl_vat(price: Decimal, line: CostLine, cost: SessionCost) -> Decimal:
    """``price`` with the VAT of its line (of the whole cost for a line without an amount yet)."""
    if line.amount_excl_vat:
        return price * (line.amount_excl_vat + line.vat_amount) / line.amount_excl_vat
    if cost.total_excl_vat:
        return price * cost.total_incl_vat / cost.total_excl_vat
    return price


def running_cost_data_transfer(*, transaction_id: str, cost: SessionCost, meter_wh: float | None, at: datetime,
                               charging: bool) -> dict[str, Any]:
    """The California Pricing ``RunningCost`` DataTransfer of a 1.6 transaction: the cost incl.
    VAT so far at meter register ``meter_wh``, and the prices (incl. VAT) now charging: per kWh,
    per hour and flat, from the cost lines of those components (latest line of each)."""
    data: dict[str, Any] = {"transactionId": int(transaction_id), "timestamp": ocpp_ts(at),
                            "meterValue": round(meter_wh or 0), "cost": float(cost.total_incl_vat),
                            "state": "Charging" if charging else "Idle"}
    prices: dict[str, float] = {}
    for line in cost.lines:
        name = _PRICE_FIELDS.get(line.component)
        if name is not None:
            prices[name] = float(round(_incl_vat(line.unit_price, line, cost), 4))
    if prices:
        data["chargingPrice"] = prices
    return {"vendorId": COST_VENDOR, "messageId": "RunningCost", "data": json.dumps(data)}


def status_of(response: dict[str, Any]) -> dict[str, Any]:
    return {"status": response["status"], "response": response}


async def record_keys(reports: ReportService, state: StationState, response: dict[str, Any]) -> None:
    await reports.configuration(state, response.get("configurationKey") or [])


# Messages only the Security extension's ExtendedTriggerMessage can ask for.
EXTENDED_TRIGGERS = frozenset({"LogStatusNotification", "SignChargePointCertificate"})

class Calls16(StationCalls):
    version = V16
    purpose_names = PURPOSE_NAMES
    max_id_token_length = ID_TAG_LENGTH
    final_cost_by_data_transfer = True
    supports_running_cost = True
    data_transfer_text = True
    running_cost_by_data_transfer = True

    def fit_id_token(self, id_token: str) -> str:
        return id_token[:ID_TAG_LENGTH]

    def remote_start(self, *, id_token: str, evse_id: int | None, token_type: str,
                     charging_profile: dict[str, Any] | None = None) -> Call:
        payload: dict[str, Any] = {"idTag": self.fit_id_token(id_token)}
        if evse_id:
            payload["connectorId"] = evse_id
        if charging_profile is not None:
            payload["chargingProfile"] = charging_profile
        return Call("RemoteStartTransaction", payload)

    def remote_start_profile(self, *, profile_id: int, stack_level: int, schedule: dict[str, Any]) -> dict[str, Any]:
        return {"chargingProfileId": profile_id, "stackLevel": stack_level,
                "chargingProfilePurpose": PURPOSE_NAMES[TX], "chargingProfileKind": "Relative",
                "chargingSchedule": schedule}

    def remote_stop(self, *, transaction_id: str) -> Call:
        try:
            tx = int(transaction_id)
        except ValueError:
            raise OperationError(N_("1.6 transaction ids are integers, not %(transaction)s"),
                                 transaction=repr(transaction_id)) from None
        return Call("RemoteStopTransaction", {"transactionId": tx})

    def reset(self, *, kind: str, evse_id: int | None) -> Call:
        reset_type = RESET_TYPES.get(kind)
        if reset_type is None:
            raise OperationError(N_("unknown reset kind %(kind)s"), kind=repr(kind))
        return Call("Reset", {"type": reset_type})

    def unlock(self, *, evse_id: int, connector_id: int) -> Call:
        return Call("UnlockConnector", {"connectorId": evse_id})

    def change_availability(self, *, operative: bool, evse_id: int, connector_id: int | None) -> Call:
        return Call("ChangeAvailability", {"connectorId": evse_id, "type": "Operative" if operative else "Inoperative"})

    def trigger(self, *, message: str, evse_id: int | None) -> Call:
        """TriggerMessage; ExtendedTriggerMessage (Security extension) for the messages only it
        knows (``LogStatusNotification``, ``SignChargePointCertificate``)."""
        payload: dict[str, Any] = {"requestedMessage": message}
        if evse_id:
            payload["connectorId"] = evse_id
        return Call("ExtendedTriggerMessage" if message in EXTENDED_TRIGGERS else "TriggerMessage", payload)

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
                        signature: str | None, retries: int | None, install_at: datetime | None = None) -> Call:
        """SignedUpdateFirmware (Security extension) when signed, else a plain UpdateFirmware, which
        has no request id and no status."""
        request_id = new_request_id()
        if signing_certificate and signature:
            signed: dict[str, Any] = {"requestId": request_id, "firmware": {
                "location": location, "retrieveDateTime": ocpp_ts(retrieve_at),
                "signingCertificate": signing_certificate, "signature": signature}}
            if install_at is not None:
                signed["firmware"]["installDateTime"] = ocpp_ts(install_at)
            if retries is not None:
                signed["retries"] = retries
            return Call("SignedUpdateFirmware", signed, outcome=answered_for(request_id))
        payload: dict[str, Any] = {"location": location, "retrieveDate": ocpp_ts(retrieve_at)}
        if retries is not None:
            payload["retries"] = retries
        return Call("UpdateFirmware", payload,
                    outcome=lambda response: {"status": "Accepted", "response": response, "request_id": None})

    async def takes_get_log(self, station_pk: int) -> bool:
        """With the security extension: the station reported one of its configuration keys."""
        return await ConfigurationKey.exists().where(
            (ConfigurationKey.station == station_pk) & ConfigurationKey.key.is_in(list(SECURITY_EXTENSION_KEYS)))

    def get_logs(self, *, location: str, log_type: str = DIAGNOSTICS_LOG, oldest: datetime | None = None,
                 latest: datetime | None = None, retries: int | None = None, retry_interval: int | None = None,
                 get_log: bool = True) -> Call:
        """GetLog of the security extension, else GetDiagnostics: no request id, and an answer
        without a file name means there is nothing to upload; it has no security log."""
        if get_log:
            return get_log_call(location=location, log_type=log_type, oldest=oldest, latest=latest, retries=retries,
                                retry_interval=retry_interval)
        if log_type != DIAGNOSTICS_LOG:
            raise OperationError(N_("the station's security log needs GetLog, and its security extension is not "
                                    "known: read its configuration first"))
        payload: dict[str, Any] = {"location": location}
        if oldest is not None:
            payload["startTime"] = ocpp_ts(oldest)
        if latest is not None:
            payload["stopTime"] = ocpp_ts(latest)
        if retries is not None:
            payload["retries"] = retries
        if retry_interval is not None:
            payload["retryInterval"] = retry_interval
        return Call("GetDiagnostics", payload, outcome=lambda response: {
            "status": "Accepted" if response.get("fileName") else "NoFile", "response": response, "request_id": None})

    def set_charging_profile(self, *, evse_id: int, profile: dict[str, Any]) -> Call:
        return Call("SetChargingProfile", {"connectorId": evse_id, "csChargingProfiles": profile})

    def profile_id(self, profile: dict[str, Any]) -> int:
        return profile["chargingProfileId"]

    def charging_profile(self, *, profile_id: int, stack_level: int, purpose: str, schedule: dict[str, Any],
                         transaction_id: str | None, kind: str = "Absolute", recurrency: str | None = None,
                         valid_from: datetime | None = None, valid_to: datetime | None = None) -> dict[str, Any]:
        profile: dict[str, Any] = {"chargingProfileId": profile_id, "stackLevel": stack_level,
                                   "chargingProfilePurpose": self.purpose_names[purpose],
                                   "chargingProfileKind": kind, "chargingSchedule": schedule}
        if recurrency is not None:
            profile["recurrencyKind"] = recurrency
        if valid_from is not None:
            profile["validFrom"] = ocpp_ts(valid_from)
        if valid_to is not None:
            profile["validTo"] = ocpp_ts(valid_to)
        if transaction_id is not None:
            profile["transactionId"] = int(transaction_id)
        return profile

    def clear_charging_profile(self, *, profile_id: int | None, evse_id: int | None, purpose: str | None,
                               stack_level: int | None) -> Call:
        if profile_id is not None:
            return Call("ClearChargingProfile", {"id": profile_id})
        payload: dict[str, Any] = {}
        if evse_id is not None:
            payload["connectorId"] = evse_id
        if purpose is not None:
            payload["chargingProfilePurpose"] = self.purpose_names[purpose]
        if stack_level is not None:
            payload["stackLevel"] = stack_level
        return Call("ClearChargingProfile", payload)

    def get_composite_schedule(self, *, evse_id: int, duration: int, unit: str) -> Call:
        return Call("GetCompositeSchedule", {"duration": duration, "chargingRateUnit": unit, "connectorId": evse_id})

    def composite_schedule(self, answer: dict[str, Any]) -> dict[str, Any] | None:
        return answer.get("chargingSchedule")

    async def station_caps(self, station_pk: int) -> StationCaps:
        """From the configuration keys (ChargingScheduleAllowedChargingRateUnit,
        ChargeProfileMaxStackLevel, ChargingScheduleMaxPeriods)."""
        caps = StationCaps()
        keys = {k["key"]: k["value"] for k in await ConfigurationKey.select(
            ConfigurationKey.key, ConfigurationKey.value).where(ConfigurationKey.station == station_pk)}
        units = keys.get("ChargingScheduleAllowedChargingRateUnit")
        if units and "current" not in units.lower() and "power" in units.lower():
            caps.unit = "W"
        caps.max_stack_level = int_or_none(keys.get("ChargeProfileMaxStackLevel"))
        caps.max_periods = int_or_none(keys.get("ChargingScheduleMaxPeriods"))
        return caps

    def reservation_refusal(self, *, id_token: str, group_id_token: str | None,
                            connector_type: str | None) -> OperationError | None:
        if connector_type:
            return OperationError(N_("connector_type exists in OCPP 2.0.1 only"))
        if len(id_token) > ID_TAG_LENGTH or len(group_id_token or "") > ID_TAG_LENGTH:
            return OperationError(N_("OCPP 1.6 id tags are 20 characters at most"))
        return None

    def reserve_now(self, *, reservation_id: int, id_token: str, token_type: str, group_id_token: str | None,
                    expires_at: datetime, evse_id: int | None, connector_type: str | None) -> Call:
        """Reserves connector ``evse_id`` (0: the station)."""
        payload: dict[str, Any] = {"connectorId": evse_id or 0, "expiryDate": ocpp_ts(expires_at),
                                   "idTag": id_token, "reservationId": reservation_id}
        if group_id_token:
            payload["parentIdTag"] = group_id_token
        return Call("ReserveNow", payload)

    def local_list_version(self, response: dict[str, Any]) -> int:
        return int(response["listVersion"])

    def local_list_item(self, id_token: str, entry: Entry | None, token_type: str) -> dict[str, Any]:
        """1.6 id tags have no type."""
        item: dict[str, Any] = {"idTag": id_token}
        if entry is not None:
            info: dict[str, Any] = {"status": entry["status"] if entry["status"] in LIST_STATUSES else "Invalid"}
            if entry.get("expires_at"):
                info["expiryDate"] = entry["expires_at"]
            if entry.get("group") and len(entry["group"]) <= ID_TAG_LENGTH:
                info["parentIdTag"] = entry["group"]
            item["idTagInfo"] = info
        return item

    def send_local_list(self, *, list_version: int, update_type: str, items: list[dict[str, Any]]) -> Call:
        payload: dict[str, Any] = {"listVersion": list_version, "updateType": update_type}
        if items:
            payload["localAuthorizationList"] = items
        return Call("SendLocalList", payload)

    async def local_list_capabilities(self, station_pk: int) -> LocalListCapabilities:
        """From the configuration keys: the LocalAuthListManagement profile, LocalAuthListEnabled,
        SendLocalListMaxLength, LocalAuthListMaxLength."""
        rows = {r["key"]: r["value"] for r in await ConfigurationKey.select(ConfigurationKey.key, ConfigurationKey.value)
                .where((ConfigurationKey.station == station_pk) & ConfigurationKey.key.is_in(
                    ["SupportedFeatureProfiles", "LocalAuthListEnabled", "LocalAuthListMaxLength",
                     "SendLocalListMaxLength"]))}
        profiles = rows.get("SupportedFeatureProfiles")
        return LocalListCapabilities(
            supported=None if profiles is None else "LocalAuthListManagement" in
            [p.strip() for p in str(profiles).split(",")],
            enabled=bool_or_none(rows.get("LocalAuthListEnabled")),
            per_message=positive_int(rows.get("SendLocalListMaxLength")),
            max_entries=positive_int(rows.get("LocalAuthListMaxLength")))

    def final_cost(self, *, transaction_id: str, cost: SessionCost) -> Call:
        """1.6 has no final cost in StopTransaction's answer: a California Pricing ``DataTransfer``
        (FinalCost) carries it."""
        return Call("DataTransfer", final_cost_data_transfer(transaction_id, cost))

    def running_cost(self, *, transaction_id: str, cost: SessionCost, meter_wh: float | None, at: datetime,
                     charging: bool) -> Call:
        """1.6 has no running cost message: a California Pricing ``DataTransfer`` (RunningCost)."""
        try:
            int(transaction_id)
        except ValueError:
            raise OperationError(N_("1.6 transaction ids are integers, not %(transaction)s"),
                                 transaction=repr(transaction_id)) from None
        return Call("DataTransfer", running_cost_data_transfer(transaction_id=transaction_id, cost=cost,
                                                               meter_wh=meter_wh, at=at, charging=charging))

    # -- certificates: the security extension (CertificateUseEnumType has two types)

    installable_certificate_types = frozenset(CERTIFICATE_TYPES)

    def certificate_signed(self, *, chain: str, certificate_type: str) -> Call:
        if certificate_type != "ChargingStationCertificate":
            raise self._not_in_version(f"{certificate_type} (only charge point certificates)")
        return Call("CertificateSigned", {"certificateChain": chain})

    def install_certificate(self, *, certificate_type: str, certificate: str) -> Call:
        self._check_certificate_type(certificate_type)
        return Call("InstallCertificate", {"certificateType": CERTIFICATE_TYPES[certificate_type],
                                           "certificate": certificate})

    def get_installed_certificates(self, *, certificate_types: list[str] | None) -> list[Call]:
        """One call per type: 1.6 asks for one type at a time."""
        calls = []
        for certificate_type in certificate_types or sorted(CERTIFICATE_TYPES):
            self._check_certificate_type(certificate_type)

            def outcome(response: dict[str, Any], certificate_type: str = certificate_type) -> dict[str, Any]:
                return {**status_of(response), "certificates": [
                    {"certificate_type": certificate_type, "hash_data": hash_data, "child_hash_data": []}
                    for hash_data in response.get("certificateHashData") or []]}

            calls.append(Call("GetInstalledCertificateIds", {"certificateType": CERTIFICATE_TYPES[certificate_type]},
                              outcome=outcome))
        return calls

    def renew_certificate(self, *, certificate_type: str) -> Call:
        if certificate_type != "ChargingStationCertificate":
            raise self._not_in_version(f"{certificate_type} (only charge point certificates)")
        return Call("ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"})
