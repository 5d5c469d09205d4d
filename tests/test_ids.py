"""Global ids: one id names one object of one type; the first release's keys still work."""

from __future__ import annotations

import base64

import pytest

from graphql_api.ids import MAX_KEY, Kind, decode, global_id, key_of


def test_a_global_id_names_its_type_and_key() -> None:
    for kind in Kind:
        assert decode(global_id(kind, 42)) == (kind, 42)
        assert key_of(global_id(kind, MAX_KEY), kind) == MAX_KEY
    assert global_id(Kind.MAILING, 42) == "TWFpbGluZzo0Mg=="
    assert len({global_id(kind, 1) for kind in Kind}) == len(Kind)


def test_the_integer_keys_of_the_first_release_stay_accepted() -> None:
    assert key_of("42", Kind.CLIENT) == 42
    assert key_of("42", Kind.MAILING) == 42


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        "0",
        "-1",
        str(MAX_KEY + 1),
        "٤٢",  # non-ASCII digits
        global_id(Kind.CLIENT, 42),  # another type's
        base64.b64encode(b"Mailing:0").decode(),
        base64.b64encode(b"Mailing:abc").decode(),
        base64.b64encode(b"Mailbox:42").decode(),
        base64.b64encode(f"Mailing:{MAX_KEY + 1}".encode()).decode(),
        "TWFpbGluZzo0Mg",  # padding cut off
        "TWFpbGluZzo0Mg==" * 10,
    ],
)
def test_an_id_that_names_no_mailing_is_none(value: str) -> None:
    assert key_of(value, Kind.MAILING) is None
