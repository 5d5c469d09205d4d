"""Huey tasks: plain functions that take ids and hand them to the engine.

Each task only wakes the engine of this worker process up; the engine
reloads the rows and decides from the database what is due.
"""

from __future__ import annotations

from tasks.queue import huey

__all__ = ["settle_mailing", "start_mailing"]


@huey.task()
def start_mailing(mailing_id: int) -> None:
    """Start the mailing if it is due (build its audience), then send."""
    from tasks.runtime import engine

    engine().submit_tend(mailing_id)


@huey.task()
def settle_mailing(mailing_id: int) -> None:
    """Bring the mailing's messages in line with its status and filter."""
    from tasks.runtime import engine

    engine().submit_tend(mailing_id)
