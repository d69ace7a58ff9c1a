"""The audit log: changes through REST, the admin and the CLI, and commands sent to stations,
each with who, when, what and the fields before and after; read-only; kept to the tenant."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from csms.api.auth import create_api_key
from csms.core.tables import AuditEntry
from csms.testing import admin_client, csv_rows
from csms.testing.stations import station


async def test_changes_and_commands_are_logged_with_before_and_after(any_server):
    srv = any_server
    api = srv.api
    alpha = (await api.post("/organizations", json={"name": "Alpha"})).json()["id"]
    bravo = (await api.post("/organizations", json={"name": "Bravo"})).json()["id"]
    key, _ = await create_api_key("alpha ops", "operator", alpha)
    admin_key, _ = await create_api_key("alpha admin", "admin", alpha)
    async with httpx.AsyncClient(base_url=f"{srv.base_url}/api/v1", timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}) as ops:
        assert (await ops.post("/tokens", json={"id_token": "AUD1", "label": "first"})).status_code == 201
        assert (await ops.patch("/tokens/AUD1", json={"label": "second", "status": "Blocked"})).status_code == 200
        site = (await ops.post("/sites", json={"name": "Depot"})).json()["id"]
        assert (await ops.delete(f"/sites/{site}")).status_code == 204
        assert (await ops.post("/stations", json={"station_id": "AUD-ST"})).status_code == 201
        async with station(srv, "AUD-ST", "1.6"):
            # the test station has no TriggerMessage handler (CALLERROR, 502): the command is sent all the same
            assert (await ops.post("/stations/AUD-ST/trigger", json={"message": "Heartbeat"})).status_code in (200, 502)
    await api.post("/tokens", json={"id_token": "BRAVO1", "organization": bravo})

    rows = await AuditEntry.select().where(AuditEntry.actor == "api_key:alpha ops").order_by(AuditEntry.id).output(
        load_json=True)
    assert [(r["action"], r["object_type"], r["object_id"]) for r in rows] == [
        ("create", "token", "AUD1"), ("update", "token", "AUD1"), ("create", "site", str(site)),
        ("delete", "site", str(site)), ("create", "station", "AUD-ST"), ("command", "station", "AUD-ST")]
    update = rows[1]
    assert update["before"] == {"label": "first", "status": "Accepted"}
    assert update["after"] == {"label": "second", "status": "Blocked"}
    assert rows[3]["before"]["name"] == "Depot" and rows[3]["after"] is None
    assert rows[5]["after"]["action"] == "TriggerMessage"
    assert all(r["organization"] == alpha for r in rows)  # ALPHA's objects: ALPHA's admins read these
    assert all(r["actor_organization"] == alpha for r in rows if r["action"] != "command")

    # read back over REST: the organization's admin reads its own entries only; nobody edits them
    async with httpx.AsyncClient(base_url=f"{srv.base_url}/api/v1", timeout=30,
                                 headers={"Authorization": f"Bearer {admin_key}"}) as admin:
        mine = (await admin.get("/audit", params={"limit": 1000})).json()
        assert {e["object_id"] for e in mine["items"]} >= {"AUD1", "AUD-ST"}
        assert "BRAVO1" not in {e["object_id"] for e in mine["items"]}
        assert (await admin.get("/audit", params={"object_type": "site"})).json()["total"] == 2
        entry = mine["items"][0]["id"]
        for method in ("PATCH", "PUT", "DELETE"):
            assert (await admin.request(method, f"/audit/{entry}")).status_code in (404, 405)
    async with httpx.AsyncClient(base_url=f"{srv.base_url}/api/v1", timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}) as ops:
        assert (await ops.get("/audit")).status_code == 403  # the operator role does not read it
    everything = (await api.get("/audit", params={"limit": 1000})).json()
    assert "BRAVO1" in {e["object_id"] for e in everything["items"]}


async def test_admin_page_filters_exports_and_logs_form_changes(server):
    srv = server
    org = (await srv.api.post("/organizations", json={"name": "Alpha"})).json()["id"]
    admin = await admin_client(srv, "admin", organization=org, csrf_header=True)
    try:
        saved = await admin.post("/admin/tokens/new", data={"id_token": "FORM1", "type": "ISO14443",
                                                            "status": "Accepted", "label": "desk"})
        assert saved.status_code == 303
        page = await admin.get("/admin/audit", params={"object_type": "token"})
        assert page.status_code == 200 and "FORM1" in page.text and "user:admin-org" in page.text
        assert "Fields" in page.text  # the before/after table
        none = await admin.get("/admin/audit", params={"actor": "nobody-like-this"})
        assert "No entries match these filters" in none.text
        bad = await admin.get("/admin/audit", params={"from": "yesterday"})
        assert "is not a date" in bad.text
        csv = await admin.get("/admin/audit.csv")
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        table = csv_rows(csv.text)
        assert table[0][:4] == ["id", "at", "actor", "action"]
        assert any(r[5] == "FORM1" and r[3] == "create" for r in table[1:])
    finally:
        await admin.aclose()
    viewer = await admin_client(srv, "viewer", organization=org, csrf_header=True)
    try:
        assert (await viewer.get("/admin/audit")).status_code == 403
    finally:
        await viewer.aclose()


def test_cli_changes_are_logged(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env.update(CSMS_DATA_DIR=str(tmp_path), CSMS_LOG_LEVEL="warning")

    def csms(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "csms", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    assert csms("migrate").returncode == 0
    import sqlite3

    db = sqlite3.connect(tmp_path / "csms.sqlite")
    db.execute("INSERT INTO organization (name, kind, address, created_at) VALUES ('Fleet', 'customer', '', "
               "'2026-01-01T00:00:00+00:00')")
    db.commit()
    made = csms("user", "create", "--username", "vera", "--role", "viewer", "--organization", "Fleet")
    assert made.returncode == 0, made.stderr
    unknown = csms("apikey", "create", "--name", "k", "--organization", "Nowhere")
    assert unknown.returncode == 1 and "no organization 'Nowhere'" in unknown.stderr
    key = csms("apikey", "create", "--name", "k", "--role", "viewer", "--organization", "1")
    assert key.returncode == 0 and key.stdout.startswith("csms_")
    assert "Fleet" in csms("apikey", "list").stdout
    rows = db.execute("SELECT actor, action, object_type, organization FROM audit_entry ORDER BY id").fetchall()
    assert rows == [("cli", "create", "user", 1), ("cli", "create", "api_key", 1)]
    role = db.execute("SELECT role, organization FROM user_role").fetchall()
    assert role == [("viewer", 1)]
