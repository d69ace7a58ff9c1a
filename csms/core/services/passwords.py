"""Station passwords of HTTP Basic auth (security profiles 1 and 2) that a command changes.

A station gets a new password through a command of its version:

* OCPP 2.0.1: ``SetVariables`` of ``SecurityCtrlr.BasicAuthPassword`` (a passwordString of 16 to
  40 characters, A00.FR.205 / A01);
* OCPP 1.6 (security whitepaper, edition 3, security profiles 1 and 2): ``ChangeConfiguration`` of
  ``AuthorizationKey``, whose value is the hexadecimal representation of the password's bytes
  (16 to 20 bytes, so 32 to 40 hexadecimal digits); in the handshake the station sends those
  bytes themselves as the Basic-auth password, not their hexadecimal digits.

The command service (:mod:`csms.core.services.commands`) asks :func:`password_set_by` about every
command it sends, whoever sends it (rotation, the configuration endpoint, the raw OCPP endpoint),
stores the new password's hash only after the station answered that it accepted the value
(:func:`accepted`), and logs the command with :func:`redact` (the command table, the audit log and
the frame log never hold the password). Rotation generates the password here (:func:`generate`):
20 letters and digits (about 119 bits), which fit both versions' limits.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from csms.core.ocpp.validation import InvalidPayload

ALPHABET = string.ascii_letters + string.digits
LENGTH = 20  # 1.6: at most 20 bytes; 2.0.1: 16 to 40 characters
MIN_LENGTH = 16
MAX_BYTES_16 = 20
MASK = "***"
SECURITY_COMPONENT = "SecurityCtrlr"
PASSWORD_VARIABLE = "BasicAuthPassword"
AUTHORIZATION_KEY = "AuthorizationKey"
# the station took the value: now (Accepted) or from its next start (RebootRequired)
TAKEN = frozenset({"Accepted", "RebootRequired"})


def generate() -> str:
    """A new station password: 20 random letters and digits from :mod:`secrets`."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def authorization_key(password: str) -> str:
    """The 1.6 ``AuthorizationKey`` value of ``password``: its UTF-8 bytes in hexadecimal."""
    return password.encode().hex().upper()


def password_of_key(value: str) -> str:
    """The password a 1.6 ``AuthorizationKey`` value stands for; ``InvalidPayload`` when the value
    is not the hexadecimal of 16 to 20 bytes of UTF-8 text (the only passwords a handshake can
    carry to this server, which reads Basic credentials as UTF-8)."""
    try:
        raw = bytes.fromhex(value)
        password = raw.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InvalidPayload("PropertyConstraintViolation",
                             "AuthorizationKey must be the hexadecimal representation of the password's bytes "
                             "(OCPP 1.6 security whitepaper), and those bytes UTF-8 text") from None
    if not MIN_LENGTH <= len(raw) <= MAX_BYTES_16:
        raise InvalidPayload("PropertyConstraintViolation",
                             f"AuthorizationKey must stand for {MIN_LENGTH} to {MAX_BYTES_16} bytes, not {len(raw)}")
    return password


def _is_password_entry(entry: Any) -> bool:
    return (isinstance(entry, dict) and (entry.get("component") or {}).get("name") == SECURITY_COMPONENT
            and (entry.get("variable") or {}).get("name") == PASSWORD_VARIABLE
            and entry.get("attributeType", "Actual") == "Actual")


def password_set_by(action: str, payload: dict[str, Any]) -> str | None:
    """The new Basic-auth password ``payload`` of ``action`` sets, or None. Raises
    ``InvalidPayload`` (nothing is sent) for a 1.6 key that stands for no usable password."""
    if action == "SetVariables":
        for entry in payload.get("setVariableData") or ():
            if _is_password_entry(entry) and isinstance(entry.get("attributeValue"), str):
                value: str = entry["attributeValue"]
                if not MIN_LENGTH <= len(value) <= 40:
                    raise InvalidPayload("PropertyConstraintViolation",
                                         "BasicAuthPassword must be 16 to 40 characters")
                return value
    elif action == "ChangeConfiguration" and payload.get("key") == AUTHORIZATION_KEY \
            and isinstance(payload.get("value"), str):
        return password_of_key(payload["value"])
    return None


def accepted(action: str, response: dict[str, Any] | None) -> bool:
    """Whether the station's ``response`` says it took the new password."""
    if not response:
        return False
    if action == "ChangeConfiguration":
        return response.get("status") in TAKEN
    return any(_is_password_entry(r) and r.get("attributeStatus") in TAKEN
               for r in response.get("setVariableResult") or ())


def redact(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` as it may be logged: a password it sets replaced by ``***`` (the same object
    when it sets none)."""
    if action == "ChangeConfiguration" and payload.get("key") == AUTHORIZATION_KEY:
        return {**payload, "value": MASK}
    if action == "SetVariables" and any(_is_password_entry(e) for e in payload.get("setVariableData") or ()):
        return {**payload, "setVariableData": [{**e, "attributeValue": MASK} if _is_password_entry(e) else e
                                               for e in payload["setVariableData"]]}
    return payload


def is_password_key(key: str) -> bool:
    """Whether a configuration key of the version-neutral configuration API is a password."""
    return key == AUTHORIZATION_KEY or key.replace("/", ".") == f"{SECURITY_COMPONENT}.{PASSWORD_VARIABLE}"
