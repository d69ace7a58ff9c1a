"""Tariff text to the driver at the station (OCPP 2.0.1/2.1 I01 and I06): the ``tariff_message``
hook's text goes into ``idTokenInfo.personalMessage`` when a token is accepted (Authorize, a
TransactionEvent with an idToken) and, during a transaction, into ``updatedPersonalMessage`` of
a TransactionEvent answer when it differs from the text last given for that transaction (a
tariff changing during the session). What was last given is kept per node and transaction; a
node that restarts gives the current text once more, which the station shows again, harmlessly.

A plugin's answer is cut to what OCPP's MessageContentType holds (512 characters, a language
tag of 8, a known format); a malformed answer is logged and nothing is shown.
"""

from __future__ import annotations

import logging
from typing import Any

from csms.core.tables import DeviceVariable
from csms.plugins import call_hook, hook_impls

log = logging.getLogger(__name__)

FORMATS = ("ASCII", "HTML", "URI", "UTF8")
MAX_CONTENT, MAX_LANGUAGE = 512, 8


def message_content(answer: Any) -> dict[str, Any] | None:
    """A ``tariff_message`` answer as an OCPP MessageContentType; None for no text or a malformed answer."""
    if isinstance(answer, str):
        answer = {"content": answer}
    if not isinstance(answer, dict) or not isinstance(answer.get("content"), str) or not answer["content"].strip():
        if answer is not None:
            log.warning("tariff_message answered %r: not a text; nothing shown", answer)
        return None
    out: dict[str, Any] = {"format": answer.get("format") if answer.get("format") in FORMATS else "UTF8",
                           "content": answer["content"][:MAX_CONTENT]}
    language = answer.get("language")
    if isinstance(language, str) and 0 < len(language) <= MAX_LANGUAGE:
        out["language"] = language
    return out


class TariffMessageService:
    def __init__(self) -> None:
        self._given: dict[tuple[str, str], str] = {}  # (station, transaction) -> the text last given

    async def languages(self, station_id: str) -> list[str]:
        row = await DeviceVariable.select(DeviceVariable.value).where(
            (DeviceVariable.station.station_id == station_id) & (DeviceVariable.component == "DisplayMessageCtrlr")
            & (DeviceVariable.variable == "Language") & (DeviceVariable.attribute_type == "Actual")).first()
        value = (row or {}).get("value") or ""
        return [v.strip() for v in value.split(",") if v.strip()]

    async def _ask(self, station_id: str, evse_id: int | None, id_token: str, transaction_id: str | None
                   ) -> dict[str, Any] | None:
        if not hook_impls("tariff_message"):  # nobody to ask: no query at each transaction event
            return None
        answer = await call_hook("tariff_message", station_id=station_id, evse_id=evse_id or 0, id_token=id_token,
                                 transaction_id=transaction_id, languages=await self.languages(station_id))
        return message_content(answer)

    async def personal(self, station_id: str, *, id_token: str, evse_id: int | None = None,
                       transaction_id: str | None = None) -> dict[str, Any] | None:
        """The ``personalMessage`` for an accepted token (I01); remembered for the transaction."""
        message = await self._ask(station_id, evse_id, id_token, transaction_id)
        if message is not None and transaction_id is not None:
            self._given[(station_id, transaction_id)] = message["content"]
        return message

    async def updated(self, station_id: str, *, transaction_id: str, id_token: str,
                      evse_id: int | None) -> dict[str, Any] | None:
        """The ``updatedPersonalMessage`` during a transaction (I06): the text when it is not the
        one last given for the transaction, else None."""
        message = await self._ask(station_id, evse_id, id_token, transaction_id)
        if message is None or self._given.get((station_id, transaction_id)) == message["content"]:
            return None
        self._given[(station_id, transaction_id)] = message["content"]
        return message

    def ended(self, station_id: str, transaction_id: str) -> None:
        self._given.pop((station_id, transaction_id), None)
