"""What the worst GraphQL documents under ``MAX_QUERY_TOKENS`` cost, to choose its default.

Each shape is the most a client can make of N tokens against one cost of the
server: the same field repeated (validation compares fields of one name in
pairs), distinct fields, fragments spread everywhere, nesting, arguments,
variables, operations, directives, comments. Each document goes through the
schema as a request does (our limits, parse, validation, and execution of
whatever passes), a fresh document every time (a cache hit costs nothing),
under the default settings but the token limit. Prints, for each token limit,
the worst shape and its time (best of three), and the largest limit whose
worst document stays under ``--budget`` milliseconds.

    python -m bench query_limits [--tokens 1000 2000 5000] [--budget 50]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Callable

import structlog

from graphql_api.context import Context, make_loaders
from graphql_api.principal import Principal, Role
from graphql_api.schema import make_schema
from settings import Settings

_serial = itertools.count()
_EXPIRED = Principal(Role.VIEWER, "oidc", expires_at=1.0)


def _salt() -> str:
    # A comment makes each document new to the cache; one token.
    return f"#{next(_serial)}\n"


def _repeated(n: int) -> str:
    return "{ " + "__typename " * (n - 2) + "}"


def _at_the_pairs_limit(n: int) -> str:
    # 70 fields of one name (4,830 pairs, under the 5,000 allowed), padded with distinct ones.
    padding = " ".join(f"a{i}: __typename" for i in range(max(0, (n - 72) // 3)))
    return "{ " + "__typename " * 70 + padding + " }"


def _distinct(n: int) -> str:
    fields = "id phone operatorCode tag timezone createdAt updatedAt optedOutAt"
    per = len(fields.split())
    inner = " ".join(f'c{i}: client(id: "1") {{ {fields} }}' for i in range(max(1, n // (per + 9))))
    return "{ " + inner + " }"


def _fragments(n: int) -> str:
    count = max(1, n // 12)
    spreads = " ".join(f"...F{i}" for i in range(count))
    defs = " ".join(f"fragment F{i} on Query {{ __typename }}" for i in range(count))
    return f"{{ {spreads} }} {defs}"


def _same_fragment(n: int) -> str:
    return "{ " + "...F " * (n // 2 - 8) + "} fragment F on Query { __typename timeZones }"


def _nested(n: int) -> str:
    depth = min(n // 4, 150)
    return "{ " + "statistics { " * depth + "__typename" + " }" * depth + " }"


def _arguments(n: int) -> str:
    tags = ", ".join(f'"t{i}"' for i in range(max(1, n - 20)))
    return f"{{ clients(filter: {{ tags: [{tags}] }}) {{ totalCount }} }}"


def _variables(n: int) -> str:
    count = max(1, n // 5 - 2)
    return "query(" + " ".join(f"$v{i}: Int" for i in range(count)) + ") { __typename }"


def _operations(n: int) -> str:
    return " ".join(f"query Q{i} {{ __typename }}" for i in range(max(1, n // 5)))


def _directives(n: int) -> str:
    count = max(1, n // 8)
    return "{ " + "__typename @include(if: true) " * count + "}"


def _comments(n: int) -> str:
    return "\n".join("# comment" for _ in range(n)) + "\n{ __typename }"


SHAPES: dict[str, Callable[[int], str]] = {
    "same field repeated": _repeated,
    "at the pairs limit": _at_the_pairs_limit,
    "distinct fields": _distinct,
    "many fragments": _fragments,
    "one fragment spread everywhere": _same_fragment,
    "nesting": _nested,
    "a long list argument": _arguments,
    "variables": _variables,
    "operations": _operations,
    "directives": _directives,
    "comments": _comments,
}


async def _cost(settings: Settings, shape: Callable[[int], str], tokens: int) -> float:
    schema = make_schema(settings)
    best = float("inf")
    for _ in range(3):
        query = _salt() + shape(tokens - 1)
        operation = "Q0" if "query Q0" in query else None
        context = Context(request=None, response=None, loaders=make_loaders(cache=True))  # type: ignore[arg-type]
        # An expired caller: refused as execution begins, so what is timed is
        # everything before it (execution is bounded by the fields and cost limits).
        context.principal = _EXPIRED
        started = time.perf_counter()
        await schema.execute(query, context_value=context, operation_name=operation)
        best = min(best, time.perf_counter() - started)
    return best * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, nargs="*", default=[1000, 2000, 3000, 5000, 10000])
    parser.add_argument("--budget", type=float, default=50.0)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    print("| MAX_QUERY_TOKENS | worst shape | its time (ms) | every shape (ms) |")
    print("| --- | --- | --- | --- |")
    chosen = None
    for tokens in args.tokens:
        # Aliases are allowed as many as tokens, to time validation, not the alias limit.
        settings = Settings(
            max_query_tokens=tokens, max_query_length=10 * tokens + 1000, max_query_aliases=tokens
        )
        times = {name: await _cost(settings, shape, tokens) for name, shape in SHAPES.items()}
        worst = max(times, key=times.__getitem__)
        every = ", ".join(f"{name} {ms:.1f}" for name, ms in times.items())
        print(f"| {tokens:,} | {worst} | {times[worst]:.1f} | {every} |", flush=True)
        if times[worst] < args.budget:
            chosen = tokens
    print(f"\nlargest limit under {args.budget:g} ms: {chosen}")


if __name__ == "__main__":
    asyncio.run(main())
