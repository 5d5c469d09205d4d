"""The engine through every fault at scale, with its guarantees checked.

Two mailings, on PostgreSQL + Redis, one worker process, the simulator
failing a fifth of the requests (500s), resetting connections, hanging some,
answering 429s beyond 2,000 requests a second, rejecting some for good, and
going down for ten seconds:

1. 50,000 clients (``--clients``), a fifth of them in Tokyo where the send
   window is closed: every UTC message ends SENT or FAILED, accepted by the
   provider at most once; no Tokyo message is ever requested, and they wait
   (PENDING, for a window that opens after ``endAt``) until the mailing is
   cancelled.
2. 20,000 clients with 100 ms latency and an end 8 s after the start: no
   request arrives at or after ``endAt``; what is unsent is EXPIRED.

Run: ``python -m bench.bench_faults``. Prints the figures and ``OK`` or the
broken guarantee (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from bench.bench_engine import DB_URL, _reset_database, _spawn
from bench.ports import free_port, wait_for_port
from bench.stack import stop
from graphql_api.ids import Kind, key_of

_CREATE = """
mutation($input: MailingInput!) {
  createMailing(input: $input) { __typename ... on Mailing { id } }
}"""

# A 429 holds every send for its Retry-After (SPEC section 3): the provider
# here rate-limits as real ones do, beyond a rate (max_rps), not at random.
FAULTS = {
    "fail_rate": 0.2,
    "reset_rate": 0.03,
    "hang_rate": 0.01,
    "max_rps": 2000,
    "reject_rate": 0.01,
}


async def _clients(conn: asyncpg.Connection, n: int, tokyo_share: float) -> None:
    await conn.execute("TRUNCATE client, mailing, mailing_stats, message RESTART IDENTITY CASCADE")
    await conn.execute(
        "INSERT INTO client (phone, operator_code, tag, timezone, created_at, updated_at)"
        " SELECT (79000000000 + g)::text, '900', '',"
        " CASE WHEN g % 100 < $2 THEN 'Asia/Tokyo' ELSE 'UTC' END, now(), now()"
        " FROM generate_series(1, $1) g",
        n,
        round(tokyo_share * 100),
    )


async def _create(api: str, variables: dict[str, Any]) -> int:
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        response = await http.post("/graphql", json={"query": _CREATE, "variables": variables})
    mailing_id = key_of(response.json()["data"]["createMailing"]["id"], Kind.MAILING)
    assert mailing_id is not None, response.text
    return mailing_id


async def _cancel(api: str, mailing_id: int) -> int:
    query = (
        "mutation($id: ID!) { cancelMailing(id: $id) { ... on Mailing { stats { cancelled } } } }"
    )
    async with httpx.AsyncClient(base_url=api, timeout=60) as http:
        response = await http.post(
            "/graphql", json={"query": query, "variables": {"id": mailing_id}}
        )
    return int(response.json()["data"]["cancelMailing"]["stats"]["cancelled"])


async def _wait(conn: asyncpg.Connection, mailing_id: int, done: str, timeout: float) -> float:
    """Seconds until ``done`` holds; prints the counts every five seconds meanwhile."""
    started = last_report = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if await conn.fetchval(done, mailing_id):
            return time.perf_counter() - started
        if time.perf_counter() - last_report >= 5:
            last_report = time.perf_counter()
            row = await conn.fetchrow(
                "SELECT sent, failed, pending FROM mailing_stats WHERE mailing_id = $1", mailing_id
            )
            print(f"    t+{last_report - started:5.1f} s  {dict(row or {})}", flush=True)
        await asyncio.sleep(0.2)
    raise RuntimeError(f"mailing {mailing_id} did not settle in {timeout}s")


def _check(failures: list[str], ok: bool, what: str) -> None:
    print(f"  [{'ok' if ok else 'BROKEN'}] {what}")
    if not ok:
        failures.append(what)


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    await _reset_database()
    sim_port, control, api_port = free_port(), free_port(), free_port()
    sim = _spawn(
        "faults-sim",
        ["provider-sim", "--port", str(sim_port), "--control-port", str(control), "--seed", "1"],
    )
    api = _spawn("faults-api", ["serve", "--port", str(api_port)])
    worker = None
    failures: list[str] = []
    try:
        wait_for_port(sim_port)
        wait_for_port(api_port)
        worker = _spawn(
            "faults-worker",
            ["worker"],
            PROVIDER_URL=f"http://127.0.0.1:{sim_port}",
            SEND_CONCURRENCY=str(args.concurrency),
            SEND_TIMEOUT="2",
            SEND_LEASE="10",
            RETRY_BASE_DELAY="0.2",
            RETRY_MAX_DELAY="5",
            BREAKER_RESET_TIMEOUT="1",
        )
        await asyncio.sleep(2)
        sim_ctl = httpx.AsyncClient(base_url=f"http://127.0.0.1:{control}", timeout=60)
        await sim_ctl.post("/_sim/faults", json=FAULTS)
        conn = await asyncpg.connect(DB_URL)
        api_url = f"http://127.0.0.1:{api_port}"

        # 1. Every fault, an outage, a window closed for a fifth of the clients.
        await _clients(conn, args.clients, tokyo_share=0.2)
        now = datetime.now(UTC)
        opens, closes = (now - timedelta(hours=1)).time(), (now + timedelta(hours=1)).time()
        mailing = await _create(
            api_url,
            {
                "input": {
                    "text": "Faults",
                    "startAt": now.isoformat(),
                    "endAt": (now + timedelta(hours=3)).isoformat(),
                    "sendWindow": {
                        "start": opens.strftime("%H:%M"),
                        "end": closes.strftime("%H:%M"),
                    },
                }
            },
        )
        await asyncio.sleep(5)
        await sim_ctl.post("/_sim/faults", json={"down_for": 10})
        print(f"mailing {mailing}: {args.clients} clients, faults {FAULTS}, down 10 s at t+5 s")
        tokyo = round(args.clients * 0.2)
        seconds = await _wait(
            conn,
            mailing,
            f"SELECT pending = {tokyo} FROM mailing_stats WHERE mailing_id = $1 AND total > 0",
            900,
        )
        stats = dict(
            await conn.fetchrow("SELECT * FROM mailing_stats WHERE mailing_id = $1", mailing)
        )
        sim_stats = (await sim_ctl.get("/_sim/stats")).json()
        accepted = (await sim_ctl.get("/_sim/accepted")).json()
        requests = (await sim_ctl.get("/_sim/requests")).json()
        sent_ids = {
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM message WHERE mailing_id = $1 AND status = 'SENT'", mailing
            )
        }
        tokyo_ids = {
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM message WHERE mailing_id = $1 AND timezone = 'Asia/Tokyo'", mailing
            )
        }
        utc_total = args.clients - len(tokyo_ids)
        print(f"  settled in {seconds:.1f} s ({utc_total / seconds:.0f} messages/s through faults)")
        print(f"  stats {stats}")
        print(f"  provider saw {sim_stats['requests']} requests: {sim_stats['by_outcome']}")
        _check(failures, stats["sent"] + stats["failed"] == utc_total, "every UTC message is final")
        _check(
            failures,
            stats["pending"] == len(tokyo_ids) and stats["expired"] == 0,
            "Tokyo messages, whose window opens after endAt, wait: nothing EXPIRED before endAt",
        )
        cancelled = await _cancel(api_url, mailing)
        _check(
            failures,
            cancelled == len(tokyo_ids),
            "cancelMailing answers with the waiting Tokyo messages CANCELLED",
        )
        _check(failures, all(count == 1 for _, count, *_ in accepted), "nothing accepted twice")
        _check(failures, {int(a[0]) for a in accepted} == sent_ids, "accepted == SENT")
        _check(
            failures,
            not tokyo_ids & {int(r[0]) for r in requests},
            "no request outside the send window",
        )

        # 2. The end cuts sending off. A small --clients settles before the
        # outage is over, and an outage longer than this mailing refuses all of it.
        for _ in range(100):  # it lasts 10 s
            if not (await sim_ctl.get("/_sim/stats")).json()["down"]:
                break
            await asyncio.sleep(0.2)
        await sim_ctl.post("/_sim/reset")
        await sim_ctl.post("/_sim/faults", json={**FAULTS, "latency": 100})
        await _clients(conn, 20_000, tokyo_share=0)
        now = datetime.now(UTC)
        end = now + timedelta(seconds=8)
        mailing = await _create(
            api_url,
            {"input": {"text": "Cut", "startAt": now.isoformat(), "endAt": end.isoformat()}},
        )
        await _wait(
            conn,
            mailing,
            "SELECT m.status = 'FINISHED' AND s.pending = 0 FROM mailing m"
            " JOIN mailing_stats s ON s.mailing_id = m.id WHERE m.id = $1",
            120,
        )
        stats = dict(
            await conn.fetchrow("SELECT * FROM mailing_stats WHERE mailing_id = $1", mailing)
        )
        requests = (await sim_ctl.get("/_sim/requests")).json()
        last = max(datetime.fromisoformat(r[1]) for r in requests)
        print(f"\nmailing {mailing}: 20000 clients, 100 ms latency, endAt 8 s after start")
        delta = (last - end).total_seconds()
        print(f"  stats {stats}; last request arrived {delta:+.3f} s from endAt")
        _check(failures, stats["expired"] > 0, "what is unsent at endAt is EXPIRED")
        _check(
            failures,
            last < end + timedelta(milliseconds=50),
            "no request started at or after endAt (arrival within 50 ms of loopback transit)",
        )
        outcomes = Counter(r[2] for r in requests)
        print(f"  provider outcomes {dict(outcomes)}")
        await sim_ctl.aclose()
        await conn.close()
    finally:
        for proc in (worker, api, sim):
            if proc is not None:
                stop(proc)
    print("\nOK" if not failures else f"\nBROKEN: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
