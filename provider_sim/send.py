"""What the simulator answers to one ``POST /send/{msgId}``: the send API's behaviour, no I/O."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

import orjson

from provider_sim import answers
from provider_sim.answers import Action, Silence
from provider_sim.faults import CASCADE, Faults
from provider_sim.records import Recorder

__all__ = ["SendApi"]

_MAX_ID = 2**63 - 1
# (outcome, what to answer; None for a pick from GARBAGE), per CASCADE name.
_EFFECTS: dict[str, tuple[str, Action | None]] = {
    "reset_rate": ("reset", Silence.RESET),
    "hang_rate": ("hang", Silence.HANG),
    "fail_rate": ("failed", answers.FAILED),
    "rate_limit_rate": ("rate_limited", answers.RATE_LIMITED),
    "garbage_rate": ("garbage", None),
}


class SendApi:
    """Decides each send request's fate from the faults, and records it.

    The checks run in this order: the token, the body, one random draw over
    :data:`faults.CASCADE`, ``reject_rate``; what is left is accepted.
    """

    def __init__(self, records: Recorder, clock: Callable[[], float]) -> None:
        self.records = records
        self.clock = clock
        self.faults = Faults()
        self.rng = random.Random()
        self._cascade: list[tuple[float, str, Action | None]] = []
        self._expected_auth: bytes | None = None
        self._seed_bytes = b"None"
        self.configure(Faults(), reseed=True)

    def configure(self, faults: Faults, *, reseed: bool = False) -> None:
        """Take new faults; ``reseed`` restarts the random draws from ``faults.seed``."""
        old, self.faults = self.faults, faults
        if reseed or faults.seed != old.seed:
            self.rng.seed(faults.seed)
            self._seed_bytes = str(faults.seed).encode()
        self._expected_auth = b"Bearer " + faults.token.encode() if faults.token else None
        self._cascade = [
            (getattr(faults, name), *_EFFECTS[name]) for name in CASCADE if getattr(faults, name)
        ]

    def decide(self, raw_id: bytes, auth: bytes | None, body: bytes) -> tuple[float, Action]:
        """(seconds to wait, what to answer) for one send request; records it."""
        now = self.clock()
        records = self.records
        faults = self.faults
        message_id = int(raw_id) if raw_id.isdigit() else -1
        if not 0 <= message_id <= _MAX_ID:
            records.request(None, "not_found", now)
            return 0.0, answers.NOT_FOUND
        if self._expected_auth is not None and auth != self._expected_auth:
            records.request(message_id, "unauthorized", now)
            return self._latency(), answers.UNAUTHORIZED
        phone, problem = _check_body(message_id, body)
        if problem is not None:
            records.request(message_id, "invalid", now)
            return self._latency(), answers.json_error(400, problem)
        if self._cascade:
            draw = self.rng.random()
            for rate, outcome, action in self._cascade:
                if draw < rate:
                    records.request(message_id, outcome, now)
                    return self._transient(action)
                draw -= rate
        if faults.reject_rate and self._rejects(message_id):
            records.request(message_id, "rejected", now)
            return self._latency(), answers.REJECTED
        records.accept(message_id, "accepted", now, phone)
        return self._latency(), answers.OK

    def _transient(self, action: Action | None) -> tuple[float, Action]:
        if action is None:
            action = self.rng.choice(answers.GARBAGE)
        return (0.0 if action is Silence.HANG else self._latency()), action

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
