"""The audit trail in the API: who acts in a mutation, and ``auditLog``.

:class:`RecordActor` makes the caller of each mutation the actor of the
changes it makes (``models.services.audit.acting_as``); the services record
them. ``auditLog`` reads the trail, newest first; only operators may read it
(``graphql_api.permissions``). Nothing in the API updates or deletes a row.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

import orjson
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

import models
from graphql_api.decorators import described_field
from graphql_api.ids import Kind, decode, global_id, legacy_key
from graphql_api.pagination import (
    After,
    Before,
    Connection,
    First,
    Last,
    ListOrder,
    Paging,
    or_none,
    paginate,
)
from graphql_api.principal import Principal
from models.services.audit import Actor, acting_as

__all__ = ["AuditEntry", "AuditQuery", "FieldChange", "RecordActor"]


class RecordActor(SchemaExtension):
    """A mutation's changes are recorded as its caller's."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        principal = getattr(context, "principal", None)
        if self.execution_context.operation_type is OperationType.MUTATION and isinstance(
            principal, Principal
        ):
            with acting_as(Actor(principal.actor, principal.name or "")):
                yield
        else:
            yield


def _json_text(value: object) -> str:
    return orjson.dumps(value).decode()


@strawberry.type(description="One field a change set, as JSON values.")
class FieldChange:
    field: str = strawberry.field(
        description="The field's name as the API spells it (`phone`, `startAt`, `status`); "
        "for an import or an opt-out, what it did (`created`, `phones`)."
    )
    before: str = strawberry.field(
        description='Its value before, as JSON text (`"RUNNING"`, `null` for a creation).'
    )
    after: str = strawberry.field(
        description="Its value after, as JSON text (`null` for a deletion)."
    )


@strawberry.type(
    description="One change made through a mutation: who, when, what, and the fields before "
    "and after. Written in the transaction of the change; never updated or deleted."
)
class AuditEntry:
    id: strawberry.ID = strawberry.field(description="The entry's key, an integer as a string.")
    at: datetime = strawberry.field(description="When the change was made (UTC).")
    actor: str = strawberry.field(
        description="Who made it, stably: `api_token`, `oidc:<subject>`, or `open` when the "
        "API asks for no credentials."
    )
    actor_name: str = strawberry.field(
        description="The person's name from the identity provider (`name`, else "
        "`preferred_username`, `email`); empty for `API_TOKEN`."
    )
    operation: str = strawberry.field(
        description="The mutation: `createMailing`, `pauseMailing`, `optOutClients`, ..."
    )
    object_type: str = strawberry.field(
        description="What it changed: `client`, `mailing`, or `stop_list` (an opt-out)."
    )
    object_id: str = strawberry.field(
        description="The global id of the client or mailing (as `Client.id`, `Mailing.id`); "
        "empty for an import or an opt-out, which change many."
    )
    changes: list[FieldChange] = strawberry.field(
        description="Each field that changed, with its value before and after."
    )

    @classmethod
    def from_row(cls, row: models.AuditEntry) -> AuditEntry:
        return cls(
            id=strawberry.ID(str(row.id)),
            at=row.at,
            actor=row.actor,
            actor_name=row.actor_name,
            operation=row.operation,
            object_type=row.object_type,
            object_id=_object_id(row.object_type, row.object_id),
            changes=[
                FieldChange(field=name, before=_json_text(pair[0]), after=_json_text(pair[1]))
                for name, pair in row.changes.items()
            ],
        )


def _object_id(object_type: str, stored: str) -> str:
    """The global id of an audited client or mailing, as every other field gives it."""
    kind = _KINDS.get(object_type)
    return stored if kind is None or not stored.isdigit() else global_id(kind, int(stored))


_KINDS = {"client": Kind.CLIENT, "mailing": Kind.MAILING}


@strawberry.type
class AuditQuery:
    @described_field(
        "The audit trail, newest first: every change made through a mutation. Operators "
        "only (a viewer is refused with a 403, `FORBIDDEN`). Optionally only one object's "
        "(`objectId`, with `objectType` to tell a client from a mailing of the same id) or "
        "one actor's."
    )
    async def audit_log(
        self,
        first: First = strawberry.UNSET,
        after: After = strawberry.UNSET,
        last: Last = strawberry.UNSET,
        before: Before = strawberry.UNSET,
        object_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Only the changes of this client or mailing."),
        ] = strawberry.UNSET,
        object_type: Annotated[
            str | None,
            strawberry.argument(
                description="Only changes of this kind of object: `client`, "
                "`mailing` or `stop_list`."
            ),
        ] = strawberry.UNSET,
        actor: Annotated[
            str | None,
            strawberry.argument(
                description="Only the changes made by this actor (`api_token`, `oidc:<subject>`)."
            ),
        ] = strawberry.UNSET,
    ) -> Connection[AuditEntry]:
        query = models.AuditEntry.all()
        if (given_id := or_none(object_id)) is not None:
            # A global id names its type too; a deprecated integer key needs `objectType`.
            named = decode(given_id)
            if named is not None:
                query = query.filter(object_type=named[0].lower(), object_id=str(named[1]))
            else:
                key = legacy_key(given_id)
                query = query.filter(id__in=[]) if key is None else query.filter(object_id=str(key))
        if (given_type := or_none(object_type)) is not None:
            query = query.filter(object_type=given_type)
        if (given_actor := or_none(actor)) is not None:
            query = query.filter(actor=given_actor)
        paging = Paging(
            or_none(first), or_none(after), or_none(last), or_none(before), ListOrder.NEWEST_FIRST
        )
        return await paginate(query, AuditEntry.from_row, paging)
