"""The shapes of OCPI 2.2.1 objects, for checking what partners send us.

Each object is a dict of ``field: (spec, required)``; :func:`check` walks a value and returns
every problem with its path (``evses[0].connectors[1].standard: ...``). A PATCH is checked with
``partial=True``: only the fields present, none required. Unknown fields are accepted (later
minor versions may add some). Lengths and enums are those of the specification's tables.
"""

from __future__ import annotations

import re
from typing import Any

from plugins.roaming_ocpi.transport import OcpiError, invalid, parse_datetime

Spec = Any


def s(n: int) -> Spec:
    return ("str", n)


def ci(n: int) -> Spec:
    return ("ci", n)


def enum(*values: str) -> Spec:
    return ("enum", frozenset(values))


def obj(fields: dict[str, tuple[Spec, bool]]) -> Spec:
    return ("obj", fields)


def many(spec: Spec, minimum: int = 0) -> Spec:
    return ("list", spec, minimum)


DT, BOOL, INT, NUM, URL = "dt", "bool", "int", "num", ("str", 255)
R, O = True, False  # required, optional

ROLE = enum("CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP")
MODULE = ("str", 32)  # ModuleID; custom modules allowed
INTERFACE_ROLE = enum("SENDER", "RECEIVER")
TOKEN_TYPE = enum("AD_HOC_USER", "APP_USER", "OTHER", "RFID")
WHITELIST = enum("ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER")
ALLOWED = enum("ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED")
PROFILE_TYPE = enum("CHEAP", "FAST", "GREEN", "REGULAR")
EVSE_STATUS = enum("AVAILABLE", "BLOCKED", "CHARGING", "INOPERATIVE", "OUTOFORDER", "PLANNED", "REMOVED",
                   "RESERVED", "UNKNOWN")
CAPABILITY = enum("CHARGING_PROFILE_CAPABLE", "CHARGING_PREFERENCES_CAPABLE", "CHIP_CARD_SUPPORT",
                  "CONTACTLESS_CARD_SUPPORT", "CREDIT_CARD_PAYABLE", "DEBIT_CARD_PAYABLE", "PED_TERMINAL",
                  "REMOTE_START_STOP_CAPABLE", "RESERVABLE", "RFID_READER", "START_SESSION_CONNECTOR_REQUIRED",
                  "TOKEN_GROUP_CAPABLE", "UNLOCK_CAPABLE")
CONNECTOR_TYPE = enum(
    "CHADEMO", "CHAOJI", *(f"DOMESTIC_{c}" for c in "ABCDEFGHIJKLMNO"), "GBT_AC", "GBT_DC",
    "IEC_60309_2_single_16", "IEC_60309_2_three_16", "IEC_60309_2_three_32", "IEC_60309_2_three_64",
    "IEC_62196_T1", "IEC_62196_T1_COMBO", "IEC_62196_T2", "IEC_62196_T2_COMBO", "IEC_62196_T3A", "IEC_62196_T3C",
    "NEMA_5_20", "NEMA_6_30", "NEMA_6_50", "NEMA_10_30", "NEMA_10_50", "NEMA_14_30", "NEMA_14_50",
    "PANTOGRAPH_BOTTOM_UP", "PANTOGRAPH_TOP_DOWN", "TESLA_R", "TESLA_S")
CONNECTOR_FORMAT = enum("SOCKET", "CABLE")
POWER_TYPE = enum("AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC")
AUTH_METHOD = enum("AUTH_REQUEST", "COMMAND", "WHITELIST")
SESSION_STATUS = enum("ACTIVE", "COMPLETED", "INVALID", "PENDING", "RESERVATION")
CDR_DIMENSION = enum("CURRENT", "ENERGY", "ENERGY_EXPORT", "ENERGY_IMPORT", "MAX_CURRENT", "MIN_CURRENT",
                     "MAX_POWER", "MIN_POWER", "PARKING_TIME", "POWER", "RESERVATION_TIME", "STATE_OF_CHARGE",
                     "TIME")
TARIFF_DIMENSION = enum("ENERGY", "FLAT", "PARKING_TIME", "TIME")
COMMAND_RESPONSE = enum("NOT_SUPPORTED", "REJECTED", "ACCEPTED", "UNKNOWN_SESSION")
COMMAND_RESULT = enum("ACCEPTED", "CANCELED_RESERVATION", "EVSE_OCCUPIED", "EVSE_INOPERATIVE", "FAILED",
                      "NOT_SUPPORTED", "REJECTED", "TIMEOUT", "UNKNOWN_RESERVATION")
COMMAND_TYPES = ("CANCEL_RESERVATION", "RESERVE_NOW", "START_SESSION", "STOP_SESSION", "UNLOCK_CONNECTOR")

DISPLAY_TEXT = obj({"language": (s(2), R), "text": (s(512), R)})
PRICE = obj({"excl_vat": (NUM, R), "incl_vat": (NUM, O)})
IMAGE = obj({"url": (URL, R), "thumbnail": (URL, O), "category": (enum(
    "CHARGER", "ENTRANCE", "LOCATION", "NETWORK", "OPERATOR", "OTHER", "OWNER"), R), "type": (ci(4), R),
    "width": (INT, O), "height": (INT, O)})
BUSINESS_DETAILS = obj({"name": (s(100), R), "website": (URL, O), "logo": (IMAGE, O)})
CREDENTIALS_ROLE = obj({"role": (ROLE, R), "business_details": (BUSINESS_DETAILS, R), "party_id": (ci(3), R),
                        "country_code": (ci(2), R)})
CREDENTIALS = obj({"token": (s(64), R), "url": (URL, R), "roles": (many(CREDENTIALS_ROLE, 1), R)})
CONNECTION_STATUS = enum("CONNECTED", "OFFLINE", "PLANNED", "SUSPENDED")
CLIENT_INFO = obj({"party_id": (ci(3), R), "country_code": (ci(2), R), "role": (ROLE, R),
                   "status": (CONNECTION_STATUS, R), "last_updated": (DT, R)})
CREDENTIALS_211 = obj({"token": (s(64), R), "url": (URL, R), "business_details": (BUSINESS_DETAILS, R),
                       "party_id": (ci(3), R), "country_code": (ci(2), R)})
ENDPOINT_211 = obj({"identifier": (MODULE, R), "url": (URL, R)})
VERSION_DETAILS_211 = obj({"version": (s(8), R), "endpoints": (many(ENDPOINT_211, 1), R)})
VERSION_OBJ = obj({"version": (s(8), R), "url": (URL, R)})
ENDPOINT = obj({"identifier": (MODULE, R), "role": (INTERFACE_ROLE, R), "url": (URL, R)})
VERSION_DETAILS = obj({"version": (s(8), R), "endpoints": (many(ENDPOINT, 1), R)})

ENERGY_CONTRACT = obj({"supplier_name": (s(64), R), "contract_id": (s(64), O)})
TOKEN = obj({
    "country_code": (ci(2), R), "party_id": (ci(3), R), "uid": (ci(36), R), "type": (TOKEN_TYPE, R),
    "contract_id": (ci(36), R), "visual_number": (s(64), O), "issuer": (s(64), R), "group_id": (ci(36), O),
    "valid": (BOOL, R), "whitelist": (WHITELIST, R), "language": (s(2), O), "default_profile_type": (PROFILE_TYPE, O),
    "energy_contract": (ENERGY_CONTRACT, O), "last_updated": (DT, R)})
LOCATION_REFERENCES = obj({"location_id": (ci(36), R), "evse_uids": (many(ci(36)), O)})
AUTHORIZATION_INFO = obj({"allowed": (ALLOWED, R), "token": (TOKEN, R), "location": (LOCATION_REFERENCES, O),
                          "authorization_reference": (ci(36), O), "info": (DISPLAY_TEXT, O)})

GEO = obj({"latitude": (("re", r"-?[0-9]{1,2}\.[0-9]{5,7}", 10), R),
           "longitude": (("re", r"-?[0-9]{1,3}\.[0-9]{5,7}", 11), R)})
ADDITIONAL_GEO = obj({**GEO[1], "name": (DISPLAY_TEXT, O)})
PERIOD = obj({"period_begin": (DT, R), "period_end": (DT, R)})
REGULAR_HOURS = obj({"weekday": (INT, R), "period_begin": (("re", r"([0-1][0-9]|2[0-3]):[0-5][0-9]", 5), R),
                     "period_end": (("re", r"([0-1][0-9]|2[0-4]):[0-5][0-9]", 5), R)})
HOURS = obj({"twentyfourseven": (BOOL, R), "regular_hours": (many(REGULAR_HOURS), O),
             "exceptional_openings": (many(PERIOD), O), "exceptional_closings": (many(PERIOD), O)})
ENERGY_MIX = obj({"is_green_energy": (BOOL, R), "energy_sources": (many(obj({"source": (enum(
    "NUCLEAR", "GENERAL_FOSSIL", "COAL", "GAS", "GENERAL_GREEN", "SOLAR", "WIND", "WATER"), R),
    "percentage": (NUM, R)})), O), "environ_impact": (many(obj({"category": (enum(
        "NUCLEAR_WASTE", "CARBON_DIOXIDE"), R), "amount": (NUM, R)})), O),
    "supplier_name": (s(64), O), "energy_product_name": (s(64), O)})
STATUS_SCHEDULE = obj({"period_begin": (DT, R), "period_end": (DT, O), "status": (EVSE_STATUS, R)})
PUBLISH_TOKEN = obj({"uid": (ci(36), O), "type": (TOKEN_TYPE, O), "visual_number": (s(64), O),
                     "issuer": (s(64), O), "group_id": (ci(36), O)})
CONNECTOR = obj({
    "id": (ci(36), R), "standard": (CONNECTOR_TYPE, R), "format": (CONNECTOR_FORMAT, R), "power_type": (POWER_TYPE, R),
    "max_voltage": (INT, R), "max_amperage": (INT, R), "max_electric_power": (INT, O),
    "tariff_ids": (many(ci(36)), O), "terms_and_conditions": (URL, O), "last_updated": (DT, R)})
EVSE = obj({
    "uid": (ci(36), R), "evse_id": (ci(48), O), "status": (EVSE_STATUS, R), "status_schedule": (many(STATUS_SCHEDULE), O),
    "capabilities": (many(CAPABILITY), O), "connectors": (many(CONNECTOR, 1), R), "floor_level": (s(4), O),
    "coordinates": (GEO, O), "physical_reference": (s(16), O), "directions": (many(DISPLAY_TEXT), O),
    "parking_restrictions": (many(enum("EV_ONLY", "PLUGGED", "DISABLED", "CUSTOMERS", "MOTORCYCLES")), O),
    "images": (many(IMAGE), O), "last_updated": (DT, R)})
LOCATION = obj({
    "country_code": (ci(2), R), "party_id": (ci(3), R), "id": (ci(36), R), "publish": (BOOL, R),
    "publish_allowed_to": (many(PUBLISH_TOKEN), O), "name": (s(255), O), "address": (s(45), R), "city": (s(45), R),
    "postal_code": (s(10), O), "state": (s(20), O), "country": (s(3), R), "coordinates": (GEO, R),
    "related_locations": (many(ADDITIONAL_GEO), O), "parking_type": (enum(
        "ALONG_MOTORWAY", "PARKING_GARAGE", "PARKING_LOT", "ON_DRIVEWAY", "ON_STREET", "UNDERGROUND_GARAGE"), O),
    "evses": (many(EVSE), O), "directions": (many(DISPLAY_TEXT), O), "operator": (BUSINESS_DETAILS, O),
    "suboperator": (BUSINESS_DETAILS, O), "owner": (BUSINESS_DETAILS, O), "facilities": (many(("str", 32)), O),
    "time_zone": (s(255), R), "opening_times": (HOURS, O), "charging_when_closed": (BOOL, O),
    "images": (many(IMAGE), O), "energy_mix": (ENERGY_MIX, O), "last_updated": (DT, R)})

CDR_TOKEN = obj({"country_code": (ci(2), R), "party_id": (ci(3), R), "uid": (ci(36), R), "type": (TOKEN_TYPE, R),
                 "contract_id": (ci(36), R)})
CHARGING_PERIOD = obj({"start_date_time": (DT, R), "dimensions": (many(obj({
    "type": (CDR_DIMENSION, R), "volume": (NUM, R)}), 1), R), "tariff_id": (ci(36), O)})
SESSION = obj({
    "country_code": (ci(2), R), "party_id": (ci(3), R), "id": (ci(36), R), "start_date_time": (DT, R),
    "end_date_time": (DT, O), "kwh": (NUM, R), "cdr_token": (CDR_TOKEN, R), "auth_method": (AUTH_METHOD, R),
    "authorization_reference": (ci(36), O), "location_id": (ci(36), R), "evse_uid": (ci(36), R),
    "connector_id": (ci(36), R), "meter_id": (s(255), O), "currency": (s(3), R),
    "charging_periods": (many(CHARGING_PERIOD), O), "total_cost": (PRICE, O), "status": (SESSION_STATUS, R),
    "last_updated": (DT, R)})

RESTRICTIONS = obj({
    "start_time": (s(5), O), "end_time": (s(5), O), "start_date": (s(10), O), "end_date": (s(10), O),
    "min_kwh": (NUM, O), "max_kwh": (NUM, O), "min_current": (NUM, O), "max_current": (NUM, O),
    "min_power": (NUM, O), "max_power": (NUM, O), "min_duration": (INT, O), "max_duration": (INT, O),
    "day_of_week": (many(enum("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")), O),
    "reservation": (enum("RESERVATION", "RESERVATION_EXPIRES"), O)})
TARIFF = obj({
    "country_code": (ci(2), R), "party_id": (ci(3), R), "id": (ci(36), R), "currency": (s(3), R),
    "type": (enum("AD_HOC_PAYMENT", "PROFILE_CHEAP", "PROFILE_FAST", "PROFILE_GREEN", "REGULAR"), O),
    "tariff_alt_text": (many(DISPLAY_TEXT), O), "tariff_alt_url": (URL, O), "min_price": (PRICE, O),
    "max_price": (PRICE, O), "elements": (many(obj({"price_components": (many(obj({
        "type": (TARIFF_DIMENSION, R), "price": (NUM, R), "vat": (NUM, O), "step_size": (INT, R)}), 1), R),
        "restrictions": (RESTRICTIONS, O)}), 1), R),
    "start_date_time": (DT, O), "end_date_time": (DT, O), "energy_mix": (ENERGY_MIX, O), "last_updated": (DT, R)})
CDR_LOCATION = obj({
    "id": (ci(36), R), "name": (s(255), O), "address": (s(45), R), "city": (s(45), R), "postal_code": (s(10), O),
    "state": (s(20), O), "country": (s(3), R), "coordinates": (GEO, R), "evse_uid": (ci(36), R),
    "evse_id": (ci(48), R), "connector_id": (ci(36), R), "connector_standard": (CONNECTOR_TYPE, R),
    "connector_format": (CONNECTOR_FORMAT, R), "connector_power_type": (POWER_TYPE, R)})
SIGNED_DATA = obj({"encoding_method": (ci(36), R), "encoding_method_version": (INT, O), "public_key": (s(512), O),
                   "signed_values": (many(obj({"nature": (ci(32), R), "plain_data": (s(5000), R),
                                               "signed_data": (s(5000), R)}), 1), R), "url": (s(512), O)})
CDR = obj({
    "country_code": (ci(2), R), "party_id": (ci(3), R), "id": (ci(39), R), "start_date_time": (DT, R),
    "end_date_time": (DT, R), "session_id": (ci(36), O), "cdr_token": (CDR_TOKEN, R), "auth_method": (AUTH_METHOD, R),
    "authorization_reference": (ci(36), O), "cdr_location": (CDR_LOCATION, R), "meter_id": (s(255), O),
    "currency": (s(3), R), "tariffs": (many(TARIFF), O), "charging_periods": (many(CHARGING_PERIOD, 1), R),
    "signed_data": (SIGNED_DATA, O), "total_cost": (PRICE, R), "total_fixed_cost": (PRICE, O),
    "total_energy": (NUM, R), "total_energy_cost": (PRICE, O), "total_time": (NUM, R), "total_time_cost": (PRICE, O),
    "total_parking_time": (NUM, O), "total_parking_cost": (PRICE, O), "total_reservation_cost": (PRICE, O),
    "remark": (s(255), O), "invoice_reference_id": (ci(39), O), "credit": (BOOL, O),
    "credit_reference_id": (ci(39), O), "home_charging_compensation": (BOOL, O), "last_updated": (DT, R)})

START_SESSION = obj({"response_url": (URL, R), "token": (TOKEN, R), "location_id": (ci(36), R),
                     "evse_uid": (ci(36), O), "connector_id": (ci(36), O), "authorization_reference": (ci(36), O)})
STOP_SESSION = obj({"response_url": (URL, R), "session_id": (ci(36), R)})
RESERVE_NOW = obj({"response_url": (URL, R), "token": (TOKEN, R), "expiry_date": (DT, R),
                   "reservation_id": (ci(36), R), "location_id": (ci(36), R), "evse_uid": (ci(36), O),
                   "authorization_reference": (ci(36), O)})
CANCEL_RESERVATION = obj({"response_url": (URL, R), "reservation_id": (ci(36), R)})
UNLOCK_CONNECTOR = obj({"response_url": (URL, R), "location_id": (ci(36), R), "evse_uid": (ci(36), R),
                        "connector_id": (ci(36), R)})
COMMANDS = {"START_SESSION": START_SESSION, "STOP_SESSION": STOP_SESSION, "RESERVE_NOW": RESERVE_NOW,
            "CANCEL_RESERVATION": CANCEL_RESERVATION, "UNLOCK_CONNECTOR": UNLOCK_CONNECTOR}
CHARGING_PROFILE = obj({
    "start_date_time": (DT, O), "duration": (INT, O), "charging_rate_unit": (enum("A", "W"), R),
    "min_charging_rate": (NUM, O),
    "charging_profile_period": (many(obj({"start_period": (INT, R), "limit": (NUM, R)}), 1), R)})
SET_CHARGING_PROFILE = obj({"charging_profile": (CHARGING_PROFILE, R), "response_url": (URL, R)})
FACILITY = enum("AIRPORT", "BIKE_SHARING", "BUS_STOP", "CAFE", "CARPOOL_PARKING", "FUEL_STATION", "HOTEL", "MALL",
                "METRO_STATION", "MUSEUM", "NATURE", "PARKING_LOT", "RECREATION_AREA", "RESTAURANT", "SPORT",
                "SUPERMARKET", "TAXI_STAND", "TRAIN_STATION", "TRAM_STOP", "WIFI")
COMMAND_RESPONSE_OBJ = obj({"result": (COMMAND_RESPONSE, R), "timeout": (INT, R), "message": (many(DISPLAY_TEXT), O)})
COMMAND_RESULT_OBJ = obj({"result": (COMMAND_RESULT, R), "message": (many(DISPLAY_TEXT), O)})


def hours_problems(hours: Any) -> list[str]:
    """Problems of an operator's opening times (OCPI Hours) beyond its shape: weekdays 1-7,
    periods that end after they begin, regular hours exactly when not 24/7."""
    found = problems(hours, HOURS)
    if found:
        return found
    regular = hours.get("regular_hours") or []
    if hours["twentyfourseven"] and regular:
        found.append("regular_hours: only when twentyfourseven is false")
    if not hours["twentyfourseven"] and not regular:
        found.append("regular_hours: at least one is needed when twentyfourseven is false")
    for i, r in enumerate(regular):
        if not 1 <= r["weekday"] <= 7:
            found.append(f"regular_hours[{i}].weekday: 1 (Monday) to 7 (Sunday)")
        if r["period_end"] <= r["period_begin"]:
            found.append(f"regular_hours[{i}]: period_end must be after period_begin")
    for kind in ("exceptional_openings", "exceptional_closings"):
        for i, p in enumerate(hours.get(kind) or []):
            if parse_datetime(p["period_end"]) <= parse_datetime(p["period_begin"]):
                found.append(f"{kind}[{i}]: period_end must be after period_begin")
    return found


def _printable(text: str, ascii_only: bool) -> bool:
    return all((0x20 <= ord(c) <= 0x7E) if ascii_only else (ord(c) >= 0x20 and c not in "\x7f") for c in text)


def _check(value: Any, spec: Spec, path: str, problems: list[str], partial: bool = False) -> None:
    where = path or "the object"
    if spec == DT:
        try:
            parse_datetime(value, where)
        except OcpiError as exc:
            problems.append(exc.message)
    elif spec == BOOL:
        if not isinstance(value, bool):
            problems.append(f"{where}: must be a boolean")
    elif spec == INT:
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{where}: must be an integer")
    elif spec == NUM:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{where}: must be a number")
    elif spec[0] in ("str", "ci"):
        if not isinstance(value, str):
            problems.append(f"{where}: must be a string")
        elif len(value) > spec[1]:
            problems.append(f"{where}: longer than {spec[1]} characters ({len(value)} given)")
        elif not _printable(value, spec[0] == "ci"):
            problems.append(f"{where}: holds characters that are not printable")
    elif spec[0] == "re":
        if not isinstance(value, str) or len(value) > spec[2] or not re.fullmatch(spec[1], value):
            problems.append(f"{where}: {value!r} does not match {spec[1]}")
    elif spec[0] == "enum":
        if value not in spec[1]:
            problems.append(f"{where}: {value!r} is not one of {', '.join(sorted(spec[1]))}")
    elif spec[0] == "list":
        if not isinstance(value, list):
            problems.append(f"{where}: must be a list")
            return
        if len(value) < spec[2]:
            problems.append(f"{where}: needs at least {spec[2]} item(s)")
        for i, item in enumerate(value):
            _check(item, spec[1], f"{path}[{i}]", problems)
    elif spec[0] == "obj":
        if not isinstance(value, dict):
            problems.append(f"{where}: must be an object")
            return
        for name, (field_spec, required) in spec[1].items():
            sub = f"{path}.{name}" if path else name
            if name not in value or value[name] is None:
                if required and not partial:
                    problems.append(f"{sub}: is required")
                continue
            _check(value[name], field_spec, sub, problems)


def problems(value: Any, spec: Spec, *, partial: bool = False) -> list[str]:
    """Every problem of ``value`` against ``spec`` (empty when it is a valid OCPI object)."""
    found: list[str] = []
    _check(value, spec, "", found, partial)
    return found


def require_valid(value: Any, spec: Spec, what: str, *, partial: bool = False) -> dict[str, Any]:
    """``value`` if valid, else ``OcpiError`` 2001 naming the first problems."""
    found = problems(value, spec, partial=partial)
    if found:
        more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
        raise invalid(f"invalid {what}: " + "; ".join(found[:3]) + more)
    return value
