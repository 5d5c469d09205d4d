"""Liveness is progress, and answers within bounds (issue 19), in process under a moved clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from models import Message, MessageStatus
from provider_sim import SimulatorServer, running_simulator
from tasks.liveness import LOOPS, LoopProgress
from tasks.retry import MAX_RETRY_AFTER
from tasks.send_results import parse_retry_after
from tests.conftest import GraphQLClient
from tests.support.api import MAILING_RESULT, key
from tests.support.factories import make_client
from tests.support.inprocess import (  # noqa: F401 (clock_at_nine: the clock fixture)
    FakeClock,
    clock_at_nine,
    engine_driver,
)

CREATE = (
    f"mutation($input: MailingInput!) {{ createMailing(input: $input) {{ {MAILING_RESULT} }} }}"
)


@pytest.fixture
async def sim(db: str) -> AsyncIterator[SimulatorServer]:
    async with running_simulator(seed=19) as server:
        yield server


@pytest.mark.parametrize("value", ["1e12", "86400", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_retry_after_is_at_most_an_hour(value: str) -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now) == MAX_RETRY_AFTER


def test_a_loop_that_fails_every_round_is_stalled_and_says_why() -> None:
    now = [100.0]
    progress = LoopProgress(lambda: now[0])
    failed: list[str] = []
    progress.on_failure = failed.append
    progress.done("dispatcher", "claimed 5")
    now[0] += 40
    progress.failed("recorder", ConnectionResetError())
    progress.done("sweeper", "swept")
    progress.done("builder", "idle")
    progress.done("dispatcher", "idle")
    assert progress.worst() == ("recorder", 40.0)
    snapshot = progress.snapshot()
    assert snapshot["recorder"] == {
        "last": "started",
        "seconds_ago": 40.0,
        "failures": 1,
        "last_error": "ConnectionResetError",
    }
    assert snapshot["dispatcher"]["last"] == "idle"
    assert failed == ["recorder"]
    assert set(snapshot) == set(LOOPS)


async def test_an_absurd_retry_after_parks_a_message_for_an_hour(
    gql: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    # Before: parked for as long as the provider said (here 31 years; 1e12
    # raised OverflowError in the send task, and the message stayed leased).
    await make_client()
    await sim.set_faults(rate_limit_rate=1.0, retry_after=999_999_999)
    payload = {
        "text": "Hello",
        "startAt": clock.now.isoformat(),
        "endAt": (clock.now + timedelta(hours=3)).isoformat(),
    }
    created = (await gql.execute(CREATE, {"input": payload}))["createMailing"]
    async with engine_driver(sim.url, clock) as driver:
        await driver.step()
        assert sim.stats()["requests"] == 1
    (message,) = await Message.filter(mailing_id=key(created["id"]))
    assert message.status == MessageStatus.PENDING
    assert message.leased_until is None
    assert message.next_attempt_at == clock.now + timedelta(seconds=MAX_RETRY_AFTER)
