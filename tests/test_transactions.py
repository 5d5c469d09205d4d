"""Transactions against another process's writes, on the real database."""

from __future__ import annotations

import asyncio
import importlib
from datetime import UTC, datetime

from tortoise import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models.db import connection, execute, fetch, tortoise_config
from tests.factories import make_mailing


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
            await asyncio.sleep(0.3)  # time for it to commit, if nothing holds it
            await execute(conn, "UPDATE mailing SET text = $1 WHERE id = $2", "mine", mailing.id)
        await other_write
    finally:
        await other.close()
    rows = await fetch(connection(), "SELECT text FROM mailing WHERE id = $1", mailing.id)
    assert rows[0]["text"] == "mine"
