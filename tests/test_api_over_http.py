"""GraphQL over HTTP as its spec says: media types, status codes, a JSON body for every refusal.

The ``graphql-http`` package's server audit runs against real servers (Node,
pinned in ``tests/graphql_http/``); the cases after it, in process, are what
the audit does not cover, or covers only as a warning.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DATA_DIR, GraphQLClient, serve_api, stop_process
from tests.support.inprocess import http_client, serving, without_lifespan
from tests.support.node import NODE, NPM, npm_install

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
TOKEN = "over-http-token-31c7"
AUDIT_PACKAGE = Path(__file__).parent / "graphql_http"

requires_node = pytest.mark.skipif(
    NODE is None or NPM is None, reason="Node.js (node and npm) is not installed; CI has it"
)


@pytest.fixture(scope="module")
def token_api(database: str) -> Iterator[str]:
    """A server with API_TOKEN set, for the audit."""
    url, proc = serve_api({"API_TOKEN": TOKEN}, log_name="over-http")
    yield url
    stop_process(proc)


@pytest.fixture
def http(gql: GraphQLClient) -> httpx.AsyncClient:
    return gql.http


def refusal_of(response: httpx.Response, status: int, says: str) -> dict[str, Any]:
    """The JSON body of a refusal, checked: only ``errors``, the first saying ``says``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] in (JSON, GRAPHQL_RESPONSE)
    body: dict[str, Any] = response.json()
    assert list(body) == ["errors"], body
    assert says in body["errors"][0]["message"], body
    return body


# --- the graphql-http audit ------------------------------------------------------------------


@pytest.fixture(scope="module")
def audit_tool() -> Path:
    """``graphql-http`` at its pinned version, installed by ``npm ci`` (offline once cached)."""
    files = ("package.json", "package-lock.json", "audit.mjs")
    return npm_install(AUDIT_PACKAGE, files, DATA_DIR / "graphql-http-audit")


def run_audit(tool: Path, url: str, authorization: str | None = None) -> list[dict[str, Any]]:
    assert NODE is not None
    env = {"PATH": str(Path(NODE).parent)}
    if authorization is not None:
        env["AUDIT_AUTHORIZATION"] = authorization
    finished = subprocess.run(
        [NODE, "audit.mjs", f"{url}/graphql"],
        cwd=tool,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    results: list[dict[str, Any]] = json.loads(finished.stdout)
    return results


@requires_node
def test_graphql_http_audit_passes_without_a_warning(audit_tool: Path, served_api: str) -> None:
    results = run_audit(audit_tool, served_api)
    assert len(results) >= 60
    assert [r for r in results if r["status"] != "ok"] == []


@requires_node
def test_graphql_http_audit_passes_behind_a_token(audit_tool: Path, token_api: str) -> None:
    results = run_audit(audit_tool, token_api, f"Bearer {TOKEN}")
    assert [r for r in results if r["status"] != "ok"] == []
    # Without it every request is refused: the token is what made them pass.
    refused = {r["id"]: r["status"] for r in run_audit(audit_tool, token_api)}
    assert refused["2C94"] != "ok"  # MUST accept POST requests


# --- media types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "answered"),
    [
        (None, JSON),
        ("*/*", JSON),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),
        ("application/*", JSON),
        (JSON, JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, {JSON};q=0.9", GRAPHQL_RESPONSE),  # graphql-http, Apollo, urql
        (f"{JSON}, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE};q=0.5", JSON),
        (f"{GRAPHQL_RESPONSE};q=0, */*", JSON),
        (f"{GRAPHQL_RESPONSE}; charset=utf-8", GRAPHQL_RESPONSE),
    ],
)
async def test_the_answer_is_in_the_type_the_client_accepts(
    http: httpx.AsyncClient, accept: str | None, answered: str
) -> None:
    headers = {} if accept is None else {"Accept": accept}
    for response in (
        await http.post("/graphql", json={"query": "{ __typename }"}, headers=headers),
        await http.get("/graphql", params={"query": "{ __typename }"}, headers=headers),
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == f"{answered}; charset=utf-8"
        assert response.headers["vary"] == "Accept"
        assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("accept", ["text/html", "application/xml", f"{JSON};q=0", "nonsense"])
async def test_an_accept_allowing_neither_type_is_406(http: httpx.AsyncClient, accept: str) -> None:
    response = await http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Accept": accept}
    )
    refusal_of(response, 406, GRAPHQL_RESPONSE)


# --- request errors and execution errors -----------------------------------------------------

REQUEST_ERRORS = {
    "parse": ({"query": "{ clients { "}, "Syntax Error"),
    "validation": ({"query": "{ nope }"}, "Cannot query field 'nope'"),
    "limit": ({"query": "{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }"}, "aliases"),
    "coercion": (
        {
            "query": "query($first: Int) { clients(first: $first) { totalCount } }",
            "variables": {"first": "ten"},
        },
        "Int cannot represent",
    ),
    "missing variable": ({"query": "query($id: ID!) { mailing(id: $id) { id } }"}, "$id"),
}


@pytest.mark.parametrize("case", list(REQUEST_ERRORS))
async def test_request_errors_are_4xx_without_data_for_the_new_type(
    http: httpx.AsyncClient, case: str
) -> None:
    body, says = REQUEST_ERRORS[case]
    new = await http.post("/graphql", json=body, headers={"Accept": GRAPHQL_RESPONSE})
    assert new.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    refusal_of(new, 400, says)
    # Legacy clients get the same errors with a 200 (and no data: nothing ran).
    legacy = await http.post("/graphql", json=body, headers={"Accept": JSON})
    assert legacy.headers["content-type"].startswith(JSON)
    refusal_of(legacy, 200, says)
    over_get = await http.get(
        "/graphql",
        params={k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()},
        headers={"Accept": GRAPHQL_RESPONSE},
    )
    refusal_of(over_get, 400, says)


async def test_errors_of_execution_are_200_with_data(http: httpx.AsyncClient) -> None:
    query = "{ clients(first: -1) { totalCount } }"
    for accept in (GRAPHQL_RESPONSE, JSON):
        response = await http.post("/graphql", json={"query": query}, headers={"Accept": accept})
        assert response.status_code == 200
        body = response.json()
        assert "data" in body  # null: the failing field is non-null, and so is Query's
        assert body["errors"][0]["path"] == ["clients"]


# --- operations over the wrong transport -----------------------------------------------------

CREATE = 'mutation { createClient(input: {phone: "79001234567"}) { __typename } }'
COUNT = "{ clients { totalCount } }"


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
async def test_a_mutation_over_get_is_405_and_writes_nothing(
    http: httpx.AsyncClient, accept: str
) -> None:
    response = await http.get("/graphql", params={"query": CREATE}, headers={"Accept": accept})
    refusal_of(response, 405, "Mutations need POST")
    assert response.headers["allow"] == "POST"
    count = await http.post("/graphql", json={"query": COUNT})
    assert count.json() == {"data": {"clients": {"totalCount": 0}}}


async def test_subscriptions_over_http_point_to_the_websocket(http: httpx.AsyncClient) -> None:
    query = 'subscription { mailingProgress(id: "1") { status } }'
    for response in (
        await http.post("/graphql", json={"query": query}),
        await http.get("/graphql", params={"query": query}),
        await http.post("/graphql", json={"query": query}, headers={"Accept": GRAPHQL_RESPONSE}),
    ):
        refusal_of(response, 400, "graphql-transport-ws")


# --- malformed requests ----------------------------------------------------------------------

MALFORMED: list[tuple[str, bytes, str | None, int, str]] = [
    ("null", b"null", JSON, 400, "not null"),
    ("a number", b"123", JSON, 400, "not a number"),
    ("a string", b'"x"', JSON, 400, "not a string"),
    ("a boolean", b"true", JSON, 400, "not a boolean"),
    ("an array", b'[{"query": "{ __typename }"}]', JSON, 400, "not an array"),
    ("empty", b"", JSON, 400, "empty"),
    ("blank", b"  \n", JSON, 400, "empty"),
    ("truncated", b'{"query": ', JSON, 400, "not valid JSON"),
    ("not UTF-8", b'{"query": "\xff"}', JSON, 400, "not valid JSON"),
    ("text/plain", b'{"query": "{ __typename }"}', "text/plain", 415, "not text/plain"),
    ("no content type", b'{"query": "{ __typename }"}', None, 415, "none was given"),
    ("a form", b"query=%7B__typename%7D", "application/x-www-form-urlencoded", 415, "not app"),
    ("a number query", b'{"query": 1}', JSON, 400, "query parameter must be a string"),
    ("no query", b'{"variables": {}}', JSON, 400, "No GraphQL query"),
    ("string variables", b'{"query": "{ __typename }", "variables": "{}"}', JSON, 400, "JSON obj"),
    ("an array of extensions", b'{"query": "{ __typename }", "extensions": []}', JSON, 400, "obj"),
    ("a number name", b'{"query": "{ __typename }", "operationName": 0}', JSON, 400, "string"),
    ("an unknown name", b'{"query": "{ __typename }", "operationName": "X"}', JSON, 400, '"X"'),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
async def test_malformed_posts_are_refused_in_json(
    http: httpx.AsyncClient, body: bytes, content_type: str | None, status: int, says: str
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    for accept in (GRAPHQL_RESPONSE, JSON):
        response = await http.post("/graphql", content=body, headers={**headers, "Accept": accept})
        refusal_of(response, status, says)
        assert response.headers["content-type"].startswith(accept)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({}, "No GraphQL query"),
        ({"query": "{ __typename }", "variables": "{nope"}, "variables parameter is not valid"),
        ({"query": "{ __typename }", "variables": "[]"}, "variables parameter must be a JSON"),
        ({"query": "{ __typename }", "extensions": "1"}, "extensions parameter must be a JSON"),
    ],
)
async def test_malformed_gets_are_refused_in_json(
    http: httpx.AsyncClient, params: dict[str, str], says: str
) -> None:
    refusal_of(await http.get("/graphql", params=params), 400, says)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_other_methods_are_405_with_allow(http: httpx.AsyncClient, method: str) -> None:
    response = await http.request(method, "/graphql", json={"query": "{ __typename }"})
    refusal_of(response, 405, method)
    assert response.headers["allow"] == "GET, POST"


async def test_head_is_405_with_allow(http: httpx.AsyncClient) -> None:
    head = await http.head("/graphql", params={"query": "{ __typename }"})
    assert head.status_code == 405
    assert head.headers["allow"] == "GET, POST"


async def test_refusals_outside_graphql_are_json_too(http: httpx.AsyncClient) -> None:
    refusal_of(await http.get("/no/such/page"), 404, "Not Found")
    refusal_of(await http.get("/admin/js/nothing.js"), 404, "Not Found")
    not_allowed = await http.post("/", content=b"x")
    refusal_of(not_allowed, 405, "Method Not Allowed")
    assert "GET" in not_allowed.headers["allow"]


async def test_refusals_behind_a_token_are_json(database: str) -> None:
    async with serving(api_token=TOKEN) as app, http_client(app) as client:
        missing = await client.post("/graphql", json={"query": "{ __typename }"})
        refusal_of(missing, 401, "API token")
        authorized = {"Authorization": f"Bearer {TOKEN}"}
        refusal_of(await client.post("/graphql", content=b"null", headers=authorized), 415, "none")
        typed = {**authorized, "Content-Type": JSON, "Accept": GRAPHQL_RESPONSE}
        refusal_of(await client.post("/graphql", content=b"[]", headers=typed), 400, "an array")
        refusal_of(await client.get("/graphql", headers=authorized), 400, "No GraphQL query")


async def test_an_unexpected_failure_is_a_json_500() -> None:
    from starlette.routing import Route

    async def broken(_: object) -> None:
        raise RuntimeError("a bug")

    async with without_lifespan() as app:
        app.router.routes.append(Route("/broken", broken))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            response = await client.get("/broken")
    refusal_of(response, 500, "Unexpected error")
