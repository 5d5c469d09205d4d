"""The Tortoise ORM config, as plain data: building it opens nothing and makes nothing.

``[tool.aerich]`` in ``pyproject.toml`` points at ``TORTOISE_ORM`` here, so
``aerich heads``, ``aerich history`` and ``aerich migrate`` run on the
database that ``DATABASE_URL`` names. The processes that open the database
(``models.db``) make SQLite's directory themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tortoise.backends.base.config_generator import expand_db_url

from settings import Settings, get_settings

__all__ = ["APP", "TORTOISE_ORM", "connection_info", "tortoise_config", "tortoise_url"]

# The Tortoise app of our models; aerich keeps its migrations in migrations/<APP>/.
APP = "models"

# Built on first access by ``__getattr__`` below.
TORTOISE_ORM: dict[str, Any]


def tortoise_url(url: str) -> str:
    """``DATABASE_URL`` as Tortoise spells it."""
    # Tortoise names the asyncpg backend "postgres"; accept the usual spellings.
    for prefix in ("postgresql://", "asyncpg://"):
        if url.startswith(prefix):
            return "postgres://" + url[len(prefix) :]
    return url


def connection_info(url: str, timeouts: Settings | None = None) -> dict[str, Any]:
    """The connection ``DATABASE_URL`` names, as Tortoise's ``engine`` and ``credentials``.

    With ``timeouts``, every PostgreSQL call is bounded by its settings.
    """
    info: dict[str, Any] = expand_db_url(tortoise_url(url))
    if info["engine"] == "tortoise.backends.sqlite":
        # Transactions that take the write lock as they begin: see the module.
        info["engine"] = "models.sqlite_engine"
    elif info["engine"] == "tortoise.backends.asyncpg":
        # Transactions that cannot poison their task: see the module.
        info["engine"] = "models.postgres_engine"
        if timeouts is not None:
            info["credentials"].update(
                timeout=timeouts.database_connect_timeout,
                acquire_timeout=timeouts.database_connect_timeout
                + timeouts.database_command_timeout,
                command_timeout=timeouts.database_command_timeout,
                server_settings={
                    "statement_timeout": str(int(timeouts.database_statement_timeout * 1000)),
                    # A process frozen (SIGSTOP, a VM pause) between two
                    # statements of a transaction would hold its row locks
                    # until it resumes, and every other worker waiting on
                    # them: the server ends such a session instead.
                    "idle_in_transaction_session_timeout": str(
                        int(timeouts.database_statement_timeout * 1000)
                    ),
                },
            )
    return info


def tortoise_config(settings: Settings | None = None, *, bounded: bool = True) -> dict[str, Any]:
    """The config for ``settings`` (by default the process's own).

    ``bounded``: with the settings' time limits on every call (not for migrations).
    """
    settings = settings or get_settings()
    info = connection_info(settings.database_url, settings if bounded else None)
    return {
        "connections": {"default": info},
        "apps": {
            APP: {
                "models": ["models", "aerich.models"],
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _require_sqlite_dir(info: dict[str, Any]) -> None:
    # Tortoise waits forever on a SQLite file it cannot open (its connection
    # lock is never released): say what is missing instead.
    if info["engine"] != "models.sqlite_engine":
        return
    path = info["credentials"]["file_path"]
    if path != ":memory:" and not Path(path).parent.is_dir():
        raise FileNotFoundError(
            f"{Path(path).parent} does not exist: `mailings migrate` creates the database"
        )


def __getattr__(name: str) -> dict[str, Any]:
    # Built when aerich asks for it, not at import: importing the models must
    # not read the environment before a test or a command has set it.
    if name == "TORTOISE_ORM":
        config = tortoise_config(bounded=False)
        _require_sqlite_dir(config["connections"]["default"])
        return config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
