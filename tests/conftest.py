"""Shared fixtures: a database of this run's own, built by the real migrations.

The backend comes from ``MAILINGS_TEST_BACKEND``: ``postgres`` (the default,
with Huey on Redis) or ``sqlite`` (the embedded defaults: SQLite and Huey on
SQLite). ``make test`` runs the suite once with each. Every test starts from
empty tables.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import hypothesis
import pytest
from starlette.applications import Starlette

BACKEND = os.environ.get("MAILINGS_TEST_BACKEND", "postgres")
PG_ADMIN_URL = os.environ.get("MAILINGS_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_BASE_URL = os.environ.get("MAILINGS_TEST_REDIS", "redis://127.0.0.1:6379/0")
# A pytest-xdist worker (scripts/test_both.sh) is a run of its own, named
# after the run that started it, which ends what an interrupted worker left
# (``pytest_unconfigure``).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    RUN_ID = f"{os.getppid()}_{XDIST_WORKER}_{int(time.time())}"
else:
    RUN_ID = f"{os.getpid()}_{int(time.time())}"
DATA_DIR = Path(tempfile.mkdtemp(prefix=f"mailings-test-{RUN_ID}-"))
# Also when no test of this run used the database (whose fixture removes it).
atexit.register(shutil.rmtree, DATA_DIR, ignore_errors=True)

if BACKEND == "postgres":
    PG_DB = f"mailings_test_{RUN_ID}"
    DATABASE_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_DB
    REDIS_URL: str | None = REDIS_BASE_URL
elif BACKEND == "sqlite":
    DATABASE_URL = f"sqlite://{DATA_DIR}/mailings.sqlite3"
    REDIS_URL = None
else:  # pragma: no cover
    raise RuntimeError(f"unknown MAILINGS_TEST_BACKEND {BACKEND!r}")

# Property tests draw the same examples on every run, and no example fails
# for taking long on a loaded machine (as Hypothesis' own "ci" profile);
# PROPERTY_RANDOM=1 draws new ones each run.
hypothesis.settings.register_profile(
    "suite", derandomize=os.environ.get("PROPERTY_RANDOM", "0") == "0", deadline=None
)
hypothesis.settings.load_profile("suite")

# The code under test reads its settings from the environment, once: set it
# before anything imports ``settings``.
TEST_ENV = {
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL or "",
    "DATA_DIR": str(DATA_DIR),
    "QUEUE_NAME": f"mailings-test-{RUN_ID}",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "INFO",
    "API_TOKEN": "",
    # Workers serve their probes only where a test asks (tests/support/engine.py: Worker):
    # several runs share this machine, and a fixed port would collide.
    "WORKER_METRICS_PORT": "0",
}
os.environ.update(TEST_ENV)

from models.db import close_db, connection, init_db, is_postgres, migrate  # noqa: E402

_TABLES = (
    "timeline_count",
    "message",
    "mailing_stats",
    "mailing",
    "client",
    "daily_report",
    "worker_heartbeat",
    "send_schedule",
    "opt_out",
    "idempotency_key",
    "audit_entry",
)


# No task exception is ever left for asyncio to report ("Task exception was
# never retrieved"), in this process or in any process a test starts: each
# test fails on what appeared while it ran (``no_unretrieved_task_exceptions``).
_UNRETRIEVED = "exception was never retrieved"
_started_logs: dict[Path, int] = {}  # log of each process started -> bytes already checked


class _UnretrievedSeen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if _UNRETRIEVED in message:
            self.seen.append(message[:500])


def _unretrieved_in_process_logs() -> list[str]:
    found = []
    for path, checked in list(_started_logs.items()):
        try:
            with open(path, "rb") as log:
                log.seek(checked)
                text = log.read()
        except FileNotFoundError:
            continue
        _started_logs[path] = checked + len(text)
        if _UNRETRIEVED.encode() in text:
            found.append(f"{path.name}: {_UNRETRIEVED}")
    return found


@pytest.fixture(autouse=True)
def no_unretrieved_task_exceptions() -> Iterator[None]:
    """Fail a test during which any process of the suite left a task exception unretrieved."""
    handler = _UnretrievedSeen()
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(handler)
    try:
        yield
    finally:
        asyncio_log.removeHandler(handler)
    found = handler.seen + _unretrieved_in_process_logs()
    if found:
        pytest.fail(f"a task exception was never retrieved: {found}")


def bound_socket() -> socket.socket:
    """A loopback TCP socket bound to a port of its own, not listening yet.

    The port is held for as long as the socket is open: connections to it are
    refused until someone listens on it. Hand the socket itself to a server
    (``start_command(sockets=...)`` passes it to a child process), never its
    port number: a port that is closed and bound again later can be taken by
    another process in between.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def backend() -> str:
    """This run's backend; a fixture that builds something of it asks for this one (or
    ``database``), so that its tests run on both backends (``pytest_collection_modifyitems``)."""
    return BACKEND


# Tests that touch no database run once, not once per backend (SPEC 6): with
# MAILINGS_TEST_ONLY_PER_BACKEND=1 (the second run of scripts/test_both.sh)
# a run keeps only the tests that use this run's backend, which are the
# tests that use the ``database`` or ``backend`` fixture, directly or through
# another fixture, or are marked ``per_backend``.
ONLY_PER_BACKEND = os.environ.get("MAILINGS_TEST_ONLY_PER_BACKEND", "0") == "1"


def uses_the_backend(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return (
        "database" in names
        or "backend" in names
        or item.get_closest_marker("per_backend") is not None
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not ONLY_PER_BACKEND:
        return
    kept = [item for item in items if uses_the_backend(item)]
    if len(kept) < len(items):
        dropped = [item for item in items if not uses_the_backend(item)]
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
async def database() -> AsyncIterator[str]:
    """This run's database, migrated, and Tortoise connected to it."""
    if BACKEND == "postgres":
        admin = await asyncpg.connect(PG_ADMIN_URL)
        await admin.execute(f'CREATE DATABASE "{PG_DB}"')
        await admin.close()
    await migrate()
    await init_db()
    yield DATABASE_URL
    await close_db()
    # The processes still running when the last test ended (session servers).
    assert not _unretrieved_in_process_logs(), "a task exception was never retrieved"
    if BACKEND == "postgres":
        admin = await asyncpg.connect(PG_ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        await admin.close()
    if REDIS_URL:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"huey.*{TEST_ENV['QUEUE_NAME']}*"))
        if keys:
            client.delete(*keys)
        client.close()
    shutil.rmtree(DATA_DIR, ignore_errors=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    """In a run that spread its tests over xdist workers: end what the workers left.

    Ctrl-C reaches every process of the run at once; xdist gives a worker ten
    seconds to stop and then kills it, which can be before its teardown stopped
    the processes it started and dropped its database. Its leftovers are named
    after this run (``RUN_ID``), so they are found and ended here: processes by
    the queue name in their environment, then the databases, data directories
    and Redis keys. A run that ended normally finds nothing.
    """
    if XDIST_WORKER or not config.pluginmanager.hasplugin("dsession"):
        return
    prefix = f"mailings-test-{os.getpid()}_gw"
    # The workers first (a second Ctrl-C can end xdist's wait for them), so that
    # none starts anything after the search below; they may be tearing down.
    ours = str(os.getpid()).encode()
    _end(_processes(lambda stat, _: stat.rsplit(b")", 1)[1].split()[1] == ours), wait_first=True)
    marker = f"QUEUE_NAME={prefix}".encode()
    _end(_processes(lambda _, environ: any(v.startswith(marker) for v in environ.split(b"\0"))))
    for left in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        shutil.rmtree(left, ignore_errors=True)
    if BACKEND == "postgres":
        asyncio.run(_drop_databases(f"mailings_test_{os.getpid()}_gw"))
    if REDIS_URL:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(f"*{prefix}*"))
            if keys:
                client.delete(*keys)
        except redis.RedisError:
            pass  # nothing of this run to clean where Redis is down
        finally:
            client.close()


def _processes(match: Callable[[bytes, bytes], bool]) -> list[int]:
    """Pids of the processes whose ``/proc`` stat and environ ``match``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if match((proc / "stat").read_bytes(), (proc / "environ").read_bytes()):
                found.append(int(proc.name))
        except OSError:  # ended meanwhile, or another user's
            continue
    return found


def _end(pids: list[int], *, wait_first: bool = False) -> None:
    """SIGTERM, then SIGKILL to those still there after 10 s (10 s to end alone first)."""
    for sig in (
        (None, signal.SIGTERM, signal.SIGKILL) if wait_first else (signal.SIGTERM, signal.SIGKILL)
    ):
        for pid in pids if sig is not None else ():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if _alive(pid)]
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


async def _drop_databases(prefix: str) -> None:
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL)
    except (OSError, asyncpg.PostgresError):
        return  # nothing of this run to drop where PostgreSQL is down
    try:
        names = await admin.fetch(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix
        )
        for row in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await admin.close()


async def truncate_all() -> None:
    conn = connection()
    if is_postgres(conn):
        await conn.execute_script(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY CASCADE")
    else:
        # Ids start again at 1, as RESTART IDENTITY does: the simulator's
        # seeded faults follow message ids, so a test must not see the ids
        # that earlier tests used up.
        statements = [f"DELETE FROM {t};" for t in _TABLES]
        statements.append("DELETE FROM sqlite_sequence;")
        await conn.execute_script("".join(statements))


@pytest.fixture
async def db(database: str) -> AsyncIterator[str]:
    """Empty tables and an empty queue for this test; no worker outlives it."""
    from tasks.queue import huey

    await truncate_all()
    # Wake-ups left by an earlier test name mailing ids that the restarted
    # sequences give to this test's mailings: a worker would run them early.
    huey.flush()
    yield database
    engine_support = sys.modules.get("tests.support.engine")
    if engine_support is not None:
        engine_support.stop_workers()
    # The in-process API enqueued its wake-ups here: leave the queue as it was found.
    huey.flush()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    # Generous: a loaded 2-core machine took 43 s to start `mailings serve` (load 11).
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


_WITHOUT_DEV_TOOLS = Path(__file__).parent / "support" / "without_dev_tools"


def start_command(
    args: list[str],
    env: dict[str, str] | None = None,
    port: int | None = None,
    log_name: str = "proc",
    sockets: Sequence[socket.socket] = (),
) -> subprocess.Popen[bytes]:
    """Run ``mailings ARGS`` as a real process with the test environment.

    ``sockets`` are handed over: the child inherits them (at the same file
    descriptor numbers, for ``--fd`` options) and ours are closed. ``port``:
    return once something listens there.
    """
    log_path = DATA_DIR / f"{log_name}-{time.monotonic_ns()}.log"
    child_env = {**os.environ, **TEST_ENV, **(env or {})}
    # What production imports, without the development tools (tests/support/without_dev_tools).
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_WITHOUT_DEV_TOOLS), child_env.get("PYTHONPATH", "")) if p
    )
    # The child keeps its own copy of the file descriptor; ours is closed at once.
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli", *args],
                env=child_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=[sock.fileno() for sock in sockets],
            )
    finally:
        for sock in sockets:
            sock.close()
    proc.log_path = log_path  # type: ignore[attr-defined]
    _started_logs[log_path] = 0
    if port is not None:
        _wait_for_port(port, proc)
    return proc


def serve_api(
    env: dict[str, str] | None = None, log_name: str = "api"
) -> tuple[str, subprocess.Popen[bytes]]:
    """A real ``mailings serve`` on a socket bound here: its URL and its process."""
    sock = bound_socket()
    port = port_of(sock)
    args = ["serve", "--fd", str(sock.fileno())]
    proc = start_command(args, env=env, port=port, log_name=log_name, sockets=[sock])
    return f"http://127.0.0.1:{port}", proc


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def served_api(database: str) -> Iterator[str]:
    """A real ``mailings serve`` on loopback, on this run's database: its URL.

    Only for what needs a process: WebSockets through uvicorn, a Node or browser
    client, a worker reading what the API wrote, the server's own log. Everything
    else talks to the application in process (``gql``).
    """
    url, proc = serve_api()
    yield url
    stop_process(proc)


class GraphQLClient:
    """Posts GraphQL to ``url`` (through ``transport``, if given); ``execute`` fails on ``errors``.

    ``http`` is the underlying client, for requests other than GraphQL's.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(
            base_url=url, headers=headers, timeout=60, transport=transport
        )

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post("/graphql", json={"query": query, "variables": variables or {}})

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> GraphQLClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


@pytest.fixture(scope="session")
async def api_app(database: str) -> AsyncIterator[Starlette]:
    """The API application in this process, its lifespan running, with the test settings."""
    from tests.support.inprocess import serving

    async with serving() as app:
        yield app


@pytest.fixture
async def gql(api_app: Starlette, db: str) -> AsyncIterator[GraphQLClient]:
    """GraphQL (and ``gql.http``) over the application in this process."""
    from tests.support.inprocess import graphql_client

    async with graphql_client(api_app) as client:
        yield client


__all__ = [
    "GraphQLClient",
    "asyncio",
    "bound_socket",
    "port_of",
    "serve_api",
    "start_command",
    "stop_process",
    "truncate_all",
]
