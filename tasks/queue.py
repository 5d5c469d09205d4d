"""The Huey instance, alone in its module (Huey's ``docs/imports.rst``).

Redis when ``REDIS_URL`` is set, SQLite under the data directory otherwise.
The API imports this (through ``tasks.hooks``) only to enqueue.
"""

from __future__ import annotations

from huey import Huey, RedisHuey, SqliteHuey

from settings import get_settings

__all__ = ["huey"]


def _make_huey() -> Huey:
    settings = get_settings()
    if settings.redis_url:
        return RedisHuey(settings.queue_name, url=settings.redis_url, utc=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(
        settings.queue_name, filename=str(settings.huey_sqlite_path), utc=True, timeout=30
    )


huey = _make_huey()
