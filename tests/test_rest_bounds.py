"""Issue 12: numbers and nesting the REST API accepts. Out-of-range integers in any parameter or
body, and JSON nested beyond the limit, get 400 with a readable detail, never 500."""

from __future__ import annotations

from typing import Annotated

import pytest
from litestar import Litestar, get
from litestar.exceptions import ValidationException
from litestar.params import Parameter

from csms.api.bounds import INT64, check_int_params
from csms.jsondepth import MAX_JSON_DEPTH, json_depth_exceeds

OUT_OF_RANGE = [2**31, 2**63, 10**30, -(2**63) - 1]  # above int32 (PostgreSQL integer), int64, far beyond


def _integer_params(operation: dict, item: dict) -> list[dict]:
    params = operation.get("parameters", []) + item.get("parameters", [])
    return [p for p in params if p["in"] in ("path", "query") and _is_integer(p.get("schema", {}))]


def _is_integer(schema: dict) -> bool:
    options = [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]
    return any(s.get("type") == "integer" for s in options)


def _url(path: str, operation: dict, item: dict, target: dict, value: int) -> tuple[str, dict]:
    """``path`` with ``value`` in the target parameter and harmless values in the other path ones."""
    for p in operation.get("parameters", []) + item.get("parameters", []):
        if p["in"] == "path":
            filler = "1" if _is_integer(p.get("schema", {})) else "X"
            path = path.replace("{%s}" % p["name"], str(value) if p is target else filler)
    query = {target["name"]: str(value)} if target["in"] == "query" else {}
    return path.removeprefix("/api/v1"), query


async def test_every_integer_parameter_of_every_get_route_is_bounded(any_server):
    """Generated from the OpenAPI document: each integer path/query parameter of each GET route
    (core and plugins) with numbers beyond the columns' ranges: 400 or 404, never 500."""
    api = any_server.api
    doc = (await api.get("/schema/openapi.json")).json()
    checked = failures = 0
    problems = []
    for path, item in doc["paths"].items():
        operation = item.get("get")
        if operation is None or not path.startswith("/api/v1"):
            continue
        for param in _integer_params(operation, item):
            for value in OUT_OF_RANGE:
                url, query = _url(path, operation, item, param, value)
                r = await api.get(url, params=query)
                checked += 1
                if r.status_code not in (400, 404):
                    failures += 1
                    problems.append((path, param["name"], value, r.status_code, r.text[:200]))
                elif r.status_code == 400:
                    detail = r.json()["detail"]
                    assert param["name"] in detail and "integer" in detail, (path, detail)
    assert checked > 200  # the core's and every plugin's routes were walked
    assert not problems, problems


async def test_the_detail_names_the_parameter_and_its_range(server):
    r = await server.api.get("/sessions", params={"offset": str(2**63)})
    assert r.status_code == 400
    assert r.json()["detail"] == "query parameter 'offset' must be an integer from -2147483648 to 2147483647"
    assert r.json()["extra"] == [{"message": "must be an integer from -2147483648 to 2147483647",
                                  "key": "offset", "source": "query"}]
    r = await server.api.get("/drivers", params={"organization": str(2**31)})  # a filter outside the schema
    assert r.status_code == 400 and "'organization' must be an integer from" in r.json()["detail"]
    r = await server.api.get(f"/sites/{10**30}")
    assert r.status_code == 400 and "path parameter 'item_id'" in r.json()["detail"]
    # in range but unknown: still 404; in-range paging still works
    assert (await server.api.get(f"/sites/{2**31 - 1}")).status_code == 404
    assert (await server.api.get("/sessions", params={"offset": str(2**31 - 1)})).json()["items"] == []


def test_a_route_may_declare_other_bounds():
    @get("/things/{thing_id:int}")
    async def handler(thing_id: int, big: Annotated[int, Parameter(le=INT64[1])] = 0, small: int | None = None,
                      since: int = Parameter(query="from", ge=0, default=0)) -> None:
        return None

    Litestar([handler])

    def check(path_id: int, query: str) -> None:
        check_int_params({"path_params": {"thing_id": path_id}, "query_string": query.encode()}, handler)

    check(1, f"big={2**40}&small=-5&from=7")
    for path_id, query, name in ((2**31, "", "thing_id"), (1, f"small={2**40}", "small"),
                                 (1, f"big={2**63}", "big"), (1, "from=-1", "from")):
        with pytest.raises(ValidationException) as refused:
            check(path_id, query)
        assert refused.value.extra[0]["key"] == name


@pytest.mark.parametrize("value", [2**31, 2**40, 10**30])
async def test_body_numbers_beyond_their_column_get_400(any_server, value):
    api = any_server.api
    r = await api.post("/hubs", json={"name": "H", "max_stations": value})
    assert r.status_code == 400 and "max_stations" in r.json()["detail"], r.text
    r = await api.post("/sites", json={"name": "S", "organization": value})
    assert r.status_code == 400 and r.json()["extra"][0]["field"] == "organization", r.text
    r = await api.post("/stations/", json={"station_id": "B1", "site": value})
    assert r.status_code == 400 and "site" in r.text, r.text
    r = await api.post("/tokens", json={"id_token": "B1", "driver": value})
    assert r.status_code == 400 and "driver" in r.text, r.text
    # a plugin route that checks no range itself: the database's refusal becomes 400 too
    r = await api.post("/billing/assignments", json={"tariff": value, "station_id": "B1"})
    if value > 2**63:  # beyond what either database takes (below it SQLite looks for that tariff: 404)
        assert r.status_code == 400 and "too large" in r.json()["detail"], r.text
    assert r.status_code in (400, 404), r.text
    # nothing was stored
    assert (await api.get("/hubs")).json()["total"] == 0
    assert (await api.get("/stations/")).json()["total"] == 0


@pytest.mark.parametrize("levels", [1_000, 100_000])
async def test_deeply_nested_bodies_get_400(server, levels):
    deep = b"[" * levels + b"]" * levels
    for method, path in (("POST", "/sites"), ("POST", "/stations/"), ("PATCH", "/sites/1"),
                         ("POST", "/billing/tariffs")):
        r = await server.api.request(method, path, content=deep, headers={"content-type": "application/json"})
        assert r.status_code == 400, (path, r.text)
        assert r.json()["detail"] == f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep"
    # a body as deep as the limit is read as usual (and refused for what it says)
    ok = b'{"name": "N", "city": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    r = await server.api.post("/sites", content=ok, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["extra"][0]["field"] == "city"


@pytest.mark.parametrize("text,limit,expected", [
    ("[]", 1, False),
    ("[[]]", 1, True),
    ('{"a": [1, {"b": [2]}]}', 4, False),
    ('{"a": [1, {"b": [2]}]}', 3, True),
    ('["[[[[[[", "{{{{"]', 1, False),  # brackets inside strings do not count
    ('["\\"[[[[", "\\\\"]', 1, False),  # nor after escaped quotes
    ('[[["unterminated', 2, True),
    ("[" * 100_000, 64, True),  # never closed
    ("[" * 10 + "]" * 10, 10, False),
    ('"[[[[[["', 0, False),
    ("42", 0, False),
])
def test_json_depth_exceeds(text, limit, expected):
    assert json_depth_exceeds(text, limit) is expected
    assert json_depth_exceeds(text.encode(), limit) is expected
