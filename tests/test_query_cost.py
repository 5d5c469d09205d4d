"""The limits on a document, measured in one walk before it runs: cost, depth, aliases, fields.

And the parse cache, which keeps by hash only the documents that passed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import strawberry
from graphql import parse
from strawberry.schema.config import StrawberryConfig

from graphql_api.document_guard import DocumentCache, DocumentGuard
from graphql_api.protection import query_limits
from graphql_api.query_cost import measure, request_cost
from graphql_api.scalars import SCALAR_MAP
from graphql_api.schema import make_schema, schema
from models import Mailing
from settings import Settings, get_settings
from tests.conftest import GraphQLClient
from tests.support.factories import make_mailing
from tests.support.inprocess import graphql_client, serving

GRAPHQL_RESPONSE = "application/graphql-response+json"
NESTED = "mailings(first: 500) { edges { node { messages(first: 500) { totalCount } } } }"
GREEDY = "{ " + " ".join(f"m{i}: {NESTED}" for i in range(30)) + " }"


def cost(document: str, variables: dict[str, Any] | None = None, name: str | None = None) -> int:
    return request_cost(schema._schema, parse(document), name, variables)


def test_what_a_request_costs() -> None:
    assert cost("{ clients { totalCount } }") == 50  # the default page
    assert cost("{ clients(last: 7) { totalCount } statistics { totals { total } } }") == 7
    assert cost('{ mailing(id: "1") { id text } client(id: "1") { id } }') == 0
    assert cost("{ " + NESTED + " }") == 500 + 500 * 500
    assert cost(GREEDY) == 30 * 250_500 == 7_515_000
    # Variables, their defaults, and sizes the resolver refuses (counted at the most it serves).
    by_variable = (
        "query($n: Int, $m: Int = 20) "
        "{ mailings(first: $n) { edges { node { messages(last: $m) { totalCount } } } } }"
    )
    assert cost(by_variable, {"n": 10}) == 10 + 10 * 20
    assert cost(by_variable, {"n": 10, "m": None}) == 10 + 10 * 50
    assert cost(by_variable, {}) == 50 + 50 * 20
    assert cost("{ clients(first: 100000) { totalCount } }") == 500
    assert cost("{ clients(first: -5) { totalCount } }") == 0
    # Fragments, inline ones, and subscriptions count like fields written out.
    fragments = """
        query Q { statistics { mailings(first: 4) { edges { node { ...M } } } } }
        fragment M on MailingSummary {
            mailing { ... on Mailing { messages(first: 3) { totalCount } } }
        }
        query Other { clients(first: 1) { totalCount } }
    """
    assert cost(fragments, name="Q") == 4 + 4 * 3
    assert cost(fragments, name="Other") == 1
    progress = 'mailingProgress(id: "1") { mailing { messages(first: 9) { totalCount } } }'
    assert cost(f"subscription {{ {progress} }}") == 9


async def test_a_greedy_request_is_refused_before_it_runs(gql: GraphQLClient) -> None:
    await make_mailing()
    limit = get_settings().max_query_nodes
    response = await gql.http.post(
        "/graphql", json={"query": GREEDY}, headers={"Accept": GRAPHQL_RESPONSE}
    )
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    [error] = body["errors"]
    assert error["message"] == (
        f"This request may return up to 7,515,000 list items, more than the {limit:,} allowed "
        "in one request: ask for smaller pages (`first`/`last`) or fewer nested lists, and "
        "page through the rest"
    )
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 7_515_000, "limit": limit}
    # The same sizes through variables are counted alike.
    query = (
        "query($n: Int) "
        "{ mailings(first: $n) { edges { node { messages(first: $n) { totalCount } } } } }"
    )
    refused = (await gql.post(query, {"n": 500})).json()
    assert refused["errors"][0]["extensions"]["cost"] == 250_500
    # Under the limit, it runs.
    allowed = await gql.execute(query, {"n": 100})
    assert len(allowed["mailings"]["edges"]) == await Mailing.all().count() == 1


async def test_a_greedy_subscription_is_refused_too() -> None:
    """The check runs as any operation executes: a subscription's too (here under a low limit)."""
    limits = replace(query_limits(Settings()), max_nodes=100)
    low = strawberry.Schema(
        query=schema.query,
        subscription=schema.subscription,
        extensions=[lambda: DocumentGuard(limits, DocumentCache(1_000_000))],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
    )
    progress = 'mailingProgress(id: "1") { mailing { messages(first: 500) { totalCount } } }'
    document = f"subscription {{ {progress} }}"
    stream = await low.subscribe(document)
    results = [result async for result in stream]  # type: ignore[union-attr]
    [result] = results
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "QUERY_TOO_COSTLY", "cost": 500, "limit": 100}


def doubling(levels: int, leaf: str = "__typename") -> str:
    """Fragment Fi spreads F(i+1) twice: a few hundred tokens, 2**levels fields expanded."""
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    return f"query {{ ...F0 }} {chain} fragment F{levels} on Query {{ {leaf} }}"


def test_one_walk_measures_fragments_once() -> None:
    """Issue 20, finding 1: each walk expanded every spread again (22 levels: 38 s of CPU)."""
    found = measure(schema._schema, parse(doubling(60)), None, None)
    assert found.fields == 2**60
    assert found.depth == 0
    aliased = measure(schema._schema, parse(doubling(50, "a: timeZones b: __typename")), None, None)
    assert (aliased.aliases, aliased.fields) == (2**51, 2**51)
    nested = doubling(40, "statistics { mailings(first: 2) { totalCount } }")
    assert measure(schema._schema, parse(nested), None, None).cost == 2 * 2**40
    # A fragment that spreads itself (refused by validation later) counts as empty.
    cycle = "{ ...A } fragment A on Query { ...B __typename } fragment B on Query { ...A }"
    assert measure(schema._schema, parse(cycle), None, None).fields == 1


async def test_exponential_documents_are_refused_before_validation(gql: GraphQLClient) -> None:
    body = (await gql.post(doubling(30))).json()
    [error] = body["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_LARGE", "fields": 2**30, "limit": 1000}
    # Validation compares fields of one name in pairs: 500 copies are refused before it.
    repeated = "{ " + "__typename " * 500 + "}"
    [error] = (await gql.post(repeated)).json()["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_LARGE"
    assert error["extensions"]["pairs"] > error["extensions"]["limit"] == 2000
    # Refused as such even where no operation is named among several.
    two = doubling(30).replace("query {", "query A {") + " query B { __typename }"
    [error] = (await gql.post(two)).json()["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_LARGE"
    fine = "{ " + "__typename " * 40 + "}"
    assert (await gql.execute(fine)) == {"__typename": "Query"}


async def test_length_and_comments_are_bounded_before_tokens(gql: GraphQLClient) -> None:
    padded = "{ __typename }" + " " * 100_000
    [error] = (await gql.post(padded)).json()["errors"]
    assert (
        error["message"]
        == "This document is 100,014 characters long, more than the 100,000 allowed"
    )
    comments = "# c\n" * 1500 + "{ __typename }"
    [error] = (await gql.post(comments)).json()["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_LARGE", "limit": 1000}


async def test_the_cache_keeps_only_documents_that_passed() -> None:
    async with serving(query_cache_bytes=100_000) as app, graphql_client(app) as client:
        cache = _cache_of(make_schema(app.state.settings))
        for _ in range(2):
            assert (await client.execute("{ __typename }")) == {"__typename": "Query"}
        assert len(cache) == 1
        # Refused by a limit, by validation, by the parser: none is kept.
        for refused in (doubling(20), "{ nothing }", "{ broken"):
            assert "errors" in (await client.post(refused)).json()
        assert len(cache) == 1
        # Bounded by the estimated memory of what it holds, the oldest out first.
        for i in range(200):
            await client.execute(f"{{ __typename }} # {i}")
        assert len(cache) < 200
        assert cache.size <= cache.max_bytes


def _cache_of(schema_: strawberry.Schema) -> DocumentCache:
    made = [make() for make in schema_.extensions if callable(make)]  # type: ignore[operator]
    [guard] = [extension for extension in made if isinstance(extension, DocumentGuard)]
    return guard.cache
