"""Which browser origins may call the API over HTTP: CORS from ``ALLOWED_ORIGINS``.

WebSockets get no CORS from browsers; the same list is handed to Strawberry's
view, which refuses a handshake from any origin but the API's own and these.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from settings import Settings

__all__ = ["cors"]


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
