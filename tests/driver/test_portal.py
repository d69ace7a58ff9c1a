"""The driver portal over HTTP: sign-in by one-time e-mail link and by password, the same answer
for any address, rate limits, separate cookies, CSRF, and a driver who tries another's ids."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from csms.admin.auth import SESSION_COOKIE
from csms.core.tables import AuditEntry, ChargingSession, DriverSecret, IdToken
from csms.core.timeutil import utcnow
from csms.driver import DRIVER_COOKIE
from csms.testing import admin_client
from csms.testing.stations import station
from tests.driver.conftest import ask_link, csrf_of, make_driver, open_link, signed_in_driver
from tests.test_local_lists import keeper
from tests.test_ocpp_rpc_strict import eventually


@pytest.fixture(autouse=True)
def quick_lists(monkeypatch):
    monkeypatch.setenv("CSMS_LOCAL_LISTS_DEBOUNCE_S", "0.3")
    monkeypatch.setenv("CSMS_LOCAL_LISTS_CONNECT_DELAY_S", "0.1")


async def test_a_link_signs_in_once_and_any_address_gets_the_same_answer(any_server, mailbox):
    server = any_server
    await make_driver(server, "Ada", "Ada@Example.org", "CARD-ADA")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        known = await ask_link(client, "ada@example.org")
        unknown = await ask_link(client, "nobody@example.org")
        assert known.status_code == unknown.status_code == 200
        assert known.text.replace("ada@example.org", "X") == unknown.text.replace("nobody@example.org", "X")
        url = await mailbox.link_for("Ada@Example.org")
        assert not mailbox.to("nobody@example.org")

        assert (await client.get("/driver/cards")).headers["location"] == "/driver"  # not signed in yet
        done = await open_link(client, url)
        assert done.status_code == 303 and done.headers["location"] == "/driver/cards"
        cookie = done.headers["set-cookie"]
        assert f"{DRIVER_COOKIE}=" in cookie and "Path=/driver" in cookie and "HttpOnly" in cookie
        cards = await client.get("/driver/cards")
        assert cards.status_code == 200 and "CARD-ADA" in cards.text

        again = httpx.AsyncClient(base_url=server.base_url)
        assert (await open_link(again, url)).status_code == 404  # used once already
        await again.aclose()

    async with httpx.AsyncClient(base_url=server.base_url) as late:
        mailbox.messages.clear()
        await ask_link(late, "ada@example.org")
        stale = await mailbox.link_for("Ada@Example.org")
        assert stale != url
        await DriverSecret.update({DriverSecret.expires_at: utcnow() - timedelta(seconds=1)}).where(
            DriverSecret.kind == "link")
        assert (await open_link(late, stale)).status_code == 404  # expired
        assert (await late.get("/driver/cards")).status_code == 303


async def test_link_requests_are_limited_per_address_whether_it_exists_or_not(server, mailbox):
    await make_driver(server, "Bo", "bo@example.org")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        for address in ("bo@example.org", "ghost@example.org"):
            answers = [(await ask_link(client, address)).status_code for _ in range(4)]
            assert answers == [200, 200, 200, 429], (address, answers)
        assert (await ask_link(client, "other@example.org")).status_code == 200  # another address is not held up


async def test_password_after_a_link_sign_in(any_server, mailbox):
    server = any_server
    await make_driver(server, "Cy", "cy@example.org", "CARD-CY")
    client = await signed_in_driver(server, mailbox, "cy@example.org")
    page = await client.get("/driver/account")
    short = await client.post("/driver/account", data={"password": "short", "repeat": "short",
                                                       "_csrf_token": csrf_of(page.text)})
    assert short.status_code == 422 and "at least 10" in short.text
    saved = await client.post("/driver/account", data={"password": "a long secret 1", "repeat": "a long secret 1",
                                                       "_csrf_token": csrf_of(page.text)})
    assert saved.status_code == 303
    assert (await client.get("/driver/cards")).status_code == 200  # a fresh session came with the new password
    out = await client.post("/driver/signout", data={"_csrf_token": csrf_of(page.text)})
    assert out.status_code == 303
    assert (await client.get("/driver/cards")).status_code == 303
    await client.aclose()

    async with httpx.AsyncClient(base_url=server.base_url) as fresh:
        token = csrf_of((await fresh.get("/driver")).text)
        wrong = await fresh.post("/driver/login", data={"email": "cy@example.org", "password": "not the one 1",
                                                        "_csrf_token": token})
        nobody = await fresh.post("/driver/login", data={"email": "none@example.org", "password": "a long secret 1",
                                                         "_csrf_token": token})
        assert wrong.status_code == nobody.status_code == 401
        assert wrong.text.replace("cy@example.org", "X") == nobody.text.replace("none@example.org", "X")
        right = await fresh.post("/driver/login", data={"email": "CY@example.org ", "password": "a long secret 1",
                                                        "_csrf_token": token})
        assert right.status_code == 303 and right.headers["location"] == "/driver/cards"
        assert "CARD-CY" in (await fresh.get("/driver/cards")).text


async def test_report_lost_blocks_the_card_through_the_audited_path(server, mailbox):
    driver_id, (pk,) = await make_driver(server, "Di", "di@example.org", "CARD-DI")
    client = await signed_in_driver(server, mailbox, "di@example.org")
    page = await client.get("/driver/cards")
    refused = await client.post(f"/driver/cards/{pk}/lost")  # no CSRF token
    assert refused.status_code == 403
    assert (await IdToken.select(IdToken.status).where(IdToken.id == pk).first())["status"] == "Accepted"

    lost = await client.post(f"/driver/cards/{pk}/lost", data={"_csrf_token": csrf_of(page.text)},
                             headers={"HX-Request": "true"})
    assert lost.status_code == 200 and "Blocked" in lost.text and "Report lost" not in lost.text
    assert (await IdToken.select(IdToken.status).where(IdToken.id == pk).first())["status"] == "Blocked"
    entry = await AuditEntry.select().where(AuditEntry.object_id == "CARD-DI").order_by(
        AuditEntry.id, ascending=False).first()
    assert entry["actor"] == f"driver:{driver_id}" and entry["summary"] == "reported lost by its driver"
    assert (await server.api.get("/tokens/CARD-DI")).json()["status"] == "Blocked"

    named = await client.post(f"/driver/cards/{pk}/name", data={"label": "  blue   fob ",
                                                                "_csrf_token": csrf_of(page.text)})
    assert named.status_code == 303
    assert (await IdToken.select(IdToken.label).where(IdToken.id == pk).first())["label"] == "blue fob"
    await client.aclose()


async def test_a_card_reported_lost_reaches_the_stations_local_list(server, mailbox):
    _, (pk,) = await make_driver(server, "Gus", "gus@example.org", "CARD-GUS")
    async with keeper(server, "CP-LIST", "1.6") as cp:
        await eventually(lambda: cp.entries.get("CARD-GUS", {}).get("status") == "Accepted", what="card on the list")
        client = await signed_in_driver(server, mailbox, "gus@example.org")
        token = csrf_of((await client.get("/driver/cards")).text)
        assert (await client.post(f"/driver/cards/{pk}/lost", data={"_csrf_token": token})).status_code == 303
        await eventually(lambda: cp.entries["CARD-GUS"].get("status") == "Blocked", what="blocked on the list")
        assert cp.updates[-1][0] == "Differential"
        await client.aclose()


async def test_a_driver_sees_and_touches_only_their_own_cards_and_sessions(server, mailbox):
    """The probe: signed in as A, every driver route with B's ids answers 404 and changes nothing."""
    await make_driver(server, "Ann", "ann@example.org", "CARD-ANN")
    _, (b_card,) = await make_driver(server, "Ben", "ben@example.org", "CARD-BEN")
    async with station(server, "CP-PROBE", "1.6") as cp:
        tx = await cp.start_session("CARD-BEN")
        await cp.stop_session(tx)
        live_tx = await cp.start_session("CARD-BEN")
    b_sessions = [r["id"] for r in await ChargingSession.select(ChargingSession.id).where(
        ChargingSession.id_token == "CARD-BEN")]
    assert len(b_sessions) == 2 and live_tx

    ann = await signed_in_driver(server, mailbox, "ann@example.org")
    token = csrf_of((await ann.get("/driver/cards")).text)
    probes = [("POST", f"/driver/cards/{b_card}/name"), ("POST", f"/driver/cards/{b_card}/lost")]
    for sid in b_sessions:
        probes += [("GET", f"/driver/sessions/{sid}"), ("GET", f"/driver/sessions/{sid}/live")]
    probes += [("GET", "/driver/sessions/999999"), ("POST", "/driver/cards/999999/lost")]
    for method, path in probes:
        answer = await ann.request(method, path, data={"_csrf_token": token, "label": "mine now"}
                                   if method == "POST" else None)
        assert answer.status_code == 404, (method, path, answer.status_code)
    card = await IdToken.select(IdToken.status, IdToken.label).where(IdToken.id == b_card).first()
    assert card == {"status": "Accepted", "label": ""}
    mine = (await ann.get("/driver/cards")).text + (await ann.get("/driver/sessions")).text
    assert "CARD-BEN" not in mine and "CP-PROBE" not in mine

    ben = await signed_in_driver(server, mailbox, "ben@example.org")
    listing = await ben.get("/driver/sessions")
    assert listing.status_code == 200 and listing.text.count("/driver/sessions/") == 2
    for sid in b_sessions:
        assert (await ben.get(f"/driver/sessions/{sid}")).status_code == 200
    await ann.aclose()
    await ben.aclose()


async def test_driver_and_operator_cookies_grant_nothing_on_the_other_side(server, mailbox):
    await make_driver(server, "Eve", "eve@example.org", "CARD-EVE")
    driver = await signed_in_driver(server, mailbox, "eve@example.org")
    secret = driver.cookies.get(DRIVER_COOKIE)
    async with httpx.AsyncClient(base_url=server.base_url, cookies={DRIVER_COOKIE: secret}) as stray:
        admin_page = await stray.get("/admin/tokens")
        assert admin_page.status_code in (302, 303) and "/login" in admin_page.headers["location"]
        assert (await stray.get("/api/v1/tokens")).status_code == 401
    operator = await admin_client(server, "admin")
    assert (await operator.get("/admin/tokens")).status_code == 200
    assert (await operator.get("/driver/cards")).headers["location"] == "/driver"
    async with httpx.AsyncClient(base_url=server.base_url,
                                 cookies={SESSION_COOKIE: operator.cookies.get(SESSION_COOKIE)}) as on_driver:
        assert (await on_driver.get("/driver/sessions")).status_code == 303
    await operator.aclose()
    await driver.aclose()


async def test_without_mail_the_portal_says_so_for_any_address(server):
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        assert "Send me a link" not in (await client.get("/driver")).text
        answer = await ask_link(client, "anyone@example.org")
        assert answer.status_code == 503 and "password" in answer.text


async def test_mailed_links_start_with_the_public_url_whatever_the_host_header(tmp_path, mailbox):
    """With ``public_url`` set, a forged Host header cannot send a driver a link to another site."""
    from csms.testing import running_server

    async with running_server(tmp_path, public_url="https://csms.example.com/") as server:
        await make_driver(server, "Flo", "flo@example.org")
        async with httpx.AsyncClient(base_url=server.base_url, headers={"Host": "evil.example"}) as client:
            assert (await ask_link(client, "flo@example.org")).status_code == 200
        url = await mailbox.link_for("flo@example.org")
        assert url.startswith("https://csms.example.com/driver/link/"), url


async def test_links_asked_at_the_same_moment_make_one_account(server, mailbox):
    """Two links made for one driver at the same moment (the mail is sent after the answer, so
    requests overlap): two links, one account row, no unique-constraint error."""
    import asyncio

    from csms.core import driver_accounts as accounts
    from csms.core.tables import DriverAccount

    driver, _ = await make_driver(server, "Ric", "ric@example.org")
    first, second = await asyncio.gather(accounts.new_link(driver), accounts.new_link(driver))
    assert first != second
    assert await DriverAccount.count().where(DriverAccount.driver == driver) == 1
