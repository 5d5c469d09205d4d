"""Every error in ``errors[]`` carries ``extensions.code`` (:class:`ErrorCode`), on every transport.

A refusal raised on purpose names its code where it is raised (the cost
limit, a role, a subscription's "not found"). What graphql-core and
Strawberry raise without one gets it here, by what failed: the parse, the
validation, the variables, an argument, or our own code (masked). HTTP
refusals outside GraphQL take theirs from their status (:func:`code_for_status`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from graphql.validation import ASTValidationRule, ValidationContext
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import StreamExecutionResult

from graphql_api.error_codes import ErrorCode

__all__ = ["ErrorCodes", "code_for_status", "coded", "coded_rule", "has_code"]

_BY_STATUS = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    413: ErrorCode.REQUEST_TOO_LARGE,
    431: ErrorCode.REQUEST_TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}


def code_for_status(status: int) -> ErrorCode:
    """The code of an HTTP refusal made outside GraphQL (405, 406, 415: the request's shape)."""
    if status >= 500:
        return _BY_STATUS.get(status, ErrorCode.INTERNAL_SERVER_ERROR)
    return _BY_STATUS.get(status, ErrorCode.BAD_REQUEST)


def has_code(error: GraphQLError) -> bool:
    return bool(error.extensions and error.extensions.get("code"))


def coded(error: GraphQLError, code: ErrorCode) -> GraphQLError:
    """``error`` with ``code``, unless it names one already (in place: cached errors keep it)."""
    if not has_code(error):
        error.extensions = {**(error.extensions or {}), "code": str(code)}
    return error


class _CodingContext:
    """A validation context whose reports carry ``code``; everything else is the real one."""

    def __init__(self, context: ValidationContext, code: ErrorCode) -> None:
        self._context = context
        self._code = code

    def report_error(self, error: GraphQLError) -> None:
        self._context.report_error(coded(error, self._code))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def coded_rule(rule: type[ASTValidationRule], code: ErrorCode) -> type[ASTValidationRule]:
    """A validation rule (a limit of Strawberry's) whose errors name ``code``."""

    class Coded(rule):  # type: ignore[valid-type, misc]
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(_CodingContext(context, code))

    Coded.__name__ = rule.__name__
    return Coded


def _is_token_limit(error: GraphQLError) -> bool:
    # graphql-core's own words when the parser stops at `max_tokens` (MAX_QUERY_TOKENS).
    return "tokens. Parsing aborted" in error.message


def _code_of(error: GraphQLError) -> ErrorCode:
    # Syntax errors are known by their type: ParserCache raises them from its
    # own hook, which no other extension's parse hook sees.
    if isinstance(error, GraphQLSyntaxError):
        return (
            ErrorCode.QUERY_TOO_LARGE if _is_token_limit(error) else ErrorCode.GRAPHQL_PARSE_FAILED
        )
    original = error.original_error
    if original is not None and not isinstance(original, GraphQLError):
        return ErrorCode.INTERNAL_SERVER_ERROR  # masked by MaskErrors, logged
    # No path: variables that do not coerce, refused before any field ran.
    # A path: an argument its resolver refused (a negative `first`, a bad cursor).
    return ErrorCode.BAD_USER_INPUT


class ErrorCodes(SchemaExtension):
    """Names the code of every error an operation answers that does not name one yet."""

    def on_validate(self) -> Iterator[None]:
        yield
        for error in self.execution_context.pre_execution_errors or ():
            coded(error, ErrorCode.GRAPHQL_VALIDATION_FAILED)

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except GraphQLError as error:
            # Raised from another extension's hook (ParserCache's parse, a limit).
            self._code([error])
            raise
        self._code(getattr(self.execution_context.result, "errors", None))

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        self._code(getattr(result, "errors", None))
        yield

    @staticmethod
    def _code(errors: Iterable[GraphQLError] | None) -> None:
        for error in errors or ():
            if not has_code(error):
                coded(error, _code_of(error))
