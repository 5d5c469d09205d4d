"""When each request to the send API may start (placeholder until the shared pacer lands)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Grant", "Pacer", "Unpaced"]


@dataclass(frozen=True, slots=True)
class Grant:
    """``count`` start times: ``first_at + i * interval`` (monotonic); none before ``retry_at``."""

    count: int
    first_at: float
    interval: float
    retry_at: float


class Pacer(Protocol):
    async def reserve(self, n: int) -> Grant: ...

    def rate_limited(self, retry_after: float | None) -> None: ...

    def accepted(self) -> None: ...


class Unpaced:
    """No limit but the provider's own ``Retry-After``, which holds every send."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hold_until = 0.0

    async def reserve(self, n: int) -> Grant:
        now = self._clock()
        if now < self._hold_until:
            return Grant(0, now, 0.0, self._hold_until)
        return Grant(n, now, 0.0, now)

    def rate_limited(self, retry_after: float | None) -> None:
        if retry_after:
            self._hold_until = max(self._hold_until, self._clock() + retry_after)

    def accepted(self) -> None:
        pass
