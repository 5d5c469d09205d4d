"""Global object ids (Relay's Object Identification): one id names one object of one type.

An id is ``base64("<Type>:<key>")``, opaque to clients (``"TWFpbGluZzo0Mg=="``
is mailing 42), so ids are unique across types and ``node(id:)`` knows which
table to read. The integer keys of the first release (``"42"``) stay accepted
wherever an argument names an object of a known type, while they are
deprecated (CHANGELOG). Everything that reads an id argument goes through
:func:`key_of` (one type expected) or :func:`decode` (any type): an id that
names nothing (malformed, out of range, another type's) is ``None`` there,
which a query answers with null and a mutation with a ``NotFoundError``.
"""

from __future__ import annotations

import base64
import binascii
import enum

import strawberry

__all__ = ["MAX_KEY", "Kind", "decode", "global_id", "key_of", "legacy_key"]

MAX_KEY = 2**63 - 1
# A base64 global id of the longest type name and key is under 50 characters.
_MAX_ID_LENGTH = 64


class Kind(enum.StrEnum):
    """The types that have global ids: their GraphQL type names."""

    CLIENT = "Client"
    MAILING = "Mailing"
    MESSAGE = "Message"


def global_id(kind: Kind, key: int) -> strawberry.ID:
    """The id clients see for the row ``key`` of ``kind``."""
    return strawberry.ID(base64.b64encode(f"{kind}:{key}".encode()).decode())


def legacy_key(value: str) -> int | None:
    """The integer key a first-release id (``"42"``) names, or ``None``."""
    # isdecimal alone accepts non-ASCII digits; isascii rules them out.
    if not (value.isascii() and value.isdecimal()) or len(value) > 19:
        return None
    key = int(value)
    return key if 0 < key <= MAX_KEY else None


def decode(value: str) -> tuple[Kind, int] | None:
    """The type and key a global id names, or ``None`` when it cannot name anything."""
    if len(value) > _MAX_ID_LENGTH:
        return None
    try:
        text = base64.b64decode(value.encode("ascii"), validate=True).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError):
        return None
    name, _, key_text = text.partition(":")
    try:
        kind = Kind(name)
    except ValueError:
        return None
    key = legacy_key(key_text)
    return None if key is None else (kind, key)


def key_of(value: str, kind: Kind) -> int | None:
    """The key of the ``kind`` an id argument names: its global id, or its deprecated integer key.

    ``None`` when it names no ``kind``: malformed, out of range, or another type's.
    """
    key = legacy_key(value)
    if key is not None:
        return key
    decoded = decode(value)
    if decoded is None or decoded[0] is not kind:
        return None
    return decoded[1]
