"""A driver's personal data over the REST API (GDPR): ``GET /api/v1/drivers/{id}/export``
(operator) and ``POST /api/v1/drivers/{id}/erase`` (admin), audited with the API key as actor,
409 while a session runs, idempotent; ``DELETE /api/v1/drivers/{id}`` refused for a driver with
sessions (erase instead) and still deleting one without; tenants and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import httpx

from csms.api.auth import create_api_key
from csms.core.tables import AuditEntry, ChargingSession, Driver, DriverAccount, IdToken
from csms.testing.stations import station
from tests.driver.conftest import make_driver
from tests.driver.test_personal_data import charged, plugins  # noqa: F401 (plugins: a fixture)


async def key_client(srv: Any, role: str, organization: int | None = None) -> httpx.AsyncClient:
    key, _ = await create_api_key(f"gdpr {role} {organization or 'global'}", role, organization)
    return httpx.AsyncClient(base_url=f"{srv.base_url}/api/v1", timeout=30, headers={"Authorization": f"Bearer {key}"})


async def test_rest_export_and_erase_with_roles_audit_and_a_running_session(any_server, plugins):  # noqa: F811
    server = any_server
    driver_id, (card_pk,) = await make_driver(server, "Lea Rest", "lea@example.org", "CARD-LEA")
    plugins.members[driver_id] = "lea@example.org"
    await charged(server, "CP-REST", "CARD-LEA", times=2)
    viewer, operator, admin = [await key_client(server, role) for role in ("viewer", "operator", "admin")]
    try:
        assert (await viewer.get(f"/drivers/{driver_id}/export")).status_code == 403
        exported = await operator.get(f"/drivers/{driver_id}/export")
        assert exported.status_code == 200, exported.text
        assert exported.headers["content-type"].startswith("application/json")
        assert exported.headers["cache-control"] == "no-store"
        data = exported.json()
        assert data["format"] == "csms-driver-data/1" and data["driver"]["id"] == driver_id
        assert (data["driver"]["name"], data["driver"]["email"]) == ("Lea Rest", "lea@example.org")
        assert [c["id_token"] for c in data["cards"]] == ["CARD-LEA"]
        assert [s["energy_wh"] for s in data["sessions"]] == [4000, 4000]
        assert all(s["station_id"] == "CP-REST" and s["cost"]["total_incl_vat"] == "1.94" for s in data["sessions"])
        assert data["plugins"]["test-gdpr-loyalty"] == {"loyalty_address": "lea@example.org", "points": 120}
        assert data["portal_account"] is None
        entry = await AuditEntry.select().where((AuditEntry.action == "export")
                                                & (AuditEntry.object_id == str(driver_id))).first()
        assert entry["actor"] == "api_key:gdpr operator global" and entry["object_type"] == "driver"

        # erasing is the admin's: an operator is refused and nothing changes
        refused = await operator.post(f"/drivers/{driver_id}/erase")
        assert refused.status_code == 403
        assert (await Driver.select(Driver.email).where(Driver.id == driver_id).first())["email"] == "lea@example.org"

        # a running session blocks the erasure with a clear 409
        async with station(server, "CP-REST-BUSY", "1.6") as cp:
            running = await cp.start_session("CARD-LEA")
            busy = await admin.post(f"/drivers/{driver_id}/erase")
            assert busy.status_code == 409, busy.text
            assert "running at CP-REST-BUSY" in busy.json()["detail"] and "has to end" in busy.json()["detail"]
            assert busy.json()["extra"]["station_id"] == "CP-REST-BUSY"
            assert (await IdToken.select(IdToken.status, IdToken.driver).where(IdToken.id == card_pk).first()
                    ) == {"status": "Accepted", "driver": driver_id}
            await cp.stop_session(running)
        assert not await AuditEntry.exists().where(AuditEntry.action == "erase")

        # deleting a driver with sessions would unlink them: refused, pointing to erasure
        delete = await operator.delete(f"/drivers/{driver_id}")
        assert delete.status_code == 409, delete.text
        assert "3 charging sessions" in delete.json()["detail"]
        assert f"POST /api/v1/drivers/{driver_id}/erase" in delete.json()["detail"]
        assert await Driver.exists().where(Driver.id == driver_id)
        assert await ChargingSession.count().where(ChargingSession.driver == driver_id) == 3

        done = await admin.post(f"/drivers/{driver_id}/erase")
        assert done.status_code == 200, done.text
        assert done.json() == {"driver_id": driver_id, "already_erased": False, "cards_blocked": ["CARD-LEA"],
                               "sessions_kept": 3, "station_clears": 0, "failed_plugins": []}
        row = await Driver.select().where(Driver.id == driver_id).first()
        assert (row["name"], row["email"], row["phone"], row["notes"]) == ("Erased driver", None, None, "")
        assert (await IdToken.select(IdToken.status, IdToken.driver, IdToken.label).where(IdToken.id == card_pk).first()
                ) == {"status": "Blocked", "driver": None, "label": ""}
        sessions = await ChargingSession.select(ChargingSession.energy_wh).where(ChargingSession.driver == driver_id)
        assert sorted(s["energy_wh"] for s in sessions) == [4000, 4000, 4000]  # the accounting stays
        erase = await AuditEntry.select().where(AuditEntry.action == "erase").output(load_json=True)
        assert len(erase) == 1 and erase[0]["actor"] == "api_key:gdpr admin global"
        assert erase[0]["object_id"] == str(driver_id) and erase[0]["after"]["sessions_kept"] == 3
        assert [d["email"] for d in plugins.erased] == ["lea@example.org"]

        again = await admin.post(f"/drivers/{driver_id}/erase")
        assert again.status_code == 200 and again.json()["already_erased"] is True, again.text
        assert await AuditEntry.count().where(AuditEntry.action == "erase") == 1
        assert [d["email"] for d in plugins.erased] == ["lea@example.org", None]  # asked again, harmlessly

        after = (await operator.get(f"/drivers/{driver_id}/export")).json()
        assert after["driver"]["email"] is None and after["driver"]["name"] == "Erased driver"
        assert after["cards"] == [] and len(after["sessions"]) == 3 and "test-gdpr-loyalty" not in after["plugins"]
        assert "lea@example.org" not in (await operator.get(f"/drivers/{driver_id}/export")).text

        # unknown drivers are 404 for a global caller too
        for method, path in [("GET", "/drivers/999999/export"), ("POST", "/drivers/999999/erase"),
                             ("DELETE", "/drivers/999999")]:
            assert (await admin.request(method, path)).status_code == 404, (method, path)
    finally:
        for client in (viewer, operator, admin):
            await client.aclose()


async def test_deleting_a_driver_without_sessions_still_works(any_server):
    server = any_server
    driver_id, (card_pk,) = await make_driver(server, "Max Never", "max@example.org", "CARD-MAX")
    await DriverAccount(driver=driver_id).save()
    gone = await server.api.delete(f"/drivers/{driver_id}")
    assert gone.status_code == 204, gone.text
    assert not await Driver.exists().where(Driver.id == driver_id)
    assert not await DriverAccount.exists().where(DriverAccount.driver == driver_id)
    assert (await IdToken.select(IdToken.driver, IdToken.status).where(IdToken.id == card_pk).first()
            ) == {"driver": None, "status": "Accepted"}  # the card stays, unlinked, as before
    entry = await AuditEntry.select().where((AuditEntry.action == "delete") & (AuditEntry.object_type == "driver")
                                            ).output(load_json=True).first()
    assert entry["object_id"] == str(driver_id) and entry["before"]["name"] == "Max Never"
    assert (await server.api.delete(f"/drivers/{driver_id}")).status_code == 404


async def test_another_organizations_driver_is_a_404_and_the_routes_are_documented(server):
    alpha = (await server.api.post("/organizations", json={"name": "Alpha REST GDPR"})).json()["id"]
    bravo = (await server.api.post("/organizations", json={"name": "Bravo REST GDPR"})).json()["id"]
    mine = (await server.api.post("/drivers", json={"name": "Alpha person", "email": "a@example.org",
                                                    "organization": alpha})).json()["id"]
    theirs = (await server.api.post("/drivers", json={"name": "Bravo person", "email": "b@example.org",
                                                      "organization": bravo})).json()["id"]
    admin = await key_client(server, "admin", alpha)
    try:
        for method, path in [("GET", f"/drivers/{theirs}/export"), ("POST", f"/drivers/{theirs}/erase"),
                             ("DELETE", f"/drivers/{theirs}")]:
            answer = await admin.request(method, path)
            assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
        assert (await Driver.select(Driver.email).where(Driver.id == theirs).first())["email"] == "b@example.org"
        assert not await AuditEntry.exists().where((AuditEntry.object_id == str(theirs))
                                                   & AuditEntry.action.is_in(["export", "erase", "delete"]))
        assert (await admin.get(f"/drivers/{mine}/export")).json()["driver"]["email"] == "a@example.org"
        done = await admin.post(f"/drivers/{mine}/erase")
        assert done.status_code == 200 and done.json()["already_erased"] is False
        entry = await AuditEntry.select().where(AuditEntry.action == "erase").first()
        assert entry["actor"] == f"api_key:gdpr admin {alpha}" and entry["organization"] == alpha
    finally:
        await admin.aclose()

    doc = (await server.api.get("/schema/openapi.json")).json()
    export = doc["paths"]["/api/v1/drivers/{item_id}/export"]["get"]
    erase = doc["paths"]["/api/v1/drivers/{item_id}/erase"]["post"]
    assert "GDPR" in export["summary"] and "operator role" in export["description"].lower()
    assert "GDPR" in erase["summary"] and "409" in erase["description"]
    assert "delete" in doc["paths"]["/api/v1/drivers/{item_id}"]
