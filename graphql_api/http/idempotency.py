"""``Idempotency-Key`` on mutations (the IETF httpapi draft's header).

A POST whose operation is a mutation and that carries the header runs once
per (principal, key): the first request claims the key in the database
(``models.queries.idempotency``; one statement, so of two requests at once
exactly one runs), runs, and stores its response; a repeat with the same
document, variables and operation name answers that response without
running (with ``Idempotent-Replayed: true``). The same key with another
request is a 422 (``IDEMPOTENCY_KEY_REUSED``); a repeat while the first still
runs waits for it up to ``IDEMPOTENCY_WAIT`` seconds, then answers a 409
(``IDEMPOTENCY_KEY_IN_PROGRESS``). Keys live ``IDEMPOTENCY_KEY_TTL`` seconds,
in the database: every API process shares them, across restarts.

A response that says the request did not run (401, 403, 429, 5xx: refused,
limited, or failed unexpectedly and rolled back) is not kept: a repeat runs.
A key whose first request was left running for ``ABANDONED`` (its process
died) is taken over by the next repeat. Queries, and a request without the
document (an automatic persisted query's hash alone), run as usual.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import orjson
import structlog
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.requests import Request
from starlette.responses import Response

from graphql_api.error_codes import ErrorCode
from graphql_api.principal import principal_of
from models import clock
from models.db import connection
from models.queries.idempotency import claim_key, complete_key, read_key, release_key
from settings import get_settings

__all__ = ["ABANDONED", "HEADER", "IdempotentMutations"]

HEADER = "Idempotency-Key"
# Far longer than any mutation runs (a 10,000-client import takes seconds).
ABANDONED = timedelta(minutes=5)
_MAX_KEY_LENGTH = 255
# Statuses that mean the operation did not run, or rolled back.
_NOT_RUN = frozenset({401, 403, 429})

log = structlog.get_logger(__name__)

Refuse = Callable[[int, str, ErrorCode], Response]


class IdempotentMutations:
    """Answers keyed mutations once; ``answer`` wraps the view's own answering."""

    def __init__(self, ttl: float, wait: float) -> None:
        self.ttl = timedelta(seconds=ttl)
        self.wait = wait

    async def answer(
        self,
        request: Request,
        media_type: str,
        run: Callable[[], Awaitable[Response]],
        refuse: Refuse,
    ) -> Response:
        key = _key(request.headers.get(HEADER))
        if key is None:
            return refuse(
                400,
                f"The {HEADER} header must be 1 to {_MAX_KEY_LENGTH} printable ASCII characters",
                ErrorCode.BAD_REQUEST,
            )
        fingerprint = await _mutation_fingerprint(request)
        if fingerprint is None:
            return await run()
        principal = principal_of(request.scope).actor
        deadline = time.monotonic() + self.wait
        pause = 0.02
        while True:
            now = clock.now()
            key_id = await claim_key(
                connection(),
                principal=principal,
                key=key,
                fingerprint=fingerprint,
                now=now,
                expires_at=now + self.ttl,
                abandoned_before=now - ABANDONED,
            )
            if key_id is not None:
                return await self._first(key_id, run)
            stored = await read_key(connection(), principal, key)
            if stored is None:
                continue  # let go meanwhile: claim it again
            if stored.fingerprint != fingerprint:
                log.info("idempotency key reused with another request")
                return refuse(
                    422,
                    f"This {HEADER} was used with another request: send a new key for a new "
                    "request",
                    ErrorCode.IDEMPOTENCY_KEY_REUSED,
                )
            if stored.status_code is not None and stored.response is not None:
                response = Response(
                    stored.response,
                    status_code=stored.status_code,
                    media_type=f"{media_type}; charset=utf-8",
                )
                response.headers["Idempotent-Replayed"] = "true"
                return response
            if time.monotonic() >= deadline:
                return refuse(
                    409,
                    f"A request with this {HEADER} is still running: retry later",
                    ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS,
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    async def _first(self, key_id: int, run: Callable[[], Awaitable[Response]]) -> Response:
        try:
            response = await run()
        except BaseException:
            await release_key(connection(), key_id)
            raise
        if response.status_code in _NOT_RUN or response.status_code >= 500:
            await release_key(connection(), key_id)
        else:
            body = bytes(response.body).decode()
            await complete_key(connection(), key_id, response.status_code, body)
        return response


def _key(value: str | None) -> str | None:
    """The key, bare or as the draft's structured-field string (``"..."``)."""
    if value is None:
        return None
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not 0 < len(value) <= _MAX_KEY_LENGTH or not value.isascii() or not value.isprintable():
        return None
    return value


async def _mutation_fingerprint(request: Request) -> str | None:
    """A hash of the request, if it is a mutation with its document; ``None`` otherwise."""
    try:
        data = orjson.loads(await request.body())
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("query"), str):
        return None
    operation_name = data.get("operationName")
    settings = get_settings()
    if len(data["query"]) > settings.max_query_length:
        return None  # the view refuses it, before any parse
    try:
        # Bounded as the view's own parse is (graphql_api.document_guard).
        document = parse(
            data["query"],
            max_tokens=settings.max_query_tokens,
        )
    except GraphQLError:
        return None
    operation = get_operation_ast(
        document, operation_name if isinstance(operation_name, str) else None
    )
    if operation is None or operation.operation is not OperationType.MUTATION:
        return None
    canonical = orjson.dumps(
        {
            "query": data["query"],
            "variables": data.get("variables"),
            "operationName": operation_name,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()
