"""The reference as one HTML page, served at ``/docs``.

No script, no inline style, nothing from another origin: the page's only
other file is its stylesheet (``/docs/reference.css``). Descriptions are
escaped, then their `code` spans are marked up, which is all the Markdown
they use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html import escape

from graphql_api.error_codes import MEANINGS
from graphql_api.reference.outline import KINDS, Member, Operation, Outline, TypeEntry, TypeRef

__all__ = ["render_html"]

_CODE = re.compile(r"`([^`]+)`")


def _text(description: str) -> str:
    """Paragraphs of escaped text with their `code` spans."""
    paragraphs = [p for p in re.split(r"\n\s*\n", description.strip()) if p.strip()]
    return "".join("<p>" + _CODE.sub(r"<code>\1</code>", escape(p)) + "</p>" for p in paragraphs)


def _type(ref: TypeRef | None) -> str:
    if ref is None:
        return ""
    code = f"<code>{escape(ref.text)}</code>"
    return code if ref.target is None else f'<a href="#{escape(ref.target)}">{code}</a>'


def _notes(member: Member) -> str:
    html = _text(member.description)
    if member.default is not None:
        html += f"<p>Default: <code>{escape(member.default)}</code>.</p>"
    if member.deprecation:
        html += f'<p class="deprecated">Deprecated: {escape(member.deprecation)}</p>'
    return html


def _table(head: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    table = f'<table class="cols-{len(head)}">'
    return f"{table}<thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _arguments(members: tuple[Member, ...]) -> str:
    rows = ((f"<code>{a.name}</code>", _type(a.type), _notes(a)) for a in members)
    return _table(("Argument", "Type", "Description"), rows)


def _signature(field: Member) -> str:
    args = ", ".join(f"{a.name}: {_type(a.type)}" for a in field.arguments)
    return f"<pre>{field.name}{f'({args})' if args else ''}: {_type(field.type)}</pre>"


def _operation(operation: Operation) -> str:
    field = operation.field
    html = f'<section id="{operation.anchor}"><h3><small>{operation.root}</small> {field.name}</h3>'
    html += _signature(field) + _notes(field)
    if field.arguments:
        html += _arguments(field.arguments)
    return html + "</section>"


def _links(names: Iterable[str]) -> str:
    return ", ".join(f'<a href="#{n}"><code>{n}</code></a>' for n in names)


def _entry(entry: TypeEntry) -> str:
    html = f'<section id="{entry.name}"><h3><small>{entry.kind}</small> {entry.name}</h3>'
    html += _text(entry.description)
    if entry.interfaces:
        html += f"<p>Implements {_links(entry.interfaces)}.</p>"
    if entry.kind == "union":
        html += f"<p>One of {_links(entry.possible)}.</p>"
    if entry.kind == "interface":
        html += f"<p>Implemented by {_links(entry.possible)}.</p>"
    if entry.kind == "enum":
        html += _table(
            ("Value", "Meaning"), ((f"<code>{v.name}</code>", _notes(v)) for v in entry.members)
        )
    elif entry.members:
        rows = ((f"<code>{m.name}</code>", _type(m.type), _member_notes(m)) for m in entry.members)
        html += _table(("Field", "Type", "Description"), rows)
    return html + "</section>"


def _member_notes(member: Member) -> str:
    html = _notes(member)
    return html + (_arguments(member.arguments) if member.arguments else "")


def _contents(outline: Outline) -> str:
    items = []
    for root, operations in outline.operations.items():
        links = ", ".join(f'<a href="#{o.anchor}">{o.field.name}</a>' for o in operations)
        items.append(f"<li><strong>{root.capitalize()}</strong>: {links}</li>")
    for kind, entries in outline.types.items():
        items.append(f"<li><strong>{KINDS[kind]}</strong>: {_links(e.name for e in entries)}</li>")
    return f"<nav><h2>Contents</h2><ul>{''.join(items)}</ul></nav>"


def _error_codes() -> str:
    rows = ((f"<code>{code}</code>", _text(meaning)) for code, meaning in MEANINGS.items())
    return (
        '<h2 id="error-codes">Error codes</h2><p>Every entry of <code>errors[]</code> has '
        "<code>extensions.code</code>, one of these: branch on the code, never on the "
        f"message.</p>{_table(('Code', 'Meaning'), rows)}"
    )


def render_html(outline: Outline, *, graphiql: bool) -> str:
    """The page; ``graphiql`` says whether this API serves GraphiQL to link to."""
    ide = '<a href="/graphql">Open GraphiQL</a> to try an operation. ' if graphiql else ""
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Mailings API reference</title>",
        '<link rel="stylesheet" href="/docs/reference.css"></head><body>',
        "<header><h1>Mailings API reference</h1><p>One GraphQL endpoint, <code>/graphql</code>: "
        "queries and mutations over <code>POST</code> (or <code>GET</code>, queries only), "
        "subscriptions over a WebSocket (<code>graphql-transport-ws</code>), HTTP multipart "
        "(Apollo's protocol) or Server-Sent Events (<code>graphql-sse</code>). "
        f'{ide}<a href="/">Admin page</a>. Expected errors are data: every error type implements '
        '<a href="#Error"><code>Error</code></a>, so <code>... on Error { message }</code> '
        "handles any of them. Generated from the schema's descriptions.</p></header>",
        "<main>",
        _contents(outline),
    ]
    for root, operations in outline.operations.items():
        parts.append(f"<h2>{root.capitalize()}</h2>{_text(outline.root_descriptions[root])}")
        parts += [_operation(o) for o in operations]
    for kind, entries in outline.types.items():
        parts.append(f"<h2>{KINDS[kind]}</h2>")
        parts += [_entry(e) for e in entries]
    parts.append(_error_codes())
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
