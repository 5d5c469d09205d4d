"""A large mailing's messages stream out as CSV with bounded memory in the server."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from models import MailingStatus
from models.db import connection, execute, is_postgres
from tests.conftest import serve_api, stop_process
from tests.support.factories import make_mailing

pytestmark = pytest.mark.slow

ROWS = 200_000
# A server that held every row (as dicts, or the CSV as one string) grows by
# hundreds of MiB for 200,000 rows; a batch of 5,000 costs a few.
MAX_GROWTH_KIB = 60 * 1024


@pytest.fixture(scope="module")
def server(database: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    url, proc = serve_api(log_name="api-large")
    yield url, proc
    stop_process(proc)


def peak_rss_kib(proc: subprocess.Popen[bytes]) -> int:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc")


async def _large_mailing(rows: int) -> int:
    """A mailing with ``rows`` messages, inserted by the database itself."""
    mailing = await make_mailing(status=MailingStatus.FINISHED)
    conn = connection()
    now = datetime.now(UTC)
    if is_postgres(conn):
        numbers = "SELECT g AS n FROM generate_series(1, CAST($2 AS INTEGER)) g"
        at = "CAST($3 AS TIMESTAMPTZ)"
    else:
        numbers = (
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $2)"
            " SELECT n FROM seq"
        )
        at = "$3"
    await execute(
        conn,
        "INSERT INTO message (mailing_id, client_id, phone, timezone, status, attempts,"
        " last_error, next_attempt_at, created_at, sent_at)"
        " SELECT $1, NULL, CAST(79000000000 + n AS TEXT), 'UTC',"
        " CASE WHEN n % 10 = 0 THEN 'FAILED' ELSE 'SENT' END, 1,"
        f" CASE WHEN n % 10 = 0 THEN 'HTTP 400: invalid recipient' END, {at}, {at},"
        f" CASE WHEN n % 10 = 0 THEN NULL ELSE {at} END"
        f" FROM ({numbers}) numbers",
        mailing.id,
        rows,
        now,
    )
    failed = rows // 10
    await execute(
        conn,
        "UPDATE mailing_stats SET total = $2, sent = $3, failed = $4 WHERE mailing_id = $1",
        mailing.id,
        rows,
        rows - failed,
        failed,
    )
    return mailing.id


async def test_a_large_mailing_streams_with_bounded_memory(
    server: tuple[str, subprocess.Popen[bytes]], db: str
) -> None:
    url, proc = server
    small_id = await _large_mailing(100)
    mailing_id = await _large_mailing(ROWS)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        # Warm up on a small mailing: imports and pools count before the baseline.
        warm = await client.get(f"/exports/mailings/{small_id}/messages.csv")
        assert len(warm.content.splitlines()) == 101
        baseline = peak_rss_kib(proc)
        lines = 0
        chunks = 0
        last_id = 0
        first_chunk_at = 0.0
        started = time.monotonic()
        tail = b""
        async with client.stream("GET", f"/exports/mailings/{mailing_id}/messages.csv") as resp:
            assert resp.status_code == 200
            # Streamed: no length known up front, sent in chunks as batches are read.
            assert "content-length" not in resp.headers
            assert resp.headers["transfer-encoding"] == "chunked"
            async for chunk in resp.aiter_bytes():
                if not chunks:
                    first_chunk_at = time.monotonic() - started
                chunks += 1
                data = tail + chunk
                *complete, tail = data.split(b"\r\n")
                for line in complete:
                    lines += 1
                    if lines == 1:
                        assert line.startswith(b"id,phone,status")
                        continue
                    message_id = int(line.split(b",", 1)[0])
                    assert message_id > last_id
                    last_id = message_id
        total = time.monotonic() - started
        assert tail == b""
    growth = peak_rss_kib(proc) - baseline
    assert lines == ROWS + 1
    assert chunks > 10
    assert first_chunk_at < total / 2
    assert growth < MAX_GROWTH_KIB, f"the server grew by {growth} KiB"
