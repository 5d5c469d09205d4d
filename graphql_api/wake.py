"""Waking the sending engine after a mutation committed (``tasks.hooks``).

The database is the source of truth and the worker's sweep finds whatever a
lost wake-up would have started (docs/sending.md), so a queue that is down
must not turn a committed mutation into an error that invites a retry: the
failure is logged, and the mutation still answers with what it wrote.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from tasks import hooks

__all__ = ["tend_mailing"]

log = structlog.get_logger(__name__)


async def tend_mailing(mailing_id: int, at: datetime | None = None) -> None:
    """``tasks.hooks.tend_mailing``, with a failure logged instead of raised."""
    try:
        await hooks.tend_mailing(mailing_id, at)
    except Exception:
        log.warning(
            "could not wake the engine; its sweep will catch up",
            mailing_id=mailing_id,
            exc_info=True,
        )
