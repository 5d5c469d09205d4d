"""Mailings and their message counters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from models.reporting import delivery_rate
from models.send_window import SendWindow
from models.status import MailingStatus

if TYPE_CHECKING:
    from models.message import Message

__all__ = ["COUNTERS", "Counts", "Mailing", "MailingStats"]

# The six message counters, as columns of ``mailing_stats`` and fields of ``Counts``.
COUNTERS = ("total", "pending", "sent", "failed", "expired", "cancelled")


class Mailing(Model):
    """A text sent to every client matching a filter, between ``start_at`` and ``end_at``.

    ``filter_version`` grows whenever the filter changes; the engine records
    in ``audience_version`` the version it built the audience from (``None``
    until the mailing starts), so a lost re-target task is found by the sweep.
    While the audience of ``audience_version`` is being built, in chunks of
    clients in id order, ``audience_cursor`` is the last client id covered
    and ``audience_until`` the last client id that existed when the build
    began; the cursor is null once the build is complete. These two columns
    are the engine's bookkeeping: they change without ``revision``, which no
    claim needs to see for them.
    ``revision`` grows with every change of the row; the engine claims only
    against the revision it has read, so it never sends under a stale text,
    filter, window, end or status.
    A deleted mailing keeps its row (``deleted_at``) and its message history.
    """

    id = fields.BigIntField(primary_key=True)
    text = fields.TextField()
    start_at = fields.DatetimeField()
    end_at = fields.DatetimeField()
    filter_operator_codes: fields.Field[list[str]] = fields.JSONField(default=list)
    filter_tags: fields.Field[list[str]] = fields.JSONField(default=list)
    # Minutes after local midnight; both set or both null.
    window_start = fields.SmallIntField(null=True)
    window_end = fields.SmallIntField(null=True)
    status = fields.CharEnumField(MailingStatus, max_length=16, default=MailingStatus.SCHEDULED)
    filter_version = fields.IntField(default=1)
    audience_version = fields.IntField(null=True)
    audience_cursor = fields.BigIntField(null=True)
    audience_until = fields.BigIntField(null=True)
    revision = fields.IntField(default=0)
    deleted_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    messages: fields.ReverseRelation[Message]

    class Meta:
        table = "mailing"
        # The sweep looks for due mailings by status and start.
        indexes = (("status", "start_at"),)

    @property
    def send_window(self) -> SendWindow | None:
        if self.window_start is None or self.window_end is None:
            return None
        return SendWindow.from_minutes(self.window_start, self.window_end)


@dataclass(frozen=True, slots=True)
class Counts:
    """Message counts by status; ``total`` is the sum of the others.

    The one shape of the six counters in Python: ``mailing_stats`` rows (the
    table), the report's figures and the API's ``MessageStats`` are read into
    or built from it.
    """

    total: int = 0
    pending: int = 0
    sent: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0

    @classmethod
    def from_row(cls, row: Any) -> Counts:
        """From a row (dict) or a ``MailingStats``: anything with the six counters."""
        get = row.__getitem__ if isinstance(row, dict) else lambda name: getattr(row, name)
        # int() covers SQLite's types and PostgreSQL's NUMERIC sums (Decimals).
        return cls(**{name: int(get(name)) for name in COUNTERS})

    def __add__(self, other: Counts) -> Counts:
        return Counts(**{name: getattr(self, name) + getattr(other, name) for name in COUNTERS})

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def delivery_rate(self) -> float | None:
        return delivery_rate(self.sent, self.failed, self.expired)


class MailingStats(Model):
    """Message counts of one mailing, kept up to date with every status change.

    Counting a million messages with GROUP BY takes far longer than the 20 ms
    the API allows for ``stats``; whoever changes message statuses updates
    these counters in the same transaction (see ``models.queries.counters``).
    """

    mailing: fields.OneToOneRelation[Mailing] = fields.OneToOneField(
        "models.Mailing",
        related_name="stats",
        primary_key=True,
        on_delete=fields.CASCADE,
    )
    total = fields.BigIntField(default=0)
    pending = fields.BigIntField(default=0)
    sent = fields.BigIntField(default=0)
    failed = fields.BigIntField(default=0)
    expired = fields.BigIntField(default=0)
    cancelled = fields.BigIntField(default=0)

    class Meta:
        table = "mailing_stats"

    @property
    def counts(self) -> Counts:
        return Counts.from_row(self)
