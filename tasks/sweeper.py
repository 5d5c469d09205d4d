"""The sweep: what makes lost wake-ups and dead workers harmless.

Every ``SWEEP_INTERVAL`` seconds, or soon after a mailing may have changed
(a batch of outcomes written, an audience built), the sweeper of each
worker:

1. writes the outcomes this worker holds (outcomes first: ``tasks.outage``);
2. reaps the leases that ended without an outcome (their worker is gone),
   once the database has answered for ``REAP_GRACE``;
3. tends every mailing that may need it (``tasks.tend``): a start whose
   wake-up was lost, an end, a finish, a cancel.

The database is the source of truth; the queue only wakes the work up, and
the sweep finds whatever a lost wake-up would have done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import structlog
from tortoise.transactions import in_transaction

from models.queries.mailings import due_mailing_ids
from models.queries.messages import reap_ended_leases
from settings import Settings
from tasks.audience import AudienceBuilder
from tasks.events import ProgressNotifier
from tasks.liveness import LoopProgress
from tasks.outage import OutageHold
from tasks.recorder import Recorder
from tasks.tend import tend_mailing
from tasks.worker_metrics import WorkerMetrics

__all__ = ["Sweeper"]

log = structlog.get_logger(__name__)


class Sweeper:
    """The engine's sweeper loop; ``wake()`` when a mailing runs, ``swept()`` after each sweep."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        recorder: Recorder,
        outage: OutageHold,
        builder: AudienceBuilder,
        notifier: ProgressNotifier,
        metrics: WorkerMetrics,
        progress: LoopProgress,
        stopping: asyncio.Event,
        wake: Callable[[], None],
        swept: Callable[[], None],
    ) -> None:
        self._interval = settings.sweep_interval
        self._clock = clock
        self._recorder = recorder
        self._outage = outage
        self._builder = builder
        self._notifier = notifier
        self._metrics = metrics
        self._progress = progress
        self._stopping = stopping
        self._wake = wake
        self._swept = swept
        self._soon = asyncio.Event()

    def soon(self) -> None:
        """A mailing may need tending (or the engine stops): sweep without waiting the interval."""
        self._soon.set()

    async def run(self) -> None:
        """Sweep every ``SWEEP_INTERVAL``, or soon when asked, until the engine stops."""
        while not self._stopping.is_set():
            try:
                await self.sweep_once()
                self._progress.done("sweeper", "swept")
            except Exception as exc:
                log.exception("sweep failed; retrying")
                self._progress.failed("sweeper", exc)
            self._soon.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._soon.wait(), self._interval)
            # Coalesce: a burst of finished batches triggers one sweep.
            await asyncio.sleep(0.2)

    async def sweep_once(self) -> None:
        """Reap the leases of dead workers, then tend every mailing that may need it.

        This worker's own outcomes are written first, and no lease is
        reaped until the database has answered for ``REAP_GRACE``.
        """
        await self._recorder.record_now()
        if self._outage.may_reap():
            async with in_transaction() as conn:
                reaped = await reap_ended_leases(conn)
            self._metrics.leases_reaped(len(reaped))
            for row in reaped:
                log.warning(
                    "lease ended without an outcome; the message waits again",
                    message_id=int(row["id"]),
                    mailing_id=int(row["mailing_id"]),
                    client_id=row["client_id"],
                )
        now = self._clock()
        for mailing_id in await due_mailing_ids(now):
            if self._stopping.is_set():
                break
            status = await tend_mailing(mailing_id, now, chunk=self._builder.tend_chunk)
            self._notifier.mailing_changed(mailing_id)
            if status is not None and status.value == "RUNNING":
                self._wake()
        self._swept()
        self._builder.wake()
        self._outage.answered()
