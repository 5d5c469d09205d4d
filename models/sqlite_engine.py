"""Tortoise's SQLite backend, with transactions that take the write lock as they begin.

Tortoise begins a transaction with a plain (deferred) ``BEGIN``. In WAL mode
a deferred transaction that reads, then writes after another process has
committed a write, fails at once with ``database is locked``
(``SQLITE_BUSY_SNAPSHOT``): its snapshot is stale, and SQLite's busy timeout
cannot help, since waiting would not make it fresh. That is exactly what a
``cancelMailing`` does while a worker records outcomes (read the mailing,
then write its messages). ``BEGIN IMMEDIATE`` takes the write lock first,
waiting for it under the busy timeout, so the transaction's reads and writes
see one state. Every transaction here writes (reads go outside them), so
none pays for a lock it does not need.

A statement's count of changed rows is its own: Tortoise's SQLite client
counts ``total_changes``, which includes what triggers did (``timeline_count``,
migration 8), so an ``UPDATE`` of one message would count as two. The
cursor's ``rowcount`` counts only the statement's rows, as PostgreSQL does.

A ``BEGIN`` that fails (the lock not had within the busy timeout) undoes
what entering the transaction did: Tortoise's context would keep the task's
connection context variable set and the process's transaction lock held, so
every later transaction of the process would wait forever (the same defect
as ``models/postgres_engine.py`` guards against).

Named by ``models.tortoise_config`` as the engine of ``sqlite://`` URLs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from tortoise.backends.base.client import TransactionalDBClient, TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
    translate_exceptions,
)
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

__all__ = ["ImmediateSqliteClient", "client_class"]


@translate_exceptions
async def _execute_query(
    self: SqliteClient, query: str, values: list[Any] | None = None
) -> tuple[int, Sequence[dict[str, Any]]]:
    """Tortoise's ``execute_query``, counting the rows the statement itself changed."""
    query = query.replace("\x00", "'||CHAR(0)||'")
    async with self.acquire_connection() as connection:
        cursor = await connection.execute(query, values)
        try:
            rows = await cursor.fetchall()
            changed = cursor.rowcount  # -1 for a statement that changes nothing
        finally:
            await cursor.close()
    return max(changed, 0) or len(rows), rows


class _ImmediateTransaction(SqliteTransactionWrapper):
    execute_query = _execute_query

    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class _GuardedTransaction(SqliteTransactionContext):
    async def __aenter__(self) -> TransactionalDBClient:
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            self.token = get_connections().set(self.connection_name, self.connection)
        except BaseException:
            self._trxlock.release()
            raise
        try:
            await self.connection.begin()
        except BaseException:
            get_connections().reset(self.token)
            self._trxlock.release()
            raise
        client: TransactionalDBClient = self.connection
        return client


class ImmediateSqliteClient(SqliteClient):
    execute_query = _execute_query

    def _in_transaction(self) -> TransactionContext:
        return _GuardedTransaction(_ImmediateTransaction(self), self._lock)


# What Tortoise looks up in an engine module.
client_class = ImmediateSqliteClient
