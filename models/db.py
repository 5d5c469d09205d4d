"""Connection lifecycle, migrations and raw SQL helpers (the config: ``models.tortoise_config``).

Raw SQL is written once with PostgreSQL's ``$1`` placeholders; on SQLite they
become ``?1``. Every instant passed to SQL comes from Python as an aware UTC
``datetime`` (never ``now()`` in SQL): SQLite compares the stored ISO strings,
so they must all be written the same way.
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import structlog
from tortoise import BaseDBAsyncClient, Tortoise, connections

from models.tortoise_config import APP, tortoise_config, tortoise_url
from settings import Settings, get_settings

__all__ = [
    "MIGRATIONS_DIR",
    "close_db",
    "connection",
    "db_clock",
    "execute",
    "execute_many",
    "fetch",
    "init_db",
    "insert_counting",
    "is_open",
    "is_postgres",
    "is_transient",
    "migrate",
    "ping",
    "retried",
    "retrying",
    "stored_instant",
    "tortoise_config",
]

log = structlog.get_logger(__name__)
T = TypeVar("T")
P = ParamSpec("P")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_PLACEHOLDER = re.compile(r"\$(\d+)")


def _make_sqlite_dir(settings: Settings) -> None:
    # SQLite makes its file but not the directory that holds it.
    url = tortoise_url(settings.database_url)
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


async def init_db(settings: Settings | None = None) -> None:
    """Open the connections of this process (API, worker thread or CLI command)."""
    # The global fallback lets request tasks see the context that the
    # application's lifespan task created.
    settings = settings or get_settings()
    _make_sqlite_dir(settings)
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_db() -> None:
    await Tortoise.close_connections()


def is_open() -> bool:
    """Whether this process's connections are open (``init_db`` ran, ``close_db`` not yet)."""
    return Tortoise.is_inited()


async def migrate(settings: Settings | None = None) -> list[str]:
    """Apply the aerich migrations that the database has not seen yet."""
    from aerich import Command

    settings = settings or get_settings()
    _make_sqlite_dir(settings)
    config = tortoise_config(settings, bounded=False)
    command = Command(config, app=APP, location=str(MIGRATIONS_DIR))
    async with command:
        await command.init()
        applied: list[str] = await command.upgrade(run_in_transaction=True)
    return applied


def connection() -> BaseDBAsyncClient:
    conn: BaseDBAsyncClient = connections.get("default")
    return conn


def is_postgres(conn: BaseDBAsyncClient) -> bool:
    return conn.capabilities.dialect == "postgres"


def db_clock(conn: BaseDBAsyncClient, plus_seconds: float = 0.0) -> str:
    """SQL for the database's own current instant, ``plus_seconds`` later.

    Leases are taken and checked on this clock, never on a worker's: two
    workers whose clocks disagree would otherwise each see the other's lease
    as over. On SQLite (embedded, one machine) it is the machine's clock,
    written in the text form the stored instants have, so they compare.
    """
    if is_postgres(conn):
        if not plus_seconds:
            return "statement_timestamp()"
        return f"(statement_timestamp() + interval '{plus_seconds:.6f} seconds')"
    shift = f", '{plus_seconds:+.6f} seconds'" if plus_seconds else ""
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now'{shift}) || '000+00:00')"


def _sql(conn: BaseDBAsyncClient, sql: str) -> str:
    return sql if is_postgres(conn) else _PLACEHOLDER.sub(r"?\1", sql)


async def fetch(conn: BaseDBAsyncClient, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Rows of any statement, ``UPDATE ... RETURNING`` included."""
    return await conn.execute_query_dict(_sql(conn, sql), list(params))


async def execute(conn: BaseDBAsyncClient, sql: str, *params: Any) -> int:
    """Run a statement and return how many rows it changed.

    Tortoise's asyncpg client reads the count of an ``INSERT`` wrongly: use
    :func:`insert_counting` for those.
    """
    count, _ = await conn.execute_query(_sql(conn, sql), list(params))
    return int(count)


async def execute_many(conn: BaseDBAsyncClient, sql: str, rows: list[list[Any]]) -> None:
    """Run one statement once per parameter row (bulk inserts on SQLite)."""
    await conn.execute_many(_sql(conn, sql), rows)


async def insert_counting(conn: BaseDBAsyncClient, sql: str, *params: Any) -> int:
    """Run an ``INSERT`` and return how many rows it added."""
    if is_postgres(conn):
        rows = await fetch(
            conn,
            f"WITH added AS ({sql} RETURNING 1) SELECT COUNT(*) AS n FROM added",
            *params,
        )
        return int(rows[0]["n"])
    # SQLite allows no INSERT inside WITH, but counts changes correctly.
    return await execute(conn, sql, *params)


async def ping() -> None:
    """A trivial query: raises if the database does not answer."""
    await fetch(connection(), "SELECT 1 AS ok")


# PostgreSQL's refusals that say nothing about the statement: the same
# transaction, run again, may pass (serialization failure, deadlock, lock
# not available).
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def _causes(exc: BaseException) -> Iterator[BaseException]:
    # Tortoise wraps the driver's exception: as its argument, and as context.
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(a for a in e.args if isinstance(a, BaseException))
        todo.extend(c for c in (e.__cause__, e.__context__) if c is not None)


def is_transient(exc: BaseException) -> bool:
    """Whether the database refused a transaction for a moment, not for what it does."""
    for e in _causes(exc):
        if getattr(e, "sqlstate", None) in _TRANSIENT_SQLSTATES:
            return True
        if isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e)):
            return True
    return False


async def retrying(work: Callable[[], Awaitable[T]], *, what: str, attempts: int = 5) -> T:
    """Run ``work`` (one whole transaction), again when the database refuses it for a moment.

    Two transactions that lock the same rows in a different order (a cancel
    and a worker's outcomes) deadlock on PostgreSQL, and one of them is
    refused; on SQLite a writer can wait longer than the busy timeout. Either
    says nothing about the work itself: it runs again after a short random
    pause, and only the last refusal reaches the caller.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            log.warning(
                "transaction refused for a moment; running it again",
                what=what,
                attempt=attempt,
                error=str(exc)[:200],
            )
            await asyncio.sleep(random.uniform(0.0, 0.02 * 2**attempt))
    raise AssertionError("unreachable")


def retried(what: str) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """:func:`retrying` as a decorator, for a function whose writes are one transaction."""

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(fn)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            return await retrying(lambda: fn(*args, **kwargs), what=what)

        return run

    return decorate


def stored_instant(value: object) -> datetime:
    """A timestamp column's value from raw SQL: a datetime (PostgreSQL) or its ISO text (SQLite).

    Not to be confused with ``graphql_api.cleaning.parse_instant``, which checks an
    instant a client sent.
    """
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
