"""Field rules of docs/sending.md, "The objects": each ``clean_*`` returns the normalised value
or raises ``ValueError`` with a message fit to show an operator."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, time

from models.time_zones import canonical_zones, link_target

__all__ = [
    "TAG_MAX_LENGTH",
    "TEXT_MAX_LENGTH",
    "clean_clock_time",
    "clean_instant",
    "clean_operator_code",
    "clean_phone",
    "clean_tag",
    "clean_text",
    "clean_timezone",
    "clean_zone_name",
    "default_operator_code",
    "refuse_control_characters",
]

TAG_MAX_LENGTH = 64
TEXT_MAX_LENGTH = 1000

_PHONE = re.compile(r"7[0-9]{10}")
_OPERATOR_CODE = re.compile(r"[0-9]{3}")
_CLOCK_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


def clean_phone(value: str) -> str:
    # fullmatch with an explicit [0-9]: str.isdigit and \d accept non-ASCII digits.
    if not _PHONE.fullmatch(value):
        raise ValueError("must be 11 digits starting with 7 (7XXXXXXXXXX)")
    return value


def default_operator_code(phone: str) -> str:
    """The operator code implied by a valid phone: its digits 2-4."""
    return phone[1:4]


def clean_operator_code(value: str) -> str:
    if not _OPERATOR_CODE.fullmatch(value):
        raise ValueError("must be exactly 3 digits")
    return value


def refuse_control_characters(value: str, allowed: str = "") -> str:
    """``value``, unless it holds a control character (or half a surrogate pair).

    PostgreSQL refuses NUL in text, and lone surrogates cannot be encoded at
    all; the other control characters are refused with them, so that both
    backends keep the same text and no label carries an invisible escape.
    """
    for char in value:
        if char not in allowed and unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(f"must not contain control characters (U+{ord(char):04X})")
    return value


def clean_tag(value: str) -> str:
    if len(value) > TAG_MAX_LENGTH:
        raise ValueError(f"must be at most {TAG_MAX_LENGTH} characters")
    return refuse_control_characters(value)


def clean_timezone(value: str) -> str:
    if value in canonical_zones():
        return value
    target = link_target(value)
    if target is not None:
        raise ValueError(f"is an old or alias name of {target}: use {target}")
    raise ValueError("must be a canonical IANA time zone name such as Europe/Moscow")


def clean_zone_name(value: str) -> str:
    """A name to look clients up by: canonical, or an old name that clients may still have."""
    if value in canonical_zones() or link_target(value) is not None:
        return value
    raise ValueError("must be an IANA time zone name such as Europe/Moscow")


def clean_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if len(value) > TEXT_MAX_LENGTH:
        raise ValueError(f"must be at most {TEXT_MAX_LENGTH} characters")
    # Line breaks and tabs belong in a message; no other control character does.
    return refuse_control_characters(value, allowed="\t\n\r")


def clean_instant(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must include a UTC offset, e.g. 2026-01-31T09:00:00+03:00")
    return value


def clean_clock_time(value: str) -> time:
    """``HH:MM`` on a 24-hour clock."""
    match = _CLOCK_TIME.fullmatch(value)
    if match is None:
        raise ValueError("must be a time of day as HH:MM (00:00 to 23:59)")
    return time(int(match[1]), int(match[2]))
