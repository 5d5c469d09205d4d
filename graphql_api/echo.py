"""What of a client's own input an error message may repeat."""

from __future__ import annotations

__all__ = ["ECHOED_CHARACTERS", "echoed"]

# How much of a client's own input an error message repeats (and the log with it).
ECHOED_CHARACTERS = 40


def echoed(value: str) -> str:
    """``value`` as an error message may repeat it: quoted, and cut to a short prefix.

    A message repeats what the client sent so that they can find it; a
    100 KB cursor repeated whole made every refusal (and its log line) as
    large as the request.
    """
    if len(value) <= ECHOED_CHARACTERS:
        return repr(value)
    return f"{value[:ECHOED_CHARACTERS]!r}... ({len(value):,} characters)"
