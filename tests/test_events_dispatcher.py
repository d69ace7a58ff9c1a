"""The event dispatcher's queue (a deque with one wake-up per answer's events) and the
collector's thresholds while the app serves (bench/README.md, "The message path, fourth pass")."""

from __future__ import annotations

import asyncio
import gc
import logging

from csms.core import events as ev
from csms.core.events import EventDispatcher, deferred_events


def reported(i: int) -> ev.StationReported:
    return ev.StationReported("DISPATCH", category="test", kind=str(i))


async def test_events_reach_listeners_in_order_in_batches_and_drain_waits():
    dispatcher = EventDispatcher()
    seen: list[ev.Event] = []
    dispatcher.listen(seen.append)
    dispatcher.start()
    try:
        first = [reported(i) for i in range(3)]
        dispatcher.emit_all(first)
        single = reported(3)
        dispatcher.emit(single)
        more = [reported(i) for i in range(4, 2500)]  # more than one batch (MAX_BATCH)
        dispatcher.emit_all(more)
        await dispatcher.drain()
        assert seen == [*first, single, *more]
        assert dispatcher._unfinished == 0
        await asyncio.wait_for(dispatcher.drain(), 1)  # nothing queued: at once
        last = reported(9999)
        dispatcher.emit(last)  # the dispatcher waits for more after a drain
        await dispatcher.drain()
        assert seen[-1] is last and len(seen) == 2501
    finally:
        await dispatcher.stop()


async def test_events_emitted_while_a_call_is_handled_are_held_by_emit_all_too():
    dispatcher = EventDispatcher()
    token = deferred_events.set([])
    try:
        dispatcher.emit_all([reported(1), reported(2)])
        dispatcher.emit(reported(3))
        held = deferred_events.get()
    finally:
        deferred_events.reset(token)
    assert [e.kind for e in held or []] == ["1", "2", "3"]
    assert dispatcher._unfinished == 0 and not dispatcher._queue


async def test_a_full_queue_drops_what_does_not_fit_and_says_so(caplog, monkeypatch):
    monkeypatch.setattr(EventDispatcher, "MAX_QUEUED", 5)
    dispatcher = EventDispatcher()
    seen: list[str] = []
    dispatcher.listen(lambda event: seen.append(event.kind))
    with caplog.at_level(logging.WARNING, logger="csms.events"):
        dispatcher.emit_all([reported(i) for i in range(4)])
        dispatcher.emit_all([reported(i) for i in range(4, 7)])
        dispatcher.emit(reported(7))
    assert sum("event queue full" in r.message for r in caplog.records) == 3
    dispatcher.start()
    try:
        await asyncio.wait_for(dispatcher.drain(), 5)
    finally:
        await dispatcher.stop()
    assert seen == ["0", "1", "2", "3", "4"]


async def test_the_collector_thresholds_are_raised_while_serving_and_restored_after(tmp_path):
    from csms.app import GC_THRESHOLDS
    from csms.testing import running_server

    before = gc.get_threshold()
    assert before != GC_THRESHOLDS
    async with running_server(tmp_path, unknown_stations="accept", tune_collector=True):
        assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_threshold() == before
