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
- a final status is never changed afterwards (a late outcome never
  overwrites a newer one), but for a message cancelled by re-targeting,
  which comes back when its client matches again;

and at the end, once the provider behaves and the clock passes every end,
every mailing is FINISHED or CANCELLED with nothing pending.

What happens while requests are in flight is played too: the simulator
holds its answers back (each request decided and recorded as it arrives)
while the operator pauses, cancels, edits, deletes or opts a client out, a
second engine works the same database, leases end and are reaped, an engine
crashes, or (PostgreSQL) the database refuses the engines' connections
through a fault proxy; then a rule lets the answers arrive. Only what the
SPEC lets a dead or frozen worker repeat may be accepted again: the
messages an engine held (leased) when it crashed, and those whose lease
ended; each once per such event.

``PROPERTY_EXAMPLES`` sets how many sequences run (``make test``: a few
dozen; ``make soak``: hundreds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
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
from tortoise import BaseDBAsyncClient, connections

from models import Message, MessageStatus, SendWindow
from models.db import connection, db_clock, fetch
from models.postgres_engine import GuardedAsyncpgClient
from models.services.opt_outs import opt_out_phones
from models.tortoise_config import connection_info
from provider_sim import SimulatorServer, running_simulator
from settings import get_settings
from tests.conftest import BACKEND, DATABASE_URL, GraphQLClient, truncate_all
from tests.support.api import MAILING_RESULT, key
from tests.support.factories import make_client, make_mailing
from tests.support.fault_proxy import FaultProxy, fault_proxy
from tests.support.inprocess import (
    EngineDriver,
    FakeClock,
    api_client,
    engine_driver,
    fake_clock,
    new_engine_driver,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

T = TypeVar("T")

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "100"))
STEPS = int(os.environ.get("PROPERTY_STEPS", "40"))
SHRINK = os.environ.get("PROPERTY_SHRINK", "1") != "0"
START = datetime(2030, 3, 4, 6, 0, tzinfo=UTC)
TAGS = ("a", "b", "c")
ZONES = ("UTC", "Asia/Tokyo", "America/New_York")
# Real seconds. The engine's own time limit never fires: answers held back
# wait for a rule to release them, whatever the machine's load. A hung
# request is dropped by the simulator instead, quickly (the engine sees a
# broken connection, which it treats as a timeout: transient).
SEND_TIMEOUT = 60.0
HANG_LIMIT = 0.05
SETTLE = 10.0  # at most this long for answers not held back: longer is a bug
REAP_GRACE = 15.0  # fake seconds the database must answer before leases are reaped
# The engines reach PostgreSQL through a proxy that can refuse them (the
# API does not: the operator acts meanwhile). SQLite is a file of the
# worker's own machine with no connection to refuse; its one refusal, a
# write lock held past the busy timeout, costs that timeout in real time
# per call and is tested on its own (tests/test_db_faults.py).
PROXIED = BACKEND == "postgres"

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
OPT_OUT = "mutation($phones: [String!]!) { optOutClients(phones: $phones) { __typename } }"

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
    phone: str
    tag: str
    timezone: str
    deleted: bool = False
    opted_out: bool = False


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
engines = st.integers(0, 1)  # which engine, of the one or two working


TALLY: dict[str, int] = {}


def _tally(name: str, n: int = 1) -> None:
    TALLY[name] = TALLY.get(name, 0) + n


class SendingMachine(RuleBasedStateMachine):
    """One operator, one provider, one or two engines, one clock."""

    mailings = Bundle("mailings")
    clients = Bundle("clients")

    def __init__(self) -> None:
        super().__init__()
        self.loop = LOOP
        self.sim = SIM
        self.clock = FakeClock(START)
        self.world = World()
        self.engines: list[EngineDriver] = []
        self.dead: list[int] = []  # the workers of crashed engines
        # How many more times each message may be accepted after an answer:
        # once per crash of an engine that held it, or per end of its lease.
        self.may_repeat: Counter[int] = Counter()
        # Held answers of crashed engines' requests: no engine waits for them.
        self.orphans: Counter[int] = Counter()
        # Every final status seen (with its mailing), which must never change.
        self.finals: dict[int, tuple[str, int]] = {}
        self.refused = 0  # for how many more engine steps the database refuses them
        self.refusals = 0
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
        self.api = API
        self.engines.append(self._new_engine())
        self.seen_requests = 0

    def _new_engine(self) -> EngineDriver:
        return new_engine_driver(
            self.sim.url,
            self.clock,
            send_timeout=SEND_TIMEOUT,
            send_connect_timeout=SEND_TIMEOUT,
            retry_base_delay=30.0,
            retry_max_delay=600.0,
            breaker_failure_threshold=3,
            reap_grace=REAP_GRACE,
            # Audiences of a few clients still take several steps to build,
            # so every rule meets mailings mid-build.
            audience_chunk_size=2,
        )

    def teardown(self) -> None:
        try:
            self.run(self._finish())
        finally:
            self.run(self._close())
            self._stack.close()

    async def _close(self) -> None:
        self.sim.release_answers()
        if PROXIED:
            PROXY.restore()
        for driver in self.engines:
            await driver.aclose()

    async def _finish(self) -> None:
        """The provider behaves, the clock passes every end: everything ends final."""
        await self.sim.set_faults(**_NORMAL)
        await self._answers_arrive()
        if PROXIED:
            PROXY.restore()
        self.refused = 0
        ends = [m.end for m in self.world.mailings.values()]
        last = max([self.clock.now, *ends]) + timedelta(minutes=10)
        for i in range(80):
            # The dead engines' leases end (as time passes for real), to be reaped.
            await self._end_leases(self.dead)
            await self._step(self.engines[i % len(self.engines)])
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
                _tally("repeats allowed and made", await self._check())
                return
            # Through every window (an hour at least: steps shorter than that
            # stop in each), breaker time and backoff, to past every end.
            self.clock.now = min(last, self.clock.now + timedelta(minutes=50))
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
        self.world.clients[row.id] = ClientModel(row.id, row.phone, tag, zone)
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

    @rule(client=clients, change=st.sampled_from([*TAGS, "opted out"]))
    def client_changes(self, client: int, change: str) -> None:
        """The client gets another tag, or opts out (its phone goes on the stop list)."""
        model = self.world.clients[client]
        if change == "opted out":
            result = self._mutate(OPT_OUT, {"phones": [model.phone]}, "optOutClients")
            assert result["__typename"] == "OptOutSummary", result
            model.opted_out = True
            return
        if model.deleted:
            return
        result = self._mutate(
            UPDATE_CLIENT, {"id": str(client), "input": {"tag": change}}, "updateClient"
        )
        assert result["__typename"] == "Client", result
        model.tag = change

    @rule(client=consumes(clients))
    def delete_client(self, client: int) -> None:
        result = self._mutate(DELETE_CLIENT, {"id": str(client)}, "deleteClient")
        assert result["__typename"] == "Deleted", result
        self.world.clients[client].deleted = True

    def _mutate(self, query: str, variables: dict[str, Any], name: str) -> dict[str, Any]:
        data = self.run(self.api.execute(query, variables))
        _tally(f"{name}:{data[name]['__typename']}")
        # What the Huey job would do in every worker: wake the engine up.
        for driver in self.engines:
            driver.engine.wake()
        return dict(data[name])

    # -- the provider and time ------------------------------------------------

    @rule(behaviour=st.sampled_from(sorted(PROVIDERS)))
    def provider_behaves(self, behaviour: str) -> None:
        self.run(self.sim.set_faults(**{**_NORMAL, **PROVIDERS[behaviour]}))

    @rule(minutes=st.sampled_from([0.01, 0.5, 1, 5, 30, 60, 240, 720]), which=engines)
    def time_passes(self, minutes: float, which: int) -> None:
        self.clock.now += timedelta(minutes=minutes)
        self.run(self._step(self._engine(which)))

    @rule(which=engines)
    def engine_works(self, which: int) -> None:
        self.run(self._step(self._engine(which)))

    @rule(minutes=st.sampled_from([0, 1, 30, 240]), which=engines)
    def requests_in_flight(self, minutes: float, which: int) -> None:
        """The provider holds its answers back; time passes, an engine sends what is due."""
        self.sim.hold_answers()
        held = len(self.sim.held_ids)
        self.clock.now += timedelta(minutes=minutes)
        self.run(self._step(self._engine(which)))
        _tally("requests held", len(self.sim.held_ids) - held)

    @rule(write=st.booleans(), late=st.booleans(), which=engines)
    def answers_arrive(self, write: bool, late: bool, which: int) -> None:
        """The held answers arrive; ``write``: the engines write them now (else they wait).

        ``late``: only after their leases ended and an engine worked (reaped
        them, and may have sent them again: held too, and answered now).
        """
        if late:
            self.leases_end()
            self.run(self._step(self._engine(which)))
        self.run(self._answers_arrive(write=write))

    async def _answers_arrive(self, *, write: bool = True) -> None:
        released = self.sim.release_answers()
        if released:
            _tally("held answers released", len(released))
        self.orphans.clear()
        await self._answered()
        if write:
            for index, driver in enumerate(self.engines):
                await self._as_worker(index, "recorder", driver.engine.record_now)

    # -- the workers and the database -----------------------------------------

    @rule(which=engines)
    def a_worker_dies_or_joins(self, which: int) -> None:
        """With one engine, ``which`` 1 starts a second one on the same database.

        Otherwise engine ``which`` dies mid-work (its requests in flight cut
        off, its outcomes unwritten, its leases left to end), and a new one,
        another worker, takes its place.
        """
        if which == 1 and len(self.engines) == 1:
            self.engines.append(self._new_engine())
            _tally("second engine")
            return
        self.run(self._crash(which % len(self.engines)))

    async def _crash(self, index: int) -> None:
        driver = self.engines[index]
        worker = driver.engine.worker
        # What it may have had accepted without writing it: what it leases.
        for row in await fetch(connection(), "SELECT id FROM message WHERE leased_by = $1", worker):
            self.may_repeat[int(row["id"])] += 1
        self.orphans.update(m for m in driver.engine.in_flight.values() if m in self.sim.held_ids)
        await driver.crash()
        self.dead.append(worker)
        self.engines[index] = self._new_engine()
        _tally("engine crashes")

    @rule(refusing=st.integers(0, 3))
    def infrastructure_fails(self, refusing: int) -> None:
        """``refusing`` 0: every lease ends now, as if its worker had been frozen past it.

        Otherwise the database refuses the engines' connections for the next
        ``refusing`` engine steps (PostgreSQL, through the proxy; where it
        cannot, the leases end instead).
        """
        if refusing and PROXIED and not self.refused:
            PROXY.refuse()
            self.refused = refusing
            self.refusals += 1
            _tally("database refusals")
        else:
            self.leases_end()

    def leases_end(self) -> None:
        self.run(self._end_leases(None))
        # The engines' reap grace passes too, so the next sweep may reap.
        self.clock.now += timedelta(seconds=REAP_GRACE)

    async def _end_leases(self, workers: list[int] | None) -> None:
        if workers is not None and not workers:
            return
        conn = connection()
        whose = ""
        if workers is not None:
            whose = " AND leased_by IN (" + ", ".join(str(w) for w in workers) + ")"
        rows = await fetch(
            conn,
            f"UPDATE message SET leased_until = {db_clock(conn, -1.0)}"
            f" WHERE leased_until IS NOT NULL{whose} RETURNING id",
        )
        if workers is None:
            # A dead engine's leases were counted when it died.
            self.may_repeat.update(int(row["id"]) for row in rows)
            if rows:
                _tally("leases ended", len(rows))

    # -- driving the engines --------------------------------------------------

    def _engine(self, which: int) -> EngineDriver:
        return self.engines[which % len(self.engines)]

    async def _as_worker(self, index: int, loop: str, work: Callable[[], Awaitable[Any]]) -> None:
        """Run one round of an engine's loop as a worker does (through the proxy on PostgreSQL).

        Once the database has refused, a lost connection fails the round,
        which is reported as the loop reports it (so nothing is reaped until
        the database has answered again for REAP_GRACE); anything else fails
        the test.
        """
        engine = self.engines[index].engine
        # The checks of this task go on reading through the direct connection.
        token = connections.set("default", PROXIED_DB) if PROXIED else None
        try:
            await work()
        except Exception as exc:
            if not (self.refusals and _lost_connection(exc)):
                raise
            engine.progress.failed(loop, exc)
            _tally(f"{loop} failed")
            return
        finally:
            if token is not None:
                connections.reset(token)
        engine.progress.done(loop, "step")

    async def _step(self, driver: EngineDriver) -> None:
        """Sweep, claim and send what is due, wait for the answers not held, record, sweep."""
        index = self.engines.index(driver)
        engine = driver.engine

        async def dispatch() -> None:
            engine.wake()
            for _ in range(1000):
                if await engine.dispatch_once(wait=False) <= 0:
                    break

        await self._as_worker(index, "sweeper", engine.sweep_once)
        await self._as_worker(index, "dispatcher", dispatch)
        await self._answered()
        await self._check_new_arrivals()
        await self._as_worker(index, "recorder", engine.record_now)
        await self._as_worker(index, "sweeper", engine.sweep_once)
        await self._as_worker(index, "recorder", engine.record_now)
        if self.refused:
            self.refused -= 1
            if not self.refused:
                PROXY.restore()

    async def _answered(self) -> None:
        """Wait until every request in flight is answered or held back by the provider."""
        while True:
            spare = Counter(self.sim.held_ids) - self.orphans
            waiting = set()
            for driver in self.engines:
                for task, message_id in driver.engine.in_flight.items():
                    if spare[message_id] > 0:
                        spare[message_id] -= 1
                    else:
                        waiting.add(task)
            if not waiting:
                return
            # Registered now, before any await: a hold in between is not missed.
            held = self.sim.wait_held()
            done, _ = await asyncio.wait(
                {*waiting, held}, timeout=SETTLE, return_when=asyncio.FIRST_COMPLETED
            )
            held.cancel()
            assert done, f"requests neither answered nor held in {SETTLE} s"

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
            assert not client.opted_out, where
            assert not mailing.tags or client.tag in mailing.tags, where

    def _started_running(self, mailing: MailingModel) -> bool:
        # A SCHEDULED mailing whose start has come is started by the sweep in the same step.
        return mailing.status == "SCHEDULED" and mailing.start <= self.clock.now

    @invariant()
    def promises_hold(self) -> None:
        if self.engines:
            self.run(self._check())

    async def _check(self) -> int:
        """Check the rows and the provider's ledger; how many repeats (allowed) it shows."""
        conn = connection()
        messages = await fetch(
            conn,
            "SELECT id, mailing_id, status, last_error, leased_until IS NOT NULL AS leased"
            " FROM message",
        )
        self._check_rows(messages, await fetch(conn, "SELECT * FROM mailing_stats"))
        building = await fetch(
            conn,
            "SELECT id FROM mailing WHERE status = 'FINISHED' AND audience_cursor IS NOT NULL",
        )
        assert not building, f"FINISHED while its audience is built: {building}"
        return self._check_ledger(messages)

    def _check_ledger(self, messages: list[dict[str, Any]]) -> int:
        answered: set[int] = set()  # accepted, and the answer said so
        unanswered: set[int] = set()  # accepted, never answered
        again: Counter[int] = Counter()  # accepted again after an answer
        for message_id, _, outcome, accepted in self.sim.ledger.requests_list():
            if not accepted:
                continue
            if message_id in answered:
                again[message_id] += 1
                where = f"message {message_id} accepted again after an answer"
                assert again[message_id] <= self.may_repeat[message_id], where
            if outcome == "accepted_hang":
                unanswered.add(message_id)
            else:
                answered.add(message_id)
        sent = {int(m["id"]) for m in messages if m["status"] == "SENT"}
        # SENT is what the provider said yes to; a silent acceptance is unknown to us.
        assert sent <= answered | unanswered, sent - answered - unanswered
        # An answer still held is not answered yet, and one an engine holds
        # unwritten keeps its lease; a dead worker's was lost with it, and a
        # message whose lease ended mid-request may have ended otherwise
        # (cancelled, expired) before the late answer came.
        leased = {int(m["id"]) for m in messages if m["leased"]}
        unsent = answered - set(self.sim.held_ids) - leased - set(self.may_repeat) - sent
        assert not unsent, [m for m in messages if m["id"] in unsent]
        return sum(again.values())

    def _check_rows(self, messages: list[dict[str, Any]], stats: list[dict[str, Any]]) -> None:
        by_mailing: dict[int, Counter[str]] = {}
        for m in messages:
            by_mailing.setdefault(int(m["mailing_id"]), Counter())[str(m["status"]).lower()] += 1
        for row in stats:
            rows = by_mailing.get(int(row["mailing_id"]), Counter())
            for column in ("pending", "sent", "failed", "expired", "cancelled"):
                assert int(row[column]) == rows[column], (column, row, rows)
            assert int(row["total"]) == rows.total(), (row, rows)
        finals = {
            int(m["id"]): (str(m["status"]), int(m["mailing_id"]))
            for m in messages
            if m["status"] != "PENDING"
        }
        for message_id, (status, _) in self.finals.items():
            now = finals.get(message_id, ("PENDING", 0))[0]
            # A message cancelled by re-targeting (never sent) comes back when
            # its client matches again; nothing else leaves a final status.
            revived = status == "CANCELLED" and now == "PENDING"
            assert now == status or revived, f"message {message_id} was {status}, then {now}"
        for message_id, (status, mailing_id) in finals.items():
            if status == "EXPIRED" and message_id not in self.finals:
                # Checked as it expires: the end may be moved later afterwards.
                mailing = self.world.mailings[mailing_id]
                assert self.clock.now >= mailing.end, f"message {message_id} expired before the end"
        self.finals = finals
        for m in messages:
            if m["status"] == "FAILED":
                assert str(m["last_error"]).startswith("HTTP 400"), m


def _lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a connection to the database refused, reset or closed."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError | TimeoutError | asyncpg.InterfaceError):
            return True
        if isinstance(e, asyncpg.PostgresConnectionError):
            return True
        # Tortoise wraps the driver's exception: as its argument, and as context.
        todo.extend(a for a in e.args if isinstance(a, BaseException))
        todo.extend(c for c in (e.__cause__, e.__context__) if c is not None)
    return False


LOOP: asyncio.AbstractEventLoop
SIM: SimulatorServer
API: GraphQLClient  # one application for every sequence: making one costs more than a sequence
PROXY: FaultProxy
PROXIED_DB: BaseDBAsyncClient


@contextlib.asynccontextmanager
async def _proxied_database() -> AsyncIterator[None]:
    """The engines' own connections to PostgreSQL, through a proxy that can refuse them."""
    global PROXY, PROXIED_DB
    if not PROXIED:
        yield
        return
    with fault_proxy(DATABASE_URL) as proxy:
        info = connection_info(proxy.url(DATABASE_URL), get_settings())
        client = GuardedAsyncpgClient(connection_name="default", **info["credentials"])
        await client.create_connection(with_db=True)
        PROXY, PROXIED_DB = proxy, client
        try:
            yield
        finally:
            await client.close()


async def test_sending_holds_its_promises_whatever_happens(db: str) -> None:
    global LOOP, SIM, API
    LOOP = asyncio.get_running_loop()
    async with (
        running_simulator(seed=11, hang_limit=HANG_LIMIT) as sim,
        _proxied_database(),
        api_client() as api,
    ):
        SIM, API = sim, api
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
    # A run that never got a message accepted, or never cancelled one, proves little;
    # nor one that never held answers in flight, crashed an engine or ended a lease.
    assert TALLY.get("accepted", 0) > 0
    assert TALLY.get("cancelMailing:Mailing", 0) > 0
    assert TALLY.get("held answers released", 0) > 0
    assert TALLY.get("engine crashes", 0) > 0
    assert TALLY.get("leases ended", 0) > 0
    assert TALLY.get("database refusals", 0) > 0 or not PROXIED


async def test_a_message_held_by_a_dead_engine_is_not_sent_once_its_client_opted_out(
    db: str,
) -> None:
    """The sequence the machine found (issue 19), kept as a plain test.

    An engine dies with a request in flight; the client opts out, which
    leaves a held message to its worker; the lease ends and another engine
    reaps it. It used to claim and send it again: the claim does not look
    at opt-outs, and nothing cancelled a reaped message.
    """
    with fake_clock(START) as clock:
        client = await make_client(tag="a")
        await make_mailing(start_at=START, end_at=START + timedelta(hours=1))
        async with running_simulator(hang_limit=HANG_LIMIT) as sim:
            dying = new_engine_driver(sim.url, clock, send_timeout=SEND_TIMEOUT)
            sim.hold_answers()
            await dying.engine.sweep_once()  # starts the mailing, builds its audience
            assert await dying.engine.dispatch_once(wait=False) == 1
            await sim.wait_held()
            (message_id,) = sim.held_ids
            await dying.crash()
            assert (await opt_out_phones([client.phone])).cancelled == 0  # held: left to it
            conn = connection()
            await fetch(conn, f"UPDATE message SET leased_until = {db_clock(conn, -1.0)}")
            sim.release_answers()
            async with engine_driver(sim.url, clock, send_timeout=SEND_TIMEOUT) as heir:
                await heir.step()
                clock.advance(seconds=REAP_GRACE + 1)  # the database has answered long enough
                await heir.step()
            message = await Message.get(id=message_id)
            assert (message.status, message.last_error) == (
                MessageStatus.CANCELLED,
                "client opted out",
            )
            assert [r[0] for r in sim.ledger.requests_list()] == [message_id]
