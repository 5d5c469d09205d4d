"""Every statement that touches ``message``: one file to read when a rule about messages changes.

A pending message is either *in flight* (a worker holds it: ``leased_until``
is set and has not passed, on the database's clock) or *waiting* (for its
turn, a retry or its window). Rules that act on waiting messages (cancel,
re-target, window changes, expiry at ``end_at``) leave held ones to their
worker, which records what the provider said; :func:`finalise_handed_back` then
applies those rules to what a worker hands back unsent or for a retry.

Every status change is made by a statement guarded by the status it
expects, and the same transaction feeds ``models.queries.counters`` with the rows
it changed, so the counters never drift. Every finalising statement clears
the lease, so ``idx_message_leased`` holds only live claims, and stamps
``finished_at`` (the timeline, the day's failures); reviving clears it.
"""

from models.queries.messages.audience import (
    add_audience,
    add_audience_chunk,
    cancel_client_waiting,
    cancel_opted_out_waiting,
    cancel_unmatched,
    finalise_waiting,
    follow_client_edit,
    follow_client_match,
    opted_out_left_out,
    replan_window_waiters,
    revive_rematched,
)
from models.queries.messages.reading import (
    message_batch,
    reasons_by_mailing,
    reasons_of_day,
    sent_that_day,
)
from models.queries.messages.sending import (
    Claimed,
    Finalise,
    HandBack,
    claim_due,
    finalise_handed_back,
    finalise_messages,
    hand_back_messages,
    reap_ended_leases,
)
from models.queries.messages.shared import OPTED_OUT_REASON, storable

__all__ = [
    "OPTED_OUT_REASON",
    "Claimed",
    "Finalise",
    "HandBack",
    "add_audience",
    "add_audience_chunk",
    "cancel_client_waiting",
    "cancel_opted_out_waiting",
    "cancel_unmatched",
    "claim_due",
    "finalise_handed_back",
    "finalise_messages",
    "finalise_waiting",
    "follow_client_edit",
    "follow_client_match",
    "hand_back_messages",
    "message_batch",
    "opted_out_left_out",
    "reap_ended_leases",
    "reasons_by_mailing",
    "reasons_of_day",
    "replan_window_waiters",
    "revive_rematched",
    "sent_that_day",
    "storable",
]
