"""An audience built in committed chunks: sending starts at once, and every rule holds mid-build.

In process, under a clock the test moves: each tend adds one chunk of
``AUDIENCE_CHUNK_SIZE`` clients, so a test sees every state between two
chunks. A real worker killed in the middle of a build is in
``test_engine.py``'s style at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from models import Mailing, MailingStats, MailingStatus, Message, MessageStatus
from models.db import connection, fetch
from provider_sim import SimulatorServer, running_simulator
from tasks.tend import tend_mailing
from tests.conftest import GraphQLClient
from tests.support.api import MAILING_RESULT, key
from tests.support.engine import Simulator, Worker, add_clients, start_mailing, wait_until
from tests.support.factories import make_client
from tests.support.inprocess import (  # noqa: F401 (clock_at_nine: the clock fixture)
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
LIFECYCLE = "mutation($id: ID!) {{ {name}(id: $id) {{ {result} }} }}"


@pytest.fixture
def api(gql: GraphQLClient, clock: FakeClock) -> GraphQLClient:
    """The API in process, reading ``clock`` for the time."""
    return gql


@pytest.fixture
async def sim(db: str) -> AsyncIterator[SimulatorServer]:
    async with running_simulator(seed=5) as server:
        yield server


async def _create(api: GraphQLClient, clock: FakeClock, **fields: Any) -> int:
    payload = {
        "text": "Hello",
        "startAt": clock.now.isoformat(),
        "endAt": (clock.now + timedelta(hours=1)).isoformat(),
        **fields,
    }
    result = (await api.execute(CREATE, {"input": payload}))["createMailing"]
    assert result["__typename"] == "Mailing", result
    return key(result["id"])


async def _lifecycle(api: GraphQLClient, name: str, mailing_id: int) -> None:
    selection = "__typename" if name == "deleteMailing" else MAILING_RESULT
    query = LIFECYCLE.format(name=name, result=selection)
    result = (await api.execute(query, {"id": str(mailing_id)}))[name]
    assert result["__typename"] in ("Mailing", "Deleted"), result


async def _progress(mailing_id: int) -> tuple[MailingStatus, int, int | None]:
    """Status, ``stats.total`` and the build's cursor."""
    mailing = await Mailing.get(id=mailing_id)
    stats = await MailingStats.get(mailing_id=mailing_id)
    return mailing.status, int(stats.total), mailing.audience_cursor


async def _clients_with_messages(mailing_id: int) -> list[int]:
    rows = await fetch(
        connection(),
        "SELECT client_id FROM message WHERE mailing_id = $1 ORDER BY client_id",
        mailing_id,
    )
    return [int(r["client_id"]) for r in rows]


async def test_audience_is_built_in_committed_chunks(api: GraphQLClient, clock: FakeClock) -> None:
    clients = [(await make_client()).id for _ in range(7)]
    mailing_id = await _create(api, clock)
    assert await tend_mailing(mailing_id, clock.now, chunk=3) is MailingStatus.RUNNING
    assert await _progress(mailing_id) == (MailingStatus.RUNNING, 3, clients[2])
    assert await _clients_with_messages(mailing_id) == clients[:3]
    # Clients created after the start are not in its audience.
    await make_client()
    await tend_mailing(mailing_id, clock.now, chunk=3)
    assert await _progress(mailing_id) == (MailingStatus.RUNNING, 6, clients[5])
    await tend_mailing(mailing_id, clock.now, chunk=3)
    assert await _progress(mailing_id) == (MailingStatus.RUNNING, 7, None)
    await tend_mailing(mailing_id, clock.now, chunk=3)
    assert await _clients_with_messages(mailing_id) == clients
    stats = await MailingStats.get(mailing_id=mailing_id)
    assert (stats.total, stats.pending) == (7, 7)


async def test_a_chunk_done_twice_adds_nothing_twice(api: GraphQLClient, clock: FakeClock) -> None:
    """What a build resumed after a crash does: chunks already committed come again."""
    clients = [(await make_client()).id for _ in range(5)]
    mailing_id = await _create(api, clock)
    await tend_mailing(mailing_id, clock.now, chunk=2)
    await tend_mailing(mailing_id, clock.now, chunk=2)
    await Mailing.filter(id=mailing_id).update(audience_cursor=clients[0] - 1)
    for _ in range(4):
        await tend_mailing(mailing_id, clock.now, chunk=2)
    assert await _clients_with_messages(mailing_id) == clients
    assert await _progress(mailing_id) == (MailingStatus.RUNNING, 5, None)


async def test_a_mailing_is_not_finished_while_its_audience_is_built(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    for tag in "abbba":
        await make_client(tag=tag)
    mailing_id = await _create(api, clock, filter={"operatorCodes": [], "tags": ["a"]})
    async with engine_driver(sim.url, clock, audience_chunk_size=2) as driver:
        # A step tends (clients 1-2: one message), sends it before the rest of
        # the audience exists, then tends again (clients 3-4: none match):
        # nothing is pending, and the mailing still runs.
        await driver.step()
        status, total, cursor = await _progress(mailing_id)
        assert (status, total) == (MailingStatus.RUNNING, 1)
        assert cursor is not None
        assert (await MailingStats.get(mailing_id=mailing_id)).pending == 0
        assert sim.stats()["accepted"] == 1
        await driver.step()
        assert await _progress(mailing_id) == (MailingStatus.FINISHED, 2, None)
    assert sim.stats()["accepted"] == 2


async def test_the_end_passing_mid_build_expires_the_whole_audience(
    api: GraphQLClient, clock: FakeClock
) -> None:
    for _ in range(5):
        await make_client()
    mailing_id = await _create(api, clock, endAt=(clock.now + timedelta(minutes=1)).isoformat())
    await tend_mailing(mailing_id, clock.now, chunk=2)
    later = clock.advance(minutes=2)
    assert await tend_mailing(mailing_id, later, chunk=2) is MailingStatus.RUNNING
    assert await tend_mailing(mailing_id, later, chunk=2) is MailingStatus.FINISHED
    stats = await MailingStats.get(mailing_id=mailing_id)
    assert (stats.total, stats.expired, stats.pending) == (5, 5, 0)


async def test_cancel_mid_build_stops_it(api: GraphQLClient, clock: FakeClock) -> None:
    for _ in range(5):
        await make_client()
    mailing_id = await _create(api, clock)
    await tend_mailing(mailing_id, clock.now, chunk=2)
    await _lifecycle(api, "cancelMailing", mailing_id)
    assert await tend_mailing(mailing_id, clock.now, chunk=2) is MailingStatus.CANCELLED
    assert await _progress(mailing_id) == (MailingStatus.CANCELLED, 2, None)
    assert (await MailingStats.get(mailing_id=mailing_id)).cancelled == 2


async def test_delete_mid_build_stops_it(api: GraphQLClient, clock: FakeClock) -> None:
    for _ in range(5):
        await make_client()
    mailing_id = await _create(api, clock)
    await tend_mailing(mailing_id, clock.now, chunk=2)
    await _lifecycle(api, "deleteMailing", mailing_id)
    await tend_mailing(mailing_id, clock.now, chunk=2)
    assert await Message.filter(mailing_id=mailing_id).count() == 2
    assert (await Mailing.get(id=mailing_id)).audience_cursor is None


async def test_a_paused_mailing_builds_on_and_sends_nothing_until_resumed(
    api: GraphQLClient, clock: FakeClock, sim: SimulatorServer
) -> None:
    for _ in range(6):
        await make_client()
    mailing_id = await _create(api, clock)
    await tend_mailing(mailing_id, clock.now, chunk=2)
    await _lifecycle(api, "pauseMailing", mailing_id)
    async with engine_driver(sim.url, clock, audience_chunk_size=2) as driver:
        await driver.step()
        assert await _progress(mailing_id) == (MailingStatus.PAUSED, 6, None)
        assert sim.stats()["requests"] == 0
        await _lifecycle(api, "resumeMailing", mailing_id)
        await driver.step()
        assert await _progress(mailing_id) == (MailingStatus.FINISHED, 6, None)
    assert sim.stats()["accepted"] == 6


async def test_retargeting_mid_build_builds_the_new_audience(
    api: GraphQLClient, clock: FakeClock
) -> None:
    tagged = [(await make_client(tag="ab"[i % 2])) for i in range(8)]
    a = [c.id for c in tagged if c.tag == "a"]
    b = [c.id for c in tagged if c.tag == "b"]
    mailing_id = await _create(api, clock, filter={"operatorCodes": [], "tags": ["a"]})
    await tend_mailing(mailing_id, clock.now, chunk=3)  # clients 1-3: a, b, a
    changed = (
        await api.execute(
            UPDATE,
            {"id": str(mailing_id), "input": {"filter": {"operatorCodes": [], "tags": ["b"]}}},
        )
    )["updateMailing"]
    assert changed["__typename"] == "Mailing", changed
    for _ in range(4):
        await tend_mailing(mailing_id, clock.now, chunk=3)
    mailing = await Mailing.get(id=mailing_id)
    assert (mailing.audience_version, mailing.audience_cursor) == (2, None)
    statuses = dict(await Message.filter(mailing_id=mailing_id).values_list("client_id", "status"))
    assert statuses == {
        **{client: MessageStatus.CANCELLED for client in a[:2]},
        **{client: MessageStatus.PENDING for client in b},
    }


async def test_a_worker_killed_mid_build_is_resumed_by_another(db: str) -> None:
    """A real worker, killed while it builds; the next one completes the audience, once each."""
    n = 10_000
    await add_clients(n)
    sim = Simulator("--latency", "50")
    # Small chunks, so the build takes many transactions and is cut between two.
    env = {"AUDIENCE_CHUNK_SIZE": "100", "SEND_CONCURRENCY": "4"}
    try:
        worker = Worker(sim, **env)
        mailing = await start_mailing()

        async def mid_build() -> bool:
            _, total, cursor = await _progress(mailing.id)
            return 500 <= total < n and cursor is not None

        await wait_until(mid_build, timeout=60, interval=0.01)
        worker.kill()
        status, cut_at, _ = await _progress(mailing.id)
        assert status is MailingStatus.RUNNING
        assert cut_at < n
        worker = Worker(sim, **{**env, "SEND_CONCURRENCY": "256"})

        async def finished() -> bool:
            return (await _progress(mailing.id))[0] is MailingStatus.FINISHED

        await wait_until(finished, timeout=240, interval=0.2)
        worker.stop()
    finally:
        await sim.close()
    (row,) = await fetch(
        connection(),
        "SELECT COUNT(*) AS n, COUNT(DISTINCT client_id) AS clients FROM message"
        " WHERE mailing_id = $1",
        mailing.id,
    )
    assert (int(row["n"]), int(row["clients"])) == (n, n)
    stats = await MailingStats.get(mailing_id=mailing.id)
    assert (stats.total, stats.sent) == (n, n)
