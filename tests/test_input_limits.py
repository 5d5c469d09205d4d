"""Lists in variables cut by size before any item is converted; the largest legal body fits.

Issue 20, finding 5: ``importClients`` with 800,000 rows took 12 s and 370 MB
to be refused, a filter with 1.5 million tags 3.7 s: graphql-core converted
every item before the resolver counted them.
"""

from __future__ import annotations

import orjson

from models import Client
from models.services.clients import MAX_IMPORT_ROWS
from models.time_zones import canonical_zones
from settings import Settings
from tests.conftest import GraphQLClient

IMPORT = """mutation($rows: [ClientInput!]!) {
    importClients(input: $rows) {
        __typename
        ... on ValidationError { message errors { field message } }
    }
}"""
CLIENTS = """query($filter: ClientFilterInput) { clients(filter: $filter) { totalCount } }"""


async def test_import_rows_are_counted_before_they_are_converted(gql: GraphQLClient) -> None:
    # Rows past the 10,001st are never converted: graphql-core would refuse this one.
    rows: list[object] = [{"phone": "79000000000"}] * 300_000 + [{"phone": 5}]
    result = (await gql.execute(IMPORT, {"rows": rows}))["importClients"]
    assert result["errors"] == [
        {"field": "input", "message": "must hold at most 10,000 clients a call"}
    ]
    assert await Client.all().count() == 0


async def test_every_list_is_counted_before_it_is_converted(gql: GraphQLClient) -> None:
    for name, value in (("tags", "x"), ("operatorCodes", "900")):
        values: list[object] = [value] * 1_500_000 + [5]  # the last would not convert
        response = await gql.post(CLIENTS, {"filter": {name: values}})
        [error] = response.json()["errors"]
        assert error["message"] == "a filter holds at most 1000 values a list"
    allowed = await gql.execute(CLIENTS, {"filter": {"tags": ["x"] * 1000}})
    assert allowed == {"clients": {"totalCount": 0}}


_ROW = '{{"phone":"{}","operatorCode":"{}","tag":"{}","timezone":"{}"}}'


def _escaped(text: str) -> str:
    return "".join(f"\\u{ord(char):04x}" for char in text)


async def test_the_largest_legal_import_fits_the_body_limit(gql: GraphQLClient) -> None:
    """10,000 rows, each field at its longest, every character escaped."""
    zone = max(canonical_zones(), key=len)
    tag = "\\ud83d\\ude00" * 64  # 64 characters outside the BMP, as surrogate pairs
    rows = [
        _ROW.format(_escaped(f"7900{index:07d}"), _escaped("900"), tag, _escaped(zone))
        for index in range(MAX_IMPORT_ROWS)
    ]
    # One row over 11 characters long makes the whole import invalid: nothing is written.
    rows[-1] = rows[-1].replace(_escaped("7900"), _escaped("79000"), 1)
    body = b'{"query":%s,"variables":{"rows":[%s]}}' % (
        orjson.dumps(IMPORT),
        ",".join(rows).encode(),
    )
    assert len(body) <= Settings().max_body_bytes
    response = await gql.http.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text[:200]
    result = response.json()["data"]["importClients"]
    assert result["__typename"] == "ValidationError"
    assert result["errors"][0]["field"] == f"input.{MAX_IMPORT_ROWS - 1}.phone"
    assert await Client.all().count() == 0
