"""Arbitrary strings, instants and ids at every input of the API, in process.

Whatever a client sends, the answer is the operation's result or a clear
refusal (a ``ValidationError``/``NotFoundError`` in a result union, a GraphQL
error that says what is wrong, a 4xx with a JSON body): never a 500, never
"Unexpected error", and a refusal writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from graphql_api.protection import MASKED_MESSAGE
from models.db import connection, fetch
from tests.conftest import GraphQLClient
from tests.support.factories import make_client, make_mailing
from tests.support.inprocess import api_client

T = TypeVar("T")

EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
ERRORS = "... on Error { __typename message } ... on ValidationError { errors { field message } }"

# Strings of every kind: any text (NUL and other control characters included),
# near misses of valid values, and values that are valid.
VALID = ["79001234567", "900", "vip", "", "Europe/Moscow", "UTC", "Hello", "09:00", "23:59"]
SUSPECTS = [
    "\x00",
    "a\x00b",
    "\x1b[31m",
    "localtime",
    "Factory",
    "Asia/Calcutta",
    "posixrules",
    "../../etc/passwd",
    "9" * 40,
    "x" * 2000,
]
strings = st.one_of(st.text(), st.sampled_from(VALID + SUSPECTS), st.text(alphabet="0123456789"))

# Instants: well-formed ones at the ends of what datetime can hold, with the
# largest offsets (whose UTC may fall outside it), and arbitrary text.
OFFSETS = ["+14:00", "-14:00", "+00:00", "Z", "+23:59", "-23:59", "+05:30", ""]
edge_instants = st.builds(
    lambda moment, offset: moment.isoformat() + offset,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.sampled_from(OFFSETS),
)
instants = st.one_of(
    edge_instants,
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ]
    ),
    st.text(max_size=40),
)
ids = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["9223372036854775807", "9223372036854775808", "-1", "0", "1e3", " 1", "٣"]),
    st.text(max_size=30),
)
nullable_strings = st.one_of(st.none(), strings)


def future(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


LOOP: asyncio.AbstractEventLoop
API: GraphQLClient


def run(work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(work, LOOP).result(60)


@contextlib.asynccontextmanager
async def in_process_api() -> AsyncIterator[GraphQLClient]:
    global LOOP, API
    LOOP = asyncio.get_running_loop()
    async with api_client() as api:
        API = api
        yield api


async def snapshot() -> list[Any]:
    """Every row a refused input could have touched."""
    conn = connection()
    tables = ["client", "mailing", "mailing_stats", "message"]
    return [await fetch(conn, f"SELECT * FROM {table} ORDER BY 1") for table in tables]


def assert_clear(response: httpx.Response) -> None:
    """Answered, or refused in words: never a server error, never a masked one."""
    assert response.status_code < 500, response.text
    assert MASKED_MESSAGE not in response.text, response.text
    body = response.json()
    for error in body.get("errors") or []:
        assert error["message"].strip(), body


async def mutate(field: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """Run a mutation; when it answers an error, check that nothing changed."""
    before = await snapshot()
    response = await API.post(query, variables)
    assert_clear(response)
    body = response.json()
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"][field]
    if "message" in result:  # a member of the Error interface: a refusal
        assert result["message"].strip()
        assert await snapshot() == before, result
    return result


def check(property_: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async property on the test's loop from Hypothesis' thread."""

    @functools.wraps(property_)
    def body(*args: Any, **kwargs: Any) -> None:
        run(property_(*args, **kwargs))

    return body


CREATE_CLIENT = f"""mutation($input: ClientInput!) {{
    createClient(input: $input) {{ __typename {ERRORS} }} }}"""
UPDATE_CLIENT = f"""mutation($id: ID!, $input: ClientPatch!) {{
    updateClient(id: $id, input: $input) {{ __typename {ERRORS} }} }}"""
IMPORT = f"""mutation($input: [ClientInput!]!) {{
    importClients(input: $input) {{ __typename {ERRORS} }} }}"""
CREATE_MAILING = f"""mutation($input: MailingInput!) {{
    createMailing(input: $input) {{ __typename {ERRORS} }} }}"""
UPDATE_MAILING = f"""mutation($id: ID!, $input: MailingPatch!) {{
    updateMailing(id: $id, input: $input) {{ __typename {ERRORS} }} }}"""


async def test_client_inputs(db: str) -> None:
    client = await make_client(phone="79990000001")

    @settings(EXAMPLES)
    @given(strings, nullable_strings, nullable_strings, nullable_strings)
    @example("79001234567", None, "a\x00b", None)
    @example("79001234567", None, None, "localtime")
    @check
    async def property_(phone: str, code: str | None, tag: str | None, zone: str | None) -> None:
        fields = {"phone": phone, "operatorCode": code, "tag": tag, "timezone": zone}
        await mutate("createClient", CREATE_CLIENT, {"input": fields})
        await mutate("updateClient", UPDATE_CLIENT, {"id": str(client.id), "input": fields})
        await mutate("importClients", IMPORT, {"input": [fields, {"phone": "79990000002"}]})

    async with in_process_api():
        await asyncio.to_thread(property_)


async def test_mailing_inputs(db: str) -> None:
    mailing = await make_mailing(text="Hello")

    @settings(EXAMPLES)
    @given(strings, instants, instants, st.lists(strings, max_size=3), strings, strings)
    @example("a\x00b", future(1), future(2), [], "09:00", "18:00")
    @example("Hi", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", [], "09:00", "10:00")
    @check
    async def property_(
        text: str, start: str, end: str, tags: list[str], opens: str, closes: str
    ) -> None:
        window = {"start": opens, "end": closes}
        fields = {"text": text, "startAt": start, "endAt": end}
        full = {**fields, "filter": {"operatorCodes": tags, "tags": tags}, "sendWindow": window}
        await mutate("createMailing", CREATE_MAILING, {"input": full})
        for patch in (fields, {"startAt": start}, {"endAt": end}, {"sendWindow": window}):
            await mutate("updateMailing", UPDATE_MAILING, {"id": str(mailing.id), "input": patch})

    async with in_process_api():
        await asyncio.to_thread(property_)


MUTATIONS_BY_ID = [
    "deleteClient",
    "deleteMailing",
    "pauseMailing",
    "resumeMailing",
    "cancelMailing",
]


async def test_ids_everywhere(db: str) -> None:
    @settings(EXAMPLES)
    @given(ids)
    @example("99999999999999999999")
    @example("-1")
    @check
    async def property_(id_: str) -> None:
        for name in MUTATIONS_BY_ID:
            # One fragment on the interface, whatever errors the union holds.
            query = f"mutation($id: ID!) {{ {name}(id: $id) {{ ... on Error {{ message }} }} }}"
            await mutate(name, query, {"id": id_})
        await mutate("updateClient", UPDATE_CLIENT, {"id": id_, "input": {"tag": "x"}})
        await mutate("updateMailing", UPDATE_MAILING, {"id": id_, "input": {"text": "x"}})
        for query in ("query($id: ID!) { client(id: $id) { id } mailing(id: $id) { id } }",):
            response = await API.post(query, {"id": id_})
            assert_clear(response)
        export = await API.http.get(f"/exports/mailings/{quote(id_, safe='')}/messages.csv")
        assert export.status_code in (404, 200), export.text
        if export.status_code == 404:
            assert export.json()["errors"][0]["message"]

    async with in_process_api():
        await asyncio.to_thread(property_)


LISTS = """query($filter: ClientFilterInput, $timezone: String, $after: String) {
    clients(filter: $filter, timezone: $timezone, after: $after) { totalCount }
}"""
MAILING_LISTS = """query($after: String, $id: ID!) {
    mailings(after: $after) { totalCount }
    statistics { mailings(after: $after) { totalCount } }
    mailing(id: $id) { messages(after: $after) { totalCount } }
}"""


async def test_query_arguments(db: str) -> None:
    mailing = await make_mailing()

    @settings(EXAMPLES)
    @given(nullable_strings, st.lists(strings, max_size=3), nullable_strings)
    @example("Nowhere/Foo", [], None)
    @example(None, ["a\x00b"], None)
    @check
    async def property_(zone: str | None, values: list[str], after: str | None) -> None:
        variables = {
            "timezone": zone,
            "filter": {"operatorCodes": values, "tags": values},
            "after": after,
        }
        response = await API.post(LISTS, variables)
        assert_clear(response)
        response = await API.post(MAILING_LISTS, {"after": after, "id": str(mailing.id)})
        assert_clear(response)

    async with in_process_api():
        await asyncio.to_thread(property_)


@pytest.mark.parametrize(
    ("zone", "answer"),
    [
        ("Nowhere/Foo", "`timezone` must be an IANA time zone name such as Europe/Moscow"),
        ("localtime", "`timezone` must be an IANA time zone name such as Europe/Moscow"),
        ("a\x00b", "`timezone` must be an IANA time zone name such as Europe/Moscow"),
    ],
)
async def test_clients_by_an_unknown_zone_is_refused(db: str, zone: str, answer: str) -> None:
    async with api_client() as api:
        response = await api.post(LISTS, {"timezone": zone})
    assert response.json()["data"] is None
    (error,) = response.json()["errors"]
    assert error["message"] == answer
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "timezone"}
