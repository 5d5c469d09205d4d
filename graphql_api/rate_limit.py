"""Rate limits per caller (``API_RATE_LIMIT``), and harder ones on failed sign-ins.

A caller is :func:`graphql_api.subscription_caps.caller_key`: the OIDC
subject, the API token, or the client's address when the API is open. Each
request to ``/graphql`` and ``/exports`` takes one hit of every limit in
``API_RATE_LIMIT`` (``50/second;2000/minute``: the ``limits`` library's
notation; ``off`` turns them off); one over any is answered 429 with
``Retry-After``, the IETF draft's ``RateLimit`` and ``RateLimit-Policy``
headers and a JSON body. A request refused for its credentials (a 401) takes
one hit of ``API_AUTH_FAILURE_LIMIT`` for its address instead, and an address
past it is answered 429 before its credentials are even looked at: a
wrong-token flood costs a counter, not a verification.

The counts are sliding windows (``limits``' sliding window counter) in Redis
when ``REDIS_URL`` is set, shared by every API process, in this process's
memory otherwise. A rate limit protects the API; it must not take it down
with Redis, nor make every request wait on it: a Redis call that fails (or
takes over half a second) sends the counting to this process's memory for
the next ``STORE_RETRY`` seconds, logged once, and then Redis is asked again.
So while Redis is down or silent, one request in that many seconds pays the
half second, and the others are still limited, per process.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphql_api.auth import PRINCIPAL_SCOPE_KEY
from graphql_api.error_codes import ErrorCode
from graphql_api.http.over_http import refusal
from graphql_api.principal import Principal
from graphql_api.subscription_caps import caller_key
from settings import Settings

__all__ = ["LimitFailedSignIns", "LimitRate", "RateLimits", "parse_limits"]

log = structlog.get_logger(__name__)

# Seconds a call to Redis may take before the request goes on without it.
_REDIS_TIMEOUT = 0.5
# Seconds the counting stays in memory after Redis failed, before Redis is asked again.
STORE_RETRY = 5.0


def parse_limits(value: str) -> list[RateLimitItem]:
    """``API_RATE_LIMIT``'s limits; none for ``off``."""
    if value.strip().lower() == "off":
        return []
    return parse_many(value)


class _StoreHealth:
    """Whether the shared store is to be asked: one for both kinds of limits, so that a
    Redis gone silent costs one request its time limit, not one per kind of limit."""

    def __init__(self) -> None:
        self._down_until = 0.0

    @property
    def up(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self) -> None:
        if self.up:
            log.warning(
                "rate limit store unavailable; counting in this process for a while",
                retry_in=STORE_RETRY,
                exc_info=True,
            )
        self._down_until = time.monotonic() + STORE_RETRY


@dataclass(frozen=True, slots=True)
class _Refusal:
    item: RateLimitItem
    retry_after: int


class RateLimits:
    """The limits of one kind (requests, or failed sign-ins) over one store."""

    def __init__(
        self,
        items: Sequence[RateLimitItem],
        storage: Storage,
        namespace: str,
        health: _StoreHealth | None = None,
    ) -> None:
        self.items = list(items)
        self._storage = storage
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        # Where the counting goes while the store is down (an in-memory store needs none).
        self._fallback = (
            None
            if isinstance(storage, MemoryStorage)
            else SlidingWindowCounterRateLimiter(MemoryStorage())
        )
        self._health = health or _StoreHealth()
        self._namespace = namespace

    async def aclose(self) -> None:
        """Closes the store's Redis connections, if it has any (``limits`` offers no close)."""
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    @classmethod
    def from_settings(cls, settings: Settings) -> tuple[RateLimits, RateLimits]:
        """The request limits and the failed sign-in limits, over one store."""
        storage: Storage
        if settings.redis_url:
            storage = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                key_prefix=f"{settings.queue_name}:rate",
                socket_timeout=_REDIS_TIMEOUT,
                socket_connect_timeout=_REDIS_TIMEOUT,
            )
        else:
            storage = MemoryStorage()
        health = _StoreHealth()
        return (
            cls(parse_limits(settings.api_rate_limit), storage, "requests", health),
            cls(parse_limits(settings.api_auth_failure_limit), storage, "failed-sign-ins", health),
        )

    @property
    def enabled(self) -> bool:
        return bool(self.items)

    def policy(self) -> str:
        """The ``RateLimit-Policy`` header: each limit, its quota and window in seconds."""
        return ", ".join(
            f'"{self._name(item)}";q={item.amount};w={item.get_expiry()}' for item in self.items
        )

    async def hit(self, key: str) -> _Refusal | None:
        """Counts one request of ``key``; the limit it went over, if any."""
        return await self._check(key, hit=True)

    async def exhausted(self, key: str) -> _Refusal | None:
        """The limit ``key`` is over already, if any, counting nothing."""
        return await self._check(key, hit=False)

    async def _check(self, key: str, *, hit: bool) -> _Refusal | None:
        if self._fallback is not None and not self._health.up:
            return await self._check_with(self._fallback, key, hit=hit)
        try:
            return await self._check_with(self._limiter, key, hit=hit)
        except Exception:
            if self._fallback is None:  # pragma: no cover - memory does not fail
                raise
            self._health.failed()
            return await self._check_with(self._fallback, key, hit=hit)

    async def _check_with(
        self, limiter: SlidingWindowCounterRateLimiter, key: str, *, hit: bool
    ) -> _Refusal | None:
        for item in self.items:
            act = limiter.hit if hit else limiter.test
            if not await act(item, self._namespace, key):
                stats = await limiter.get_window_stats(item, self._namespace, key)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                return _Refusal(item, wait)
        return None

    def headers(self, refused: _Refusal) -> dict[str, str]:
        return {
            "Retry-After": str(refused.retry_after),
            "RateLimit-Policy": self.policy(),
            "RateLimit": f'"{self._name(refused.item)}";r=0;t={refused.retry_after}',
        }

    @staticmethod
    def _name(item: RateLimitItem) -> str:
        return f"{item.amount}-per-{item.get_expiry()}s"


async def _answer_429(
    limits: RateLimits, refused: _Refusal, message: str, scope: Scope, receive: Receive, send: Send
) -> None:
    log.info("request refused: rate limited", path=scope.get("path"), limit=str(refused.item))
    response = refusal(
        429,
        message,
        headers=limits.headers(refused),
        extensions={"code": ErrorCode.RATE_LIMITED.value, "retryAfter": refused.retry_after},
    )
    await response(scope, receive, send)


class _LimitMiddleware:
    """ASGI middleware that counts HTTP requests against ``limits``; the rest pass untouched."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limits.enabled:
            await self.app(scope, receive, send)
            return
        await self._limit(scope, receive, send)

    async def _limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class LimitRate(_LimitMiddleware):
    """ASGI middleware, after the credentials are checked: one hit per request of its caller."""

    async def _limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get(PRINCIPAL_SCOPE_KEY)
        key = caller_key(principal if isinstance(principal, Principal) else None, scope)
        refused = await self.limits.hit(key)
        if refused is not None:
            message = (
                f"Too many requests: at most {refused.item.amount} per "
                f"{refused.item.get_expiry()} s; try again in {refused.retry_after} s"
            )
            await _answer_429(self.limits, refused, message, scope, receive, send)
            return
        await self.app(scope, receive, send)


class LimitFailedSignIns(_LimitMiddleware):
    """ASGI middleware, before the credentials are checked: an address refused too often waits."""

    async def _limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = caller_key(None, scope)
        refused = await self.limits.exhausted(key)
        if refused is not None:
            message = (
                "Too many requests with refused credentials from this address; "
                f"try again in {refused.retry_after} s"
            )
            await _answer_429(self.limits, refused, message, scope, receive, send)
            return
        status = 0

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watching_send)
        if status == 401:
            await self.limits.hit(key)
