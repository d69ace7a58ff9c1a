"""Transport and the configuration modules against a scripted partner over real HTTP: versions,
credentials both ways, token handling, ids and routing headers, the envelope and status codes,
pagination."""

from __future__ import annotations

import base64

import httpx
import pytest
import pytest_asyncio

from plugins.roaming_ocpi.tests.fake_partner import fake_partner, now
from plugins.roaming_ocpi.tests.ocpi_check import assert_envelope, assert_valid


pytestmark = pytest.mark.asyncio(loop_scope="module")


def tok(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


async def invite(server, organization: int | None = None) -> tuple[str, str]:
    """Invite a partner (of ``organization``, else the installation's): token A and our versions URL."""
    r = await server.api.post("/roaming/partners", json={"name": "fake", "organization": organization})
    assert r.status_code == 201, r.text
    return r.json()["token_a"], r.json()["our_versions_url"]


async def register_fake(server, fake, organization: int | None = None) -> str:
    """The fake partner registers with us (it is the Sender of credentials) as a partner of
    ``organization`` (None: the installation's); returns token C."""
    token_a, versions = await invite(server, organization)
    async with httpx.AsyncClient() as c:
        r = await c.get(versions, headers=tok(token_a))
        data = assert_envelope(r.json())
        for v in data:
            assert_valid("Version", v)
        r = await c.get(data[0]["url"], headers=tok(token_a))
        details = assert_envelope(r.json())
        assert_valid("VersionDetails", details)
        cred_url = next(e["url"] for e in details["endpoints"] if e["identifier"] == "credentials")
        r = await c.post(cred_url, json=fake.credentials(), headers=tok(token_a))
        assert r.status_code == 200, r.text
        creds = assert_envelope(r.json())
    assert_valid("Credentials", creds)
    assert creds["token"] != token_a
    assert {r["role"] for r in creds["roles"]} == {"CPO", "EMSP"}
    fake.token_c = creds["token"]
    return creds["token"]


@pytest_asyncio.fixture(loop_scope="module")
async def fake():
    async with fake_partner() as partner:
        yield partner


@pytest_asyncio.fixture(loop_scope="module")
async def registered(server, fake):
    await register_fake(server, fake)
    return fake


def ocpi(server) -> str:
    return f"{server.base_url}/ocpi"


async def test_versions_and_details(server, fake):
    token_a, versions = await invite(server)
    async with httpx.AsyncClient() as c:
        r = await c.get(versions, headers=tok(token_a))
        assert r.status_code == 200
        assert [v["version"] for v in assert_envelope(r.json())] == ["2.2.1", "2.1.1"]
        r = await c.get(f"{ocpi(server)}/2.2.1", headers=tok(token_a))
        details = assert_envelope(r.json())
    assert_valid("VersionDetails", details)
    pairs = {(e["identifier"], e["role"]) for e in details["endpoints"]}
    assert ("locations", "SENDER") in pairs and ("locations", "RECEIVER") in pairs
    assert ("tokens", "RECEIVER") in pairs and ("commands", "RECEIVER") in pairs
    assert ("credentials", "SENDER") in pairs
    # configuration modules carry no routing headers
    assert "ocpi-from-party-id" not in r.headers


async def test_partner_registers_with_us(server, fake):
    token_c = await register_fake(server, fake)
    # we fetched the partner's versions and endpoints with its token B, without routing headers
    fetched = [r for r in fake.requests if r.method == "GET"]
    assert [r.path for r in fetched] == ["/ocpi/versions", "/ocpi/2.2.1"]
    assert all(r.headers["authorization"] == "Token " + base64.b64encode(b"fake-token-b").decode() for r in fetched)
    assert all("ocpi-to-party-id" not in r.headers for r in fetched)
    partners = (await server.api.get("/roaming/partners")).json()["items"]
    assert partners[-1]["status"] == "registered"
    assert partners[-1]["roles"][0] == {
        "role": "EMSP", "country_code": "DE", "party_id": "FAK", "name": "Fake emsp",
        "business_details": {"name": "Fake emsp", "website": "https://fake.example.org"}}
    assert fake.token_b not in str(partners) and token_c not in str(partners)
    async with httpx.AsyncClient() as c:
        # token C works on functional modules
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations", headers=tok(token_c))
        assert r.status_code == 200 and assert_envelope(r.json()) == []
        # GET credentials answers our credentials with the token the partner uses
        r = await c.get(f"{ocpi(server)}/2.2.1/credentials", headers=tok(token_c))
        creds = assert_envelope(r.json())
        assert_valid("Credentials", creds)
        assert creds["token"] == token_c
        # a second POST is refused with 405
        r = await c.post(f"{ocpi(server)}/2.2.1/credentials", json=fake.credentials(), headers=tok(token_c))
        assert r.status_code == 405
        assert_envelope(r.json(), 2000)


async def test_token_a_only_opens_configuration_modules(server, fake):
    token_a, _ = await invite(server)
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations", headers=tok(token_a))
        assert r.status_code == 401
        assert_envelope(r.json(), 2000)
        # PUT/DELETE credentials before registering: 405
        r = await c.put(f"{ocpi(server)}/2.2.1/credentials", json=fake.credentials(), headers=tok(token_a))
        assert r.status_code == 405
        r = await c.delete(f"{ocpi(server)}/2.2.1/credentials", headers=tok(token_a))
        assert r.status_code == 405


async def test_bad_tokens_get_401(server, registered):
    async with httpx.AsyncClient() as c:
        for headers in ({}, {"Authorization": "Bearer x"}, tok("not-a-token"), {"Authorization": "Token"},
                        {"Authorization": f"Token {registered.token_c}"}):  # unencoded: not for this partner
            r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations", headers=headers)
            assert r.status_code == 401, headers
            assert_envelope(r.json(), 2000)
        r = await c.get(f"{ocpi(server)}/versions", headers=tok("nope"))
        assert r.status_code == 401


async def test_raw_token_switch(server, registered):
    partner_id = (await server.api.get("/roaming/partners")).json()["items"][-1]["id"]
    raw = {"Authorization": f"Token {registered.token_c}"}
    async with httpx.AsyncClient() as c:
        assert (await c.get(f"{ocpi(server)}/cpo/2.2.1/locations", headers=raw)).status_code == 401
        r = await server.api.patch(f"/roaming/partners/{partner_id}", json={"raw_tokens": True})
        assert r.status_code == 200 and r.json()["raw_tokens"] is True
        assert (await c.get(f"{ocpi(server)}/cpo/2.2.1/locations", headers=raw)).status_code == 200
        # Base64 still works too
        assert (await c.get(f"{ocpi(server)}/cpo/2.2.1/locations", headers=tok(registered.token_c))).status_code == 200


async def test_request_ids_and_routing_headers(server, registered):
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations", headers={
            **tok(registered.token_c), "X-Request-ID": "req-1", "X-Correlation-ID": "corr-1",
            "OCPI-from-country-code": "DE", "OCPI-from-party-id": "FAK", "OCPI-to-country-code": "NL",
            "OCPI-to-party-id": "CPO"})
        assert r.headers["x-request-id"] == "req-1"
        assert r.headers["x-correlation-id"] == "corr-1"
        assert (r.headers["ocpi-to-country-code"], r.headers["ocpi-to-party-id"]) == ("DE", "FAK")
        assert (r.headers["ocpi-from-country-code"], r.headers["ocpi-from-party-id"]) == ("NL", "CPO")
        # without ids we make them; errors carry them too
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations", headers=tok("bad"))
        assert r.status_code == 401 and r.headers["x-request-id"] and r.headers["x-correlation-id"]
    partner_id = (await server.api.get("/roaming/partners")).json()["items"][-1]["id"]
    log = (await server.api.get(f"/roaming/partners/{partner_id}/log")).json()["items"]
    assert any(e["request_id"] == "req-1" and e["direction"] == "in" and e["ocpi_status"] == 1000 for e in log)


async def test_we_register_update_and_unregister(server):
    async with fake_partner(role="CPO", party_id="FCP", accepted={"fake-token-a"}) as partner:
        r = await server.api.post("/roaming/partners", json={
            "name": "their CPO", "versions_url": partner.versions_url, "token": "fake-token-a"})
        assert r.status_code == 201, r.text
        row = r.json()
        assert row["status"] == "registered" and row["party_id"] == "FCP"
        post = partner.pushes("POST", "credentials")[0]
        assert post.headers["authorization"] == "Token " + base64.b64encode(b"fake-token-a").decode()
        assert_valid("Credentials", post.body)
        assert post.body["url"] == f"{server.base_url}/ocpi/versions"
        our_token = partner.their_token
        async with httpx.AsyncClient() as c:  # the partner can now call us with the token we gave
            r = await c.get(f"{ocpi(server)}/emsp/2.2.1/tokens", headers=tok(our_token))
            assert r.status_code == 200
            # a CPO partner may not use our CPO interfaces (HTTP 403, OCPI 2000)
            r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations", headers=tok(our_token))
            assert r.status_code == 403 and r.json()["status_code"] == 2000
            # PUT: fresh credentials both ways, endpoints fetched again
            r = await server.api.post(f"/roaming/partners/{row['id']}/credentials")
            assert r.status_code == 200, r.text
            put = partner.pushes("PUT", "credentials")[0]
            assert put.headers["authorization"] == "Token " + base64.b64encode(b"fake-token-c1").decode()
            assert partner.their_token != our_token
            assert (await c.get(f"{ocpi(server)}/emsp/2.2.1/tokens", headers=tok(our_token))).status_code == 401
            assert (await c.get(f"{ocpi(server)}/emsp/2.2.1/tokens",
                                headers=tok(partner.their_token))).status_code == 200
            assert [r.path for r in partner.requests[-2:]] == ["/ocpi/versions", "/ocpi/2.2.1"]
            # unregister: DELETE at the partner, then our token is dead
            r = await server.api.delete(f"/roaming/partners/{row['id']}")
            assert r.status_code == 200 and r.json()["status"] == "unregistered" and not r.json()["warning"]
            assert partner.pushes("DELETE", "credentials")
            assert (await c.get(f"{ocpi(server)}/emsp/2.2.1/tokens",
                                headers=tok(partner.their_token))).status_code == 401


async def test_registration_errors(server):
    async with fake_partner(role="CPO", party_id="FCQ", accepted={"fake-token-a"}) as partner:
        r = await server.api.post("/roaming/partners", json={
            "name": "wrong token", "versions_url": partner.versions_url, "token": "wrong"})
        assert r.status_code == 502 and "versions" in r.json()["detail"]
    # a partner that registers with us but whose versions endpoint we cannot reach: 3001
    token_a, _ = await invite(server)
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{ocpi(server)}/2.2.1/credentials", headers=tok(token_a), json={
            "token": "x", "url": "http://127.0.0.1:9/ocpi/versions", "roles": [{
                "role": "EMSP", "business_details": {"name": "n"}, "party_id": "ABC", "country_code": "DE"}]})
        assert r.status_code == 200
        assert_envelope(r.json(), 3001)
        # malformed credentials: 2001; not JSON: 400
        r = await c.post(f"{ocpi(server)}/2.2.1/credentials", headers=tok(token_a), json={"token": "x"})
        assert r.status_code == 200
        assert_envelope(r.json(), 2001)
        assert "roles" in r.json()["status_message"]
        r = await c.post(f"{ocpi(server)}/2.2.1/credentials", headers={**tok(token_a),
                                                                       "Content-Type": "application/json"},
                         content=b"{not json")
        assert r.status_code == 400 and r.json()["status_code"] == 2001


async def test_partner_unregisters_itself(server, fake):
    token_c = await register_fake(server, fake)
    async with httpx.AsyncClient() as c:
        r = await c.delete(f"{ocpi(server)}/2.2.1/credentials", headers=tok(token_c))
        assert r.status_code == 200 and assert_envelope(r.json()) is None
        assert (await c.get(f"{ocpi(server)}/cpo/2.2.1/locations", headers=tok(token_c))).status_code == 401


@pytest.mark.parametrize("levels", [1_000, 100_000])
async def test_deeply_nested_bodies_get_400_with_2001(server, registered, levels):
    """Refused before parsing (no RecursionError, no 3000), on a configuration module with token
    A and on a functional module with token C."""
    token_a, _ = await invite(server)
    deep = b"[" * levels + b"]" * levels
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient() as c:
        for method, url, token in (("POST", f"{ocpi(server)}/2.2.1/credentials", token_a),
                                   ("PUT", f"{ocpi(server)}/cpo/2.2.1/tokens/DE/FAK/DEEP1", registered.token_c)):
            r = await c.request(method, url, headers={**tok(token), **headers}, content=deep)
            assert r.status_code == 400, r.text
            assert_envelope(r.json(), 2001)
            assert "nested more than 64 levels" in r.json()["status_message"]


async def test_deeply_nested_partner_answer_is_a_partner_error(server, monkeypatch):
    """A partner answering with a deeply nested body: an ordinary PartnerError (no crash)."""
    from plugins.roaming_ocpi import client

    deep = b'{"status_code": 1000, "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    mock = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, content=deep)))
    monkeypatch.setattr(client, "_client", mock)
    try:
        with pytest.raises(client.PartnerError) as failure:
            await client.call({"id": None, "outgoing_token": "t"}, "GET", "http://partner.invalid/ocpi/versions")
    finally:
        await mock.aclose()
    assert "without an OCPI response envelope" in failure.value.message


def _creds_answer(data) -> tuple[int, dict]:
    return 200, {"status_code": 1000, "data": data, "timestamp": now()}


@pytest.mark.parametrize("kind", ["unreachable", "bad token", "partner error", "bad payload", "bad versions"])
async def test_failed_registration_leaves_nothing_half_made(server, kind):
    """Each way the handshake can fail: HTTP 502 naming the reason, the row kept as ``failed``
    with it (no token of ours that works, no endpoints), and a retry under the same name reuses
    that row and registers."""
    name = f"failing {kind}"
    async with fake_partner(role="CPO", party_id="FRT", accepted={"fake-token-a"}) as partner:
        versions, token = partner.versions_url, "fake-token-a"
        if kind == "unreachable":
            versions = "http://127.0.0.1:9/ocpi/versions"
        elif kind == "bad token":
            token = "wrong"
        elif kind == "partner error":
            partner.answers["/credentials"] = (500, {"status_code": 3000, "status_message": "database down",
                                                     "timestamp": now()})
        elif kind == "bad payload":
            partner.answers["/credentials"] = _creds_answer({"token": "x", "url": partner.versions_url})
        else:
            partner.answers["/ocpi/versions"] = _creds_answer({"version": "2.2.1"})
        r = await server.api.post("/roaming/partners", json={"name": name, "versions_url": versions, "token": token})
        assert r.status_code == 502, r.text
        detail = r.json()["detail"]
        assert detail.startswith("registration failed: ")
        expected = {"unreachable": "could not read the partner's versions", "bad token": "HTTP 401",
                    "partner error": "the partner refused our credentials", "bad payload": "roles: is required",
                    "bad versions": "did not answer a list of versions"}[kind]
        assert expected in detail, detail
        partner_id = r.json()["extra"]["partner_id"]
        row = (await server.api.get(f"/roaming/partners/{partner_id}")).json()
        assert row["status"] == "failed" and row["last_error"] == detail
        assert row["endpoints"] == [] and row["registered_at"] is None
        sent = partner.pushes("POST", "credentials", failed=True)
        async with httpx.AsyncClient() as c:
            for body in (s.body for s in sent):  # the token B we sent opens nothing
                r = await c.get(f"{ocpi(server)}/versions", headers=tok(body["token"]))
                assert r.status_code == 401
        # the retry: the same name takes the failed row again
        partner.answers.clear()
        r = await server.api.post("/roaming/partners", json={
            "name": name, "versions_url": partner.versions_url, "token": "fake-token-a"})
        assert r.status_code == 201, r.text
        assert r.json()["id"] == partner_id and r.json()["status"] == "registered" and not r.json()["last_error"]
        assert [p["id"] for p in (await server.api.get("/roaming/partners")).json()["items"]
                if p["name"] == name] == [partner_id]
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{ocpi(server)}/emsp/2.2.1/tokens", headers=tok(partner.their_token))
            assert r.status_code == 200
        await server.api.delete(f"/roaming/partners/{partner_id}")


async def test_failed_registration_keeps_an_invited_partner_invited(server):
    """Registering outward with a partner we had invited, and failing: it stays invited and its
    token A still works (the token B we generated does not); POST .../register retries."""
    r = await server.api.post("/roaming/partners", json={"name": "invited then failing"})
    invited = r.json()
    async with fake_partner(role="CPO", party_id="FRU", accepted={"fake-token-a"}) as partner:
        partner.answers["/credentials"] = (400, {"status_code": 2001, "status_message": "no", "timestamp": now()})
        r = await server.api.post(f"/roaming/partners/{invited['id']}/register",
                                  json={"versions_url": partner.versions_url, "token": "fake-token-a"})
        assert r.status_code == 502 and "refused our credentials" in r.json()["detail"], r.text
        row = (await server.api.get(f"/roaming/partners/{invited['id']}")).json()
        assert row["status"] == "invited" and "refused our credentials" in row["last_error"]
        async with httpx.AsyncClient() as c:
            assert (await c.get(invited["our_versions_url"], headers=tok(invited["token_a"]))).status_code == 200
            token_b = partner.pushes("POST", "credentials", failed=True)[0].body["token"]
            assert (await c.get(invited["our_versions_url"], headers=tok(token_b))).status_code == 401
        partner.answers.clear()
        r = await server.api.post(f"/roaming/partners/{invited['id']}/register",
                                  json={"versions_url": partner.versions_url, "token": "fake-token-a"})
        assert r.status_code == 200 and r.json()["status"] == "registered", r.text
        await server.api.delete(f"/roaming/partners/{invited['id']}")


async def test_partner_failing_to_register_with_us_can_retry(server, fake):
    """The partner registers with us and we cannot read its versions: OCPI 3001, the partner
    stays invited with the reason, its token A still good for the retry."""
    token_a, versions = await invite(server)
    creds = {**fake.credentials(), "url": "http://127.0.0.1:9/ocpi/versions"}
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{ocpi(server)}/2.2.1/credentials", headers=tok(token_a), json=creds)
        assert_envelope(r.json(), 3001)
        items = (await server.api.get("/roaming/partners")).json()["items"]
        row = max(items, key=lambda p: p["id"])
        assert row["status"] == "invited" and "could not read the partner's versions" in row["last_error"]
        r = await c.post(f"{ocpi(server)}/2.2.1/credentials", headers=tok(token_a), json=fake.credentials())
        assert_envelope(r.json())
        row = (await server.api.get(f"/roaming/partners/{row['id']}")).json()
        assert row["status"] == "registered" and not row["last_error"]


async def test_failed_credentials_update_keeps_the_old_token(server):
    """Renewing credentials (PUT) and the partner answers an error: it still holds the token we
    gave it before, and that token still works here."""
    async with fake_partner(role="CPO", party_id="FRV", accepted={"fake-token-a"}) as partner:
        r = await server.api.post("/roaming/partners", json={
            "name": "renew fails", "versions_url": partner.versions_url, "token": "fake-token-a"})
        assert r.status_code == 201, r.text
        partner_id, token = r.json()["id"], partner.their_token
        partner.answers["/credentials"] = (500, {"status_code": 3000, "timestamp": now()})
        r = await server.api.post(f"/roaming/partners/{partner_id}/credentials")
        assert r.status_code == 502 and "refused the update" in r.json()["detail"], r.text
        row = (await server.api.get(f"/roaming/partners/{partner_id}")).json()
        assert row["status"] == "registered" and row["last_error"].startswith("credentials update failed")
        async with httpx.AsyncClient() as c:
            assert (await c.get(f"{ocpi(server)}/emsp/2.2.1/tokens", headers=tok(token))).status_code == 200
        partner.answers.clear()
        await server.api.delete(f"/roaming/partners/{partner_id}")


async def test_a_registration_left_pending_is_taken_again(server):
    """A ``pending`` row a registration left behind (the server stopped in the middle) is reused
    by the next registration under that name once it is stale; a fresh one is not touched."""
    from datetime import timedelta

    from csms.plugin_api import utcnow
    from plugins.roaming_ocpi.tables import Partner

    stuck = Partner(name="left pending", status="pending")
    await stuck.save()
    busy = Partner(name="left pending", status="pending")
    await busy.save()
    await Partner.update({Partner.updated_at: utcnow() - timedelta(hours=1)}).where(Partner.id == stuck.id)
    async with fake_partner(role="CPO", party_id="FRW", accepted={"fake-token-a"}) as partner:
        r = await server.api.post("/roaming/partners", json={
            "name": "left pending", "versions_url": partner.versions_url, "token": "fake-token-a"})
        assert r.status_code == 201 and r.json()["id"] == stuck.id, r.text
    assert (await server.api.get(f"/roaming/partners/{busy.id}")).json()["status"] == "pending"
    await server.api.delete(f"/roaming/partners/{stuck.id}")
    await Partner.delete().where(Partner.id == busy.id)

