"""Database engines, migrations and the batched writer for hot paths.

Piccolo serves all ordinary queries. The hot paths (meter values, the frame log, station
liveness and live connector/session state) go through :class:`BatchWriter`, which gathers
statements from many stations and commits them together (group commit): no commit per
message, and a caller that must not lose data awaits the commit of its batch before the
station gets its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import sqlite3
import sys
import threading
import time
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Sequence, cast
from urllib.parse import urlparse

from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, convert_datetime_in, dict_factory

from csms.core import metrics

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from piccolo.engine.base import Engine
    from piccolo.table import Table

log = logging.getLogger("csms.db")

os.environ.setdefault("PICCOLO_CONF", "csms.piccolo_conf")


class PooledSQLiteEngine(SQLiteEngine):
    """Piccolo's SQLite engine on a few long-lived connections.

    Piccolo opens a new connection (and with it a new thread) for every query outside a
    transaction, with SQLite's default ``synchronous=FULL``: an fsync per write and a thread
    start per query. Here each query is one hop to a small pool of threads that keep their
    connection open (WAL, ``synchronous=NORMAL``, foreign keys on). Transactions still take
    their own connection, as in Piccolo, with the same settings.
    """

    __slots__ = ("_executor", "_connections", "_pool_lock", "_local", "pool_size")

    # wal_autocheckpoint: the WAL's pages are copied into the database every 10,000 pages (40 MiB)
    # instead of SQLite's 1,000. The batches dirty the same index pages again and again; each is
    # copied once per checkpoint, so fewer checkpoints cost the batch writer's commits less CPU
    # (bench/README.md, "The message path, third pass").
    PRAGMAS = ("PRAGMA foreign_keys = 1", "PRAGMA synchronous = NORMAL", "PRAGMA wal_autocheckpoint = 10000")

    def __init__(self, path: str, pool_size: int = 4, **kwargs: Any) -> None:
        super().__init__(path=path, **kwargs)
        self.pool_size = pool_size
        self._executor: ThreadPoolExecutor | None = None
        self._connections: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(**self.connection_kwargs, check_same_thread=False)
            conn.row_factory = dict_factory
            for pragma in self.PRAGMAS:
                conn.execute(pragma)
            self._local.conn = conn
            with self._pool_lock:
                self._connections.append(conn)
        return conn

    def _execute(self, query: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        cursor = self._connection().execute(query, args)
        try:
            return cursor.fetchall()
        finally:
            cursor.close()

    async def _run_in_new_connection(self, query: str, args: list[Any] | None = None,
                                     query_type: str = "generic", table: Any = None) -> Any:
        if query_type == "insert" and sqlite3.sqlite_version_info < (3, 35):  # no RETURNING: Piccolo's way
            return await super()._run_in_new_connection(query, args, query_type, table)
        with self._pool_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.pool_size, thread_name_prefix="csms-sqlite")
            executor = self._executor
        return await asyncio.get_running_loop().run_in_executor(executor, self._execute, query, args or [])

    async def get_connection(self) -> Any:
        connection = await super().get_connection()
        for pragma in self.PRAGMAS[1:]:  # Piccolo's connection has foreign keys on already
            await connection.execute(pragma)
        return connection

    def close_pool(self) -> None:
        """Close the pooled connections (a later query opens new ones)."""
        with self._pool_lock:
            executor, self._executor = self._executor, None
            connections, self._connections = self._connections, []
        if executor is not None:
            executor.shutdown(wait=True)
        for conn in connections:
            conn.close()
        self._local = threading.local()


def make_engine(url: str) -> Engine:
    """A Piccolo engine for ``sqlite:///path`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path.startswith("/"):
            path = os.path.abspath(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return PooledSQLiteEngine(path=path, timeout=60)
    if url.startswith(("postgres://", "postgresql://")):
        return PostgresEngine(config={"dsn": url})
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///path or postgresql://...")


def all_tables() -> list[type[Table]]:
    """Every table of every registered Piccolo app, plus Piccolo's migration table."""
    from piccolo.apps.migrations.tables import Migration
    from piccolo.conf.apps import Finder

    return [*Finder().get_table_classes(), Migration]


def use_engine(engine: Engine) -> None:
    """Point Piccolo (the conf module and every table) at ``engine``."""
    import csms.piccolo_conf as conf

    conf.DB = engine
    for table in all_tables():
        table._meta.db = engine


def _defined_in_module(table: type[Table]) -> bool:
    """A table class of a module (a real table, or one a migration file declares), not one made
    on the fly."""
    return getattr(sys.modules.get(table.__module__), table.__name__, None) is table


async def migrate() -> None:
    """Apply all pending migrations of the core and every plugin app."""
    from piccolo.apps.migrations.commands.forwards import run_forwards
    from piccolo.table import TABLE_REGISTRY

    import csms.piccolo_conf as conf

    if isinstance(conf.DB, SQLiteEngine):
        with sqlite3.connect(conf.DB.path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    out = io.StringIO()
    # A migration run makes a hundred Table classes on the fly, and Piccolo keeps them: in
    # TABLE_REGISTRY (read by its `tester` command only) and, through their foreign keys, in the
    # reverse references of the tables they point at (the classes of the migration modules). A
    # process that migrates database after database (a test worker) kept 6,700 objects a run,
    # which every full collection scanned again. What the run made on the fly is let go.
    registered = len(TABLE_REGISTRY)
    references = [(table, len(table._meta._foreign_key_references)) for table in TABLE_REGISTRY]
    try:
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            # SQLite has no column lengths: Piccolo warns of each length change it skips; nothing is lost
            warnings.filterwarnings("ignore", message=".*SQLITE doesn't support changes in length")
            result = await run_forwards("all")
    finally:
        for table, count in references:
            added = table._meta._foreign_key_references[count:]
            table._meta._foreign_key_references[count:] = [fk for fk in added if _defined_in_module(fk._meta.table)]
        TABLE_REGISTRY[registered:] = [table for table in TABLE_REGISTRY[registered:] if _defined_in_module(table)]
    for line in out.getvalue().splitlines():
        if line.strip():
            log.debug("migrations: %s", line.strip())
    if not result.success:
        raise RuntimeError(f"migrations failed: {result.message}\n{out.getvalue()}")


async def open_engine() -> None:
    import csms.piccolo_conf as conf

    if isinstance(conf.DB, PostgresEngine):
        await conf.DB.start_connection_pool(min_size=2, max_size=20)


async def close_engine() -> None:
    import csms.piccolo_conf as conf

    if isinstance(conf.DB, PostgresEngine):
        await conf.DB.close_connection_pool()
    elif isinstance(conf.DB, PooledSQLiteEngine):
        conf.DB.close_pool()


_PLACEHOLDER = re.compile(r"\?")


def _to_postgres(sql: str) -> str:
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


Statement = tuple[str, Sequence[Any]]


class BatchWriter:
    """Group commit of many small statements from many stations.

    Callers queue *units*: ``add(sql, params)`` one statement written with ``?`` placeholders,
    ``submit(statements)`` several that belong together (one station's message). The loop takes
    whatever is queued and writes it in one transaction, statements with the same SQL as one
    ``executemany``, and starts over, so batches grow with load and latency stays low when idle.
    ``submit`` (and ``add(..., wait=True)``) return a future that resolves when the unit is
    committed.

    One unit cannot fail another: when a batch fails, it is written again in one transaction
    with a savepoint per unit; a unit that fails there is rolled back alone and its future gets
    the error (a unit nobody waits for is logged), and every other unit commits.

    On PostgreSQL up to ``pipeline`` batches (the ``db_write_pipeline`` setting) may be in
    flight at once, each in its own transaction on its own pooled connection, so the next batch
    is written while the previous one waits for its commit's round trips and WAL flush. It is 1
    (off) by default: on a loaded 2-core machine two in flight halved the batches and cost 10-15 %
    more CPU per call, on a quiet one they gave more calls/s for the same CPU (bench/README.md).
    A unit resolves only at the commit of its own batch.
    Units that must be ordered are: a station's next message is handled after the answer to the
    previous one, i.e. after its commit; and PostgreSQL's row locks make a later batch's write to
    a row wait for an earlier batch still holding it. ``flush()`` waits for every batch in
    flight. SQLite has one writer at a time anyway: one batch in flight.
    """

    def __init__(self, engine: Engine, *, pipeline: int = 1) -> None:
        self._engine = engine
        self._queue: list[tuple[list[Statement], asyncio.Future[None] | None]] = []
        self._markers: list[asyncio.Future[None]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._closing = False
        self._is_pg = isinstance(engine, PostgresEngine)
        self._depth = max(1, pipeline) if self._is_pg else 1
        # A datetime as a statement's parameter: on SQLite the text Piccolo's adapter makes of it
        # (the same function), so that a value many rows share (the timestamp of a MeterValues'
        # samples) is converted once rather than by the adapter row by row in the commit.
        self.time_param: Callable[[Any], Any] = _same if self._is_pg else convert_datetime_in
        self._pg_sql: dict[str, str] = {}
        self._pg_idle: list[Any] = []  # connections kept between batches (_pg_connection)
        self._thread: Any = None
        self.batches = 0
        self.rows = 0
        self.failed_units = 0

    async def start(self) -> None:
        if not self._is_pg:
            # One connection in one thread of its own: a batch is one hop there, and SQLite
            # releases the GIL while it inserts, so the event loop keeps answering stations.
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="csms-batch-writer")
            self._conn = sqlite3.connect(cast(SQLiteEngine, self._engine).path, isolation_level=None, timeout=60,
                                         check_same_thread=False)
            for pragma in PooledSQLiteEngine.PRAGMAS[1:]:
                self._conn.execute(pragma)
        self._task = asyncio.create_task(self._run(), name="csms-batch-writer")

    async def close(self) -> None:
        self._closing = True
        self._wakeup.set()
        if self._task:
            await self._task
        await self._release_pg()
        if self._conn is not None:
            self._thread.shutdown(wait=True)
            self._conn.close()

    def add(self, sql: str, params: Sequence[Any], *, wait: bool = False) -> asyncio.Future[None] | None:
        """Queue one statement; with ``wait``, return a future resolved at its commit."""
        fut = asyncio.get_running_loop().create_future() if wait else None
        self._queue.append(([(sql, params)], fut))
        self._wakeup.set()
        return fut

    def submit(self, statements: list[Statement]) -> asyncio.Future[None]:
        """Queue statements that succeed or fail together; the future resolves at their commit."""
        fut = asyncio.get_running_loop().create_future()
        if statements:
            self._queue.append((statements, fut))
            self._wakeup.set()
        else:
            fut.set_result(None)
        return fut

    async def flush(self) -> None:
        """Wait until everything queued so far has been written (or has failed on its own)."""
        fut = asyncio.get_running_loop().create_future()
        self._markers.append(fut)
        self._wakeup.set()
        await fut

    async def _run(self) -> None:
        depth = self._depth
        running: set[asyncio.Task[None]] = set()
        releasing: set[asyncio.Task[None]] = set()
        while True:
            if not self._queue and not self._markers:
                if self._closing:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
            if len(running) >= depth:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                continue  # take what was queued meanwhile too
            units, self._queue = self._queue, []
            markers, self._markers = self._markers, []
            if units:
                task = asyncio.create_task(self._batch(units))
                running.add(task)
                task.add_done_callback(running.discard)
            if markers:
                if running:  # resolved once every batch taken so far is done
                    release = asyncio.create_task(self._release(markers, list(running)))
                    releasing.add(release)
                    release.add_done_callback(releasing.discard)
                else:
                    self._release_now(markers)
        if running or releasing:
            await asyncio.wait(running | releasing)

    async def _release(self, markers: list[asyncio.Future[None]], batches: list[asyncio.Task[None]]) -> None:
        await asyncio.wait(batches)
        self._release_now(markers)

    @staticmethod
    def _release_now(markers: list[asyncio.Future[None]]) -> None:
        for fut in markers:
            if not fut.done():
                fut.set_result(None)

    async def _batch(self, units: list[tuple[list[Statement], asyncio.Future[None] | None]]) -> None:
        started = time.perf_counter()
        errors = await self._write_units(units)
        self.batches += 1
        metrics.batch_written(time.perf_counter() - started, sum(len(statements) for statements, _ in units),
                              len(errors))
        for index, (statements, fut) in enumerate(units):
            error = errors.get(index)
            if error is not None:
                self.failed_units += 1
                if fut is None:
                    log.error("batched statement dropped: %s (%s)", error, statements[0][0][:80])
                elif not fut.done():
                    fut.set_exception(error)
            elif fut is not None and not fut.done():
                fut.set_result(None)

    async def _write_units(self, units: list[tuple[list[Statement], Any]]) -> dict[int, BaseException]:
        """Write a batch; the errors of the units that could not be written, by index."""
        grouped: dict[str, list[Sequence[Any]]] = defaultdict(list)
        for statements, _ in units:
            for sql, params in statements:
                grouped[sql].append(params)
        self.rows += sum(map(len, grouped.values()))
        try:
            if self._is_pg:
                await self._write_pg(grouped)
            else:
                await asyncio.get_running_loop().run_in_executor(self._thread, self._write_sqlite, self._conn,
                                                                 grouped)
            return {}
        except Exception as exc:  # a failed batch must not kill the writer
            if len(units) == 1:
                return {0: exc}
            log.warning("batch of %d units failed (%s); writing each unit on its own savepoint", len(units), exc)
        try:
            if self._is_pg:
                return await self._write_pg_units(units)
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._write_sqlite_units,
                                                                    self._conn, units)
        except Exception as exc:  # the commit itself failed (disk full, connection lost)
            log.exception("batched write of %d units failed", len(units))
            return {index: exc for index in range(len(units))}

    def _pg(self, sql: str) -> str:
        return self._pg_sql.get(sql) or self._pg_sql.setdefault(sql, _to_postgres(sql))

    @contextlib.asynccontextmanager
    async def _pg_connection(self) -> AsyncIterator[Any]:
        """A connection of the pool kept by the writer between batches: taking one from the pool
        and giving it back costs a round trip per batch (asyncpg resets a released connection),
        about 0.8 ms and 170 µs of the event loop's CPU here. A connection whose batch failed goes
        back to the pool (which replaces a broken one) and the next batch takes another."""
        conn = self._pg_idle.pop() if self._pg_idle else await self._engine.pool.acquire()  # type: ignore[attr-defined]
        try:
            yield conn
        except BaseException:
            await self._engine.pool.release(conn)  # type: ignore[attr-defined]
            raise
        self._pg_idle.append(conn)  # given back by close()

    async def _release_pg(self) -> None:
        idle, self._pg_idle = self._pg_idle, []
        for conn in idle:
            await self._engine.pool.release(conn)  # type: ignore[attr-defined]

    async def _write_pg(self, grouped: dict[str, list[Sequence[Any]]]) -> None:
        async with self._pg_connection() as conn:
            async with conn.transaction():
                for sql, rows in grouped.items():
                    await conn.executemany(self._pg(sql), rows)

    async def _write_pg_units(self, units: list[tuple[list[Statement], Any]]) -> dict[int, BaseException]:
        errors: dict[int, BaseException] = {}
        async with self._pg_connection() as conn:
            async with conn.transaction():
                for index, (statements, _) in enumerate(units):
                    try:
                        async with conn.transaction():  # a savepoint
                            for sql, params in statements:
                                await conn.execute(self._pg(sql), *params)
                    except Exception as exc:
                        errors[index] = exc
        return errors

    @staticmethod
    def _write_sqlite(conn: sqlite3.Connection, grouped: dict[str, list[Sequence[Any]]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in grouped.items():
                conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _write_sqlite_units(conn: sqlite3.Connection,
                            units: list[tuple[list[Statement], Any]]) -> dict[int, BaseException]:
        errors: dict[int, BaseException] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            for index, (statements, _) in enumerate(units):
                conn.execute("SAVEPOINT unit")
                try:
                    for sql, params in statements:
                        conn.execute(sql, params)
                    conn.execute("RELEASE unit")
                except Exception as exc:
                    conn.execute("ROLLBACK TO unit")
                    conn.execute("RELEASE unit")
                    errors[index] = exc
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return errors


def _same(value: Any) -> Any:
    return value


def database_name(url: str) -> str:
    """A printable description of a database URL without its password."""
    if url.startswith("sqlite:///"):
        return url
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 5432}{parsed.path}"
