"""Statistics, a mailing's messages and mailingProgress: all read from the counters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

import graphql_api.context
from graphql_api.context import Context, make_loaders
from graphql_api.ids import Kind, global_id
from graphql_api.schema import schema
from models import MailingStats, MailingStatus, MessageStatus
from tasks import events
from tests.conftest import GraphQLClient
from tests.support.api import STATS, Subscription, add_audience, finalise, key
from tests.support.factories import make_client, make_mailing

MESSAGES = f"""query($id: ID!, $status: MessageStatus, $first: Int, $after: String) {{
    mailing(id: $id) {{
        stats {{ {STATS} }}
        messages(status: $status, first: $first, after: $after) {{
            totalCount
            pageInfo {{ hasNextPage endCursor }}
            edges {{
                cursor
                node {{ id status attempts lastError createdAt sentAt phone client {{ id tag }} }}
            }}
        }}
    }}
}}"""
STATISTICS = f"""query($status: MailingStatus, $first: Int, $after: String) {{
    statistics {{
        totals {{ {STATS} }}
        mailings(status: $status, first: $first, after: $after) {{
            totalCount
            pageInfo {{ hasNextPage endCursor }}
            edges {{ node {{ mailing {{ id status }} stats {{ {STATS} }} }} }}
        }}
    }}
}}"""
PROGRESS = f"""subscription($id: ID!) {{
    mailingProgress(id: $id) {{
        status stats {{ {STATS} }} mailing {{ id status stats {{ sent }} }}
    }}
}}"""


def stats(total: int = 0, pending: int = 0, sent: int = 0, failed: int = 0) -> dict[str, int]:
    return {
        "total": total,
        "pending": pending,
        "sent": sent,
        "failed": failed,
        "expired": 0,
        "cancelled": 0,
    }


async def mailing_with_messages(clients: int, sent: int = 0, failed: int = 0, **fields: Any):  # type: ignore[no-untyped-def]
    mailing = await make_mailing(**fields)
    await add_audience(mailing)
    await finalise(mailing.id, MessageStatus.SENT, sent)
    await finalise(mailing.id, MessageStatus.FAILED, failed)
    return mailing


async def test_mailing_stats_and_messages(gql: GraphQLClient) -> None:
    clients = [await make_client(tag=f"t{i}") for i in range(5)]
    mailing = await mailing_with_messages(5, sent=2, failed=1)
    data = (await gql.execute(MESSAGES, {"id": str(mailing.id)}))["mailing"]
    assert data["stats"] == stats(total=5, pending=2, sent=2, failed=1)
    messages = data["messages"]
    assert messages["totalCount"] == 5
    assert messages["pageInfo"]["hasNextPage"] is False
    nodes = [edge["node"] for edge in messages["edges"]]
    assert [node["status"] for node in nodes] == ["SENT", "SENT", "FAILED", "PENDING", "PENDING"]
    assert [node["client"] for node in nodes] == [
        {"id": global_id(Kind.CLIENT, c.id), "tag": c.tag} for c in clients
    ]
    assert [node["phone"] for node in nodes] == [c.phone for c in clients]
    assert nodes[0]["attempts"] == 1
    assert datetime.fromisoformat(nodes[0]["sentAt"]).utcoffset() is not None
    assert (nodes[3]["sentAt"], nodes[3]["lastError"], nodes[3]["attempts"]) == (None, None, 0)

    for status, count in (("SENT", 2), ("FAILED", 1), ("PENDING", 2), ("EXPIRED", 0)):
        only = await gql.execute(MESSAGES, {"id": str(mailing.id), "status": status})
        page = only["mailing"]["messages"]
        assert page["totalCount"] == len(page["edges"]) == count
        assert {edge["node"]["status"] for edge in page["edges"]} <= {status}


async def test_message_pages(gql: GraphQLClient) -> None:
    for _ in range(7):
        await make_client()
    mailing = await mailing_with_messages(7)
    seen: list[str] = []
    after = None
    while True:
        variables = {"id": str(mailing.id), "first": 3, "after": after}
        page = (await gql.execute(MESSAGES, variables))["mailing"]["messages"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 7
    assert seen == sorted(seen, key=key)


async def test_message_counts_come_from_the_counters(gql: GraphQLClient) -> None:
    await make_client()
    mailing = await mailing_with_messages(1)
    # Counters that disagree with the rows show where the numbers come from.
    await MailingStats.filter(mailing_id=mailing.id).update(total=1000, pending=990, sent=10)
    data = (await gql.execute(MESSAGES, {"id": str(mailing.id)}))["mailing"]
    assert data["messages"]["totalCount"] == 1000
    assert len(data["messages"]["edges"]) == 1
    sent = await gql.execute(MESSAGES, {"id": str(mailing.id), "status": "SENT"})
    assert sent["mailing"]["messages"]["totalCount"] == 10


async def test_a_deleted_client_keeps_its_message(gql: GraphQLClient) -> None:
    client = await make_client(phone="79031234567")
    mailing = await mailing_with_messages(1, sent=1)
    await client.delete()
    node = (await gql.execute(MESSAGES, {"id": str(mailing.id)}))["mailing"]["messages"]["edges"][
        0
    ]["node"]
    assert (node["client"], node["phone"], node["status"]) == (None, "79031234567", "SENT")


async def test_statistics(gql: GraphQLClient) -> None:
    for _ in range(4):
        await make_client()
    first = await mailing_with_messages(4, sent=3)
    second = await mailing_with_messages(4, failed=1, status=MailingStatus.RUNNING)
    deleted = await mailing_with_messages(4, sent=4, deleted_at=datetime.now().astimezone())
    empty = await make_mailing(status=MailingStatus.FINISHED)

    data = (await gql.execute(STATISTICS, {}))["statistics"]
    assert data["totals"] == stats(total=8, pending=4, sent=3, failed=1)
    summaries = data["mailings"]
    assert summaries["totalCount"] == 3
    by_id = {
        str(key(edge["node"]["mailing"]["id"])): edge["node"]["stats"]
        for edge in summaries["edges"]
    }
    assert by_id == {
        str(first.id): stats(total=4, pending=1, sent=3),
        str(second.id): stats(total=4, pending=3, failed=1),
        str(empty.id): stats(),
    }
    assert str(deleted.id) not in by_id

    running = (await gql.execute(STATISTICS, {"status": "RUNNING"}))["statistics"]["mailings"]
    assert [key(edge["node"]["mailing"]["id"]) for edge in running["edges"]] == [second.id]
    assert running["totalCount"] == 1
    page = (await gql.execute(STATISTICS, {"first": 2}))["statistics"]["mailings"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await gql.execute(STATISTICS, {"first": 2, "after": page["pageInfo"]["endCursor"]})
    assert [key(e["node"]["mailing"]["id"]) for e in rest["statistics"]["mailings"]["edges"]] == [
        empty.id
    ]


async def test_statistics_of_nothing(gql: GraphQLClient) -> None:
    data = (await gql.execute(STATISTICS, {}))["statistics"]
    assert data["totals"] == stats()
    assert data["mailings"]["totalCount"] == 0


async def test_stats_of_many_mailings_are_one_batch(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(12):
        await make_mailing()
    batches: list[list[int]] = []
    load = graphql_api.context._load_stats

    async def counting(keys: list[int]) -> Any:
        batches.append(list(keys))
        return await load(keys)

    monkeypatch.setattr(graphql_api.context, "_load_stats", counting)
    context = Context(request=None, response=None, loaders=make_loaders())  # type: ignore[arg-type]
    query = "{ mailings { edges { node { stats { total } } } } statistics { mailings {"
    query += " edges { node { stats { total } mailing { stats { sent } } } } } } }"
    result = await schema.execute(query, context_value=context)
    assert result.errors is None
    assert len(batches) == 1
    assert len(set(batches[0])) == 12


async def test_progress_subscription(gql: GraphQLClient, served_api: str) -> None:
    for _ in range(3):
        await make_client()
    mailing = await mailing_with_messages(3, status=MailingStatus.RUNNING)
    subscription = await Subscription.connect(served_api)
    try:
        assert (await subscription.receive())["type"] == "connection_ack"
        await subscription.subscribe(PROGRESS, {"id": str(mailing.id)})
        event = await subscription.receive()
        assert event["type"] == "next"
        progress = event["payload"]["data"]["mailingProgress"]
        assert progress["status"] == "RUNNING"
        assert progress["stats"] == stats(total=3, pending=3)
        assert progress["mailing"] == {
            "id": global_id(Kind.MAILING, mailing.id),
            "status": "RUNNING",
            "stats": {"sent": 0},
        }

        await finalise(mailing.id, MessageStatus.SENT, 2)
        await events.publish_now(mailing.id)  # as the engine announces what it recorded
        progress = (await subscription.receive())["payload"]["data"]["mailingProgress"]
        assert progress["stats"] == stats(total=3, pending=1, sent=2)
        assert progress["mailing"]["stats"] == {"sent": 2}

        await gql.execute(
            "mutation($id: ID!) { cancelMailing(id: $id) { __typename } }", {"id": str(mailing.id)}
        )
        progress = (await subscription.receive())["payload"]["data"]["mailingProgress"]
        assert progress["status"] == "CANCELLED"
        assert await subscription.receive() == {"id": "1", "type": "complete"}
    finally:
        await subscription.close()


async def test_progress_of_a_missing_mailing(gql: GraphQLClient, served_api: str) -> None:
    subscription = await Subscription.connect(served_api)
    try:
        assert (await subscription.receive())["type"] == "connection_ack"
        await subscription.subscribe(PROGRESS, {"id": "123456"})
        message = await subscription.receive()
        # An execution error, so a result with errors (not a protocol "error").
        assert message["type"] == "next"
        assert message["payload"]["errors"][0]["message"] == "mailing '123456' not found"
        assert await subscription.receive() == {"id": "1", "type": "complete"}
    finally:
        await subscription.close()
