"""What a deployment gives away by default: /metrics, access logs, echoed input.

Issue 20, findings 7, 8, 9 and 10: the API's /metrics answered without
credentials; signed export links were written whole to the access log; a
100 KB bad cursor was echoed in the error and logged whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import GraphQLClient, serve_api, stop_process
from tests.support.inprocess import http_client, serving

TOKEN = "safe-defaults-token-51c2"


@pytest.fixture(scope="module")
def token_server(database: str) -> Iterator[tuple[str, Path]]:
    url, proc = serve_api({"API_TOKEN": TOKEN}, log_name="safe")
    yield url, proc.log_path  # type: ignore[attr-defined]
    stop_process(proc)


async def test_metrics_need_the_credentials_of_the_api(db: str) -> None:
    async with serving(api_token=TOKEN) as app, http_client(app) as http:
        refused = await http.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["errors"][0]["message"].startswith("Missing or invalid API token")
        served = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert served.status_code == 200
        assert "mailings_graphql_operations_total" in served.text


async def test_access_logs_hold_no_query_string(token_server: tuple[str, Path]) -> None:
    url, log_path = token_server
    secret = "signature=c2VjcmV0LXNpZ25hdHVyZQ"
    async with httpx.AsyncClient(base_url=url) as http:
        answer = await http.get(f"/exports/clients.csv?expires=4102444800&{secret}")
        assert answer.status_code in (401, 403)
        # The access line is written as the answer goes out; wait for it (bounded).
        for _ in range(200):
            if "/exports/clients.csv" in log_path.read_text():
                break
            await http.get("/healthz")
    log = log_path.read_text()
    assert "/exports/clients.csv" in log
    assert secret not in log
    assert "expires=4102444800" not in log


async def test_a_bad_cursor_is_echoed_cut_short(gql: GraphQLClient) -> None:
    cursor = "x" * 100_000
    body = (
        await gql.post("query($c: String) { clients(after: $c) { totalCount } }", {"c": cursor})
    ).json()
    [error] = body["errors"]
    assert error["message"] == (
        f"`after` is not a cursor from this API: {'x' * 40!r}... (100,000 characters)"
    )
