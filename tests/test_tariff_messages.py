"""Tariff text to the driver (OCPP 2.0.1/2.1 I01, I06) through the ``tariff_message`` hook: the
``personalMessage`` of an accepted Authorize and TransactionEvent, and ``updatedPersonalMessage``
once the text changes during the transaction; driven by the ``ocpp-rpc`` strict station, which
checks every answer against the official schemas. Without a plugin nothing is added; a plugin's
malformed answer shows nothing; 1.6 has no such field."""

from __future__ import annotations

from typing import Any

import pytest

from csms.core.services.tariff_messages import message_content
from csms.plugin_api import hookimpl
from tests.test_final_cost import register  # noqa: F401 (fixture)
from tests.test_ocpp_rpc_strict import create_token, node_station, strict_station  # noqa: F401 (fixture)


class TariffTexts:
    """The first three answers give the day tariff, the later ones the night tariff."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    @hookimpl(tryfirst=True)
    def tariff_message(self, station_id, evse_id, id_token, transaction_id, languages):
        if not id_token:  # the fallback text after a boot (I04): no public text here
            return None
        self.asked.append({"station_id": station_id, "evse_id": evse_id, "id_token": id_token,
                           "transaction_id": transaction_id, "languages": languages})
        if len(self.asked) <= 3:
            return {"content": "Day: 0.35 EUR/kWh", "language": "en"}
        return "Night: 0.25 EUR/kWh"


def answers(st: Any, action: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in st.find_all(lambda e: e.get("event") == "answer" and e["action"] == action)]


@pytest.mark.parametrize("protocol", ["ocpp2.0.1", "ocpp2.1"])
async def test_personal_and_updated_messages(server, node_station, register, protocol):
    plugin = register(TariffTexts())
    sid, tag = f"TEXT{protocol[4:].replace('.', '')}", f"TEXT-{protocol}"
    await create_token(server, tag)
    async with strict_station(node_station, server, sid, protocol, token=tag, extra=["--samples", "4"]) as st:
        st.assert_clean_exit(await st.wait_exit(timeout=60))

    (authorize,) = answers(st, "Authorize")
    assert authorize["idTokenInfo"]["personalMessage"] == {"format": "UTF8", "language": "en",
                                                           "content": "Day: 0.35 EUR/kWh"}
    events = answers(st, "TransactionEvent")
    started, *updated, ended = events
    assert started["idTokenInfo"]["personalMessage"]["content"] == "Day: 0.35 EUR/kWh"
    # the text changed during the transaction: given once, then not again while it stays
    changed = [a["updatedPersonalMessage"] for a in updated if "updatedPersonalMessage" in a]
    assert changed == [{"format": "UTF8", "content": "Night: 0.25 EUR/kWh"}], updated
    assert "updatedPersonalMessage" not in ended
    assert plugin.asked[0] == {"station_id": sid, "evse_id": 0, "id_token": tag, "transaction_id": None,
                               "languages": []}
    assert {a["transaction_id"] for a in plugin.asked[1:]} == {started_tx(st)}
    assert all(a["evse_id"] == 1 and a["id_token"] == tag for a in plugin.asked[1:])


def started_tx(st: Any) -> str:
    return st.find(lambda e: e.get("event") == "tx_stopped")["transactionId"]


async def test_without_a_plugin_no_message(server, node_station):
    sid, tag = "TEXTNONE", "TEXTNONE-TAG"
    await create_token(server, tag)
    async with strict_station(node_station, server, sid, "ocpp2.0.1", token=tag) as st:
        st.assert_clean_exit(await st.wait_exit(timeout=60))
    (authorize,) = answers(st, "Authorize")
    assert "personalMessage" not in authorize["idTokenInfo"]
    assert all("updatedPersonalMessage" not in a and "personalMessage" not in a.get("idTokenInfo", {})
               for a in answers(st, "TransactionEvent"))


def test_answers_are_cut_to_what_ocpp_holds():
    assert message_content("x" * 600) == {"format": "UTF8", "content": "x" * 512}
    assert message_content({"content": "Hi", "language": "de-CH-1996-x", "format": "Bogus"}) == {
        "format": "UTF8", "content": "Hi"}
    assert message_content({"content": "<b>Hi</b>", "format": "HTML", "language": "nl"}) == {
        "format": "HTML", "content": "<b>Hi</b>", "language": "nl"}
    for nothing in (None, "", "  ", {"text": "Hi"}, 42, {"content": 3}):
        assert message_content(nothing) is None
