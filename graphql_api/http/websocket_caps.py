"""A cap on the WebSockets one API process holds open, and on those of one client address.

Checked at the handshake, before the socket is accepted: one over either cap
is refused (the server answers the handshake with a 403) and costs nothing
more. What keeps a socket short once it is open is the view's: it is closed
if it does not authenticate (``connection_init``) within ``WS_AUTH_TIMEOUT``
seconds, and once it has run no operation for ``WS_IDLE_TIMEOUT`` seconds
(``graphql_api.http.websocket``).
"""

from __future__ import annotations

from collections import Counter

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LimitWebSockets"]

log = structlog.get_logger(__name__)


class LimitWebSockets:
    """ASGI middleware: ``per_process`` WebSockets at most, ``per_address`` from one address."""

    def __init__(self, app: ASGIApp, *, per_process: int, per_address: int) -> None:
        self.app = app
        self.per_process = per_process
        self.per_address = per_address
        self._open: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return self._open.total()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        if self.open >= self.per_process or self._open[address] >= self.per_address:
            log.info(
                "WebSocket refused: too many open",
                open=self.open,
                from_address=self._open[address],
            )
            await send({"type": "websocket.close", "code": 1013, "reason": "Too many WebSockets"})
            return
        self._open[address] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._open[address] -= 1
            if self._open[address] <= 0:
                del self._open[address]
