"""Mailing and message statuses and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "FINAL_MESSAGE_STATUSES",
    "MailingStatus",
    "MessageStatus",
    "can_transition",
]


class MailingStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    FINISHED = "FINISHED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in (MailingStatus.FINISHED, MailingStatus.CANCELLED)


class MessageStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


FINAL_MESSAGE_STATUSES = frozenset(MessageStatus) - {MessageStatus.PENDING}

_S = MailingStatus
_MAILING_TRANSITIONS: dict[MailingStatus, frozenset[MailingStatus]] = {
    _S.SCHEDULED: frozenset({_S.RUNNING, _S.PAUSED, _S.FINISHED, _S.CANCELLED}),
    # Back to SCHEDULED when an update moves its start into the future.
    _S.RUNNING: frozenset({_S.SCHEDULED, _S.PAUSED, _S.FINISHED, _S.CANCELLED}),
    # A paused mailing resumes into SCHEDULED or RUNNING depending on the clock.
    _S.PAUSED: frozenset({_S.SCHEDULED, _S.RUNNING, _S.FINISHED, _S.CANCELLED}),
    _S.FINISHED: frozenset(),
    _S.CANCELLED: frozenset(),
}


def can_transition(current: MailingStatus, target: MailingStatus) -> bool:
    """Whether a mailing may move from ``current`` to ``target``.

    Every message transition is PENDING -> a final status, so messages need
    no table: a final message never changes again.
    """
    return target in _MAILING_TRANSITIONS[current]
