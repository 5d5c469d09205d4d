"""Keep this process's clock on the database's (``models.clock``).

On PostgreSQL each measurement asks the server for ``clock_timestamp()``
three times and keeps the answer that came back fastest: the database's
instant sits within half that round trip of the middle of it, so the error
is a millisecond or so on a local network. The offset is measured when a
process starts (before its engine or API decides anything) and every
``CLOCK_SYNC_INTERVAL`` after; when the database cannot be reached, the last
offset stays in force.

On SQLite (the embedded backend) the database has no clock of its own: a
statement's ``'now'`` is the clock of whichever process runs it, so the
offset is zero by definition and the processes agree only as far as their
clocks do (one machine, one clock, in the embedded setup).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import structlog
from tortoise import BaseDBAsyncClient

from models import clock
from models.db import connection, fetch, is_postgres

__all__ = ["ClockFollower", "measure_database_offset"]

log = structlog.get_logger(__name__)

_SAMPLES = 3
_TIMEOUT = 5.0  # seconds one measurement may take


async def measure_database_offset(conn: BaseDBAsyncClient | None = None) -> float:
    """The database's clock minus this process's, in seconds (0 on SQLite)."""
    conn = conn or connection()
    if not is_postgres(conn):
        return 0.0
    best: tuple[float, float] | None = None  # (round trip, offset)
    for _ in range(_SAMPLES):
        wall, started = datetime.now(UTC), time.monotonic()
        (row,) = await fetch(conn, "SELECT clock_timestamp() AS now")
        trip = time.monotonic() - started
        offset = (row["now"] - wall).total_seconds() - trip / 2
        if best is None or trip < best[0]:
            best = (trip, offset)
    assert best is not None
    return best[1]


class ClockFollower:
    """Measures the offset, applies it to ``models.clock`` and warns when it is large."""

    def __init__(self, bound: float, interval: float) -> None:
        self._bound = bound
        self._interval = interval
        self._warned_at: float | None = None  # the offset last warned about
        self.measured = asyncio.Event()  # set by the first measurement that succeeds

    async def sync(self) -> float:
        """Measure once and apply it; raises if the database does not answer in time."""
        offset = await asyncio.wait_for(measure_database_offset(), _TIMEOUT)
        clock.set_database_offset(offset)
        self.measured.set()
        self._report(offset)
        return offset

    async def run(self) -> None:
        """Measure every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sync()
            except Exception as error:  # of the network or of either driver: try again later
                log.warning(
                    "database clock not measured; the last offset stays",
                    offset_s=clock.database_offset(),
                    error=type(error).__name__,
                )

    def _report(self, offset: float) -> None:
        if abs(offset) > self._bound:
            # Once, and again when it moves by more than the bound: not every few seconds.
            if self._warned_at is None or abs(offset - self._warned_at) > self._bound:
                log.warning(
                    "this host's clock is off the database's; the database's is used",
                    offset_s=round(offset, 3),
                    bound_s=self._bound,
                )
                self._warned_at = offset
        elif self._warned_at is not None:
            log.info(
                "this host's clock agrees with the database's again", offset_s=round(offset, 3)
            )
            self._warned_at = None
