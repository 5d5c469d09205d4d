"""What the message statements share: the lease test, id lists, filter matching, storable text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from tortoise import BaseDBAsyncClient

from models.db import db_clock, is_postgres

__all__ = ["OPTED_OUT_REASON", "client_matches_mailing", "id_list", "storable", "waiting"]

# The reason (``last_error``) of a message cancelled because its client opted out.
OPTED_OUT_REASON = "client opted out"

_ERROR_LIMIT = 500  # characters of a reason kept in last_error


def storable(text: str | None, limit: int = _ERROR_LIMIT) -> str | None:
    """Text from outside (a provider's answer) made safe to store anywhere.

    PostgreSQL refuses NUL in text and invalid UTF-8 (a lone surrogate that
    slipped through a decoder); both become U+FFFD, and the length is bounded.
    """
    if text is None:
        return None
    if len(text) > limit:
        text = text[:limit] + "…"
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() or ch in "\t " else "\ufffd" for ch in text)
    return text.encode("utf-8", "replace").decode("utf-8")


def waiting(conn: BaseDBAsyncClient, table: str = "message") -> str:
    """A pending message no live lease holds (a lease whose worker died has ended)."""
    return f"({table}.leased_until IS NULL OR {table}.leased_until <= {db_clock(conn)})"


def id_list(conn: BaseDBAsyncClient, ids: Sequence[int], param: int) -> tuple[str, Any]:
    """``IN`` over a list of ids passed as one parameter."""
    if is_postgres(conn):
        return f"= ANY(${param}::bigint[])", list(ids)
    return f"IN (SELECT value FROM json_each(${param}))", orjson.dumps(list(ids)).decode()


def client_matches_mailing(conn: BaseDBAsyncClient, *, subscribed: bool = True) -> str:
    """``client c`` matches the current filter of ``mailing g`` (read from the row, not a cache).

    An opted-out client matches no mailing; ``subscribed=False`` is the
    filter alone, whoever opted out.
    """
    return ("c.opted_out_at IS NULL AND " if subscribed else "") + _filter_matches(conn)


def _filter_matches(conn: BaseDBAsyncClient) -> str:
    if is_postgres(conn):
        return (
            "(jsonb_array_length(g.filter_operator_codes) = 0"
            " OR g.filter_operator_codes @> to_jsonb(c.operator_code::text))"
            " AND (jsonb_array_length(g.filter_tags) = 0 OR g.filter_tags @> to_jsonb(c.tag::text))"
        )
    return (
        "(json_array_length(g.filter_operator_codes) = 0"
        " OR c.operator_code IN (SELECT value FROM json_each(g.filter_operator_codes)))"
        " AND (json_array_length(g.filter_tags) = 0"
        " OR c.tag IN (SELECT value FROM json_each(g.filter_tags)))"
    )
