"""Automatic persisted queries: the protocol, the bounded store, and Apollo Client's link."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from strawberry.http import GraphQLRequestData

from graphql_api.http.persisted_queries import (
    BadPersistedQuery,
    PersistedQueries,
    PersistedQueryError,
)
from tests.conftest import DATA_DIR
from tests.support.factories import make_client
from tests.support.inprocess import api_client
from tests.support.node import NODE, NPM, npm_install

GRAPHQL_RESPONSE = "application/graphql-response+json"
QUERY = "query Count($first: Int) { clients(first: $first) { totalCount } }"
CLIENT_PACKAGE = Path(__file__).parent / "apq_client"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha(text)}}


@pytest.fixture
async def http(db: str) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client() as api:
        yield api.http


async def get(
    http: httpx.AsyncClient, accept: str = GRAPHQL_RESPONSE, **params: Any
) -> httpx.Response:
    encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    return await http.get("/graphql", params=encoded, headers={"Accept": accept})


async def test_the_protocol_a_hash_then_the_document_then_the_hash_over_get(
    http: httpx.AsyncClient,
) -> None:
    await make_client()
    variables = {"first": 1}
    # 1. The hash alone: unknown, so the client is asked for the document, in a 200
    #    whatever the media type (a 400 makes older links give APQ up), never cached.
    for accept in (GRAPHQL_RESPONSE, "application/json"):
        unknown = await get(http, accept, variables=variables, extensions=persisted(QUERY))
        assert unknown.status_code == 200
        assert unknown.headers["cache-control"] == "no-store"
        assert unknown.json() == {
            "errors": [
                {
                    "message": "PersistedQueryNotFound",
                    "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
                }
            ]
        }
    # 2. The document with its hash (POST, as the links send it): checked, stored, run.
    sent = await http.post(
        "/graphql",
        json={"query": QUERY, "variables": variables, "extensions": persisted(QUERY)},
        headers={"Accept": GRAPHQL_RESPONSE},
    )
    assert sent.status_code == 200
    assert sent.json() == {"data": {"clients": {"totalCount": 1}}}
    # 3. From now on the hash alone runs it, over GET: a short URL a cache can key on.
    again = await get(http, variables={"first": 0}, extensions=persisted(QUERY))
    assert again.status_code == 200
    assert again.json() == {"data": {"clients": {"totalCount": 1}}}
    assert "no-store" not in again.headers.get("cache-control", "")
    assert again.headers["vary"] == "Accept"
    # And over POST.
    posted = await http.post(
        "/graphql", json={"variables": variables, "extensions": persisted(QUERY)}
    )
    assert posted.json() == {"data": {"clients": {"totalCount": 1}}}


async def test_broken_persisted_queries_are_refused_clearly(http: httpx.AsyncClient) -> None:
    wrong_hash = {"persistedQuery": {"version": 1, "sha256Hash": sha("{ other }")}}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"query": QUERY, "extensions": wrong_hash}, "is not the sha256 of the query"),
        (
            {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": sha(QUERY)}}},
            "version: 1",
        ),
        (
            {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "abc"}}},
            "64 lowercase hex",
        ),
        ({"extensions": {"persistedQuery": "yes"}}, "version: 1"),
    ]
    for body, says in cases:
        response = await http.post("/graphql", json=body, headers={"Accept": GRAPHQL_RESPONSE})
        assert response.status_code == 400, body
        assert says in response.json()["errors"][0]["message"], body
    # A hash that was refused was not stored.
    unknown = await http.post("/graphql", json={"extensions": wrong_hash})
    assert unknown.json()["errors"][0]["message"] == "PersistedQueryNotFound"


async def test_a_persisted_mutation_still_needs_post(http: httpx.AsyncClient) -> None:
    mutation = 'mutation { createClient(input: {phone: "79001234567"}) { __typename } }'
    stored = await http.post(
        "/graphql", json={"query": mutation, "extensions": persisted(mutation)}
    )
    assert stored.json() == {"data": {"createClient": {"__typename": "Client"}}}
    over_get = await get(http, extensions=persisted(mutation))
    assert over_get.status_code == 405
    assert over_get.headers["allow"] == "POST"


def request(query: str | None, sha256: str) -> GraphQLRequestData:
    extension = {"persistedQuery": {"version": 1, "sha256Hash": sha256}}
    return GraphQLRequestData(
        query=query, variables=None, operation_name=None, extensions=extension
    )


def test_the_store_is_an_lru_bounded_by_bytes() -> None:
    documents = [f"{{ clients(first: {i}) {{ totalCount }} }}".ljust(90) for i in range(20)]
    # What an entry takes in memory: both strings and the entry, far more than 90 bytes.
    entry = sys.getsizeof(sha(documents[0])) + sys.getsizeof(documents[0]) + 120
    assert entry > 3 * 90
    store = PersistedQueries(max_bytes=8 * entry + 10)
    for document in documents[:8]:
        store.resolve(request(document, sha(document)))
    assert (len(store), store.size) == (8, 8 * entry)
    assert store.resolve(request(None, sha(documents[0]))).query == documents[0]  # now the newest
    store.resolve(request(documents[8], sha(documents[8])))
    assert store.size <= store.max_bytes
    assert store.get(sha(documents[1])) is None  # the least recently used went first
    assert store.get(sha(documents[0])) == documents[0]
    # A document that does not parse runs (and is refused) but is never kept.
    broken = "{ clients { totalCount "
    assert store.resolve(request(broken, sha(broken))).query == broken
    assert store.get(sha(broken)) is None
    # A document over an eighth of the store runs but is not kept.
    big = "{ clients { totalCount } }" + " " * 2 * entry
    assert store.resolve(request(big, sha(big))).query == big
    assert store.get(sha(big)) is None
    with pytest.raises(PersistedQueryError) as missing:
        store.resolve(request(None, sha(big)))
    assert missing.value.code == "PERSISTED_QUERY_NOT_FOUND"
    with pytest.raises(BadPersistedQuery):
        store.resolve(request("{ x }", sha("{ y }")))
    # Lone surrogates (valid JSON escapes) hash without an error.
    odd = '{ clients(filter: {tags: ["\ud800"]}) { totalCount } }'
    with pytest.raises(BadPersistedQuery):
        store.resolve(request(odd, sha("x")))


def test_a_store_of_zero_bytes_turns_apq_off() -> None:
    store = PersistedQueries(max_bytes=0)
    with pytest.raises(PersistedQueryError) as off:
        store.resolve(request(None, sha(QUERY)))
    assert (off.value.message, off.value.code) == (
        "PersistedQueryNotSupported",
        "PERSISTED_QUERY_NOT_SUPPORTED",
    )
    assert store.resolve(request(QUERY, sha(QUERY))).query == QUERY
    assert len(store) == 0


# --- a real client ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def apq_client() -> Path:
    """Apollo Client at its pinned version, installed by ``npm ci`` (offline once cached)."""
    if NODE is None or NPM is None:
        pytest.skip("Node.js (node and npm) is not installed; CI has it")
    files = ("package.json", "package-lock.json", "apq.mjs")
    return npm_install(CLIENT_PACKAGE, files, DATA_DIR / "apq-client")


async def test_apollo_clients_persisted_query_link(
    apq_client: Path, served_api: str, db: str
) -> None:
    await make_client()
    assert NODE is not None
    finished = await asyncio.to_thread(
        subprocess.run,
        [NODE, "apq.mjs", f"{served_api}/graphql"],
        cwd=apq_client,
        env={"PATH": str(Path(NODE).parent)},
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(finished.stdout)
    assert (
        report["answers"] == [{"clients": {"__typename": "ClientConnection", "totalCount": 1}}] * 2
    )
    # The hash over GET, unknown; the document over POST; then the hash alone over GET.
    assert [(r["method"], r["sentQuery"], r["status"]) for r in report["requests"]] == [
        ("GET", False, 200),
        ("POST", True, 200),
        ("GET", False, 200),
    ]
    assert report["requests"][0]["cacheControl"] == "no-store"
