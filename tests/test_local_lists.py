"""Local authorization lists (``csms.core.services.local_lists``) against real stations over
WebSocket: ``ocpp`` library ChargePoints of both versions that keep the list they are sent."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.core.tables import ConfigurationKey, LocalAuthList, MessageLog, Station
from csms.testing import running_server, server_on
from tests.test_ocpp_rpc_strict import eventually

VERSIONS = ["1.6", "2.0.1"]


class ListKeeper:
    """A station's local list: applies Full and Differential updates as the spec says, refuses a
    Differential that does not raise the version, and can be told what to answer instead."""

    def setup(self, version: int = 0) -> None:
        self.list_version = version
        self.entries: dict[str, dict[str, Any]] = {}
        self.updates: list[tuple[str, int, int]] = []  # (update type, version, entries in the message)
        self.forced: list[str] = []  # statuses to answer to the next SendLocalList calls
        self.version_asked = 0

    def apply(self, update_type: str, version: int, items: list[dict[str, Any]], key: Any, info: str) -> str:
        self.updates.append((update_type, version, len(items)))
        if self.forced:
            return self.forced.pop(0)
        if update_type == "Differential" and version <= self.list_version:
            return "VersionMismatch"
        if update_type == "Full":
            self.entries = {}
        for item in items:
            if item.get(info) is None:
                self.entries.pop(key(item), None)
            else:
                self.entries[key(item)] = item[info]
        self.list_version = version
        return "Accepted"


class Keeper16(ListKeeper, ChargePoint16):
    @on(Action16.get_local_list_version)
    async def on_version(self, **kwargs):
        self.version_asked += 1
        return result16.GetLocalListVersion(list_version=self.list_version)

    @on(Action16.send_local_list)
    async def on_send(self, list_version, update_type, local_authorization_list=None, **kwargs):
        status = self.apply(update_type, list_version, local_authorization_list or [], lambda i: i["id_tag"],
                            "id_tag_info")
        return result16.SendLocalList(status=status)

    async def boot(self) -> None:
        r = await self.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="L16"))
        assert r.status == "Accepted"


class Keeper201(ListKeeper, ChargePoint201):
    @on(Action201.get_local_list_version)
    async def on_version(self, **kwargs):
        self.version_asked += 1
        return result201.GetLocalListVersion(version_number=self.list_version)

    @on(Action201.send_local_list)
    async def on_send(self, version_number, update_type, local_authorization_list=None, **kwargs):
        status = self.apply(update_type, version_number, local_authorization_list or [],
                            lambda i: i["id_token"]["id_token"], "id_token_info")
        return result201.SendLocalList(status=status)

    async def boot(self) -> None:
        r = await self.call(call201.BootNotification(
            charging_station={"vendor_name": "Acme", "model": "L201"}, reason="PowerUp"))
        assert r.status == "Accepted"


class NoLists16(ChargePoint16):
    """A 1.6 station without the LocalAuthListManagement profile: no handlers (NotImplemented)."""

    async def boot(self) -> None:
        await self.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="Plain"))


@asynccontextmanager
async def keeper(srv: Any, station_id: str, version: str, *, cls: Any = None, list_version: int = 0,
                 entries: dict[str, Any] | None = None) -> AsyncIterator[Any]:
    """A booted station of ``version`` keeping its local list, its receive loop running."""
    proto = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    cls = cls or (Keeper16 if version == "1.6" else Keeper201)
    async with websockets.connect(srv.ws_url(station_id), subprotocols=[proto]) as ws:  # type: ignore[list-item]
        cp = cls(station_id, ws)
        if isinstance(cp, ListKeeper):
            cp.setup(list_version)
            cp.entries = dict(entries or {})
        task = asyncio.create_task(cp.start())
        try:
            await cp.boot()
            yield cp
        finally:
            task.cancel()


@pytest.fixture(autouse=True)
def quick_lists(monkeypatch):
    monkeypatch.setenv("CSMS_LOCAL_LISTS_DEBOUNCE_S", "0.3")
    monkeypatch.setenv("CSMS_LOCAL_LISTS_CONNECT_DELAY_S", "0.1")


async def add_card(srv: Any, id_token: str, **fields: Any) -> None:
    r = await srv.api.post("/tokens", json={"id_token": id_token, **fields})
    assert r.status_code == 201, r.text


async def list_state(srv: Any, station_id: str) -> dict[str, Any]:
    r = await srv.api.get(f"/stations/{station_id}/local-list")
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("version", VERSIONS)
async def test_full_on_connect_then_differential_after_blocking(tmp_path, version, backend, monkeypatch):
    # the three changes below must land within one debounce: 0.3 s was too short on a loaded machine
    monkeypatch.setenv("CSMS_LOCAL_LISTS_DEBOUNCE_S", "1.5")
    expiry = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0)
    async with running_server(tmp_path, backend=backend, unknown_stations="accept") as srv:
        await add_card(srv, "CARD-A", group_id="FLEET")
        await add_card(srv, "CARD-B", expires_at=expiry.isoformat())
        await add_card(srv, "CARD-C", status="Blocked")
        async with keeper(srv, "LL1", version) as cp:
            await eventually(lambda: cp.list_version > 0, what="a full list after boot")
            assert cp.version_asked == 1
            assert cp.updates == [("Full", 1, 3)]
            assert set(cp.entries) == {"CARD-A", "CARD-B", "CARD-C"}
            assert cp.entries["CARD-C"]["status"] == "Blocked"
            if version == "1.6":
                assert cp.entries["CARD-A"]["parent_id_tag"] == "FLEET"
                assert cp.entries["CARD-B"]["expiry_date"].startswith(expiry.strftime("%Y-%m-%dT%H:%M:%S"))
            else:
                assert cp.entries["CARD-A"]["group_id_token"] == {"id_token": "FLEET", "type": "Central"}
                assert cp.entries["CARD-B"]["cache_expiry_date_time"].startswith(expiry.strftime("%Y-%m-%dT%H:%M:%S"))
            state = await eventually(lambda: _state_if(srv, "LL1", lambda s: s["last_result"] == "Accepted"))
            assert state["version"] == 1 and state["entry_count"] == 3 and state["pending_changes"] == 0
            assert state["supported"] is True and state["last_full_at"]

            # block one card, add one, delete one, all at once: one differential with only those
            r = await srv.api.patch("/tokens/CARD-A", json={"status": "Blocked"})
            assert r.status_code == 200, r.text
            await add_card(srv, "CARD-D")
            assert (await srv.api.delete("/tokens/CARD-C")).status_code == 204
            await eventually(lambda: cp.list_version == 2, what="a differential update")
            await asyncio.sleep(0.8)  # no second update for the same changes
            assert cp.updates[1:] == [("Differential", 2, 3)]
            assert set(cp.entries) == {"CARD-A", "CARD-B", "CARD-D"}
            assert cp.entries["CARD-A"]["status"] == "Blocked"
            state = await list_state(srv, "LL1")
            assert state["version"] == 2 and state["pending_changes"] == 0
            assert {e["id_token"]: e["status"] for e in state["entries"]} == {
                "CARD-A": "Blocked", "CARD-B": "Accepted", "CARD-D": "Accepted"}


async def _state_if(srv: Any, station_id: str, cond: Any) -> dict[str, Any] | None:
    state = await list_state(srv, station_id)
    return state if cond(state) else None


@pytest.mark.parametrize("version", VERSIONS)
async def test_version_mismatch_and_failed_fall_back_to_full(server, version):
    await add_card(server, "VM-1")
    async with keeper(server, "LL2", version) as cp:
        await eventually(lambda: cp.list_version == 1)
        cp.list_version = 7  # the station's list changed behind our back
        await add_card(server, "VM-2")
        await eventually(lambda: cp.list_version == 8, what="a full list after VersionMismatch")
        assert cp.updates[1:] == [("Differential", 2, 1), ("Full", 8, 2)]
        assert set(cp.entries) == {"VM-1", "VM-2"}
        state = await eventually(lambda: _state_if(server, "LL2", lambda s: s["version"] == 8))
        assert "VersionMismatch" in state["last_detail"]

        cp.forced = ["Failed"]
        await add_card(server, "VM-3")
        await eventually(lambda: cp.list_version == 9, what="a full list after Failed")
        assert cp.updates[3:] == [("Differential", 9, 1), ("Full", 9, 3)]  # Failed: the version is ours
        assert set(cp.entries) == {"VM-1", "VM-2", "VM-3"}


@pytest.mark.parametrize("version", VERSIONS)
async def test_long_lists_are_split_within_the_station_limits(server, version):
    for n in range(7):
        await add_card(server, f"SPLIT-{n}")
    row = await Station(station_id="LL3", registration_status="Accepted").save()
    pk = row[0]["id"]
    if version == "1.6":
        await ConfigurationKey.insert(
            ConfigurationKey(station=pk, key="SendLocalListMaxLength", value="3", readonly=True),
            ConfigurationKey(station=pk, key="LocalAuthListMaxLength", value="6", readonly=True))
    else:
        from csms.core.tables import DeviceVariable

        await DeviceVariable.insert(
            DeviceVariable(station=pk, component="LocalAuthListCtrlr", variable="ItemsPerMessage", value="3"),
            DeviceVariable(station=pk, component="LocalAuthListCtrlr", variable="Entries", value="0", max_limit=6))
    async with keeper(server, "LL3", version) as cp:
        await eventually(lambda: cp.list_version == 2, what="a full list in two messages")
        assert cp.updates == [("Full", 1, 3), ("Differential", 2, 3)]
        assert len(cp.entries) == 6  # the station holds 6: one card is left out, and said so
        state = await list_state(server, "LL3")
        assert state["version"] == 2 and state["entry_count"] == 6
        assert "1 cards left out" in state["last_detail"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_station_without_lists_is_recorded_and_left_alone(server, version):
    await add_card(server, "NS-1")
    if version == "1.6":
        cm = keeper(server, "LL4", version, cls=NoLists16)
    else:
        class NoLists201(ChargePoint201):
            async def boot(self) -> None:
                await self.call(call201.BootNotification(charging_station={"vendor_name": "A", "model": "B"},
                                                         reason="PowerUp"))
        cm = keeper(server, "LL4", version, cls=NoLists201)
    async with cm:
        state = await eventually(lambda: _state_if(server, "LL4", lambda s: s["last_result"] == "NotSupported"))
        assert state["supported"] is False and state["version"] == 0
        await add_card(server, "NS-2")
        await asyncio.sleep(1.0)
        await server.core.writer.flush()
        sent = await MessageLog.select(MessageLog.action).where(
            (MessageLog.station_id == "LL4") & (MessageLog.direction == "out") & (MessageLog.message_type == 2))
        assert [m["action"] for m in sent] == ["GetLocalListVersion"]  # asked once, then left alone
        # an operator may still try: the answer is recorded, the API answers the state
        r = await server.api.post("/stations/LL4/local-list/sync", json={"full": True})
        assert r.status_code == 201, r.text
        assert r.json()["last_result"] == "NotSupported"
    r = await server.api.post("/stations/LL4/local-list/sync", json={})
    assert r.status_code == 409  # offline now
    assert (await server.api.post("/stations/NOPE/local-list/sync", json={})).status_code == 404


async def test_a_station_never_gets_another_tenants_cards(server):
    orgs = {}
    for name, parent in (("A", None), ("A-child", "A"), ("B", None)):
        r = await server.api.post("/organizations", json={"name": name, **({"parent": orgs[parent]} if parent else {})})
        assert r.status_code == 201, r.text
        orgs[name] = r.json()["id"]
    await add_card(server, "GLOBAL-1")
    await add_card(server, "A-1", organization=orgs["A"])
    await add_card(server, "AC-1", organization=orgs["A-child"])
    await add_card(server, "B-1", organization=orgs["B"])
    for sid, org in (("LL-A", "A"), ("LL-AC", "A-child"), ("LL-B", "B")):
        r = await server.api.post("/stations", json={"station_id": sid, "organization": orgs[org]})
        assert r.status_code == 201, r.text
    async with keeper(server, "LL-A", "2.0.1") as a, keeper(server, "LL-AC", "1.6") as ac, \
            keeper(server, "LL-B", "2.0.1") as b:
        await eventually(lambda: a.list_version and ac.list_version and b.list_version)
        assert set(a.entries) == {"GLOBAL-1", "A-1"}
        assert set(ac.entries) == {"GLOBAL-1", "A-1", "AC-1"}  # the parent's cards work below it
        assert set(b.entries) == {"GLOBAL-1", "B-1"}
        await add_card(server, "B-2", organization=orgs["B"])
        await eventually(lambda: "B-2" in b.entries)
        await asyncio.sleep(0.5)
        assert "B-2" not in a.entries and "B-2" not in ac.entries
        assert [u[0] for u in a.updates] == ["Full"]  # nothing of B's reached A's station


async def test_list_version_survives_a_restart_without_a_resend(tmp_path):
    async with server_on(tmp_path, unknown_stations="accept") as srv:
        await add_card(srv, "R-1")
        await add_card(srv, "R-2")
        async with keeper(srv, "LL5", "2.0.1") as cp:
            await eventually(lambda: cp.list_version == 1)
            kept = dict(cp.entries)
    async with server_on(tmp_path, unknown_stations="accept") as srv:
        async with keeper(srv, "LL5", "2.0.1", list_version=1, entries=kept) as cp:
            state = await eventually(lambda: _state_if(srv, "LL5", lambda s: s["last_result"] == "InSync"))
            assert cp.version_asked == 1 and cp.updates == []
            assert state["version"] == 1 and state["station_version"] == 1
            # a card changed while the station was away: only the change goes out
            await add_card(srv, "R-3")
            await eventually(lambda: cp.list_version == 2)
            assert cp.updates == [("Differential", 2, 1)]
            # the station has its list; the server stores the accepted version when the answer arrives
            await eventually(lambda: _state_if(srv, "LL5", lambda s: s["version"] == 2 and s["station_version"] == 2))
        row = await LocalAuthList.select().output(load_json=True).first()
        assert row["version"] == 2 and set(row["entries"]) == {"R-1", "R-2", "R-3"}
        assert row["content_hash"] and json.dumps(row["entries"])


async def test_switched_off_installation_wide(tmp_path, monkeypatch):
    monkeypatch.setenv("CSMS_LOCAL_LISTS_ENABLED", "false")
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        await add_card(srv, "OFF-1")
        async with keeper(srv, "LL6", "1.6") as cp:
            await asyncio.sleep(1.0)
            assert cp.version_asked == 0 and cp.updates == []
            state = await list_state(srv, "LL6")
            assert state["enabled"] is False and state["pending_changes"] == 1
            r = await srv.api.post("/stations/LL6/local-list/sync", json={})
            assert r.status_code == 201 and r.json()["version"] == 1
            assert cp.updates == [("Full", 1, 1)]
        audit = (await srv.api.get("/audit", params={"object_type": "station"})).json()
        assert any((e.get("after") or {}).get("action") == "local_list_sync" for e in audit["items"]), audit


async def test_a_card_expiring_goes_out_as_expired(server):
    soon = datetime.now(timezone.utc) + timedelta(seconds=2)
    await add_card(server, "EXP-SOON", expires_at=soon.isoformat())
    await add_card(server, "EXP-NEVER")
    async with keeper(server, "LL7", "1.6") as cp:
        await eventually(lambda: cp.list_version == 1, timeout=20)
        assert cp.entries["EXP-SOON"]["status"] == "Accepted"
        await eventually(lambda: cp.list_version == 2, timeout=20, what="an update when the card expired")
        assert cp.updates[-1] == ("Differential", 2, 1)
        assert cp.entries["EXP-SOON"]["status"] == "Expired"
