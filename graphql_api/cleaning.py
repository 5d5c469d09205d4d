"""From input types to domain values, every problem named by its field path.

The rules themselves live in :mod:`models.validation`; this module applies
them to the API's inputs, collects all problems of one call (not just the
first), and raises them together as :class:`models.InvalidInput`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from graphql import GraphQLError
from strawberry.types.unset import UnsetType

import models
from graphql_api.inputs import (
    ClientFilterInput,
    ClientInput,
    ClientPatch,
    MailingInput,
    MailingPatch,
    SendWindowInput,
)
from models import clock, validation
from models.services.clients import MAX_IMPORT_ROWS, ClientChanges, ClientFields, ImportRows
from models.services.mailings import MailingChanges, MailingFields, end_passed

__all__ = [
    "MAX_FILTER_VALUES",
    "Problems",
    "clean_argument",
    "clean_client",
    "clean_client_input",
    "clean_client_patch",
    "clean_import",
    "clean_mailing",
    "clean_mailing_patch",
    "parse_instant",
]

MAX_FILTER_VALUES = 1000

InT = TypeVar("InT")
OutT = TypeVar("OutT")


class Problems:
    """Problems found so far in one call's input."""

    def __init__(self) -> None:
        self.found: list[models.FieldProblem] = []

    def add(self, field: str, message: str) -> None:
        self.found.append(models.FieldProblem(field, message))

    def clean(self, field: str, rule: Callable[[InT], OutT], value: InT) -> OutT | None:
        """``rule(value)``, or ``None`` after noting why the value breaks it."""
        try:
            return rule(value)
        except ValueError as error:
            self.add(field, str(error))
            return None

    def patched(self, field: str, rule: Callable[[InT], OutT], value: InT | None) -> OutT | None:
        """A patch field that, when given, must not be null."""
        if isinstance(value, UnsetType):
            return None
        if value is None:
            self.add(field, "must not be null")
            return None
        return self.clean(field, rule, value)

    def raise_any(self) -> None:
        if self.found:
            raise models.InvalidInput(self.found)


def clean_argument(name: str, rule: Callable[[InT], OutT], value: InT) -> OutT:
    """``rule(value)`` for an argument of a query, which has no result union to answer in.

    The refusal is a GraphQL error naming the argument (``BAD_USER_INPUT``,
    as Apollo names it), never a quiet empty answer.
    """
    try:
        return rule(value)
    except ValueError as error:
        raise GraphQLError(
            f"`{name}` {error}", extensions={"code": "BAD_USER_INPUT", "field": name}
        ) from None


def _given(value: Any) -> bool:
    return not isinstance(value, UnsetType)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with its offset, as UTC; a naive one is refused."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "must be an ISO 8601 date and time with a UTC offset, e.g. 2026-01-31T09:00:00+03:00"
        ) from None
    try:
        return validation.clean_instant(parsed).astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+14:00 is a valid text for an instant before year 1.
        raise ValueError(
            "is out of range: in UTC it must fall between 0001-01-01 and 9999-12-31"
        ) from None


def clean_client(value: ClientInput, path: str, problems: Problems) -> ClientFields | None:
    """A new client's fields, or ``None`` after noting each problem under ``path``."""
    phone = problems.clean(f"{path}.phone", validation.clean_phone, value.phone)
    code: str | None = None
    if value.operator_code is None or isinstance(value.operator_code, UnsetType):
        code = None if phone is None else validation.default_operator_code(phone)
    else:
        code = problems.clean(
            f"{path}.operatorCode", validation.clean_operator_code, value.operator_code
        )
    tag = problems.clean(f"{path}.tag", validation.clean_tag, _or_default(value.tag, ""))
    timezone = problems.clean(
        f"{path}.timezone", validation.clean_timezone, _or_default(value.timezone, "UTC")
    )
    if phone is None or code is None or tag is None or timezone is None:
        return None
    return ClientFields(phone, code, tag, timezone, opted_out=value.opted_out is True)


def clean_client_input(value: ClientInput) -> ClientFields:
    """``createClient``'s input, every problem raised together."""
    problems = Problems()
    fields = clean_client(value, "input", problems)
    problems.raise_any()
    assert fields is not None
    return fields


def clean_import(rows: list[ClientInput]) -> ImportRows:
    """``importClients``' rows, each checked like ``createClient``'s, and no phone twice.

    Nothing is raised for a row: every problem of every row is kept, for the
    service to answer with those it finds in the database (phones in use).
    """
    if len(rows) > MAX_IMPORT_ROWS:
        raise models.InvalidInput(
            [models.FieldProblem("input", f"must hold at most {MAX_IMPORT_ROWS:,} clients a call")]
        )
    problems = Problems()
    cleaned: list[ClientFields] = []
    phones: dict[int, str] = {}
    first_row_of: dict[str, int] = {}
    for index, row in enumerate(rows):
        path = f"input.{index}"
        known = len(problems.found)
        fields = clean_client(row, path, problems)
        if fields is not None:
            cleaned.append(fields)
            phone: str | None = fields.phone
        elif all(p.field != f"{path}.phone" for p in problems.found[known:]):
            phone = validation.clean_phone(row.phone)  # well formed: another field is not
        else:
            phone = None
        if phone is None:
            continue
        phones[index] = phone
        earlier = first_row_of.setdefault(phone, index)
        if earlier != index:
            problems.add(f"{path}.phone", f"repeats the phone of input.{earlier}")
    if problems.found:
        return ImportRows(clients=[], phones=phones, problems=problems.found)
    return ImportRows(clients=cleaned, phones=phones, problems=[])


def _or_default(value: str | None, default: str) -> str:
    return default if value is None or isinstance(value, UnsetType) else value


def clean_client_patch(patch: ClientPatch) -> ClientChanges:
    """The fields a patch sets; ``operator_code: None`` means "derive it from the phone"."""
    problems = Problems()
    changes: ClientChanges = {}
    if _given(patch.phone):
        changes["phone"] = problems.patched("input.phone", validation.clean_phone, patch.phone)
    if _given(patch.operator_code):
        changes["operator_code"] = (
            None
            if patch.operator_code is None
            else problems.clean(
                "input.operatorCode", validation.clean_operator_code, patch.operator_code
            )
        )
    if _given(patch.tag):
        changes["tag"] = problems.clean(
            "input.tag", validation.clean_tag, _or_default(patch.tag, "")
        )
    if _given(patch.timezone):
        changes["timezone"] = problems.clean(
            "input.timezone", validation.clean_timezone, _or_default(patch.timezone, "UTC")
        )
    problems.raise_any()
    return changes


def _clean_filter(
    value: ClientFilterInput | None, path: str, problems: Problems
) -> models.ClientFilter:
    if value is None or isinstance(value, UnsetType):
        return models.ClientFilter()
    cleaned: dict[str, tuple[str, ...]] = {}
    for name, values, rule in (
        ("operatorCodes", value.operator_codes, validation.clean_operator_code),
        ("tags", value.tags, validation.clean_tag),
    ):
        if len(values) > MAX_FILTER_VALUES:
            problems.add(f"{path}.{name}", f"must hold at most {MAX_FILTER_VALUES} values")
            values = []
        for index, item in enumerate(values):
            problems.clean(f"{path}.{name}.{index}", rule, item)
        # Repeats change nothing a filter matches; keep the first of each.
        cleaned[name] = tuple(dict.fromkeys(values))
    return models.ClientFilter(operator_codes=cleaned["operatorCodes"], tags=cleaned["tags"])


def _clean_window(
    value: SendWindowInput | None, path: str, problems: Problems
) -> models.SendWindow | None:
    if value is None or isinstance(value, UnsetType):
        return None
    start = problems.clean(f"{path}.start", validation.clean_clock_time, value.start)
    end = problems.clean(f"{path}.end", validation.clean_clock_time, value.end)
    if start is None or end is None:
        return None
    if start == end:
        problems.add(
            path,
            "start and end must differ: an empty or a whole-day window is ambiguous "
            "(leave sendWindow out to send at any time of day)",
        )
        return None
    return models.SendWindow(start, end)


def clean_mailing(value: MailingInput) -> MailingFields:
    problems = Problems()
    text = problems.clean("input.text", validation.clean_text, value.text)
    start_at = problems.clean("input.startAt", parse_instant, value.start_at)
    end_at = problems.clean("input.endAt", parse_instant, value.end_at)
    client_filter = _clean_filter(value.filter, "input.filter", problems)
    window = _clean_window(value.send_window, "input.sendWindow", problems)
    if start_at is not None and end_at is not None and not start_at < end_at:
        problems.add("input.endAt", "must be later than startAt")
    elif end_at is not None and (passed := end_passed(end_at, clock.now())) is not None:
        # The service checks it too; said here, it comes with every other problem.
        problems.found.append(passed)
    problems.raise_any()
    if text is None or start_at is None or end_at is None:  # pragma: no cover - noted above
        raise AssertionError("a missing field is a noted problem")
    return MailingFields(text, start_at, end_at, client_filter, window)


def clean_mailing_patch(patch: MailingPatch) -> MailingChanges:
    problems = Problems()
    text = problems.patched("input.text", validation.clean_text, patch.text)
    start_at = problems.patched("input.startAt", parse_instant, patch.start_at)
    end_at = problems.patched("input.endAt", parse_instant, patch.end_at)
    if start_at is not None and end_at is not None and not start_at < end_at:
        problems.add("input.endAt", "must be later than startAt")
    client_filter = (
        _clean_filter(patch.filter, "input.filter", problems) if _given(patch.filter) else None
    )
    window = _clean_window(patch.send_window, "input.sendWindow", problems)
    problems.raise_any()
    return MailingChanges(
        text=text,
        start_at=start_at,
        end_at=end_at,
        filter=client_filter,
        window_given=_given(patch.send_window),
        window=window,
    )
