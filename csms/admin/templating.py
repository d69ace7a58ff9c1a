"""Rendering admin pages: the shared context (user, navigation), plugin panels, filters, paging."""

from __future__ import annotations

import json
import math
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Sequence
from urllib.parse import unquote, urlencode
from zoneinfo import ZoneInfo, available_timezones

from jinja2 import pass_context
from litestar.response import Template
from markupsafe import Markup

from csms import i18n
from csms.admin.auth import current_user
from csms.i18n import gettext
from csms.api.auth import ROLES
from csms.api.tenancy import GLOBAL_ONLY, rule_of
from csms.jsondepth import MAX_JSON_DEPTH, json_depth_exceeds
from csms.plugins import call_hook, call_sync

if TYPE_CHECKING:
    from jinja2 import Environment
    from litestar import Request

PAGE_SIZE = 25

_STATUS_CLASSES = {
    "Available": "ok", "Accepted": "ok", "Operative": "ok", "online": "ok", "completed": "muted",
    "Charging": "busy", "Occupied": "busy", "Preparing": "busy", "SuspendedEV": "busy", "SuspendedEVSE": "busy",
    "Finishing": "busy", "Reserved": "busy", "active": "busy",
    "Pending": "warn", "Unavailable": "warn", "Inoperative": "warn",
    "Faulted": "bad", "Rejected": "bad", "Blocked": "bad", "Expired": "bad", "Invalid": "bad", "offline": "bad",
}


# -- time zones ------------------------------------------------------------------------------------
# Every time the admin shows is in the viewing user's zone: their own choice (account page), else
# the installation's ``admin_time_zone``. render() puts the zone's name in the template context
# (``time_zone``) and in a context variable (for templates rendered without that context); the
# filters below read it. Where a time belongs to a place (a station, its site), the site's local
# time is shown beside it when it differs (``site_dt``). "N s ago" texts stay relative; CSV exports
# stay ISO 8601 in UTC with the ``+00:00`` offset.

UTC = ZoneInfo("UTC")
_viewing_zone: ContextVar[ZoneInfo] = ContextVar("csms_admin_time_zone", default=UTC)


@lru_cache(maxsize=1)
def time_zone_names() -> tuple[str, ...]:
    """The IANA names a user may choose (the system's tz database), sorted."""
    return tuple(sorted(available_timezones() | {"UTC"}))


def zone_named(name: Any) -> ZoneInfo | None:
    """The zone of an IANA name from :func:`time_zone_names`, else None."""
    if not isinstance(name, str) or name not in time_zone_names():
        return None
    return ZoneInfo(name)


def viewing_zone_name(request: Any, user: Any) -> str:
    """The zone ``user`` sees times in: their own, else the installation's ``admin_time_zone``."""
    own = getattr(user, "time_zone", "") if user is not None else ""
    if own and zone_named(own) is not None:
        return own
    settings = getattr(getattr(getattr(request, "app", None), "state", None), "admin_settings", None)
    default = getattr(settings, "time_zone", "UTC")
    return default if zone_named(default) is not None else "UTC"


def use_zone(name: str) -> ZoneInfo:
    """Make ``name`` the zone of this request's templates (the context variable's fallback)."""
    zone = zone_named(name) or UTC
    _viewing_zone.set(zone)
    return zone


def _zone_of(context: Any) -> ZoneInfo:
    name = context.get("time_zone") if context is not None else None
    return (zone_named(name) if name else None) or _viewing_zone.get()


def as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def fmt_dt(value: Any, seconds: bool = True, tz: ZoneInfo | None = None) -> str:
    """``2024-05-01 14:00:03`` in ``tz`` (default: the viewing user's zone), or an em dash; the
    date as the request's language writes it (``01.05.2024`` in German)."""
    dt = as_datetime(value)
    if dt is None:
        return "—"
    return dt.astimezone(tz or _viewing_zone.get()).strftime(i18n.date_pattern() + (" %H:%M:%S" if seconds else " %H:%M"))


def viewer_zone() -> ZoneInfo:
    """The zone the viewing user sees times in (set for every signed-in admin request)."""
    return _viewing_zone.get()


def local_day_start(day: date | None = None, tz: ZoneInfo | None = None) -> datetime:
    """Midnight starting ``day`` (default: today) in ``tz`` (default: the viewing zone), in UTC."""
    zone = tz or _viewing_zone.get()
    day = day or datetime.now(zone).date()
    return datetime.combine(day, time(), tzinfo=zone).astimezone(timezone.utc)


def fmt_site_dt(value: Any, site_zone: Any, tz: ZoneInfo | None = None, seconds: bool = True) -> str:
    """The time at the site, ``2024-05-01 08:00:03 EDT``, when the site's zone shows it other than
    ``tz`` (the viewing zone) does; "" when it would read the same, or the site has no valid zone."""
    dt, site = as_datetime(value), zone_named(site_zone)
    viewer = tz or _viewing_zone.get()
    if dt is None or site is None or site.key == viewer.key:
        return ""
    there = dt.astimezone(site)
    if there.utcoffset() == dt.astimezone(viewer).utcoffset():
        return ""
    return there.strftime(i18n.date_pattern() + (" %H:%M:%S %Z" if seconds else " %H:%M %Z"))


def fmt_iso(value: Any) -> str:
    """The instant as ISO 8601 in UTC (``<time datetime>``, scripts), or ""."""
    dt = as_datetime(value)
    return dt.isoformat() if dt else ""


def fmt_ago(value: Any) -> str:
    dt = as_datetime(value)
    if dt is None:
        return gettext("never")
    secs = int((datetime.now(timezone.utc) - dt).total_seconds())
    if secs < 0:
        return gettext("just now")
    if secs >= 86400:
        return gettext("%(n)s d ago", n=secs // 86400)
    if secs >= 3600:
        return gettext("%(n)s h ago", n=secs // 3600)
    if secs >= 60:
        return gettext("%(n)s min ago", n=secs // 60)
    return gettext("%(n)s s ago", n=secs)


def fmt_kwh(wh: Any) -> str:
    """Energy in kWh with two decimals, grouped as the request's language writes numbers."""
    return "—" if wh is None else f"{i18n.format_decimal(float(wh) / 1000, '#,##0.00')} kWh"


def fmt_kw(w: Any) -> str:
    return "—" if w is None else f"{i18n.format_decimal(float(w) / 1000, '#,##0.00')} kW"


def _decimal_text(text: str) -> str:
    """A number written with ``.`` in the request's language's decimal separator."""
    symbol = i18n.decimal_symbol()
    return text if symbol == "." else text.replace(".", symbol)


def fmt_num(value: Any) -> str:
    """A stored float without a needless ``.0`` (63.0 A reads 63 A), or an em dash."""
    return "—" if value is None else _decimal_text(f"{float(value):g}")


def fmt_duration(minutes: Any) -> str:
    """A duration in minutes for people in the request's language: ``45 min``, ``1:05 h`` (``1 h 05``
    in French, ``1:05 u`` in Dutch); an em dash when unknown."""
    if minutes is None:
        return "—"
    total = int(round(float(minutes)))
    if total < 60:
        return gettext("%(minutes)s min", minutes=total)
    return gettext("%(hours)s:%(minutes)s h", hours=total // 60, minutes=f"{total % 60:02d}")


def fmt_amount(value: Any) -> str:
    """A price or line amount: two decimals, more only where they carry (``0.0315``, ``0.30``)."""
    if value is None or value == "":
        return "—"
    number = Decimal(str(value))
    cents = number.quantize(Decimal("0.01"))
    return _decimal_text(f"{cents:f}" if cents == number else f"{number.normalize():f}")


def session_minutes(row: Any) -> float | None:
    """A session's minutes from start to stop (to now while it runs)."""
    start, stop = as_datetime(row.get("started_at")), as_datetime(row.get("stopped_at"))
    if start is None:
        return None
    return ((stop or datetime.now(timezone.utc)) - start).total_seconds() / 60


def fmt_quantity(value: Any, unit: str = "") -> str:
    """A billed quantity for people: hours as ``1:05 h`` or ``12 min`` (seconds below a minute),
    kWh to the Wh, anything else without trailing zeros."""
    if value is None:
        return "—"
    number = Decimal(str(value))
    if unit == "h":
        seconds = int((number * 3600).to_integral_value(ROUND_HALF_UP))
        return gettext("%(seconds)s s", seconds=seconds) if seconds < 60 else fmt_duration(seconds / 60)
    if unit == "kWh":
        number = number.quantize(Decimal("0.001"), ROUND_HALF_UP)
    text = f"{number.normalize():f}" if number == number.to_integral_value() or unit != "kWh" else f"{number:f}"
    return f"{_decimal_text(text)} {unit}".strip()


def status_class(status: Any) -> str:
    return _STATUS_CLASSES.get(str(status), "muted")


def pretty_json(value: Any) -> str:
    """Stored JSON (e.g. a station's raw frame) indented; text that is not JSON, or nested too
    deeply to parse safely, as it is."""
    if isinstance(value, str):
        if json_depth_exceeds(value, MAX_JSON_DEPTH):
            return value
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@pass_context
def _dt_filter(context: Any, value: Any, seconds: bool = True) -> str:
    return fmt_dt(value, seconds, _zone_of(context))


@pass_context
def _site_dt_filter(context: Any, value: Any, site_zone: Any, seconds: bool = True) -> str:
    return fmt_site_dt(value, site_zone, _zone_of(context), seconds)


class KeptForm(dict):
    """What the operator typed into a station panel's form that came back with an error: each
    field's (first) value, "" for a field not sent; ``all(name)`` gives every value of a field
    (checkboxes of one name). Empty (false) for the panel's other forms. A field named like a
    dict method (``values``, ``items``) is read ``k["values"]``."""

    def __init__(self, pairs: Sequence[tuple[str, Any]] = ()) -> None:
        super().__init__()
        self._lists: dict[str, list[str]] = {}
        for name, value in pairs:
            if name == "_csrf_token" or not isinstance(value, str):
                continue
            self._lists.setdefault(name, []).append(value)
            self.setdefault(name, value)

    def __missing__(self, key: str) -> str:
        return ""

    def all(self, name: str) -> list[str]:
        return list(self._lists.get(name, []))




PANEL_FORM = "_panel_form"  # the hidden field that says a post came from a panel form (macros.html panel_form)


async def keep_form(request: Request) -> None:
    """Keep what was posted to this request's path, so the panel's form it re-renders after an
    error (:func:`kept`) shows it again instead of a blank form."""
    form = await request.form()
    request.scope["csms_kept_form"] = (request.scope["path"], KeptForm(list(form.multi_items())))  # type: ignore[typeddict-unknown-key]


@pass_context
def kept(context: Any, action: str) -> KeptForm:
    """The values kept for the panel form posting to ``action`` (see :func:`keep_form`), else an empty
    :class:`KeptForm`: templates write ``value="{{ k.field }}"`` either way."""
    request = context.get("request")
    found = request.scope.get("csms_kept_form") if request is not None else None
    if not found or unquote(action.split("?", 1)[0]) != found[0] or PANEL_FORM not in found[1]:
        return KeptForm()  # another form's, or a row's button posting to the same action
    return found[1]


def install_filters(env: Environment) -> None:
    env.globals["kept"] = kept
    env.filters.update(dt=_dt_filter, site_dt=_site_dt_filter, iso=fmt_iso, ago=fmt_ago, kwh=fmt_kwh, kw=fmt_kw, num=fmt_num, status_class=status_class,
                       pretty_json=pretty_json, duration=fmt_duration, quantity=fmt_quantity, amount=fmt_amount,
                       session_duration=lambda row: fmt_duration(session_minutes(row)))


@dataclass
class Page:
    """One page of a long list, with links that keep the request's other query parameters."""

    items: list[dict[str, Any]]
    total: int
    number: int
    size: int
    query: dict[str, str]

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def first_index(self) -> int:
        return 0 if not self.total else (self.number - 1) * self.size + 1

    @property
    def last_index(self) -> int:
        return min(self.total, self.number * self.size)

    def url(self, number: int) -> str:
        return "?" + urlencode({**{k: v for k, v in self.query.items() if v not in ("", None)}, "page": number})


def page_number(request: Request) -> int:
    try:
        return max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        return 1


async def paginate(request: Request, query: Any, count: Any, *, size: int = PAGE_SIZE) -> Page:
    """Run a Piccolo select (already filtered and ordered) for the requested page."""
    total = await count
    number = min(page_number(request), max(1, math.ceil(total / size)))
    items = await query.limit(size).offset((number - 1) * size)
    query_params = {k: v for k, v in request.query_params.items() if k != "page"}
    return Page(items, total, number, size, query_params)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def installation_wide_paths(app: Any) -> set[str]:
    """Paths of the pages only global users see (tenant rule ``global``), computed once per app."""
    cached = getattr(app.state, "csms_global_paths", None)
    if cached is None:
        cached = {route.path.rstrip("/") or "/" for route in app.routes
                  for handler in getattr(route, "route_handlers", [])
                  if "GET" in (getattr(handler, "http_methods", None) or {"GET"}) and rule_of(handler) == GLOBAL_ONLY}
        app.state.csms_global_paths = cached
    return cached


def nav_items(request: Request, user: Any) -> list[Any]:
    """Navigation from the ``admin_nav`` hook (built-in pages come through it too), without the
    pages the user's role or organization does not reach."""
    items = [i for i in call_sync("admin_nav", request=request) if hasattr(i, "href")]
    allowed = ROLES.get(user.role, -1)
    items = [i for i in items if ROLES.get(getattr(i, "min_role", "viewer"), 0) <= allowed]
    if user.organization is not None:
        hidden = installation_wide_paths(request.app)
        items = [i for i in items if (i.href.split("?")[0].rstrip("/") or "/") not in hidden]
    return sorted(items, key=lambda i: (getattr(i, "order", 100), i.label))


def fragment(request: Request, template: str, **context: Any) -> Markup:
    """``admin/<template>`` rendered alone (a panel's HTML), with the request in its context."""
    engine: Any = request.app.template_engine
    context.setdefault("time_zone", request.scope.get("csms_time_zone") or _viewing_zone.get().key)
    context.setdefault("language", i18n.current_language())
    return Markup(engine.get_template(f"admin/{template}").render(request=request, **context))


async def panels(page: str, request: Request, context: dict[str, Any]) -> list[Markup]:
    """HTML fragments plugins add to ``page`` through ``admin_panels``."""
    out: list[Markup] = []
    for _, answer in await call_hook("admin_panels", page=page, request=request, context=context):
        for fragment in answer if isinstance(answer, (list, tuple)) else [answer]:
            if fragment:
                out.append(Markup(fragment))
    return out


PanelsHook = Callable[[str, "Request", dict[str, Any]], "Callable[[], Awaitable[Markup]] | None"]


def page_panel(*pages: str, when: Callable[[dict[str, Any]], bool] | None = None,
               ) -> Callable[[Callable[..., Awaitable[Markup]]], PanelsHook]:
    """An ``admin_panels`` implementation (under ``@hookimpl``) made of the coroutine it decorates,
    which renders the panel: on the pages named ``pages`` ("station", "site") it is awaited with
    the request and the page's object (``context[page]``) as a keyword named after the page
    (``station=``); other pages, a page without its object, or one whose context ``when`` turns
    down (say, a station of a protocol version without the feature), get no panel."""

    def decorate(panel: Callable[..., Awaitable[Markup]]) -> PanelsHook:
        def admin_panels(page: str, request: Request, context: dict[str, Any]) -> Callable[[], Awaitable[Markup]] | None:
            shown = context.get(page) if page in pages else None
            if not shown or (when is not None and not when(context)):
                return None
            return partial(panel, request, **{page: shown})

        admin_panels.__doc__ = panel.__doc__
        return admin_panels

    return decorate


REQUEST_STARTED = "csms_request_started"


async def mark_request_start(request: Request) -> None:
    """``before_request`` of the admin's routes: when the request came in. A page's data is read
    after this moment, so a change the live stream reports from then on may be missing from it
    (the page's ``data-rendered``)."""
    request.scope[REQUEST_STARTED] = datetime.now(timezone.utc).timestamp()  # type: ignore[literal-required]


async def render(request: Request, template: str, *, status_code: int = 200, panel_page: str | None = None,
                 **context: Any) -> Template:
    """A page of the admin with the shared context; ``panel_page`` adds plugin panels."""
    user = await current_user(request)
    zone = use_viewer_preferences(request, user)
    context.setdefault("title", "")
    if panel_page:
        context["panels"] = await panels(panel_page, request, dict(context))
    # HTML whatever the handler's return annotation says (an ``-> Any`` handler defaults to JSON)
    return Template(f"admin/{template}", status_code=status_code, media_type="text/html", context={
        "user": user,
        "can_operate": bool(user and user.can("operator")),
        "can_admin": bool(user and user.can("admin")),
        "nav": nav_items(request, user) if user else [],
        "path": request.url.path,
        "time_zone": zone,
        "language": i18n.current_language(),
        # the live stream's first open refreshes a page older than a change: its data was read
        # after the request came in (the admin's routes mark it), else after now
        "rendered_at": request.scope.get(REQUEST_STARTED) or datetime.now(timezone.utc).timestamp(),
        **context,
    })


def use_viewer_preferences(request: Any, user: Any) -> str:
    """Make the viewer's time zone and language this request's (the user's own choices, else the
    browser's language and the installation's defaults); returns the zone's name."""
    zone = viewing_zone_name(request, user)
    use_zone(zone)
    request.scope["csms_time_zone"] = zone
    i18n.use_request_language(request, getattr(user, "language", "") if user is not None else "")
    return zone


def choices(rows: Sequence[dict[str, Any]], label: str = "name") -> list[tuple[str, str]]:
    return [(str(r["id"]), r[label]) for r in rows]


def translated_choices(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """A select's fixed choices (labels marked with ``N_``) in the request's language; the values
    stay as stored."""
    return [(value, gettext(label)) for value, label in pairs]
