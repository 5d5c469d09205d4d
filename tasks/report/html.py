"""The daily report's HTML part, as a transactional email that mail clients render alike.

Mail clients drop ``<style>`` and external CSS (Gmail's apps, Outlook) and
Outlook's Word engine ignores most layout CSS, so everything here is inline:
a centred table 640 px wide, tables for every row and every bar (a bar is a
filled cell beside an empty one, with ``bgcolor`` for Outlook), system
fonts, numbers right-aligned in tabular figures with thousands separators.
Each mailing links to its page in the admin UI when ``PUBLIC_URL`` is set.
"""

from __future__ import annotations

import html
from datetime import datetime
from zoneinfo import ZoneInfo

from models.mailing import Counts
from tasks.report.figures import DayReport, MailingReport

__all__ = ["mailing_url", "render_html"]

_FONT = "-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
_TEXT, _MUTED, _LINE, _TRACK = "#1f2430", "#6b7385", "#e3e6eb", "#e6e8ee"
_COLOURS = {
    "sent": "#2f9e5b",
    "failed": "#d64545",
    "expired": "#e0a32e",
    "cancelled": "#8a94a6",
    "pending": "#5b6b8c",
}
_STATUS_COLOURS = {
    "RUNNING": ("#e3f4ea", "#1d7a43"),
    "FINISHED": ("#eceef2", "#3c4456"),
    "CANCELLED": ("#fbe9e9", "#a83232"),
    "PAUSED": ("#fdf3df", "#8a5a00"),
    "SCHEDULED": ("#e8eefb", "#2c4f9e"),
}
_PREVIEW = 70
_NUM = (
    f"text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap;color:{_TEXT};"
    "padding:4px 0 4px 12px;font-size:14px;"
)
_HEAD = (
    f"text-align:right;color:{_MUTED};font-size:11px;font-weight:600;text-transform:uppercase;"
    "letter-spacing:.04em;padding:0 0 2px 12px;white-space:nowrap;"
)


def _e(text: object) -> str:
    return html.escape(str(text))


def _n(value: int) -> str:
    return f"{value:,}"


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def _local(moment: datetime, report: DayReport) -> str:
    return moment.astimezone(ZoneInfo(report.timezone)).strftime("%Y-%m-%d %H:%M")


def _table(rows: str, style: str = "") -> str:
    return (
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"'
        f' style="width:100%;border-collapse:collapse;{style}">{rows}</table>'
    )


def mailing_url(public_url: str | None, mailing_id: int) -> str | None:
    """The mailing's page in the admin UI, if the service knows where that is."""
    return None if public_url is None else f"{public_url}/#/mailings/{mailing_id}"


def _bar(rate: float | None) -> str:
    """The delivery rate as a green part on a grey track, 8 px high."""
    cell = "height:8px;font-size:0;line-height:0;padding:0;"
    percent = 0 if rate is None else round(rate * 100)
    parts = []
    if percent > 0:
        colour = _COLOURS["sent"]
        parts.append(
            f'<td width="{percent}%" bgcolor="{colour}" data-bar="delivered"'
            f' style="{cell}width:{percent}%;background-color:{colour};">&nbsp;</td>'
        )
    if percent < 100:
        parts.append(f'<td bgcolor="{_TRACK}" style="{cell}background-color:{_TRACK};">&nbsp;</td>')
    return _table(f"<tr>{''.join(parts)}</tr>", "border-radius:4px;")


def _rate_row(label: str, rate: float | None) -> str:
    return _table(
        "<tr>"
        f'<td style="font-size:13px;color:{_MUTED};padding:0 0 4px;">{_e(label)}</td>'
        f'<td style="{_NUM}padding-top:0;font-weight:700;">{_percent(rate)}</td>'
        "</tr>"
    ) + _bar(rate)


def _tile(label: str, value: str) -> str:
    return (
        f'<td width="25%" valign="top" style="width:25%;padding:12px;border:1px solid {_LINE};'
        f'border-radius:6px;">'
        f'<div style="font-size:11px;color:{_MUTED};text-transform:uppercase;letter-spacing:.04em;'
        f'font-weight:600;">{_e(label)}</div>'
        f'<div style="font-size:22px;font-weight:700;color:{_TEXT};padding-top:4px;'
        f'font-variant-numeric:tabular-nums;text-align:right;">{_e(value)}</div></td>'
    )


def _status_badge(mailing: MailingReport) -> str:
    background, colour = _STATUS_COLOURS.get(mailing.status, ("#eceef2", "#3c4456"))
    text = f"{mailing.status} (deleted)" if mailing.deleted else mailing.status
    return (
        f'<span style="display:inline-block;padding:2px 8px;border-radius:10px;font-size:11px;'
        f'font-weight:700;letter-spacing:.04em;background-color:{background};color:{colour};">'
        f"{_e(text)}</span>"
    )


def _counts_table(counts: Counts, sent_that_day: int | None) -> str:
    columns: list[tuple[str, int, str]] = [("Total", counts.total, _TEXT)]
    columns.append(("Sent", counts.sent, _COLOURS["sent"]))
    if sent_that_day is not None:
        columns.append(("That day", sent_that_day, _COLOURS["sent"]))
    columns += [
        ("Failed", counts.failed, _COLOURS["failed"]),
        ("Expired", counts.expired, _COLOURS["expired"]),
        ("Cancelled", counts.cancelled, _COLOURS["cancelled"]),
        ("Pending", counts.pending, _COLOURS["pending"]),
    ]
    head = "".join(f'<td style="{_HEAD}">{_e(name)}</td>' for name, _, _ in columns)
    # Zeros recede, so the counts that matter stand out.
    values = "".join(
        f'<td data-count="{_e(name.lower())}" style="{_NUM}color:{colour if value else _MUTED};'
        f'font-weight:{600 if value else 400};">{_n(value)}</td>'
        for name, value, colour in columns
    )
    return _table(f"<tr>{head}</tr><tr>{values}</tr>")


def _reasons(reasons: tuple[tuple[str, int], ...], *, small: bool = False) -> str:
    size = "12px" if small else "13px"
    rows = "".join(
        "<tr>"
        f'<td style="{_NUM}font-size:{size};width:64px;padding-left:0;color:{_COLOURS["failed"]};'
        f'font-weight:600;">{_n(n)}</td>'
        f'<td style="padding:3px 0 3px 12px;font-size:{size};color:{_TEXT};'
        f'word-break:break-word;">{_e(reason or "(no reason recorded)")}</td>'
        "</tr>"
        for reason, n in reasons
    )
    return _table(rows)


def _section_title(text: str) -> str:
    return (
        f'<tr><td style="padding:24px 28px 8px;font-size:15px;font-weight:700;color:{_TEXT};'
        f'border-top:1px solid {_LINE};">{_e(text)}</td></tr>'
    )


def _mailing_block(mailing: MailingReport, report: DayReport, public_url: str | None) -> str:
    preview = " ".join(mailing.text.split())
    if len(preview) > _PREVIEW:
        preview = preview[: _PREVIEW - 1] + "…"
    url = mailing_url(public_url, mailing.id)
    name = f"Mailing {mailing.id}"
    title = (
        f'<a href="{_e(url)}" style="color:#2c5bd3;text-decoration:none;font-weight:700;">'
        f"{_e(name)}</a>"
        if url
        else f'<span style="font-weight:700;">{_e(name)}</span>'
    )
    period = f"{_local(mailing.start_at, report)} to {_local(mailing.end_at, report)}"
    reasons = (
        f'<div style="padding-top:8px;font-size:12px;color:{_MUTED};">Failed that day, by reason'
        f"</div>{_reasons(mailing.failure_reasons, small=True)}"
        if mailing.failure_reasons
        else ""
    )
    return (
        f'<tr><td id="mailing-{mailing.id}" style="padding:12px 28px;">'
        + _table(
            "<tr>"
            f'<td style="font-size:14px;color:{_TEXT};padding-bottom:2px;">{title}'
            f'<span style="color:{_MUTED};"> · {_e(preview)}</span></td>'
            f'<td align="right" style="text-align:right;white-space:nowrap;">'
            f"{_status_badge(mailing)}</td>"
            "</tr>"
        )
        + f'<div style="font-size:12px;color:{_MUTED};padding:2px 0 8px;">{_e(period)}</div>'
        + _counts_table(mailing.counts, mailing.sent_that_day)
        + '<div style="height:8px;line-height:8px;font-size:0;">&nbsp;</div>'
        + _rate_row("Delivery rate", mailing.counts.delivery_rate)
        + reasons
        + "</td></tr>"
    )


def render_html(report: DayReport, public_url: str | None = None) -> str:
    """The report as a self-contained HTML email: the same figures as the text part."""
    t = report.totals
    day = report.day
    heading = f"Mailings report · {day.day} {day:%B %Y}"
    tiles = "".join(
        (
            _tile("Mailings", _n(len(report.mailings))),
            '<td width="8" style="width:8px;">&nbsp;</td>',
            _tile("Sent that day", _n(report.sent_that_day)),
            '<td width="8" style="width:8px;">&nbsp;</td>',
            _tile("Messages", _n(t.total)),
            '<td width="8" style="width:8px;">&nbsp;</td>',
            _tile("Delivered", _percent(t.delivery_rate)),
        )
    )
    body = [
        f'<tr><td style="padding:24px 28px 4px;"><h1 style="margin:0;font-size:20px;'
        f'line-height:28px;color:{_TEXT};">{_e(heading)}</h1>'
        f'<p style="margin:4px 0 0;font-size:13px;color:{_MUTED};">{_e(report.timezone)} · '
        f"counts as of {_e(_local(report.generated_at, report))}</p></td></tr>",
        f'<tr><td style="padding:16px 28px 4px;">{_table(f"<tr>{tiles}</tr>")}</td></tr>',
        f'<tr><td style="padding:12px 28px 8px;">'
        f"{_rate_row('Delivery rate (sent / sent, failed and expired)', t.delivery_rate)}"
        f'<div style="height:12px;line-height:12px;font-size:0;">&nbsp;</div>'
        f"{_counts_table(t, None)}</td></tr>",
    ]
    if report.failure_reasons:
        body.append(_section_title("Top failure reasons of the day"))
        body.append(
            f'<tr><td style="padding:0 28px 8px;">{_reasons(report.failure_reasons)}</td></tr>'
        )
    body.append(_section_title("Mailings that ran"))
    if report.mailings:
        body += [_mailing_block(m, report, public_url) for m in report.mailings]
    else:
        body.append(
            f'<tr><td style="padding:4px 28px 16px;font-size:14px;color:{_MUTED};">'
            "No mailing ran on this day.</td></tr>"
        )
    body.append(
        f'<tr><td style="padding:16px 28px 24px;font-size:12px;color:{_MUTED};'
        f'border-top:1px solid {_LINE};">The same figures are attached as CSV. The delivery '
        "rate leaves cancelled and pending messages aside.</td></tr>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light">'
        f"<title>{_e(heading)}</title></head>\n"
        f'<body style="margin:0;padding:0;background-color:#f4f5f7;">\n'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"'
        ' bgcolor="#f4f5f7" style="width:100%;background-color:#f4f5f7;">'
        '<tr><td align="center" style="padding:24px 12px;">\n'
        '<table role="presentation" width="640" cellpadding="0" cellspacing="0" border="0"'
        f' bgcolor="#ffffff" style="width:640px;max-width:100%;background-color:#ffffff;'
        f"border:1px solid {_LINE};border-radius:8px;border-collapse:separate;"
        f'font-family:{_FONT};color:{_TEXT};">\n'
        + "\n".join(body)
        + "\n</table>\n</td></tr></table>\n</body></html>\n"
    )
