"""Relay's Global Object Identification: ``Node``, ``node(id:)``, ``nodes(ids:)``, and old ids.

The schema of the last release is ``tests/api_release.graphql``: the schema
must not break it, and every dangerous change (one a client may notice) is
announced in the CHANGELOG.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from graphql import build_schema, find_breaking_changes, find_dangerous_changes

from graphql_api.ids import Kind, global_id
from models import Message
from tests.conftest import DATA_DIR, GraphQLClient
from tests.support.api import add_audience, key, utcnow
from tests.support.factories import make_client, make_mailing
from tests.support.node import NODE, NPM, npm_install

ROOT = Path(__file__).resolve().parent.parent

NODE_QUERY = """query($id: ID!) {
    node(id: $id) {
        __typename id
        ... on Client { phone }
        ... on Mailing { text }
        ... on Message { status }
    }
}"""
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"


async def test_every_object_is_found_by_its_id(gql: GraphQLClient) -> None:
    client = await make_client(tag="n")
    mailing = await make_mailing(text="Relay")
    await add_audience(mailing)
    message = await Message.get(mailing_id=mailing.id)
    query = """query($id: ID!) { mailing(id: $id) {
        id messages { edges { node { id client { id } } } }
    } }"""
    data = (await gql.execute(query, {"id": str(mailing.id)}))["mailing"]
    [edge] = data["messages"]["edges"]
    ids = [data["id"], edge["node"]["id"], edge["node"]["client"]["id"]]
    assert ids == [
        global_id(Kind.MAILING, mailing.id),
        global_id(Kind.MESSAGE, message.id),
        global_id(Kind.CLIENT, client.id),
    ]
    assert len(set(ids)) == 3
    answers = [(await gql.execute(NODE_QUERY, {"id": id_}))["node"] for id_ in ids]
    assert answers == [
        {"__typename": "Mailing", "id": ids[0], "text": "Relay"},
        {"__typename": "Message", "id": ids[1], "status": "PENDING"},
        {"__typename": "Client", "id": ids[2], "phone": client.phone},
    ]
    many = (await gql.execute(NODES, {"ids": [ids[2], "nope", ids[0], ids[2]]}))["nodes"]
    assert many == [
        {"__typename": "Client", "id": ids[2]},
        None,
        {"__typename": "Mailing", "id": ids[0]},
        {"__typename": "Client", "id": ids[2]},
    ]


async def test_an_id_that_names_nothing_is_null(gql: GraphQLClient) -> None:
    deleted = await make_mailing(deleted_at=utcnow())
    await make_client()
    await add_audience(deleted)
    message = await Message.get(mailing_id=deleted.id)
    for given in [
        "abc",
        "",
        str(deleted.id),  # an integer key names no type
        global_id(Kind.MAILING, deleted.id),
        global_id(Kind.MESSAGE, message.id),  # a deleted mailing's message
        global_id(Kind.CLIENT, 10**6),
    ]:
        assert (await gql.execute(NODE_QUERY, {"id": given}))["node"] is None, given


async def test_nodes_refuses_more_than_a_page(gql: GraphQLClient) -> None:
    response = await gql.post(NODES, {"ids": ["x"] * 501})
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert (await gql.execute(NODES, {"ids": ["x"] * 500}))["nodes"] == [None] * 500


async def test_the_integer_keys_of_the_first_release_stay_accepted(gql: GraphQLClient) -> None:
    client = await make_client()
    mailing = await make_mailing()
    found = await gql.execute(
        "query($c: ID!, $m: ID!) { client(id: $c) { id } mailing(id: $m) { id } }",
        {"c": str(client.id), "m": str(mailing.id)},
    )
    assert key(found["client"]["id"]) == client.id
    assert key(found["mailing"]["id"]) == mailing.id
    pause = "mutation($id: ID!) { pauseMailing(id: $id) { ... on Mailing { id status } } }"
    paused = await gql.execute(pause, {"id": str(mailing.id)})
    assert paused["pauseMailing"] == {"id": found["mailing"]["id"], "status": "PAUSED"}
    export = await gql.http.get(f"/exports/mailings/{found['mailing']['id']}/messages.csv")
    assert export.status_code == 200


# graphql-inspector's words for the same changes (its criticality DANGEROUS).
ANNOUNCED_TO_INSPECTOR = {
    f"'{name}' object implements 'Node' interface" for name in ("Client", "Mailing", "Message")
} | {
    # CHANGELOG, "Added": opt-outs (issue 23).
    "Argument 'optedOut: Boolean' added to field 'Query.clients'",
}
ANNOUNCED = {
    # CHANGELOG, "Changed": ids are global (Relay); the types gained the Node interface.
    "Node added to interfaces implemented by Client.",
    "Node added to interfaces implemented by Mailing.",
    "Node added to interfaces implemented by Message.",
    # CHANGELOG, "Added": opt-outs (issue 23).
    "An optional argument Query.clients(optedOut:) was added.",
    "An optional field ClientInput.optedOut was added.",
}


def test_no_unannounced_change_since_the_last_release() -> None:
    released = build_schema((ROOT / "tests" / "api_release.graphql").read_text())
    current = build_schema((ROOT / "schema.graphql").read_text())
    assert [change.description for change in find_breaking_changes(released, current)] == []
    dangerous = {change.description for change in find_dangerous_changes(released, current)}
    assert dangerous <= ANNOUNCED, dangerous - ANNOUNCED


def test_graphql_inspector_finds_no_unannounced_change() -> None:
    """The same check by graphql-inspector (npm, pinned in ``tests/schema_inspector/``)."""
    if NODE is None or NPM is None:
        pytest.skip("Node.js (node and npm) is not installed; CI has it")
    files = ("package.json", "package-lock.json", "diff.mjs")
    package = npm_install(ROOT / "tests" / "schema_inspector", files, DATA_DIR / "inspector")
    released, current = ROOT / "tests" / "api_release.graphql", ROOT / "schema.graphql"
    finished = subprocess.run(
        [NODE, "diff.mjs", str(released), str(current)],
        cwd=package,
        env={"PATH": str(Path(NODE).parent)},
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    changes = json.loads(finished.stdout)
    assert [c["message"] for c in changes if c["level"] == "BREAKING"] == []
    dangerous = {c["message"] for c in changes if c["level"] == "DANGEROUS"}
    assert dangerous <= ANNOUNCED_TO_INSPECTOR, dangerous - ANNOUNCED_TO_INSPECTOR
