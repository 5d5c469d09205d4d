"""A cap on request bodies, checked before anything parses them.

The largest legitimate request, an import of 10,000 clients, is 10.4 MiB of
JSON with every character escaped; a body larger than that would only be
parsed, coerced and then refused, at the cost of the server's memory and time.
"""

from __future__ import annotations

import structlog
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphql_api.http.over_http import refusal

__all__ = ["MAX_BODY_BYTES", "LimitBody"]

MAX_BODY_BYTES = 11 * 1024 * 1024

log = structlog.get_logger(__name__)


class _TooLarge(Exception):
    pass


class LimitBody:
    """ASGI middleware: an HTTP body over ``max_bytes`` gets a 413 JSON error."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdecimal() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            # A body sent in chunks, without a length, is counted as it comes.
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        log.info("request refused: body too large", path=scope.get("path"))
        mib, remainder = divmod(self.max_bytes, 1024 * 1024)
        limit = f"{mib} MiB" if mib and not remainder else f"{self.max_bytes} bytes"
        message = f"The request body exceeds {limit}"
        response = refusal(413, message)
        await response(scope, receive, send)
