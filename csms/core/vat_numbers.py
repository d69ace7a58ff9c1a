"""VAT numbers a 2.1 station's payment terminal asks about (VatNumberValidation): the
``vat_number_validation`` hook, and its built-in answer (registered as a default plugin, ``trylast``).

The built-in knows only the VAT ids of the CSMS's own organizations (customers, employers...):
such a number is Accepted. A number that is not even well formed (two letters of a country,
then 2 to 18 letters or digits) is Rejected with ``InvalidFormat``; any other with
``NotValidated``: whether a company's number is valid only a registry (VIES and the like)
knows, which a plugin may ask.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from csms.core.tables import Organization
from csms.plugins import call_hook, hookimpl

log = logging.getLogger("csms.vat")

_FORMAT = re.compile(r"^[A-Z]{2}[A-Z0-9+*]{2,18}$")


def normalized(vat_number: str) -> str:
    """Upper case, without the spaces, dots and dashes people write numbers with."""
    return re.sub(r"[\s.\-]", "", vat_number).upper()


@hookimpl(trylast=True)
def vat_number_validation(station_id, vat_number, evse_id):
    number = normalized(vat_number)
    if not _FORMAT.match(number):
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidFormat"}}

    async def known() -> dict[str, Any]:
        rows = await Organization.select(Organization.vat_id).where(Organization.vat_id.is_not_null())
        if any(normalized(r["vat_id"] or "") == number for r in rows):
            return {"status": "Accepted"}
        return {"status": "Rejected", "statusInfo": {
            "reasonCode": "NotValidated", "additionalInfo": "not one of this operator's organizations; "
                                                           "no VAT registry is configured"}}

    return known


async def validation_answer(station_id: str, vat_number: str, evse_id: int | None) -> dict[str, Any]:
    """The VatNumberValidation answer: the hook's (first answer), echoing the number and EVSE."""
    answer = await call_hook("vat_number_validation", station_id=station_id, vat_number=vat_number, evse_id=evse_id)
    if not isinstance(answer, dict) or answer.get("status") not in ("Accepted", "Rejected"):
        if answer is not None:
            log.warning("vat_number_validation answered %r, not a status", answer)
        answer = {"status": "Rejected", "statusInfo": {"reasonCode": "NotValidated"}}
    out: dict[str, Any] = {"vatNumber": vat_number, "status": answer["status"]}
    if evse_id is not None:
        out["evseId"] = evse_id
    for key in ("company", "statusInfo"):
        if answer.get(key):
            out[key] = answer[key]
    return out
