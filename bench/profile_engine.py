"""Where a worker's CPU goes: py-spy on a worker sending a mailing, and PostgreSQL's statements.

One worker process (``LOG_LEVEL=INFO``, JSON logs, as in production) sends a
mailing to ``--clients`` clients (default 50,000) through the simulator while
``py-spy record`` samples it. Every sample is put in one stage by the
innermost frame that names one (claim, request, response parsing, outcome,
logging, progress events, bookkeeping; library frames that serve several
stages, such as asyncpg's, take the stage of the code that called them), and
the stage's share of the samples times the worker's CPU per message (from
``/proc``) gives its microseconds per message.

PostgreSQL's side comes from ``pg_stat_statements`` when it can collect: it
needs ``shared_preload_libraries``, so by default (``--postgres private``)
the profile runs a throwaway cluster with it preloaded
(:mod:`bench.private_pg`), whose every process works for the profile. With
``--postgres shared`` (or without ``initdb``) it uses the shared server:
statements if that server preloads the extension, and otherwise only the
CPU of the bench database's backends from ``/proc``.

Run: ``make profile`` or ``python -m bench.profile_engine [--native] [--clients N]``.
Writes the collapsed stacks to ``data/profile/worker.txt`` (open them in
https://www.speedscope.app or ``flamegraph.pl``) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import asyncpg

from bench import bench_engine as be
from bench.cpu import BackendCpu, tree_cpu
from bench.ports import free_port, wait_for_port
from bench.private_pg import private_postgres
from bench.raw_client import raw_limit
from bench.stack import stop

__all__ = ["classify_stack", "main"]

OUT = Path("data/profile")

STAGES = (
    "claim",
    "request",
    "response parsing",
    "outcome",
    "logging",
    "progress events",
    "bookkeeping",
    "database driver",
    "event loop",
    "other",
    "huey consumer, main thread",
)

# (stage, file fragment, function names or None for any); the innermost match wins.
_RULES: list[tuple[str, str, frozenset[str] | None]] = [
    ("logging", "structlog/", None),
    ("logging", "logging/", None),
    ("logging", "logs.py", None),
    ("progress events", "tasks/events.py", None),
    ("progress events", "redis/", None),
    ("response parsing", "aiohttp/http_parser.py", None),
    ("response parsing", "aiohttp/client_proto.py", frozenset({"data_received"})),
    ("response parsing", "aiohttp/streams.py", None),
    ("response parsing", "tasks/send_results.py", None),
    # Before tasks/send_results.py (a --checkout of an older commit), the client classified.
    (
        "response parsing",
        "tasks/provider.py",
        frozenset(
            {
                "classify_response",
                "_bad_success_reason",
                "_snippet",
                "classify_failure",
            }
        ),
    ),
    ("request", "tasks/provider.py", None),
    ("request", "tasks/engine.py", frozenset({"_send"})),
    ("outcome", "tasks/recorder.py", None),
    # Before tasks/recorder.py (a --checkout of an older commit), the engine recorded itself.
    (
        "outcome",
        "tasks/engine.py",
        frozenset({"_record_result", "_finalise", "_reschedule", "_note_outcome", "record_now"}),
    ),
    ("outcome", "tasks/engine.py", frozenset({"_record_forever", "_write", "_write_apart"})),
    (
        "outcome",
        "queries/messages",
        frozenset(
            {
                "finalise_messages",
                "hand_back_messages",
                "finalise_handed_back",
                "reschedule_messages",  # their names before the glossary (CONVENTIONS)
                "settle_returned",
                "storable",
                "_values_table",
                "id_list",
            }
        ),
    ),
    ("outcome", "queries/counters.py", None),
    ("outcome", "models/counters.py", None),
    ("claim", "queries/messages", frozenset({"claim_due"})),
    ("claim", "tasks/running.py", None),
    (
        "claim",
        "tasks/engine.py",
        frozenset(
            {
                "dispatch_once",
                "_load_running",
                "_start_send",
                "_dispatch_forever",
            }
        ),
    ),
    ("bookkeeping", "tasks/breaker.py", None),
    ("bookkeeping", "tasks/pacing.py", None),
    ("bookkeeping", "tasks/adaptive_rate.py", None),
    ("bookkeeping", "tasks/send_schedule.py", None),
    ("bookkeeping", "tasks/worker_metrics.py", None),
    ("bookkeeping", "tasks/tend.py", None),
    ("bookkeeping", "tasks/sweeper.py", None),
    ("bookkeeping", "tasks/liveness.py", None),  # the heartbeat
    ("bookkeeping", "tasks/sweep.py", None),  # tasks/tend.py before the glossary
    ("bookkeeping", "tasks/engine.py", None),
]
# Libraries that work for whichever stage called them.
_SHARED = {
    "database driver": ("asyncpg/", "tortoise/", "pypika"),
    "event loop": ("asyncio/", "uvloop/", "selectors.py"),
}
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _in(file: str, fragment: str) -> bool:
    # py-spy shortens site-packages paths to "package/module.py".
    return file.startswith(fragment) or f"/{fragment}" in file


def classify_stack(frames: list[str]) -> str:
    """The stage of one sample; ``frames`` go from the root to the leaf, as py-spy writes them."""
    parsed = [m for m in (_FRAME.match(f) for f in frames) if m is not None]
    if not any(m["func"] == "EngineRuntime._main" for m in parsed):
        # Huey's consumer threads and the process's main thread.
        return "huey consumer, main thread"
    for match in reversed(parsed):
        # py-spy names methods "Class.method" and closures "f.<locals>.g".
        names, file = set(match["func"].split(".")), match["file"]
        for stage, fragment, funcs in _RULES:
            if _in(file, fragment) and (funcs is None or not funcs.isdisjoint(names)):
                return stage
    for match in reversed(parsed):
        for stage, fragments in _SHARED.items():
            if any(_in(match["file"], fragment) for fragment in fragments):
                return stage
    return "other"


def _read_stacks(path: Path) -> tuple[Counter[str], Counter[str], int]:
    stages: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        stages[classify_stack(frames)] += n
        python_frames = [f for f in frames if _FRAME.match(f) and ".py" in f]
        leaves[(python_frames or frames)[-1]] += n
        total += n
    return stages, leaves, total


_STATEMENT_STAGES = [
    (
        "claim",
        re.compile(r"attempts = attempts \+|WHERE status = \S+ AND deleted_at IS NULL ORDER"),
    ),
    # Before "outcome": a chunk of the audience also adds to mailing_stats.
    # With the foreign-key checks its rows cost.
    ("audience", re.compile(r"INSERT INTO message|audience_version|FOR KEY SHARE")),
    ("outcome", re.compile(r"^UPDATE message SET (status|next_attempt_at = v\.due)|mailing_stats")),
    ("transactions", re.compile(r"^(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)", re.IGNORECASE)),
    ("bookkeeping", re.compile(r"worker_heartbeat|leased_until <= ")),
]


def _statement_stage(query: str) -> str:
    for stage, pattern in _STATEMENT_STAGES:
        if pattern.search(query):
            return stage
    return "sweep, tend, other"


async def _statements_available(conn: asyncpg.Connection) -> bool:
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.fetchval("SELECT count(*) FROM pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
    except asyncpg.PostgresError:
        return False
    return True


async def _statements(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT query, calls, total_exec_time, total_plan_time, rows"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = $1 ORDER BY total_exec_time + total_plan_time DESC",
            be.DB_NAME,
        )
    )


def _py_spy(pid: int, args: argparse.Namespace, out: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    command = [exe, "record", "--pid", str(pid), "--rate", str(args.rate)]
    command += ["--format", "raw", "--output", str(out)]
    if args.native:
        command.append("--native")
    if args.idle:
        command.append("--idle")
    if not args.all_threads:
        command.append("--gil")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def _profile(args: argparse.Namespace, postmaster: int | None) -> None:
    await be._reset_database()
    conn = await asyncpg.connect(be.DB_URL)
    statements = await _statements_available(conn)
    await be._add_clients(conn, args.clients)
    sim_port, api_port = free_port(), free_port()
    sim = be._spawn("profile-sim", ["provider-sim", "--port", str(sim_port)])
    api = be._spawn("profile-api", ["serve", "--port", str(api_port)])
    procs = [sim, api]
    spy: subprocess.Popen[bytes] | None = None
    try:
        wait_for_port(sim_port)
        wait_for_port(api_port)
        sim_url = f"http://127.0.0.1:{sim_port}"
        # The raw client on the same simulator, just before: its CPU per request.
        await raw_limit(sim_url, 5000, args.concurrency)
        raw = await be._raw(sim, sim_url, min(args.clients, 20_000), args.concurrency)
        worker = be._spawn(
            "profile-worker",
            ["worker"],
            args.checkout,
            PROVIDER_URL=sim_url,
            SEND_CONCURRENCY=str(args.concurrency),
        )
        procs.append(worker)
        await be.wait_workers(conn, 1)
        stacks = OUT / "worker.txt"
        spy = _py_spy(worker.pid, args, stacks)
        await asyncio.sleep(0.5)
        backends = BackendCpu(conn, be.DB_NAME)
        await backends.start()
        pg_before = tree_cpu(postmaster) if postmaster else 0.0
        worker_before = tree_cpu(worker.pid)
        if statements:
            await conn.execute("SELECT pg_stat_statements_reset()")
        seconds = await be._send_mailing(
            f"http://127.0.0.1:{api_port}", conn, args.clients, 900, backends.sample
        )
        worker_cpu = tree_cpu(worker.pid) - worker_before
        backends_cpu = await backends.sample()
        pg_cpu = tree_cpu(postmaster) - pg_before if postmaster else backends_cpu
        rows = await _statements(conn) if statements else []
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=60)
        spy = None
        print(err.decode(errors="replace").strip().splitlines()[-1:] or "", file=sys.stderr)
    finally:
        if spy is not None:
            spy.kill()
        for proc in reversed(procs):
            stop(proc)
        await conn.close()

    n = args.clients
    print(
        f"\n{n:,} messages in {seconds:.1f} s ({n / seconds:,.0f}/s under py-spy at"
        f" {args.rate} Hz{', --native' if args.native else ''})"
    )
    print(f"worker CPU {worker_cpu / n * 1e6:.0f} µs/message (user+system, /proc)")
    print(
        f"raw aiohttp client, just before: {raw.us(raw.client_cpu):.0f} µs/request"
        f" ({raw.rate:,.0f} requests/s, not under py-spy)"
    )
    where = "the private cluster's processes" if postmaster else "the bench database's backends"
    print(f"PostgreSQL CPU {pg_cpu / n * 1e6:.0f} µs/message ({where}, /proc)")
    if postmaster:
        print(f"  of which the bench database's backends: {backends_cpu / n * 1e6:.0f} µs/message")
    _print_worker(stacks, worker_cpu / n * 1e6)
    if statements:
        _print_statements(rows, n, pg_cpu)
    else:
        print(
            "\npg_stat_statements is not collecting on this server (it needs"
            " shared_preload_libraries): PostgreSQL's figure above is /proc CPU only."
            " Run with --postgres private for the split by statement."
        )


def _print_worker(stacks: Path, us_per_message: float) -> None:
    stages, leaves, total = _read_stacks(stacks)
    if not total:
        print("py-spy wrote no samples")
        return
    print(f"\nworker, by stage ({total:,} samples on CPU)\n")
    print("| stage | share of samples | µs/message |")
    print("| --- | --- | --- |")
    for stage in STAGES:
        share = stages.get(stage, 0) / total
        if share:
            print(f"| {stage} | {share:.1%} | {share * us_per_message:.0f} |")
    print(f"| **total** | 100% | **{us_per_message:.0f}** |")
    print("\ntop 20 innermost Python frames (self time)\n")
    for frame, count in leaves.most_common(20):
        print(f"  {count / total:6.1%}  {frame[:150]}")


def _print_statements(rows: list[asyncpg.Record], n: int, pg_cpu: float) -> None:
    by_stage: Counter[str] = Counter()
    for row in rows:
        by_stage[_statement_stage(row["query"])] += row["total_exec_time"] + row["total_plan_time"]
    inside = sum(by_stage.values()) / 1000
    print(
        "\nPostgreSQL, by stage: pg_stat_statements' planning + execution time, which is wall"
        " time (on a loaded machine more than the CPU); the CPU column shares the /proc"
        " figure out by it\n"
    )
    print("| stage | statement time µs/message | share | ≈ CPU µs/message |")
    print("| --- | --- | --- | --- |")
    for stage, ms in by_stage.most_common():
        share = ms / 1000 / inside if inside else 0.0
        print(f"| {stage} | {ms * 1000 / n:.0f} | {share:.0%} | {share * pg_cpu / n * 1e6:.0f} |")
    print(f"| **total** | {inside / n * 1e6:.0f} | 100% | **{pg_cpu / n * 1e6:.0f}** |")
    print("\ntop statements\n")
    print("| calls | rows | total ms | µs/message | statement |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows[:12]:
        ms = row["total_exec_time"] + row["total_plan_time"]
        text = " ".join(row["query"].split())[:110].replace("|", "\\|")
        print(
            f"| {row['calls']:,} | {row['rows']:,} | {ms:,.0f} | {ms * 1000 / n:.1f} | `{text}` |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument("--idle", action="store_true", help="py-spy --idle (off-CPU too)")
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="sample threads without the GIL too (py-spy's idle detection misreads blocked reads)",
    )
    parser.add_argument("--postgres", choices=["private", "shared"], default="private")
    parser.add_argument(
        "--checkout", metavar="DIR", help="profile the worker of another checkout (a worktree)"
    )
    args = parser.parse_args()
    os.environ.setdefault("BENCH_LOG_LEVEL", "INFO")
    OUT.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        cluster = None
        if args.postgres == "private":
            cluster = stack.enter_context(private_postgres())
            if cluster is None:
                print("no initdb found: profiling against the shared server", file=sys.stderr)
        if cluster is not None:
            be.use_postgres(cluster.url)
        asyncio.run(_profile(args, cluster.postmaster_pid() if cluster else None))


if __name__ == "__main__":
    main()
