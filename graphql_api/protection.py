"""What stands between a client and the resolvers: limits, masking and error logs.

Expected errors are union members and never reach this module. Errors about
the request itself (syntax, validation, limits, bad arguments) are shown as
they are; anything else is a bug or an outage: logged with its traceback and
masked for the client.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from graphql import GraphQLError
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, MaskErrors, SchemaExtension
from strawberry.types import ExecutionContext

from graphql_api.coded_errors import ErrorCodes, coded
from graphql_api.document_guard import DocumentCache, DocumentGuard, QueryLimits
from graphql_api.error_codes import ErrorCode
from graphql_api.permissions import RequireRole
from settings import Settings

__all__ = [
    "MASKED_MESSAGE",
    "extensions",
    "is_unexpected",
    "log_errors",
    "query_limits",
]

MASKED_MESSAGE = "Unexpected error; it has been logged."

log = structlog.get_logger(__name__)


def is_unexpected(error: GraphQLError) -> bool:
    """Whether an error came from a failure rather than from the request.

    graphql-core builds errors about the request without an ``original_error``
    (or wraps a ``GraphQLError`` raised on purpose, as for a negative
    ``first``); an exception of any other kind escaped a resolver.
    """
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def log_errors(errors: list[GraphQLError], context: ExecutionContext | None) -> None:
    operation = None if context is None else context.operation_name
    for error in errors:
        if is_unexpected(error):
            log.error(
                "unexpected error in a GraphQL operation",
                operation=operation,
                path=error.path,
                exc_info=error.original_error,
            )
        else:
            log.info("GraphQL request refused", operation=operation, error=error.message)


class _MaskErrors(MaskErrors):
    """Strawberry's masking, keeping the one thing a client may know: the code."""

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return coded(super().anonymise_error(error), ErrorCode.INTERNAL_SERVER_ERROR)


def query_limits(settings: Settings) -> QueryLimits:
    return QueryLimits(
        max_length=settings.max_query_length,
        max_tokens=settings.max_query_tokens,
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_query_aliases,
        max_fields=settings.max_query_fields,
        max_nodes=settings.max_query_nodes,
    )


def extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """Fresh extension instances per operation, configured from ``settings``.

    The limits, the document cache and the validation rules are made once
    here: the cache belongs to this schema, whose rules a cached document
    passed.
    """
    limits = query_limits(settings)
    cache = DocumentCache(settings.query_cache_bytes)
    rules: list[type[ASTValidationRule]] = []
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return [
        # First: its hooks close last, once every other extension has made its errors.
        ErrorCodes,
        lambda: DocumentGuard(limits, cache),
        RequireRole,
        lambda: AddValidationRules(rules),
        lambda: _MaskErrors(should_mask_error=is_unexpected, error_message=MASKED_MESSAGE),
    ]
