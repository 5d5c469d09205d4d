"""Protection of the API: API_TOKEN, query limits, masked errors and malformed requests.

In process, but for what needs a server: WebSockets, and a server on a database
with no tables whose log is read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed

from graphql_api.protection import query_limits
from settings import Settings
from tests.conftest import DATA_DIR, GraphQLClient, serve_api, stop_process
from tests.support.api import Subscription
from tests.support.inprocess import http_client, serving

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
async def token_app(database: str) -> AsyncIterator[Starlette]:
    """The application with API_TOKEN set and tight query limits."""
    async with serving(
        api_token=TOKEN, max_query_depth=3, max_query_aliases=2, max_query_tokens=100
    ) as app:
        yield app


@pytest.fixture(scope="module")
def token_server(database: str) -> Iterator[str]:
    """A server with API_TOKEN set, for its WebSocket."""
    url, proc = serve_api({"API_TOKEN": TOKEN}, log_name="api-token")
    yield url
    stop_process(proc)


@pytest.fixture(scope="module")
def broken_api(database: str) -> Iterator[tuple[str, Path]]:
    """A server whose database has no tables: every query fails unexpectedly."""
    env = {"DATABASE_URL": f"sqlite://{DATA_DIR}/never-migrated.sqlite3"}
    url, proc = serve_api(env, log_name="broken")
    yield url, proc.log_path  # type: ignore[attr-defined]
    stop_process(proc)


@pytest.fixture
def http(gql: GraphQLClient) -> httpx.AsyncClient:
    return gql.http


async def post(app: Starlette, query: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with http_client(app) as client:
        return await client.post("/graphql", json={"query": query}, headers=headers or {})


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x"],
)
async def test_requests_without_the_token_are_refused(
    token_app: Starlette, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await post(token_app, "{ __typename }", headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "API token" in response.json()["errors"][0]["message"]


async def test_requests_with_the_token_are_served(token_app: Starlette) -> None:
    for scheme in ("Bearer", "bearer"):
        response = await post(token_app, "{ __typename }", {"Authorization": f"{scheme} {TOKEN}"})
        assert response.status_code == 200
        assert response.json() == {"data": {"__typename": "Query"}}
    async with http_client(token_app) as client:
        get = await client.get(
            "/graphql",
            params={"query": "{ __typename }"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert get.json() == {"data": {"__typename": "Query"}}
        # GraphiQL's page holds no data: it loads without the token, then asks for it.
        ide = await client.get("/graphql", headers={"Accept": "text/html"})
        assert ide.status_code == 200
        assert "GraphiQL" in ide.text


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}", TOKEN])
async def test_websocket_with_the_token(token_server: str, authorization: str) -> None:
    subscription = await Subscription.connect(token_server, {"authorization": authorization})
    try:
        assert await subscription.receive() == {"type": "connection_ack"}
    finally:
        await subscription.close()


@pytest.mark.parametrize(
    "params", [{}, {"authorization": "Bearer nope"}, {"authorization": 42}, {"token": TOKEN}]
)
async def test_websocket_without_the_token_is_refused(
    token_server: str, params: dict[str, object]
) -> None:
    subscription = await Subscription.connect(token_server, params)
    with pytest.raises(ConnectionClosed) as closed:
        await subscription.receive()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_limits_come_from_settings(token_app: Starlette) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    deep = "{ statistics { mailings { edges { node { id } } } } }"
    errors = (await post(token_app, deep, headers)).json()["errors"]
    assert errors[0]["message"] == "This request nests fields 4 deep, more than the 3 allowed"
    assert errors[0]["extensions"] == {"code": "QUERY_TOO_DEEP", "depth": 4, "limit": 3}
    aliases = "{ a: __typename b: __typename c: __typename }"
    errors = (await post(token_app, aliases, headers)).json()["errors"]
    assert errors[0]["extensions"] == {"code": "TOO_MANY_ALIASES", "aliases": 3, "limit": 2}
    tokens = "{ " + "__typename " * 120 + "}"
    errors = (await post(token_app, tokens, headers)).json()["errors"]
    assert errors[0]["message"] == "This document has more than the 100 tokens allowed"
    assert errors[0]["extensions"] == {"code": "QUERY_TOO_LARGE", "limit": 100}


async def test_default_limits(gql: GraphQLClient) -> None:
    deepest = (
        "{ statistics { mailings { edges { node { mailing"
        " { messages { edges { node { client { id } } } } } } } } } }"
    )
    assert (await gql.post(deepest)).json() == {"data": {"statistics": {"mailings": {"edges": []}}}}
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }"
    errors = (await gql.post(aliases)).json()["errors"]
    assert errors[0]["message"] == (
        "This request has 31 aliases once its fragments are expanded, more than the 30 allowed"
    )
    tokens = "{ " + "__typename " * 1000 + "}"
    errors = (await gql.post(tokens)).json()["errors"]
    assert errors[0]["extensions"] == {"code": "QUERY_TOO_LARGE", "limit": 1000}
    limits = query_limits(Settings())
    assert (limits.max_length, limits.max_tokens, limits.max_fields) == (100_000, 1000, 1000)


async def test_unexpected_errors_are_masked_and_logged(broken_api: tuple[str, Path]) -> None:
    url, log_path = broken_api
    for query in (
        "{ clients { totalCount } }",
        'mutation { createClient(input: {phone: "79001234567"}) { __typename } }',
    ):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            response = await client.post("/graphql", json={"query": query})
        assert response.status_code == 200
        body = response.json()
        assert body["errors"][0]["message"] == "Unexpected error; it has been logged."
        assert "no such table" not in response.text
        assert "Traceback" not in response.text
    logged = [
        json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")
    ]
    unexpected = [r for r in logged if r.get("event") == "unexpected error in a GraphQL operation"]
    assert len(unexpected) == 2
    assert all(r["level"] == "error" for r in unexpected)
    assert all(
        "Traceback" in r["exception"] and "no such table" in r["exception"] for r in unexpected
    )


async def test_malformed_requests_are_4xx(http: httpx.AsyncClient) -> None:
    """The common cases; tests/test_api_over_http.py has them all."""
    bad_json = await http.post(
        "/graphql", content=b'{"query": ', headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400
    wrong_type = await http.post(
        "/graphql", content=b"{ __typename }", headers={"Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    not_an_object = await http.post("/graphql", json=["x"])
    assert not_an_object.status_code == 400
    no_query = await http.post("/graphql", json={"variables": {}})
    assert no_query.status_code == 400
    put = await http.put("/graphql", json={"query": "{ __typename }"})
    assert put.status_code == 405
    mutation_via_get = await http.get(
        "/graphql", params={"query": 'mutation { deleteClient(id: "1") { __typename } }'}
    )
    assert mutation_via_get.status_code == 405
    assert mutation_via_get.headers["allow"] == "POST"
    for response in (bad_json, wrong_type, not_an_object, no_query, put, mutation_via_get):
        assert "Traceback" not in response.text
        assert response.json()["errors"][0]["message"]


async def test_request_errors_are_shown(http: httpx.AsyncClient) -> None:
    syntax = (await http.post("/graphql", json={"query": "{ clients { "})).json()
    assert syntax["errors"][0]["message"].startswith("Syntax Error")
    unknown = (await http.post("/graphql", json={"query": "{ nope }"})).json()
    assert "Cannot query field 'nope'" in unknown["errors"][0]["message"]
    query = "query($first: Int) { clients(first: $first) { totalCount } }"
    bad_variable = (
        await http.post("/graphql", json={"query": query, "variables": {"first": "ten"}})
    ).json()
    assert "Int cannot represent" in bad_variable["errors"][0]["message"]
    not_a_string = (
        await http.post(
            "/graphql",
            json={
                "query": "mutation($at: DateTime!) { updateMailing(id: 1, input: {startAt: $at})"
                " { __typename } }",
                "variables": {"at": 5},
            },
        )
    ).json()
    assert "DateTime must be a string" in not_a_string["errors"][0]["message"]


async def test_get_graphiql_and_health(http: httpx.AsyncClient) -> None:
    get = await http.get("/graphql", params={"query": "{ __typename }"})
    assert get.json() == {"data": {"__typename": "Query"}}
    ide = await http.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 200
    assert "graphiql" in ide.text.lower()
    health = await http.get("/healthz")
    assert health.json() == {"status": "ok"}


async def test_only_graphql_transport_ws(served_api: str) -> None:
    from websockets.asyncio.client import connect

    async with connect(
        served_api.replace("http", "ws") + "/graphql",
        subprotocols=["graphql-ws"],  # type: ignore[list-item]
    ) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4406


async def test_huge_bodies_are_refused(http: httpx.AsyncClient) -> None:
    huge = b'{"query": "{ __typename }", "variables": {"x": "' + b"x" * (17 * 1024 * 1024) + b'"}}'
    response = await http.post(
        "/graphql", content=huge, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "exceeds 11 MiB" in response.json()["errors"][0]["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(17):
            yield b" " * (1024 * 1024)

    chunked = await http.post(
        "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413


async def test_subscriptions_only_as_streams(http: httpx.AsyncClient) -> None:
    """Asked for as plain JSON; the streams are tests/test_http_subscriptions.py's."""
    query = 'subscription { mailingProgress(id: "1") { status } }'
    response = await http.post("/graphql", json={"query": query})
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": "A subscription streams: open /graphql as a WebSocket "
                "(graphql-transport-ws), or POST with Accept: "
                'multipart/mixed;subscriptionSpec="1.0" (Apollo) or Accept: text/event-stream '
                "(graphql-sse)",
                "extensions": {"code": "BAD_REQUEST"},
            }
        ]
    }
