"""What a request asks of the server, measured in one walk before it runs.

One walk over the document measures, for the operation to run:

- ``depth``: how deeply fields with selections nest (introspection fields,
  ``__schema`` and the like, are not counted, as graphql-js' depth limit does);
- ``aliases`` and ``fields``: every aliased field and every field once each
  fragment is expanded where it is spread, so ``...F ...F`` counts ``F`` twice;
- ``pairs``: about how many pairs of fields validation will compare (below);
- ``cost``: how many list items it may return. Every connection field (one
  with ``first``/``last``) may return as many items as its page size
  (``first`` or ``last``, else the default) for each item of the lists it is
  nested in, so ``mailings(first: 500) { messages(first: 500) }`` costs
  500 + 500 x 500 = 250,500, and 30 aliases of it 7.5 million. Type
  conditions are summed, so the figure is an upper bound.

The walk is linear in the document: each fragment is measured once and its
figures reused wherever it is spread (a cost is linear in the multiplier it
is reached with, so a fragment's cost for one item is multiplied, never
walked again). Expanding spreads instead, as a naive walk does, takes
exponential time: 22 fragments that each spread the next twice are 230
tokens and four million fields. A fragment that spreads itself (which
validation refuses later) counts as empty here.

The page sizes come from the variables too, which validation never sees,
and the walk runs before validation (``graphql_api.document_guard``), so it
assumes nothing the validator would check: unknown fields and types cost
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
)
from graphql.utilities import get_operation_ast

from graphql_api.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

__all__ = ["Measure", "measure", "request_cost"]


@dataclass(frozen=True, slots=True)
class Measure:
    """What one operation asks for; see the module's docstring for each figure."""

    depth: int = 0
    aliases: int = 0
    fields: int = 0
    cost: int = 0
    pairs: int = 0

    def __add__(self, other: Measure) -> Measure:
        return Measure(
            max(self.depth, other.depth),
            self.aliases + other.aliases,
            self.fields + other.fields,
            self.cost + other.cost,
        )


_NOTHING = Measure()


def measure(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> Measure:
    """The measure of a document: its cost is that of the operation ``operation_name`` names.

    Depth is the deepest of its operations; aliases and fields are summed
    over all of them, which validation reads too; the cost is the selected
    operation's, with its variables (0 when none is selected).
    """
    shape = _Walk(schema, document, None, None)
    structure = _NOTHING
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            found = shape.operation(definition)
            structure = Measure(
                max(structure.depth, found.depth),
                structure.aliases + found.aliases,
                structure.fields + found.fields,
            )
    operation = get_operation_ast(document, operation_name)
    cost = 0
    if operation is not None:
        cost = _Walk(schema, document, operation, variables).operation(operation).cost
    return Measure(structure.depth, structure.aliases, structure.fields, cost, _pairs(document))


def _pairs(document: DocumentNode) -> int:
    """How many pairs validation's rule that fields can be merged may compare, about.

    The rule compares, in each selection set, the fields of one response
    name with one another, and each fragment spread with the fields and the
    other spreads beside it: quadratic in a selection set's width. Counted
    once per selection set written, as the rule caches what it collects of a
    fragment.
    """
    total = 0
    pending: list[SelectionSetNode] = [
        definition.selection_set
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while pending:
        names: dict[str, int] = {}
        spreads = 0
        inline = [pending.pop()]
        while inline:
            for selection in inline.pop().selections:
                if isinstance(selection, FieldNode):
                    key = (selection.alias or selection.name).value
                    names[key] = names.get(key, 0) + 1
                    if selection.selection_set is not None:
                        pending.append(selection.selection_set)
                elif isinstance(selection, InlineFragmentNode):
                    inline.append(selection.selection_set)
                else:
                    spreads += 1
        fields = sum(names.values())
        total += sum(count * count for count in names.values()) - len(names)
        total += spreads * spreads + spreads * fields
    return total


def request_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> int:
    """How many list items the operation may return at most; 0 if it names no operation."""
    return measure(schema, document, operation_name, variables).cost


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
        document: DocumentNode,
        operation: OperationDefinitionNode | None,
        variables: Mapping[str, Any] | None,
    ) -> None:
        self.schema = schema
        self.fragments = {
            node.name.value: node
            for node in document.definitions
            if isinstance(node, FragmentDefinitionNode)
        }
        self.variables = dict(variables or {})
        self.defaults: dict[str, ValueNode] = {
            definition.variable.name.value: definition.default_value
            for definition in ((operation.variable_definitions or ()) if operation else ())
            if definition.default_value is not None
        }
        # A fragment's measure for one item of its parent; None while it is being measured.
        self.measured: dict[str, Measure | None] = {}

    def operation(self, node: OperationDefinitionNode) -> Measure:
        root = self.schema.get_root_type(node.operation)
        return self.selections(root, node.selection_set)

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

    def _type(self, name: str) -> GraphQLNamedType | None:
        return self.schema.get_type(name)

    def selections(self, parent: GraphQLNamedType | None, node: SelectionSetNode) -> Measure:
        total = _NOTHING
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                total += self.field(parent, selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = parent if condition is None else self._type(condition.name.value)
                total += self.selections(inner, selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value)
        return total

    def fragment(self, name: str) -> Measure:
        if name in self.measured:
            return self.measured[name] or _NOTHING  # None: a cycle, refused by validation
        definition = self.fragments.get(name)
        if definition is None:
            return _NOTHING
        self.measured[name] = None
        found = self.selections(
            self._type(definition.type_condition.name.value), definition.selection_set
        )
        self.measured[name] = found
        return found

    def field(self, parent: GraphQLNamedType | None, node: FieldNode) -> Measure:
        alias = 1 if node.alias is not None else 0
        definition = (
            parent.fields.get(node.name.value)
            if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
            else None
        )
        inner_type = None if definition is None else get_named_type(definition.type)
        inner = _NOTHING
        if node.selection_set is not None:
            inner = self.selections(inner_type, node.selection_set)
        introspection = node.name.value.startswith("__")
        depth = 0 if introspection or node.selection_set is None else 1 + inner.depth
        cost = inner.cost
        if definition is not None and ("first" in definition.args or "last" in definition.args):
            page = _page_size([self._argument(node, "first"), self._argument(node, "last")])
            cost = page + page * inner.cost
        if definition is None:
            cost = 0
        return Measure(depth, alias + inner.aliases, 1 + inner.fields, cost)
