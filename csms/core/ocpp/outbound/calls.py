"""The interface every version's outbound adapter implements, and the pieces they share.

An operation asks for something version-neutral ("reset hard", "unlock EVSE 1 connector 1");
the station's adapter answers with a :class:`Call`: the action and payload of its protocol
version, how the station's answer reads as the neutral result, and what of the answer to store.
"""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from csms.core.timeutil import ocpp_ts
from csms.i18n import N_, TranslatedError

if TYPE_CHECKING:
    from datetime import datetime

    from csms.core.domain import SessionCost
    from csms.core.services.reports import ReportService
    from csms.core.services.stations import StationState

Outcome = Callable[[dict[str, Any]], dict[str, Any]]
Recorder = Callable[["ReportService", "StationState", dict[str, Any]], Awaitable[Any]]


class OperationError(TranslatedError, ValueError):
    """The operation cannot be expressed for this station (bad arguments or state); the message
    is worded when read, in the reader's language (see :class:`csms.i18n.TranslatedError`)."""


def answered(response: dict[str, Any]) -> dict[str, Any]:
    """The result of an answer that carries the outcome in its ``status``."""
    return {"status": response.get("status", "Accepted"), "response": response}


def accepted(response: dict[str, Any]) -> dict[str, Any]:
    """The result of an answer without a status of its own: the station took the call."""
    return {"status": "Accepted", "response": response}


def answered_for(request_id: int) -> Outcome:
    """``answered`` with the ``request_id`` the station's later notifications will carry."""
    return lambda response: {**answered(response), "request_id": request_id}


async def nothing_to_record(reports: ReportService, state: StationState, response: dict[str, Any]) -> None:
    """The answer carries nothing the CSMS keeps."""


def new_request_id() -> int:
    return random.randint(1, 2**31 - 1)


# The logs a station uploads (LogEnumType of 2.0.1 and of the 1.6 security extension).
DIAGNOSTICS_LOG, SECURITY_LOG = "DiagnosticsLog", "SecurityLog"
LOG_TYPES = (DIAGNOSTICS_LOG, SECURITY_LOG)


def get_log_call(*, location: str, log_type: str, oldest: datetime | None, latest: datetime | None,
                 retries: int | None, retry_interval: int | None) -> Call:
    """GetLog, the same in 2.0.1 and the 1.6 security extension; the outcome has the ``request_id``
    the station's LogStatusNotifications carry."""
    request_id = new_request_id()
    log: dict[str, Any] = {"remoteLocation": location}
    if oldest is not None:
        log["oldestTimestamp"] = ocpp_ts(oldest)
    if latest is not None:
        log["latestTimestamp"] = ocpp_ts(latest)
    payload: dict[str, Any] = {"logType": log_type, "requestId": request_id, "log": log}
    if retries is not None:
        payload["retries"] = retries
    if retry_interval is not None:
        payload["retryInterval"] = retry_interval
    return Call("GetLog", payload, outcome=answered_for(request_id))


# Version-neutral purposes of a charging profile; each adapter names them in its version.
STATION_MAX, TX_DEFAULT, TX = "station_max", "tx_default", "tx"

# A local authorization list entry, version-neutral: ``{"status", "expires_at", "group", "type"}``
# for an id token, or ``None`` to remove the token (a differential update's entry without
# idTagInfo / idTokenInfo).
Entry = dict[str, Any]


@dataclass
class StationCaps:
    """What a station told about its smart charging (configuration keys / device model)."""

    unit: str = "A"
    max_stack_level: int | None = None
    max_periods: int | None = None


@dataclass(frozen=True)
class LocalListCapabilities:
    """What the station's stored configuration says about its list (None: it did not say)."""

    supported: bool | None = None  # 1.6 LocalAuthListManagement profile / 2.0.1 LocalAuthListCtrlr.Available
    enabled: bool | None = None  # 1.6 LocalAuthListEnabled / 2.0.1 LocalAuthListCtrlr.Enabled
    per_message: int | None = None  # 1.6 SendLocalListMaxLength / 2.0.1 ItemsPerMessage
    bytes_per_message: int | None = None  # 2.0.1 BytesPerMessage
    max_entries: int | None = None  # 1.6 LocalAuthListMaxLength / 2.0.1 Entries' maxLimit


@dataclass(frozen=True)
class Call:
    """One CSMS-initiated call in the station's protocol version."""

    action: str
    payload: dict[str, Any]
    outcome: Outcome = answered
    record: Recorder = nothing_to_record


class StationCalls(ABC):
    """The calls of one protocol version, built from version-neutral requests.

    EVSE numbers are 2.0.1's; a 1.6 adapter reads EVSE N as connector N (0: the station).
    """

    version: str
    # The version's names of the neutral charging profile purposes.
    purpose_names: dict[str, str]
    # What an id token named in a local authorization list may hold.
    max_id_token_length: int
    # Features only some versions have.
    supports_display_messages: bool = False  # SetDisplayMessage, GetDisplayMessages, ClearDisplayMessage
    supports_transaction_status: bool = False  # GetTransactionStatus
    final_cost_by_data_transfer: bool = False  # the final cost in a DataTransfer after the transaction
    supports_monitoring: bool = False  # Set/ClearVariableMonitoring, GetMonitoringReport, SetMonitoringBase/Level
    supports_customer_information: bool = False  # CustomerInformation
    supports_profile_reports: bool = False  # GetChargingProfiles, answered in ReportChargingProfiles
    supports_custom_reports: bool = False  # GetReport of chosen components / criteria, answered in NotifyReport
    supports_variables: bool = False  # GetVariables / SetVariables of chosen device-model variables
    supports_network_profiles: bool = False  # SetNetworkProfile (1.6 has none)
    supports_running_cost: bool = False  # the running cost of a transaction for the station's display
    supports_fallback_texts: bool = False  # TariffCostCtrlr.TariffFallbackMessage / TotalCostFallbackMessage
    supports_tariffs: bool = False  # SetDefaultTariff, GetTariffs, ClearTariffs, ChangeTransactionTariff (2.1)
    supports_der: bool = False  # SetDERControl, GetDERControl, ClearDERControl, RequestBatterySwap (2.1)
    # AFRRSignal, UpdateDynamicSchedule, UsePriorityCharging, NotifyAllowedEnergyTransfer, NotifyWebPaymentStarted (2.1)
    supports_energy_controls: bool = False
    supports_event_streams: bool = False  # GetPeriodicEventStream, AdjustPeriodicEventStream (2.1)
    running_cost_by_data_transfer: bool = False  # ... in a vendor DataTransfer (an option, not the version's own)

    #: DataTransfer's ``data`` is a string in this version (1.6), any JSON value in 2.0.1 and 2.1
    data_transfer_text: bool = False

    def data_transfer(self, *, vendor_id: str, message_id: str | None, data: Any) -> Call:
        """DataTransfer to the station (P01, 1.6 DataTransfer CS→CP); where the version takes only
        text, other ``data`` goes as its JSON text. The outcome has the station's ``data``."""
        payload: dict[str, Any] = {"vendorId": vendor_id}
        if message_id:
            payload["messageId"] = message_id
        if data is not None:
            payload["data"] = json.dumps(data) if self.data_transfer_text and not isinstance(data, str) else data
        return Call("DataTransfer", payload, outcome=lambda r: {**answered(r), "data": r.get("data")})

    def _not_in_version(self, what: str) -> OperationError:
        return OperationError(N_("OCPP %(version)s has no %(what)s"), version=self.version, what=what)

    @abstractmethod
    def fit_id_token(self, id_token: str) -> str:
        """``id_token`` cut to what the version's id tokens hold."""

    @abstractmethod
    def remote_start(self, *, id_token: str, evse_id: int | None, token_type: str,
                     charging_profile: dict[str, Any] | None = None) -> Call:
        """``charging_profile``: a TxProfile from :meth:`remote_start_profile` for the transaction."""

    @abstractmethod
    def remote_start_profile(self, *, profile_id: int, stack_level: int, schedule: dict[str, Any]) -> dict[str, Any]:
        """The TxProfile of a remote start, shaped for the version: relative to the transaction's
        start and without a transaction id (the transaction does not exist yet); ``schedule`` has
        ``chargingRateUnit``, ``chargingSchedulePeriod`` and optionally ``duration``."""

    @abstractmethod
    def remote_stop(self, *, transaction_id: str) -> Call: ...

    @abstractmethod
    def reset(self, *, kind: str, evse_id: int | None) -> Call:
        """``kind``: soft or on_idle, hard or immediate."""

    @abstractmethod
    def unlock(self, *, evse_id: int, connector_id: int) -> Call: ...

    @abstractmethod
    def change_availability(self, *, operative: bool, evse_id: int, connector_id: int | None) -> Call: ...

    def clear_cache(self) -> Call:
        return Call("ClearCache", {})

    @abstractmethod
    def trigger(self, *, message: str, evse_id: int | None) -> Call: ...

    @abstractmethod
    def get_configuration(self, *, keys: list[str] | None) -> Call:
        """Read ``keys`` (all without); ``record`` stores what the answer reports."""

    @abstractmethod
    def set_configuration(self, *, key: str, value: str) -> Call:
        """Set ``key``; ``record`` stores the new value (once the station took it)."""

    def get_custom_report(self, *, request_id: int, criteria: list[str] | None,
                          component_variables: list[dict[str, Any]] | None) -> Call:
        """GetReport of the device-model variables of ``component_variables`` (2.0.1
        ComponentVariableType) meeting ``criteria`` (ComponentCriterionEnumType); the outcome
        has the ``request_id`` of the NotifyReport parts to come."""
        raise self._not_in_version("GetReport (OCPP 2.0.1 has; 1.6 reads chosen keys with GetConfiguration)")

    @abstractmethod
    def rotate_password(self, *, password: str) -> Call:
        """Give the station the Basic-auth ``password``."""

    @abstractmethod
    def update_firmware(self, *, location: str, retrieve_at: datetime, signing_certificate: str | None,
                        signature: str | None, retries: int | None, install_at: datetime | None = None) -> Call:
        """The outcome has the ``request_id`` of the update (None when the call has none);
        ``install_at``: when the station installs it (2.0.1 and the 1.6 security extension's
        ``installDateTime``; a plain 1.6 UpdateFirmware has none)."""

    async def takes_get_log(self, station_pk: int) -> bool:
        """Whether the station takes GetLog (2.0.1: always; 1.6: with the security extension)."""
        return True

    @abstractmethod
    def get_logs(self, *, location: str, log_type: str = DIAGNOSTICS_LOG, oldest: datetime | None = None,
                 latest: datetime | None = None, retries: int | None = None, retry_interval: int | None = None,
                 get_log: bool = True) -> Call:
        """Upload the log of ``log_type`` (:data:`LOG_TYPES`) between ``oldest`` and ``latest`` to
        ``location``: GetLog when ``get_log`` (see :meth:`takes_get_log`), else the version's older
        message; the outcome has the ``request_id`` (None when the call has none)."""

    @abstractmethod
    def set_charging_profile(self, *, evse_id: int, profile: dict[str, Any]) -> Call:
        """Send ``profile``, already shaped for the version."""

    @abstractmethod
    def profile_id(self, profile: dict[str, Any]) -> int:
        """The id of a ``profile`` shaped for the version."""

    @abstractmethod
    def charging_profile(self, *, profile_id: int, stack_level: int, purpose: str, schedule: dict[str, Any],
                         transaction_id: str | None, kind: str = "Absolute", recurrency: str | None = None,
                         valid_from: datetime | None = None, valid_to: datetime | None = None) -> dict[str, Any]:
        """A profile of the neutral ``purpose`` (:data:`STATION_MAX`, :data:`TX_DEFAULT`,
        :data:`TX`) shaped for the version; ``schedule`` has ``startSchedule`` (not for a
        ``Relative`` ``kind``), ``chargingRateUnit`` and ``chargingSchedulePeriod``;
        ``transaction_id`` for a TX profile bound to its transaction; ``recurrency`` (Daily,
        Weekly) for a ``Recurring`` one; ``valid_from`` / ``valid_to`` when given."""

    @abstractmethod
    def clear_charging_profile(self, *, profile_id: int | None, evse_id: int | None, purpose: str | None,
                               stack_level: int | None) -> Call:
        """ClearChargingProfile of the profile ``profile_id``, or of the profiles matching the
        others (neutral ``purpose``; all None: every profile the CSMS may clear)."""

    def get_charging_profiles(self, *, request_id: int, evse_id: int | None, purpose: str | None,
                              stack_level: int | None, profile_ids: list[int] | None,
                              limit_sources: list[str] | None) -> Call:
        """GetChargingProfiles of the profiles matching the criteria; the outcome has the
        ``request_id`` of the ReportChargingProfiles to come."""
        raise self._not_in_version("GetChargingProfiles (OCPP 2.0.1 has; 1.6 has GetCompositeSchedule)")

    @abstractmethod
    def get_composite_schedule(self, *, evse_id: int, duration: int, unit: str) -> Call: ...

    @abstractmethod
    def composite_schedule(self, answer: dict[str, Any]) -> dict[str, Any] | None:
        """The schedule in a GetCompositeSchedule answer (None without one)."""

    @abstractmethod
    async def station_caps(self, station_pk: int) -> StationCaps:
        """Rate unit, stack level and periods the station allows, from its stored configuration."""

    @abstractmethod
    def reservation_refusal(self, *, id_token: str, group_id_token: str | None,
                            connector_type: str | None) -> OperationError | None:
        """Why the version cannot express this reservation; None when it can."""

    @abstractmethod
    def reserve_now(self, *, reservation_id: int, id_token: str, token_type: str, group_id_token: str | None,
                    expires_at: datetime, evse_id: int | None, connector_type: str | None) -> Call:
        """Reserve EVSE ``evse_id`` (None or 0: any) for ``id_token`` or its group until ``expires_at``."""

    def cancel_reservation(self, *, reservation_id: int) -> Call:
        return Call("CancelReservation", {"reservationId": reservation_id})

    # -- local authorization list

    def get_local_list_version(self) -> Call:
        """The outcome has the station's ``list_version``."""
        return Call("GetLocalListVersion", {},
                    outcome=lambda response: {**accepted(response), "list_version": self.local_list_version(response)})

    @abstractmethod
    def local_list_version(self, response: dict[str, Any]) -> int:
        """The list version in a GetLocalListVersion answer (-1: the station has no list support)."""

    @abstractmethod
    def local_list_item(self, id_token: str, entry: Entry | None, token_type: str) -> dict[str, Any]:
        """One element of ``localAuthorizationList``; ``entry`` None removes the token."""

    @abstractmethod
    def send_local_list(self, *, list_version: int, update_type: str, items: list[dict[str, Any]]) -> Call:
        """SendLocalList of ``items`` (made by :meth:`local_list_item`); ``update_type`` "Full" or "Differential"."""

    @abstractmethod
    async def local_list_capabilities(self, station_pk: int) -> LocalListCapabilities:
        """The station's list capabilities from the configuration it reported."""

    # -- features only some versions have

    def set_display_message(self, *, message: dict[str, Any]) -> Call:
        """Show ``message`` (a 2.0.1 MessageInfo, as the CSMS keeps display messages)."""
        raise self._not_in_version("display messages")

    def clear_display_message(self, *, message_id: int) -> Call:
        raise self._not_in_version("display messages")

    def get_display_messages(self, *, ids: list[int] | None = None, priority: str | None = None,
                             state: str | None = None) -> Call:
        """Ask for the station's messages (those with ``ids``, ``priority`` and/or ``state`` when
        given); the outcome has the ``request_id`` of its reports."""
        raise self._not_in_version("display messages")

    def publish_firmware(self, *, location: str, checksum: str, retries: int | None,
                         retry_interval_s: int | None) -> Call:
        """A local controller makes the firmware at ``location`` (MD5 ``checksum``) available to
        the stations behind it; the outcome has the ``request_id`` of its status notifications."""
        raise self._not_in_version("PublishFirmware")

    def unpublish_firmware(self, *, checksum: str) -> Call:
        """A local controller stops publishing the firmware with that MD5 ``checksum``."""
        raise self._not_in_version("UnpublishFirmware")

    def get_transaction_status(self, *, transaction_id: str) -> Call:
        """The outcome has ``messages_in_queue`` (the station still has messages of the transaction
        to send) and ``ongoing`` (whether it is still going on; None when the answer does not say)."""
        raise self._not_in_version("GetTransactionStatus")

    def final_cost(self, *, transaction_id: str, cost: SessionCost) -> Call:
        """The final ``cost`` of a finished transaction, for the station to show."""
        raise self._not_in_version("final cost message")

    def running_cost(self, *, transaction_id: str, cost: SessionCost, meter_wh: float | None, at: datetime,
                     charging: bool) -> Call:
        """The running ``cost`` of an ongoing transaction, for the station to show; ``meter_wh``
        the meter register the cost was computed at, ``charging`` False while the EV is idle."""
        raise self._not_in_version("running cost message")

    # -- network connection profiles (2.0.1 B09, A05, B10)

    def set_network_profile(self, *, slot: int, url: str, security_profile: int, interface: str,
                            message_timeout: int) -> Call:
        """SetNetworkProfile: store a connection to ``url`` (this CSMS speaking the version's
        OCPP over JSON) with ``security_profile`` in configuration ``slot``."""
        raise self._not_in_version("SetNetworkProfile (OCPP 2.0.1 has)")

    # -- monitoring (2.0.1 N: monitors on device-model variables; their events come in NotifyEvent)

    def set_monitors(self, *, monitors: list[dict[str, Any]]) -> Call:
        """SetVariableMonitoring of ``monitors`` (2.0.1 SetMonitoringDataType, as the CSMS keeps
        them); the outcome has ``results``, one per monitor in order."""
        raise self._not_in_version("variable monitoring")

    def clear_monitors(self, *, monitor_ids: list[int]) -> Call:
        """ClearVariableMonitoring; the outcome has ``results`` (``id``, ``status``)."""
        raise self._not_in_version("variable monitoring")

    def get_variables(self, *, data: list[dict[str, Any]]) -> Call:
        """GetVariables of ``data`` (2.0.1 GetVariableDataType); the outcome has ``results``, the
        station's GetVariableResult of each."""
        raise self._not_in_version("GetVariables (OCPP 2.0.1 has; 1.6 reads keys with GetConfiguration)")

    def set_variables(self, *, data: list[dict[str, Any]]) -> Call:
        """SetVariables of ``data`` (2.0.1 SetVariableDataType); the outcome has ``results``, the
        station's SetVariableResult of each."""
        raise self._not_in_version("SetVariables (OCPP 2.0.1 has; 1.6 sets a key with ChangeConfiguration)")

    def items_per_message(self, *, component: str, message: str) -> Call:
        """GetVariables of ``component``.ItemsPerMessage[``message``]; the outcome has
        ``per_message`` (None: the station does not say)."""
        raise self._not_in_version("device model")

    def monitoring_items_per_message(self, *, message: str) -> Call:
        """How many monitors one ``message`` (SetVariableMonitoring, ClearVariableMonitoring) may
        carry; the outcome has ``per_message`` (None: the station does not say)."""
        raise self._not_in_version("variable monitoring")

    def get_monitoring_report(self, *, request_id: int, criteria: list[str] | None,
                              component_variables: list[dict[str, Any]] | None) -> Call:
        """The outcome has the ``request_id`` of the NotifyMonitoringReport parts to come."""
        raise self._not_in_version("variable monitoring")

    def set_monitoring_base(self, *, base: str) -> Call:
        raise self._not_in_version("variable monitoring")

    def set_monitoring_level(self, *, severity: int) -> Call:
        raise self._not_in_version("variable monitoring")

    # -- customer information (2.0.1 N09/N10)

    def customer_information(self, *, report: bool, clear: bool, id_token: dict[str, Any] | None,
                             customer_identifier: str | None, customer_certificate: dict[str, Any] | None) -> Call:
        """CustomerInformation about one customer; the outcome has the ``request_id`` of the
        NotifyCustomerInformation parts to come."""
        raise self._not_in_version("customer information")

    # -- tariffs the station calculates costs with (2.1 I11-I13)

    def set_default_tariff(self, *, evse_id: int, tariff: dict[str, Any]) -> Call:
        """SetDefaultTariff: ``tariff`` (a 2.1 TariffType) at EVSE ``evse_id`` (0: every EVSE)."""
        raise self._not_in_version("tariffs (OCPP 2.1 has)")

    def get_tariffs(self, *, evse_id: int) -> Call:
        """GetTariffs; the outcome has ``assignments``, the station's tariffAssignments."""
        raise self._not_in_version("tariffs (OCPP 2.1 has)")

    def clear_tariffs(self, *, tariff_ids: list[str] | None, evse_id: int | None) -> Call:
        """ClearTariffs; the outcome has ``results``, one per tariff the station cleared or kept."""
        raise self._not_in_version("tariffs (OCPP 2.1 has)")

    def change_transaction_tariff(self, *, transaction_id: str, tariff: dict[str, Any]) -> Call:
        raise self._not_in_version("tariffs (OCPP 2.1 has)")

    # -- DER controls and battery swaps (2.1)

    def set_der_control(self, *, control_id: str, control_type: str, is_default: bool, field: str,
                        control: dict[str, Any]) -> Call:
        """SetDERControl: ``control`` (the settings of ``control_type``) in the request's ``field``."""
        raise self._not_in_version("DER controls (OCPP 2.1 has)")

    def get_der_control(self, *, request_id: int, control_type: str | None, control_id: str | None,
                        is_default: bool | None) -> Call:
        raise self._not_in_version("DER controls (OCPP 2.1 has)")

    def clear_der_control(self, *, is_default: bool, control_type: str | None, control_id: str | None) -> Call:
        raise self._not_in_version("DER controls (OCPP 2.1 has)")

    def request_battery_swap(self, *, request_id: int, id_token: str, token_type: str) -> Call:
        raise self._not_in_version("battery swaps (OCPP 2.1 has)")

    # -- grid signals, dynamic schedules, priority charging, energy transfer, web payment (2.1)

    def afrr_signal(self, *, timestamp: datetime, signal: int) -> Call:
        """AFRRSignal: the value of the aFRR signal (of the station's v2xSignalWattCurve) from ``timestamp``."""
        raise self._not_in_version("aFRR signals (OCPP 2.1 has)")

    def update_dynamic_schedule(self, *, profile_id: int, update: dict[str, Any]) -> Call:
        """UpdateDynamicSchedule of the dynamic charging profile ``profile_id`` (``update``: a
        ChargingScheduleUpdateType)."""
        raise self._not_in_version("dynamic schedule updates (OCPP 2.1 has)")

    def use_priority_charging(self, *, transaction_id: str, activate: bool) -> Call:
        raise self._not_in_version("priority charging (OCPP 2.1 has)")

    def notify_allowed_energy_transfer(self, *, transaction_id: str, modes: list[str]) -> Call:
        raise self._not_in_version("allowed energy transfer modes (OCPP 2.1 has)")

    def notify_web_payment_started(self, *, evse_id: int, timeout: int) -> Call:
        raise self._not_in_version("web payments (OCPP 2.1 has)")

    # -- periodic event streams (2.1): the station opens them, the CSMS asks and adjusts

    def get_event_streams(self) -> Call:
        """GetPeriodicEventStream: the streams the station has open; the outcome has ``streams``
        (its ``constantStreamData``)."""
        raise self._not_in_version("periodic event streams (OCPP 2.1 has)")

    def adjust_event_stream(self, *, stream_id: int, interval: int | None, values: int | None) -> Call:
        """AdjustPeriodicEventStream: send stream ``stream_id`` every ``interval`` seconds and/or
        after ``values`` values."""
        raise self._not_in_version("periodic event streams (OCPP 2.1 has)")

    # -- certificates (1.6: the security extension)
    # Certificate types are named as in 2.0.1 (InstallCertificateUseEnumType,
    # GetCertificateIdUseEnumType, CertificateSigningUseEnumType); a 1.6 adapter maps them.

    #: The types InstallCertificate and GetInstalledCertificateIds take in this version.
    installable_certificate_types: frozenset[str] = frozenset()

    @abstractmethod
    def certificate_signed(self, *, chain: str, certificate_type: str) -> Call:
        """CertificateSigned: give the station the signed ``chain`` (PEM, the leaf first)."""

    @abstractmethod
    def install_certificate(self, *, certificate_type: str, certificate: str) -> Call:
        """InstallCertificate of a CA ``certificate`` (PEM) of ``certificate_type``."""

    @abstractmethod
    def get_installed_certificates(self, *, certificate_types: list[str] | None) -> list[Call]:
        """GetInstalledCertificateIds of ``certificate_types`` (None: all), as many calls as the
        version needs; each outcome has ``certificates``: ``{"certificate_type", "hash_data",
        "child_hash_data"}`` per certificate, ``hash_data`` as OCPP's CertificateHashDataType."""

    def delete_certificate(self, *, hash_data: dict[str, Any]) -> Call:
        """DeleteCertificate of the certificate ``hash_data`` (OCPP's CertificateHashDataType) names."""
        return Call("DeleteCertificate", {"certificateHashData": hash_data})

    @abstractmethod
    def renew_certificate(self, *, certificate_type: str) -> Call:
        """Ask the station to send a new CSR of ``certificate_type`` (TriggerMessage)."""

    def _check_certificate_type(self, certificate_type: str) -> None:
        if certificate_type not in self.installable_certificate_types:
            raise OperationError(N_("OCPP %(version)s installs certificate types %(types)s, not %(type)s"),
                                 version=self.version, types=", ".join(sorted(self.installable_certificate_types)),
                                 type=repr(certificate_type))


def int_or_none(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def positive_int(value: Any) -> int | None:
    """A positive whole number (``"100"``, ``"100.0"``); None for anything else."""
    try:
        number = int(float(str(value).strip()))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def bool_or_none(value: Any) -> bool | None:
    text = str(value).strip().lower() if value is not None else ""
    return True if text == "true" else False if text == "false" else None
