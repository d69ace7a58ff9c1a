"""Property-based fuzzing of every REST endpoint that takes a body, against a real server.

The operations come from the server's own OpenAPI document (every plugin installed: their
endpoints are in it too). For each one, hypothesis draws bodies from

(a) the operation's request schema (``from_schema``: what a well-meaning client might send,
    reaching the handlers' own checks behind the schema);
(b) the schema's property names with hostile values (huge and negative numbers, 1e308, NUL,
    control and RTL characters, very long strings, nested containers, wrong types);
(c) arbitrary JSON;

and sends them with an admin key to paths whose parameters name objects that exist (a station
that is offline, a site, a hub, an organization, a driver, a card, a plan), so that the handler
runs instead of stopping at 404. Properties, per request:

1. the answer is not a server error (no 5xx), within ``TIMEOUT`` seconds;
2. an error answer (4xx) is JSON with a ``detail`` saying what is wrong;

on SQLite and on PostgreSQL (which refuses what SQLite stores, e.g. NUL in text); afterwards
the server still answers, and a station connected to it all along was never
disturbed. Every failing operation is reported, shrunk, not just the first. Examples per
operation: ``CSMS_FUZZ_REST_EXAMPLES`` (default 8; the same on every run unless
``CSMS_FUZZ_RANDOM=1``).
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from ocpp.v201 import call as call201

from csms.testing import running_server
from csms.testing.stations import station
from tests.jsonschema_strategies import from_schema

EXAMPLES = int(os.environ.get("CSMS_FUZZ_REST_EXAMPLES", "8"))
RANDOM = os.environ.get("CSMS_FUZZ_RANDOM", "") not in ("", "0")
TIMEOUT = 20.0
# Operations that reach outside the machine (a partner's or a payment provider's address from
# the body): they are tested against fakes in their own test files.
OUTSIDE = re.compile(r"/roaming/partners/\{partner_id\}/(register|commands/)|/payments/stripe/")
METHODS = ("post", "put", "patch", "delete")


def inline(node: Any, components: dict[str, Any], depth: int = 0) -> Any:
    """The schema with its ``#/components/schemas/...`` references replaced by what they name
    (a reference nested deeper than 8 becomes any value)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            if depth > 8:
                return {}
            return inline(components[ref.rsplit("/", 1)[-1]], components, depth + 1)
        return {k: inline(v, components, depth) for k, v in node.items()}
    if isinstance(node, list):
        return [inline(v, components, depth) for v in node]
    return node


def properties(schema: dict[str, Any]) -> list[str]:
    """Property names of an object schema, through its ``oneOf``/``anyOf``/``allOf`` branches."""
    names = list(schema.get("properties", {}))
    for key in ("oneOf", "anyOf", "allOf"):
        for branch in schema.get(key, []):
            if isinstance(branch, dict):
                names += [n for n in properties(branch) if n not in names]
    return names


def hostile_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.sampled_from([0, -1, 2**31, -(2**31) - 1, 2**63, 10**30, 1e308, -1e308, 0.1, True, False, None,
                         "", " ", "\x00", "\u202e", "a" * 10_000, "0", "-1", "1e999", "NaN", "2026-13-45T25:61:00Z",
                         "null", "[]", "{}", "<script>alert(1)</script>", "../../etc/passwd"]),
        st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    )
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=12)


def bodies(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    names = properties(schema)
    choices = [hostile_values()]
    if names:
        choices.append(st.dictionaries(st.sampled_from(names), hostile_values(), max_size=len(names)))
    try:
        choices.insert(0, from_schema(schema))
    except Exception:  # a schema hypothesis-jsonschema cannot generate from: the other two still run
        pass
    return st.one_of(*choices)


def concrete(path: str, ids: dict[str, Any]) -> str:
    """``path`` with each ``{parameter}`` named after an object made for the fuzzing."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "item_id":  # /organizations/{item_id}, /sites/{item_id}, ...
            return str(ids[path.split("/")[1]])
        return str(ids.get(name, 1))
    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", one, path)


async def objects(api: httpx.AsyncClient) -> dict[str, Any]:
    """One object of each kind a path can name, and their ids."""
    async def made(path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await api.post(path, json=body)
        assert r.status_code == 201, f"{path}: {r.status_code} {r.text}"
        return r.json()

    organization = await made("/organizations", {"name": "Fuzz org"})
    site = await made("/sites", {"name": "Fuzz site"})
    hub = await made("/hubs", {"name": "Fuzz hub", "site": site["id"]})
    driver = await made("/drivers", {"name": "Fuzz driver", "email": "fuzz@example.org"})
    await made("/stations", {"station_id": "FZ-ST", "site": site["id"]})
    await made("/tokens", {"id_token": "FZ-TOK"})
    ids: dict[str, Any] = {"organizations": organization["id"], "sites": site["id"], "hubs": hub["id"],
                           "drivers": driver["id"], "site_id": site["id"], "driver_id": driver["id"],
                           "station_id": "FZ-ST", "id_token": "FZ-TOK", "action": "Reset",
                           "command": "START_SESSION"}
    return ids


def fuzz(base_url: str, headers: dict[str, str], operations: list[tuple[str, str, dict[str, Any]]],
         ids: dict[str, Any]) -> dict[str, str]:
    """Run hypothesis over each operation (in a thread: the server runs on the test's loop);
    the failures by operation, each with its shrunk example."""
    failures: dict[str, str] = {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=TIMEOUT) as client:
        for method, path, schema in operations:
            url = concrete(path, ids)

            @settings(max_examples=EXAMPLES, derandomize=not RANDOM, deadline=None, database=None,
                      phases=(Phase.explicit, Phase.generate, Phase.shrink),
                      suppress_health_check=list(HealthCheck))
            @given(body=bodies(schema))
            def check(body: Any) -> None:
                try:
                    r = client.request(method.upper(), url, json=body)
                except httpx.TimeoutException:
                    raise AssertionError(f"no answer within {TIMEOUT:g} s") from None
                assert r.status_code < 500, f"{r.status_code}: {r.text[:500]}"
                if r.status_code >= 400:
                    answer = r.json()
                    assert isinstance(answer, dict) and answer.get("detail"), f"{r.status_code} without a detail: {r.text[:500]}"

            try:
                check()
            except Exception as exc:  # noqa: BLE001 - every operation's failure is collected
                notes = "\n".join(getattr(exc, "__notes__", []))  # hypothesis: the falsifying example
                failures[f"{method.upper()} {path}"] = f"{type(exc).__name__}: {exc}"[:1500] + "\n" + notes[:1500]
    return failures


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_every_rest_body_gets_a_clear_answer(tmp_path, backend):
    async with running_server(tmp_path, backend=backend, unknown_stations="accept") as server:
        doc = (await server.api.get("/schema/openapi.json")).json()
        components = doc.get("components", {}).get("schemas", {})
        operations = []
        for path, item in doc["paths"].items():
            for method in METHODS:
                op = item.get(method)
                if not isinstance(op, dict) or "requestBody" not in op or OUTSIDE.search(path):
                    continue
                content = op["requestBody"].get("content", {})
                schema = (content.get("application/json") or next(iter(content.values()), {})).get("schema", {})
                operations.append((method, path.removeprefix("/api/v1"), inline(schema, components)))
        assert len(operations) >= 80, [f"{m} {p}" for m, p, _ in operations]
        ids = await objects(server.api)
        async with station(server, "FZ-CALM", "2.0.1") as calm:  # connected throughout, never disturbed
            failures = await asyncio.to_thread(fuzz, str(server.api.base_url), dict(server.api.headers),
                                               operations, ids)
            answer = await calm.call(call201.Heartbeat())
            assert answer.current_time
        assert (await server.api.get("/stations/FZ-ST")).status_code == 200
        assert not failures, "\n\n".join(f"{op}\n{why}" for op, why in sorted(failures.items()))
