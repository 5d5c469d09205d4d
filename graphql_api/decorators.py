"""Strawberry's resolver decorators, typed for ``mypy --strict``.

``strawberry.field(description=...)`` is typed as returning ``Any``, which
strict mypy refuses as a decorator; these keep the decorated function's type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, TypeVar, cast

import strawberry

__all__ = ["described_enum", "described_field", "described_mutation", "described_subscription"]

ResolverT = TypeVar("ResolverT", bound=Callable[..., Any])


def described_field(description: str) -> Callable[[ResolverT], ResolverT]:
    return cast("Callable[[ResolverT], ResolverT]", strawberry.field(description=description))


def described_mutation(description: str) -> Callable[[ResolverT], ResolverT]:
    return cast("Callable[[ResolverT], ResolverT]", strawberry.mutation(description=description))


def described_subscription(description: str) -> Callable[[ResolverT], ResolverT]:
    return cast(
        "Callable[[ResolverT], ResolverT]", strawberry.subscription(description=description)
    )


EnumT = TypeVar("EnumT", bound=Enum)


def described_enum(cls: type[EnumT], description: str, values: Mapping[EnumT, str]) -> None:
    """Register a plain enum (the models' own) with a description for each value.

    ``strawberry.enum_value`` would have to sit in the enum's body, and
    ``models`` knows nothing of GraphQL; so the descriptions are set here,
    on the definition Strawberry made, and every member must have one.
    """
    if set(values) != set(cls):
        raise ValueError(f"describe every value of {cls.__name__}, and nothing else")
    strawberry.enum(cls, description=description)
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    for value in definition.values:
        value.description = values[cls[value.name]]
