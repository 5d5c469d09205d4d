"""Property tests of the field rules (models.validation) and send windows (models.send_window)."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from graphql_api.cleaning import parse_instant
from models.send_window import SendWindow, next_window_opening
from models.time_zones import canonical_zones, link_target
from models.validation import (
    clean_clock_time,
    clean_instant,
    clean_operator_code,
    clean_phone,
    clean_tag,
    clean_text,
    clean_timezone,
    clean_zone_name,
    default_operator_code,
)

ASCII_DIGITS = "0123456789"
ZONES = sorted(canonical_zones())
# Every name the machine's zone database knows, canonical or not.
ALL_NAMES = sorted(available_timezones() | {"UTC"})
# Zones with DST changes, and one with a half-hour offset.
DST_ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago"]

# A day before each change, in UTC.
DST_CHANGES_2026 = {
    "America/New_York": [
        datetime(2026, 3, 7, 4, tzinfo=UTC),
        datetime(2026, 10, 31, 4, tzinfo=UTC),
    ],
    "Europe/Berlin": [datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 10, 24, tzinfo=UTC)],
    "Australia/Lord_Howe": [datetime(2026, 4, 4, tzinfo=UTC), datetime(2026, 10, 3, tzinfo=UTC)],
    "America/Santiago": [datetime(2026, 4, 4, tzinfo=UTC), datetime(2026, 9, 5, tzinfo=UTC)],
}

digits = st.text(alphabet=ASCII_DIGITS, min_size=10, max_size=10)
phones = digits.map(lambda d: "7" + d)


def mutated(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Near misses: one character replaced by any character, or one added or removed."""
    return st.one_of(
        st.builds(
            lambda s, i, c: s[:i] + c + s[i + 1 :], strategy, st.integers(0, 11), st.characters()
        ),
        st.builds(lambda s, c: s + c, strategy, st.characters()),
        strategy.map(lambda s: s[:-1]),
    )


def is_phone(text: str) -> bool:
    return len(text) == 11 and text[0] == "7" and all(c in ASCII_DIGITS for c in text)


@given(phones)
def test_valid_phones_and_their_operator_code(phone: str) -> None:
    assert clean_phone(phone) == phone
    code = default_operator_code(phone)
    assert code == phone[1:4]
    assert clean_operator_code(code) == code


@given(st.one_of(st.text(), mutated(phones)))
@example("7" + "".join(chr(0x0660 + i) for i in range(10)))  # Arabic-Indic digits
@example("".join(chr(0xFF10 + int(d)) for d in "79001234567"))  # fullwidth digits
@example("79001234567\n")
def test_a_phone_is_7_and_ten_ascii_digits(text: str) -> None:
    if is_phone(text):
        assert clean_phone(text) == text
    else:
        with pytest.raises(ValueError, match="11 digits"):
            clean_phone(text)


@given(st.one_of(st.text(max_size=5), st.text(alphabet=ASCII_DIGITS, max_size=4)))
@example("٠١٢")
def test_an_operator_code_is_three_ascii_digits(text: str) -> None:
    if len(text) == 3 and all(c in ASCII_DIGITS for c in text):
        assert clean_operator_code(text) == text
    else:
        with pytest.raises(ValueError, match="3 digits"):
            clean_operator_code(text)


@given(st.sampled_from(ZONES))
def test_every_canonical_zone_is_a_timezone(name: str) -> None:
    assert clean_timezone(name) == name
    assert clean_zone_name(name) == name
    ZoneInfo(name)


@given(st.one_of(st.text(), st.sampled_from(ZONES).map(str.lower), st.sampled_from(ALL_NAMES)))
@example("Europe/Moscow ")
@example("../../etc/passwd")
@example("localtime")
@example("Factory")
@example("Europe/Kiev")
def test_a_timezone_is_a_canonical_iana_name(text: str) -> None:
    if text in ZONES:
        assert clean_timezone(text) == text
        return
    target = link_target(text)
    if target is None:
        with pytest.raises(ValueError, match="canonical IANA time zone name"):
            clean_timezone(text)
        with pytest.raises(ValueError, match="IANA time zone name"):
            clean_zone_name(text)
    else:
        # An old name is refused with the one to use; a lookup by it still works.
        assert target in ZONES
        with pytest.raises(ValueError, match=re.escape(f"use {target}") + "$"):
            clean_timezone(text)
        assert clean_zone_name(text) == text


def test_which_names_are_canonical() -> None:
    for name in ("UTC", "Europe/Moscow", "Europe/Kyiv", "Europe/Oslo", "Etc/GMT-3", "Asia/Kolkata"):
        assert clean_timezone(name) == name
    assert link_target("Asia/Calcutta") == "Asia/Kolkata"
    assert link_target("US/Eastern") == "America/New_York"
    for name in (
        "localtime",
        "Factory",
        "posixrules",
        "Asia/Calcutta",
        "US/Eastern",
        "Nowhere/Foo",
    ):
        with pytest.raises(ValueError, match=r"IANA|use "):
            clean_timezone(name)
    # Far fewer than the machine's files: links, `localtime` and `Factory` are out.
    assert 400 < len(ZONES) < len(ALL_NAMES)


def has_control(text: str, allowed: str = "") -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cs") and c not in allowed for c in text)


@given(st.text(max_size=70))
@example("a\x00b")
@example("vip\n")
@example("\x1b[31mred")
def test_a_tag_holds_no_control_character(text: str) -> None:
    if len(text) <= 64 and not has_control(text):
        assert clean_tag(text) == text
    else:
        with pytest.raises(ValueError, match=r"64|control characters"):
            clean_tag(text)


@given(st.text(min_size=1, max_size=1000))
@example("Hello\x00")
@example("Line one\r\nLine two\tend")
def test_a_text_holds_line_breaks_and_tabs_but_no_other_control(text: str) -> None:
    if text.strip() and not has_control(text, allowed="\t\n\r"):
        assert clean_text(text) == text
    else:
        with pytest.raises(ValueError, match=r"empty|control characters"):
            clean_text(text)


OFFSETS = st.integers(-(14 * 60), 14 * 60).map(
    lambda m: f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)), OFFSETS)
@example(datetime(1, 1, 1), "+14:00")
@example(datetime(9999, 12, 31, 23, 59, 59), "-14:00")
def test_an_instant_beyond_the_calendar_in_utc_is_refused(moment: datetime, offset: str) -> None:
    text = moment.isoformat() + offset
    try:
        in_utc = datetime.fromisoformat(text).astimezone(UTC)
    except OverflowError:
        with pytest.raises(ValueError, match="out of range"):
            parse_instant(text)
    else:
        assert parse_instant(text) == in_utc


@given(st.datetimes(timezones=st.timezones()))
def test_aware_instants_are_accepted(moment: datetime) -> None:
    assert clean_instant(moment) == moment


@given(st.datetimes())
def test_naive_instants_are_refused(moment: datetime) -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        clean_instant(moment)


@given(st.datetimes(timezones=st.timezones()))
def test_an_instant_parses_back_to_itself_in_utc(moment: datetime) -> None:
    parsed = parse_instant(moment.isoformat())
    # Compared in UTC: an instant in a fall-back overlap never equals one in another zone.
    assert parsed == moment.astimezone(UTC)
    assert parsed.utcoffset() == timedelta(0)


@given(st.datetimes())
def test_a_naive_instant_text_is_refused(moment: datetime) -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        parse_instant(moment.isoformat())


@given(st.integers(0, 23), st.integers(0, 59))
def test_clock_times(hour: int, minute: int) -> None:
    assert clean_clock_time(f"{hour:02d}:{minute:02d}") == time(hour, minute)


@given(st.one_of(st.text(max_size=6), st.from_regex(r"\A[0-9]{1,3}:[0-9]{1,3}\Z")))
@example("24:00")
@example("9:30")
@example("09:60")
@example("٠٩:٣٠")
def test_a_clock_time_is_hh_mm(text: str) -> None:
    valid = (
        len(text) == 5
        and text[2] == ":"
        and all(c in ASCII_DIGITS for c in text[:2] + text[3:])
        and int(text[:2]) < 24
        and int(text[3:]) < 60
    )
    if valid:
        assert clean_clock_time(text) == time(int(text[:2]), int(text[3:]))
    else:
        with pytest.raises(ValueError, match="HH:MM"):
            clean_clock_time(text)


minutes_of_day = st.integers(0, 24 * 60 - 1)
local_times = st.times()


def windows() -> st.SearchStrategy[SendWindow]:
    return (
        st.tuples(minutes_of_day, minutes_of_day)
        .filter(lambda p: p[0] != p[1])
        .map(lambda p: SendWindow.from_minutes(*p))
    )


@given(minutes_of_day, minutes_of_day)
def test_a_window_keeps_its_minutes(start: int, end: int) -> None:
    window = SendWindow.from_minutes(start, end)
    assert (window.start_minutes, window.end_minutes) == (start, end)


@given(windows(), local_times)
def test_a_window_holds_its_start_but_not_its_end(window: SendWindow, local: time) -> None:
    assert window.contains(window.start)
    assert not window.contains(window.end)
    if window.start < window.end:
        assert window.contains(local) == (window.start <= local < window.end)
    else:  # wraps past midnight
        assert window.contains(local) == (local >= window.start or local < window.end)


@given(windows(), local_times)
def test_a_window_and_its_reverse_split_the_day(window: SendWindow, local: time) -> None:
    reverse = SendWindow(window.end, window.start)
    assert window.contains(local) != reverse.contains(local)


instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
)


def check_next_opening(window: SendWindow, zone: str, after: datetime) -> None:
    opening = next_window_opening(window, zone, after)
    assert opening >= after
    assert opening.utcoffset() == timedelta(0)
    assert window.is_open(zone, opening)
    if window.is_open(zone, after):
        assert opening == after
    assert opening - after < timedelta(days=2)
    # Closed everywhere before it: checked every minute of the wait.
    moment = after
    while moment < opening - timedelta(seconds=1):
        assert not window.is_open(zone, moment), moment
        moment += timedelta(minutes=1)


@given(windows(), st.sampled_from(["UTC", "Europe/Moscow", "Asia/Kolkata", *DST_ZONES]), instants)
def test_the_next_opening_is_the_first_open_instant(
    window: SendWindow, zone: str, after: datetime
) -> None:
    check_next_opening(window, zone, after)


@given(windows(), st.sampled_from(DST_ZONES), st.integers(0, 6 * 24 * 60))
def test_the_next_opening_around_dst_changes(window: SendWindow, zone: str, minute: int) -> None:
    """From a day before each 2026 change of the zone, to a few days after."""
    for change in DST_CHANGES_2026[zone]:
        check_next_opening(window, zone, change + timedelta(minutes=minute))


def test_spring_forward_gap_opens_when_the_clock_jumps() -> None:
    # New York, 2026-03-08: 02:00 EST becomes 03:00 EDT; 02:30 never happens.
    window = SendWindow(time(2, 30), time(4, 0))
    after = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST
    assert next_window_opening(window, "America/New_York", after) == datetime(
        2026, 3, 8, 7, 0, tzinfo=UTC
    )


def test_fall_back_repeats_the_window() -> None:
    # New York, 2026-11-01: 01:00-02:00 happens twice, first EDT, then EST.
    window = SendWindow(time(1, 30), time(1, 45))
    zone = "America/New_York"
    first = next_window_opening(window, zone, datetime(2026, 11, 1, 4, 0, tzinfo=UTC))
    assert first == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    between = datetime(2026, 11, 1, 5, 50, tzinfo=UTC)  # 01:50 EDT: first pass over
    assert next_window_opening(window, zone, between) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


def test_wrapping_window_in_local_time() -> None:
    window = SendWindow(time(22, 0), time(6, 0))
    after = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
    assert next_window_opening(window, "Asia/Tokyo", after) == datetime(
        2026, 6, 1, 13, 0, tzinfo=UTC
    )
    assert window.is_open("Asia/Tokyo", datetime(2026, 6, 1, 20, 0, tzinfo=UTC))  # 05:00
