"""The billing admin pages and panels, as a logged-in operator sees them over HTTP."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx
from piccolo.apps.user.tables import BaseUser

from csms.testing import SESSION_COOKIE, login, set_role
from plugins.billing.tests.helpers import FLAT_AND_ENERGY, Session, minutes_ago, session_id_of, settled, station


async def operator_client(srv) -> httpx.AsyncClient:
    user = await BaseUser.create_user(username="olga", password="a-long-password-1", active=True)
    await set_role(user.id, "operator")
    session = await login("olga", "a-long-password-1")
    client = httpx.AsyncClient(base_url=srv.base_url, timeout=30, follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, session.token)
    return client


async def post_form(client: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.Response:
    if "csms_csrftoken" not in client.cookies:
        await client.get("/admin/billing")
    return await client.post(path, data={**data, "_csrf_token": client.cookies["csms_csrftoken"]})


async def test_tariff_pages_preview_and_panels(server):
    client = await operator_client(server)
    try:
        page = await client.get("/admin/billing")
        assert page.status_code == 200 and "No tariffs yet" in page.text
        assert 'href="/admin/billing"' in page.text  # in the admin's navigation

        bad = await post_form(client, "/admin/billing/tariffs/new", {"name": "Broken", "ocpi": json.dumps(
            {"id": "B", "currency": "eur", "elements": []})})
        assert bad.status_code == 400 and "Nothing was saved" in bad.text and "ISO 4217" in bad.text
        made = await post_form(client, "/admin/billing/tariffs/new",
                               {"name": "Standard", "ocpi": json.dumps(FLAT_AND_ENERGY)})
        assert made.status_code == 303
        detail_url = made.headers["location"]
        tariff_id = int(detail_url.rsplit("/", 1)[1])
        detail = await client.get(detail_url)
        assert detail.status_code == 200 and "Price calculator" in detail.text and "Standard" in detail.text

        preview = await client.get(f"/admin/billing/tariffs/{tariff_id}/preview", headers={"HX-Request": "true"},
                                   params={"energy_kwh": "20", "duration_min": "120", "start": "2026-11-27T18:00",
                                           "timezone": "Europe/Amsterdam"})
        assert preview.status_code == 200 and "<html" not in preview.text
        assert re.search(r'data-testid="preview-total">\s*8\.47 EUR', preview.text)  # 20 x 0.30 + 1.00, +21 %

        assigned = await post_form(client, "/admin/billing/assignments", {"tariff": str(tariff_id),
                                                                          "back": detail_url})
        assert assigned.status_code == 303
        clash = await post_form(client, "/admin/billing/assignments", {"tariff": str(tariff_id)})
        assert clash.status_code == 409 and "Conflicts with assignment" in clash.text

        started = minutes_ago(30)
        async with station(server, "CP-ADM", "2.0.1") as cp:
            s = Session(cp, "2.0.1", "CARD-A", tx="adm")
            await s.start(started, 1000)
            await s.meter(started + timedelta(minutes=5), 6000)
            sid = await session_id_of(server, "CP-ADM")
            live = await client.get(f"/admin/sessions/{sid}")
            assert live.status_code == 200 and "So far (live)" in live.text and "3.03 EUR" in live.text
            st_page = await client.get("/admin/stations/CP-ADM")
            assert st_page.status_code == 200 and "Tariff in force" in st_page.text and "STD" in st_page.text
            await s.stop(started + timedelta(minutes=10), 11000)
        await settled(server, sid)
        done = await client.get(f"/admin/sessions/{sid}")
        assert "Settled" in done.text and "4.84 EUR" in done.text

        settlements = await client.get("/admin/billing/settlements")
        assert settlements.status_code == 200 and "customer" in settlements.text and "4.84" in settlements.text
        run = await post_form(client, "/admin/billing/settlements/run", {
            "from": minutes_ago(60).strftime("%Y-%m-%dT%H:%M"), "to": minutes_ago(-60).strftime("%Y-%m-%dT%H:%M")})
        assert run.status_code == 200 and "1 already settled and left alone" in run.text
        statements = await client.get("/admin/billing/statements")
        assert statements.status_code == 200 and "Issue a statement" in statements.text
        homes = await client.get("/admin/billing/home-stations")
        assert homes.status_code == 200 and "Register a home station" in homes.text
    finally:
        await client.aclose()


async def test_billing_pages_need_a_login(server):
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        r = await anonymous.get("/admin/billing")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_refusals_are_html_pages_with_the_message_at_the_field(server):
    """Every billing form's refusal: HTML (never JSON), the right status, the message next to its
    field, what was typed kept."""
    client = await operator_client(server)
    try:
        made = await post_form(client, "/admin/billing/tariffs/new",
                               {"name": "Standard", "ocpi": json.dumps(FLAT_AND_ENERGY)})
        tariff_id = int(made.headers["location"].rsplit("/", 1)[1])
        await post_form(client, "/admin/billing/assignments", {"tariff": str(tariff_id)})
        answers = {
            "bad json": (await post_form(client, "/admin/billing/tariffs/new", {"name": "B", "ocpi": "{"}), 400,
                         'id="err-ocpi"'),
            "archive in use": (await post_form(client, f"/admin/billing/tariffs/{tariff_id}/archive", {}), 409, ""),
            "bad evse": (await post_form(client, "/admin/billing/assignments", {
                "tariff": str(tariff_id), "station_id": "", "evse_id": "one", "note": "kept"}), 400, 'id="err-evse_id"'),
            "home rate": (await post_form(client, "/admin/billing/home-stations", {
                "station_id": "NOPE", "rate_per_kwh": "-1"}), 400, 'id="err-station_id"'),
            "run period": (await post_form(client, "/admin/billing/settlements/run", {"from": "yesterday", "to": ""}),
                           400, 'id="err-from"'),
            "no party": (await post_form(client, "/admin/billing/statements", {"party": "", "month": "2020-01"}),
                         400, 'id="err-party"'),
            "bad month": (await post_form(client, "/admin/billing/statements", {"party": "driver:1", "month": "May"}),
                          400, 'id="err-month"'),
            "void unknown": (await post_form(client, "/admin/billing/statements/999/void", {}), 404, ""),
        }
        for what, (r, status, marker) in answers.items():
            assert r.status_code == status, (what, r.status_code, r.text[:300])
            assert r.headers["content-type"].startswith("text/html"), (what, r.headers["content-type"])
            assert marker in r.text, (what, r.text)
        assert 'value="kept"' in answers["bad evse"][0].text and 'value="May"' in answers["bad month"][0].text
    finally:
        await client.aclose()
