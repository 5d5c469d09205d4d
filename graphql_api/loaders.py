"""Per-request batch loaders: one query for all the rows a response needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from strawberry.dataloader import DataLoader

import models

__all__ = ["Loaders", "make_loaders"]


async def _load_stats(mailing_ids: list[int]) -> Sequence[models.MailingStats | None]:
    rows = await models.MailingStats.filter(mailing_id__in=mailing_ids)
    by_id = {row.mailing_id: row for row in rows}  # type: ignore[attr-defined]
    return [by_id.get(mailing_id) for mailing_id in mailing_ids]


async def _load_clients(client_ids: list[int]) -> Sequence[models.Client | None]:
    rows = await models.Client.filter(id__in=client_ids)
    by_id = {row.id: row for row in rows}
    return [by_id.get(client_id) for client_id in client_ids]


@dataclass(frozen=True, slots=True)
class Loaders:
    """The counters of mailings and the clients of messages, by id."""

    stats: DataLoader[int, models.MailingStats | None]
    clients: DataLoader[int, models.Client | None]


def make_loaders(*, cache: bool = True) -> Loaders:
    """Fresh loaders; a WebSocket connection lives long, so it gets uncached ones."""
    return Loaders(
        stats=DataLoader(_load_stats, cache=cache),
        clients=DataLoader(_load_clients, cache=cache),
    )
