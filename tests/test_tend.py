"""Tending mailings: start, expire, finish, cancel, re-target, from the rows alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from models import Mailing, MailingStats, MailingStatus, Message, MessageStatus
from models.queries.mailings import due_mailing_ids
from tasks.tend import tend_mailing
from tests.support.factories import make_client, make_mailing


def _now() -> datetime:
    return datetime.now(UTC)


async def test_due_mailing_starts_with_its_audience(db: str) -> None:
    await make_client(tag="vip")
    await make_client(tag="other")
    now = _now()
    due = await make_mailing(start_at=now - timedelta(seconds=1), filter_tags=["vip"])
    future = await make_mailing(start_at=now + timedelta(hours=1), end_at=now + timedelta(hours=2))
    assert await due_mailing_ids(now) == [due.id]
    assert await tend_mailing(due.id, now) is MailingStatus.RUNNING
    assert await tend_mailing(due.id, now) is MailingStatus.RUNNING  # idempotent
    assert await Message.filter(mailing_id=due.id).count() == 1
    assert (await MailingStats.get(mailing_id=due.id)).pending == 1
    assert await tend_mailing(future.id, now) is MailingStatus.SCHEDULED
    assert await Message.filter(mailing_id=future.id).count() == 0


async def test_mailing_past_its_end_expires_what_is_unsent(db: str) -> None:
    await make_client()
    held = await make_client()
    retrying = await make_client()
    now = _now()
    mailing = await make_mailing(
        start_at=now - timedelta(minutes=2), end_at=now + timedelta(minutes=1)
    )
    await tend_mailing(mailing.id, now)
    await Message.filter(client_id=held.id).update(leased_until=_now() + timedelta(seconds=0.5))
    # A retry due after the end waits for it: nothing expires before end_at.
    await Message.filter(client_id=retrying.id).update(next_attempt_at=now + timedelta(minutes=5))
    assert await tend_mailing(mailing.id, now + timedelta(seconds=59)) is MailingStatus.RUNNING
    assert (await MailingStats.get(mailing_id=mailing.id)).expired == 0
    later = now + timedelta(minutes=1)
    assert await tend_mailing(mailing.id, later) is MailingStatus.FINISHED
    statuses = dict(await Message.filter(mailing_id=mailing.id).values_list("client_id", "status"))
    assert statuses[held.id] is MessageStatus.PENDING  # a worker holds it and will record it
    assert statuses[retrying.id] is MessageStatus.EXPIRED
    assert list(statuses.values()).count(MessageStatus.EXPIRED) == 2
    # Once the holder's lease ends without an outcome, the sweep expires it too.
    await asyncio.sleep(0.6)
    assert mailing.id in await due_mailing_ids(later)
    await tend_mailing(mailing.id, later)
    stats = await MailingStats.get(mailing_id=mailing.id)
    assert (stats.pending, stats.expired) == (0, 3)


async def test_mailing_that_never_ran_in_time_shows_its_expired_audience(db: str) -> None:
    await make_client()
    now = _now()
    mailing = await make_mailing(start_at=now - timedelta(hours=2), end_at=now - timedelta(hours=1))
    assert await tend_mailing(mailing.id, now) is MailingStatus.FINISHED
    stats = await MailingStats.get(mailing_id=mailing.id)
    assert (stats.total, stats.expired) == (1, 1)


async def test_running_mailing_with_nothing_pending_finishes(db: str) -> None:
    await make_client()
    now = _now()
    mailing = await make_mailing(start_at=now)
    await tend_mailing(mailing.id, now)
    await Message.filter(mailing_id=mailing.id).update(status=MessageStatus.SENT)
    await MailingStats.filter(mailing_id=mailing.id).update(pending=0, sent=1)
    assert await tend_mailing(mailing.id, now) is MailingStatus.FINISHED


async def test_cancelled_mailing_cancels_pending(db: str) -> None:
    for _ in range(3):
        await make_client()
    now = _now()
    mailing = await make_mailing(start_at=now)
    await tend_mailing(mailing.id, now)
    await Mailing.filter(id=mailing.id).update(status=MailingStatus.CANCELLED)
    assert await tend_mailing(mailing.id, now) is MailingStatus.CANCELLED
    stats = await MailingStats.get(mailing_id=mailing.id)
    assert (stats.pending, stats.cancelled) == (0, 3)
    assert await due_mailing_ids(now) == []


async def test_changed_filter_retargets_a_running_mailing(db: str) -> None:
    old = await make_client(tag="old")
    now = _now()
    mailing = await make_mailing(start_at=now, filter_tags=["old"])
    await tend_mailing(mailing.id, now)
    new = await make_client(tag="new")
    await Mailing.filter(id=mailing.id).update(filter_tags=["new"], filter_version=2)
    await tend_mailing(mailing.id, now)
    statuses = dict(await Message.filter(mailing_id=mailing.id).values_list("client_id", "status"))
    assert statuses == {old.id: MessageStatus.CANCELLED, new.id: MessageStatus.PENDING}
    assert (await Mailing.get(id=mailing.id)).audience_version == 2
