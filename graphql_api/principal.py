"""Who is calling, and what they may do.

A ``viewer`` may query and subscribe; an ``operator`` may also mutate.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["OPEN", "PRINCIPAL_SCOPE_KEY", "Principal", "Role", "principal_of"]

# Where RequireToken leaves the principal it found, in the ASGI scope.
PRINCIPAL_SCOPE_KEY = "mailings.principal"


class Role(enum.Enum):
    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request or WebSocket connection.

    ``via`` says how: ``open`` (no credentials configured, for local use),
    ``api_token`` (``API_TOKEN``, an operator), ``oidc`` (a provider's JWT) or
    ``signed_link`` (a signed export link, good for that one download).
    """

    role: Role
    via: Literal["open", "api_token", "oidc", "signed_link"]
    subject: str | None = None
    # Epoch seconds; a WebSocket outlives its token, so operations check it.
    expires_at: float | None = None
    # A person's name for people (OIDC ``name``, else ``preferred_username``, ``email``).
    name: str | None = None

    @property
    def may_mutate(self) -> bool:
        return self.role is Role.OPERATOR

    @property
    def actor(self) -> str:
        """Who this is, stably: ``api_token``, ``oidc:<subject>``, ``open``.

        The key idempotency keys are kept under and the audit trail's actor.
        """
        if self.via == "oidc" and self.subject is not None:
            return f"oidc:{self.subject}"
        return self.via

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


OPEN = Principal(role=Role.OPERATOR, via="open")
"""The caller when neither ``API_TOKEN`` nor OIDC is configured."""


def principal_of(scope: Mapping[str, object]) -> Principal:
    """The principal ``RequireToken`` found for this request."""
    principal = scope.get(PRINCIPAL_SCOPE_KEY)
    # A request that did not pass through RequireToken gets nothing it could misuse.
    return principal if isinstance(principal, Principal) else Principal(Role.VIEWER, "open")
