"""``statistics``: message counts, in total and per mailing, read from counters.

Every number comes from ``mailing_stats`` (one row per mailing, kept in step
by whoever changes message statuses), so no request ever counts messages.
"""

from __future__ import annotations

import strawberry

from graphql_api.arguments import MailingStatusFilter
from graphql_api.context import Info
from graphql_api.decorators import described_field
from graphql_api.http.exports import statistics_csv_url
from graphql_api.pagination import Connection, Paging, connection_field, or_none, paginate
from graphql_api.types import Mailing, MailingSummary, MessageStats, SignedLink
from models.db import connection
from models.queries.counters import summed_counters
from models.services import live_mailings

__all__ = ["Statistics", "StatisticsQuery", "totals"]


async def totals() -> MessageStats:
    """The counts over every mailing that has not been deleted."""
    counts = await summed_counters(connection(), include_deleted=False)
    return MessageStats(**counts.as_dict())


@strawberry.type(description="Message counts by status: in total, and per mailing.")
class Statistics:
    @described_field("Counts over every mailing (deleted ones excepted).")
    async def totals(self) -> MessageStats:
        return await totals()

    @described_field(
        "Where to download every mailing's counts as CSV; send the same Authorization header "
        "as to the API. `?status=` narrows it to one status."
    )
    def csv_url(self, info: Info) -> str:
        return statistics_csv_url(info.context.request)

    @described_field(
        "A short-lived signed link to `csvUrl` (narrowed to `status` if given) that needs no "
        "Authorization header."
    )
    def csv_link(self, info: Info, status: MailingStatusFilter = strawberry.UNSET) -> SignedLink:
        status = or_none(status)
        params = {} if status is None else {"status": status.value}
        return SignedLink.sign(info, statistics_csv_url(info.context.request), params)

    @connection_field("Each mailing with its counts, oldest first unless `orderBy` says otherwise.")
    async def mailings(
        self, status: MailingStatusFilter = strawberry.UNSET, *, page: Paging
    ) -> Connection[MailingSummary]:
        query = live_mailings(or_none(status))
        return await paginate(
            query, lambda row: MailingSummary(mailing=Mailing.from_row(row)), page
        )


@strawberry.type
class StatisticsQuery:
    @described_field("Message counts by status: totals, and per mailing.")
    def statistics(self) -> Statistics:
        return Statistics()
