"""Roles at the operation level: only an operator mutates; an expired token runs nothing.

Checked when an operation is about to execute, so it holds on every transport
alike: POST, GET and the WebSocket (where clients may send queries and
mutations too, and where a connection can outlive the token it was opened
with). The refusal is a plain GraphQL error with a ``code`` extension; over
HTTP the response is also a 403 (or a 401 for an expired token).
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from starlette.responses import Response
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from graphql_api.principal import Principal

__all__ = ["FORBIDDEN_MESSAGE", "RequireRole"]

FORBIDDEN_MESSAGE = "Forbidden: mutations need the operator role"


class RequireRole(SchemaExtension):
    """Refuses mutations to viewers, and any operation once the caller's token expired."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        principal = getattr(context, "principal", None)
        if not isinstance(principal, Principal):  # pragma: no cover - the view always sets one
            raise GraphQLError("Forbidden: unknown caller", extensions={"code": "FORBIDDEN"})
        if principal.expired():
            _set_status(context, 401)
            raise GraphQLError(
                "The access token has expired: reconnect with a fresh one",
                extensions={"code": "UNAUTHENTICATED"},
            )
        operation = self.execution_context.operation_type
        if operation is OperationType.MUTATION and not principal.may_mutate:
            _set_status(context, 403)
            raise GraphQLError(FORBIDDEN_MESSAGE, extensions={"code": "FORBIDDEN"})
        yield


def _set_status(context: object, status: int) -> None:
    response = getattr(context, "response", None)
    if isinstance(response, Response):  # not a WebSocket: errors there are messages
        response.status_code = status
