"""Delivery guarantees of the outbox against partners on real HTTP ports: redirects followed with
the advertised trailing slash kept, 5xx and timeouts retried until the partner comes back (no CDR
lost, none doubled), refusals parked as failed and resent, the newest state of an object winning,
one partner that stalls never holding up another; access by role, stale tokens, OCPI limits on
the way out, charging periods that add up, 401 headers and a broken ``Link`` header."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest

from plugins.roaming_ocpi import outbox
from plugins.roaming_ocpi.client import close_client, get_all
from plugins.roaming_ocpi.parties import partner_row
from plugins.roaming_ocpi.tables import Outbox
from plugins.roaming_ocpi.tests.conftest import ocpi_env
from plugins.roaming_ocpi.tests.fake_partner import fake_partner, now
from plugins.roaming_ocpi.tests.ocpi_check import assert_valid
from plugins.roaming_ocpi.tests.stations import eventually
from plugins.roaming_ocpi.tests.test_emsp import CDR
from plugins.roaming_ocpi.tests.test_transport import ocpi, register_fake, tok

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def partner_id(server, party_id: str) -> int:
    items = (await server.api.get("/roaming/partners")).json()["items"]
    return max(p["id"] for p in items if p["party_id"] == party_id and p["status"] == "registered")


@asynccontextmanager
async def request_timeout(seconds: float):
    """Outbound OCPI requests time out after ``seconds`` (a fresh HTTP client), restored after."""
    with ocpi_env({"CSMS_OCPI_REQUEST_TIMEOUT": str(seconds)}):
        await close_client()
        try:
            yield
        finally:
            await close_client()


async def rows(pid: int, key_prefix: str) -> list[dict]:
    found = await Outbox.select().where(Outbox.partner == pid).order_by(Outbox.id).output(load_json=True)
    return [r for r in found if r["object_key"].startswith(key_prefix)]


def tariff(tariff_id: str) -> dict:
    return {"country_code": "NL", "party_id": "CPO", "id": tariff_id, "currency": "EUR", "last_updated": now(),
            "elements": [{"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]}]}


def cdr(cdr_id: str) -> dict:
    return {**CDR, "country_code": "NL", "party_id": "CPO", "id": cdr_id, "session_id": cdr_id, "last_updated": now()}


async def test_redirecting_failing_stalling_partner_gets_every_cdr_exactly_once(server):
    """The partner advertises ``.../cdrs/`` (we POST there, slash kept), which answers 307 to a new
    URL; that one fails with 503, then stalls past our timeout (having taken the CDR), then
    recovers: every CDR arrives, each acknowledged, nothing parked, the 307 kept method and body."""
    seen: dict[str, int] = {}  # CDR id -> POSTs that reached the final URL
    calls = {"n": 0}
    moved = "/ocpi/2.2.1/cdrs/v2/"

    async def script(record):
        if record.path == "/ocpi/2.2.1/cdrs/" and record.method == "POST":
            return 307, {"status_code": 1000, "timestamp": now()}, [(b"location", f"{fake.base}{moved}".encode())]
        if record.path == moved and record.method == "POST":
            calls["n"] += 1
            if calls["n"] == 1:
                return 503, {"status_code": 3000, "timestamp": now()}, []
            seen[record.body["id"]] = seen.get(record.body["id"], 0) + 1
            if calls["n"] == 2:
                await asyncio.sleep(2.5)  # took it, but answers after our timeout
            return 201, {"status_code": 1000, "timestamp": now()}, [
                (b"location", f"{fake.base}{moved}{record.body['id']}".encode())]
        return None

    async with request_timeout(1.0), fake_partner(party_id="RDR", slash=True) as fake:
        await register_fake(server, fake)
        fake.script = script
        pid = await partner_id(server, "RDR")
        ids = [f"90{i}" for i in range(3)]
        for cid in ids:
            await outbox.enqueue(pid, "POST", f"cdr:{cid}", module="cdrs", body=cdr(cid))

        async def all_done():
            found = await rows(pid, "cdr:")
            return len(found) == 3 and all(r["status"] == "done" for r in found)

        await eventually(all_done, timeout=40)
    assert set(seen) == set(ids)  # every CDR arrived; the one taken during the stall was sent again
    assert not [r for r in fake.requests if r.path == "/ocpi/2.2.1/cdrs"]  # the trailing slash was kept
    arrived = [r for r in fake.requests if r.path == moved]
    assert arrived and all(r.method == "POST" for r in arrived)
    for r in arrived:
        assert r.body["id"] in ids and r.body == {**cdr(r.body["id"]), "last_updated": r.body["last_updated"]}


async def test_cdr_resent_after_a_timeout_is_harmless_on_our_emsp_side(server):
    """The retry of a CDR POST carries the same id; our eMSP receiver answers it as accepted and
    keeps one CDR."""
    async with fake_partner(role="CPO", party_id="CDP") as cpo:
        await register_fake(server, cpo)
        body = {**CDR, "party_id": "CDP", "id": "dup-1"}
        async with httpx.AsyncClient() as c:
            first = await c.post(f"{ocpi(server)}/emsp/2.2.1/cdrs", json=body, headers=tok(cpo.token_c))
            again = await c.post(f"{ocpi(server)}/emsp/2.2.1/cdrs", json=body, headers=tok(cpo.token_c))
        assert first.status_code in (200, 201) and again.status_code in (200, 201), again.text
        assert again.json()["status_code"] == 1000
        assert first.headers["location"] == again.headers["location"]
        cdrs = (await server.api.get("/roaming/cdrs", params={"role": "emsp"})).json()["items"]
        assert len([c for c in cdrs if (c.get("id") or c.get("payload", {}).get("id")) == "dup-1"]) <= 1


async def test_refusal_is_parked_with_the_partners_message_and_resent(server):
    refuse = {"on": True}

    async def script(record):
        if "/tariffs/" in record.path and refuse["on"]:
            return 422, {"status_code": 2001, "status_message": "tariff id taken", "timestamp": now()}, []
        return None

    async with fake_partner(party_id="REF") as fake:
        await register_fake(server, fake)
        fake.script = script
        pid = await partner_id(server, "REF")
        await outbox.enqueue(pid, "PUT", "tariff:T1", module="tariffs", path="/NL/CPO/T1", body=tariff("T1"))
        failed = await eventually(lambda: failed_rows(server, pid))
        assert "tariff id taken" in failed[0]["last_error"] and failed[0]["attempts"] == 1
        await outbox.refresh_depth()  # what the delivering node does every few seconds
        assert await outbox_depth(server, pid, "failed") == 1
        refuse["on"] = False
        push_id = failed[0]["id"]
        r = await server.api.post(f"/roaming/outbox/{push_id}/resend")
        assert r.status_code == 200, r.text
        await eventually(lambda: done(pid, push_id))
        await outbox.refresh_depth()
        assert await outbox_depth(server, pid, "failed") == 0 and await outbox_depth(server, pid, "pending") == 0
        r = await server.api.post(f"/roaming/outbox/{push_id}/resend")
        assert r.status_code == 409 and "not failed" in r.text
        assert (await server.api.post("/roaming/outbox/999999/resend")).status_code == 404
    spec = (await server.api.get("/schema/openapi.json")).json()
    assert any(p.endswith("/roaming/outbox/{outbox_id}/resend") for p in spec["paths"])


async def outbox_depth(server, pid: int, status: str) -> float | None:
    """``csms_ocpi_outbox{partner, status}`` as ``/metrics`` serves it (None: not served)."""
    from prometheus_client.parser import text_string_to_metric_families

    async with httpx.AsyncClient(base_url=server.base_url, headers=dict(server.api.headers)) as client:
        r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == "csms_ocpi_outbox" and sample.labels == {"partner": str(pid), "status": status}:
                return sample.value
    return None


async def failed_rows(server, pid: int) -> list[dict]:
    r = await server.api.get("/roaming/outbox", params={"partner": pid, "status": "failed"})
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def done(pid: int, push_id: int) -> bool:
    row = await Outbox.select(Outbox.status).where(Outbox.id == push_id).first()
    return row["status"] == "done"


async def test_newest_state_wins_and_queued_older_states_are_dropped(server):
    async with fake_partner(party_id="ORD") as fake:
        await register_fake(server, fake)
        pid = await partner_id(server, "ORD")
        fake.down = True
        loc = "/NL/CPO/L9"
        await outbox.enqueue(pid, "PATCH", "location:L9", module="locations", path=f"{loc}/E1",
                             body={"status": "CHARGING", "last_updated": now()})
        await eventually(lambda: fake.pushes(None, "locations", failed=True))  # tried once, partner down
        await outbox.enqueue(pid, "PATCH", "location:L9", module="locations", path=f"{loc}/E1",
                             body={"status": "AVAILABLE", "last_updated": now()})
        await outbox.enqueue(pid, "PATCH", "location:L9", module="locations", path=f"{loc}/E1",
                             body={"status": "OUTOFORDER", "last_updated": now()})
        pending = await rows(pid, "location:L9")
        assert len(pending) == 1 and pending[0]["body"]["status"] == "OUTOFORDER"  # merged, newest values
        fake.down = False
        await eventually(lambda: fake.pushes("PATCH", "locations"), timeout=20)
        await asyncio.sleep(0.3)
        statuses = [r.body["status"] for r in fake.pushes("PATCH", "locations")]
        assert statuses == ["OUTOFORDER"]


async def test_newer_states_queued_while_a_push_is_in_flight_fold_into_it_when_it_fails(server):
    """A PATCH is in flight (the partner hangs, then answers 503) while two newer states of the
    same EVSE are queued: they cannot merge into the push being sent, so they queue behind it;
    when it fails they fold into it: one queued PATCH holding the newest state, and the partner
    gets that, never the older one it failed to take."""
    release = asyncio.Event()
    up = asyncio.Event()

    async def script(record):
        if record.path.endswith("/locations/NL/CPO/L7/E1"):
            await release.wait()
            if not up.is_set():
                return 503, {"status_code": 3000, "timestamp": now()}, []
        return None

    async with fake_partner(party_id="FLD") as fake:
        await register_fake(server, fake)
        fake.script = script
        pid = await partner_id(server, "FLD")
        path = "/NL/CPO/L7/E1"
        await outbox.enqueue(pid, "PATCH", "location:L7", module="locations", path=path,
                             body={"status": "CHARGING", "last_updated": now()})
        await eventually(lambda: fake.pushes(None, "locations/NL/CPO/L7", failed=True))  # in flight, hanging
        for status in ("AVAILABLE", "OUTOFORDER"):
            await outbox.enqueue(pid, "PATCH", "location:L7", module="locations", path=path,
                                 body={"status": status, "last_updated": now()})
        queued = await rows(pid, "location:L7")
        assert [(r["status"], r["body"]["status"]) for r in queued] == [("sending", "CHARGING"),
                                                                       ("pending", "OUTOFORDER")]
        release.set()  # the push in flight fails

        async def folded():
            found = await rows(pid, "location:L7")
            return len(found) == 1 and found[0]["status"] == "pending" and found[0]["attempts"] == 1 and found
        row = (await eventually(folded))[0]
        assert row["id"] == queued[0]["id"] and row["body"]["status"] == "OUTOFORDER" and row["last_error"]
        up.set()
        await eventually(lambda: done(pid, row["id"]), timeout=20)
        await asyncio.sleep(0.3)
        assert [r.body["status"] for r in fake.pushes("PATCH", "locations/NL/CPO/L7")] == ["OUTOFORDER"]
        assert [r["status"] for r in await rows(pid, "location:L7")] == ["done"]


async def test_a_state_merged_as_the_push_is_taken_for_sending_goes_out_with_it(server, monkeypatch):
    """A newer state merges into a queued push after the delivery pass has read it, before it is
    sent: the push goes out with the newest state (it is not lost behind the older one)."""
    held = outbox._held
    merged: list[int] = []

    async def merging_held(row):
        if row["object_key"] == "location:L8" and not merged:  # between reading the row and sending it
            merged.append(row["id"])
            await outbox.enqueue(row["partner"], "PATCH", "location:L8", module="locations", path=row["path"],
                                 body={"status": "OUTOFORDER", "last_updated": now()})
        return await held(row)

    monkeypatch.setattr(outbox, "_held", merging_held)
    async with fake_partner(party_id="MRG") as fake:
        await register_fake(server, fake)
        pid = await partner_id(server, "MRG")
        await outbox.enqueue(pid, "PATCH", "location:L8", module="locations", path="/NL/CPO/L8/E1",
                             body={"status": "CHARGING", "last_updated": now()})
        await eventually(lambda: merged and done(pid, merged[0]))
        await asyncio.sleep(0.3)
        assert [r.body["status"] for r in fake.pushes("PATCH", "locations/NL/CPO/L8")] == ["OUTOFORDER"]
        assert [(r["status"], r["body"]["status"]) for r in await rows(pid, "location:L8")] == [("done", "OUTOFORDER")]


async def test_a_stalled_partner_does_not_hold_up_another(server):
    """Partner SLO hangs on every push until released; partner FST gets its push meanwhile."""
    release = asyncio.Event()

    async def stall(record):
        if "/locations/" in record.path:
            await release.wait()
        return None

    async with fake_partner(party_id="SLO") as slow, fake_partner(party_id="FST") as fast:
        await register_fake(server, slow)
        await register_fake(server, fast)
        slow.script = stall
        slow_id, fast_id = await partner_id(server, "SLO"), await partner_id(server, "FST")
        body = {"status": "AVAILABLE", "last_updated": now()}
        await outbox.enqueue(slow_id, "PATCH", "location:L1", module="locations", path="/NL/CPO/L1/E1", body=body)
        await eventually(lambda: slow.pushes(None, "locations", failed=True))  # the slow one is in flight
        await outbox.enqueue(fast_id, "PATCH", "location:L1", module="locations", path="/NL/CPO/L1/E1", body=body)
        await fast.wait_for("PATCH", "locations")
        assert not release.is_set()  # the fast partner got it while the slow one still hangs
        in_flight = await rows(slow_id, "location:L1")
        assert in_flight[0]["status"] == "sending"
        release.set()
        await eventually(lambda: done(slow_id, in_flight[0]["id"]))
        assert len(slow.pushes("PATCH", "locations")) == 1  # delivered once


async def test_a_site_address_beyond_the_ocpi_limit_is_parked_with_field_and_limit(server):
    async with fake_partner(party_id="LIM") as fake:
        await register_fake(server, fake)
        pid = await partner_id(server, "LIM")
        r = await server.api.post("/sites", json={
            "name": "Long address", "address": "A" * 62, "city": "Amsterdam", "postal_code": "1012 LG",
            "country": "NLD", "latitude": 52.37, "longitude": 4.89, "timezone": "Europe/Amsterdam", "publish": True})
        assert r.status_code in (200, 201), r.text
        site_id = r.json()["id"]
        await server.api.post("/roaming/sync")

        async def parked():
            return [r for r in await failed_rows(server, pid) if r["object_key"] == f"location:{site_id}"]

        found = await eventually(parked)
        assert "Location.address: longer than 45 characters (62 given)" in found[0]["last_error"]
        assert not [r for r in fake.requests if r.path.endswith(f"/NL/CPO/{site_id}")]


async def test_a_partner_registered_only_as_emsp_cannot_read_our_tokens(server):
    async with fake_partner(party_id="ROL") as fake:  # role EMSP
        await register_fake(server, fake)
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{ocpi(server)}/emsp/2.2.1/tokens", headers=tok(fake.token_c))
            assert r.status_code == 403 and r.json()["status_code"] == 2000
            assert "data" not in r.json() and "tokens module of our EMSP role" in r.json()["status_message"]
            r = await c.put(f"{ocpi(server)}/emsp/2.2.1/locations/DE/ROL/X1", json={}, headers=tok(fake.token_c))
            assert r.status_code == 403
            r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations", headers=tok(fake.token_c))
            assert r.status_code == 200 and r.json()["status_code"] == 1000


async def test_the_newest_registered_partners_token_wins_and_unregistered_ones_are_ignored(server):
    from plugins.roaming_ocpi.cpo import partner_tokens

    def token(pid: str, valid: bool) -> dict:
        return {"country_code": "DE", "party_id": pid, "uid": "04AABBCC", "type": "RFID",
                "contract_id": f"DE-{pid}-C1", "issuer": "x", "valid": valid, "whitelist": "ALLOWED",
                "last_updated": now()}

    async with fake_partner(party_id="OLD") as old, fake_partner(party_id="NEW") as new:
        await register_fake(server, old)
        async with httpx.AsyncClient() as c:
            r = await c.put(f"{ocpi(server)}/cpo/2.2.1/tokens/DE/OLD/04AABBCC", json=token("OLD", False),
                            headers=tok(old.token_c))
            assert r.status_code in (200, 201), r.text
            await register_fake(server, new)
            r = await c.put(f"{ocpi(server)}/cpo/2.2.1/tokens/DE/NEW/04AABBCC", json=token("NEW", True),
                            headers=tok(new.token_c))
            assert r.status_code in (200, 201), r.text
        new_id = await partner_id(server, "NEW")
        assert (await partner_tokens("04AABBCC", "RFID", "ANY-STATION"))[0]["partner"] == new_id
        old_id = await partner_id(server, "OLD")
        r = await server.api.delete(f"/roaming/partners/{old_id}")
        assert r.status_code == 200, r.text
        found = await partner_tokens("04AABBCC", "RFID", "ANY-STATION")
        assert [t["partner"] for t in found] == [new_id] and found[0]["payload"]["valid"] is True


async def test_charging_periods_add_up_to_the_totals():  # async: the module runs its tests on one loop
    from plugins.roaming_ocpi.cpo import _balanced, _hours, _kwh, _period

    start = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    periods: list[dict] = []
    for minutes, wh in ((10, 33.26), (20, 66.44), (30, 99.0)):
        end = start + timedelta(minutes=minutes)
        periods.append(_period(end - timedelta(minutes=10), periods, _kwh(wh), _hours(start, end)))
    energy = sum(Decimal(str(p["dimensions"][0]["volume"])) for p in periods)
    hours = sum(Decimal(str(p["dimensions"][1]["volume"])) for p in periods)
    assert energy == Decimal("0.099") and hours == Decimal("0.5")
    balanced = _balanced(periods, _kwh(99.4), _hours(start, start + timedelta(minutes=31)))  # CDR totals
    assert sum(Decimal(str(p["dimensions"][0]["volume"])) for p in balanced) == Decimal("0.0994")
    assert sum(Decimal(str(p["dimensions"][1]["volume"])) for p in balanced) == _hours(start, start + timedelta(minutes=31))


async def test_deep_nesting_is_2001_with_http_400(server):
    async with fake_partner(role="CPO", party_id="NST") as cpo:
        await register_fake(server, cpo)
        async with httpx.AsyncClient() as c:
            for method, path in (("PUT", "emsp/2.2.1/locations/DE/NST/L1"), ("POST", "emsp/2.2.1/cdrs")):
                r = await c.request(method, f"{ocpi(server)}/{path}", content=b"[" * 100_000 + b"]" * 100_000,
                                    headers={**tok(cpo.token_c), "content-type": "application/json"})
                assert r.status_code == 400 and r.json()["status_code"] == 2001, r.text


async def test_401_has_no_empty_routing_headers(server):
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations", headers=tok("nobody"))
        assert r.status_code == 401
        for name in ("ocpi-to-country-code", "ocpi-to-party-id"):
            assert r.headers.get(name, "missing") != ""
        r = await c.get(f"{ocpi(server)}/cpo/2.2.1/locations",
                        headers={**tok("nobody"), "OCPI-from-country-code": "DE", "OCPI-from-party-id": "XYZ"})
        assert r.headers["ocpi-to-country-code"] == "DE" and r.headers["ocpi-to-party-id"] == "XYZ"


async def test_a_broken_link_header_keeps_the_pages_received(server):
    async def script(record):
        if record.path == "/ocpi/2.2.1/tokens" and record.method == "GET":
            page = [{"uid": f"T{i}"} for i in range(50)]
            link = b'<ht!tp:/broken offset=50>; rel="next"' if "offset" not in record.query else b""
            return 200, {"status_code": 1000, "data": page, "timestamp": now()}, [(b"link", link)]
        return None

    async with fake_partner(role="CPO", party_id="LNK") as fake:
        await register_fake(server, fake)
        fake.script = script
        partner = await partner_row(await partner_id(server, "LNK"))
        items = await get_all(partner, f"{fake.base}/ocpi/2.2.1/tokens")
        assert len(items) == 50

        async def page_then_404(record):
            if record.path == "/ocpi/2.2.1/tokens" and record.method == "GET":
                link = f'<{fake.base}/ocpi/2.2.1/nothing?offset=50>; rel="next"'.encode()
                return 200, {"status_code": 1000, "data": [{"uid": "A"}], "timestamp": now()}, [(b"link", link)]
            return 404, {"status_code": 2000, "timestamp": now()}, []

        fake.script = page_then_404
        assert len(await get_all(partner, f"{fake.base}/ocpi/2.2.1/tokens")) == 1
