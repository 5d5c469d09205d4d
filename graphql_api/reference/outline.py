"""The API reference as data: one walk over graphql-core's schema.

Everything the reference says comes from the schema's own descriptions, so
``/docs`` and ``docs/api.md`` can never say something the API does not.
Both renderers (:mod:`.html`, :mod:`.markdown`) read this outline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLType,
    GraphQLUnionType,
    get_named_type,
    is_introspection_type,
    is_specified_scalar_type,
    print_ast,
)
from graphql.pyutils import Undefined
from graphql.utilities import ast_from_value

__all__ = ["KINDS", "Member", "Operation", "Outline", "TypeEntry", "TypeRef", "outline"]

# Sections of the reference, in reading order, with their titles.
KINDS = {
    "object": "Types",
    "interface": "Interfaces",
    "union": "Unions",
    "enum": "Enums",
    "input": "Inputs",
    "scalar": "Scalars",
}
ROOTS = ("query", "mutation", "subscription")


@dataclass(frozen=True, slots=True)
class TypeRef:
    """A type as written (``[MessageEdge!]!``) and the named type it links to."""

    text: str
    target: str | None  # None for GraphQL's own scalars: nothing to link to


@dataclass(frozen=True, slots=True)
class Member:
    """A field, argument, input field or enum value."""

    name: str
    description: str
    type: TypeRef | None = None  # None for an enum value
    default: str | None = None
    deprecation: str | None = None
    arguments: tuple[Member, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    root: str  # query, mutation or subscription
    field: Member

    @property
    def anchor(self) -> str:
        return f"{self.root}-{self.field.name}"


@dataclass(frozen=True, slots=True)
class TypeEntry:
    name: str
    kind: str  # a key of KINDS
    description: str
    members: tuple[Member, ...] = ()  # fields, input fields or enum values
    interfaces: tuple[str, ...] = ()  # what an object implements
    possible: tuple[str, ...] = ()  # a union's members, an interface's implementations


@dataclass(frozen=True, slots=True)
class Outline:
    operations: dict[str, tuple[Operation, ...]] = field(default_factory=dict)
    root_descriptions: dict[str, str] = field(default_factory=dict)
    types: dict[str, tuple[TypeEntry, ...]] = field(default_factory=dict)


def _ref(type_: GraphQLType) -> TypeRef:
    named = get_named_type(type_)
    linked = not (isinstance(named, GraphQLScalarType) and is_specified_scalar_type(named))
    return TypeRef(str(type_), named.name if linked else None)


def _default(argument: GraphQLArgument | GraphQLInputField) -> str | None:
    value = argument.default_value
    if value is Undefined:
        return None
    node = ast_from_value(value, argument.type)
    return None if node is None else print_ast(node)


def _argument(name: str, argument: GraphQLArgument | GraphQLInputField) -> Member:
    return Member(
        name=name,
        description=argument.description or "",
        type=_ref(argument.type),
        default=_default(argument),
        deprecation=argument.deprecation_reason,
    )


def _field(name: str, field_: GraphQLField) -> Member:
    return Member(
        name=name,
        description=field_.description or "",
        type=_ref(field_.type),
        deprecation=field_.deprecation_reason,
        arguments=tuple(_argument(n, a) for n, a in field_.args.items()),
    )


def _entry(type_: GraphQLNamedType, schema: GraphQLSchema) -> TypeEntry | None:
    description = type_.description or ""
    if isinstance(type_, GraphQLObjectType):
        return TypeEntry(
            type_.name,
            "object",
            description,
            tuple(_field(n, f) for n, f in type_.fields.items()),
            interfaces=tuple(i.name for i in type_.interfaces),
        )
    if isinstance(type_, GraphQLInterfaceType):
        implementations = schema.get_implementations(type_).objects
        return TypeEntry(
            type_.name,
            "interface",
            description,
            tuple(_field(n, f) for n, f in type_.fields.items()),
            possible=tuple(sorted(o.name for o in implementations)),
        )
    if isinstance(type_, GraphQLUnionType):
        return TypeEntry(
            type_.name, "union", description, possible=tuple(t.name for t in type_.types)
        )
    if isinstance(type_, GraphQLEnumType):
        values = tuple(
            Member(n, v.description or "", deprecation=v.deprecation_reason)
            for n, v in type_.values.items()
        )
        return TypeEntry(type_.name, "enum", description, values)
    if isinstance(type_, GraphQLInputObjectType):
        fields = tuple(_argument(n, f) for n, f in type_.fields.items())
        return TypeEntry(type_.name, "input", description, fields)
    if isinstance(type_, GraphQLScalarType) and not is_specified_scalar_type(type_):
        return TypeEntry(type_.name, "scalar", description)
    return None


def outline(schema: GraphQLSchema) -> Outline:
    """What the reference shows: the operations, then every type by kind, by name."""
    roots = {
        "query": schema.query_type,
        "mutation": schema.mutation_type,
        "subscription": schema.subscription_type,
    }
    result = Outline()
    for root, type_ in roots.items():
        if type_ is None:
            continue
        result.root_descriptions[root] = type_.description or ""
        result.operations[root] = tuple(
            Operation(root, _field(n, f)) for n, f in type_.fields.items()
        )
    root_names = {t.name for t in roots.values() if t is not None}
    by_kind: dict[str, list[TypeEntry]] = {kind: [] for kind in KINDS}
    for name in sorted(schema.type_map):
        named = schema.type_map[name]
        if name in root_names or is_introspection_type(named):
            continue
        entry = _entry(named, schema)
        if entry is not None:
            by_kind[entry.kind].append(entry)
    result.types.update({kind: tuple(entries) for kind, entries in by_kind.items() if entries})
    return result
