"""Certificates on a station's page: a panel (through ``admin_panels``, a default plugin, see
``csms.plugins.DEFAULT_PLUGINS``) with the certificates the CSMS issued to the station (their
validity and the station's answer, expiring ones flagged), what the station says it has installed
(GetInstalledCertificateIds, asked with a button: the answer is not stored), and forms to install
a CA certificate (PEM), delete an installed one and have the station renew its own certificate.
Installing, deleting and renewing are the REST API's audited operations
(:mod:`csms.api.certificates`); 1.6 stations take them through the security extension."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Template
from markupsafe import Markup

from csms.admin.auth import actor, current_user
from csms.admin.outcomes import command_outcome
from csms.admin.templating import fragment, page_panel, render
from csms.api.certificates import HASH_KEYS, delete_certificate, install_certificate, renew_certificate
from csms.core.certificates import certificate_settings
from csms.core.ocpp.outbound import calls_or_newest
from csms.core.ocpp.validation import V16
from csms.core.runtime import get_core
from csms.core.services.operations import OperationError
from csms.core.tables import Station
from csms.i18n import N_, gettext, ngettext
from csms.plugins import hookimpl

STATION = {"tenant": {"station_id": "station"}}
TEMPLATE = "stations/_certificates.html"
SHOWN = 10
RENEWABLE = {V16: ("ChargingStationCertificate",)}  # 1.6 renews only its charge point certificate
RENEWABLE_TYPES = ("ChargingStationCertificate", "V2GCertificate")


async def _context(request: Request, station_id: str, notice: str = "", ok: bool = True,
                   installed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    row = await Station.select(Station.ocpp_version).where(Station.station_id == station_id).first()
    if row is None:
        raise NotFoundException(gettext("There is no station %(station)s.", station=station_id))
    user = await current_user(request)
    version = row["ocpp_version"] or None
    issued = await get_core().certificates.issued(station_id)
    return {"issued": issued[:SHOWN], "more": max(0, len(issued) - SHOWN), "sid": station_id,
            "warning_days": certificate_settings().expiry_warning_days, "notice": notice, "ok": ok,
            "installed": installed, "can_operate": bool(user and user.can("operator")),
            "install_types": sorted(calls_or_newest(version).installable_certificate_types),
            "renew_types": RENEWABLE.get(version or "", RENEWABLE_TYPES), "hash_keys": HASH_KEYS}


@hookimpl
@page_panel("station")
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    return fragment(request, TEMPLATE, **await _context(request, station["station_id"]))


@get("/admin/stations/{station_id:str}/certificates", include_in_schema=False, opt=STATION)
async def certificate_panel(request: Request, station_id: str) -> Template:
    """The panel alone."""
    return await render(request, TEMPLATE, **await _context(request, station_id))


async def _outcome(request: Request, station_id: str, command: Any, done: Any) -> Template:
    """Await ``command``; ``done(result)`` words an accepted answer. The panel comes back with the
    outcome (and the installed certificates when that was the question)."""
    installed: list[dict[str, Any]] | None = None

    def said(result: dict[str, Any]) -> tuple[bool, str]:
        nonlocal installed
        if "certificates" in result:  # the station's list: none found is an answer too
            installed = result["certificates"]
            return True, done(result)
        if result["status"] == "Accepted":
            return True, done(result)
        reason = ((result.get("response") or {}).get("statusInfo") or {}).get("reasonCode")
        if reason:
            return False, gettext("The station answered %(status)s (%(reason)s).", status=result["status"],
                                  reason=reason)
        return False, gettext("The station answered %(status)s.", status=result["status"])

    async def again(notice: str, ok: bool) -> Template:
        return await render(request, TEMPLATE, **await _context(request, station_id, notice, ok, installed))

    return await command_outcome(request, station_id, command, said, again)


@post("/admin/stations/{station_id:str}/certificates/installed", include_in_schema=False, opt=STATION)
async def certificate_installed(request: Request, station_id: str) -> Template:
    """Ask the station which certificates it has installed (GetInstalledCertificateIds)."""

    def done(result: dict[str, Any]) -> str:
        count = len(result["certificates"])
        if not count:
            return gettext("The station has no certificates installed of the types asked for.")
        return ngettext("The station has %(num)s certificate installed.", "The station has %(num)s certificates installed.",
                        count)

    return await _outcome(request, station_id, get_core().certificates.installed(station_id, by=await actor(request)),
                          done)


@post("/admin/stations/{station_id:str}/certificates/install", include_in_schema=False, opt=STATION)
async def certificate_install(request: Request, station_id: str) -> Template:
    """InstallCertificate of the pasted PEM (a PEM that does not parse is refused, nothing sent)."""
    form = await request.form()

    async def command() -> dict[str, Any]:
        certificate_type = (form.get("certificate_type") or "").strip()
        if not certificate_type:
            raise OperationError(N_("choose the certificate type"))
        return await install_certificate(request, station_id, certificate_type=certificate_type,
                                         certificate=form.get("certificate") or "", by=await actor(request))

    return await _outcome(request, station_id, command(), lambda r: gettext(
        "The station installed the certificate (serial %(serial)s).", serial=r["hash_data"]["serialNumber"]))


@post("/admin/stations/{station_id:str}/certificates/delete", include_in_schema=False, opt=STATION)
async def certificate_delete(request: Request, station_id: str) -> Template:
    """DeleteCertificate of the installed certificate the row's hash data names."""
    form = await request.form()

    async def command() -> dict[str, Any]:
        hash_data = {key: (form.get(key) or "").strip() for key in HASH_KEYS}
        if not all(hash_data.values()):
            raise OperationError(N_("the certificate's hash data is incomplete"))
        return await delete_certificate(request, station_id, hash_data=hash_data, by=await actor(request))

    return await _outcome(request, station_id, command(), lambda r: gettext(
        "The station deleted certificate %(serial)s.", serial=form.get("serialNumber")))


@post("/admin/stations/{station_id:str}/certificates/renew", include_in_schema=False, opt=STATION)
async def certificate_renew(request: Request, station_id: str) -> Template:
    """Ask the station for a new CSR for its own certificate; the certificate follows (SignCertificate)."""
    form = await request.form()
    certificate_type = (form.get("certificate_type") or "").strip() or RENEWABLE_TYPES[0]
    return await _outcome(request, station_id, renew_certificate(
        request, station_id, certificate_type=certificate_type, by=await actor(request)), lambda r: gettext(
        "The station will send a new signing request; the certificate issued appears above."))
