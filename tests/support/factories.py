"""Plain factory functions with keyword arguments."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from models import Client, Mailing, MailingStats, MailingStatus

_phones = itertools.count(79_000_000_000)


def next_phone() -> str:
    return str(next(_phones))


async def make_client(**fields: Any) -> Client:
    phone = fields.pop("phone", None) or next_phone()
    fields.setdefault("operator_code", phone[1:4])
    return await Client.create(phone=phone, **fields)


async def make_mailing(**fields: Any) -> Mailing:
    now = datetime.now(UTC)
    fields.setdefault("text", "Hello")
    fields.setdefault("start_at", now)
    fields.setdefault("end_at", now + timedelta(hours=1))
    fields.setdefault("status", MailingStatus.SCHEDULED)
    mailing = await Mailing.create(**fields)
    await MailingStats.create(mailing=mailing)
    return mailing
