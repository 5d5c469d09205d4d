"""The object types the API answers with, built from rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

import models
from graphql_api.arguments import MessageStatusFilter
from graphql_api.context import Info
from graphql_api.decorators import described_enum, described_field
from graphql_api.http.exports import messages_csv_url
from graphql_api.ids import Kind, global_id
from graphql_api.pagination import Connection, Paging, connection_field, or_none, paginate
from graphql_api.signed_links import LinkSigner
from graphql_api.timeline import MailingTimeline, TimelineBucketSize, timeline_of

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
    "Node",
    "SendWindow",
    "SignedLink",
    "load_stats",
]

# The schema's enums are the models' own (registered in place).
described_enum(
    models.MailingStatus,
    "Where a mailing is in its life: SCHEDULED before the start, RUNNING, PAUSED, "
    "then FINISHED or CANCELLED (both final).",
    {
        models.MailingStatus.SCHEDULED: "Not started yet: it starts by itself at `startAt` "
        "(one already due starts within about a second).",
        models.MailingStatus.RUNNING: "Sending to its audience; messages may still wait for "
        "their send window or a retry.",
        models.MailingStatus.PAUSED: "Held by `pauseMailing`: no new request to the provider "
        "starts until `resumeMailing`. `endAt` still applies.",
        models.MailingStatus.FINISHED: "Over: every message is final, or `endAt` has passed "
        "(what was still unsent is EXPIRED). It can no longer be edited.",
        models.MailingStatus.CANCELLED: "Stopped for good by `cancelMailing` (or deleted): its "
        "pending messages became CANCELLED. It can no longer be edited.",
    },
)
described_enum(
    models.MessageStatus,
    "What happened to one message: PENDING until the provider accepts it (SENT), or it "
    "ends FAILED, EXPIRED or CANCELLED. Only PENDING ever changes.",
    {
        models.MessageStatus.PENDING: "Not accepted yet: waiting for its turn, a retry or its "
        "client's send window.",
        models.MessageStatus.SENT: "The provider accepted it; `sentAt` says when.",
        models.MessageStatus.FAILED: "The provider refused it for good (a 4xx answer); "
        "`lastError` says why.",
        models.MessageStatus.EXPIRED: "`endAt` passed before the provider accepted it.",
        models.MessageStatus.CANCELLED: "Withdrawn before it went out: its mailing was "
        "cancelled or deleted, its client deleted or opted out, or the client no longer "
        "matches the mailing's changed filter.",
    },
)
MailingStatus = models.MailingStatus
MessageStatus = models.MessageStatus


@strawberry.type(
    description="How many messages are in each status; `total` is the sum of the others. "
    "Read from counters kept with every status change, so cheap even for a million messages."
)
class MessageStats:
    total: int = strawberry.field(description="Every message, whatever its status.")
    pending: int = strawberry.field(description="Messages not accepted by the provider yet.")
    sent: int = strawberry.field(description="Messages the provider accepted.")
    failed: int = strawberry.field(description="Messages the provider refused for good.")
    expired: int = strawberry.field(description="Messages still unsent when `endAt` passed.")
    cancelled: int = strawberry.field(description="Messages withdrawn before they went out.")

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


@strawberry.type(
    description="A link that works without the Authorization header, for one export, "
    "until `expiresAt`: open it in a browser tab or hand it on for a few minutes."
)
class SignedLink:
    url: str = strawberry.field(description="The export's URL with `expires` and `signature`.")
    expires_at: datetime = strawberry.field(description="When the link stops working (UTC).")

    @classmethod
    def sign(cls, info: Info, url: str, params: dict[str, str] | None = None) -> SignedLink:
        signer: LinkSigner = info.context.request.app.state.link_signer
        link = signer.sign(url, params)
        return cls(url=link.url, expires_at=link.expires_at)


@strawberry.interface(
    description="An object with an id unique across types (Relay's Global Object "
    "Identification): `node(id:)` reads any of them again, as Relay's `@refetchable` does."
)
class Node:
    id: strawberry.ID = strawberry.field(
        description="An opaque id, unique across types; keep it as it is given."
    )


@strawberry.type(description="A person messages are sent to, in the client directory.")
class Client(Node):
    id: strawberry.ID = strawberry.field(
        description="The client's id, opaque and unique across types (`node(id:)` reads it). "
        'Arguments still accept the integer key of the first release ("42"), deprecated.'
    )
    phone: str = strawberry.field(
        description="11 digits starting with 7 (`7XXXXXXXXXX`); unique among clients."
    )
    operator_code: str = strawberry.field(
        description="The mobile operator's 3-digit code; the phone's digits 2-4 unless set."
    )
    tag: str = strawberry.field(
        description="A free label of at most 64 characters, for filters; empty when none."
    )
    timezone: str = strawberry.field(
        description="A canonical IANA time zone name (`Europe/Moscow`); `UTC` unless set. "
        "A mailing's send window is read in this zone."
    )
    created_at: datetime = strawberry.field(description="When the client was added (UTC).")
    updated_at: datetime = strawberry.field(description="When the client last changed (UTC).")
    opted_out_at: datetime | None = strawberry.field(
        description="When its phone was put on the stop list (`optOutClients`, or an import's "
        "`optedOut`); null while it accepts messages. An opted-out client gets no message: it "
        "is left out of new audiences and its waiting messages are CANCELLED. The stop list is "
        "kept by phone, so a client deleted and created again stays opted out until "
        "`optInClient`."
    )
    key: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: models.Client) -> Client:
        return cls(
            id=global_id(Kind.CLIENT, row.id),
            key=row.id,
            phone=row.phone,
            operator_code=row.operator_code,
            tag=row.tag,
            timezone=row.timezone,
            created_at=row.created_at,
            updated_at=row.updated_at,
            opted_out_at=row.opted_out_at,
        )


@strawberry.type(description="One mailing's text to one client: there is never a second.")
class Message(Node):
    id: strawberry.ID = strawberry.field(
        description="The message's id, opaque and unique across types (`node(id:)` reads it). "
        "The `msgId` the provider is sent (the same on every retry) is its integer key, the "
        "`id` column of the CSV export."
    )
    status: MessageStatus = strawberry.field(description="What has happened to it so far.")
    attempts: int = strawberry.field(
        description="Requests made to the provider for it, retries included; 0 before the first."
    )
    last_error: str | None = strawberry.field(
        description="Why the last attempt did not succeed (`HTTP 400: ...`, a timeout, a "
        "refused connection); null when none has failed."
    )
    created_at: datetime = strawberry.field(
        description="When the message was made: when its mailing started, or when its client "
        "came to match the mailing (UTC)."
    )
    sent_at: datetime | None = strawberry.field(
        description="When the provider accepted it (UTC); null unless SENT."
    )
    phone: str = strawberry.field(
        description="The phone it was (or will be) sent to, kept if the client is deleted."
    )
    finished_at: datetime | None = strawberry.field(
        description="When it reached its final status (SENT, FAILED, EXPIRED or CANCELLED); "
        "null while PENDING, and for messages finalised before this time was recorded "
        "(failed or cancelled ones)."
    )
    client_id: strawberry.Private[int | None]
    key: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: models.Message) -> Message:
        return cls(
            id=global_id(Kind.MESSAGE, row.id),
            key=row.id,
            status=row.status,
            attempts=row.attempts,
            last_error=row.last_error,
            created_at=row.created_at,
            sent_at=row.sent_at,
            phone=row.phone,
            finished_at=row.finished_at,
            client_id=row.client_id,
        )

    @described_field(
        "When the provider rejected it for good (`finishedAt` of a FAILED message); null "
        "unless FAILED."
    )
    def failed_at(self) -> datetime | None:
        return self.finished_at if self.status is MessageStatus.FAILED else None

    @described_field("The client it is for; null when the client has been deleted since.")
    async def client(self, info: Info) -> Client | None:
        if self.client_id is None:
            return None
        row = await info.context.loaders.clients.load(self.client_id)
        return None if row is None else Client.from_row(row)


@strawberry.type(
    description="Which clients a mailing is for. A client matches when (operatorCodes is "
    "empty or holds its code) AND (tags is empty or holds its tag)."
)
class ClientFilter:
    operator_codes: list[str] = strawberry.field(
        description="Operator codes (3 digits) to match; empty matches every code."
    )
    tags: list[str] = strawberry.field(description="Tags to match; empty matches every tag.")


@strawberry.type(
    description="Local time of day (HH:MM) in the client's time zone; "
    "an end before the start wraps past midnight."
)
class SendWindow:
    start: str = strawberry.field(
        description="`HH:MM`, 24-hour: the first minute messages may go out."
    )
    end: str = strawberry.field(
        description="`HH:MM`, 24-hour: messages stop at this minute (excluded)."
    )

    @classmethod
    def from_window(cls, window: models.SendWindow) -> SendWindow:
        return cls(start=window.start.strftime("%H:%M"), end=window.end.strftime("%H:%M"))


@strawberry.type(
    description="A text sent once to every client matching a filter, between `startAt` and "
    "`endAt`, optionally only within a daily send window in each client's local time."
)
class Mailing(Node):
    id: strawberry.ID = strawberry.field(
        description="The mailing's id, opaque and unique across types (`node(id:)` reads it). "
        'Arguments still accept the integer key of the first release ("42"), deprecated.'
    )
    text: str = strawberry.field(description="The message text, 1 to 1,000 characters, sent as is.")
    start_at: datetime = strawberry.field(
        description="When sending starts (UTC). The audience is the clients matching the "
        "filter then."
    )
    end_at: datetime = strawberry.field(
        description="When sending stops (UTC): no request starts at or after it, and messages "
        "still unsent become EXPIRED."
    )
    filter: ClientFilter = strawberry.field(description="Which clients it is for.")
    send_window: SendWindow | None = strawberry.field(
        description="The time of day messages may go out, in each client's own time zone; "
        "null when any time of day will do."
    )
    status: MailingStatus = strawberry.field(description="Where the mailing is in its life.")
    created_at: datetime = strawberry.field(description="When it was created (UTC).")
    updated_at: datetime = strawberry.field(
        description="When it last changed, by an edit or a status change (UTC)."
    )
    key: strawberry.Private[int]
    # Set when the counters were read with the row (subscription events), so a
    # long-lived connection never answers from a loader's stale cache.
    known_stats: strawberry.Private[MessageStats | None] = None

    @classmethod
    def from_row(cls, row: models.Mailing, stats: MessageStats | None = None) -> Mailing:
        window = row.send_window
        return cls(
            id=global_id(Kind.MAILING, row.id),
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

    @described_field("How many of its messages are in each status, as of now.")
    async def stats(self, info: Info) -> MessageStats:
        return await self._stats(info)

    @described_field(
        "How many clients its filter matches that it leaves out because they opted out "
        "(`Client.optedOutAt`): left out of its audience, or their waiting message CANCELLED "
        "(`lastError` `client opted out`) when they opted out. A client who opted out after "
        "its message went out is not counted. Before the start: who would be left out now."
    )
    async def opted_out_clients(self, info: Info) -> int:
        return await info.context.loaders.opted_out.load(self.key)

    @described_field(
        "Where to download this mailing's messages as CSV (id, phone, status, attempts, "
        "last error, created, sent, failed, finished); send the same Authorization header "
        "as to the API."
    )
    def messages_csv_url(self, info: Info) -> str:
        return messages_csv_url(info.context.request, self.key)

    @described_field(
        "A short-lived signed link to `messagesCsvUrl` that needs no Authorization header."
    )
    def messages_csv_link(self, info: Info) -> SignedLink:
        return SignedLink.sign(info, messages_csv_url(info.context.request, self.key))

    @described_field(
        "What became of its messages over time, bucket by bucket, from the rows: the whole "
        "life of the mailing, with its current rate and an estimated end while it runs."
    )
    async def timeline(
        self,
        info: Info,
        bucket: Annotated[
            TimelineBucketSize,
            strawberry.argument(description="How long each bucket is; AUTO fits the span."),
        ] = TimelineBucketSize.AUTO,
    ) -> MailingTimeline:
        return await timeline_of(
            mailing_id=self.key,
            status=self.status,
            end_at=self.end_at,
            pending=(await self._stats(info)).pending,
            bucket=bucket,
        )

    @connection_field(
        "Its messages (one per client of its audience), optionally of one status, oldest "
        "first unless `orderBy` says otherwise; none before it starts."
    )
    async def messages(
        self, info: Info, status: MessageStatusFilter = strawberry.UNSET, *, page: Paging
    ) -> Connection[Message]:
        status = or_none(status)
        query = models.Message.filter(mailing_id=self.key)
        if status is not None:
            query = query.filter(status=status)

        async def count() -> int:
            # From the counters: COUNT(*) over a million messages is too slow.
            return (await self._stats(info)).count(status)

        return await paginate(query, Message.from_row, page, count=count)


@strawberry.type(description="A mailing's state, sent whenever its counts or status change.")
class MailingProgress:
    mailing: Mailing = strawberry.field(description="The mailing, as it is at this event.")
    stats: MessageStats = strawberry.field(description="Its message counts at this event.")
    status: MailingStatus = strawberry.field(description="Its status at this event.")


@strawberry.type(description="A mailing with its message counts, one row of the statistics.")
class MailingSummary:
    mailing: Mailing = strawberry.field(description="The mailing.")

    @described_field("How many of its messages are in each status.")
    async def stats(self, info: Info) -> MessageStats:
        return await load_stats(info, self.mailing.key)
