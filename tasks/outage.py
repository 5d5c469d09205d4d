"""Outcomes first: what keeps an outage of the database from sending anything twice.

While the database fails, the answers a worker gets wait in its recorder,
and their messages stay leased. An outage longer than the lease ends every
lease of every worker at once; if any worker could then reap and claim
before the others wrote what they held, it would send those messages again.
So (docs/sending.md, "When the infrastructure fails"):

- the dispatcher claims nothing while the recorder cannot write what it
  holds (``Recorder.failing``);
- a sweep writes this worker's outcomes before it reaps, and reaps no ended
  lease until the database has answered for ``REAP_GRACE`` seconds
  (:class:`OutageHold`): every live worker writes what it held well inside
  that grace, so the leases reaped are those of workers really gone;
- a stopping worker keeps trying to write what it holds until ``STOP_GRACE``
  ends (:func:`write_held`), and logs how many it could not write.

This is a grace, not fencing: a worker frozen longer than its lease plus
the grace is treated as dead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from tasks.recorder import Recorder

__all__ = ["OutageHold", "write_held"]

log = structlog.get_logger(__name__)

# The loops whose failure most likely means the database's.
_DATABASE_LOOPS = frozenset({"dispatcher", "recorder", "sweeper"})


class OutageHold:
    """Since when the database has answered this worker, and so whether it may reap."""

    def __init__(self, reap_grace: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._reap_grace = reap_grace
        self._monotonic = monotonic
        # Since when the database has answered (monotonic), None while it fails.
        self._answering_since: float | None = None

    def answered(self) -> None:
        """A round that needed the database went well."""
        if self._answering_since is None:
            self._answering_since = self._monotonic()

    def loop_failed(self, loop: str) -> None:
        """A round of ``loop`` failed (``LoopProgress.on_failure``)."""
        if loop in _DATABASE_LOOPS:
            # Most likely the database: nothing is reaped until it has
            # answered again for REAP_GRACE.
            self._answering_since = None

    def may_reap(self) -> bool:
        """Whether the database has answered long enough for every live worker to write."""
        since = self._answering_since
        return since is not None and self._monotonic() - since >= self._reap_grace


async def write_held(recorder: Recorder, grace: float) -> None:
    """Write the outcomes held, trying again until they land or ``grace`` (real time) ends."""
    deadline = time.monotonic() + grace
    while True:
        left = deadline - time.monotonic()
        try:
            await asyncio.wait_for(recorder.record_now(), max(left, 1.0))
        except Exception:
            log.warning("outcomes not written yet; trying again", exc_info=True)
        if not recorder.holding:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await asyncio.sleep(min(1.0, left))
    log.error(
        "outcomes not written before the stop grace ended; a sweep will reap their leases",
        unwritten=recorder.holding,
        grace_s=grace,
    )
