"""The Huey instance, alone in its module (Huey's ``docs/imports.rst``).

Redis when ``REDIS_URL`` is set, SQLite under the data directory otherwise.
The API imports this (through ``tasks.hooks``) only to enqueue.
"""

from __future__ import annotations

from huey import Huey, RedisHuey, SqliteHuey
from redis import ConnectionPool

from settings import get_settings

__all__ = ["huey"]

_READ_TIMEOUT = 1  # seconds the consumer's blocking read of the queue waits (Huey's default)


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
        return RedisHuey(
            settings.queue_name, connection_pool=pool, read_timeout=_READ_TIMEOUT, utc=True
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(
        settings.queue_name, filename=str(settings.huey_sqlite_path), utc=True, timeout=30
    )


huey = _make_huey()
