"""The stop list: phones whose owners said stop.

A phone is the key, not a client row, so a phone opted out stays opted out
when its client is deleted and created again (or imported anew).
``client.opted_out_at`` mirrors it for the audience statements, which then
need no second table; ``models.services.opt_outs`` keeps the two in step.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

__all__ = ["OptOut"]


class OptOut(Model):
    id = fields.BigIntField(primary_key=True)
    phone = fields.CharField(max_length=11, unique=True)
    opted_out_at = fields.DatetimeField()

    class Meta:
        table = "opt_out"
