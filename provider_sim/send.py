"""What the simulator answers to one ``POST /send/{msgId}``: the send API's behaviour, no I/O."""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import deque
from collections.abc import Callable

import orjson

from provider_sim import answers
from provider_sim.answers import Action, Silence
from provider_sim.faults import CASCADE, Faults
from provider_sim.ledger import Ledger

__all__ = ["SendApi"]

_MAX_ID = 2**63 - 1
# (outcome, what to answer; None when it is decided per request), per CASCADE name.
_EFFECTS: dict[str, tuple[str, Action | None]] = {
    "reset_rate": ("reset", Silence.RESET),
    "hang_rate": ("hang", Silence.HANG),
    "fail_rate": ("failed", answers.FAILED),
    "rate_limit_rate": ("rate_limited", None),
    "garbage_rate": ("garbage", None),
    "nul_rate": ("hostile", None),
    "accept_hang_rate": ("accepted_hang", None),
    "accept_late_rate": ("accepted_late", None),
}


class SendApi:
    """Decides each send request's fate from the faults, and enters it in the ledger.

    The checks run in this order: ``max_rps``, ``max_rps_fixed``, the ``unauthorized_for`` and
    ``forbidden_for`` windows, the token, the body, ``retry_after_first``, one
    random draw over :data:`faults.CASCADE` (the accepting ones only for ids
    that ``reject_rate`` spares), ``reject_rate``; what is left is accepted.
    """

    def __init__(
        self,
        ledger: Ledger,
        clock: Callable[[], float],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self._monotonic = monotonic
        self.faults = Faults()
        self.rng = random.Random()
        # Set and cleared by the server's timers for unauthorized_for / forbidden_for.
        self.unauthorized = False
        self.forbidden = False
        self._attempts: dict[int, int] = {}
        self._admitted: deque[float] = deque()
        self._fixed_second = -1  # the whole second max_rps_fixed counts in, and its count
        self._fixed_count = 0
        self._cascade: list[tuple[float, str, Action | None]] = []
        self._expected_auth: bytes | None = None
        self._seed_bytes = b"None"
        self._retry_later = answers.too_many_requests("simulated rate limit", 1.0)
        self.configure(Faults(), reseed=True)

    def configure(self, faults: Faults, *, reseed: bool = False) -> None:
        """Take new faults; ``reseed`` restarts the random draws from ``faults.seed``."""
        old, self.faults = self.faults, faults
        if reseed or faults.seed != old.seed:
            self.rng.seed(faults.seed)
            self._seed_bytes = str(faults.seed).encode()
        if faults.retry_after_first != old.retry_after_first:
            self._attempts.clear()
        self._expected_auth = b"Bearer " + faults.token.encode() if faults.token else None
        self._cascade = [
            (getattr(faults, name), *_EFFECTS[name]) for name in CASCADE if getattr(faults, name)
        ]
        self._retry_later = answers.too_many_requests("simulated rate limit", faults.retry_after)

    def forget(self) -> None:
        """Forget the attempts counted and the requests let through so far."""
        self._attempts.clear()
        self._admitted.clear()
        self._fixed_second, self._fixed_count = -1, 0

    def decide(self, raw_id: bytes, auth: bytes | None, body: bytes) -> tuple[float, Action]:
        """(seconds to wait, what to answer) for one send request; enters it in the ledger."""
        now = self.clock()
        ledger = self.ledger
        faults = self.faults
        message_id = int(raw_id) if raw_id.isdigit() else -1
        if not 0 <= message_id <= _MAX_ID:
            ledger.request(None, "not_found", now)
            return 0.0, answers.NOT_FOUND
        if faults.max_rps and not self._admit(faults.max_rps):
            ledger.request(message_id, "throttled", now)
            return self._latency(), answers.THROTTLED
        if faults.max_rps_fixed and not self._admit_fixed(faults.max_rps_fixed):
            ledger.request(message_id, "throttled", now)
            return self._latency(), answers.THROTTLED
        if self.unauthorized:
            ledger.request(message_id, "unauthorized", now)
            return self._latency(), answers.TOKEN_REVOKED
        if self.forbidden:
            ledger.request(message_id, "forbidden", now)
            return self._latency(), answers.FORBIDDEN
        if self._expected_auth is not None and auth != self._expected_auth:
            ledger.request(message_id, "unauthorized", now)
            return self._latency(), answers.UNAUTHORIZED
        phone, problem = _check_body(message_id, body)
        if problem is not None:
            ledger.request(message_id, "invalid", now)
            return self._latency(), answers.json_error(400, problem)
        if faults.retry_after_first:
            attempt = self._attempts.get(message_id, 0) + 1
            self._attempts[message_id] = attempt
            if attempt <= faults.retry_after_first:
                ledger.request(message_id, "retry_later", now)
                return self._latency(), self._retry_later
        rejects = faults.reject_rate > 0 and self._rejects(message_id)
        if self._cascade:
            draw = self.rng.random()
            for rate, outcome, action in self._cascade:
                if draw < rate:
                    if outcome == "accepted_hang" and not rejects:
                        ledger.accept(message_id, outcome, now, phone)
                        return 0.0, Silence.HANG
                    if outcome == "accepted_late" and not rejects:
                        ledger.accept(message_id, outcome, now, phone)
                        return faults.late_by / 1000, answers.OK
                    if outcome.startswith("accepted"):
                        break  # a rejected id is rejected, however late it would be
                    ledger.request(message_id, outcome, now)
                    return self._transient(outcome, action)
                draw -= rate
        if rejects:
            ledger.request(message_id, "rejected", now)
            return self._latency(), answers.REJECTED
        ledger.accept(message_id, "accepted", now, phone)
        return self._latency(), answers.OK

    def _transient(self, outcome: str, action: Action | None) -> tuple[float, Action]:
        if action is None:
            if outcome == "rate_limited":
                action = self._retry_later
            else:
                choices = answers.GARBAGE if outcome == "garbage" else answers.HOSTILE
                action = self.rng.choice(choices)
        return (0.0 if action is Silence.HANG else self._latency()), action

    def _admit(self, limit: int) -> bool:
        """Let the request through if fewer than ``limit`` were let through in the last second."""
        now = self._monotonic()
        admitted = self._admitted
        while admitted and admitted[0] <= now - 1.0:
            admitted.popleft()
        if len(admitted) >= limit:
            return False
        admitted.append(now)
        return True

    def _admit_fixed(self, limit: int) -> bool:
        """Let the request through if fewer than ``limit`` were let through in this whole
        second (a counter that restarts on the second, as many providers count)."""
        second = math.floor(self._monotonic())
        if second != self._fixed_second:
            self._fixed_second, self._fixed_count = second, 0
        if self._fixed_count >= limit:
            return False
        self._fixed_count += 1
        return True

    def _latency(self) -> float:
        latency, jitter = self.faults.latency, self.faults.latency_jitter
        if jitter:
            latency = max(0.0, latency + self.rng.uniform(-jitter, jitter))
        return latency / 1000

    def _rejects(self, message_id: int) -> bool:
        # Deterministic per (seed, id): the retry of a rejected id is rejected again.
        key = self._seed_bytes + b":" + str(message_id).encode()
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2**64 < self.faults.reject_rate


def _check_body(message_id: int, body: bytes) -> tuple[int, str | None]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0, "body is not JSON"
    if not isinstance(payload, dict):
        return 0, "body is not a JSON object"
    id_, phone, text = payload.get("id"), payload.get("phone"), payload.get("text")
    if type(id_) is not int or id_ != message_id:
        return 0, "id must be an integer equal to the msgId in the path"
    if type(phone) is not int:
        return 0, "phone must be an integer"
    if not isinstance(text, str):
        return 0, "text must be a string"
    return phone, None
