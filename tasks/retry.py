"""How long a message waits before its next attempt after transient trouble.

Exponential backoff with *equal jitter*: the ceiling doubles with each attempt
(``retry_base_delay * 2 ** (attempts - 1)``, capped at ``retry_max_delay``)
and the delay is drawn uniformly from ``[ceiling / 2, ceiling]``. Half the
ceiling is a floor so a retry is never immediate, and the random half spreads
the retries of a batch that failed together (a provider outage) instead of
sending them back as one burst. A provider's ``Retry-After`` is a floor on
top of that.
"""

from __future__ import annotations

import random
from typing import Protocol

__all__ = ["MAX_RETRY_AFTER", "backoff_ceiling", "retry_delay"]

# A provider asking for more than this is more likely wrong than right; the
# mailing's end, not the provider, bounds how long a message may wait.
MAX_RETRY_AFTER = 3600.0
# 2**62 seconds already exceeds any sane retry_max_delay; a bigger exponent
# would only overflow the float.
_MAX_EXPONENT = 62


class _RetrySettings(Protocol):
    @property
    def retry_base_delay(self) -> float: ...

    @property
    def retry_max_delay(self) -> float: ...


def backoff_ceiling(attempts: int, base: float, cap: float) -> float:
    """``base * 2 ** (attempts - 1)``, at most ``cap``: the one backoff (messages, the report)."""
    exponent = min(max(attempts, 1) - 1, _MAX_EXPONENT)
    return float(min(base * 2.0**exponent, cap))


def retry_delay(
    attempts: int,
    retry_after: float | None,
    settings: _RetrySettings,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before the next attempt of a message tried ``attempts`` times.

    ``attempts`` counts the attempts made so far, the failed one included
    (1 after the first failure). ``retry_after`` is the provider's
    ``Retry-After`` in seconds, if it sent one.
    """
    ceiling = backoff_ceiling(attempts, settings.retry_base_delay, settings.retry_max_delay)
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay
