"""The simulator's ledger: every send request, and every accepted id with its count."""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

__all__ = ["ACCEPTED", "OUTCOMES", "Ledger"]

OUTCOMES = (
    "accepted",  # 200 OK after the latency
    "accepted_late",  # accepted, 200 OK after late_by
    "accepted_hang",  # accepted, never answered
    "rejected",  # 400 for good (reject_rate)
    "invalid",  # 400, the body breaks docs/sending.md, "The send API"
    "unauthorized",  # 401: wrong token, or unauthorized_for
    "forbidden",  # 403: forbidden_for
    "not_found",  # 404: the msgId is not a number
    "failed",  # 500
    "reset",  # TCP RST, no answer
    "hang",  # no answer, not accepted
    "rate_limited",  # 429 from rate_limit_rate
    "throttled",  # 429 beyond max_rps
    "retry_later",  # 429 to one of the first retry_after_first attempts of an id
    "garbage",  # 200 that is not a success
    "hostile",  # NUL bytes, bytes that are not UTF-8, or ~1 MB (nul_rate)
)
ACCEPTED = frozenset({"accepted", "accepted_late", "accepted_hang"})
_CODE = {name: code for code, name in enumerate(OUTCOMES)}
_ACCEPTED_CODES = frozenset(_CODE[name] for name in ACCEPTED)
_NO_ID = -1


class Ledger:
    """Every send request and every accepted id, for tests and benchmarks to inspect.

    Instants are the server's clock (epoch seconds) at arrival.
    """

    def __init__(self) -> None:
        self.accepted: dict[int, list[Any]] = {}  # id -> [count, first accepted at, phone]
        self.arrived_ids: set[int] = set()
        self._counts = [0] * len(OUTCOMES)
        # Compact columns: a benchmark sends hundreds of thousands of requests.
        self._at = array("d")
        self._id = array("q")
        self._outcome = array("B")
        self._waiters: list[tuple[set[int], asyncio.Future[None]]] = []

    def clear(self) -> None:
        """Forget everything seen (waiters stay, for ids still to come)."""
        self.accepted.clear()
        self.arrived_ids.clear()
        self._counts = [0] * len(OUTCOMES)
        del self._at[:], self._id[:], self._outcome[:]

    def request(self, message_id: int | None, outcome: str, now: float) -> None:
        """One send request arrived at ``now`` and got ``outcome``."""
        code = _CODE[outcome]
        self._at.append(now)
        self._id.append(_NO_ID if message_id is None else message_id)
        self._outcome.append(code)
        self._counts[code] += 1
        if message_id is not None:
            self.arrived_ids.add(message_id)
            if self._waiters:
                self._arrived(message_id)

    def accept(self, message_id: int, outcome: str, now: float, phone: int) -> None:
        """A send request that the provider takes as accepted (whatever it answers)."""
        self.request(message_id, outcome, now)
        seen = self.accepted.get(message_id)
        if seen is None:
            self.accepted[message_id] = [1, now, phone]
        else:
            seen[0] += 1

    def __len__(self) -> int:
        """How many send requests were recorded."""
        return len(self._at)

    def answer_lost(self, index: int) -> None:
        """The answer to request ``index`` never left: an acceptance becomes ``accepted_hang``."""
        code = self._outcome[index]
        hang = _CODE["accepted_hang"]
        if code in _ACCEPTED_CODES and code != hang:
            self._outcome[index] = hang
            self._counts[code] -= 1
            self._counts[hang] += 1

    async def wait_arrived(self, ids: Iterable[int]) -> None:
        """Return once a send request has arrived for every id of ``ids``."""
        missing = set(ids) - self.arrived_ids
        if not missing:
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (missing, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            self._waiters.remove(entry)

    def _arrived(self, message_id: int) -> None:
        for missing, waiter in self._waiters:
            missing.discard(message_id)
            if not missing and not waiter.done():
                waiter.set_result(None)

    def by_outcome(self) -> dict[str, int]:
        return {name: count for name, count in zip(OUTCOMES, self._counts, strict=True) if count}

    def stats(self) -> dict[str, Any]:
        accepted = sum(self._counts[code] for code in _ACCEPTED_CODES)
        return {
            "requests": len(self._at),
            "accepted": accepted,
            "unique_accepted": len(self.accepted),
            "duplicates": accepted - len(self.accepted),
            "by_outcome": self.by_outcome(),
            "first_request_at": _iso(self._at[0]) if self._at else None,
            "last_request_at": _iso(self._at[-1]) if self._at else None,
        }

    def accepted_list(self) -> list[list[Any]]:
        """``[msgId, count, first_accepted_at, phone]`` per accepted id."""
        return [[i, count, _iso(at), phone] for i, (count, at, phone) in self.accepted.items()]

    def requests_list(self) -> list[list[Any]]:
        """``[msgId, arrived_at, outcome, accepted]`` per send request, in arrival order."""
        return [
            [
                None if message_id == _NO_ID else message_id,
                _iso(at),
                OUTCOMES[code],
                code in _ACCEPTED_CODES,
            ]
            for message_id, at, code in zip(self._id, self._at, self._outcome, strict=True)
        ]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()
