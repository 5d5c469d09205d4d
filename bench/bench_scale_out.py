"""Scale out: 1, 2 and 4 worker processes against one PostgreSQL, in one run.

For each number of processes N, a mailing to ``--clients`` clients goes out
through the real API, N workers (``mailings worker --workers N``, each with
``SEND_CONCURRENCY=--concurrency``) and one simulator; the figure is
messages/s from ``createMailing`` until every message is final. Beside it:
the ratio to one worker, and the raw aiohttp client at the same total
concurrency (N x C) against the same simulator, so the simulator's own
ceiling is visible. What PostgreSQL did per message is printed too:
transactions committed, rows updated, and WAL (the bench database's own
records, read with ``pg_waldump`` when the server's ``pg_wal`` is readable).

Run: ``python -m bench.bench_scale_out [--clients 50000] [--processes 1 2 4]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.raw_client import raw_limit
from bench.stack import Stack, bench_stack, stop, wal_of_database

DATABASE = "mailings_bench_scale_out"


async def _counters(stack: Stack) -> dict[str, int]:
    await asyncio.sleep(1.2)  # backends report their statistics about once a second
    row = await stack.conn.fetchrow(
        "SELECT d.xact_commit, t.n_tup_ins, t.n_tup_upd, t.n_tup_hot_upd"
        " FROM pg_stat_database d, pg_stat_user_tables t"
        " WHERE d.datname = current_database() AND t.relname = 'message'"
    )
    assert row is not None
    return {key: int(value) for key, value in row.items()}


async def _one(stack: Stack, processes: int, args: argparse.Namespace) -> dict[str, float]:
    await stack.reset_clients(args.clients)
    worker = await stack.start_workers(processes, SEND_CONCURRENCY=str(args.concurrency))
    before = await _counters(stack)
    start_lsn = await stack.wal_lsn()
    mailing_id, asked = await stack.create_mailing()
    done = await stack.wait_final(mailing_id, args.clients, timeout=900)
    end_lsn = await stack.wal_lsn()
    after = await _counters(stack)
    stack.procs.remove(worker)
    stop(worker)
    wal = await wal_of_database(stack.conn, start_lsn, end_lsn, await stack.database_oid())
    seconds = done - asked
    n = args.clients
    return {
        "rate": n / seconds,
        "commits": (after["xact_commit"] - before["xact_commit"]) / n,
        "commits_s": (after["xact_commit"] - before["xact_commit"]) / seconds,
        "updates": (after["n_tup_upd"] - before["n_tup_upd"]) / n,
        "hot": (after["n_tup_hot_upd"] - before["n_tup_hot_upd"])
        / max(1, after["n_tup_upd"] - before["n_tup_upd"]),
        "wal": -1.0 if wal is None else wal / n,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=256, help="per worker process")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()

    async with bench_stack(DATABASE) as stack:
        stack.start_simulator()
        stack.start_api()
        await raw_limit(stack.sim_url, 5000, args.concurrency)  # warm-up
        rows: list[tuple[int, float, dict[str, float]]] = []
        for processes in args.processes:
            raw = await raw_limit(stack.sim_url, args.clients, processes * args.concurrency)
            rows.append((processes, raw, await _one(stack, processes, args)))
        footprint = await stack.footprint()
        compact = await stack.footprint(compact=True)

    print(
        f"{args.clients:,} messages per run, {args.concurrency} requests in flight per worker,"
        f" one run on this machine ({time.strftime('%Y-%m-%d %H:%M')})"
    )
    print(
        f"  {'workers':>7} {'msg/s':>8} {'x 1 worker':>10} {'raw N*C':>8} {'of raw':>7}"
        f" {'commits/msg':>11} {'commits/s':>9} {'upd/msg':>7} {'HOT':>5} {'WAL B/msg':>9}"
    )
    one = rows[0][2]["rate"]
    for processes, raw, r in rows:
        wal = "n/a" if r["wal"] < 0 else f"{r['wal']:.0f}"
        print(
            f"  {processes:>7} {r['rate']:8.0f} {r['rate'] / one:10.2f} {raw:8.0f}"
            f" {r['rate'] / raw:7.2f} {r['commits']:11.3f} {r['commits_s']:9.0f}"
            f" {r['updates']:7.2f} {r['hot']:5.0%} {wal:>9}"
        )
    rows_n = footprint.pop("rows")
    compact.pop("rows")
    print(
        f"\nmessage table after the runs ({rows_n:,} rows, every one sent), bytes per row:"
        "\n  after VACUUM (what a live table holds) and after VACUUM FULL (as if just inserted)"
    )
    for name, size in sorted(footprint.items()):
        print(f"  {name:40} {size / rows_n:7.1f} {compact[name] / rows_n:7.1f}")
    total, packed = sum(footprint.values()), sum(compact.values())
    print(f"  {'total':40} {total / rows_n:7.1f} {packed / rows_n:7.1f}")


if __name__ == "__main__":
    asyncio.run(main())
