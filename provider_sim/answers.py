"""The bytes the simulator answers with, built once; and the two answers that are not bytes."""

from __future__ import annotations

import enum

import orjson

__all__ = [
    "FAILED",
    "FORBIDDEN",
    "GARBAGE",
    "HOSTILE",
    "NOT_FOUND",
    "OK",
    "REJECTED",
    "THROTTLED",
    "TOKEN_REVOKED",
    "UNAUTHORIZED",
    "Action",
    "Silence",
    "json_error",
    "response",
    "too_many_requests",
]


class Silence(enum.Enum):
    """Answers that send no response."""

    RESET = "reset"  # abort the connection with a TCP RST
    HANG = "hang"  # say nothing until the client gives up (or the hang limit)


Action = bytes | Silence

_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 413: "Content Too Large", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
}  # fmt: skip


def response(
    status: int, body: bytes, *, close: bool = False, extra: tuple[str, ...] = ()
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *extra,
    ]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def json_error(status: int, message: str, *, close: bool = False) -> bytes:
    return response(status, orjson.dumps({"code": status, "message": message}), close=close)


def too_many_requests(message: str, retry_after: float) -> bytes:
    seconds = str(int(retry_after)) if retry_after.is_integer() else repr(retry_after)
    body = orjson.dumps({"code": 429, "message": message})
    return response(429, body, extra=(f"Retry-After: {seconds}",))


OK = response(200, b'{"code":0,"message":"OK"}')
FAILED = json_error(500, "simulated internal error")
REJECTED = json_error(400, "invalid recipient (simulated permanent rejection)")
UNAUTHORIZED = json_error(401, "missing or wrong bearer token")
TOKEN_REVOKED = json_error(401, "token revoked (simulated)")
FORBIDDEN = json_error(403, "forbidden (simulated)")
NOT_FOUND = json_error(404, "no such path")
THROTTLED = too_many_requests("more requests per second than max_rps", 1.0)

GARBAGE = tuple(
    response(200, body)
    for body in (
        b"<html><body>Service temporarily unavailable</body></html>",
        b'{"code": 1, "message": "queue full"}',
        b'{"status": "ok"}',
        b"",
        b'{"code": 0, "mess',
    )
)
# Bytes a careless client would choke on or store as they are (PostgreSQL
# refuses NUL in text): none of them is a success.
HOSTILE = (
    response(500, b"boom\x00bad"),
    response(200, b'{"code":1,"message":"a\\u0000b"}'),
    response(200, b"\x00\xff\xfeOK\x00\xc3("),
    response(500, b'{"code":500,"message":"' + b"overloaded " * 95_000 + b'"}'),
)
