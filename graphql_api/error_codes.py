"""The one list of ``extensions.code`` values an error in ``errors[]`` may carry.

Every refusal the API gives outside the result unions names one of these, so a
client can branch on the code and never on the wording. docs/api.md lists them
with their meaning; add a member here (and a line there) before using a new one.
"""

from __future__ import annotations

import enum

__all__ = ["MEANINGS", "ErrorCode"]


class ErrorCode(enum.StrEnum):
    """What went wrong, as a client can act on it."""

    # The document or the request around it.
    BAD_REQUEST = "BAD_REQUEST"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
    # Who is asking.
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    # Limits that protect the server.
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    QUERY_TOO_LARGE = "QUERY_TOO_LARGE"
    QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
    TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
    QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
    # What was asked for.
    NOT_FOUND = "NOT_FOUND"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    IDEMPOTENCY_KEY_IN_PROGRESS = "IDEMPOTENCY_KEY_IN_PROGRESS"
    # Ours.
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"


# What each code means, as docs/api.md (and /docs) lists it; every member has one.
MEANINGS: dict[ErrorCode, str] = {
    ErrorCode.BAD_REQUEST: "The HTTP request itself is wrong: its method, `Accept` or "
    "`Content-Type`, a body that is not a JSON object, a subscription without a streaming "
    "`Accept`. The HTTP status (400, 405, 406, 415) says which.",
    ErrorCode.GRAPHQL_PARSE_FAILED: "The document is not GraphQL (a syntax error).",
    ErrorCode.GRAPHQL_VALIDATION_FAILED: "The document asks for what the schema does not "
    "have, or breaks GraphQL's rules (introspection too, when `INTROSPECTION=false`).",
    ErrorCode.BAD_USER_INPUT: "A variable or argument was refused before anything ran: a "
    "value of the wrong type, a page size over 500, `first` with `last`, a cursor that is "
    "not this API's, a time zone that is not one.",
    ErrorCode.PERSISTED_QUERY_NOT_FOUND: "The server does not hold the document of this "
    "hash (an answer of 200): send it again with its `query`.",
    ErrorCode.PERSISTED_QUERY_NOT_SUPPORTED: "Persisted queries are off on this server: "
    "send the `query`.",
    ErrorCode.UNAUTHENTICATED: "No credentials, or credentials not accepted, or a token "
    "that has expired (401; a WebSocket closes with 4403).",
    ErrorCode.FORBIDDEN: "The caller is known but may not do this: a viewer's mutation, a "
    "token the provider refuses, a signed link that is wrong or too old (403).",
    ErrorCode.REQUEST_TOO_LARGE: "The request body is over `MAX_BODY_BYTES` (413).",
    ErrorCode.QUERY_TOO_LARGE: "The document has more tokens than `MAX_QUERY_TOKENS`.",
    ErrorCode.QUERY_TOO_DEEP: "The document nests deeper than `MAX_QUERY_DEPTH`.",
    ErrorCode.TOO_MANY_ALIASES: "The document has more aliases than `MAX_QUERY_ALIASES`.",
    ErrorCode.QUERY_TOO_COSTLY: "The request may return more list items than "
    "`MAX_QUERY_NODES`; the error's `cost` and `limit` extensions say how many.",
    ErrorCode.RATE_LIMITED: "Too many requests from this caller (429, with `Retry-After`).",
    ErrorCode.TOO_MANY_SUBSCRIPTIONS: "This caller or connection has as many subscriptions "
    "open as it may.",
    ErrorCode.NOT_FOUND: "Nothing has this id or path: a subscription to a mailing that "
    "does not exist (or was deleted), an export of one, a URL the API does not serve. A "
    "mutation answers a `NotFoundError` instead, and a query null.",
    ErrorCode.IDEMPOTENCY_KEY_REUSED: "This `Idempotency-Key` came with another request.",
    ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS: "The first request with this `Idempotency-Key` "
    "is still running: ask again shortly.",
    ErrorCode.INTERNAL_SERVER_ERROR: "Something failed on the server; the message is "
    "masked and the error logged with its request id.",
    ErrorCode.SERVICE_UNAVAILABLE: "A service the API depends on is unavailable for now "
    "(the identity provider's keys): ask again later (503).",
}
