"""``/docs``: the reference page and its stylesheet, built once when the app is made.

Public, like GraphiQL's page: it says what ``schema.graphql`` says, and
holds no data, so it needs no credential.
"""

from __future__ import annotations

from pathlib import Path

from graphql import GraphQLSchema, build_schema
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Route
from strawberry import Schema

from graphql_api.reference.html import render_html
from graphql_api.reference.markdown import render_markdown
from graphql_api.reference.outline import outline

__all__ = ["STYLESHEET", "api_markdown", "reference_routes"]

STYLESHEET = Path(__file__).resolve().parent / "static" / "reference.css"

_HEADERS = {
    # Our stylesheet and nothing else: no script at all.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _published(schema: Schema) -> GraphQLSchema:
    # From the SDL as clients see it (what `schema.graphql` holds), not from
    # Strawberry's internals.
    return build_schema(schema.as_str())


def api_markdown(schema: Schema) -> str:
    """``docs/api.md``: the reference as Markdown."""
    return render_markdown(outline(_published(schema)))


def reference_routes(schema: Schema, *, graphiql: bool) -> list[BaseRoute]:
    page = render_html(outline(_published(schema)), graphiql=graphiql)

    async def reference(_: Request) -> Response:
        return HTMLResponse(page, headers=_HEADERS)

    async def stylesheet(_: Request) -> Response:
        return FileResponse(STYLESHEET, media_type="text/css", headers=_HEADERS)

    return [
        Route("/docs", reference, methods=["GET", "HEAD"]),
        Route("/docs/reference.css", stylesheet, methods=["GET", "HEAD"]),
    ]
