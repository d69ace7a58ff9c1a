"""The ``certificate_expiring`` alert: a station gets a certificate signed by the CSMS's CA
(SignCertificate, then CertificateSigned) that is valid for fewer days than the rule's lead time,
the evaluator opens an alert naming it; a renewal that lasts long enough closes it. The station
is the ``ocpp`` library's ChargePoint with a real CSR."""

from __future__ import annotations

import asyncio
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.routing import on
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.testing import running_server
from csms.testing.stations import Station201, station
from plugins.stationops.tests.conftest import eventually


def csr_for(station_id: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, station_id)])).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


class SigningStation(Station201):
    """Asks for a certificate and keeps the chains it is sent."""

    def setup(self, firmware_version: str) -> None:
        super().setup(firmware_version)
        self.chains: asyncio.Queue[str] = asyncio.Queue()

    async def renew(self) -> str:
        answer = await self.call(call201.SignCertificate(csr=csr_for(self.id)))
        assert answer.status == "Accepted"
        return await asyncio.wait_for(self.chains.get(), 15)

    @on(Action201.certificate_signed)
    async def on_certificate_signed(self, certificate_chain, **kwargs):
        self.chains.put_nowait(certificate_chain)
        return result201.CertificateSigned(status="Accepted")


async def open_certificate_alerts(srv: Any) -> list[dict[str, Any]]:
    items = (await srv.api.get("/alerts", params={"status": "open"})).json()["items"]
    return [a for a in items if a["kind"] == "certificate_expiring"]


async def test_an_expiring_station_certificate_opens_an_alert_until_renewed(tmp_path, monkeypatch):
    monkeypatch.setenv("CSMS_CERTIFICATES_CERTIFICATE_VALIDITY_DAYS", "20")
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        rules = (await srv.api.get("/alert-rules")).json()["items"]
        (rule,) = [r for r in rules if r["kind"] == "certificate_expiring"]
        assert (rule["occurrences"], rule["description"]) == (30, "Station certificate expiring within 30 days")
        async with station(srv, "CERT-EXP", "2.0.1", cls=SigningStation) as cp:
            await cp.renew()
            (alert,) = await eventually(lambda: open_certificate_alerts(srv), what="a certificate alert")
            assert alert["station_id"] == "CERT-EXP" and alert["severity"] == "warning"
            assert "ChargingStationCertificate" in alert["summary"] and "expires" in alert["summary"]

            # a renewal that lasts longer than the rule looks ahead closes it
            monkeypatch.setenv("CSMS_CERTIFICATES_CERTIFICATE_VALIDITY_DAYS", "365")
            await cp.renew()

            async def closed() -> bool:
                return not await open_certificate_alerts(srv)

            await eventually(closed, what="the alert closed after the renewal")

        r = await srv.api.post("/alert-rules", json={"kind": "certificate_expiring", "occurrences": 0})
        assert r.status_code == 400 and "certificate_expiring needs occurrences >= 1" in r.text, r.text
