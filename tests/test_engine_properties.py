"""A stateful property test of the whole sending path: the API, the engine and a provider.

Hypothesis plays an operator and a provider at once: random sequences of
creating, editing (text, filter, window, start, end), pausing, resuming,
cancelling and deleting mailings, deleting and re-tagging clients, changing
how the provider behaves, moving the clock, and letting the engine work. The
API runs in process over ASGI, the engine is stepped, the simulator is a real
HTTP server on loopback, the database is the real one; one fake clock rules
them all, so hours pass in milliseconds.

After every step these hold:

- no message is accepted by the provider again once it answered (a retry
  after an answer that never came reuses the msgId, as the SPEC allows);
- every acceptance happened inside its mailing's ``[startAt, endAt)``, inside
  its client's send window, while the mailing was running (not paused,
  cancelled or deleted), to a client that existed and matched the filter;
- every answered acceptance is ``SENT``, and every ``SENT`` was accepted;
- nothing is ``EXPIRED`` before its mailing's end, and nothing is ``FAILED``
  but what the provider rejected;
- the counters equal the rows, and no mailing is FINISHED while its
  audience is still being built (two clients a chunk, so builds span steps);

and at the end, once the provider behaves and the clock passes every end,
every mailing is FINISHED or CANCELLED with nothing pending.

``PROPERTY_EXAMPLES`` sets how many sequences run (``make test``: a few
dozen; ``make soak``: hundreds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from models import SendWindow
from models.db import connection, fetch
from provider_sim import SimulatorServer, running_simulator
from tests.conftest import GraphQLClient, truncate_all
from tests.support.api import MAILING_RESULT, key
from tests.support.factories import make_client
from tests.support.inprocess import EngineDriver, FakeClock, api_client, engine_driver

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

T = TypeVar("T")

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "100"))
STEPS = int(os.environ.get("PROPERTY_STEPS", "40"))
SHRINK = os.environ.get("PROPERTY_SHRINK", "1") != "0"
START = datetime(2030, 3, 4, 6, 0, tzinfo=UTC)
TAGS = ("a", "b", "c")
ZONES = ("UTC", "Asia/Tokyo", "America/New_York")
SEND_TIMEOUT = 0.3  # real seconds: hung requests give up quickly

CREATE = (
    f"mutation($input: MailingInput!) {{ createMailing(input: $input) {{ {MAILING_RESULT} }} }}"
)
UPDATE = f"""mutation($id: ID!, $input: MailingPatch!) {{
    updateMailing(id: $id, input: $input) {{ {MAILING_RESULT} }}
}}"""
LIFECYCLE = {
    name: f"mutation($id: ID!) {{ {name}(id: $id) {{ {MAILING_RESULT} }} }}"
    for name in ("pauseMailing", "resumeMailing", "cancelMailing")
}
DELETE_MAILING = "mutation($id: ID!) { deleteMailing(id: $id) { __typename } }"
UPDATE_CLIENT = """mutation($id: ID!, $input: ClientPatch!) {
    updateClient(id: $id, input: $input) { __typename }
}"""
DELETE_CLIENT = "mutation($id: ID!) { deleteClient(id: $id) { __typename } }"

PROVIDERS: dict[str, dict[str, Any]] = {
    "healthy": {},
    "failing": {"fail_rate": 1.0},
    "flaky": {"fail_rate": 0.3, "reset_rate": 0.1, "garbage_rate": 0.1},
    "rate_limited": {"rate_limit_rate": 1.0},
    "hanging": {"hang_rate": 0.5},
    "rejecting": {"reject_rate": 0.5},
    "refusing_our_token": {"token": "someone-else"},
    "down": {"down": True},
    # Accepted, then answered never, or late: the answer that never came is
    # the one case where a retry may be accepted again (same msgId).
    "accepting_silently": {"accept_hang_rate": 0.5},
    "answering_late": {"accept_late_rate": 0.5, "late_by": 100},
    "hostile": {"nul_rate": 0.5},
    "throttling": {"max_rps": 3},
}
_NORMAL = {
    "fail_rate": 0.0,
    "reset_rate": 0.0,
    "garbage_rate": 0.0,
    "rate_limit_rate": 0.0,
    "hang_rate": 0.0,
    "reject_rate": 0.0,
    "token": None,
    "down": False,
    "accept_hang_rate": 0.0,
    "accept_late_rate": 0.0,
    "nul_rate": 0.0,
    "max_rps": 0,
}


@dataclass
class MailingModel:
    """What the operator set, as the API confirmed it."""

    id: int
    start: datetime
    end: datetime
    tags: tuple[str, ...]
    window: SendWindow | None
    status: str
    deleted: bool = False


@dataclass
class ClientModel:
    id: int
    tag: str
    timezone: str
    deleted: bool = False


@dataclass
class World:
    clients: dict[int, ClientModel] = field(default_factory=dict)
    mailings: dict[int, MailingModel] = field(default_factory=dict)


def _window(value: tuple[int, int] | None) -> dict[str, str] | None:
    if value is None:
        return None
    start, end = value
    return {"start": f"{start:02d}:00", "end": f"{end:02d}:00"}


windows = st.one_of(
    st.none(),
    st.tuples(st.integers(0, 23), st.integers(0, 23)).filter(lambda w: w[0] != w[1]),
)
tag_filters = st.lists(st.sampled_from(TAGS), unique=True, max_size=2).map(tuple)


TALLY: dict[str, int] = {}


def _tally(name: str, n: int = 1) -> None:
    TALLY[name] = TALLY.get(name, 0) + n


class SendingMachine(RuleBasedStateMachine):
    """One operator, one provider, one engine, one clock."""

    mailings = Bundle("mailings")
    clients = Bundle("clients")

    def __init__(self) -> None:
        super().__init__()
        self.loop = LOOP
        self.sim = SIM
        self.clock = FakeClock(START)
        self.world = World()
        self._stack = contextlib.ExitStack()
        from models import clock as service_clock

        self._stack.enter_context(service_clock.use_clock(self.clock))
        self.run(self._setup())

    # -- plumbing -------------------------------------------------------------

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(60)

    async def _setup(self) -> None:
        await truncate_all()
        await self.sim.set_faults(**_NORMAL)
        self.sim.reset()
        self._api_cm = api_client()
        self.api: GraphQLClient = await self._api_cm.__aenter__()
        self._engine_cm = engine_driver(
            self.sim.url,
            self.clock,
            send_timeout=SEND_TIMEOUT,
            send_connect_timeout=SEND_TIMEOUT,
            retry_base_delay=30.0,
            retry_max_delay=600.0,
            breaker_failure_threshold=3,
            # Audiences of a few clients still take several steps to build,
            # so every rule meets mailings mid-build.
            audience_chunk_size=2,
        )
        self.engine: EngineDriver = await self._engine_cm.__aenter__()
        self.seen_requests = 0

    def teardown(self) -> None:
        try:
            self.run(self._finish())
        finally:
            self.run(self._close())
            self._stack.close()

    async def _close(self) -> None:
        await self._engine_cm.__aexit__(None, None, None)
        await self._api_cm.__aexit__(None, None, None)

    async def _finish(self) -> None:
        """The provider behaves, the clock passes every end: everything ends final."""
        await self.sim.set_faults(**_NORMAL)
        ends = [m.end for m in self.world.mailings.values()]
        last = max([self.clock.now, *ends]) + timedelta(minutes=10)
        for _ in range(80):
            await self._step()
            rows = await fetch(
                connection(),
                "SELECT m.id, m.status, s.pending FROM mailing m"
                " JOIN mailing_stats s ON s.mailing_id = m.id",
            )
            if all(r["status"] in ("FINISHED", "CANCELLED") and r["pending"] == 0 for r in rows):
                counts = await fetch(
                    connection(), "SELECT status, COUNT(*) AS n FROM message GROUP BY status"
                )
                for row in counts:
                    _tally(f"final:{row['status']}", int(row["n"]))
                return
            # Through every window, breaker time and backoff, to past every end.
            self.clock.now = min(last, self.clock.now + timedelta(minutes=20))
        raise AssertionError(f"mailings never ended: {rows}")

    # -- the operator -----------------------------------------------------------

    @initialize(
        target=clients,
        people=st.lists(
            st.tuples(st.sampled_from(TAGS), st.sampled_from(ZONES)), min_size=3, max_size=10
        ),
    )
    def a_directory(self, people: list[tuple[str, str]]) -> Any:
        return multiple(*(self.add_client(tag, zone) for tag, zone in people))

    @rule(target=clients, tag=st.sampled_from(TAGS), zone=st.sampled_from(ZONES))
    def add_client(self, tag: str, zone: str) -> int:
        row = self.run(make_client(tag=tag, timezone=zone))
        self.world.clients[row.id] = ClientModel(row.id, tag, zone)
        return row.id

    @rule(
        target=mailings,
        start_in=st.integers(-60, 180),
        minutes=st.integers(1, 24 * 60),
        tags=tag_filters,
        window=windows,
    )
    def create_mailing(
        self, start_in: int, minutes: int, tags: tuple[str, ...], window: tuple[int, int] | None
    ) -> int:
        start = self.clock.now + timedelta(minutes=start_in)
        end = start + timedelta(minutes=minutes)
        payload = {
            "text": "Hello",
            "startAt": start.isoformat(),
            "endAt": end.isoformat(),
            "filter": {"operatorCodes": [], "tags": list(tags)},
            "sendWindow": _window(window),
        }
        result = self._mutate(CREATE, {"input": payload}, "createMailing")
        if end <= self.clock.now:
            assert result["__typename"] == "ValidationError", result
            return -1
        assert result["__typename"] == "Mailing", result
        mailing_id = key(result["id"])
        self.world.mailings[mailing_id] = MailingModel(
            mailing_id,
            start,
            end,
            tags,
            None if window is None else SendWindow.from_minutes(window[0] * 60, window[1] * 60),
            result["status"],
        )
        return mailing_id

    @rule(
        mailing=mailings,
        change=st.one_of(
            st.tuples(st.just("text"), st.text("abc xyz", min_size=1, max_size=20)),
            st.tuples(st.just("tags"), tag_filters),
            st.tuples(st.just("window"), windows),
            st.tuples(st.just("start"), st.integers(-60, 240)),
            st.tuples(st.just("end"), st.integers(-30, 24 * 60)),
        ),
    )
    def update_mailing(self, mailing: int, change: tuple[str, Any]) -> None:
        model = self.world.mailings.get(mailing)
        if model is None or model.deleted:
            return
        what, value = change
        patch: dict[str, Any]
        if what == "text":
            patch = {"text": value}
        elif what == "tags":
            patch = {"filter": {"operatorCodes": [], "tags": list(value)}}
        elif what == "window":
            patch = {"sendWindow": _window(value)}
        elif what == "start":
            patch = {"startAt": (self.clock.now + timedelta(minutes=value)).isoformat()}
        else:
            patch = {"endAt": (self.clock.now + timedelta(minutes=value)).isoformat()}
        result = self._mutate(UPDATE, {"id": str(mailing), "input": patch}, "updateMailing")
        if result["__typename"] != "Mailing":
            assert result["__typename"] in ("ValidationError", "ConflictError"), result
            return
        model.status = result["status"]
        model.start = datetime.fromisoformat(result["startAt"])
        model.end = datetime.fromisoformat(result["endAt"])
        model.tags = tuple(result["filter"]["tags"])
        window = result["sendWindow"]
        model.window = (
            None
            if window is None
            else SendWindow.from_minutes(
                int(window["start"][:2]) * 60 + int(window["start"][3:]),
                int(window["end"][:2]) * 60 + int(window["end"][3:]),
            )
        )

    @rule(mailing=mailings, action=st.sampled_from(sorted(LIFECYCLE)))
    def change_status(self, mailing: int, action: str) -> None:
        model = self.world.mailings.get(mailing)
        if model is None or model.deleted:
            return
        result = self._mutate(LIFECYCLE[action], {"id": str(mailing)}, action)
        if result["__typename"] == "Mailing":
            model.status = result["status"]
            if action == "cancelMailing":
                assert result["stats"]["cancelled"] >= 0

    @rule(mailing=consumes(mailings))
    def delete_mailing(self, mailing: int) -> None:
        model = self.world.mailings.get(mailing)
        if model is None:
            return
        result = self._mutate(DELETE_MAILING, {"id": str(mailing)}, "deleteMailing")
        assert result["__typename"] == "Deleted", result
        model.deleted = True

    @rule(client=clients, tag=st.sampled_from(TAGS))
    def retag_client(self, client: int, tag: str) -> None:
        model = self.world.clients[client]
        if model.deleted:
            return
        result = self._mutate(
            UPDATE_CLIENT, {"id": str(client), "input": {"tag": tag}}, "updateClient"
        )
        assert result["__typename"] == "Client", result
        model.tag = tag

    @rule(client=consumes(clients))
    def delete_client(self, client: int) -> None:
        result = self._mutate(DELETE_CLIENT, {"id": str(client)}, "deleteClient")
        assert result["__typename"] == "Deleted", result
        self.world.clients[client].deleted = True

    def _mutate(self, query: str, variables: dict[str, Any], name: str) -> dict[str, Any]:
        data = self.run(self.api.execute(query, variables))
        _tally(f"{name}:{data[name]['__typename']}")
        # What the Huey job would do in a worker: wake the engine up.
        self.engine.engine.wake()
        return dict(data[name])

    # -- the provider and time ------------------------------------------------

    @rule(behaviour=st.sampled_from(sorted(PROVIDERS)))
    def provider_behaves(self, behaviour: str) -> None:
        self.run(self.sim.set_faults(**{**_NORMAL, **PROVIDERS[behaviour]}))

    @rule(minutes=st.sampled_from([0.01, 0.5, 1, 5, 30, 60, 240, 720]))
    def time_passes(self, minutes: float) -> None:
        self.clock.now += timedelta(minutes=minutes)
        self.run(self._step())

    @rule()
    def engine_works(self) -> None:
        self.run(self._step())

    async def _step(self) -> None:
        await self.engine.step(settle=SEND_TIMEOUT * 10)
        await self._check_new_arrivals()

    # -- what must hold -------------------------------------------------------

    async def _check_new_arrivals(self) -> None:
        """Every request accepted in this step (at this instant) was allowed now."""
        requests = self.sim.ledger.requests_list()[self.seen_requests :]
        self.seen_requests += len(requests)
        accepted = [int(message_id) for message_id, _, _, taken in requests if taken]
        _tally("requests", len(requests))
        _tally("accepted", len(accepted))
        if not accepted:
            return
        rows = await fetch(
            connection(),
            "SELECT id, mailing_id, client_id, timezone FROM message WHERE id IN ("
            + ", ".join(str(i) for i in accepted)
            + ")",
        )
        now = self.clock.now
        for row in rows:
            mailing = self.world.mailings[int(row["mailing_id"])]
            where = f"message {row['id']} of mailing {mailing} accepted at {now}"
            assert mailing.start <= now < mailing.end, where
            assert not mailing.deleted, where
            assert mailing.status == "RUNNING" or self._started_running(mailing), where
            if mailing.window is not None:
                assert mailing.window.is_open(str(row["timezone"]), now), where
            client = self.world.clients.get(int(row["client_id"] or 0))
            assert client is not None, where
            assert not client.deleted, where
            assert not mailing.tags or client.tag in mailing.tags, where

    def _started_running(self, mailing: MailingModel) -> bool:
        # A SCHEDULED mailing whose start has come is started by the sweep in the same step.
        return mailing.status == "SCHEDULED" and mailing.start <= self.clock.now

    @invariant()
    def nothing_is_accepted_twice_and_accepted_is_sent(self) -> None:
        if not hasattr(self, "engine"):
            return
        self.run(self._check_accepted())

    async def _check_accepted(self) -> None:
        answered: set[int] = set()  # accepted, and the answer said so
        unanswered: dict[int, int] = {}  # accepted, never answered: how many times
        for message_id, _, outcome, accepted in self.sim.ledger.requests_list():
            if not accepted:
                continue
            where = f"message {message_id} accepted again after an answer"
            assert message_id not in answered, where
            if outcome == "accepted_hang":
                unanswered[message_id] = unanswered.get(message_id, 0) + 1
            else:
                answered.add(message_id)
        sent = {
            int(r["id"])
            for r in await fetch(connection(), "SELECT id FROM message WHERE status = 'SENT'")
        }
        # SENT is what the provider said yes to; a silent acceptance is unknown to us.
        assert sent <= answered | set(unanswered), sent - answered - set(unanswered)
        assert answered <= sent, answered - sent

    @invariant()
    def counters_equal_rows_and_finals_are_earned(self) -> None:
        if not hasattr(self, "engine"):
            return
        self.run(self._check_rows())

    async def _check_rows(self) -> None:
        conn = connection()
        counted = await fetch(
            conn,
            "SELECT mailing_id, status, COUNT(*) AS n FROM message GROUP BY mailing_id, status",
        )
        by_mailing: dict[int, dict[str, int]] = {}
        for row in counted:
            by_mailing.setdefault(int(row["mailing_id"]), {})[str(row["status"]).lower()] = int(
                row["n"]
            )
        for stats in await fetch(conn, "SELECT * FROM mailing_stats"):
            rows = by_mailing.get(int(stats["mailing_id"]), {})
            for column in ("pending", "sent", "failed", "expired", "cancelled"):
                assert int(stats[column]) == rows.get(column, 0), (column, stats, rows)
            assert int(stats["total"]) == sum(rows.values()), (stats, rows)
        for row in await fetch(
            conn, "SELECT id, mailing_id, last_error FROM message WHERE status = 'EXPIRED'"
        ):
            mailing = self.world.mailings[int(row["mailing_id"])]
            assert self.clock.now >= mailing.end, f"message {row['id']} expired before the end"
        for row in await fetch(conn, "SELECT id, last_error FROM message WHERE status = 'FAILED'"):
            assert str(row["last_error"]).startswith("HTTP 400"), row
        building = await fetch(
            conn,
            "SELECT id FROM mailing WHERE status = 'FINISHED' AND audience_cursor IS NOT NULL",
        )
        assert not building, f"FINISHED while its audience is built: {building}"


LOOP: asyncio.AbstractEventLoop
SIM: SimulatorServer


async def test_sending_holds_its_promises_whatever_happens(db: str) -> None:
    global LOOP, SIM
    LOOP = asyncio.get_running_loop()
    async with running_simulator(seed=11) as sim:
        SIM = sim
        await asyncio.to_thread(
            run_state_machine_as_test,
            SendingMachine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                # Fixed sequences in `make test`; new ones each time in `make soak`.
                derandomize=os.environ.get("PROPERTY_RANDOM", "0") == "0",
                print_blob=True,
                # Shrinking a failure of slow steps takes minutes: PROPERTY_SHRINK=0 skips it.
                phases=[p for p in Phase if p is not Phase.shrink or SHRINK],
            ),
        )
    print("what the sequences did:", dict(sorted(TALLY.items())))
    # A run that never got a message accepted, or never cancelled one, proves little.
    assert TALLY.get("accepted", 0) > 0
    assert TALLY.get("cancelMailing:Mailing", 0) > 0
