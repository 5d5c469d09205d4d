"""CPU seconds spent by processes, read from ``/proc``, for per-message cost figures.

A worker's figure is its whole process tree (``mailings worker --workers 2``
starts a child). PostgreSQL's is the sum over the server backends connected
to one database, found through ``pg_stat_activity`` and read from
``/proc/<pid>/stat``: the server runs on this machine and is shared with
other work, so its processes as a whole would count other databases too.
Server-wide processes (WAL writer, checkpointer, background writer) are left
out for the same reason; they appear in neither figure.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg

__all__ = ["BackendCpu", "process_cpu", "tree_cpu"]

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int, *, reaped: bool = False) -> float:
    """User + system CPU seconds of one process so far; 0 if it is gone.

    ``reaped`` adds its children that exited and were waited for.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may hold spaces and parentheses: fields start after the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its descendants alive now, and its children that exited."""
    total, todo = process_cpu(pid, reaped=True), _children(pid)
    while todo:
        current = todo.pop()
        total += process_cpu(current)
        todo += _children(current)
    return total


class BackendCpu:
    """CPU of the PostgreSQL backends of one database between :meth:`start` and :meth:`sample`.

    Backends come and go (pools grow, autovacuum visits): the set is polled
    with :meth:`sample`, and a backend first seen after :meth:`start` counts
    from zero. A backend that exits between two polls loses its last moments.
    """

    def __init__(self, conn: asyncpg.Connection, database: str) -> None:
        self._conn = conn
        self._database = database
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._own = 0

    async def _pids(self) -> list[int]:
        rows = await self._conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            self._database,
        )
        return [int(r["pid"]) for r in rows]

    async def start(self) -> None:
        self._first = {pid: process_cpu(pid) for pid in await self._pids()}
        self._last = dict(self._first)

    async def sample(self) -> float:
        """Poll the backends now; CPU seconds they spent since :meth:`start`."""
        for pid in await self._pids():
            self._first.setdefault(pid, 0.0)
            self._last[pid] = max(self._last.get(pid, 0.0), process_cpu(pid))
        return sum(self._last[pid] - self._first[pid] for pid in self._last)
