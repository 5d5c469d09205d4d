"""``/healthz`` (the process is alive) and ``/readyz`` (its dependencies answer); no auth."""

from __future__ import annotations

import asyncio

import structlog
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from models.db import ping
from settings import get_settings

__all__ = ["healthz", "readyz"]

log = structlog.get_logger(__name__)

_TIMEOUT = 2.0


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _database() -> None:
    await ping()


async def _redis(url: str) -> None:
    redis = Redis.from_url(url, socket_connect_timeout=_TIMEOUT, socket_timeout=_TIMEOUT)
    try:
        await redis.ping()
    finally:
        await redis.aclose()


async def readyz(_: Request) -> Response:
    checks = {"database": _database()}
    url = get_settings().redis_url
    if url:
        checks["redis"] = _redis(url)
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, _TIMEOUT)
            results[name] = "ok"
        except Exception as exc:
            # The reason stays in the log: the body is public.
            log.warning("not ready", dependency=name, error=type(exc).__name__)
            results[name] = "unavailable"
    ready = all(value == "ok" for value in results.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", **results}, status_code=200 if ready else 503
    )
