"""The client directory."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

__all__ = ["Client"]


class Client(Model):
    """Someone a mailing can reach; ``phone`` is unique across the directory."""

    id = fields.BigIntField(primary_key=True)
    phone = fields.CharField(max_length=11, unique=True)
    operator_code = fields.CharField(max_length=3)
    tag = fields.CharField(max_length=64, default="")
    timezone = fields.CharField(max_length=64, default="UTC")
    # Set while the phone is on the stop list (``opt_out``), which it mirrors.
    opted_out_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "client"
        # Audience queries filter on operator code and tag, together or alone;
        # a mailing's opted-out figure reads the few opted-out clients.
        indexes = (("operator_code", "tag"), ("tag",), ("opted_out_at",))
