"""A throwaway PostgreSQL cluster for one profile, with ``pg_stat_statements`` loaded.

``pg_stat_statements`` only collects when the server preloads it
(``shared_preload_libraries``, a restart), which a shared development server
may not do and should not be restarted for. The profile therefore runs its own
cluster from the same binaries, under a temporary directory, with the shared
server's relevant settings (``fsync`` on, 128 MB of shared buffers,
autovacuum off) and the extension preloaded; every process of it works for
the profile, so its whole CPU is the database's cost. When ``initdb`` cannot
be found, :func:`private_postgres` yields None and the caller falls back to
the shared server and ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.ports import free_port

__all__ = ["PrivatePostgres", "private_postgres"]

_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.track_planning": "on",
    "shared_buffers": "128MB",
    "autovacuum": "off",
    "fsync": "on",
    "max_connections": "100",
    "listen_addresses": "127.0.0.1",
}


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return versions[0].parent if versions else None


class PrivatePostgres:
    """A running cluster: ``url`` is the ``postgres`` superuser's base URL (no database)."""

    def __init__(self, bin_dir: Path, data: Path, port: int, as_user: list[str]) -> None:
        self.bin_dir = bin_dir
        self.data = data
        self.port = port
        self.url = f"postgres://postgres@127.0.0.1:{port}"
        self._as_user = as_user

    def run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as_user, str(self.bin_dir / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres | None]:
    """A fresh cluster for the duration of the block, stopped and deleted after it."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="perf-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root.
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    cluster = PrivatePostgres(bin_dir, data, free_port(), as_user)
    try:
        cluster.run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (data / "postgresql.conf").open("a") as conf:
            for name, value in {**_SETTINGS, "port": str(cluster.port)}.items():
                conf.write(f"{name} = '{value}'\n")
            conf.write(f"unix_socket_directories = '{root}'\n")
        cluster.run("pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "start")
        yield cluster
    finally:
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                cluster.run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
