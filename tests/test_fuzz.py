"""Schemathesis against the live GraphQL schema: generated queries and mutations, real server.

Every root field gets ``_EXAMPLES`` generated operations (a few hundred in
all) against a real ``mailings serve`` with some clients and mailings in its
database. None may answer a 5xx, a masked (unexpected) error or anything
that looks like a traceback; afterwards the server has logged no unexpected
error and the database still holds only what the domain rules allow.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from graphql_api.protection import MASKED_MESSAGE
from models.db import connection, fetch
from tests.conftest import serve_api, stop_process, truncate_all

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
_EXAMPLES = 25

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
def fuzz_api(database: str) -> Iterator[tuple[str, Path]]:
    env = {"API_TOKEN": TOKEN}
    url, proc = serve_api(env, log_name="fuzz")
    yield url, proc.log_path  # type: ignore[attr-defined]
    stop_process(proc)


@pytest.fixture(scope="module")
async def seeded(fuzz_api: tuple[str, Path]) -> str:
    """Empty tables, then a few clients and mailings for the fuzzer to hit by id."""
    await truncate_all()
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


@schema.parametrize()
@settings(
    max_examples=_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=False,
)
def test_generated_operations(case: Any, seeded: str) -> None:
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
    fuzz_api: tuple[str, Path], seeded: str
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
    assert len(served) >= 200  # a few hundred generated operations did run
    conn = connection()
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
    async with httpx.AsyncClient(base_url=seeded) as client:
        assert (await client.get("/healthz")).status_code == 200


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))
