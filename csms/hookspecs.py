"""Every hook a plugin can implement. Each is documented in ``docs/hooks.md`` (a test checks).

Rules of the contract:

* Hooks are called with keyword arguments. An implementation may accept any subset of the
  arguments listed; arguments may be added in later versions, never renamed.
* pluggy never awaits. An implementation may return a value, an awaitable, or an async callable;
  the core awaits whatever it gets ("await me maybe").
* Hooks marked *first answer wins* are called in order (``tryfirst`` first, ``trylast`` last) and
  the first implementation whose resolved result is not ``None`` decides; the built-in
  implementations are registered ``trylast``.
* A plugin that raises is logged and skipped; it never breaks a station's answer.
* Event hooks run after the station got its answer, off the request path.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("csms")


# ---------------------------------------------------------------------------------------------
# Lifecycle and wiring
# ---------------------------------------------------------------------------------------------


@hookspec
def startup(app, settings):
    """Called once when the server has started (database migrated, services running)."""


@hookspec
def shutdown(app):
    """Called once when the server stops, before the database is closed."""


@hookspec
def register_routes(settings):
    """Return a list of Litestar route handlers or routers to mount in the app."""


@hookspec
def piccolo_apps():
    """Return a list of dotted paths to Piccolo ``piccolo_app`` modules holding the plugin's
    tables and migrations (``"plugins.billing.piccolo_app"``)."""


@hookspec
def template_dirs():
    """Return a list of directories with Jinja2 templates; they take precedence over the core's,
    so a plugin can override or extend (``{% extends %}``) a core template."""


@hookspec
def admin_nav(request):
    """Return a list of ``NavItem(label, href, order=...)`` for the admin's navigation."""


@hookspec
def admin_panels(page, request, context):
    """Return a list of HTML fragments (``markupsafe.Markup`` or str of trusted HTML) to show on the
    admin page named ``page`` ("dashboard", "station", "session", "site"); ``context`` is that
    page's template context (``station``, ``session``, ``site`` ...)."""


@hookspec
def register_commands(subparsers):
    """Add sub-commands to the ``csms`` CLI: ``subparsers`` is argparse's; set
    ``func=`` (a function taking the parsed args; may be async) on each new parser."""


# ---------------------------------------------------------------------------------------------
# Authorization
# ---------------------------------------------------------------------------------------------


@hookspec
def authorize_token(station_id, id_token, token_type, evse_id, purpose):
    """First answer wins. Decide whether ``id_token`` (of OCPP ``token_type``) may charge at
    ``station_id``; ``purpose`` is "authorize", "start" or "remote_start". Return an
    ``AuthorizationResult`` or ``None`` to let the next plugin decide. Built-in: local lookup in
    the id_token table, then "unknown is rejected" last."""


# ---------------------------------------------------------------------------------------------
# Pricing and billing
# ---------------------------------------------------------------------------------------------


@hookspec
def select_tariff(session):
    """First answer wins. Return the tariff (any object the pricing plugin understands) that
    applies to ``session`` (a ``ChargingSession`` row as a dict)."""


@hookspec
def price_session(session, final):
    """First answer wins. Return a ``SessionCost`` for ``session``: so far when ``final`` is
    False (live cost of a running session), the final cost when True."""


@hookspec
def settle_session(session, cost):
    """Called once for each finished session with its final ``SessionCost`` (or ``None`` when no
    pricing plugin answered). All implementations run; settlement must be idempotent per session
    id, and the core retries an implementation that raised."""


# ---------------------------------------------------------------------------------------------
# Smart charging
# ---------------------------------------------------------------------------------------------


@hookspec
def site_capacity(site, now):
    """Return the site's available capacity as a ``CapacitySchedule`` (per-phase amps over
    time) or ``None``. All answers count; the core takes the minimum at every moment."""


@hookspec
def allocate_capacity(site, topology, loads, capacity, now):
    """First answer wins. Share ``capacity`` (a ``CapacitySchedule``) over ``loads`` (active
    connectors with measured draw) in ``topology`` (the site's tree of limits). Return a dict of
    load id to amps per phase (0 pauses the load)."""


@hookspec
def session_limit(load, now):
    """Return an upper limit in amps per phase for this load (a ``csms.core.domain.Load``, an
    active session on a connector) at ``now``, or ``None``. All answers count; the core takes
    the minimum."""


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


@hookspec
def event(event):
    """Called for every domain event (``csms.core.events``: StationConnected, SessionStarted,
    MeterValuesReceived, CommandAnswered ...) after the station got its answer."""
