"""Station certificates: signing requests, certificate status, ISO 15118 EV certificates, and the
certificates installed in a station (version-neutral, through the outbound adapters).

SignCertificate (2.0.1, and the 1.6 security extension): the CSR is checked
(:func:`csms.core.certificates.check_csr`) while the station waits for its answer; a bad one is
answered Rejected and the reason goes into the station's event log (category ``certificate``). An
accepted one is handed, once the station has its answer, to the ``issue_certificate`` hook (the
built-in CA answers last) and the chain it returns goes to the station in a CertificateSigned of
its own. Each certificate issued is stored (``issued_certificate``) with the station's answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from csms.core.background import BackgroundTasks
from csms.core import certificates as ca
from csms.core import events as ev
from csms.core.leases import LeaderJob, lead
from csms.core.ocpp.outbound import OperationError, StationCalls, calls_for
from csms.core.ocpp.outbound.calls import answered
from csms.core.ocpp.validation import OcppError
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.tables import IssuedCertificate, Station
from csms.core.timeutil import ocpp_ts, utcnow
from csms.i18n import N_
from csms.plugins import call_hook, call_sync, hook_impls

if TYPE_CHECKING:
    from csms.core.services.commands import CommandService
    from csms.core.services.reports import ReportService
    from csms.core.services.stations import StationService
    from csms.core.services.stations import StationState

log = logging.getLogger("csms.certificates")

CATEGORY = "certificate"
REQUESTED_BY = "certificates"  # requested_by of the CertificateSigned calls (not an audited actor)
BUILT_IN = "csms.core.certificates"
RENEWAL_INTERVAL_S = 86400.0  # a renewal pass a day; a station asked at most once a day per type


@dataclass(frozen=True)
class SigningJob:
    state: StationState
    csr: str
    certificate_type: str


class CertificateService:
    def __init__(self, events: ev.EventDispatcher, commands: CommandService, reports: ReportService,
                 stations: StationService, *, ca_directory: Path) -> None:
        ca.use_directory(ca_directory)  # the built-in CA (the issue_certificate default) signs from there
        self.events = events
        self.commands = commands
        self.reports = reports
        self.stations = stations
        self._jobs: dict[str, SigningJob] = {}  # accepted CSRs waiting for the station's answer to go out
        self._tasks = BackgroundTasks(log, "certificate work")
        self._renewal_asked: dict[tuple[str, str], float] = {}  # (station, type) -> monotonic time asked
        self._renewals: LeaderJob | None = None
        # A signing job starts when the station has its answer: the event recorded with the
        # answer is delivered after it.
        events.listen(self._on_event)

    # -- station-initiated messages ------------------------------------------------------------

    async def sign_request(self, state: StationState, csr: str, certificate_type: str) -> dict[str, Any]:
        """The answer to a SignCertificate; an accepted CSR is signed and sent after it."""
        settings = ca.certificate_settings()
        details: dict[str, Any] = {"certificateType": certificate_type, "csr": csr}
        try:
            if certificate_type == ca.V2G_CERTIFICATE and not self._external_issuer(certificate_type):
                raise ca.CsrProblem("no ISO 15118 PKI (issue_certificate plugin) signs V2G certificates")
            if certificate_type == ca.STATION_CERTIFICATE and not settings.ca_enabled \
                    and not self._external_issuer(certificate_type):
                raise ca.CsrProblem("the built-in CA is off and no issue_certificate plugin is installed")
            ca.check_csr(csr, station_id=state.station_id if certificate_type == ca.STATION_CERTIFICATE else None,
                         organization=settings.organization if certificate_type == ca.STATION_CERTIFICATE else "",
                         min_rsa_bits=settings.min_rsa_bits)
        except ca.CsrProblem as problem:
            await self.reports.record(state, CATEGORY, "SignCertificate", summary=f"CSR rejected: {problem}",
                                      details={**details, "status": "Rejected", "reason": str(problem)})
            return {"status": "Rejected", "reason": str(problem)}
        request = uuid.uuid4().hex
        self._jobs[request] = SigningJob(state, csr, certificate_type)
        await self.reports.record(state, CATEGORY, "SignCertificate", summary=f"CSR for {certificate_type} accepted",
                                  details={**details, "status": "Accepted", "request": request})
        return {"status": "Accepted"}

    @staticmethod
    def _external_issuer(certificate_type: str) -> bool:
        """Whether a plugin signs ``certificate_type``: one that says so (``signed_certificate_types``)
        or one that implements ``issue_certificate`` without saying which types it signs."""
        declaring = {impl.plugin_name for impl in hook_impls("signed_certificate_types")}
        if any(impl.plugin_name != BUILT_IN and impl.plugin_name not in declaring
               for impl in hook_impls("issue_certificate")):
            return True
        return certificate_type in call_sync("signed_certificate_types")

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.StationBooted) and event.registration_status == "Accepted" and not event.triggered:
            self._spawn(self.check_expiry(event.station_id), event.station_id)
            return
        if not isinstance(event, ev.StationReported) or event.category != CATEGORY or event.kind != "SignCertificate":
            return
        job = self._jobs.pop(str(event.details.get("request", "")), None)
        if job is not None:
            self._spawn(self.issue(job), job.state.station_id)

    def _spawn(self, work: Any, station_id: str) -> None:
        self._tasks.spawn(work, name=f"csms-certificate-{station_id}")

    async def check_expiry(self, station_id: str) -> bool:
        """When the station's newest accepted certificate expires within ``expiry_warning_days``,
        record an ``expiring`` event (category ``certificate``, severity 3; the ``event`` hook and
        alerting plugins see it as ``station.reported``) and, with ``auto_renew``, ask the station
        to renew it. Checked at every accepted boot."""
        state = await self.stations.state(station_id)
        if state is None:
            return False
        mine = [r for r in await self.expiring() if r["station_id"] == station_id]
        for row in mine:
            await self.reports.record(state, CATEGORY, "expiring", severity=3,
                                      summary=f"{row['certificate_type']} {row['serial']} expires "
                                              f"{row['not_after']:%Y-%m-%d}: renew it",
                                      details={"serial": row["serial"], "certificateType": row["certificate_type"],
                                               "not_after": row["not_after"].isoformat()})
        await self.renew_expiring(mine)
        return bool(mine)

    # -- automatic renewal ---------------------------------------------------------------------

    def start_renewals(self, *, client: Any, owner: str, lease_seconds: float, interval: float = RENEWAL_INTERVAL_S
                       ) -> None:
        """Once a day (on one node of a cluster: the leader of the ``certificate-renewal`` job)
        the connected stations with an expiring certificate are asked to renew it."""

        async def run() -> None:
            while True:
                try:
                    await self.renew_expiring(await self.expiring())
                except Exception:
                    log.exception("certificate renewal pass failed")
                await asyncio.sleep(interval)

        self._renewals = lead("certificate-renewal", run, client=client, owner=owner, lease_seconds=lease_seconds)

    async def stop(self) -> None:
        if self._renewals is not None:
            await self._renewals.stop()
            self._renewals = None
        await self._tasks.cancel()

    async def renew_expiring(self, rows: list[dict[str, Any]]) -> int:
        """Ask each connected station of ``rows`` (from :meth:`expiring`) to renew that
        certificate, unless renewal is off or it was asked within the last day; how many were asked."""
        if not ca.certificate_settings().auto_renew:
            return 0
        asked = 0
        for row in rows:
            key = (row["station_id"], row["certificate_type"])
            last = self._renewal_asked.get(key)
            if self.commands.version_of(row["station_id"]) is None or (
                    last is not None and time.monotonic() - last < RENEWAL_INTERVAL_S):
                continue
            self._renewal_asked[key] = time.monotonic()
            try:
                await self.renew(row["station_id"], certificate_type=row["certificate_type"], by="certificate-renewal")
                asked += 1
            except Exception as exc:  # offline meanwhile, a CALLERROR, no such trigger: the next pass
                log.warning("%s: renewal of %s %s not asked: %s", row["station_id"], row["certificate_type"],
                            row["serial"], exc)
        return asked

    async def issue(self, job: SigningJob) -> str | None:
        """Have the CSR signed (``issue_certificate``) and send the chain (CertificateSigned); the
        station's answer, or None when nothing was sent."""
        station_id = job.state.station_id
        try:
            chain = await call_hook("issue_certificate", station_id=station_id, csr_pem=job.csr,
                                    certificate_type=job.certificate_type)
            certs = x509.load_pem_x509_certificates(chain.encode()) if isinstance(chain, str) and chain.strip() \
                else []
        except ValueError as exc:
            log.warning("%s: the certificate chain issued does not parse: %s", station_id, exc)
            certs, chain = [], None
        if not certs:
            await self.reports.record(job.state, CATEGORY, "CertificateSigned", severity=3,
                                      summary=f"nobody signed the {job.certificate_type} CSR",
                                      details={"status": "NotIssued", "certificateType": job.certificate_type})
            return None
        assert isinstance(chain, str)
        info = ca.certificate_info(certs[0])
        row = IssuedCertificate(station=job.state.pk, certificate_type=job.certificate_type, serial=info.serial,
                                subject=info.subject[:255], issuer=info.issuer[:255], not_before=info.not_before,
                                not_after=info.not_after, status="Pending", issued_by=self._issuer_of(certs[0]),
                                certificate=chain)
        await row.save()
        status = "Failed"
        try:
            calls = self._adapter(station_id)
            call = calls.certificate_signed(chain=chain, certificate_type=job.certificate_type)
            response = await self.commands.send(station_id, call.action, call.payload, requested_by=REQUESTED_BY)
            status = str(response.get("status", "Failed"))
        except (StationOffline, UnknownStation, CommandTimeout, OcppError, OperationError) as exc:
            log.warning("%s: CertificateSigned not delivered: %s", station_id, exc)
        await IssuedCertificate.update({IssuedCertificate.status: status}).where(IssuedCertificate.id == row.id)
        await self.reports.record(job.state, CATEGORY, "CertificateSigned",
                                  summary=f"certificate {info.serial} ({info.subject}) sent: {status}",
                                  severity=None if status == "Accepted" else 4,
                                  details={"status": status, "serial": info.serial, "subject": info.subject,
                                           "not_after": info.not_after.isoformat(),
                                           "certificateType": job.certificate_type})
        return status

    @staticmethod
    def _issuer_of(leaf: x509.Certificate) -> str:
        authority = ca.CertificateAuthority.of_installation()
        if authority.exists() and any(c.subject == leaf.issuer for c in authority.trusted()):
            return BUILT_IN
        return "plugin"

    async def certificate_status(self, state: StationState, ocsp_request: dict[str, Any]) -> dict[str, Any]:
        """The answer to a 2.0.1 GetCertificateStatus: ``check_certificate_status``, else Failed."""
        answer = await call_hook("check_certificate_status", station_id=state.station_id, ocsp_request=ocsp_request)
        if isinstance(answer, str) and answer:
            return {"status": "Accepted", "ocspResult": answer}
        if isinstance(answer, dict) and answer.get("status") in ("Accepted", "Failed"):
            return {k: v for k, v in answer.items() if k in ("status", "ocspResult", "statusInfo")}
        return {"status": "Failed", "statusInfo": {"reasonCode": "NoOCSPResponder"}}

    async def chain_status(self, state: StationState, requests: list[dict[str, Any]]) -> dict[str, Any]:
        """The answer to a 2.1 GetCertificateChainStatus: per certificate, the
        ``certificate_chain_status`` hook's status (the built-in CA's for its own), else Failed."""
        out = []
        for request in requests:
            answer = await call_hook("certificate_chain_status", station_id=state.station_id,
                                     certificate_hash_data=request["certificateHashData"], source=request["source"],
                                     urls=request["urls"])
            if isinstance(answer, str):
                answer = {"status": answer}
            if not isinstance(answer, dict) or answer.get("status") not in ("Good", "Revoked", "Unknown", "Failed"):
                answer = {"status": "Failed"}
            next_update = answer.get("nextUpdate")
            out.append({"certificateHashData": request["certificateHashData"], "source": request["source"],
                        "status": answer["status"],
                        "nextUpdate": ocpp_ts(next_update) if isinstance(next_update, datetime)
                        else next_update or ocpp_ts(utcnow())})
        return {"certificateStatus": out}

    async def ev_certificate(self, state: StationState, *, schema_version: str, action: str,
                             exi_request: str) -> dict[str, Any]:
        """The answer to a 2.0.1 Get15118EVCertificate: ``get_15118_ev_certificate``, else Failed."""
        answer = await call_hook("get_15118_ev_certificate", station_id=state.station_id,
                                 iso15118_schema_version=schema_version, action=action, exi_request=exi_request)
        if isinstance(answer, dict) and answer.get("status") in ("Accepted", "Failed"):
            return {"status": answer["status"], "exiResponse": str(answer.get("exiResponse", "")),
                    **({"statusInfo": answer["statusInfo"]} if answer.get("statusInfo") else {})}
        return {"status": "Failed", "exiResponse": "", "statusInfo": {"reasonCode": "NoProvider"}}

    # -- CSMS-initiated: certificate management --------------------------------------------------

    def _adapter(self, station_id: str) -> StationCalls:
        version = self.commands.live_version(station_id)
        return calls_for(version)

    async def _calls(self, station_id: str) -> StationCalls:
        """``UnknownStation`` before ``StationOffline``."""
        if not await Station.exists().where(Station.station_id == station_id):
            raise UnknownStation(station_id)
        return self._adapter(station_id)

    async def install(self, station_id: str, *, certificate_type: str, certificate: str,
                      by: str = "") -> dict[str, Any]:
        """InstallCertificate of a CA certificate (PEM); the answer and the certificate's hash data."""
        calls = await self._calls(station_id)
        try:
            cert = x509.load_pem_x509_certificate(certificate.strip().encode())
        except ValueError:
            raise OperationError(N_("certificate is not a PEM X.509 certificate")) from None
        call = calls.install_certificate(certificate_type=certificate_type, certificate=certificate.strip())
        response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
        return {**call.outcome(response), "hash_data": ca.hash_data(cert)}

    async def installed(self, station_id: str, *, certificate_types: list[str] | None = None,
                        by: str = "") -> dict[str, Any]:
        """GetInstalledCertificateIds (one call per type in 1.6): the certificates the station
        reports, ``status`` Accepted when any was found."""
        calls = await self._calls(station_id)
        found: list[dict[str, Any]] = []
        responses = []
        for call in calls.get_installed_certificates(certificate_types=certificate_types):
            response = await self.commands.send(station_id, call.action, call.payload, requested_by=by)
            responses.append(response)
            found += call.outcome(response)["certificates"]
        return {"status": "Accepted" if found else "NotFound", "certificates": found, "responses": responses}

    async def delete(self, station_id: str, *, hash_data: dict[str, Any], by: str = "") -> dict[str, Any]:
        calls = await self._calls(station_id)
        call = calls.delete_certificate(hash_data=hash_data)
        return answered(await self.commands.send(station_id, call.action, call.payload, requested_by=by))

    async def renew(self, station_id: str, *, certificate_type: str = ca.STATION_CERTIFICATE,
                    by: str = "") -> dict[str, Any]:
        """Trigger a new SignCertificate (2.0.1 TriggerMessage, 1.6 ExtendedTriggerMessage)."""
        calls = await self._calls(station_id)
        call = calls.renew_certificate(certificate_type=certificate_type)
        return answered(await self.commands.send(station_id, call.action, call.payload, requested_by=by))

    async def issued(self, station_id: str) -> list[dict[str, Any]]:
        """The certificates issued to the station, newest first, with ``expiring`` (within
        ``expiry_warning_days``) and ``expired``."""
        warning = timedelta(days=ca.certificate_settings().expiry_warning_days)
        now = utcnow()
        rows = await IssuedCertificate.select(
            *IssuedCertificate.all_columns(exclude=[IssuedCertificate.station, IssuedCertificate.certificate]),
            IssuedCertificate.certificate).where(IssuedCertificate.station.station_id == station_id).order_by(
            IssuedCertificate.id, ascending=False)
        out = []
        for row in rows:
            chain = row.pop("certificate")
            not_after = row["not_after"]
            row["expired"] = not_after is not None and not_after <= now
            row["expiring"] = not_after is not None and now < not_after <= now + warning
            try:
                certs = x509.load_pem_x509_certificates(chain.encode())
                row["hash_data"] = ca.hash_data(certs[0], certs[1] if len(certs) > 1 else None)
            except ValueError:
                row["hash_data"] = None
            out.append(row)
        return out

    async def expiring(self, within_days: int | None = None) -> list[dict[str, Any]]:
        """Certificates the station accepted that expire within ``within_days`` (default
        ``expiry_warning_days``) and were not replaced by a newer one of the same type."""
        days = ca.certificate_settings().expiry_warning_days if within_days is None else within_days
        rows = await IssuedCertificate.select(
            IssuedCertificate.id, IssuedCertificate.station.station_id.as_alias("station_id"),
            IssuedCertificate.certificate_type, IssuedCertificate.serial, IssuedCertificate.subject,
            IssuedCertificate.not_after).where(IssuedCertificate.status == "Accepted").order_by(IssuedCertificate.id)
        newest: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            newest[(row["station_id"], row["certificate_type"])] = row
        limit = utcnow() + timedelta(days=days)
        return [r for r in newest.values() if r["not_after"] is not None and r["not_after"] <= limit]
