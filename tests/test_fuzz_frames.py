"""Property-based fuzzing of the OCPP frame path, both versions, against a real server (issue 12).

A ``csms serve`` subprocess (SQLite; one more on PostgreSQL with fewer examples) is driven over
real WebSockets by synchronous hypothesis tests. Each example is a fresh station that boots and
then sends one to three frames drawn from

(a) schema-valid CALLs for every action the server handles, generated with
    ``hypothesis_jsonschema.from_schema`` from the official schemas the ``ocpp`` library ships;
(b) mutations of those (huge integers, 1e308 and numbers that overflow to infinity, NUL, CR/LF,
    RTL override, very long strings, deep nesting, dropped and unknown keys, ...);
(c) arbitrary JSON frames, arbitrary text and binary frames;

and a separate test sends frames around ``max_frame_bytes``. Per frame:

1. a CALL (JSON array ``[2, id, action, payload]``, string id of at most 36 characters) gets
   exactly one answer with its id: ``[3, id, {...}]`` or ``[4, id, code, description, details]``
   with a code of the station's version, never InternalError; a schema-valid payload with an
   integer outside the 32-bit signed range (at a place the schema types ``integer``) gets
   TypeConstraintViolation, one with a non-finite number or a NUL character
   PropertyConstraintViolation. Anything else the station sends gets at most one well-formed
   CALLERROR, never InternalError;
2. the socket stays open, except after a frame larger than ``max_frame_bytes`` (UTF-8 bytes),
   which must be closed with 1009 and not answered;
3. another station's Heartbeat (and a MeterValues, which also forces the batched writer to
   commit) on its own connection is answered within 5 s;
4. stored data matches the answer: after a CALLRESULT to MeterValues, TransactionEvent,
   StartTransaction or StopTransaction the meter values are in the database; after anything
   else no row for the station was added (meter_value, charging_session, station_event,
   device_variable, charging_profile).

Failures raise a distinct exception class per property and rule, so hypothesis shrinks and
reports each one separately. Examples per test: ``CSMS_FUZZ_EXAMPLES`` (SQLite) and
``CSMS_FUZZ_PG_EXAMPLES`` (PostgreSQL). The examples are the same on every run unless
``CSMS_FUZZ_RANDOM=1``.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import connect as ws_connect

from csms.core.ocpp.v16 import StationConnection16
from csms.core.ocpp.v201 import StationConnection201
from csms.core.ocpp.validation import ACTIONS, V16, V201, schema
from csms.testing import free_port, temporary_database
from csms_tools.server_log import log_tail
from tests.jsonschema_strategies import from_schema

EXAMPLES = int(os.environ.get("CSMS_FUZZ_EXAMPLES", "400"))
# The suite replays the same examples on every run (a landed change is judged by what it changed);
# CSMS_FUZZ_RANDOM=1 draws new ones, for the longer runs documented in the README.
RANDOM = os.environ.get("CSMS_FUZZ_RANDOM", "") not in ("", "0")
PG_EXAMPLES = int(os.environ.get("CSMS_FUZZ_PG_EXAMPLES", str(max(20, EXAMPLES // 4))))
MAX_FRAME_BYTES = 256 * 1024  # the server's default, set explicitly for the subprocess
ANSWER_TIMEOUT = 10.0
LIVENESS_TIMEOUT = 5.0
LATE_ANSWER_GRACE = 0.5  # how long a CALL's answer may trail the answer to the CALL sent after it
SERVER_MEMORY_LIMIT = 4 * 1024**3  # address space of the server: a runaway allocation fails there

pytestmark = pytest.mark.timeout(900 + EXAMPLES // 4)  # seconds per test: ~40 ms an example, plus shrinking

SUBPROTOCOL = {V16: "ocpp1.6", V201: "ocpp2.0.1"}
HANDLERS = {V16: sorted(StationConnection16.handlers), V201: sorted(StationConnection201.handlers)}
BOOT = {
    V16: {"chargePointVendor": "Fuzz", "chargePointModel": "F"},
    V201: {"reason": "PowerUp", "chargingStation": {"model": "F", "vendorName": "Fuzz"}},
}
CODES = {
    V16: frozenset({"NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
                    "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
                    "TypeConstraintViolation", "GenericError"}),
    V201: frozenset({"FormatViolation", "GenericError", "InternalError", "MessageTypeNotSupported", "NotImplemented",
                     "NotSupported", "OccurrenceConstraintViolation", "PropertyConstraintViolation", "ProtocolError",
                     "RpcFrameworkError", "SecurityError", "TypeConstraintViolation"}),
}
INT32 = (-(2**31), 2**31 - 1)
STORAGE_ACTIONS = {"MeterValues", "TransactionEvent", "StartTransaction", "StopTransaction"}
K_UNITS = {"kWh": 1000.0, "kW": 1000.0, "kvar": 1000.0, "kvarh": 1000.0, "kVA": 1000.0}
PLAIN_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
STATS: Counter[str] = Counter()


# -- frames ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Raw:
    """JSON text sent verbatim (numbers beyond a double, deep nesting); ``value`` stands for it
    when the frame is classified (a shallow stand-in for deep nesting)."""

    text: str
    value: Any

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r}{'...' if len(self.text) > 40 else ''} [{len(self.text)} chars])"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how hypothesis prints it
        printer.text(repr(self))


def deep(depth: int, kind: str) -> Raw:
    if kind == "array":
        return Raw("[" * depth + "]" * depth, [[[]]])
    return Raw('{"a":' * depth + "null" + "}" * depth, {"a": {"a": {"a": None}}})


def dumps(obj: Any, ensure_ascii: bool = True) -> str:
    if isinstance(obj, Raw):
        return obj.text
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(str(k), ensure_ascii=ensure_ascii) + ":" + dumps(v, ensure_ascii)
                              for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(dumps(v, ensure_ascii) for v in obj) + "]"
    return json.dumps(obj, ensure_ascii=ensure_ascii, allow_nan=False)


def standin(obj: Any) -> Any:
    if isinstance(obj, Raw):
        return obj.value
    if isinstance(obj, dict):
        return {k: standin(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [standin(v) for v in obj]
    return obj


NOT_JSON = object()


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_HUGE = 10**4000


def _parse_int(text: str) -> int:
    if len(text) < 4000:
        return int(text)
    return -_HUGE if text.startswith("-") else _HUGE  # beyond int(str)'s limit; only its size matters here


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constants, parse_int=_parse_int)


def _loads_deep(text: str) -> Any:
    """``_loads`` in a thread with a large stack and recursion limit: deep nesting is still JSON."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 1_000_000))
        try:
            outcome["value"] = _loads(text)
        except BaseException as exc:  # handed over to the caller
            outcome["error"] = exc
        finally:
            sys.setrecursionlimit(limit)

    threading.stack_size(1024**3)
    try:
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
    finally:
        threading.stack_size(0)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def strict_json(text: str) -> Any:
    """The frame as I-JSON (RFC 7493): no NaN/Infinity tokens, no lone surrogates; else NOT_JSON."""
    try:
        try:
            value = _loads(text)
        except RecursionError:
            value = _loads_deep(text)
    except (ValueError, RecursionError):
        return NOT_JSON
    for item in walk(value):
        if isinstance(item, str) and any("\ud800" <= ch <= "\udfff" for ch in item):
            return NOT_JSON
    return value


def nesting(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def walk(value: Any) -> Iterator[Any]:
    """Every value and dict key inside ``value``, without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


@dataclass
class Frame:
    """What a test station sends: a JSON-like message (may hold Raw), raw text, or bytes."""

    message: Any = None
    text: str | None = None
    data: bytes | None = None
    ensure_ascii: bool = True
    link_tx: bool = False  # 1.6: use the transaction id the CSMS allocated last in this example

    def resolved(self, last_tx: Any) -> Any:
        if self.link_tx and last_tx is not None and isinstance(self.message, list) and len(self.message) == 4 \
                and isinstance(self.message[3], dict):
            return [*self.message[:3], {**self.message[3], "transactionId": last_tx}]
        return self.message

    def wire(self, message: Any) -> str | bytes:
        if self.data is not None:
            return self.data
        if self.text is not None:
            return self.text
        return dumps(message, self.ensure_ascii)

    def __repr__(self) -> str:
        if self.data is not None:
            return f"Frame(binary {self.data[:200]!r}{'...' if len(self.data) > 200 else ''}, {len(self.data)} bytes)"
        body = self.text if self.text is not None else dumps(self.message, True)
        short = body if len(body) <= 600 else body[:300] + f" ...[{len(body)} chars]... " + body[-200:]
        flags = (", link_tx" if self.link_tx else "") + ("" if self.ensure_ascii else ", utf-8")
        return f"Frame({'text ' if self.text is not None else ''}{short!r}{flags})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how hypothesis prints it
        printer.text(repr(self))


@dataclass
class Call:
    """A frame that is a CALL, with what the edge rules demand of its answer."""

    uid: str
    action: Any
    payload: Any
    valid: bool | None = None  # the payload against the official schema (None: not an action we handle)
    rules: str = ""
    allowed: frozenset[str] = frozenset()


def as_call(version: str, message: Any) -> Call | None:
    if not (isinstance(message, list) and len(message) == 4 and type(message[0]) is int and message[0] == 2
            and isinstance(message[1], str) and len(message[1]) <= 36):
        return None
    call = Call(message[1], message[2], message[3])
    action, payload = message[2], message[3]
    if action not in HANDLERS[version] or not isinstance(payload, dict) or nesting(payload) > 64:
        return call  # (deeper than any OCPP message: judged by the server alone)
    sch = schema(version, action)
    call.valid = oracle(version, action).is_valid(_finite(payload))
    if not call.valid:
        return call
    rules, allowed = [], set()
    ints = integer_slots(sch, payload)
    if any(isinstance(v, (int, float)) and not (INT32[0] <= v <= INT32[1]) for v in ints if not _nonfinite(v)):
        rules.append("int32")
        allowed.add("TypeConstraintViolation")
    if any(_nonfinite(v) for v in walk(payload)):
        rules.append("non-finite")
        allowed.add("PropertyConstraintViolation")
        if any(_nonfinite(v) for v in ints):
            allowed.add("TypeConstraintViolation")
    if any(isinstance(v, str) and "\x00" in v for v in walk(payload)):
        rules.append("NUL")
        allowed.add("PropertyConstraintViolation")
    call.rules, call.allowed = "+".join(rules), frozenset(allowed)
    return call


def _nonfinite(v: Any) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def _finite(value: Any) -> Any:
    if _nonfinite(value):
        return 0
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


@lru_cache(maxsize=None)
def oracle(version: str, action: str) -> Any:
    """The official schema, compiled as the spec reads it (formats checked)."""
    return jsonschema_rs.validator_for(schema(version, action), validate_formats=True)


def _resolve(root: dict, node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def integer_slots(root: dict, value: Any) -> list[Any]:
    """Values that sit where the schema says ``"type": "integer"``."""
    out, stack = [], [(root, value)]
    while stack:
        node, val = stack.pop()
        node = _resolve(root, node)
        if not isinstance(node, dict):
            continue
        types = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
        if isinstance(val, dict):
            props = node.get("properties") or {}
            stack.extend((props[k], v) for k, v in val.items() if k in props)
        elif isinstance(val, list):
            if isinstance(node.get("items"), dict):
                stack.extend((node["items"], v) for v in val)
        elif "integer" in types and isinstance(val, (int, float)) and not isinstance(val, bool):
            out.append(val)
    return out


# -- strategies ------------------------------------------------------------------------------------

def _generation_schema(version: str, action: str) -> dict:
    """The official schema with a generation budget: arrays of at most 4 items and, in 2.0.1,
    no ``customData`` (its arbitrary JSON is slow to draw; the mutations add it instead)."""

    def trim(node: Any) -> Any:
        if isinstance(node, list):
            return [trim(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: trim(v) for k, v in node.items()}
        if isinstance(out.get("properties"), dict):
            out["properties"] = {k: v for k, v in out["properties"].items() if k != "customData"}
        if out.get("type") == "array":
            out["maxItems"] = max(min(out.get("maxItems", 4), 4), out.get("minItems", 0))
        return out

    return trim(schema(version, action))


@lru_cache(maxsize=None)
def payloads(version: str, action: str) -> st.SearchStrategy[dict]:
    return from_schema(_generation_schema(version, action))


def message_ids() -> st.SearchStrategy[str]:
    return st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=36), st.sampled_from(["", "-1", "0", " " * 36]))


_DATE_TIME = re.compile(r"\d{4}(-\d\d-\d\dT)")


def plausible(value: Any, key: str = "") -> Any:
    """A generated payload moved towards what stations send (small integers, moderate numbers,
    recent timestamps, decimal meter readings, no NUL), so that more of them are accepted and
    stored and property 4 has something to check. Formats and enums are kept."""
    if isinstance(value, dict):
        return {k: plausible(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [plausible(v, key) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return abs(value) % 5
    if isinstance(value, float):
        return round(abs(value) % 1e6, 3)
    if isinstance(value, str):
        if key == "value":  # 1.6 sampledValue.value: a decimal reading
            return f"{sum(map(ord, value)) % 100_000 / 10}"
        return _DATE_TIME.sub(r"2024\1", value.replace("\x00", ""), count=1)
    return value


@st.composite
def valid_calls(draw: Any, version: str) -> Frame:
    action = draw(st.sampled_from(HANDLERS[version]))
    payload = copy.deepcopy(draw(payloads(version, action)))
    if draw(st.booleans()):
        payload = plausible(payload)
    link = False
    if version == V201 and action == "TransactionEvent" and draw(st.booleans()):
        payload["transactionInfo"]["transactionId"] = draw(st.sampled_from(["tx-1", "tx-2"]))
    if version == V16 and action in ("StopTransaction", "MeterValues"):
        link = draw(st.booleans())
    return Frame([2, draw(message_ids()), action, payload], ensure_ascii=draw(st.booleans()), link_tx=link)


LONG = [21, 37, 51, 256, 501, 1001, 5_000, 70_000, MAX_FRAME_BYTES + 1000]
SPECIAL_CHARS = ["\x00", "\r\n", "\r", "\n", "\u202e", "\ufeff", "\u2028", "\t", "\x1b[31m", "\U0001f600",
                 "e\u0301", "\uffff", "'\"\\", "%s%n", "${jndi:x}", "<script>"]
HUGE_INTS = [2**31, -(2**31) - 1, 2**31 - 1, -(2**31), 2**32, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 2**70, -(2**70),
             10**30, 10**400]
FLOATS = [1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0, 0.5, 1e-7, 123456789.123456789]
NONFINITE = [Raw("1e400", float("inf")), Raw("-1e400", float("-inf")), Raw("1E+999", float("inf"))]
OTHER_VALUES = [None, True, False, [], {}, "", 0, -1, Raw("1" + "0" * 5000, 10**4999)]


def special_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(HUGE_INTS),
        st.sampled_from(FLOATS),
        st.sampled_from(NONFINITE),
        st.sampled_from(SPECIAL_CHARS),
        st.sampled_from(LONG).map(lambda n: "x" * n),
        st.sampled_from(OTHER_VALUES),
        st.builds(deep, st.sampled_from([10, 100, 500, 1000, 5000, 20000]), st.sampled_from(["array", "object"])),
    )


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(paths(v, prefix + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(paths(v, prefix + (i,)))
    return out


def get_at(value: Any, path: tuple) -> Any:
    for p in path:
        value = value[p]
    return value


def set_at(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    parent = get_at(value, path[:-1])
    parent[path[-1]] = new
    return value


MUTATIONS = ["replace", "same_type", "insert_char", "long_string", "nest", "drop", "add_key", "custom_data",
             "duplicate"]


@st.composite
def mutate(draw: Any, payload: Any, version: str) -> Any:
    payload = copy.deepcopy(payload)
    where = draw(st.sampled_from(paths(payload)))
    old = get_at(payload, where)
    kind = draw(st.sampled_from(MUTATIONS))
    if kind == "same_type" and isinstance(old, bool):
        kind = "replace"
    if kind == "same_type" and isinstance(old, int):
        return set_at(payload, where, draw(st.sampled_from(HUGE_INTS)))
    if kind == "same_type" and isinstance(old, float):
        return set_at(payload, where, draw(st.sampled_from(FLOATS + NONFINITE)))
    if kind in ("same_type", "insert_char") and isinstance(old, str):
        char = draw(st.sampled_from(SPECIAL_CHARS))
        at = draw(st.integers(0, len(old)))
        return set_at(payload, where, old[:at] + char + old[at:])
    if kind == "long_string" and isinstance(old, str):
        return set_at(payload, where, old + draw(st.sampled_from(SPECIAL_CHARS[:1] + ["x", "\u00e9"])) *
                      draw(st.sampled_from(LONG)))
    if kind == "nest":
        return set_at(payload, where, deep(draw(st.sampled_from([10, 100, 1000, 5000, 20000])),
                                           draw(st.sampled_from(["array", "object"]))))
    if kind == "drop" and where:
        parent = get_at(payload, where[:-1])
        del parent[where[-1]]
        return payload
    if kind in ("add_key", "custom_data") and isinstance(old, dict):
        if kind == "custom_data" and version == V201:
            old["customData"] = {"vendorId": "fuzz", draw(st.text(max_size=10)): draw(special_values())}
        else:
            old[draw(st.text(max_size=20))] = draw(special_values())
        return payload
    if kind == "duplicate" and isinstance(old, list) and old:
        return set_at(payload, where, old * draw(st.sampled_from([2, 10, 100, 1000])))
    return set_at(payload, where, draw(special_values()))


@st.composite
def mutated_calls(draw: Any, version: str) -> Frame:
    base = draw(valid_calls(version))
    payload = base.message[3]
    for _ in range(draw(st.integers(1, 3))):
        payload = draw(mutate(payload, version))
    return Frame([*base.message[:3], payload], ensure_ascii=base.ensure_ascii, link_tx=base.link_tx)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=40), st.sampled_from(HUGE_INTS + FLOATS + SPECIAL_CHARS))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                 st.dictionaries(st.text(max_size=12), inner,
                                                                                 max_size=4)),
                           max_leaves=12)
ALL_ACTIONS = sorted(ACTIONS[V16] | ACTIONS[V201])
VALID_CALL_TEXT = '[2,"t1","Heartbeat",{}]'
TEXT_SNIPPETS = [
    "", " ", "{not json", "[", "]", "[]", "{}", "null", "true", "2", "[2", "[2,", '[2,"a"', '[2,"a","Heartbeat"',
    '[2,"a","Heartbeat",{}', VALID_CALL_TEXT + "]", VALID_CALL_TEXT + " x", "\ufeff" + VALID_CALL_TEXT,
    '[2,"a","Heartbeat",{"x":NaN}]', '[2,"a","Heartbeat",Infinity]', '[2,"\\ud800","Heartbeat",{}]',
    '["\\udfff"]', '[2,"a","Heartbeat",{},]', "[2,'a','Heartbeat',{}]", VALID_CALL_TEXT + "\x00",
    '[2,"a","Heartbeat",{"x":1' + "0" * 5000 + "}]", '[2,"a","Heartbeat",{"x":1e400}]', "[" * 100_000,
    "[" * 20_000 + "]" * 20_000, '{"a":' * 5000, '[2,"a","Heartbeat",{}]' * 3, '[2,"a","Heartbeat",{}] [3,"a",{}]',
    '[2,"' + "a" * 37 + '","Heartbeat",{}]', '[2,"a","Heartbeat",' + "[" * 2000 + "]" * 2000 + "]",
    '[2, "a", "Heartbeat", {"a": 1, "a": 2}]', "\x00", "\ud7ff\ue000",
]
SHORT_SNIPPETS = [t for t in TEXT_SNIPPETS if len(t) < 100]


@st.composite
def arbitrary_messages(draw: Any) -> Frame:
    types = st.one_of(st.sampled_from([2, 3, 4, 5, 0, -1, 6, 2**70, "2", 2.0, None, True]), st.integers(), json_values)
    ids = st.one_of(message_ids(), st.text(min_size=37, max_size=80), json_values)
    actions = st.one_of(st.sampled_from(ALL_ACTIONS), st.text(max_size=40), json_values)
    payload = st.one_of(st.dictionaries(st.text(max_size=20), json_values, max_size=5), json_values)
    if draw(st.integers(0, 9)) == 0:
        return Frame(draw(json_values))
    n = draw(st.integers(0, 7))
    elements = [draw(s) for s in (types, ids, actions, payload)[:n]]
    elements += [draw(json_values) for _ in range(n - 4)]
    return Frame(elements, ensure_ascii=draw(st.booleans()))


def arbitrary_texts() -> st.SearchStrategy[Frame]:
    return st.one_of(
        st.text(max_size=200).map(lambda t: Frame(text=t)),
        st.sampled_from(TEXT_SNIPPETS).map(lambda t: Frame(text=t)),
        st.lists(st.sampled_from(SHORT_SNIPPETS), min_size=2, max_size=4).map(lambda ts: Frame(text="".join(ts))),
        st.binary(max_size=200).map(lambda b: Frame(data=b)),
        st.just(Frame(data=VALID_CALL_TEXT.encode())),
    )


def arbitrary_frames(version: str) -> st.SearchStrategy[Frame]:
    return st.one_of(arbitrary_messages(), arbitrary_texts(), mutated_calls(version))


@st.composite
def sized_frames(draw: Any, version: str) -> Frame:
    """Frames of exactly ``MAX_FRAME_BYTES + delta`` UTF-8 bytes."""
    delta = draw(st.sampled_from([1, 0, -1, 2, -2, 3, 1000, -1000, MAX_FRAME_BYTES]))
    size = MAX_FRAME_BYTES + delta
    kind = draw(st.sampled_from(["call", "call-multibyte", "text", "binary"]))
    if kind == "binary":
        return Frame(data=b"\x01" * size)
    if kind == "text":
        return Frame(text=("[" * size)[:size])
    data: dict[str, Any] = {"vendorId": "fuzz", "data": ""}
    overhead = len(dumps([2, "big", "DataTransfer", data], False).encode())
    pad = size - overhead
    if kind == "call-multibyte":  # two bytes a character: fewer characters than bytes
        data["data"] = "\u00e9" * (pad // 2) + "x" * (pad % 2)
    else:
        data["data"] = "x" * pad
    frame = Frame([2, "big", "DataTransfer", data], ensure_ascii=False)
    assert len(dumps(frame.message, False).encode()) == size
    return frame


# -- the server under test -------------------------------------------------------------------------

# ``python -m csms serve`` with its address space limited (set in the child itself: preexec_fn is
# unsafe while the test process runs websocket threads).
_SERVE = ("import resource, runpy, sys; "
          f"resource.setrlimit(resource.RLIMIT_AS, ({SERVER_MEMORY_LIMIT}, {SERVER_MEMORY_LIMIT})); "
          "sys.argv = ['csms', *sys.argv[1:]]; runpy.run_module('csms', run_name='__main__', alter_sys=True)")


class Database:
    """Read access to the server's database from the test process (SQLite file or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._sqlite: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pg: Any = None

    def query(self, sql: str, *args: Any) -> list[tuple]:
        if self.url.startswith("sqlite:///"):
            if self._sqlite is None:
                self._sqlite = sqlite3.connect(f"file:{self.url.removeprefix('sqlite:///')}?mode=ro", uri=True,
                                               isolation_level=None, timeout=30, check_same_thread=False)
            return [tuple(r) for r in self._sqlite.execute(sql, args).fetchall()]
        import asyncpg

        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        if self._pg is None:
            self._pg = self._loop.run_until_complete(asyncpg.connect(self.url))
        counter = itertools.count(1)
        pg_sql = re.sub(r"\?", lambda _: f"${next(counter)}", sql)
        return [tuple(r) for r in self._loop.run_until_complete(self._pg.fetch(pg_sql, *args))]

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pg is not None:
            self._loop.run_until_complete(self._pg.close())
        if self._loop is not None:
            self._loop.close()


# Tables a frame may add rows to: the column naming the station (its id or its pk) and which rows
# count (connection events and smart-charging notes are written on their own schedule).
TRACKED = [("meter_value", "station_id", "id", ""),
           ("station_event", "station_id", "id", " AND category NOT IN ('connection', 'smart_charging')"),
           ("charging_session", "station", "pk", ""), ("device_variable", "station", "pk", ""),
           ("charging_profile", "station", "pk", "")]


class FuzzServer:
    """``csms serve`` in a subprocess, restarted on the same database when it stops answering."""

    def __init__(self, root: Path, database_url: str = "") -> None:
        self.root = root
        self.data_dir = root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url
        self.log_path = root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.restarts = 0
        self.db = Database(database_url or f"sqlite:///{(self.data_dir / 'csms.sqlite').resolve()}")
        self._ids = itertools.count(1)
        self.probe: Probe | None = None

    def ws_url(self, station_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{station_id}"

    def new_station_id(self, tag: str) -> str:
        return f"FZ{tag}-{os.getpid()}-{next(self._ids)}"

    def start(self) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
        env.update({"CSMS_DATA_DIR": str(self.data_dir), "CSMS_UNKNOWN_STATIONS": "accept",
                    "CSMS_HOST": "127.0.0.1", "CSMS_PORT": str(self.port), "CSMS_LOG_LEVEL": "warning",
                    "CSMS_MAX_FRAME_BYTES": str(MAX_FRAME_BYTES)})
        if self.database_url:
            env["CSMS_DATABASE_URL"] = self.database_url
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start on port {self.port} ===\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-c", _SERVE, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"csms serve exited with {self.process.returncode}:\n{self.log_tail(4000)}")
            try:
                self.probe = Probe(self)
                return
            except (OSError, WebSocketException, TimeoutError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"csms serve did not come up:\n{self.log_tail(4000)}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.probe is not None:
            self.probe.close()
            self.probe = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.restarts += 1
        STATS["server restarts"] += 1
        if self.probe is not None:
            self.probe.close()
            self.probe = None
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # it is not answering: do not wait for a graceful shutdown
            self.process.wait()
        self.start()

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int, limit: int = 3000) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        return text if len(text) <= limit else text[:limit // 2] + "\n...\n" + text[-limit // 2:]

    def log_tail(self, limit: int) -> str:
        return log_tail(self.log_path, limit)

    def liveness(self) -> str | None:
        """None when another station is served normally; else what went wrong (the server is
        restarted when it does not answer at all)."""
        problem = None
        if self.process is None or self.process.poll() is not None:
            problem = f"the server process exited with {self.process.returncode if self.process else None}"
        elif self.probe is None:
            problem = "no probe station"
        else:
            problem = self.probe.check()
            if problem is None or problem.startswith("answered"):
                return problem
        self.restart()
        return problem

    # database snapshots (property 4)

    def station_pk(self, station_id: str) -> int | None:
        rows = self.db.query("SELECT id FROM station WHERE station_id = ?", station_id)
        return rows[0][0] if rows else None

    def high_water(self) -> tuple[int, ...]:
        sql = "SELECT " + ", ".join(f"(SELECT coalesce(max(id), 0) FROM {t})" for t, _, _, _ in TRACKED)
        return tuple(self.db.query(sql)[0])

    def added_rows(self, since: tuple[int, ...], station_id: str, pk: int | None) -> dict[str, int]:
        parts, args = [], []
        for (table, column, key, extra), mark in zip(TRACKED, since):
            parts.append(f"(SELECT count(*) FROM {table} WHERE id > ? AND {column} = ?{extra})")
            args += [mark, station_id if key == "id" else (pk if pk is not None else -1)]
        counts = self.db.query("SELECT " + ", ".join(parts), *args)[0]
        return {t: c for (t, _, _, _), c in zip(TRACKED, counts) if c}

    def meter_values(self, station_id: str) -> list[tuple[str, float]]:
        return self.db.query("SELECT measurand, value FROM meter_value WHERE station_id = ?", station_id)

    def session(self, pk: int, transaction_id: str) -> tuple | None:
        rows = self.db.query("SELECT state, meter_start_wh, meter_stop_wh FROM charging_session "
                             "WHERE station = ? AND transaction_id = ? ORDER BY id DESC", pk, transaction_id)
        return rows[0] if rows else None


class StationSocket:
    """A station's WebSocket: send frames, collect what comes back, answer the server's CALLs."""

    def __init__(self, url: str, version: str) -> None:
        self.version = version
        self._stack = ExitStack()
        self.ws = self._stack.enter_context(ws_connect(url, subprotocols=[SUBPROTOCOL[version]], open_timeout=10,
                                                       close_timeout=2, ping_interval=None, max_size=None))
        self.server_calls: list[Any] = []

    def close(self) -> None:
        try:
            self._stack.close()
        except Exception:
            pass

    def send(self, data: str | bytes) -> None:
        self.ws.send(data)

    def collect(self, wanted: set[str], timeout: float, barrier: str | None = None,
                grace: float = 0.0) -> tuple[list[Any], str | None]:
        """Messages received until every id in ``wanted`` was answered; and why it stopped early
        ("timeout", or "closed CODE reason"). Once ``barrier`` is answered the others get at most
        ``grace`` seconds more (frames are answered in order, so they are most likely lost)."""
        wanted, messages = set(wanted), []
        deadline = time.monotonic() + timeout
        while wanted:
            if barrier is not None and barrier not in wanted:
                deadline, barrier = min(deadline, time.monotonic() + grace), None
            try:
                raw = self.ws.recv(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return messages, "timeout"
            except ConnectionClosed as exc:
                return messages, f"closed {exc.rcvd.code if exc.rcvd else None} {exc.rcvd.reason if exc.rcvd else ''}"
            message = strict_json(raw) if isinstance(raw, str) else NOT_JSON
            if message is NOT_JSON:
                messages.append(("not JSON", raw))
                continue
            if isinstance(message, list) and len(message) == 4 and message[0] == 2 and isinstance(message[1], str):
                self.server_calls.append(message)  # a command from the CSMS: refused by this test station
                try:
                    self.ws.send(json.dumps([4, message[1], "NotImplemented", "fuzz station", {}]))
                except ConnectionClosed:
                    pass
                continue
            messages.append(message)
            if isinstance(message, list) and len(message) >= 2 and message[0] in (3, 4) and message[1] in wanted:
                wanted.discard(message[1])
        return messages, None

    def wait_closed(self, timeout: float) -> tuple[list[Any], int | None]:
        """What arrives until the server closes the socket, and the close code (None: still open)."""
        messages, deadline = [], time.monotonic() + timeout
        while True:
            try:
                raw = self.ws.recv(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return messages, None
            except ConnectionClosed as exc:
                return messages, exc.rcvd.code if exc.rcvd else 1006
            messages.append(raw)


class Probe:
    """Another station on its own connection: its Heartbeat must be answered (liveness) and its
    MeterValues too (which commits every batch queued before it)."""

    def __init__(self, server: FuzzServer) -> None:
        self.sock = StationSocket(server.ws_url(server.new_station_id("PROBE")), V16)
        self.n = 0
        self.sock.send(json.dumps([2, "boot", "BootNotification", BOOT[V16]]))
        messages, problem = self.sock.collect({"boot"}, 30)
        if problem:
            self.sock.close()
            raise TimeoutError(f"probe station could not boot: {problem}")

    def close(self) -> None:
        self.sock.close()

    def check(self) -> str | None:
        self.n += 1
        hb, mv = f"hb-{self.n}", f"mv-{self.n}"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            self.sock.send(json.dumps([2, hb, "Heartbeat", {}]))
            self.sock.send(json.dumps([2, mv, "MeterValues", {"connectorId": 0, "meterValue": [
                {"timestamp": now, "sampledValue": [{"value": str(self.n)}]}]}]))
        except (ConnectionClosed, OSError) as exc:
            return f"the other station's socket is gone: {exc!r}"
        messages, problem = self.sock.collect({hb, mv}, LIVENESS_TIMEOUT)
        if problem:
            return f"the other station's Heartbeat was not answered within {LIVENESS_TIMEOUT} s ({problem})"
        answers = {m[1]: m for m in messages if isinstance(m, list) and len(m) > 1}
        if answers.get(hb, [None])[0] != 3:
            return f"answered the other station's Heartbeat with {answers.get(hb)}"
        if answers.get(mv, [None])[0] != 3:
            return f"answered the other station's MeterValues with {answers.get(mv)}"
        return None


# -- properties ------------------------------------------------------------------------------------

class FuzzFailure(AssertionError):
    """A property of issue 12 does not hold (one subclass per property and rule)."""


class CallNotAnsweredOnce(FuzzFailure):
    """Property 1: a CALL gets exactly one answer with its id."""


class AnswerMalformed(FuzzFailure):
    """Property 1: the answer is a well-formed CALLRESULT or CALLERROR."""


class InternalErrorAnswer(FuzzFailure):
    """Property 1: the server never fails internally on input."""


class UnknownErrorCode(FuzzFailure):
    """Property 1: CALLERROR codes are the version's."""


class Int32RuleBroken(FuzzFailure):
    """Property 1: integers outside int32 get TypeConstraintViolation."""


class NonFiniteRuleBroken(FuzzFailure):
    """Property 1: non-finite numbers get PropertyConstraintViolation."""


class NulRuleBroken(FuzzFailure):
    """Property 1: NUL characters get PropertyConstraintViolation."""


class BadAnswerToNonCall(FuzzFailure):
    """Property 1: anything but a CALL gets at most one CALLERROR."""


class InvalidPayloadAccepted(FuzzFailure):
    """Property 1: a payload breaking its schema gets a CALLERROR."""


class SocketClosed(FuzzFailure):
    """Property 2: the server keeps the socket open."""


class OversizedNotRefused(FuzzFailure):
    """Property 2: a frame above max_frame_bytes is closed with 1009."""


class StationUnusable(FuzzFailure):
    """Property 2: the station's next Heartbeat is still answered."""


class LivenessLost(FuzzFailure):
    """Property 3: another station's Heartbeat is answered."""


class OtherStationFailed(FuzzFailure):
    """Property 3: another station's messages are still served."""


class StoredDespiteError(FuzzFailure):
    """Property 4: nothing is stored for a frame that was not accepted."""


class AnsweredNotStored(FuzzFailure):
    """Property 4: accepted meter values are in the database."""


RULE_FAILURES = {"int32": Int32RuleBroken, "non-finite": NonFiniteRuleBroken, "NUL": NulRuleBroken}


@dataclass
class Example:
    """One station's run through its frames."""

    server: FuzzServer
    version: str
    station_id: str
    pk: int | None = None
    last_tx: Any = None
    stopped_16: set = field(default_factory=set)
    seen_201: set = field(default_factory=set)
    ended_201: set = field(default_factory=set)
    readings: set = field(default_factory=set)  # distinct readings accepted so far
    barriers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def fail(self, cls: type[FuzzFailure], what: str, frame: Frame | None = None, got: Any = None,
             log_from: int | None = None) -> None:
        lines = [f"OCPP {self.version}, station {self.station_id}: {what}"]
        if frame is not None:
            lines.append(f"frame: {frame!r}")
        if got is not None:
            text = repr(got)
            lines.append(f"received: {text if len(text) < 1500 else text[:1500] + '...'}")
        if log_from is not None:
            log = self.server.log_since(log_from).strip()
            if log:
                lines.append("server log:\n" + log)
        STATS[f"failure {cls.__name__}"] += 1
        raise cls("\n".join(lines))


def _event(text: str) -> None:
    if currently_in_test_context():  # the helpers also run outside hypothesis (replaying a frame by hand)
        event(text)


def check_liveness(ex: Example, frame: Frame | None, log_from: int) -> None:
    problem = ex.server.liveness()
    if problem is None:
        return
    cls = OtherStationFailed if problem.startswith("answered") else LivenessLost
    ex.fail(cls, f"property 3: {problem}", frame, log_from=log_from)


def run_example(server: FuzzServer, version: str, frames: list[Frame]) -> None:
    STATS[f"examples {version}"] += 1
    ex = Example(server, version, server.new_station_id("16" if version == V16 else "201"))
    log_from = server.log_size()
    try:
        sock = StationSocket(server.ws_url(ex.station_id), version)
    except (OSError, WebSocketException, TimeoutError) as exc:
        check_liveness(ex, None, log_from)
        ex.fail(LivenessLost, f"property 3: a new station could not connect: {exc!r}", log_from=log_from)
    try:
        sock.send(json.dumps([2, "boot", "BootNotification", BOOT[version]]))
        messages, problem = sock.collect({"boot"}, ANSWER_TIMEOUT)
        boot = next((m for m in messages if isinstance(m, list) and len(m) == 3 and m[:2] == [3, "boot"]
                     and isinstance(m[2], dict)), None)
        if problem or boot is None or boot[2].get("status") != "Accepted":
            check_liveness(ex, None, log_from)
            ex.fail(StationUnusable, f"BootNotification of a new station not accepted ({problem})", got=messages,
                    log_from=log_from)
        ex.pk = server.station_pk(ex.station_id)
        check_liveness(ex, None, log_from)  # also commits what the boot queued, before the first frame
        for frame in frames:
            if not run_frame(ex, sock, frame):
                break
    finally:
        sock.close()


def run_frame(ex: Example, sock: StationSocket, frame: Frame) -> bool:
    """Send one frame and check the four properties; False when the socket was (rightly) closed."""
    server, version = ex.server, ex.version
    STATS[f"frames {version}"] += 1
    message = frame.resolved(ex.last_tx)
    wire = frame.wire(message)
    if frame.text is not None:
        meaning = strict_json(frame.text)
    elif frame.data is not None:
        meaning = NOT_JSON  # OCPP-J messages are text frames
    else:
        meaning = standin(message)
    call = as_call(version, meaning) if meaning is not NOT_JSON else None
    size = len(wire.encode("utf-8", "surrogatepass")) if isinstance(wire, str) else len(wire)
    marks = server.high_water()
    log_from = server.log_size()
    try:
        sock.send(wire)
    except ConnectionClosed as exc:
        ex.fail(SocketClosed, f"property 2: socket closed before the frame was sent: {exc!r}", frame,
                log_from=log_from)

    if size > MAX_FRAME_BYTES:  # property 2: refused with 1009, not answered
        STATS["oversized frames"] += 1
        received, code = sock.wait_closed(ANSWER_TIMEOUT)
        if received or code != 1009:
            check_liveness(ex, frame, log_from)
            ex.fail(OversizedNotRefused, f"property 2: a frame of {size} bytes (limit {MAX_FRAME_BYTES}) must be "
                    f"closed with 1009 and not answered; close code {code}", frame, received, log_from)
        check_liveness(ex, frame, log_from)
        return False

    barrier = f"zz-barrier-{next(ex.barriers)}"
    wanted = {barrier} | ({call.uid} if call else set())
    try:
        sock.send(json.dumps([2, barrier, "Heartbeat", {}]))
    except ConnectionClosed:
        pass  # reported below from what collect() sees
    messages, problem = sock.collect(wanted, ANSWER_TIMEOUT, barrier, LATE_ANSWER_GRACE)
    if problem and problem.startswith("closed"):
        check_liveness(ex, frame, log_from)
        ex.fail(SocketClosed, f"property 2: the server closed the socket ({problem})", frame, messages, log_from)
    if problem:  # timeout: is the server still there?
        check_liveness(ex, frame, log_from)
    barrier_answers = [m for m in messages if isinstance(m, list) and len(m) > 1 and m[1] == barrier]
    others = [m for m in messages if not (isinstance(m, list) and len(m) > 1 and m[1] == barrier)]

    # property 1
    answer = None
    if call is not None:
        mine = [m for m in others if isinstance(m, list) and len(m) > 1 and m[0] in (3, 4) and m[1] == call.uid]
        if len(mine) != 1 or len(others) != 1:
            ex.fail(CallNotAnsweredOnce, f"property 1: expected exactly one answer with id {call.uid!r}"
                    + (f" ({problem})" if problem else ""), frame, others, log_from)
        answer = mine[0]
        check_answer(ex, frame, answer, log_from)
        code = answer[2] if answer[0] == 4 else "CALLRESULT"
        _event(f"{version} {call.action if isinstance(call.action, str) and len(call.action) < 40 else '?'}: {code}")
        STATS[f"answers {version} {code}"] += 1
        if call.valid is False and answer[0] == 3:
            ex.fail(InvalidPayloadAccepted, "property 1: a payload that breaks the official schema was accepted",
                    frame, answer, log_from)
        if call.rules and (answer[0] == 3 or answer[2] not in call.allowed) \
                and not names_another_problem(ex, sock, frame, answer):
            ex.fail(RULE_FAILURES[call.rules.split("+")[0]],
                    f"property 1: a schema-valid payload with {call.rules} must get "
                    f"{' or '.join(sorted(call.allowed))}", frame, answer, log_from)
    else:
        _event(f"{version} not a CALL: {len(others)} answer(s)")
        STATS[f"non-CALL frames {version}"] += 1
        if len(others) > 1:
            ex.fail(BadAnswerToNonCall, "property 1: more than one answer to one frame", frame, others, log_from)
        for m in others:
            check_answer(ex, frame, m, log_from, callerror_only=True)
    if problem or len(barrier_answers) != 1 or barrier_answers[0][0] != 3:
        ex.fail(StationUnusable, f"property 2: the station's next Heartbeat was not answered with a CALLRESULT"
                + (f" ({problem})" if problem else ""), frame, barrier_answers, log_from)

    # property 3 (and the flush that makes property 4 checkable)
    check_liveness(ex, frame, log_from)

    # property 4
    added = server.added_rows(marks, ex.station_id, ex.pk)
    if answer is None or answer[0] == 4:
        if added:
            ex.fail(StoredDespiteError, f"property 4: rows added for a frame answered with "
                    f"{answer[2] if answer else 'nothing'}: {added}", frame, answer, log_from)
        return True
    if call is not None and call.valid and call.action in STORAGE_ACTIONS:
        check_stored(ex, frame, call, answer, log_from)
    return True


def sanitized(version: str, action: str, payload: Any) -> Any:
    """``payload`` without what the edge rules are about: integers outside int32 where the schema
    types ``integer`` become 0, non-finite numbers 0, NUL characters "_"."""
    root = schema(version, action)

    def clean(node: Any, value: Any) -> Any:
        node = _resolve(root, node) if isinstance(node, dict) else None
        types = (node or {}).get("type")
        types = types if isinstance(types, list) else [types]
        if isinstance(value, Raw):
            if _nonfinite(value.value) or ("integer" in types and isinstance(value.value, int)
                                           and not INT32[0] <= value.value <= INT32[1]):
                return 0
            return value
        if isinstance(value, dict):
            props = (node or {}).get("properties") or {}
            return {k.replace("\x00", "_"): clean(props.get(k), v) for k, v in value.items()}
        if isinstance(value, list):
            items = (node or {}).get("items")
            return [clean(items if isinstance(items, dict) else None, v) for v in value]
        if isinstance(value, str):
            return value.replace("\x00", "_")
        if _nonfinite(value):
            return 0
        if "integer" in types and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and not INT32[0] <= value <= INT32[1]:
            return 0
        return value

    return clean(root, payload)


def names_another_problem(ex: Example, sock: StationSocket, frame: Frame, answer: list) -> bool:
    """When a frame has several problems the server may name any of them: true when the same
    frame (same message id) without the out-of-range values gets the same CALLERROR code."""
    if answer[0] != 4:
        return False
    message = frame.resolved(ex.last_tx)
    if not isinstance(message, list) or len(message) != 4:
        return False
    uid = message[1]
    try:
        sock.send(dumps([2, uid, message[2], sanitized(ex.version, message[2], message[3])], frame.ensure_ascii))
    except ConnectionClosed:
        return False
    messages, problem = sock.collect({uid}, ANSWER_TIMEOUT)
    again = next((m for m in messages if isinstance(m, list) and len(m) > 2 and m[1] == uid), None)
    same = again is not None and again[0] == 4 and again[2] == answer[2]
    if same:
        STATS["rule answers naming another problem"] += 1
    return same


def check_answer(ex: Example, frame: Frame, m: Any, log_from: int, callerror_only: bool = False) -> None:
    codes = CODES[ex.version]
    if not isinstance(m, list):
        ex.fail(AnswerMalformed, "property 1: the answer is not a JSON array", frame, m, log_from)
    if m[0] == 3 and not callerror_only:
        if len(m) != 3 or not isinstance(m[2], dict):
            ex.fail(AnswerMalformed, "property 1: a CALLRESULT is [3, id, {...}]", frame, m, log_from)
        return
    if m[0] != 4 or len(m) != 5 or not isinstance(m[1], str) or not isinstance(m[2], str) \
            or not isinstance(m[3], str) or not isinstance(m[4], dict):
        ex.fail(AnswerMalformed, "property 1: a CALLERROR is [4, id, code, description, {details}]", frame, m,
                log_from)
    if m[2] == "InternalError":
        ex.fail(InternalErrorAnswer, "property 1: InternalError", frame, m, log_from)
    if m[2] not in codes:
        ex.fail(UnknownErrorCode, f"property 1: {m[2]!r} is not an OCPP {ex.version} error code", frame, m, log_from)


def _instant(value: Any) -> Any:
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
            return dt.astimezone(timezone.utc) if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
        except (ValueError, OverflowError):
            pass
    return value


def expected_readings(version: str, action: str, payload: dict) -> list[tuple]:
    """The readings an accepted message carries: (timestamp, measurand, phase, location, context,
    value) with the spec's defaults and the value normalised as the server documents (energy in
    Wh, power in W); 1.6 values only when they are plain decimals. A reading is stored once:
    the same one again is a replay."""
    if version == V16:
        values = payload.get("transactionData") if action == "StopTransaction" else payload.get("meterValue")
    else:
        values = payload.get("meterValue") if action in ("MeterValues", "TransactionEvent") else None
    out = []
    for mv in values or []:
        for sv in (mv.get("sampledValue") or []) if isinstance(mv, dict) else []:
            measurand = sv.get("measurand", "Energy.Active.Import.Register")
            if version == V16:
                raw = sv.get("value")
                if sv.get("format") == "SignedData" or not isinstance(raw, str) or not PLAIN_DECIMAL.fullmatch(raw):
                    continue
                unit, value = sv.get("unit", "Wh" if measurand.startswith("Energy") else ""), float(raw)
            else:
                uom = sv.get("unitOfMeasure") or {}
                multiplier = uom.get("multiplier", 0)
                if not isinstance(sv.get("value"), (int, float)) or abs(multiplier) > 300:
                    continue
                unit = uom.get("unit", "Wh" if measurand.startswith("Energy") else "")
                value = float(sv["value"]) * 10.0 ** multiplier
            out.append((_instant(mv.get("timestamp")), measurand, sv.get("phase", ""), sv.get("location", "Outlet"),
                        sv.get("context", "Sample.Periodic"), value * K_UNITS.get(unit, 1.0)))
    return out


def _same(a: float | None, b: float) -> bool:
    if a is None:
        return False
    if math.isinf(b) or math.isinf(a):
        return a == b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def check_stored(ex: Example, frame: Frame, call: Call, answer: list, log_from: int) -> None:
    server, version, p = ex.server, ex.version, call.payload
    replay = False
    if version == V16 and call.action == "StartTransaction":
        tx = answer[2].get("transactionId")
        row = server.session(ex.pk, str(tx)) if ex.pk is not None else None
        if row is None or not _same(row[1], float(p["meterStart"])):
            ex.fail(AnsweredNotStored, f"property 4: transaction {tx} answered, stored session "
                    f"(state, meter_start_wh, meter_stop_wh) = {row} lacks meterStart {p['meterStart']}",
                    frame, answer, log_from)
        ex.last_tx = tx
        STATS["1.6 transaction starts checked"] += 1
    if version == V16 and call.action == "StopTransaction":
        tx = p["transactionId"]
        replay = tx in ex.stopped_16
        ex.stopped_16.add(tx)
        row = server.session(ex.pk, str(tx)) if ex.pk is not None else None
        if not replay and (row is None or row[0] != "completed" or not _same(row[2], float(p["meterStop"]))):
            ex.fail(AnsweredNotStored, f"property 4: StopTransaction {tx} answered, stored session "
                    f"(state, meter_start_wh, meter_stop_wh) = {row}", frame, answer, log_from)
        STATS["1.6 transaction stops checked"] += not replay
    if version == V201 and call.action == "TransactionEvent":
        tx, seq = p["transactionInfo"]["transactionId"], p["seqNo"]
        replay = tx in ex.ended_201 or (tx, seq) in ex.seen_201
        ex.seen_201.add((tx, seq))
        if p["eventType"] == "Ended":
            ex.ended_201.add(tx)
    if replay:  # answered again, stored once (the spec's exactly-once rule)
        return
    readings = expected_readings(version, call.action, p)
    if not readings:
        return
    ex.readings.update(readings)
    STATS["accepted readings checked in the database"] += len(readings)
    stored = server.meter_values(ex.station_id)
    missing = []
    for measurand, value in {(r[1], r[5]) for r in readings}:
        needed = sum(1 for r in ex.readings if r[1] == measurand and _same(r[5], value))
        have = sum(1 for m, v in stored if m == measurand and _same(v, value))
        if have < needed:
            missing.append((measurand, value, f"{have} of {needed} stored"))
    if missing:
        ex.fail(AnsweredNotStored, f"property 4: answered with a CALLRESULT but not stored: {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''}", frame, answer, log_from)


# -- tests -----------------------------------------------------------------------------------------

def fuzz_settings(examples: int) -> settings:
    # no explain phase: it replays each failure many more times (half a second each for a lost answer)
    return settings(max_examples=examples, deadline=None, derandomize=not RANDOM, print_blob=True,
                    database=None if not RANDOM else settings.default.database,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    server = FuzzServer(tmp_path_factory.mktemp("fuzz-sqlite"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.db.close()


@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    root = tmp_path_factory.mktemp("fuzz-postgres")
    loop = asyncio.new_event_loop()
    database = temporary_database(root, "postgres")
    url = loop.run_until_complete(database.__aenter__())
    server = FuzzServer(root, database_url=url)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.db.close()
        loop.run_until_complete(database.__aexit__(None, None, None))
        loop.close()


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    print("\nfuzz counts: " + ", ".join(f"{k}={v}" for k, v in sorted(STATS.items())), file=sys.stderr)


VERSIONS = pytest.mark.parametrize("version", [V16, V201])


@VERSIONS
@fuzz_settings(EXAMPLES)
@given(data=st.data())
def test_schema_valid_calls(sqlite_server: FuzzServer, version: str, data: st.DataObject) -> None:
    frames = data.draw(st.lists(valid_calls(version), min_size=1, max_size=3), label="frames")
    run_example(sqlite_server, version, frames)


@VERSIONS
@fuzz_settings(EXAMPLES)
@given(data=st.data())
def test_mutated_calls(sqlite_server: FuzzServer, version: str, data: st.DataObject) -> None:
    frames = data.draw(st.lists(st.one_of(mutated_calls(version), valid_calls(version)), min_size=1, max_size=3),
                       label="frames")
    run_example(sqlite_server, version, frames)


@VERSIONS
@fuzz_settings(EXAMPLES)
@given(data=st.data())
def test_arbitrary_frames(sqlite_server: FuzzServer, version: str, data: st.DataObject) -> None:
    frames = data.draw(st.lists(arbitrary_frames(version), min_size=1, max_size=3), label="frames")
    run_example(sqlite_server, version, frames)


@VERSIONS
@fuzz_settings(max(10, EXAMPLES // 10))
@given(data=st.data())
def test_frames_around_max_frame_bytes(sqlite_server: FuzzServer, version: str, data: st.DataObject) -> None:
    frames = [data.draw(sized_frames(version), label="frame")]
    run_example(sqlite_server, version, frames)


@fuzz_settings(PG_EXAMPLES)
@given(data=st.data())
def test_postgres(postgres_server: FuzzServer, data: st.DataObject) -> None:
    version = data.draw(st.sampled_from([V16, V201]), label="version")
    frames = data.draw(st.lists(st.one_of(valid_calls(version), mutated_calls(version), arbitrary_frames(version)),
                                min_size=1, max_size=3), label="frames")
    run_example(postgres_server, version, frames)
