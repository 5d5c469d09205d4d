"""Field rules of SPEC section 1: each ``clean_*`` returns the normalised value
or raises ``ValueError`` with a message fit to show an operator."""

from __future__ import annotations

import re
from datetime import datetime, time
from functools import lru_cache
from zoneinfo import available_timezones

__all__ = [
    "TAG_MAX_LENGTH",
    "TEXT_MAX_LENGTH",
    "clean_clock_time",
    "clean_instant",
    "clean_operator_code",
    "clean_period",
    "clean_phone",
    "clean_tag",
    "clean_text",
    "clean_timezone",
    "default_operator_code",
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


def clean_tag(value: str) -> str:
    if len(value) > TAG_MAX_LENGTH:
        raise ValueError(f"must be at most {TAG_MAX_LENGTH} characters")
    return value


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def clean_timezone(value: str) -> str:
    if value not in _timezones():
        raise ValueError("must be an IANA time zone name such as Europe/Moscow")
    return value


def clean_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if len(value) > TEXT_MAX_LENGTH:
        raise ValueError(f"must be at most {TEXT_MAX_LENGTH} characters")
    return value


def clean_instant(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must include a UTC offset, e.g. 2026-01-31T09:00:00+03:00")
    return value


def clean_period(start: datetime, end: datetime) -> None:
    """Both instants are already aware; the period must not be empty."""
    if not start < end:
        raise ValueError("must be later than startAt")


def clean_clock_time(value: str) -> time:
    """``HH:MM`` on a 24-hour clock."""
    match = _CLOCK_TIME.fullmatch(value)
    if match is None:
        raise ValueError("must be a time of day as HH:MM (00:00 to 23:59)")
    return time(int(match[1]), int(match[2]))
