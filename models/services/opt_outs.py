"""Opt-outs: the stop list, and what it does to clients and their waiting messages.

An opted-out client is left out of every new audience and matches no
mailing (``client_matches_mailing``), and its waiting messages are cancelled
in the same transaction that opts it out, like a re-target: a message a
worker holds is left to it and finalised by the same rule when it is
handed back. The stop list is kept by phone, so a client deleted and created
again (or imported) with that phone is opted out still; only
:func:`opt_in_client` takes a phone off it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from tortoise.transactions import in_transaction

from models import clock
from models.client import Client
from models.db import retried
from models.errors import NotFound
from models.queries.clients import follow_stop_list, stop_phones, unstop_phone
from models.queries.messages import cancel_opted_out_waiting
from models.services.audit import client_fields, record

__all__ = ["OptOutOutcome", "opt_in_client", "opt_out_phones"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OptOutOutcome:
    """What ``opt_out_phones`` did."""

    listed: int  # phones new on the stop list
    clients: list[Client]  # the clients with those phones, opted out
    cancelled: int  # their waiting messages, cancelled


@retried("opt out")
async def opt_out_phones(phones: Sequence[str]) -> OptOutOutcome:
    """Put ``phones`` (checked, distinct) on the stop list, whether or not a client has them."""
    now = clock.now()
    async with in_transaction() as conn:
        listed = await stop_phones(conn, phones, now)
        opted_out = await follow_stop_list(conn, phones)
        cancelled = await cancel_opted_out_waiting(conn, opted_out)
        clients = await Client.filter(phone__in=list(phones)).using_db(conn).order_by("id")
        if listed or opted_out:
            after = {"phones": list(phones), "clients": opted_out, "cancelledMessages": cancelled}
            await record(conn, "optOutClients", "stop_list", "", None, after)
    log.info("phones opted out", listed=listed, clients=len(clients), cancelled_messages=cancelled)
    return OptOutOutcome(listed=listed, clients=clients, cancelled=cancelled)


@retried("opt in")
async def opt_in_client(client_id: int) -> Client:
    """Take the client's phone off the stop list; it matches mailings again from now on.

    Messages cancelled when it opted out stay cancelled.
    """
    async with in_transaction() as conn:
        row = await Client.filter(id=client_id).using_db(conn).select_for_update().first()
        if row is None:
            raise NotFound("client", client_id)
        before = client_fields(row)
        await unstop_phone(conn, row.phone)
        await follow_stop_list(conn, [row.phone])
        await row.refresh_from_db(using_db=conn)
        await record(conn, "optInClient", "client", row.id, before, client_fields(row))
    log.info("client opted in", client_id=client_id)
    return row
