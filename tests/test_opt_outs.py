"""Opt-outs: the stop list through the API in process, and against a real worker and simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from graphql_api.ids import Kind, global_id
from models import Client, MailingStatus, Message, MessageStatus
from models.services.mailings import MailingChanges, update_mailing
from tasks import hooks
from tests.conftest import GraphQLClient
from tests.support.api import add_audience
from tests.support.engine import (
    Simulator,
    Worker,
    add_clients,
    start_mailing,
    stats_of,
    utcnow,
    wait_for_status,
    wait_until,
)
from tests.support.factories import BULK_PHONES, make_client, make_mailing

OPT_OUT = """mutation($phones: [String!]!) {
    optOutClients(phones: $phones) {
        __typename
        ... on OptOutSummary { listed cancelledMessages clients { id phone optedOutAt } }
        ... on ValidationError { message errors { field message } }
    }
}"""
OPT_IN = """mutation($id: ID!) {
    optInClient(id: $id) {
        __typename
        ... on Client { id optedOutAt }
        ... on NotFoundError { id }
    }
}"""
CREATE = """mutation($input: ClientInput!) {
    createClient(input: $input) { __typename ... on Client { id optedOutAt } }
}"""
DELETE = "mutation($id: ID!) { deleteClient(id: $id) { __typename } }"
IMPORT = """mutation($rows: [ClientInput!]!) {
    importClients(input: $rows) { __typename ... on ImportSummary { created } }
}"""
OPTED_OUT_CLIENTS = """query($optedOut: Boolean) {
    clients(optedOut: $optedOut, first: 50) { totalCount edges { node { phone optedOutAt } } }
}"""
MAILING = "query($id: ID!) { mailing(id: $id) { optedOutClients stats { cancelled } } }"


async def opt_out(gql: GraphQLClient, *phones: str) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.execute(OPT_OUT, {"phones": list(phones)}))["optOutClients"]
    return result


async def test_opting_out_cancels_waiting_messages_at_once(gql: GraphQLClient) -> None:
    stays, leaves = await make_client(), await make_client()
    mailing = await make_mailing(status=MailingStatus.RUNNING)
    assert await add_audience(mailing) == 2

    result = await opt_out(gql, leaves.phone, "79030000001")
    assert result["__typename"] == "OptOutSummary"
    assert result["listed"] == 2  # a phone no client has is listed all the same
    assert result["cancelledMessages"] == 1
    assert [c["phone"] for c in result["clients"]] == [leaves.phone]
    assert datetime.fromisoformat(result["clients"][0]["optedOutAt"]).utcoffset() is not None

    messages = {m.client_id: m for m in await Message.filter(mailing_id=mailing.id)}
    assert messages[stays.id].status is MessageStatus.PENDING
    assert messages[leaves.id].status is MessageStatus.CANCELLED
    assert messages[leaves.id].last_error == "client opted out"
    data = (await gql.execute(MAILING, {"id": str(mailing.id)}))["mailing"]
    assert data == {"optedOutClients": 1, "stats": {"cancelled": 1}}

    # Again: nothing new on the list, nothing more cancelled, the first date kept.
    again = await opt_out(gql, leaves.phone)
    assert (again["listed"], again["cancelledMessages"]) == (0, 0)
    assert again["clients"][0]["optedOutAt"] == result["clients"][0]["optedOutAt"]


async def test_an_opted_out_client_is_left_out_of_new_audiences(gql: GraphQLClient) -> None:
    stays, leaves = await make_client(), await make_client()
    await opt_out(gql, leaves.phone)
    mailing = await make_mailing(status=MailingStatus.RUNNING)
    assert await add_audience(mailing) == 1
    assert await Message.filter(mailing_id=mailing.id).values_list("client_id", flat=True) == [
        stays.id
    ]
    data = (await gql.execute(MAILING, {"id": str(mailing.id)}))["mailing"]
    assert data == {"optedOutClients": 1, "stats": {"cancelled": 0}}


async def test_a_deleted_and_recreated_client_stays_opted_out(gql: GraphQLClient) -> None:
    client = await make_client()
    await opt_out(gql, client.phone)
    assert (await gql.execute(DELETE, {"id": str(client.id)}))["deleteClient"] == {
        "__typename": "Deleted"
    }
    again = (await gql.execute(CREATE, {"input": {"phone": client.phone}}))["createClient"]
    assert again["optedOutAt"] is not None
    await gql.execute(DELETE, {"id": again["id"]})
    imported = await gql.execute(IMPORT, {"rows": [{"phone": client.phone}]})
    assert imported["importClients"] == {"__typename": "ImportSummary", "created": 1}
    row = await Client.get(phone=client.phone)
    assert row.opted_out_at is not None

    # Opting in takes the phone off the list: a client made with it later accepts messages.
    # The first release's integer key is still accepted as an argument (deprecated).
    opted_in = (await gql.execute(OPT_IN, {"id": str(row.id)}))["optInClient"]
    assert opted_in == {
        "__typename": "Client",
        "id": global_id(Kind.CLIENT, row.id),
        "optedOutAt": None,
    }
    await gql.execute(DELETE, {"id": str(row.id)})
    fresh = (await gql.execute(CREATE, {"input": {"phone": client.phone}}))["createClient"]
    assert fresh["optedOutAt"] is None


async def test_import_takes_an_opted_out_column_and_clients_filter_by_it(
    gql: GraphQLClient,
) -> None:
    rows = [
        {"phone": "79030000011", "optedOut": True},
        {"phone": "79030000012", "optedOut": False},
        {"phone": "79030000013"},
    ]
    assert (await gql.execute(IMPORT, {"rows": rows}))["importClients"]["created"] == 3
    stopped = (await gql.execute(OPTED_OUT_CLIENTS, {"optedOut": True}))["clients"]
    assert [e["node"]["phone"] for e in stopped["edges"]] == ["79030000011"]
    subscribed = (await gql.execute(OPTED_OUT_CLIENTS, {"optedOut": False}))["clients"]
    assert subscribed["totalCount"] == 2
    assert (await gql.execute(OPTED_OUT_CLIENTS, {}))["clients"]["totalCount"] == 3


async def test_a_new_phone_on_the_stop_list_opts_the_client_out(gql: GraphQLClient) -> None:
    client = await make_client()
    mailing = await make_mailing(status=MailingStatus.RUNNING)
    await add_audience(mailing)
    await opt_out(gql, "79030000021")
    update = """mutation($id: ID!, $input: ClientPatch!) {
        updateClient(id: $id, input: $input) { ... on Client { optedOutAt } }
    }"""
    moved = await gql.execute(update, {"id": str(client.id), "input": {"phone": "79030000021"}})
    assert moved["updateClient"]["optedOutAt"] is not None
    message = await Message.get(mailing_id=mailing.id, client_id=client.id)
    assert (message.status, message.last_error) == (MessageStatus.CANCELLED, "client opted out")
    back = await gql.execute(update, {"id": str(client.id), "input": {"phone": "79030000022"}})
    assert back["updateClient"]["optedOutAt"] is None


async def test_bad_phones_are_named_and_nothing_is_listed(gql: GraphQLClient) -> None:
    result = await opt_out(gql, "79030000031", "12345")
    assert result["__typename"] == "ValidationError"
    assert [e["field"] for e in result["errors"]] == ["phones.1"]
    missing = (await gql.execute(OPT_IN, {"id": "999999"}))["optInClient"]
    assert missing == {"__typename": "NotFoundError", "id": "999999"}
    assert (await gql.execute(CREATE, {"input": {"phone": "79030000031"}}))["createClient"][
        "optedOutAt"
    ] is None


# -- against a real worker and the simulator ----------------------------------------


@pytest.fixture
async def sim(db: str) -> AsyncIterator[Simulator]:
    simulator = Simulator("--seed", "7")
    yield simulator
    await simulator.close()


async def _wake(mailing_id: int, at: datetime | None = None) -> None:
    await hooks.tend_mailing(mailing_id, at)


@pytest.mark.slow
async def test_an_opt_out_while_messages_wait_for_their_window_stops_them(
    gql: GraphQLClient, sim: Simulator
) -> None:
    now = utcnow()
    # A window closed now for every client: their messages wait for it.
    opens = (now + timedelta(hours=3)).time()
    closes = (now + timedelta(hours=4)).time()
    await add_clients(4)
    worker = Worker(sim)
    try:
        mailing = await start_mailing(
            end_at=now + timedelta(days=2),
            window_start=opens.hour * 60 + opens.minute,
            window_end=closes.hour * 60 + closes.minute,
        )

        async def all_waiting_for_the_window() -> bool:
            waiting = await Message.filter(mailing_id=mailing.id, status=MessageStatus.PENDING)
            return len(waiting) == 4 and all(m.waits_for_window for m in waiting)

        await wait_until(all_waiting_for_the_window, timeout=60)
        stopped_phone = str(BULK_PHONES)
        result = await opt_out(gql, stopped_phone)
        assert result["cancelledMessages"] == 1

        # The window opens now for everyone: the other three go out.
        await update_mailing(mailing.id, MailingChanges(window_given=True, window=None), _wake)

        async def three_sent() -> bool:
            return (await stats_of(mailing.id))["sent"] == 3

        await wait_until(three_sent, timeout=60)
        await wait_for_status(mailing.id, MailingStatus.FINISHED, timeout=60)
    finally:
        worker.stop()
    stopped = await Message.get(mailing_id=mailing.id, phone=stopped_phone)
    assert (stopped.status, stopped.last_error) == (MessageStatus.CANCELLED, "client opted out")
    assert stopped.attempts == 0
    ledger = {int(row[0]) for row in await sim.requests()}
    assert stopped.id not in ledger
    assert len(ledger) == 3
    assert (await stats_of(mailing.id))["cancelled"] == 1
    data = (await gql.execute(MAILING, {"id": str(mailing.id)}))["mailing"]
    assert data["optedOutClients"] == 1
