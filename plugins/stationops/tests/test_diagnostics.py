"""Diagnostics: the station really uploads over HTTP to the URL the CSMS gave it."""

from __future__ import annotations

import hashlib

from plugins.stationops.tests.conftest import eventually
from csms.testing.stations import station


async def _request(srv, station_id: str) -> dict:
    response = await srv.api.post("/diagnostics", json={"station_id": station_id})
    assert response.status_code == 201, response.text
    return response.json()


async def _received(srv, request_id: int) -> dict | None:
    row = (await srv.api.get(f"/diagnostics/{request_id}")).json()
    return row if row["status"] == "received" and row["station_status"] == "Uploaded" else None


async def test_diagnostics_upload_of_both_versions_is_downloadable(any_server):
    server = any_server
    async with station(server, "DIAG16", "1.6") as a, station(server, "DIAG201", "2.0.1") as b:
        req_a = await _request(server, "DIAG16")
        req_b = await _request(server, "DIAG201")
        assert req_a["location"].startswith(server.base_url + "/diagnostics/upload/")
        assert a.received == [("GetDiagnostics", {"location": req_a["location"]})]
        assert b.received[0][1]["log"]["remote_location"] == req_b["location"]
        got_a = await eventually(lambda: _received(server, req_a["id"]), what="1.6 upload (multipart POST)")
        got_b = await eventually(lambda: _received(server, req_b["id"]), what="2.0.1 upload (raw PUT)")
        body_a, body_b = a.diagnostics_body, b.diagnostics_body

    assert got_a["station_file_name"] == "diag-DIAG16.log"
    assert [f["file_name"] for f in got_a["files"]] == ["diag-DIAG16.log"]
    assert [f["file_name"] for f in got_b["files"]] == ["log-DIAG201.txt"]
    files = (await server.api.get("/diagnostics/files", params={"station_id": "DIAG16"})).json()["items"]
    assert len(files) == 1 and files[0]["size"] == len(body_a)
    assert files[0]["sha256"] == hashlib.sha256(body_a).hexdigest()
    download = await server.api.get(files[0]["download"].removeprefix("/api/v1"))
    assert download.status_code == 200 and download.content == body_a
    assert "diag-DIAG16.log" in download.headers["content-disposition"]
    download_b = await server.api.get(got_b["files"][0]["download"].removeprefix("/api/v1"))
    assert download_b.content == body_b


async def test_upload_urls_are_one_per_request_and_offline_is_refused(server):
    import httpx

    async with httpx.AsyncClient() as client:
        unknown = await client.post(server.base_url + "/diagnostics/upload/not-a-token", content=b"x")
    assert unknown.status_code == 404
    offline = await server.api.post("/diagnostics", json={"station_id": "NOBODY"})
    assert offline.status_code == 404
    async with station(server, "GONE", "1.6"):
        pass
    refused = await server.api.post("/diagnostics", json={"station_id": "GONE"})
    assert refused.status_code == 409
    listed = (await server.api.get("/diagnostics", params={"station_id": "GONE"})).json()["items"]
    assert listed[0]["status"] == "failed"
