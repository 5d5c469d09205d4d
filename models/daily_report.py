"""The daily report's ledger: one row per reported day, claimed before anything is sent.

How a day is claimed, retried and given up on is in ``models/queries/reports.py``.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

__all__ = ["DailyReport", "ReportStatus"]


class ReportStatus(StrEnum):
    SENDING = "SENDING"
    SENT = "SENT"
    FAILED = "FAILED"
    ABANDONED = "ABANDONED"


class DailyReport(Model):
    """What became of one day's report email.

    ``next_attempt_at`` is the end of the current claim while ``SENDING``, and
    the earliest retry while ``FAILED``.
    """

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField(unique=True)
    status = fields.CharEnumField(ReportStatus, max_length=16)
    attempts = fields.IntField(default=0)
    last_error = fields.TextField(null=True)
    next_attempt_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "daily_report"
