"""Start a charge by QR code over HTTP, with real test stations (1.6 and 2.0.1) that accept a
remote start and start the transaction: signed out to the sign-in and back (link and password),
the start and the session it makes, each refusal (station rejects, offline, EVSE in use, card
blocked, a card of someone else), unknown and unpublished codes, CSRF, the rate limit, audit."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

import httpx
import pytest

from csms.admin.qr_labels import start_path
from csms.core import driver_accounts as accounts
from csms.core.tables import AuditEntry, ChargingSession, IdToken, Site, Station
from csms.driver.start import START_LIMIT
from csms.testing import pm
from tests.driver.conftest import csrf_of, make_driver, open_link
from tests.driver.qr_kit import START_LINK, TariffText, offline, published_site, qr_station
from tests.test_ocpp_rpc_strict import eventually

PASSWORD = "a long secret 1"


async def password_client(srv, email: str, driver_id: int) -> httpx.AsyncClient:
    """A client signed in by password (set directly), not following redirects."""
    await accounts.set_password(driver_id, PASSWORD)
    client = httpx.AsyncClient(base_url=srv.base_url, timeout=30)
    token = csrf_of((await client.get("/driver")).text)
    done = await client.post("/driver/login", data={"email": email, "password": PASSWORD, "_csrf_token": token})
    assert done.status_code == 303, done.text
    return client


async def start(client: httpx.AsyncClient, path: str, card: int | None, *, htmx: bool = True) -> httpx.Response:
    page = await client.get(path)
    data = {"_csrf_token": csrf_of(page.text)}
    if card is not None:
        data["card"] = str(card)
    return await client.post(path, data=data, headers={"HX-Request": "true"} if htmx else {})


async def follow_progress(client: httpx.AsyncClient, answer: httpx.Response) -> int:
    """Poll the progress fragment the accepted answer names until the session shows; its id."""
    poll = re.search(r'hx-get="([^"]+/progress\?[^"]+)"', answer.text)
    assert poll, answer.text

    async def started() -> int | None:
        fragment = await client.get(poll.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"})
        assert fragment.status_code == 200, fragment.text
        found = re.search(r'href="/driver/sessions/(\d+)"', fragment.text)
        return int(found.group(1)) if found else None

    return await eventually(started, timeout=15, what="the session started")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_signed_out_to_sign_in_and_back_then_start_and_see_the_session(server, mailbox, version):
    site = await published_site()
    driver_id, (card,) = await make_driver(server, "Qi", "qi@example.org", "CARD-QI")
    pm.register(TariffText(), name="test-qr-tariff")
    try:
        async with qr_station(server, "CP-QR", version, site=site) as cp:
            path = start_path("CP-QR", 1)
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
                away = await client.get(path)
                assert away.status_code == 303 and away.headers["location"] == f"/driver?next={quote(path, safe='')}"
                sign_in = await client.get(away.headers["location"])
                assert "Sign in to start charging" in sign_in.text
                assert f'name="next" value="{path}"' in sign_in.text
                asked = await client.post("/driver/link", data={"email": "qi@example.org", "next": path,
                                                                "_csrf_token": csrf_of(sign_in.text)})
                assert asked.status_code == 200
                await mailbox.link_for("qi@example.org")
                mailed = START_LINK.search(mailbox.to("qi@example.org")[-1].get_content()).group(1)
                assert unquote(mailed.split("?next=")[1]) == path
                back = await open_link(client, mailed)
                assert back.status_code == 303 and back.headers["location"] == path

                page = await client.get(path)
                assert page.status_code == 200
                assert "CP-QR · EVSE 1" in page.text and "Harbour depot" in page.text
                assert 'data-status="Available"' in page.text
                assert "0.39 EUR per kWh incl. VAT" in page.text  # the pricing hook's text
                assert f'name="card" value="{card}"' in page.text  # the only card, chosen already

                refused = await client.post(path, data={"card": str(card)})  # no CSRF token
                assert refused.status_code == 403 and not cp.remote_starts

                answer = await start(client, path, card)
                assert answer.status_code == 200 and 'data-outcome="accepted"' in answer.text, answer.text
                assert len(cp.remote_starts) == 1
                sent = cp.remote_starts[0]
                if version == "1.6":
                    assert sent == {"id_tag": "CARD-QI", "connector_id": 1}
                else:
                    assert sent["id_token"] == {"id_token": "CARD-QI", "type": "ISO14443"} and sent["evse_id"] == 1
                session_id = await follow_progress(client, answer)
                row = await ChargingSession.select().where(ChargingSession.id == session_id).first()
                assert row["driver"] == driver_id and row["id_token"] == "CARD-QI" and row["state"] == "active"
                live = await client.get(f"/driver/sessions/{session_id}")
                assert live.status_code == 200 and "Charging now" in live.text

                status = await client.get(f"{path}/status")
                assert 'data-status="Charging"' in status.text or 'data-status="Occupied"' in status.text
                again = await start(client, path, card)  # the driver's own session runs here already
                assert 'data-outcome="started"' in again.text and f"/driver/sessions/{session_id}" in again.text
                assert len(cp.remote_starts) == 1

        entry = await AuditEntry.select().where(AuditEntry.action == "remote_start").first()
        assert entry["actor"] == f"driver:{driver_id}" and entry["object_id"] == "CP-QR"
        assert "EVSE 1" in entry["summary"] and "CARD-QI" in entry["summary"] and "Accepted" in entry["summary"]
    finally:
        pm.unregister(name="test-qr-tariff")


async def test_password_sign_in_goes_back_and_next_never_leaves_the_portal(server):
    driver_id, _ = await make_driver(server, "Pia", "pia@example.org", "CARD-PIA")
    await accounts.set_password(driver_id, PASSWORD)
    path = start_path("CP-ANY", 2)
    for next_value, expected in [(path, path), ("https://evil.example/x", "/driver/cards"),
                                 ("//evil.example/driver/x", "/driver/cards"), ("/admin/stations", "/driver/cards"),
                                 ("/driver/../admin", "/driver/cards")]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            page = await client.get("/driver", params={"next": next_value})
            if expected == "/driver/cards":
                assert 'name="next"' not in page.text
            done = await client.post("/driver/login", data={"email": "pia@example.org", "password": PASSWORD,
                                                            "next": next_value, "_csrf_token": csrf_of(page.text)})
            assert done.status_code == 303 and done.headers["location"] == expected, (next_value, done.headers)
            signed_in = await client.get("/driver", params={"next": next_value})
            assert signed_in.headers["location"] == expected


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_each_refusal_is_told_and_nothing_is_sent_that_should_not_be(server, version):
    site = await published_site()
    driver_id, (card, blocked) = await make_driver(server, "Ros", "ros@example.org", "CARD-ROS", "CARD-ROS-2")
    _, (others,) = await make_driver(server, "Sam", "sam@example.org", "CARD-SAM")
    await IdToken.update({IdToken.status: "Blocked"}).where(IdToken.id == blocked)
    client = await password_client(server, "ros@example.org", driver_id)
    path = start_path("CP-NO", 1)
    async with qr_station(server, "CP-NO", version, site=site) as cp:
        page = await client.get(path)
        assert "CARD-ROS-2" not in page.text  # only active cards are offered

        cp.start_answer = "Rejected"
        rejected = await start(client, path, card)
        assert rejected.status_code == 409 and 'data-outcome="rejected"' in rejected.text
        assert "refused" in rejected.text and len(cp.remote_starts) == 1

        not_mine = await start(client, path, others)
        assert not_mine.status_code == 404 and "not one of yours" in not_mine.text
        assert (await start(client, path, None)).status_code == 404
        was_blocked = await start(client, path, blocked)
        assert was_blocked.status_code == 409 and "is blocked" in was_blocked.text
        assert len(cp.remote_starts) == 1  # none of these reached the station

        cp.start_answer = "Accepted"
        tx = await cp.start_session("CARD-SAM")  # someone else charges on EVSE 1
        occupied = await start(client, path, card, htmx=False)  # a plain form post: the whole page
        assert occupied.status_code == 409 and 'data-outcome="occupied"' in occupied.text
        assert "<h1>Start charging</h1>" in occupied.text and len(cp.remote_starts) == 1
        await cp.stop_session(tx)
        await report_free(cp)

        assert (await client.get(f"{path}/status")).status_code == 200
    offline_page = await client.get(path)
    assert 'data-status="Offline"' in offline_page.text
    answer = await client.post(path, data={"card": str(card), "_csrf_token": csrf_of(offline_page.text)},
                               headers={"HX-Request": "true"})
    assert answer.status_code == 503 and 'data-outcome="offline"' in answer.text

    entries = await AuditEntry.select(AuditEntry.actor, AuditEntry.summary).where(
        AuditEntry.action == "remote_start")
    assert len(entries) == 1 and entries[0]["actor"] == f"driver:{driver_id}" and "Rejected" in entries[0]["summary"]
    await client.aclose()


async def report_free(cp) -> None:
    from tests.driver.qr_kit import report_available

    await report_available(cp)


async def test_unknown_and_unpublished_codes_answer_the_same_friendly_404(server):
    published, hidden = await published_site(), await published_site("Hidden yard", publish=False)
    driver_id, (card,) = await make_driver(server, "Una", "una@example.org", "CARD-UNA")
    client = await password_client(server, "una@example.org", driver_id)
    async with qr_station(server, "CP-PUB", "1.6", site=published), \
            qr_station(server, "CP-HID", "1.6", site=hidden) as hidden_cp, \
            qr_station(server, "CP-NOSITE", "1.6"):
        assert (await client.get(start_path("CP-PUB", 1))).status_code == 200
        for path in (start_path("CP-PUB", 2), start_path("CP-PUB", 0), start_path("CP-HID", 1),
                     start_path("CP-NOSITE", 1), start_path("CP-NOWHERE", 1)):
            page = await client.get(path)
            assert page.status_code == 404 and "There is no charger with this code" in page.text, path
            assert "<h1>Not found</h1>" in page.text and "Hidden yard" not in page.text
            for sub in ("/status", f"/progress?card={card}&since=0"):
                assert (await client.get(path + sub)).status_code == 404
            token = csrf_of((await client.get("/driver/cards")).text)
            posted = await client.post(path, data={"card": str(card), "_csrf_token": token})
            assert posted.status_code == 404
        assert not hidden_cp.remote_starts
        await Station.update({Station.registration_status: "Pending"}).where(Station.station_id == "CP-PUB")
        assert (await client.get(start_path("CP-PUB", 1))).status_code == 404
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:  # signed out: no oracle at all
        for path in (start_path("CP-PUB", 1), start_path("CP-NOWHERE", 1)):
            away = await anonymous.get(path)
            assert away.status_code == 303 and away.headers["location"].startswith("/driver?next=")
    assert await Site.exists().where(Site.id == hidden)
    await client.aclose()


async def test_starts_are_limited_per_driver(server):
    site = await published_site()
    driver_id, (card,) = await make_driver(server, "Lim", "lim@example.org", "CARD-LIM")
    other_id, (other_card,) = await make_driver(server, "Oli", "oli@example.org", "CARD-OLI")
    client = await password_client(server, "lim@example.org", driver_id)
    other = await password_client(server, "oli@example.org", other_id)
    async with qr_station(server, "CP-LIM", "2.0.1", site=site) as cp:
        cp.start_answer = "Rejected"
        path = start_path("CP-LIM", 1)
        answers = [(await start(client, path, card)).status_code for _ in range(START_LIMIT + 1)]
        assert answers == [409] * START_LIMIT + [429], answers
        assert len(cp.remote_starts) == START_LIMIT
        assert (await start(other, path, other_card)).status_code == 409  # another driver is not held up
    await client.aclose()
    await other.aclose()


async def test_offline_station_right_after_it_goes(server):
    """The station's socket closes: the page says offline and the start is not sent."""
    site = await published_site()
    driver_id, (card,) = await make_driver(server, "Off", "off@example.org", "CARD-OFF")
    client = await password_client(server, "off@example.org", driver_id)
    async with qr_station(server, "CP-OFF", "1.6", site=site):
        page = await client.get(start_path("CP-OFF", 1))
        assert 'data-status="Available"' in page.text
    assert await offline("CP-OFF")
    answer = await start(client, start_path("CP-OFF", 1), card)
    assert answer.status_code == 503 and "offline" in answer.text
    await client.aclose()
