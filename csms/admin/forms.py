"""HTML forms of the admin: field declarations, parsing of submitted values, readable errors.

A form is a list of :class:`Field`; :func:`parse` turns the submitted strings into typed values
and collects one message per bad field, so a page can show every problem at once and store
nothing until all are fixed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any, Mapping, Sequence

from csms.i18n import gettext

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class Field:
    name: str
    label: str
    kind: str = "text"  # text|textarea|email|number|integer|select|checkbox|datetime|url|password
    required: bool = False
    choices: Sequence[tuple[str, str]] = ()
    help: str = ""
    group: str = ""
    min: float | None = None
    max: float | None = None
    step: str | None = None
    maxlength: int | None = None
    minlength: int | None = None
    placeholder: str = ""
    blank_label: str = "—"  # the empty choice of an optional select
    autocomplete: str = "off"
    extra: dict[str, Any] = field(default_factory=dict)


class FormErrors(dict):
    """Field name to message; ``""`` holds errors about the form as a whole."""


def _number(f: Field, raw: str, errors: FormErrors, *, integer: bool) -> Any:
    try:
        value: float = int(raw) if integer else float(raw.replace(",", "."))
    except ValueError:
        errors[f.name] = (gettext("%(label)s must be a whole number, not “%(value)s”.", label=gettext(f.label), value=raw)
                          if integer else
                          gettext("%(label)s must be a number, not “%(value)s”.", label=gettext(f.label), value=raw))
        return None
    if not integer and (math.isnan(value) or math.isinf(value)):
        errors[f.name] = gettext("%(label)s must be a finite number.", label=gettext(f.label))
        return None
    if f.min is not None and value < f.min or f.max is not None and value > f.max:
        if f.min is not None and f.max is not None:
            errors[f.name] = gettext("%(label)s must be between %(min)s and %(max)s; “%(value)s” is outside.",
                                     label=gettext(f.label), min=f"{f.min:g}", max=f"{f.max:g}", value=raw)
        elif f.min is not None:
            errors[f.name] = gettext("%(label)s must be at least %(minimum)s.", label=gettext(f.label), minimum=f"{f.min:g}")
        else:
            errors[f.name] = gettext("%(label)s must be at most %(maximum)s.", label=gettext(f.label), maximum=f"{f.max:g}")
        return None
    return value


def parse_datetime_local(raw: str, tz: tzinfo | None = None) -> datetime:
    """A ``datetime-local`` value, a wall-clock time in ``tz`` (default UTC; pass the viewer's zone,
    ``csms.admin.templating.viewer_zone()``, for a field labelled in it), or an ISO timestamp with
    an offset; as an aware UTC datetime. ``ValueError`` when it is neither."""
    dt = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    return dt.replace(tzinfo=tz or timezone.utc).astimezone(timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def parse(fields: Sequence[Field], raw: Mapping[str, Any]) -> tuple[dict[str, Any], FormErrors]:
    """Typed values for ``fields`` from the submitted ``raw`` strings, and the errors found."""
    values: dict[str, Any] = {}
    errors = FormErrors()
    for f in fields:
        if f.kind == "checkbox":
            values[f.name] = str(raw.get(f.name, "")).lower() in ("on", "true", "1", "yes")
            continue
        text = str(raw.get(f.name, "") or "").strip()
        if not text:
            if f.required:
                errors[f.name] = gettext("%(label)s is required.", label=gettext(f.label))
            values[f.name] = None if f.kind in ("number", "integer", "select", "datetime") else ""
            continue
        if f.maxlength and len(text) > f.maxlength:
            errors[f.name] = gettext("%(label)s must be at most %(maximum)s characters (it has %(length)s).",
                                     label=gettext(f.label), maximum=f.maxlength, length=len(text))
        elif f.minlength and len(text) < f.minlength:
            errors[f.name] = gettext("%(label)s must be at least %(minimum)s characters.", label=gettext(f.label),
                                     minimum=f.minlength)
        elif f.kind == "number":
            values[f.name] = _number(f, text, errors, integer=False)
        elif f.kind == "integer":
            values[f.name] = _number(f, text, errors, integer=True)
        elif f.kind == "select":
            if text not in {c[0] for c in f.choices}:
                errors[f.name] = gettext("Choose one of the listed values for %(label)s.", label=gettext(f.label))
            else:
                values[f.name] = text
        elif f.kind == "email" and not _EMAIL.match(text):
            errors[f.name] = gettext("“%(value)s” is not an e-mail address.", value=text)
        elif f.kind == "url" and not re.match(r"^[a-z][a-z0-9+.-]*://\S+$", text, re.I):
            errors[f.name] = gettext("%(label)s must be a URL such as ftp://host/path or https://host/path.",
                                     label=gettext(f.label))
        elif f.kind == "datetime":
            try:
                values[f.name] = parse_datetime_local(text)
            except ValueError:
                errors[f.name] = gettext("%(label)s must be a date and time (YYYY-MM-DD HH:MM).", label=gettext(f.label))
        else:
            values[f.name] = text
        values.setdefault(f.name, None)
    return values, errors


def as_form_values(fields: Sequence[Field], row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row as the strings a form shows."""
    out: dict[str, Any] = {}
    for f in fields:
        value = row.get(f.name)
        if f.kind == "checkbox":
            out[f.name] = bool(value)
        elif value is None:
            out[f.name] = ""
        elif f.kind == "datetime" and isinstance(value, datetime):
            out[f.name] = value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M")
        elif f.kind == "number" and isinstance(value, float):
            out[f.name] = f"{value:g}" if abs(value) < 1e15 else str(value)
        else:
            out[f.name] = str(value)
    return out


def fk(value: Any) -> int | None:
    """A foreign-key select's value as an id."""
    return int(value) if value not in (None, "") else None
