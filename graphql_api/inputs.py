"""The input types of the mutations, exactly as docs/api.md names them.

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


@strawberry.input(description="A new client; only the phone is required.")
class ClientInput:
    phone: str = strawberry.field(
        description="11 ASCII digits starting with 7 (`7XXXXXXXXXX`), no spaces or `+`; "
        "unique among clients."
    )
    operator_code: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="3 digits; left out or null: the phone's digits 2-4.",
    )
    tag: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A free label, at most 64 characters, no control characters; left out or "
        "null: empty.",
    )
    timezone: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A canonical IANA time zone name such as `Europe/Moscow` (old aliases like "
        "`Asia/Calcutta` are refused with the name to use); left out or null: `UTC`.",
    )
    opted_out: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="True: put the phone on the stop list (`Client.optedOutAt`), as "
        "`optOutClients` does. False, left out or null: the phone keeps the stop list's "
        "word (a phone on it stays opted out; only `optInClient` takes it off).",
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
    row.opted_out = value.get("optedOut", strawberry.UNSET)
    return row


get_object_definition(ClientInput, strict=True).from_input = _client_input_from


@strawberry.input(
    description="Changes to a client: fields left out keep their value; null resets one to its "
    "default (not allowed for `phone`). The rules are those of `ClientInput`."
)
class ClientPatch:
    phone: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A new phone (`7XXXXXXXXXX`, unique); pending messages go to it. An "
        "operator code that was derived from the old phone follows the new one.",
    )
    operator_code: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="3 digits; null: derive it from the phone again.",
    )
    tag: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="At most 64 characters; null: empty. Pending messages follow: a client "
        "that no longer matches a running mailing's filter has its pending message cancelled.",
    )
    timezone: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A canonical IANA name; null: `UTC`. Pending messages wait for the window "
        "in the new zone.",
    )


@strawberry.input(
    description="Which clients to match: (operatorCodes is empty or holds the client's code) "
    "AND (tags is empty or holds its tag). Empty lists match everyone."
)
class ClientFilterInput:
    operator_codes: list[str] = strawberry.field(
        default_factory=list,
        description="3-digit operator codes, at most 1,000; repeats are ignored.",
    )
    tags: list[str] = strawberry.field(
        default_factory=list,
        description="Tags (at most 64 characters each), at most 1,000; repeats are ignored.",
    )


@strawberry.input(
    description="The time of day messages may go out, in each client's local time; an end "
    "before the start wraps past midnight (`22:00`-`06:00`). Start and end must differ."
)
class SendWindowInput:
    start: str = strawberry.field(description="`HH:MM`, 24-hour (`00:00` to `23:59`): included.")
    end: str = strawberry.field(description="`HH:MM`, 24-hour: excluded.")


_INSTANT = (
    "An ISO 8601 instant with its UTC offset (`2026-01-31T09:00:00+03:00`, or `Z`); a time "
    "without an offset is refused, as is one that falls outside years 1-9999 in UTC."
)


@strawberry.input(description="A new mailing.")
class MailingInput:
    text: str = strawberry.field(
        description="The message, 1 to 1,000 characters, not only spaces; line breaks and tabs "
        "are kept, other control characters refused."
    )
    start_at: DateTimeText = strawberry.field(
        description=f"When to start; in the past means now. {_INSTANT}"
    )
    end_at: DateTimeText = strawberry.field(
        description=f"When to stop: later than `startAt`, and in the future. {_INSTANT}"
    )
    filter: ClientFilterInput | None = strawberry.field(
        default=strawberry.UNSET, description="Who it is for; left out or null: every client."
    )
    send_window: SendWindowInput | None = strawberry.field(
        default=strawberry.UNSET,
        description="When in the day it may be sent, in each client's local time; left out or "
        "null: at any time.",
    )


@strawberry.input(
    description="Changes to a mailing, applied to what is not sent yet. Fields left out keep "
    "their value; only `filter` and `sendWindow` may be null. The rules are those of "
    "`MailingInput`."
)
class MailingPatch:
    text: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new text, for the messages not sent yet."
    )
    start_at: DateTimeText | None = strawberry.field(
        default=strawberry.UNSET,
        description=f"A new start; moving a running mailing's start ahead makes it SCHEDULED "
        f"again. {_INSTANT}",
    )
    end_at: DateTimeText | None = strawberry.field(
        default=strawberry.UNSET,
        description=f"A new end, in the future; moving it can save messages not sent yet. "
        f"{_INSTANT}",
    )
    filter: ClientFilterInput | None = strawberry.field(
        default=strawberry.UNSET,
        description="A new audience. For a running mailing, clients that newly match get a "
        "message and those that no longer match have their pending one cancelled; null: "
        "every client.",
    )
    send_window: SendWindowInput | None = strawberry.field(
        default=strawberry.UNSET,
        description="A new window, applied to pending messages at once; null removes it.",
    )
