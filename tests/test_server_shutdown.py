"""The server's shutdown with a station connection that is already closing (its peer's close
frame came first): uvicorn sends close 1012 to every open connection, websockets refuses a second
close (InvalidState), and before ``WebSocketProtocol.shutdown`` caught it the server's shutdown
was aborted and a ``csms serve`` process kept running (seen once under load)."""

from __future__ import annotations

import asyncio

import websockets
from websockets.protocol import State

from csms.app import create_app
from csms.db import close_engine, make_engine, migrate, open_engine, use_engine
from csms.server import WebSocketProtocol, make_server
from csms.settings import load_settings
from csms.testing import free_port, stopped


async def test_shutdown_with_a_connection_already_closing(tmp_path):
    settings = load_settings(data_dir=tmp_path, unknown_stations="accept")
    use_engine(make_engine(settings.effective_database_url))
    await open_engine()
    await migrate()
    app = create_app(settings, manage_database=False, tune_collector=False)
    port = free_port()
    server = make_server(app, settings.model_copy(update={"port": port}), host="127.0.0.1", port=port,
                         log_level="warning")
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        async with websockets.connect(f"ws://127.0.0.1:{port}/ocpp/CLOSING", subprotocols=["ocpp2.0.1"]):
            for _ in range(100):
                protocols = [c for c in server.server_state.connections if isinstance(c, WebSocketProtocol)]
                if protocols and protocols[0].handshake_complete:
                    break
                await asyncio.sleep(0.02)
            (protocol,) = protocols
            # as after the peer's close frame was read, before the app has seen it
            protocol.conn.state = State.CLOSING
            server.should_exit = True
            await stopped(task, limit=30)  # raises what the server's shutdown raised
            assert protocol.transport.is_closing()
    finally:
        server.should_exit = True
        if not task.done():
            await stopped(task, limit=30)
        await close_engine()


async def test_a_stopped_app_leaves_nothing_frozen(tmp_path):
    """The app freezes what it built at start-up (out of the collector's sight while it runs);
    once it has stopped, that goes back to the collector, or a process that starts app after
    app (the test suite) keeps every one of them."""
    import gc

    from csms.testing import running_server

    async with running_server(tmp_path / "a", tune_collector=True):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


async def test_an_app_among_many_in_one_process_leaves_the_collector_alone(tmp_path):
    """The test servers (hundreds a worker) do not tune the collector: a start's full
    collection would scan everything the worker holds by then."""
    import gc

    from csms.testing import running_server

    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    async with running_server(tmp_path / "b"):
        assert gc.get_freeze_count() == frozen
        assert gc.get_threshold() == thresholds


async def test_servers_started_one_after_another_leave_no_thread_or_table_class_behind(tmp_path):
    """A process that starts app after app (a test worker, hundreds) kept, per start, a logging
    thread of Litestar's and the hundred Table classes a migration run makes on the fly (Piccolo's
    registry and the reverse references of the migration modules' tables): 6,700 objects that
    every full collection scanned again."""
    import gc
    import threading

    from piccolo.table import TABLE_REGISTRY, Table

    from csms.testing import running_server

    def tables() -> tuple[int, int, int]:
        gc.unfreeze()  # the test kit's freeze hides them from get_objects (the next server freezes again)
        gc.collect()
        classes = [o for o in gc.get_objects() if isinstance(o, type) and issubclass(o, Table)]
        return len(classes), len(TABLE_REGISTRY), sum(len(t._meta._foreign_key_references) for t in classes)

    async with running_server(tmp_path / "first"):  # imports what the first start imports
        pass
    threads, before = threading.active_count(), tables()
    for n in range(3):
        async with running_server(tmp_path / str(n)) as srv:
            assert (await srv.api.get("/stations")).status_code == 200
    assert threading.active_count() == threads, [t.name for t in threading.enumerate()]
    assert tables() == before
