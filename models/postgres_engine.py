"""Tortoise's asyncpg backend, with transactions that cannot poison the task that opened them.

Tortoise's ``TransactionContextPooled.__aenter__`` takes a connection from the
pool, sets the task's connection context variable to it, then awaits
``BEGIN``. When ``BEGIN`` fails (a connection reset, a timeout) the exception
leaves ``__aenter__``, so ``__aexit__`` never runs: the context variable
keeps naming that dead connection and the connection never goes back to the
pool. Every later ``in_transaction()`` in the same task then fails ("cannot
call Connection.transaction(): connection has been released back to the
pool"), forever: one reset stopped a worker's long-lived loops for good
(issue 19; ``tests/test_db_faults.py`` keeps a reproduction of the defect).

Here ``BEGIN`` failing undoes everything ``__aenter__`` did, and ``__aexit__``
restores the context variable before anything that may raise; a connection
whose ``BEGIN``, ``COMMIT`` or ``ROLLBACK`` failed is closed, never reused.
Taking a connection from the pool waits at most ``acquire_timeout``.

Named by ``models.tortoise_config`` as the engine of ``postgres://`` URLs.
"""

from __future__ import annotations

import contextlib
from typing import Any

from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import (
    PoolConnectionWrapper,
    TransactionContext,
    TransactionContextPooled,
)
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

__all__ = ["GuardedAsyncpgClient", "client_class"]


async def _give_back(client: Any, connection: Any, *, broken: bool) -> None:
    pool = client._pool
    if broken and not connection.is_closed():
        # Its state is unknown (a statement may still run on the server):
        # close it; the pool opens a new one when it needs one. asyncpg
        # refuses to touch a connection its pool took back as it closed.
        with contextlib.suppress(Exception):
            connection.terminate()
    if pool is not None:
        with contextlib.suppress(Exception):
            await pool.release(connection, timeout=client.acquire_timeout)


class _GuardedTransaction(TransactionContextPooled):
    async def __aenter__(self) -> TransactionWrapper:
        await self.ensure_connection()
        parent: Any = self.client._parent
        connection = await parent._pool.acquire(timeout=parent.acquire_timeout)
        self.client._connection = connection
        self.token = get_connections().set(self.connection_name, self.client)
        try:
            await self.client.begin()
        except BaseException:
            get_connections().reset(self.token)
            await _give_back(parent, connection, broken=True)
            raise
        client: TransactionWrapper = self.client  # type: ignore[assignment]
        return client

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        broken = False
        try:
            if not self.client._finalized:
                if exc_type:
                    if exc_type is not TransactionManagementError:
                        await self.client.rollback()
                else:
                    await self.client.commit()
        except BaseException:
            broken = True
            raise
        finally:
            get_connections().reset(self.token)
            await _give_back(self.client._parent, self.client._connection, broken=broken)


class _BoundedPoolConnection(PoolConnectionWrapper[Any]):
    async def __aenter__(self) -> Any:
        await self.ensure_connection()
        self.connection = await self.client._pool.acquire(
            timeout=self.client.acquire_timeout  # type: ignore[attr-defined]
        )
        return self.connection


class GuardedAsyncpgClient(AsyncpgDBClient):
    """The asyncpg client with guarded transactions and a bounded wait for a connection."""

    def __init__(self, *args: Any, acquire_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def _in_transaction(self) -> TransactionContext:
        return _GuardedTransaction(TransactionWrapper(self), self._pool_init_lock)

    def acquire_connection(self) -> Any:
        return _BoundedPoolConnection(self, self._pool_init_lock)


# What Tortoise looks up in an engine module.
client_class = GuardedAsyncpgClient
