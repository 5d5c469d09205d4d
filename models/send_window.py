"""Send windows: the part of each local day in which a client may be messaged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
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

    Local openings are tried day by day. An opening that falls into a DST gap
    (02:30 on a spring-forward night) does not exist on the clock: the window
    then opens when the clock jumps past the gap, if the jump lands inside it.
    """
    if window.is_open(timezone, after):
        return after.astimezone(UTC)
    tz = zone(timezone)
    local_day = after.astimezone(tz).date()
    for offset in range(-1, 3):
        wall = datetime.combine(local_day + timedelta(days=offset), window.start)
        first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        if second < first:  # a gap: the wall time never happens that day
            first = _clock_jump(tz, wall, second, first)
        # In a fall-back overlap ``first`` (fold=0) is the earlier of the two.
        if first >= after and window.is_open(timezone, first):
            return first
    raise AssertionError("a daily window opens within three days")  # pragma: no cover


def _clock_jump(tz: ZoneInfo, wall: datetime, low: datetime, high: datetime) -> datetime:
    """The instant in ``(low, high]`` at which the local clock jumps past ``wall``."""
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)
