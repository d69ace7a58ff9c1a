"""Our CPO (both databases) against an independent OCPI 2.1.1 eMSP: the ``extrawest-ocpi`` package
(PyPI, ``py_ocpi``) in 2.1.1 mode, run in a virtualenv of its own (``extrawest_emsp211.py``; it
pins pydantic 1, so it cannot be installed in ours). We register with it (it offers only 2.1.1),
our Locations and Tariffs reach it, and a Session at our station is pushed to it: each is parsed
by its 2.1.1 pydantic models (a body they refuse parks the push), and what it parsed is checked.
Its CDR model deviates from the 2.1.1 text (``end_date_time`` for ``stop_date_time``): the CDR is
refused and parked, and checked against the 2.1.1 models of ocpi-types instead."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from csms.testing import free_port
from plugins.roaming_ocpi.tests.fake_partner import now
from plugins.roaming_ocpi.tests.stations import eventually, site_with_stations
from plugins.roaming_ocpi.tests.test_transport import ocpi

pytestmark = pytest.mark.asyncio(loop_scope="module")

VENV = Path(os.environ.get("EXTRAWEST_OCPI_VENV", "/tmp/csms-extrawest-ocpi-venv")).resolve()
SCRIPT = Path(__file__).with_name("extrawest_emsp211.py")


def _venv_python() -> Path:
    """A virtualenv with extrawest-ocpi and uvicorn (made once, reused)."""
    python = VENV / "bin" / "python"
    if not (VENV / ".ready").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", "extrawest-ocpi==2025.7.16",
                               "uvicorn==0.23.2"], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"extrawest-ocpi cannot be installed here: {done.stderr[-500:]}")
        (VENV / ".ready").touch()
    return python


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def extrawest(server, tmp_path_factory):
    python = await asyncio.to_thread(_venv_python)
    port = free_port()
    log = tmp_path_factory.mktemp("extrawest") / "server.log"
    process = subprocess.Popen([str(python), str(SCRIPT), str(port), "xw-token-a"], stdout=log.open("ab"),
                               stderr=subprocess.STDOUT, cwd=str(log.parent))
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as c:
            for _ in range(300):
                try:
                    if (await c.get("/store")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert process.poll() is None, log.read_text()[-3000:]
                await asyncio.sleep(0.1)
            # a tariff for every station (py_ocpi requires Connector.tariff_id, which 2.1.1 makes optional)
            r = await server.api.post("/billing/tariffs", json={"name": "Standard", "tariff": {
                "id": "XWT", "currency": "EUR", "elements": [{"price_components": [
                    {"type": "ENERGY", "price": 0.30, "vat": 21, "step_size": 1},
                    {"type": "TIME", "price": 1.20, "vat": 21, "step_size": 60}],
                    "restrictions": {"max_current": 32, "day_of_week": ["MONDAY", "TUESDAY"]}},
                    {"price_components": [{"type": "ENERGY", "price": 0.35, "vat": 21, "step_size": 1}]}]}})
            assert r.status_code == 201, r.text
            r = await server.api.post("/billing/assignments", json={"tariff": r.json()["id"]})
            assert r.status_code == 201, r.text
            r = await server.api.post("/roaming/partners", json={
                "name": "extrawest eMSP", "versions_url": f"{base}/ocpi/versions", "token": "xw-token-a",
                "role_211": "EMSP"})
            assert r.status_code == 201, r.text + log.read_text()[-3000:]
            site, stations = await site_with_stations(server, "Extrawest site", ["XW1"])
            yield c, r.json(), site, stations, log
            for st in stations:
                await st.close()
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 20)


async def test_registered_both_ways_in_211(server, extrawest):
    c, partner, *_ = extrawest
    assert partner["status"] == "registered" and partner["version"] == "2.1.1"
    assert (partner["country_code"], partner["party_id"]) == ("DE", "XWE")
    store = (await c.get("/store")).json()
    # it read our 2.1.1 versions and endpoints with our token B unencoded and kept our credentials
    assert store["credentials"]["party_id"] == "CPO" and store["credentials"]["country_code"] == "NL"
    assert {e["identifier"] for e in store["endpoints"]["endpoints"]} >= {"locations", "sessions", "cdrs", "tokens",
                                                                          "commands"}


async def test_locations_parsed_by_extrawest(server, extrawest):
    c, _, site, _, log = extrawest
    await server.api.post("/roaming/sync")

    async def parsed():
        return (await c.get("/store")).json()["locations"].get(str(site["id"]))
    loc = await eventually(parsed)
    assert loc["type"] == "UNKNOWN" and loc["address"] == "Damrak 1" and loc["country"] == "NLD"

    async def tariff_parsed():
        return (await c.get("/store")).json()["tariffs"].get("XWT")
    tariff = await eventually(tariff_parsed)
    assert "vat" not in tariff["elements"][0]["price_components"][0]
    assert "max_current" not in (tariff["elements"][0].get("restrictions") or {})
    failed = (await server.api.get("/roaming/outbox", params={"status": "failed"})).json()["items"]
    assert not failed, failed


async def test_session_and_cdr_parsed_by_extrawest(server, extrawest):
    c, partner, site, stations, log = extrawest
    our_token = (await c.get("/store")).json()["credentials"]["token"]  # what it calls us with
    token = {"uid": "XWCARD1", "type": "RFID", "auth_id": "DE-XWE-C00001", "issuer": "extrawest",
             "valid": True, "whitelist": "ALLOWED", "last_updated": now()}
    async with httpx.AsyncClient() as h:
        r = await h.put(f"{ocpi(server)}/cpo/2.1.1/tokens/DE/XWE/XWCARD1", json=token,
                        headers={"Authorization": f"Token {our_token}"})
    assert r.status_code in (200, 201), r.text
    st = stations[0]
    assert await st.authorize("XWCARD1") == "Accepted"
    await st.start_session(1, "XWCARD1")
    await st.meter_values(1, advance_s=600)
    await st.stop_session(1)

    async def session_parsed():
        found = (await c.get("/store")).json()["sessions"]
        return [x for x in found.values() if x.get("status") == "COMPLETED"]
    session = (await eventually(session_parsed, timeout=20))[0]
    assert session["auth_id"] == "DE-XWE-C00001" and session["location"]["id"] == str(site["id"])
    assert session["location"]["evses"][0]["uid"] == "XW1*1" and float(session["kwh"]) > 0
    assert session["location"]["evses"][0]["connectors"][0]["tariff_id"] == "XWT"
    # The CDR: py_ocpi's 2.1.1 model names the end `end_date_time` (the 2.1.1 text, mod_cdrs 3.1,
    # says `stop_date_time`), so it refuses the CDR (HTTP 422) and the push is parked, not lost.
    # What we sent is a valid 2.1.1 CDR.

    async def cdr_parked():
        items = (await server.api.get("/roaming/outbox", params={"status": "failed"})).json()["items"]
        return [i for i in items if i["module"] == "cdrs"]
    parked = (await eventually(cdr_parked, timeout=20))[0]
    assert "422" in parked["last_error"]
    assert not (await c.get("/store")).json()["cdrs"]
    from plugins.roaming_ocpi import v211
    from plugins.roaming_ocpi.tests.ocpi_check import assert_valid_211
    partner_row = {**partner, "role_211": "EMSP"}
    sent = await v211.down("cdrs", [], "POST", parked["body"],
                           lambda loc: v211.our_location(partner_row, loc))
    assert_valid_211("CDR", sent)
    assert sent["stop_date_time"] and sent["location"]["evses"][0]["connectors"][0]["tariff_id"] == "XWT"


async def test_extrawest_pushes_a_token_to_us(server, extrawest):
    """extrawest-ocpi as a 2.1.1 Sender: its own push (``POST /push/2.1.1``) reads our 2.1.1
    version details with the token we gave it, PUTs its Token to our Tokens Receiver (parsed from
    its 2.1.1 model, optional fields as null), and the token charges at our station."""
    c, partner, site, stations, log = extrawest
    our_token = (await c.get("/store")).json()["credentials"]["token"]
    token = {"uid": "XWPUSH01", "type": "RFID", "auth_id": "DE-XWE-C00002", "issuer": "extrawest",
             "valid": True, "whitelist": "ALWAYS", "last_updated": now()}
    assert (await c.put("/store/tokens/XWPUSH01", json=token)).status_code == 200
    r = await c.post("/push/2.1.1", headers={"Authorization": "Token xw-token-c"}, json={
        "module_id": "tokens", "object_id": "XWPUSH01",
        "receivers": [{"endpoints_url": f"{ocpi(server)}/2.1.1", "auth_token": our_token}]})
    assert r.status_code == 200, r.text + log.read_text()[-3000:]
    answer = r.json()["receiver_responses"][0]
    assert answer["status_code"] == 201 and answer["response"]["status_code"] == 1000, answer
    stored = (await server.api.get("/roaming/tokens", params={"token": "XWPUSH01"})).json()["items"]
    assert [(x["partner"], x["country_code"], x["party_id"]) for x in stored] == [(partner["id"], "DE", "XWE")]
    assert stored[0]["object"]["contract_id"] == "DE-XWE-C00002"
    assert await stations[0].authorize("XWPUSH01") == "Accepted"
    # pushed again with a change (blocked): the stored token follows, and refuses
    token = {**token, "valid": False, "last_updated": now()}
    assert (await c.put("/store/tokens/XWPUSH01", json=token)).status_code == 200
    r = await c.post("/push/2.1.1", headers={"Authorization": "Token xw-token-c"}, json={
        "module_id": "tokens", "object_id": "XWPUSH01",
        "receivers": [{"endpoints_url": f"{ocpi(server)}/2.1.1", "auth_token": our_token}]})
    assert r.json()["receiver_responses"][0]["status_code"] == 200, r.text
    assert await stations[0].authorize("XWPUSH01") == "Invalid"
