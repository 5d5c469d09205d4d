"""The Starlette application: ``/graphql`` (POST, GET, WebSocket, GraphiQL) and ``/healthz``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import orjson
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute, request_response
from starlette.types import ASGIApp
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.schema import BaseSchema
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from strawberry.types.unset import UnsetType

from graphql_api.admin import admin_routes
from graphql_api.auth import Authenticator, Refused, RequireToken, principal_of
from graphql_api.context import Context, make_loaders
from graphql_api.graphiql import ServeGraphiQL, graphiql_routes
from graphql_api.http.body_limit import LimitBody
from graphql_api.http.exports import MOUNT_NAME as EXPORTS
from graphql_api.http.exports import export_routes
from graphql_api.http.header_limit import LimitHeaders
from graphql_api.http.health import healthz, readyz
from graphql_api.http.idempotency import IdempotentMutations
from graphql_api.http.metrics import metrics_endpoint
from graphql_api.http.origins import cors
from graphql_api.http.over_http import GraphQLOverHTTP, refusal
from graphql_api.http.persisted_queries import PersistedQueries
from graphql_api.http.request_id import RequestId
from graphql_api.http.websocket import ExpiringTransportWSHandler
from graphql_api.http.websocket_caps import LimitWebSockets
from graphql_api.protection import MASKED_MESSAGE
from graphql_api.rate_limit import LimitFailedSignIns, LimitRate, RateLimits
from graphql_api.reference import reference_routes
from graphql_api.schema import make_schema
from graphql_api.signed_links import AcceptSignedLinks, LinkSigner
from graphql_api.subscription_caps import SubscriptionCaps
from models.clock_sync import ClockFollower
from models.db import close_db, init_db, is_open
from settings import Settings, get_settings

__all__ = ["GraphQLView", "create_app"]

log = structlog.get_logger(__name__)


class GraphQLView(GraphQLOverHTTP):
    """Strawberry's ASGI view, with our context, token check and JSON codec."""

    # Closes a WebSocket with 4403 when the token it was opened with expires.
    graphql_transport_ws_handler_class = ExpiringTransportWSHandler

    def __init__(
        self,
        schema: BaseSchema,
        authenticator: Authenticator,
        *,
        allowed_origins: Sequence[str] = (),
        persisted_queries: PersistedQueries | None = None,
        ws_auth_timeout: float = 60.0,
        ws_idle_timeout: float | None = None,
    ) -> None:
        # Over a WebSocket only graphql-transport-ws: the legacy graphql-ws
        # protocol has no connection hook in which to check the token. Over
        # HTTP, Apollo's multipart protocol and graphql-sse, whose requests
        # pass the token check like any other (graphql_api.http.streams).
        # GraphiQL is served in front of the view (graphql_api.graphiql).
        super().__init__(
            schema,
            graphql_ide=None,
            subscription_protocols=(
                GRAPHQL_TRANSPORT_WS_PROTOCOL,
                MULTIPART_SUBSCRIPTION_PROTOCOL,
                GRAPHQL_SSE_PROTOCOL,
            ),
            # Browsers apply no CORS to WebSockets: Strawberry refuses a
            # handshake from any origin but the API's own and these (403).
            allowed_origins=allowed_origins,
            # A socket that sends no connection_init is closed with 4408.
            connection_init_wait_timeout=timedelta(seconds=ws_auth_timeout),
        )
        # Read by ExpiringTransportWSHandler: a socket running nothing this long is closed.
        self.ws_idle_timeout = ws_idle_timeout
        self.authenticator = authenticator
        if persisted_queries is not None:
            self.persisted_queries = persisted_queries

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        # A WebSocket lives long: cached loaders would answer with stale rows.
        cache = not isinstance(request, WebSocket)
        context = Context(request=request, response=response, loaders=make_loaders(cache=cache))
        if not isinstance(request, WebSocket):  # a WebSocket's caller is known at connection_init
            context.principal = principal_of(request.scope)
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        presented = context.connection_params.get("authorization")
        if presented is None:  # non-browser clients may have sent it with the handshake
            presented = context.request.headers.get("authorization")
        try:
            context.principal = await self.authenticator.authenticate(presented, bare_allowed=True)
        except Refused as refused:
            log.info("WebSocket refused: credentials not accepted", reason=refused.message)
            raise ConnectionRejectionError from None
        return UnsetType()  # accept, with no payload in connection_ack

    def decode_json(self, data: str | bytes) -> object:
        # orjson's decode error is a ValueError, answered with a 400 (over_http);
        # it parses a 10,000-client import several times faster.
        return orjson.loads(data)

    def encode_json(self, data: object) -> str:
        return orjson.dumps(data).decode()


async def _refused(_: Request, error: Exception) -> Response:
    """Starlette's own refusals (no such path, method not allowed) in the API's JSON shape."""
    assert isinstance(error, HTTPException)
    return refusal(error.status_code, error.detail, headers=error.headers)


async def _failed(_: Request, error: Exception) -> Response:
    # Starlette re-raises the error after this answer, so the server logs its traceback.
    return refusal(500, MASKED_MESSAGE)


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    # Tests run the application inside a process whose database is open already.
    opens_db = not is_open()
    if opens_db:
        await init_db(app.state.settings)
    # The API's own checks (endAt in the future) follow the database's clock too.
    settings = app.state.settings
    follower = ClockFollower(settings.clock_offset_bound, settings.clock_sync_interval)
    try:
        await follower.sync()
    except Exception as error:  # the database is down: /readyz says so; measured when it is back
        log.warning("database clock not measured yet", error=type(error).__name__)
    following = asyncio.create_task(follower.run(), name="clock follower")
    log.info("API ready")
    try:
        yield
    finally:
        following.cancel()
        await app.state.authenticator.aclose()
        await app.state.rate_limits.aclose()
        if opens_db:
            await close_db()


def create_app(settings: Settings | None = None) -> Starlette:
    """The API application; ``mailings serve`` runs it under uvicorn (``settings``: tests)."""
    settings = settings or get_settings()
    schema = make_schema(settings)
    authenticator = Authenticator.from_settings(settings)
    signer = LinkSigner.from_settings(settings)
    view = GraphQLView(
        schema,
        authenticator,
        allowed_origins=settings.allowed_origins,
        persisted_queries=PersistedQueries(
            settings.persisted_query_cache_bytes, settings.max_query_tokens
        ),
        ws_auth_timeout=settings.ws_auth_timeout,
        ws_idle_timeout=settings.ws_idle_timeout or None,
    )
    websockets = LimitWebSockets(
        view,
        per_process=settings.max_websockets,
        per_address=settings.max_websockets_per_address,
    )
    requests, failed_sign_ins = RateLimits.from_settings(settings)
    http_view: ASGIApp = LimitFailedSignIns(
        RequireToken(LimitRate(LimitBody(view, settings.max_body_bytes), requests), authenticator),
        failed_sign_ins,
    )
    view.idempotency = IdempotentMutations(settings.idempotency_key_ttl, settings.idempotency_wait)
    if settings.graphiql:
        http_view = ServeGraphiQL(http_view)
    app = Starlette(
        routes=[
            Route("/graphql", http_view),
            WebSocketRoute("/graphql", websockets),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            # The API's figures need the same credentials as /graphql (SPEC 6): they
            # tell volumes and statuses, and each scrape reads the database.
            Route(
                "/metrics",
                LimitFailedSignIns(
                    RequireToken(
                        LimitRate(request_response(metrics_endpoint), requests), authenticator
                    ),
                    failed_sign_ins,
                ),
            ),
            # CSV downloads, behind the same credentials as /graphql, or a signed link.
            Mount(
                "/exports",
                routes=export_routes(),
                middleware=[
                    Middleware(LimitFailedSignIns, failed_sign_ins),
                    Middleware(AcceptSignedLinks, signer, authenticator),
                    Middleware(LimitRate, requests),
                ],
                name=EXPORTS,
            ),
            *(graphiql_routes() if settings.graphiql else []),
            # The reference, from the schema's descriptions; public like GraphiQL's page.
            *reference_routes(schema, graphiql=settings.graphiql),
            # The operators' admin page at /, a client of /graphql like any other.
            *admin_routes(settings),
        ],
        middleware=[
            Middleware(LimitHeaders, settings.max_header_count),
            Middleware(RequestId),
            *cors(settings),
        ],
        exception_handlers={HTTPException: _refused, Exception: _failed},
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.authenticator = authenticator
    app.state.link_signer = signer
    app.state.websockets = websockets
    app.state.rate_limits = requests
    # Every subscription transport holds its place here (graphql_api.subscription_caps).
    app.state.subscription_caps = SubscriptionCaps(
        per_connection=settings.max_subscriptions_per_connection,
        per_caller=settings.max_subscriptions_per_caller,
    )
    return app
