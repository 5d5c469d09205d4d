"""The cost limit: list items a request may return, counted before it runs."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import parse
from strawberry.schema.config import StrawberryConfig

from graphql_api.query_cost import CostLimit, request_cost
from graphql_api.scalars import SCALAR_MAP
from graphql_api.schema import schema
from models import Mailing
from settings import get_settings
from tests.conftest import GraphQLClient
from tests.support.factories import make_mailing

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
    low = strawberry.Schema(
        query=schema.query,
        subscription=schema.subscription,
        extensions=[lambda: CostLimit(100)],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
    )
    progress = 'mailingProgress(id: "1") { mailing { messages(first: 500) { totalCount } } }'
    document = f"subscription {{ {progress} }}"
    stream = await low.subscribe(document)
    results = [result async for result in stream]  # type: ignore[union-attr]
    [result] = results
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "QUERY_TOO_COSTLY", "cost": 500, "limit": 100}
