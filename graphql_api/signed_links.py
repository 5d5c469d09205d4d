"""Short-lived signed links to the CSV exports, that work without the ``Authorization`` header.

A browser tab, a spreadsheet's "open URL" or a colleague given a link for a
minute cannot send a header. The API hands out, to whoever may read the
export, its URL with ``expires`` (epoch seconds) and ``signature``: an
HMAC-SHA256, under ``EXPORT_LINK_SECRET``, of the path and every other query
parameter, so a link is good for that one export, with those parameters,
until it expires. Refusals are 403s with a JSON body saying why; the plain
URLs keep working with the header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

import structlog
from pydantic import SecretStr
from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from graphql_api.auth import PRINCIPAL_SCOPE_KEY, Authenticator, RequireToken
from graphql_api.http.over_http import refusal
from graphql_api.principal import Principal, Role
from models import clock
from settings import Settings

__all__ = ["AcceptSignedLinks", "LinkSigner", "SignedLink"]

log = structlog.get_logger(__name__)

_EXPIRES = "expires"
_SIGNATURE = "signature"
_SIGNED_LINK = Principal(role=Role.VIEWER, via="signed_link")


@dataclass(frozen=True, slots=True)
class SignedLink:
    url: str
    expires_at: datetime


class BadLink(Exception):
    """A signed link refused; the message is safe to show."""


class LinkSigner:
    """Signs export URLs and checks the links presented back."""

    def __init__(self, secret: SecretStr | None, ttl: timedelta) -> None:
        # Without a configured secret, one made for this process: its links
        # work on it alone (set EXPORT_LINK_SECRET with several API processes).
        key = secrets.token_bytes(32) if secret is None else secret.get_secret_value().encode()
        self._key = key
        self.ttl = ttl

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkSigner:
        return cls(settings.export_link_secret, timedelta(seconds=settings.export_link_ttl))

    def _signature(self, path: str, params: Mapping[str, str]) -> str:
        canonical = path + "?" + urlencode(sorted(params.items()))
        digest = hmac.new(self._key, canonical.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, url: str, params: Mapping[str, str] | None = None) -> SignedLink:
        """``url`` (with ``params``) as a link that expires ``ttl`` from now."""
        expires_at = (clock.now() + self.ttl).replace(microsecond=0)
        signed = {**(params or {}), _EXPIRES: str(int(expires_at.timestamp()))}
        signed[_SIGNATURE] = self._signature(urlsplit(url).path, signed)
        return SignedLink(url=f"{url}?{urlencode(signed)}", expires_at=expires_at)

    def check(self, path: str, query: QueryParams) -> None:
        """Raises ``BadLink`` unless ``path?query`` is a link signed here that is still good."""
        params = dict(query.items())
        if len(params) != len(query.multi_items()):
            raise BadLink("This export link repeats a parameter: ask the API for a new one")
        presented = params.pop(_SIGNATURE, None)
        if presented is None or _EXPIRES not in params:
            raise BadLink("This export link is incomplete: it needs both 'expires' and 'signature'")
        if not hmac.compare_digest(presented.encode(), self._signature(path, params).encode()):
            raise BadLink(
                "This export link's signature does not match: the link was changed, was made "
                "for another export, or by another server"
            )
        try:
            expires_at = datetime.fromtimestamp(int(params[_EXPIRES]), UTC)
        except (ValueError, OverflowError, OSError):  # signed, so never from us
            raise BadLink("This export link's expiry is not a time") from None
        if clock.now() >= expires_at:
            raise BadLink(
                f"This export link expired at {expires_at.isoformat()}: ask the API for a new one"
            )


class AcceptSignedLinks:
    """ASGI middleware for the exports: a signed link is let in by its signature alone, or refused.

    A request without ``signature`` or ``expires`` goes through the token
    check (``RequireToken``) as before.
    """

    def __init__(self, app: ASGIApp, signer: LinkSigner, authenticator: Authenticator) -> None:
        self.app = app
        self.signer = signer
        self.with_token = RequireToken(app, authenticator)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = QueryParams(scope.get("query_string", b""))
        if scope["type"] != "http" or (_SIGNATURE not in query and _EXPIRES not in query):
            await self.with_token(scope, receive, send)
            return
        # Starlette keeps the whole path in a mount: the one the link was signed with.
        path: str = scope["path"]
        try:
            self.signer.check(path, query)
        except BadLink as refused:
            log.info("signed export link refused", path=path, reason=str(refused))
            await refusal(403, str(refused))(scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = _SIGNED_LINK
        await self.app(scope, receive, send)
