"""Tortoise models and the domain rules that belong to them.

Tortoise discovers the models of the ``models`` app in this module's namespace.
"""

from models.audience import ClientFilter
from models.audit import AuditEntry
from models.client import Client
from models.daily_report import DailyReport, ReportStatus
from models.errors import Conflict, FieldProblem, InvalidInput, MailingsError, NotFound
from models.idempotency import IdempotencyKey
from models.mailing import Counts, Mailing, MailingStats
from models.message import Message
from models.opt_out import OptOut
from models.send_window import SendWindow, next_window_opening
from models.status import FINAL_MESSAGE_STATUSES, MailingStatus, MessageStatus, can_transition
from models.worker import WorkerHeartbeat

__all__ = [
    "FINAL_MESSAGE_STATUSES",
    "AuditEntry",
    "Client",
    "ClientFilter",
    "Conflict",
    "Counts",
    "DailyReport",
    "FieldProblem",
    "IdempotencyKey",
    "InvalidInput",
    "Mailing",
    "MailingStats",
    "MailingStatus",
    "MailingsError",
    "Message",
    "MessageStatus",
    "NotFound",
    "OptOut",
    "ReportStatus",
    "SendWindow",
    "WorkerHeartbeat",
    "can_transition",
    "next_window_opening",
]
