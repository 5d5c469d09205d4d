"""What a public deployment switches on: allowed origins, no IDE, no introspection, a body cap.

In process, but for WebSocket handshakes and the server's own log, which need a server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import serve_api, stop_process
from tests.support.inprocess import http_client, serving

TOKEN = "hardening-token-8d1f"
PROVIDER_TOKEN = "provider-jwt-secret-77aa"
ADMIN = "https://admin.example.com"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# A public deployment's settings, as a server reads them.
PUBLIC = {
    "API_TOKEN": TOKEN,
    "PROVIDER_TOKEN": PROVIDER_TOKEN,
    "ALLOWED_ORIGINS": f"{ADMIN}, https://ops.example.com",
    "GRAPHIQL": "false",
    "INTROSPECTION": "false",
    "MAX_BODY_BYTES": "8192",
}


@pytest.fixture(scope="module")
async def public_app(database: str) -> AsyncIterator[Starlette]:
    async with serving(**{name.lower(): value for name, value in PUBLIC.items()}) as app:
        yield app


@pytest.fixture(scope="module")
def public_api(database: str) -> Iterator[tuple[str, Path]]:
    """The same deployment as a server: its URL and its log."""
    url, proc = serve_api(PUBLIC, log_name="public")
    yield url, proc.log_path  # type: ignore[attr-defined]
    stop_process(proc)


async def test_cors_for_allowed_origins_only(public_app: Starlette) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with http_client(public_app) as client:
        allowed = await client.options("/graphql", headers={"Origin": ADMIN, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ADMIN
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        foreign = await client.options(
            "/graphql", headers={"Origin": "https://evil.example", **preflight}
        )
        assert foreign.status_code == 400
        assert "access-control-allow-origin" not in foreign.headers
        assert foreign.json() == {
            "errors": [{"message": "Disallowed CORS origin", "extensions": {"code": "BAD_REQUEST"}}]
        }
        post = await client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Origin": ADMIN, **AUTH}
        )
        assert post.headers["access-control-allow-origin"] == ADMIN
        assert post.json() == {"data": {"__typename": "Query"}}


async def _handshake(url: str, origin: str | None) -> int:
    """The HTTP status of a WebSocket handshake (101 when accepted)."""
    try:
        async with connect(
            url.replace("http://", "ws://") + "/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            origin=origin,  # type: ignore[arg-type]
        ):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_websocket_origins(public_api: tuple[str, Path], served_api: str) -> None:
    url, _ = public_api
    assert await _handshake(url, ADMIN) == 101
    assert await _handshake(url, "https://ops.example.com") == 101
    assert await _handshake(url, url) == 101  # the API's own pages
    assert await _handshake(url, None) == 101  # not a browser: credentials decide
    assert await _handshake(url, "https://evil.example") == 403
    assert await _handshake(url, "null") == 403
    # With no ALLOWED_ORIGINS, only the API's own origin may open one from a browser.
    assert await _handshake(served_api, served_api) == 101
    assert await _handshake(served_api, ADMIN) == 403


async def test_no_ide_and_no_introspection(public_app: Starlette) -> None:
    async with http_client(public_app, headers=AUTH) as client:
        ide = await client.get("/graphql", headers={"Accept": BROWSER_ACCEPT})
        assert "graphiql" not in ide.text.lower()
        assert ide.status_code == 400  # a GET without a query, as for any client
        assert (await client.get("/graphiql/page.js")).status_code == 404
        schema = await client.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        message = schema.json()["errors"][0]["message"]
        assert "introspection" in message.lower()
        one_type = await client.post(
            "/graphql", json={"query": '{ __type(name: "Client") { name } }'}
        )
        assert "introspection" in one_type.json()["errors"][0]["message"].lower()
        typename = await client.post("/graphql", json={"query": "{ clients { __typename } }"})
        assert typename.json() == {"data": {"clients": {"__typename": "ClientConnection"}}}


async def test_body_limit_from_settings(public_app: Starlette) -> None:
    async with http_client(public_app, headers=AUTH) as client:
        padded = {"query": "{ __typename }", "variables": {"pad": "x" * 9000}}
        response = await client.post("/graphql", json=padded)
        assert response.status_code == 413
        assert response.json()["errors"][0]["message"] == "The request body exceeds 8192 bytes"
        small = await client.post("/graphql", json={"query": "{ __typename }"})
        assert small.status_code == 200


async def test_secrets_stay_out_of_logs_and_answers(public_api: tuple[str, Path]) -> None:
    url, log_path = public_api
    async with httpx.AsyncClient(base_url=url) as client:
        answers = [
            await client.post(
                "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": auth}
            )
            for auth in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN, f"Basic {TOKEN}")
        ]
        answers.append(await client.post("/graphql", json={"query": "{ nope }"}, headers=AUTH))
        answers.append(await client.get("/healthz"))
    for answer in answers:
        assert TOKEN[:-1] not in answer.text
        assert PROVIDER_TOKEN not in answer.text
    log = log_path.read_text()
    assert "request refused: credentials not accepted" in log
    assert TOKEN[:-1] not in log
    assert PROVIDER_TOKEN not in log


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_tracebacks_carry_no_local_variables(log_format: str) -> None:
    import io
    import logging

    import structlog

    from logs import configure_logging
    from settings import Settings

    def fail(password: str) -> None:
        raise RuntimeError("boom")

    secret = "-".join(("hunter2", "local", "secret"))  # not in any source line shown
    stream = io.StringIO()
    root_handlers = logging.getLogger().handlers[:]
    try:
        configure_logging(Settings(log_format=log_format), stream=stream)
        try:
            fail(secret)
        except RuntimeError:
            structlog.get_logger("test").exception("it failed")
            logging.getLogger("stdlib").exception("it failed too")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers[:] = root_handlers
    output = stream.getvalue()
    assert output.count("RuntimeError: boom") == 2
    assert secret not in output
