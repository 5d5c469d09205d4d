"""The service's clock: the one place that says what time it is.

Every rule that depends on the time (a mailing's start and end, send
windows, backoff) reads :func:`now`, so a test can move time forward for the
API and the engine together (:func:`use_clock`). Leases are the exception:
they are taken and checked on the database's own clock (``models.db``), so
that workers whose clocks disagree never take each other's messages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

__all__ = ["now", "use_clock"]


def _system_now() -> datetime:
    return datetime.now(UTC)


_current: Callable[[], datetime] = _system_now


def now() -> datetime:
    """The current instant, aware, in UTC."""
    return _current()


@contextlib.contextmanager
def use_clock(clock: Callable[[], datetime]) -> Iterator[None]:
    """Read the time from ``clock`` inside the block (tests)."""
    global _current
    previous, _current = _current, clock
    try:
        yield
    finally:
        _current = previous
