"""Transactions a station will not end: an operator's force-close (REST and admin), with the
last stored meter reading as the end meter and ``session.stopped`` heard exactly once."""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call as call16
from playwright.async_api import expect

from csms.core import events as ev
from csms.core.tables import AuditEntry, ChargingSession
from csms.testing import admin_browser, screenshot
from csms.testing.stations import now_iso, station


async def charging_session(server, sid: str, version: str, cp) -> int:
    r = await server.api.post("/tokens", json={"id_token": f"{sid}-TAG", "type": "ISO14443"})
    assert r.status_code == 201, r.text
    tx = await cp.start_session(f"{sid}-TAG")
    if version == "1.6":
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
            {"timestamp": now_iso(), "sampled_value": [{"value": "1750", "measurand": "Energy.Active.Import.Register"}]}]))
    return tx


def stopped_events(server) -> list[ev.SessionStopped]:
    heard: list[ev.SessionStopped] = []
    server.core.events.listen(lambda e: heard.append(e) if isinstance(e, ev.SessionStopped) else None)
    return heard


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_force_close_over_rest(server, version):
    sid = f"STUCK{version.replace('.', '')}"
    heard = stopped_events(server)
    async with station(server, sid, version) as cp:
        tx = await charging_session(server, sid, version, cp)
        session_id = (await server.api.get("/sessions", params={"station": sid})).json()["items"][0]["id"]
        closes = await asyncio.gather(*(server.api.post(f"/sessions/{session_id}/close") for _ in range(3)))
        assert sorted(r.status_code for r in closes) == [201, 409, 409], [r.text for r in closes]
        done = next(r.json() for r in closes if r.status_code == 201)
        assert done["state"] == "completed" and done["stop_reason"] == "Other"
        assert "force_closed" in done["flags"]
        if version == "1.6":
            assert done["meter_stop_wh"] == 1750 and done["energy_wh"] == 750
        await server.core.events.drain()
        assert [e.session_id for e in heard] == [session_id]
        assert (await server.api.post("/sessions/999999/close")).status_code == 404
        # the station's own stop, later, replaces the CSMS's account and is stored once
        await cp.stop_session(tx)
        row = await ChargingSession.select().where(ChargingSession.id == session_id).first()
        if version == "1.6":
            assert row["meter_stop_wh"] == 5000 and row["stop_reason"] == "Local"
        assert "ended_late_by_station" in row["flags"] and row["state"] == "completed"
        await cp.stop_session(tx)  # replayed: nothing changes
        await server.core.events.drain()
        assert [e.session_id for e in heard] == [session_id]
    audit = await AuditEntry.select().where((AuditEntry.object_type == "session")
                                            & (AuditEntry.object_id == str(session_id)))
    assert [a["summary"] for a in audit] == [f"session {session_id} force-closed"]
    assert audit[0]["actor"].startswith("api_key:")


async def test_force_close_button(server):
    async with station(server, "STUCKUI", "1.6") as cp:
        await charging_session(server, "STUCKUI", "1.6", cp)
        session_id = (await server.api.get("/sessions", params={"station": "STUCKUI"})).json()["items"][0]["id"]
        async with admin_browser(server, "viewer") as page:
            await page.goto(f"/admin/sessions/{session_id}")
            await expect(page.get_by_role("heading", name=f"Session #{session_id}")).to_be_visible()
            await expect(page.locator("#force-close")).to_have_count(0)
        async with admin_browser(server, "operator") as page:
            await page.goto(f"/admin/sessions/{session_id}")
            asked: list[str] = []
            page.once("dialog", lambda d: (asked.append(d.message), asyncio.ensure_future(d.dismiss())))
            await page.locator("#force-close").click()
            await page.wait_for_timeout(300)
            assert asked and f"Force-close session {session_id}?" in asked[0]
            assert (await ChargingSession.select(ChargingSession.state).where(
                ChargingSession.id == session_id).first())["state"] == "active"
            page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
            await page.locator("#force-close").click()
            await expect(page.locator("#force-close")).to_have_count(0)
            notes = page.get_by_role("row", name="Notes")
            await expect(notes).to_contain_text("Closed by an operator")
            await expect(notes).not_to_contain_text("force_closed")
            await screenshot(page, "session-force-closed")
        async with admin_browser(server, "viewer", width=390, height=844) as phone:
            await phone.goto(f"/admin/sessions/{session_id}")
            await expect(phone.get_by_role("row", name="Notes")).to_contain_text("Closed by an operator")
            await screenshot(phone, "session-force-closed-phone")
        row = await ChargingSession.select().where(ChargingSession.id == session_id).first()
        assert row["state"] == "completed" and row["meter_stop_wh"] == 1750 and "force_closed" in row["flags"]
        audit = await AuditEntry.select().where(AuditEntry.object_type == "session")
        assert audit[0]["actor"] == "user:operator"
