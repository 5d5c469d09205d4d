"""What a person at the console sees: `make run`, `mailings watch`, `report`, `--help`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models import MailingStats, MailingStatus
from models.mailing import Mailing
from tasks.console_watch import ProgressWatch
from tests.conftest import TEST_ENV, port_of
from tests.support.engine import (
    add_clients,
    start_mailing,
    utcnow,
    wait_for_status,
    wait_until,
)
from tests.support.factories import make_mailing

ROOT = Path(__file__).resolve().parent.parent


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _set(mailing_id: int, status: MailingStatus | None = None, **counts: int) -> None:
    if status is not None:
        await Mailing.filter(id=mailing_id).update(status=status)
    if counts:
        await MailingStats.filter(mailing_id=mailing_id).update(**counts)


async def test_watch_tells_a_mailing_s_life_in_a_few_lines(db: str) -> None:
    clock = _Clock()
    # An empty database first: the first mailing created after is still new.
    empty = ProgressWatch(every=5.0, clock=clock)
    assert await empty.poll() == []
    first = await make_mailing(status=MailingStatus.RUNNING)
    await _set(first.id, total=3, pending=3)
    assert await empty.poll() == [f"mailing {first.id} started: 3 messages"]
    await Mailing.filter(id=first.id).delete()
    watch = ProgressWatch(every=5.0, clock=clock)
    over = await make_mailing(status=MailingStatus.FINISHED)
    running = await make_mailing(status=MailingStatus.RUNNING)
    await _set(running.id, total=10, pending=4, sent=6)
    assert await watch.poll() == [f"mailing {running.id} running: 6 of 10 done · 6 sent"]
    assert over.id < running.id

    mailing = await make_mailing()
    assert await watch.poll() == []  # scheduled: nothing to say yet
    await _set(mailing.id, MailingStatus.RUNNING, total=20_000, pending=20_000)
    assert await watch.poll() == [f"mailing {mailing.id} started: 20,000 messages"]
    clock.now += 1
    await _set(mailing.id, pending=19_000, sent=1_000)
    assert await watch.poll() == []  # not every poll: every 5 s
    clock.now += 4
    await _set(mailing.id, pending=10_000, sent=9_990, failed=10)
    assert await watch.poll() == [
        f"mailing {mailing.id}: 10,000 of 20,000 done (50%) · 9,990 sent · 10 failed · 2,000/s"
    ]
    clock.now += 5
    assert await watch.poll() == []  # nothing moved
    await _set(mailing.id, MailingStatus.PAUSED)
    assert await watch.poll() == [f"mailing {mailing.id} paused at 10,000 of 20,000 done"]
    await _set(mailing.id, MailingStatus.RUNNING)
    assert await watch.poll() == [f"mailing {mailing.id} resumed at 10,000 of 20,000 done"]
    clock.now += 2.5
    await _set(mailing.id, MailingStatus.FINISHED, pending=0, sent=19_980, failed=12, expired=8)
    await _set(running.id, MailingStatus.CANCELLED, pending=0, cancelled=4)
    assert await watch.poll() == [
        f"mailing {running.id} cancelled: 6 sent · 4 cancelled of 10",
        f"mailing {mailing.id} finished in 12.5 s: 19,980 sent · 12 failed · 8 expired of 20,000",
    ]
    # A mailing that started and ended between two reads still has both lines.
    quick = await make_mailing(status=MailingStatus.FINISHED)
    await _set(quick.id, total=1, sent=1)
    assert await watch.poll() == [
        f"mailing {quick.id} started: 1 message",
        f"mailing {quick.id} finished: 1 sent of 1",
    ]
    gone = await make_mailing()
    await watch.poll()
    await Mailing.filter(id=gone.id).update(deleted_at=utcnow())
    assert await watch.poll() == [f"mailing {gone.id} deleted"]


async def test_watch_corrects_a_cancelled_line_once_the_answers_in_flight_are_in(
    db: str,
) -> None:
    # Issue 21: the counts of a cancel were printed before the answers to the
    # requests in flight landed, and never corrected.
    watch = ProgressWatch(every=5.0, clock=_Clock())
    mailing = await make_mailing(status=MailingStatus.RUNNING)
    await _set(mailing.id, total=10, pending=10)
    await watch.poll()
    await _set(mailing.id, MailingStatus.CANCELLED, pending=2, sent=4, cancelled=4)
    assert await watch.poll() == [
        f"mailing {mailing.id} cancelled: 4 sent · 4 cancelled of 10 · 2 in flight"
    ]
    assert await watch.poll() == []
    await _set(mailing.id, pending=0, sent=5, failed=1)
    assert await watch.poll() == [
        f"mailing {mailing.id} cancelled, every answer in: 5 sent · 1 failed · 4 cancelled of 10"
    ]
    assert await watch.poll() == []


def _mailings(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env={**os.environ, **TEST_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_serve_says_so_when_its_port_is_taken_and_never_that_it_is_ready() -> None:
    # It once said "API ready", then failed to bind, with no word of API_PORT.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = port_of(holder)
    try:
        done = _mailings("serve", "--port", str(port))
    finally:
        holder.close()
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "--port" in done.stderr
    assert "make run API_PORT=" in done.stderr
    assert "API ready" not in done.stdout + done.stderr


def test_serve_is_ready_only_once_it_listens(db: str) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", "0"],
        env={**os.environ, **TEST_ENV, "LOG_FORMAT": "json"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    ) as serve:
        try:
            assert serve.stdout is not None
            events: list[dict[str, str]] = []
            for line in serve.stdout:  # until "API ready"; a dead process ends the loop
                if line.startswith("{"):
                    events.append(json.loads(line))
                    if events[-1]["event"] == "API ready":
                        break
            names = [event["event"] for event in events]
            assert "API ready" in names, names
            assert names.index("listening") < names.index("API ready")
            url = next(event["url"] for event in events if event["event"] == "listening")
            # Ready means it answers.
            port = int(url.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=10):
                pass
        finally:
            serve.terminate()
            serve.wait(30)


def test_report_prints_the_report_and_nothing_on_stderr(db: str) -> None:
    done = _mailings("report", "--date", "2026-11-30")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "2026-11-30" in done.stdout


def test_help_names_the_repository_s_own_docs() -> None:
    done = _mailings("--help")
    assert done.returncode == 0
    assert "SPEC" not in done.stdout
    assert "docs/" in done.stdout
    assert "watch" in done.stdout


def _make_run(console: Path, *variables: str) -> subprocess.Popen[bytes]:
    """`make run` as typed in a terminal (its own process group, for Ctrl-C), into ``console``."""
    env = {**os.environ, **TEST_ENV, "LOG_FORMAT": "console"}
    env.pop("MAKEFLAGS", None)
    with open(console, "wb") as out:
        return subprocess.Popen(
            ["make", "--no-print-directory", "run", *variables],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _held_port() -> socket.socket:
    """A port held for a process that binds it by number: honcho passes no socket on.

    Bound with SO_REUSEADDR and never listening. Linux then lets a server
    that binds with SO_REUSEADDR too (uvicorn, the simulator, the worker's
    probes all do) listen there, while nobody's ``bind(0)`` or outgoing
    connection picks the port in the meantime, as it would a port closed.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.mark.slow
async def test_make_run_console_stays_readable_while_20000_go_out(db: str, tmp_path: Path) -> None:
    """`make run` on moved ports; 20,000 messages; the console keeps a few lines."""
    held = {name: _held_port() for name in ("API_PORT", "PROVIDER_PORT", "WORKER_METRICS_PORT")}
    ports = {name: str(port_of(sock)) for name, sock in held.items()}
    logs = tmp_path / "logs"
    console = tmp_path / "console.txt"
    await add_clients(20_000)
    run = _make_run(console, *(f"{k}={v}" for k, v in ports.items()), f"LOG_DIR={logs}")
    try:

        async def serving() -> bool:
            text = console.read_text(errors="replace")
            return "engine started" in text and "watching mailings" in text

        await wait_until(serving, timeout=120)
        started = time.monotonic()
        mailing = await start_mailing()
        await wait_for_status(mailing.id, MailingStatus.FINISHED, timeout=600)
        took = time.monotonic() - started

        async def summed_up() -> bool:
            return f"mailing {mailing.id} finished" in console.read_text(errors="replace")

        await wait_until(summed_up, timeout=30)
    finally:
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        for sock in held.values():
            sock.close()
    lines = console.read_text(errors="replace").splitlines()
    files = sorted(logs.glob("*.log"))
    in_files = [line for path in files for line in path.read_text().splitlines()]
    sent = [line for line in in_files if json.loads(line)["event"] == "message sent"]
    print(
        f"\n20,000 messages in {took:.1f} s: {len(lines)} console lines,"
        f" {len(in_files)} lines in {len(files)} files under LOG_DIR\n" + "\n".join(lines)
    )
    assert len(sent) == 20_000
    assert {path.name.split("-")[0] for path in files} >= {"serve", "worker", "provider", "watch"}
    # Started while its audience is built in chunks: the total grows after.
    assert f"mailing {mailing.id} started: " in "\n".join(lines)
    assert f"mailing {mailing.id} finished in " in "\n".join(lines)
    assert "20,000 sent of 20,000" in "\n".join(lines)
    assert not [line for line in lines if "message sent" in line]
    # Readable: a start, a line every 5 s, an end, and the processes' own news.
    assert len(lines) <= 60 + took / 5
