"""graphql-transport-ws connections that end when the token they were opened with expires, or idle.

A socket that runs no operation for the view's ``ws_idle_timeout`` seconds
(``WS_IDLE_TIMEOUT``) is closed with 1000 and a reason that says so: an idle
socket costs the server memory and a file descriptor, and a client opens
another when it has something to watch (graphql-ws' lazy mode does just that).

A connection is authenticated once, at ``connection_init``; an OIDC token
carries an ``exp`` (``API_TOKEN`` does not, and open access has no token). At
that instant the server closes the socket with **4403 Forbidden**, which
ends every subscription on it; operations already refuse to start once the
token has expired (``graphql_api.permissions``).

Why 4403 and not 4401: 4403 is what a refused ``connection_init`` already
gets here, and it is the code the graphql-ws client retries on ("might grant
access after retry"), calling ``connectionParams`` again (where a client
puts its renewed token) and resubscribing; 4401 is fatal to that client and
means, in the protocol, a ``subscribe`` sent before ``connection_ack``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage

from graphql_api.principal import Principal

__all__ = [
    "EXPIRED_CLOSE_CODE",
    "EXPIRED_CLOSE_REASON",
    "IDLE_CLOSE_CODE",
    "ExpiringTransportWSHandler",
]

EXPIRED_CLOSE_CODE = 4403
EXPIRED_CLOSE_REASON = "Forbidden: the access token has expired"
IDLE_CLOSE_CODE = 1000

log = structlog.get_logger(__name__)


class ExpiringTransportWSHandler(BaseGraphQLTransportWSHandler[Any, None]):
    """Strawberry's graphql-transport-ws handler, closing the socket at the token's ``exp``."""

    _expiry: asyncio.Task[None] | None = None
    _idle: asyncio.Task[None] | None = None
    _last_busy = 0.0

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        idle_timeout: float | None = getattr(self.view, "ws_idle_timeout", None)
        if self.connection_acknowledged and idle_timeout and self._idle is None:
            self._last_busy = time.monotonic()
            self._idle = asyncio.create_task(self._close_when_idle(idle_timeout))
        principal = getattr(self.context, "principal", None)
        if (
            self.connection_acknowledged
            and self._expiry is None
            and isinstance(principal, Principal)
            and principal.expires_at is not None
        ):
            self._expiry = asyncio.create_task(self._close_at(principal.expires_at))

    async def _close_at(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        log.info("WebSocket closed: its access token expired", operations=len(self.operations))
        # Operations first, so that none sends on the socket once it is closed.
        tasks = [operation.task for operation in self.operations.values() if operation.task]
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        for task in tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        await self.websocket.close(code=EXPIRED_CLOSE_CODE, reason=EXPIRED_CLOSE_REASON)

    async def cleanup_operation(self, operation_id: str) -> None:
        self._last_busy = time.monotonic()
        await super().cleanup_operation(operation_id)

    async def _close_when_idle(self, timeout: float) -> None:
        while True:
            await asyncio.sleep(max(0.0, self._last_busy + timeout - time.monotonic()))
            if self.operations:
                self._last_busy = time.monotonic()
            elif time.monotonic() >= self._last_busy + timeout:
                break
        log.info("WebSocket closed: idle", seconds=timeout)
        await self.websocket.close(
            code=IDLE_CLOSE_CODE, reason=f"Idle: no operation for {timeout:g} s"
        )

    async def shutdown(self) -> None:
        for task in (self._expiry, self._idle):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await super().shutdown()
