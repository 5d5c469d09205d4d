"""The sending engine: claim due messages, send them concurrently, record the outcomes.

One engine runs per worker process, on one event loop, with one shared HTTP
client: concurrency comes from asyncio (``send_concurrency`` requests in
flight), not from threads. Four loops share the engine:

- the dispatcher claims due messages of the running mailings in batches,
  round robin, as request slots free up and the pacer grants start times,
  and starts one send per message;
- the recorder writes outcomes in bulk, one transaction per flush;
- the sweeper tends every mailing that may need it (start, re-target,
  expire, finish, settle) and releases the messages of dead workers, which
  is what makes lost wake-ups and crashes harmless;
- the builder adds the audiences being built, chunk after chunk
  (``tasks.audience``), while the first chunks are already being sent.

The checks that the SPEC's guarantees rest on are made twice: by the claim,
in SQL, against the mailing as it is in the database (running, at the
revision the engine read, a client the filter still matches), and in Python
right before each request starts (the mailing still running as read, ``end_at``
not come, the client's send window open, the circuit breaker lets it through).

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
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from tortoise.transactions import in_transaction

from models import ClientFilter, MessageStatus, SendWindow, next_window_opening
from models import clock as service_clock
from models.db import connection, fetch
from models.queries.messages import (
    Claimed,
    Finalise,
    Reschedule,
    claim_due,
    finalise_messages,
    reap_ended_leases,
    reschedule_messages,
    settle_returned,
)
from models.reporting import parse_instant
from settings import Settings
from tasks.audience import build_audience_chunk, building_mailing_ids
from tasks.breaker import CircuitBreaker
from tasks.events import ProgressNotifier
from tasks.pacing import SendPacer
from tasks.provider import ProviderClient, SendResult
from tasks.retry import retry_delay
from tasks.sweep import due_mailing_ids, tend_mailing
from tasks.worker_metrics import WorkerMetrics

__all__ = ["Engine"]

log = structlog.get_logger(__name__)

_ACTIVE_REFRESH = 0.3  # seconds; pause and cancel take effect within this
_IDLE_POLL = 0.25  # seconds between claims when nothing was due
_FLUSH_INTERVAL = 0.05  # seconds an outcome may wait before it is written
_HEARTBEAT_INTERVAL = 5.0  # seconds between two writes of this worker's counters
_RATE_LIMITED_RETRY = 1.0  # seconds a message waits after a 429 without Retry-After
# An audience build starts with a small chunk, so its first messages go out
# at once, and grows its chunks towards this duration (each holds the
# mailing's row, so a pause waits for the chunk in progress).
_FIRST_CHUNK = 1_000
_CHUNK_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class _Running:
    """What the dispatcher needs to know of a running mailing, as of ``revision``."""

    id: int
    revision: int
    text: str
    end_at: datetime
    window: SendWindow | None
    filter: ClientFilter


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
        # Who holds a lease; random, so a restarted worker is someone else.
        self.worker = random.getrandbits(62)
        self._running: dict[int, _Running] = {}
        self._running_loaded_at = -1.0
        self._rotation = itertools.count()
        self._inflight: dict[asyncio.Task[None], int] = {}
        self._finals: list[Finalise] = []
        self._reschedules: list[Reschedule] = []
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._stopping = asyncio.Event()
        self._sweep_soon = asyncio.Event()
        self._recorder_stopping = False
        # Set by run(); stepped by hand, each tend adds one whole chunk.
        self._building = False
        self._build_soon = asyncio.Event()
        self._chunk_sizes: dict[int, int] = {}
        self.requests_started = 0
        self.metrics = WorkerMetrics(self._clock())

    # -- lifecycle -----------------------------------------------------------

    async def run(self) -> None:
        """Dispatch, record and sweep until :meth:`stop` is called."""
        log.info("engine started", concurrency=self._concurrency, batch=self._batch)
        recorder = asyncio.create_task(self._record_forever(), name="recorder")
        sweeper = asyncio.create_task(self._sweep_forever(), name="sweeper")
        heart = asyncio.create_task(self._beat_forever(), name="heartbeat")
        self._building = True
        builder = asyncio.create_task(self._build_forever(), name="builder")
        try:
            await self._dispatch_forever()
        finally:
            # The helpers stop by themselves between two database calls:
            # cancelling one mid-statement could leave its connection unusable
            # for the last flush.
            self.stop()
            await self.drain()
            self._recorder_stopping = True
            self._flush_now.set()
            await asyncio.gather(sweeper, heart, builder, recorder, return_exceptions=True)
            try:
                await self.record_now()
            except Exception:
                log.exception("last outcomes not recorded; their leases will hand them back")
            await self._beat(stopping=True)
            log.info("engine stopped", worker_id=self.metrics.worker_id)

    def stop(self) -> None:
        """Stop claiming; in-flight requests finish (or are handed back) and are recorded."""
        self._stopping.set()
        self._wake.set()
        self._sweep_soon.set()
        self._build_soon.set()

    def wake(self) -> None:
        """Something changed (a mailing started, stopped or was edited): look again now."""
        self._running_loaded_at = -1.0
        self._wake.set()

    async def tend(self, mailing_id: int) -> None:
        """Tend one mailing now (a Huey task asked for it), then look again."""
        await tend_mailing(mailing_id, self._clock(), chunk=self._tend_chunk())
        self._notifier.mailing_changed(mailing_id)
        self._build_soon.set()
        self.wake()

    def _tend_chunk(self) -> int:
        """A tend adds one chunk: a first, small one when the builder adds the rest."""
        size = self._settings.audience_chunk_size
        return min(_FIRST_CHUNK, size) if self._building else size

    @property
    def in_flight(self) -> dict[asyncio.Task[None], int]:
        """The send tasks running now, each with its message id."""
        return self._inflight

    async def _beat_forever(self) -> None:
        while not self._stopping.is_set():
            await self._beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), _HEARTBEAT_INTERVAL)

    async def _beat(self, *, stopping: bool = False) -> None:
        self.metrics.breaker_state = self._breaker.state
        self.metrics.in_flight = len(self._inflight)
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
            except Exception:
                log.exception("dispatch failed; retrying")
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
        rows = await fetch(
            connection(),
            "SELECT id, revision, text, end_at, window_start, window_end,"
            " filter_operator_codes, filter_tags FROM mailing"
            " WHERE status = 'RUNNING' AND deleted_at IS NULL ORDER BY id",
        )
        running: dict[int, _Running] = {}
        for row in rows:
            window = None
            if row["window_start"] is not None and row["window_end"] is not None:
                window = SendWindow.from_minutes(int(row["window_start"]), int(row["window_end"]))
            mailing_id = int(row["id"])
            running[mailing_id] = _Running(
                id=mailing_id,
                revision=int(row["revision"]),
                text=str(row["text"]),
                end_at=parse_instant(row["end_at"]),
                window=window,
                filter=ClientFilter.from_json(row["filter_operator_codes"], row["filter_tags"]),
            )
        self._running = running

    def _start_send(
        self, mailing: _Running, message: Claimed, start_at: float, claimed_at: datetime
    ) -> None:
        if mailing.window is not None and not mailing.window.is_open(message.timezone, claimed_at):
            # Outside the client's window: wait for its next opening, unsent.
            # It stays pending even if that is after end_at: EXPIRED comes at
            # end_at, and until then a later end or another window can save it.
            opening = next_window_opening(mailing.window, message.timezone, claimed_at)
            self._reschedule(message, opening, None, refund=True, for_window=True)
            log.info(
                "message waits for its window",
                message_id=message.id,
                mailing_id=message.mailing_id,
                client_id=message.client_id,
                opens_at=opening.isoformat(),
            )
            return
        task = asyncio.create_task(self._send(mailing, message, start_at))
        self._inflight[task] = message.id
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._slot_freed.set()

    async def _send(self, mailing: _Running, message: Claimed, start_at: float) -> None:
        try:
            delay = start_at - self._monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = self._clock()
            current = self._running.get(message.mailing_id)
            if current is None or current.revision != mailing.revision or self._stopping.is_set():
                # Paused, cancelled, edited or finished since the claim: hand it
                # back unsent; the next claim decides under the mailing as it is.
                self._reschedule(message, now, None, refund=True)
                return
            if now >= mailing.end_at:
                self._finalise(message, MessageStatus.EXPIRED, "mailing ended before it was sent")
                return
            if mailing.window is not None and not mailing.window.is_open(message.timezone, now):
                opening = next_window_opening(mailing.window, message.timezone, now)
                self._reschedule(message, opening, None, refund=True, for_window=True)
                return
            ticket = self._breaker.allow()
            if ticket is None:
                due = now + timedelta(seconds=self._breaker.seconds_until_probe())
                self._reschedule(message, due, None, refund=True)
                return
            self.requests_started += 1
            started = self._monotonic()
            result = await self._provider.send(message.id, message.phone, mailing.text)
        except asyncio.CancelledError:
            # The worker is stopping with this request unanswered: it may have
            # been accepted, and a retry reuses the id, so the provider can tell.
            self._reschedule(message, self._clock(), "worker stopped mid-request", refund=False)
            raise
        self._breaker.record(result, ticket)
        self.metrics.observe_send(result.kind, result.latency)
        self._record_result(mailing, message, result, started)

    def _record_result(
        self, mailing: _Running, message: Claimed, result: SendResult, started: float
    ) -> None:
        ids = {
            "message_id": message.id,
            "mailing_id": message.mailing_id,
            "client_id": message.client_id,
        }
        kind = result.kind
        if kind == "sent":
            self._pacer.accepted()
            self._finalise(message, MessageStatus.SENT, None)
            log.info(
                "message sent",
                **ids,
                attempt=message.attempts,
                status_code=result.status_code,
                latency_ms=round(result.latency * 1000, 1),
            )
            return
        if kind == "rejected":
            self._pacer.accepted()
            self._finalise(message, MessageStatus.FAILED, result.error)
            log.warning(
                "message rejected",
                **ids,
                attempt=message.attempts,
                error=result.error,
                status_code=result.status_code,
            )
            return
        now = self._clock()
        if kind == "rate_limited":
            # "Slower", not "down", and not this message's fault: no backoff,
            # no attempt counted; the pacer slows every send down.
            self._pacer.rate_limited(result.retry_after, started_at=started)
            wait = result.retry_after if result.retry_after is not None else _RATE_LIMITED_RETRY
            self._reschedule(message, now + timedelta(seconds=wait), result.error, refund=True)
            log.warning("message rate limited", **ids, retry_in_s=round(wait, 2))
            return
        if kind == "unauthorized":
            # Our credentials, not the message: it waits while the breaker holds.
            self._reschedule(message, now, result.error, refund=True)
            return
        if now >= mailing.end_at:
            self._finalise(message, MessageStatus.EXPIRED, result.error)
            log.warning("message expired", **ids, attempt=message.attempts, error=result.error)
            return
        self._pacer.accepted()
        delay = retry_delay(message.attempts, result.retry_after, self._settings)
        self._reschedule(message, now + timedelta(seconds=delay), result.error, refund=False)
        log.warning(
            "message will be retried",
            **ids,
            attempt=message.attempts,
            error=result.error,
            status_code=result.status_code,
            retry_in_s=round(delay, 2),
        )

    # -- recording -----------------------------------------------------------

    def _finalise(self, message: Claimed, status: MessageStatus, error: str | None) -> None:
        self._finals.append(Finalise(message.id, status, error, self._clock()))
        self._note_outcome()

    def _reschedule(
        self,
        message: Claimed,
        due: datetime,
        error: str | None,
        *,
        refund: bool,
        for_window: bool = False,
    ) -> None:
        self._reschedules.append(Reschedule(message.id, due, error, refund, for_window))
        self._note_outcome()

    def _note_outcome(self) -> None:
        if len(self._finals) + len(self._reschedules) >= self._batch:
            self._flush_now.set()

    async def _record_forever(self) -> None:
        while not self._recorder_stopping:
            self._flush_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), _FLUSH_INTERVAL)
            try:
                await self.record_now()
            except Exception:
                # The outcomes went back to the buffer: nothing is lost, and
                # the leases keep other workers away until the database is back.
                log.exception("recording outcomes failed; retrying")
                await asyncio.sleep(1.0)

    async def record_now(self) -> None:
        """Write every outcome gathered so far.

        A batch the database refuses is split until the row at fault is
        alone; that row is stored without its reason, the rest lands. If the
        database itself is unreachable, everything goes back to the buffer.
        """
        finals, self._finals = self._finals, []
        reschedules, self._reschedules = self._reschedules, []
        if not finals and not reschedules:
            return
        touched: set[int] = set()
        try:
            await self._write(finals, reschedules, touched)
        except Exception:
            if not await _database_answers():
                self._finals[:0] = finals
                self._reschedules[:0] = reschedules
                raise
            log.warning(
                "a batch of outcomes was refused; recording them apart",
                finals=len(finals),
                reschedules=len(reschedules),
                exc_info=True,
            )
            await self._write_apart([*finals, *reschedules], touched)
        for mailing_id in touched:
            self._notifier.mailing_changed(mailing_id)
        if finals or touched:
            # A mailing may have just had its last message: tend it soon.
            self._sweep_soon.set()

    async def _write(
        self, finals: list[Finalise], reschedules: list[Reschedule], touched: set[int]
    ) -> None:
        async with in_transaction() as conn:
            await finalise_messages(conn, finals, touched)
            returned = await reschedule_messages(conn, reschedules, self.worker)
            await settle_returned(conn, returned, self._clock(), touched)

    async def _write_apart(self, items: list[Finalise | Reschedule], touched: set[int]) -> None:
        if len(items) > 1:
            middle = len(items) // 2
            for half in (items[:middle], items[middle:]):
                try:
                    await self._write_items(half, touched)
                except Exception:
                    await self._write_apart(half, touched)
            return
        (item,) = items
        log.error(
            "an outcome was refused by the database; storing it without its reason",
            message_id=item.id,
            error=repr(item.error)[:200],
            exc_info=True,
        )
        plain: Finalise | Reschedule
        reason = "(the provider's answer could not be stored)"
        if isinstance(item, Finalise):
            plain = Finalise(item.id, item.status, reason, item.at)
        else:
            plain = Reschedule(item.id, item.due, reason, item.refund, item.for_window)
        try:
            await self._write_items([plain], touched)
        except Exception:
            # Its lease will end and it will be tried again, with the same id.
            log.exception("an outcome could not be stored at all", message_id=item.id)

    async def _write_items(self, items: list[Finalise | Reschedule], touched: set[int]) -> None:
        await self._write(
            [i for i in items if isinstance(i, Finalise)],
            [i for i in items if isinstance(i, Reschedule)],
            touched,
        )

    # -- sweeping ------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep_once()
            except Exception:
                log.exception("sweep failed; retrying")
            self._sweep_soon.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sweep_soon.wait(), self._settings.sweep_interval)
            # Coalesce: a burst of finished batches triggers one sweep.
            await asyncio.sleep(0.2)

    async def sweep_once(self) -> None:
        """Release dead workers' messages, then tend every mailing that may need it."""
        async with in_transaction() as conn:
            for row in await reap_ended_leases(conn):
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
            status = await tend_mailing(mailing_id, now, chunk=self._tend_chunk())
            self._notifier.mailing_changed(mailing_id)
            if status is not None and status.value == "RUNNING":
                self._wake.set()
        self._running_loaded_at = -1.0
        self._build_soon.set()

    # -- building audiences ----------------------------------------------------

    async def _build_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                more = await self.build_once()
            except Exception:
                log.exception("audience build failed; retrying")
                more = False
                await asyncio.sleep(1.0)
            if not more:
                self._build_soon.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._build_soon.wait(), self._settings.sweep_interval)

    async def build_once(self) -> bool:
        """Add one chunk to every audience being built; whether any build goes on."""
        smallest = min(_FIRST_CHUNK, self._settings.audience_chunk_size)
        going_on = False
        for mailing_id in await building_mailing_ids():
            if self._stopping.is_set():
                return False
            size = self._chunk_sizes.get(mailing_id, smallest)
            # Sized by the database's time: this busy loop's own waits would
            # keep every chunk at its smallest.
            more, elapsed = await build_audience_chunk(mailing_id, self._clock(), size)
            # New messages are due now; the notifier coalesces its events.
            self._wake.set()
            self._notifier.mailing_changed(mailing_id)
            if more:
                going_on = True
                target = int(size * _CHUNK_SECONDS / max(elapsed, 0.001))
                self._chunk_sizes[mailing_id] = max(
                    smallest, min(target, 2 * size, self._settings.audience_chunk_size)
                )
            else:
                self._chunk_sizes.pop(mailing_id, None)
                self._sweep_soon.set()  # it may finish now
        return going_on


async def _database_answers() -> bool:
    try:
        await fetch(connection(), "SELECT 1 AS one")
    except Exception:
        return False
    return True
