"""``Mailing.timeline`` and message times: the whole life of a mailing, from its rows.

In process, under a clock the test moves: the API over ``ASGITransport``, and
for the engine's own outcomes the real engine against a real simulator.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from models import Mailing, MailingStatus, MessageStatus
from models.db import MIGRATIONS_DIR, connection, execute
from models.queries.counters import count_finalised, count_revived
from models.timeline import AUTO_BUCKETS, MAX_BUCKETS, bucket_size_for
from provider_sim import SimulatorServer, running_simulator
from tests.conftest import GraphQLClient
from tests.support.api import MAILING_RESULT, add_audience, finalise
from tests.support.factories import make_client, make_mailing
from tests.support.inprocess import (  # noqa: F401 (clock_at_nine: the clock fixture)
    NINE,
    FakeClock,
    clock_at_nine,
    engine_driver,
)

TIMELINE = """query($id: ID!, $bucket: TimelineBucketSize!) { mailing(id: $id) {
    stats { pending }
    timeline(bucket: $bucket) {
        bucketSeconds undated ratePerSecond estimatedDoneAt
        buckets { start sent failed expired cancelled }
    }
} }"""
MESSAGES = """query($id: ID!) { mailing(id: $id) {
    messages { edges { node { status sentAt failedAt finishedAt } } }
} }"""
CREATE = (
    f"mutation($input: MailingInput!) {{ createMailing(input: $input) {{ {MAILING_RESULT} }} }}"
)
CANCEL = f"mutation($id: ID!) {{ cancelMailing(id: $id) {{ {MAILING_RESULT} }} }}"


@pytest.fixture
def api(gql: GraphQLClient, clock: FakeClock) -> GraphQLClient:
    """The API in process, reading ``clock`` for the time."""
    return gql


async def timeline(api: GraphQLClient, mailing_id: int | str, bucket: str = "AUTO") -> Any:
    data = await api.execute(TIMELINE, {"id": str(mailing_id), "bucket": bucket})
    return data["mailing"]["timeline"]


def at(seconds: float) -> datetime:
    return NINE + timedelta(seconds=seconds)


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def with_audience(clients: int, status: MailingStatus) -> Mailing:
    """A mailing from 9:00 to 10:00 in ``status``, one pending message for each of ``clients``."""
    for _ in range(clients):
        await make_client()
    mailing = await make_mailing(start_at=NINE, end_at=at(3600), status=status)
    await add_audience(mailing, due_at=NINE)
    return mailing


async def mailing_with_history(status: MailingStatus = MailingStatus.FINISHED) -> int:
    """10 messages: 3 sent at 9:00:05, 2 failed at 9:01:05, 1 expired and 1 cancelled at
    9:02:10, 3 pending."""
    mailing = await with_audience(10, status)
    await finalise(mailing.id, MessageStatus.SENT, 3, at=at(5))
    await finalise(mailing.id, MessageStatus.FAILED, 2, at=at(65))
    await finalise(mailing.id, MessageStatus.EXPIRED, 1, at=at(130))
    await finalise(mailing.id, MessageStatus.CANCELLED, 1, at=at(130))
    return mailing.id


async def test_timeline_counts_each_outcome_in_its_bucket(api: GraphQLClient) -> None:
    mailing_id = await mailing_with_history()
    minutes = await timeline(api, mailing_id, "MINUTE")
    assert minutes["bucketSeconds"] == 60
    assert minutes["buckets"] == [
        {"start": iso(at(0)), "sent": 3, "failed": 0, "expired": 0, "cancelled": 0},
        {"start": iso(at(60)), "sent": 0, "failed": 2, "expired": 0, "cancelled": 0},
        {"start": iso(at(120)), "sent": 0, "failed": 0, "expired": 1, "cancelled": 1},
    ]
    assert minutes["undated"] == 0
    # Not running: no rate, no estimate.
    assert (minutes["ratePerSecond"], minutes["estimatedDoneAt"]) == (0, None)

    # Seconds: every second from the first outcome to the last, the empty ones too.
    seconds = await timeline(api, mailing_id, "SECOND")
    assert seconds["bucketSeconds"] == 1
    assert len(seconds["buckets"]) == 126
    assert seconds["buckets"][0]["start"] == iso(at(5))
    assert seconds["buckets"][-1]["start"] == iso(at(130))
    assert sum(b["failed"] for b in seconds["buckets"]) == 2
    assert seconds["buckets"][60]["failed"] == 2

    auto = await timeline(api, mailing_id)
    assert auto["bucketSeconds"] == 2  # 125 s in fewer than 120 buckets
    assert sum(b["sent"] + b["expired"] for b in auto["buckets"]) == 4


async def test_messages_say_when_they_failed(api: GraphQLClient) -> None:
    mailing_id = await mailing_with_history()
    edges = (await api.execute(MESSAGES, {"id": str(mailing_id)}))["mailing"]["messages"]["edges"]
    by_status: dict[str, list[dict[str, Any]]] = {}
    for edge in edges:
        by_status.setdefault(edge["node"]["status"], []).append(edge["node"])
    for node in by_status["FAILED"]:
        assert node["failedAt"] == node["finishedAt"] == iso(at(65))
        assert node["sentAt"] is None
    for node in by_status["SENT"]:
        assert node["failedAt"] is None
        assert node["sentAt"] == node["finishedAt"] == iso(at(5))
    for node in by_status["PENDING"]:
        assert node["failedAt"] is node["finishedAt"] is None
    [expired] = by_status["EXPIRED"]
    assert (expired["failedAt"], expired["finishedAt"]) == (None, iso(at(130)))


async def test_a_running_mailing_has_a_rate_and_an_estimated_end(
    api: GraphQLClient, clock: FakeClock
) -> None:
    mailing = await with_audience(100, MailingStatus.RUNNING)
    await finalise(mailing.id, MessageStatus.SENT, 20, at=at(10))
    await finalise(mailing.id, MessageStatus.SENT, 25, at=at(100))
    await finalise(mailing.id, MessageStatus.FAILED, 5, at=at(110))
    clock.now = at(120)
    running = await timeline(api, mailing.id)
    # 30 answers within the last minute, 50 still pending: 100 s more.
    assert running["ratePerSecond"] == pytest.approx(0.5)
    assert running["estimatedDoneAt"] == iso(at(220))

    # Ten seconds after the first answer, the rate is over those ten seconds,
    # not over the ten the mailing waited before it (its startAt, which the
    # page's form rounds down to the minute, said nothing about the pace).
    clock.now = at(20)
    early = await timeline(api, mailing.id)
    assert early["ratePerSecond"] == pytest.approx(2.0)
    assert early["estimatedDoneAt"] == iso(at(45))  # 50 pending at 2 a second

    # Nothing answered for a minute (a closed window, the provider down): no estimate.
    clock.now = at(300)
    stalled = await timeline(api, mailing.id)
    assert (stalled["ratePerSecond"], stalled["estimatedDoneAt"]) == (0, None)

    # Never later than the end: what is left then expires.
    await finalise(mailing.id, MessageStatus.SENT, 1, at=at(3500))
    clock.now = at(3550)
    late = await timeline(api, mailing.id)
    assert late["estimatedDoneAt"] == iso(at(3600))


async def test_the_first_seconds_count_only_the_time_answers_were_recorded_for(
    api: GraphQLClient, clock: FakeClock
) -> None:
    mailing = await with_audience(200, MailingStatus.RUNNING)
    for second in (1, 2, 3):
        await finalise(mailing.id, MessageStatus.SENT, 30, at=at(second))
    # Answers are written a moment after they come: 0.8 s after the last one
    # recorded, those of the 0.8 s are not known yet, and not taken for none.
    clock.now = at(3.8)
    assert (await timeline(api, mailing.id))["ratePerSecond"] == pytest.approx(45.0)
    # Once nothing has been recorded for a while, the silence counts.
    clock.now = at(9)
    assert (await timeline(api, mailing.id))["ratePerSecond"] == pytest.approx(90 / 8)


async def test_a_mailing_before_its_first_outcome(api: GraphQLClient) -> None:
    mailing = await make_mailing(start_at=at(60), end_at=at(3600))
    empty = await timeline(api, mailing.id, "HOUR")
    assert empty == {
        "bucketSeconds": 3600,
        "undated": 0,
        "ratePerSecond": 0,
        "estimatedDoneAt": None,
        "buckets": [],
    }


async def test_the_number_of_buckets_is_bounded(api: GraphQLClient) -> None:
    for _ in range(3):
        await make_client()
    mailing = await make_mailing(start_at=NINE, end_at=at(10 * 86400))
    await add_audience(mailing, due_at=NINE)
    await finalise(mailing.id, MessageStatus.SENT, 1, at=at(0))
    await finalise(mailing.id, MessageStatus.SENT, 1, at=at(3 * 86400))
    seconds = await timeline(api, mailing.id, "SECOND")
    # Three days in seconds would be 259,201 buckets: widened to five minutes.
    assert seconds["bucketSeconds"] == 300
    assert len(seconds["buckets"]) == 865
    auto = await timeline(api, mailing.id)
    assert auto["bucketSeconds"] == 3600
    assert len(auto["buckets"]) == 73
    assert sum(b["sent"] for b in auto["buckets"]) == 2


def test_bucket_sizes_fit_any_span() -> None:
    for days in (0, 1, 30, 365, 3650):
        span = timedelta(days=days, seconds=1)
        for wanted in (None, 1, 60, 86400):
            size = bucket_size_for(span, wanted)
            limit = AUTO_BUCKETS if wanted is None else MAX_BUCKETS
            assert span.total_seconds() / size < limit
            assert wanted is None or size >= wanted


@pytest.fixture
async def sim(db: str) -> AsyncIterator[SimulatorServer]:
    async with running_simulator(seed=3, reject_rate=0.3) as server:
        yield server


async def test_the_engine_records_when_each_message_finished(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    # At 9:00 UTC the window is open in London, closed in Tokyo (18:00).
    for n in range(20):
        await make_client(timezone="Europe/London" if n % 2 else "Asia/Tokyo")
    payload = {
        "text": "Hello",
        "startAt": iso(NINE),
        "endAt": iso(at(3600)),
        "sendWindow": {"start": "08:00", "end": "12:00"},
    }
    created = (await api.execute(CREATE, {"input": payload}))["createMailing"]
    mailing_id = created["id"]
    async with engine_driver(sim.url, clock, send_batch_size=5, send_concurrency=5) as driver:
        await driver.step()
        clock.advance(seconds=30)
        await driver.step()
        clock.advance(seconds=30)
        cancelled = (await api.execute(CANCEL, {"id": mailing_id}))["cancelMailing"]
        assert cancelled["__typename"] == "Mailing", cancelled
    whole = await timeline(api, mailing_id, "MINUTE")
    stats = (await api.execute(TIMELINE, {"id": mailing_id, "bucket": "AUTO"}))["mailing"]
    assert stats["stats"]["pending"] == 0
    totals = {
        key: sum(b[key] for b in whole["buckets"])
        for key in ("sent", "failed", "expired", "cancelled")
    }
    assert sum(totals.values()) == 20
    assert totals["sent"] > 0
    assert totals["failed"] > 0
    assert totals["cancelled"] == 10
    # Each outcome sits in the minute it happened in: sent and failed at 9:00,
    # cancelled (what waited for Tokyo's window) at 9:01.
    assert [b["start"] for b in whole["buckets"]] == [iso(at(0)), iso(at(60))]
    assert whole["buckets"][1]["cancelled"] == totals["cancelled"]
    assert whole["buckets"][1]["sent"] == whole["buckets"][1]["failed"] == 0


async def test_a_revived_message_leaves_the_timeline(api: GraphQLClient) -> None:
    mailing_id = await mailing_with_history()
    conn = connection()
    # The cancelled client matches again: its message waits again, with no time.
    changed = await execute(
        conn,
        "UPDATE message SET status = 'PENDING', finished_at = NULL"
        " WHERE mailing_id = $1 AND status = 'CANCELLED'",
        mailing_id,
    )
    assert changed == 1  # the statement's own row, not what the triggers wrote too
    await count_revived(conn, mailing_id, changed)
    minutes = await timeline(api, mailing_id, "MINUTE")
    assert minutes["buckets"][-1] == {
        "start": iso(at(120)),
        "sent": 0,
        "failed": 0,
        "expired": 1,
        "cancelled": 0,
    }
    assert minutes["undated"] == 0


async def test_final_messages_without_a_time_are_undated(api: GraphQLClient) -> None:
    mailing_id = await mailing_with_history()
    await finalise(mailing_id, MessageStatus.FAILED, 2, at=at(200))
    # As before finished_at existed: a final message without a time.
    await finalise_undated(mailing_id, 1)
    whole = await timeline(api, mailing_id, "HOUR")
    assert whole["undated"] == 1
    assert sum(b["failed"] for b in whole["buckets"]) == 4


async def finalise_undated(mailing_id: int, count: int) -> None:
    conn = connection()
    changed = await execute(
        conn,
        "UPDATE message SET status = 'FAILED' WHERE id IN (SELECT id FROM message"
        " WHERE mailing_id = $1 AND status = 'PENDING' ORDER BY id LIMIT $2)",
        mailing_id,
        count,
    )
    await count_finalised(conn, mailing_id, MessageStatus.FAILED, changed)


async def test_the_migration_counts_the_messages_already_final(api: GraphQLClient) -> None:
    mailing_id = await mailing_with_history()
    before = await timeline(api, mailing_id, "SECOND")
    migration = _timeline_migration()
    conn = connection()
    await conn.execute_script(await migration.downgrade(conn))
    try:
        # Outcomes while the counts did not exist: the backfill must find them.
        await finalise(mailing_id, MessageStatus.SENT, 1, at=at(140))
    finally:
        await conn.execute_script(await migration.upgrade(conn))
    after = await timeline(api, mailing_id, "SECOND")
    assert after["buckets"][: len(before["buckets"])] == before["buckets"]
    assert after["buckets"][-1]["start"] == iso(at(140))
    assert after["buckets"][-1]["sent"] == 1
    assert after["undated"] == 0


def _timeline_migration() -> Any:
    [path] = MIGRATIONS_DIR.glob("models/*_timeline_count.py")
    spec = importlib.util.spec_from_file_location("timeline_count_migration", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
