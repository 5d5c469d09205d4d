"""The Huey instance, alone in its module (Huey's ``docs/imports.rst``).

Redis when ``REDIS_URL`` is set, SQLite under the data directory otherwise.
The API imports this (through ``tasks.hooks``) only to enqueue.

Huey's scheduler reads the service's clock (``models.clock``, the
database's), not the host's: a start scheduled for ``startAt`` runs at
``startAt`` on the database's clock even on a worker whose own clock is
minutes off, and an ``expires`` is counted on the same clock it is checked on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from redis import ConnectionPool

from models import clock
from settings import get_settings

__all__ = ["huey"]

_READ_TIMEOUT = 1  # seconds the consumer's blocking read of the queue waits (Huey's default)


class _OnDatabaseClock:
    """Huey's timestamps (``utc=True``: naive UTC) from ``models.clock``."""

    def _get_timestamp(self) -> datetime:
        return clock.now().replace(tzinfo=None)

    def enqueue(self, task: Any) -> Any:
        # Huey resolves a relative ``expires`` on the host's clock: make it an
        # instant on ours first (an instant is kept as it is).
        expires = task.expires
        if isinstance(expires, int | float):
            expires = timedelta(seconds=expires)
        if isinstance(expires, timedelta):
            task.expires = clock.now() + expires
        return super().enqueue(task)  # type: ignore[misc]


class _RedisHuey(_OnDatabaseClock, RedisHuey):  # type: ignore[misc]
    pass


class _SqliteHuey(_OnDatabaseClock, SqliteHuey):  # type: ignore[misc]
    pass


def _make_huey() -> Huey:
    settings = get_settings()
    if settings.redis_url:
        # Every Redis call is bounded; the consumer's blocking read (1 s) fits
        # inside the socket's limit.
        pool = ConnectionPool.from_url(
            settings.redis_url,
            socket_connect_timeout=settings.redis_timeout,
            socket_timeout=settings.redis_timeout + _READ_TIMEOUT,
        )
        return _RedisHuey(
            settings.queue_name, connection_pool=pool, read_timeout=_READ_TIMEOUT, utc=True
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return _SqliteHuey(
        settings.queue_name, filename=str(settings.huey_sqlite_path), utc=True, timeout=30
    )


huey = _make_huey()
