"""``timeZones``: the names a client's ``timezone`` may take, for pickers and checks."""

from __future__ import annotations

import strawberry

from graphql_api.decorators import described_field
from models.time_zones import canonical_zones

__all__ = ["TimeZoneQuery"]


@strawberry.type
class TimeZoneQuery:
    @described_field(
        "Every name a client's `timezone` may take: the canonical IANA time zone names and "
        "`UTC`, sorted. Offer these rather than a browser's list: `Intl.supportedValuesOf` "
        "still holds old names (`Asia/Calcutta`, `Europe/Kiev`) that the API refuses."
    )
    def time_zones(self) -> list[str]:
        return sorted(canonical_zones())
