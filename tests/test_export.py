"""CSV exports over real HTTP: a mailing's messages, every mailing's statistics, their auth."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from models import MailingStatus, MessageStatus
from models.db import connection, execute
from tests.conftest import GraphQLClient, serve_api, stop_process
from tests.support.api import add_audience, finalise
from tests.support.factories import make_client, make_mailing

TOKEN = "export-token"
MESSAGE_HEADER = [
    "id",
    "phone",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "sent_at",
    "failed_at",
    "finished_at",
]
FAILED_AT = datetime(2026, 11, 30, 12, 34, 56, 789000, tzinfo=UTC)


@pytest.fixture(scope="module")
def token_api(database: str) -> Iterator[str]:
    """A server of our own, with API_TOKEN set."""
    url, proc = serve_api({"API_TOKEN": TOKEN}, log_name="api-export")
    yield url
    stop_process(proc)


@pytest.fixture
async def http(token_api: str, db: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=token_api, headers=headers, timeout=60) as client:
        yield client


def rows_of(response: httpx.Response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.text)))


async def _mailing_with_outcomes() -> int:
    for tag in ("a", "a", "a", "a"):
        await make_client(tag=tag)
    mailing = await make_mailing(text="=cmd|' /C calc'!A0", status=MailingStatus.RUNNING)
    await add_audience(mailing)
    await finalise(mailing.id, MessageStatus.SENT, 2)
    [failed] = await finalise(mailing.id, MessageStatus.FAILED, 1, at=FAILED_AT)
    await execute(
        connection(),
        "UPDATE message SET last_error = $2 WHERE id = $1",
        failed,
        '=HTTP 400: {"code": 400, "message": "bad, \\"quoted\\"\nrecipient"}',
    )
    return mailing.id


@pytest.mark.parametrize("path", ["/exports/mailings/1/messages.csv", "/exports/statistics.csv"])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", TOKEN])
async def test_exports_need_the_api_token(
    token_api: str, db: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(base_url=token_api, timeout=30) as client:
        response = await client.get(path, headers=headers)
    assert response.status_code == 401
    assert "text/csv" not in response.headers.get("content-type", "")


async def test_messages_csv(http: httpx.AsyncClient) -> None:
    mailing_id = await _mailing_with_outcomes()
    response = await http.get(f"/exports/mailings/{mailing_id}/messages.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        f'filename="mailing-{mailing_id}-messages.csv"' in response.headers["content-disposition"]
    )
    header, *rows = rows_of(response)
    assert header == MESSAGE_HEADER
    assert len(rows) == 4
    assert [int(row[0]) for row in rows] == sorted(int(row[0]) for row in rows)
    by_status: dict[str, list[list[str]]] = {}
    for row in rows:
        by_status.setdefault(row[2], []).append(row)
    assert {status: len(group) for status, group in by_status.items()} == {
        "SENT": 2,
        "FAILED": 1,
        "PENDING": 1,
    }
    for row in by_status["SENT"]:
        assert row[3] == "1"
        sent_at = datetime.fromisoformat(row[6])
        assert sent_at.tzinfo is not None
        assert abs(datetime.now(UTC) - sent_at) < timedelta(minutes=5)
        assert (row[7], row[8]) == ("", row[6])  # not failed; finished when sent
    [failed] = by_status["FAILED"]
    # Quotes, commas and the newline survive; the formula is defused.
    assert failed[4] == '\'=HTTP 400: {"code": 400, "message": "bad, \\"quoted\\"\nrecipient"}'
    assert failed[6] == ""
    assert datetime.fromisoformat(failed[7]) == datetime.fromisoformat(failed[8]) == FAILED_AT
    [pending] = by_status["PENDING"]
    assert pending[4] == ""
    assert pending[6:] == ["", "", ""]
    assert all(len(row[1]) == 11 and row[1].startswith("7") for row in rows)
    datetime.fromisoformat(pending[5])


async def test_messages_csv_of_an_unknown_or_deleted_mailing_is_404(
    http: httpx.AsyncClient,
) -> None:
    assert (await http.get("/exports/mailings/999999/messages.csv")).status_code == 404
    deleted = await make_mailing(deleted_at=datetime.now(UTC))
    response = await http.get(f"/exports/mailings/{deleted.id}/messages.csv")
    assert response.status_code == 404
    assert "not found" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "key", ["99999999999999999999", "9223372036854775808", "-1", "0", "1e3", "%E2%91%A0"]
)
async def test_messages_csv_of_an_id_no_mailing_can_have_is_404(
    http: httpx.AsyncClient, key: str
) -> None:
    """Beyond int64, negative, not a number: a JSON 404 as for any missing mailing, never a 500."""
    response = await http.get(f"/exports/mailings/{key}/messages.csv")
    assert response.status_code == 404
    assert response.json()["errors"][0]["message"].endswith("not found")


async def test_statistics_csv(http: httpx.AsyncClient) -> None:
    mailing_id = await _mailing_with_outcomes()
    empty = await make_mailing(text="plain, with a comma")
    await make_mailing(text="gone", deleted_at=datetime.now(UTC))
    response = await http.get("/exports/statistics.csv")
    assert response.status_code == 200
    header, *rows = rows_of(response)
    assert header[:11] == [
        "mailing_id",
        "status",
        "start_at",
        "end_at",
        "total",
        "pending",
        "sent",
        "failed",
        "expired",
        "cancelled",
        "delivery_rate",
    ]
    assert header[11] == "text"
    assert [row[0] for row in rows] == [str(mailing_id), str(empty.id)]
    first, second = rows
    assert first[1] == "RUNNING"
    assert first[4:10] == ["4", "1", "2", "1", "0", "0"]
    assert first[10] == "0.6667"  # 2 sent of 3 decided
    assert first[11] == "'=cmd|' /C calc'!A0"
    assert second[4:11] == ["0", "0", "0", "0", "0", "0", ""]
    assert second[11] == "plain, with a comma"

    only = await http.get("/exports/statistics.csv", params={"status": "RUNNING"})
    assert [row[0] for row in rows_of(only)[1:]] == [str(mailing_id)]
    wrong = await http.get("/exports/statistics.csv", params={"status": "running"})
    assert wrong.status_code == 400


async def test_graphql_links_to_the_exports(http: httpx.AsyncClient) -> None:
    mailing_id = await _mailing_with_outcomes()
    gql = GraphQLClient(str(http.base_url), token=TOKEN)
    try:
        data = await gql.execute(
            "query($id: ID!) { mailing(id: $id) { messagesCsvUrl } statistics { csvUrl } }",
            {"id": str(mailing_id)},
        )
    finally:
        await gql.aclose()
    base = str(http.base_url).rstrip("/")
    messages_url = data["mailing"]["messagesCsvUrl"]
    assert messages_url == f"{base}/exports/mailings/{mailing_id}/messages.csv"
    assert data["statistics"]["csvUrl"] == f"{base}/exports/statistics.csv"
    assert len(rows_of(await http.get(messages_url))) == 5
    assert len(rows_of(await http.get(data["statistics"]["csvUrl"]))) == 2


async def test_open_api_serves_exports_without_a_token(api_url: str, db: str) -> None:
    mailing_id = await _mailing_with_outcomes()
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        response = await client.get(f"/exports/mailings/{mailing_id}/messages.csv")
    assert response.status_code == 200
    assert len(rows_of(response)) == 5
