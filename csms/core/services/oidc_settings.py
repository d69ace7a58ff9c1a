"""Organizations' OpenID Connect providers, for their drivers to sign in to the driver portal.

One :class:`~csms.core.tables.OrganizationOidc` row per organization that has one. Admins write
it through :func:`save` (the admin's organization form); each change is an ``update`` entry of
the organization in the audit log, its fields named ``oidc_*``, the client secret masked (a
change of the secret shows as a new ``oidc_secret_changed_at``). The secret leaves this module
only through :func:`provider`, for the sign-in itself (:mod:`csms.driver.oidc`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

from csms.core import audit
from csms.core.tables import OrganizationOidc
from csms.core.timeutil import utcnow

_DOMAIN = re.compile(r"^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
FIELDS = ("issuer", "client_id", "client_secret", "email_domain", "label")


@dataclass(frozen=True)
class Provider:
    """An organization's provider as the sign-in uses it."""

    organization: int
    issuer: str
    client_id: str
    client_secret: str
    email_domain: str
    label: str


def issuer_problem(issuer: str) -> str | None:
    """Why ``issuer`` cannot be an issuer URL (``https://``, no query or fragment; plain ``http://``
    only on this machine, for trying a provider out), or None."""
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        return "not_url"
    if parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
        return "not_https"
    return None


def normal_domain(domain: str) -> str:
    return domain.strip().lower().lstrip("@")


def domain_ok(domain: str) -> bool:
    return not domain or bool(_DOMAIN.match(domain))


async def _row(organization: int) -> dict[str, Any] | None:
    return await OrganizationOidc.select().where(OrganizationOidc.organization == organization).first()


def _audited(row: Mapping[str, Any] | None) -> dict[str, Any]:
    """The row as the organization's audit entry shows it (the secret masked by the audit log)."""
    if row is None:
        return {f"oidc_{k}": "" for k in (*FIELDS, "secret_changed_at")}
    return {f"oidc_{k}": row[k] for k in (*FIELDS, "secret_changed_at")}


async def settings_of(organization: int) -> dict[str, Any]:
    """What the admin form shows: the fields but the secret, and ``has_secret``."""
    row = await _row(organization)
    shown = {k: (row[k] if row else "") for k in FIELDS if k != "client_secret"}
    return {**shown, "has_secret": bool(row and row["client_secret"])}


async def save(organization: int, values: Mapping[str, Any], *, actor: str, actor_organization: int | None) -> None:
    """Set organization ``organization``'s provider from ``values`` (checked by the caller: see
    :func:`issuer_problem`, :func:`domain_ok`). An empty ``issuer`` removes the provider; an empty
    or missing ``client_secret`` keeps the stored one."""
    before = await _row(organization)
    issuer = str(values.get("issuer") or "").strip().rstrip("/")
    if not issuer:
        if before is None:
            return
        await OrganizationOidc.delete().where(OrganizationOidc.organization == organization)
    else:
        new: dict[str, Any] = {"issuer": issuer, "client_id": str(values.get("client_id") or "").strip(),
               "email_domain": normal_domain(str(values.get("email_domain") or "")),
               "label": str(values.get("label") or "").strip()}
        secret = str(values.get("client_secret") or "")
        if secret and (before is None or secret != before["client_secret"]):
            new.update(client_secret=secret, secret_changed_at=utcnow())
        if before is None:
            await OrganizationOidc(organization=organization, **new).save()
        else:
            await OrganizationOidc.update({getattr(OrganizationOidc, k): v for k, v in new.items()}).where(
                OrganizationOidc.organization == organization)
    await audit.record(actor=actor, action="update", object_type="organization", object_id=organization,
                       before=_audited(before), after=_audited(await _row(organization)), organization=organization,
                       actor_organization=actor_organization, summary="OpenID Connect sign-in for drivers")


async def provider(organization: int) -> Provider | None:
    """Organization ``organization``'s provider, with its secret, for signing a driver in."""
    row = await OrganizationOidc.select(*OrganizationOidc.all_columns(), OrganizationOidc.organization.name.as_alias(
        "organization_name")).where(OrganizationOidc.organization == organization).first()
    if row is None or not row["issuer"] or not row["client_id"]:
        return None
    return Provider(organization, row["issuer"], row["client_id"], row["client_secret"], row["email_domain"],
                    row["label"] or row["organization_name"])


async def sign_in_buttons() -> list[dict[str, Any]]:
    """Each organization with a provider: ``organization`` (id) and ``label``, by label."""
    rows = await OrganizationOidc.select(OrganizationOidc.organization, OrganizationOidc.label,
                                         OrganizationOidc.organization.name.as_alias("organization_name")).where(
        (OrganizationOidc.issuer != "") & (OrganizationOidc.client_id != ""))
    buttons = [{"organization": r["organization"], "label": r["label"] or r["organization_name"]} for r in rows]
    return sorted(buttons, key=lambda b: b["label"].lower())

