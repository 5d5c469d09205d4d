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
    after backoff, the next window opening, or, while a worker holds it, the
    end of that worker's lease (a claim pushes it forward, so a message whose
    worker died becomes due again by itself).
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
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)

    mailing_id: int
    client_id: int | None

    class Meta:
        table = "message"
        unique_together = (("mailing", "client"),)
        # Listing a mailing's messages by status, in id order. The claim index
        # (pending messages by due time) is partial and lives in the migration.
        indexes = (("mailing", "status", "id"), ("client",))
