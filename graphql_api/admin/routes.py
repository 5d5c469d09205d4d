"""Routes of the admin page: ``/`` (the page), ``/admin/*`` (its files), ``/admin/config.json``.

Nothing here needs a credential: the page is public code, and the config it
reads holds only what a browser must know to sign in (never a secret). Every
call the page makes then goes to ``/graphql`` with the operator's token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphql_api.oidc import public_client_config
from settings import Settings

__all__ = ["STATIC_DIR", "admin_routes", "content_security_policy", "public_config"]

STATIC_DIR = Path(__file__).resolve().parent / "static"


def public_config(settings: Settings) -> dict[str, Any]:
    """What the page needs to sign in; only values a browser may see."""
    return {
        "graphqlPath": "/graphql",
        "authRequired": settings.api_token is not None or settings.oidc_enabled,
        "apiToken": settings.api_token is not None,
        # Issuer, client id, scopes, audience and the role names, or None.
        "oidc": public_client_config(settings),
    }


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def content_security_policy(settings: Settings) -> str:
    """Only our own files run; the page talks to us and, for sign-in, to the provider."""
    connect = ["'self'"]
    issuer = _origin(settings.oidc_issuer) if settings.oidc_enabled else None
    if issuer is not None:
        # The token endpoint found in the issuer's discovery document may sit
        # on another host of the provider (as Google's does).
        connect += [issuer, "https:"]
    return "; ".join(
        [
            "default-src 'self'",
            f"connect-src {' '.join(connect)}",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ]
    )


def _page_headers(policy: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        # The OAuth2 redirect puts a code in the page's URL: never pass it on.
        "Referrer-Policy": "no-referrer",
        # Revalidate (ETag) each time, so a new release's files are picked up.
        "Cache-Control": "no-cache",
    }


class _WithHeaders:
    """ASGI middleware adding fixed headers to every response."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def admin_routes(settings: Settings) -> list[BaseRoute]:
    """The page's routes, to be listed after the API's own."""
    headers = _page_headers(content_security_policy(settings))
    config = public_config(settings)

    async def index(_: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=headers)

    async def config_json(_: Request) -> Response:
        return JSONResponse(config, headers={"Cache-Control": "no-store"})

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/admin/config.json", config_json, methods=["GET"]),
        Mount("/admin", _WithHeaders(StaticFiles(directory=STATIC_DIR), headers)),
    ]
