"""The object types the API answers with, built from rows."""

from __future__ import annotations

from datetime import datetime

import strawberry

import models
from graphql_api.context import Info
from graphql_api.decorators import described_field
from graphql_api.http.exports import messages_csv_url
from graphql_api.pagination import Connection, build_connection, keyset_page, or_none

__all__ = [
    "Client",
    "ClientFilter",
    "Mailing",
    "MailingProgress",
    "MailingStatus",
    "MailingSummary",
    "Message",
    "MessageStats",
    "MessageStatus",
    "SendWindow",
    "load_stats",
]

# The schema's enums are the models' own (registered in place).
strawberry.enum(
    models.MailingStatus,
    description="SCHEDULED before the start, RUNNING, PAUSED, then FINISHED or CANCELLED.",
)
strawberry.enum(
    models.MessageStatus,
    description="PENDING until the provider accepts it (SENT) or it ends FAILED, EXPIRED or "
    "CANCELLED.",
)
MailingStatus = models.MailingStatus
MessageStatus = models.MessageStatus


@strawberry.type(description="Message counts by status; `total` is the sum of the others.")
class MessageStats:
    total: int
    pending: int
    sent: int
    failed: int
    expired: int
    cancelled: int

    @classmethod
    def from_row(cls, row: models.MailingStats | None) -> MessageStats:
        if row is None:
            return cls(total=0, pending=0, sent=0, failed=0, expired=0, cancelled=0)
        return cls(
            total=row.total,
            pending=row.pending,
            sent=row.sent,
            failed=row.failed,
            expired=row.expired,
            cancelled=row.cancelled,
        )

    def count(self, status: models.MessageStatus | None) -> int:
        return self.total if status is None else int(getattr(self, status.value.lower()))


async def load_stats(info: Info, mailing_id: int) -> MessageStats:
    """A mailing's counters, batched with every other mailing of the response."""
    return MessageStats.from_row(await info.context.loaders.stats.load(mailing_id))


@strawberry.type
class Client:
    id: strawberry.ID
    phone: str
    operator_code: str
    tag: str
    timezone: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: models.Client) -> Client:
        return cls(
            id=strawberry.ID(str(row.id)),
            phone=row.phone,
            operator_code=row.operator_code,
            tag=row.tag,
            timezone=row.timezone,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type
class Message:
    id: strawberry.ID
    status: MessageStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    phone: str = strawberry.field(description="The phone it was (or will be) sent to.")
    client_id: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, row: models.Message) -> Message:
        return cls(
            id=strawberry.ID(str(row.id)),
            status=row.status,
            attempts=row.attempts,
            last_error=row.last_error,
            created_at=row.created_at,
            sent_at=row.sent_at,
            phone=row.phone,
            client_id=row.client_id,
        )

    @described_field("The client, unless it has been deleted since.")
    async def client(self, info: Info) -> Client | None:
        if self.client_id is None:
            return None
        row = await info.context.loaders.clients.load(self.client_id)
        return None if row is None else Client.from_row(row)


@strawberry.type(
    description="A client matches when (operatorCodes is empty or holds its code) "
    "AND (tags is empty or holds its tag)."
)
class ClientFilter:
    operator_codes: list[str]
    tags: list[str]


@strawberry.type(
    description="Local time of day (HH:MM) in the client's time zone; "
    "an end before the start wraps past midnight."
)
class SendWindow:
    start: str
    end: str

    @classmethod
    def from_window(cls, window: models.SendWindow) -> SendWindow:
        return cls(start=window.start.strftime("%H:%M"), end=window.end.strftime("%H:%M"))


@strawberry.type
class Mailing:
    id: strawberry.ID
    text: str
    start_at: datetime
    end_at: datetime
    filter: ClientFilter
    send_window: SendWindow | None
    status: MailingStatus
    created_at: datetime
    updated_at: datetime
    key: strawberry.Private[int]
    # Set when the counters were read with the row (subscription events), so a
    # long-lived connection never answers from a loader's stale cache.
    known_stats: strawberry.Private[MessageStats | None] = None

    @classmethod
    def from_row(cls, row: models.Mailing, stats: MessageStats | None = None) -> Mailing:
        window = row.send_window
        return cls(
            id=strawberry.ID(str(row.id)),
            text=row.text,
            start_at=row.start_at,
            end_at=row.end_at,
            filter=ClientFilter(
                operator_codes=list(row.filter_operator_codes), tags=list(row.filter_tags)
            ),
            send_window=None if window is None else SendWindow.from_window(window),
            status=row.status,
            created_at=row.created_at,
            updated_at=row.updated_at,
            key=row.id,
            known_stats=stats,
        )

    async def _stats(self, info: Info) -> MessageStats:
        if self.known_stats is not None:
            return self.known_stats
        return await load_stats(info, self.key)

    @described_field("Message counts by status, read from counters.")
    async def stats(self, info: Info) -> MessageStats:
        return await self._stats(info)

    @described_field(
        "Where to download this mailing's messages as CSV (id, phone, status, attempts, "
        "last error, created, sent); send the same Authorization header as to the API."
    )
    def messages_csv_url(self, info: Info) -> str:
        return messages_csv_url(info.context.request, self.key)

    @described_field("The messages of this mailing, in id order.")
    async def messages(
        self,
        info: Info,
        status: MessageStatus | None = strawberry.UNSET,
        first: int | None = strawberry.UNSET,
        after: str | None = strawberry.UNSET,
    ) -> Connection[Message]:
        status = or_none(status)
        query = models.Message.filter(mailing_id=self.key)
        if status is not None:
            query = query.filter(status=status)
        rows, has_next = await keyset_page(query, first, after)

        async def count() -> int:
            # From the counters: COUNT(*) over a million messages is too slow.
            return (await self._stats(info)).count(status)

        return build_connection(rows, has_next, Message.from_row, count, after)


@strawberry.type(description="A mailing's state, sent whenever its counts or status change.")
class MailingProgress:
    mailing: Mailing
    stats: MessageStats
    status: MailingStatus


@strawberry.type
class MailingSummary:
    mailing: Mailing

    @strawberry.field
    async def stats(self, info: Info) -> MessageStats:
        return await load_stats(info, self.mailing.key)
