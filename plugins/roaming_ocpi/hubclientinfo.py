"""Hub Client Info (OCPI 2.2.1 ``mod_hub_client_info``), our Receiver interface.

A hub partner PUTs the ClientInfo of every party connected to it (its role and connection
status) at ``/ocpi/2.2.1/hubclientinfo/{country_code}/{party_id}`` and may GET it back. It is a
configuration module: no routing headers, and only partners registered in role HUB use it (HTTP
403 with OCPI 2000 for others, as for the functional modules). What we route through the hub
follows the status: a party that is not CONNECTED gets nothing (its pushes wait in the outbox,
real-time authorizations and commands are not sent); when it becomes CONNECTED again its held
pushes go out at once.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, put

from csms.plugin_api import utcnow
from plugins.roaming_ocpi import outbox, schema
from plugins.roaming_ocpi.client import PartnerError, get_all
from plugins.roaming_ocpi.parties import authenticate, endpoint_url, is_hub, partner_roles
from plugins.roaming_ocpi.tables import ClientInfo
from plugins.roaming_ocpi.transport import (
    CLIENT_ERROR,
    VERSION,
    OcpiError,
    invalid,
    json_body,
    not_found,
    ocpi_response,
    ocpi_ts,
    parse_datetime,
)


def _require_hub(partner: dict[str, Any]) -> None:
    if not is_hub(partner):
        raise OcpiError(CLIENT_ERROR, "the hubclientinfo module is for partners in role HUB; this partner "
                        f"registered as {', '.join(sorted(partner_roles(partner))) or 'none'}", http_status=403)


def client_info_object(row: dict[str, Any]) -> dict[str, Any]:
    return {"party_id": row["party_id"], "country_code": row["country_code"], "role": row["role"],
            "status": row["status"], "last_updated": ocpi_ts(row["last_updated"])}


async def _stored(partner_id: int, cc: str, pid: str) -> dict[str, Any] | None:
    return await ClientInfo.select().where(
        (ClientInfo.partner == partner_id) & (ClientInfo.country_code == cc.upper())
        & (ClientInfo.party_id == pid.upper())).first()


async def client_infos(partner_id: int) -> list[dict[str, Any]]:
    """The parties a hub partner told us about, by country code and party id."""
    rows = await ClientInfo.select().where(ClientInfo.partner == partner_id).order_by(
        ClientInfo.country_code).order_by(ClientInfo.party_id)
    return [client_info_object(r) for r in rows]


async def store(partner_id: int, info: dict[str, Any]) -> bool:
    """Keep a (valid) ClientInfo of hub ``partner_id``; an older state than the one held changes
    nothing. A party that becomes CONNECTED gets what waited for it. True when it was new."""
    cc, pid = info["country_code"].upper(), info["party_id"].upper()
    stamp = parse_datetime(info["last_updated"])
    row = await _stored(partner_id, cc, pid)
    if row is None:
        await ClientInfo(partner=partner_id, country_code=cc, party_id=pid, role=info["role"],
                         status=info["status"], last_updated=stamp, received_at=utcnow()).save()
    elif stamp >= row["last_updated"]:
        await ClientInfo.update({ClientInfo.role: info["role"], ClientInfo.status: info["status"],
                                 ClientInfo.last_updated: stamp, ClientInfo.received_at: utcnow()}).where(
            ClientInfo.id == row["id"])
    else:
        return False
    if info["status"] == "CONNECTED" and (row is None or row["status"] != "CONNECTED"):
        await outbox.release(partner_id, cc, pid)
    return row is None


async def pull(partner: dict[str, Any]) -> dict[str, Any] | None:
    """GET the hub's ClientInfo list (its Sender interface, paginated) and keep every valid one;
    None when the partner offers no hubclientinfo Sender."""
    url = endpoint_url(partner, "hubclientinfo", "SENDER")
    if url is None or not is_hub(partner):
        return None
    try:
        items = await get_all(partner, url, functional=False)
    except PartnerError as exc:
        return {"error": exc.message}
    stored = rejected = 0
    for item in items:
        if schema.problems(item, schema.CLIENT_INFO):
            rejected += 1
            continue
        await store(partner["id"], item)
        stored += 1
    return {"stored": stored, "rejected": rejected}


@get(f"/{VERSION}/hubclientinfo/{{country_code:str}}/{{party_id:str}}")
async def client_info_get(request: Request, country_code: str, party_id: str) -> Response:
    partner = await authenticate(request)
    _require_hub(partner)
    row = await _stored(partner["id"], country_code, party_id)
    if row is None:
        raise not_found(f"no ClientInfo for {country_code.upper()}/{party_id.upper()}")
    return ocpi_response(client_info_object(row))


@put(f"/{VERSION}/hubclientinfo/{{country_code:str}}/{{party_id:str}}", status_code=200)
async def client_info_put(request: Request, country_code: str, party_id: str) -> Response:
    partner = await authenticate(request)
    _require_hub(partner)
    info = schema.require_valid(await json_body(request), schema.CLIENT_INFO, "ClientInfo")
    cc, pid = info["country_code"].upper(), info["party_id"].upper()
    if (cc, pid) != (country_code.upper(), party_id.upper()):
        raise invalid("country_code and party_id of the ClientInfo must match the URL")
    created = await store(partner["id"], info)
    return ocpi_response(http_status=201 if created else 200)


ROUTES = [client_info_get, client_info_put]
