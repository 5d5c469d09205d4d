"""The engine's time-dependent rules, in process, under a clock the test moves.

The API (over ASGI) and the engine (stepped) run in this process against a
real simulator on loopback and the real database: hours of a mailing's life
pass in milliseconds. Real worker processes are tested in ``test_engine.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from models import Mailing, MailingStatus, Message, MessageStatus
from models.db import connection, execute, is_postgres
from provider_sim import SimulatorServer, running_simulator
from tasks.worker_metrics import REGISTRY
from tests.conftest import GraphQLClient
from tests.support.api import MAILING_RESULT, key
from tests.support.factories import make_client
from tests.support.inprocess import (  # noqa: F401 (clock_at_nine: the clock fixture)
    NINE,
    FakeClock,
    clock_at_nine,
    engine_driver,
)

CREATE = (
    f"mutation($input: MailingInput!) {{ createMailing(input: $input) {{ {MAILING_RESULT} }} }}"
)
UPDATE = f"""mutation($id: ID!, $input: MailingPatch!) {{
    updateMailing(id: $id, input: $input) {{ {MAILING_RESULT} }}
}}"""
CANCEL = f"mutation($id: ID!) {{ cancelMailing(id: $id) {{ {MAILING_RESULT} }} }}"


@pytest.fixture
def api(gql: GraphQLClient, clock: FakeClock) -> GraphQLClient:
    """The API in process, reading ``clock`` for the time."""
    return gql


@pytest.fixture
async def sim(db: str) -> AsyncIterator[SimulatorServer]:
    async with running_simulator(seed=3) as server:
        yield server


async def _create(api: GraphQLClient, clock: FakeClock, **fields: Any) -> dict[str, Any]:
    payload = {
        "text": "Hello",
        "startAt": clock.now.isoformat(),
        "endAt": (clock.now + timedelta(hours=1)).isoformat(),
        **fields,
    }
    result = (await api.execute(CREATE, {"input": payload}))["createMailing"]
    assert result["__typename"] == "Mailing", result
    return dict(result)


async def _update(api: GraphQLClient, mailing_id: str, **fields: Any) -> dict[str, Any]:
    result = (await api.execute(UPDATE, {"id": mailing_id, "input": fields}))["updateMailing"]
    return dict(result)


async def _statuses(mailing_id: str) -> list[MessageStatus]:
    return sorted(await Message.filter(mailing_id=key(mailing_id)).values_list("status", flat=True))


async def _mailing_status(mailing_id: str) -> MailingStatus:
    return (await Mailing.get(id=key(mailing_id))).status


async def test_a_window_that_opens_after_the_end_waits_for_the_end(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    await make_client(timezone="UTC")
    mailing = await _create(
        api,
        clock,
        endAt=(NINE + timedelta(minutes=30)).isoformat(),
        sendWindow={"start": "10:00", "end": "11:00"},
    )
    async with engine_driver(sim.url, clock) as driver:
        await driver.step()
        assert await _statuses(mailing["id"]) == [MessageStatus.PENDING]
        assert await _mailing_status(mailing["id"]) is MailingStatus.RUNNING
        clock.advance(minutes=29)
        await driver.step()
        # Nothing is EXPIRED before endAt, and the mailing can still be saved.
        assert await _statuses(mailing["id"]) == [MessageStatus.PENDING]
        moved = await _update(api, mailing["id"], endAt=(NINE + timedelta(hours=3)).isoformat())
        assert moved["__typename"] == "Mailing", moved
        clock.advance(minutes=31)  # 10:00: the window opens
        await driver.step()
    assert await _statuses(mailing["id"]) == [MessageStatus.SENT]
    sent = await Message.get(mailing_id=key(mailing["id"]))
    assert sent.sent_at == NINE + timedelta(hours=1)
    assert sim.stats()["accepted"] == 1


async def test_a_message_expires_at_the_end_and_not_before(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    await make_client(timezone="UTC")
    mailing = await _create(
        api,
        clock,
        endAt=(NINE + timedelta(minutes=30)).isoformat(),
        sendWindow={"start": "10:00", "end": "11:00"},
    )
    async with engine_driver(sim.url, clock) as driver:
        await driver.step()
        clock.advance(minutes=29, seconds=59)
        await driver.step()
        assert await _statuses(mailing["id"]) == [MessageStatus.PENDING]
        clock.advance(seconds=1)
        await driver.step()
    assert await _statuses(mailing["id"]) == [MessageStatus.EXPIRED]
    assert await _mailing_status(mailing["id"]) is MailingStatus.FINISHED
    assert sim.stats()["requests"] == 0


async def test_removing_the_window_sends_what_waited_for_it_at_once(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    for _ in range(3):
        await make_client(timezone="Asia/Tokyo")  # 18:00 there: outside 08:00-12:00
    mailing = await _create(api, clock, sendWindow={"start": "08:00", "end": "12:00"})
    async with engine_driver(sim.url, clock) as driver:
        await driver.step()
        waiting = await Message.filter(mailing_id=key(mailing["id"]))
        assert all(m.waits_for_window and m.attempts == 0 for m in waiting)
        assert sim.stats()["requests"] == 0
        await _update(api, mailing["id"], sendWindow=None)
        await driver.step()  # the same instant
    assert await _statuses(mailing["id"]) == [MessageStatus.SENT] * 3


async def test_widening_the_window_replans_the_waiting_messages(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    await make_client(timezone="UTC")
    mailing = await _create(
        api,
        clock,
        endAt=(NINE + timedelta(hours=6)).isoformat(),
        sendWindow={"start": "13:00", "end": "14:00"},
    )
    async with engine_driver(sim.url, clock) as driver:
        await driver.step()
        (message,) = await Message.filter(mailing_id=key(mailing["id"]))
        assert message.next_attempt_at == NINE + timedelta(hours=4)
        await _update(api, mailing["id"], sendWindow={"start": "09:30", "end": "14:00"})
        await driver.step()
        (message,) = await Message.filter(mailing_id=key(mailing["id"]))
        assert message.next_attempt_at == NINE + timedelta(minutes=30)
        clock.advance(minutes=30)
        await driver.step()
    assert await _statuses(mailing["id"]) == [MessageStatus.SENT]


async def test_a_retry_due_after_the_end_waits_for_the_end(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    await make_client()
    await sim.set_faults(fail_rate=1.0)
    mailing = await _create(api, clock, endAt=(NINE + timedelta(minutes=1)).isoformat())
    async with engine_driver(
        sim.url, clock, retry_base_delay=600.0, retry_max_delay=600.0
    ) as driver:
        await driver.step()
        (message,) = await Message.filter(mailing_id=key(mailing["id"]))
        assert message.status is MessageStatus.PENDING
        assert message.attempts == 1
        assert message.next_attempt_at > NINE + timedelta(minutes=1)
        clock.advance(seconds=59)
        await driver.step()
        assert await _mailing_status(mailing["id"]) is MailingStatus.RUNNING
        clock.advance(seconds=1)
        await driver.step()
    (message,) = await Message.filter(mailing_id=key(mailing["id"]))
    assert message.status is MessageStatus.EXPIRED
    assert message.last_error is not None
    assert message.last_error.startswith("HTTP 500")


async def test_refused_credentials_hold_sending_and_fail_nothing(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    for _ in range(20):
        await make_client()
    await sim.set_faults(token="the-right-one")
    mailing = await _create(api, clock)
    counted_before = _unauthorized_counted()
    async with engine_driver(sim.url, clock, provider_token="a-revoked-one") as driver:
        await driver.step()
        assert await _statuses(mailing["id"]) == [MessageStatus.PENDING] * 20
        driver.engine.metrics.flush()  # as the worker does every second
        assert _unauthorized_counted() > counted_before  # in the worker's /metrics
        refused = sim.stats()["by_outcome"]["unauthorized"]
        for _ in range(4):  # held: nothing more reaches the provider meanwhile...
            clock.advance(seconds=1)
            await driver.step()
        assert sim.stats()["requests"] == refused
        clock.advance(seconds=1)  # ...but one probe once the breaker's time is up
        await driver.step()
        assert sim.stats()["requests"] == refused + 1
        assert await _statuses(mailing["id"]) == [MessageStatus.PENDING] * 20
        await sim.set_faults(token=None)  # the provider accepts us again
        clock.advance(seconds=10)
        await driver.run_until(lambda: _all_sent(mailing["id"], 20))
    attempts = await Message.filter(mailing_id=key(mailing["id"])).values_list(
        "attempts", flat=True
    )
    assert set(attempts) == {1}  # a refusal of our token is no attempt at the message
    assert sim.stats()["duplicates"] == 0


def _unauthorized_counted() -> float:
    value = REGISTRY.get_sample_value("mailings_send_requests_total", {"outcome": "unauthorized"})
    return value or 0.0


async def _all_sent(mailing_id: str, n: int) -> bool:
    return await _statuses(mailing_id) == [MessageStatus.SENT] * n


async def test_a_rate_limit_holds_every_send_for_its_retry_after(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    for _ in range(10):
        await make_client()
    await sim.set_faults(rate_limit_rate=1.0)  # 429, Retry-After: 1
    mailing = await _create(api, clock)
    async with engine_driver(sim.url, clock, breaker_failure_threshold=2) as driver:
        await driver.step()
        first = sim.stats()["requests"]
        assert first > 0
        await driver.step()  # the same instant: still inside Retry-After
        assert sim.stats()["requests"] == first
        assert driver.engine._breaker.state == "closed"  # "slower", never "down"
        await sim.set_faults(rate_limit_rate=0.0)
        clock.advance(seconds=1)
        # Slower for a while: the rate comes back as time passes.
        await driver.run_until(lambda: _all_sent(mailing["id"], 10), tick=1.0)
    attempts = await Message.filter(mailing_id=key(mailing["id"])).values_list(
        "attempts", flat=True
    )
    assert set(attempts) == {1}


async def test_a_retry_after_holds_slots_granted_before_it(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    """Slots granted just before a 429 started during its Retry-After: a sliding window
    refused them all, and their 429s cut the rate again and again."""
    for _ in range(10):
        await make_client()
    mailing = await _create(api, clock)
    async with engine_driver(sim.url, clock) as driver:
        engine = driver.engine
        await engine.sweep_once()
        engine.wake()
        assert await engine.dispatch_once(wait=False) == 10  # granted, not started yet
        engine._pacer.rate_limited(5.0)  # another request's 429, Retry-After: 5
        await driver.step()
        assert sim.stats()["requests"] == 0
        assert await _statuses(mailing["id"]) == [MessageStatus.PENDING] * 10
        clock.advance(seconds=4)
        await driver.step()
        assert sim.stats()["requests"] == 0
        clock.advance(seconds=1)
        await driver.run_until(lambda: _all_sent(mailing["id"], 10), tick=1.0)
    attempts = await Message.filter(mailing_id=key(mailing["id"])).values_list(
        "attempts", flat=True
    )
    assert set(attempts) == {1}  # the hand-back counted no attempt


async def test_cancel_reaches_messages_in_backoff_and_answers_final_counts(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    for _ in range(6):
        await make_client()
    await sim.set_faults(fail_rate=1.0)
    mailing = await _create(api, clock)
    async with engine_driver(sim.url, clock) as driver:
        await driver.step()
        assert await _statuses(mailing["id"]) == [MessageStatus.PENDING] * 6
        result = (await api.execute(CANCEL, {"id": mailing["id"]}))["cancelMailing"]
        assert result["status"] == "CANCELLED"
        assert result["stats"] == {
            "total": 6, "pending": 0, "sent": 0, "failed": 0, "expired": 0, "cancelled": 6
        }  # fmt: skip
        await sim.set_faults(fail_rate=0.0)
        clock.advance(minutes=5)
        await driver.step()
    assert sim.stats()["accepted"] == 0


async def test_retargeting_reaches_messages_that_wait(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    a_phones = {(await make_client(tag="a")).phone for _ in range(3)}
    for _ in range(3):
        await make_client(tag="b")
    await sim.set_faults(rate_limit_rate=1.0)
    mailing = await _create(api, clock, filter={"operatorCodes": [], "tags": ["a", "b"]})
    async with engine_driver(sim.url, clock) as driver:
        await driver.step()  # every message now waits for the rate limit
        narrowed = await _update(api, mailing["id"], filter={"operatorCodes": [], "tags": ["a"]})
        assert narrowed["stats"]["cancelled"] == 3
        await sim.set_faults(rate_limit_rate=0.0)
        clock.advance(seconds=2)
        await driver.run_until(lambda: _count(mailing["id"], MessageStatus.SENT, 3))
    assert {row[3] for row in sim.ledger.accepted_list()} == {int(p) for p in a_phones}


async def test_a_client_that_matches_again_gets_its_message_back(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    phones = {(await make_client(tag=tag)).phone for tag in ("a", "a", "b", "b")}
    await sim.set_faults(rate_limit_rate=1.0)
    mailing = await _create(api, clock, filter={"operatorCodes": [], "tags": ["a", "b"]})
    async with engine_driver(sim.url, clock) as driver:
        await driver.step()
        await _update(api, mailing["id"], filter={"operatorCodes": [], "tags": ["a"]})
        widened = await _update(
            api, mailing["id"], filter={"operatorCodes": [], "tags": ["a", "b"]}
        )
        assert (widened["stats"]["pending"], widened["stats"]["cancelled"]) == (4, 0)
        await sim.set_faults(rate_limit_rate=0.0)
        clock.advance(seconds=2)
        await driver.run_until(lambda: _all_sent(mailing["id"], 4))
    assert {row[3] for row in sim.ledger.accepted_list()} == {int(p) for p in phones}
    assert sim.stats()["duplicates"] == 0


async def _count(mailing_id: str, status: MessageStatus, n: int) -> bool:
    return (await _statuses(mailing_id)).count(status) == n


async def test_messages_are_created_when_the_audience_is_built(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    await make_client()
    start = NINE + timedelta(minutes=10)
    mailing = await _create(api, clock, startAt=start.isoformat())
    async with engine_driver(sim.url, clock) as driver:
        clock.advance(minutes=15)
        await driver.step()
    (message,) = await Message.filter(mailing_id=key(mailing["id"]))
    assert message.created_at == NINE + timedelta(minutes=15)


async def test_a_row_the_database_refuses_does_not_block_the_others(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    for _ in range(8):
        await make_client()
    await sim.set_faults(fail_rate=1.0)
    mailing = await _create(api, clock)
    async with engine_driver(sim.url, clock) as driver:
        await driver.engine.sweep_once()  # builds the audience
        poison = min(await _ids(mailing["id"]))
        async with _refusing_the_answer_of(poison):
            await driver.step()
        rows = {m.id: m for m in await Message.filter(mailing_id=key(mailing["id"]))}
        assert rows[poison].last_error == "(the provider's answer could not be stored)"
        assert all(m.last_error.startswith("HTTP 500") for i, m in rows.items() if i != poison)
        assert all(m.attempts == 1 and m.leased_until is None for m in rows.values())
        await sim.set_faults(fail_rate=0.0)
        clock.advance(minutes=5)
        await driver.run_until(lambda: _all_sent(mailing["id"], 8))
    assert sim.stats()["duplicates"] == 0


async def _ids(mailing_id: str) -> list[int]:
    return list(await Message.filter(mailing_id=key(mailing_id)).values_list("id", flat=True))


class _refusing_the_answer_of:  # noqa: N801 - reads as a phrase in `async with`
    """A database trigger that refuses to store a 500's reason on one message."""

    def __init__(self, message_id: int) -> None:
        self.message_id = message_id

    async def __aenter__(self) -> None:
        conn = connection()
        if is_postgres(conn):
            await conn.execute_script(
                "CREATE FUNCTION refuse_answer() RETURNS trigger AS $$ BEGIN"
                f" IF NEW.id = {self.message_id} AND NEW.last_error LIKE 'HTTP 500%' THEN"
                " RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END"
                " $$ LANGUAGE plpgsql;"
                " CREATE TRIGGER refuse_answer BEFORE UPDATE ON message"
                " FOR EACH ROW EXECUTE FUNCTION refuse_answer();"
            )
        else:
            await conn.execute_script(
                "CREATE TRIGGER refuse_answer BEFORE UPDATE ON message"
                f" WHEN NEW.id = {self.message_id} AND NEW.last_error LIKE 'HTTP 500%'"
                " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
            )

    async def __aexit__(self, *_: object) -> None:
        conn = connection()
        await execute(
            conn,
            "DROP TRIGGER IF EXISTS refuse_answer" + (" ON message" if is_postgres(conn) else ""),
        )
        if is_postgres(conn):
            await execute(conn, "DROP FUNCTION IF EXISTS refuse_answer()")


async def test_a_mailing_moved_later_and_retargeted_reaches_its_new_audience(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    """Narrowed to other clients and moved later in one edit, a mailing once finished at its
    new start with nothing sent to them: the edit cancelled every waiting message, and the
    tend that started it again saw nothing pending before it re-targeted."""
    for _ in range(2):
        await make_client(tag="a")
    b_phones = {(await make_client(tag="b")).phone for _ in range(2)}
    await sim.set_faults(rate_limit_rate=1.0)
    mailing = await _create(api, clock, filter={"operatorCodes": [], "tags": ["a"]})
    async with engine_driver(sim.url, clock) as driver:
        await driver.step()  # the two messages to tag a wait out a rate limit
        later = clock.now + timedelta(minutes=10)
        moved = await _update(
            api,
            mailing["id"],
            startAt=later.isoformat(),
            filter={"operatorCodes": [], "tags": ["b"]},
        )
        assert moved["status"] == "SCHEDULED"
        assert (moved["stats"]["pending"], moved["stats"]["cancelled"]) == (0, 2)
        await sim.set_faults(rate_limit_rate=0.0)
        clock.advance(minutes=10)
        await driver.run_until(lambda: _count(mailing["id"], MessageStatus.SENT, 2))
    assert {row[3] for row in sim.ledger.accepted_list()} == {int(p) for p in b_phones}
    assert await _mailing_status(mailing["id"]) is MailingStatus.FINISHED
