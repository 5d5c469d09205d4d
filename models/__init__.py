"""Tortoise models and the domain rules that belong to them.

Tortoise discovers the models of the ``models`` app in this module's namespace.
"""

from models.audience import ClientFilter, add_matching_clients, cancel_unmatched_pending
from models.client import Client
from models.client_messages import cancel_client_pending, follow_client_edit
from models.daily_report import DailyReport, ReportStatus
from models.errors import Conflict, FieldProblem, InvalidInput, MailingsError, NotFound
from models.mailing import Mailing, MailingStats
from models.message import Message
from models.send_window import SendWindow, next_window_opening
from models.status import FINAL_MESSAGE_STATUSES, MailingStatus, MessageStatus, can_transition
from models.worker import WorkerHeartbeat

__all__ = [
    "FINAL_MESSAGE_STATUSES",
    "Client",
    "ClientFilter",
    "Conflict",
    "DailyReport",
    "FieldProblem",
    "InvalidInput",
    "Mailing",
    "MailingStats",
    "MailingStatus",
    "MailingsError",
    "Message",
    "MessageStatus",
    "NotFound",
    "ReportStatus",
    "SendWindow",
    "WorkerHeartbeat",
    "add_matching_clients",
    "can_transition",
    "cancel_client_pending",
    "cancel_unmatched_pending",
    "follow_client_edit",
    "next_window_opening",
]
