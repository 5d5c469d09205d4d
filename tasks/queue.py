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

from models import clock
from settings import get_settings

__all__ = ["huey"]


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
        return _RedisHuey(settings.queue_name, url=settings.redis_url, utc=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return _SqliteHuey(
        settings.queue_name, filename=str(settings.huey_sqlite_path), utc=True, timeout=30
    )


huey = _make_huey()
