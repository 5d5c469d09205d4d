"""Paging both ways on every connection: ``first``/``after``, ``last``/``before``, ``orderBy``.

The API runs in process (``tests/support/inprocess.py``). A property test pages
through random lists with random page sizes, forward and backward, in both
orders and from random cursors, and checks that the pages put together are
exactly the list, in order, with every ``hasNextPage``/``hasPreviousPage``
telling the truth; examples pin the edges.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphql_api.pagination import encode_cursor
from models import Client
from tests.conftest import GraphQLClient, truncate_all
from tests.support.api import add_audience, key
from tests.support.factories import make_client, make_mailing
from tests.support.inprocess import api_client

T = TypeVar("T")

PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
CLIENTS = f"""query($first: Int, $after: String, $last: Int, $before: String,
                    $order: ListOrder! = OLDEST_FIRST, $filter: ClientFilterInput) {{
    clients(first: $first, after: $after, last: $last, before: $before, orderBy: $order,
            filter: $filter) {{
        totalCount {PAGE_INFO} edges {{ cursor node {{ id }} }}
    }}
}}"""
ARGS = "first: $first, after: $after, last: $last, before: $before, orderBy: $order"
VARS = "$first: Int, $after: String, $last: Int, $before: String, $order: ListOrder! = OLDEST_FIRST"
# Every connection of the schema, reduced to its list of ids.
IDS = f"{PAGE_INFO} edges {{ node {{ id }} }}"
LISTS = {
    "clients": f"query({VARS}) {{ list: clients({ARGS}) {{ {IDS} }} }}",
    "mailings": f"query({VARS}) {{ list: mailings({ARGS}) {{ {IDS} }} }}",
    "statistics.mailings": f"""query({VARS}) {{ statistics {{
        list: mailings({ARGS}) {{ {PAGE_INFO} edges {{ node {{ mailing {{ id }} }} }} }} }} }}""",
    "mailing.messages": f"""query($id: ID!, {VARS}) {{ mailing(id: $id) {{
        list: messages({ARGS}) {{ {PAGE_INFO} edges {{ node {{ id }} }} }} }} }}""",
}

EXAMPLES = int(os.environ.get("PAGING_EXAMPLES", "60"))


@pytest.fixture
async def api(db: str) -> AsyncIterator[GraphQLClient]:
    async with api_client() as client:
        yield client


async def page(api: GraphQLClient, query: str = CLIENTS, **variables: Any) -> dict[str, Any]:
    data = await api.execute(query, variables)
    found = data.get("clients") or data.get("list") or data.get("statistics", {}).get("list")
    if found is None:
        found = data["mailing"]["list"]
    return found  # type: ignore[no-any-return]


def ids_of(connection: dict[str, Any]) -> list[int]:
    nodes = [edge["node"] for edge in connection["edges"]]
    return [key(node["mailing"]["id"] if "mailing" in node else node["id"]) for node in nodes]


async def errors(api: GraphQLClient, query: str = CLIENTS, **variables: Any) -> list[str]:
    body = (await api.post(query, variables)).json()
    return [error["message"] for error in body.get("errors", [])]


# --- the property ------------------------------------------------------------------------


def _check_flags(connection: dict[str, Any], expected: list[int]) -> None:
    """Each flag says whether the list holds items beyond the page's edge on its side."""
    got = ids_of(connection)
    info = connection["pageInfo"]
    if not got:
        return  # checked by the caller, which knows the cursors it gave
    start, end = expected.index(got[0]), expected.index(got[-1])
    assert got == expected[start : end + 1]
    assert info["hasPreviousPage"] is (start > 0), (got, expected)
    assert info["hasNextPage"] is (end < len(expected) - 1), (got, expected)
    assert info["startCursor"] == connection["edges"][0]["cursor"] == encode_cursor(got[0])
    assert info["endCursor"] == connection["edges"][-1]["cursor"] == encode_cursor(got[-1])


async def _walk(
    api: GraphQLClient,
    expected: list[int],
    *,
    order: str,
    backward: bool,
    sizes: list[int],
    start: int | None,
    tag: str | None,
) -> None:
    """Page from ``start`` (an index into ``expected``, or an end) to the end of the list."""
    filter_ = None if tag is None else {"operatorCodes": [], "tags": [tag]}
    cursor = None if start is None else encode_cursor(expected[start])
    seen: list[int] = []
    for step in range(len(expected) + 2):
        size = sizes[step % len(sizes)]
        variables: dict[str, Any] = {"order": order, "filter": filter_}
        if backward:
            variables |= {"last": size, "before": cursor}
        else:
            variables |= {"first": size, "after": cursor}
        connection = await page(api, **variables)
        assert connection["totalCount"] == len(expected)
        got = ids_of(connection)
        assert len(got) <= size
        _check_flags(connection, expected)
        info = connection["pageInfo"]
        if backward:
            seen = got + seen
            more, cursor = info["hasPreviousPage"], info["startCursor"]
        else:
            seen += got
            more, cursor = info["hasNextPage"], info["endCursor"]
        if not more:
            break
        assert got, "a page without edges asked the loop to go on"
    else:
        raise AssertionError("the loop did not end")
    if start is None:
        want = expected
    elif backward:
        want = expected[:start]
    else:
        want = expected[start + 1 :]
    assert seen == want


def _run(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(work, loop).result(120)


async def test_pages_put_together_are_the_list_both_ways(api: GraphQLClient) -> None:
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=os.environ.get("PROPERTY_RANDOM", "0") == "0",
    )
    @given(
        tags=st.lists(st.sampled_from("ab"), max_size=25),
        tag=st.sampled_from([None, "a"]),
        order=st.sampled_from(["OLDEST_FIRST", "NEWEST_FIRST"]),
        backward=st.booleans(),
        sizes=st.lists(st.integers(1, 7), min_size=1, max_size=4),
        start=st.one_of(st.none(), st.integers(0, 30)),
    )
    def prop(
        tags: list[str],
        tag: str | None,
        order: str,
        backward: bool,
        sizes: list[int],
        start: int | None,
    ) -> None:
        async def example() -> None:
            await truncate_all()
            rows = [
                Client(phone=f"7900{i:07d}", operator_code="900", tag=t) for i, t in enumerate(tags)
            ]
            await Client.bulk_create(rows)
            ids = sorted(row.id for row in await Client.all())
            matching = [i for i, row_tag in zip(ids, tags, strict=True) if tag in (None, row_tag)]
            expected = matching[::-1] if order == "NEWEST_FIRST" else matching
            at = None if start is None or not expected else start % len(expected)
            await _walk(
                api, expected, order=order, backward=backward, sizes=sizes, start=at, tag=tag
            )

        _run(loop, example())

    await asyncio.to_thread(prop)


# --- every connection, newest first --------------------------------------------------------


@pytest.mark.parametrize("name", list(LISTS))
async def test_every_list_pages_newest_first_both_ways(api: GraphQLClient, name: str) -> None:
    mailing = await make_mailing()
    for _ in range(4):
        await make_client()
        await make_mailing()
    await add_audience(mailing)
    extra: dict[str, Any] = {"id": str(mailing.id)} if name == "mailing.messages" else {}
    everything = ids_of(await page(api, LISTS[name], first=500, **extra))
    assert len(everything) >= 4
    assert everything == sorted(everything)
    newest = everything[::-1]
    forward: list[int] = []
    cursor = None
    while True:
        found = await page(api, LISTS[name], first=2, after=cursor, order="NEWEST_FIRST", **extra)
        forward += ids_of(found)
        if not found["pageInfo"]["hasNextPage"]:
            break
        cursor = found["pageInfo"]["endCursor"]
    assert forward == newest
    # The newest page first, then backward to the oldest: what an "older" button does.
    backward: list[int] = []
    cursor = None
    while True:
        found = await page(api, LISTS[name], last=2, before=cursor, **extra)
        backward = ids_of(found) + backward
        if not found["pageInfo"]["hasPreviousPage"]:
            break
        cursor = found["pageInfo"]["startCursor"]
    assert backward == everything


# --- the edges ---------------------------------------------------------------------------


async def test_a_page_of_nothing_ends_any_loop(api: GraphQLClient) -> None:
    rows = [await make_client() for _ in range(3)]
    for variables in ({"first": 0}, {"last": 0}, {"first": 0, "order": "NEWEST_FIRST"}):
        found = await page(api, **variables)
        assert found["totalCount"] == 3
        assert found["edges"] == []
        assert found["pageInfo"] == {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        }, variables
    # Between cursors, an empty page still says what lies beyond them.
    middle = encode_cursor(rows[1].id)
    found = await page(api, first=0, after=middle)
    assert (found["pageInfo"]["hasPreviousPage"], found["pageInfo"]["hasNextPage"]) == (True, False)
    found = await page(api, last=0, before=middle)
    assert (found["pageInfo"]["hasPreviousPage"], found["pageInfo"]["hasNextPage"]) == (False, True)
    past_the_end = await page(api, first=5, after=encode_cursor(rows[-1].id))
    assert past_the_end["edges"] == []
    assert past_the_end["pageInfo"]["hasNextPage"] is False
    assert past_the_end["pageInfo"]["hasPreviousPage"] is True


async def test_before_alone_means_the_page_just_before_it(api: GraphQLClient) -> None:
    rows = [await make_client() for _ in range(60)]
    found = await page(api, before=encode_cursor(rows[55].id))
    assert ids_of(found) == [row.id for row in rows[5:55]]
    assert (found["pageInfo"]["hasPreviousPage"], found["pageInfo"]["hasNextPage"]) == (True, True)
    # after and before together: the items between them.
    between = await page(
        api, after=encode_cursor(rows[10].id), before=encode_cursor(rows[14].id), first=10
    )
    assert ids_of(between) == [row.id for row in rows[11:14]]
    assert (between["pageInfo"]["hasPreviousPage"], between["pageInfo"]["hasNextPage"]) == (
        True,
        True,
    )


async def test_a_cursor_read_in_one_order_serves_the_other(api: GraphQLClient) -> None:
    rows = [await make_client() for _ in range(5)]
    newest = await page(api, first=2, order="NEWEST_FIRST")
    assert ids_of(newest) == [rows[4].id, rows[3].id]
    older = await page(api, first=10, after=newest["pageInfo"]["endCursor"], order="NEWEST_FIRST")
    assert ids_of(older) == [row.id for row in reversed(rows[:3])]
    # The same cursor, oldest first: what came after it in time.
    later = await page(api, first=10, after=newest["pageInfo"]["endCursor"])
    assert ids_of(later) == [rows[4].id]


async def test_page_sizes_are_refused_clearly_not_cut(api: GraphQLClient) -> None:
    await make_client()
    assert await errors(api, first=501) == [
        "`first` may be at most 500, not 501: page through the rest with `after`"
    ]
    assert await errors(api, last=100_000) == [
        "`last` may be at most 500, not 100000: page through the rest with `before`"
    ]
    assert await errors(api, last=-1) == ["`last` must not be negative"]
    assert await errors(api, first=1, last=1) == [
        "Pass `first` (page forward) or `last` (page backward), not both"
    ]
    assert await errors(api, before="nope") == ["`before` is not a cursor from this API: 'nope'"]
    assert len(ids_of(await page(api, first=500))) == 1
    assert len(ids_of(await page(api, last=500))) == 1
