"""The reference as Markdown: ``docs/api.md``, written by ``make schema``.

Descriptions are Markdown already (backticks for code); anchors are the
ones GitHub and most renderers derive from a heading (lower case, spaces as
dashes), so every type name links to its section.
"""

from __future__ import annotations

from collections.abc import Iterable

from graphql_api.error_codes import MEANINGS
from graphql_api.reference.outline import KINDS, Member, Operation, Outline, TypeEntry, TypeRef

__all__ = ["render_markdown"]

_INTRO = """\
# The mailings API

<!-- Generated from the schema's descriptions by `make schema`: do not edit. -->

One GraphQL endpoint, `/graphql`: queries and mutations over `POST` (or
`GET`, queries only), subscriptions over a WebSocket (`graphql-transport-ws`),
over HTTP multipart (Apollo's protocol) or as Server-Sent Events (`graphql-sse`).
With `API_TOKEN` or OIDC on, every request needs `Authorization: Bearer
<token>` (on a WebSocket, `connectionParams.authorization`). The running API
serves this reference at `/docs`, and GraphiQL at `/graphql` in a browser.
The SDL is [`schema.graphql`](../schema.graphql).

Expected errors are data: a mutation answers a union of its result and the
error types, which all implement [`Error`](#error); select
`... on Error { message }` to handle any of them. Lists are Relay
connections: pass a page's `pageInfo.endCursor` as `after` for the next one.

Ids are opaque and unique across types (Relay's Global Object
Identification): `node(id:)` reads any object again. The integer keys of the
first release (`"42"`) are still accepted as arguments, deprecated. An id
that names nothing (malformed, out of range, deleted, another type's) is
null in a query and a [`NotFoundError`](#notfounderror) in a mutation, the
same everywhere.
"""


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or " "


def _type(ref: TypeRef | None) -> str:
    if ref is None:
        return ""
    code = f"`{ref.text}`"
    return code if ref.target is None else f"[{code}](#{ref.target.lower()})"


def _notes(member: Member) -> str:
    text = member.description
    if member.default is not None:
        text += f" Default: `{member.default}`."
    if member.deprecation:
        text += f" **Deprecated:** {member.deprecation}"
    return _cell(text)


def _table(head: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> list[str]:
    """A table; every row has as many cells as ``head``."""
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _arguments(members: tuple[Member, ...]) -> list[str]:
    rows = ((f"`{a.name}`", _type(a.type), _notes(a)) for a in members)
    return _table(("Argument", "Type", "Description"), rows)


def _signature(operation: Operation) -> str:
    field = operation.field
    args = ", ".join(f"{a.name}: {a.type.text}" for a in field.arguments if a.type)
    assert field.type is not None
    return f"{field.name}{f'({args})' if args else ''}: {field.type.text}"


def _operation(operation: Operation) -> list[str]:
    field = operation.field
    lines = [f"### {operation.root} `{field.name}`", "", "```graphql", _signature(operation)]
    lines += ["```", "", field.description, ""]
    if field.arguments:
        lines += _arguments(field.arguments)
    lines += [f"Answers {_type(field.type)}.", ""]
    return lines


def _links(names: Iterable[str]) -> str:
    return ", ".join(f"[`{name}`](#{name.lower()})" for name in names)


def _entry(entry: TypeEntry) -> list[str]:
    lines = [f"### {entry.name}", "", entry.description, ""]
    if entry.interfaces:
        lines += [f"Implements {_links(entry.interfaces)}.", ""]
    if entry.kind == "union":
        lines += [f"One of {_links(entry.possible)}.", ""]
    if entry.kind == "interface":
        lines += [f"Implemented by {_links(entry.possible)}.", ""]
    if entry.kind == "enum":
        rows = ((f"`{v.name}`", _notes(v)) for v in entry.members)
        lines += _table(("Value", "Meaning"), rows)
    elif entry.members:
        cells = ((f"`{m.name}`", _type(m.type), _notes(m)) for m in entry.members)
        lines += _table(("Field", "Type", "Description"), cells)
        for member in entry.members:
            if member.arguments:
                lines += [f"Arguments of `{member.name}`:", "", *_arguments(member.arguments)]
    return lines


_CODES_INTRO = """\
Every entry of a response's `errors[]` (a request refused, as opposed to the
error types of a result union) has `extensions.code`, one of these; branch on
the code, never on the message. Refusals made before GraphQL runs (HTTP 4xx
and 5xx) have the same shape: `{"errors": [{"message", "extensions": {"code"}}]}`.
"""


def _error_codes() -> list[str]:
    rows = ((f"`{code}`", _cell(meaning)) for code, meaning in MEANINGS.items())
    return ["## Error codes", "", _CODES_INTRO, *_table(("Code", "Meaning"), rows)]


def render_markdown(outline: Outline) -> str:
    """The whole reference, ending with one newline."""
    lines = [_INTRO, "## Contents", ""]
    for root, operations in outline.operations.items():
        names = ", ".join(f"[`{o.field.name}`](#{o.anchor.lower()})" for o in operations)
        lines.append(f"- {root.capitalize()}: {names}")
    for kind, entries in outline.types.items():
        lines.append(f"- {KINDS[kind]}: {_links(e.name for e in entries)}")
    lines += ["- [Error codes](#error-codes)", ""]
    for root, operations in outline.operations.items():
        lines += [f"## {root.capitalize()}", "", outline.root_descriptions[root], ""]
        for operation in operations:
            lines += _operation(operation)
    for kind, entries in outline.types.items():
        lines += [f"## {KINDS[kind]}", ""]
        for entry in entries:
            lines += _entry(entry)
    lines += _error_codes()
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n") + "\n"
