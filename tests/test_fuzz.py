"""Schemathesis against the live GraphQL schema: generated queries and mutations, real server.

Every root field gets ``_EXAMPLES`` generated operations (a few hundred in
all) against a real ``mailings serve`` with some clients and mailings in its
database. None may answer a 5xx, a masked (unexpected) error or anything
that looks like a traceback; afterwards the server has logged no unexpected
error and the database still holds only what the domain rules allow.

The server has a database of its own, made empty for this module, so the
check reads only what the fuzzer wrote: nothing an earlier test left, or a
process it left running, is in it. The operations are drawn from one seed,
``FUZZ_SEED`` (default ``_SEED``); a failure names the seed to rerun with.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import string
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes
from tortoise import BaseDBAsyncClient

from graphql_api.protection import MASKED_MESSAGE
from models.db import fetch
from models.tortoise_config import connection_info
from tests.conftest import (
    BACKEND,
    DATA_DIR,
    PG_ADMIN_URL,
    RUN_ID,
    TEST_ENV,
    serve_api,
    start_command,
    stop_process,
)

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
_EXAMPLES = 25
_SEED = 13
SEED = int(os.environ.get("FUZZ_SEED", _SEED))

_NOW = datetime.now(UTC).replace(microsecond=0)
_instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.timezones()
).map(lambda moment: moment.isoformat())
# Mostly instants near now, so mailings get created; some naive or not instants at all.
schemathesis.graphql.scalar(
    "DateTime",
    st.one_of(
        st.integers(-48, 48).map(lambda h: (_NOW + timedelta(hours=h)).isoformat()),
        _instants,
        st.datetimes().map(lambda moment: moment.isoformat()),
        st.text(max_size=40),
    ).map(nodes.String),
)


@pytest.fixture(scope="module")
async def fuzz_database(database: str) -> AsyncIterator[str]:
    """The URL of a database of the fuzzer's own, migrated and empty."""
    name = f"mailings_test_{RUN_ID}_fuzz" if BACKEND == "postgres" else ""
    if name:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    else:
        url = f"sqlite://{DATA_DIR}/fuzz.sqlite3"
    migrate = start_command(["migrate"], env={"DATABASE_URL": url}, log_name="fuzz-migrate")
    log = migrate.log_path  # type: ignore[attr-defined]
    assert await asyncio.to_thread(migrate.wait, 120) == 0, log.read_text()
    yield url
    if name:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="module")
def fuzz_api(fuzz_database: str) -> Iterator[tuple[str, Path]]:
    # Its wake-ups go to a queue of its own too: no worker of another test tends its mailings.
    queue = TEST_ENV["QUEUE_NAME"] + "-fuzz"  # removed with the session's, by its prefix
    env = {"API_TOKEN": TOKEN, "DATABASE_URL": fuzz_database, "QUEUE_NAME": queue}
    url, proc = serve_api(env, log_name="fuzz")
    yield url, proc.log_path  # type: ignore[attr-defined]
    stop_process(proc)


@contextlib.asynccontextmanager
async def fuzz_connection(url: str) -> AsyncIterator[BaseDBAsyncClient]:
    """A connection to the fuzzer's database, beside the suite's own."""
    info = connection_info(url)
    client_class = importlib.import_module(info["engine"]).client_class
    client: BaseDBAsyncClient = client_class(connection_name="fuzz", **info["credentials"])
    await client.create_connection(with_db=True)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(scope="module")
async def seeded(fuzz_api: tuple[str, Path]) -> str:
    """A few clients and mailings for the fuzzer to hit by id."""
    url, _ = fuzz_api
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as client:
        for n in range(6):
            phone = f"7900{n:07d}"
            tag = ("vip", "", "new")[n % 3]
            await client.post(
                "/graphql",
                json={
                    "query": "mutation($p: String!, $t: String) "
                    "{ createClient(input: {phone: $p, tag: $t}) { __typename } }",
                    "variables": {"p": phone, "t": tag},
                },
            )
        for start, end in ((-1, 48), (24, 72), (-48, -24)):
            await client.post(
                "/graphql",
                json={
                    "query": "mutation($s: DateTime!, $e: DateTime!) { createMailing(input: "
                    '{text: "hello", startAt: $s, endAt: $e}) { __typename } }',
                    "variables": {
                        "s": (_NOW + timedelta(hours=start)).isoformat(),
                        "e": (_NOW + timedelta(hours=end)).isoformat(),
                    },
                },
            )
    return url


# The committed SDL, which CI keeps equal to the code's (scripts/check_schema.py).
schema = schemathesis.graphql.from_path(Path(__file__).parent.parent / "schema.graphql")
# Each operation's examples come from this seed (mixed with the operation's name).
schema.config.seed = SEED


@schema.parametrize()
@settings(
    max_examples=_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=False,
    # What a run tries is what its seed says, not failures saved by earlier runs.
    database=None,
)
def test_generated_operations(case: Any, seeded: str) -> None:
    note(f"drawn with FUZZ_SEED={SEED}: set it to run these operations again")
    response = case.call(base_url=seeded + "/graphql", headers=AUTH, timeout=30)
    assert response.status_code < 500, (case.body, response.text)
    text = response.text
    assert "Traceback" not in text
    body = json.loads(text)
    assert isinstance(body, dict), text
    for error in body.get("errors") or []:
        # A masked error is an exception that escaped a resolver: a bug found.
        assert error["message"] != MASKED_MESSAGE, (case.body, text)


async def test_nothing_unexpected_and_the_database_is_intact(
    fuzz_api: tuple[str, Path], fuzz_database: str, seeded: str
) -> None:
    _, log_path = fuzz_api
    logged = [json.loads(line) for line in log_path.read_text().splitlines() if line[:1] == "{"]
    unexpected = [
        f"{r.get('event')}: {str(r.get('exception', ''))[-600:]}"
        for r in logged
        if r.get("level") in ("error", "critical")
    ]
    assert unexpected == [], "\n".join(unexpected)
    served = [r for r in logged if "POST /graphql" in str(r.get("event"))]
    assert len(served) >= 200, f"FUZZ_SEED={SEED}"  # a few hundred generated operations ran
    async with fuzz_connection(fuzz_database) as conn:
        await _check_rows(conn)
    async with httpx.AsyncClient(base_url=seeded) as client:
        assert (await client.get("/healthz")).status_code == 200


async def _check_rows(conn: BaseDBAsyncClient) -> None:
    clients = await fetch(conn, "SELECT phone, operator_code, tag, timezone FROM client")
    assert len(clients) >= 1
    for row in clients:
        assert len(row["phone"]) == 11
        assert row["phone"][0] == "7"
        assert set(row["phone"]) <= set(string.digits)
        assert row["operator_code"] == row["operator_code"].strip()
        assert len(row["operator_code"]) == 3
        assert len(row["tag"]) <= 64
        assert row["timezone"]
    assert len({row["phone"] for row in clients}) == len(clients)
    for row in await fetch(conn, "SELECT text, start_at, end_at FROM mailing"):
        assert 1 <= len(row["text"]) <= 1000
        assert _instant(row["start_at"]) < _instant(row["end_at"])
    # The counters match the messages they count.
    counted = await fetch(
        conn,
        "SELECT mailing_id, status, COUNT(*) AS n FROM message GROUP BY mailing_id, status",
    )
    stats = {row["mailing_id"]: row for row in await fetch(conn, "SELECT * FROM mailing_stats")}
    for row in counted:
        assert stats[row["mailing_id"]][str(row["status"]).lower()] == row["n"]
    for row in stats.values():
        parts = ("pending", "sent", "failed", "expired", "cancelled")
        assert row["total"] == sum(row[part] for part in parts)


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))
