"""The sending engine: claim due messages, send them concurrently, record the outcomes.

One engine runs per worker process, on one event loop, with one shared HTTP
client: concurrency comes from asyncio (``send_concurrency`` requests in
flight), not from threads. Four loops share the engine:

- the dispatcher claims due messages of the running mailings in batches,
  round robin, as request slots free up and the pacer grants start times,
  and starts one send per message;
- the recorder (``tasks.recorder``) writes outcomes in bulk, one transaction per flush;
- the sweeper (``tasks.sweeper``) tends every mailing that may need it
  (start, re-target, expire, finish, cancel) and reaps the leases of dead
  workers, which is what makes lost wake-ups and crashes harmless;
- the builder adds the audiences being built, chunk after chunk
  (``tasks.audience``), while the first chunks are already being sent.

The checks that the guarantees in docs/sending.md rest on are made twice: by the claim,
in SQL, against the mailing as it is in the database (running, at the
revision the engine read, a client the filter still matches), and in Python
right before each request starts (``tasks.last_check``: the mailing still running
as read, ``end_at`` not come, the window open, the lease long enough, the breaker).

Each loop survives any exception it meets and reports every round to
:class:`tasks.liveness.LoopProgress` (liveness is progress, not a live
process). When the database fails, outcomes come first (``tasks.outage``).

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
from datetime import datetime

import structlog
from tortoise.transactions import in_transaction

from models import clock as service_clock
from models import next_window_opening
from models.queries.messages import Claimed, claim_due
from settings import Settings
from tasks.audience import AudienceBuilder
from tasks.breaker import CircuitBreaker
from tasks.events import ProgressNotifier
from tasks.last_check import LastCheck
from tasks.liveness import Heartbeat, LoopProgress
from tasks.outage import OutageHold, write_held
from tasks.pacing import SendPacer
from tasks.provider import ProviderClient
from tasks.recorder import Recorder
from tasks.running import RunningMailing, running_mailings
from tasks.sweeper import Sweeper
from tasks.tend import tend_mailing
from tasks.worker_metrics import WorkerMetrics

__all__ = ["Engine"]

log = structlog.get_logger(__name__)

_ACTIVE_REFRESH = 0.3  # seconds; pause and cancel take effect within this
_IDLE_POLL = 0.25  # seconds between claims when nothing was due
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
        # Who holds a lease; random, so a restarted worker is someone else.
        self.worker = random.getrandbits(62)
        self._running: dict[int, RunningMailing] = {}
        self._running_loaded_at = -1.0
        self._rotation = itertools.count()
        self._inflight: dict[asyncio.Task[None], int] = {}
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self.progress = LoopProgress(monotonic)
        self.progress.on_failure = self._loop_failed
        self._outage = OutageHold(settings.reap_grace, monotonic)
        self._recorder = Recorder(
            batch=self._batch,
            worker=self.worker,
            clock=self._clock,
            on_recorded=self._recorded,
            pacer=self._pacer,
            settings=settings,
            progress=self.progress,
            on_written=self._outage.answered,
        )
        self._check = LastCheck(
            settings,
            recorder=self._recorder,
            breaker=breaker,
            clock=self._clock,
            monotonic=monotonic,
        )
        self._builder = AudienceBuilder(
            settings, self._clock, on_chunk=self._built_chunk, progress=self.progress
        )
        self.requests_started = 0
        self.metrics = WorkerMetrics(self._clock())
        self._heartbeat = Heartbeat(
            self.metrics, self.progress, breaker, self._inflight, self._clock
        )
        self._sweeper = Sweeper(
            settings,
            clock=self._clock,
            recorder=self._recorder,
            outage=self._outage,
            builder=self._builder,
            notifier=self._notifier,
            metrics=self.metrics,
            progress=self.progress,
            stopping=self._stopping,
            wake=self._wake.set,
            swept=self._swept,
        )

    # -- lifecycle -----------------------------------------------------------

    async def run(self) -> None:
        """Dispatch, record and sweep until :meth:`stop` is called."""
        log.info("engine started", concurrency=self._concurrency, batch=self._batch)
        recorder = asyncio.create_task(self._recorder.run(), name="recorder")
        sweeper = asyncio.create_task(self._sweeper.run(), name="sweeper")
        heart = asyncio.create_task(self._heartbeat.run(self._stopping), name="heartbeat")
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
            await write_held(self._recorder, self._settings.stop_grace)
            await self._heartbeat.beat(stopping=True)
            log.info("engine stopped", worker_id=self.metrics.worker_id)

    def stop(self) -> None:
        """Stop claiming; in-flight requests finish (or are handed back) and are recorded."""
        self._stopping.set()
        self._wake.set()
        self._sweeper.soon()
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
        self._outage.loop_failed(loop)

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
                self._outage.answered()
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
            # Outcomes first (tasks.outage): what this worker holds lands before it claims more.
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
                    lease_seconds=self._check.lease_seconds,
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
            self._recorder.hand_back(message, opening, None, refund=True, for_window=True)
            log.info(
                "message waits for its window",
                message_id=message.id,
                mailing_id=message.mailing_id,
                client_id=message.client_id,
                opens_at=opening.isoformat(),
            )
            return
        lease_ends = self._check.lease_ends()
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
            ticket = self._check.before_request(
                message,
                mailing,
                self._running.get(message.mailing_id),
                lease_ends,
                stopping=self._stopping.is_set(),
                held_for=self._pacer.blocked_until - self._monotonic(),
            )
            if ticket is None:
                return
            self.requests_started += 1
            started = self._monotonic()
            started_real = self._check.request_started()
            result = await self._provider.send(message.id, message.phone, mailing.text)
        except asyncio.CancelledError:
            # The worker is stopping with this request unanswered: it may have
            # been accepted, and a retry reuses the id, so the provider can tell.
            self._recorder.hand_back(
                message, self._clock(), "worker stopped mid-request", refund=False
            )
            raise
        except Exception:
            # Never expected; the message waits again rather than for its lease.
            self._recorder.hand_back(message, self._clock(), "engine error", refund=False)
            raise
        if result.kind == "transient" and self._check.timed_out_across_freeze(started_real):
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
            self._recorder.hand_back(message, self._clock(), "engine error", refund=False)
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
            self._sweeper.soon()  # it may finish now

    def _recorded(self, touched: set[int], any_final: bool) -> None:
        for mailing_id in touched:
            self._notifier.mailing_changed(mailing_id)
        if any_final or touched:
            # A mailing may have just had its last message: tend it soon.
            self._sweeper.soon()

    # -- sweeping ------------------------------------------------------------

    async def sweep_once(self) -> None:
        """One sweep (:meth:`tasks.sweeper.Sweeper.sweep_once`): write, reap, tend."""
        await self._sweeper.sweep_once()

    def _swept(self) -> None:
        self._running_loaded_at = -1.0
