"""The bytes the simulator answers with, built once; and the two answers that are not bytes."""

from __future__ import annotations

import enum

import orjson

__all__ = [
    "FAILED",
    "GARBAGE",
    "NOT_FOUND",
    "OK",
    "RATE_LIMITED",
    "REJECTED",
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
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
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
NOT_FOUND = json_error(404, "no such path")
RATE_LIMITED = too_many_requests("simulated rate limit", 1.0)

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
