"""Prometheus metrics of this process (``prometheus-client``), served at ``/metrics``.

The per-message series (CALLs by action and outcome with their handling time, hook durations)
cost the hot path no lock: they are kept in plain lists by :class:`LoopHistogram`, updated on
the event loop only (a dict lookup, a bisect and two additions) and turned into Prometheus
families when Prometheus scrapes, as is the gauge of connected stations (counted from the live
connections). The rarer series (batches, commands, errors, leadership) are prometheus-client's
own. Labels take values from bounded sets only: an action a station invents is counted as
``other``, an outcome is ``answered`` or the OCPP error code of the CALLERROR.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from csms.core.ocpp.validation import ACTIONS, SUBPROTOCOLS

if TYPE_CHECKING:
    from csms.core.connections import ConnectionRegistry

_KNOWN_ACTIONS = frozenset().union(*ACTIONS.values())
_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

BATCH_SECONDS = Histogram("csms_db_batch_seconds", "Time to write and commit one batch of the batched writer.",
                          buckets=_LATENCY)
BATCH_ROWS = Histogram("csms_db_batch_rows", "Rows written per batch of the batched writer.",
                       buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000))
COMMAND_SECONDS = Histogram("csms_command_seconds", "Round trip of a command sent to a station (from any "
                            "node), by action and outcome (answered, error, timeout, offline, invalid).",
                            ["action", "outcome"], buckets=_LATENCY)
ERRORS = Counter("csms_errors", "Failures, by kind: handler (a station's CALL answered InternalError), hook "
                 "(a plugin raised), batch (a batched statement could not be written).", ["kind"])
LEADER = Gauge("csms_leader", "1 while this node runs the background job (it holds the job's lease).", ["job"])
NODES_REAPED = Counter("csms_nodes_reaped", "Dead nodes whose stations this node marked offline.")
STALE_SOCKETS = Counter("csms_stale_sockets_closed", "Sockets closed because the station connected again "
                        "elsewhere in the cluster (the newest connection wins).")


class LoopHistogram:
    """A labelled histogram in plain lists, observed on the event loop only (so no lock): per
    label tuple the count of each bucket (the last one +Inf) and the sum."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...],
                 buckets: tuple[float, ...] = _LATENCY) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.bounds = list(buckets)
        self.series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        counts = self.series.get(labels)
        if counts is None:
            counts = self.series.setdefault(labels, [0.0] * (len(self.bounds) + 2))
        counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        counts[-1] += value

    def family(self, series: dict[tuple[str, ...], list[float]] | None = None,
               labelnames: tuple[str, ...] | None = None) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=labelnames or self.labelnames)
        edges = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        for labels, counts in (series if series is not None else self.series).items():
            family.add_metric(list(labels), list(zip(edges, accumulate(counts[:-1]))), sum_value=counts[-1])
        return family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        yield self.family()


class MessageHistogram(LoopHistogram):
    """CALLs by (action, outcome): served as ``csms_ocpp_messages_total{action,outcome}`` and the
    histogram ``csms_ocpp_handle_seconds{action}``."""

    def describe(self) -> Iterator[Any]:
        yield CounterMetricFamily("csms_ocpp_messages", _MESSAGES_DOC, labels=["action", "outcome"])
        yield HistogramMetricFamily(self.name, self.documentation, labels=["action"])

    def collect(self) -> Iterator[Any]:
        messages = CounterMetricFamily("csms_ocpp_messages", _MESSAGES_DOC, labels=["action", "outcome"])
        by_action: dict[tuple[str, ...], list[float]] = {}
        for (action, outcome), counts in list(self.series.items()):
            messages.add_metric([action, outcome], sum(counts[:-1]))
            total = by_action.setdefault((action,), [0.0] * len(counts))
            for i, c in enumerate(counts):
                total[i] += c
        yield messages
        yield self.family(by_action, ("action",))


_MESSAGES_DOC = ("CALLs received from stations, by action and outcome (answered, or the CALLERROR code sent back); "
                 "OCPP 2.1 SENDs too (handled, or the code of why it was dropped unanswered).")
MESSAGES = MessageHistogram("csms_ocpp_handle_seconds", "Time from a station's CALL to its answer being sent, "
                            "by action.", ("action", "outcome"))
HOOK_SECONDS = LoopHistogram("csms_hook_seconds", "Time spent in a plugin's hook implementation (the call "
                             "and what it returned to await), by hook and plugin.", ("hook", "plugin"))
REGISTRY.register(MESSAGES)
REGISTRY.register(HOOK_SECONDS)
_errors: dict[str, Any] = {}


def message_handled(action: str, outcome: str, seconds: float) -> None:
    """Count one CALL of a station and the time until its answer was sent."""
    MESSAGES.observe((action if action in _KNOWN_ACTIONS else "other", outcome), seconds)


def hook_timed(hook: str, plugin: str, seconds: float) -> None:
    HOOK_SECONDS.observe((hook, plugin), seconds)


def error(kind: str, amount: int = 1) -> None:
    child = _errors.get(kind)
    if child is None:
        child = _errors.setdefault(kind, ERRORS.labels(kind))
    child.inc(amount)


def batch_written(seconds: float, rows: int, failed_units: int) -> None:
    BATCH_SECONDS.observe(seconds)
    BATCH_ROWS.observe(rows)
    if failed_units:
        error("batch", failed_units)


def command_answered(action: str, outcome: str, seconds: float) -> None:
    COMMAND_SECONDS.labels(action if action in _KNOWN_ACTIONS else "other", outcome).observe(seconds)


class ConnectedStations:
    """The ``csms_connected_stations`` gauge, counted from the live connections at each scrape."""

    documentation = "Stations connected to this node, by OCPP version."

    def __init__(self, connections: ConnectionRegistry, node_id: str) -> None:
        self.connections = connections
        self.node_id = node_id

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("csms_connected_stations", self.documentation, labels=["version", "node"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("csms_connected_stations", self.documentation, labels=["version", "node"])
        connections = self.connections
        counts = Tally(conn.version for conn in map(connections.get, connections.ids()) if conn)
        for version in sorted(set(counts) | set(SUBPROTOCOLS.values())):
            family.add_metric([version, self.node_id], counts.get(version, 0))
        yield family


_collector: ConnectedStations | None = None


def watch(connections: ConnectionRegistry, node_id: str) -> None:
    """Serve a core's connected stations (one core per process; a new one replaces the last)."""
    global _collector
    unwatch()
    _collector = ConnectedStations(connections, node_id)
    REGISTRY.register(_collector)


def unwatch() -> None:
    global _collector
    if _collector is not None:
        REGISTRY.unregister(_collector)
        _collector = None
