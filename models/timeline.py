"""A mailing's timeline: what became of its messages, bucket by bucket, its rate and its end.

Built from the counts per second kept as messages finish (``timeline_count``,
by ``message.finished_at``), so it shows a mailing's whole life whenever it
is asked, not only what a watcher saw, at a cost that does not grow with
the mailing's size. The number of
buckets is bounded: a bucket too small for the span is widened to the next
size that fits (the answer says which size it used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise import BaseDBAsyncClient

from models.queries.messages.timeline import (
    answered_since,
    answered_span,
    finished_span,
    outcomes_by_bucket,
    undated,
)
from models.status import MailingStatus

__all__ = [
    "AUTO_BUCKETS",
    "BUCKET_SIZES",
    "MAX_BUCKETS",
    "RATE_WINDOW",
    "RECORDING_LAG",
    "Timeline",
    "TimelineBucket",
    "bucket_size_for",
    "build_timeline",
    "estimated_done_at",
]

# Bucket sizes in seconds, smallest first: whole seconds, minutes, hours, a day.
BUCKET_SIZES = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
# At most this many buckets in an answer; an automatic size aims at fewer,
# enough for a chart a few hundred pixels wide.
MAX_BUCKETS = 1000
AUTO_BUCKETS = 120
# The current rate counts the provider's answers over about the last minute, or
# since its first answer when that is later: not since ``start_at``, which the
# page's form rounds down to the minute and a mailing may wait past (its first
# window, an audience still being built), so counting from it made a send at
# thousands a second read as a dozen 3 s in.
RATE_WINDOW = timedelta(seconds=60)
# Answers are recorded in batches, a moment after they came. Over a window of
# a minute that moment does not matter; over the first seconds it does (a
# second not yet written, of three, read as a third less): there the window
# ends at the last answer recorded, unless that is older than this.
RECORDING_LAG = timedelta(seconds=5)
# A second at least, so the first answers alone do not read as a burst.
_MIN_RATE_WINDOW = timedelta(seconds=1)
_OUTCOMES = ("SENT", "FAILED", "EXPIRED", "CANCELLED")


@dataclass(slots=True)
class TimelineBucket:
    start: datetime
    sent: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0


@dataclass(frozen=True, slots=True)
class Timeline:
    bucket_seconds: int
    buckets: tuple[TimelineBucket, ...]
    # Final messages without a time: finalised before finished_at was recorded.
    undated: int
    rate: float
    estimated_done_at: datetime | None


def bucket_size_for(span: timedelta, wanted: int | None) -> int:
    """The bucket size (seconds) to use: ``wanted``, widened until the span fits.

    ``None`` asks for the smallest size giving at most ``AUTO_BUCKETS``.
    """
    limit = AUTO_BUCKETS if wanted is None else MAX_BUCKETS
    for size in BUCKET_SIZES:
        if wanted is not None and size < wanted:
            continue
        if span.total_seconds() / size < limit:
            return size
    return BUCKET_SIZES[-1] * max(1, math.ceil(span.total_seconds() / BUCKET_SIZES[-1] / limit))


def estimated_done_at(
    *,
    status: MailingStatus,
    pending: int,
    rate: float,
    now: datetime,
    end_at: datetime,
) -> datetime | None:
    """When the last pending message should be answered at ``rate``, ``end_at`` at the latest.

    None when the mailing is not running, or nothing moves (waiting for a
    window, the provider down): then no estimate would mean anything.
    """
    if status is not MailingStatus.RUNNING:
        return None
    if pending == 0:
        return now
    if rate <= 0:
        return None
    return min(now + timedelta(seconds=pending / rate), end_at)


async def build_timeline(
    conn: BaseDBAsyncClient,
    *,
    mailing_id: int,
    status: MailingStatus,
    end_at: datetime,
    pending: int,
    now: datetime,
    bucket_seconds: int | None,
) -> Timeline:
    """The timeline of one mailing, as of ``now``; ``bucket_seconds`` None: chosen to fit."""
    span = await finished_span(conn, mailing_id)
    size = bucket_size_for(span[1] - span[0] if span else timedelta(0), bucket_seconds)
    buckets: dict[int, TimelineBucket] = {}
    first = last = 0
    if span is not None:
        first, last = int(span[0].timestamp() // size), int(span[1].timestamp() // size)
        buckets = {
            index: TimelineBucket(start=datetime.fromtimestamp(index * size, UTC))
            for index in range(first, last + 1)
        }
    for row in await outcomes_by_bucket(conn, mailing_id, size):
        if row.status not in _OUTCOMES:
            continue
        # The database's and Python's float arithmetic may disagree at an edge.
        bucket = buckets[min(max(row.index, first), last)]
        name = row.status.lower()
        setattr(bucket, name, getattr(bucket, name) + row.count)
    rate = await _rate(conn, mailing_id, now) if status is MailingStatus.RUNNING else 0.0
    return Timeline(
        bucket_seconds=size,
        buckets=tuple(buckets[index] for index in sorted(buckets)),
        undated=await undated(conn, mailing_id),
        rate=rate,
        estimated_done_at=estimated_done_at(
            status=status, pending=pending, rate=rate, now=now, end_at=end_at
        ),
    )


async def _rate(conn: BaseDBAsyncClient, mailing_id: int, now: datetime) -> float:
    """Answers a second over the last minute, or since the first answer if that is later."""
    span = await answered_span(conn, mailing_id)
    if span is None:
        return 0.0
    first, last = span
    since = max(now - RATE_WINDOW, first)
    until = now
    if since == first and last > now - RECORDING_LAG:
        until = max(min(last, now), since)
    window = max(until - since, _MIN_RATE_WINDOW)
    return await answered_since(conn, mailing_id, since, until) / window.total_seconds()
