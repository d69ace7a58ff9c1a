"""What the operator does in each tzi-OCTT test: the REST calls, and what to wait for first.

A test absent from PLAN needs no operator (the station drives it). ``after`` is the OCPP action
the station must have sent (since the test started) before the call (``out:Action``: the CSMS
must have sent it; ``connect``: the station's socket is open; empty: before the station
connects), ``count`` how many of it;
``delay`` seconds more. Placeholders: ``{station}``; ``{tx}`` the transactionId of the station's
latest TransactionEvent; ``{session}`` / ``{reservation}`` / ``{profile}`` the latest session,
reservation and known charging profile of the station; ``{now}``, ``{now+N}`` timestamps.

The real feature endpoints are used wherever the CSMS has one; ``/ocpp/{Action}`` (the generic
command, the station's raw payload) only where the test wants a message no feature sends (a
deliberately unsupported value, a TxProfile without a transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Step:
    method: str
    path: str
    body: Any = None
    after: str = "BootNotification"
    count: int = 1
    delay: float = 0.5


S = "/stations/{station}"


def raw(action: str, payload: dict[str, Any], after: str = "BootNotification", count: int = 1,
        delay: float = 0.5) -> Step:
    return Step("POST", f"{S}/ocpp/{action}", payload, after, count, delay)


def profile(profile_id: int, purpose: str, kind: str = "Absolute", limit: float = 6.0,
            stack_level: int = 1, **extra: Any) -> dict[str, Any]:
    # valid for 30 s: the mock stations forget a profile with the test, the CSMS (rightly) does not,
    # and an EVSE's TxDefaultProfile still in force would hold the EV schedules of K53-K57 to it
    schedule: dict[str, Any] = {"id": 1, "chargingRateUnit": "A", "duration": 30,
                                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
    body: dict[str, Any] = {"id": profile_id, "stackLevel": stack_level, "chargingProfilePurpose": purpose,
                            "chargingProfileKind": kind, "chargingSchedule": [schedule]}
    if kind == "Absolute":
        schedule["startSchedule"] = "{now}"
        body["validFrom"] = "{now}"
        body["validTo"] = "{now+30}"
    if kind == "Recurring":
        body["recurrencyKind"] = "Daily"
        schedule["startSchedule"] = "{now}"
        body["validTo"] = "{now+30}"
    body.update(extra)
    return body


PURPOSES = {"TxDefaultProfile": "tx_default", "TxProfile": "tx", "ChargingStationMaxProfile": "station_max"}


def set_profile(evse_id: int, prof: dict[str, Any], after: str = "BootNotification", count: int = 1,
                delay: float = 0.5) -> Step:
    """The operator's set-profile endpoint (``POST /stations/{id}/charging-profiles``) with the
    schedule of ``prof`` (as :func:`profile` makes it)."""
    schedule = prof["chargingSchedule"][0]
    body: dict[str, Any] = {
        "evse_id": evse_id, "purpose": PURPOSES[prof["chargingProfilePurpose"]], "profile_id": prof["id"],
        "stack_level": prof["stackLevel"], "kind": prof["chargingProfileKind"], "unit": schedule["chargingRateUnit"],
        "duration": schedule["duration"],
        "periods": [{"start_period": p["startPeriod"], "limit": p["limit"]} for p in schedule["chargingSchedulePeriod"]]}
    if "startSchedule" in schedule:
        body["start_at"] = schedule["startSchedule"]
    for key, name in (("validFrom", "valid_from"), ("validTo", "valid_to"), ("recurrencyKind", "recurrency"),
                      ("transactionId", "transaction_id")):
        if key in prof:
            body[name] = prof[key]
    return Step("POST", f"{S}/charging-profiles", body, after, count, delay)


def raw_profile(evse_id: int, prof: dict[str, Any], after: str = "BootNotification", count: int = 1,
                delay: float = 0.5) -> Step:
    """A SetChargingProfile the CSMS's endpoint would refuse to send (a TxProfile without a
    transaction, K01.FR.03): the generic command."""
    return raw("SetChargingProfile", {"evseId": evse_id, "chargingProfile": prof}, after, count, delay)


def report(body: dict[str, Any], after: str = "BootNotification", delay: float = 0.5) -> Step:
    return Step("POST", f"{S}/charging-profiles/report", body, after, 1, delay)


TX = "TransactionEvent"


def mreport(body: dict[str, Any], delay: float = 0.5) -> Step:
    return Step("POST", f"{S}/monitoring/report", body, "StatusNotification", 1, delay)


def customer(report: bool, clear: bool) -> Step:
    return Step("POST", f"{S}/customer-information", {"report": report, "clear": clear, "id_token": "100000C01",
                                                       "token_type": "Central"}, "StatusNotification")


# ISO 15118 schedules (K15-K17) come from the smart-charging loop, which plans the stations of a site
IN_SITE = Step("PATCH", S, {"site": "{site_int}"}, "", 1, 0.0)
OUT_OF_SITE = Step("PATCH", S, {"site": None}, "", 1, 0.0)


PENDING = Step("PATCH", S, {"registration_status": "Pending"}, "", 1, 0.0)
ACCEPTED = Step("PATCH", S, {"registration_status": "Accepted"}, "", 1, 0.0)


def var(component: str, variable: str, **extra: Any) -> dict[str, Any]:
    return {"component": {"name": component}, "variable": {"name": variable}} | extra


def var_(component: str, variable: str, instance: str | None = None, **extra: Any) -> dict[str, Any]:
    """A variable as the variables endpoints take it."""
    return {"component": component, "variable": variable} | ({"variable_instance": instance} if instance else {}) | extra


def getvars(variables: list[dict[str, Any]]) -> Step:
    return Step("POST", f"{S}/variables/get", {"variables": variables}, "StatusNotification")


def avail(operative: bool, evse_id: int, connector_id: int | None = None, after: str = "StatusNotification",
          count: int = 1) -> Step:
    body: dict[str, Any] = {"operative": operative, "evse_id": evse_id}
    if connector_id is not None:
        body["connector_id"] = connector_id
    return Step("POST", f"{S}/availability", body, after, count, 1.5 if after == TX else 0.5)


def firmware(after: str = "StatusNotification", count: int = 1, delay: float = 0.5, **extra: Any) -> Step:
    return Step("POST", f"{S}/firmware", {"location": "https://127.0.0.1/firmware.bin",
                                           "signing_certificate": "{suite_ca}", "signature": "c2lnbmF0dXJl",
                                           "retries": 1} | extra, after, count, 1.5 if after == TX else delay)


def install(kind: str) -> Step:
    return Step("POST", f"{S}/certificates", {"certificate_type": kind, "certificate": "{suite_ca}"},
                "StatusNotification")


def installed(kinds: list[str], delay: float = 0.5) -> Step:
    return raw("GetInstalledCertificateIds", {"certificateType": kinds}, after="StatusNotification", delay=delay)


def show(fields: dict[str, Any], after: str = "StatusNotification", count: int = 1, delay: float = 0.5) -> Step:
    body = {"content": "OCTT test message", "priority": "NormalCycle", "format": "UTF8"} | fields
    return Step("POST", f"{S}/display-messages", body, after, count, delay)

PLAN: dict[str, list[Step]] = {
    # A Security (profiles 2 and 3 on the TLS listener at port+1)
    # A11-A14: the operator asks for a new certificate (TriggerMessage Sign...Certificate)
    "TC_A_11": [Step("POST", f"{S}/certificates/renew", {"certificate_type": "ChargingStationCertificate"}, "connect")],
    "TC_A_12": [Step("POST", f"{S}/certificates/renew", {"certificate_type": "V2GCertificate"}, "connect")],
    "TC_A_13": [Step("POST", f"{S}/certificates/renew", {"certificate_type": "CombinedCertificate"}, "connect")],
    "TC_A_14": [Step("POST", f"{S}/certificates/renew", {"certificate_type": "ChargingStationCertificate"}, "connect")],
    # A19 (first case, CP_A_SP1 from profile 1 to 2): the network profile and the switch, then the
    # operator raises the stored profile (the suite's station comes back as CP_A_SP2, not itself)
    "TC_A_19": [Step("POST", f"{S}/network-profiles/switch", {
        "slot": 1, "url": "wss://127.0.0.1:{tls_port}/ocpp", "security_profile": 2, "interface": "Wired0",
        "message_timeout": 30}, "connect"),
                Step("PATCH", S, {"security_profile": 2}, "out:Reset", 1, 0.0)],
    "TC_A_09": [Step("POST", f"{S}/rotate-password", None, "connect")],
    "TC_A_10": [Step("POST", f"{S}/rotate-password", None, "connect")],
    # B Provisioning
    "TC_B_02": [PENDING, Step("POST", f"{S}/approve", None, "BootNotification", 1, 2.0)],
    "TC_B_30": [PENDING],
    "TC_B_31": [PENDING, Step("POST", f"{S}/approve", None, "BootNotification", 1, 1.0),
                Step("POST", f"{S}/trigger", {"message": "BootNotification"}, "BootNotification", 1, 0.5)],
    # GetVariables / SetVariables of chosen variables (split by the station's ItemsPerMessage)
    "TC_B_06": [getvars([var_("OCPPCommCtrlr", "OfflineThreshold")])],
    "TC_B_07": [getvars([var_("OCPPCommCtrlr", "OfflineThreshold"), var_("AuthCtrlr", "AuthorizeRemoteStart")])],
    "TC_B_08": [getvars([var_("DeviceDataCtrlr", "ItemsPerMessage", "GetReport"),
                         var_("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"),
                         var_("DeviceDataCtrlr", "BytesPerMessage", "GetReport"),
                         var_("DeviceDataCtrlr", "BytesPerMessage", "GetVariables"),
                         var_("AuthCtrlr", "AuthorizeRemoteStart")])],
    "TC_B_09": [Step("PUT", f"{S}/configuration", {"key": "OCPPCommCtrlr.OfflineThreshold", "value": "123"},
                     "StatusNotification")],
    "TC_B_10": [Step("POST", f"{S}/variables/set", {"variables": [
        var_("OCPPCommCtrlr", "OfflineThreshold", value="123"),
        var_("AuthCtrlr", "AuthorizeRemoteStart", value="false")]}, "StatusNotification")],
    "TC_B_12": [raw("GetBaseReport", {"requestId": 12, "reportBase": "ConfigurationInventory"},
                    after="StatusNotification")],
    "TC_B_13": [Step("POST", f"{S}/configuration/refresh", None, "StatusNotification")],
    "TC_B_14": [raw("GetBaseReport", {"requestId": 14, "reportBase": "SummaryInventory"},
                    after="StatusNotification")],
    "TC_B_18": [Step("POST", f"{S}/configuration/report", {"criteria": ["Problem"], "component_variables": [
                    {"component": "EVSE", "evse_id": 1, "variable": "AvailabilityState"}]}, "StatusNotification"),
                Step("POST", f"{S}/configuration/report", {"criteria": ["Available"], "component_variables": [
                    {"component": "EVSE", "evse_id": 1, "variable": "AvailabilityState"}]}, "StatusNotification",
                     1, 2.0)],
    "TC_B_20": [Step("POST", f"{S}/reset", {"kind": "on_idle"}, "StatusNotification")],
    "TC_B_21": [Step("POST", f"{S}/reset", {"kind": "on_idle"}, TX, 1, 1.0)],
    "TC_B_22": [Step("POST", f"{S}/reset", {"kind": "immediate"}, TX, 1, 1.0)],
    "TC_B_25": [Step("POST", f"{S}/reset", {"kind": "on_idle", "evse_id": 1}, "StatusNotification")],
    "TC_B_26": [Step("POST", f"{S}/reset", {"kind": "on_idle", "evse_id": 1}, TX, 1, 1.0)],
    "TC_B_27": [Step("POST", f"{S}/reset", {"kind": "immediate", "evse_id": 1}, TX, 1, 1.0)],
    "TC_B_42": [Step("POST", f"{S}/network-profiles", {"slot": 1, "url": "wss://localhost:8082",
                                                        "security_profile": 2, "interface": "Wired0",
                                                        "message_timeout": 30}, "StatusNotification")],
    "TC_B_44": [Step("POST", f"{S}/network-profiles", {"slot": 1, "url": "wss://localhost:8082",
                                                        "security_profile": 2, "interface": "Wired0",
                                                        "message_timeout": 30}, "StatusNotification")],
    # G Availability
    "TC_G_03": [avail(False, 1)],
    "TC_G_04": [avail(True, 1)],
    "TC_G_05": [avail(False, 0)],
    "TC_G_06": [avail(True, 0)],
    "TC_G_07": [avail(False, 1, 1)],
    "TC_G_08": [avail(True, 1, 1)],
    "TC_G_11": [avail(False, 1, after=TX, count=2)],
    "TC_G_14": [avail(False, 0, after=TX, count=2)],
    "TC_G_17": [avail(False, 1, 1, after=TX, count=2)],
    # C Authorization
    "TC_C_37": [Step("POST", f"{S}/clear-cache", None, "connect")],
    "TC_C_38": [Step("POST", f"{S}/clear-cache", None, "connect")],
    # E Transactions
    "TC_E_21": [Step("POST", f"{S}/remote-stop", {"transaction_id": "{tx}"}, TX, 2, 1.5)],
    # E_29/E_31/E_33: the station goes offline and reconnects TRANSACTION_DURATION (5 s) later
    "TC_E_29": [Step("POST", "/sessions/{session}/transaction-status", None, TX, 2, 7.0)],
    "TC_E_30": [Step("POST", "/sessions/{session}/transaction-status", None, TX, 2, 1.5)],
    "TC_E_31": [Step("POST", "/sessions/{session}/transaction-status", None, TX, 2, 7.0)],
    # without a transaction id: no feature asks that (the CSMS always asks about a session)
    "TC_E_33": [raw("GetTransactionStatus", {}, TX, 2, 7.0)],
    "TC_E_34": [raw("GetTransactionStatus", {}, "connect")],
    # F Remote control
    "TC_F_01": [Step("POST", f"{S}/remote-start", {"id_token": "100000C01", "evse_id": 1, "token_type": "Central"},
                     TX, 1, 1.0)],
    "TC_F_02": [Step("POST", f"{S}/remote-start", {"id_token": "100000C01", "evse_id": 1, "token_type": "Central"},
                     "StatusNotification")],
    "TC_F_03": [Step("POST", f"{S}/remote-start", {"id_token": "100000C01", "evse_id": 1, "token_type": "Central"},
                     "StatusNotification")],
    "TC_F_04": [Step("POST", f"{S}/remote-start", {"id_token": "100000C01", "evse_id": 1, "token_type": "Central"},
                     "StatusNotification")],
    "TC_F_06": [Step("POST", f"{S}/unlock", {"evse_id": 1, "connector_id": 1}, "StatusNotification")],
    "TC_F_11": [Step("POST", f"{S}/trigger", {"message": "MeterValues", "evse_id": 1}, "StatusNotification")],
    "TC_F_12": [Step("POST", f"{S}/trigger", {"message": "MeterValues"}, "StatusNotification")],
    "TC_F_13": [Step("POST", f"{S}/trigger", {"message": "TransactionEvent", "evse_id": 1}, TX, 2, 1.5)],
    "TC_F_14": [Step("POST", f"{S}/trigger", {"message": "TransactionEvent"}, TX, 2, 1.5)],
    "TC_F_15": [Step("POST", f"{S}/trigger", {"message": "LogStatusNotification"}, "StatusNotification")],
    "TC_F_18": [Step("POST", f"{S}/trigger", {"message": "FirmwareStatusNotification"}, "StatusNotification")],
    "TC_F_20": [Step("POST", f"{S}/trigger", {"message": "Heartbeat"}, "StatusNotification")],
    "TC_F_23": [Step("POST", f"{S}/trigger", {"message": "StatusNotification", "evse_id": 1}, "StatusNotification")],
    "TC_F_24": [Step("POST", f"{S}/trigger", {"message": "StatusNotification", "evse_id": 1}, "NotifyEvent")],
    "TC_F_27": [Step("POST", f"{S}/trigger", {"message": "SignV2GCertificate"}, "StatusNotification")],
    # D Local authorization list (the CSMS's own list keeping: GetLocalListVersion after the boot,
    # then a Full list; a card added or removed afterwards goes out as a Differential update)
    "TC_D_01": [],
    "TC_D_02": [Step("POST", "/tokens", {"id_token": "D001003", "type": "Central", "status": "Accepted"},
                     "out:SendLocalList", 1, 1.0)],
    "TC_D_03": [Step("DELETE", "/tokens/D001003", None, "out:SendLocalList", 1, 1.0)],
    "TC_D_04": [Step("POST", f"{S}/local-list/sync", None, "StatusNotification")],
    # H Reservation
    "TC_H_01": [Step("POST", "/reservations", {"station_id": "{station}", "id_token": "100000C01", "evse_id": 1,
                                                "token_type": "Central", "expires_in_minutes": 10},
                     "StatusNotification")],
    "TC_H_07": [Step("POST", "/reservations", {"station_id": "{station}", "id_token": "100000C01", "evse_id": 1,
                                                "token_type": "Central", "expires_at": "{now+5}"},
                     "StatusNotification", 1, 0.0)],
    "TC_H_08": [Step("POST", "/reservations", {"station_id": "{station}", "id_token": "100000C01",
                                                "token_type": "Central", "expires_in_minutes": 10},
                     "StatusNotification")],
    "TC_H_14": [Step("POST", "/reservations", {"station_id": "{station}", "id_token": "100000C01",
                                                "token_type": "Central", "expires_in_minutes": 10},
                     "StatusNotification")],
    "TC_H_15": [Step("POST", "/reservations", {"station_id": "{station}", "id_token": "100000C01",
                                                "connector_type": "cType2", "token_type": "Central",
                                                "expires_in_minutes": 10}, "StatusNotification")],
    "TC_H_17": [Step("POST", "/reservations", {"station_id": "{station}", "id_token": "100000C01", "evse_id": 1,
                                                "token_type": "Central", "expires_in_minutes": 10},
                     "StatusNotification"),
                Step("POST", "/reservations/{reservation}/cancel", None, "NotifyEvent", 1, 1.0)],
    "TC_H_19": [Step("POST", "/reservations", {"station_id": "{station}", "id_token": "100000C01", "evse_id": 1,
                                                "token_type": "Central", "group_id_token": "GROUP001",
                                                "expires_in_minutes": 10}, "StatusNotification")],
    "TC_H_20": [Step("POST", "/reservations", {"station_id": "{station}", "id_token": "100000C01", "evse_id": 1,
                                                "token_type": "Central", "expires_in_minutes": 10},
                     "StatusNotification")],
    "TC_H_22": [Step("POST", "/reservations", {"station_id": "{station}", "id_token": "100000C01", "evse_id": 1,
                                                "token_type": "Central", "expires_in_minutes": 10},
                     "StatusNotification")],
    # O Display messages
    "TC_O_01": [show({"state": "Idle"})],
    "TC_O_02": [show({}), Step("POST", f"{S}/display-messages/refresh", {}, "StatusNotification", 1, 2.0)],
    "TC_O_03": [Step("POST", f"{S}/display-messages/refresh", {}, "StatusNotification")],
    "TC_O_04": [show({"message_id": 4}), Step("DELETE", f"{S}/display-messages/4", None, "StatusNotification",
                                              1, 2.0)],
    "TC_O_05": [Step("DELETE", f"{S}/display-messages/505", None, "StatusNotification")],
    "TC_O_06": [show({"transaction_id": "{tx}"}, after=TX, count=2, delay=1.5)],
    "TC_O_07": [show({"message_id": 7}), Step("POST", f"{S}/display-messages/refresh", {"ids": [7]},
                                              "StatusNotification", 1, 2.0)],
    "TC_O_08": [show({}), Step("POST", f"{S}/display-messages/refresh", {"priority": "NormalCycle"},
                               "StatusNotification", 1, 2.0)],
    "TC_O_09": [show({"state": "Idle"}), Step("POST", f"{S}/display-messages/refresh", {"state": "Idle"},
                                              "StatusNotification", 1, 2.0)],
    "TC_O_10": [show({"transaction_id": "{tx}"}, after=TX, count=2, delay=1.5)],
    "TC_O_11": [show({"message_id": 11}), Step("POST", f"{S}/display-messages/refresh", {"ids": [1111]},
                                               "StatusNotification", 1, 2.0)],
    "TC_O_12": [show({"message_id": 12}), show({"message_id": 12, "content": "Replaced"}, delay=2.0)],
    "TC_O_13": [show({"starts_at": "{now+30}"})],
    "TC_O_14": [show({"ends_at": "{now+30}"})],
    "TC_O_17": [show({"priority": "AlwaysFront"})],
    "TC_O_18": [show({"state": "Faulted"})],
    "TC_O_19": [show({"format": "HTML", "content": "<b>OCTT</b>"})],
    "TC_O_25": [show({"state": "Charging"})],
    "TC_O_26": [show({})],
    "TC_O_27": [show({"transaction_id": "{tx}", "starts_at": "{now+30}"}, after=TX, count=2, delay=1.5)],
    "TC_O_28": [show({"transaction_id": "{tx}", "ends_at": "{now+30}"}, after=TX, count=2, delay=1.5)],
    # N Diagnostics
    "TC_N_01": [mreport({"criteria": ["DeltaMonitoring"]}), mreport({"criteria": ["ThresholdMonitoring"]}, 2.0)],
    "TC_N_02": [mreport({"component_variables": [{"component": "ChargingStation", "variable": "Power"}]}),
                mreport({"component_variables": [{"component": "EVSE", "evse_id": 1,
                                                  "variable": "AvailabilityState"}]}, delay=2.0)],
    "TC_N_03": [mreport({"criteria": ["DeltaMonitoring"], "component_variables": [
        {"component": "EVSE", "evse_id": 1, "variable": "AvailabilityState"}]}),
                mreport({"criteria": ["ThresholdMonitoring"], "component_variables": [
                    {"component": "ChargingStation", "variable": "Power"}]}, 2.0)],
    "TC_N_05": [Step("POST", f"{S}/monitoring/base", {"base": base}, "StatusNotification", 1, 0.5 + 2 * n)
                for n, base in enumerate(("All", "FactoryDefault", "HardWiredOnly"))],
    "TC_N_08": [Step("POST", f"{S}/monitoring", {"monitors": [
        {"component": "EVSE", "evse_id": 1, "variable": "AvailabilityState", "type": "Delta", "value": 1,
         "severity": 8}]}, "StatusNotification")],
    "TC_N_09": [Step("POST", f"{S}/monitoring", {"monitors": [
        {"component": "EVSE", "evse_id": 1, "variable": "AvailabilityState", "type": "Delta", "value": 1,
         "severity": 8},
        {"component": "ChargingStation", "variable": "AvailabilityState", "type": "Delta", "value": 1,
         "severity": 8}]}, "StatusNotification")],
    "TC_N_16": [Step("POST", f"{S}/monitoring/level", {"severity": 4}, "StatusNotification")],
    "TC_N_17": [Step("POST", f"{S}/monitoring/level", {"severity": 4}, "StatusNotification")],
    "TC_N_18": [Step("POST", f"{S}/monitoring/clear", {"monitor_ids": list(range(1, 7))}, "StatusNotification")],
    "TC_N_25": [Step("POST", f"{S}/logs", {"location": "ftp://127.0.0.1/logs", "log_type": "DiagnosticsLog"},
                     "StatusNotification")],
    "TC_N_34": [Step("POST", f"{S}/logs", {"location": "ftp://127.0.0.1/logs", "log_type": "DiagnosticsLog"},
                     "StatusNotification")],
    "TC_N_35": [Step("POST", f"{S}/logs", {"location": "ftp://127.0.0.1/logs", "log_type": "SecurityLog"},
                     "StatusNotification")],
    "TC_N_36": [Step("POST", f"{S}/logs", {"location": "ftp://127.0.0.1/logs", "log_type": "DiagnosticsLog"},
                     "StatusNotification"),
                Step("POST", f"{S}/logs", {"location": "ftp://127.0.0.1/logs", "log_type": "DiagnosticsLog"},
                     "LogStatusNotification", 1, 1.0)],
    "TC_N_27": [customer(True, False)],
    "TC_N_28": [customer(True, False)],
    "TC_N_29": [customer(True, False)],
    "TC_N_30": [customer(True, True)],
    "TC_N_31": [customer(True, True)],
    "TC_N_32": [customer(False, True)],
    "TC_N_44": [Step("POST", f"{S}/monitoring/clear", {"monitor_ids": [1]}, "StatusNotification")],
    "TC_N_46": [customer(True, True)],
    "TC_N_47": [mreport({})],
    "TC_N_60": [mreport({"criteria": ["DeltaMonitoring"], "component_variables": [
        {"component": "ChargingStation", "variable": "AvailabilityState"},
        {"component": "EVSE", "evse_id": 1, "variable": "AvailabilityState"}]}),
                mreport({"criteria": ["ThresholdMonitoring"], "component_variables": [
                    {"component": "ChargingStation", "variable": "AvailabilityState"},
                    {"component": "EVSE", "evse_id": 1, "variable": "AvailabilityState"}]}, 2.0)],
    "TC_N_62": [Step("POST", f"{S}/customer-information", {"report": True, "clear": True,
                                                           "customer_identifier": "OpenChargeAlliance"},
                     "StatusNotification")],
    "TC_N_63": [Step("POST", f"{S}/customer-information", {"report": True, "clear": True, "customer_certificate": {
        "hash_algorithm": "SHA256", "issuer_name_hash": "a" * 64, "issuer_key_hash": "b" * 64,
        "serial_number": "1234"}}, "StatusNotification")],
    # L Firmware management
    **{f"TC_L_{n:02d}": [firmware()] for n in range(1, 10)},
    "TC_L_02": [firmware(install_at="{now+60}")],
    "TC_L_10": [firmware(), firmware(after="FirmwareStatusNotification", delay=1.0)],
    "TC_L_11": [firmware(), firmware(after="FirmwareStatusNotification", delay=1.0)],
    "TC_L_13": [firmware(after=TX, count=2)],
    **{f"TC_L_{n}": [Step("POST", f"{S}/firmware/publish", {"location": "http://127.0.0.1/fw.bin",
                                                            "checksum": "d41d8cd98f00b204e9800998ecf8427e"},
                          "StatusNotification")] for n in (17, 19, 20, 24)},
    **{f"TC_L_{n}": [Step("POST", f"{S}/firmware/unpublish", {"checksum": "d41d8cd98f00b204e9800998ecf8427e"},
                          "StatusNotification")] for n in (21, 22, 23)},
    # M Certificate management (the certificate installed is the suite's test CA)
    "TC_M_01": [install("CSMSRootCertificate")],
    "TC_M_02": [install("ManufacturerRootCertificate")],
    "TC_M_03": [install("V2GRootCertificate")],
    "TC_M_04": [install("MORootCertificate")],
    "TC_M_05": [install("CSMSRootCertificate")],
    # GetInstalledCertificateIds of chosen types: the certificates tab asks for every type
    "TC_M_12": [installed(["CSMSRootCertificate"], delay=0.5 + 2 * n) for n in range(3)],
    "TC_M_13": [installed(["ManufacturerRootCertificate"])],
    "TC_M_14": [installed(["V2GRootCertificate"])],
    "TC_M_15": [installed(["V2GCertificateChain"])],
    "TC_M_16": [installed(["MORootCertificate"])],
    "TC_M_17": [installed(["CSMSRootCertificate", "ManufacturerRootCertificate"])],
    "TC_M_18": [Step("GET", f"{S}/certificates", None, "StatusNotification")],
    "TC_M_19": [installed(["ManufacturerRootCertificate"])],
    # once per hash algorithm (SHA256, SHA384, SHA512), each on a new connection
    "TC_M_20": [step for n in (1, 2, 3) for step in (
        Step("POST", f"{S}/certificates", {"certificate_type": "CSMSRootCertificate", "certificate": "{suite_ca}"},
             "StatusNotification", n),
        raw("GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]}, "StatusNotification", n),
        raw("DeleteCertificate", {"certificateHashData": "{installed0}"}, "StatusNotification", n))],
    "TC_M_21": [install("CSMSRootCertificate"), installed(["CSMSRootCertificate"], delay=0.5),
                raw("DeleteCertificate", {"certificateHashData": "{installed0}"}, delay=0.5)],
    # K Smart charging
    "TC_K_01": [set_profile(1, profile(101, "TxDefaultProfile"), after="StatusNotification")],
    "TC_K_02": [raw_profile(1, profile(102, "TxProfile", "Relative", 7.0), after="StatusNotification")],
    "TC_K_03": [set_profile(0, profile(103, "ChargingStationMaxProfile", limit=8.0), after="StatusNotification")],
    "TC_K_04": [set_profile(1, profile(104, "TxDefaultProfile", limit=8.0), after="StatusNotification"),
                set_profile(1, profile(104, "TxDefaultProfile", limit=6.0), after="StatusNotification",
                            delay=1.0)],
    "TC_K_05": [report({"evse_id": 1}, after="StatusNotification"),
                Step("DELETE", f"{S}/charging-profiles/{{profile}}", None, "ReportChargingProfiles", 1, 1.0)],
    "TC_K_06": [Step("POST", f"{S}/charging-profiles/clear",
                     {"evse_id": 1, "purpose": "tx_default", "stack_level": 1}, "StatusNotification")],
    "TC_K_08": [Step("POST", f"{S}/charging-profiles/clear",
                     {"evse_id": 1, "purpose": "tx_default", "stack_level": 1}, "StatusNotification")],
    "TC_K_10": [set_profile(0, profile(110, "TxDefaultProfile"), after="StatusNotification")],
    "TC_K_15": [set_profile(1, profile(115, "TxDefaultProfile"), after="StatusNotification")],
    "TC_K_19": [set_profile(1, profile(119, "TxDefaultProfile", "Recurring"), after="StatusNotification")],
    "TC_K_29": [report({"evse_id": 0, "purpose": "tx"}, after=TX, delay=1.5)],
    "TC_K_30": [report({"evse_id": 1, "purpose": "tx_default"}, after="StatusNotification")],
    "TC_K_31": [report({"purpose": "tx_default"}, after="StatusNotification")],
    "TC_K_32": [report({"profile_ids": [1]}, after="StatusNotification")],
    "TC_K_33": [report({"evse_id": 1, "stack_level": 1}, after="StatusNotification")],
    "TC_K_34": [report({"evse_id": 1, "limit_sources": ["EMS"]}, after="StatusNotification")],
    "TC_K_35": [report({"evse_id": 1, "purpose": "tx_default"}, after="StatusNotification")],
    "TC_K_36": [report({"evse_id": 1, "purpose": "tx_default", "stack_level": 1}, after="StatusNotification")],
    "TC_K_37": [Step("POST", f"{S}/remote-start",
                     {"id_token": "100000C01", "evse_id": 1, "token_type": "Central",
                      "charging_profile": {"periods": [{"start_period": 0, "limit": 16}], "unit": "A"}},
                     "StatusNotification")],
    "TC_K_43": [raw("GetCompositeSchedule", {"duration": 300, "evseId": 1, "chargingRateUnit": "A"},
                    after="StatusNotification")],
    "TC_K_44": [raw("GetCompositeSchedule", {"duration": 300, "evseId": 0, "chargingRateUnit": "A"},
                    after="StatusNotification")],
    "TC_K_52": [report({"evse_id": 1, "limit_sources": ["EMS"]}, after="NotifyChargingLimit", delay=1.0)],
    "TC_K_53": [IN_SITE],
    "TC_K_55": [IN_SITE],
    "TC_K_57": [IN_SITE],
    "TC_K_59": [IN_SITE, set_profile(1, profile(159, "TxProfile", "Relative", 10.0, transactionId="{tx}"),
                                     after="NotifyEVChargingSchedule", delay=1.5)],
    "TC_K_58": [IN_SITE, set_profile(1, profile(158, "TxProfile", "Relative", 10.0, transactionId="{tx}"),
                                     after="NotifyEVChargingSchedule", delay=1.5)],
    "TC_K_60": [set_profile(1, profile(160, "TxProfile", "Relative", 10.0, transactionId="{tx}"),
                            after=TX, delay=1.5)],
    "TC_K_70": [set_profile(1, profile(170, "TxDefaultProfile", limit=10.0), after=TX, delay=1.5),
                set_profile(0, profile(171, "ChargingStationMaxProfile", limit=16.0), after=TX, delay=1.0)],
}

# Run after the test, whatever its outcome.
CLEANUP: dict[str, list[Step]] = {name: [OUT_OF_SITE] for name in
                                  ("TC_K_53", "TC_K_55", "TC_K_57", "TC_K_58", "TC_K_59")}
CLEANUP.update({name: [ACCEPTED] for name in ("TC_B_02", "TC_B_30", "TC_B_31")})
# A09 leaves CP_A_SP1 with the CSMS's new password, A19 at profile 2: the next tests use the suite's
CLEANUP["TC_A_09"] = [Step("PUT", f"{S}/password", {"password": "0123456789123456"}, "", 1, 0.0)]
CLEANUP["TC_A_19"] = [Step("PATCH", S, {"security_profile": 1}, "", 1, 0.0)]
