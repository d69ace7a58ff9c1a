"""The station page's operator panels for what was REST only, in Chromium on a desktop and on a
phone, with stations connected through the test kit: certificates (ask what is installed,
install a CA certificate from its PEM, delete one, renew the station's own; 2.0.1 and 1.6),
DataTransfer (2.0.1 and 2.1), and the OCPP 2.1 energy controls (aFRR signal, dynamic schedule
update, priority charging, allowed energy transfer, web payment started). What goes wrong reads
as words (bad input, the station's refusal, the station offline), a form that came back with an
error keeps what was typed, and a viewer sees the panels without their forms (its POSTs: 403)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v21.enums import Action as Action21
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from playwright.async_api import expect

from csms.core.tables import ChargingSession
from csms.testing.stations import Station201, now_iso, station
from tests.admin.conftest import SCREENSHOTS, http_login, screenshot
from tests.test_certificates import Connected, root_pem
from tests.test_energy_controls_21 import DYNAMIC
from tests.test_ocpp_21 import Station21, library_station
from tests.test_ocpp_rpc_strict import create_token, eventually

DEVICES = [("desktop", 1280, 900), ("phone", 390, 844)]


async def _open(panel: Any, summary: str) -> None:
    """Open a form of the panel (an answer that went well brings the panel back with it closed)."""
    details = panel.locator("details", has=panel.page.locator("summary", has_text=summary))
    if not await details.evaluate("d => d.open"):
        await panel.locator("summary", has_text=summary).click()


async def _send(panel: Any, button: str) -> None:
    """Press a panel's button and wait until htmx has swapped and settled its answer (a form
    filled again at once would otherwise be typed into while the new panel settles)."""
    await panel.page.evaluate("""() => {
        window.panelSettled = false;
        const settled = (e) => {  // this POST's answer, not a live fragment's GET that settles meanwhile
            if ((e.detail.requestConfig || {}).verb !== "post") return;
            window.panelSettled = true;
            document.body.removeEventListener("htmx:afterSettle", settled);
        };
        document.body.addEventListener("htmx:afterSettle", settled);
    }""")
    await panel.get_by_role("button", name=button).click()
    await panel.page.wait_for_function("() => window.panelSettled")


async def _shot(page: Any, panel: Any, name: str) -> None:
    """The whole page, and the panel alone (to look at it closely)."""
    await panel.scroll_into_view_if_needed()
    await screenshot(page, name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await panel.screenshot(path=str(SCREENSHOTS / f"{name}-panel.png"))
    # nothing of the panel sticks out sideways, on a phone neither (its tables scroll in their box)
    wide = await panel.evaluate("""panel => Array.from(panel.querySelectorAll("*"))
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest(".table-scroll"))
        .map(e => e.tagName + "#" + e.id + "." + e.className).slice(0, 5)""")
    assert not wide, (name, wide)


async def _offline(server: Any, sid: str) -> None:
    async def gone() -> bool:
        return (await server.api.get(f"/stations/{sid}")).json()["online"] is False

    await eventually(gone, what=f"{sid} offline")


# -- certificates ----------------------------------------------------------------------------------

CERTIFICATE_CASES = [("2.0.1", "desktop", 1280, 900), ("1.6", "phone", 390, 844)]


@pytest.mark.parametrize("case", CERTIFICATE_CASES, ids=[f"{c[0]}-{c[1]}" for c in CERTIFICATE_CASES])
async def test_certificates_panel(page_as, server, case):
    version, name, width, height = case
    sid = f"ADMCERT-{name}"
    page = await page_as("operator", width=width, height=height)
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    async with Connected(server.ws_url(sid), sid, version) as cp:
        await page.goto(f"/admin/stations/{sid}")
        panel = page.locator("#certificates")
        outcome = panel.locator("[data-outcome]")
        await expect(panel.locator("[data-list=issued-certificates]")).to_contain_text("no certificate")

        await _send(panel, "Ask the station for its installed certificates")
        await expect(outcome).to_have_text("The station has no certificates installed of the types asked for.")
        await expect(panel.locator("[data-list=installed-certificates]")).to_have_text(
            "The station reports no installed certificates.")

        # not a PEM: refused before anything is sent, what was pasted still there
        await _open(panel, "Install a CA certificate")
        await panel.locator("#cert-type").select_option("ManufacturerRootCertificate")
        await panel.get_by_label("Certificate (PEM)").fill("-----BEGIN CERTIFICATE-----\nnot base64\n")
        await _send(panel, "Install certificate")
        await expect(outcome).to_have_text("certificate is not a PEM X.509 certificate")
        await expect(outcome).to_have_class("outcome error")
        await expect(panel.get_by_label("Certificate (PEM)")).to_have_value("-----BEGIN CERTIFICATE-----\nnot base64\n")
        await expect(panel.locator("#cert-type")).to_have_value("ManufacturerRootCertificate")
        assert not cp.store.installed

        root = root_pem()
        await panel.locator("#cert-type").select_option("CSMSRootCertificate")
        await panel.get_by_label("Certificate (PEM)").fill(root)
        await _send(panel, "Install certificate")
        await expect(outcome).to_contain_text("The station installed the certificate (serial ")
        ((sent_type, hash_data),) = cp.store.installed.values()
        assert sent_type == ("CentralSystemRootCertificate" if version == "1.6" else "CSMSRootCertificate")
        serial = hash_data["serialNumber"]

        await _send(panel, "Ask the station for its installed certificates")
        await expect(outcome).to_have_text("The station has 1 certificate installed.")
        row = panel.locator(f"tr[data-installed-serial='{serial}']")
        await expect(row).to_contain_text("CSMSRootCertificate")
        await expect(row).to_contain_text(hash_data["hashAlgorithm"])
        await _shot(page, panel, f"station-certificates-installed-{name}")

        await _send(row, f"Delete certificate {serial}")
        await expect(outcome).to_have_text(f"The station deleted certificate {serial}.")
        assert not cp.store.installed
        await _send(panel, "Ask the station for its installed certificates")
        await expect(panel.locator("tr[data-installed-serial]")).to_have_count(0)

        await _open(panel, "Renew the station's certificate")
        options = await panel.locator("#cert-renew-type option").all_inner_texts()
        assert options == (["ChargingStationCertificate"] if version == "1.6"
                           else ["ChargingStationCertificate", "V2GCertificate"])
        await _send(panel, "Renew certificate")
        await expect(outcome).to_contain_text("The station will send a new signing request")
        await asyncio.wait_for(cp.store.signed.get(), 10)
        assert cp.store.triggered == ["SignChargePointCertificate" if version == "1.6"
                                      else "SignChargingStationCertificate"]
        await page.goto(f"/admin/stations/{sid}")
        await expect(panel.locator("table[data-list=issued-certificates] tbody tr")).to_have_count(1)
        await _shot(page, panel, f"station-certificates-{name}")

        audit = (await server.api.get("/audit", params={"object_id": sid})).json()["items"]
        assert {e["summary"] for e in audit} >= {"install CSMSRootCertificate: Accepted",
                                                 f"delete certificate {serial}: Accepted",
                                                 "renew ChargingStationCertificate: Accepted"}

    await _offline(server, sid)
    await _send(panel, "Ask the station for its installed certificates")
    await expect(outcome).to_have_text("The station is offline.")

    viewer = await page_as("viewer", width=width, height=height)
    await viewer.goto(f"/admin/stations/{sid}")
    await expect(viewer.locator("#certificates table[data-list=issued-certificates]")).to_be_visible()
    await expect(viewer.locator("#certificates form")).to_have_count(0)
    async with http_login(server.base_url, "viewer") as client:
        for path in ("installed", "install", "delete", "renew"):
            r = await client.post(f"/admin/stations/{sid}/certificates/{path}", data={
                "_csrf_token": client.cookies.get("csms_csrftoken")})
            assert r.status_code == 403, (path, r.status_code)


# -- DataTransfer ----------------------------------------------------------------------------------

def _answer(vendor_id: str, data: Any) -> tuple[str, Any]:
    if vendor_id == "com.refuse":
        return "Rejected", None
    return "Accepted", {"echo": data}


class DataStation201(Station201):
    transfers: list[tuple[str, Any, Any]]

    @on(Action201.data_transfer)
    async def on_data_transfer(self, vendor_id, message_id=None, data=None, **kwargs):
        self.transfers.append((vendor_id, message_id, data))
        status, answer = _answer(vendor_id, data)
        return result201.DataTransfer(status=status, data=answer)


class ListedStation21(Station21):
    """Takes the local list the CSMS keeps in step after the boot (GetLocalListVersion,
    SendLocalList); unanswered, they would hold up the commands the test sends."""

    @on(Action21.get_local_list_version)
    async def on_get_local_list_version(self, **kwargs):
        return result21.GetLocalListVersion(version_number=0)

    @on(Action21.send_local_list)
    async def on_send_local_list(self, version_number, update_type, **kwargs):
        return result21.SendLocalList(status="Accepted")


class DataStation21(ListedStation21):
    transfers: list[tuple[str, Any, Any]]

    @on(Action21.data_transfer)
    async def on_data_transfer(self, vendor_id, message_id=None, data=None, **kwargs):
        self.transfers.append((vendor_id, message_id, data))
        status, answer = _answer(vendor_id, data)
        return result21.DataTransfer(status=status, data=answer)


async def _data_transfer(panel: Any, vendor: str, message: str, kind: str, data: str) -> None:
    await _open(panel, "Send a data transfer")
    await panel.get_by_label("Vendor id").fill(vendor)
    await panel.get_by_label("Message id (optional)").fill(message)
    await panel.locator("#dt-kind").select_option(kind)
    await panel.get_by_label("Data (optional)").fill(data)
    await _send(panel, "Send data transfer")


@pytest.mark.parametrize("device", DEVICES, ids=[d[0] for d in DEVICES])
async def test_data_transfer_panel(page_as, server, device):
    name, width, height = device
    sid = f"ADMDT-{name}"
    page = await page_as("operator", width=width, height=height)
    async with station(server, sid, "2.0.1", cls=DataStation201) as cp:
        cp.transfers = []
        await page.goto(f"/admin/stations/{sid}")
        panel = page.locator("#data-transfer")
        outcome = panel.locator("[data-outcome]")

        await _data_transfer(panel, "com.example", "Price", "json", '{"price": 0.3')  # cut short
        await expect(outcome).to_contain_text("the data is not JSON")
        await expect(panel.get_by_label("Vendor id")).to_have_value("com.example")
        await expect(panel.get_by_label("Data (optional)")).to_have_value('{"price": 0.3')
        await expect(panel.locator("#dt-kind")).to_have_value("json")
        assert cp.transfers == []

        await panel.get_by_label("Data (optional)").fill('{"price": 0.3}')
        await _send(panel, "Send data transfer")
        await expect(outcome).to_have_text("The station accepted the data transfer.")
        assert cp.transfers == [("com.example", "Price", {"price": 0.3})]
        assert json.loads(await panel.locator("[data-field=data]").inner_text()) == {"echo": {"price": 0.3}}

        await _data_transfer(panel, "com.refuse", "", "text", "plain words")
        await expect(outcome).to_have_text("The station answered Rejected.")
        await expect(panel.locator("[data-field=answer]")).to_contain_text("Rejected")
        assert cp.transfers[-1] == ("com.refuse", None, "plain words")
        await _shot(page, panel, f"station-data-transfer-{name}")

    await _offline(server, sid)
    await _data_transfer(panel, "com.example", "", "text", "x")
    await expect(outcome).to_have_text("The station is offline.")

    sid21 = f"ADMDT21-{name}"
    async with library_station(server, sid21, "Dt21", DataStation21) as cp21:
        cp21.transfers = []
        await page.goto(f"/admin/stations/{sid21}")
        await _data_transfer(panel, "com.example", "Hello", "text", "hi")
        await expect(outcome).to_have_text("The station accepted the data transfer.")
        assert cp21.transfers == [("com.example", "Hello", "hi")]
        await expect(panel.locator("[data-field=data]")).to_contain_text('"echo": "hi"')

    viewer = await page_as("viewer", width=width, height=height)
    await viewer.goto(f"/admin/stations/{sid}")
    await expect(viewer.locator("#data-transfer")).to_be_visible()
    await expect(viewer.locator("#data-transfer form")).to_have_count(0)


# -- OCPP 2.1 energy controls ----------------------------------------------------------------------

class EnergyStation21(ListedStation21):
    """Answers the 2.1 energy control messages (an aFRR signal of 7 is Rejected)."""

    calls: list[tuple[str, Any]]

    @on(Action21.set_charging_profile)
    async def on_set_charging_profile(self, evse_id, charging_profile, **kwargs):
        return result21.SetChargingProfile(status="Accepted")

    @on(Action21.afrr_signal)
    async def on_afrr_signal(self, timestamp, signal, **kwargs):
        self.calls.append(("AFRRSignal", signal))
        return result21.AFRRSignal(status="Rejected" if signal == 7 else "Accepted")

    @on(Action21.update_dynamic_schedule)
    async def on_update_dynamic_schedule(self, charging_profile_id, schedule_update, **kwargs):
        self.calls.append(("UpdateDynamicSchedule", (charging_profile_id, schedule_update)))
        return result21.UpdateDynamicSchedule(status="Accepted")

    @on(Action21.use_priority_charging)
    async def on_use_priority_charging(self, transaction_id, activate, **kwargs):
        self.calls.append(("UsePriorityCharging", (transaction_id, activate)))
        return result21.UsePriorityCharging(status="Accepted")

    @on(Action21.notify_allowed_energy_transfer)
    async def on_notify_allowed_energy_transfer(self, transaction_id, allowed_energy_transfer, **kwargs):
        self.calls.append(("NotifyAllowedEnergyTransfer", (transaction_id, allowed_energy_transfer)))
        return result21.NotifyAllowedEnergyTransfer(status="Accepted")

    @on(Action21.get_periodic_event_stream)
    async def on_get_periodic_event_stream(self, **kwargs):
        self.calls.append(("GetPeriodicEventStream", None))
        return result21.GetPeriodicEventStream(constant_stream_data=[
            {"id": 3, "variable_monitoring_id": 12, "params": {"interval": 60, "values": 10}}])

    @on(Action21.adjust_periodic_event_stream)
    async def on_adjust_periodic_event_stream(self, id, params, **kwargs):
        self.calls.append(("AdjustPeriodicEventStream", (id, params)))
        return result21.AdjustPeriodicEventStream(status="Accepted" if id == 3 else "Rejected")

    @on(Action21.notify_web_payment_started)
    async def on_notify_web_payment_started(self, evse_id, timeout, **kwargs):
        self.calls.append(("NotifyWebPaymentStarted", (evse_id, timeout)))
        return result21.NotifyWebPaymentStarted()


async def _start_transaction(cp: Any, tag: str, tx: str) -> None:
    await cp.call(call21.StatusNotification(timestamp=now_iso(), connector_status="Available", evse_id=1,
                                            connector_id=1))
    await cp.call(call21.TransactionEvent(
        event_type="Started", timestamp=now_iso(), trigger_reason="Authorized", seq_no=0,
        transaction_info={"transaction_id": tx, "charging_state": "Charging"},
        id_token={"id_token": tag, "type": "ISO14443"}, evse={"id": 1, "connector_id": 1},
        meter_value=[{"timestamp": now_iso(), "sampled_value": [{"value": 1000.0}]}]))


@pytest.mark.parametrize("device", DEVICES, ids=[d[0] for d in DEVICES])
async def test_energy_controls_panel_of_a_21_station(page_as, server, device):
    name, width, height = device
    sid, tag, tx = f"ADMEC-{name}", f"ADMEC-TAG-{name}", f"ec-tx-{name}"
    await create_token(server, tag)
    page = await page_as("operator", width=width, height=height)
    async with library_station(server, sid, "Ec21", EnergyStation21) as cp:
        cp.calls = []
        await _start_transaction(cp, tag, tx)
        assert (await server.core.operations.set_charging_profile(sid, evse_id=1, profile=DYNAMIC, by="test"))[
            "status"] == "Accepted"
        await page.goto(f"/admin/stations/{sid}")
        panel = page.locator("#energy-controls")
        outcome = panel.locator("[data-outcome]")
        await expect(panel.locator(f"tr[data-transaction='{tx}']")).to_be_visible()
        await expect(panel.locator("tr[data-profile='501']")).to_be_visible()
        await expect(page.locator("#certificates")).to_be_visible()  # every version has the certificates panel

        # aFRR: not a number (kept), accepted, refused
        await _open(panel, "Send an aFRR signal")
        await panel.locator("#ec-signal").fill("five")
        await _send(panel, "Send aFRR signal")
        await expect(outcome).to_have_text("signal is not a whole number: 'five'")
        await expect(panel.locator("#ec-signal")).to_have_value("five")
        await panel.locator("#ec-signal").fill("5")
        await _send(panel, "Send aFRR signal")
        await expect(outcome).to_have_text("The station accepted the aFRR signal.")
        await _open(panel, "Send an aFRR signal")
        await panel.locator("#ec-signal").fill("7")
        await _send(panel, "Send aFRR signal")
        await expect(outcome).to_have_text("The station answered Rejected.")
        assert [c for c in cp.calls if c[0] == "AFRRSignal"] == [("AFRRSignal", 5), ("AFRRSignal", 7)]

        # dynamic schedule: a value that is no number, or none at all, is refused before sending
        await _open(panel, "Update a dynamic schedule")
        await panel.locator("#ec-profile").select_option("501")
        await panel.locator("#ec-limit").fill("ten")
        await _send(panel, "Update schedule")
        await expect(outcome).to_have_text("limit is not a number: 'ten'")
        await expect(panel.locator("#ec-profile")).to_have_value("501")
        await _shot(page, panel, f"station-energy-controls-schedule-error-{name}")
        await panel.locator("#ec-limit").fill("")
        await _send(panel, "Update schedule")
        await expect(outcome).to_contain_text("the schedule update sets no value")
        assert not [c for c in cp.calls if c[0] == "UpdateDynamicSchedule"]
        await panel.locator("#ec-limit").fill("10")
        await panel.locator("#ec-setpoint").fill("-6")
        await _send(panel, "Update schedule")
        await expect(outcome).to_have_text("The station accepted the update of charging profile 501.")
        await expect(panel.locator("tr[data-profile='501'] [data-field=schedule-update]")).to_contain_text(
            "limit 10, setpoint -6")
        assert cp.calls[-1] == ("UpdateDynamicSchedule", (501, {"limit": 10.0, "setpoint": -6.0}))

        # priority charging of the running transaction
        await _open(panel, "Priority charging")
        await panel.locator("#ec-priority-tx").select_option(tx)
        await _send(panel, "Send priority charging")
        await expect(outcome).to_have_text("Priority charging started.")
        await expect(panel.locator(f"tr[data-transaction='{tx}'] [data-field=priority]")).to_have_text("on")
        assert cp.calls[-1] == ("UsePriorityCharging", (tx, True))

        # allowed energy transfer: none chosen is an error, then two modes
        await _open(panel, "Allowed energy transfer")
        await panel.locator("#ec-allowed-tx").select_option(tx)
        await _send(panel, "Send allowed modes")
        await expect(outcome).to_have_text("choose at least one energy transfer mode")
        await expect(panel.locator("#ec-allowed-tx")).to_have_value(tx)
        await panel.get_by_label("AC_BPT", exact=True).check()
        await panel.get_by_label("DC_BPT", exact=True).check()
        await _send(panel, "Send allowed modes")
        await expect(outcome).to_have_text("The station accepted the allowed energy transfer modes.")
        await expect(panel.locator(f"tr[data-transaction='{tx}'] [data-field=modes]")).to_have_text("AC_BPT, DC_BPT")
        assert cp.calls[-1] == ("NotifyAllowedEnergyTransfer", (tx, ["AC_BPT", "DC_BPT"]))
        session = await ChargingSession.select(ChargingSession.priority_charging,
                                               ChargingSession.allowed_energy_transfer).where(
            ChargingSession.transaction_id == tx).first().output(load_json=True)
        assert session == {"priority_charging": True, "allowed_energy_transfer": ["AC_BPT", "DC_BPT"]}

        # web payment started
        await _open(panel, "Web payment started")
        await panel.locator("#ec-pay-timeout").fill("0")
        await _send(panel, "Send web payment started")
        await expect(outcome).to_have_text("timeout is outside 1 to 86400: 0")
        await panel.locator("#ec-pay-timeout").fill("120")
        await _send(panel, "Send web payment started")
        await expect(outcome).to_have_text("The station knows the web payment started.")
        assert cp.calls[-1] == ("NotifyWebPaymentStarted", (1, 120))

        # periodic event streams: opened by the station and sending, listed with their monitor and
        # newest value; asked (the listing follows the station's answer), adjusted
        answer = await cp.call(call21.OpenPeriodicEventStream(constant_stream_data={
            "id": 3, "variable_monitoring_id": 12, "params": {"interval": 30, "values": 5}}))
        assert answer.status == "Accepted"
        await cp._connection.send(json.dumps([6, f"send-{name}", "NotifyPeriodicEventStream", {
            "id": 3, "pending": 0, "basetime": "2026-12-07T10:00:00.000Z", "data": [{"t": 5, "v": "230.5"}]}]))
        await eventually(lambda: _stream_values(server, sid), what="the stream's value stored")
        await _send(panel, "Ask the station for its event streams")
        await expect(outcome).to_have_text("Periodic event streams open at the station: 1.")
        await expect(panel.locator("tr[data-stream='3'] [data-field=interval]")).to_have_text("60")
        await expect(panel.locator("tr[data-stream='3'] [data-field=state]")).to_have_text("open")
        await expect(panel.locator("tr[data-stream='3'] [data-field=last]")).to_contain_text("230.5")
        await _open(panel, "Adjust an event stream")
        await panel.get_by_label("Stream id").fill("3")
        await _send(panel, "Adjust stream")
        await expect(outcome).to_have_text("give interval and/or values")
        await expect(panel.get_by_label("Stream id")).to_have_value("3")
        await panel.get_by_label("Send every (s)").fill("30")
        await _send(panel, "Adjust stream")
        await expect(outcome).to_have_text("The station adjusted event stream 3.")
        await expect(panel.locator("tr[data-stream='3'] [data-field=interval]")).to_have_text("30")
        assert cp.calls[-1] == ("AdjustPeriodicEventStream", (3, {"interval": 30}))
        await _open(panel, "Adjust an event stream")
        await panel.get_by_label("Stream id").fill("9")
        await panel.get_by_label("Send every (values)").fill("5")
        await _send(panel, "Adjust stream")
        await expect(outcome).to_have_text("The station answered Rejected.")
        # the same over REST
        r = await server.api.get(f"/stations/{sid}/event-streams")
        assert r.status_code == 200 and [(s["id"], s["open"], s["interval"]) for s in r.json()["streams"]] == [
            (3, True, 30)], r.text  # a refused adjustment of an unknown stream leaves nothing
        r = await server.api.post(f"/stations/{sid}/event-streams/3/adjust", json={"values": 4})
        assert r.status_code == 201 and r.json()["status"] == "Accepted", r.text
        assert cp.calls[-1] == ("AdjustPeriodicEventStream", (3, {"values": 4}))
        for body in ({}, {"interval": -1}, {"interval": 1, "extra": 1}):
            r = await server.api.post(f"/stations/{sid}/event-streams/3/adjust", json=body)
            assert r.status_code == 400, (body, r.text)
        await _shot(page, panel, f"station-energy-controls-{name}")

        viewer = await page_as("viewer", width=width, height=height)
        await viewer.goto(f"/admin/stations/{sid}")
        await expect(viewer.locator(f"#energy-controls tr[data-transaction='{tx}']")).to_be_visible()
        await expect(viewer.locator("#energy-controls form")).to_have_count(0)
        async with http_login(server.base_url, "viewer") as client:
            r = await client.post(f"/admin/stations/{sid}/energy-controls/afrr-signal", data={
                "signal": "1", "_csrf_token": client.cookies.get("csms_csrftoken")})
            assert r.status_code == 403

    await _offline(server, sid)
    await _open(panel, "Send an aFRR signal")
    await panel.locator("#ec-signal").fill("3")
    await _send(panel, "Send aFRR signal")
    await expect(outcome).to_have_text("The station is offline.")

    async with station(server, f"ADMEC201-{name}", "2.0.1"):
        await page.goto(f"/admin/stations/ADMEC201-{name}")
        await expect(page.locator("h1")).to_contain_text("ADMEC201")
        await expect(page.locator("#energy-controls")).to_have_count(0)
        await expect(page.locator("#data-transfer")).to_be_visible()
        r = await server.api.post(f"/stations/ADMEC201-{name}/event-streams/refresh")
        assert r.status_code == 409 and r.json()["extra"]["error"] == "NotSupported", r.text


# -- a panel form that comes back with an error keeps what was typed -------------------------------

async def test_a_panel_form_keeps_what_was_typed_after_an_error(page_as, server):
    sid = "ADMKEEP"
    async with station(server, sid, "2.0.1"):
        page = await page_as("operator")
        await page.goto(f"/admin/stations/{sid}")
        panel = page.locator("#display-messages")
        await panel.locator("summary", has_text="Show a message").click()
        await panel.get_by_label("Message").fill("Closed for maintenance until noon")
        await panel.locator("#dm-priority").select_option("AlwaysFront")
        await panel.locator("#dm-evse").fill("one")
        await panel.get_by_label("Language (optional)").fill("en")
        await _send(panel, "Show message")
        await expect(panel.locator("[data-outcome]")).to_have_text("'one' is not a number")
        # the panel came back with its form open and filled as it was sent
        await expect(panel.locator("details", has=page.locator("summary", has_text="Show a message"))).to_have_attribute(
            "open", "")
        await expect(panel.get_by_label("Message")).to_have_value("Closed for maintenance until noon")
        await expect(panel.locator("#dm-priority")).to_have_value("AlwaysFront")
        await expect(panel.locator("#dm-evse")).to_have_value("one")
        await expect(panel.get_by_label("Language (optional)")).to_have_value("en")
        # the panel's other forms stay closed and empty; the next answer that goes well clears it
        await expect(page.locator("details[open]")).to_have_count(1)
        await screenshot(page, "station-panel-form-kept-after-error")


async def _stream_values(server: Any, sid: str) -> bool:
    streams = (await server.api.get(f"/stations/{sid}/event-streams")).json()["streams"]
    return any(s["received"] for s in streams)


@pytest.mark.parametrize("device,width,height", DEVICES)
async def test_a_panel_form_sent_without_javascript_says_what_came_of_it(page_as, server, device, width, height):
    """With JavaScript off a panel's form is an ordinary form. Posting it leads to a page that
    says what came of it, in words (the form's error, then the station's refusal), with a link
    back to the station; before, it led back to the station page with no word of the outcome."""
    sid = f"ADMNOJS{device[0].upper()}"
    async with station(server, sid, "2.0.1"):
        page = await page_as("operator", width=width, height=height, javascript=False)
        await page.goto(f"/admin/stations/{sid}")
        panel = page.locator("#display-messages")
        await panel.locator("summary", has_text="Show a message").click()  # <details>: no script needed
        await panel.get_by_label("Message").fill("Closed for maintenance until noon")
        await panel.locator("#dm-evse").fill("one")
        await panel.get_by_role("button", name="Show message").click()
        await page.wait_for_url(f"**/admin/stations/{sid}/display-messages")
        await expect(page.locator("[data-outcome]")).to_have_text("'one' is not a number")
        await expect(page.locator("[data-outcome]")).to_have_class("outcome error")
        await screenshot(page, f"station-panel-outcome-without-javascript-{device}")
        await page.get_by_role("link", name="Back to the station").click()
        await page.wait_for_url(f"**/admin/stations/{sid}")
        panel = page.locator("#display-messages")
        await panel.locator("summary", has_text="Show a message").click()
        await panel.get_by_label("Message").fill("Closed for maintenance until noon")
        await panel.get_by_role("button", name="Show message").click()
        await page.wait_for_url(f"**/admin/stations/{sid}/display-messages")
        # the kit's station has no display: its refusal, in the station's own words
        await expect(page.locator("[data-outcome]")).to_have_text(
            "The station answered NotImplemented: Request Action is recognized but not supported by the receiver")
        await expect(page.get_by_role("link", name="Back to the station")).to_be_visible()
