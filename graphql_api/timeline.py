"""``Mailing.timeline``: a mailing's outcomes over time, its current rate and an estimated end."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from models import clock
from models.db import connection
from models.status import MailingStatus
from models.timeline import MAX_BUCKETS, build_timeline

__all__ = ["MailingTimeline", "TimelineBucket", "TimelineBucketSize", "timeline_of"]


@strawberry.enum(
    description="How long each bucket of a timeline is. AUTO picks the smallest size that "
    "draws the whole life of the mailing in about 120 buckets. A size that would give more "
    f"than {MAX_BUCKETS} buckets is widened to the next one that fits."
)
class TimelineBucketSize(Enum):
    AUTO = strawberry.enum_value(0, description="The smallest size that fits about 120 buckets.")
    SECOND = strawberry.enum_value(1, description="One second.")
    TEN_SECONDS = strawberry.enum_value(10, description="Ten seconds.")
    MINUTE = strawberry.enum_value(60, description="One minute.")
    TEN_MINUTES = strawberry.enum_value(600, description="Ten minutes.")
    HOUR = strawberry.enum_value(3600, description="One hour.")
    DAY = strawberry.enum_value(86400, description="One day (UTC).")


@strawberry.type(description="The messages that reached each final status within one bucket.")
class TimelineBucket:
    start: datetime = strawberry.field(description="The bucket's first instant (UTC).")
    sent: int = strawberry.field(description="Messages the provider accepted in the bucket.")
    failed: int = strawberry.field(description="Messages the provider rejected for good.")
    expired: int = strawberry.field(description="Messages whose mailing ended before they went.")
    cancelled: int = strawberry.field(description="Messages withdrawn before they went out.")


@strawberry.type(
    description="A mailing's whole life, from its messages' `finishedAt`: counts per bucket "
    "from the first outcome to the last, the current rate and an estimated end."
)
class MailingTimeline:
    bucket_seconds: int = strawberry.field(description="The length of each bucket, in seconds.")
    buckets: list[TimelineBucket] = strawberry.field(
        description="Consecutive buckets in time order (empty ones included), empty before any "
        "message is final."
    )
    undated: int = strawberry.field(
        description="Final messages with no recorded time (finalised before the service "
        "recorded it): in no bucket."
    )
    rate_per_second: float = strawberry.field(
        description="Messages the provider answered (SENT or FAILED) per second over the last "
        "minute, or since its first answer if that is later; 0 unless RUNNING."
    )
    estimated_done_at: datetime | None = strawberry.field(
        description="When the pending messages should all be answered at the current rate "
        "(`endAt` at the latest); null unless RUNNING, or while nothing goes out (a closed "
        "window, the provider down)."
    )


async def timeline_of(
    *,
    mailing_id: int,
    status: MailingStatus,
    end_at: datetime,
    pending: int,
    bucket: TimelineBucketSize,
) -> MailingTimeline:
    built = await build_timeline(
        connection(),
        mailing_id=mailing_id,
        status=status,
        end_at=end_at,
        pending=pending,
        now=clock.now(),
        bucket_seconds=int(bucket.value) or None,
    )
    return MailingTimeline(
        bucket_seconds=built.bucket_seconds,
        buckets=[
            TimelineBucket(
                start=b.start,
                sent=b.sent,
                failed=b.failed,
                expired=b.expired,
                cancelled=b.cancelled,
            )
            for b in built.buckets
        ],
        undated=built.undated,
        rate_per_second=built.rate,
        estimated_done_at=built.estimated_done_at,
    )
