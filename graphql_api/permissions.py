"""Roles at the operation level: only an operator mutates or reads the audit trail; an
expired token runs nothing.

Checked when an operation is about to execute, so it holds on every transport
alike: POST, GET and the WebSocket (where clients may send queries and
mutations too, and where a connection can outlive the token it was opened
with). The refusal is a plain GraphQL error with a ``code`` extension; over
HTTP the response is also a 403 (or a 401 for an expired token).
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    get_operation_ast,
)
from starlette.responses import Response
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from graphql_api.error_codes import ErrorCode
from graphql_api.principal import Principal

__all__ = ["AUDIT_FORBIDDEN_MESSAGE", "FORBIDDEN_MESSAGE", "RequireRole"]

FORBIDDEN_MESSAGE = "Forbidden: mutations need the operator role"
AUDIT_FORBIDDEN_MESSAGE = "Forbidden: the audit trail needs the operator role"
# Queries only an operator may run: who did what is not for every viewer.
_OPERATOR_QUERIES = frozenset({"auditLog"})


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
        if not principal.may_mutate and _root_fields(self.execution_context) & _OPERATOR_QUERIES:
            _set_status(context, 403)
            raise GraphQLError(AUDIT_FORBIDDEN_MESSAGE, extensions={"code": ErrorCode.FORBIDDEN})
        yield


def _root_fields(execution_context: ExecutionContext) -> set[str]:
    """The names of the fields the operation selects at its root, through fragments too."""
    document = execution_context.graphql_document
    if document is None:  # pragma: no cover - execution follows parsing
        return set()
    operation = get_operation_ast(document, execution_context.operation_name)
    if operation is None:  # pragma: no cover - validation names the operation
        return set()
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    names: set[str] = set()
    pending = [operation.selection_set]
    seen: set[str] = set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                fragment = fragments.get(selection.name.value)
                if fragment is not None:
                    pending.append(fragment.selection_set)
    return names


def _set_status(context: object, status: int) -> None:
    response = getattr(context, "response", None)
    if isinstance(response, Response):  # not a WebSocket: errors there are messages
        response.status_code = status
