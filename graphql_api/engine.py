"""Waking the sending engine after a mutation committed (``tasks.hooks``).

The database is the source of truth and the worker's sweep finds whatever a
lost wake-up would have started (SPEC section 3), so a queue that is down
must not turn a committed mutation into an error that invites a retry: the
failure is logged, and the mutation still answers with what it wrote.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

import structlog

from tasks import hooks

__all__ = ["mailing_retargeted", "mailing_scheduled", "mailing_stopped"]

log = structlog.get_logger(__name__)


async def _wake(call: Awaitable[None], hook: str, mailing_id: int) -> None:
    try:
        await call
    except Exception:
        log.warning(
            "could not wake the engine; its sweep will catch up",
            hook=hook,
            mailing_id=mailing_id,
            exc_info=True,
        )


async def mailing_scheduled(mailing_id: int, start_at: datetime) -> None:
    await _wake(hooks.mailing_scheduled(mailing_id, start_at), "mailing_scheduled", mailing_id)


async def mailing_stopped(mailing_id: int) -> None:
    await _wake(hooks.mailing_stopped(mailing_id), "mailing_stopped", mailing_id)


async def mailing_retargeted(mailing_id: int) -> None:
    await _wake(hooks.mailing_retargeted(mailing_id), "mailing_retargeted", mailing_id)
