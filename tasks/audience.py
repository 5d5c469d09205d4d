"""A mailing's audience, built in committed chunks so that sending starts at once at any size.

A build begins (:func:`begin_audience`) when a mailing starts, and again when
a started mailing's filter changes: it records on the mailing row the filter
version it builds (``audience_version``), the last client id that exists now
(``audience_until``: clients created later are not in the audience, which is
the clients matching when the mailing starts) and a cursor before the first
client (``audience_cursor``). Each chunk (:func:`build_audience_chunk`) then
adds, in its own transaction, the messages of the clients after the cursor
up to a bound, and moves the cursor there; the last one sets it to null. On
PostgreSQL a chunk is one statement: a worker busy sending gets round to
its next statement late, and a chunk of several would hold its locks
(the mailing's row, its counters) all that while.

So a build interrupted anywhere resumes from the last committed chunk, in
any worker, and never adds a message twice (the unique (mailing, client)
pair makes a repeated chunk a no-op, and the counters count rows actually
added). A chunk holds its mailing's row, which serialises builders and
makes a pause, cancel or edit wait for the chunk in progress, then be seen
by the next one. Only a cancelled or deleted mailing stops its build; a
paused one goes on building (it is not sending), and one past its end too,
so that its whole audience is counted and expired. Tending
(``tasks.tend``) never finishes a mailing whose build is in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime

import structlog
from tortoise import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from models import ClientFilter, Mailing
from models.db import connection, is_postgres, stored_instant
from models.queries.mailings import (
    audience_build,
    begin_audience_build,
    building_mailing_ids,
    move_audience_cursor,
    stop_audience_build,
)
from models.queries.messages import (
    add_audience,
    add_audience_chunk,
    cancel_unmatched,
    revive_rematched,
)
from settings import Settings
from tasks.liveness import LoopProgress

__all__ = ["AudienceBuilder", "begin_audience", "build_audience_chunk"]

log = structlog.get_logger(__name__)

# A build starts with a small chunk, so its first messages go out at once,
# and grows its chunks towards this much of the database's time (each holds
# the mailing's row, so a pause waits for the chunk in progress).
_FIRST_CHUNK = 1_000
_CHUNK_SECONDS = 0.25


async def begin_audience(conn: BaseDBAsyncClient, mailing: Mailing, now: datetime) -> None:
    """Begin building the audience of the mailing's filter as it is now.

    For a mailing that had one (re-targeting), the waiting messages of clients
    that no longer match are cancelled and cancelled ones that match again are
    revived first; the build then adds the clients that never had one.
    """
    client_filter = ClientFilter(tuple(mailing.filter_operator_codes), tuple(mailing.filter_tags))
    dropped = revived = 0
    if mailing.audience_version is not None:
        dropped = await cancel_unmatched(conn, mailing.id, client_filter)
        revived = await revive_rematched(conn, mailing.id, client_filter, now)
    cursor, until = await begin_audience_build(conn, mailing.id, mailing.filter_version)
    mailing.audience_version = mailing.filter_version
    mailing.audience_cursor, mailing.audience_until = cursor, until
    log.info(
        "mailing audience build begun",
        mailing_id=mailing.id,
        filter_version=mailing.filter_version,
        up_to_client_id=until,
        cancelled=dropped,
        revived=revived,
    )


async def build_audience_chunk(mailing_id: int, now: datetime, size: int) -> tuple[bool, float]:
    """Add the audience of the next ``size`` client ids.

    Returns whether more of the build remains, and the seconds the chunk
    took the database (on SQLite, as seen from here).
    """
    if is_postgres(connection()):
        chunk = await add_audience_chunk(connection(), mailing_id, size, now)
        if chunk is None:
            await stop_audience_build(connection(), mailing_id)
            return False, 0.0
        added, more, seconds = chunk
    else:
        started = time.perf_counter()
        async with in_transaction() as conn:
            step = await _chunk_in_steps(conn, mailing_id, now, size)
        if step is None:
            return False, 0.0
        (added, more), seconds = step, time.perf_counter() - started
    log.debug("audience chunk added", mailing_id=mailing_id, added=added, seconds=seconds)
    if not more:
        log.info("mailing audience built", mailing_id=mailing_id)
    return more, seconds


async def _chunk_in_steps(
    conn: BaseDBAsyncClient, mailing_id: int, now: datetime, size: int
) -> tuple[int, bool] | None:
    """SQLite (one writer at a time): ``add_audience_chunk`` as several statements."""
    row = await audience_build(conn, mailing_id)
    if row is None or row["audience_cursor"] is None:
        return None
    if row["audience_version"] != row["filter_version"]:
        return None  # re-targeted: the next tend begins the build anew
    if row["deleted_at"] is not None or row["status"] in ("CANCELLED", "FINISHED"):
        await stop_audience_build(conn, mailing_id)
        return None
    after, until = int(row["audience_cursor"]), int(row["audience_until"])
    upto = min(until, after + size)
    added = await add_audience(
        conn,
        mailing_id,
        ClientFilter.from_json(row["filter_operator_codes"], row["filter_tags"]),
        stored_instant(row["start_at"]),
        now,
        clients=(after, upto),
    )
    done = upto >= until
    await move_audience_cursor(conn, mailing_id, None if done else upto)
    return added, not done


class AudienceBuilder:
    """The engine's loop that adds the audiences being built, one chunk of each in turn.

    Stepped by hand (tests), it builds nothing by itself and a tend adds a
    whole chunk (``AUDIENCE_CHUNK_SIZE``); running, a tend adds a first small
    chunk and this loop the rest. ``on_chunk(mailing_id, done)`` follows
    every chunk.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime],
        on_chunk: Callable[[int, bool], None],
        progress: LoopProgress | None = None,
    ) -> None:
        self._progress = progress or LoopProgress()
        self._largest = settings.audience_chunk_size
        self._smallest = min(_FIRST_CHUNK, self._largest)
        self._interval = settings.sweep_interval
        self._clock = clock
        self._on_chunk = on_chunk
        self._running = False
        self._stopping = False
        self._soon = asyncio.Event()
        self._sizes: dict[int, int] = {}

    @property
    def tend_chunk(self) -> int:
        """How many client ids a tend adds to a build in progress."""
        return self._smallest if self._running else self._largest

    def wake(self) -> None:
        """A build may have begun: look now."""
        self._soon.set()

    def stop(self) -> None:
        self._stopping = True
        self._soon.set()

    async def run(self) -> None:
        """Build until :meth:`stop`; between two chunks, never in the middle of one."""
        self._running = True
        while not self._stopping:
            try:
                more = await self.build_once()
                self._progress.done("builder", "built a chunk" if more else "idle")
            except Exception as exc:
                log.exception("audience build failed; retrying")
                self._progress.failed("builder", exc)
                more = False
                await asyncio.sleep(1.0)
            if not more:
                self._soon.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._soon.wait(), self._interval)

    async def build_once(self) -> bool:
        """Add one chunk to every audience being built; whether any build goes on."""
        going_on = False
        for mailing_id in await building_mailing_ids():
            if self._stopping:
                return False
            size = self._sizes.get(mailing_id, self._smallest)
            # Sized by the database's time: a worker busy sending answers
            # late, and its own clock would keep every chunk at its smallest.
            more, seconds = await build_audience_chunk(mailing_id, self._clock(), size)
            self._on_chunk(mailing_id, not more)
            if more:
                going_on = True
                target = int(size * _CHUNK_SECONDS / max(seconds, 0.001))
                self._sizes[mailing_id] = max(self._smallest, min(target, 2 * size, self._largest))
            else:
                self._sizes.pop(mailing_id, None)
        return going_on
