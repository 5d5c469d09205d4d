"""Strawberry's resolver decorators, typed for ``mypy --strict``.

``strawberry.field(description=...)`` is typed as returning ``Any``, which
strict mypy refuses as a decorator; these keep the decorated function's type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import strawberry

__all__ = ["described_field", "described_mutation", "described_subscription"]

ResolverT = TypeVar("ResolverT", bound=Callable[..., Any])


def described_field(description: str) -> Callable[[ResolverT], ResolverT]:
    return cast("Callable[[ResolverT], ResolverT]", strawberry.field(description=description))


def described_mutation(description: str) -> Callable[[ResolverT], ResolverT]:
    return cast("Callable[[ResolverT], ResolverT]", strawberry.mutation(description=description))


def described_subscription(description: str) -> Callable[[ResolverT], ResolverT]:
    return cast(
        "Callable[[ResolverT], ResolverT]", strawberry.subscription(description=description)
    )
