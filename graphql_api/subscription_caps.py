"""How many subscriptions one connection and one caller may hold open, in this process.

One place for every transport: the WebSocket (``graphql-transport-ws``),
Server-Sent Events and multipart all run a subscription's resolver, which
holds its place with :meth:`SubscriptionCaps.hold` for as long as it
streams. A subscription over either cap ends at once with an error whose
code is ``TOO_MANY_SUBSCRIPTIONS``; the others go on.

The caller is :func:`caller_key`: the OIDC subject, the API token, or the
client's address when the API is open (the same key rate limits use).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Hashable, Iterator, Mapping
from typing import TypeVar

import structlog
from graphql import GraphQLError

from graphql_api.error_codes import ErrorCode
from graphql_api.principal import Principal

__all__ = ["SubscriptionCaps", "caller_key"]

_Key = TypeVar("_Key", bound=Hashable)

log = structlog.get_logger(__name__)


def caller_key(principal: Principal | None, scope: Mapping[str, object]) -> str:
    """Who is calling, for limits: a subject, the token, or the client's address.

    The key never holds a credential: the API token is one caller whoever
    holds it, an OIDC token is its subject.
    """
    if principal is not None and principal.via == "oidc" and principal.subject:
        return f"oidc:{principal.subject}"
    if principal is not None and principal.via == "api_token":
        return "api_token"
    client = scope.get("client")
    host = client[0] if isinstance(client, tuple | list) and client else "unknown"
    return f"address:{host}"


class SubscriptionCaps:
    """Counts of open subscriptions per connection and per caller, refused over the caps."""

    def __init__(self, per_connection: int, per_caller: int) -> None:
        self.per_connection = per_connection
        self.per_caller = per_caller
        self._connections: Counter[int] = Counter()
        self._callers: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return sum(self._callers.values())

    @contextlib.contextmanager
    def hold(self, connection: object, caller: str) -> Iterator[None]:
        """A place for one subscription of ``connection`` (its request or socket) and ``caller``."""
        key = id(connection)
        if self._connections[key] >= self.per_connection:
            raise _refused(
                f"This connection has {self.per_connection} subscriptions open already, "
                "the most allowed: end one first",
                self.per_connection,
            )
        if self._callers[caller] >= self.per_caller:
            log.info("subscription refused: too many for one caller", limit=self.per_caller)
            raise _refused(
                f"You have {self.per_caller} subscriptions open already, the most allowed "
                "to one caller: end one first",
                self.per_caller,
            )
        self._connections[key] += 1
        self._callers[caller] += 1
        try:
            yield
        finally:
            _release(self._connections, key)
            _release(self._callers, caller)


def _release(counter: Counter[_Key], key: _Key) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _refused(message: str, limit: int) -> GraphQLError:
    return GraphQLError(
        message, extensions={"code": ErrorCode.TOO_MANY_SUBSCRIPTIONS.value, "limit": limit}
    )
