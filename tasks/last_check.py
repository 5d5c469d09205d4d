"""The last check before a request starts: what the claim checked, again, and the lease.

The claim checked in SQL that the mailing runs at the revision the engine
read, that ``end_at`` has not come and that the client matches. A request
starts a little later (at the start time the pacer granted, once a slot is
free), so right before it starts the worker checks again: the mailing still
running as read (not paused, cancelled, edited or finished since), ``end_at``
not come, the client's send window open, no Retry-After holding requests,
the message's lease long enough, the breaker letting it through. A message
that may not go out is handed back unsent, its attempt refunded, or expired
at ``end_at``.

The lease is counted on the worker's own monotonic clock from the claim,
rather than asked of the database before every request. A request starts
only while its lease has at least ``SEND_TIMEOUT`` to run: otherwise the
lease may end before the answer (the worker was frozen, by SIGSTOP or a VM
pause, or the request waited long for its start), and another worker may
hold the message by then. And a request whose time limit fired far too
late timed out across a freeze, which says nothing of the provider
(docs/sending.md, "Frozen and resumed").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from models import MessageStatus, next_window_opening
from models.queries.messages import Claimed
from settings import Settings
from tasks.breaker import CircuitBreaker
from tasks.recorder import Recorder
from tasks.running import RunningMailing

__all__ = ["LastCheck"]

log = structlog.get_logger(__name__)


class LastCheck:
    """Whether a claimed message may be sent now; how long this worker's leases last."""

    def __init__(
        self,
        settings: Settings,
        *,
        recorder: Recorder,
        breaker: CircuitBreaker,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # A claim outlives any request: a lease is reaped only when its
        # worker is surely gone.
        self.lease_seconds = max(settings.send_lease, 2 * settings.send_timeout + 1)
        self._send_timeout = settings.send_timeout
        # A request that took this long had its time limit fire late: frozen.
        self._frozen_after = settings.send_timeout + 2.0
        self._recorder = recorder
        self._breaker = breaker
        self._clock = clock
        self._monotonic = monotonic

    def lease_ends(self) -> float:
        """When a lease taken now ends, on this worker's monotonic clock."""
        return self._monotonic() + self.lease_seconds

    def before_request(
        self,
        message: Claimed,
        claimed_under: RunningMailing,
        running: RunningMailing | None,
        lease_ends: float,
        *,
        stopping: bool,
        held_for: float = 0.0,
    ) -> int | None:
        """The breaker's ticket if the request may start now.

        Otherwise ``None``, and the message is handed back or expired.
        ``claimed_under`` is the mailing as the claim read it, ``running``
        as the engine knows it now (``None``: not running any more).
        ``held_for`` is how long the pacer still holds every request (a
        Retry-After that came after this request's slot was granted).
        """
        mailing = claimed_under
        now = self._clock()
        if running is None or running.revision != mailing.revision or stopping:
            # Paused, cancelled, edited or finished since the claim: hand it
            # back unsent; the next claim decides under the mailing as it is.
            self._recorder.hand_back(message, now, None, refund=True)
            return None
        if now >= mailing.end_at:
            self._recorder.finalise(
                message, MessageStatus.EXPIRED, "mailing ended before it was sent"
            )
            return None
        if mailing.window is not None and not mailing.window.is_open(message.timezone, now):
            opening = next_window_opening(mailing.window, message.timezone, now)
            self._recorder.hand_back(message, opening, None, refund=True, for_window=True)
            return None
        if held_for > 0:
            # A Retry-After came after this slot was granted: it holds this
            # request too. Sent now, it would only be refused again.
            self._recorder.hand_back(message, now + timedelta(seconds=held_for), None, refund=True)
            return None
        if lease_ends - self._monotonic() < self._send_timeout:
            # Another worker may have it by the time the answer comes.
            self._recorder.hand_back(message, now, None, refund=True)
            log.warning(
                "lease too short to send; handed back unsent",
                message_id=message.id,
                mailing_id=message.mailing_id,
                client_id=message.client_id,
            )
            return None
        ticket = self._breaker.allow()
        if ticket is None:
            due = now + timedelta(seconds=self._breaker.seconds_until_probe())
            self._recorder.hand_back(message, due, None, refund=True)
        return ticket

    @staticmethod
    def request_started() -> float:
        """The instant a request starts, for :meth:`timed_out_across_freeze`."""
        return time.monotonic()  # a freeze is real time, whatever clock a test moves

    def timed_out_across_freeze(self, started: float) -> bool:
        """Whether a request that started at ``started`` ran across a freeze."""
        return time.monotonic() - started > self._frozen_after
