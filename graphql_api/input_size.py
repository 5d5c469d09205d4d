"""Lists in a request's variables cut to one item over their limit before graphql-core converts any.

graphql-core coerces every item of a variable before a resolver runs, so the
size check in the resolver (``cleaning.py``) came after the work: 800,000
rows of ``importClients`` took 12 s and 370 MB to be refused. Here each list
in the variables is measured against its type first: a list of
``ClientInput`` may hold ``MAX_IMPORT_ROWS``, every other list
``MAX_LIST_ITEMS`` (a filter's ``operatorCodes`` and ``tags`` among them,
``MAX_FILTER_VALUES``). A longer list is cut to one item over its limit:
the resolver still refuses it as it always did (a ``ValidationError`` naming
the field, or ``BAD_USER_INPUT`` for a query's argument), after converting
at most that many items, however many were sent. Items are looked into
only when their type can hold a list. Lists written in the document itself
are bounded by its tokens (``MAX_QUERY_TOKENS``).
"""

from __future__ import annotations

import functools
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLSchema,
    get_nullable_type,
    is_input_type,
    type_from_ast,
)
from graphql.utilities import get_operation_ast

from graphql_api.cleaning import MAX_FILTER_VALUES
from models.services.clients import MAX_IMPORT_ROWS

__all__ = ["MAX_LIST_ITEMS", "bounded_variables"]

# The most values any list in an input may hold but an import's rows.
MAX_LIST_ITEMS = MAX_FILTER_VALUES
_LARGER = {"ClientInput": MAX_IMPORT_ROWS}


def bounded_variables(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """``variables`` with every list cut to one item over its limit; ``None`` if none was over."""
    if not variables:
        return None
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    bounded = dict(variables)
    changed = False
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        type_ = type_from_ast(schema, definition.type)
        if name in variables and is_input_type(type_):
            value = _bounded(type_, variables[name])
            if value is not variables[name]:
                bounded[name] = value
                changed = True
    return bounded if changed else None


def _bounded(type_: GraphQLInputType, value: Any) -> Any:
    """``value``, or a copy of it whose lists are cut; the same object when nothing was cut."""
    type_ = get_nullable_type(type_)  # type: ignore[assignment]
    if isinstance(type_, GraphQLList):
        item = type_.of_type
        if not isinstance(value, list):
            return _bounded(item, value)
        cap = _LARGER.get(getattr(get_nullable_type(item), "name", ""), MAX_LIST_ITEMS)
        items = value[: cap + 1] if len(value) > cap else value
        if _can_hold_a_list(item):
            inner = [_bounded(item, element) for element in items]
            if any(new is not old for new, old in zip(inner, items, strict=True)):
                items = inner
        return items
    if isinstance(type_, GraphQLInputObjectType) and isinstance(value, dict):
        copy = None
        for field_name, field in type_.fields.items():
            if field_name in value and _can_hold_a_list(field.type):
                new = _bounded(field.type, value[field_name])
                if new is not value[field_name]:
                    copy = copy or dict(value)
                    copy[field_name] = new
        return value if copy is None else copy
    return value


@functools.cache
def _can_hold_a_list(type_: GraphQLInputType) -> bool:
    return _holds_list(type_, frozenset())


def _holds_list(type_: GraphQLInputType, seen: frozenset[str]) -> bool:
    type_ = get_nullable_type(type_)  # type: ignore[assignment]
    if isinstance(type_, GraphQLList):
        return True
    if isinstance(type_, GraphQLInputObjectType) and type_.name not in seen:
        inner = seen | {type_.name}
        return any(_holds_list(field.type, inner) for field in type_.fields.values())
    return False
