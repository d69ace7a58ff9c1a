"""What the CSMS tells an OCPP 2.1 station beyond DER controls, over REST to the ``ocpp-rpc``
strict station (``tests/node/strict_station.mjs --protocol ocpp2.1``, every frame the CSMS sends
checked against the 2.1 schemas): AFRRSignal, UpdateDynamicSchedule (stored with the profile),
UsePriorityCharging and NotifyAllowedEnergyTransfer (stored with the transaction; the station's
NotifyPriorityCharging too), NotifyWebPaymentStarted. Bad bodies, unknown profiles and
transactions are refused with 400 and nothing sent; a 2.0.1 station gets 409."""

from __future__ import annotations

from typing import Any

from csms.testing.stations import station
from tests.test_ocpp_21 import events
from tests.test_ocpp_rpc_strict import (  # noqa: F401 (fixture)
    Commands,
    create_token,
    eventually,
    node_station,
    sessions_of,
    strict_station,
)

DYNAMIC = {"id": 501, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Dynamic",
           "chargingSchedule": [{"id": 1, "chargingRateUnit": "A",
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}]}


def last_call(st: Any, action: str) -> dict[str, Any]:
    found = st.find_all(lambda e: e.get("event") == "call" and e["action"] == action)
    assert found, st.report()
    return found[-1]["params"]


async def test_strict_21_station_energy_controls(any_server, node_station):
    """On SQLite and PostgreSQL (the stored JSON and flags)."""
    server = any_server
    sid, tag = "ENERGY21", "ENERGY21-TAG"
    api = server.api
    await create_token(server, tag)
    async with strict_station(node_station, server, sid, "ocpp2.1", token=tag, linger=120) as st:
        await st.wait_event("lingering", timeout=60)
        cmd = Commands(server, st, sid)

        # aFRR signal: sent with the timestamp in OCPP's form, the station's answer returned
        await cmd.send("POST", "/afrr-signal", {"signal": 1, "timestamp": "2026-12-07T05:00:00+01:00"},
                       action="AFRRSignal", status="Accepted")
        assert last_call(st, "AFRRSignal") == {"timestamp": "2026-12-07T04:00:00.000Z", "signal": 1}
        await cmd.send("POST", "/afrr-signal", {"signal": 7}, action="AFRRSignal", status="Rejected")
        for body in ({"signal": 1.5}, {"signal": 1, "extra": True}, {"timestamp": "2026-12-07T05:00:00Z"},
                     {"signal": 2**40}):
            await cmd.refused("POST", "/afrr-signal", body, http=400)

        # a dynamic profile the CSMS sent; its update is stored with it
        sent = await server.core.operations.set_charging_profile(sid, evse_id=1, profile=DYNAMIC, by="test")
        assert sent["status"] == "Accepted"
        data = await cmd.send("POST", "/charging-profiles/501/schedule-update",
                              {"limit": 10, "setpoint": -6, "discharge_limit": -8, "setpoint_l2": -6},
                              action="UpdateDynamicSchedule", status="Accepted")
        assert last_call(st, "UpdateDynamicSchedule") == {"chargingProfileId": 501, "scheduleUpdate": {
            "limit": 10, "dischargeLimit": -8, "setpoint": -6, "setpoint_L2": -6}}
        r = await api.get(f"/stations/{sid}/charging-profiles")
        assert r.status_code == 200, r.text
        (held,) = [p for p in r.json()["items"] if p["profile_id"] == 501]
        assert held["schedule_update"] == {"limit": 10, "dischargeLimit": -8, "setpoint": -6, "setpoint_L2": -6}
        assert held["schedule_updated_at"] and held["kind"] == "Dynamic" and held["status"] == "Accepted"
        # unknown to the CSMS, nothing to set, a value that is no number, a field 2.1 does not have
        r = await cmd.refused("POST", "/charging-profiles/999/schedule-update", {"limit": 1}, http=400)
        assert "holds no charging profile 999" in r["detail"]
        r = await cmd.refused("POST", "/charging-profiles/501/schedule-update", {}, http=400)
        assert "sets no value" in r["detail"]
        await cmd.refused("POST", "/charging-profiles/501/schedule-update", {"limit": "high"}, http=400)
        await cmd.refused("POST", "/charging-profiles/501/schedule-update", {"operation_mode": "Idle"}, http=400)
        # a profile the station holds but not as a dynamic one: the station's Rejected, nothing stored
        static = {**DYNAMIC, "id": 502, "stackLevel": 2, "chargingProfileKind": "Absolute"}
        assert (await server.core.operations.set_charging_profile(sid, evse_id=1, profile=static))["status"] == "Accepted"
        data = await cmd.send("POST", "/charging-profiles/502/schedule-update", {"limit": 6},
                              action="UpdateDynamicSchedule", status="Rejected")
        assert data["response"]["statusInfo"]["reasonCode"] == "UnknownProfile"
        r = await api.get(f"/stations/{sid}/charging-profiles")
        assert [p["schedule_update"] for p in r.json()["items"] if p["profile_id"] == 502] == [None]

        # a transaction started remotely: priority charging and the allowed transfer modes
        await cmd.send("POST", "/remote-start", {"id_token": tag, "evse_id": 1}, action="RequestStartTransaction",
                       status="Accepted")

        async def running() -> dict[str, Any] | None:
            return next((s for s in await sessions_of(server, sid) if s["state"] == "active"), None)

        session = await eventually(running, timeout=20, what="the remote start's session", context=st.report)
        tx, url = session["transaction_id"], f"/sessions/{session['id']}"
        assert session["priority_charging"] is None and session["allowed_energy_transfer"] is None

        await cmd.send("POST", "/priority-charging", {"transaction_id": tx}, action="UsePriorityCharging",
                       status="Accepted")
        assert last_call(st, "UsePriorityCharging") == {"transactionId": tx, "activate": True}
        assert (await api.get(url)).json()["priority_charging"] is True
        # the station's NotifyPriorityCharging that follows is stored too
        await eventually(lambda: st.find(lambda e: e.get("event") == "answer"
                                         and e["action"] == "NotifyPriorityCharging"), what="NotifyPriorityCharging")
        await cmd.send("POST", "/priority-charging", {"transaction_id": tx, "activate": False},
                       action="UsePriorityCharging", status="Accepted")
        assert (await api.get(url)).json()["priority_charging"] is False

        async def notified() -> bool:
            kinds = [e["kind"] for e in await events(server, sid, "charging_limit")]
            return kinds.count("NotifyPriorityCharging") == 2

        await eventually(notified, what="both NotifyPriorityCharging stored", context=st.report)
        assert (await api.get(url)).json()["priority_charging"] is False

        await cmd.send("POST", "/allowed-energy-transfer", {"transaction_id": tx, "modes": ["AC_three_phase", "AC_BPT"]},
                       action="NotifyAllowedEnergyTransfer", status="Accepted")
        assert last_call(st, "NotifyAllowedEnergyTransfer") == {
            "transactionId": tx, "allowedEnergyTransfer": ["AC_three_phase", "AC_BPT"]}
        assert (await api.get(url)).json()["allowed_energy_transfer"] == ["AC_three_phase", "AC_BPT"]

        for path, body in (("/priority-charging", {"transaction_id": "not-running"}),
                           ("/priority-charging", {"transaction_id": ""}),
                           ("/priority-charging", {"transaction_id": tx, "activate": "yes"}),
                           ("/allowed-energy-transfer", {"transaction_id": "not-running", "modes": ["DC"]}),
                           ("/allowed-energy-transfer", {"transaction_id": tx, "modes": []}),
                           ("/allowed-energy-transfer", {"transaction_id": tx, "modes": ["Solar"]})):
            await cmd.refused("POST", path, body, http=400)
        assert "no running transaction 'not-running'" in (await cmd.refused(
            "POST", "/priority-charging", {"transaction_id": "not-running"}))["detail"]

        # a web payment started at EVSE 1: the station's answer has no status of its own
        data = await cmd.send("POST", "/web-payment-started", {"evse_id": 1, "timeout": 120},
                              action="NotifyWebPaymentStarted", status="Accepted")
        assert data["response"] == {} and last_call(st, "NotifyWebPaymentStarted") == {"evseId": 1, "timeout": 120}
        for body in ({"evse_id": -1, "timeout": 60}, {"evse_id": 1, "timeout": 0}, {"evse_id": 1}):
            await cmd.refused("POST", "/web-payment-started", body, http=400)

        # every command and its answer is in the station's command history
        rows = (await api.get(f"/stations/{sid}/commands", params={"limit": 100})).json()["items"]
        assert {c["action"] for c in rows} >= {"AFRRSignal", "UpdateDynamicSchedule", "UsePriorityCharging",
                                              "NotifyAllowedEnergyTransfer", "NotifyWebPaymentStarted"}
        st.assert_clean_exit(await st.quit())


async def test_a_201_station_has_none_of_them(server):
    async with station(server, "ENERGY201", "2.0.1"):
        for path, body in (("afrr-signal", {"signal": 1}),
                           ("charging-profiles/1/schedule-update", {"limit": 1}),
                           ("priority-charging", {"transaction_id": "T"}),
                           ("allowed-energy-transfer", {"transaction_id": "T", "modes": ["DC"]}),
                           ("web-payment-started", {"evse_id": 1, "timeout": 60})):
            r = await server.api.post(f"/stations/ENERGY201/{path}", json=body)
            assert r.status_code == 409 and r.json()["extra"]["error"] == "NotSupported", (path, r.text)
            assert "OCPP 2.0.1 has no" in r.json()["detail"]
