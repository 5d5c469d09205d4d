"""Arguments that several operations take, each with its one description.

Paging arguments (``first``, ``after``, ...) live with the paging, in
:mod:`graphql_api.pagination`.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

# The models' enums, which graphql_api.types registers (and may import this module).
from models import MailingStatus, MessageStatus

__all__ = ["ClientId", "MailingId", "MailingStatusFilter", "MessageStatusFilter"]

ClientId = Annotated[
    strawberry.ID,
    strawberry.argument(
        description="The client's id, as `Client.id` gives it; its integer key of the first "
        'release ("42") is still accepted, deprecated.'
    ),
]
MailingId = Annotated[
    strawberry.ID,
    strawberry.argument(
        description="The mailing's id, as `Mailing.id` gives it; its integer key of the first "
        'release ("42") is still accepted, deprecated.'
    ),
]
MailingStatusFilter = Annotated[
    MailingStatus | None,
    strawberry.argument(description="Only mailings in this status; left out or null: all."),
]
MessageStatusFilter = Annotated[
    MessageStatus | None,
    strawberry.argument(description="Only messages in this status; left out or null: all."),
]
