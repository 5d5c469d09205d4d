"""The adaptive limit finds a provider's limit without being told, in virtual time.

An engine in miniature (256 in flight, batches of grants, slots starting a
little late, answers a few milliseconds after) sends through the simulator's
own limiters (``provider_sim.send.SendApi`` with ``max_rps`` or
``max_rps_fixed``) on one fake clock. Everything is deterministic (seeded
jitter, no wall time), so the test can hold the limit to figures: how many
rounds of 429s, the rate found, the virtual time to send them all.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import orjson
import pytest

from provider_sim import Faults, answers
from provider_sim.ledger import Ledger
from provider_sim.send import SendApi
from tasks.adaptive_rate import AdaptiveRateLimit

PROVIDER_LIMIT = 300
_CONCURRENCY = 256
_BATCH = 100
_TICK = 0.005  # seconds between two claims of the miniature engine
_BODY = orjson.dumps({"id": 1, "phone": 79000000001, "text": "hi"})


class VirtualClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Outcome:
    seconds: float = 0.0  # from the first claim to the last answer
    rate_limited: int = 0
    rate_limited_late: int = 0  # after the first two seconds: not the first burst's
    cuts: list[float] = field(default_factory=list)  # when each round of 429s began
    limits: list[float] = field(default_factory=list)  # the limit, every virtual second


def send_through(window: str, messages: int, *, retry_after: bool, seed: int = 1) -> Outcome:
    """``messages`` sent by a miniature engine through a provider counting in ``window``."""
    rng = random.Random(seed)
    # A fixed window counts whole seconds of this clock: start it mid-second.
    clock = VirtualClock(5000.37)
    limit = AdaptiveRateLimit(clock=clock)
    provider = SendApi(Ledger(), clock=clock, monotonic=clock)
    counter = "max_rps" if window == "sliding" else "max_rps_fixed"
    provider.configure(Faults(**{counter: PROVIDER_LIMIT}))
    started_at = clock.now
    due = [started_at] * messages  # when each waiting message may be claimed (a heap)
    events: list[tuple[float, int, str, float]] = []  # (at, seq, kind, when started)
    seq = 0
    in_flight = sent = 0
    next_claim = started_at
    outcome = Outcome()
    next_sample = started_at + 1.0

    def push(at: float, kind: str, started: float) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, seq, kind, started))

    while sent < messages:
        at = min(events[0][0] if events else next_claim, next_claim)
        clock.now = at
        while clock.now >= next_sample:
            outcome.limits.append(limit.limit or 0.0)
            next_sample += 1.0
        if at == next_claim and (not events or events[0][0] >= at):
            next_claim = at + _TICK
            ready = 0
            while due and due[0] <= at and ready < min(_BATCH, _CONCURRENCY - in_flight):
                heapq.heappop(due)
                ready += 1
            if ready == 0:
                continue
            grant = limit.grant(ready, 0.5)
            for _ in range(ready - grant.count):
                heapq.heappush(due, at)  # not granted: claimed again later
            next_claim = max(next_claim, grant.retry_at)
            for i in range(grant.count):
                # A slot starts late by the event loop's and the claim's delays.
                push(grant.start_at(i) + rng.uniform(0, 0.02), "start", 0.0)
            in_flight += grant.count
            continue
        at, _, kind, started = heapq.heappop(events)
        if kind == "start":
            if at < limit.blocked_until:
                # The engine hands back a slot that a Retry-After now holds.
                heapq.heappush(due, limit.blocked_until)
                in_flight -= 1
                continue
            _, answer = provider.decide(b"1", None, _BODY)
            kind = "429" if answer is answers.THROTTLED else "ok"
            push(at + rng.uniform(0.002, 0.03), kind, at)
            continue
        in_flight -= 1
        if kind == "ok":
            limit.answered()
            sent += 1
            continue
        outcome.rate_limited += 1
        outcome.rate_limited_late += at - started_at > 2.0
        before = limit.limit
        limit.rate_limited(1.0 if retry_after else None, started_at=started)
        if before is None or (limit.limit or 0.0) < before:
            outcome.cuts.append(at - started_at)
        heapq.heappush(due, at + 1.0)
    outcome.seconds = clock.now - started_at
    return outcome


@pytest.mark.parametrize("window", ["sliding", "fixed"])
@pytest.mark.parametrize("retry_after", [True, False], ids=["retry-after", "no-retry-after"])
def test_the_limit_is_found_and_kept(window: str, retry_after: bool) -> None:
    """Against 300/s: one round of 429s for the first burst, then a rate just under the
    limit. Climbing back to the limit after each cut re-triggered a sliding window, and
    the 429s of slots granted before a cut cut again, down to half the limit."""
    messages = 6000  # 20 s at the limit: time for a probe beyond it
    outcome = send_through(window, messages, retry_after=retry_after)
    floor = messages / PROVIDER_LIMIT
    # One round for the first burst (without a Retry-After, whatever starts while the
    # burst fills the window), then at most a probe and a late slot's round.
    assert outcome.cuts[0] < 0.1, outcome.cuts
    assert len(outcome.cuts) <= 3, outcome.cuts
    assert outcome.rate_limited <= 2 * _CONCURRENCY, outcome.rate_limited
    assert outcome.rate_limited_late <= 20 * (len(outcome.cuts) - 1), outcome.rate_limited_late
    # The rate found, every second after the first few: near the limit.
    steady = outcome.limits[3:]
    assert min(steady) >= 0.9 * PROVIDER_LIMIT, steady
    assert max(steady) <= 1.1 * PROVIDER_LIMIT, steady
    # Virtual seconds, the same on any machine.
    assert outcome.seconds <= 1.2 * floor, (outcome.seconds, floor)
