"""Mailings and their message counters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from models.send_window import SendWindow
from models.status import MailingStatus

if TYPE_CHECKING:
    from models.message import Message

__all__ = ["Mailing", "MailingStats"]


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


class MailingStats(Model):
    """Message counts of one mailing, kept up to date with every status change.

    Counting a million messages with GROUP BY takes far longer than the 20 ms
    the API allows for ``stats``; whoever changes message statuses updates
    these counters in the same transaction (see ``models.counters``).
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
