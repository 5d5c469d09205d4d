"""Transactions against another process's writes, on the real database."""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from tortoise import BaseDBAsyncClient
from tortoise.exceptions import OperationalError
from tortoise.transactions import in_transaction

from models.db import (
    connection,
    execute,
    fetch,
    is_postgres,
    is_transient,
    retrying,
    tortoise_config,
)
from tests.conftest import DATABASE_URL
from tests.support.factories import make_mailing


async def _other_process() -> BaseDBAsyncClient:
    """A connection of its own, as the worker's (or the API's) process has."""
    info = tortoise_config()["connections"]["default"]
    client_class = importlib.import_module(info["engine"]).client_class
    client: BaseDBAsyncClient = client_class(connection_name="other", **info["credentials"])
    await client.create_connection(with_db=True)
    return client


async def test_a_transaction_that_reads_then_writes_is_not_refused_by_another_writer(
    db: str,
) -> None:
    # cancelMailing reads the mailing, then writes its messages, while a
    # worker records outcomes. On SQLite a transaction begun with a plain
    # BEGIN was refused at its first write ("database is locked") whenever
    # the worker had committed in between: the API answered "Unexpected error".
    mailing = await make_mailing()
    other = await _other_process()
    try:
        async with in_transaction() as conn:
            rows = await fetch(conn, "SELECT text FROM mailing WHERE id = $1", mailing.id)
            assert rows[0]["text"] == mailing.text
            other_write = asyncio.create_task(
                execute(
                    other,
                    "UPDATE mailing SET updated_at = $1 WHERE id = $2",
                    datetime.now(UTC),
                    mailing.id,
                )
            )
            if is_postgres(conn):
                await other_write  # a read locks nothing: it commits now
            else:
                # BEGIN IMMEDIATE holds the write lock, so it waits for this
                # transaction and nothing tells us so: give it the time it
                # would need to commit if it could (as it did with a plain BEGIN).
                await asyncio.wait([other_write], timeout=0.3)
            await execute(conn, "UPDATE mailing SET text = $1 WHERE id = $2", "mine", mailing.id)
        await other_write
    finally:
        await other.close()
    rows = await fetch(connection(), "SELECT text FROM mailing WHERE id = $1", mailing.id)
    assert rows[0]["text"] == "mine"


async def test_a_transaction_refused_by_a_deadlock_runs_again(db: str, backend: str) -> None:
    # A cancel and a worker's outcomes can lock the same rows in another
    # order; PostgreSQL then refuses one of them (40P01), which says nothing
    # about the work: it runs again.
    if backend != "postgres":
        pytest.skip("row locks, and so deadlocks, are PostgreSQL's")
    a, b = await make_mailing(), await make_mailing()
    other = await asyncpg.connect(DATABASE_URL)
    watcher = await asyncpg.connect(DATABASE_URL)
    mine_has_a = asyncio.Event()
    attempts = 0

    async def theirs_waits() -> None:
        # Until their backend waits for a lock (for mine on a): no sleeps.
        pid = other.get_server_pid()
        for _ in range(6000):
            if await watcher.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
            ):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("their transaction never waited for mine")

    async def mine() -> None:
        nonlocal attempts
        attempts += 1
        async with in_transaction() as conn:
            await execute(conn, "UPDATE mailing SET text = 'mine' WHERE id = $1", a.id)
            if attempts == 1:
                mine_has_a.set()
                await theirs_waits()
            # Closes the cycle; this backend is the one that finds it.
            await execute(conn, "UPDATE mailing SET text = 'mine' WHERE id = $1", b.id)

    async def theirs() -> None:
        async with other.transaction():
            await other.execute("SET LOCAL deadlock_timeout = '10s'")
            await other.execute("UPDATE mailing SET text = 'theirs' WHERE id = $1", b.id)
            await mine_has_a.wait()
            await other.execute("UPDATE mailing SET text = 'theirs' WHERE id = $1", a.id)

    try:
        await asyncio.gather(retrying(mine, what="test"), theirs())
    finally:
        await other.close()
        await watcher.close()
    assert attempts == 2
    rows = await fetch(connection(), "SELECT text FROM mailing WHERE id IN ($1, $2)", a.id, b.id)
    assert [r["text"] for r in rows] == ["mine", "mine"]


def test_what_counts_as_refused_for_a_moment(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as locked:
        waiter.execute("BEGIN IMMEDIATE")
    holder.close()
    waiter.close()
    assert is_transient(OperationalError(locked.value))
    assert not is_transient(OperationalError(sqlite3.OperationalError("no such table: t")))
    assert not is_transient(ValueError("boom"))
