"""A database connection that breaks mid-transaction never poisons the task that used it (issue 19).

The PostgreSQL tests go through a fault-injecting proxy
(``tests/support/fault_proxy.py``) that holds ``BEGIN`` and then resets the
connection: exactly where Tortoise's transaction context leaves the task's
connection context variable naming a dead connection. The last test keeps
a reproduction of that library defect: when it starts failing, Tortoise
has fixed it and our guard (``models/postgres_engine.py``) may go.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import sqlite3
import threading
import warnings
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from tortoise import BaseDBAsyncClient, connections
from tortoise.backends.asyncpg.client import AsyncpgDBClient
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.transactions import in_transaction

from models.db import fetch
from models.postgres_engine import GuardedAsyncpgClient
from models.tortoise_config import connection_info
from settings import get_settings
from tests.conftest import BACKEND, DATABASE_URL
from tests.support.fault_proxy import FaultProxy, fault_proxy

postgres_only = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL through a proxy")
sqlite_only = pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's write lock")


@pytest.fixture
def proxy(db: str) -> Iterator[FaultProxy]:
    with fault_proxy(DATABASE_URL) as proxy:
        yield proxy


@contextlib.asynccontextmanager
async def _through(
    proxy: FaultProxy, client_class: type[AsyncpgDBClient]
) -> AsyncIterator[BaseDBAsyncClient]:
    """``client_class`` connected through ``proxy``, as this task's default connection."""
    info = connection_info(proxy.url(DATABASE_URL), get_settings())
    credentials = dict(info["credentials"])
    if client_class is not GuardedAsyncpgClient:
        credentials.pop("acquire_timeout")
    client = client_class(connection_name="default", **credentials)
    await client.create_connection(with_db=True)
    token = connections.set("default", client)
    try:
        yield client
    finally:
        connections.reset(token)
        await client.close()


async def _reset_during_begin(proxy: FaultProxy) -> None:
    """Open a transaction while the proxy holds every byte; reset once BEGIN is held."""
    proxy.black_hole()

    async def reset_when_held() -> None:
        assert await asyncio.to_thread(proxy.holding.wait, 120)
        proxy.reset()
        proxy.restore()

    resetter = asyncio.create_task(reset_when_held())
    with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever the driver raises
        async with in_transaction() as conn:
            await fetch(conn, "SELECT 1 AS ok")
    await resetter
    assert "reset" in repr(caught.value).lower() or "closed" in repr(caught.value).lower()


def assert_not_in_a_transaction() -> None:
    """This task's connection is the plain one, not a transaction left behind."""
    assert not isinstance(connections.get("default"), TransactionalDBClient)


async def _one_transaction() -> int:
    async with in_transaction() as conn:
        rows = await fetch(conn, "SELECT 1 AS ok")
    return int(rows[0]["ok"])


@postgres_only
async def test_a_reset_during_begin_leaves_the_task_able_to_open_transactions(
    proxy: FaultProxy,
) -> None:
    async with _through(proxy, GuardedAsyncpgClient):
        await _reset_during_begin(proxy)
        assert_not_in_a_transaction()
        # The same task, as a worker's long-lived loop goes on after a failure.
        assert await _one_transaction() == 1
        assert await _one_transaction() == 1


@postgres_only
async def test_tortoise_itself_still_poisons_the_task_on_a_reset_during_begin(
    proxy: FaultProxy,
) -> None:
    # The library's defect, kept as a test: models/postgres_engine.py exists
    # because of it. When this fails, Tortoise fixed it: drop the guard.
    async with _through(proxy, AsyncpgDBClient):
        await _reset_during_begin(proxy)
        assert isinstance(connections.get("default"), TransactionalDBClient)
        for _attempt in range(3):
            with pytest.raises(Exception, match=r"released back to the pool|closed|transaction"):
                await _one_transaction()
    # The defect also leaves a connection that nothing can close any more:
    # collect it here, where it is expected, rather than warn in a later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@sqlite_only
async def test_a_begin_refused_on_sqlite_leaves_the_process_able_to_open_transactions(
    db: str,
) -> None:
    # Another process holds the write lock past the busy timeout: BEGIN
    # IMMEDIATE is refused. Tortoise kept its transaction lock then, and every
    # later transaction of the process waited for ever.
    locked = threading.Event()
    release = threading.Event()

    def hold_the_write_lock() -> None:
        other = sqlite3.connect(DATABASE_URL.removeprefix("sqlite://"), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(120)
        other.execute("ROLLBACK")
        other.close()

    before = contextvars.copy_context()
    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 60)
        with pytest.raises(Exception, match="locked"):
            await _one_transaction()
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 60)
    assert_not_in_a_transaction()
    # Bounded only so that the defect shows as a failure, not a hung suite:
    # in this task, and in one that never saw the failure (another loop).
    assert await asyncio.wait_for(_one_transaction(), 120) == 1
    other = asyncio.get_running_loop().create_task(_one_transaction(), context=before)
    assert await asyncio.wait_for(other, 120) == 1


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """A transport left unclosed shows in the test that left it, not in a later one's setup."""
    yield
    gc.collect()


@postgres_only
async def test_a_transaction_left_idle_by_a_frozen_process_does_not_hold_its_locks(
    db: str,
) -> None:
    # A worker frozen between two statements of a transaction (seen in about
    # one SIGSTOP in five under load) held its locks until it resumed: the
    # other workers' statements on those rows waited, and the mailing could
    # not finish. The server now ends a session idle in a transaction for
    # DATABASE_STATEMENT_TIMEOUT.
    settings = get_settings().model_copy(update={"database_statement_timeout": 1.0})
    credentials = connection_info(DATABASE_URL, settings)["credentials"]
    connect = {k: credentials[k] for k in ("host", "port", "user", "password", "database")}
    frozen = await asyncpg.connect(**connect, server_settings=credentials["server_settings"])
    other = await asyncpg.connect(**connect)
    try:
        await frozen.execute("BEGIN")
        await frozen.execute("SELECT pg_advisory_xact_lock(19)")
        # The frozen one sends nothing more; the other gets the lock once the
        # server has ended the frozen one's session (bounded so that a hang fails).
        async with other.transaction():
            await asyncio.wait_for(other.execute("SELECT pg_advisory_xact_lock(19)"), 30)
    finally:
        await other.close()
        frozen.terminate()
