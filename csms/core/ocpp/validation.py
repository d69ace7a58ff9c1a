"""Compiled JSON-schema validation of OCPP payloads, with the error codes each version names.

The schemas are the ``ocpp`` library's own (the official OCA schemas); they are compiled once
per action with jsonschema-rs (each schema's own draft, formats checked), on first use, so
validation stays on for every frame and costs about a microsecond.

Before compiling, the value domains the specification states in prose are added to the schemas,
so that everything a station sends fits the columns it is stored in, on SQLite and PostgreSQL
alike: an ``integer`` is 32-bit signed (OCPP-J's data type; outside it the answer is
TypeConstraintViolation), a ``number`` lies within ``NUMBER_LIMIT``, and EVSE and connector ids
lie in ``0..MAX_EVSE_ID``. NUL characters and nesting deeper than ``MAX_DEPTH`` are refused by
:func:`check_domain` (they cannot be expressed cheaply in a schema).
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import ocpp

from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action as Action201
from ocpp.v21.enums import Action as Action21

_SCHEMA_ROOT = Path(ocpp.__file__).parent

V16 = "1.6"
V201 = "2.0.1"
V21 = "2.1"
# 2.1 keeps every 2.0.1 message (with optional additions): code that branches on the version
# tells 1.6 from the rest (``version == V16``) wherever 2.0.1 and 2.1 are alike.
SUBPROTOCOLS = {"ocpp2.1": V21, "ocpp2.0.1": V201, "ocpp1.6": V16}
# OCPP-J 2.1's SEND messages (MessageTypeId 6: never answered); the library's enum lacks them.
SEND_ACTIONS: dict[str, frozenset[str]] = {V16: frozenset(), V201: frozenset(),
                                           V21: frozenset({"NotifyPeriodicEventStream"})}
ACTIONS: dict[str, frozenset[str]] = {
    V16: frozenset(a.value for a in Action16),
    V201: frozenset(a.value for a in Action201),
    V21: frozenset(a.value for a in Action21) | SEND_ACTIONS[V21],
}


class OcppError(Exception):
    """An OCPP CALLERROR: ``code`` is already the name the station's version uses."""

    def __init__(self, code: str, description: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details or {}


class InvalidPayload(OcppError):
    """A payload breaks its schema (raised by :func:`validate`)."""


# Error code names differ between versions (1.6 spells "FormationViolation" and
# "OccurenceConstraintViolation"; 2.0.1 and 2.1 "FormatViolation" and "OccurrenceConstraintViolation").
_CODES = {
    V16: {
        "format": "FormationViolation",
        "occurrence": "OccurenceConstraintViolation",
        "type": "TypeConstraintViolation",
        "property": "PropertyConstraintViolation",
        "rpc": "FormationViolation",
        "message_type": "ProtocolError",
        "not_implemented": "NotImplemented",
        "not_supported": "NotSupported",
        "security": "SecurityError",
        "internal": "InternalError",
        "generic": "GenericError",
        "protocol": "ProtocolError",
    },
    V201: {
        "format": "FormatViolation",
        "occurrence": "OccurrenceConstraintViolation",
        "type": "TypeConstraintViolation",
        "property": "PropertyConstraintViolation",
        "rpc": "RpcFrameworkError",
        "message_type": "MessageTypeNotSupported",
        "not_implemented": "NotImplemented",
        "not_supported": "NotSupported",
        "security": "SecurityError",
        "internal": "InternalError",
        "generic": "GenericError",
        "protocol": "ProtocolError",
    },
}
_CODES[V21] = _CODES[V201]  # OCPP-J 2.1 keeps 2.0.1's error codes


def error_code(version: str, kind: str) -> str:
    return _CODES[version][kind]


INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
NUMBER_LIMIT = 1e15  # a decimal beyond this is no meter reading, limit or price (1 PWh, 1 PW)
MAX_EVSE_ID = 999  # EVSE, connector (1.6 connectorId) ids: 0 is the station, no station has a thousand
MAX_DEPTH = 32  # nesting of any OCPP payload (the deepest official message nests about 8 levels)
MAX_MESSAGE_ID = 36  # OCPP-J: a message id is at most 36 characters
_ID_FIELDS = frozenset({"evseId", "connectorId"})


def _bounded(node: Any, name: str = "", in_evse: bool = False) -> Any:
    """A copy of a JSON schema with the value domains of this module added (stricter ones kept)."""
    if isinstance(node, list):
        return [_bounded(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            evse = "id" in value and set(value) <= {"id", "connectorId", "customData"}  # the 2.0.1 EVSEType
            out[key] = {prop: _bounded(sub, prop, evse) for prop, sub in value.items()}
        elif key == "definitions" and isinstance(value, dict):
            out[key] = {name_: _bounded(sub) for name_, sub in value.items()}
        else:
            out[key] = _bounded(value)
    kind = node.get("type")
    if kind == "integer":
        low, high = INT32_MIN, INT32_MAX
        if name in _ID_FIELDS or (in_evse and name == "id"):
            low, high = 0, MAX_EVSE_ID
        out["minimum"] = max(low, node.get("minimum", low))
        out["maximum"] = min(high, node.get("maximum", high))
    elif kind == "number":
        # as integers: jsonschema-rs checks a float bound several times slower (3 µs a MeterValues)
        limit = int(NUMBER_LIMIT)
        low, high = node.get("minimum", -limit), node.get("maximum", limit)
        out["minimum"] = max(-limit, int(low) if float(low).is_integer() else low)
        out["maximum"] = min(limit, int(high) if float(high).is_integer() else high)
    return out


_RULE_KIND = {
    "type": "type",
    "required": "occurrence",
    "minItems": "occurrence",
    "maxItems": "occurrence",
    "additionalProperties": "format",
    "enum": "property",
    "maxLength": "property",
    "minLength": "property",
    "minimum": "property",
    "maximum": "property",
    "multipleOf": "property",
    "pattern": "property",
    "format": "property",
}


def _schema_path(version: str, action: str, response: bool) -> Path:
    if version == V16:
        return _SCHEMA_ROOT / "v16" / "schemas" / f"{action}{'Response' if response else ''}.json"
    if version == V21:
        if action in SEND_ACTIONS[V21]:  # a SEND has one schema, named without Request
            return _SCHEMA_ROOT / "v21" / "schemas" / f"{action}.json"
        return _SCHEMA_ROOT / "v21" / "schemas" / f"{action}{'Response' if response else 'Request'}.json"
    return _SCHEMA_ROOT / "v201" / "schemas" / f"{action}{'Response' if response else 'Request'}.json"


@lru_cache(maxsize=None)
def _validator(version: str, action: str, response: bool) -> Any:
    schema = _bounded(json.loads(_schema_path(version, action, response).read_text()))
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def _rule(error: Any) -> str:
    """The schema keyword that failed (the last name in the error's schema path)."""
    for part in reversed(error.schema_path):
        if isinstance(part, str) and part in _RULE_KIND:
            return part
    return ""


def _where(path: Any) -> str:
    return "data" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def schema(version: str, action: str, response: bool = False) -> dict[str, Any]:
    """The raw JSON schema of an action's request or response (for docs and the API)."""
    return json.loads(_schema_path(version, action, response).read_text())


def validate(version: str, action: str, payload: Any, *, response: bool = False) -> None:
    """Raise :class:`OcppError` with the version's code when ``payload`` breaks the schema."""
    if action not in ACTIONS[version]:
        raise InvalidPayload(error_code(version, "not_implemented"), f"unknown action {action!r} in OCPP {version}")
    if not isinstance(payload, dict):
        raise InvalidPayload(error_code(version, "format"), "payload must be a JSON object")
    validator = _validator(version, action, response)
    if validator.is_valid(payload):
        return
    error = next(validator.iter_errors(payload))
    rule = _rule(error)
    where = _where(error.instance_path)
    kind = _RULE_KIND.get(rule, "format")
    message = error.message
    value = error.instance
    # an integer too large for a float (float() would overflow) is still an integer out of range
    if rule in ("minimum", "maximum") and (isinstance(value, int) or (isinstance(value, float) and value.is_integer())) \
            and not INT32_MIN <= value <= INT32_MAX:
        kind, message = "type", f"{value} is not a 32-bit integer"
    raise InvalidPayload(error_code(version, kind), f"{where}: {message}", {"rule": rule, "path": where})


def check_domain(version: str, payload: Any, raw: str, *, unbounded_numbers: bool = False) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH`` (FormatViolation), NUL characters and, with
    ``unbounded_numbers`` (a frame whose numbers overflowed the fast decoder), non-finite numbers
    and integers beyond 64 bits (PropertyConstraintViolation / TypeConstraintViolation) anywhere
    in a decoded payload. Run before schema validation, which must never see a deeper payload.
    ``raw`` is the frame it came from: most frames are ruled out by two substring counts,
    without walking the payload."""
    nul = "\\u0000" in raw
    if not nul and not unbounded_numbers:
        if raw.count("[") + raw.count("{") > MAX_DEPTH and _deeper_than_max(payload):
            raise InvalidPayload(error_code(version, "format"), f"payload nests deeper than {MAX_DEPTH} levels")
        return
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidPayload(error_code(version, "format"), f"payload nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for key, value in node.items():
                if nul and "\x00" in key:
                    raise InvalidPayload(error_code(version, "property"), "a property name contains a NUL character")
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
        elif nul and isinstance(node, str) and "\x00" in node:
            raise InvalidPayload(error_code(version, "property"), "a string contains a NUL character")
        elif unbounded_numbers and isinstance(node, float) and not math.isfinite(node):
            raise InvalidPayload(error_code(version, "property"), "a number is beyond the range of a double")
        elif unbounded_numbers and isinstance(node, int) and not -(2**63) <= node < 2**63:
            raise InvalidPayload(error_code(version, "type"), "an integer is beyond 64 bits")


def _deeper_than_max(payload: Any) -> bool:
    """Whether containers nest deeper than ``MAX_DEPTH`` (the payload itself is level 1); only
    containers are visited, so a frame of many readings costs a few microseconds."""
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        node, depth = stack.pop()
        if depth >= MAX_DEPTH:
            if depth > MAX_DEPTH or node:  # a value inside it would be one level deeper
                return True
            continue
        for value in node.values() if type(node) is dict else node:
            kind = type(value)
            if kind is dict or kind is list:
                stack.append((value, depth + 1))
    return False


def _huge_int(text: str) -> int:
    """An integer literal as Python reads it; beyond Python's digit limit, a stand-in as far
    beyond 64 bits (both are refused by :func:`check_domain`)."""
    try:
        return int(text)
    except ValueError:
        return -(2**64) if text.startswith("-") else 2**64


def decode_unbounded(raw: str) -> Any:
    """Decode a frame whose numbers overflow msgspec (beyond a double, integers of thousands of
    digits): it is still JSON, so the CALL gets an answer with its own id; such numbers come
    back as ``inf`` or integers beyond 64 bits, refused by :func:`check_domain`."""
    return json.loads(raw, parse_int=_huge_int)


_JSON_STRING = r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"'
_CALL_HEAD = re.compile(rf'\s*\[\s*2\s*,\s*({_JSON_STRING})\s*,\s*({_JSON_STRING})\s*,')


def call_head(raw: str) -> tuple[str, str] | None:
    """The message id and action at the start of a CALL too deep to decode (within its first
    256 characters), JSON strings with any escapes; ``None`` where the frame's decoder would
    refuse them (a lone surrogate)."""
    match = _CALL_HEAD.match(raw, 0, 256)
    if match is None:
        return None
    uid, action = json.loads(match.group(1)), json.loads(match.group(2))
    try:
        uid.encode(), action.encode()
    except UnicodeEncodeError:  # a lone surrogate: not JSON to the decoder either
        return None
    return uid, action
