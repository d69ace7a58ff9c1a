"""Commands an operator sends to a station from the admin, and how their outcome is told.

Every action goes through ``get_core().operations`` (version-neutral) and ends as an
:class:`Outcome`: the station accepted, rejected (with its status), was offline, did not answer
in time, answered with a CALLERROR, or the request could not be expressed at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Awaitable, Callable, Mapping

from csms.admin.forms import parse_datetime_local
from csms.admin.templating import viewer_zone
from csms.core.ocpp.validation import InvalidPayload, OcppError
from csms.core.runtime import get_core
from csms.core.services.charging_profiles import tx_schedule
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.services.operations import OperationError
from csms.core.tables import IdToken
from csms.core.timeutil import utcnow
from csms.i18n import N_, gettext

OK_STATUSES = {"Accepted", "Unlocked", "Scheduled", "RebootRequired", "AcceptedCanceled"}

TRIGGER_MESSAGES = {
    "1.6": ["BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "FirmwareStatusNotification",
            "DiagnosticsStatusNotification", "LogStatusNotification", "SignChargePointCertificate"],  # the last two:
    # ExtendedTriggerMessage of the Security extension
    "2.0.1": ["BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "TransactionEvent",
              "FirmwareStatusNotification", "LogStatusNotification", "PublishFirmwareStatusNotification",
              "SignChargingStationCertificate"],
}
TRIGGER_MESSAGES["2.1"] = TRIGGER_MESSAGES["2.0.1"]  # 2.1 adds only CustomTrigger and SignV2G20Certificate


@dataclass
class Outcome:
    kind: str  # ok|rejected|offline|timeout|error|invalid
    message: str  # in the viewer's language
    response: dict[str, Any] | None = None
    status: str = ""  # the station's answer (an OCPP status), if it gave one

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


class BadInput(ValueError):
    """A form value of an action is missing or malformed."""


def _int(form: Mapping[str, Any], name: str, label: str, *, default: int | None = None, minimum: int = 0) -> int | None:
    raw = str(form.get(name, "") or "").strip()
    if not raw:
        if default is None:
            return None
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(gettext("%(label)s must be a whole number, not “%(value)s”.", label=gettext(label), value=raw)) from None
    if value < minimum:
        raise BadInput(gettext("%(label)s must be at least %(minimum)s.", label=gettext(label), minimum=minimum))
    return value


def _text(form: Mapping[str, Any], name: str, label: str, *, required: bool = True) -> str:
    value = str(form.get(name, "") or "").strip()
    if required and not value:
        raise BadInput(gettext("%(label)s is required.", label=gettext(label)))
    return value


def _url(form: Mapping[str, Any], name: str, label: str) -> str:
    value = _text(form, name, label)
    if "://" not in value:
        raise BadInput(gettext("%(label)s must be a URL the station can reach, such as ftp://host/path.", label=gettext(label)))
    return value


async def _remote_start(sid: str, form: Mapping[str, Any], by: str) -> dict[str, Any]:
    token = _text(form, "id_token_custom", N_("Id token"), required=False) or _text(form, "id_token", N_("Id token"))
    row = await IdToken.select(IdToken.type).where(IdToken.id_token == token).first()
    # A known card starts with its own type so the station's local list matches; others are central.
    token_type = row["type"] if row else "Central"
    raw_limit = _text(form, "limit", N_("Charging limit"), required=False).replace(",", ".")
    extra: dict[str, Any] = {}
    if raw_limit:  # K05: a TxProfile with one period, for the whole transaction
        try:
            limit = float(raw_limit)
        except ValueError:
            raise BadInput(gettext("%(label)s must be a number, not “%(value)s”.", label=gettext("Charging limit"),
                                   value=raw_limit)) from None
        extra["schedule"] = tx_schedule(unit=_text(form, "unit", N_("Unit")), periods=[{"start_period": 0,
                                                                                         "limit": limit}])
    return await get_core().operations.remote_start(sid, id_token=token, evse_id=_int(form, "evse_id", N_("EVSE")),
                                                    token_type=token_type, by=by, **extra)


async def _remote_stop(sid: str, form: Mapping[str, Any], by: str) -> dict[str, Any]:
    tx = _text(form, "transaction_id", N_("Transaction"))
    return await get_core().operations.remote_stop(sid, transaction_id=tx, by=by)


async def _reset(sid: str, form: Mapping[str, Any], by: str) -> dict[str, Any]:
    kind = _text(form, "kind", N_("Reset kind"))
    if kind not in ("soft", "hard"):
        raise BadInput(gettext("Reset kind must be soft or hard."))
    return await get_core().operations.reset(sid, kind=kind, by=by)


async def _unlock(sid: str, form: Mapping[str, Any], by: str) -> dict[str, Any]:
    evse = _int(form, "evse_id", N_("EVSE"), minimum=1)
    if evse is None:
        raise BadInput(gettext("Choose the EVSE to unlock."))
    return await get_core().operations.unlock(sid, evse_id=evse, connector_id=_int(form, "connector_id", N_("Connector"),
                                                                                    default=1, minimum=1) or 1, by=by)


async def _availability(sid: str, form: Mapping[str, Any], by: str) -> dict[str, Any]:
    state = _text(form, "operative", N_("Availability"))
    if state not in ("operative", "inoperative"):
        raise BadInput(gettext("Availability must be operative or inoperative."))
    return await get_core().operations.change_availability(
        sid, operative=state == "operative", evse_id=_int(form, "evse_id", N_("EVSE"), default=0) or 0, by=by)


async def _trigger(sid: str, form: Mapping[str, Any], by: str) -> dict[str, Any]:
    message = _text(form, "message", N_("Message"))
    return await get_core().operations.trigger(sid, message=message, evse_id=_int(form, "evse_id", N_("EVSE")), by=by)


async def _clear_cache(sid: str, form: Mapping[str, Any], by: str) -> dict[str, Any]:
    return await get_core().operations.clear_cache(sid, by=by)


async def _firmware(sid: str, form: Mapping[str, Any], by: str) -> dict[str, Any]:
    location = _url(form, "location", N_("Firmware location"))
    raw = _text(form, "retrieve_at", N_("Retrieve at"), required=False)
    try:
        retrieve_at = parse_datetime_local(raw, viewer_zone()) if raw else utcnow() + timedelta(seconds=5)
    except ValueError:
        raise BadInput(gettext("Retrieve at must be a date and time.")) from None
    return await get_core().operations.update_firmware(sid, location=location, retrieve_at=retrieve_at,
                                                       retries=_int(form, "retries", N_("Retries")), by=by)


async def _logs(sid: str, form: Mapping[str, Any], by: str) -> dict[str, Any]:
    return await get_core().operations.get_logs(sid, location=_url(form, "location", N_("Upload location")),
                                                log_type=_text(form, "log_type", N_("Log"), required=False)
                                                or "DiagnosticsLog", by=by)


async def _get_configuration(sid: str, form: Mapping[str, Any], by: str) -> dict[str, Any]:
    keys = [k.strip() for k in _text(form, "keys", N_("Keys"), required=False).split(",") if k.strip()]
    return await get_core().operations.get_configuration(sid, keys=keys or None, by=by)


async def _custom_report(sid: str, form: Mapping[str, Any], by: str) -> dict[str, Any]:
    """B08: the components (one a line, ``Component`` or ``Component/Variable``) and a criterion."""
    wanted = []
    for line in _text(form, "components", N_("Components"), required=False).splitlines():
        component, _, variable = line.strip().partition("/")
        if component.strip():
            wanted.append({"component": component.strip(), "variable": variable.strip() or None})
    criterion = _text(form, "criterion", N_("Criterion"), required=False)
    return await get_core().operations.get_custom_report(sid, criteria=[criterion] if criterion else None,
                                                         component_variables=wanted or None, by=by)


async def _set_configuration(sid: str, form: Mapping[str, Any], by: str) -> dict[str, Any]:
    key = _text(form, "key", N_("Key"))
    value = str(form.get("value", ""))
    return await get_core().operations.set_configuration(sid, key=key, value=value, by=by)


async def _rotate_password(sid: str, form: Mapping[str, Any], by: str) -> dict[str, Any]:
    return await get_core().operations.rotate_password(sid, by=by)


Action = Callable[[str, Mapping[str, Any], str], Awaitable[dict[str, Any]]]

ACTIONS: dict[str, tuple[str, Action]] = {
    "remote_start": (N_("Remote start"), _remote_start),
    "remote_stop": (N_("Remote stop"), _remote_stop),
    "reset": (N_("Reset"), _reset),
    "unlock": (N_("Unlock connector"), _unlock),
    "availability": (N_("Change availability"), _availability),
    "trigger": (N_("Trigger message"), _trigger),
    "clear_cache": (N_("Clear authorization cache"), _clear_cache),
    "firmware": (N_("Update firmware"), _firmware),
    "logs": (N_("Get diagnostics / logs"), _logs),
    "get_configuration": (N_("Read configuration"), _get_configuration),
    "custom_report": (N_("Custom report"), _custom_report),
    "set_configuration": (N_("Change configuration"), _set_configuration),
}  # labels translated where shown

# Actions of the admin role, each with a route of its own (not under /actions/, which operators use).
ADMIN_ACTIONS: dict[str, tuple[str, Action]] = {
    "rotate_password": (N_("Password rotation"), _rotate_password),
}


# Why a station refuses a configuration value (1.6 ChangeConfiguration, 2.0.1 SetVariables).
CONFIGURATION_REFUSALS = {
    "Rejected": N_("the station does not take this value for it (out of range, wrong format, or not changeable now)"),
    "NotSupported": N_("the station does not know this key"),
    "UnknownComponent": N_("the station has no such component"),
    "UnknownVariable": N_("the component has no such variable"),
    "NotSupportedAttributeType": N_("the variable cannot be set this way"),
}


# What each outcome means, in the audit log's words (English whatever the actor's language: the log
# is one record for everybody, and the message shown to the actor is translated).
_AUDIT_WORDS = {
    "ok": "the station answered %(status)s",
    "rejected": "the station answered %(status)s",
    "offline": "not sent: the station is offline",
    "timeout": "sent, no answer in time",
    "error": "the station answered with an OCPP error",
    "invalid": "not sent: the request was not valid",
}


def audit_summary(name: str, outcome: Outcome) -> str:
    """An action's outcome for the audit log, in English (``Password rotation: the station
    answered Accepted``); never the translated :attr:`Outcome.message`."""
    label = (ACTIONS[name] if name in ACTIONS else ADMIN_ACTIONS[name])[0]
    status = outcome.status or "no status"
    return f"{label}: {_AUDIT_WORDS.get(outcome.kind, outcome.kind) % {'status': status}}"


def configuration_refused(outcome: Outcome, form: Mapping[str, Any]) -> Outcome:
    """A refused configuration change told in words: what was refused, why, and that the stored
    value stays."""
    key, value = str(form.get("key", "")).strip(), str(form.get("value", ""))
    status = str((outcome.response or {}).get("status", "")) or next(
        (str(r.get("attributeStatus", "")) for r in (outcome.response or {}).get("setVariableResult", [])), "")
    reason = (gettext(CONFIGURATION_REFUSALS[status]) if status in CONFIGURATION_REFUSALS
              else gettext("it answered %(status)s", status=status) if status else gettext("it answered without a status"))
    return Outcome("rejected", gettext("The station refused %(key)s = “%(value)s”: %(reason)s (%(status)s). "
                                       "%(key)s keeps its stored value.", key=key, value=value, reason=reason,
                                       status=status or gettext("no status")), outcome.response, outcome.status)


async def run_action(name: str, station_id: str, form: Mapping[str, Any], by: str) -> Outcome:
    label, fn = ACTIONS[name] if name in ACTIONS else ADMIN_ACTIONS[name]
    timeout = get_core().settings.call_timeout
    try:
        result = await fn(station_id, form, by)
    except BadInput as exc:
        return Outcome("invalid", str(exc))
    except (StationOffline, ConnectionError):
        return Outcome("offline", gettext("%(station)s is offline: the command was not sent. "
                                          "Try again when the station is connected.", station=station_id))
    except CommandTimeout:
        return Outcome("timeout", gettext("%(station)s did not answer within %(seconds)s s. "
                                          "The station may still carry the command out; check its events.",
                                          station=station_id, seconds=f"{timeout:g}"))
    except UnknownStation:
        return Outcome("invalid", gettext("There is no station %(station)s.", station=station_id))
    except InvalidPayload as exc:
        return Outcome("invalid", gettext("The request is not valid OCPP (%(code)s): %(description)s",
                                          code=exc.code, description=exc.description))
    except OcppError as exc:
        return Outcome("error", gettext("The station answered with an error: %(code)s", code=exc.code)
                                + (f" – {exc.description}" if exc.description else ""))
    except OperationError as exc:
        return Outcome("invalid", str(exc))
    status = str(result.get("status", ""))
    response = result.get("response")
    if status in OK_STATUSES:
        if status == "RebootRequired":
            return Outcome("ok", gettext("%(action)s: the station answered %(status)s (a reboot is needed for it to take "
                                         "effect).", action=gettext(label), status=status), response, status)
        return Outcome("ok", gettext("%(action)s: the station answered %(status)s.", action=gettext(label), status=status),
                       response, status)
    if not status:
        return Outcome("rejected", gettext("%(action)s: the station answered without a status.", action=gettext(label)),
                       response)
    if status == "EmptyResultSet":
        return Outcome("rejected", gettext("%(action)s: the station has nothing that matches (EmptyResultSet).",
                                           action=gettext(label)), response, status)
    return Outcome("rejected", gettext("%(action)s: the station answered %(status)s.", action=gettext(label), status=status),
                   response, status)
