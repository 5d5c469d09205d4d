"""The sending engine: claim due messages, send them concurrently, record the outcomes.

One engine runs per worker process, on one event loop, with one shared HTTP
client: concurrency comes from asyncio (``send_concurrency`` requests in
flight), not from threads. Three loops share the engine:

- the dispatcher claims due messages of the running mailings in batches,
  round robin, as request slots free up, and starts one send per message;
- the recorder writes outcomes in bulk, one transaction per flush;
- the sweeper tends every mailing that may need it (start, re-target,
  expire, finish, settle), which is what makes lost wake-ups harmless.

The checks that the SPEC's guarantees rest on are made right before each
request starts: the mailing is still running, ``end_at`` has not come, the
client's send window is open, the circuit breaker lets it through.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from tortoise.transactions import in_transaction

from models import MessageStatus, SendWindow, next_window_opening
from models.db import connection, fetch
from settings import Settings
from tasks.breaker import CircuitBreaker
from tasks.claims import (
    Claimed,
    Finalise,
    Reschedule,
    claim_due_messages,
    finalise_messages,
    reschedule_messages,
)
from tasks.events import ProgressNotifier
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


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Running:
    """What the dispatcher needs to know of a running mailing."""

    id: int
    text: str
    end_at: datetime
    window: SendWindow | None


class Engine:
    """Sends the messages of running mailings until asked to stop."""

    def __init__(
        self,
        settings: Settings,
        provider: ProviderClient,
        breaker: CircuitBreaker,
        notifier: ProgressNotifier | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._notifier = notifier or ProgressNotifier(None)
        self._provider = provider
        self._breaker = breaker
        self._clock = clock
        self._concurrency = settings.send_concurrency
        self._batch = min(settings.send_batch_size, settings.send_concurrency)
        # A claim outlives any request: a message comes back by itself only
        # when its worker is surely gone.
        self._lease = timedelta(seconds=max(settings.send_lease, 2 * settings.send_timeout + 1))
        self._running: dict[int, _Running] = {}
        self._running_loaded_at = -1.0
        self._rotation = itertools.count()
        self._inflight: set[asyncio.Task[None]] = set()
        self._finals: list[Finalise] = []
        self._reschedules: list[Reschedule] = []
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._stopping = asyncio.Event()
        self._sweep_soon = asyncio.Event()
        self._recorder_stopping = False
        self.metrics = WorkerMetrics(clock())

    # -- lifecycle -----------------------------------------------------------

    async def run(self) -> None:
        """Dispatch, record and sweep until :meth:`stop` is called."""
        log.info("engine started", concurrency=self._concurrency, batch=self._batch)
        recorder = asyncio.create_task(self._record_forever(), name="recorder")
        sweeper = asyncio.create_task(self._sweep_forever(), name="sweeper")
        heart = asyncio.create_task(self._beat_forever(), name="heartbeat")
        try:
            await self._dispatch_forever()
        finally:
            # The helpers stop by themselves between two database calls:
            # cancelling one mid-statement could leave its connection unusable
            # for the last flush.
            self.stop()
            await self._drain()
            self._recorder_stopping = True
            self._flush_now.set()
            await asyncio.gather(sweeper, heart, recorder, return_exceptions=True)
            try:
                await self._flush()
            except Exception:
                log.exception("last outcomes not recorded; their leases will hand them back")
            await self._beat(stopping=True)
            log.info("engine stopped", worker_id=self.metrics.worker_id)

    def stop(self) -> None:
        """Stop claiming; in-flight requests finish (or are handed back) and are recorded."""
        self._stopping.set()
        self._wake.set()
        self._sweep_soon.set()

    def wake(self) -> None:
        """Something changed (a mailing started or stopped): look again now."""
        self._running_loaded_at = -1.0
        self._wake.set()

    async def tend(self, mailing_id: int) -> None:
        """Tend one mailing now (a Huey task asked for it), then look again."""
        await tend_mailing(mailing_id, self._clock())
        self._notifier.mailing_changed(mailing_id)
        self.wake()

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

    async def _drain(self) -> None:
        if not self._inflight:
            return
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
                claimed = await self._dispatch_once()
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

    async def _dispatch_once(self) -> int:
        loop = asyncio.get_running_loop()
        if loop.time() - self._running_loaded_at > _ACTIVE_REFRESH:
            await self._load_running()
            self._running_loaded_at = loop.time()
        if not self._running:
            return 0
        state = self._breaker.state
        if state == "open":
            return 0
        free = self._concurrency - len(self._inflight)
        if state == "half_open":
            # One probe at a time while the provider may still be down.
            free = 1 if not self._inflight else 0
        elif free < max(1, self._batch // 4):
            # Wait for a useful number of free slots, so claims stay batches.
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), 0.5)
            return -1
        if free <= 0:
            await self._pause(0.05)
            return -1
        limit = min(free, self._batch)
        mailings = list(self._running.values())
        start = next(self._rotation) % len(mailings)
        claimed = 0
        now = self._clock()
        for mailing in mailings[start:] + mailings[:start]:
            if claimed >= limit:
                break
            if now >= mailing.end_at:
                continue
            async with in_transaction() as conn:
                batch = await claim_due_messages(
                    conn, mailing.id, now, now + self._lease, limit - claimed
                )
            claimed += len(batch)
            self._start_sends(mailing, batch, now)
        return claimed

    async def _load_running(self) -> None:
        rows = await fetch(
            connection(),
            "SELECT id, text, end_at, window_start, window_end FROM mailing"
            " WHERE status = 'RUNNING' AND deleted_at IS NULL ORDER BY id",
        )
        running: dict[int, _Running] = {}
        for row in rows:
            window = None
            if row["window_start"] is not None and row["window_end"] is not None:
                window = SendWindow.from_minutes(int(row["window_start"]), int(row["window_end"]))
            end_at = row["end_at"]
            if isinstance(end_at, str):  # SQLite hands raw SQL results back as text
                end_at = datetime.fromisoformat(end_at)
            running[int(row["id"])] = _Running(int(row["id"]), str(row["text"]), end_at, window)
        self._running = running

    def _start_sends(self, mailing: _Running, batch: list[Claimed], now: datetime) -> None:
        for message in batch:
            if message.client_id is None:
                self._finalise(message, MessageStatus.CANCELLED, "client deleted")
                continue
            if mailing.window is not None and not mailing.window.is_open(message.timezone, now):
                # Outside the client's window: wait for its next opening, unsent.
                opening = next_window_opening(mailing.window, message.timezone, now)
                if opening >= mailing.end_at:
                    self._finalise(message, MessageStatus.EXPIRED, "no send window before endAt")
                else:
                    self._reschedule(message, opening, None, refund=True)
                    log.info(
                        "message waits for its window",
                        message_id=message.id,
                        mailing_id=message.mailing_id,
                        client_id=message.client_id,
                        opens_at=opening.isoformat(),
                    )
                continue
            task = asyncio.create_task(self._send(mailing, message))
            self._inflight.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_freed.set()

    async def _send(self, mailing: _Running, message: Claimed) -> None:
        ids = {
            "message_id": message.id,
            "mailing_id": message.mailing_id,
            "client_id": message.client_id,
        }
        try:
            now = self._clock()
            if message.mailing_id not in self._running or self._stopping.is_set():
                # Paused, cancelled or finished since the claim: hand it back unsent.
                self._reschedule(message, now, None, refund=True)
                return
            if now >= mailing.end_at:
                self._finalise(message, MessageStatus.EXPIRED, "mailing ended before it was sent")
                return
            if not self._breaker.allow():
                due = now + timedelta(seconds=self._breaker.seconds_until_probe())
                self._reschedule(message, due, None, refund=True)
                return
            result = await self._provider.send(message.id, message.phone, mailing.text)
        except asyncio.CancelledError:
            # The worker is stopping with this request unanswered: it may have
            # been accepted, and a retry reuses the id, so the provider can tell.
            self._reschedule(message, self._clock(), "worker stopped mid-request", refund=False)
            raise
        self._breaker.record(result)
        self.metrics.observe_send(result.kind, result.latency)
        self._record_result(mailing, message, result, ids)

    def _record_result(
        self, mailing: _Running, message: Claimed, result: SendResult, ids: dict[str, int | None]
    ) -> None:
        latency_ms = round(result.latency * 1000, 1)
        if result.kind == "sent":
            self._finalise(message, MessageStatus.SENT, None)
            log.info(
                "message sent",
                **ids,
                attempt=message.attempts,
                status_code=result.status_code,
                latency_ms=latency_ms,
            )
        elif result.kind == "rejected":
            self._finalise(message, MessageStatus.FAILED, result.error)
            log.warning(
                "message rejected",
                **ids,
                attempt=message.attempts,
                error=result.error,
                status_code=result.status_code,
            )
        else:
            now = self._clock()
            delay = retry_delay(message.attempts, result.retry_after, self._settings)
            due = now + timedelta(seconds=delay)
            if due >= mailing.end_at:
                self._finalise(message, MessageStatus.EXPIRED, result.error)
                log.warning("message expired", **ids, attempt=message.attempts, error=result.error)
            else:
                self._reschedule(message, due, result.error, refund=False)
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
        self, message: Claimed, due: datetime, error: str | None, *, refund: bool
    ) -> None:
        self._reschedules.append(Reschedule(message.id, due, error, refund))
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
                await self._flush()
            except Exception:
                # The outcomes went back to the buffer: nothing is lost, and
                # the leases keep other workers away until the database is back.
                log.exception("recording outcomes failed; retrying")
                await asyncio.sleep(1.0)

    async def _flush(self) -> None:
        finals, self._finals = self._finals, []
        reschedules, self._reschedules = self._reschedules, []
        if not finals and not reschedules:
            return
        touched: set[int] = set()
        try:
            async with in_transaction() as conn:
                await finalise_messages(conn, finals, touched)
                await reschedule_messages(conn, reschedules)
        except BaseException:
            self._finals[:0] = finals
            self._reschedules[:0] = reschedules
            raise
        for mailing_id in touched:
            self._notifier.mailing_changed(mailing_id)
        if finals:
            # A mailing may have just had its last message: tend it soon.
            self._sweep_soon.set()

    # -- sweeping ------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                now = self._clock()
                for mailing_id in await due_mailing_ids(now):
                    if self._stopping.is_set():
                        break
                    status = await tend_mailing(mailing_id, now)
                    self._notifier.mailing_changed(mailing_id)
                    if status is not None and status.value == "RUNNING":
                        self._wake.set()
                self._running_loaded_at = -1.0
            except Exception:
                log.exception("sweep failed; retrying")
            self._sweep_soon.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sweep_soon.wait(), self._settings.sweep_interval)
            # Coalesce: a burst of finished batches triggers one sweep.
            await asyncio.sleep(0.2)
