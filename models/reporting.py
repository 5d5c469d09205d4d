"""What the daily report and the CSV exports share: the delivery rate, cells read and written.

The API may import this (it lives in ``models``); ``tasks`` builds the
report from it, ``graphql_api.http.exports`` the downloads.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime

__all__ = ["csv_lines", "delivery_rate", "format_rate", "parse_instant", "spreadsheet_safe"]

# A cell starting with one of these is run as a formula by spreadsheets.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def delivery_rate(sent: int, failed: int, expired: int) -> float | None:
    """Sent among the messages whose outcome is known, cancelled ones aside; None if none."""
    decided = sent + failed + expired
    return None if decided == 0 else sent / decided


def format_rate(rate: float | None) -> str:
    """A rate as a CSV cell: four decimals, empty when there is none."""
    return "" if rate is None else f"{rate:.4f}"


def parse_instant(value: object) -> datetime:
    """A timestamp column's value: a datetime (PostgreSQL) or its ISO text (SQLite)."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def spreadsheet_safe(text: str) -> str:
    """Free text (a mailing's text, a provider's error) defused for spreadsheets with a quote."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_lines(rows: Iterable[Sequence[object]]) -> bytes:
    """Rows as CSV (RFC 4180 line ends), UTF-8."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()
