"""The cost of a request, counted before it runs: how many list items it may return.

Every connection field (one with ``first``/``last``) may return as many items
as its page size (``first`` or ``last``, else the default) for each item of
the lists it is nested in, so ``mailings(first: 500) { messages(first: 500) }``
costs 500 + 500 x 500 = 250,500, and 30 aliases of it 7.5 million. Fields
that are not lists cost nothing by themselves; every alias and every fragment
counts, and type conditions are summed, so the figure is an upper bound.

The sizes come from the variables too, which validation never sees: the
limit is checked as the operation is about to execute (``on_execute``), on
every transport alike. Strawberry's limiters bound depth, aliases and tokens,
not what a page size multiplies; graphql-core and Strawberry have no cost
rule, so this is ours.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import structlog
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from graphql_api.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

__all__ = ["CostLimit", "request_cost"]

log = structlog.get_logger(__name__)


def request_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> int:
    """How many list items the operation may return at most; 0 if it names no operation."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    fragments = {
        node.name.value: node
        for node in document.definitions
        if isinstance(node, FragmentDefinitionNode)
    }
    defaults = {
        definition.variable.name.value: definition.default_value
        for definition in operation.variable_definitions or ()
        if definition.default_value is not None
    }
    walk = _Walk(schema, fragments, dict(variables or {}), defaults)
    return walk.cost(root, operation.selection_set, 1, frozenset())


def _page_size(sizes: list[object]) -> int:
    """The page size a connection may return; refusals of bad sizes are the resolver's."""
    given = [size for size in sizes if isinstance(size, int) and not isinstance(size, bool)]
    if not given:
        return DEFAULT_PAGE_SIZE
    return max(min(max(size, 0), MAX_PAGE_SIZE) for size in given)


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: dict[str, Any],
        defaults: Mapping[str, ValueNode],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.defaults = defaults

    def _argument(self, node: FieldNode, name: str) -> object:
        """An Int argument's value, literal or from the variables; anything else is ``None``."""
        value: ValueNode | None = next(
            (argument.value for argument in node.arguments or () if argument.name.value == name),
            None,
        )
        if isinstance(value, VariableNode):
            variable = value.name.value
            if variable in self.variables:
                return self.variables[variable]
            value = self.defaults.get(variable)
        if isinstance(value, IntValueNode):
            return int(value.value)
        return None

    def cost(
        self,
        parent: Any,
        selections: SelectionSetNode,
        multiplier: int,
        spreading: frozenset[str],
    ) -> int:
        return sum(
            self._field_cost(type_, field, multiplier, seen)
            for type_, field, seen in self._fields(parent, selections, spreading)
        )

    def _fields(
        self, parent: Any, selections: SelectionSetNode, spreading: frozenset[str]
    ) -> Iterator[tuple[Any, FieldNode, frozenset[str]]]:
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                yield parent, selection, spreading
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                type_ = parent if condition is None else self.schema.get_type(condition.name.value)
                yield from self._fields(type_, selection.selection_set, spreading)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in spreading:  # validation refuses both anyway
                    continue
                type_ = self.schema.get_type(fragment.type_condition.name.value)
                yield from self._fields(type_, fragment.selection_set, spreading | {name})

    def _field_cost(
        self, parent: Any, node: FieldNode, multiplier: int, spreading: frozenset[str]
    ) -> int:
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 0
        definition = parent.fields.get(node.name.value)
        if definition is None:
            return 0
        cost = 0
        if "first" in definition.args or "last" in definition.args:
            multiplier *= _page_size([self._argument(node, "first"), self._argument(node, "last")])
            cost = multiplier
        inner = get_named_type(definition.type)
        if node.selection_set is not None:
            cost += self.cost(inner, node.selection_set, multiplier, spreading)
        return cost


class CostLimit(SchemaExtension):
    """Refuses an operation that may return more list items than ``limit``, before it runs."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            schema = context.schema._schema
            operation = context.operation_name
            cost = request_cost(schema, document, operation, context.variables)
            if cost > self.limit:
                log.info("GraphQL request too costly", operation=operation, cost=cost)
                raise GraphQLError(
                    f"This request may return up to {cost:,} list items, more than the "
                    f"{self.limit:,} allowed in one request: ask for smaller pages "
                    "(`first`/`last`) or fewer nested lists, and page through the rest",
                    extensions={"code": "QUERY_TOO_COSTLY", "cost": cost, "limit": self.limit},
                )
        yield
