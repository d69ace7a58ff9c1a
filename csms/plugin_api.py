"""The public plugin API: everything a plugin may import from the CSMS, in one module.

A plugin (the shipped ones in ``plugins/`` included) imports from here and from
:mod:`csms.testing` (its tests), never from ``csms.core``, ``csms.api``, ``csms.admin`` or other
internal modules; an import-linter contract in ``pyproject.toml`` holds every shipped plugin to
that. What is listed in ``__all__`` is kept stable within a major version: names are added, and a
name is removed or changed only with a deprecation period. ``docs/plugins.md`` is the guide;
``docs/hooks.md`` lists the hooks.

The groups:

* **Hooks**: :data:`hookimpl` marks an implementation; a plugin that offers hooks of its own
  declares them with :data:`hookspec` and a :class:`Rule`, registers them with
  :func:`add_hookspecs` and calls them with :func:`call_hook` (each implementation isolated).
* **Domain values** passed to and returned from hooks (:class:`AuthorizationResult`,
  :class:`SessionCost`, :class:`Load`, :class:`CapacitySchedule` ...) and the typed
  :mod:`events <csms.core.events>` delivered to the ``event`` and ``event_batch`` hooks.
* **Tables** of the core (Piccolo), to read with the plugin's own queries. A plugin writes the
  core's rows only through the core's services (:func:`get_core`), which keep the rules (commit
  before state changes, events after the answer).
* **The running core** (:func:`get_core`): station commands (``get_core().commands``), smart
  charging, settlement and the batch writer; :func:`run_command` turns a command's outcome into
  an HTTP answer.
* **HTTP**: REST guards (:func:`require`, :func:`caller`), admin pages (:func:`render`,
  :func:`paginate`, :func:`is_htmx`, the admin's error handlers), :func:`public_route` for the
  few routes that need no login (every other plugin route requires one), and helpers for bounded
  input and CSV output.
* **Driver portal**: a plugin route under ``/driver/`` needs a signed-in driver (the core's
  guard); :func:`current_driver` gives it, :func:`driver_page` renders a page in the portal's
  look (the template extends ``driver/base.html``), :data:`DRIVER_EXCEPTION_HANDLERS` answer a
  missing sign-in and a 404 as the portal does, and ``driver_nav`` adds menu entries.
* **Publishing**: :func:`published_site_ids` tells which sites may be shown to the public and to
  roaming partners (the site's and its organization's ``publish`` switches).
* **Plans**: :func:`feature_enabled` tells whether an organization's plan includes a feature;
  a plugin declares its own feature keys with the ``plan_features`` hook (returning
  :class:`PlanFeature` entries) so that the Plans page offers them.
* **Tenancy**: every route declares who may see it in ``opt={"tenant": ...}``; a plugin route
  that declares nothing is for global users only (an organization's user gets 404). See
  :mod:`csms.api.tenancy` and ``docs/plugins.md``.
* **Languages and time zones**: :func:`gettext` / :func:`ngettext` translate into the viewer's
  language (a plugin ships its catalogs through the ``locale_dirs`` hook; ``_()`` works in its
  templates), :data:`N_` marks a label translated where it is shown (``NavItem(N_("Fleet"), ...)``);
  :class:`TranslatedError` is an error worded in the language of whoever reads it;
  :func:`in_language` writes in another language for a while (an e-mail in
  :func:`recipient_language`, its recipient's); :func:`notice_url` / :func:`notice_text` carry a
  notice through a redirect as a key, worded when the page is shown; :func:`viewer_zone` is the signed-in user's time zone and :func:`parse_datetime_local` reads a
  ``datetime-local`` input typed in it.
* **Certificates**: :func:`check_csr` holds a certificate signing request to the
  core's rules (parses, valid signature, subject, accepted keys; :class:`CsrProblem` says why
  not), for a plugin that signs certificates itself.
* **Work off the event loop**: :func:`run_cpu` for anything heavier than a few milliseconds.
* **Background jobs on one node**: :func:`run_as_leader` (a Redis lease with a fencing token).
  A job's loop sleeps with :func:`wait_event` (woken early by an event, always ended by a
  cancellation; use it or ``asyncio.timeout``, not ``asyncio.wait_for``, which can swallow a
  cancellation on Python 3.11).
"""

from __future__ import annotations

from csms import __version__
from csms.admin.auth import admin_guard, current_user
from csms.admin.errors import ADMIN_EXCEPTION_HANDLERS, error_page, http_error
from csms.admin.forms import parse_datetime_local
from csms.admin.notices import notice_text, notice_url
from csms.admin.templating import fmt_quantity, is_htmx, paginate, render, viewer_zone
from csms.api.auth import caller, require
from csms.api.bounds import Int32
from csms.api.crud import jsonable, page_params
from csms.api.audit import audited
from csms.api.stations import run_command, station_row
from csms.api.tenancy import (
    GLOBAL,
    GLOBAL_ONLY,
    PUBLIC,
    SCOPED,
    Scope,
    check_assignable,
    owner_by,
    owner_by_station,
    owner_for_new,
    register_kind,
    restrict,
    restrict_station_ids,
    scope_for,
    tenant_scope,
    visible_station_ids,
)
from csms.core import events
from csms.core.certificates import CsrProblem, check_csr
from csms.core.domain import (
    AuthorizationResult,
    CapacityPeriod,
    CapacitySchedule,
    CostLine,
    Load,
    NavItem,
    SessionCost,
    SiteTopology,
    TopologyNode,
)
from csms.core.events import Event
from csms.core.mail import MailError, mail_enabled, send_mail
from csms.core.ocpp.validation import V16, V21, V201, OcppError
from csms.core.background import wait_event
from csms.core.leases import LeaderJob
from csms.core.offload import run_cpu
from csms.core.publishing import published_site_ids
from csms.core.runtime import get_core, run_as_leader
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.services.driver_data import redact_audit
from csms.core.services.operations import OperationError
from csms.core.services.plans import PlanFeature, feature_enabled
from csms.core.services.settlement import session_dict
from csms.core.services.smart_charging.phases import floor_tenth
from csms.core.services.smart_charging.profiles import TX, Planned, build_profile
from csms.core.tables import (
    ChargingSession,
    Connector,
    Driver,
    Evse,
    IdToken,
    MeterValue,
    Organization,
    Site,
    Station,
    StationEvent,
)
from csms.core.timeutil import ocpp_ts, parse_ts, utcnow
from csms.csvexport import csv_text
from csms.driver.portal import DRIVER_EXCEPTION_HANDLERS, current_driver, driver_page
from csms.hookspecs import Rule, hookspec
from csms.i18n import N_, TranslatedError, current_language, gettext, in_language, ngettext
from csms.jsondepth import MAX_JSON_DEPTH, json_depth_exceeds
from csms.plugin_routes import public_route
from csms.roles import recipient_language
from csms.plugins import add_hookspecs, call_hook, hook_impls, hookimpl
from csms.settings import CsmsSettings, SmtpSettings, smtp_settings

__all__ = [
    # hooks
    "hookimpl", "hookspec", "Rule", "add_hookspecs", "call_hook", "hook_impls",
    # domain values and events
    "AuthorizationResult", "CapacityPeriod", "CapacitySchedule", "CostLine", "Load", "NavItem",
    "SessionCost", "SiteTopology", "TopologyNode", "Event", "events",
    # tables
    "ChargingSession", "Connector", "Driver", "Evse", "IdToken", "MeterValue", "Organization", "Site",
    "Station", "StationEvent",
    # the running core, commands and their errors
    "get_core", "run_command", "station_row", "session_dict", "CommandTimeout", "StationOffline",
    "UnknownStation", "OperationError", "OcppError", "V16", "V201", "V21",
    "check_csr", "CsrProblem",
    # charging profiles
    "Planned", "build_profile", "TX", "floor_tenth",
    # HTTP: REST, admin pages, input bounds, CSV
    "require", "caller", "admin_guard", "current_user", "render", "paginate", "is_htmx", "fmt_quantity",
    "ADMIN_EXCEPTION_HANDLERS", "error_page", "http_error", "public_route", "jsonable", "page_params",
    "notice_url", "notice_text",
    "Int32", "MAX_JSON_DEPTH", "json_depth_exceeds", "csv_text",
    # the driver portal: the signed-in driver of a /driver/ route, its pages and answers
    "current_driver", "driver_page", "DRIVER_EXCEPTION_HANDLERS",
    # what is published to the public and to roaming partners
    "published_site_ids",
    # plans: whether an organization's plan includes a feature; the features a plugin declares
    "feature_enabled", "PlanFeature",
    # tenancy: route rules (opt={"tenant": ...}), the caller's scope, filtering, object kinds
    "PUBLIC", "GLOBAL_ONLY", "SCOPED", "Scope", "GLOBAL", "scope_for", "tenant_scope", "restrict",
    "restrict_station_ids",
    "visible_station_ids", "owner_for_new", "check_assignable", "register_kind", "owner_by",
    "owner_by_station",
    # the audit log: what a plugin's routes change; redacting a driver's data from it (GDPR)
    "audited", "redact_audit",
    # languages: texts in the viewer's language (catalogs through the locale_dirs hook); the
    # viewer's time zone and times typed in it
    "gettext", "ngettext", "N_", "TranslatedError", "current_language", "in_language", "recipient_language",
    "viewer_zone",
    "parse_datetime_local",
    # settings, time, work off the event loop
    "CsmsSettings", "SmtpSettings", "smtp_settings", "send_mail", "mail_enabled", "MailError", "utcnow", "ocpp_ts", "parse_ts", "run_cpu", "run_as_leader", "LeaderJob", "wait_event", "__version__",
]
