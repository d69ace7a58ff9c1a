"""Compiled JSON-schema validation of OCPP payloads, with the error codes each version names.

The schemas are the ``ocpp`` library's own (the official OCA schemas); they are compiled once
per action with jsonschema-rs (each schema's own draft, formats checked), on first use, so
validation stays on for every frame and costs about a microsecond.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import ocpp

from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action as Action201

_SCHEMA_ROOT = Path(ocpp.__file__).parent

V16 = "1.6"
V201 = "2.0.1"
SUBPROTOCOLS = {"ocpp2.0.1": V201, "ocpp1.6": V16}
ACTIONS: dict[str, frozenset[str]] = {
    V16: frozenset(a.value for a in Action16),
    V201: frozenset(a.value for a in Action201),
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
# "OccurenceConstraintViolation"; 2.0.1 "FormatViolation" and "OccurrenceConstraintViolation").
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


def error_code(version: str, kind: str) -> str:
    return _CODES[version][kind]


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
    return _SCHEMA_ROOT / "v201" / "schemas" / f"{action}{'Response' if response else 'Request'}.json"


@lru_cache(maxsize=None)
def _validator(version: str, action: str, response: bool) -> Any:
    schema = json.loads(_schema_path(version, action, response).read_text())
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
    raise InvalidPayload(error_code(version, _RULE_KIND.get(rule, "format")), f"{where}: {error.message}",
                         {"rule": rule, "path": where})
