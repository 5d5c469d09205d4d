"""Which browser origins may call the API over HTTP: CORS from ``ALLOWED_ORIGINS``.

WebSockets get no CORS from browsers; the same list is handed to Strawberry's
view, which refuses a handshake from any origin but the API's own and these.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from graphql_api.http.over_http import refusal
from settings import Settings

__all__ = ["cors"]


class _Cors(CORSMiddleware):
    """Starlette's CORS, with a refused preflight in the API's JSON shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {k: v for k, v in response.headers.items() if k.startswith("access-control-")}
        return refusal(response.status_code, bytes(response.body).decode(), headers=headers)


def cors(settings: Settings) -> list[Middleware]:
    """CORS for ``ALLOWED_ORIGINS``; none at all while it is empty (same origin only)."""
    if not settings.allowed_origins:
        return []
    return [
        Middleware(
            _Cors,
            allow_origins=list(settings.allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Idempotency-Key"],
            expose_headers=["X-Request-ID", "Idempotent-Replayed"],
            max_age=600,
        )
    ]
