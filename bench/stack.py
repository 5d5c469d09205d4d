"""The whole service as processes on a bench database of its own, for the scale benchmarks.

A :class:`Stack` owns one PostgreSQL database (created, migrated, dropped at
the end), a simulator, an API and any number of workers, all real
``mailings`` processes on loopback, plus an asyncpg connection for the
benchmark's own reads. Clients are made by ``generate_series``; a mailing is
created through the API, as an operator would.

What one PostgreSQL pays per message is measured here too
(:meth:`Stack.footprint`, :func:`wal_of_database`): relation sizes from the
catalog, and WAL from ``pg_waldump`` over the bench database's own records,
so other databases on a shared server do not count.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.ports import free_port, wait_for_port
from graphql_api.ids import Kind, key_of

__all__ = ["Stack", "bench_stack", "rss_mb", "stop", "wal_of_database"]

ADMIN_URL = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
LOG_DIR = Path("data/bench")

_CREATE = """
mutation($input: MailingInput!) {
  createMailing(input: $input) {
    __typename ... on Mailing { id } ... on ValidationError { message }
  }
}"""


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a process we started (SIGTERM, then SIGKILL after 30 s)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its direct children, in MB."""
    pids = [pid]
    with suppress(OSError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


@dataclass
class Stack:
    """A bench database and the processes started on it."""

    name: str
    conn: asyncpg.Connection
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sim_url: str = ""
    api_url: str = ""

    @property
    def url(self) -> str:
        return ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.url,
            "REDIS_URL": REDIS_URL,
            "QUEUE_NAME": f"bench-{self.name}-{os.getpid()}",
            "API_TOKEN": "",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "LOG_FORMAT": "json",
            **extra,
        }

    def spawn(self, log_name: str, args: list[str], **env: str) -> subprocess.Popen[bytes]:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with open(LOG_DIR / f"{self.name}-{log_name}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli", *args],
                env=self.env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def start_simulator(self, *options: str) -> str:
        port = free_port()
        proc = self.spawn("sim", ["provider-sim", "--port", str(port), *options])
        wait_for_port(port, proc, timeout=120, see=str(LOG_DIR))
        self.sim_url = f"http://127.0.0.1:{port}"
        return self.sim_url

    def start_api(self) -> str:
        port = free_port()
        proc = self.spawn("api", ["serve", "--port", str(port)])
        wait_for_port(port, proc, timeout=120, see=str(LOG_DIR))
        self.api_url = f"http://127.0.0.1:{port}"
        return self.api_url

    async def start_workers(self, processes: int, **env: str) -> subprocess.Popen[bytes]:
        """``mailings worker --workers N``; returns once all N engines have written a heartbeat."""
        since = await self.conn.fetchval("SELECT now()")
        proc = self.spawn(
            f"worker{processes}",
            ["worker", "--workers", str(processes)],
            PROVIDER_URL=self.sim_url,
            **env,
        )
        # A loaded machine takes its time to start N Python processes.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode}; see {LOG_DIR}")
            live = await self.conn.fetchval(
                "SELECT COUNT(*) FROM worker_heartbeat"
                " WHERE started_at >= $1 AND stopped_at IS NULL",
                since,
            )
            if live >= processes:
                return proc
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{processes} workers not up after 300 s; see {LOG_DIR}")

    async def reset_clients(self, n: int) -> None:
        """Exactly ``n`` clients (ids 1..n) and no mailings."""
        await self.conn.execute(
            "TRUNCATE client, mailing, mailing_stats, message RESTART IDENTITY CASCADE"
        )
        await self.conn.execute(
            "INSERT INTO client (phone, operator_code, tag, timezone, created_at, updated_at)"
            " SELECT (79000000000 + g)::text, '900', '', 'UTC', now(), now()"
            " FROM generate_series(1, $1) g",
            n,
        )
        await self.conn.execute("VACUUM ANALYZE client")

    async def create_mailing(self, hours: float = 1.0) -> tuple[int, float]:
        """A mailing to every client, starting now, through the API: its id, when it was asked."""
        now = datetime.now(UTC)
        variables: dict[str, Any] = {
            "input": {
                "text": "Benchmark message",
                "startAt": now.isoformat(),
                "endAt": (now + timedelta(hours=hours)).isoformat(),
            }
        }
        async with httpx.AsyncClient(base_url=self.api_url, timeout=60) as http:
            asked = time.perf_counter()
            response = await http.post("/graphql", json={"query": _CREATE, "variables": variables})
        result = response.json()["data"]["createMailing"]
        if result["__typename"] != "Mailing":
            raise RuntimeError(result)
        mailing_id = key_of(result["id"], Kind.MAILING)
        assert mailing_id is not None, result
        return mailing_id, asked

    async def stats(self, mailing_id: int) -> asyncpg.Record:
        row = await self.conn.fetchrow(
            "SELECT s.total, s.pending, s.sent, m.status FROM mailing_stats s"
            " JOIN mailing m ON m.id = s.mailing_id WHERE s.mailing_id = $1",
            mailing_id,
        )
        assert row is not None
        return row

    async def wait_final(self, mailing_id: int, total: int, timeout: float) -> float:
        """Wait until the mailing has ``total`` messages, none pending; the perf_counter then."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            row = await self.stats(mailing_id)
            if row["total"] == total and row["pending"] == 0:
                return time.perf_counter()
            await asyncio.sleep(0.05)
        raise RuntimeError(f"mailing {mailing_id} not final after {timeout:.0f} s")

    def stop_processes(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()

    async def database_oid(self) -> int:
        return int(
            await self.conn.fetchval("SELECT oid FROM pg_database WHERE datname = $1", self.name)
        )

    async def wal_lsn(self) -> str:
        return str(await self.conn.fetchval("SELECT pg_current_wal_insert_lsn()::text"))

    async def footprint(self, *, compact: bool = False) -> dict[str, int]:
        """Bytes of ``message``'s heap and of each of its indexes, and its row count.

        After ``VACUUM``, which keeps the space dead row versions took (later
        rows reuse it); with ``compact``, after ``VACUUM FULL`` rewrote the
        table and its indexes, as if every row had been inserted as it is now.
        """
        await self.conn.execute(
            "VACUUM FULL ANALYZE message" if compact else "VACUUM ANALYZE message"
        )
        rows = await self.conn.fetch(
            "SELECT c.relname, pg_relation_size(c.oid) AS bytes FROM pg_class c"
            " WHERE c.oid = 'message'::regclass OR c.oid IN"
            " (SELECT indexrelid FROM pg_index WHERE indrelid = 'message'::regclass)"
        )
        sizes = {str(r["relname"]): int(r["bytes"]) for r in rows}
        sizes["rows"] = int(await self.conn.fetchval("SELECT COUNT(*) FROM message"))
        return sizes


@asynccontextmanager
async def bench_stack(name: str) -> AsyncIterator[Stack]:
    """A fresh, migrated database ``name``; dropped, with every process stopped, on the way out.

    SIGTERM cancels the benchmark, so that this cleaning up still happens.
    """
    main = asyncio.current_task()
    if main is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        stack = Stack(name=name, conn=None)
        migrate = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "cli", "migrate"],
            env=stack.env(),
            capture_output=True,
            check=False,
        )
        if migrate.returncode:
            raise RuntimeError(migrate.stderr.decode())
        stack.conn = await asyncpg.connect(stack.url)
        try:
            yield stack
        finally:
            stack.stop_processes()
            await stack.conn.close()
    finally:
        if not os.environ.get("BENCH_KEEP_DATABASE"):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


_WALDUMP_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)
_RECORD = re.compile(r"len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*(\d+),")


def _waldump() -> str | None:
    found = shutil.which("pg_waldump")
    if found:
        return found
    for directory in _WALDUMP_DIRS:
        candidate = Path(directory) / "pg_waldump"
        if candidate.exists():
            return str(candidate)
    return None


async def wal_of_database(
    conn: asyncpg.Connection, start: str, end: str, database_oid: int
) -> int | None:
    """WAL bytes between two LSNs written for ``database_oid``: its records and their commits.

    Reads the server's ``pg_wal`` with ``pg_waldump`` (needs the same host and
    read access to the data directory); ``None`` when that is not possible.
    Other databases' records on a shared server are left out.
    """
    tool = _waldump()
    data_dir = await conn.fetchval("SELECT current_setting('data_directory')")
    wal_dir = Path(str(data_dir)) / "pg_wal"
    if tool is None or not os.access(wal_dir, os.R_OK):
        return None
    dump = await asyncio.to_thread(
        subprocess.run,
        [tool, "-p", str(wal_dir), "-s", start, "-e", end],
        capture_output=True,
        check=False,
    )
    ours = f" {1663}/{database_oid}/"
    mine: set[str] = set()
    total = 0
    commits: dict[str, int] = {}
    for line in dump.stdout.decode(errors="replace").splitlines():
        match = _RECORD.search(line)
        if match is None:
            continue
        size, xid = int(match.group(1)), match.group(2)
        if ours in line:
            total += size
            mine.add(xid)
        elif line.startswith("rmgr: Transaction"):
            commits[xid] = commits.get(xid, 0) + size
    if not total:
        return None
    return total + sum(size for xid, size in commits.items() if xid in mine)
