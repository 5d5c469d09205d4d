"""Bearer JWTs from an OAuth2 / OpenID Connect provider: verified, and mapped to a role.

A token is accepted when its signature verifies with one of the issuer's
published keys (an asymmetric algorithm from ``OIDC_ALGORITHMS``: never
``none``, never a shared secret), it has not expired, and its ``iss`` and
``aud`` are the configured ones. Its role comes from ``OIDC_ROLES_CLAIM``.

The keys (the JWKS) are fetched once and kept for ``OIDC_JWKS_CACHE_SECONDS``;
a token signed with a key id not in the cache refetches them at once, which
is how a rotation is picked up, but at most once per
``OIDC_JWKS_MIN_REFRESH`` seconds, so that tokens with made-up key ids cannot
make us hammer the provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import structlog

from graphql_api.principal import Principal, Role
from settings import Settings

__all__ = [
    "JwksCache",
    "JwksUnavailable",
    "TokenRefused",
    "TokenVerifier",
    "looks_like_jwt",
    "public_client_config",
    "roles_in",
]

log = structlog.get_logger(__name__)

# The key types each algorithm family may be verified with.
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_FETCH_TIMEOUT = httpx.Timeout(5.0, connect=3.0)
_MAX_JWKS_BYTES = 1024 * 1024


class TokenRefused(Exception):
    """A bearer JWT that is not accepted; ``reason`` is safe to show the client."""

    def __init__(self, reason: str, *, forbidden: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        # Authentic, but without a role here: 403 rather than 401.
        self.forbidden = forbidden


class JwksUnavailable(Exception):
    """The provider's keys could not be fetched, and none are cached."""


def looks_like_jwt(credential: str) -> bool:
    """Three base64url segments: worth verifying as a JWT rather than as the API token."""
    return credential.count(".") == 2


@dataclass(frozen=True, slots=True)
class _KeySet:
    keys: Mapping[str, Mapping[str, Any]]  # by kid; "" for a key without one
    fetched_at: float


class JwksCache:
    """The issuer's signing keys, fetched over HTTP, cached, refetched on rotation."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        assert settings.oidc_issuer is not None
        self._issuer = settings.oidc_issuer
        self._jwks_url = settings.oidc_jwks_url
        self._ttl = settings.oidc_jwks_cache_seconds
        self._min_refresh = settings.oidc_jwks_min_refresh
        self._client = client
        self._owns_client = client is None
        self._keys: _KeySet | None = None
        self._last_attempt = -float("inf")
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
        self._client = None

    async def key(self, kid: str | None) -> Mapping[str, Any] | None:
        """The JWK with this key id, or ``None`` when the provider has no such key."""
        keys = self._keys
        if keys is None:
            # Waits for a fetch another request started (the admin page sends
            # two queries at once as it opens); fails at once if the last
            # fetch failed just now.
            keys = await self._refresh(stale=None)
        elif time.monotonic() - keys.fetched_at > self._ttl and self._may_retry():
            keys = await self._refresh(stale=keys)
        found = self._pick(keys, kid)
        if found is None and self._may_retry():
            # Perhaps a key the provider rotated in since we last looked.
            keys = await self._refresh(stale=keys, force=True)
            found = self._pick(keys, kid)
        return found

    def _may_retry(self) -> bool:
        # Also while the provider is down: stale keys serve, and requests
        # do not each wait for another failing fetch.
        return time.monotonic() - self._last_attempt >= self._min_refresh

    @staticmethod
    def _pick(keys: _KeySet, kid: str | None) -> Mapping[str, Any] | None:
        if kid is not None:
            return keys.keys.get(kid)
        # A token without a key id is fine only while the provider has one key.
        return next(iter(keys.keys.values())) if len(keys.keys) == 1 else None

    async def _refresh(self, stale: _KeySet | None, force: bool = False) -> _KeySet:
        async with self._lock:
            current = self._keys
            if current is not None and current is not stale:
                return current  # another request refreshed them meanwhile
            if current is None and not self._may_retry():
                raise JwksUnavailable  # the last fetch failed just now
            if force and current is not None and not self._may_retry():
                return current
            self._last_attempt = time.monotonic()
            try:
                fetched = _KeySet(await self._fetch(), time.monotonic())
            except (httpx.HTTPError, ValueError) as error:
                log.warning(
                    "OIDC signing keys could not be fetched",
                    error=type(error).__name__,
                    detail=str(error)[:200],
                    kept_cached=current is not None,
                )
                if current is None:
                    raise JwksUnavailable from error
                return current
            if current is None or fetched.keys.keys() != current.keys.keys():
                log.info("OIDC signing keys loaded", key_ids=sorted(fetched.keys))
            self._keys = fetched
            return fetched

    async def _fetch(self) -> dict[str, Mapping[str, Any]]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=_FETCH_TIMEOUT, follow_redirects=False)
        url = self._jwks_url or await self._discover()
        document = await self._get_json(url)
        raw = document.get("keys")
        if not isinstance(raw, list):
            raise ValueError("the JWKS has no 'keys' list")
        keys: dict[str, Mapping[str, Any]] = {}
        for jwk in raw:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                continue
            if jwk.get("kty") not in _KEY_TYPES.values():
                continue  # symmetric ("oct") keys are never trusted
            keys[str(jwk.get("kid", ""))] = jwk
        return keys

    async def _discover(self) -> str:
        url = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._get_json(url)
        if document.get("issuer") != self._issuer:
            raise ValueError("the discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("the discovery document has no jwks_uri")
        self._jwks_url = jwks_uri
        return jwks_uri

    async def _get_json(self, url: str) -> dict[str, Any]:
        assert self._client is not None
        response = await self._client.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        if len(response.content) > _MAX_JWKS_BYTES:
            raise ValueError("the document is too large")
        document = response.json()
        if not isinstance(document, dict):
            raise ValueError("the document is not a JSON object")
        return document


def roles_in(claims: Mapping[str, Any], claim: str) -> set[str]:
    """The role names at ``claim`` (a dotted path): a list, or a space-separated string."""
    value: Any = claims
    for part in claim.split("."):
        if not isinstance(value, Mapping):
            return set()
        value = value.get(part)
    if isinstance(value, str):
        return set(value.replace(",", " ").split())
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    return set()


class TokenVerifier:
    """Verifies bearer JWTs against the configured issuer; one per process."""

    def __init__(self, settings: Settings, keys: JwksCache | None = None) -> None:
        assert settings.oidc_issuer is not None
        assert settings.oidc_audience is not None
        self._issuer = settings.oidc_issuer
        self._audience = settings.oidc_audience
        self._algorithms = frozenset(settings.oidc_algorithms)
        self._leeway = settings.oidc_leeway
        self._roles_claim = settings.oidc_roles_claim
        self._viewer_role = settings.oidc_viewer_role
        self._operator_role = settings.oidc_operator_role
        self._keys = keys or JwksCache(settings)

    async def aclose(self) -> None:
        await self._keys.aclose()

    async def verify(self, token: str) -> Principal:
        """The principal a valid token stands for; raises ``TokenRefused`` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenRefused("the token is malformed") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise TokenRefused("the token's signing algorithm is not accepted")
        kid = header.get("kid")
        jwk = await self._keys.key(kid if isinstance(kid, str) else None)
        if jwk is None:
            raise TokenRefused("the token is signed with an unknown key")
        key = _public_key(jwk, algorithm)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.InvalidTokenError as error:
            raise TokenRefused(_reason(error)) from None
        return self._principal(claims)

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        roles = roles_in(claims, self._roles_claim)
        if self._operator_role in roles:
            role = Role.OPERATOR
        elif self._viewer_role in roles:
            role = Role.VIEWER
        else:
            raise TokenRefused(
                f"the token carries neither the {self._viewer_role!r} nor the "
                f"{self._operator_role!r} role",
                forbidden=True,
            )
        subject = claims.get("sub")
        names = (claims.get(claim) for claim in ("name", "preferred_username", "email"))
        return Principal(
            role=role,
            via="oidc",
            subject=subject if isinstance(subject, str) else None,
            expires_at=float(claims["exp"]),
            name=next((n for n in names if isinstance(n, str) and n), None),
        )


def _public_key(jwk: Mapping[str, Any], algorithm: str) -> jwt.PyJWK:
    declared = jwk.get("alg")
    if declared is not None and declared != algorithm:
        raise TokenRefused("the token's signing algorithm does not match its key")
    if jwk.get("kty") != _KEY_TYPES.get(algorithm[:2]):
        raise TokenRefused("the token's signing algorithm does not match its key")
    try:
        return jwt.PyJWK(dict(jwk), algorithm=algorithm)
    except jwt.PyJWTError:
        raise TokenRefused("the token is signed with an unusable key") from None


def _reason(error: jwt.InvalidTokenError) -> str:
    # Our own words: PyJWT's messages may quote parts of the token.
    if isinstance(error, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "the token is not valid yet"
    if isinstance(error, jwt.InvalidAudienceError):
        return "the token is meant for another audience"
    if isinstance(error, jwt.InvalidIssuerError):
        return "the token comes from another issuer"
    if isinstance(error, jwt.InvalidSignatureError):
        return "the token's signature is invalid"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"the token has no {error.claim!r} claim"
    if isinstance(error, jwt.InvalidAlgorithmError):
        return "the token's signing algorithm is not accepted"
    if isinstance(error, jwt.DecodeError):
        return "the token is malformed"
    return "the token is invalid"


def public_client_config(settings: Settings) -> dict[str, object] | None:
    """What a browser needs to sign in (authorization code + PKCE); no secret in it.

    ``None`` while OIDC is off. The provider's endpoints come from the
    issuer's discovery document, ``{issuer}/.well-known/openid-configuration``.
    """
    if settings.oidc_issuer is None:
        return None
    return {
        "issuer": settings.oidc_issuer,
        "clientId": settings.oidc_client_id,
        "audience": settings.oidc_audience,
        "scopes": list(settings.oidc_scopes),
        "rolesClaim": settings.oidc_roles_claim,
        "viewerRole": settings.oidc_viewer_role,
        "operatorRole": settings.oidc_operator_role,
    }
