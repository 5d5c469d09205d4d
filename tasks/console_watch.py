"""``mailings watch``: what the sending is doing, in a few lines a person can read.

Per mailing: when it starts, its progress every few seconds while it runs
(done of total, by outcome, the rate), when it pauses or resumes, and when it
ends, with its counts (again once the answers to requests in flight then are
in: a cancel does not recall them). Read from the database (the mailings and their
counters, one primary-key row each), so it tells the same story however many
workers send; ``make run`` shows it on the console while each process's full
log goes to its file under ``data/logs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from models.db import close_db, init_db
from models.queries.mailings import mailings_to_watch
from models.status import MailingStatus

__all__ = ["ProgressWatch", "watch"]

_OPEN = (MailingStatus.SCHEDULED, MailingStatus.RUNNING, MailingStatus.PAUSED)
_OUTCOMES = ("sent", "failed", "expired", "cancelled")


@dataclass(slots=True)
class _Seen:
    status: MailingStatus
    done: int
    started_at: float | None = None
    reported_at: float = 0.0
    reported_done: int = 0


def _counts(row: dict[str, object]) -> str:
    parts = [f"{int(str(row[name])):,} {name}" for name in _OUTCOMES if int(str(row[name]))]
    return " · ".join(parts) if parts else "nothing sent"


def _done(row: dict[str, object]) -> int:
    return int(str(row["total"])) - int(str(row["pending"]))


class ProgressWatch:
    """Turns successive reads of the mailings into the lines worth printing."""

    def __init__(self, every: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        """``every``: seconds between two progress lines of a running mailing."""
        self._every = every
        self._clock = clock
        self._seen: dict[int, _Seen] = {}
        self._newest = 0  # ids above this are mailings created since the last read
        self._first = True  # the first read: what runs already is not "started"

    async def poll(self) -> list[str]:
        """Read once; the lines that read says (none at all when nothing moved)."""
        first, self._first = self._first, False
        rows = await mailings_to_watch(list(self._seen), self._newest)
        now = self._clock()
        lines: list[str] = []
        present = set()
        for row in rows:
            mailing_id = int(str(row["id"]))
            present.add(mailing_id)
            self._newest = max(self._newest, mailing_id)
            status = MailingStatus(str(row["status"]))
            seen = self._seen.get(mailing_id)
            if seen is None:
                if first and status not in _OPEN:
                    continue  # over before this watch began
                seen = self._seen[mailing_id] = _Seen(MailingStatus.SCHEDULED, 0)
                if first and status is not MailingStatus.SCHEDULED:
                    seen.status = status
                    lines.append(
                        f"mailing {mailing_id} {status.value.lower()}: {_done(row):,} of"
                        f" {int(str(row['total'])):,} done · {_counts(row)}"
                    )
                    seen.reported_at, seen.reported_done = now, _done(row)
                    continue
            lines.extend(self._changes(mailing_id, seen, status, row, now))
        for mailing_id in [i for i in self._seen if i not in present]:
            lines.append(f"mailing {mailing_id} deleted")
            del self._seen[mailing_id]
        return lines

    def _changes(
        self,
        mailing_id: int,
        seen: _Seen,
        status: MailingStatus,
        row: dict[str, object],
        now: float,
    ) -> list[str]:
        lines = []
        total = int(str(row["total"]))
        done = _done(row)
        if seen.status is MailingStatus.SCHEDULED and status is not MailingStatus.SCHEDULED:
            if not status.is_terminal:
                seen.started_at = seen.reported_at = now
            plural = "" if total == 1 else "s"
            so_far = " so far, its audience still being built" if row["building"] else ""
            lines.append(f"mailing {mailing_id} started: {total:,} message{plural}{so_far}")
        if status is MailingStatus.PAUSED and seen.status is not MailingStatus.PAUSED:
            lines.append(f"mailing {mailing_id} paused at {done:,} of {total:,} done")
        if status is MailingStatus.RUNNING and seen.status is MailingStatus.PAUSED:
            lines.append(f"mailing {mailing_id} resumed at {done:,} of {total:,} done")
        if status.is_terminal:
            pending = int(str(row["pending"]))
            if seen.status.is_terminal:
                # Said already, with requests in flight: once their answers are
                # in, the counts again, final this time.
                if not pending:
                    lines.append(
                        f"mailing {mailing_id} {status.value.lower()}, every answer in:"
                        f" {_counts(row)} of {total:,}"
                    )
                    del self._seen[mailing_id]
                return lines
            took = f" in {now - seen.started_at:.1f} s" if seen.started_at is not None else ""
            flying = f" · {pending:,} in flight" if pending else ""
            lines.append(
                f"mailing {mailing_id} {status.value.lower()}{took}: {_counts(row)} of {total:,}"
                f"{flying}"
            )
            if pending:
                seen.status = status
            else:
                del self._seen[mailing_id]
            return lines
        if (
            status is MailingStatus.RUNNING
            and now - seen.reported_at >= self._every
            and done != seen.reported_done
        ):
            rate = (done - seen.reported_done) / (now - seen.reported_at)
            share = f" ({100 * done // total}%)" if total else ""
            lines.append(
                f"mailing {mailing_id}: {done:,} of {total:,} done{share} · {_counts(row)}"
                f" · {rate:,.0f}/s"
            )
            seen.reported_at, seen.reported_done = now, done
        seen.status = status
        seen.done = done
        return lines


async def _watch(out: TextIO, every: float, poll_interval: float) -> None:
    await init_db()
    try:
        progress = ProgressWatch(every)
        # What runs already is read before saying so: a mailing created after
        # this line is reported as it starts.
        lines = await progress.poll()
        lines.insert(0, f"watching mailings (a line every {every:g} s)")
        while True:
            for line in lines:
                out.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            out.flush()
            await asyncio.sleep(poll_interval)
            lines = await progress.poll()
    finally:
        await close_db()


def watch(out: TextIO, every: float = 5.0, poll_interval: float = 1.0) -> None:
    """Print the mailings' progress to ``out`` until interrupted."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_watch(out, every, poll_interval))
