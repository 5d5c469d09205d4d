"""Subscriptions over HTTP (Apollo's multipart protocol, graphql-sse) under the WebSocket's rules.

Both transports are Strawberry's (``multipart/mixed;subscriptionSpec="1.0"``
and ``text/event-stream``, the graphql-sse protocol's distinct-connections
mode); every stream they serve passes through :func:`guarded`, the one place
that holds what a WebSocket's subscription obeys:

- the credentials were checked on the request (``RequireToken``), the role
  and an expired token at the operation's start (``graphql_api.permissions``);
- the stream ends when the subscription's own generator ends (the last event
  carries the final counts, as on the WebSocket), or at the token's ``exp``:
  a last event with an ``UNAUTHENTICATED`` error, then the end of the stream
  (a WebSocket is closed with 4403 at that instant);
- caps and idle timeouts per connection or principal go in :func:`guarded`
  too (see ``# limits:`` there), so that no transport escapes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator

import structlog
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from graphql_api.error_codes import ErrorCode
from graphql_api.principal import Principal

__all__ = ["EXPIRED_MESSAGE", "Stream", "guarded"]

EXPIRED_MESSAGE = "The access token has expired: subscribe again with a fresh one"

log = structlog.get_logger(__name__)

Stream = AsyncGenerator[ExecutionResult, None]


def _expired() -> ExecutionResult:
    error = GraphQLError(EXPIRED_MESSAGE, extensions={"code": str(ErrorCode.UNAUTHENTICATED)})
    return ExecutionResult(data=None, errors=[error])


async def guarded(stream: Stream, principal: Principal, protocol: str) -> Stream:
    """``stream`` as an HTTP transport serves it: ended at the caller's token's ``exp``."""
    # limits: a per-principal cap would take its slot here and give it back in
    # the ``finally``; an idle timeout would bound each ``anext`` below.
    log.info("subscription stream opened", protocol=protocol, via=principal.via)
    try:
        async with contextlib.aclosing(stream):
            while True:
                timeout = None
                if principal.expires_at is not None:
                    timeout = max(0.0, principal.expires_at - time.time())
                try:
                    async with asyncio.timeout(timeout):
                        result = await anext(stream)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    log.info("subscription stream ended: its access token expired")
                    yield _expired()
                    return
                yield result
    finally:
        log.info("subscription stream closed", protocol=protocol)
