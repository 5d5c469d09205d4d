"""Plain factory functions with keyword arguments.

Each helper that makes clients numbers their phones in a range of its own,
so that two of them in one test never make the same phone (whatever earlier
tests took from a counter):

- ``make_client()`` without a phone (:func:`next_phone`): from
  ``MADE_PHONES`` (79002000000) up, one counter for the session;
- ``tests.support.engine.add_clients``: ``BULK_PHONES`` (79005000000)
  plus ``first`` plus its index;
- phones a test writes out itself: below 79002000000, or another operator
  code than 900 (``7903...``, ``7916...``).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from models import Client, Mailing, MailingStats, MailingStatus

MADE_PHONES = 79_002_000_000
BULK_PHONES = 79_005_000_000

_phones = itertools.count(MADE_PHONES)


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
