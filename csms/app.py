"""The application factory: one Litestar app with the OCPP endpoint, the REST API, the OpenAPI
document, the operator admin, static assets and whatever plugins add."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from litestar import Litestar, Router, get
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from csms import __version__
from csms.admin import AdminPlugin
from csms.api import bounds
from csms.api.crud import crud_controller
from csms.api.keys import ApiKeyController
from csms.api.smart_charging import SmartChargingController
from csms.api.stations import StationController
from csms.api.tokens_sessions import SessionController, TokenController
from csms.core.ocpp.endpoint import ocpp_endpoint
from csms.core.tables import Driver, Hub, Organization, Site
from csms.plugins import call_hook, call_sync, load_plugins
from csms.settings import Settings, get_settings

log = logging.getLogger("csms")

PACKAGE_DIR = Path(__file__).parent
TEMPLATE_DIR = PACKAGE_DIR.parent / "templates"
STATIC_DIR = PACKAGE_DIR / "static"


@get("/api/v1/health", tags=["system"])
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
    return JinjaTemplateEngine.from_environment(env)


def api_router() -> Router:
    return Router(path="/api/v1", route_handlers=[
        StationController,
        TokenController,
        SessionController,
        crud_controller(Organization, "/organizations", filters=("kind",), order_by="name"),
        crud_controller(Driver, "/drivers", filters=("kind", "organization"), order_by="name"),
        crud_controller(Site, "/sites", filters=("organization",), order_by="name"),
        crud_controller(Hub, "/hubs", filters=("site",), order_by="name"),
        SmartChargingController,
        ApiKeyController,
    ])


def create_app(settings: Settings | None = None, *, manage_database: bool = True) -> Litestar:
    """Build the app. ``manage_database=False`` leaves engine set-up to the caller (tests)."""
    settings = settings or get_settings()
    load_plugins()

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
        try:
            yield
        finally:
            await call_hook("shutdown", app=app)
            await core.stop()
            if manage_database:
                await close_engine()

    handlers: list[Any] = [
        ocpp_endpoint,
        health,
        api_router(),
        create_static_files_router(path="/static", directories=[STATIC_DIR], include_in_schema=False),
        *call_sync("register_routes", settings=settings),
    ]
    return Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        template_config=TemplateConfig(instance=template_engine()),
        openapi_config=OpenAPIConfig(
            title="CSMS API", version=__version__, path="/api/v1/schema",
            render_plugins=[SwaggerRenderPlugin()],
            description="REST API of the CSMS. Authenticate with `Authorization: Bearer <API key>` "
                        "(create one with `csms apikey create --name NAME`).",
        ),
        plugins=[AdminPlugin(settings)],
        middleware=[bounds.IntParamBounds()],
        request_class=bounds.BoundedRequest,
        exception_handlers=bounds.EXCEPTION_HANDLERS,
        debug=False,
    )
