"""A station's certificates over REST: what is installed (GetInstalledCertificateIds) and what the
CSMS issued to it, install a CA certificate (InstallCertificate), delete one (DeleteCertificate),
ask for a renewal (TriggerMessage SignChargingStationCertificate / 1.6 ExtendedTriggerMessage
SignChargePointCertificate), in the station's protocol version.

Certificate types are named as in OCPP 2.0.1 (``CSMSRootCertificate``,
``ManufacturerRootCertificate``, ``V2GRootCertificate``, ``MORootCertificate``); a 1.6 station
takes the first two (``CentralSystemRootCertificate`` is accepted as a name too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.exceptions import NotFoundException, ValidationException

from csms.api.audit import audited
from csms.api.auth import caller, require
from csms.api.crud import jsonable
from csms.api.stations import run_command
from csms.core.ocpp.validation import InvalidPayload, OcppError
from csms.core.runtime import get_core
from csms.core.services.commands import CommandTimeout, StationOffline
from csms.core.tables import Station

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection

_ALIASES = {"CentralSystemRootCertificate": "CSMSRootCertificate"}
HASH_KEYS = ("hashAlgorithm", "issuerNameHash", "issuerKeyHash", "serialNumber")  # CertificateHashDataType


class InstallBody(msgspec.Struct, forbid_unknown_fields=True):
    certificate_type: str
    certificate: str  # PEM


class DeleteBody(msgspec.Struct, forbid_unknown_fields=True):
    # OCPP's CertificateHashDataType, as the listing gives it
    hash_data: dict[str, str]


class RenewBody(msgspec.Struct, forbid_unknown_fields=True):
    certificate_type: str = "ChargingStationCertificate"  # or V2GCertificate (2.0.1)


# Installing, deleting and renewing, audited: the REST endpoints below and the station page's
# certificates panel (csms.admin.certificates) both go through these.

async def install_certificate(connection: ASGIConnection, station_id: str, *, certificate_type: str,
                              certificate: str, by: str) -> dict[str, Any]:
    """InstallCertificate (``CentralSystemRootCertificate`` read as ``CSMSRootCertificate``)."""
    done = await get_core().certificates.install(
        station_id, certificate_type=_ALIASES.get(certificate_type, certificate_type), certificate=certificate, by=by)
    await audited(connection, "command", "station", station_id, summary=f"install {certificate_type}: {done['status']}",
                  after={"certificate_type": certificate_type, "hash_data": done.get("hash_data")})
    return done


async def delete_certificate(connection: ASGIConnection, station_id: str, *, hash_data: dict[str, str],
                             by: str) -> dict[str, Any]:
    """DeleteCertificate of the certificate ``hash_data`` names."""
    done = await get_core().certificates.delete(station_id, hash_data=hash_data, by=by)
    await audited(connection, "command", "station", station_id,
                  summary=f"delete certificate {hash_data.get('serialNumber')}: {done['status']}",
                  after={"hash_data": hash_data})
    return done


async def renew_certificate(connection: ASGIConnection, station_id: str, *, certificate_type: str,
                            by: str) -> dict[str, Any]:
    """Ask the station for a new CSR of ``certificate_type``."""
    done = await get_core().certificates.renew(station_id, certificate_type=certificate_type, by=by)
    await audited(connection, "command", "station", station_id, summary=f"renew {certificate_type}: {done['status']}")
    return done


async def _known(station_id: str) -> None:
    if not await Station.exists().where(Station.station_id == station_id):
        raise NotFoundException(f"no station {station_id!r}")


class CertificateController(Controller):
    path = "/stations/{station_id:str}/certificates"
    tags = ["stations"]
    opt = {"tenant": {"station_id": "station"}}

    @get("/", guards=[require("viewer")])
    async def certificates(self, request: Request, station_id: str, certificate_type: list[str] | None = None,
                           ask_station: bool = True) -> dict[str, Any]:
        """The certificates the CSMS issued to the station (``issued``, with ``expiring`` and
        ``expired``) and, when it is online and ``ask_station``, those it reports installed
        (``installed``: GetInstalledCertificateIds, ``None`` when it could not be asked or refused,
        and why in ``installed_error``: ``StationOffline``, ``Timeout`` or the station's error)."""
        await _known(station_id)
        core = get_core()
        out: dict[str, Any] = {"station_id": station_id, "installed": None, "installed_error": None}
        if ask_station:
            types = [_ALIASES.get(t, t) for t in certificate_type] if certificate_type else None

            async def ask() -> dict[str, Any]:  # offline or silent: listed without what is installed
                try:
                    return {"installed": await core.certificates.installed(
                        station_id, certificate_types=types, by=caller(request))}
                except StationOffline:
                    return {"installed_error": "StationOffline"}
                except CommandTimeout:
                    return {"installed_error": "Timeout"}
                except InvalidPayload:
                    raise
                except OcppError as exc:  # e.g. a station without the certificate messages (NotImplemented)
                    return {"installed_error": f"{exc.code}: {exc.description}"[:300]}

            out.update(await run_command(ask()))
        elif core.commands.version_of(station_id) is None:
            out["installed_error"] = "StationOffline"
        out["issued"] = [jsonable(r) for r in await core.certificates.issued(station_id)]
        return out

    @post("/", guards=[require("operator")])
    async def install(self, request: Request, station_id: str, data: InstallBody) -> dict[str, Any]:
        """InstallCertificate; the station's answer and the certificate's hash data (to delete it)."""
        await _known(station_id)
        return await run_command(install_certificate(request, station_id, certificate_type=data.certificate_type,
                                                     certificate=data.certificate, by=caller(request)))

    @delete("/", guards=[require("operator")], status_code=200)
    async def delete_certificate(self, request: Request, station_id: str,
                                 data: DeleteBody | None = None) -> dict[str, Any]:
        """DeleteCertificate of the certificate ``hash_data`` names (as the listing gives it)."""
        await _known(station_id)
        if data is None or set(data.hash_data) != set(HASH_KEYS):
            raise ValidationException(f"give hash_data with {', '.join(sorted(HASH_KEYS))}")
        return await run_command(delete_certificate(request, station_id, hash_data=data.hash_data,
                                                    by=caller(request)))

    @post("/renew", guards=[require("operator")])
    async def renew(self, request: Request, station_id: str, data: RenewBody | None = None) -> dict[str, Any]:
        """Ask the station for a new CSR; the certificate follows (SignCertificate, CertificateSigned)."""
        await _known(station_id)
        return await run_command(renew_certificate(
            request, station_id, certificate_type=data.certificate_type if data else "ChargingStationCertificate",
            by=caller(request)))
