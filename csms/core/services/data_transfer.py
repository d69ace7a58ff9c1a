"""A station's DataTransfer (OCPP 2.0.1 P02, 1.6 DataTransfer CP→CS), answered by the plugin
that knows its vendor: the ``data_transfer`` hook (first answer wins). Without one the station
hears ``UnknownVendorId``, as the spec has it. A plugin that raises is logged and skipped by the
hook machinery (the next one, or ``UnknownVendorId``, answers); an answer that is not one of the
four statuses is logged and answered ``Rejected`` (the plugin claimed the vendor but gave nothing
a station can read). The adapters store every DataTransfer as a station event before asking."""

from __future__ import annotations

import json
import logging
from typing import Any

from csms.plugins import call_hook

log = logging.getLogger(__name__)

STATUSES = ("Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId")


async def vendor_answer(station_id: str, version: str, vendor_id: str, message_id: str | None,
                        data: Any) -> dict[str, Any]:
    """The answer to the station's DataTransfer in its ``version`` ("1.6": ``data`` as text)."""
    answer = await call_hook("data_transfer", station_id=station_id, vendor_id=vendor_id, message_id=message_id,
                             data=data, ocpp_version=version)
    if answer is None:
        return {"status": "UnknownVendorId"}
    if isinstance(answer, str):
        answer = {"status": answer}
    if not isinstance(answer, dict) or answer.get("status") not in STATUSES:
        log.warning("data_transfer for %s/%s answered %r: not a DataTransfer status; answered Rejected",
                    vendor_id, message_id, answer)
        return {"status": "Rejected"}
    out: dict[str, Any] = {"status": answer["status"]}
    if answer.get("data") is not None:
        value = answer["data"]
        try:
            out["data"] = json.dumps(value) if version == "1.6" and not isinstance(value, str) else value
            json.dumps(out["data"])
        except (TypeError, ValueError):
            log.warning("data_transfer for %s/%s answered data that is not JSON: left out", vendor_id, message_id)
            out.pop("data", None)
    return out
