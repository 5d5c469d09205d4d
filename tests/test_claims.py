"""The engine's SQL against the real database: audience, claims, outcomes, counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from models import ClientFilter, MailingStats, Message, MessageStatus, add_matching_clients
from models.audience import cancel_unmatched_pending
from tasks.claims import (
    Finalise,
    Reschedule,
    claim_due_messages,
    finalise_messages,
    reschedule_messages,
)
from tests.factories import make_client, make_mailing


def _now() -> datetime:
    return datetime.now(UTC)


async def _stats(mailing_id: int) -> dict[str, int]:
    stats = await MailingStats.get(mailing_id=mailing_id)
    return {
        k: getattr(stats, k) for k in ("total", "pending", "sent", "failed", "expired", "cancelled")
    }


async def test_audience_is_the_matching_clients_once(db: str) -> None:
    await make_client(phone="79001110001", operator_code="900", tag="a")
    await make_client(phone="79001110002", operator_code="900", tag="b")
    await make_client(phone="79161110003", operator_code="916", tag="a")
    mailing = await make_mailing()
    only = ClientFilter(operator_codes=("900",), tags=("a", "c"))
    async with in_transaction() as conn:
        assert await add_matching_clients(conn, mailing.id, only, _now()) == 1
        assert await add_matching_clients(conn, mailing.id, only, _now()) == 0
    phones = await Message.filter(mailing_id=mailing.id).values_list("phone", flat=True)
    assert phones == ["79001110001"]
    assert (await _stats(mailing.id))["pending"] == 1

    async with in_transaction() as conn:
        assert await add_matching_clients(conn, mailing.id, ClientFilter(), _now()) == 2
    assert await _stats(mailing.id) == {
        "total": 3,
        "pending": 3,
        "sent": 0,
        "failed": 0,
        "expired": 0,
        "cancelled": 0,
    }


async def test_retarget_cancels_unmatched_pending_but_not_held_ones(db: str) -> None:
    keep = await make_client(tag="keep")
    drop = await make_client(tag="drop")
    held = await make_client(tag="drop")
    mailing = await make_mailing()
    now = _now()
    async with in_transaction() as conn:
        await add_matching_clients(conn, mailing.id, ClientFilter(), now - timedelta(seconds=1))
    await Message.filter(client_id=held.id).update(next_attempt_at=now + timedelta(minutes=1))
    async with in_transaction() as conn:
        assert (
            await cancel_unmatched_pending(conn, mailing.id, ClientFilter(tags=("keep",)), now) == 1
        )
    statuses = dict(await Message.filter(mailing_id=mailing.id).values_list("client_id", "status"))
    assert statuses == {
        keep.id: MessageStatus.PENDING,
        drop.id: MessageStatus.CANCELLED,
        held.id: MessageStatus.PENDING,
    }
    assert (await _stats(mailing.id))["cancelled"] == 1


async def test_claim_leases_due_messages_to_one_claimer(db: str) -> None:
    for _ in range(5):
        await make_client()
    mailing = await make_mailing()
    now = _now()
    async with in_transaction() as conn:
        await add_matching_clients(conn, mailing.id, ClientFilter(), now)
    lease = now + timedelta(seconds=60)
    async with in_transaction() as conn:
        first = await claim_due_messages(conn, mailing.id, now, lease, 3)
    async with in_transaction() as conn:
        second = await claim_due_messages(conn, mailing.id, now, lease, 10)
    async with in_transaction() as conn:
        third = await claim_due_messages(conn, mailing.id, now, lease, 10)
    assert len(first) == 3
    assert len(second) == 2
    assert third == []
    assert {m.id for m in first}.isdisjoint(m.id for m in second)
    assert all(m.attempts == 1 for m in first + second)
    # Past the lease, a message whose worker died is due again.
    async with in_transaction() as conn:
        again = await claim_due_messages(conn, mailing.id, lease, lease + timedelta(seconds=60), 10)
    assert len(again) == 5
    assert all(m.attempts == 2 for m in again)


async def test_outcomes_are_recorded_once_and_counted(db: str) -> None:
    for _ in range(4):
        await make_client()
    mailing = await make_mailing()
    now = _now()
    async with in_transaction() as conn:
        await add_matching_clients(conn, mailing.id, ClientFilter(), now)
        claimed = await claim_due_messages(conn, mailing.id, now, now + timedelta(minutes=1), 4)
    a, b, c, d = (m.id for m in claimed)
    later = now + timedelta(seconds=30)
    outcomes = [
        Finalise(a, MessageStatus.SENT, None, now),
        Finalise(b, MessageStatus.FAILED, "HTTP 400: bad phone", now),
    ]
    async with in_transaction() as conn:
        assert await finalise_messages(conn, outcomes) == 2
        await reschedule_messages(
            conn,
            [Reschedule(c, later, "HTTP 503", refund=False), Reschedule(d, now, None, refund=True)],
        )
    # Recording the same outcomes again (a worker that outlived its lease) changes nothing.
    async with in_transaction() as conn:
        assert await finalise_messages(conn, outcomes) == 0
    rows = {m.id: m for m in await Message.filter(mailing_id=mailing.id)}
    assert rows[a].status is MessageStatus.SENT
    assert rows[a].sent_at is not None
    assert rows[b].status is MessageStatus.FAILED
    assert rows[b].last_error == "HTTP 400: bad phone"
    assert rows[c].status is MessageStatus.PENDING
    assert rows[c].attempts == 1
    assert rows[c].last_error == "HTTP 503"
    assert rows[c].next_attempt_at == later
    assert rows[d].attempts == 0
    assert await _stats(mailing.id) == {
        "total": 4,
        "pending": 2,
        "sent": 1,
        "failed": 1,
        "expired": 0,
        "cancelled": 0,
    }
