"""The engine's recorder: what each answer means, gathered in memory, written in bulk.

One transaction per flush (every ``_FLUSH_INTERVAL``, or as soon as a batch
is full). The recorder never lets one row block the others: a batch the
database refuses is split until the row at fault is alone, and that row is
stored without its reason. If the database itself is unreachable, every
outcome goes back to the buffer, and the leases keep other workers away;
while it is down, :attr:`Recorder.failing` tells the engine to claim nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from tortoise.transactions import in_transaction

from logs import HotLogger
from models import MessageStatus
from models.db import ping, retrying
from models.queries.messages import (
    Claimed,
    Finalise,
    HandBack,
    finalise_handed_back,
    finalise_messages,
    hand_back_messages,
)
from settings import Settings
from tasks.liveness import LoopProgress
from tasks.pacing import SendPacer
from tasks.retry import MAX_RETRY_AFTER, retry_delay
from tasks.send_results import SendResult

__all__ = ["Recorder", "database_answers"]

log = structlog.get_logger(__name__)
# One line per message sent, thousands a second: written without structlog's chain.
_hot_log = HotLogger(__name__)

_FLUSH_INTERVAL = 0.05  # seconds an outcome may wait before it is written
_RATE_LIMITED_RETRY = 1.0  # seconds a message waits after a 429 without Retry-After


async def database_answers() -> bool:
    try:
        await ping()
    except Exception:
        return False
    return True


class Recorder:
    """Gathers the engine's outcomes and writes them; ``on_recorded(touched, any_final)`` after."""

    def __init__(
        self,
        *,
        batch: int,
        worker: int,
        clock: Callable[[], datetime],
        on_recorded: Callable[[set[int], bool], None],
        pacer: SendPacer,
        settings: Settings,
        progress: LoopProgress | None = None,
        on_written: Callable[[], None] = lambda: None,
    ) -> None:
        self._progress = progress or LoopProgress()
        self._on_written = on_written
        # The last write found the database unreachable: outcomes are held.
        self.failing = False
        self._pacer = pacer
        self._settings = settings
        self._batch = batch
        self._worker = worker
        self._clock = clock
        self._on_recorded = on_recorded
        self._finals: list[Finalise] = []
        self._hand_backs: list[HandBack] = []
        self._flush_now = asyncio.Event()
        self._stopping = False

    @property
    def holding(self) -> int:
        """How many outcomes wait to be written."""
        return len(self._finals) + len(self._hand_backs)

    def stop(self) -> None:
        """End :meth:`run` after its current flush."""
        self._stopping = True
        self._flush_now.set()

    def finalise(self, message: Claimed, status: MessageStatus, error: str | None) -> None:
        self.add(Finalise(message.id, status, error, self._clock()))

    def hand_back(
        self,
        message: Claimed,
        due: datetime,
        error: str | None,
        *,
        refund: bool,
        for_window: bool = False,
    ) -> None:
        self.add(HandBack(message.id, due, error, refund, for_window))

    def record_answer(
        self, message: Claimed, end_at: datetime, result: SendResult, started: float
    ) -> None:
        """What the provider's answer means for the message, the pacer and the logs."""
        kind = result.kind
        if kind == "sent":
            self._pacer.accepted()
            self.finalise(message, MessageStatus.SENT, None)
            _hot_log.info(
                "message sent",
                message_id=message.id,
                mailing_id=message.mailing_id,
                client_id=message.client_id,
                attempt=message.attempts,
                status_code=result.status_code,
                latency_ms=round(result.latency * 1000, 1),
            )
            return
        ids = {
            "message_id": message.id,
            "mailing_id": message.mailing_id,
            "client_id": message.client_id,
        }
        if kind == "rejected":
            self._pacer.accepted()
            self.finalise(message, MessageStatus.FAILED, result.error)
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
            wait = _RATE_LIMITED_RETRY if result.retry_after is None else result.retry_after
            wait = min(wait, MAX_RETRY_AFTER)
            self.hand_back(message, now + timedelta(seconds=wait), result.error, refund=True)
            log.warning("message rate limited", **ids, retry_in_s=round(wait, 2))
            return
        if kind == "unauthorized":
            # Our credentials, not the message: it waits while the breaker holds.
            self.hand_back(message, now, result.error, refund=True)
            return
        if now >= end_at:
            self.finalise(message, MessageStatus.EXPIRED, result.error)
            log.warning("message expired", **ids, attempt=message.attempts, error=result.error)
            return
        self._pacer.accepted()
        delay = retry_delay(message.attempts, result.retry_after, self._settings)
        self.hand_back(message, now + timedelta(seconds=delay), result.error, refund=False)
        log.warning(
            "message will be retried",
            **ids,
            attempt=message.attempts,
            error=result.error,
            status_code=result.status_code,
            retry_in_s=round(delay, 2),
        )

    def add(self, item: Finalise | HandBack) -> None:
        """Gather one outcome; a full batch is written at once."""
        if isinstance(item, Finalise):
            self._finals.append(item)
        else:
            self._hand_backs.append(item)
        self._note_outcome()

    def _note_outcome(self) -> None:
        if len(self._finals) + len(self._hand_backs) >= self._batch:
            self._flush_now.set()

    async def run(self) -> None:
        """Write outcomes every flush interval, or as soon as a batch is full, until stopped."""
        while not self._stopping:
            self._flush_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), _FLUSH_INTERVAL)
            try:
                written = await self.record_now()
                self._progress.done("recorder", f"wrote {written}" if written else "idle")
            except Exception as exc:
                # The outcomes went back to the buffer: nothing is lost, and
                # the leases keep other workers away until the database is back.
                log.exception("recording outcomes failed; retrying", holding=self.holding)
                self._progress.failed("recorder", exc)
                await asyncio.sleep(1.0)

    async def record_now(self) -> int:
        """Write every outcome gathered so far; how many.

        A batch the database refuses is split until the row at fault is
        alone; that row is stored without its reason, the rest lands. If the
        database itself is unreachable, everything goes back to the buffer.
        """
        finals, self._finals = self._finals, []
        hand_backs, self._hand_backs = self._hand_backs, []
        if not finals and not hand_backs:
            return 0
        touched: set[int] = set()
        try:
            await self._write(finals, hand_backs, touched)
        except BaseException as exc:
            if not isinstance(exc, Exception) or not await database_answers():
                # Unreachable (or this task cancelled): hold them all.
                self._finals[:0] = finals
                self._hand_backs[:0] = hand_backs
                self.failing = isinstance(exc, Exception)
                raise
            log.warning(
                "a batch of outcomes was refused; recording them apart",
                finals=len(finals),
                hand_backs=len(hand_backs),
                exc_info=True,
            )
            await self._write_apart([*finals, *hand_backs], touched)
        self.failing = False
        self._on_written()
        self._on_recorded(touched, bool(finals))
        return len(finals) + len(hand_backs)

    async def _write(
        self, finals: list[Finalise], hand_backs: list[HandBack], touched: set[int]
    ) -> None:
        async def write() -> None:
            async with in_transaction() as conn:
                await finalise_messages(conn, finals, touched)
                handed_back = await hand_back_messages(conn, hand_backs, self._worker)
                await finalise_handed_back(conn, handed_back, self._clock(), touched)

        # A deadlock with a cancel is no fault of any row: run it again
        # before splitting the batch to find one.
        await retrying(write, what="record outcomes")

    async def _write_apart(self, items: list[Finalise | HandBack], touched: set[int]) -> None:
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
        plain: Finalise | HandBack
        reason = "(the provider's answer could not be stored)"
        if isinstance(item, Finalise):
            plain = Finalise(item.id, item.status, reason, item.at)
        else:
            plain = HandBack(item.id, item.due, reason, item.refund, item.for_window)
        try:
            await self._write_items([plain], touched)
        except Exception:
            # Its lease will end and it will be tried again, with the same id.
            log.exception("an outcome could not be stored at all", message_id=item.id)

    async def _write_items(self, items: list[Finalise | HandBack], touched: set[int]) -> None:
        await self._write(
            [i for i in items if isinstance(i, Finalise)],
            [i for i in items if isinstance(i, HandBack)],
            touched,
        )
