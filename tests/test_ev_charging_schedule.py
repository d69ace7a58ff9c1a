"""NotifyEVChargingSchedule (K15.FR.12, K16.FR.07, K17.FR.12): the EV's schedule is Rejected when it
goes above the limits the CSMS sent for its EVSE and transaction, Accepted otherwise; the outcome
is stored in the station's report log."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator

import websockets
from ocpp.routing import on
from ocpp.v201 import ChargePoint
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from csms.core.services.ev_schedules import exceeded, power_steps
from csms.core.tables import StationEvent
from csms.core.timeutil import ocpp_ts


class IsoStation(ChargePoint):
    """A 2.0.1 station that accepts every charging profile it is sent."""

    profiles: list[dict[str, Any]]

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, evse_id, charging_profile, **kwargs):
        self.profiles.append(charging_profile)
        return call_result.SetChargingProfile(status="Accepted")


@asynccontextmanager
async def iso_station(server: Any, station_id: str) -> AsyncIterator[IsoStation]:
    async with websockets.connect(server.ws_url(station_id), subprotocols=["ocpp2.0.1"]) as ws:
        cp = IsoStation(station_id, ws)
        cp.profiles = []
        task = asyncio.create_task(cp.start())
        try:
            await cp.call(call.BootNotification(charging_station={"model": "ISO", "vendor_name": "Acme"},
                                                reason="PowerUp"))
            yield cp
        finally:
            task.cancel()


NOW = datetime.now(timezone.utc).replace(microsecond=0)


def profile(profile_id: int, purpose: str, periods: list[tuple[int, float, int | None]], *, unit: str = "A",
            transaction_id: str | None = None) -> dict[str, Any]:
    schedule_periods = [{"startPeriod": start, "limit": limit, **({"numberPhases": n} if n else {})}
                        for start, limit, n in periods]
    out: dict[str, Any] = {
        "id": profile_id, "stackLevel": 1, "chargingProfilePurpose": purpose, "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": 1, "startSchedule": ocpp_ts(NOW), "chargingRateUnit": unit,
                              "chargingSchedulePeriod": schedule_periods}]}
    if transaction_id:
        out["transactionId"] = transaction_id
    return out


async def notify(cp: IsoStation, periods: list[tuple[int, float, int | None]], *, unit: str = "A") -> Any:
    return await cp.call(call.NotifyEVChargingSchedule(time_base=ocpp_ts(NOW), evse_id=1, charging_schedule={
        "id": 1, "charging_rate_unit": unit,
        "charging_schedule_period": [{"start_period": start, "limit": limit,
                                      **({"number_phases": n} if n else {})} for start, limit, n in periods]}))


async def test_ev_schedule_checked_against_the_sent_tx_profile(server):
    ops = server.core.operations
    async with iso_station(server, "ISO1") as cp:
        # nothing sent yet: nothing to exceed
        assert (await notify(cp, [(0, 32.0, None)])).status == "Accepted"
        await cp.call(call.TransactionEvent(
            event_type="Started", timestamp=ocpp_ts(NOW), trigger_reason="CablePluggedIn", seq_no=0,
            transaction_info={"transaction_id": "ISO-TX"}, evse={"id": 1, "connector_id": 1}))
        # K15: the CSMS's TxProfile for the transaction, 16 A on three phases, 10 A after an hour
        sent = await ops.set_charging_profile("ISO1", evse_id=1, profile=profile(
            11, "TxProfile", [(0, 16.0, 3), (3600, 10.0, 3)], transaction_id="ISO-TX"))
        assert sent["status"] == "Accepted"
        assert (await notify(cp, [(0, 16.0, None), (3600, 10.0, None)])).status == "Accepted"
        assert (await notify(cp, [(0, 16.0, 1), (1800, 12.0, 3), (3600, 6.0, 3)])).status == "Accepted"
        assert (await notify(cp, [(0, 11000.0, None), (3600, 6900.0, None)], unit="W")).status == "Accepted"
        over = await notify(cp, [(0, 20.0, None)])
        assert over.status == "Rejected" and over.status_info["reason_code"] == "ExceedsLimits"
        later = await notify(cp, [(0, 16.0, 3), (3600, 16.0, 3)])  # fine now, too much after an hour
        assert later.status == "Rejected" and "TxProfile" in later.status_info["additional_info"]
        assert (await notify(cp, [(0, 12000.0, None)], unit="W")).status == "Rejected"
        # K16: the CSMS renegotiates with a lower profile; the EV's earlier schedule no longer fits
        await ops.set_charging_profile("ISO1", evse_id=1, profile=profile(
            11, "TxProfile", [(0, 8.0, 3)], transaction_id="ISO-TX"))
        assert (await notify(cp, [(0, 16.0, None), (3600, 10.0, None)])).status == "Rejected"
        # K17: the EV renegotiates with a schedule within the new profile
        assert (await notify(cp, [(0, 8.0, None)])).status == "Accepted"
    reports = await StationEvent.select().where(
        (StationEvent.station_id == "ISO1") & (StationEvent.category == "ev_charging_schedule")).order_by(
        StationEvent.id).output(load_json=True)
    assert [r["summary"].split(":")[0] for r in reports] == [
        "Accepted", "Accepted", "Accepted", "Accepted", "Rejected", "Rejected", "Rejected", "Rejected", "Accepted"]
    assert reports[4]["details"]["answer"]["status"] == "Rejected"
    assert reports[4]["details"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 20.0


async def test_ev_schedule_without_tx_profile_uses_default_and_station_maximum(server):
    ops = server.core.operations
    async with iso_station(server, "ISO2") as cp:
        await ops.set_charging_profile("ISO2", evse_id=0, profile=profile(21, "TxDefaultProfile", [(0, 7400.0, 1)],
                                                                          unit="W"))
        assert (await notify(cp, [(0, 32.0, 1)])).status == "Accepted"  # 7360 W
        assert (await notify(cp, [(0, 16.0, 3)])).status == "Rejected"  # 11040 W
        await ops.set_charging_profile("ISO2", evse_id=0, profile=profile(22, "ChargingStationMaxProfile",
                                                                          [(0, 20.0, 1)]))
        assert (await notify(cp, [(0, 20.0, 1)])).status == "Accepted"
        assert (await notify(cp, [(0, 25.0, 1)])).status == "Rejected"  # within the default, not the maximum


def test_a_profile_limits_only_within_its_validity_and_duration():
    sent = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}
    valid = [("TxProfile", power_steps(sent, NOW, 230.0, valid_to=NOW + timedelta(hours=1)))]
    ev = {"chargingRateUnit": "A", "duration": 7200, "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0},
                                                             {"startPeriod": 3600, "limit": 32.0}]}
    assert exceeded(ev, NOW, valid, 230.0) is None
    lasting = [("TxProfile", power_steps({**sent, "duration": 7200}, NOW, 230.0))]
    assert "TxProfile" in (exceeded(ev, NOW, lasting, 230.0) or "")
    later = [("TxProfile", power_steps(sent, NOW, 230.0, valid_from=NOW + timedelta(hours=2)))]
    assert exceeded(ev, NOW, later, 230.0) is None


def found(tree: Any, key: str) -> list[Any]:
    """Every value of ``key`` anywhere in a JSON tree."""
    if isinstance(tree, dict):
        return [v for k, v in tree.items() if k == key] + [x for v in tree.values() for x in found(v, key)]
    if isinstance(tree, list):
        return [x for v in tree for x in found(v, key)]
    return []


async def test_ev_charging_needs_become_the_sessions_targets(server):
    """K15: the EV's departure time and energy amount (NotifyEVChargingNeeds during a transaction)
    become the session's targets, marked as coming from the EV, and a TxProfile follows; K17: the
    EV's new needs replace them and a new TxProfile follows; targets the driver sets through the
    API win (marked ``driver``) and the EV's later needs leave them."""
    from csms.core.tables import ChargingSession

    site = (await server.api.post("/sites", json={"name": "Depot", "grid_limit_l1_a": 64, "grid_limit_l2_a": 64,
                                                  "grid_limit_l3_a": 64})).json()["id"]
    assert (await server.api.post("/stations", json={"station_id": "ISO-N", "site": site})).status_code == 201
    await server.api.post("/tokens", json={"id_token": "CARD-K15", "type": "ISO14443"})
    departure = (NOW + timedelta(hours=3)).replace(microsecond=0)
    async with iso_station(server, "ISO-N") as cp:
        await cp.call(call.StatusNotification(timestamp=ocpp_ts(NOW), connector_status="Occupied", evse_id=1,
                                              connector_id=1))
        await cp.call(call.TransactionEvent(
            event_type="Started", timestamp=ocpp_ts(NOW), trigger_reason="Authorized", seq_no=0,
            transaction_info={"transaction_id": "k15", "charging_state": "Charging"},
            id_token={"id_token": "CARD-K15", "type": "ISO14443"}, evse={"id": 1, "connector_id": 1},
            meter_value=[{"timestamp": ocpp_ts(NOW), "sampled_value": [
                {"value": 2000.0, "measurand": "Energy.Active.Import.Register", "context": "Transaction.Begin"}]}]))

        async def needs(leaves: datetime, energy_wh: float) -> Any:
            return await cp.call(call.NotifyEVChargingNeeds(evse_id=1, charging_needs={
                "requested_energy_transfer": "AC_three_phase", "departure_time": ocpp_ts(leaves),
                "ac_charging_parameters": {"energy_amount": energy_wh, "ev_min_current": 6, "ev_max_current": 32,
                                           "ev_max_voltage": 400}}))

        answer = await needs(departure, 20000)
        assert answer.status == "Accepted"  # the load balancer is installed: it promises a schedule
        for _ in range(100):  # K15.FR.04: the schedule comes as a TxProfile of the transaction
            tx = [p for p in cp.profiles if p["charging_profile_purpose"] == "TxProfile"]
            if tx:
                break
            await asyncio.sleep(0.1)
        assert tx and tx[-1]["transaction_id"] == "k15", cp.profiles

        async def targets() -> dict:
            return await ChargingSession.select(ChargingSession.id, ChargingSession.departure_at,
                                                ChargingSession.energy_target_wh, ChargingSession.flags).where(
                ChargingSession.transaction_id == "k15").output(load_json=True).first()

        for _ in range(50):  # stored after the answer, from the event
            row = await targets()
            if row["departure_at"] is not None:
                break
            await asyncio.sleep(0.1)
        assert row["departure_at"] == departure
        assert row["energy_target_wh"] == 20000  # the amount asked on top of the 0 Wh charged so far
        assert "departure_from_ev" in row["flags"]
        view = (await server.api.get(f"/sites/{site}/smart-charging")).json()
        assert found(view, "departure_source") == ["ev"]
        assert found(view, "stated_departure_at") == [departure.isoformat()]

        sent = len(cp.profiles)
        later = departure + timedelta(hours=1)
        await needs(later, 5000)  # K17: the EV renegotiates
        for _ in range(50):
            row = await targets()
            if row["departure_at"] == later:
                break
            await asyncio.sleep(0.1)
        assert row["departure_at"] == later and row["energy_target_wh"] == 5000
        assert {"departure_from_ev", "energy_target_from_ev"} <= set(row["flags"])
        for _ in range(100):
            if len(cp.profiles) > sent:
                break
            await asyncio.sleep(0.1)
        assert cp.profiles[-1]["charging_profile_purpose"] == "TxProfile", cp.profiles

        driver = departure + timedelta(hours=2)
        put = await server.api.put(f"/sessions/{row['id']}/smart-charging",
                                   json={"departure_at": driver.isoformat(), "energy_target_wh": 12000})
        assert put.status_code == 200, put.text
        row = await targets()
        assert row["departure_at"] == driver and row["energy_target_wh"] == 12000
        assert not {"departure_from_ev", "energy_target_from_ev"} & set(row["flags"])
        view = (await server.api.get(f"/sites/{site}/smart-charging")).json()
        assert found(view, "departure_source") == ["driver"]
        await needs(departure, 30000)  # the driver's targets stand
        await asyncio.sleep(0.5)
        row = await targets()
        assert row["departure_at"] == driver and row["energy_target_wh"] == 12000


class HastyStation(IsoStation):
    """Hands a TxProfile's schedule to the EV, doubled, before it answers the SetChargingProfile."""

    verdicts: list[Any]
    tasks: list[asyncio.Task[None]]

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, evse_id, charging_profile, **kwargs):
        self.profiles.append(charging_profile)
        if charging_profile["charging_profile_purpose"] == "TxProfile":
            schedule = charging_profile["charging_schedule"][0]
            periods = [{"start_period": p["start_period"], "limit": p["limit"] * 2}
                       for p in schedule["charging_schedule_period"]]
            notify = call.NotifyEVChargingSchedule(time_base=ocpp_ts(NOW), evse_id=evse_id, charging_schedule={
                "id": 1, "charging_rate_unit": schedule["charging_rate_unit"], "charging_schedule_period": periods})

            async def tell() -> None:
                self.verdicts.append(await self.call(notify))

            self.tasks.append(asyncio.create_task(tell()))  # the answer to it is read after ours is sent
            await asyncio.sleep(1.0)  # the CSMS checks the EV's schedule before it has this answer
        return call_result.SetChargingProfile(status="Accepted")


async def test_an_ev_schedule_sent_before_the_stations_answer_is_held_to_the_profile(server):
    """K15.FR.12, K15.FR.13 (OCTT TC_K_55 via tzi-OCTT): the EV's schedule can reach the CSMS
    before the station's answer to the TxProfile it came from; it is checked against that profile
    all the same (recorded as Pending until the answer), so one above it is Rejected, and the CSMS
    renegotiates: it sends the TxProfile again (once per retry period)."""
    site = (await server.api.post("/sites", json={"name": "Depot", "grid_limit_l1_a": 32, "grid_limit_l2_a": 32,
                                                  "grid_limit_l3_a": 32})).json()["id"]
    assert (await server.api.post("/stations", json={"station_id": "ISO-H", "site": site})).status_code == 201
    await server.api.post("/tokens", json={"id_token": "CARD-K55H", "type": "ISO14443"})
    async with websockets.connect(server.ws_url("ISO-H"), subprotocols=["ocpp2.0.1"]) as ws:
        cp = HastyStation("ISO-H", ws)
        cp.profiles, cp.verdicts, cp.tasks = [], [], []
        task = asyncio.create_task(cp.start())
        try:
            await cp.call(call.BootNotification(charging_station={"model": "ISO", "vendor_name": "Acme"},
                                                reason="PowerUp"))
            await cp.call(call.TransactionEvent(
                event_type="Started", timestamp=ocpp_ts(NOW), trigger_reason="Authorized", seq_no=0,
                transaction_info={"transaction_id": "k55h", "charging_state": "EVConnected"},
                id_token={"id_token": "CARD-K55H", "type": "ISO14443"}, evse={"id": 1, "connector_id": 1}))
            await cp.call(call.NotifyEVChargingNeeds(evse_id=1, charging_needs={
                "requested_energy_transfer": "AC_three_phase"}))
            for _ in range(100):
                if cp.verdicts:
                    break
                await asyncio.sleep(0.1)
            assert cp.verdicts and cp.verdicts[0].status == "Rejected", (cp.verdicts, cp.profiles)
            assert cp.verdicts[0].status_info["reason_code"] == "ExceedsLimits"
            # K15.FR.13: the CSMS starts a new renegotiation, the transaction's TxProfile again;
            # the EV exceeds once more and is answered Rejected, but no third profile follows
            # within the retry period (no loop)
            for _ in range(100):
                if len(cp.verdicts) >= 2:
                    break
                await asyncio.sleep(0.1)
            tx = [p for p in cp.profiles if p["charging_profile_purpose"] == "TxProfile"]
            assert len(tx) == 2 and tx[1]["transaction_id"] == "k55h", cp.profiles
            assert cp.verdicts[1].status == "Rejected"
            await asyncio.sleep(1.5)
            assert len([p for p in cp.profiles if p["charging_profile_purpose"] == "TxProfile"]) == 2
        finally:
            task.cancel()
