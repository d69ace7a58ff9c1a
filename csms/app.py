"""The application factory: one Litestar app with the OCPP endpoint, the REST API, the OpenAPI
document, the operator admin, static assets and whatever plugins add."""

from __future__ import annotations

import gc
import logging
import os
import re
from contextlib import asynccontextmanager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from litestar import Litestar, Router, get
from litestar.connection import ASGIConnection
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.logging.config import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from csms import __version__, i18n
from csms.admin import AdminPlugin, auth
from csms.admin.errors import login_required
from csms.admin.mount import CSRF_EXCLUDE
from csms.api import bounds, tenancy
from csms.api.auth import require
from csms.api.crud import crud_controller
from csms.api.certificates import CertificateController
from csms.api.charging_profiles import ChargingProfileController
from csms.api.display_messages import DisplayMessageController
from csms.api.firmware_publishing import FirmwarePublishingController
from csms.api.network_profiles import NetworkProfileController
from csms.api.station_tariffs import StationTariffController
from csms.api.der import DerController
from csms.api.energy_controls import EnergyControlController
from csms.api.audit_log import AuditController
from csms.api.keys import ApiKeyController
from csms.api.plans import PlanController
from csms.api.local_lists import LocalListController
from csms.api.reservations import ReservationController
from csms.api.metrics import metrics_endpoint
from csms.api.monitoring import CustomerInformationController, EventStreamController, MonitoringController
from csms.api.smart_charging import SmartChargingController
from csms.api.session_close import SessionCloseController
from csms.api.station_data_clear import StationDataClearController
from csms.api.station_passwords import StationPasswordController
from csms.api.stations import StationController
from csms.api.tokens_sessions import SessionController, TokenController
from csms.core import tracing
from csms import security_headers
from csms.admin.config import OSM_TILES
from csms.core.ocpp.endpoint import ocpp_endpoint
from csms.core.tables import Driver, Hub, Organization, Site
from csms.driver import driver_router
from csms.driver.portal import DriverSignInRequired, driver_guard, sign_in_answer
from csms.plugin_routes import public_reason
from csms.plugins import call_hook, call_sync, load_plugins
from csms.settings import Settings, get_settings

log = logging.getLogger("csms")

PACKAGE_DIR = Path(__file__).parent
TEMPLATE_DIR = PACKAGE_DIR.parent / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
# The collector's thresholds once the app is up (generation 0, 1, 2; Python's are 700, 10, 10).
GC_THRESHOLDS = (20_000, 20, 20)


@get("/api/v1/health", tags=["system"], opt={"tenant": tenancy.PUBLIC})
async def health() -> dict[str, Any]:
    """Liveness and a few figures; needs no authentication."""
    from csms.core.runtime import get_core

    core = get_core()
    return {"status": "ok", "version": __version__, "node": core.node_id, "connected_stations": len(core.connections),
            "active_sessions": len(core.sessions.active),
            "station_logins_failed": core.failed_logins.failed_total,
            "station_logins_throttled": core.failed_logins.throttled_total,
            "writes_failed": core.writer.failed_units if core.writer else 0}


def template_engine() -> JinjaTemplateEngine:
    dirs = [Path(d) for d in call_sync("template_dirs")] + [TEMPLATE_DIR]
    env = Environment(loader=ChoiceLoader([FileSystemLoader(str(d)) for d in dirs]), autoescape=True)
    i18n.install(env, call_sync("locale_dirs"))
    return JinjaTemplateEngine.from_environment(env)


def api_router() -> Router:
    return Router(path="/api/v1", route_handlers=[
        StationPasswordController,
        SessionCloseController,
        StationController,
        LocalListController,
        DisplayMessageController,
        FirmwarePublishingController,
        ChargingProfileController,
        NetworkProfileController,
        StationTariffController,
        DerController,
        EnergyControlController,
        StationDataClearController,
        MonitoringController,
        EventStreamController,
        CustomerInformationController,
        CertificateController,
        ReservationController,
        TokenController,
        SessionController,
        crud_controller(Organization, "/organizations", filters=("kind", "parent"), order_by="name",
                        kind="organization", owner=Organization.id),
        crud_controller(Driver, "/drivers", filters=("kind", "organization"), order_by="name", kind="driver",
                        owner=Driver.organization),
        crud_controller(Site, "/sites", filters=("organization",), order_by="name", kind="site",
                        owner=Site.organization),
        crud_controller(Hub, "/hubs", filters=("site",), order_by="name", kind="hub", owner=Hub.site.organization),
        SmartChargingController,
        ApiKeyController,
        PlanController,
        AuditController,
    ])


_CSRF_SKIPPED = [re.compile(p) for p in CSRF_EXCLUDE]


async def plugin_route_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """The guard of every route a plugin registers, unless it is declared public (the rules are
    in :mod:`csms.plugin_routes`)."""
    if public_reason(handler.opt):
        return
    path = connection.scope["path"]
    if path == "/driver" or path.startswith("/driver/"):
        await driver_guard(connection, handler)  # the portal's pages: a signed-in driver, never an operator
        return
    role = auth.required_role(connection, handler)
    if path.startswith("/api/"):
        if not any(hasattr(guard, "csms_role") for guard in handler.resolve_guards()):
            await require(role)(connection, handler)
        return
    await auth.require_login(connection, role)
    if connection.scope.get("method", "GET") not in auth.SAFE_METHODS and (
            handler.opt.get("exclude_from_csrf") or any(p.match(path) for p in _CSRF_SKIPPED)):
        if not auth.csrf_header_ok(connection, connection.app.state.admin_settings.secret):
            raise PermissionDeniedException("CSRF token missing or incorrect")


def guard_plugin_routes(items: list[Any]) -> Router:
    """What ``register_routes`` returned, mounted behind :func:`plugin_route_guard` (secure by
    default: a plugin declares a public route, it never has to remember a guard)."""
    return Router(path="/", route_handlers=items, guards=[plugin_route_guard],
                  exception_handlers={auth.LoginRequired: login_required, DriverSignInRequired: sign_in_answer})


def worker_app() -> Litestar:
    """The app of one worker process of ``csms serve --workers N`` (a uvicorn factory): settings from
    the environment and the configuration file, logging as configured, and a node id of its own."""
    from csms.core.logs import setup_logging

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_format)
    if settings.node_id:
        settings = settings.model_copy(update={"node_id": f"{settings.node_id}:{os.getpid()}"})
    return create_app(settings)


@contextmanager
def tuned_collector() -> Iterator[None]:
    """The collector while a started app has the process to itself."""
    # Everything built until now (modules, routes, schemas and validators, plugins) lives as
    # long as the process: out of the collector's sight, a full collection under load costs
    # a fraction of what it did (measured: GC time 3.2 s -> 0.8 s in a 20 s closed-loop bench).
    gc.collect()
    gc.freeze()
    # The young generation collected every GC_THRESHOLDS[0] net allocations instead of 700:
    # a loop iteration that decodes the frames of a few hundred stations at once allocates
    # thousands of objects that reference counting frees moments later, and at 700 each such
    # burst set off collections (about 100 a second, and a full one every few seconds) that
    # scanned them in vain: 1.4 s of the collector's CPU in 25 s of closed-loop load, about
    # 30 µs per call, against 0.05 s at 20,000 (bench/README.md, "fourth pass").
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        # What was frozen lives on until unfrozen: a process that starts app after app would
        # keep each one (about 19 MB a start).
        gc.unfreeze()


def create_app(settings: Settings | None = None, *, manage_database: bool = True,
               tune_collector: bool = True) -> Litestar:
    """Build the app. ``manage_database=False`` leaves engine set-up to the caller (tests).
    ``tune_collector`` is for an app that has its process to itself (``csms serve`` and its
    workers): it freezes what start-up built and raises the collector's thresholds while it runs.
    An app among many in one process (the tests start hundreds) leaves the collector alone: each
    start's full collection would scan everything the process holds by then (0.3-0.6 s a start
    in a test worker)."""
    settings = settings or get_settings()
    i18n.set_default_language(settings.admin_language)
    load_plugins()
    tracer_provider = tracing.setup(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        from csms.core.runtime import Core
        from csms.db import close_engine, migrate, open_engine

        if manage_database:
            await open_engine()
            await migrate()
        core = Core(settings)
        await core.start()
        app.state.core = core
        await call_hook("startup", app=app, settings=settings)
        with tuned_collector() if tune_collector else nullcontext():
            try:
                yield
            finally:
                await call_hook("shutdown", app=app)
                await core.stop()
                if manage_database:
                    await close_engine()
                await tracing.shutdown(tracer_provider)

    handlers: list[Any] = [
        ocpp_endpoint,
        health,
        metrics_endpoint,
        api_router(),
        driver_router(),
        create_static_files_router(path="/static", directories=[STATIC_DIR], include_in_schema=False,
                                   opt={"tenant": tenancy.PUBLIC}),
    ]
    plugin_routes = call_sync("register_routes", settings=settings)
    if plugin_routes:
        handlers.append(guard_plugin_routes(plugin_routes))
    return Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        template_config=TemplateConfig(instance=template_engine()),
        openapi_config=OpenAPIConfig(
            title="CSMS API", version=__version__, path="/api/v1/schema",
            render_plugins=[SwaggerRenderPlugin()],
            openapi_router=Router(path="/api/v1/schema", route_handlers=[], opt={"tenant": tenancy.PUBLIC}),
            description="REST API of the CSMS. Authenticate with `Authorization: Bearer <API key>` "
                        "(create one with `csms apikey create --name NAME`).",
        ),
        plugins=[AdminPlugin(settings), *tracing.litestar_plugin(tracer_provider)],
        guards=[tenancy.tenant_guard],  # before every route's own guards: another tenant's object is a 404
        middleware=[security_headers.middleware(OSM_TILES if settings.map_tile_url is None else settings.map_tile_url), bounds.IntParamBounds()],
        request_class=bounds.BoundedRequest,
        exception_handlers=bounds.EXCEPTION_HANDLERS,
        # the root logger is csms.core.logs' (text or JSON); Litestar's own records go there too
        # (Litestar's default "queue_listener" handler, which no logger here uses, would start a
        # listener thread at every app's start that lives as long as the process: a null handler)
        logging_config=LoggingConfig(configure_root_logger=False,
                                     handlers={"queue_listener": {"class": "logging.NullHandler"}},
                                     loggers={"litestar": {"level": "INFO", "handlers": [], "propagate": True}}),
        debug=False,
    )
