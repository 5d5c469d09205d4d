"""Mailings through the API in process: create, read, update, pause, resume, cancel, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from graphql_api.ids import Kind, global_id
from models import Mailing, MailingStats, MailingStatus
from models.db import connection
from models.services import compare_and_set
from tests.conftest import GraphQLClient
from tests.support.api import (
    MAILING_RESULT,
    flush_wakeups,
    hours,
    iso,
    key,
    problems,
    queued_wakeups,
    utcnow,
)
from tests.support.factories import make_mailing

CREATE = (
    f"mutation($input: MailingInput!) {{ createMailing(input: $input) {{ {MAILING_RESULT} }} }}"
)
UPDATE = f"""mutation($id: ID!, $input: MailingPatch!) {{
    updateMailing(id: $id, input: $input) {{ {MAILING_RESULT} }}
}}"""
LIFECYCLE = {
    name: f"mutation($id: ID!) {{ {name}(id: $id) {{ {MAILING_RESULT} }} }}"
    for name in ("pauseMailing", "resumeMailing", "cancelMailing")
}
DELETE = """mutation($id: ID!) {
    deleteMailing(id: $id) { __typename ... on Deleted { id } ... on NotFoundError { message id } }
}"""
GET = "query($id: ID!) { mailing(id: $id) { id status } }"
LIST = """query($status: MailingStatus, $first: Int, $after: String) {
    mailings(status: $status, first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id status } }
    }
}"""


def mailing_input(**fields: Any) -> dict[str, Any]:
    start = utcnow() + hours(1)
    return {"text": "Hello", "startAt": iso(start), "endAt": iso(start + hours(2)), **fields}


async def create(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.execute(CREATE, {"input": mailing_input(**fields)}))[
        "createMailing"
    ]
    return result


async def update(gql: GraphQLClient, id_: object, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.execute(UPDATE, {"id": str(id_), "input": fields}))[
        "updateMailing"
    ]
    return result


async def change(gql: GraphQLClient, mutation: str, id_: object) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.execute(LIFECYCLE[mutation], {"id": str(id_)}))[mutation]
    return result


async def test_create_mailing(gql: GraphQLClient) -> None:
    flush_wakeups()
    mailing = await create(
        gql,
        text="Sale!",
        startAt="2030-01-01T12:00:00+03:00",
        endAt="2030-01-01T18:00:00Z",
        filter={"operatorCodes": ["903", "903", "916"], "tags": ["vip"]},
        sendWindow={"start": "22:00", "end": "06:30"},
    )
    assert mailing["__typename"] == "Mailing"
    assert mailing["text"] == "Sale!"
    assert mailing["startAt"] == "2030-01-01T09:00:00+00:00"
    assert mailing["endAt"] == "2030-01-01T18:00:00+00:00"
    assert mailing["status"] == "SCHEDULED"
    assert mailing["filter"] == {"operatorCodes": ["903", "916"], "tags": ["vip"]}
    assert mailing["sendWindow"] == {"start": "22:00", "end": "06:30"}
    assert mailing["stats"] == dict.fromkeys(
        ("total", "pending", "sent", "failed", "expired", "cancelled"), 0
    )
    row = await Mailing.get(id=key(mailing["id"]))
    assert (row.window_start, row.window_end) == (22 * 60, 6 * 60 + 30)
    assert (row.filter_version, row.audience_version) == (1, None)
    assert await MailingStats.filter(mailing_id=row.id).exists()
    # The engine is woken up at the start, after the commit.
    assert queued_wakeups() == [("tend_mailing", (row.id,))]


async def test_create_mailing_defaults_and_immediate_start(gql: GraphQLClient) -> None:
    flush_wakeups()
    mailing = await create(gql, startAt=iso(utcnow() - hours(1)))
    assert (mailing["filter"], mailing["sendWindow"]) == ({"operatorCodes": [], "tags": []}, None)
    assert mailing["status"] == "SCHEDULED"
    assert queued_wakeups() == [("tend_mailing", (key(mailing["id"]),))]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"startAt": "2030-01-01T12:00:00"}, {"input.startAt"}),
        ({"endAt": "2030-01-01"}, {"input.endAt"}),
        ({"startAt": "tomorrow", "endAt": "2030-13-01T00:00Z"}, {"input.startAt", "input.endAt"}),
        (
            {"startAt": "2030-01-02T00:00:00Z", "endAt": "2030-01-01T00:00:00Z"},
            {"input.endAt"},
        ),
        (
            {"startAt": "2030-01-01T00:00:00Z", "endAt": "2030-01-01T03:00:00+03:00"},
            {"input.endAt"},
        ),
        ({"text": ""}, {"input.text"}),
        ({"text": "   "}, {"input.text"}),
        ({"text": "x" * 1001}, {"input.text"}),
        ({"filter": {"operatorCodes": ["903", "9a3"]}}, {"input.filter.operatorCodes.1"}),
        ({"filter": {"tags": ["ok", "t" * 65]}}, {"input.filter.tags.1"}),
        ({"filter": {"tags": [str(i) for i in range(1001)]}}, {"input.filter.tags"}),
        (
            {"sendWindow": {"start": "24:00", "end": "7:00"}},
            {"input.sendWindow.start", "input.sendWindow.end"},
        ),
        ({"sendWindow": {"start": "09:00", "end": "09:00"}}, {"input.sendWindow"}),
    ],
)
async def test_invalid_mailing(
    gql: GraphQLClient, fields: dict[str, Any], expected: set[str]
) -> None:
    result = await create(gql, **fields)
    assert problems(result).keys() == expected
    assert await Mailing.all().count() == 0


async def test_an_end_in_the_past_is_named_with_every_other_problem(gql: GraphQLClient) -> None:
    # It was found only once the rest was right, so a form showed it last.
    past = utcnow() - hours(1)
    result = await create(gql, text="", startAt=iso(past - hours(1)), endAt=iso(past))
    assert problems(result) == {
        "input.text": problems(result)["input.text"],
        "input.endAt": "must be in the future",
    }
    assert await Mailing.all().count() == 0


async def test_naive_instant_message(gql: GraphQLClient) -> None:
    result = await create(gql, startAt="2030-01-01T12:00:00")
    assert "UTC offset" in problems(result)["input.startAt"]


async def test_text_of_exactly_1000_characters(gql: GraphQLClient) -> None:
    assert (await create(gql, text="x" * 1000))["text"] == "x" * 1000


async def test_mailing_query_and_list(gql: GraphQLClient) -> None:
    scheduled = await make_mailing()
    running = await make_mailing(status=MailingStatus.RUNNING)
    deleted = await make_mailing(deleted_at=utcnow())
    got = (await gql.execute(GET, {"id": str(running.id)}))["mailing"]
    assert got == {"id": global_id(Kind.MAILING, running.id), "status": "RUNNING"}
    for missing in (str(deleted.id), str(running.id + 100), "x1"):
        assert (await gql.execute(GET, {"id": missing}))["mailing"] is None

    everything = (await gql.execute(LIST, {}))["mailings"]
    assert everything["totalCount"] == 2
    assert [key(e["node"]["id"]) for e in everything["edges"]] == [scheduled.id, running.id]
    only_running = (await gql.execute(LIST, {"status": "RUNNING"}))["mailings"]
    assert [key(e["node"]["id"]) for e in only_running["edges"]] == [running.id]
    assert only_running["totalCount"] == 1
    first_page = (await gql.execute(LIST, {"first": 1}))["mailings"]
    assert first_page["pageInfo"]["hasNextPage"] is True
    after = first_page["pageInfo"]["endCursor"]
    second_page = (await gql.execute(LIST, {"first": 1, "after": after}))["mailings"]
    assert [key(e["node"]["id"]) for e in second_page["edges"]] == [running.id]
    assert second_page["pageInfo"]["hasNextPage"] is False


async def test_update_fields(gql: GraphQLClient) -> None:
    row = await make_mailing(window_start=60, window_end=120, filter_tags=["a"])
    updated = await update(gql, row.id, text="New text")
    assert updated["text"] == "New text"
    assert updated["sendWindow"] == {"start": "01:00", "end": "02:00"}  # left out: kept
    assert datetime.fromisoformat(updated["updatedAt"]) > row.updated_at

    moved = await update(gql, row.id, sendWindow={"start": "23:00", "end": "01:00"})
    assert moved["sendWindow"] == {"start": "23:00", "end": "01:00"}
    cleared = await update(gql, row.id, sendWindow=None)
    assert cleared["sendWindow"] is None
    stored = await Mailing.get(id=row.id)
    assert (stored.window_start, stored.window_end, stored.text) == (None, None, "New text")


async def test_update_filter_bumps_its_version(gql: GraphQLClient) -> None:
    flush_wakeups()
    row = await make_mailing(filter_tags=["a"])
    same = await update(gql, row.id, filter={"tags": ["a", "a"]})
    assert same["filter"]["tags"] == ["a"]
    assert (await Mailing.get(id=row.id)).filter_version == 1
    changed = await update(gql, row.id, filter={"operatorCodes": ["903"]})
    assert changed["filter"] == {"operatorCodes": ["903"], "tags": []}
    assert (await Mailing.get(id=row.id)).filter_version == 2
    # No audience yet: the engine reads the new filter when it starts.
    assert queued_wakeups() == []

    started = await make_mailing(
        status=MailingStatus.RUNNING, audience_version=1, filter_tags=["a"]
    )
    assert (await update(gql, started.id, filter=None))["filter"]["tags"] == []
    assert (await Mailing.get(id=started.id)).filter_version == 2
    assert queued_wakeups() == [("tend_mailing", (started.id,))]


async def test_update_period(gql: GraphQLClient) -> None:
    flush_wakeups()
    start = utcnow() + hours(1)
    row = await make_mailing(start_at=start, end_at=start + hours(2))
    assert problems(await update(gql, row.id, endAt=iso(start - hours(1)))) == {
        "input.endAt": "must be later than startAt"
    }
    assert problems(await update(gql, row.id, startAt=iso(start + hours(3)))) == {
        "input.startAt": "must be earlier than endAt"
    }
    assert problems(
        await update(gql, row.id, startAt=iso(start + hours(5)), endAt=iso(start + hours(4)))
    ) == {"input.endAt": "must be later than startAt"}
    assert queued_wakeups() == []
    later = start + hours(3)
    moved = await update(gql, row.id, startAt=iso(later), endAt=iso(later + hours(1)))
    assert datetime.fromisoformat(moved["startAt"]) == later
    assert queued_wakeups() == [("tend_mailing", (row.id,))]


async def test_update_rejects_nulls_and_bad_ids(gql: GraphQLClient) -> None:
    row = await make_mailing()
    assert problems(await update(gql, row.id, text=None, startAt=None, endAt=None)) == {
        "input.text": "must not be null",
        "input.startAt": "must not be null",
        "input.endAt": "must not be null",
    }
    assert await update(gql, "abc", text="x") == {
        "__typename": "NotFoundError",
        "message": "mailing abc not found",
        "id": "abc",
    }
    missing = await update(gql, row.id + 100, text="x")
    assert missing == {
        "__typename": "NotFoundError",
        "message": f"mailing {row.id + 100} not found",
        "id": str(row.id + 100),
    }
    deleted = await make_mailing(deleted_at=utcnow())
    assert (await update(gql, deleted.id, text="x"))["__typename"] == "NotFoundError"


async def test_moving_a_running_mailing_into_the_future_reschedules_it(
    gql: GraphQLClient,
) -> None:
    row = await make_mailing(status=MailingStatus.RUNNING, audience_version=1)
    later = utcnow() + hours(2)
    moved = await update(gql, row.id, startAt=iso(later), endAt=iso(later + hours(1)))
    assert moved["status"] == "SCHEDULED"
    earlier = utcnow() - hours(1)
    paused = await make_mailing(status=MailingStatus.PAUSED)
    assert (await update(gql, paused.id, startAt=iso(earlier)))["status"] == "PAUSED"


@pytest.mark.parametrize("status", [MailingStatus.FINISHED, MailingStatus.CANCELLED])
async def test_a_mailing_that_is_over_cannot_be_edited(
    gql: GraphQLClient, status: MailingStatus
) -> None:
    row = await make_mailing(status=status, text="Old")
    result = await update(gql, row.id, text="New")
    assert result == {
        "__typename": "ConflictError",
        "message": f"mailing {row.id} is {status.value} and can no longer be edited",
    }
    assert (await Mailing.get(id=row.id)).text == "Old"


async def test_pause_and_resume(gql: GraphQLClient) -> None:
    flush_wakeups()
    row = await make_mailing(start_at=utcnow() + hours(1), end_at=utcnow() + hours(2))
    assert (await change(gql, "pauseMailing", row.id))["status"] == "PAUSED"
    assert queued_wakeups() == [("tend_mailing", (row.id,))]
    assert (await change(gql, "pauseMailing", row.id))["status"] == "PAUSED"
    assert len(queued_wakeups()) == 1  # nothing changed, nobody woken
    flush_wakeups()
    # It had not started: it goes back to waiting for its start.
    assert (await change(gql, "resumeMailing", row.id))["status"] == "SCHEDULED"
    assert queued_wakeups() == [("tend_mailing", (row.id,))]
    assert (await change(gql, "resumeMailing", row.id))["status"] == "SCHEDULED"


async def test_resume_a_started_mailing(gql: GraphQLClient) -> None:
    row = await make_mailing(status=MailingStatus.RUNNING, audience_version=1)
    assert (await change(gql, "pauseMailing", row.id))["status"] == "PAUSED"
    assert (await change(gql, "resumeMailing", row.id))["status"] == "RUNNING"
    assert (await change(gql, "resumeMailing", row.id))["status"] == "RUNNING"
    due_but_not_built = await make_mailing(status=MailingStatus.PAUSED)
    assert (await change(gql, "resumeMailing", due_but_not_built.id))["status"] == "SCHEDULED"


async def test_cancel(gql: GraphQLClient) -> None:
    flush_wakeups()
    row = await make_mailing(status=MailingStatus.RUNNING)
    assert (await change(gql, "cancelMailing", row.id))["status"] == "CANCELLED"
    assert queued_wakeups() == [("tend_mailing", (row.id,))]
    assert (await change(gql, "cancelMailing", row.id))["status"] == "CANCELLED"
    paused = await make_mailing(status=MailingStatus.PAUSED)
    assert (await change(gql, "cancelMailing", paused.id))["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("mutation", "status"),
    [
        ("pauseMailing", MailingStatus.FINISHED),
        ("pauseMailing", MailingStatus.CANCELLED),
        ("resumeMailing", MailingStatus.FINISHED),
        ("resumeMailing", MailingStatus.CANCELLED),
        ("cancelMailing", MailingStatus.FINISHED),
    ],
)
async def test_lifecycle_conflicts(
    gql: GraphQLClient, mutation: str, status: MailingStatus
) -> None:
    row = await make_mailing(status=status)
    result = await change(gql, mutation, row.id)
    assert result["__typename"] == "ConflictError"
    assert str(row.id) in result["message"]
    assert (await Mailing.get(id=row.id)).status is status


@pytest.mark.parametrize("mutation", ["pauseMailing", "resumeMailing", "cancelMailing"])
async def test_lifecycle_not_found(gql: GraphQLClient, mutation: str) -> None:
    deleted = await make_mailing(deleted_at=utcnow())
    for id_ in (str(deleted.id), str(deleted.id + 100), "1.5"):
        result = await change(gql, mutation, id_)
        assert result == {
            "__typename": "NotFoundError",
            "message": f"mailing {id_} not found",
            "id": id_,
        }


async def test_delete(gql: GraphQLClient) -> None:
    flush_wakeups()
    running = await make_mailing(status=MailingStatus.RUNNING)
    finished = await make_mailing(status=MailingStatus.FINISHED)
    for row, kept_status in (
        (running, MailingStatus.CANCELLED),
        (finished, MailingStatus.FINISHED),
    ):
        result = (await gql.execute(DELETE, {"id": str(row.id)}))["deleteMailing"]
        assert result == {"__typename": "Deleted", "id": global_id(Kind.MAILING, row.id)}
        stored = await Mailing.get(id=row.id)
        assert stored.status is kept_status
        assert stored.deleted_at is not None
        assert (await gql.execute(GET, {"id": str(row.id)}))["mailing"] is None
    assert queued_wakeups() == sorted(
        [("tend_mailing", (running.id,)), ("tend_mailing", (finished.id,))]
    )
    assert (await gql.execute(LIST, {}))["mailings"]["totalCount"] == 0
    for id_ in (str(running.id), "nope"):
        again = (await gql.execute(DELETE, {"id": id_}))["deleteMailing"]
        assert again == {
            "__typename": "NotFoundError",
            "message": f"mailing {id_} not found",
            "id": id_,
        }


async def test_status_change_never_overwrites_the_engine(db: str) -> None:
    """A compare-and-set fails when the status changed since it was read."""
    row = await make_mailing(status=MailingStatus.RUNNING)
    await Mailing.filter(id=row.id).update(status=MailingStatus.FINISHED)  # the engine, meanwhile
    assert not await compare_and_set(connection(), row, {"status": MailingStatus.PAUSED})
    assert (await Mailing.get(id=row.id)).status is MailingStatus.FINISHED
    fresh = await Mailing.get(id=row.id)
    with pytest.raises(AssertionError, match="no transition"):
        await compare_and_set(connection(), fresh, {"status": MailingStatus.PAUSED})
    assert await compare_and_set(connection(), fresh, {"text": "x"})
    assert (await Mailing.get(id=row.id)).text == "x"
