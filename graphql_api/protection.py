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
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
    max_aliases,
    query_depth_limiter,
)
from strawberry.types import ExecutionContext

from graphql_api.coded_errors import ErrorCodes, coded, coded_rule
from graphql_api.error_codes import ErrorCode
from graphql_api.permissions import RequireRole
from graphql_api.query_cost import CostLimit
from settings import Settings

__all__ = ["MASKED_MESSAGE", "extensions", "is_unexpected", "log_errors"]

MASKED_MESSAGE = "Unexpected error; it has been logged."
# Distinct documents whose parse and validation are kept; clients send few.
_CACHED_DOCUMENTS = 256

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


def extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """Fresh extension instances per operation, configured from ``settings``.

    The depth and alias rules are what ``QueryDepthLimiter`` and
    ``MaxAliasesLimiter`` install, made once here rather than per request:
    the validation cache recognises a document's rules by identity, and
    parsing and validating cost most of a small query.
    """
    limits: list[type[ASTValidationRule]] = [
        coded_rule(
            query_depth_limiter.create_validator(settings.max_query_depth, should_ignore=None),
            ErrorCode.QUERY_TOO_DEEP,
        ),
        coded_rule(
            max_aliases.create_validator(settings.max_query_aliases), ErrorCode.TOO_MANY_ALIASES
        ),
    ]
    if not settings.introspection:
        limits.append(NoSchemaIntrospectionCustomRule)
    return [
        # First: its hooks close last, once every other extension has made its errors.
        ErrorCodes,
        lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        RequireRole,
        lambda: CostLimit(settings.max_query_nodes),
        lambda: ParserCache(maxsize=_CACHED_DOCUMENTS),
        lambda: AddValidationRules(limits),
        lambda: ValidationCache(maxsize=_CACHED_DOCUMENTS),
        lambda: _MaskErrors(should_mask_error=is_unexpected, error_message=MASKED_MESSAGE),
    ]
