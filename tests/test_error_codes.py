"""Every refusal the API can give names its ``extensions.code``, from the one documented list.

Each case is asked as a client would ask it, and its answer's every error is
checked: a code from ``graphql_api.error_codes``, the one this refusal has.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from graphql_api.error_codes import MEANINGS, ErrorCode
from graphql_api.ids import Kind, global_id
from tests.conftest import DATA_DIR, GraphQLClient, serve_api, stop_process
from tests.support.api import Subscription, utcnow
from tests.support.factories import make_client, make_mailing
from tests.support.inprocess import http_client, serving
from tests.support.oidc import AUDIENCE, FakeIdentityProvider, ec_key, public_jwk

TOKEN = "codes-token"
JSON = {"Content-Type": "application/json"}
STRICT = {"Accept": "application/graphql-response+json"}


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeIdentityProvider]:
    provider = FakeIdentityProvider()
    provider.keys["ec"] = ec_key()
    provider.published.append(public_jwk(provider.keys["ec"], "ec"))
    yield provider
    provider.close()


@pytest.fixture(scope="module")
async def app(database: str, idp: FakeIdentityProvider) -> AsyncIterator[Starlette]:
    """Credentials required (API_TOKEN or OIDC), tight limits, persisted queries on."""
    async with serving(
        api_token=TOKEN,
        oidc_issuer=idp.issuer,
        oidc_audience=AUDIENCE,
        max_query_depth=4,
        max_query_aliases=2,
        max_query_tokens=100,
        max_query_nodes=999,
        max_body_bytes=10_000,
        persisted_query_cache_bytes=100_000,
    ) as application:
        yield application


@pytest.fixture
async def http(app: Starlette, db: str) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def codes(response: httpx.Response) -> list[str]:
    """The code of each error of ``response``; fails on an error without one."""
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert errors, response.text
    found = [error.get("extensions", {}).get("code") for error in errors]
    assert all(code in ErrorCode.__members__ for code in found), (found, response.text)
    return found  # type: ignore[return-value]


def refused(response: httpx.Response, status: int, code: ErrorCode) -> None:
    assert response.status_code == status, response.text
    assert set(codes(response)) == {code}, response.text


def test_every_code_is_documented() -> None:
    assert set(MEANINGS) == set(ErrorCode)
    reference = Path(__file__).parent.parent.joinpath("docs/api.md").read_text()
    for code in ErrorCode:
        assert f"`{code}`" in reference, f"run `make schema`: docs/api.md lacks {code}"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ clients { totalCount ", ErrorCode.GRAPHQL_PARSE_FAILED),
        ("{ nothingHere }", ErrorCode.GRAPHQL_VALIDATION_FAILED),
        (
            "{ " + " ".join(f"t{n}: timeZones" for n in range(60)) + " }",
            ErrorCode.QUERY_TOO_LARGE,
        ),
        (
            "{ mailings { edges { node { messages { edges { node { id } } } } } } }",
            ErrorCode.QUERY_TOO_DEEP,
        ),
        ("{ a: timeZones b: timeZones c: timeZones }", ErrorCode.TOO_MANY_ALIASES),
        (
            "{ clients(first: 500) { edges { node { id } } } "
            "mailings(first: 500) { edges { node { id } } } }",
            None,
        ),
    ],
)
async def test_documents_refused_before_they_run(
    http: httpx.AsyncClient, query: str, code: ErrorCode | None
) -> None:
    if code is None:  # the cost limit and the page size
        code = ErrorCode.QUERY_TOO_COSTLY
    response = await http.post("/graphql", json={"query": query}, headers=STRICT)
    refused(response, 400, code)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ clients(first: 501) { totalCount } }", None),
        ("{ clients(first: -1) { totalCount } }", None),
        ("{ clients(first: 1, last: 1) { totalCount } }", None),
        ('{ clients(after: "not a cursor") { totalCount } }', None),
        ('{ clients(timezone: "Mars/Olympus") { totalCount } }', None),
        ("query ($n: Int!) { clients(first: $n) { totalCount } }", {"n": "many"}),
        ("query ($n: Int!) { clients(first: $n) { totalCount } }", {}),
    ],
)
async def test_arguments_and_variables_refused(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None
) -> None:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    assert set(codes(response)) == {ErrorCode.BAD_USER_INPUT}


async def test_requests_refused_by_their_shape(http: httpx.AsyncClient) -> None:
    query = {"query": "{ timeZones }"}
    refused(
        await http.post("/graphql", json=query, headers={"Accept": "text/html"}),
        406,
        ErrorCode.BAD_REQUEST,
    )
    refused(await http.put("/graphql", json=query), 405, ErrorCode.BAD_REQUEST)
    mutation = 'mutation { deleteClient(id: "1") { __typename } }'
    refused(await http.get("/graphql", params={"query": mutation}), 405, ErrorCode.BAD_REQUEST)
    refused(
        await http.post("/graphql", content=b"{}", headers={"Content-Type": "text/plain"}),
        415,
        ErrorCode.BAD_REQUEST,
    )
    refused(await http.post("/graphql", content=b"", headers=JSON), 400, ErrorCode.BAD_REQUEST)
    refused(await http.post("/graphql", content=b"[1]", headers=JSON), 400, ErrorCode.BAD_REQUEST)
    refused(
        await http.post("/graphql", content=b'{"query": ', headers=JSON), 400, ErrorCode.BAD_REQUEST
    )
    refused(await http.post("/graphql", json={}), 400, ErrorCode.BAD_REQUEST)
    huge = {"query": "{ timeZones }", "variables": {"x": "y" * 20_000}}
    refused(await http.post("/graphql", json=huge), 413, ErrorCode.REQUEST_TOO_LARGE)
    refused(await http.get("/no/such/path"), 404, ErrorCode.NOT_FOUND)
    refused(await http.get("/exports/mailings/404/messages.csv"), 404, ErrorCode.NOT_FOUND)
    refused(await http.get("/exports/statistics.csv?status=LOST"), 400, ErrorCode.BAD_REQUEST)


async def test_persisted_queries(http: httpx.AsyncClient) -> None:
    unknown = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(b"x").hexdigest()}}
    response = await http.post("/graphql", json={"extensions": unknown})
    refused(response, 200, ErrorCode.PERSISTED_QUERY_NOT_FOUND)
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    response = await http.post("/graphql", json={"query": "{ timeZones }", "extensions": wrong})
    refused(response, 400, ErrorCode.BAD_REQUEST)


async def test_persisted_queries_off(db: str) -> None:
    async with serving(persisted_query_cache_bytes=0) as off, http_client(off) as client:
        unknown = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
        response = await client.post("/graphql", json={"extensions": unknown})
    refused(response, 200, ErrorCode.PERSISTED_QUERY_NOT_SUPPORTED)


async def test_callers_refused(app: Starlette, db: str, idp: FakeIdentityProvider) -> None:
    query = {"query": "{ timeZones }"}
    mutation = {"query": 'mutation { deleteClient(id: "1") { __typename } }'}
    async with http_client(app) as anonymous:
        refused(await anonymous.post("/graphql", json=query), 401, ErrorCode.UNAUTHENTICATED)
        bad = {"Authorization": "Bearer wrong"}
        refused(
            await anonymous.post("/graphql", json=query, headers=bad),
            401,
            ErrorCode.UNAUTHENTICATED,
        )
        viewer = {"Authorization": f"Bearer {idp.token('viewer', kid='ec', algorithm='ES256')}"}
        refused(
            await anonymous.post("/graphql", json=mutation, headers=viewer),
            403,
            ErrorCode.FORBIDDEN,
        )
        expired = idp.token("operator", kid="ec", algorithm="ES256", exp=1)
        late = {"Authorization": f"Bearer {expired}"}
        refused(
            await anonymous.post("/graphql", json=query, headers=late),
            401,
            ErrorCode.UNAUTHENTICATED,
        )
        refused(
            await anonymous.get("/exports/statistics.csv?expires=1&signature=x"),
            403,
            ErrorCode.FORBIDDEN,
        )


async def test_identity_provider_unavailable(db: str, idp: FakeIdentityProvider) -> None:
    token = idp.token("viewer", kid="ec", algorithm="ES256")
    idp.down = True
    try:
        async with (
            serving(oidc_issuer=idp.issuer, oidc_audience=AUDIENCE) as cold,
            http_client(cold, headers={"Authorization": f"Bearer {token}"}) as client,
        ):
            response = await client.post("/graphql", json={"query": "{ timeZones }"})
    finally:
        idp.down = False
    refused(response, 503, ErrorCode.SERVICE_UNAVAILABLE)


@pytest.fixture(scope="module")
def broken_api(database: str) -> Iterator[str]:
    """A server whose database has no tables: every query fails unexpectedly."""
    env = {"DATABASE_URL": f"sqlite://{DATA_DIR}/codes-never-migrated.sqlite3"}
    url, proc = serve_api(env, log_name="codes-broken")
    yield url
    stop_process(proc)


async def test_unexpected_errors_are_masked_with_their_code(broken_api: str) -> None:
    async with httpx.AsyncClient(base_url=broken_api, timeout=30) as client:
        response = await client.post("/graphql", json={"query": "{ clients { totalCount } }"})
    assert response.status_code == 200
    assert codes(response) == [ErrorCode.INTERNAL_SERVER_ERROR]


async def test_a_subscription_over_plain_http(gql: GraphQLClient) -> None:
    query = 'subscription { mailingProgress(id: "1") { status } }'
    response = await gql.http.post("/graphql", json={"query": query})
    refused(response, 400, ErrorCode.BAD_REQUEST)


MUTATIONS = {
    "updateClient": '(id: $id, input: {tag: "x"})',
    "deleteClient": "(id: $id)",
    "updateMailing": '(id: $id, input: {text: "x"})',
    "deleteMailing": "(id: $id)",
    "pauseMailing": "(id: $id)",
    "resumeMailing": "(id: $id)",
    "cancelMailing": "(id: $id)",
}


async def not_found(gql: GraphQLClient, name: str, arguments: str, given: str) -> bool:
    selection = "{ __typename ... on NotFoundError { id } }"
    mutation = f"mutation($id: ID!) {{ {name}{arguments} {selection} }}"
    answer = (await gql.execute(mutation, {"id": given}))[name]
    return bool(answer == {"__typename": "NotFoundError", "id": given})


async def test_an_id_that_names_nothing_has_one_answer(gql: GraphQLClient) -> None:
    """Malformed, out of range, deleted, another type's: null in a query, else NotFoundError."""
    client = await make_client()
    deleted = await make_mailing(deleted_at=utcnow())
    nothing = [
        "abc",
        "0",
        "-1",
        "99999999999999999999",
        "",
        str(deleted.id),
        global_id(Kind.MAILING, deleted.id),
        global_id(Kind.MESSAGE, 1),
    ]
    for given in nothing:
        query = "query($id: ID!) { mailing(id: $id) { id } }"
        assert await gql.execute(query, {"id": given}) == {"mailing": None}, given
        for name, arguments in MUTATIONS.items():
            if "Client" in name:
                continue
            assert await not_found(gql, name, arguments, given), (name, given)
    for given in ["abc", "0", str(client.id + 1), global_id(Kind.MAILING, client.id)]:
        query = "query($id: ID!) { client(id: $id) { id } }"
        assert await gql.execute(query, {"id": given}) == {"client": None}, given
        for name, arguments in MUTATIONS.items():
            if "Client" not in name:
                continue
            assert await not_found(gql, name, arguments, given), (name, given)


async def test_refusals_over_a_websocket(served_api: str, db: str) -> None:
    progress = "subscription($id: ID!) { mailingProgress(id: $id) { status } }"
    connection = await Subscription.connect(served_api)
    try:
        assert (await connection.receive())["type"] == "connection_ack"
        await connection.subscribe(progress, {"id": "abc"}, "missing")
        await connection.subscribe("subscription { nothingHere }", {}, "invalid")
        found: dict[str, list[str]] = {}
        # (A document that does not parse closes the socket with 4400, as the protocol says.)
        while len(found) < 2:
            message = await connection.receive()
            if message["type"] == "complete":
                continue
            payload = message["payload"]
            errors = payload if message["type"] == "error" else payload["errors"]
            found[message["id"]] = [error["extensions"]["code"] for error in errors]
    finally:
        await connection.close()
    assert found == {
        "missing": ["NOT_FOUND"],
        "invalid": ["GRAPHQL_VALIDATION_FAILED"],
    }
