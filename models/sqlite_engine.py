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

A ``BEGIN`` that fails (the lock not had within the busy timeout) undoes
what entering the transaction did: Tortoise's context would keep the task's
connection context variable set and the process's transaction lock held, so
every later transaction of the process would wait forever (the same defect
as ``models/postgres_engine.py`` guards against).

Named by ``models.tortoise_config`` as the engine of ``sqlite://`` URLs.
"""

from __future__ import annotations

import sqlite3

from tortoise.backends.base.client import TransactionalDBClient, TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

__all__ = ["ImmediateSqliteClient", "client_class"]


class _ImmediateTransaction(SqliteTransactionWrapper):
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
    def _in_transaction(self) -> TransactionContext:
        return _GuardedTransaction(_ImmediateTransaction(self), self._lock)


# What Tortoise looks up in an engine module.
client_class = ImmediateSqliteClient
