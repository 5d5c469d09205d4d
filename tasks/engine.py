"""The sending engine: claim due messages, send them concurrently, record the outcomes.

One engine runs per worker process, on one event loop, with one shared HTTP
client: concurrency comes from asyncio (``send_concurrency`` requests in
flight), not from threads. Four loops share the engine:

- the dispatcher claims due messages of the running mailings in batches,
  round robin, as request slots free up and the pacer grants start times,
  and starts one send per message;
- the recorder (``tasks.recorder``) writes outcomes in bulk, one transaction per flush;
- the sweeper tends every mailing that may need it (start, re-target,
  expire, finish, settle) and releases the messages of dead workers, which
  is what makes lost wake-ups and crashes harmless;
- the builder adds the audiences being built, chunk after chunk
  (``tasks.audience``), while the first chunks are already being sent.

The checks that the guarantees in docs/sending.md rest on are made twice: by the claim,
in SQL, against the mailing as it is in the database (running, at the
revision the engine read, a client the filter still matches), and in Python
right before each request starts (the mailing still running as read, ``end_at``
not come, the client's send window open, the circuit breaker lets it through).

Each loop survives any exception it meets and reports every round to
:class:`tasks.liveness.LoopProgress` (liveness is progress, not a live
process). When the database fails, outcomes come first: the dispatcher
claims nothing while the recorder cannot write what it holds, and the
sweeper writes them before it hands back any ended lease, and hands back
none until the database has answered for ``REAP_GRACE`` seconds, so that
every live worker has written what it held through the outage
(docs/sending.md, "When the infrastructure fails").

Each step is also a public method (:meth:`dispatch_once`, :meth:`record_now`,
:meth:`sweep_once`), so a test can drive the engine step by step under a
clock it moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from tortoise.transactions import in_transaction

from models import MessageStatus, next_window_opening
from models import clock as service_clock
from models.queries.mailings import due_mailing_ids
from models.queries.messages import (
    Claimed,
    claim_due,
    reap_ended_leases,
)
from settings import Settings
from tasks.audience import AudienceBuilder
from tasks.breaker import CircuitBreaker
from tasks.events import ProgressNotifier
from tasks.liveness import LoopProgress
from tasks.pacing import SendPacer
from tasks.provider import ProviderClient
from tasks.recorder import Recorder
from tasks.running import RunningMailing, running_mailings
from tasks.sweep import tend_mailing
from tasks.worker_metrics import WorkerMetrics

__all__ = ["Engine"]

log = structlog.get_logger(__name__)

_ACTIVE_REFRESH = 0.3  # seconds; pause and cancel take effect within this
_IDLE_POLL = 0.25  # seconds between claims when nothing was due
_HEARTBEAT_INTERVAL = 5.0  # seconds between two writes of this worker's counters
_HELPERS_STOP = 5.0  # seconds a stopping engine waits for its loops between two calls


class Engine:
    """Sends the messages of running mailings until asked to stop."""

    def __init__(
        self,
        settings: Settings,
        provider: ProviderClient,
        breaker: CircuitBreaker,
        notifier: ProgressNotifier | None = None,
        clock: Callable[[], datetime] | None = None,
        pacer: SendPacer | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._notifier = notifier or ProgressNotifier(None)
        self._provider = provider
        self._breaker = breaker
        self._clock = clock or service_clock.now
        self._monotonic = monotonic
        self._pacer = pacer or SendPacer(clock=monotonic)
        self._concurrency = settings.send_concurrency
        self._batch = min(settings.send_batch_size, settings.send_concurrency)
        # A claim outlives any request: a message comes back by itself only
        # when its worker is surely gone.
        self._lease_seconds = max(settings.send_lease, 2 * settings.send_timeout + 1)
        # A request that took this long had its time limit fire late: frozen.
        self._frozen_after = settings.send_timeout + 2.0
        # Who holds a lease; random, so a restarted worker is someone else.
        self.worker = random.getrandbits(62)
        self._running: dict[int, RunningMailing] = {}
        self._running_loaded_at = -1.0
        self._rotation = itertools.count()
        self._inflight: dict[asyncio.Task[None], int] = {}
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._sweep_soon = asyncio.Event()
        self.progress = LoopProgress(monotonic)
        self.progress.on_failure = self._loop_failed
        # Since when the database has answered (monotonic), None while it fails.
        self._answering_since: float | None = None
        self._recorder = Recorder(
            batch=self._batch,
            worker=self.worker,
            clock=self._clock,
            on_recorded=self._recorded,
            pacer=self._pacer,
            settings=settings,
            progress=self.progress,
            on_written=self._database_answered,
        )
        self._builder = AudienceBuilder(
            settings, self._clock, on_chunk=self._built_chunk, progress=self.progress
        )
        self.requests_started = 0
        self.metrics = WorkerMetrics(self._clock())

    # -- lifecycle -----------------------------------------------------------

    async def run(self) -> None:
        """Dispatch, record and sweep until :meth:`stop` is called."""
        log.info("engine started", concurrency=self._concurrency, batch=self._batch)
        recorder = asyncio.create_task(self._recorder.run(), name="recorder")
        sweeper = asyncio.create_task(self._sweep_forever(), name="sweeper")
        heart = asyncio.create_task(self._beat_forever(), name="heartbeat")
        builder = asyncio.create_task(self._builder.run(), name="builder")
        try:
            await self._dispatch_forever()
        finally:
            # The helpers stop by themselves between two database calls; one
            # held in a call by an outage is cancelled (a connection that
            # breaks so is closed, not reused: models/postgres_engine.py).
            self.stop()
            await self.drain()
            self._recorder.stop()
            helpers = {sweeper, heart, builder, recorder}
            _, late = await asyncio.wait(helpers, timeout=_HELPERS_STOP)
            for task in late:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._write_held(self._settings.stop_grace)
            await self._beat(stopping=True)
            log.info("engine stopped", worker_id=self.metrics.worker_id)

    async def _write_held(self, grace: float) -> None:
        """Write the outcomes held, trying again until they land or ``grace`` (real time) ends."""
        deadline = time.monotonic() + grace
        while True:
            left = deadline - time.monotonic()
            try:
                await asyncio.wait_for(self.record_now(), max(left, 1.0))
            except Exception:
                log.warning("outcomes not written yet; trying again", exc_info=True)
            if not self._recorder.holding:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(min(1.0, left))
        log.error(
            "outcomes not written before the stop grace ended; their leases will hand them back",
            unwritten=self._recorder.holding,
            grace_s=grace,
        )

    def stop(self) -> None:
        """Stop claiming; in-flight requests finish (or are handed back) and are recorded."""
        self._stopping.set()
        self._wake.set()
        self._sweep_soon.set()
        self._builder.stop()

    def wake(self) -> None:
        """Something changed (a mailing started, stopped or was edited): look again now."""
        self._running_loaded_at = -1.0
        self._wake.set()

    async def tend(self, mailing_id: int) -> None:
        """Tend one mailing now (a Huey task asked for it), then look again."""
        await tend_mailing(mailing_id, self._clock(), chunk=self._builder.tend_chunk)
        self._notifier.mailing_changed(mailing_id)
        self._builder.wake()
        self.wake()

    @property
    def in_flight(self) -> dict[asyncio.Task[None], int]:
        """The send tasks running now, each with its message id."""
        return self._inflight

    def _loop_failed(self, loop: str) -> None:
        self.metrics.loop_failed(loop)
        if loop in ("dispatcher", "recorder", "sweeper"):
            # Most likely the database: nothing is reaped until it has
            # answered again for REAP_GRACE.
            self._answering_since = None

    def _database_answered(self) -> None:
        if self._answering_since is None:
            self._answering_since = self._monotonic()

    def may_reap(self) -> bool:
        """Whether the database has answered long enough for every live worker to write."""
        since = self._answering_since
        return since is not None and self._monotonic() - since >= self._settings.reap_grace

    async def _beat_forever(self) -> None:
        while not self._stopping.is_set():
            await self._beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), _HEARTBEAT_INTERVAL)

    async def _beat(self, *, stopping: bool = False) -> None:
        self.metrics.breaker_state = self._breaker.state
        self.metrics.in_flight = len(self._inflight)
        self.metrics.loops = self.progress.snapshot()
        try:
            await self.metrics.beat(self._clock(), stopping=stopping)
        except Exception:
            log.warning("heartbeat not written", exc_info=True)

    async def drain(self, grace: float | None = None) -> None:
        """Wait for the requests in flight; cancel (and hand back) those out after ``grace``."""
        if not self._inflight:
            return
        if grace is None:
            grace = min(self._settings.send_timeout, 10.0)
        log.info("engine draining", in_flight=len(self._inflight), grace_seconds=grace)
        _, late = await asyncio.wait(set(self._inflight), timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    # -- dispatching ---------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                claimed = await self.dispatch_once()
                self.progress.done("dispatcher", f"claimed {claimed}" if claimed > 0 else "idle")
                self._database_answered()
            except Exception as exc:
                log.exception("dispatch failed; retrying")
                self.progress.failed("dispatcher", exc)
                claimed = 0
                await self._pause(1.0)
            if claimed == 0:
                await self._pause(self._idle_delay())

    def _idle_delay(self) -> float:
        if self._running and self._breaker.state == "open":
            return max(0.01, min(self._breaker.seconds_until_probe(), 1.0))
        return _IDLE_POLL if self._running else 1.0

    async def _pause(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def dispatch_once(self, *, wait: bool = True) -> int:
        """Claim what may be sent now and start sending it; how many were claimed.

        -1 means "try again soon" (no free slot yet, or the pacer asked to
        wait); ``wait=False`` returns at once instead of waiting for a slot.
        """
        if self._monotonic() - self._running_loaded_at > _ACTIVE_REFRESH:
            await self._load_running()
            self._running_loaded_at = self._monotonic()
        if not self._running:
            return 0
        if self._recorder.failing:
            # Outcomes first: what this worker holds lands before it claims more.
            return 0
        state = self._breaker.state
        if state == "open":
            return 0
        free = self._concurrency - len(self._inflight)
        if state == "half_open":
            # One probe, whatever is still in flight from before it opened.
            free = 1 if self._breaker.seconds_until_probe() == 0 else 0
        elif free < max(1, self._batch // 4) and wait:
            # Wait for a useful number of free slots, so claims stay batches.
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), 0.5)
            return -1
        if free <= 0:
            if wait:
                await self._pause(0.05)
            return -1
        grant = await self._pacer.reserve(min(free, self._batch))
        if grant.count == 0:
            if wait:
                await self._pause(max(0.0, grant.retry_at - self._monotonic()))
            return -1
        mailings = list(self._running.values())
        start = next(self._rotation) % len(mailings)
        claimed = 0
        now = self._clock()
        for mailing in mailings[start:] + mailings[:start]:
            if claimed >= grant.count:
                break
            if now >= mailing.end_at:
                continue
            async with in_transaction() as conn:
                batch = await claim_due(
                    conn,
                    mailing_id=mailing.id,
                    revision=mailing.revision,
                    client_filter=mailing.filter,
                    now=now,
                    lease_seconds=self._lease_seconds,
                    worker=self.worker,
                    limit=grant.count - claimed,
                )
            for i, message in enumerate(batch, start=claimed):
                self._start_send(mailing, message, grant.first_at + i * grant.interval, now)
            claimed += len(batch)
        return claimed

    async def _load_running(self) -> None:
        self._running = {mailing.id: mailing for mailing in await running_mailings()}

    def _start_send(
        self, mailing: RunningMailing, message: Claimed, start_at: float, claimed_at: datetime
    ) -> None:
        if mailing.window is not None and not mailing.window.is_open(message.timezone, claimed_at):
            # Outside the client's window: wait for its next opening, unsent.
            # It stays pending even if that is after end_at: EXPIRED comes at
            # end_at, and until then a later end or another window can save it.
            opening = next_window_opening(mailing.window, message.timezone, claimed_at)
            self._recorder.reschedule(message, opening, None, refund=True, for_window=True)
            log.info(
                "message waits for its window",
                message_id=message.id,
                mailing_id=message.mailing_id,
                client_id=message.client_id,
                opens_at=opening.isoformat(),
            )
            return
        lease_ends = self._monotonic() + self._lease_seconds
        task = asyncio.create_task(self._send(mailing, message, start_at, lease_ends))
        self._inflight[task] = message.id
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            # _send hands its message back first; retrieved here, so that no
            # exception is ever left for asyncio to report.
            log.error("a send failed unexpectedly", exc_info=task.exception())

    async def _send(
        self, mailing: RunningMailing, message: Claimed, start_at: float, lease_ends: float
    ) -> None:
        try:
            delay = start_at - self._monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = self._clock()
            current = self._running.get(message.mailing_id)
            if current is None or current.revision != mailing.revision or self._stopping.is_set():
                # Paused, cancelled, edited or finished since the claim: hand it
                # back unsent; the next claim decides under the mailing as it is.
                self._recorder.reschedule(message, now, None, refund=True)
                return
            if now >= mailing.end_at:
                self._recorder.finalise(
                    message, MessageStatus.EXPIRED, "mailing ended before it was sent"
                )
                return
            if mailing.window is not None and not mailing.window.is_open(message.timezone, now):
                opening = next_window_opening(mailing.window, message.timezone, now)
                self._recorder.reschedule(message, opening, None, refund=True, for_window=True)
                return
            held = self._pacer.blocked_until - self._monotonic()
            if held > 0:
                # A Retry-After came after this slot was granted: it holds this
                # request too. Sent now, it would only be refused again.
                self._recorder.reschedule(message, now + timedelta(seconds=held), None, refund=True)
                return
            if lease_ends - self._monotonic() < self._settings.send_timeout:
                # Its lease may end before the answer (the worker was frozen,
                # or waited long for its start): another worker may have it.
                self._recorder.reschedule(message, now, None, refund=True)
                log.warning(
                    "lease too short to send; handed back unsent",
                    message_id=message.id,
                    mailing_id=message.mailing_id,
                    client_id=message.client_id,
                )
                return
            ticket = self._breaker.allow()
            if ticket is None:
                due = now + timedelta(seconds=self._breaker.seconds_until_probe())
                self._recorder.reschedule(message, due, None, refund=True)
                return
            self.requests_started += 1
            started = self._monotonic()
            started_real = time.monotonic()  # a freeze is real time, whatever clock a test moves
            result = await self._provider.send(message.id, message.phone, mailing.text)
        except asyncio.CancelledError:
            # The worker is stopping with this request unanswered: it may have
            # been accepted, and a retry reuses the id, so the provider can tell.
            self._recorder.reschedule(
                message, self._clock(), "worker stopped mid-request", refund=False
            )
            raise
        except Exception:
            # Never expected; the message waits again rather than for its lease.
            self._recorder.reschedule(message, self._clock(), "engine error", refund=False)
            raise
        if result.kind == "transient" and time.monotonic() - started_real > self._frozen_after:
            # Its time limit fired far too late: the worker was frozen (SIGSTOP,
            # a VM pause) with the answer waiting. That says nothing of the
            # provider, so the breaker does not hear of it.
            log.warning(
                "request timed out across a freeze; not held against the provider",
                message_id=message.id,
                mailing_id=message.mailing_id,
                client_id=message.client_id,
            )
        else:
            self._breaker.record(result, ticket)
        self.metrics.observe_send(result.kind, result.latency)
        try:
            self._recorder.record_answer(message, mailing.end_at, result, started)
        except Exception:
            self._recorder.reschedule(message, self._clock(), "engine error", refund=False)
            raise

    # -- recording -----------------------------------------------------------

    async def record_now(self) -> int:
        """Write every outcome gathered so far (:meth:`Recorder.record_now`); how many."""
        return await self._recorder.record_now()

    def _built_chunk(self, mailing_id: int, done: bool) -> None:
        # New messages are due now; the notifier coalesces its events.
        self._wake.set()
        self._notifier.mailing_changed(mailing_id)
        if done:
            self._sweep_soon.set()  # it may finish now

    def _recorded(self, touched: set[int], any_final: bool) -> None:
        for mailing_id in touched:
            self._notifier.mailing_changed(mailing_id)
        if any_final or touched:
            # A mailing may have just had its last message: tend it soon.
            self._sweep_soon.set()

    # -- sweeping ------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep_once()
                self.progress.done("sweeper", "swept")
            except Exception as exc:
                log.exception("sweep failed; retrying")
                self.progress.failed("sweeper", exc)
            self._sweep_soon.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sweep_soon.wait(), self._settings.sweep_interval)
            # Coalesce: a burst of finished batches triggers one sweep.
            await asyncio.sleep(0.2)

    async def sweep_once(self) -> None:
        """Release dead workers' messages, then tend every mailing that may need it.

        This worker's own outcomes are written first, and no lease is
        released until the database has answered for ``REAP_GRACE``.
        """
        await self.record_now()
        if self.may_reap():
            async with in_transaction() as conn:
                reaped = await reap_ended_leases(conn)
            self.metrics.leases_reaped(len(reaped))
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
                self._wake.set()
        self._running_loaded_at = -1.0
        self._builder.wake()
        self._database_answered()
