"""Messages: one per (mailing, client), the unit the engine sends."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.client import Client
from models.mailing import Mailing
from models.status import MessageStatus

__all__ = ["Message"]


class Message(Model):
    """One text to one phone; its ``id`` is the ``msgId`` the provider sees.

    ``next_attempt_at`` is when the engine may next try it: the start, a retry
    after backoff, or the next opening of its send window
    (``waits_for_window``). A worker that claims it holds it until
    ``leased_until`` (the database's clock): a held message is *in flight*,
    every other pending message is *waiting*. Every rule that acts on waiting
    messages (cancel, re-target, window changes, expiry) leaves held ones to
    their worker, which records what the provider said; a message whose
    worker died becomes waiting again when its lease ends.
    ``phone`` and ``timezone`` are copied from the client when the audience is
    built and follow client edits while the message is pending, so the
    history stays readable after the client is deleted.
    """

    id = fields.BigIntField(primary_key=True)
    mailing: fields.ForeignKeyRelation[Mailing] = fields.ForeignKeyField(
        "models.Mailing", related_name="messages", on_delete=fields.CASCADE
    )
    client: fields.ForeignKeyNullableRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="messages", null=True, on_delete=fields.SET_NULL
    )
    phone = fields.CharField(max_length=11)
    timezone = fields.CharField(max_length=64)
    status = fields.CharEnumField(MessageStatus, max_length=16, default=MessageStatus.PENDING)
    attempts = fields.IntField(default=0)
    last_error = fields.TextField(null=True)
    next_attempt_at = fields.DatetimeField()
    waits_for_window = fields.BooleanField(default=False)
    leased_until = fields.DatetimeField(null=True)
    # The claiming worker's random id: a worker that outlived its lease
    # cannot hand back a message that another worker holds now.
    leased_by = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)
    # When it reached its final status (the provider's answer for SENT and
    # FAILED; the cancel or expiry otherwise); cleared if it is revived.
    finished_at = fields.DatetimeField(null=True)

    mailing_id: int
    client_id: int | None

    class Meta:
        table = "message"
        unique_together = (("mailing", "client"),)
        # Listing a mailing's messages by status, in id order; a mailing's
        # timeline (outcomes by time, read from the index alone). The claim
        # index (pending messages by due time) is partial and lives in the migration.
        indexes = (("mailing", "status", "id"), ("client",), ("mailing", "finished_at", "status"))
