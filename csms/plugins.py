"""The plugin manager: discovery, checks, and hook calls through pluggy with each spec's rule.

Built-in behaviour is registered as plugins (``csms.core.default_*``), so replacing it uses the
same door a third party uses. Plugins are found through the ``csms`` entry-point group; the
settings ``CSMS_PLUGINS`` / ``CSMS_DISABLE_PLUGINS`` allow and deny them by name.

Every hook call goes through ``pm.hook.<name>(...)``, so pluggy's tracing, call monitoring and
``wrapper=True`` / ``hookwrapper=True`` implementations see it. The manager's inner executor
(:func:`_isolating_hookexec`) calls each implementation in ``try``/``except``: one that raises is
logged with its plugin's name and skipped, and every answer comes back as an :class:`Answer`
(plugin name, value not yet awaited). :func:`call_hook` and :func:`call_sync` then apply the
:class:`~csms.hookspecs.Rule` the spec states, awaiting what needs awaiting ("await me maybe").
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import importlib
import inspect
import logging
import reprlib
import types
from time import perf_counter
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import pluggy
from pluggy import HookCallError
from pluggy._callers import _multicall  # private: pyproject pins pluggy>=1.5,<2

from csms import hookspecs
from csms.core import metrics
from csms.hookspecs import Rule

log = logging.getLogger("csms.plugins")

hookimpl = pluggy.HookimplMarker("csms")

# Registered in this order; among ``trylast`` implementations the one registered last is
# called last, so the final "unknown is rejected" comes after the local lookup.
DEFAULT_PLUGINS = (
    "csms.core.default_authorization",
    "csms.core.default_authorization:reject_unknown",
    "csms.core.certificates",
    "csms.core.vat_numbers",
    "csms.admin.nav",
    "csms.admin.local_lists",
    "csms.admin.reservations",
    "csms.admin.certificates",
    "csms.admin.display_messages",
    "csms.admin.charging_profiles",
    "csms.admin.network_profiles",
    "csms.admin.monitoring",
    "csms.admin.customer_information",
    "csms.admin.data_clears",
    "csms.admin.der",
    "csms.admin.energy_controls",
    "csms.admin.data_transfer",
    "csms.admin.tariff_fallback",
    "csms.admin.qr_labels",
)


class Answer(NamedTuple):
    """One implementation's answer to a hook call: the value as returned (maybe still to be
    awaited), or :class:`Failed`."""

    plugin: str
    value: Any


@dataclasses.dataclass(frozen=True)
class Failed:
    """The answer of an implementation that raised (already logged with the plugin's name)."""

    error: BaseException


class PluginError(SystemExit):
    """A plugin the CSMS refuses to start with. A ``SystemExit``: ``csms serve`` and ``csms
    plugins`` stop with the message alone."""


class _Call(NamedTuple):
    """The hook call an isolated implementation is part of (a stack: a hook may call a hook)."""

    hook_name: str
    kwargs: Mapping[str, Any]
    first: bool
    answered: list[bool]


_calls: list[_Call] = []
_isolated: dict[Any, Any] = {}  # HookImpl -> its isolated stand-in, made once


def _isolated_impl(impl: Any) -> Any:
    """A stand-in for ``impl`` as pluggy's multicall reads a HookImpl, made once per impl: it
    calls the implementation in ``try``/``except`` and answers an :class:`Answer`."""
    stand_in = _isolated.get(impl)
    if stand_in is not None:
        return stand_in
    function, plugin, kwargnames = impl.function, impl.plugin_name, impl.kwargnames

    def isolated(*args: Any) -> Answer | None:
        call = _calls[-1]
        if call.answered[0]:
            return None
        try:
            value = function(*args, **{n: call.kwargs[n] for n in kwargnames if n in call.kwargs}) \
                if kwargnames else function(*args)
        except Exception as exc:
            log.exception("plugin %s failed in hook %s", plugin, call.hook_name)
            return Answer(plugin, Failed(exc))
        if value is None:
            return None
        if call.first and not (callable(value) or inspect.isawaitable(value)):
            call.answered[0] = True
        return Answer(plugin, value)

    stand_in = _isolated[impl] = types.SimpleNamespace(
        function=isolated, argnames=impl.argnames, kwargnames=(), wrapper=False, hookwrapper=False,
        plugin_name=plugin)
    return stand_in


def _isolating_hookexec(hook_name: str, hook_impls: Sequence[Any], caller_kwargs: Mapping[str, Any],
                        firstresult: bool) -> Any:
    """pluggy's inner hook executor for csms (wrapped by tracing and monitoring when enabled).

    Wrappers run as pluggy runs them; every other implementation is called in ``try``/``except``
    and answers an :class:`Answer` (``None`` results are left out, as pluggy does). For a *first
    answer wins* hook, the implementations after a plain answer (neither awaitable nor callable)
    are not called: nothing after it can win.
    """
    first = rule_of(hook_name) is Rule.FIRST_ANSWER
    if not any(impl.wrapper or impl.hookwrapper for impl in hook_impls):
        return _plain_calls(hook_name, hook_impls, caller_kwargs, first, firstresult)
    impls = [impl if impl.wrapper or impl.hookwrapper else _isolated_impl(impl) for impl in hook_impls]
    _calls.append(_Call(hook_name, caller_kwargs, first, [False]))
    try:
        return _multicall(hook_name, impls, caller_kwargs, firstresult)
    finally:
        _calls.pop()


def _plain_calls(hook_name: str, hook_impls: Sequence[Any], caller_kwargs: Mapping[str, Any], first: bool,
                 firstresult: bool) -> Any:
    """What :func:`_multicall` does with the isolated stand-ins when no implementation is a
    wrapper (the hot path: the ``event`` hook runs for every meter value), without its
    generator machinery: the same order, arguments, errors and answers."""
    answers: list[Answer] = []
    for impl in reversed(hook_impls):
        try:
            args = [caller_kwargs[name] for name in impl.argnames]
        except KeyError as exc:
            raise HookCallError(f"hook call must provide argument {exc.args[0]!r}") from exc
        started = perf_counter()
        try:
            if impl.kwargnames:
                value = impl.function(*args, **{n: caller_kwargs[n] for n in impl.kwargnames if n in caller_kwargs})
            else:
                value = impl.function(*args)
        except Exception as exc:
            metrics.error("hook")
            log.exception("plugin %s failed in hook %s", impl.plugin_name, hook_name)
            answers.append(Answer(impl.plugin_name, Failed(exc)))
            if firstresult:
                break
            continue
        if value is None:
            metrics.hook_timed(hook_name, impl.plugin_name, perf_counter() - started)
            continue
        if not (callable(value) or inspect.isawaitable(value)):  # else timed when it is awaited
            metrics.hook_timed(hook_name, impl.plugin_name, perf_counter() - started)
        answers.append(Answer(impl.plugin_name, value))
        if firstresult or (first and not (callable(value) or inspect.isawaitable(value))):
            break  # nothing after a plain answer can win
    if firstresult:
        return answers[0] if answers else None
    return answers


def make_manager() -> pluggy.PluginManager:
    """A plugin manager with the core's hooks, calling them through :func:`_isolating_hookexec`
    (``pm`` is one; tests may swap in a fresh one)."""
    manager = pluggy.PluginManager("csms")
    manager._inner_hookexec = _isolating_hookexec  # private: pyproject pins pluggy>=1.5,<2
    manager.add_hookspecs(hookspecs)
    return manager


pm = make_manager()
_loaded = False
_tracing = False


def add_hookspecs(module: Any) -> None:
    """Declare hooks (a module of ``@hookspec(Rule...)`` functions) on the manager, once. A plugin
    adds its own hooks this way when it is imported, before the start-up check."""
    names = [name for name in dir(module) if hasattr(getattr(module, name), "csms_spec")]
    for name in names:
        if not isinstance(getattr(getattr(module, name), "csms_rule", None), Rule):
            raise TypeError(f"hook spec {name!r} states no rule: declare it with csms.hookspecs.hookspec(Rule...)")
    if not all(getattr(pm.hook, name, None) is not None and getattr(pm.hook, name).has_spec() for name in names):
        pm.add_hookspecs(module)


def hook_specs() -> dict[str, Any]:
    """Every declared hook (the core's and those plugins add), name to spec function."""
    return {name: caller.spec.function for name, caller in vars(pm.hook).items()
            if not name.startswith("_") and caller.has_spec()}


def rule_of(hook_name: str) -> Rule | None:
    """The rule the spec of ``hook_name`` states (``None`` for a hook nobody declared)."""
    caller = pm.hook.__dict__.get(hook_name)
    if caller is None:
        return None
    rule = _rules.get(caller)
    if rule is None:
        spec = caller.spec
        rule = spec.function.__dict__.get("csms_rule") if spec is not None else None
        if rule is not None:
            _rules[caller] = rule  # a declared hook keeps its spec (and rule)
    return rule


_rules: dict[Any, Rule] = {}  # HookCaller -> the rule of its spec


def check_hooks() -> None:
    """Refuse plugins implementing a hook nobody declared (a misspelt name would otherwise never
    be called); what ``pm.check_pending()`` checks, with a message naming plugin and hook.
    Implementations marked ``@hookimpl(optionalhook=True)`` are allowed."""
    known = list(hook_specs())
    errors = []
    for name, caller in sorted(vars(pm.hook).items()):
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                errors.append(f"plugin {impl.plugin_name!r} implements unknown hook {name!r}{hint}")
    if errors:
        raise PluginError("; ".join(errors))


def load_plugins() -> None:
    """Register the built-in plugins and every allowed entry-point plugin, check them (once)."""
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
    try:
        check_hooks()
    except PluginError:
        _loaded = False  # refused again at the next attempt
        raise
    if settings.trace_hooks:
        trace_hooks()


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 120


def _shown(value: Any) -> str:
    """A value for the trace: plain data and dataclasses shortened, other objects (settings,
    app, request) by type only, so no secret reaches the log."""
    plain = (str, int, float, bool, type(None), dict, list, tuple)
    if isinstance(value, plain) or dataclasses.is_dataclass(value):
        return _short.repr(value)
    return f"<{type(value).__name__}>"


def _trace(hook_name: str, answer: Answer) -> None:
    if _tracing:
        log.info("hook %s: %s -> %s", hook_name, answer.plugin, _shown(answer.value))


def trace_hooks() -> Callable[[], None]:
    """Log every hook call (``CSMS_TRACE_HOOKS``): the call with its arguments and the plugins it
    reaches (through pluggy's call monitoring), then each plugin's answer once awaited. Returns
    an undo."""
    global _tracing

    def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        args = ", ".join(f"{k}={_shown(v)}" for k, v in kwargs.items())
        plugins = ", ".join(i.plugin_name for i in reversed(impls)) or "no plugin"
        log.info("hook %s(%s) -> %s", hook_name, args, plugins)

    undo_monitoring = pm.add_hookcall_monitoring(before, lambda *_: None)
    _tracing = True

    def undo() -> None:
        global _tracing
        _tracing = False
        undo_monitoring()

    return undo


async def await_me_maybe(value: Any) -> Any:
    """Resolve a hook result that may be a value, an awaitable or a (async) callable."""
    if callable(value):
        value = value()
    if inspect.isawaitable(value):
        value = await value
    return value


def _pending(value: Any) -> bool:
    return callable(value) or inspect.isawaitable(value)


async def _resolved(hook_name: str, answer: Answer) -> Answer:
    """The answer awaited; a failure becomes its error, logged with the plugin's name."""
    if _pending(answer.value):
        started = perf_counter()
        try:
            answer = Answer(answer.plugin, await await_me_maybe(answer.value))
        except Exception as exc:
            metrics.error("hook")
            log.exception("plugin %s failed in hook %s", answer.plugin, hook_name)
            answer = Answer(answer.plugin, Failed(exc))
        metrics.hook_timed(hook_name, answer.plugin, perf_counter() - started)
    _trace(hook_name, answer)
    return answer


def _answers(hook_name: str, kwargs: dict[str, Any], *, sync: bool) -> tuple[Rule, list[Answer]]:
    """The hook's rule and its answers from ``pm.hook.<name>(**kwargs)``."""
    rule = rule_of(hook_name)
    if rule is None:
        raise LookupError(f"no hook {hook_name!r} is declared")
    if sync != (rule is Rule.WIRING):
        raise TypeError(f"hook {hook_name!r} ({rule.value.lower()}) is called with "
                        f"{'call_sync' if rule is Rule.WIRING else 'await call_hook'}")
    return rule, getattr(pm.hook, hook_name)(**kwargs)


async def call_hook(hook_name: str, **kwargs: Any) -> Any:
    """Call a hook with the rule its spec states and return what that rule gives:

    * first answer wins: the first answer that is not ``None`` (or ``None``), awaited in order;
    * minimum of all answers, every answer: ``[Answer(plugin, value), ...]`` for the answers that
      are not ``None``, awaited concurrently (the caller takes the minimum, or uses them all);
    * every implementation: each awaited in order; the names of the plugins that failed.

    An implementation that raises, or whose awaited answer raises, is logged and skipped.
    """
    caller = pm.hook.__dict__.get(hook_name)
    if caller is not None and not caller._hookimpls and pm._inner_hookexec is _isolating_hookexec \
            and (rule := rule_of(hook_name)) is not None and rule is not Rule.WIRING:
        # nobody implements it and nobody monitors calls (the event hook without plugins)
        return None if rule is Rule.FIRST_ANSWER else []
    rule, answers = _answers(hook_name, kwargs, sync=False)
    if rule is Rule.FIRST_ANSWER:
        for index, answer in enumerate(answers):
            if _pending(answer.value) or _tracing:
                answer = await _resolved(hook_name, answer)
            if answer.value is not None and not isinstance(answer.value, Failed):
                for rest in answers[index + 1:]:
                    if inspect.iscoroutine(rest.value):
                        rest.value.close()  # never awaited: nothing after the winner counts
                return answer.value
        return None
    if rule is Rule.EVERY_IMPLEMENTATION:
        failed = []
        for answer in answers:
            if _pending(answer.value) or _tracing:
                answer = await _resolved(hook_name, answer)
            if isinstance(answer.value, Failed):
                failed.append(answer.plugin)
        return failed
    # plain answers cost no task: only what needs awaiting is gathered
    lazy = {i: _resolved(hook_name, a) for i, a in enumerate(answers) if _pending(a.value)}
    done = dict(zip(lazy, await asyncio.gather(*lazy.values()))) if lazy else {}
    resolved = [done[i] if i in done else a for i, a in enumerate(answers)]
    for answer in resolved if _tracing else ():
        if answer not in done.values():
            _trace(hook_name, answer)
    return [a for a in resolved if a.value is not None and not isinstance(a.value, Failed)]


def call_sync(hook_name: str, **kwargs: Any) -> list[Any]:
    """Call a wiring hook (nothing awaited); the lists implementations return are concatenated."""
    out: list[Any] = []
    for answer in _answers(hook_name, kwargs, sync=True)[1]:
        _trace(hook_name, answer)
        if isinstance(answer.value, Failed):
            continue
        if isinstance(answer.value, (list, tuple)):
            out.extend(answer.value)
        else:
            out.append(answer.value)
    return out


def hook_impls(hook_name: str) -> list[Any]:
    """The implementations of a hook in call order (wrappers left out)."""
    # pluggy stores implementations in reverse call order
    return [i for i in reversed(getattr(pm.hook, hook_name).get_hookimpls()) if not (i.wrapper or i.hookwrapper)]


def plugin_app_modules() -> list[str]:
    load_plugins()
    return call_sync("piccolo_apps")


def plugins_info() -> list[dict[str, Any]]:
    """Loaded plugins with the hooks each implements (for ``csms plugins`` and the admin)."""
    load_plugins()
    info = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda p: p[0]):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        info.append({"name": name, "hooks": hooks, "module": getattr(plugin, "__name__", type(plugin).__name__)})
    return info
