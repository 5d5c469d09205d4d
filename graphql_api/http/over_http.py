"""GraphQL over HTTP (https://graphql.github.io/graphql-over-http/) on Strawberry's ASGI view.

- The answer is ``application/graphql-response+json`` when the ``Accept``
  header names it (at least as high as ``application/json``), and
  ``application/json`` otherwise: no ``Accept``, ``*/*``, or JSON asked for.
  An ``Accept`` allowing neither gets a 406.
- With ``application/graphql-response+json``, a request that fails before
  execution (a document that does not parse or validate, a limit, variables
  that do not coerce) is a 400 without ``data``; with ``application/json`` it
  is a 200, as legacy clients expect. Errors of execution are a 200 with both.
- A mutation over GET is a 405 with ``Allow: POST``. A subscription streams
  when ``Accept`` asks for a stream: ``multipart/mixed;subscriptionSpec="1.0"``
  (Apollo's protocol) or ``text/event-stream`` (graphql-sse), under the
  WebSocket's rules (``graphql_api.http.streams``); asked for as plain JSON,
  it is a 400 that names the three transports.
- Every refusal, of any kind, is a JSON body ``{"errors": [{"message": ...}]}``.
- A mutation with an ``Idempotency-Key`` header runs once per key
  (``graphql_api.http.idempotency``).
- Automatic persisted queries (``graphql_api.http.persisted_queries``): a hash the
  store does not hold is a 200 with ``PersistedQueryNotFound``, never cached,
  whatever the media type: clients (Apollo's link, urql's exchange) read it
  from a 200 and send the document, while older ones give APQ up on a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import structlog
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult, SubscriptionExecutionResult
from strawberry.types.graphql import OperationType

from graphql_api.coded_errors import code_for_status
from graphql_api.context import Context
from graphql_api.http.idempotency import HEADER as IDEMPOTENCY_HEADER
from graphql_api.http.idempotency import IdempotentMutations
from graphql_api.http.persisted_queries import (
    BadPersistedQuery,
    PersistedQueries,
    PersistedQueryError,
)
from graphql_api.http.streams import Stream, guarded
from graphql_api.protection import MASKED_MESSAGE

__all__ = [
    "GRAPHQL_RESPONSE_JSON",
    "JSON",
    "GraphQLOverHTTP",
    "RequestRefused",
    "negotiate",
    "refusal",
]

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
_METHODS = "GET, POST"
_ALLOWED_OPERATIONS = {
    "GET": frozenset({OperationType.QUERY}),
    "POST": frozenset({OperationType.QUERY, OperationType.MUTATION}),
}

_JSON_KINDS = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}

log = structlog.get_logger(__name__)


class RequestRefused(HTTPException):
    """A request refused before execution; ``reason`` is shown to the client."""

    def __init__(
        self,
        status_code: int,
        reason: str,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, object] | None = None,
    ):
        super().__init__(status_code, reason)
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})


def refusal(
    status_code: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    media_type: str = JSON,
    extensions: Mapping[str, object] | None = None,
) -> Response:
    """The one shape of every refusal: a GraphQL response holding only ``errors``.

    Its ``extensions.code`` is the one given, or the one of ``status_code``.
    """
    error: dict[str, object] = {
        "message": message,
        "extensions": {"code": str(code_for_status(status_code)), **(extensions or {})},
    }
    return JSONResponse(
        {"errors": [error]},
        status_code=status_code,
        headers=dict(headers or {}),
        media_type=f"{media_type}; charset=utf-8",
    )


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if "/" not in media:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = -1.0
        if 0.0 <= quality <= 1.0:
            ranges.append((media.lower(), quality))
    return ranges


def _quality(ranges: list[tuple[str, float]], media_type: str, *, exact: bool) -> float:
    """The quality the most specific matching range gives ``media_type`` (RFC 9110, 12.5.1)."""
    kind = media_type.split("/")[0]
    matches = {media_type: 3, f"{kind}/*": 2, "*/*": 1}
    best = (0, 0.0)
    for media, quality in ranges:
        specificity = matches.get(media, 0)
        if exact and specificity != 3:
            continue
        if specificity > best[0]:
            best = (specificity, quality)
    return best[1]


def negotiate(accept: str | None) -> str | None:
    """The media type to answer with, or ``None`` when the client accepts neither.

    Wildcards choose ``application/json``: the new type goes only to clients
    that name it, since a client that does not know it may not read its 4xx.
    """
    if accept is None or not accept.strip():
        return JSON
    ranges = _media_ranges(accept)
    graphql_response = _quality(ranges, GRAPHQL_RESPONSE_JSON, exact=True)
    json = _quality(ranges, JSON, exact=False)
    if graphql_response > 0 and graphql_response >= json:
        return GRAPHQL_RESPONSE_JSON
    if json > 0:
        return JSON
    return None


def _is_request_error(response: GraphQLHTTPResponse) -> bool:
    """No data and no error about a field: the request failed before execution began.

    Errors of execution always carry the ``path`` of their field (GraphQL
    spec, 7.1.2); parse, validation, limit and coercion errors never do.
    """
    errors = response.get("errors") or []
    return (
        response.get("data") is None
        and bool(errors)
        and all(isinstance(error, dict) and "path" not in error for error in errors)
    )


def _masked(response: GraphQLHTTPResponse) -> bool:
    """Whether an unexpected failure (masked, and logged) kept the request from running."""
    errors = response.get("errors") or []
    return any(
        isinstance(error, dict) and error.get("message") == MASKED_MESSAGE for error in errors
    )


def _text(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise RequestRefused(400, f"The {name} parameter must be a string or null")


def _object(value: object, name: str) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise RequestRefused(400, f"The {name} parameter must be a JSON object or null")


class GraphQLOverHTTP(GraphQL[Context, None]):
    """Strawberry's ASGI view, answering as the GraphQL-over-HTTP spec says.

    The view never renders an IDE: GraphiQL is served in front of it
    (``graphql_api.graphiql``), before any credential is asked for.
    """

    # Off unless the application gives the view a store (``PERSISTED_QUERY_CACHE_BYTES``).
    persisted_queries = PersistedQueries(0)
    # ``Idempotency-Key`` on mutations; the application gives the view its store.
    idempotency: IdempotentMutations | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive=receive)
        media_type = negotiate(request.headers.get("accept"))
        if media_type is None and self._get_stream_transport_from_headers(request.headers):
            media_type = JSON  # a subscription's stream; a refusal is still JSON
        if media_type is None:
            response = refusal(
                406, f"The Accept header must allow {GRAPHQL_RESPONSE_JSON} or {JSON}"
            )
        elif request.method not in _ALLOWED_OPERATIONS:
            response = refusal(
                405,
                f"/graphql answers GET and POST, not {request.method}",
                headers={"Allow": _METHODS},
                media_type=media_type,
            )
        else:
            response = await self._answer(request, media_type)
        # The same URL answers in the type Accept asks for: caches must tell them apart.
        response.headers["Vary"] = "Accept"
        await response(scope, receive, send)

    async def _answer(self, request: Request, media_type: str) -> Response:
        if (
            self.idempotency is not None
            and request.method == "POST"
            and IDEMPOTENCY_HEADER in request.headers
        ):

            def refuse(status: int, message: str, code: str) -> Response:
                extensions = {"code": code}
                return refusal(status, message, media_type=media_type, extensions=extensions)

            return await self.idempotency.answer(
                request, media_type, lambda: self._run(request, media_type), refuse
            )
        return await self._run(request, media_type)

    async def _run(self, request: Request, media_type: str) -> Response:
        try:
            return await self.run(request)
        except HTTPException as refused:
            log.info(
                "HTTP request refused",
                path=request.url.path,
                status=refused.status_code,
                reason=refused.reason,
            )
            ours = refused if isinstance(refused, RequestRefused) else None
            return refusal(
                refused.status_code,
                refused.reason,
                headers=None if ours is None else ours.headers,
                media_type=media_type,
                extensions=None if ours is None else ours.extensions,
            )

    def should_render_graphql_ide(self, request: Any) -> bool:
        return False

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        # Carries the negotiated type to create_response, which sees no request.
        sub_response.media_type = negotiate(request.headers.get("accept")) or JSON
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        media_type = sub_response.media_type or JSON
        # A status set during the operation (a role refused: 401 or 403) stands.
        status = sub_response.status_code
        body: object = response_data
        if status is None and isinstance(response_data, dict) and _is_request_error(response_data):
            # Not executed, so no data entry at all (GraphQL spec, 7.1.2).
            body = {key: value for key, value in response_data.items() if key != "data"}
            if media_type == GRAPHQL_RESPONSE_JSON:
                status = 500 if _masked(response_data) else 400
        response = Response(
            self.encode_json(body),
            status_code=status or 200,
            media_type=f"{media_type}; charset=utf-8",
        )
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        return response

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:
        if request.method == "GET":
            params = request.query_params
            data: object = {
                "query": params.get("query"),
                "operationName": params.get("operationName"),
                "variables": self._json_parameter(params.get("variables"), "variables"),
                "extensions": self._json_parameter(params.get("extensions"), "extensions"),
            }
        else:
            data = await self._json_body(request)
        if not isinstance(data, dict):
            # Batches too: batching is off (one operation per request).
            kind = _JSON_KINDS.get(type(data), "a number")
            raise RequestRefused(
                400, f'The request body must be a JSON object with a "query", not {kind}'
            )
        transport = self._get_stream_transport_from_headers(request.headers)
        request_data = GraphQLRequestData(
            query=_text(data.get("query"), "query"),
            variables=_object(data.get("variables"), "variables"),
            operation_name=_text(data.get("operationName"), "operationName"),
            extensions=_object(data.get("extensions"), "extensions"),
            protocol="http" if transport is None else transport.protocol,
        )
        try:
            return self.persisted_queries.resolve(request_data)
        except BadPersistedQuery as error:
            raise RequestRefused(400, str(error)) from None
        except PersistedQueryError as missing:
            # Not an error of the request: the protocol's cue to send the document.
            raise RequestRefused(
                200,
                missing.message,
                {"Cache-Control": "no-store"},
                extensions={"code": missing.code},
            ) from None

    async def _json_body(self, request: AsyncHTTPRequestAdapter) -> object:
        media_type = (request.content_type or "").split(";")[0].strip().lower()
        if media_type != JSON:
            given = f", not {media_type}" if media_type else "; none was given"
            raise RequestRefused(415, f"Send the request body as Content-Type: {JSON}{given}")
        body = await request.get_body()
        if not body.strip():
            raise RequestRefused(400, 'The request body is empty: send {"query": "..."}')
        try:
            return self.decode_json(body)
        except ValueError as error:  # json's and orjson's decode errors, bad UTF-8 too
            raise RequestRefused(400, f"The request body is not valid JSON: {error}") from None

    def _json_parameter(self, value: object, name: str) -> object:
        if not isinstance(value, str) or not value:
            return None
        try:
            return self.decode_json(value)
        except ValueError:
            raise RequestRefused(400, f"The {name} parameter is not valid JSON") from None

    async def execute_operation(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        result = await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )
        if isinstance(result, SubscriptionExecutionResult) and isinstance(
            request_data, GraphQLRequestData
        ):
            stream = guarded(cast("Stream", result), context.principal, request_data.protocol)
            return cast("SubscriptionExecutionResult", stream)
        return result

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        method = request_adapter.method
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=_ALLOWED_OPERATIONS[method],
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as refused:
            if refused.operation_type is OperationType.MUTATION:
                raise RequestRefused(
                    405, "Mutations need POST: a GET may only run a query", {"Allow": "POST"}
                ) from None
            raise RequestRefused(
                400,
                "A subscription streams: open /graphql as a WebSocket (graphql-transport-ws), "
                'or POST with Accept: multipart/mixed;subscriptionSpec="1.0" (Apollo) or '
                "Accept: text/event-stream (graphql-sse)",
            ) from None
        except CannotGetOperationTypeError as refused:
            raise RequestRefused(400, refused.as_http_error_reason()) from None
        except MissingQueryError:
            raise RequestRefused(400, "No GraphQL query found in the request") from None
