"""Signed export links: good without a header for one export until they expire, refused otherwise.

In process (the real application over ``ASGITransport``), with ``API_TOKEN``
set and a clock the test moves.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from models import MailingStatus, MessageStatus
from tests.support.api import add_audience, finalise
from tests.support.factories import make_client, make_mailing
from tests.support.inprocess import FakeClock, fake_clock, http_client, serving

TOKEN = "signed-links-token"
NOON = datetime(2030, 5, 6, 12, 0, tzinfo=UTC)
LINKS = """query($id: ID!, $status: MailingStatus) {
    mailing(id: $id) { messagesCsvUrl messagesCsvLink { url expiresAt } }
    statistics { csvUrl csvLink(status: $status) { url expiresAt } }
}"""


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with fake_clock(NOON) as fake:
        yield fake


def app_with(**overrides: Any) -> contextlib.AbstractAsyncContextManager[Starlette]:
    settings = {"api_token": TOKEN, "export_link_secret": "a secret of the deployment"}
    return serving(**{**settings, **overrides})


@pytest.fixture
async def http(db: str, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    async with app_with() as app, http_client(app) as client:
        yield client


async def links(http: httpx.AsyncClient, mailing_id: int, status: str | None = None) -> Any:
    response = await http.post(
        "/graphql",
        json={"query": LINKS, "variables": {"id": str(mailing_id), "status": status}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def a_mailing() -> int:
    for _ in range(3):
        await make_client()
    mailing = await make_mailing(status=MailingStatus.FINISHED, start_at=NOON, end_at=NOON)
    await add_audience(mailing, due_at=NOON)
    await finalise(mailing.id, MessageStatus.SENT, 2, at=NOON)
    await finalise(mailing.id, MessageStatus.FAILED, 1, at=NOON)
    return mailing.id


def refused(response: httpx.Response, words: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/json")
    [error] = response.json()["errors"]
    assert words in error["message"], error["message"]


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


async def test_a_signed_link_downloads_without_the_header(http: httpx.AsyncClient) -> None:
    mailing_id = await a_mailing()
    data = await links(http, mailing_id, "FINISHED")
    link = data["mailing"]["messagesCsvLink"]
    assert link["url"].startswith(data["mailing"]["messagesCsvUrl"] + "?")
    assert link["expiresAt"] == (NOON + timedelta(minutes=5)).isoformat()
    response = await http.get(link["url"])
    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.text)))
    assert len(rows) == 1 + 3
    assert sorted(row[2] for row in rows[1:]) == ["FAILED", "SENT", "SENT"]

    stats = data["statistics"]["csvLink"]
    assert parse_qs(urlsplit(stats["url"]).query)["status"] == ["FINISHED"]
    response = await http.get(stats["url"])
    assert response.status_code == 200, response.text
    [_, row] = list(csv.reader(io.StringIO(response.text)))
    assert row[:2] == [str(mailing_id), "FINISHED"]

    # The plain URLs still need the header.
    plain = await http.get(data["mailing"]["messagesCsvUrl"])
    assert plain.status_code == 401
    with_header = await http.get(
        data["mailing"]["messagesCsvUrl"], headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert with_header.status_code == 200


async def test_a_link_expires(http: httpx.AsyncClient, clock: FakeClock) -> None:
    mailing_id = await a_mailing()
    url = (await links(http, mailing_id))["mailing"]["messagesCsvLink"]["url"]
    clock.advance(seconds=299)
    assert (await http.get(url)).status_code == 200
    clock.advance(seconds=1)
    refused(await http.get(url), "expired at 2030-05-06T12:05:00+00:00")


async def test_a_changed_or_borrowed_link_is_refused(http: httpx.AsyncClient) -> None:
    mailing_id = await a_mailing()
    other_id = await a_mailing()
    data = await links(http, mailing_id, "FINISHED")
    messages_url = data["mailing"]["messagesCsvLink"]["url"]
    stats_url = data["statistics"]["csvLink"]["url"]
    mismatch = "signature does not match"
    # Another export: another mailing's messages, the statistics' path, another status.
    refused(
        await http.get(messages_url.replace(f"/mailings/{mailing_id}/", f"/mailings/{other_id}/")),
        mismatch,
    )
    refused(await http.get(with_query(stats_url, status="RUNNING")), mismatch)
    refused(await http.get(stats_url.replace("status=FINISHED&", "")), mismatch)
    # A later expiry, a parameter added, a signature changed.
    later = str(int((NOON + timedelta(days=1)).timestamp()))
    refused(await http.get(with_query(messages_url, expires=later)), mismatch)
    refused(await http.get(with_query(messages_url, extra="1")), mismatch)
    signature = parse_qs(urlsplit(messages_url).query)["signature"][0]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    refused(await http.get(with_query(messages_url, signature=flipped)), mismatch)
    # Half a link, a repeated parameter, an expiry that is no time.
    refused(
        await http.get(with_query(data["mailing"]["messagesCsvUrl"], expires=later)), "incomplete"
    )
    refused(await http.get(messages_url + "&expires=1"), "repeats a parameter")
    nonsense = with_query(messages_url, expires="soon")
    refused(await http.get(nonsense), mismatch)


async def test_a_link_from_another_secret_is_refused(http: httpx.AsyncClient) -> None:
    mailing_id = await a_mailing()
    other = app_with(export_link_secret="another deployment's secret")
    async with other as app, http_client(app) as elsewhere:
        url = (await links(elsewhere, mailing_id))["mailing"]["messagesCsvLink"]["url"]
    refused(await http.get(url), "signature does not match")
