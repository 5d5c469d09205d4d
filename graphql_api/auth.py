"""``API_TOKEN``: when set, every request to the API must carry it (SPEC section 4).

HTTP requests send ``Authorization: Bearer <token>``; WebSocket clients send
it in ``connectionParams.authorization`` at ``connection_init`` (as
``Bearer <token>`` or the bare token), since browsers cannot set headers on a
WebSocket. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

import structlog
from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["RequireToken", "connection_authorized", "token_matches"]

log = structlog.get_logger(__name__)


def token_matches(presented: object, expected: SecretStr, *, bare_allowed: bool) -> bool:
    """Whether ``presented`` (``Bearer <token>``, or the bare token if allowed) is the token."""
    if not isinstance(presented, str):
        return False
    scheme, _, credential = presented.strip().partition(" ")
    if scheme.lower() == "bearer":
        candidate = credential.strip()
    elif bare_allowed:
        candidate = presented.strip()
    else:
        return False
    return hmac.compare_digest(
        candidate.encode("utf-8", "surrogateescape"),
        expected.get_secret_value().encode("utf-8", "surrogateescape"),
    )


def connection_authorized(params: Mapping[str, object], expected: SecretStr | None) -> bool:
    """Whether a WebSocket ``connection_init`` payload carries the token (if one is needed)."""
    return expected is None or token_matches(
        params.get("authorization"), expected, bare_allowed=True
    )


class RequireToken:
    """ASGI middleware: HTTP requests without the token get a 401 JSON error."""

    def __init__(self, app: ASGIApp, token: SecretStr | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.token is not None:
            presented = Headers(scope=scope).get("authorization")
            if not token_matches(presented, self.token, bare_allowed=False):
                log.info("request refused: no valid API token", path=scope.get("path"))
                response = JSONResponse(
                    {
                        "errors": [
                            {
                                "message": "Missing or invalid API token: send "
                                "'Authorization: Bearer <token>'"
                            }
                        ]
                    },
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="mailings"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
