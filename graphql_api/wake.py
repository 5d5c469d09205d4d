"""Waking the sending engine after a mutation committed (``tasks.hooks``).

The database is the source of truth and the worker's sweep finds whatever a
lost wake-up would have started (docs/sending.md), so a queue that is down
must not turn a committed mutation into an error that invites a retry: the
failure is logged, and the mutation still answers with what it wrote. Nor
may it hold the answer: the wake gets about a second (``WAKE_TIMEOUT``),
however Redis fails (refused, reset, or holding every byte).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog

from tasks import hooks

__all__ = ["WAKE_TIMEOUT", "tend_mailing"]

WAKE_TIMEOUT = 1.0  # seconds a mutation's answer may wait for the engine's wake

log = structlog.get_logger(__name__)


async def tend_mailing(mailing_id: int, at: datetime | None = None) -> None:
    """``tasks.hooks.tend_mailing``, with a failure logged instead of raised."""
    try:
        # The enqueue runs in a thread, which goes on (bounded by
        # REDIS_TIMEOUT) after the answer has left.
        await asyncio.wait_for(hooks.tend_mailing(mailing_id, at), WAKE_TIMEOUT)
    except Exception:
        log.warning(
            "could not wake the engine; its sweep will catch up",
            mailing_id=mailing_id,
            exc_info=True,
        )
