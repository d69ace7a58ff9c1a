"""Display messages (OCPP 2.0.1 SetDisplayMessage, GetDisplayMessages + NotifyDisplayMessages,
ClearDisplayMessage) over REST against a real station on a real WebSocket; 1.6 has none."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncContextManager

import pytest
from ocpp.routing import after, on
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.testing.stations import Station201, station
from tests.test_ocpp_rpc_strict import Commands, create_token, node_station, strict_station  # noqa: F401 (fixture)


class DisplayStation(Station201):
    """A 2.0.1 station with a display: it keeps the messages it accepted (by id) and reports
    them all on GetDisplayMessages; content "REJECT" is rejected."""

    def setup(self, firmware_version: str) -> None:
        super().setup(firmware_version)
        self.display: dict[int, dict[str, Any]] = {}

    @on(Action201.set_display_message)
    async def on_set_display_message(self, message, **kwargs):
        self.received.append(("SetDisplayMessage", message))
        if message["message"]["content"] == "REJECT":
            return result201.SetDisplayMessage(status="Rejected")
        self.display[message["id"]] = message
        return result201.SetDisplayMessage(status="Accepted")

    def matching(self, id=None, priority=None, state=None) -> list[dict[str, Any]]:
        """The messages a GetDisplayMessages with these filters asks for."""
        self.received.append(("GetDisplayMessages", {"id": id, "priority": priority, "state": state}))
        return [m for m in self.display.values() if (id is None or m["id"] in id)
                and (priority is None or m["priority"] == priority) and (state is None or m.get("state") == state)]

    @on(Action201.get_display_messages)
    async def on_get_display_messages(self, request_id, id=None, priority=None, state=None, **kwargs):
        return result201.GetDisplayMessages(status="Accepted" if self.matching(id, priority, state) else "Unknown")

    @after(Action201.get_display_messages)
    async def after_get_display_messages(self, request_id, id=None, priority=None, state=None, **kwargs):
        messages = self.matching(id, priority, state)
        if messages:
            await self.call(call201.NotifyDisplayMessages(request_id=request_id, message_info=messages[:1],
                                                          tbc=len(messages) > 1))
            if len(messages) > 1:
                await self.call(call201.NotifyDisplayMessages(request_id=request_id, message_info=messages[1:]))

    @on(Action201.clear_display_message)
    async def on_clear_display_message(self, id, **kwargs):
        return result201.ClearDisplayMessage(status="Accepted" if self.display.pop(id, None) else "Unknown")


def display_station(srv: Any, station_id: str) -> AsyncContextManager[DisplayStation]:
    """A booted :class:`DisplayStation` with its receive loop running."""
    return station(srv, station_id, "2.0.1", cls=DisplayStation)


async def eventually(check, timeout: float = 5.0):
    for _ in range(int(timeout / 0.05)):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"{check} not met within {timeout} s")


async def test_set_list_refresh_and_clear(any_server):
    server = any_server
    url = "/stations/DISP1/display-messages"
    async with display_station(server, "DISP1") as cp:
        r = await server.api.post(url, json={"content": "Welcome! 0.39 EUR/kWh", "priority": "InFront",
                                             "language": "en", "starts_at": "2030-01-01T08:00:00Z",
                                             "ends_at": "2030-01-02T08:00:00Z", "evse_id": 1})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "Accepted" and r.json()["message_id"] == 1
        sent = cp.received[-1][1]
        assert sent["priority"] == "InFront" and sent["message"] == {
            "format": "UTF8", "content": "Welcome! 0.39 EUR/kWh", "language": "en"}
        assert sent["start_date_time"] == "2030-01-01T08:00:00.000Z" and sent["display"] == {
            "name": "Display", "evse": {"id": 1}}

        r = await server.api.post(url, json={"content": "Out of order", "priority": "AlwaysFront",
                                             "state": "Faulted"})
        assert r.json()["status"] == "Accepted" and r.json()["message_id"] == 2
        rejected = await server.api.post(url, json={"content": "REJECT"})
        assert rejected.status_code == 201 and rejected.json()["status"] == "Rejected"
        audit = (await server.api.get("/audit", params={"object_id": "DISP1"})).json()["items"]
        assert [a["after"]["action"] for a in audit if a["action"] == "command"].count("SetDisplayMessage") == 3

        listing = (await server.api.get(url)).json()
        assert listing["supported"] is True and listing["ocpp_version"] == "2.0.1"
        assert [(m["message_id"], m["content"], m["priority"], m["source"], m["evse_id"]) for m in listing["items"]] \
            == [(1, "Welcome! 0.39 EUR/kWh", "InFront", "csms", 1), (2, "Out of order", "AlwaysFront", "csms", None)]
        assert listing["items"][1]["state"] == "Faulted"

        # the station shows one more that the CSMS did not set (e.g. set by another back office)
        cp.display[40] = {"id": 40, "priority": "NormalCycle",
                          "message": {"format": "ASCII", "content": "Local message"}}
        r = await server.api.post(f"{url}/refresh")
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text

        async def reported():
            items = (await server.api.get(url)).json()["items"]
            return items if len(items) == 3 else None

        items = await eventually(reported)
        assert [(m["message_id"], m["source"]) for m in items] == [(1, "station"), (2, "station"), (40, "station")]
        assert items[2]["format"] == "ASCII" and items[2]["content"] == "Local message"

        r = await server.api.delete(f"{url}/40")
        assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
        assert 40 not in cp.display
        assert [m["message_id"] for m in (await server.api.get(url)).json()["items"]] == [1, 2]
        r = await server.api.delete(f"{url}/77")
        assert r.json()["status"] == "Unknown"

        # O04: only some of them; the others stay as they were
        cp.display[2]["message"]["content"] = "Out of order (edited at the station)"
        r = await server.api.post(f"{url}/refresh", json={"priority": "AlwaysFront", "state": "Faulted"})
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        assert cp.received[-1] == ("GetDisplayMessages", {"id": None, "priority": "AlwaysFront", "state": "Faulted"})

        async def edited():
            items = (await server.api.get(url)).json()["items"]
            return items if any(m["content"].endswith("(edited at the station)") for m in items) else None

        assert [m["message_id"] for m in await eventually(edited)] == [1, 2]
        cp.display.pop(1)
        r = await server.api.post(f"{url}/refresh", json={"ids": [1]})
        assert r.json()["status"] == "Unknown"  # the station has no message 1 any more: forgotten here too
        assert [m["message_id"] for m in (await server.api.get(url)).json()["items"]] == [2]
        for body in ({"ids": []}, {"ids": [-1]}, {"priority": "Urgent"}, {"state": "Sleeping"}, {"id": [1]}):
            bad = await server.api.post(f"{url}/refresh", json=body)
            assert bad.status_code == 400, (body, bad.text)

        # the station forgot everything (a factory reset): a refresh empties the list
        cp.display.clear()
        r = await server.api.post(f"{url}/refresh")
        assert r.json()["status"] == "Unknown"
        assert (await server.api.get(url)).json()["items"] == []

    offline = await server.api.post(url, json={"content": "Hello"})
    assert offline.status_code == 409 and offline.json()["extra"]["error"] == "StationOffline"


@pytest.mark.parametrize("body", [
    {"content": ""}, {"content": "x" * 513}, {"content": "Hi", "priority": "Urgent"},
    {"content": "Hi", "format": "RTF"}, {"content": "Grüße", "format": "ASCII"},
    {"content": "Hi", "state": "Charged"}, {"content": "Hi", "evse_id": 0},
    {"content": "Hi", "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"},
    {"content": "Hi", "unknown": 1},
])
async def test_bad_messages_are_refused_before_sending(server, body):
    async with display_station(server, "DISP2") as cp:
        r = await server.api.post("/stations/DISP2/display-messages", json=body)
        assert r.status_code == 400, r.text
        assert not [m for m in cp.received if m[0] == "SetDisplayMessage"]


async def test_ocpp16_station_has_no_display_messages(server):
    url = "/stations/DISP16/display-messages"
    async with station(server, "DISP16", "1.6"):
        for method, path, body in (("POST", url, {"content": "Hello"}), ("POST", f"{url}/refresh", None),
                                   ("DELETE", f"{url}/1", None)):
            r = await server.api.request(method, path, json=body)
            assert r.status_code == 409, (method, path, r.text)
            assert r.json()["extra"]["error"] == "NotSupported" and "1.6" in r.json()["detail"]
        listing = (await server.api.get(url)).json()
        assert listing["supported"] is False and listing["items"] == []


async def test_unknown_station_is_404(server):
    assert (await server.api.get("/stations/NOPE/display-messages")).status_code == 404


async def test_viewer_may_read_but_not_set(server):
    from csms.core.security import new_api_key
    from csms.core.tables import ApiKey

    key, prefix, digest = new_api_key()
    await ApiKey(name="viewer", prefix=prefix, key_hash=digest, role="viewer").save()
    headers = {"Authorization": f"Bearer {key}"}
    async with display_station(server, "DISP3"):
        assert (await server.api.get("/stations/DISP3/display-messages", headers=headers)).status_code == 200
        r = await server.api.post("/stations/DISP3/display-messages", json={"content": "Hi"}, headers=headers)
        assert r.status_code == 403


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_strict_station_display_messages(server, node_station, protocol):
    """The ocpp-rpc strict station checks SetDisplayMessage, GetDisplayMessages and
    ClearDisplayMessage against the official schema; a 1.6 station is sent nothing."""
    sid = "DMSTRICT16" if protocol == "ocpp1.6" else "DMSTRICT201"
    url = f"/stations/{sid}/display-messages"
    await create_token(server, f"{sid}-TAG")
    async with strict_station(node_station, server, sid, protocol, token=f"{sid}-TAG", linger=120) as st:
        await st.wait_event("lingering", timeout=60)
        cmd = Commands(server, st, sid)
        if protocol == "ocpp1.6":
            for method, path, body in (("POST", "/display-messages", {"content": "Hello"}),
                                       ("POST", "/display-messages/refresh", None),
                                       ("DELETE", "/display-messages/1", None)):
                refused = await cmd.refused(method, path, body, http=409)
                assert refused["extra"]["error"] == "NotSupported"
        else:
            data = await cmd.send("POST", "/display-messages", {
                "content": "Tarif 0,39 €/kWh", "priority": "AlwaysFront", "language": "de", "state": "Charging",
                "evse_id": 1, "starts_at": "2030-01-01T08:00:00Z", "ends_at": "2030-01-01T18:00:00Z",
                "transaction_id": "tx-1"}, action="SetDisplayMessage", status="Accepted")
            await cmd.send("POST", "/display-messages", {"content": "https://example.org/help", "format": "URI"},
                           action="SetDisplayMessage", status="Accepted")
            mark = st.mark()
            await cmd.send("POST", "/display-messages/refresh", None, action="GetDisplayMessages", status="Accepted")
            await st.wait_for(lambda e: e.get("event") == "answer" and e["action"] == "NotifyDisplayMessages"
                              and not e["params"].get("tbc"), since=mark, what="the last NotifyDisplayMessages")
            items = (await server.api.get(url)).json()["items"]
            assert [(m["message_id"], m["source"], m["format"]) for m in items] == [
                (data["message_id"], "station", "UTF8"), (data["message_id"] + 1, "station", "URI")]
            assert items[0]["content"] == "Tarif 0,39 €/kWh" and items[0]["transaction_id"] == "tx-1"
            await cmd.send("DELETE", f"/display-messages/{data['message_id']}", None, action="ClearDisplayMessage",
                           status="Accepted", http=200)
            await cmd.send("DELETE", f"/display-messages/{data['message_id']}", None, action="ClearDisplayMessage",
                           status="Unknown", http=200)
            assert [m["message_id"] for m in (await server.api.get(url)).json()["items"]] == [data["message_id"] + 1]
        st.assert_clean_exit(await st.quit())
