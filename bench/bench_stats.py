"""Latency of ``mailing { stats }``, ``statistics { totals }`` and ``mailing { timeline }``
with a million messages (``--messages 10000000`` for the timeline's target).

One mailing gets 1,000,000 messages (inserted by ``generate_series``, in a
mix of statuses, finished 5,000 a second as a worker sends them, its
counters set to match), beside 200 small mailings; a real ``mailings serve``
answers the queries, one at a time, and the median and 95th percentile are
printed. Counting the same messages with GROUP BY, by status and by the
timeline's buckets as the timeline did before ``timeline_count``, is timed
too, to show what the counters save.

Run: ``python -m bench.bench_stats [--messages 1000000] [--repeat 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx

from bench.api_server import recreate_database, serve, use_database

DATABASE = "mailings_bench_stats"
STATS = "total pending sent failed expired cancelled"
QUERIES = {
    "mailing(id) { stats }": f'{{ mailing(id: "1") {{ stats {{ {STATS} }} }} }}',
    "statistics { totals }": f"{{ statistics {{ totals {{ {STATS} }} }} }}",
    "mailing { messages(first: 50) { totalCount } }": (
        '{ mailing(id: "1") { messages(first: 50) { totalCount edges { node { id status } } } } }'
    ),
    "statistics { mailings(first: 50) { stats } }": (
        f"{{ statistics {{ mailings(first: 50) {{ totalCount edges {{ node"
        f" {{ mailing {{ id }} stats {{ {STATS} }} }} }} }} }} }}"
    ),
    "mailing(id) { timeline } (AUTO)": (
        '{ mailing(id: "1") { timeline { bucketSeconds undated ratePerSecond'
        " buckets { start sent failed expired cancelled } } } }"
    ),
    "mailing(id) { timeline(bucket: MINUTE) }": (
        '{ mailing(id: "1") { timeline(bucket: MINUTE) { bucketSeconds undated'
        " buckets { start sent failed expired cancelled } } } }"
    ),
}
# Messages finished a second, as one worker sends them.
_RATE = 5000


async def _populate(messages: int) -> None:
    from models import Mailing, MailingStats
    from models.db import close_db, connection, execute, fetch, init_db

    await init_db()
    now = datetime.now(UTC)
    for _ in range(201):
        mailing = await Mailing.create(text="Hello", start_at=now, end_at=now + timedelta(days=1))
        await MailingStats.create(mailing=mailing, total=10, sent=10)
    conn = connection()
    started = time.perf_counter()
    await execute(
        conn,
        "INSERT INTO message (mailing_id, client_id, phone, timezone, status, attempts,"
        " next_attempt_at, created_at, finished_at)"
        " SELECT 1, NULL, (79000000000 + g)::text, 'UTC',"
        " (ARRAY['SENT','SENT','SENT','SENT','SENT','SENT','PENDING','FAILED','EXPIRED',"
        "'CANCELLED'])[g % 10 + 1], 1, $1, $1,"
        " CASE WHEN g % 10 <> 6 THEN $1::timestamptz + make_interval(secs => g / $3) END"
        " FROM generate_series(1, $2) AS g",
        now,
        messages,
        _RATE,
    )
    await execute(conn, "ANALYZE message")
    print(f"  inserted {messages:,} messages in {time.perf_counter() - started:.1f} s")
    await _count_into_stats(conn, fetch, execute)
    await close_db()


async def _count_into_stats(
    conn: object,
    fetch: Callable[..., Awaitable[list[dict[str, object]]]],
    execute: Callable[..., Awaitable[int]],
) -> None:
    started = time.perf_counter()
    rows = await fetch(
        conn, "SELECT status, COUNT(*) AS n FROM message WHERE mailing_id = 1 GROUP BY status"
    )
    counted = time.perf_counter() - started
    counts = {str(row["status"]).lower(): int(str(row["n"])) for row in rows}
    await execute(
        conn,
        "UPDATE mailing_stats SET total = $1, pending = $2, sent = $3, failed = $4,"
        " expired = $5, cancelled = $6 WHERE mailing_id = 1",
        sum(counts.values()),
        *(counts.get(s, 0) for s in ("pending", "sent", "failed", "expired", "cancelled")),
    )
    print(f"  for comparison, GROUP BY status over them took {counted * 1000:.0f} ms")
    started = time.perf_counter()
    await fetch(
        conn,
        "SELECT FLOOR(date_part('epoch', finished_at) / 60)::bigint AS bucket, status,"
        " COUNT(*) AS n FROM message WHERE mailing_id = 1 AND status <> 'PENDING' GROUP BY 1, 2",
    )
    scanned = time.perf_counter() - started
    print(f"  and by minute and status (the timeline's old statement) {scanned * 1000:.0f} ms")


async def _time(http: httpx.AsyncClient, query: str, repeat: int) -> list[float]:
    await http.post("/graphql", json={"query": query})  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await http.post("/graphql", json={"query": query})
        times.append(time.perf_counter() - started)
        if "errors" in response.json():
            raise RuntimeError(response.text)
    return times


async def _run(messages: int, repeat: int) -> None:
    await recreate_database(DATABASE)
    await _populate(messages)
    with serve() as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            print(f"through the API over HTTP, {repeat} requests each, one at a time:")
            for name, query in QUERIES.items():
                times = sorted(await _time(http, query, repeat))
                median = statistics.median(times) * 1000
                p95 = times[int(len(times) * 0.95) - 1] * 1000
                print(f"  {name:48} median {median:5.1f} ms   p95 {p95:5.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    use_database(DATABASE)
    asyncio.run(_run(args.messages, args.repeat))


if __name__ == "__main__":
    main()
