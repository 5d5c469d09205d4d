"""Subscriptions over HTTP (Apollo's multipart protocol, graphql-sse) as the WebSocket serves them.

In process for the protocols' shapes, credentials and a token's expiry; then
Apollo Client 4 and the graphql-sse client (npm, pinned in
``tests/http_subscriptions/``) against a real server, beside a WebSocket, on
one mailing: the three transports end with the same final event.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from graphql_api.ids import Kind, global_id
from models import Mailing, MailingStatus, MessageStatus
from tests.conftest import DATA_DIR, GraphQLClient
from tests.support.api import STATS, Subscription, add_audience, finalise
from tests.support.factories import make_client, make_mailing
from tests.support.inprocess import http_client, serving
from tests.support.node import NODE, NPM, npm_install
from tests.support.oidc import AUDIENCE, FakeIdentityProvider

PACKAGE = Path(__file__).parent / "http_subscriptions"
PROGRESS = f"""subscription Progress($id: ID!) {{
    mailingProgress(id: $id) {{
        __typename status stats {{ __typename {STATS} }} mailing {{ __typename id }}
    }}
}}"""
MULTIPART = 'multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json'
SSE = "text/event-stream"


def multipart_events(body: str) -> list[dict[str, Any]]:
    """The payloads of a multipart subscription's parts (heartbeats, ``{}``, left out)."""
    events = []
    for part in body.split("\r\n--graphql"):
        _, _, json_text = part.partition("\r\n\r\n")
        if json_text.strip():
            message = json.loads(json_text)
            if message:
                events.append(message["payload"])
    assert body.endswith("\r\n--graphql--\r\n"), body
    return events


def sse_events(body: str) -> list[tuple[str, str]]:
    """The (event, data) pairs of a graphql-sse stream; comments (heartbeats) left out."""
    events = []
    for block in body.split("\r\n\r\n"):
        fields = dict(
            line.split(": ", 1) for line in block.split("\r\n") if line and not line.startswith(":")
        )
        if fields:
            events.append((fields["event"], fields.get("data", "")))
    return events


def progress(mailing: Mailing, status: str, **counts: int) -> dict[str, Any]:
    stats = dict.fromkeys(STATS.split(), 0) | counts
    return {
        "data": {
            "mailingProgress": {
                "__typename": "MailingProgress",
                "status": status,
                "stats": {"__typename": "MessageStats", **stats},
                "mailing": {"__typename": "Mailing", "id": global_id(Kind.MAILING, mailing.id)},
            }
        }
    }


async def test_a_finished_mailing_streams_its_last_state_over_both_protocols(
    gql: GraphQLClient,
) -> None:
    mailing = await make_mailing(status=MailingStatus.FINISHED)
    request = {"query": PROGRESS, "variables": {"id": global_id(Kind.MAILING, mailing.id)}}
    multipart = await gql.http.post("/graphql", json=request, headers={"Accept": MULTIPART})
    assert multipart.status_code == 200
    assert multipart.headers["content-type"].startswith("multipart/mixed;boundary=graphql")
    assert multipart_events(multipart.text) == [progress(mailing, "FINISHED")]
    sse = await gql.http.post("/graphql", json=request, headers={"Accept": SSE})
    assert sse.status_code == 200
    assert sse.headers["content-type"] == SSE
    assert sse_events(sse.text) == [
        ("next", json.dumps(progress(mailing, "FINISHED"), separators=(",", ":"))),
        ("complete", ""),
    ]


async def test_a_mailing_that_is_not_there_ends_the_stream_with_not_found(
    gql: GraphQLClient,
) -> None:
    for given in ("abc", global_id(Kind.CLIENT, 1), "99"):
        request = {"query": PROGRESS, "variables": {"id": given}}
        sse = await gql.http.post("/graphql", json=request, headers={"Accept": SSE})
        [(kind, data), end] = sse_events(sse.text)
        assert (kind, end) == ("next", ("complete", ""))
        [error] = json.loads(data)["errors"]
        assert error["extensions"] == {"code": "NOT_FOUND"}
        multipart = await gql.http.post("/graphql", json=request, headers={"Accept": MULTIPART})
        [event] = multipart_events(multipart.text)
        assert event["errors"][0]["extensions"] == {"code": "NOT_FOUND"}


async def test_queries_and_mutations_keep_their_plain_answers(gql: GraphQLClient) -> None:
    response = await gql.http.post("/graphql", json={"query": "{ timeZones }"})
    assert response.headers["content-type"].startswith("application/json")
    plain = await gql.http.post("/graphql", json={"query": PROGRESS, "variables": {"id": "1"}})
    assert plain.status_code == 400
    assert plain.json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}
    assert "text/event-stream" in plain.json()["errors"][0]["message"]


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeIdentityProvider]:
    provider = FakeIdentityProvider()
    yield provider
    provider.close()


async def test_streams_need_the_same_credentials(db: str, idp: FakeIdentityProvider) -> None:
    mailing = await make_mailing(status=MailingStatus.FINISHED)
    request = {"query": PROGRESS, "variables": {"id": str(mailing.id)}}
    async with (
        serving(api_token="stream-token", oidc_issuer=idp.issuer, oidc_audience=AUDIENCE) as app,
        http_client(app) as client,
    ):
        for accept in (MULTIPART, SSE):
            refused = await client.post("/graphql", json=request, headers={"Accept": accept})
            assert refused.status_code == 401
            assert refused.json()["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
            bearer = {"Accept": accept, "Authorization": "Bearer stream-token"}
            served = await client.post("/graphql", json=request, headers=bearer)
            assert served.status_code == 200


async def test_a_stream_ends_at_its_tokens_expiry(db: str, idp: FakeIdentityProvider) -> None:
    mailing = await make_mailing()  # SCHEDULED, with no worker: its stream stays open
    request = {"query": PROGRESS, "variables": {"id": str(mailing.id)}}
    async with (
        serving(oidc_issuer=idp.issuer, oidc_audience=AUDIENCE) as app,
        http_client(app) as client,
    ):
        expires_at = int(time.time()) + 3
        token = idp.token("viewer", exp=expires_at)
        headers = {"Accept": SSE, "Authorization": f"Bearer {token}"}
        sse = await client.post("/graphql", json=request, headers=headers)
    assert time.time() >= expires_at
    events = sse_events(sse.text)
    assert events[-1] == ("complete", "")
    last = json.loads(events[-2][1])
    assert last["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    # Before it, the mailing as it was, unless the token had expired when the stream began.
    assert all(json.loads(data) == progress(mailing, "SCHEDULED") for _, data in events[:-2])


# --- the clients, against a real server -------------------------------------------------


@pytest.fixture(scope="module")
def clients_package() -> Path:
    """Apollo Client 4 and graphql-sse, pinned (``npm ci``, offline once cached)."""
    if NODE is None or NPM is None:
        pytest.skip("Node.js (node and npm) is not installed; CI has it")
    files = ("package.json", "package-lock.json", "apollo.mjs", "sse.mjs")
    return npm_install(PACKAGE, files, DATA_DIR / "http-subscriptions")


class NodeClient:
    """A Node script subscribing; its events are JSON lines on its stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, package: Path, script: str, *args: str) -> NodeClient:
        assert NODE is not None
        proc = await asyncio.create_subprocess_exec(
            NODE,
            script,
            *args,
            cwd=package,
            env={"PATH": str(Path(NODE).parent)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(120):
            raw = await self.proc.stdout.readline()
        if not raw:
            assert self.proc.stderr is not None
            raise AssertionError((await self.proc.stderr.read()).decode())
        line: dict[str, Any] = json.loads(raw)
        assert "failed" not in line, line
        return line

    async def until_complete(self) -> list[dict[str, Any]]:
        lines = []
        while "complete" not in (line := await self.line()):
            lines.append(line)
        async with asyncio.timeout(60):
            assert await self.proc.wait() == 0
        return lines

    def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


@pytest.fixture
async def started() -> AsyncIterator[list[NodeClient]]:
    clients: list[NodeClient] = []
    yield clients
    for client in clients:
        client.stop()
        await client.proc.wait()


async def test_three_transports_end_with_the_same_final_event(
    clients_package: Path, served_api: str, db: str, started: list[NodeClient]
) -> None:
    for _ in range(3):
        await make_client()
    mailing = await make_mailing(status=MailingStatus.RUNNING)
    await add_audience(mailing)
    mailing_id = global_id(Kind.MAILING, mailing.id)
    running = progress(mailing, "RUNNING", total=3, pending=3)["data"]

    url = f"{served_api}/graphql"
    apollo = await NodeClient.start(clients_package, "apollo.mjs", url, mailing_id, PROGRESS)
    sse = await NodeClient.start(clients_package, "sse.mjs", url, mailing_id, PROGRESS)
    started += [apollo, sse]
    websocket = await Subscription.connect(served_api)
    try:
        assert (await websocket.receive())["type"] == "connection_ack"
        await websocket.subscribe(PROGRESS, {"id": mailing_id})
        # Each transport has its first event before the mailing moves on.
        assert (await websocket.receive())["payload"]["data"] == running
        assert (await apollo.line()) == {"data": running, "error": None}
        assert (await sse.line()) == {"data": running, "errors": None}

        await finalise(mailing.id, MessageStatus.SENT, 2)
        await finalise(mailing.id, MessageStatus.FAILED, 1)
        await Mailing.filter(id=mailing.id).update(status=MailingStatus.FINISHED)

        final = progress(mailing, "FINISHED", total=3, sent=2, failed=1)["data"]
        messages = []
        while (message := await websocket.receive())["type"] != "complete":
            messages.append(message["payload"]["data"])
        apollo_events = [line["data"] for line in await apollo.until_complete()]
        sse_events_ = [line["data"] for line in await sse.until_complete()]
    finally:
        await websocket.close()
    # Events in between depend on when each poll ran; the last is the same for all three.
    assert messages[-1] == apollo_events[-1] == sse_events_[-1] == final


async def test_an_http_request_of_the_stream_is_refused_like_any_other(
    served_api: str, db: str
) -> None:
    async with httpx.AsyncClient(base_url=served_api, timeout=30) as client:
        response = await client.put("/graphql", json={"query": PROGRESS}, headers={"Accept": SSE})
    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}
