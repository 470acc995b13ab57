"""Engines and sessions: SQLite by default (one writer at a time), PostgreSQL by URL."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from enum import IntEnum
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

T = TypeVar("T")


class DatabaseUrlError(ValueError):
    """The database URL names a database we do not support."""


def normalize_url(url: str) -> tuple[URL, URL]:
    """(async URL, sync URL) for a user's ``sqlite:///file`` or ``postgresql://...`` URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite"), parsed.set(drivername="sqlite")
    if backend == "postgresql":
        driver = parsed.set(drivername="postgresql+psycopg")
        return driver, driver
    raise DatabaseUrlError(
        f"database_url {parsed.render_as_string(hide_password=True)}: use sqlite:///FILE "
        "or postgresql://USER@HOST/DB")


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_pragmas(engine: Engine, immediate: bool) -> None:
    """WAL so readers never block; BEGIN IMMEDIATE on the write engine so that a writer
    takes the lock up front instead of failing with 'database is locked' mid-transaction."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# A process frozen (SIGSTOP, a VM pause) inside a transaction must not hold its locks for
# long: the server ends such a session after 5 s idle in it, so whoever waits on its locks
# (a successor taking the lease over) gets through. No lock_timeout: a wait behind a long
# but live transaction (mapping a large callback) should wait, not fail and retry.
# No JIT compiling: the store's statements are short, but over tables of millions of rows
# whose statistics lag (autovacuum off, or behind on a busy server) the planner's costs
# pass JIT's threshold: a count that ran in 0.1 ms without JIT took 19-30 ms with it.
# ``?options=...`` in the database URL replaces this.
POSTGRES_OPTIONS = "-c idle_in_transaction_session_timeout=5000 -c jit=off"


def _postgres_options(url: URL) -> dict[str, Any]:
    return {} if "options" in url.query else {"options": POSTGRES_OPTIONS}


class Turn(IntEnum):
    """Who goes first on SQLite's one write connection when several writers wait."""

    URGENT = 0  # an HTTP answer waits for it: the callback inbox, trigger and listener intake
    CAMPAIGN = 1  # a campaign's way to READY: an audience page, an upload point, a send's step
    BACKGROUND = 2  # catching up: mapping callbacks, reporting, pruning, the rest


class _WriteTurns:
    """Whose turn it is on SQLite's one write connection: by ``Turn``, then first come
    first served. A campaign's steps go before the catching-up work, which can always
    wait: during a large campaign, callback mapping's transactions kept each upload point
    waiting 0.3 s on average (up to 2 s) and stalled the upload behind it."""

    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @asynccontextmanager
    async def turn(self, turn: Turn) -> AsyncIterator[None]:
        if self._busy or self._waiting:
            future = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (int(turn), next(self._order), future))
            try:
                await future
            except BaseException:
                if future.done() and not future.cancelled():
                    self._next()  # granted just as we were cancelled: pass it on
                raise
        self._busy = True
        try:
            yield
        finally:
            self._next()

    def _next(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)
                return
        self._busy = False


class _ThreadWrites:
    """SQLite writes of ``Database.write_driver`` on a thread of their own, each transaction
    one hand-over from the event loop. Through aiosqlite each driver call (begin, execute,
    fetch, commit, the pool's reset) is a hand-over and back, and on a busy loop each waits
    its turn: a one-row insert held the write connection 3 ms, every other writer waiting.
    Writers take turns (``_WriteTurns``) before they come here, so this connection and
    the ORM's never wait for each other's lock."""

    def __init__(self, url: URL, echo: bool) -> None:
        self.engine = create_engine(url, echo=echo, pool_size=1, max_overflow=0,
                                    connect_args={"check_same_thread": False})
        _sqlite_pragmas(self.engine, immediate=True)
        self._thread = self._new_thread()

    @staticmethod
    def _new_thread() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-write")

    async def run(self, work: Callable[[Connection], T]) -> T:
        def transaction() -> T:
            with self.engine.connect() as connection, connection.begin():
                return work(connection)

        done = asyncio.get_running_loop().run_in_executor(self._thread, transaction)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # Keep the turn until the thread's transaction is over (however often we are
            # cancelled meanwhile): the next writer would otherwise wait on SQLite's lock
            # instead of in line.
            while not done.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([done])
            raise

    async def dispose(self) -> None:
        """Close the connection and end the thread; like an engine's ``dispose``, writes
        may follow (a new connection, a new thread, on demand)."""
        thread, self._thread = self._thread, self._new_thread()
        await asyncio.get_running_loop().run_in_executor(thread, self.engine.dispose)
        thread.shutdown(wait=True)


class Database:
    """Holds the engines. On SQLite, writes take turns (``_WriteTurns``) on two
    connections, the ORM's and ``write_driver``'s, so writers queue in line instead of
    racing for the file lock; reads use their own connections."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.async_url, self.sync_url = normalize_url(url)
        self.sqlite = is_sqlite(self.async_url)
        if self.sqlite:
            self.write_engine = create_async_engine(
                self.async_url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=300)
            _sqlite_pragmas(self.write_engine.sync_engine, immediate=True)
            self.read_engine = create_async_engine(self.async_url, echo=echo, pool_size=4)
            _sqlite_pragmas(self.read_engine.sync_engine, immediate=False)
        else:
            self.write_engine = create_async_engine(
                self.async_url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True,
                connect_args=_postgres_options(self.async_url))
            self.read_engine = self.write_engine
        self._writer = async_sessionmaker(self.write_engine, expire_on_commit=False)
        # PostgreSQL writers run side by side: nobody waits for a turn there.
        self._turns = _WriteTurns() if self.sqlite else None
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._driver = _ThreadWrites(self.sync_url, echo) if self.sqlite else None

    @asynccontextmanager
    async def write(self, *, turn: Turn = Turn.BACKGROUND) -> AsyncIterator[AsyncSession]:
        """One transaction that commits on success and rolls back on any error.

        ``turn``: on SQLite, where it goes among the writers that wait (``Turn``).
        """
        waiting = self._turns.turn(turn) if self._turns else contextlib.nullcontext()
        async with waiting, self._writer() as session, session.begin():
            yield session

    async def write_driver(self, work: Callable[[Connection], T], *,
                           turn: Turn = Turn.BACKGROUND) -> T:
        """``work`` in one write transaction, as one call (no Session, one hand-over to
        the driver's thread): for the hot path's Core statements, where the ORM's
        per-statement work and round trips cost more than the SQL. Commits on success,
        rolls back on any error, like ``write``. On SQLite it runs on a connection and
        thread of its own (``_ThreadWrites``), in the same turns as ``write``; there a
        caller cancelled meanwhile does not undo it (the transaction commits all the
        same), so ``work`` must be right to keep whether or not its caller sees the end."""
        if self._driver is not None and self._turns is not None:
            async with self._turns.turn(turn):
                return await self._driver.run(work)

        def transaction(connection: Connection) -> T:
            with connection.begin():
                return work(connection)

        async with self.write_engine.connect() as connection:
            return await connection.run_sync(transaction)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._reader() as session, session.begin():
            yield session

    @property
    def write_engines(self) -> list[Engine]:
        """Every engine that writes (on SQLite, ``write_driver``'s as well)."""
        engines = [self.write_engine.sync_engine]
        return engines + ([self._driver.engine] if self._driver is not None else [])

    async def dispose(self) -> None:
        if self._driver is not None:
            await self._driver.dispose()
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
