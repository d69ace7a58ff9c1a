"""Local authorization lists sent to the ``ocpp-rpc`` strict station (tests/node): every frame
the CSMS sends is validated against the official 1.6 / 2.0.1 schemas by the station."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from tests.test_ocpp_rpc_strict import PROTOCOLS, create_token, node_station, strict_station  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::Warning")


@pytest.fixture(autouse=True)
def quick_lists(monkeypatch):
    monkeypatch.setenv("CSMS_LOCAL_LISTS_DEBOUNCE_S", "0.3")
    monkeypatch.setenv("CSMS_LOCAL_LISTS_CONNECT_DELAY_S", "0.1")


@pytest.fixture
async def server(tmp_path, quick_lists):
    from csms.testing import running_server

    async with running_server(tmp_path, unknown_stations="accept") as srv:
        yield srv


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_strict_station_gets_full_then_differential_lists(server, node_station, protocol):
    v16 = protocol == "ocpp1.6"
    sid = "LLSTRICT16" if v16 else "LLSTRICT201"
    tag = f"{sid}-TAG"
    await create_token(server, tag)
    expiry = (datetime.now(timezone.utc) + timedelta(days=10)).isoformat()
    for body in ({"id_token": "LL-FLEET-1", "group_id": "FLEET"}, {"id_token": "LL-EXP-1", "expires_at": expiry},
                 {"id_token": "LL-BLK-1", "status": "Blocked"},
                 {"id_token": "A-TOKEN-LONGER-THAN-20-CHARS"}):  # 2.0.1 only: 1.6 idTags are 20 at most
        r = await server.api.post("/tokens", json=body)
        assert r.status_code == 201, r.text

    def local_list_calls(since: int = 0) -> list[dict]:
        return st.find_all(lambda e: e.get("event") == "call" and e["action"] == "SendLocalList", since)

    async with strict_station(node_station, server, sid, protocol, token=tag, linger=120) as st:
        await st.wait_event("call", action="GetLocalListVersion", timeout=30)
        full = await st.wait_event("call", action="SendLocalList", timeout=30)
        await st.wait_event("reply", action="SendLocalList")
        params = full["params"]
        assert params["updateType"] == "Full", st.report()
        assert params["listVersion" if v16 else "versionNumber"] == 1
        items = params["localAuthorizationList"]
        if v16:
            names = {i["idTag"]: i["idTagInfo"] for i in items}
            assert set(names) == {tag, "LL-FLEET-1", "LL-EXP-1", "LL-BLK-1"}
            assert names["LL-FLEET-1"]["parentIdTag"] == "FLEET" and "expiryDate" in names["LL-EXP-1"]
        else:
            names = {i["idToken"]["idToken"]: i["idTokenInfo"] for i in items}
            assert set(names) == {tag, "LL-FLEET-1", "LL-EXP-1", "LL-BLK-1", "A-TOKEN-LONGER-THAN-20-CHARS"}
            assert names["LL-FLEET-1"]["groupIdToken"] == {"idToken": "FLEET", "type": "Central"}
            assert "cacheExpiryDateTime" in names["LL-EXP-1"]
        assert names["LL-BLK-1"]["status"] == "Blocked"

        mark = st.mark()
        r = await server.api.patch("/tokens/LL-FLEET-1", json={"status": "Blocked"})
        assert r.status_code == 200, r.text
        assert (await server.api.delete("/tokens/LL-EXP-1")).status_code == 204
        diff = await st.wait_event("call", action="SendLocalList", since=mark, timeout=30)
        await st.wait_event("reply", action="SendLocalList", since=mark)
        p = diff["params"]
        assert p["updateType"] == "Differential" and p["listVersion" if v16 else "versionNumber"] == 2
        key = (lambda i: i["idTag"]) if v16 else (lambda i: i["idToken"]["idToken"])
        info = "idTagInfo" if v16 else "idTokenInfo"
        changed = {key(i): i.get(info) for i in p["localAuthorizationList"]}
        assert set(changed) == {"LL-FLEET-1", "LL-EXP-1"}
        assert changed["LL-FLEET-1"]["status"] == "Blocked" and changed["LL-EXP-1"] is None  # removed

        for _ in range(100):  # the CSMS commits after the station's answer arrived
            state = (await server.api.get(f"/stations/{sid}/local-list")).json()
            if state["version"] == 2:
                break
            await asyncio.sleep(0.05)
        assert state["version"] == 2 and state["last_result"] == "Accepted" and state["pending_changes"] == 0
        await st.wait_event("lingering", timeout=60)
        assert len(local_list_calls()) == 2
        rc = await st.quit()
        st.assert_clean_exit(rc)
