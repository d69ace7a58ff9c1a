"""What a 2.1 station asks the CSMS that 2.0.1 had no message for: VatNumberValidation (the
``vat_number_validation`` hook, the built-in knowing the organizations' VAT ids),
PullDynamicScheduleUpdate (the smart-charging loop's current allocation for that profile) and
GetCertificateChainStatus (the ``certificate_chain_status`` hook, the built-in CA answering for
the certificates it made). Raw 2.1 frames; every answer is checked against the 2.1 schemas."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import trustme
import websockets
from cryptography import x509

from csms.core.certificates import hash_data, issuer_hashes
from csms.core.ocpp.validation import validate
from csms.plugins import hookimpl
from tests.test_certificates import make_csr
from tests.test_final_cost import register  # noqa: F401 (fixture)
from tests.test_ocpp_21 import BOOT, events, rpc
from tests.test_ocpp_rpc_strict import eventually
from tests.test_smart_charging import Rounds, fast
from tests.test_v2x import two_cars


async def ask(ws: Any, uid: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A CALL and its CALLRESULT payload, checked against the 2.1 response schema."""
    frame = await rpc(ws, [2, uid, action, payload])
    assert frame[:2] == [3, uid], frame
    validate("2.1", action, frame[2], response=True)
    return frame[2]


async def test_vat_numbers(server, register):  # noqa: F811
    r = await server.api.post("/organizations", json={"name": "Acme BV", "kind": "customer",
                                                      "vat_id": "NL 8529.03.212.B01"})
    assert r.status_code == 201, r.text
    async with websockets.connect(server.ws_url("VAT21"), subprotocols=["ocpp2.1"]) as ws:
        assert (await rpc(ws, [2, "b", "BootNotification", BOOT]))[2]["status"] == "Accepted"
        assert await ask(ws, "v1", "VatNumberValidation", {"vatNumber": "NL852903212B01", "evseId": 1}) == {
            "vatNumber": "NL852903212B01", "evseId": 1, "status": "Accepted"}
        unknown = await ask(ws, "v2", "VatNumberValidation", {"vatNumber": "DE123456789"})
        assert unknown["status"] == "Rejected" and unknown["statusInfo"]["reasonCode"] == "NotValidated"
        bad = await ask(ws, "v3", "VatNumberValidation", {"vatNumber": "12"})
        assert bad["statusInfo"] == {"reasonCode": "InvalidFormat"}

        class Registry:  # a billing or registry plugin answers first, with the company
            @hookimpl
            def vat_number_validation(self, station_id, vat_number, evse_id):
                if vat_number != "DE123456789":
                    return None
                return {"status": "Accepted", "company": {"name": "Beispiel GmbH", "address1": "Hauptstr. 1",
                                                          "city": "Berlin", "country": "Germany"}}

        register(Registry())
        known = await ask(ws, "v4", "VatNumberValidation", {"vatNumber": "DE123456789"})
        assert known["status"] == "Accepted" and known["company"]["name"] == "Beispiel GmbH"
        assert (await ask(ws, "v5", "VatNumberValidation", {"vatNumber": "12"}))["status"] == "Rejected"
    asked = await events(server, "VAT21", "payment")
    assert [e["summary"] for e in reversed(asked)][:2] == ["VAT number NL852903212B01: Accepted",
                                                            "VAT number DE123456789: Rejected"]


async def test_pull_dynamic_schedule_update_gives_the_current_allocation(server):
    fast(server)
    rounds = Rounds(server)
    async with two_cars(server, "DYN21", limit=20) as (st, _):
        shared = await rounds.wait(lambda r: r.limits == {"DYN21/1": 10.0, "DYN21/2": 10.0})
        tx_id = server.core.smart_charging.profile_id(1, "tx")
        got = await st.call("PullDynamicScheduleUpdate", {"chargingProfileId": tx_id})
        assert got == {"status": "Accepted", "scheduleUpdate": {"limit": 10.0}}
        default_id = server.core.smart_charging.profile_id(0, "tx_default")
        got = await st.call("PullDynamicScheduleUpdate", {"chargingProfileId": default_id})
        assert got == {"status": "Accepted", "scheduleUpdate": {"limit": shared.defaults["DYN21"]}}
        # a node that did not run the round (it knows neither the round nor what was sent)
        # answers from the profile the station accepted, as stored
        loop = server.core.smart_charging
        await eventually(lambda: loop._sent.get(("DYN21", 1, "tx")) is not None, what="the TxProfile accepted")
        loop.rounds.clear()
        loop._sent.clear()
        got = await st.call("PullDynamicScheduleUpdate", {"chargingProfileId": tx_id})
        assert got == {"status": "Accepted", "scheduleUpdate": {"limit": 10.0}}
        got = await st.call("PullDynamicScheduleUpdate", {"chargingProfileId": 17})
        assert got["status"] == "Rejected" and got["statusInfo"]["reasonCode"] == "UnknownProfile"


async def test_certificate_chain_status_from_the_built_in_ca(server):
    sid = "CHAIN21"
    _, csr = make_csr(sid)
    async with websockets.connect(server.ws_url(sid), subprotocols=["ocpp2.1"]) as ws:
        assert (await rpc(ws, [2, "b", "BootNotification", BOOT]))[2]["status"] == "Accepted"
        signed = await rpc(ws, [2, "s", "SignCertificate", {"csr": csr, "certificateType": "ChargingStationCertificate"}])
        assert signed[2]["status"] == "Accepted", signed
        chain = None
        while chain is None:  # the CSMS's CertificateSigned (other calls: not implemented here)
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame[0] == 2 and frame[2] == "CertificateSigned":
                chain = frame[3]["certificateChain"]
                await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
            elif frame[0] == 2:
                await ws.send(json.dumps([4, frame[1], "NotImplemented", "", {}]))
        leaf, ca_cert = x509.load_pem_x509_certificates(chain.encode())[:2]
        leaf_data, ca_data = hash_data(leaf, ca_cert), hash_data(ca_cert)
        assert leaf_data is not None and ca_data is not None
        name384, key384 = issuer_hashes(ca_cert, "SHA384")
        leaf384 = {"hashAlgorithm": "SHA384", "issuerNameHash": name384, "issuerKeyHash": key384,
                   "serialNumber": format(leaf.serial_number, "x")}
        stranger = hash_data(x509.load_pem_x509_certificate(trustme.CA().cert_pem.bytes()))
        assert stranger is not None
        never_signed = {**leaf_data, "serialNumber": "1234abcd"}

        def request(data: dict[str, str]) -> dict[str, Any]:
            return {"certificateHashData": data, "source": "OCSP", "urls": ["http://ocsp.example/"]}

        got = await ask(ws, "c", "GetCertificateChainStatus", {"certificateStatusRequests": [
            request(leaf_data), request(ca_data), request(leaf384), request(never_signed)]})
        assert [s["status"] for s in got["certificateStatus"]] == ["Good", "Good", "Good", "Unknown"]
        assert got["certificateStatus"][2]["certificateHashData"] == leaf384
        got = await ask(ws, "d", "GetCertificateChainStatus", {"certificateStatusRequests": [request(stranger)]})
        assert [s["status"] for s in got["certificateStatus"]] == ["Failed"]
