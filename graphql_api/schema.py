"""The GraphQL schema of docs/api.md, assembled from one module per concern."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry import Schema
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from graphql_api.audit import AuditQuery, RecordActor
from graphql_api.http.metrics import OperationMetrics
from graphql_api.protection import extensions, log_errors
from graphql_api.resolvers.client_import import ClientImportMutation
from graphql_api.resolvers.clients import ClientMutation, ClientQuery
from graphql_api.resolvers.mailing_status import MailingStatusMutation
from graphql_api.resolvers.mailings import MailingMutation, MailingQuery
from graphql_api.resolvers.nodes import NodeQuery
from graphql_api.resolvers.opt_outs import OptOutMutation
from graphql_api.resolvers.progress import ProgressSubscription
from graphql_api.resolvers.statistics import StatisticsQuery
from graphql_api.resolvers.time_zones import TimeZoneQuery
from graphql_api.scalars import SCALAR_MAP
from settings import Settings, get_settings

__all__ = ["make_schema", "schema"]


def _query_description(settings: Settings) -> str:
    return (
        "What can be read. Lists are Relay connections paged both ways (`first`/`after`, "
        "`last`/`before`, at most 500 a page) in the order `orderBy` asks for. One request "
        f"may ask for at most {settings.max_query_nodes:,} list items (`MAX_QUERY_NODES`): "
        "each connection's page size times those of the lists it is nested in, every alias "
        "counted; `mailings(first: 100) { edges { node { messages(first: 500) ... } } }` "
        "asks for 100 + 100 x 500. A request over it is refused before it runs, with its "
        "cost and the limit in the error's `cost` and `limit` extensions."
    )


def _root(name: str, description: str, parts: tuple[type, ...]) -> type:
    """One root type from the fields of several (``merge_types``, with a description)."""
    return strawberry.type(type(name, parts, {}), description=description)


Mutation = _root(
    "Mutation",
    "What can be changed. Each mutation answers a union: its result, or an error type (all "
    "implement `Error`); a refused mutation writes nothing. A viewer's mutation is refused "
    "with a 403. Over HTTP, an `Idempotency-Key` header makes a mutation safe to repeat: a "
    "repeat with the same key and request answers the first result without running again "
    "(the same key with another request: a 422, `IDEMPOTENCY_KEY_REUSED`; one still "
    "running: a 409, `IDEMPOTENCY_KEY_IN_PROGRESS`). Every change is recorded in `auditLog`.",
    (
        ClientMutation,
        ClientImportMutation,
        OptOutMutation,
        MailingMutation,
        MailingStatusMutation,
    ),
)
Subscription = _root(
    "Subscription",
    "Live updates at `/graphql`, under the same credentials, limits and end as each other: "
    "over a WebSocket (`graphql-transport-ws`), over HTTP as Apollo's multipart protocol "
    '(`Accept: multipart/mixed;subscriptionSpec="1.0"`), or as Server-Sent Events (the '
    "`graphql-sse` protocol, `Accept: text/event-stream`, distinct connections).",
    (ProgressSubscription,),
)


class _Schema(Schema):
    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        # Over HTTP (WebSockets go through ``stream``) a subscription would run
        # as a query and fail; the view answers this refusal with a 400.
        allowed = set(allowed_operation_types or OperationType) - {OperationType.SUBSCRIPTION}
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed,
            operation_extensions,
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Called with the errors as they were, before MaskErrors hides them.
        log_errors(errors, execution_context)


@functools.cache
def make_schema(settings: Settings) -> Schema:
    """The schema under ``settings``' limits; the process's own is :data:`schema`."""
    query = _root(
        "Query",
        _query_description(settings),
        (ClientQuery, MailingQuery, StatisticsQuery, TimeZoneQuery, AuditQuery, NodeQuery),
    )
    return _Schema(
        query=query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[*extensions(settings), RecordActor, OperationMetrics],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
    )


schema = make_schema(get_settings())
