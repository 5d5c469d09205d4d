"""GraphiQL: the page at ``GET /graphql`` (from a browser) and its files under ``/graphiql/``.

The page and its files hold no data, so they are served without a
credential, in front of ``/graphql``'s credential check; the queries it then
sends carry the token like any other client's. Every file comes from here:
React, GraphiQL and its explorer plugin are pinned copies from npm in
``static/vendor/`` (``make graphiql-assets``; versions and sha256 hashes in
``static/vendor/manifest.json``), and the policy below lets nothing else in.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from starlette.datastructures import Headers, QueryParams
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "ASSETS_PATH",
    "STATIC_DIR",
    "ServeGraphiQL",
    "content_security_policy",
    "graphiql_routes",
    "wants_graphiql",
]

ASSETS_PATH = "/graphiql"
STATIC_DIR = Path(__file__).resolve().parent / "static"
_PAGE = Path(__file__).resolve().parent / "page.html"


def content_security_policy(style_nonce: str | None = None) -> str:
    """Our files only; connections to this origin only (its WebSocket included).

    GraphiQL's menus add a ``<style>`` element as they open; the page admits
    it by a nonce made for each response (``page.js`` hands it to them).
    """
    styles = "style-src 'self'" + (f" 'nonce-{style_nonce}'" if style_nonce else "")
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            styles,
            # GraphiQL's stylesheet embeds its fonts and icons as data: URLs.
            "font-src 'self' data:",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate (ETag) each time, so that refreshed files are picked up.
    "Cache-Control": "no-cache",
}
_NONCE_PLACEHOLDER = "__CSP_NONCE__"


def wants_graphiql(method: str, query: Mapping[str, str], accept: str) -> bool:
    """A browser opening ``/graphql``: a GET for HTML that carries no operation."""
    return (
        method == "GET"
        and "query" not in query
        # A persisted query's GET carries only its hash, in extensions.
        and "extensions" not in query
        and "text/html" in accept.lower()
    )


class ServeGraphiQL:
    """ASGI middleware in front of ``/graphql``: the page to a browser, the rest to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.page = _PAGE.read_text()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and wants_graphiql(
            scope["method"],
            QueryParams(scope.get("query_string", b"")),
            Headers(scope=scope).get("accept", ""),
        ):
            nonce = secrets.token_urlsafe(18)
            page = HTMLResponse(
                self.page.replace(_NONCE_PLACEHOLDER, nonce),
                headers={
                    **_HEADERS,
                    "Content-Security-Policy": content_security_policy(nonce),
                    # /graphql answers JSON to other Accept headers.
                    "Vary": "Accept",
                },
            )
            await page(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _Files(StaticFiles):
    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update({**_HEADERS, "Content-Security-Policy": content_security_policy()})
        return response


def graphiql_routes() -> list[BaseRoute]:
    """The page's own files (``/graphiql/page.js``, ``/graphiql/vendor/...``)."""
    return [Mount(ASSETS_PATH, _Files(directory=STATIC_DIR), name="graphiql")]
