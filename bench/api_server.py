"""A fresh PostgreSQL database and a real ``mailings serve`` on it, for the API benchmarks.

The benchmark sets ``DATABASE_URL`` with :func:`use_database` before anything
imports ``settings``, so this process and the server share one database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from bench.ports import free_port, wait_for_port

__all__ = ["ADMIN_URL", "LOG_DIR", "recreate_database", "serve", "use_database"]

ADMIN_URL = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")
LOG_DIR = Path("data/bench")


def use_database(name: str) -> str:
    """Point this process (and the servers it starts) at the database ``name``."""
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    os.environ["DATABASE_URL"] = url
    os.environ["API_TOKEN"] = ""
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    return url


async def recreate_database(name: str) -> None:
    """Drop and create ``name``, then apply the migrations to it."""
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    from models.db import migrate

    await migrate()


@contextmanager
def serve() -> Iterator[str]:
    """A ``mailings serve`` subprocess on this process's environment; yields its base URL."""
    port = free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / f"api-{port}.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, proc, see=str(LOG_DIR))
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
