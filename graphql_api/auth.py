"""Credentials: ``API_TOKEN`` (docs/settings.md) and bearer JWTs from an OIDC provider.

When either is configured, every request to the API must carry one. HTTP
requests send ``Authorization: Bearer <token>``; WebSocket clients send it in
``connectionParams.authorization`` at ``connection_init`` (as ``Bearer
<token>`` or the bare token), since browsers cannot set headers on a
WebSocket; a handshake's own ``Authorization`` header is the fallback. The API
token is compared in constant time and makes its holder an operator; a JWT's
role comes from its claims (``graphql_api.oidc``). A refusal is logged with
its reason, never with the credential.
"""

from __future__ import annotations

import hmac

import structlog
from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from graphql_api.http.over_http import refusal
from graphql_api.oidc import JwksUnavailable, TokenRefused, TokenVerifier, looks_like_jwt
from graphql_api.principal import OPEN, PRINCIPAL_SCOPE_KEY, Principal, Role, principal_of
from settings import Settings

__all__ = [
    "PRINCIPAL_SCOPE_KEY",
    "Authenticator",
    "Refused",
    "RequireToken",
    "principal_of",
    "token_matches",
]

# Where ``RequireToken`` leaves the request's ``Principal`` in the ASGI scope.
_API_TOKEN_HINT = "Missing or invalid API token: send 'Authorization: Bearer <token>'"

log = structlog.get_logger(__name__)


def token_matches(presented: object, expected: SecretStr, *, bare_allowed: bool) -> bool:
    """Whether ``presented`` (``Bearer <token>``, or the bare token if allowed) is the token."""
    credential = _credential(presented, bare_allowed=bare_allowed)
    return credential is not None and _same(credential, expected)


def _same(credential: str, expected: SecretStr) -> bool:
    return hmac.compare_digest(
        credential.encode("utf-8", "surrogateescape"),
        expected.get_secret_value().encode("utf-8", "surrogateescape"),
    )


def _credential(presented: object, *, bare_allowed: bool) -> str | None:
    if not isinstance(presented, str):
        return None
    scheme, _, credential = presented.strip().partition(" ")
    if scheme.lower() == "bearer":
        return credential.strip() or None
    return presented.strip() or None if bare_allowed else None


class Refused(Exception):
    """Credentials that are not accepted; ``message`` is safe to show the client."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Authenticator:
    """Turns what a client presents into a ``Principal``, or refuses it."""

    def __init__(self, token: SecretStr | None, verifier: TokenVerifier | None = None) -> None:
        self.token = token
        self.verifier = verifier

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        verifier = TokenVerifier(settings) if settings.oidc_enabled else None
        return cls(settings.api_token, verifier)

    async def aclose(self) -> None:
        if self.verifier is not None:
            await self.verifier.aclose()

    async def authenticate(self, presented: object, *, bare_allowed: bool) -> Principal:
        """The caller behind ``presented`` (an ``Authorization`` value); raises ``Refused``."""
        if self.token is None and self.verifier is None:
            return OPEN
        credential = _credential(presented, bare_allowed=bare_allowed)
        if credential is None:
            raise Refused(_API_TOKEN_HINT)
        if self.token is not None and token_matches(credential, self.token, bare_allowed=True):
            return Principal(role=Role.OPERATOR, via="api_token")
        if self.verifier is not None and looks_like_jwt(credential):
            try:
                return await self.verifier.verify(credential)
            except TokenRefused as refused:
                raise Refused(
                    f"Invalid access token: {refused.reason}", 403 if refused.forbidden else 401
                ) from None
            except JwksUnavailable:
                raise Refused(
                    "The access token cannot be verified now: the identity provider's "
                    "keys are unavailable",
                    503,
                ) from None
        raise Refused(_API_TOKEN_HINT)


class RequireToken:
    """ASGI middleware: HTTP requests need valid credentials; refusals are JSON errors.

    The principal found is left in the scope for the GraphQL context.
    """

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            presented = Headers(scope=scope).get("authorization")
            try:
                principal = await self.authenticator.authenticate(presented, bare_allowed=False)
            except Refused as refused:
                log.info(
                    "request refused: credentials not accepted",
                    path=scope.get("path"),
                    reason=refused.message,
                    status=refused.status,
                )
                headers = {}
                if refused.status == 401:
                    headers["WWW-Authenticate"] = 'Bearer realm="mailings", error="invalid_token"'
                response = refusal(refused.status, refused.message, headers=headers)
                await response(scope, receive, send)
                return
            scope[PRINCIPAL_SCOPE_KEY] = principal
        await self.app(scope, receive, send)
