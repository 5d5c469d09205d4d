"""The service's clock: the one place that says what time it is.

Every rule that depends on the time (a mailing's start and end, send
windows, backoff, the report's day) reads :func:`now`, so a test can move
time forward for the API and the engine together (:func:`use_clock`).

"Now" is the database's clock, the one every process shares: each process
measures how far the database's clock is from its own
(``models.clock_sync``, at start and every ``CLOCK_SYNC_INTERVAL``) and
:func:`now` adds that offset to the system clock, so a host whose clock is
set wrong neither starts, sends nor expires anything early or late. Leases
go further: they are taken and checked on the database's clock in SQL
(``models.db.db_clock``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

__all__ = ["database_offset", "now", "set_database_offset", "use_clock"]

# The database's clock minus this process's (seconds); None until measured.
_offset: float | None = None
_shift = timedelta(0)


def _database_now() -> datetime:
    return datetime.now(UTC) + _shift


_current: Callable[[], datetime] = _database_now


def now() -> datetime:
    """The current instant on the database's clock, aware, in UTC."""
    return _current()


def set_database_offset(seconds: float) -> None:
    """The database's clock is ``seconds`` ahead of this process's (negative: behind)."""
    global _offset, _shift
    _offset, _shift = seconds, timedelta(seconds=seconds)


def database_offset() -> float | None:
    """The last offset measured (``set_database_offset``); ``None`` before the first."""
    return _offset


@contextlib.contextmanager
def use_clock(clock: Callable[[], datetime]) -> Iterator[None]:
    """Read the time from ``clock`` inside the block (tests)."""
    global _current
    previous, _current = _current, clock
    try:
        yield
    finally:
        _current = previous
