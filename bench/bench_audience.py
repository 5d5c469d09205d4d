"""Time to the first message of a 1,000,000-client mailing, and until its audience is built.

A real API, one worker and the simulator on a bench database; the clients
are made by ``generate_series``. From ``createMailing``, the benchmark polls
the mailing's counters and prints when the first message was recorded as
accepted (``sent > 0``; target: 2 s), and when ``total`` reached the
audience. For comparison it then times, on the same clients with the worker
stopped, the audience built the old way: one ``INSERT ... SELECT`` for all
of them in one transaction (``--no-compare`` skips it).

Run: ``python -m bench.bench_audience [--clients 1000000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.stack import Stack, bench_stack

DATABASE = "mailings_bench_audience"

ONE_STATEMENT = (
    "INSERT INTO message (mailing_id, client_id, phone, timezone, status, attempts,"
    " next_attempt_at, waits_for_window, created_at)"
    " SELECT $1, c.id, c.phone, c.timezone, 'PENDING', 0, now(), FALSE, now()"
    " FROM client c ON CONFLICT (mailing_id, client_id) DO NOTHING"
)


async def first_message(stack: Stack, clients: int, timeout: float) -> dict[str, float]:
    """Seconds from ``createMailing`` to the first accepted message and to the whole audience."""
    mailing_id, asked = await stack.create_mailing()
    created = time.perf_counter() - asked
    first = built = 0.0
    sent_when_built = 0
    deadline = asked + timeout
    while time.perf_counter() < deadline and not (first and built):
        row = await stack.stats(mailing_id)
        now = time.perf_counter() - asked
        if not first and row["sent"] > 0:
            first = now
        if not built and row["total"] >= clients:
            built, sent_when_built = now, int(row["sent"])
        if str(row["status"]) == "FINISHED" and not built:
            raise RuntimeError(f"mailing {mailing_id} FINISHED with total {row['total']}")
        await asyncio.sleep(0.01)
    if not (first and built):
        raise RuntimeError(f"not done after {timeout:.0f} s: first {first}, built {built}")
    return {"created": created, "first": first, "built": built, "sent": sent_when_built}


async def one_statement(stack: Stack) -> float:
    """Seconds the old way took: the whole audience in one ``INSERT ... SELECT``."""
    mailing_id = await stack.conn.fetchval(
        "INSERT INTO mailing (text, start_at, end_at, filter_operator_codes, filter_tags, status,"
        " filter_version, revision, created_at, updated_at) VALUES ('compare', now(),"
        " now() + interval '1 hour', '[]', '[]', 'CANCELLED', 1, 0, now(), now()) RETURNING id"
    )
    started = time.perf_counter()
    await stack.conn.execute(ONE_STATEMENT, mailing_id)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--no-compare", action="store_true")
    args = parser.parse_args()

    async with bench_stack(DATABASE) as stack:
        stack.start_simulator()
        stack.start_api()
        await stack.reset_clients(args.clients)
        worker = await stack.start_workers(1)
        result = await first_message(stack, args.clients, args.timeout)
        stack.procs.remove(worker)
        worker.terminate()
        worker.wait(60)
        old = None if args.no_compare else await one_statement(stack)

    print(f"a mailing to {args.clients:,} clients, one worker, one run on this machine:")
    print(f"  createMailing answered after      {result['created']:7.2f} s")
    print(f"  first accepted message after      {result['first']:7.2f} s   (target 2 s)")
    print(
        f"  total reached {args.clients:,} after {result['built']:7.2f} s"
        f"   ({result['sent']:,.0f} messages sent by then)"
    )
    if old is not None:
        print(f"  the same audience in one INSERT ... SELECT: {old:.2f} s, nothing sent meanwhile")


if __name__ == "__main__":
    asyncio.run(main())
