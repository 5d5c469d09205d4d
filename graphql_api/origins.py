"""Which browser origins may use the API: CORS for HTTP, an Origin check for WebSockets.

Browsers enforce CORS on HTTP requests but not on WebSockets: any page can
open a WebSocket to any host. So the handshake's ``Origin`` is checked here,
against ``ALLOWED_ORIGINS`` and the API's own origin. A client that sends no
``Origin`` is not a browser and passes; its credentials are checked later, at
``connection_init``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import structlog
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from settings import Settings

__all__ = ["CheckWebSocketOrigin", "cors"]

log = structlog.get_logger(__name__)


def cors(settings: Settings) -> list[Middleware]:
    """CORS for ``ALLOWED_ORIGINS``; none at all while it is empty (same origin only)."""
    if not settings.allowed_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            max_age=600,
        )
    ]


class CheckWebSocketOrigin:
    """ASGI middleware: a WebSocket handshake from a foreign origin gets a 403."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.any = "*" in allowed
        self.allowed = frozenset(origin.rstrip("/").lower() for origin in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not self.any:
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and not self._allowed(origin, headers.get("host")):
                log.info("WebSocket refused: origin not allowed", origin=origin[:200])
                # Closing before accepting makes the server answer the handshake with 403.
                await send({"type": "websocket.close", "code": 1008})
                return
        await self.app(scope, receive, send)

    def _allowed(self, origin: str, host: str | None) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.allowed:
            return True
        # The API's own pages (GraphiQL, the admin page) connect from its own origin.
        return host is not None and urlsplit(origin).netloc == host.lower()
