"""The client directory through the API in process: queries, mutations, paging, import."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime
from typing import Any

from graphql_api.ids import Kind, global_id
from models import Client, Message, MessageStatus
from tests.conftest import GraphQLClient
from tests.support.api import CLIENT_RESULT, add_audience, finalise, key, problems
from tests.support.factories import make_client, make_mailing

CREATE = f"mutation($input: ClientInput!) {{ createClient(input: $input) {{ {CLIENT_RESULT} }} }}"
UPDATE = f"""mutation($id: ID!, $input: ClientPatch!) {{
    updateClient(id: $id, input: $input) {{ {CLIENT_RESULT} }}
}}"""
DELETE = """mutation($id: ID!) {
    deleteClient(id: $id) { __typename ... on Deleted { id } ... on NotFoundError { message id } }
}"""
IMPORT = """mutation($rows: [ClientInput!]!) {
    importClients(input: $rows) {
        __typename
        ... on ImportSummary { created }
        ... on ValidationError { message errors { field message } }
    }
}"""
PAGE = """query($first: Int, $after: String, $filter: ClientFilterInput) {
    clients(first: $first, after: $after, filter: $filter) {
        totalCount
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { cursor node { id phone } }
    }
}"""


async def create(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    data = await gql.execute(CREATE, {"input": fields})
    result: dict[str, Any] = data["createClient"]
    return result


async def import_rows(gql: GraphQLClient, rows: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.execute(IMPORT, {"rows": rows}))["importClients"]
    return result


async def test_create_client_with_defaults(gql: GraphQLClient) -> None:
    client = await create(gql, phone="79031234567")
    assert client["__typename"] == "Client"
    assert client["phone"] == "79031234567"
    assert client["operatorCode"] == "903"
    assert client["tag"] == ""
    assert client["timezone"] == "UTC"
    assert client["id"] == global_id(Kind.CLIENT, key(client["id"]))
    assert datetime.fromisoformat(client["createdAt"]).utcoffset() is not None
    row = await Client.get(id=key(client["id"]))
    assert (row.phone, row.operator_code, row.tag, row.timezone) == (
        "79031234567",
        "903",
        "",
        "UTC",
    )


async def test_create_client_with_every_field(gql: GraphQLClient) -> None:
    client = await create(
        gql, phone="79161234567", operatorCode="999", tag="vip", timezone="Europe/Moscow"
    )
    assert (client["operatorCode"], client["tag"], client["timezone"]) == (
        "999",
        "vip",
        "Europe/Moscow",
    )
    explicit_nulls = await create(gql, phone="79161234568", operatorCode=None, tag=None)
    assert (explicit_nulls["operatorCode"], explicit_nulls["tag"]) == ("916", "")


async def test_invalid_client_names_every_field_and_writes_nothing(gql: GraphQLClient) -> None:
    result = await create(
        gql, phone="89031234567", operatorCode="12a", tag="x" * 65, timezone="Mars/Olympus"
    )
    assert problems(result).keys() == {
        "input.phone",
        "input.operatorCode",
        "input.tag",
        "input.timezone",
    }
    assert result["message"]
    assert await Client.all().count() == 0


async def test_phone_rules(gql: GraphQLClient) -> None:
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in "9031234567")
    for phone in ("7903123456", "790312345678", "7903123456a", "7" + arabic_indic, " 79031234567"):
        assert "input.phone" in problems(await create(gql, phone=phone)), phone
    assert (await create(gql, phone="70000000000"))["__typename"] == "Client"


async def test_phone_in_use(gql: GraphQLClient) -> None:
    await make_client(phone="79031234567")
    result = await create(gql, phone="79031234567")
    assert problems(result) == {"input.phone": "already in use by another client"}
    assert await Client.all().count() == 1


async def test_concurrent_creates_of_one_phone_make_one_client(gql: GraphQLClient) -> None:
    results = await asyncio.gather(*(create(gql, phone="79031234567") for _ in range(8)))
    kinds = sorted(result["__typename"] for result in results)
    assert kinds == ["Client"] + ["ValidationError"] * 7
    for result in results:
        if result["__typename"] == "ValidationError":
            assert problems(result) == {"input.phone": "already in use by another client"}
    assert await Client.all().count() == 1


async def test_client_query(gql: GraphQLClient) -> None:
    row = await make_client(tag="a")
    query = "query($id: ID!) { client(id: $id) { id phone tag } }"
    found = await gql.execute(query, {"id": str(row.id)})
    assert found["client"] == {"id": global_id(Kind.CLIENT, row.id), "phone": row.phone, "tag": "a"}
    by_global_id = await gql.execute(query, {"id": found["client"]["id"]})
    assert by_global_id == found
    for missing in (str(row.id + 1000), "abc", "-1", "0", "99999999999999999999"):
        assert (await gql.execute(query, {"id": missing}))["client"] is None


async def test_pages_follow_cursors(gql: GraphQLClient) -> None:
    rows = [await make_client() for _ in range(7)]
    seen: list[str] = []
    after = None
    for expected_next in (True, True, False):
        page = (await gql.execute(PAGE, {"first": 3, "after": after}))["clients"]
        assert page["totalCount"] == 7
        assert page["pageInfo"]["hasNextPage"] is expected_next
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        after = page["pageInfo"]["endCursor"]
    assert seen == [global_id(Kind.CLIENT, row.id) for row in rows]
    empty = (await gql.execute(PAGE, {"first": 3, "after": after}))["clients"]
    assert empty["edges"] == []
    assert empty["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "startCursor": None,
        "endCursor": None,
    }
    nothing = (await gql.execute(PAGE, {"first": 0}))["clients"]
    # No edge to go on from: a loop on hasNextPage ends (tests/test_api_paging.py).
    assert (nothing["edges"], nothing["pageInfo"]["hasNextPage"]) == ([], False)


async def test_cursor_is_opaque_base64_of_the_id(gql: GraphQLClient) -> None:
    row = await make_client()
    page = (await gql.execute(PAGE, {}))["clients"]
    cursor = page["edges"][0]["cursor"]
    assert base64.urlsafe_b64decode(cursor).decode() == str(row.id)


async def test_first_defaults_to_50_and_is_refused_over_500(gql: GraphQLClient) -> None:
    rows = [{"phone": f"7900{i:07d}"} for i in range(520)]
    assert (await import_rows(gql, rows))["created"] == 520
    default = (await gql.execute(PAGE, {}))["clients"]
    assert (len(default["edges"]), default["pageInfo"]["hasNextPage"]) == (50, True)
    full = (await gql.execute(PAGE, {"first": 500}))["clients"]
    assert (len(full["edges"]), full["pageInfo"]["hasNextPage"]) == (500, True)
    assert full["totalCount"] == 520
    over = (await gql.post(PAGE, {"first": 100_000})).json()
    assert over["errors"][0]["message"].startswith("`first` may be at most 500, not 100000")


async def test_bad_page_arguments_are_clear_errors(gql: GraphQLClient) -> None:
    negative = (await gql.post(PAGE, {"first": -1})).json()
    assert negative["data"] is None
    assert negative["errors"][0]["message"] == "`first` must not be negative"
    for cursor in ("not a cursor", "@@@", base64.b64encode(b"abc").decode(), "é"):
        body = (await gql.post(PAGE, {"after": cursor})).json()
        assert "not a cursor from this API" in body["errors"][0]["message"], cursor


async def test_filter_clients(gql: GraphQLClient) -> None:
    a = await make_client(phone="79030000001", tag="vip")
    b = await make_client(phone="79160000001", tag="vip")
    await make_client(phone="79160000002", tag="")

    async def ids(**client_filter: Any) -> list[str]:
        page = (await gql.execute(PAGE, {"filter": client_filter}))["clients"]
        assert page["totalCount"] == len(page["edges"])
        return [str(key(edge["node"]["id"])) for edge in page["edges"]]

    assert await ids(tags=["vip"]) == [str(a.id), str(b.id)]
    assert await ids(operatorCodes=["916"], tags=["vip"]) == [str(b.id)]
    assert len(await ids(operatorCodes=["903", "916"])) == 3
    assert len(await ids()) == 3


async def test_update_client(gql: GraphQLClient) -> None:
    row = await make_client(phone="79031234567", tag="old")
    result = (await gql.execute(UPDATE, {"id": str(row.id), "input": {"tag": "new"}}))[
        "updateClient"
    ]
    assert (result["tag"], result["phone"], result["operatorCode"]) == ("new", row.phone, "903")
    assert datetime.fromisoformat(result["updatedAt"]) >= row.updated_at

    # A derived operator code follows the phone; an explicit one stays.
    moved = (await gql.execute(UPDATE, {"id": str(row.id), "input": {"phone": "79161234567"}}))[
        "updateClient"
    ]
    assert (moved["phone"], moved["operatorCode"]) == ("79161234567", "916")
    await gql.execute(UPDATE, {"id": str(row.id), "input": {"operatorCode": "111"}})
    kept = (await gql.execute(UPDATE, {"id": str(row.id), "input": {"phone": "79261234567"}}))[
        "updateClient"
    ]
    assert kept["operatorCode"] == "111"

    # null resets a field to its default.
    reset = (
        await gql.execute(
            UPDATE,
            {"id": str(row.id), "input": {"operatorCode": None, "tag": None, "timezone": None}},
        )
    )["updateClient"]
    assert (reset["operatorCode"], reset["tag"], reset["timezone"]) == ("926", "", "UTC")


async def test_update_client_errors(gql: GraphQLClient) -> None:
    row = await make_client(phone="79031234567", tag="keep")
    other = await make_client(phone="79161234567")

    async def update(id_: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = (await gql.execute(UPDATE, {"id": id_, "input": fields}))[
            "updateClient"
        ]
        return result

    assert problems(await update(str(row.id), phone=other.phone)) == {
        "input.phone": "already in use by another client"
    }
    assert problems(await update(str(row.id), phone=None, tag="x" * 65)).keys() == {
        "input.phone",
        "input.tag",
    }
    assert (await update("12x", tag="a"))["__typename"] == "NotFoundError"
    missing = await update(str(other.id + 100), tag="a")
    assert missing == {
        "__typename": "NotFoundError",
        "message": f"client {other.id + 100} not found",
        "id": str(other.id + 100),
    }
    same = await update(str(row.id))
    assert (same["phone"], same["tag"]) == (row.phone, "keep")
    assert (await Client.get(id=row.id)).tag == "keep"


async def test_pending_messages_follow_a_client_edit(gql: GraphQLClient) -> None:
    row = await make_client(phone="79031234567")
    sent_mailing = await make_mailing()
    pending_mailing = await make_mailing()
    await add_audience(sent_mailing)
    await add_audience(pending_mailing)
    await finalise(sent_mailing.id, MessageStatus.SENT, 1)
    patch = {"phone": "79161234567", "timezone": "Asia/Tokyo"}
    await gql.execute(UPDATE, {"id": str(row.id), "input": patch})
    sent = await Message.get(mailing_id=sent_mailing.id)
    pending = await Message.get(mailing_id=pending_mailing.id)
    assert (sent.phone, sent.timezone) == ("79031234567", "UTC")
    assert (pending.phone, pending.timezone) == ("79161234567", "Asia/Tokyo")


async def test_delete_client(gql: GraphQLClient) -> None:
    row = await make_client(phone="79031234567")
    sent_mailing = await make_mailing()
    pending_mailing = await make_mailing()
    await add_audience(sent_mailing)
    await add_audience(pending_mailing)
    await finalise(sent_mailing.id, MessageStatus.SENT, 1)

    deleted = (await gql.execute(DELETE, {"id": str(row.id)}))["deleteClient"]
    assert deleted == {"__typename": "Deleted", "id": global_id(Kind.CLIENT, row.id)}
    assert not await Client.filter(id=row.id).exists()
    sent = await Message.get(mailing_id=sent_mailing.id)
    cancelled = await Message.get(mailing_id=pending_mailing.id)
    assert (sent.status, sent.client_id, sent.phone) == (MessageStatus.SENT, None, row.phone)
    assert (cancelled.status, cancelled.client_id) == (MessageStatus.CANCELLED, None)
    stats = await pending_mailing.stats  # type: ignore[attr-defined]
    assert (stats.total, stats.pending, stats.cancelled) == (1, 0, 1)

    for id_ in (str(row.id), "nope"):
        again = (await gql.execute(DELETE, {"id": id_}))["deleteClient"]
        assert again == {
            "__typename": "NotFoundError",
            "message": f"client {id_} not found",
            "id": id_,
        }


async def test_import_clients(gql: GraphQLClient) -> None:
    rows = [
        {"phone": "79030000001"},
        {"phone": "79030000002", "operatorCode": "111", "tag": "t", "timezone": "Asia/Tokyo"},
        {"phone": "79030000003", "tag": None, "timezone": None},
    ]
    assert await import_rows(gql, rows) == {"__typename": "ImportSummary", "created": 3}
    stored = {c.phone: c for c in await Client.all()}
    assert stored["79030000001"].operator_code == "903"
    assert (stored["79030000002"].operator_code, stored["79030000002"].timezone) == (
        "111",
        "Asia/Tokyo",
    )
    assert (stored["79030000003"].tag, stored["79030000003"].timezone) == ("", "UTC")
    assert await import_rows(gql, []) == {"__typename": "ImportSummary", "created": 0}


async def test_import_is_all_or_nothing_and_names_every_problem_at_once(
    gql: GraphQLClient,
) -> None:
    # Issue 21: a bad file was reported in three rounds (the fields' rules,
    # then a phone repeated in the call, then a phone in use); one answer now
    # names them all, row by row, in order.
    await make_client(phone="79039999999")
    await make_client(phone="79039999998")
    rows = [{"phone": f"7903000{i:04d}"} for i in range(30)]
    rows[3] = {"phone": "123"}
    rows[17] = {"phone": rows[5]["phone"]}
    rows[20] = {"phone": "79039999999"}
    rows[25] = {"phone": "79030009925", "timezone": "Nowhere", "operatorCode": "1"}
    # A phone in use on a row with another problem is named as well.
    rows[28] = {"phone": "79039999998", "tag": "x" * 65}
    result = await import_rows(gql, rows)
    assert result["__typename"] == "ValidationError"
    assert [error["field"] for error in result["errors"]] == [
        "input.3.phone",
        "input.17.phone",
        "input.20.phone",
        "input.25.operatorCode",
        "input.25.timezone",
        "input.28.phone",
        "input.28.tag",
    ]
    found = problems(result)
    assert found["input.17.phone"] == "repeats the phone of input.5"
    assert found["input.20.phone"] == found["input.28.phone"] == "already in use by another client"
    assert result["message"] == "7 problems in 5 rows; nothing was imported"
    assert await Client.all().count() == 2


async def test_import_limits(gql: GraphQLClient) -> None:
    too_many = [{"phone": f"79{i:09d}"} for i in range(10_001)]
    result = await import_rows(gql, too_many)
    assert problems(result).keys() == {"input"}
    assert await Client.all().count() == 0
    bad = [{"phone": "x"} for _ in range(500)]
    result = await import_rows(gql, bad)
    assert len(result["errors"]) == 100
    assert result["message"] == (
        "500 problems in 500 rows; nothing was imported (the first 100 are listed)"
    )


async def test_import_ten_thousand(gql: GraphQLClient) -> None:
    rows = [{"phone": f"79{i:09d}", "tag": f"t{i % 7}"} for i in range(10_000)]
    assert (await import_rows(gql, rows))["created"] == 10_000
    assert await Client.all().count() == 10_000
    assert await Client.filter(tag="t3").count() == len(range(3, 10_000, 7))
