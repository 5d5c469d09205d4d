"""A cap on the number of request headers, before any middleware reads them.

Their total size is bounded earlier, by the HTTP parser (``MAX_HEADER_BYTES``,
uvicorn's h11): a request whose headers do not fit is answered 400 by the
server itself. Within that size a client could still send thousands of tiny
headers, each a tuple that every middleware after this one would walk.
"""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from graphql_api.http.over_http import refusal

__all__ = ["LimitHeaders"]

log = structlog.get_logger(__name__)


class LimitHeaders:
    """ASGI middleware: more than ``max_count`` headers get a 431; a WebSocket is refused."""

    def __init__(self, app: ASGIApp, max_count: int) -> None:
        self.app = app
        self.max_count = max_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and len(scope["headers"]) > self.max_count:
            log.info("request refused: too many headers", count=len(scope["headers"]))
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = refusal(
                431, f"This request has more than the {self.max_count} headers allowed"
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
