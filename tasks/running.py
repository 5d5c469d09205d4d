"""What the dispatcher knows of the running mailings, reloaded a few times a second."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models import ClientFilter, SendWindow
from models.queries import mailings
from models.reporting import parse_instant

__all__ = ["RunningMailing", "running_mailings"]


@dataclass(frozen=True, slots=True)
class RunningMailing:
    """What the dispatcher needs to know of a running mailing, as of ``revision``."""

    id: int
    revision: int
    text: str
    end_at: datetime
    window: SendWindow | None
    filter: ClientFilter


async def running_mailings() -> list[RunningMailing]:
    """Every running mailing (deleted ones aside), in id order."""
    found: list[RunningMailing] = []
    for row in await mailings.running_mailings():
        window = None
        if row["window_start"] is not None and row["window_end"] is not None:
            window = SendWindow.from_minutes(int(row["window_start"]), int(row["window_end"]))
        found.append(
            RunningMailing(
                id=int(row["id"]),
                revision=int(row["revision"]),
                text=str(row["text"]),
                end_at=parse_instant(row["end_at"]),
                window=window,
                filter=ClientFilter.from_json(row["filter_operator_codes"], row["filter_tags"]),
            )
        )
    return found
