"""Service settings, read once from the environment (the README's "Settings").

Nothing else in the code base reads ``os.environ``: everything goes through
:func:`get_settings`, so a setting is typed and documented in one place and a
secret (``SecretStr``) never prints.
"""

from __future__ import annotations

from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "get_settings"]

_DATA_DIR = Path("data")
# Asymmetric algorithms only: a JWT signed with a shared secret (HS*) or with
# none at all is never accepted from the identity provider.
_OIDC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")

# A list read from the environment as "a, b c" (commas or spaces).
_WordList = Annotated[tuple[str, ...], NoDecode]


class Settings(BaseSettings):
    """Everything the API, the worker and the CLI can be told from outside."""

    # An empty variable means the default: Compose and Kubernetes pass every
    # setting through, set or not (docker-compose.yml: ``${NAME:-}``).
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", frozen=True, env_ignore_empty=True
    )

    database_url: str = Field(default=f"sqlite://{_DATA_DIR}/mailings.sqlite3")
    redis_url: str | None = None
    provider_url: str = "http://127.0.0.1:8001"
    provider_token: SecretStr | None = None
    # The most requests per second the send API may get from all workers
    # together; unset: no cap (a 429 still slows each worker down by itself).
    provider_max_rps: float | None = Field(default=None, gt=0, le=100_000, allow_inf_nan=False)
    api_token: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] = "console"
    # When set, every log line also goes, as JSON, to a file of this process
    # in this directory (rotated by size), and the console keeps only what is
    # not about one message (and errors): `make run` sets it to data/logs.
    log_dir: Path | None = None
    # The worker's own /healthz, /readyz and /metrics (tasks/worker_http.py);
    # port 0: not served.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=8002, ge=0, le=65535)

    # Every call to the database and to Redis is bounded (docs/sending.md,
    # "When the infrastructure fails"): seconds to open a connection (or wait
    # for one from the pool), for a statement as the client waits for it, and
    # as the server runs it or a transaction idles (PostgreSQL's statement_timeout
    # and idle_in_transaction_session_timeout; 0: none). Redis:
    # connect and each command. Migrations run unbounded.
    database_connect_timeout: float = Field(default=5.0, gt=0)
    database_command_timeout: float = Field(default=30.0, gt=0)
    database_statement_timeout: float = Field(default=25.0, ge=0)
    redis_timeout: float = Field(default=2.0, gt=0)
    # Liveness is progress: a worker whose dispatcher, sweeper or recorder has
    # not finished a round for loop_stall_unready seconds is not ready
    # (/readyz), and past loop_stall_exit it exits for its supervisor.
    loop_stall_unready: float = Field(default=30.0, gt=0)
    loop_stall_exit: float = Field(default=180.0, gt=0)
    # Seconds a stopping worker keeps trying to write the outcomes it holds
    # (the database may be down); Compose and Kubernetes give it this and more.
    stop_grace: float = Field(default=60.0, ge=0)
    # Seconds the database must have answered a worker before its sweep reaps
    # ended leases: every live worker writes the outcomes it held through
    # an outage first, so none of them is sent again.
    reap_grace: float = Field(default=15.0, ge=0)
    # Where the embedded defaults (SQLite database, SQLite Huey) keep their files.
    data_dir: Path = _DATA_DIR
    # Huey's queue name: separate names keep several deployments (or test
    # runs) apart on one Redis.
    queue_name: str = "mailings"
    # Sending engine knobs; the defaults suit the provider-sim on one machine.
    # Which HTTP stack carries requests to the send API. pyreqwest by default:
    # measured against the simulator (bench/bench_http_clients.py) it costs the
    # worker's process about a third of aiohttp's CPU a request (its I/O runs on
    # a Rust thread); httpx costs far more than aiohttp.
    provider_http: Literal["pyreqwest", "aiohttp", "httpx"] = "pyreqwest"
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
    # Every time decision follows the database's clock (models/clock_sync.py):
    # how often a process measures its offset from it, and the offset above
    # which it warns (and shows it on the worker's /readyz and /metrics).
    clock_sync_interval: float = Field(default=2.0, gt=0, le=60)
    clock_offset_bound: float = Field(default=1.0, gt=0)
    # The most clients one committed chunk of an audience build covers; a
    # chunk holds its mailing's row, so pause and cancel wait for it.
    audience_chunk_size: int = Field(default=20_000, ge=1, le=1_000_000)
    # API protection.
    # Limits on a GraphQL document, checked in this order before it is validated
    # (graphql_api/document_guard.py, docs/protection.md): characters, tokens,
    # then one walk for depth, aliases, fields once fragments are expanded, cost.
    # Tokens: the worst document of 1,000 costs about 30-60 ms here (bench/README.md).
    max_query_length: int = Field(default=100_000, ge=1_000)
    max_query_tokens: int = Field(default=1_000, ge=100)
    max_query_depth: int = Field(default=10, ge=1)
    max_query_aliases: int = Field(default=30, ge=1)
    max_query_fields: int = Field(default=1_000, ge=10)
    # Estimated memory of the parsed documents kept, in each API process.
    query_cache_bytes: int = Field(default=32 * 1024 * 1024, ge=0)
    # List items one request may ask for (graphql_api/query_cost.py): page
    # sizes multiplied through their nesting, every alias counted.
    max_query_nodes: int = Field(default=100_000, ge=1)
    # Automatic persisted queries: bytes of documents kept by hash, in each
    # API process (graphql_api/http/persisted_queries.py); 0 turns APQ off.
    persisted_query_cache_bytes: int = Field(default=4 * 1024 * 1024, ge=0)
    # Idempotency-Key on mutations (graphql_api/http/idempotency.py): how long
    # a key is remembered, and how long a repeat waits for the first request.
    idempotency_key_ttl: float = Field(default=24 * 3600, gt=0)
    idempotency_wait: float = Field(default=10.0, ge=0)
    # The largest legal request is an import of 10,000 clients with every
    # character escaped (\uXXXX): 10.4 MiB (tests/test_input_limits.py).
    max_body_bytes: int = Field(default=11 * 1024 * 1024, ge=1024)
    # Connections (docs/protection.md). Request headers: their whole size,
    # refused by the HTTP parser (h11) past it.
    max_header_bytes: int = Field(default=32 * 1024, ge=4096)
    max_header_count: int = Field(default=100, ge=10)
    # HTTP connections and WebSockets one API process serves at once; over
    # it, uvicorn answers 503.
    max_connections: int = Field(default=1000, ge=1)
    max_websockets: int = Field(default=500, ge=1)
    max_websockets_per_address: int = Field(default=50, ge=1)
    # Seconds a WebSocket has to send connection_init; a socket running no
    # operation this long is closed (0: never).
    ws_auth_timeout: float = Field(default=5.0, gt=0, le=600)
    ws_idle_timeout: float = Field(default=300.0, ge=0)
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    max_subscriptions_per_caller: int = Field(default=100, ge=1)
    # Requests per caller (a token, an OIDC subject, or an address when open),
    # in the `limits` library's notation, ";" between limits; "off" disables.
    # Generous: the admin page and the test suite (whose graphql-http audit
    # bursts a few hundred requests) never come near it; docs/protection.md.
    api_rate_limit: str = "1000/second;20000/minute"
    # Requests refused for their credentials (401), per client address.
    api_auth_failure_limit: str = "200/minute"
    # Browser origins allowed to call the API (CORS) and open its WebSocket;
    # "*" allows any. The API's own origin is always allowed on the WebSocket.
    allowed_origins: _WordList = ()
    # Off in production: the schema is public in schema.graphql anyway, but
    # an open IDE and introspection invite exploring a live system.
    graphiql: bool = True
    introspection: bool = True

    # OAuth2 / OpenID Connect: bearer JWTs from this issuer are accepted
    # besides API_TOKEN. Unset issuer: OIDC is off.
    oidc_issuer: str | None = None
    # The API's identifier at the provider; the token's "aud" must hold it.
    oidc_audience: str | None = None
    # Where the signing keys are; unset: the issuer's discovery document says.
    oidc_jwks_url: str | None = None
    # The public client a browser signs in with (authorization code + PKCE).
    oidc_client_id: str | None = None
    oidc_scopes: _WordList = ("openid", "profile", "email")
    # Claim holding the roles; a dotted path reaches nested ones
    # ("realm_access.roles"); a list or a space-separated string.
    oidc_roles_claim: str = "roles"
    oidc_viewer_role: str = "viewer"
    oidc_operator_role: str = "operator"
    oidc_algorithms: _WordList = ("RS256", "ES256")
    # Seconds the signing keys are kept; an unknown key id refetches them, at
    # most once per oidc_jwks_min_refresh seconds.
    oidc_jwks_cache_seconds: float = Field(default=300.0, gt=0)
    oidc_jwks_min_refresh: float = Field(default=10.0, ge=0)
    # Seconds of clock skew tolerated on exp, nbf and iat.
    oidc_leeway: float = Field(default=30.0, ge=0)

    # Signed export links (graphql_api.signed_links): the HMAC key, shared by
    # every API process; unset, each process makes its own, so its links work
    # on it alone. And how long a link stays good, in seconds.
    export_link_secret: SecretStr | None = None
    export_link_ttl: int = Field(default=300, ge=10, le=86_400)

    # The daily report email: sent only when SMTP_HOST and REPORT_RECIPIENTS are set.
    smtp_host: str | None = None
    # Unset: 25 without TLS, 587 with starttls, 465 with tls.
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: float = Field(default=30.0, gt=0)
    report_sender: str = "mailings@localhost"
    report_recipients: _WordList = ()
    # Yesterday's report goes out once this local time (HH:MM) has passed.
    report_time: time = time(8, 0)
    report_timezone: str = "UTC"
    # Where operators open the admin page (https://mailings.example.com); the
    # daily report links each mailing there. Unset: no links.
    public_url: str | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "redis_url",
        "log_dir",
        "provider_token",
        "provider_max_rps",
        "api_token",
        "oidc_issuer",
        "oidc_audience",
        "oidc_jwks_url",
        "oidc_client_id",
        "export_link_secret",
        "public_url",
        "smtp_host",
        "smtp_port",
        "smtp_user",
        "smtp_password",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "allowed_origins", "oidc_scopes", "oidc_algorithms", "report_recipients", mode="before"
    )
    @classmethod
    def _words(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(value.replace(",", " ").split())
        return value

    @field_validator("api_rate_limit", "api_auth_failure_limit")
    @classmethod
    def _rate_limits(cls, value: str) -> str:
        from limits import parse_many

        if value.strip().lower() != "off":
            parse_many(value)  # a ValueError naming the string when it does not parse
        return value

    @field_validator("report_recipients")
    @classmethod
    def _email_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        wrong = [address for address in value if "@" not in address.strip("@")]
        if wrong:
            raise ValueError(f"not email addresses: {wrong}")
        return value

    @field_validator("report_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value

    @field_validator("public_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")) or " " in value:
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value.rstrip("/")

    @field_validator("oidc_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        refused = [name for name in value if name not in _OIDC_ALGORITHMS]
        if refused or not value:
            raise ValueError(f"choose among {', '.join(_OIDC_ALGORITHMS)}; not {refused}")
        return value

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if self.oidc_issuer is not None and self.oidc_audience is None:
            raise ValueError("OIDC_AUDIENCE is required with OIDC_ISSUER")
        return self

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_issuer is not None

    @property
    def report_enabled(self) -> bool:
        """Whether the daily report can be sent: an SMTP server and someone to send it to."""
        return self.smtp_host is not None and bool(self.report_recipients)

    @property
    def smtp_port_or_default(self) -> int:
        if self.smtp_port is not None:
            return self.smtp_port
        return {"none": 25, "starttls": 587, "tls": 465}[self.smtp_tls]

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
