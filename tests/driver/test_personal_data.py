"""A driver's personal data over HTTP (GDPR): the export a driver downloads from the portal and an
operator from the admin, and erasure from either side: what goes, what stays (sessions and their
energy), what a running session prevents, idempotence, roles, tenants and the audit log."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from csms.core.tables import AuditEntry, ChargingSession, Driver, DriverAccount, DriverSecret, IdToken
from csms.plugin_api import hookimpl
from csms.testing import admin_client, pm
from csms.testing.stations import station
from tests.driver.conftest import csrf_of, make_driver, signed_in_driver
from tests.driver.test_portal_browser import FlatPricing


class Loyalty:
    """A throwaway plugin with a copy of its own: a loyalty account per driver e-mail address."""

    def __init__(self) -> None:
        self.members: dict[int, str] = {}
        self.erased: list[dict[str, Any]] = []

    @hookimpl
    def driver_data_export(self, driver):
        if driver["id"] not in self.members:
            return None

        async def mine():
            return {"loyalty_address": self.members[driver["id"]], "points": 120}

        return mine

    @hookimpl
    def driver_erased(self, driver):
        self.erased.append(dict(driver))
        self.members.pop(driver["id"], None)


@pytest.fixture
def plugins():
    loyalty = Loyalty()
    pm.register(FlatPricing(), name="test-gdpr-pricing")
    pm.register(loyalty, name="test-gdpr-loyalty")
    yield loyalty
    pm.unregister(name="test-gdpr-loyalty")
    pm.unregister(name="test-gdpr-pricing")


async def charged(srv: Any, station_id: str, card: str, times: int = 1) -> None:
    """``times`` finished sessions of 4 kWh each with ``card`` at a 1.6 station."""
    async with station(srv, station_id, "1.6") as cp:
        for _ in range(times):
            await cp.stop_session(await cp.start_session(card))


async def test_a_driver_downloads_everything_held_about_them_and_nothing_of_anyone_else(any_server, mailbox, plugins):
    server = any_server
    driver_id, _ = await make_driver(server, "Hana Export", "hana@example.org", "CARD-HANA", "FOB-HANA")
    other, _ = await make_driver(server, "Ivo Other", "ivo@example.org", "CARD-IVO")
    plugins.members[driver_id] = "hana@example.org"
    await charged(server, "CP-EXPORT", "CARD-HANA", times=2)
    await charged(server, "CP-EXPORT-2", "CARD-IVO")

    client = await signed_in_driver(server, mailbox, "hana@example.org")
    page = await client.get("/driver/account")
    assert 'href="/driver/account/export"' in page.text and "Download my data" in page.text
    await client.post("/driver/account", data={"password": "a long secret 1", "repeat": "a long secret 1",
                                               "_csrf_token": csrf_of(page.text)})
    answer = await client.get("/driver/account/export")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["content-disposition"].startswith('attachment; filename="my-charging-data-')
    assert answer.headers["cache-control"] == "no-store"
    data = answer.json()

    assert data["format"] == "csms-driver-data/1"
    assert data["driver"]["id"] == driver_id
    assert (data["driver"]["name"], data["driver"]["email"]) == ("Hana Export", "hana@example.org")
    assert data["portal_account"]["password_set"] is True and data["portal_account"]["signed_in_browsers"] == 1
    assert [c["id_token"] for c in data["cards"]] == ["CARD-HANA", "FOB-HANA"]
    assert len(data["sessions"]) == 2
    for s in data["sessions"]:
        assert s["station_id"] == "CP-EXPORT" and s["id_token"] == "CARD-HANA" and s["state"] == "completed"
        assert s["energy_wh"] == 4000 and s["started_at"] and s["stopped_at"]
        assert s["cost"]["currency"] == "EUR" and s["cost"]["total_incl_vat"] == "1.94"  # 4 kWh at 0.40 + 21 % VAT
    assert data["plugins"] == {"test-gdpr-loyalty": {"loyalty_address": "hana@example.org", "points": 120}}
    text = answer.text
    assert "argon2" not in text and "password_hash" not in text
    assert "CARD-IVO" not in text and "ivo@example.org" not in text and "CP-EXPORT-2" not in text

    entry = await AuditEntry.select().where((AuditEntry.action == "export")
                                            & (AuditEntry.object_id == str(driver_id))).first()
    assert entry["actor"] == f"driver:{driver_id}" and entry["object_type"] == "driver"
    assert other != driver_id
    await client.aclose()

    async with httpx.AsyncClient(base_url=server.base_url) as stranger:
        assert (await stranger.get("/driver/account/export")).headers["location"] == "/driver"


async def test_a_driver_deletes_their_account_and_the_accounting_stays(any_server, mailbox, plugins):
    server = any_server
    driver_id, (card_pk, fob_pk) = await make_driver(server, "Jo Erase", "jo@example.org", "CARD-JO", "FOB-JO")
    plugins.members[driver_id] = "jo@example.org"
    await IdToken.update({IdToken.label: "Jo's blue card"}).where(IdToken.id == card_pk)
    await charged(server, "CP-ERASE", "CARD-JO", times=2)
    energy_before = sorted(r["energy_wh"] for r in await ChargingSession.select(ChargingSession.energy_wh).where(
        ChargingSession.driver == driver_id))
    assert energy_before == [4000, 4000]

    client = await signed_in_driver(server, mailbox, "jo@example.org")
    page = await client.get("/driver/account/delete")
    assert page.status_code == 200 and "cannot be undone" in page.text
    token = csrf_of(page.text)

    async with station(server, "CP-BUSY", "1.6") as cp:
        running = await cp.start_session("FOB-JO")
        busy_page = await client.get("/driver/account/delete")
        assert "running at CP-BUSY" in busy_page.text
        busy = await client.post("/driver/account/delete", data={"confirm": "yes", "_csrf_token": token})
        assert busy.status_code == 409 and "running at CP-BUSY" in busy.text
        assert (await Driver.select(Driver.email).where(Driver.id == driver_id).first())["email"] == "jo@example.org"
        assert await IdToken.count().where(IdToken.driver == driver_id) == 2
        await cp.stop_session(running)

    unconfirmed = await client.post("/driver/account/delete", data={"_csrf_token": token})
    assert unconfirmed.status_code == 422 and "Tick the box" in unconfirmed.text
    assert (await client.post("/driver/account/delete", data={"confirm": "yes"})).status_code == 403  # no CSRF

    done = await client.post("/driver/account/delete", data={"confirm": "yes", "_csrf_token": token})
    assert done.status_code == 303 and done.headers["location"] == "/driver/deleted"
    assert "csms_driver=" in done.headers["set-cookie"]
    assert "Account deleted" in (await client.get("/driver/deleted")).text

    row = await Driver.select().where(Driver.id == driver_id).first()
    assert (row["name"], row["email"], row["phone"], row["notes"]) == ("Erased driver", None, None, "")
    cards = await IdToken.select(IdToken.id, IdToken.status, IdToken.driver, IdToken.label).where(
        IdToken.id.is_in([card_pk, fob_pk])).order_by(IdToken.id)
    assert cards == [{"id": card_pk, "status": "Blocked", "driver": None, "label": ""},
                     {"id": fob_pk, "status": "Blocked", "driver": None, "label": ""}]
    sessions = await ChargingSession.select(ChargingSession.energy_wh, ChargingSession.driver).where(
        ChargingSession.id_token.is_in(["CARD-JO", "FOB-JO"]))
    assert len(sessions) == 3 and all(s["driver"] == driver_id for s in sessions)
    assert sorted(s["energy_wh"] for s in sessions) == [4000, 4000, 4000]  # the totals do not change
    assert not await DriverAccount.exists().where(DriverAccount.driver == driver_id)
    assert not await DriverSecret.exists().where(DriverSecret.driver == driver_id)
    assert (await server.api.get("/tokens/CARD-JO")).json()["status"] == "Blocked"

    assert [d["email"] for d in plugins.erased] == ["jo@example.org"]  # the plugin saw whom to forget
    assert driver_id not in plugins.members
    entries = await AuditEntry.select().where(AuditEntry.object_id.is_in([str(driver_id), "CARD-JO", "FOB-JO"])).output(
        load_json=True)
    assert "jo@example.org" not in json.dumps(entries, default=str)  # the REST create's snapshot is redacted
    assert "Jo Erase" not in json.dumps(entries, default=str)
    erase = [e for e in entries if e["action"] == "erase"]
    assert len(erase) == 1 and erase[0]["actor"] == f"driver:{driver_id}"
    assert erase[0]["after"]["sessions_kept"] == 3 and erase[0]["after"]["cards_unlinked"] == ["CARD-JO", "FOB-JO"]

    assert (await client.get("/driver/cards")).headers["location"] == "/driver"  # signed out
    fresh = await server.api.get(f"/drivers/{driver_id}")
    assert fresh.json()["email"] is None
    await client.aclose()


async def test_the_operator_exports_and_erases_a_driver_with_the_right_role(server, mailbox, plugins):
    driver_id, _ = await make_driver(server, "Kai Admin", "kai@example.org", "CARD-KAI")
    plugins.members[driver_id] = "kai@example.org"
    await charged(server, "CP-ADMIN", "CARD-KAI")
    viewer = await admin_client(server, "viewer")
    operator = await admin_client(server, "operator", csrf_header=True)
    admin = await admin_client(server, "admin", csrf_header=True)

    assert (await viewer.get(f"/admin/drivers/{driver_id}/export")).status_code == 403
    listing = await operator.get("/admin/drivers")
    assert f"/admin/drivers/{driver_id}/export" in listing.text and f"/admin/drivers/{driver_id}/erase" not in listing.text
    exported = await operator.get(f"/admin/drivers/{driver_id}/export")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith(f'attachment; filename="driver-{driver_id}-data-')
    data = exported.json()
    assert data["driver"]["email"] == "kai@example.org" and data["cards"][0]["id_token"] == "CARD-KAI"
    assert data["sessions"][0]["station_id"] == "CP-ADMIN" and data["sessions"][0]["energy_wh"] == 4000
    assert "test-gdpr-loyalty" in data["plugins"]
    entry = await AuditEntry.select().where((AuditEntry.action == "export")
                                            & (AuditEntry.object_id == str(driver_id))).first()
    assert entry["actor"] == "user:operator" and entry["object_type"] == "driver"

    # deleting the record of a driver who charged is refused with the way to go (erasure)
    refused = await operator.post(f"/admin/drivers/{driver_id}/delete")
    assert refused.status_code in (400, 422) and "Erase" in refused.text, refused.text
    assert await Driver.exists().where(Driver.id == driver_id)

    assert (await operator.get(f"/admin/drivers/{driver_id}/erase")).status_code == 403
    assert (await operator.post(f"/admin/drivers/{driver_id}/erase", data={"confirm": "yes"})).status_code == 403
    assert (await Driver.select(Driver.email).where(Driver.id == driver_id).first())["email"] == "kai@example.org"

    page = await admin.get(f"/admin/drivers/{driver_id}/erase")
    assert page.status_code == 200 and "kai@example.org" in page.text and "cannot be undone" in page.text
    assert (await admin.post(f"/admin/drivers/{driver_id}/erase", data={})).status_code == 422
    done = await admin.post(f"/admin/drivers/{driver_id}/erase", data={"confirm": "yes"})
    assert done.status_code == 200 and "1 card blocked and unlinked; 1 session kept" in done.text, done.text
    assert (await Driver.select(Driver.name).where(Driver.id == driver_id).first())["name"] == "Erased driver"

    again = await admin.post(f"/admin/drivers/{driver_id}/erase", data={"confirm": "yes"})
    assert again.status_code == 200 and "erased before: nothing changed" in again.text
    assert await AuditEntry.count().where((AuditEntry.action == "erase")
                                          & (AuditEntry.object_id == str(driver_id))) == 1
    assert [d["email"] for d in plugins.erased] == ["kai@example.org", None]  # asked again, idempotently
    erase = await AuditEntry.select().where(AuditEntry.action == "erase").first()
    assert erase["actor"] == "user:admin"
    after = (await operator.get(f"/admin/drivers/{driver_id}/export")).json()
    assert after["driver"]["email"] is None and after["cards"] == [] and len(after["sessions"]) == 1
    assert after["sessions"][0]["energy_wh"] == 4000
    for client in (viewer, operator, admin):
        await client.aclose()


async def test_an_organization_cannot_export_or_erase_another_organizations_driver(server):
    alpha = (await server.api.post("/organizations", json={"name": "Alpha GDPR"})).json()["id"]
    bravo = (await server.api.post("/organizations", json={"name": "Bravo GDPR"})).json()["id"]
    mine = (await server.api.post("/drivers", json={"name": "Alpha person", "email": "a@example.org",
                                                    "organization": alpha})).json()["id"]
    theirs = (await server.api.post("/drivers", json={"name": "Bravo person", "email": "b@example.org",
                                                      "organization": bravo})).json()["id"]
    admin = await admin_client(server, "admin", organization=alpha, csrf_header=True)
    for method, path in [("GET", f"/admin/drivers/{theirs}/export"), ("GET", f"/admin/drivers/{theirs}/erase"),
                         ("POST", f"/admin/drivers/{theirs}/erase"), ("GET", "/admin/drivers/999999/export")]:
        answer = await admin.request(method, path, data={"confirm": "yes"} if method == "POST" else None)
        assert answer.status_code == 404, (method, path, answer.status_code)
    assert (await Driver.select(Driver.email).where(Driver.id == theirs).first())["email"] == "b@example.org"
    assert not await AuditEntry.exists().where((AuditEntry.object_id == str(theirs))
                                               & AuditEntry.action.is_in(["export", "erase"]))
    assert (await admin.get(f"/admin/drivers/{mine}/export")).json()["driver"]["email"] == "a@example.org"
    await admin.aclose()
