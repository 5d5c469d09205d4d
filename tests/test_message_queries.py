"""The SQL of messages against the real database: audience, leases, outcomes, counters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from models import ClientFilter, Mailing, MailingStats, MailingStatus, Message, MessageStatus
from models.db import connection, db_clock, fetch
from models.queries.messages import (
    Claimed,
    Finalise,
    HandBack,
    add_audience,
    cancel_client_waiting,
    cancel_unmatched,
    claim_due,
    finalise_handed_back,
    finalise_messages,
    finalise_waiting,
    follow_client_match,
    hand_back_messages,
    reap_ended_leases,
    replan_window_waiters,
    revive_rematched,
    storable,
)
from models.services.opt_outs import opt_out_phones
from tests.support.factories import make_client, make_mailing

WORKER = 1234
EVERYONE = ClientFilter()


def _now() -> datetime:
    return datetime.now(UTC)


async def _stats(mailing_id: int) -> dict[str, int]:
    stats = await MailingStats.get(mailing_id=mailing_id)
    return {
        k: getattr(stats, k) for k in ("total", "pending", "sent", "failed", "expired", "cancelled")
    }


async def _running(**fields: Any) -> Mailing:
    fields.setdefault("status", MailingStatus.RUNNING)
    return await make_mailing(**fields)


async def _audience(mailing: Mailing, client_filter: ClientFilter = EVERYONE) -> int:
    now = _now()
    async with in_transaction() as conn:
        return await add_audience(conn, mailing.id, client_filter, now, now)


async def _claim(
    mailing: Mailing,
    limit: int = 100,
    *,
    client_filter: ClientFilter = EVERYONE,
    worker: int = WORKER,
    lease: float = 60.0,
    now: datetime | None = None,
) -> list[Claimed]:
    async with in_transaction() as conn:
        return await claim_due(
            conn,
            mailing_id=mailing.id,
            revision=mailing.revision,
            client_filter=client_filter,
            now=now or _now(),
            lease_seconds=lease,
            worker=worker,
            limit=limit,
        )


async def _statuses(mailing: Mailing) -> dict[int | None, MessageStatus]:
    pairs = await Message.filter(mailing_id=mailing.id).values_list("client_id", "status")
    return dict(pairs)


async def _park(client_id: int, seconds: float) -> None:
    """The client's message waits (a retry or its window) until ``seconds`` from now."""
    await Message.filter(client_id=client_id).update(
        next_attempt_at=_now() + timedelta(seconds=seconds)
    )


async def test_audience_is_the_matching_clients_once(db: str) -> None:
    await make_client(phone="79001110001", operator_code="900", tag="a")
    await make_client(phone="79001110002", operator_code="900", tag="b")
    await make_client(phone="79161110003", operator_code="916", tag="a")
    mailing = await make_mailing(start_at=_now() - timedelta(hours=1))
    only = ClientFilter(operator_codes=("900",), tags=("a", "c"))
    before = _now()
    assert await _audience(mailing, only) == 1
    assert await _audience(mailing, only) == 0
    (message,) = await Message.filter(mailing_id=mailing.id)
    assert message.phone == "79001110001"
    # Made now, not at the mailing's start.
    assert message.created_at >= before
    assert await _audience(mailing) == 2
    assert await _stats(mailing.id) == {
        "total": 3,
        "pending": 3,
        "sent": 0,
        "failed": 0,
        "expired": 0,
        "cancelled": 0,
    }


async def test_retargeting_cancels_every_waiting_message_but_not_held_ones(db: str) -> None:
    keep = await make_client(tag="keep")
    due = await make_client(tag="drop")
    backing_off = await make_client(tag="drop")
    held = await make_client(tag="drop")
    mailing = await _running()
    await _audience(mailing)
    await _claim(mailing, client_filter=ClientFilter(tags=("drop",)), limit=1)
    await Message.filter(client_id=held.id).update(leased_until=_now() + timedelta(minutes=1))
    await Message.filter(mailing_id=mailing.id, client_id__not=held.id).update(
        leased_until=None, leased_by=None
    )
    await _park(backing_off.id, 300)
    async with in_transaction() as conn:
        assert await cancel_unmatched(conn, mailing.id, ClientFilter(tags=("keep",))) == 2
    assert await _statuses(mailing) == {
        keep.id: MessageStatus.PENDING,
        due.id: MessageStatus.CANCELLED,
        backing_off.id: MessageStatus.CANCELLED,
        held.id: MessageStatus.PENDING,
    }
    assert (await _stats(mailing.id))["cancelled"] == 2


async def test_a_client_that_matches_again_gets_its_message_back(db: str) -> None:
    client = await make_client(tag="b", timezone="UTC")
    mailing = await _running()
    await _audience(mailing)
    (message,) = await Message.filter(mailing_id=mailing.id)
    async with in_transaction() as conn:
        assert await cancel_unmatched(conn, mailing.id, ClientFilter(tags=("a",))) == 1
    # The client moved while it did not match: its message follows it.
    client.timezone = "Asia/Tokyo"
    await client.save()
    async with in_transaction() as conn:
        assert await revive_rematched(conn, mailing.id, ClientFilter(tags=("a",)), _now()) == 0
        assert await revive_rematched(conn, mailing.id, ClientFilter(tags=("b",)), _now()) == 1
    revived = await Message.get(mailing_id=mailing.id)
    assert revived.id == message.id  # the same msgId, should an earlier attempt have landed
    assert revived.status is MessageStatus.PENDING
    assert revived.timezone == "Asia/Tokyo"
    assert revived.last_error is None
    assert await _stats(mailing.id) == {
        "total": 1,
        "pending": 1,
        "sent": 0,
        "failed": 0,
        "expired": 0,
        "cancelled": 0,
    }
    assert len(await _claim(mailing, client_filter=ClientFilter(tags=("b",)))) == 1


async def test_a_claim_leases_due_messages_to_one_worker_on_the_database_clock(db: str) -> None:
    for _ in range(5):
        await make_client()
    mailing = await _running()
    await _audience(mailing)
    first = await _claim(mailing, 3)
    second = await _claim(mailing, 10, worker=WORKER + 1)
    assert len(first) == 3
    assert len(second) == 2
    assert await _claim(mailing) == []
    assert {m.id for m in first}.isdisjoint(m.id for m in second)
    assert all(m.attempts == 1 for m in first + second)
    rows = await fetch(
        connection(),
        "SELECT MIN(leased_until) AS low, MAX(leased_until) AS high, COUNT(leased_by) AS n"
        " FROM message WHERE mailing_id = $1",
        mailing.id,
    )
    (clock_row,) = await fetch(connection(), "SELECT CURRENT_TIMESTAMP AS now")
    db_now = _instant(clock_row["now"])
    low, high = _instant(rows[0]["low"]), _instant(rows[0]["high"])
    assert rows[0]["n"] == 5
    assert db_now + timedelta(seconds=50) < low <= high <= db_now + timedelta(seconds=61)


def _instant(value: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace(" ", "T")).replace(tzinfo=UTC)


async def test_an_ended_lease_releases_its_message(db: str) -> None:
    await make_client()
    mailing = await _running()
    await _audience(mailing)
    (held,) = await _claim(mailing, lease=0.001)
    await asyncio.sleep(0.05)  # past the lease on the database's (millisecond) clock
    async with in_transaction() as conn:
        reaped = await reap_ended_leases(conn)
    assert [int(r["id"]) for r in reaped] == [held.id]
    (again,) = await _claim(mailing, worker=WORKER + 1)
    assert again.id == held.id
    assert again.attempts == 2


async def _end_leases() -> None:
    conn = connection()
    await fetch(conn, f"UPDATE message SET leased_until = {db_clock(conn, -1.0)}")


async def test_a_reaped_message_of_a_client_who_opted_out_meanwhile_is_cancelled(
    db: str,
) -> None:
    # Found by the stateful test (issue 19): an engine died holding the
    # message, the client opted out (which leaves held messages to their
    # worker), the lease ended and was reaped, and the next claim, which
    # does not look at opt-outs, sent it.
    client = await make_client()
    mailing = await _running()
    await _audience(mailing)
    (held,) = await _claim(mailing)
    outcome = await opt_out_phones([client.phone])
    assert outcome.cancelled == 0  # held: left to its worker
    await _end_leases()
    async with in_transaction() as conn:
        reaped = await reap_ended_leases(conn)
    assert [int(r["id"]) for r in reaped] == [held.id]
    message = await Message.get(id=held.id)
    assert (message.status, message.last_error) == (MessageStatus.CANCELLED, "client opted out")
    assert await _claim(mailing, worker=WORKER + 1) == []
    assert (await _stats(mailing.id))["cancelled"] == 1


async def test_a_reaped_message_follows_what_happened_while_it_was_held(db: str) -> None:
    kept = await make_client(tag="a")
    unmatched = await make_client(tag="b")
    mailing = await _running()
    await _audience(mailing)
    claimed = await _claim(mailing)
    assert len(claimed) == 2
    await Mailing.filter(id=mailing.id).update(filter_tags=["a"])
    await _end_leases()
    async with in_transaction() as conn:
        await reap_ended_leases(conn)
    statuses = {m.client_id: m.status for m in await Message.filter(mailing_id=mailing.id)}
    assert statuses == {kept.id: MessageStatus.PENDING, unmatched.id: MessageStatus.CANCELLED}
    assert await _stats(mailing.id) == {
        "total": 2, "pending": 1, "sent": 0, "failed": 0, "expired": 0, "cancelled": 1
    }  # fmt: skip


async def test_a_claim_checks_the_mailing_as_the_engine_read_it(db: str) -> None:
    tagged = await make_client(tag="a")
    await make_client(tag="b")
    mailing = await _running()
    await _audience(mailing)
    stale = await Mailing.get(id=mailing.id)
    await Mailing.filter(id=mailing.id).update(revision=mailing.revision + 1)
    assert await _claim(stale) == []  # edited since it was read
    current = await Mailing.get(id=mailing.id)
    await Mailing.filter(id=mailing.id).update(status=MailingStatus.PAUSED)
    assert await _claim(current) == []  # paused
    await Mailing.filter(id=mailing.id).update(status=MailingStatus.RUNNING)
    late = _now() + timedelta(hours=2)
    assert await _claim(current, now=late) == []  # past its end
    claimed = await _claim(current, client_filter=ClientFilter(tags=("a",)))
    assert [m.client_id for m in claimed] == [tagged.id]  # never a client the filter drops


async def test_outcomes_are_recorded_once_and_counted(db: str) -> None:
    for _ in range(4):
        await make_client()
    mailing = await _running()
    await _audience(mailing)
    now = _now()
    a, b, c, d = (m.id for m in await _claim(mailing, 4))
    later = now + timedelta(seconds=30)
    outcomes = [
        Finalise(a, MessageStatus.SENT, None, now),
        Finalise(b, MessageStatus.FAILED, "HTTP 400: bad phone", now),
    ]
    async with in_transaction() as conn:
        assert await finalise_messages(conn, outcomes) == 2
        handed_back = await hand_back_messages(
            conn,
            [HandBack(c, later, "HTTP 503", refund=False), HandBack(d, now, None, refund=True)],
            WORKER,
        )
    assert sorted(handed_back) == sorted([c, d])
    # Recording the same outcomes again (a worker that outlived its lease) changes nothing.
    async with in_transaction() as conn:
        assert await finalise_messages(conn, outcomes) == 0
    rows = {m.id: m for m in await Message.filter(mailing_id=mailing.id)}
    assert rows[a].status is MessageStatus.SENT
    assert rows[a].sent_at is not None
    assert rows[a].leased_until is None
    assert rows[b].status is MessageStatus.FAILED
    assert rows[b].last_error == "HTTP 400: bad phone"
    assert rows[c].status is MessageStatus.PENDING
    assert rows[c].attempts == 1
    assert rows[c].last_error == "HTTP 503"
    assert rows[c].next_attempt_at == later
    assert rows[c].leased_until is None
    assert rows[d].attempts == 0
    assert await _stats(mailing.id) == {
        "total": 4,
        "pending": 2,
        "sent": 1,
        "failed": 1,
        "expired": 0,
        "cancelled": 0,
    }


async def test_only_the_lease_holder_hands_a_message_back(db: str) -> None:
    await make_client()
    mailing = await _running()
    await _audience(mailing)
    (message,) = await _claim(mailing, lease=0.001)
    await asyncio.sleep(0.05)
    async with in_transaction() as conn:
        await reap_ended_leases(conn)
    await _claim(mailing, worker=WORKER + 1)
    async with in_transaction() as conn:
        # The first worker outlived its lease: its hand-back must not free the new claim.
        back = HandBack(message.id, _now(), "late", refund=True)
        assert await hand_back_messages(conn, [back], WORKER) == []
    row = await Message.get(id=message.id)
    assert row.leased_by == WORKER + 1
    assert row.leased_until is not None


@pytest.mark.parametrize(
    "answer",
    [
        "boom\x00bad",
        "provider code 1: a\x00b",
        "\udc80 lone surrogate",
        "x" * 100_000,
        "\x1b[31mred\x07",
    ],
)
async def test_any_answer_from_the_provider_is_stored(db: str, answer: str) -> None:
    await make_client()
    await make_client()
    mailing = await _running()
    await _audience(mailing)
    first, second = await _claim(mailing, 2)
    async with in_transaction() as conn:
        await finalise_messages(conn, [Finalise(first.id, MessageStatus.FAILED, answer, _now())])
        await hand_back_messages(conn, [HandBack(second.id, _now(), answer, False)], WORKER)
    for message_id in (first.id, second.id):
        stored = (await Message.get(id=message_id)).last_error
        assert stored == storable(answer)
        assert stored is not None
        assert "\x00" not in stored
        assert len(stored) <= 501


async def test_handed_back_messages_follow_what_happened_meanwhile(db: str) -> None:
    kept, dropped, deleted = [await make_client(tag=t) for t in ("a", "b", "a")]
    mailing = await _running()
    await _audience(mailing)
    claimed = {m.client_id: m.id for m in await _claim(mailing)}
    # While in flight: the filter drops tag b, one client is deleted.
    await Mailing.filter(id=mailing.id).update(filter_tags=["a"])
    await deleted.delete()
    now = _now()
    async with in_transaction() as conn:
        handed_back = await hand_back_messages(
            conn, [HandBack(i, now, "HTTP 500", False) for i in claimed.values()], WORKER
        )
        touched: set[int] = set()
        assert await finalise_handed_back(conn, handed_back, now, touched) == 2
    assert touched == {mailing.id}
    rows = {m.id: m for m in await Message.filter(mailing_id=mailing.id)}
    assert rows[claimed[kept.id]].status is MessageStatus.PENDING
    assert rows[claimed[dropped.id]].status is MessageStatus.CANCELLED
    assert rows[claimed[dropped.id]].last_error == "client no longer matches"
    assert rows[claimed[deleted.id]].status is MessageStatus.CANCELLED
    assert rows[claimed[deleted.id]].last_error == "client deleted"
    # The mailing's end came while the last one was out.
    (again,) = await _claim(mailing)
    async with in_transaction() as conn:
        handed_back = await hand_back_messages(conn, [HandBack(again.id, now, None, True)], WORKER)
        assert await finalise_handed_back(conn, handed_back, now + timedelta(hours=2)) == 1
    assert (await Message.get(id=again.id)).status is MessageStatus.EXPIRED
    assert await _stats(mailing.id) == {
        "total": 3,
        "pending": 0,
        "sent": 0,
        "failed": 0,
        "expired": 1,
        "cancelled": 2,
    }


async def test_cancelling_reaches_waiting_messages_and_leaves_held_ones(db: str) -> None:
    waiting, held = await make_client(), await make_client()
    mailing = await _running()
    await _audience(mailing)
    await _claim(mailing, client_filter=ClientFilter(), limit=2)
    await Message.filter(client_id=waiting.id).update(leased_until=None, leased_by=None)
    await _park(waiting.id, 3600)  # far in the future: a retry or its window
    async with in_transaction() as conn:
        assert await finalise_waiting(conn, mailing.id, MessageStatus.CANCELLED, "cancelled") == 1
    assert await _statuses(mailing) == {
        waiting.id: MessageStatus.CANCELLED,
        held.id: MessageStatus.PENDING,
    }


async def test_deleting_a_client_cancels_its_waiting_messages(db: str) -> None:
    client = await make_client()
    one, two = await _running(), await _running()
    await _audience(one)
    await _audience(two)
    await _claim(two)
    await _park(client.id, 3600)
    async with in_transaction() as conn:
        assert await cancel_client_waiting(conn, client.id) == 1
    assert (await _statuses(one))[client.id] is MessageStatus.CANCELLED
    assert (await _statuses(two))[client.id] is MessageStatus.PENDING


async def test_a_window_change_replans_what_waited_for_the_old_window(db: str) -> None:
    for_window, backing_off = await make_client(), await make_client()
    mailing = await _running()
    await _audience(mailing)
    opening = _now() + timedelta(hours=5)
    retry = _now() + timedelta(minutes=5)
    await Message.filter(client_id=for_window.id).update(
        next_attempt_at=opening, waits_for_window=True
    )
    await Message.filter(client_id=backing_off.id).update(next_attempt_at=retry)
    now = _now()
    async with in_transaction() as conn:
        assert await replan_window_waiters(conn, mailing.id, now) == 1
    rows = {m.client_id: m for m in await Message.filter(mailing_id=mailing.id)}
    assert rows[for_window.id].next_attempt_at == now
    assert rows[for_window.id].waits_for_window is False
    assert rows[backing_off.id].next_attempt_at == retry


def test_storable_text_is_printable_utf8_and_bounded() -> None:
    assert storable(None) is None
    assert storable("plain") == "plain"
    assert storable("a\x00b") == "a\ufffdb"
    assert storable("tab\tok") == "tab\tok"
    assert len(storable("y" * 10_000) or "") == 501
    assert (storable("\ud800") or "").encode("utf-8")


async def test_a_client_edited_out_of_a_filter_loses_its_waiting_message(db: str) -> None:
    client = await make_client(tag="vip")
    running = await _running(filter_tags=["vip"])
    finished = await make_mailing(filter_tags=["vip"], status=MailingStatus.FINISHED)
    await _audience(running, ClientFilter(tags=("vip",)))
    await _audience(finished, ClientFilter(tags=("vip",)))
    await Message.filter(mailing_id=finished.id).update(status=MessageStatus.CANCELLED)
    await MailingStats.filter(mailing_id=finished.id).update(pending=0, cancelled=1)
    client.tag = "regular"
    await client.save()
    async with in_transaction() as conn:
        await follow_client_match(conn, client.id, _now())
    assert (await _statuses(running))[client.id] is MessageStatus.CANCELLED
    client.tag = "vip"
    await client.save()
    async with in_transaction() as conn:
        await follow_client_match(conn, client.id, _now())
    assert (await _statuses(running))[client.id] is MessageStatus.PENDING
    # A finished mailing is history: nothing comes back there.
    assert (await _statuses(finished))[client.id] is MessageStatus.CANCELLED
    assert (await _stats(running.id))["pending"] == 1
