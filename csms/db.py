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
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Sequence
from urllib.parse import urlparse

from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, dict_factory

if TYPE_CHECKING:
    from piccolo.engine.base import Engine

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

    PRAGMAS = ("PRAGMA foreign_keys = 1", "PRAGMA synchronous = NORMAL")

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
        await connection.execute("PRAGMA synchronous = NORMAL")
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


def all_tables() -> list[type]:
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


async def migrate() -> None:
    """Apply all pending migrations of the core and every plugin app."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    import csms.piccolo_conf as conf

    if isinstance(conf.DB, SQLiteEngine):
        with sqlite3.connect(conf.DB.path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = await run_forwards("all")
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


class BatchWriter:
    """Group commit of many small statements from many stations.

    ``add(sql, params)`` queues a statement written with ``?`` placeholders; statements with
    the same SQL in one batch run as one ``executemany``. ``add(..., wait=True)`` returns a
    future that resolves when the batch holding the statement is committed. The loop takes
    whatever is queued, writes it in one transaction, and starts over, so batches grow with
    load and latency stays low when idle.
    """

    def __init__(self, engine: Engine, *, max_rows: int = 5000, idle_interval: float = 0.05) -> None:
        self._engine = engine
        self._max_rows = max_rows
        self._idle_interval = idle_interval
        self._queue: list[tuple[str, Sequence[Any]]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._closing = False
        self._is_pg = isinstance(engine, PostgresEngine)
        self._pg_sql: dict[str, str] = {}
        self._thread: Any = None
        self.batches = 0
        self.rows = 0

    async def start(self) -> None:
        if not self._is_pg:
            # One connection in one thread of its own: a batch is one hop there, and SQLite
            # releases the GIL while it inserts, so the event loop keeps answering stations.
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="csms-batch-writer")
            self._conn = sqlite3.connect(self._engine.path, isolation_level=None, timeout=60,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._task = asyncio.create_task(self._run(), name="csms-batch-writer")

    async def close(self) -> None:
        self._closing = True
        self._wakeup.set()
        if self._task:
            await self._task
        if self._conn is not None:
            self._thread.shutdown(wait=True)
            self._conn.close()

    def add(self, sql: str, params: Sequence[Any], *, wait: bool = False) -> asyncio.Future[None] | None:
        self._queue.append((sql, params))
        fut = None
        if wait:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
        self._wakeup.set()
        return fut

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._wakeup.set()
        await fut

    async def _run(self) -> None:
        while True:
            if not self._queue and not self._waiters:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            queue, self._queue = self._queue, []
            waiters, self._waiters = self._waiters, []
            try:
                if queue:
                    await self._write(queue)
                    self.batches += 1
                    self.rows += len(queue)
            except Exception as exc:  # a failed batch must not kill the writer
                log.exception("batched write of %d statements failed", len(queue))
                for fut in waiters:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    async def _write(self, queue: list[tuple[str, Sequence[Any]]]) -> None:
        grouped: dict[str, list[Sequence[Any]]] = defaultdict(list)
        order: list[str] = []
        for sql, params in queue:
            if sql not in grouped:
                order.append(sql)
            grouped[sql].append(params)
        if self._is_pg:
            async with self._engine.pool.acquire() as conn:  # type: ignore[attr-defined]
                async with conn.transaction():
                    for sql in order:
                        pg_sql = self._pg_sql.get(sql) or self._pg_sql.setdefault(sql, _to_postgres(sql))
                        await conn.executemany(pg_sql, grouped[sql])
        else:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._write_sqlite, self._conn, order,
                                                             grouped)

    @staticmethod
    def _write_sqlite(conn: sqlite3.Connection, order: list[str], grouped: dict[str, list[Sequence[Any]]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql in order:
                conn.executemany(sql, grouped[sql])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def database_name(url: str) -> str:
    """A printable description of a database URL without its password."""
    if url.startswith("sqlite:///"):
        return url
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 5432}{parsed.path}"
