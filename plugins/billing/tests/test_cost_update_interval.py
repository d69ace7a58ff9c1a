"""CostUpdated and its interval (OCTT TC_I_01 via tzi-OCTT): an update that comes sooner than
``CSMS_BILLING_COST_UPDATE_INTERVAL`` after the last one is not dropped but sent once the interval
has passed, so the station's display ends on the latest cost even when no update follows; the same
cost is not sent twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from plugins.billing.tests.helpers import Session, default_tariff, minutes_ago, session_id_of, station


async def test_an_update_within_the_interval_is_sent_when_it_has_passed(server, monkeypatch):
    monkeypatch.setenv("CSMS_BILLING_COST_UPDATES", "1")
    monkeypatch.setenv("CSMS_BILLING_COST_UPDATE_INTERVAL", "1")
    from plugins.billing.config import billing_settings

    billing_settings.cache_clear()
    await default_tariff(server)  # 0.30 EUR/kWh + 1.00 fee, 21 % VAT
    started = minutes_ago(30)
    async with station(server, "CP-TRAIL", "2.0.1") as cp:
        s = Session(cp, "2.0.1", "CARD-TRAIL", tx="trail-tx")
        await s.start(started, 1000)
        await s.meter(started + timedelta(minutes=5), 3000)
        await s.meter(started + timedelta(minutes=10), 6000)  # within the second: held back, then sent
        for _ in range(60):
            if any(u["total_cost"] == pytest.approx(3.03) for u in cp.cost_updates):
                break
            await asyncio.sleep(0.1)
        assert {"total_cost": pytest.approx(3.03), "transaction_id": "trail-tx"} in cp.cost_updates, cp.cost_updates
        count = len(cp.cost_updates)
        await asyncio.sleep(1.5)
        assert len(cp.cost_updates) == count  # one held-back update, not one per event
        # the first update may already have priced the last meter value (it reads the session when
        # it runs): the held-back one then has nothing new to show and is not sent
        assert all(a != b for a, b in zip(cp.cost_updates, cp.cost_updates[1:])), cp.cost_updates
        await s.stop(started + timedelta(minutes=20), 11000)
    billing_settings.cache_clear()


async def test_overlapping_sends_of_one_figure_reach_the_station_once(server, monkeypatch):
    # two sends of one session at the same time (an event's and a held-back one's, under load):
    # each reads the session and checks what the station shows before it sends, so without one
    # send at a time per session both passed the check and the station got the figure twice
    monkeypatch.setenv("CSMS_BILLING_COST_UPDATES", "1")
    monkeypatch.setenv("CSMS_BILLING_COST_UPDATE_INTERVAL", "3600")  # only the first event's send
    from plugins.billing.config import billing_settings
    from plugins.billing.cost_updates import cost_updates

    billing_settings.cache_clear()
    await default_tariff(server)
    started = minutes_ago(30)
    async with station(server, "CP-TWICE", "2.0.1") as cp:
        s = Session(cp, "2.0.1", "CARD-TWICE", tx="twice-tx")
        await s.start(started, 1000)
        await s.meter(started + timedelta(minutes=5), 3000)
        for _ in range(60):
            if cp.cost_updates:
                break
            await asyncio.sleep(0.1)
        await s.meter(started + timedelta(minutes=10), 6000)  # held back for the hour
        await asyncio.sleep(0.3)
        before = len(cp.cost_updates)
        session_id = await session_id_of(server, "CP-TWICE")
        await asyncio.gather(*(cost_updates.send("CP-TWICE", session_id) for _ in range(3)))
        assert cp.cost_updates[before:] == [{"total_cost": pytest.approx(3.03), "transaction_id": "twice-tx"}], cp.cost_updates
        await s.stop(started + timedelta(minutes=20), 11000)
    billing_settings.cache_clear()
