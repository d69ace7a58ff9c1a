"""The plugin manager: discovery, "await me maybe", first-answer and isolated calls.

Built-in behaviour is registered as plugins (``csms.core.default_*``), so replacing it uses the
same door a third party uses. Plugins are found through the ``csms`` entry-point group; the
settings ``CSMS_PLUGINS`` / ``CSMS_DISABLE_PLUGINS`` allow and deny them by name.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from importlib.metadata import entry_points
from typing import Any

import pluggy

from csms import hookspecs

log = logging.getLogger("csms.plugins")

hookimpl = pluggy.HookimplMarker("csms")

# Registered in this order; among ``trylast`` implementations the one registered last is
# called last, so the final "unknown is rejected" comes after the local lookup.
DEFAULT_PLUGINS = (
    "csms.core.default_authorization",
    "csms.core.default_authorization:reject_unknown",
    "csms.admin.nav",
)

pm = pluggy.PluginManager("csms")
pm.add_hookspecs(hookspecs)
_loaded = False


def load_plugins() -> None:
    """Register the built-in plugins and every allowed entry-point plugin (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from csms.settings import get_settings

    settings = get_settings()
    for name in DEFAULT_PLUGINS:
        module, _, attr = name.partition(":")
        plugin = importlib.import_module(module)
        if attr:
            plugin = getattr(plugin, attr)
        if pm.get_plugin(name) is None:
            pm.register(plugin, name=name)
    for ep in entry_points(group="csms"):
        if not settings.plugin_allowed(ep.name):
            log.info("plugin %s disabled by settings", ep.name)
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception:
            log.exception("plugin %s failed to load and is skipped", ep.name)
    if settings.trace_hooks:
        pm.trace.root.setwriter(log.info)
        pm.enable_tracing()


def plugin_app_modules() -> list[str]:
    load_plugins()
    mods: list[str] = []
    for result in pm.hook.piccolo_apps():
        mods.extend(result or [])
    return mods


async def await_me_maybe(value: Any) -> Any:
    """Resolve a hook result that may be a value, an awaitable or a (async) callable."""
    if callable(value):
        value = value()
    if inspect.isawaitable(value):
        value = await value
    return value


def hook_impls(hook_name: str) -> list[Any]:
    # pluggy stores implementations in reverse call order
    return list(reversed(getattr(pm.hook, hook_name).get_hookimpls()))


def call_impl(impl: Any, kwargs: dict[str, Any]) -> Any:
    args = {name: kwargs[name] for name in impl.argnames if name in kwargs}
    return impl.function(**args)


async def first_answer(hook_name: str, **kwargs: Any) -> Any:
    """Call implementations in order, awaiting each; return the first non-None answer.

    An implementation that raises is logged and skipped.
    """
    for impl in hook_impls(hook_name):
        try:
            result = await await_me_maybe(call_impl(impl, kwargs))
        except Exception:
            log.exception("plugin %s failed in hook %s", impl.plugin_name, hook_name)
            continue
        if result is not None:
            return result
    return None


async def all_answers(hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call every implementation concurrently; return (plugin name, answer) for non-None answers.

    Failing implementations are logged and left out. Plain (non-async) answers cost no task:
    only awaitables are gathered.
    """
    impls = hook_impls(hook_name)
    results: list[Any] = []
    pending: list[tuple[int, Any]] = []
    for impl in impls:
        try:
            res = call_impl(impl, kwargs)
            if callable(res):
                res = res()
        except Exception as exc:
            res = exc
        if inspect.isawaitable(res):
            pending.append((len(results), res))
        results.append(res)
    if pending:
        done = await asyncio.gather(*(aw for _, aw in pending), return_exceptions=True)
        for (index, _), res in zip(pending, done):
            results[index] = res
    out = []
    for impl, res in zip(impls, results):
        if isinstance(res, BaseException):
            log.error("plugin %s failed in hook %s: %r", impl.plugin_name, hook_name, res, exc_info=res)
        elif res is not None:
            out.append((impl.plugin_name, res))
    return out


async def run_each(hook_name: str, **kwargs: Any) -> None:
    """Call every implementation in order, awaiting each; a failing one is logged and skipped."""
    for impl in hook_impls(hook_name):
        try:
            await await_me_maybe(call_impl(impl, kwargs))
        except Exception:
            log.exception("plugin %s failed in hook %s", impl.plugin_name, hook_name)


def call_sync(hook_name: str, **kwargs: Any) -> list[Any]:
    """Call a wiring hook synchronously; lists returned by implementations are concatenated."""
    out: list[Any] = []
    for impl in hook_impls(hook_name):
        try:
            res = call_impl(impl, kwargs)
        except Exception:
            log.exception("plugin %s failed in hook %s", impl.plugin_name, hook_name)
            continue
        if res is None:
            continue
        if isinstance(res, (list, tuple)):
            out.extend(res)
        else:
            out.append(res)
    return out


def plugins_info() -> list[dict[str, Any]]:
    """Loaded plugins with the hooks each implements (for ``csms plugins`` and the admin)."""
    load_plugins()
    info = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda p: p[0]):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        info.append({"name": name, "hooks": hooks, "module": getattr(plugin, "__name__", type(plugin).__name__)})
    return info

