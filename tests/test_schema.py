"""The committed SDL is what the code exports, and it holds SPEC section 2's surface."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from graphql import GraphQLObjectType, build_schema, parse
from graphql.language import FieldDefinitionNode, ObjectTypeDefinitionNode, print_ast

ROOT = Path(__file__).resolve().parent.parent

SPEC_SIGNATURES = [
    "client(id: ID!): Client",
    # SPEC's arguments; `timezone` (the admin page's directory) and the paging ones are added.
    "clients(filter: ClientFilterInput, first: Int, after: String, timezone: String): "
    "ClientConnection!",
    "mailing(id: ID!): Mailing",
    "mailings(status: MailingStatus, first: Int, after: String): MailingConnection!",
    "statistics: Statistics!",
    "createClient(input: ClientInput!): ClientResult!",
    "updateClient(id: ID!, input: ClientPatch!): ClientResult!",
    "deleteClient(id: ID!): DeleteResult!",
    "importClients(input: [ClientInput!]!): ImportResult!",
    "createMailing(input: MailingInput!): MailingResult!",
    "updateMailing(id: ID!, input: MailingPatch!): MailingResult!",
    "deleteMailing(id: ID!): DeleteResult!",
    "pauseMailing(id: ID!): MailingResult!",
    "resumeMailing(id: ID!): MailingResult!",
    "cancelMailing(id: ID!): MailingResult!",
    "mailingProgress(id: ID!): MailingProgress!",
    "messages(status: MessageStatus, first: Int, after: String): MessageConnection!",
    "mailings(status: MailingStatus, first: Int, after: String): MailingSummaryConnection!",
    "union ClientResult = Client | ValidationError | NotFoundError",
    "union MailingResult = Mailing | ValidationError | NotFoundError | ConflictError",
    "union DeleteResult = Deleted | NotFoundError",
    "union ImportResult = ImportSummary | ValidationError",
    "scalar DateTime",
]


@pytest.fixture(scope="module")
def exported() -> str:
    return subprocess.run(
        [sys.executable, "-m", "cli", "export-schema"],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout


def test_schema_graphql_is_current(exported: str) -> None:
    assert exported == (ROOT / "schema.graphql").read_text(), "run `make schema`"


def _field(signature: str) -> FieldDefinitionNode:
    [definition] = parse(f"type Spec {{ {signature} }}").definitions
    assert isinstance(definition, ObjectTypeDefinitionNode)
    [field] = definition.fields or ()
    return field


@pytest.mark.parametrize("signature", SPEC_SIGNATURES)
def test_spec_surface(exported: str, signature: str) -> None:
    """A field of the SPEC exists with its type and arguments; arguments may be added."""
    if signature.startswith(("union ", "scalar ")):  # as written
        assert signature in exported
        return
    spec = _field(signature)
    wanted = {arg.name.value: print_ast(arg.type) for arg in spec.arguments or ()}
    found = []
    for type_ in build_schema(exported).type_map.values():
        if not isinstance(type_, GraphQLObjectType) or spec.name.value not in type_.fields:
            continue
        field = type_.fields[spec.name.value]
        args = {name: str(arg.type) for name, arg in field.args.items()}
        if str(field.type) == print_ast(spec.type) and wanted.items() <= args.items():
            found.append(type_.name)
    assert found, signature
