"""Stored tariffs: OCPI 2.2.1 JSON in, validated with the engine, kept as immutable versions.

A tariff (``billing_tariff``) has a code (its OCPI ``id``), a name and versions
(``billing_tariff_version``). Saving changed prices adds a version; saving the same prices again
adds nothing. A session is priced with the version in force when it started, and a settled
session keeps the version it was priced with, so a change never reprices one.

A tariff of an organization is read and changed by that organization's tree; one of no
organization is the installation's, read by everyone and changed by global callers only.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from csms.plugin_api import GLOBAL, N_, Scope, TranslatedError, utcnow
from plugins.billing.tables import Assignment, HomeStation, Tariff, TariffVersion
from plugins.billing.tariff import Tariff as OcpiTariff
from plugins.billing.tariff import TariffParseError, validate_tariff


class BillingError(TranslatedError):
    """A request the billing plugin refuses: ``status`` 400 (invalid), 404 or 409 (conflict);
    ``field`` names the input it is about (the admin shows the message next to that field). The
    message is worded when read, in the reader's language (see ``TranslatedError``)."""

    def __init__(self, text: str, *, status: int = 400, problems: list[str] | None = None,
                 field: str = "", **params: Any) -> None:
        super().__init__(text, **params)
        self.status = status
        self.problems = problems or []
        self.field = field


def parse_tariff(data: Any) -> OcpiTariff:
    """An OCPI tariff from its JSON, or ``BillingError`` with every problem the validator found."""
    if not isinstance(data, dict):
        raise BillingError(N_("the tariff must be a JSON object (an OCPI 2.2.1 Tariff)"))
    try:
        tariff = OcpiTariff.from_ocpi(data)
    except (TariffParseError, TypeError, ValueError) as exc:
        raise BillingError(N_("not an OCPI 2.2.1 tariff: %(error)s"), error=str(exc), problems=[str(exc)]) from None
    problems = validate_tariff(tariff)
    if problems:
        if len(problems) > 1:
            raise BillingError(N_("the tariff is not usable: %(problem)s (and %(more)s more)"), problem=problems[0],
                               more=len(problems) - 1, problems=problems)
        raise BillingError(N_("the tariff is not usable: %(problem)s"), problem=problems[0], problems=problems)
    return tariff


def _comparable(ocpi: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ocpi.items() if k != "last_updated"}


@lru_cache(maxsize=256)
def _parse_stored(ocpi: str) -> OcpiTariff:
    return OcpiTariff.from_ocpi(json.loads(ocpi))


def tariff_of(version: dict[str, Any]) -> OcpiTariff:
    """The engine's tariff of a stored version (parses are cached by the version's JSON text)."""
    return _parse_stored(version["ocpi"])


def tariff_readable(row: dict[str, Any], scope: Scope) -> bool:
    """Whether ``scope`` reads the tariff: its own organization's or the installation's."""
    return row["organization"] is None or scope.sees(row["organization"])


async def tariff_row(tariff_id: int, scope: Scope = GLOBAL, *, write: bool = False) -> dict[str, Any]:
    """A tariff ``scope`` reads (``write``: may change); else the 404 of a tariff that is not."""
    row = await Tariff.select().where(Tariff.id == tariff_id).first()
    if row is None or not (scope.sees(row["organization"]) if write else tariff_readable(row, scope)):
        raise BillingError(N_("no tariff %(tariff)s"), tariff=tariff_id, status=404)
    return row


async def version_row(tariff_id: int, version: int | None = None, scope: Scope = GLOBAL) -> dict[str, Any]:
    """A version of a tariff ``scope`` reads; the current one when ``version`` is None."""
    current = (await tariff_row(tariff_id, scope))["current_version"]
    if version is None:
        version = current
    row = await TariffVersion.select().where(
        (TariffVersion.tariff == tariff_id) & (TariffVersion.version == version)).first()
    if row is None:
        raise BillingError(N_("tariff %(tariff)s has no version %(version)s"), tariff=tariff_id, version=version, status=404)
    return row


async def version_in_force(tariff_id: int, at: datetime) -> dict[str, Any] | None:
    """The latest version created at or before ``at``; the first one for earlier moments."""
    row = await TariffVersion.select().where(
        (TariffVersion.tariff == tariff_id) & (TariffVersion.created_at <= at)
    ).order_by(TariffVersion.version, ascending=False).first()
    if row is None:
        row = await TariffVersion.select().where(TariffVersion.tariff == tariff_id).order_by(
            TariffVersion.version).first()
    return row


async def _add_version(tariff_id: int, number: int, tariff: OcpiTariff, created_by: str) -> dict[str, Any]:
    now = utcnow()
    stamped = dataclasses.replace(tariff, last_updated=now.replace(microsecond=0))
    await TariffVersion(tariff=tariff_id, version=number, ocpi=json.dumps(stamped.to_ocpi()),
                        currency=tariff.currency, created_at=now, created_by=created_by).save()
    return await version_row(tariff_id, number)


async def create_tariff(data: dict[str, Any], *, name: str = "", created_by: str = "",
                        organization: int | None = None) -> dict[str, Any]:
    """Store a new tariff (version 1) of ``organization`` (None: the installation's); its OCPI
    ``id`` must not be taken."""
    tariff = parse_tariff(data)
    existing = await Tariff.select(Tariff.id, Tariff.organization).where(Tariff.code == tariff.id).first()
    if existing is not None:
        # OCPI ids are unique in the installation; another organization's tariff is not named
        theirs = organization is not None and existing["organization"] not in (None, organization)
        if theirs:
            raise BillingError(N_("a tariff with OCPI id %(code)s already exists; choose another id"),
                               code=repr(tariff.id), status=409)
        raise BillingError(N_("a tariff with OCPI id %(code)s already exists (tariff %(tariff)s); change it with PUT, "
                              "which adds a version"), code=repr(tariff.id), tariff=existing["id"], status=409)
    row = Tariff(code=tariff.id, name=name or _default_name(tariff), currency=tariff.currency, current_version=1,
                 organization=organization)
    await row.save()
    await _add_version(row.id, 1, tariff, created_by)
    return await tariff_row(row.id)


def _default_name(tariff: OcpiTariff) -> str:
    for text in tariff.tariff_alt_text:
        if text.language == "en":
            return text.text[:200]
    return tariff.tariff_alt_text[0].text[:200] if tariff.tariff_alt_text else tariff.id


async def update_tariff(tariff_id: int, data: dict[str, Any] | None, *, name: str | None = None,
                        created_by: str = "") -> dict[str, Any]:
    """Change a tariff: new prices add a version (unchanged prices add none); ``name`` renames."""
    row = await tariff_row(tariff_id)
    if row["archived"]:
        raise BillingError(N_("tariff %(tariff)s is archived"), tariff=tariff_id, status=409)
    values: dict[Any, Any] = {}
    if data is not None:
        tariff = parse_tariff(data)
        if tariff.id != row["code"]:
            raise BillingError(N_("the OCPI id %(code)s differs from this tariff's id %(own)s; create a new tariff "
                                  "for a new id"), code=repr(tariff.id), own=repr(row["code"]))
        current = await version_row(tariff_id)
        if _comparable(json.loads(current["ocpi"])) != _comparable(tariff.to_ocpi()):
            async with Tariff._meta.db.transaction():
                latest = await Tariff.select(Tariff.current_version).where(Tariff.id == tariff_id).first()
                number = latest["current_version"] + 1
                await _add_version(tariff_id, number, tariff, created_by)
                values[Tariff.current_version] = number
                values[Tariff.currency] = tariff.currency
    if name is not None and name != row["name"]:
        values[Tariff.name] = name[:200]
    if values:
        values[Tariff.updated_at] = utcnow()
        await Tariff.update(values).where(Tariff.id == tariff_id)
    return await tariff_row(tariff_id)


async def archive_tariff(tariff_id: int) -> None:
    """Retire a tariff. Refused while an assignment or home station still uses it; its versions
    stay, because settlements point at them."""
    await tariff_row(tariff_id)
    users = await Assignment.select(Assignment.id).where(Assignment.tariff == tariff_id)
    homes = await HomeStation.select(HomeStation.id).where(HomeStation.tariff == tariff_id)
    if users or homes:
        names = [f"assignment {r['id']}" for r in users] + [f"home station {r['id']}" for r in homes]
        raise BillingError(N_("tariff %(tariff)s is still used by %(users)s; remove those first"), tariff=tariff_id,
                           users=", ".join(names), status=409)
    await Tariff.update({Tariff.archived: True, Tariff.updated_at: utcnow()}).where(Tariff.id == tariff_id)


async def tariff_json(row: dict[str, Any], version: dict[str, Any] | None = None) -> dict[str, Any]:
    """A tariff as the REST API shows it: metadata and the OCPI JSON of one version."""
    version = version or await version_row(row["id"])
    return {
        "id": row["id"], "code": row["code"], "name": row["name"], "currency": row["currency"],
        "organization": row["organization"],
        "current_version": row["current_version"], "version": version["version"], "archived": row["archived"],
        "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat(),
        "version_created_at": version["created_at"].isoformat(), "version_created_by": version["created_by"],
        "tariff": json.loads(version["ocpi"]),
    }


async def current_ocpi_tariffs() -> list[dict[str, Any]]:
    """Every tariff that is not archived, as the OCPI object of its current version (``id`` = its
    code) with the ``organization`` it belongs to (None: the installation's), for the
    ``published_tariffs`` hook."""
    out = []
    for row in await Tariff.select().where(Tariff.archived == False).order_by(Tariff.id):  # noqa: E712
        version = await TariffVersion.select(TariffVersion.ocpi).where(
            (TariffVersion.tariff == row["id"]) & (TariffVersion.version == row["current_version"])).first()
        if version is not None:
            out.append({**json.loads(version["ocpi"]), "id": row["code"], "organization": row["organization"]})
    return out
