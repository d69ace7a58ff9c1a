"""Routes a plugin registers are guarded unless the plugin declares them public, with a reason.

Everything ``register_routes`` returns is mounted by ``csms.app`` behind one guard that decides
per request from the handler's ``opt`` (merged from its routers and controller):

* ``opt={"public": "reason"}`` (what :func:`public_route` sets): no guard from the core; the
  route checks its callers itself (an OCPI token, a secret link) or needs none (a public map).
  ``csms plugins`` and the admin's plugins page list these routes with their reason.
* a path under ``/api/``: the REST API's ``require(role)`` when the route has no such guard of
  its own;
* a path under ``/driver/``: a driver signed in to the driver portal
  (:func:`csms.driver.portal.driver_guard`; the handler reads them with
  ``csms.plugin_api.current_driver``), never an operator's login; such a route declares
  ``opt={"tenant": PUBLIC}`` (a driver is no tenant) and reads only that driver's rows;
* any other path: the admin's login.

The role is the core admin's rule: ``opt["role"]`` if given, else viewer for GET, HEAD and
OPTIONS and operator for every other method. Forms are CSRF-checked by the app's CSRF middleware
as the core's are; a guarded route that the middleware skips (``exclude_from_csrf``, or a path
under ``/ocpi/``) must send the CSRF header for anything but GET, HEAD and OPTIONS.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

from litestar import Router
from litestar.routes import HTTPRoute

from csms.plugins import hook_impls, load_plugins

log = logging.getLogger("csms.plugins")

T = TypeVar("T")


def public_route(item: T, reason: str) -> T:
    """Declare a route handler, controller or router public: no login, no API key.

    ``reason`` says why it is safe (who may call it and how the route checks them); it is shown
    by ``csms plugins``. Same as ``opt={"public": reason}``."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("a public route needs a reason")
    item.opt = {**(getattr(item, "opt", None) or {}), "public": reason}  # type: ignore[attr-defined]
    return item


def public_reason(opt: Mapping[str, Any]) -> str | None:
    """The reason a route is public, or None: only a non-empty string declares a plugin's route
    public (``True`` does not)."""
    reason = opt.get("public")
    return reason if isinstance(reason, str) and reason.strip() else None


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: tuple[str, ...]
    public: str | None  # the reason, for a public route


def route_table(items: list[Any]) -> list[RouteInfo]:
    """Every route of ``items`` (handlers, controllers, routers) with its path, methods and, if
    public, the reason (opt merged from router to handler, as Litestar resolves it)."""
    table = []
    for route in Router(path="/", route_handlers=items).routes:
        for handler in route.route_handlers if isinstance(route, HTTPRoute) else [route.route_handler]:
            opt: dict[str, Any] = {}
            for layer in handler.ownership_layers:
                opt.update(layer.opt or {})
            methods = tuple(sorted(getattr(handler, "http_methods", None) or ("WEBSOCKET",)))
            table.append(RouteInfo(route.path, methods, public_reason(opt)))
    return table


def plugin_public_routes(settings: Any) -> dict[str, list[RouteInfo]]:
    """Each plugin's public routes (plugin name → routes), from its ``register_routes``."""
    load_plugins()
    found: dict[str, list[RouteInfo]] = {}
    for impl in hook_impls("register_routes"):
        try:
            items = impl.function(*({"settings": settings}[name] for name in impl.argnames))
            routes = [r for r in route_table(list(items or [])) if r.public]
        except Exception:
            log.exception("plugin %s failed in hook register_routes", impl.plugin_name)
            continue
        if routes:
            found.setdefault(impl.plugin_name, []).extend(routes)
    return found


def public_summary(routes: list[RouteInfo]) -> list[tuple[str, str]]:
    """(paths, reason) per reason: the paths themselves, or their common prefix when many."""
    by_reason: dict[str, list[str]] = {}
    for route in routes:
        by_reason.setdefault(route.public or "", []).append(route.path)
    lines = []
    for reason, paths in by_reason.items():
        paths = sorted(set(paths))
        if len(paths) > 3:
            prefix = os.path.commonprefix(paths)
            shown = f"{prefix[:prefix.rfind('/') + 1]}... ({len(paths)} routes)"
        else:
            shown = ", ".join(paths)
        lines.append((shown, reason))
    return lines
