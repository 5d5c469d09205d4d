"""A worker frozen with requests in flight reads, once resumed, the answers that came meanwhile.

A real worker is frozen (SIGSTOP, as a VM pause or a long GC pause would)
for longer than its ``SEND_TIMEOUT`` but well inside its lease, while the
simulator answers the requests it had in flight. The oracle is the
simulator's ledger (requests per msgId) and the recorded outcomes: every
message sent on its first attempt, none asked twice, and the breaker closed.
Before, every one of those requests timed out by the worker's own clock, was
retried, and was accepted twice.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from datetime import datetime

import pytest

from models import MailingStatus, Message
from tests.support.engine import (
    Simulator,
    Worker,
    add_clients,
    start_mailing,
    stats_of,
    wait_for_status,
    wait_until,
)

_MESSAGES = 40
_LATENCY = 1.0  # seconds the simulator takes to answer: requests are always in flight
_FREEZE = 5.0  # seconds: past SEND_TIMEOUT (and the engine's "frozen" bound), inside the lease
_ENV = {
    "SEND_CONCURRENCY": "10",
    "SEND_TIMEOUT": "2",
    "SEND_LEASE": "60",
}


@pytest.mark.parametrize("stack", ["pyreqwest", "aiohttp", "httpx"])
async def test_a_resumed_worker_reads_the_answers_that_arrived_while_it_was_frozen(
    db: str, stack: str
) -> None:
    sim = Simulator("--latency", str(int(_LATENCY * 1000)))
    try:
        await add_clients(_MESSAGES)
        worker = Worker(sim, PROVIDER_HTTP=stack, **_ENV)
        mailing = await start_mailing()

        async def in_flight() -> bool:
            return len(await sim.requests()) >= 1

        await wait_until(in_flight, timeout=120, interval=0.02)
        worker.proc.send_signal(signal.SIGSTOP)
        frozen_at = time.time()  # the simulator stamps arrivals on this same clock
        try:
            await asyncio.sleep(_FREEZE)  # the freeze itself, not a wait for anything
        finally:
            worker.proc.send_signal(signal.SIGCONT)
        await wait_for_status(mailing.id, MailingStatus.FINISHED, timeout=120)

        requests = await sim.requests()
        # The scenario happened: some answers went out while the worker was frozen.
        arrivals = [datetime.fromisoformat(arrived).timestamp() for _, arrived, *_ in requests]
        answered_frozen = [at for at in arrivals if at <= frozen_at < at + _LATENCY]
        assert answered_frozen, (frozen_at, requests[:12])
        asked = Counter(int(message_id) for message_id, *_ in requests)
        twice = {message_id: n for message_id, n in asked.items() if n > 1}
        assert not twice, f"asked more than once: {twice}\n{worker.log()[-3000:]}"
        assert len(asked) == _MESSAGES
        assert all(accepted for *_, accepted in requests)
        assert (await stats_of(mailing.id))["sent"] == _MESSAGES
        retried = await Message.filter(mailing_id=mailing.id, attempts__gt=1).count()
        assert retried == 0
        assert worker.metrics().get("mailings_breaker_openings_total", 0.0) == 0.0
        assert worker.proc.poll() is None
    finally:
        await sim.close()
