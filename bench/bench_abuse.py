"""Every attack of issue 20 replayed against a real ``mailings serve``, one after another.

The server runs on the embedded defaults (SQLite, no Redis: the case where
subscriptions poll) in a scratch data directory, with ``API_TOKEN`` set and
every other setting at its default. For each attack it prints the answer the
attacker got, the time until the server refused it, the API's CPU seconds
and RSS growth meanwhile, and the worst latency of ``/healthz`` polled from
a second client every 50 ms. The issue's bar: refused within 1 s, /healthz
under 1 s, RSS growth under 100 MB.

    python -m bench abuse [--sockets 2000] [--checkout DIR] [--only "2." "5."]

``--checkout`` runs the server from another checkout (a ``git worktree`` of
the commit before a change) for a before/after table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench.cpu import process_cpu
from bench.ports import free_port, wait_for_port
from bench.stack import rss_mb

TOKEN = "bench-abuse-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Server:
    url: str
    pid: int


@dataclass
class Outcome:
    answer: str
    seconds: float


def _watch_health(url: str, worst: Any, asked: Any, stop: Any) -> None:
    with httpx.Client(base_url=url, timeout=120) as http:
        while not stop.is_set():
            asked.value = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                http.get("/healthz")
            worst.value = max(worst.value, time.perf_counter() - asked.value)
            asked.value = 0.0
            stop.wait(0.05)


class HealthWatch:
    """/healthz asked every 50 ms from a process of its own; the worst latency seen.

    A process, so that the bench's own work (building a 10 MB body, 200
    requests at once) never delays the watch and counts against the server.
    """

    def __init__(self, url: str) -> None:
        self.worst = 0.0
        self._worst = multiprocessing.Value("d", 0.0)
        self._asked = multiprocessing.Value("d", 0.0)
        self._stop = multiprocessing.Event()
        self._process = multiprocessing.Process(
            target=_watch_health, args=(url, self._worst, self._asked, self._stop), daemon=True
        )

    async def __aenter__(self) -> HealthWatch:
        self._process.start()
        await asyncio.sleep(1.0)  # a first answer before the attack, with its connection open
        return self

    async def __aexit__(self, *_: object) -> None:
        asked = self._asked.value
        worst = self._worst.value
        if asked:  # a /healthz still unanswered counts as late as it is
            worst = max(worst, time.perf_counter() - asked)
        self.worst = worst
        self._stop.set()
        await asyncio.to_thread(self._process.join, 130)


async def _graphql(url: str, body: bytes, token: bool = True) -> Outcome:
    headers = {"Content-Type": "application/json", **(AUTH if token else {})}
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        response = await http.post("/graphql", content=body, headers=headers)
    text = response.text
    message = (
        text[text.find('"message"') : text.find('"message"') + 70] if "message" in text else ""
    )
    return Outcome(f"{response.status_code} {message}", time.perf_counter() - started)


def _json(query: str, variables: str = "{}") -> bytes:
    import orjson

    return b'{"query":%s,"variables":%s}' % (orjson.dumps(query), variables.encode())


async def fragment_bomb(server: Server) -> Outcome:
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(22))
    return await _graphql(
        server.url, _json(f"query {{ ...F0 }} {chain} fragment F22 on Query {{ __typename }}")
    )


async def idle_websockets(server: Server, count: int) -> Outcome:
    """``count`` handshakes one after another; the time shown is the slowest answer to one."""
    started = time.perf_counter()
    opened, refused, slowest = [], 0, 0.0
    ws_url = server.url.replace("http://", "ws://") + "/graphql"
    for _ in range(count):
        attempt = time.perf_counter()
        try:
            opened.append(
                await connect(ws_url, subprotocols=["graphql-transport-ws"], open_timeout=30)  # type: ignore[list-item]
            )
        except Exception:
            refused += 1
        slowest = max(slowest, time.perf_counter() - attempt)
    # Those accepted never send connection_init: the server closes them.
    for ws in opened:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.wait_closed(), 30)
    closed = time.perf_counter() - started
    return Outcome(
        f"{refused} refused at the handshake, {len(opened)} accepted (at most 50 open at once, "
        f"each closed 5 s after it opened); all answered in {closed:.0f} s",
        slowest,
    )


async def huge_header(server: Server, megabytes: int = 64) -> Outcome:
    host, port = server.url.removeprefix("http://").split(":")
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: api\r\nX-Big: ")
    chunk = b"a" * 65536
    sent = 0
    answer = b""
    try:
        while sent < megabytes * 1024 * 1024:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
        writer.write(b"\r\n\r\n")
        await writer.drain()
    except (ConnectionError, OSError):
        pass
    with contextlib.suppress(ConnectionError, OSError, TimeoutError):
        answer = await asyncio.wait_for(reader.read(200), 30)
    writer.close()
    status = answer.split(b"\r\n", 1)[0].decode() or "connection closed"
    return Outcome(
        f"{status} after {sent / 1024 / 1024:.1f} MB sent", time.perf_counter() - started
    )


async def typename_repeated(server: Server) -> Outcome:
    document = "{ " + "__typename " * 199_000 + "}"
    outcomes = [await _graphql(server.url, _json(f"{document} # {i}")) for i in range(3)]
    return Outcome(outcomes[-1].answer, max(outcome.seconds for outcome in outcomes))


async def many_aliases(server: Server) -> Outcome:
    document = "{ " + " ".join(f"a{i}: __typename" for i in range(66_000)) + " }"
    return await _graphql(server.url, _json(document))


async def _import(server: Server, count: int) -> Outcome:
    rows = ",".join(['{"phone":"79000000000"}'] * count)
    query = (
        "mutation($r: [ClientInput!]!) "
        "{ importClients(input: $r) { ... on ValidationError { message } } }"
    )
    return await _graphql(server.url, _json(query, '{"r":[' + rows + "]}"))


async def big_import(server: Server) -> Outcome:
    return await _import(server, 400_000)


async def huge_import(server: Server) -> Outcome:
    return await _import(server, 800_000)


async def many_tags(server: Server) -> Outcome:
    tags = ",".join(['"x"'] * 1_500_000)
    query = "query($f: ClientFilterInput) { clients(filter: $f) { totalCount } }"
    return await _graphql(server.url, _json(query, '{"f":{"tags":[' + tags + "]}}"))


async def idle_subscriptions(server: Server, count: int = 1000) -> Outcome:
    """``count`` subscriptions to one mailing, 20 a socket; the CPU is the 10 s after."""
    create = (
        'mutation { createMailing(input: {text: "hi", startAt: "2030-01-01T00:00:00Z",'
        ' endAt: "2030-01-02T00:00:00Z"}) { ... on Mailing { id } } }'
    )
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as http:
        created = (await http.post("/graphql", json={"query": create})).json()
    mailing = created["data"]["createMailing"]["id"]
    subscribe = f'subscription {{ mailingProgress(id: "{mailing}") {{ status }} }}'
    sockets, accepted, refused = [], 0, 0
    started = time.perf_counter()
    import json

    for index in range(count // 20):
        try:
            ws = await connect(
                server.url.replace("http://", "ws://") + "/graphql",
                subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            )
        except Exception:
            refused += 20
            continue
        sockets.append(ws)
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": TOKEN}}))
        await ws.recv()
        for n in range(20):
            payload = {"query": subscribe}
            await ws.send(
                json.dumps({"id": f"{index}-{n}", "type": "subscribe", "payload": payload})
            )
        answers = 0
        while answers < 20:  # each subscription's first answer; "complete" follows a refusal
            answer = json.loads(await ws.recv())
            if answer["type"] == "complete":
                continue
            answers += 1
            if answer["type"] == "error" or "errors" in answer.get("payload", {}):
                refused += 1
            else:
                accepted += 1
    answered = time.perf_counter() - started
    before = process_cpu(server.pid)
    await asyncio.sleep(10)
    idle_cpu = process_cpu(server.pid) - before
    for ws in sockets:
        await ws.close()
    return Outcome(
        f"{accepted} served, {refused} refused; {idle_cpu / 10:.0%} of a core while idle",
        answered,
    )


async def metrics_without_token(server: Server) -> Outcome:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/metrics")
    return Outcome(str(response.status_code), time.perf_counter() - started)


async def wrong_token_flood(server: Server, requests: int = 1000) -> Outcome:
    statuses: dict[int, int] = {}
    first_429: float | None = None
    started = time.perf_counter()
    limit = asyncio.Semaphore(50)
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": "Bearer wrong"}, timeout=60
    ) as http:

        async def one() -> None:
            nonlocal first_429
            async with limit:
                response = await http.post("/graphql", json={"query": "{ __typename }"})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 429 and first_429 is None:
                first_429 = time.perf_counter() - started

        await asyncio.gather(*(one() for _ in range(requests)))
    counts = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
    return Outcome(counts, first_429 if first_429 is not None else time.perf_counter() - started)


async def token_flood(server: Server, requests: int = 1000) -> Outcome:
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    limit = asyncio.Semaphore(50)
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=60) as http:

        async def one() -> None:
            async with limit:
                response = await http.post("/graphql", json={"query": "{ __typename }"})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        await asyncio.gather(*(one() for _ in range(requests)))
    counts = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
    return Outcome(counts, time.perf_counter() - started)


async def bad_cursor(server: Server) -> Outcome:
    query = "query($c: String) { clients(after: $c) { totalCount } }"
    outcome = await _graphql(server.url, _json(query, '{"c":"' + "x" * 100_000 + '"}'))
    return Outcome(f"{outcome.answer} ({len(outcome.answer)} characters shown)", outcome.seconds)


@contextlib.contextmanager
def serving(checkout: Path) -> Iterator[Server]:
    data = Path(tempfile.mkdtemp(prefix="bench-abuse-"))
    env = {
        **os.environ,
        "DATA_DIR": str(data),
        "DATABASE_URL": f"sqlite://{data}/mailings.sqlite3",
        "REDIS_URL": "",
        "API_TOKEN": TOKEN,
        "LOG_LEVEL": "WARNING",
        "WORKER_METRICS_PORT": "0",
    }
    python = checkout / ".venv" / "bin" / "python"
    subprocess.run([python, "-m", "cli", "migrate"], cwd=checkout, env=env, check=True)
    port = free_port()
    log = open(data / "serve.log", "wb")  # noqa: SIM115 - kept open for the server's life
    proc = subprocess.Popen(
        [python, "-m", "cli", "serve", "--port", str(port)],
        cwd=checkout,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc, see=str(data))
        yield Server(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


ATTACKS: list[tuple[str, Callable[[Server], Awaitable[Outcome]]]] = [
    ("1. fragments spread twice, 22 levels (230 tokens)", fragment_bomb),
    ("3. a 64 MB header, no token", huge_header),
    ("4. `__typename` 199,000 times, 3 copies", typename_repeated),
    ("4. 66,000 aliases", many_aliases),
    ("5. importClients, 400,000 rows (under the old body limit)", big_import),
    ("5. importClients, 800,000 rows", huge_import),
    ("5. a filter with 1,500,000 tags", many_tags),
    ("6. 1,000 subscriptions to one mailing, no Redis", idle_subscriptions),
    ("8. /metrics without the token", metrics_without_token),
    ("10. a 100 KB bad cursor", bad_cursor),
    ("10. 1,000 requests with the token, 50 at once", token_flood),
    # Last: the address waits a minute once its failures are over the limit.
    ("10. 1,000 requests with a wrong token, 50 at once", wrong_token_flood),
]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--checkout", type=Path, default=Path.cwd())
    parser.add_argument("--only", nargs="*", default=[], help="attacks whose name starts so")
    args = parser.parse_args()
    attacks = [
        *ATTACKS[:1],
        (
            f"2. {args.sockets:,} WebSockets that never authenticate, no token",
            lambda server: idle_websockets(server, args.sockets),
        ),
        *ATTACKS[1:],
    ]
    if args.only:
        attacks = [(name, run) for name, run in attacks if name.startswith(tuple(args.only))]
    print(
        "| attack | answer | time to refusal (s) | API CPU (s) | RSS growth (MB) "
        "| worst /healthz (ms) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    with serving(args.checkout) as server:
        for name, attack in attacks:
            rss = rss_mb(server.pid)
            cpu = process_cpu(server.pid)
            async with HealthWatch(server.url) as health:
                try:
                    outcome = await attack(server)
                except Exception as error:
                    outcome = Outcome(
                        f"bench error: {type(error).__name__}: {error}"[:80], float("nan")
                    )
            answer = outcome.answer.replace("|", "/").replace("\n", " ")
            used = process_cpu(server.pid) - cpu
            print(
                f"| {name} | {answer} | {outcome.seconds:.2f} | {used:.2f} "
                f"| {rss_mb(server.pid) - rss:+.0f} | {health.worst * 1000:.0f} |",
                flush=True,
            )
            # Rate limits and sockets of one attack must not spill into the next.
            await asyncio.sleep(2)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
