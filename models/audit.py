"""The audit trail: who changed what, when, with the fields before and after.

A row is written by the service that makes the change, in the same
transaction, so a change and its record commit or roll back together. Rows
are only ever inserted: nothing in the API updates or deletes them.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

__all__ = ["AuditEntry"]


class AuditEntry(Model):
    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField()
    # "api_token", "oidc:<subject>", "open" (no credentials configured).
    actor = fields.CharField(max_length=255)
    actor_name = fields.CharField(max_length=255, default="")
    operation = fields.CharField(max_length=64)
    object_type = fields.CharField(max_length=32)
    object_id = fields.CharField(max_length=64)
    # {"field": [before, after], ...}, as JSON values.
    changes: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "audit_entry"
        indexes = (("object_type", "object_id"), ("actor",))
