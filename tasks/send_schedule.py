"""The schedule that every worker reserves its request start times in (``PROVIDER_MAX_RPS``).

GCRA, the generic cell rate algorithm in its virtual-scheduling form: the
schedule is one number, ``tat`` (the theoretical arrival time), the start of
the next free slot in the schedule's own clock. A worker asking at ``now`` for
``n`` slots at ``R`` requests a second (``T = 1/R`` apart) gets the ``k <= n``
slots ``first, first + T, ...`` with ``first = max(tat, now)``, as many as
start no later than ``now + horizon``, and ``tat`` moves to ``first + k*T``.
Grants never overlap and every slot starts at least ``T`` after the one
before it, whoever reserved it. :func:`reserve_slots` is that arithmetic;
each store below runs the same arithmetic atomically:

- Redis (when ``REDIS_URL`` is set): one Lua script, with Redis's own
  ``TIME``; the key expires once its ``tat`` is in the past.
- The database otherwise: one ``UPDATE`` of one ``send_schedule`` row, whose
  row lock orders the workers. PostgreSQL reads ``clock_timestamp()`` inside
  the statement: a worker that waited for the lock re-evaluates the
  statement on the row the other one committed (READ COMMITTED), with the
  clock read after the wait. SQLite takes its write lock before the
  statement reads anything, and its clock (``julianday('now')``, to the
  millisecond) is this machine's.

Clocks: no worker's own clock takes part in the schedule, so skewed or
stepped worker clocks change nothing. :class:`SharedCap` turns the store's
times into the worker's monotonic clock with the offset learnt from its calls:
the store read its clock between our ``sent`` and ``received``, so
``received - store_now`` bounds the offset from above (and ``sent -
store_now``, less the clock's resolution, from below). The smallest bound
seen (aged by 500 ppm, the most NTP slews a clock) maps slots to local times
no earlier than they are, and later by at most the fastest round trip.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from tortoise import BaseDBAsyncClient

from models.db import connection, execute, fetch, is_postgres

__all__ = [
    "DatabaseSchedule",
    "RedisSchedule",
    "Reservation",
    "Schedule",
    "SharedCap",
    "reserve_slots",
]

# Seconds a Redis call may take before it counts as a failure: the engine
# waits on it, so a hung connection must not hold sending for long.
_REDIS_TIMEOUT = 2.0
# How fast the store's clock may drift from ours (NTP slews at most 500 ppm).
_DRIFT = 5e-4
# Clock readings taken before the first grant, so that it is mapped well too.
_CALIBRATION_SAMPLES = 3


@dataclass(slots=True)
class Reservation:
    """Slots granted by a schedule: ``count`` of them, ``interval`` apart from ``first``.

    In a store's clock (seconds since the epoch) from a :class:`Schedule`; in
    the worker's monotonic clock from :class:`SharedCap`. ``now`` is the
    clock when they were granted, ``tat`` the start of the next free slot.
    """

    now: float
    first: float
    count: int
    tat: float


def reserve_slots(tat: float, now: float, interval: float, horizon: float, n: int) -> Reservation:
    """GCRA: the slots a request for ``n`` at ``now`` gets from a schedule at ``tat``.

    The Lua script and the SQL statements below compute exactly this, in the
    same floating-point operations (the tests compare them).
    """
    first = max(tat, now)
    count = min(n, max(0, math.floor((now + horizon - first) / interval) + 1))
    return Reservation(now, first, count, first + count * interval)


class Schedule(Protocol):
    """A shared store of ``tat``; ``now`` pins its clock (tests only)."""

    @property
    def clock_resolution(self) -> float:
        """Seconds: the store's clock reads up to this much behind the time."""
        ...

    async def reserve(
        self, n: int, interval: float, horizon: float, *, now: float | None = None
    ) -> Reservation: ...

    async def aclose(self) -> None: ...


# KEYS[1]: the schedule; ARGV: n, interval, horizon, now ("" = Redis's clock).
# Numbers go back as strings: Redis would truncate a Lua number to an integer.
_RESERVE_LUA = """
local n = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local tat = tonumber(redis.call('GET', KEYS[1])) or now
local first = math.max(tat, now)
local count = math.floor((now + horizon - first) / interval) + 1
if count < 0 then count = 0 elseif count > n then count = n end
local next_tat = first + count * interval
redis.call('SET', KEYS[1], string.format('%.17g', next_tat),
           'PX', math.ceil((next_tat - now) * 1000) + 60000)
return {string.format('%.17g', now), string.format('%.17g', first), count,
        string.format('%.17g', next_tat)}
"""


class RedisSchedule:
    """The schedule as one Redis key, reserved by one Lua script."""

    def __init__(self, url: str, key: str) -> None:
        self.key = key
        self._redis: Redis = Redis.from_url(
            url, socket_timeout=_REDIS_TIMEOUT, socket_connect_timeout=_REDIS_TIMEOUT
        )
        self._script = self._redis.register_script(_RESERVE_LUA)

    @property
    def clock_resolution(self) -> float:
        return 1e-6

    async def reserve(
        self, n: int, interval: float, horizon: float, *, now: float | None = None
    ) -> Reservation:
        args: list[Any] = [n, interval, horizon, "" if now is None else now]
        reply = await self._script(keys=[self.key], args=args)
        return Reservation(float(reply[0]), float(reply[1]), int(reply[2]), float(reply[3]))

    async def aclose(self) -> None:
        await self._redis.aclose()


# $1 name, $2 interval, $3 n, $4 horizon, $5 now (NULL: the database's clock).
# The sub-select is correlated with the row, so PostgreSQL re-runs it, clock
# included, on the newest row version after waiting for the lock.
_RESERVE_POSTGRES = """
UPDATE send_schedule AS s SET (tat, granted_at, granted_from, granted) = (
    SELECT g.first + g.count * $2::float8, g.now, g.first, g.count FROM (
        SELECT c.now, c.first,
            LEAST($3::int, GREATEST(0, FLOOR((c.now + $4::float8 - c.first) / $2::float8) + 1))::int
                AS count
        FROM (SELECT t.now, GREATEST(s.tat, t.now) AS first FROM (
            SELECT COALESCE($5::float8, EXTRACT(EPOCH FROM clock_timestamp())::float8) AS now
        ) AS t) AS c
    ) AS g
)
WHERE s.name = $1
RETURNING tat, granted_at, granted_from, granted
"""

# The same on SQLite: no GREATEST/LEAST or FLOOR, and CAST truncates, which is
# FLOOR for the non-negative values it sees here.
_RESERVE_SQLITE = """
UPDATE send_schedule SET (tat, granted_at, granted_from, granted) = (
    SELECT g.first + g.count * $2, g.now, g.first, g.count FROM (
        SELECT c.now, c.first,
            CASE WHEN c.first > c.now + $4 THEN 0
                 ELSE min($3, CAST((c.now + $4 - c.first) / $2 AS INTEGER) + 1) END AS count
        FROM (SELECT t.now, max(send_schedule.tat, t.now) AS first FROM (
            SELECT COALESCE($5, (julianday('now') - 2440587.5) * 86400.0) AS now
        ) AS t) AS c
    ) AS g
)
WHERE name = $1
RETURNING tat, granted_at, granted_from, granted
"""


class DatabaseSchedule:
    """The schedule as one row of ``send_schedule``, reserved by one ``UPDATE``."""

    def __init__(self, name: str, conn: BaseDBAsyncClient | None = None) -> None:
        """``conn``: the client to use; by default this context's Tortoise connection."""
        self.name = name
        self._conn = conn

    @property
    def clock_resolution(self) -> float:
        return 1e-6 if is_postgres(self._conn or connection()) else 1e-3

    async def reserve(
        self, n: int, interval: float, horizon: float, *, now: float | None = None
    ) -> Reservation:
        conn = self._conn or connection()
        sql = _RESERVE_POSTGRES if is_postgres(conn) else _RESERVE_SQLITE
        params = (self.name, float(interval), n, float(horizon), None if now is None else now)
        rows = await fetch(conn, sql, *params)
        if not rows:
            # The first reservation under this name (or the table was emptied).
            await execute(
                conn,
                "INSERT INTO send_schedule (name, tat) VALUES ($1, 0)"
                " ON CONFLICT (name) DO NOTHING",
                self.name,
            )
            rows = await fetch(conn, sql, *params)
        row = rows[0]
        return Reservation(
            float(row["granted_at"]),
            float(row["granted_from"]),
            int(row["granted"]),
            float(row["tat"]),
        )

    async def aclose(self) -> None:
        """Nothing to close: the connection belongs to the caller."""


class _ClockOffset:
    """``local = store + offset``: the tightest bounds the calls gave, aged by the drift."""

    def __init__(self) -> None:
        self._upper, self._upper_at = math.inf, 0.0
        self._lower, self._lower_at = -math.inf, 0.0

    def bounds(self, now: float) -> tuple[float, float]:
        """The offset lies between these (``lower``, ``upper``) at local time ``now``."""
        return (
            self._lower - _DRIFT * (now - self._lower_at),
            self._upper + _DRIFT * (now - self._upper_at),
        )

    def update(self, sent: float, received: float, store_now: float, resolution: float) -> float:
        """Take one call's bounds in; the offset to use (its upper bound: never early)."""
        upper = received - store_now
        lower = sent - store_now - resolution
        old_lower, old_upper = self.bounds(received)
        if lower > old_upper or upper < old_lower:
            # Impossible with the old bounds: a clock was stepped. Start again.
            self._upper, self._upper_at = upper, received
            self._lower, self._lower_at = lower, received
            return upper
        if upper <= old_upper:
            self._upper, self._upper_at = upper, received
        if lower >= old_lower:
            self._lower, self._lower_at = lower, received
        return min(upper, old_upper)


class SharedCap:
    """This worker's view of the shared schedule: slots in its own monotonic clock."""

    def __init__(
        self,
        schedule: Schedule,
        max_rps: float,
        *,
        horizon: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not max_rps > 0 or not horizon >= 0:
            raise ValueError(f"max_rps must be > 0 and horizon >= 0, not {max_rps}, {horizon}")
        self.schedule = schedule
        self.max_rps = max_rps
        self.interval = 1.0 / max_rps
        self.horizon = horizon
        self._clock = clock
        self._offset = _ClockOffset()
        self._calibrated = False

    @property
    def clock_error(self) -> float:
        """Seconds by which slots may be mapped later than they are (never earlier)."""
        lower, upper = self._offset.bounds(self._clock())
        return upper - lower

    async def reserve(self, n: int) -> Reservation:
        """Up to ``n`` slots starting within ``horizon``, in the local clock.

        Slots are ``interval`` apart from ``first``; ``tat - horizon`` is when
        asking again may get more. Errors of the store propagate.
        """
        if not self._calibrated:
            for _ in range(_CALIBRATION_SAMPLES):
                await self._reserve(0)
            self._calibrated = True
        return await self._reserve(n)

    async def _reserve(self, n: int) -> Reservation:
        sent = self._clock()
        got = await self.schedule.reserve(n, self.interval, self.horizon)
        resolution = self.schedule.clock_resolution
        offset = self._offset.update(sent, self._clock(), got.now, resolution)
        return Reservation(got.now + offset, got.first + offset, got.count, got.tat + offset)

    async def aclose(self) -> None:
        await self.schedule.aclose()
