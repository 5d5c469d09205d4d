"""``Idempotency-Key`` on mutations: one run per key, whatever the timing, across API processes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import orjson

from models import Mailing
from tests.conftest import GraphQLClient, serve_api, stop_process
from tests.support.api import iso, utcnow
from tests.support.inprocess import fake_clock, serving

CREATE = """mutation($input: MailingInput!) {
    createMailing(input: $input) { __typename ... on Mailing { id text } }
}"""


def create_body(text: str = "Hello") -> dict[str, Any]:
    start = utcnow() + timedelta(hours=1)
    return {
        "query": CREATE,
        "variables": {
            "input": {"text": text, "startAt": iso(start), "endAt": iso(start + timedelta(hours=2))}
        },
    }


async def post(client: httpx.AsyncClient, body: dict[str, Any], key: str | None) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return await client.post("/graphql", json=body, headers=headers)


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


async def test_two_identical_requests_at_once_create_one_mailing(gql: GraphQLClient) -> None:
    body = create_body()
    first, second = await asyncio.gather(
        post(gql.http, body, "same-key"), post(gql.http, body, "same-key")
    )
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["data"]["createMailing"]["__typename"] == "Mailing"
    assert await Mailing.all().count() == 1
    # Exactly one of them ran; the other answered what it stored.
    replayed = [r.headers.get("Idempotent-Replayed") for r in (first, second)]
    assert sorted(replayed, key=str) == [None, "true"]


async def test_a_retry_answers_the_first_result_without_running(gql: GraphQLClient) -> None:
    body = create_body()
    first = await post(gql.http, body, '"8e03978e-40d5-43e8-bc93-6894a57f9324"')
    retry = await post(gql.http, body, '"8e03978e-40d5-43e8-bc93-6894a57f9324"')
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await Mailing.all().count() == 1
    # Without a key, or with another, the same request runs again.
    assert (await post(gql.http, body, None)).status_code == 200
    assert (await post(gql.http, body, "another")).status_code == 200
    assert await Mailing.all().count() == 3


async def test_a_retry_after_a_client_timeout_answers_the_first_result(
    served_api: str, gql: GraphQLClient
) -> None:
    body = create_body()
    payload = orjson.dumps(body)
    url = httpx.URL(served_api)
    # The whole request goes out; the client gives up before the answer (as a
    # timeout does) once the server has run it: the mailing is in the database.
    _, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        b"Idempotency-Key: timed-out\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
    )
    await writer.drain()
    for _ in range(3000):  # 60 s at most
        if await Mailing.exists():
            break
        await asyncio.sleep(0.02)
    writer.close()
    await writer.wait_closed()
    async with httpx.AsyncClient(base_url=served_api) as client:
        retry = await client.post(
            "/graphql", json=body, headers={"Idempotency-Key": "timed-out"}, timeout=60
        )
    assert retry.status_code == 200, retry.text
    assert retry.json()["data"]["createMailing"]["__typename"] == "Mailing"
    # The server ran the first request all the same; the retry answers its result.
    assert await Mailing.all().count() == 1
    assert retry.headers["Idempotent-Replayed"] == "true"


async def test_a_key_reused_with_another_request_is_refused(gql: GraphQLClient) -> None:
    assert (await post(gql.http, create_body("One"), "k1")).status_code == 200
    refused = await post(gql.http, create_body("Two"), "k1")
    assert refused.status_code == 422
    assert code_of(refused) == "IDEMPOTENCY_KEY_REUSED"
    assert "data" not in refused.json()
    assert await Mailing.filter(text="Two").count() == 0


async def test_queries_and_bad_keys(gql: GraphQLClient) -> None:
    query = {"query": "{ clients { totalCount } }"}
    # A query runs every time: it changes nothing.
    for _ in range(2):
        answer = await post(gql.http, query, "q")
        assert answer.status_code == 200
        assert "Idempotent-Replayed" not in answer.headers
    bad = await post(gql.http, create_body(), "x" * 256)
    assert bad.status_code == 400
    assert code_of(bad) == "BAD_REQUEST"
    assert await Mailing.all().count() == 0


async def test_a_key_is_kept_for_its_time_then_forgotten(db: str) -> None:
    body = create_body()
    with fake_clock() as clock:
        async with (
            serving(idempotency_key_ttl=60) as app,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api.test"
            ) as client,
        ):
            await post(client, body, "k")
            clock.advance(seconds=59)
            assert (await post(client, body, "k")).headers.get("Idempotent-Replayed")
            clock.advance(seconds=1)
            again = await post(client, body, "k")
            assert "Idempotent-Replayed" not in again.headers
    assert await Mailing.all().count() == 2


async def test_keys_are_per_principal(db: str) -> None:
    body = create_body()
    async with (
        serving(api_token="a-token-of-32-characters-or-more!") as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api.test",
            headers={"Authorization": "Bearer a-token-of-32-characters-or-more!"},
        ) as client,
    ):
        assert (await post(client, body, "k")).status_code == 200
    # The same key from another caller (no credentials configured: "open") is its own.
    async with (
        serving() as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test"
        ) as client,
    ):
        again = await post(client, body, "k")
        assert "Idempotent-Replayed" not in again.headers
    assert await Mailing.all().count() == 2


async def test_keys_survive_a_restart_and_are_shared_between_processes(gql: GraphQLClient) -> None:
    body = create_body()
    url, first_process = serve_api(log_name="api-first")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            first = await post(client, body, "restart-key")
            assert first.status_code == 200, first.text
    finally:
        stop_process(first_process)
    url, second_process = serve_api(log_name="api-second")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            after_restart = await post(client, body, "restart-key")
            # Two processes at once, with a new key: one runs it.
            pair = await asyncio.gather(
                post(client, body, "shared-key"), post(gql.http, body, "shared-key")
            )
    finally:
        stop_process(second_process)
    assert after_restart.json() == first.json()
    assert after_restart.headers["Idempotent-Replayed"] == "true"
    # The application in this process is a third API process on the same database.
    assert (await post(gql.http, body, "restart-key")).json() == first.json()
    assert pair[0].json() == pair[1].json()
    assert await Mailing.all().count() == 2
