"""The Starlette application: ``/graphql`` (POST, GET, WebSocket, GraphiQL) and ``/healthz``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import structlog
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from graphql_api.auth import RequireToken, connection_authorized
from graphql_api.body_limit import LimitBody
from graphql_api.context import Context, make_loaders
from graphql_api.schema import schema
from models.db import close_db, connection, fetch, init_db
from settings import get_settings

__all__ = ["GraphQLView", "create_app"]

log = structlog.get_logger(__name__)


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view, with our context, token check and JSON codec."""

    def __init__(self, schema: BaseSchema, token: SecretStr | None) -> None:
        # Only graphql-transport-ws: the legacy graphql-ws protocol has no
        # connection hook in which to check the token.
        super().__init__(schema, subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,))
        self.token = token

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        # A WebSocket lives long: cached loaders would answer with stale rows.
        cache = not isinstance(request, WebSocket)
        return Context(request=request, response=response, loaders=make_loaders(cache=cache))

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        if not connection_authorized(context.connection_params, self.token):
            log.info("WebSocket refused: no valid API token")
            raise ConnectionRejectionError
        return UnsetType()  # accept, with no payload in connection_ack

    def decode_json(self, data: str | bytes) -> object:
        # orjson's decode error is a json.JSONDecodeError, which Strawberry
        # answers with a 400; it parses a 10,000-client import several times faster.
        return orjson.loads(data)

    def encode_json(self, data: object) -> str:
        return orjson.dumps(data).decode()


async def _healthz(_: Request) -> Response:
    """Up, and the database answers."""
    await fetch(connection(), "SELECT 1 AS ok")
    return JSONResponse({"status": "ok"})


@asynccontextmanager
async def _lifespan(_: Starlette) -> AsyncIterator[None]:
    await init_db()
    log.info("API ready")
    try:
        yield
    finally:
        await close_db()


def create_app() -> Starlette:
    """The API application; ``mailings serve`` runs it under uvicorn."""
    token = get_settings().api_token
    view = GraphQLView(schema, token)
    return Starlette(
        routes=[
            Route("/graphql", RequireToken(LimitBody(view), token)),
            WebSocketRoute("/graphql", view),
            Route("/healthz", _healthz),
        ],
        lifespan=_lifespan,
    )
