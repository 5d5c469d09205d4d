"""The GraphQL schema of SPEC section 2, assembled from one module per concern."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphql import GraphQLError
from strawberry import Schema
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from graphql_api.http.metrics import OperationMetrics
from graphql_api.protection import extensions, log_errors
from graphql_api.resolvers.client_import import ClientImportMutation
from graphql_api.resolvers.clients import ClientMutation, ClientQuery
from graphql_api.resolvers.mailing_status import MailingStatusMutation
from graphql_api.resolvers.mailings import MailingMutation, MailingQuery
from graphql_api.resolvers.progress import ProgressSubscription
from graphql_api.resolvers.statistics import StatisticsQuery
from graphql_api.scalars import SCALAR_MAP
from settings import get_settings

__all__ = ["schema"]

Query = merge_types("Query", (ClientQuery, MailingQuery, StatisticsQuery))
Mutation = merge_types(
    "Mutation", (ClientMutation, ClientImportMutation, MailingMutation, MailingStatusMutation)
)
Subscription = merge_types("Subscription", (ProgressSubscription,))


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


schema = _Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[*extensions(get_settings()), OperationMetrics],
    config=StrawberryConfig(scalar_map=SCALAR_MAP),
)
