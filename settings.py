"""Service settings, read once from the environment (SPEC section 4).

Nothing else in the code base reads ``os.environ``: everything goes through
:func:`get_settings`, so a setting is typed and documented in one place and a
secret (``SecretStr``) never prints.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]

_DATA_DIR = Path("data")


class Settings(BaseSettings):
    """Everything the API, the worker and the CLI can be told from outside."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    database_url: str = Field(default=f"sqlite://{_DATA_DIR}/mailings.sqlite3")
    redis_url: str | None = None
    provider_url: str = "http://127.0.0.1:8001"
    provider_token: SecretStr | None = None
    api_token: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] = "console"

    # Where the embedded defaults (SQLite database, SQLite Huey) keep their files.
    data_dir: Path = _DATA_DIR
    # Huey's queue name: separate names keep several deployments (or test
    # runs) apart on one Redis.
    queue_name: str = "mailings"
    # Sending engine knobs; the defaults suit the provider-sim on one machine.
    # Which HTTP stack carries requests to the send API (see bench/).
    provider_http: Literal["httpx", "httpx-aiohttp", "aiohttp"] = "httpx-aiohttp"
    send_concurrency: int = Field(default=256, ge=1, le=10_000)
    send_timeout: float = Field(default=10.0, gt=0)
    send_connect_timeout: float = Field(default=3.0, gt=0)
    send_batch_size: int = Field(default=500, ge=1, le=10_000)
    # How long a claimed message stays hidden from other workers; past it, a
    # message whose worker died is due again. Kept above twice send_timeout.
    send_lease: float = Field(default=60.0, gt=0)
    retry_base_delay: float = Field(default=1.0, gt=0)
    retry_max_delay: float = Field(default=300.0, gt=0)
    breaker_failure_threshold: int = Field(default=20, ge=1)
    breaker_reset_timeout: float = Field(default=5.0, gt=0)
    sweep_interval: float = Field(default=2.0, gt=0)
    # API protection.
    max_query_depth: int = Field(default=10, ge=1)
    max_query_tokens: int = Field(default=200_000, ge=100)
    max_query_aliases: int = Field(default=30, ge=1)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_url", "provider_token", "api_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql://", "asyncpg://"))

    @property
    def huey_sqlite_path(self) -> Path:
        return self.data_dir / "huey.sqlite3"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
