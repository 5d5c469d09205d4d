"""The audit trail: one row per change made through a mutation, with the right actor, or none."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest

from models import AuditEntry
from tests.conftest import GraphQLClient
from tests.support.api import iso, key, utcnow
from tests.support.inprocess import api_client
from tests.support.oidc import AUDIENCE, FakeIdentityProvider

API_TOKEN = "audit-api-token-31337"

LOG = """query($objectId: ID, $objectType: String, $actor: String, $first: Int, $after: String) {
    auditLog(objectId: $objectId, objectType: $objectType, actor: $actor, first: $first,
             after: $after) {
        totalCount
        pageInfo { hasNextPage endCursor }
        edges { node {
            id at actor actorName operation objectType objectId
            changes { field before after }
        } }
    }
}"""


def mailing_input(text: str = "Hello") -> dict[str, Any]:
    start = utcnow() + timedelta(hours=1)
    return {"text": text, "startAt": iso(start), "endAt": iso(start + timedelta(hours=2))}


def _on_one(
    operation: str, object_type: str, ids: dict[str, str]
) -> tuple[str, str, dict[str, Any], str]:
    """A mutation whose only argument is the id of the object it changes."""
    document = f"mutation($id: ID!) {{ {operation}(id: $id) {{ __typename }} }}"
    return (operation, document, {"id": ids.get(object_type)}, object_type)


# Each mutation once, in an order that lets each change something, with the object it names.
def _steps(ids: dict[str, str]) -> list[tuple[str, str, dict[str, Any], str]]:
    return [
        (
            "createClient",
            "mutation($input: ClientInput!) { createClient(input: $input) "
            "{ ... on Client { id } } }",
            {"input": {"phone": "79031110001"}},
            "client",
        ),
        (
            "updateClient",
            'mutation($id: ID!) { updateClient(id: $id, input: {tag: "vip"}) { __typename } }',
            {"id": ids.get("client")},
            "client",
        ),
        (
            "optOutClients",
            'mutation { optOutClients(phones: ["79031110001"]) { __typename } }',
            {},
            "stop_list",
        ),
        _on_one("optInClient", "client", ids),
        _on_one("deleteClient", "client", ids),
        (
            "importClients",
            'mutation { importClients(input: [{phone: "79031110002"}]) { __typename } }',
            {},
            "client",
        ),
        (
            "createMailing",
            "mutation($input: MailingInput!) { createMailing(input: $input) "
            "{ ... on Mailing { id } } }",
            {"input": mailing_input()},
            "mailing",
        ),
        (
            "updateMailing",
            'mutation($id: ID!) { updateMailing(id: $id, input: {text: "Hi"}) { __typename } }',
            {"id": ids.get("mailing")},
            "mailing",
        ),
        _on_one("pauseMailing", "mailing", ids),
        _on_one("resumeMailing", "mailing", ids),
        _on_one("cancelMailing", "mailing", ids),
        _on_one("deleteMailing", "mailing", ids),
    ]


async def _each_mutation_once(client: GraphQLClient, actor: str, name: str) -> None:
    ids: dict[str, str] = {}
    for index in range(len(_steps(ids))):
        operation, document, variables, object_type = _steps(ids)[index]
        before = await AuditEntry.all().count()
        data = await client.execute(document, variables)
        created = data[operation]
        if operation in ("createClient", "createMailing"):
            ids[object_type] = created["id"]
        rows = await AuditEntry.filter(id__gt=0).order_by("-id").limit(2)
        assert await AuditEntry.all().count() == before + 1, operation
        row = rows[0]
        assert (row.operation, row.actor, row.actor_name) == (operation, actor, name)
        assert row.object_type == object_type
        if object_type != "stop_list" and operation != "importClients":
            assert row.object_id == str(key(ids[object_type])), operation
        assert row.changes, operation


async def test_each_mutation_leaves_one_row_under_the_api_token(db: str) -> None:
    async with api_client(API_TOKEN, api_token=API_TOKEN) as client:
        await _each_mutation_once(client, "api_token", "")
        # What changed, before and after, newest first.
        log = (await client.execute(LOG, {"objectType": "mailing", "first": 2}))["auditLog"]
    assert log["totalCount"] == 6
    newest, previous = (edge["node"] for edge in log["edges"])
    assert (newest["operation"], previous["operation"]) == ("deleteMailing", "cancelMailing")
    status = {c["field"]: c for c in previous["changes"]}["status"]
    assert (json.loads(status["before"]), json.loads(status["after"])) == (
        "SCHEDULED",
        "CANCELLED",
    )
    created = (await AuditEntry.get(operation="createMailing")).changes
    assert created["text"] == [None, "Hello"]
    updated = (await AuditEntry.get(operation="updateMailing")).changes
    assert updated == {"text": ["Hello", "Hi"]}


@pytest.fixture
def idp() -> Iterator[FakeIdentityProvider]:
    provider = FakeIdentityProvider()
    yield provider
    provider.close()


@pytest.fixture
async def oidc_operator(db: str, idp: FakeIdentityProvider) -> AsyncIterator[GraphQLClient]:
    token = idp.token("operator", sub="ada-42", name="Ada Lovelace")
    async with api_client(token, oidc_issuer=idp.issuer, oidc_audience=AUDIENCE) as client:
        yield client


async def test_each_mutation_leaves_one_row_under_oidc(oidc_operator: GraphQLClient) -> None:
    await _each_mutation_once(oidc_operator, "oidc:ada-42", "Ada Lovelace")
    mine = (await oidc_operator.execute(LOG, {"actor": "oidc:ada-42", "first": 50}))["auditLog"]
    assert mine["totalCount"] == 12
    assert {e["node"]["actorName"] for e in mine["edges"]} == {"Ada Lovelace"}


async def test_a_failed_or_idle_mutation_leaves_none(gql: GraphQLClient) -> None:
    refused = [
        'mutation { createClient(input: {phone: "123"}) { __typename } }',
        'mutation { deleteClient(id: "999999") { __typename } }',
        'mutation { pauseMailing(id: "999999") { __typename } }',
        'mutation { optOutClients(phones: ["79031110003", "bad"]) { __typename } }',
    ]
    for document in refused:
        answer = await gql.execute(document)
        assert next(iter(answer.values()))["__typename"].endswith("Error"), document
    created = await gql.execute(
        "mutation($input: MailingInput!) { createMailing(input: $input) "
        "{ ... on Mailing { id } } }",
        {"input": mailing_input()},
    )
    mailing_id = created["createMailing"]["id"]
    await gql.execute(f'mutation {{ cancelMailing(id: "{mailing_id}") {{ __typename }} }}')
    assert await AuditEntry.all().count() == 2
    # A conflict (a cancelled mailing cannot be paused) and a no-op change nothing.
    conflict = await gql.execute(
        f'mutation {{ pauseMailing(id: "{mailing_id}") {{ __typename }} }}'
    )
    assert conflict["pauseMailing"]["__typename"] == "ConflictError"
    await gql.execute(f'mutation {{ cancelMailing(id: "{mailing_id}") {{ __typename }} }}')
    assert await AuditEntry.all().count() == 2
    assert (await gql.execute(LOG, {"objectId": mailing_id}))["auditLog"]["totalCount"] == 2


async def test_only_operators_read_the_trail_and_nothing_rewrites_it(
    idp: FakeIdentityProvider, db: str
) -> None:
    viewer = idp.token("viewer")
    async with api_client(viewer, oidc_issuer=idp.issuer, oidc_audience=AUDIENCE) as client:
        for document in (LOG, "query { ... on Query { auditLog { totalCount } } }"):
            refused = await client.post(document)
            assert refused.status_code == 403
            assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        # Other queries are still a viewer's.
        assert (await client.post("{ clients { totalCount } }")).status_code == 200
        schema = await client.execute("{ __schema { mutationType { fields { name } } } }")
    names = [f["name"] for f in schema["__schema"]["mutationType"]["fields"]]
    assert not [name for name in names if "audit" in name.lower()]
