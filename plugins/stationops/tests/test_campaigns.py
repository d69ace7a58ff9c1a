"""Firmware campaigns over real stations of both protocol versions."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from plugins.stationops.tests.conftest import eventually
from csms.testing.stations import station

IMAGE = b"\x7fELF firmware image 2.0 " + bytes(range(256)) * 64


async def upload_firmware(srv, version: str = "2.0", **fields) -> dict:
    response = await srv.api.post("/firmware", data={"version": version, **fields},
                                  files={"file": (f"fw-{version}.bin", IMAGE, "application/octet-stream")})
    assert response.status_code == 201, response.text
    return response.json()


async def campaign(srv, campaign_id: int) -> dict:
    response = await srv.api.get(f"/campaigns/{campaign_id}")
    assert response.status_code == 200, response.text
    return response.json()


def by_station(detail: dict) -> dict[str, dict]:
    return {t["station_id"]: t for t in detail["targets"]}


async def wait_targets(srv, campaign_id: int, want: dict[str, str]) -> dict:
    async def check():
        detail = await campaign(srv, campaign_id)
        targets = by_station(detail)
        return detail if all(targets[s]["status"] == status for s, status in want.items()) else None

    return await eventually(check, what=f"targets {want}")


async def test_firmware_is_served_over_http(server):
    fw = await upload_firmware(server)
    assert fw["sha256"] == hashlib.sha256(IMAGE).hexdigest()
    assert fw["download_url"].startswith(server.base_url + "/firmware/")
    import httpx

    async with httpx.AsyncClient() as client:
        got = await client.get(fw["download_url"])
        missing = await client.get(server.base_url + "/firmware/nothing-here.bin")
    assert got.status_code == 200 and got.content == IMAGE
    assert missing.status_code == 404


async def test_campaign_progress_failure_retry_and_sessions(any_server):
    server = any_server
    fw = await upload_firmware(server)
    token = await server.api.post("/tokens", json={"id_token": "CARD1"})
    assert token.status_code in (200, 201), token.text
    async with station(server, "FW16", "1.6") as a, station(server, "FW201", "2.0.1") as b, \
            station(server, "FWBUSY", "1.6") as c:
        for st in (a, b, c):
            st.next_version = "2.0"
        a.fail_with, a.failures_left = "DownloadFailed", 1  # the first attempt fails, the retry works
        tx = await c.start_session("CARD1")
        await eventually(lambda: _active_sessions(server, "FWBUSY"), what="the session on FWBUSY")

        response = await server.api.post("/campaigns", json={
            "name": "to 2.0", "firmware_id": fw["id"], "selection": {"stations": ["FW16", "FW201", "FWBUSY"]},
            "concurrency": 2, "max_retries": 1, "retry_delay_s": 0, "start": True})
        assert response.status_code == 201, response.text
        cid = response.json()["id"]

        detail = await wait_targets(server, cid, {"FW16": "succeeded", "FW201": "succeeded"})
        targets = by_station(detail)
        # every status, in order, for the station that went straight through
        steps = [h["status"] for h in targets["FW201"]["history"]]
        assert steps == ["pending", "sent", "downloading", "downloaded", "installing", "installed", "succeeded"]
        assert [h.get("station_status") for h in targets["FW201"]["history"][2:6]] == [
            "Downloading", "Downloaded", "Installing", "Installed"]
        # the failure and the retry
        assert targets["FW16"]["attempts"] == 2
        a_steps = [(h["status"], h.get("station_status", "")) for h in targets["FW16"]["history"]]
        assert ("pending", "DownloadFailed") in a_steps
        assert a_steps[-1] == ("succeeded", "")
        assert a.statuses_sent == ["Downloading", "DownloadFailed", "Downloading", "Downloaded", "Installing",
                                   "Installed"]
        # the stations really downloaded the image the CSMS serves
        assert b.downloaded == [fw["sha256"]] and a.downloaded == [fw["sha256"]]
        assert [r[0] for r in b.received] == ["UpdateFirmware"]
        assert b.received[0][1]["firmware"]["location"] == fw["download_url"]

        # no update during a session
        busy = targets["FWBUSY"]
        assert busy["status"] == "pending" and busy["detail"] == "a session is running"
        assert c.received == []
        await c.stop_session(tx)
        detail = await wait_targets(server, cid, {"FWBUSY": "succeeded"})
        assert [r[0] for r in c.received] == ["UpdateFirmware"]
        assert detail["status"] == "completed" or (await eventually(
            lambda: _status_is(server, cid, "completed"), what="campaign completed"))

    stations = {s["station_id"]: s for s in (await server.api.get("/stations")).json()["items"]}
    assert {stations[s]["firmware_version"] for s in ("FW16", "FW201", "FWBUSY")} == {"2.0"}


async def test_final_failure_opens_alert_and_wrong_version_fails(server):
    fw = await upload_firmware(server, "3.0")
    async with station(server, "BAD201", "2.0.1") as bad, station(server, "LIE16", "1.6") as liar:
        bad.fail_with, bad.failures_left = "InstallationFailed", 5
        bad.next_version = liar.next_version = "3.0-rc"  # the liar reboots with a version that is not the target
        response = await server.api.post("/campaigns", json={
            "name": "to 3.0", "firmware_id": fw["id"], "selection": {"stations": ["BAD201", "LIE16"]},
            "max_retries": 0, "start": True})
        cid = response.json()["id"]
        detail = await wait_targets(server, cid, {"BAD201": "failed", "LIE16": "failed"})
        targets = by_station(detail)
        assert "InstallationFailed" in targets["BAD201"]["detail"]
        assert "booted with 3.0-rc, expected 3.0" in targets["LIE16"]["detail"]

        async def firmware_alerts():
            items = (await server.api.get("/alerts", params={"status": "open"})).json()["items"]
            return {a["station_id"] for a in items if a["kind"] == "firmware_failed"} >= {"BAD201", "LIE16"}

        await eventually(firmware_alerts, what="firmware_failed alerts")

        # a manual retry of a failed station that now behaves
        liar.next_version = "3.0"
        retried = await server.api.post(f"/campaigns/{cid}/targets/{targets['LIE16']['id']}/retry")
        assert retried.status_code == 200, retried.text
        await wait_targets(server, cid, {"LIE16": "succeeded"})


async def test_signed_updates_use_the_secure_messages(server):
    fw = await upload_firmware(server, "4.0", signature="c2lnbmF0dXJl",
                               signing_certificate="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----")
    assert fw["signed"] is True
    async with station(server, "SEC16", "1.6") as a, station(server, "SEC201", "2.0.1") as b:
        a.next_version = b.next_version = "4.0"
        cid = (await server.api.post("/campaigns", json={
            "name": "secure", "firmware_id": fw["id"], "selection": {"stations": ["SEC16", "SEC201"]},
            "start": True})).json()["id"]
        detail = await wait_targets(server, cid, {"SEC16": "succeeded", "SEC201": "succeeded"})
    assert a.received[0][0] == "SignedUpdateFirmware"
    assert a.received[0][1]["firmware"]["signature"] == "c2lnbmF0dXJl"
    assert b.received[0][1]["firmware"]["signature"] == "c2lnbmF0dXJl"
    assert "-----BEGIN CERTIFICATE-----" in b.received[0][1]["firmware"]["signing_certificate"]
    targets = by_station(detail)
    assert targets["SEC16"]["signed"] and targets["SEC201"]["signed"]
    assert targets["SEC16"]["request_id"] == a.received[0][1]["request_id"]


async def test_window_pause_resume_and_cancel(server):
    fw = await upload_firmware(server, "5.0")
    now = datetime.now(timezone.utc)
    closed_from = (now + timedelta(hours=2)).strftime("%H:%M")
    closed_to = (now + timedelta(hours=3)).strftime("%H:%M")
    async with station(server, "WIN1", "2.0.1") as one, station(server, "WIN2", "1.6") as two:
        one.next_version = two.next_version = "5.0"
        cid = (await server.api.post("/campaigns", json={
            "name": "night", "firmware_id": fw["id"], "selection": {"stations": ["WIN1"]}, "timezone": "UTC",
            "window_start": closed_from, "window_end": closed_to, "start": True})).json()["id"]
        await wait_targets(server, cid, {"WIN1": "pending"})
        await eventually(lambda: _detail_of(server, cid, "WIN1", "outside the maintenance window"),
                         what="waiting for the window")
        assert (await server.api.post(f"/campaigns/{cid}/pause")).json()["status"] == "paused"
        opened = await server.api.patch(f"/campaigns/{cid}", json={"window_start": "", "window_end": ""})
        assert opened.status_code == 200, opened.text
        from plugins.stationops.campaigns import _driver

        await _driver.run_once()  # a paused campaign sends nothing
        assert one.received == []
        assert (await server.api.post(f"/campaigns/{cid}/resume")).json()["status"] == "running"
        await wait_targets(server, cid, {"WIN1": "succeeded"})

        other = (await server.api.post("/campaigns", json={
            "name": "never", "firmware_id": fw["id"], "selection": {"stations": ["WIN2"]}, "timezone": "UTC",
            "window_start": closed_from, "window_end": closed_to, "start": True})).json()["id"]
        cancelled = (await server.api.post(f"/campaigns/{other}/cancel")).json()
        assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 1
        await _driver.run_once()
        assert two.received == []
        refused = await server.api.post(f"/campaigns/{other}/resume")
        assert refused.status_code == 409


async def _active_sessions(srv, station_id: str) -> bool:
    detail = (await srv.api.get(f"/stations/{station_id}")).json()
    return bool(detail["active_sessions"])


async def _status_is(srv, cid: int, status: str) -> bool:
    return (await campaign(srv, cid))["status"] == status


async def _detail_of(srv, cid: int, station_id: str, text: str) -> bool:
    return text in by_station(await campaign(srv, cid))[station_id]["detail"]


async def test_a_report_that_reaches_another_node_before_the_answer_moves_the_target(any_server, monkeypatch):
    """In a cluster the campaign's leader sends the update through the node that holds the
    station, and the station's first FirmwareStatusNotification (here a quick DownloadFailed) can
    be handled on that node before the leader has the answer. It finds the target in flight (the
    leader marks it before sending) and the retry follows at once, not after the progress
    timeout; the leader's late write of the answer does not undo it."""
    from plugins.stationops import campaigns as campaigns_module

    server = any_server
    fw = await upload_firmware(server, "5.0")
    ops = server.core.operations
    real_update = ops.update_firmware
    reported: list[str] = []

    async def update_then_report_elsewhere(station_id, **kwargs):
        answer = await real_update(station_id, **kwargs)
        if not reported:  # the other node's handler, before this node reads the answer
            reported.append(station_id)
            await campaigns_module._driver._on_firmware_status(station_id, "DownloadFailed", None)
        return answer

    monkeypatch.setattr(ops, "update_firmware", update_then_report_elsewhere)
    async with station(server, "FWNODE", "2.0.1") as st:
        st.next_version = "5.0"
        real_run = st.run_update
        runs: list[str] = []

        async def first_silent(location, request_id, signed):
            runs.append(location)
            if len(runs) > 1:  # the first attempt's own reports came from "the other node" above
                await real_run(location, request_id, signed)
        st.run_update = first_silent

        response = await server.api.post("/campaigns", json={
            "name": "to 5.0", "firmware_id": fw["id"], "selection": {"stations": ["FWNODE"]},
            "max_retries": 1, "retry_delay_s": 0, "progress_timeout_s": 3600, "start": True})
        assert response.status_code == 201, response.text
        cid = response.json()["id"]
        detail = await wait_targets(server, cid, {"FWNODE": "succeeded"})
        target = by_station(detail)["FWNODE"]
        assert reported == ["FWNODE"] and len(runs) == 2 and target["attempts"] == 2
        steps = [(h["status"], h.get("station_status", "")) for h in target["history"]]
        assert steps[:3] == [("pending", ""), ("sent", ""), ("pending", "DownloadFailed")]
        assert steps[-1] == ("succeeded", "")


async def test_a_report_that_lands_as_the_progress_timeout_fires_stands(any_server, monkeypatch):
    """The campaign's pass reads a target in flight and silent for longer than the progress
    timeout; before it writes the failure, the station's report (handled on the node that holds
    the station) moves the target on to downloading. The timeout's write is refused, the target
    being no longer as the pass read it: the report stands, and no failed attempt is counted."""
    from plugins.stationops import campaigns as campaigns_module
    from plugins.stationops.tables import CampaignTarget

    server = any_server
    fw = await upload_firmware(server, "6.0")
    real_fail = campaigns_module._fail
    raced: list[tuple[bool, str, int]] = []

    async def report_first(target, campaign, reason, *args, **kwargs):
        if not reason.startswith("no news") or raced:
            return await real_fail(target, campaign, reason, *args, **kwargs)
        await campaigns_module._driver._on_firmware_status(target["station_id"], "Downloading", None)
        written = await real_fail(target, campaign, reason, *args, **kwargs)
        row = await CampaignTarget.select().where(CampaignTarget.id == target["id"]).first()
        raced.append((written, row["status"], row["attempts"]))
        return written

    monkeypatch.setattr(campaigns_module, "_fail", report_first)
    async with station(server, "FWLATE", "2.0.1") as st:
        async def silent(location, request_id, signed):  # accepts the update, then says nothing
            return None
        st.run_update = silent
        response = await server.api.post("/campaigns", json={
            "name": "to 6.0", "firmware_id": fw["id"], "selection": {"stations": ["FWLATE"]},
            "max_retries": 0, "retry_delay_s": 0, "progress_timeout_s": 1, "start": True})
        assert response.status_code == 201, response.text
        async def timed_out() -> bool:
            return bool(raced)
        await eventually(timed_out, timeout=30, what="the progress timeout's pass")
    assert raced[0] == (False, "downloading", 1), raced
