"""Huey tasks: plain functions that take ids and hand them to the engine.

Each task only wakes the engine of this worker process up; the engine
reloads the rows and decides from the database what is due.
"""

from __future__ import annotations

from huey import crontab

from settings import get_settings
from tasks.queue import huey

__all__ = ["send_daily_report", "tend_mailing"]


@huey.task()
def tend_mailing(mailing_id: int) -> None:
    """Bring the mailing up to date with its rows and the clock (``tasks.tend``), then send."""
    from tasks.runtime import current_runtime

    current_runtime().submit_tend(mailing_id)


# A tick left waiting behind busy workers is dropped: the next one does its work.
@huey.periodic_task(crontab(minute="*"), expires=90)
def send_daily_report() -> None:
    """Send the daily report if it is due and no other worker has (``tasks.report.schedule``)."""
    settings = get_settings()
    if not settings.report_enabled:
        return
    from tasks.report.schedule import report_tick
    from tasks.runtime import current_runtime

    current_runtime().run(report_tick(settings), timeout=settings.smtp_timeout * 4 + 300)
