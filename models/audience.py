"""Who a mailing reaches: filter matching, in Python and as SQL.

The statements that build and re-target an audience are in
``models.queries.messages``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["ClientFilter"]


@dataclass(frozen=True, slots=True)
class ClientFilter:
    """A client matches when (no codes or its code is listed) AND (no tags or its tag is listed)."""

    operator_codes: tuple[str, ...] = field(default=())
    tags: tuple[str, ...] = field(default=())

    @classmethod
    def from_json(cls, operator_codes: object, tags: object) -> ClientFilter:
        """The filter stored on a mailing row (JSON columns: a list, or its text)."""

        def values(raw: object) -> tuple[str, ...]:
            items = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
            return tuple(str(item) for item in items) if isinstance(items, list) else ()

        return cls(values(operator_codes), values(tags))

    def matches(self, operator_code: str, tag: str) -> bool:
        return (not self.operator_codes or operator_code in self.operator_codes) and (
            not self.tags or tag in self.tags
        )

    def where(self, first_param: int, alias: str = "c") -> tuple[str, list[Any]]:
        """A SQL condition on ``client AS alias`` with parameters from ``$first_param``."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, values in (
            ("operator_code", self.operator_codes),
            ("tag", self.tags),
        ):
            if values:
                start = first_param + len(params)
                marks = ", ".join(f"${start + i}" for i in range(len(values)))
                clauses.append(f"{alias}.{column} IN ({marks})")
                params.extend(values)
        return (" AND ".join(clauses) or "1 = 1"), params
