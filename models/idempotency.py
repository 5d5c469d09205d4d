"""Idempotency keys: a mutation repeated with the same key answers its first result.

One row per (principal, key), claimed before the mutation runs (the unique
pair decides which of two requests at once runs it) and completed with the
response after; ``expires_at`` bounds how long a key is remembered
(``IDEMPOTENCY_KEY_TTL``). Rows live in the database, so every API process
sees them, across restarts.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

__all__ = ["IdempotencyKey"]


class IdempotencyKey(Model):
    id = fields.BigIntField(primary_key=True)
    principal = fields.CharField(max_length=255)
    key = fields.CharField(max_length=255)
    # A hash of the operation: the document, its variables and its name.
    fingerprint = fields.CharField(max_length=64)
    # The first request's response (status and JSON body); null while it runs.
    status_code = fields.IntField(null=True)
    response = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()

    class Meta:
        table = "idempotency_key"
        unique_together = (("principal", "key"),)
        indexes = (("expires_at",),)
