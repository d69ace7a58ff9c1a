"""The session's start and stop readings always count: a 7 kWh session whose first and last meter
samples were taken at the very instants of the start and the stop (with register values that
disagree with the readings) is billed 7 kWh, and the session detail, the cost, the settlement and
the statement agree to the Wh."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from plugins.billing.tests.helpers import Session, create, default_tariff, minutes_ago, session_id_of, settled, station


def energy_line_wh(cost: dict) -> Decimal:
    return sum(Decimal(ln["quantity"]) * 1000 for ln in cost["lines"] if ln["component"] == "ENERGY")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_start_and_stop_readings_count_at_the_instants_of_samples(server, version):
    driver = await create(server, "/drivers", {"name": "Seven Kay", "kind": "customer"})
    await create(server, "/tokens", {"id_token": "CARD-7KWH", "driver": driver["id"]})
    await default_tariff(server)
    started = minutes_ago(90)
    stopped = started + timedelta(minutes=60)
    async with station(server, "CP-7KWH", version) as cp:
        s = Session(cp, version, "CARD-7KWH")
        await s.start(started, 10_000)
        await s.meter(started, 10_500)  # a sample stamped with the start's own time
        await s.meter(started + timedelta(minutes=30), 13_000)
        await s.meter(stopped, 16_000)  # the last sample, stamped with the stop's own time
        await s.stop(stopped, 17_000)
    sid = await session_id_of(server, "CP-7KWH")

    detail = (await server.api.get(f"/sessions/{sid}")).json()
    assert detail["energy_wh"] == 7000
    assert energy_line_wh(detail["cost"]) == 7000
    # 7 kWh x 0.30 + 1.00 = 3.10, +21 % VAT = 3.751 -> 3.75
    assert (detail["cost"]["total_excl_vat"], detail["cost"]["total_incl_vat"]) == ("3.10", "3.75")

    settlement = await settled(server, sid)
    assert (settlement["cost_excl_vat"], settlement["due"]) == ("3.10", "3.75")
    cost = (await server.api.get(f"/billing/sessions/{sid}/cost")).json()["cost"]
    assert energy_line_wh(cost) == 7000

    statement = await create(server, "/billing/statements", {
        "party_kind": "driver", "party_id": driver["id"],
        "period_start": (started - timedelta(hours=1)).isoformat(),
        "period_end": minutes_ago(0).isoformat()})
    [line] = statement["lines"]
    assert line["energy_kwh"] == "7.000" and line["amount_excl_vat"] == "3.10"
