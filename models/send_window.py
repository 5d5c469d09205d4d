"""Send windows: the part of each local day in which a client may be messaged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["SendWindow", "next_window_opening", "zone"]


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True, slots=True)
class SendWindow:
    """``[start, end)`` in local time; ``end`` before ``start`` wraps past midnight."""

    start: time
    end: time

    @classmethod
    def from_minutes(cls, start: int, end: int) -> SendWindow:
        return cls(time(start // 60, start % 60), time(end // 60, end % 60))

    @property
    def start_minutes(self) -> int:
        return self.start.hour * 60 + self.start.minute

    @property
    def end_minutes(self) -> int:
        return self.end.hour * 60 + self.end.minute

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def is_open(self, timezone: str, at: datetime) -> bool:
        """Whether a client in ``timezone`` may be messaged at the instant ``at``."""
        local = at.astimezone(zone(timezone)).time().replace(tzinfo=None)
        return self.contains(local)


def next_window_opening(window: SendWindow, timezone: str, after: datetime) -> datetime:
    """The first instant at or after ``after`` at which the window is open, in UTC.

    The window opens when the local clock reaches its start, or when the clock
    jumps into it at a change of UTC offset. Local openings are tried day by
    day: one that falls into a DST gap (02:30 on a spring-forward night) does
    not exist on the clock, and one in a fall-back overlap happens twice; and
    on a day whose offset changes, the change itself is a candidate.
    """
    if window.is_open(timezone, after):
        return after.astimezone(UTC)
    tz = zone(timezone)
    local_day = after.astimezone(tz).date()
    candidates: list[datetime] = []
    for offset in range(-1, 3):
        day = local_day + timedelta(days=offset)
        wall = datetime.combine(day, window.start)
        first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        if second < first:  # a gap: the wall time never happens that day
            candidates.append(_clock_jump(tz, wall, second, first))
        else:  # in a fall-back overlap, both (fold=0 is the earlier)
            candidates += [first, second]
        candidates += _offset_changes(tz, day)
    opening = min(
        (c for c in candidates if c >= after and window.is_open(timezone, c)), default=None
    )
    if opening is None:  # pragma: no cover
        raise AssertionError("a daily window opens within three days")
    return opening


def _offset_changes(tz: ZoneInfo, day: date) -> list[datetime]:
    """The instant the zone's UTC offset changes on the local ``day``, if it does."""
    low = int(datetime.combine(day, time(), tz).timestamp())
    high = int(datetime.combine(day + timedelta(days=1), time(), tz).timestamp())

    def offset(timestamp: int) -> timedelta | None:
        return datetime.fromtimestamp(timestamp, tz).utcoffset()

    if offset(low) == offset(high):
        return []
    while high - low > 1:  # offsets change on whole seconds
        middle = (low + high) // 2
        if offset(middle) == offset(low):
            low = middle
        else:
            high = middle
    return [datetime.fromtimestamp(high, UTC)]


def _clock_jump(tz: ZoneInfo, wall: datetime, low: datetime, high: datetime) -> datetime:
    """The instant in ``(low, high]`` at which the local clock jumps past ``wall``."""
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)
