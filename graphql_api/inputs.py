"""The input types of the mutations, exactly as SPEC section 2 names them.

Optional fields default to ``UNSET``, so a patch tells "left out" (keep the
value) from an explicit ``null`` (clear it, or reset it to its default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import strawberry
from strawberry.types.arguments import InputContext
from strawberry.types.base import get_object_definition

from graphql_api.scalars import DateTimeText

__all__ = [
    "ClientFilterInput",
    "ClientInput",
    "ClientPatch",
    "MailingInput",
    "MailingPatch",
    "SendWindowInput",
]


@strawberry.input(description="A new client; operatorCode defaults to the phone's digits 2-4.")
class ClientInput:
    phone: str = strawberry.field(description="11 digits starting with 7: 7XXXXXXXXXX.")
    operator_code: str | None = strawberry.UNSET
    tag: str | None = strawberry.UNSET
    timezone: str | None = strawberry.field(
        default=strawberry.UNSET, description="An IANA name such as Europe/Moscow; UTC if left out."
    )


def _client_input_from(cls: type, value: Mapping[str, Any], _: InputContext) -> ClientInput:
    # importClients takes 10,000 of these a call, and Strawberry's generic
    # conversion (a type resolution per field per row) cost more than the
    # rest of the import together; every field here is a plain string.
    row: ClientInput = object.__new__(cls)
    row.phone = value["phone"]
    row.operator_code = value.get("operatorCode", strawberry.UNSET)
    row.tag = value.get("tag", strawberry.UNSET)
    row.timezone = value.get("timezone", strawberry.UNSET)
    return row


get_object_definition(ClientInput, strict=True).from_input = _client_input_from


@strawberry.input(description="Fields left out keep their value; null resets one to its default.")
class ClientPatch:
    phone: str | None = strawberry.UNSET
    operator_code: str | None = strawberry.UNSET
    tag: str | None = strawberry.UNSET
    timezone: str | None = strawberry.UNSET


@strawberry.input(description="Empty lists match everyone.")
class ClientFilterInput:
    operator_codes: list[str] = strawberry.field(default_factory=list)
    tags: list[str] = strawberry.field(default_factory=list)


@strawberry.input(description="HH:MM in the client's local time; end before start wraps.")
class SendWindowInput:
    start: str
    end: str


@strawberry.input
class MailingInput:
    text: str
    start_at: DateTimeText
    end_at: DateTimeText
    filter: ClientFilterInput | None = strawberry.UNSET
    send_window: SendWindowInput | None = strawberry.UNSET


@strawberry.input(description="Fields left out keep their value; `sendWindow: null` removes it.")
class MailingPatch:
    text: str | None = strawberry.UNSET
    start_at: DateTimeText | None = strawberry.UNSET
    end_at: DateTimeText | None = strawberry.UNSET
    filter: ClientFilterInput | None = strawberry.UNSET
    send_window: SendWindowInput | None = strawberry.UNSET
