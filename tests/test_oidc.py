"""OAuth2 / OpenID Connect: bearer JWTs verified against a provider's keys, roles enforced.

The provider is a stand-in on loopback (``tests/support/oidc.py``) with key
pairs made in the test; the API runs in process, and as a real ``mailings
serve`` for WebSockets and for what its log says.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed

from graphql_api.oidc import (
    JwksCache,
    JwksUnavailable,
    TokenRefused,
    TokenVerifier,
    public_client_config,
    roles_in,
)
from graphql_api.principal import Role
from settings import Settings
from tests.conftest import serve_api, stop_process
from tests.support.api import Subscription
from tests.support.factories import make_mailing
from tests.support.inprocess import http_client, serving
from tests.support.oidc import AUDIENCE, FakeIdentityProvider, ec_key, public_jwk, rsa_key

API_TOKEN = "opaque-api-token-31337"
CREATE_CLIENT = (
    'mutation { createClient(input: {phone: "79001234567"}) { __typename ... on Client { id } } }'
)
COUNT_CLIENTS = "{ clients { totalCount } }"


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeIdentityProvider]:
    provider = FakeIdentityProvider()
    provider.keys["ec"] = ec_key()
    provider.published.append(public_jwk(provider.keys["ec"], "ec"))
    yield provider
    provider.close()


def oidc_settings(idp: FakeIdentityProvider) -> dict[str, str]:
    """Accept the provider's tokens (keys found by discovery) and API_TOKEN."""
    return {
        "API_TOKEN": API_TOKEN,
        "OIDC_ISSUER": idp.issuer,
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_LEEWAY": "2",
    }


@pytest.fixture(scope="module")
async def oidc_app(database: str, idp: FakeIdentityProvider) -> AsyncIterator[Starlette]:
    settings = {name.lower(): value for name, value in oidc_settings(idp).items()}
    async with serving(**settings) as app:
        yield app


@pytest.fixture(scope="module")
def oidc_api(database: str, idp: FakeIdentityProvider) -> Iterator[tuple[str, Path]]:
    """The same as a server: its URL and its log."""
    url, proc = serve_api(oidc_settings(idp), log_name="api-oidc")
    yield url, proc.log_path  # type: ignore[attr-defined]
    stop_process(proc)


async def post(
    to: str | Starlette,
    query: str,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``query`` to a server (its URL) or to an application in process."""
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    client = httpx.AsyncClient(base_url=to, timeout=30) if isinstance(to, str) else http_client(to)
    async with client:
        return await client.post("/graphql", json={"query": query}, headers=headers)


async def answer(subscription: Subscription, id_: str) -> dict[str, Any]:
    """The first message about operation ``id_`` other than its ``complete``."""
    while True:
        message = await subscription.receive()
        if message.get("id") == id_ and message["type"] != "complete":
            return message


def errors_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    payload = message["payload"]
    return payload if message["type"] == "error" else payload["errors"]  # type: ignore[no-any-return]


def settings_for(idp: FakeIdentityProvider, **overrides: Any) -> Settings:
    return Settings(oidc_issuer=idp.issuer, oidc_audience=AUDIENCE, **overrides)


# --- the application ------------------------------------------------------------------------


async def test_a_viewer_queries_but_may_not_mutate(
    oidc_app: Starlette, idp: FakeIdentityProvider, db: str
) -> None:
    viewer = idp.token("viewer")
    query = await post(oidc_app, COUNT_CLIENTS, viewer)
    assert query.status_code == 200
    assert query.json() == {"data": {"clients": {"totalCount": 0}}}

    mutation = await post(oidc_app, CREATE_CLIENT, viewer)
    assert mutation.status_code == 403
    body = mutation.json()
    assert body["data"] is None
    assert body["errors"][0]["message"] == "Forbidden: mutations need the operator role"
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert "Traceback" not in mutation.text
    count = (await post(oidc_app, COUNT_CLIENTS, viewer)).json()
    assert count["data"]["clients"]["totalCount"] == 0


@pytest.mark.parametrize(
    ("roles", "kid", "algorithm"),
    [
        ("operator", "k1", "RS256"),
        ("viewer operator", "k1", "RS256"),  # a space-separated string
        (["operator"], "ec", "ES256"),
    ],
)
async def test_an_operator_mutates(
    oidc_app: Starlette,
    idp: FakeIdentityProvider,
    db: str,
    roles: str | list[str],
    kid: str,
    algorithm: str,
) -> None:
    response = await post(oidc_app, CREATE_CLIENT, idp.token(roles, kid=kid, algorithm=algorithm))
    assert response.status_code == 200
    assert response.json()["data"]["createClient"]["__typename"] == "Client"


async def test_the_api_token_still_works_as_an_operator(oidc_app: Starlette, db: str) -> None:
    response = await post(oidc_app, CREATE_CLIENT, API_TOKEN)
    assert response.json()["data"]["createClient"]["__typename"] == "Client"


@pytest.fixture
def rotating_idp() -> Iterator[FakeIdentityProvider]:
    provider = FakeIdentityProvider()
    yield provider
    provider.close()


@pytest.fixture
async def rotating_api(
    database: str, rotating_idp: FakeIdentityProvider
) -> AsyncIterator[Starlette]:
    async with serving(
        oidc_issuer=rotating_idp.issuer,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=rotating_idp.issuer + "/jwks",
        oidc_jwks_min_refresh=0,
    ) as app:
        yield app


async def test_keys_are_cached_and_a_rotation_is_picked_up(
    rotating_api: Starlette, rotating_idp: FakeIdentityProvider, db: str
) -> None:
    idp = rotating_idp
    old_token = idp.token("viewer")
    for _ in range(5):
        assert (await post(rotating_api, COUNT_CLIENTS, old_token)).status_code == 200
    assert idp.jwks_requests == 1

    idp.rotate("k2")
    new_token = idp.token("viewer", kid="k2")
    assert (await post(rotating_api, COUNT_CLIENTS, new_token)).status_code == 200
    assert idp.jwks_requests == 2
    # The old key is gone from the provider: tokens signed with it are no more.
    refused = await post(rotating_api, COUNT_CLIENTS, old_token)
    assert refused.status_code == 401
    assert "unknown key" in refused.json()["errors"][0]["message"]


async def test_no_credentials_are_needed_for_probes(oidc_app: Starlette) -> None:
    async with http_client(oidc_app) as client:
        assert (await client.get("/healthz")).status_code == 200


# --- over a real server: what its log says, its WebSockets ----------------------------------


def _refusals(idp: FakeIdentityProvider) -> dict[str, tuple[str | None, int, str]]:
    """Presented credential -> (status, what the message says)."""
    forger = rsa_key()
    return {
        "none": (None, 401, "Missing or invalid API token"),
        "not a token": ("not-a-token", 401, "Missing or invalid API token"),
        "malformed": ("a.b.c", 401, "the token is malformed"),
        "expired": (idp.token("operator", exp=1_600_000_000), 401, "the token has expired"),
        "wrong audience": (idp.token("operator", aud="another-api"), 401, "another audience"),
        "wrong issuer": (idp.token("operator", iss="https://evil.example"), 401, "another issuer"),
        "no expiry": (idp.token("operator", exp=None), 401, "no 'exp' claim"),
        "not yet valid": (idp.token("operator", nbf=4_000_000_000), 401, "not valid yet"),
        "forged signature": (idp.token("operator", key=forger), 401, "signature is invalid"),
        "unknown key": (idp.token("operator", kid="k9", key=forger), 401, "unknown key"),
        "alg none": (idp.unsigned_token(), 401, "algorithm is not accepted"),
        "HS256 with the public key": (
            idp.hmac_token_with_public_key(),
            401,
            "algorithm is not accepted",
        ),
        "RSA key, EC algorithm": (
            idp.token("operator", kid="k1", key=ec_key(), algorithm="ES256"),
            401,
            "does not match its key",
        ),
        "no role": (idp.token(None), 403, "neither the 'viewer' nor the 'operator' role"),
        "unknown role": (idp.token(["admin"]), 403, "neither the 'viewer' nor"),
    }


async def test_bad_credentials_are_refused_clearly_and_never_logged(
    oidc_api: tuple[str, Path], idp: FakeIdentityProvider, db: str
) -> None:
    url, log_path = oidc_api
    cases = _refusals(idp)
    for name, (token, status, says) in cases.items():
        for query in (COUNT_CLIENTS, CREATE_CLIENT):
            response = await post(url, query, token)
            assert response.status_code == status, (name, response.text)
            message = response.json()["errors"][0]["message"]
            assert says in message, (name, message)
            if token is not None:
                assert token not in response.text
            if status == 401:
                assert response.headers["www-authenticate"].startswith('Bearer realm="mailings"')
    assert (await post(url, COUNT_CLIENTS, API_TOKEN)).json()["data"]["clients"] == {
        "totalCount": 0
    }
    log = log_path.read_text()
    assert "request refused: credentials not accepted" in log
    assert API_TOKEN not in log
    for name, (token, _, _) in cases.items():
        if token is not None and len(token) > 8:
            assert token not in log, name
            # Nor the signature alone, which with the rest could be replayed.
            assert token.rsplit(".", 1)[-1] not in log or token.endswith("."), name


async def test_websocket_roles(
    oidc_api: tuple[str, Path], idp: FakeIdentityProvider, db: str
) -> None:
    url, _ = oidc_api
    viewer = await Subscription.connect(url, {"authorization": f"Bearer {idp.token('viewer')}"})
    try:
        assert await viewer.receive() == {"type": "connection_ack"}
        await viewer.subscribe(COUNT_CLIENTS, {}, "q")
        assert (await answer(viewer, "q"))["payload"] == {"data": {"clients": {"totalCount": 0}}}
        await viewer.subscribe(CREATE_CLIENT, {}, "m")
        errors = errors_of(await answer(viewer, "m"))
        assert errors[0]["message"] == "Forbidden: mutations need the operator role"
        assert errors[0]["extensions"] == {"code": "FORBIDDEN"}
        await viewer.subscribe('subscription { mailingProgress(id: "1") { status } }', {}, "s")
        gone = await answer(viewer, "s")  # no such mailing: an answer, not a refusal
        assert "Forbidden" not in json.dumps(gone), gone
    finally:
        await viewer.close()

    operator = await Subscription.connect(url, {"authorization": idp.token("operator")})
    try:
        assert await operator.receive() == {"type": "connection_ack"}
        await operator.subscribe(CREATE_CLIENT, {}, "m")
        created = await answer(operator, "m")
        assert created["payload"]["data"]["createClient"]["__typename"] == "Client"
    finally:
        await operator.close()


@pytest.mark.parametrize("kind", ["expired", "forged", "none", "no role"])
async def test_websocket_refuses_bad_tokens(
    oidc_api: tuple[str, Path], idp: FakeIdentityProvider, kind: str
) -> None:
    url, _ = oidc_api
    token = {
        "expired": idp.token("operator", exp=1_600_000_000),
        "forged": idp.token("operator", key=rsa_key()),
        "none": idp.unsigned_token(),
        "no role": idp.token(None),
    }[kind]
    subscription = await Subscription.connect(url, {"authorization": f"Bearer {token}"})
    with pytest.raises(ConnectionClosed) as closed:
        await subscription.receive()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_an_open_subscription_ends_when_its_token_expires(
    oidc_api: tuple[str, Path], idp: FakeIdentityProvider, db: str
) -> None:
    """Closed with 4403 at the token's exp, so nothing runs on it after; API_TOKEN has no exp."""
    import asyncio
    import time

    url, log_path = oidc_api
    mailing = await make_mailing()  # SCHEDULED, with no worker here: its stream stays open
    progress = "subscription($id: ID!) { mailingProgress(id: $id) { status } }"

    async def subscribed(connection: Subscription) -> None:
        assert await connection.receive() == {"type": "connection_ack"}
        await connection.subscribe(progress, {"id": str(mailing.id)}, "p")
        first = await answer(connection, "p")
        assert first["payload"] == {"data": {"mailingProgress": {"status": "SCHEDULED"}}}

    lasting = await Subscription.connect(url, {"authorization": f"Bearer {API_TOKEN}"})
    try:
        await subscribed(lasting)
        # The token must outlive its connection's set-up, which a loaded machine
        # slows down: a window that ended before the subscription answered
        # (closed, or refused at connection_init) is tried again, twice as long.
        window = 2
        while True:
            expires_at = int(time.time()) + window
            token = idp.token("viewer", exp=expires_at)
            short = await Subscription.connect(url, {"authorization": token})
            try:
                await subscribed(short)
                break
            except ConnectionClosed:
                await short.close()
                assert time.time() >= expires_at, "closed before its token expired"
                window *= 2
                assert window <= 64, "no window was long enough to open a subscription"
        try:
            with pytest.raises(ConnectionClosed) as closed:
                # Nothing changes: the close is the next thing to come, at exp.
                async with asyncio.timeout(expires_at - time.time() + 30):
                    await short.ws.recv()
            ended = time.time()
        finally:
            await short.close()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403
        assert closed.value.rcvd.reason == "Forbidden: the access token has expired"
        assert ended >= expires_at
        # The other connection's subscription goes on: a ping is still answered.
        await lasting.ws.send(json.dumps({"type": "ping"}))
        assert await lasting.receive() == {"type": "pong"}
    finally:
        await lasting.close()
    for _ in range(300):  # the server logs it as it closes; give the file a moment
        if "WebSocket closed: its access token expired" in log_path.read_text():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the close was not logged")


async def test_an_operation_under_an_expired_token_runs_nothing(db: str) -> None:
    """What a message sent in the instant before the close at exp gets (graphql_api.permissions)."""
    import time

    from graphql_api.context import Context, make_loaders
    from graphql_api.principal import Principal
    from graphql_api.schema import schema

    expired = Principal(Role.OPERATOR, "oidc", subject="s", expires_at=time.time() - 1)
    context = Context(request=None, response=None, loaders=make_loaders(), principal=expired)  # type: ignore[arg-type]
    result = await schema.execute(CREATE_CLIENT, context_value=context)
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "UNAUTHENTICATED"}
    assert result.data is None


# --- the pieces, in process ---------------------------------------------------------------


@pytest.fixture
async def verifier(idp: FakeIdentityProvider) -> AsyncIterator[TokenVerifier]:
    verifier = TokenVerifier(settings_for(idp, oidc_jwks_min_refresh=3600))
    yield verifier
    await verifier.aclose()


async def test_verifier_principal(verifier: TokenVerifier, idp: FakeIdentityProvider) -> None:
    principal = await verifier.verify(idp.token(["viewer"], sub="alice"))
    assert principal.role is Role.VIEWER
    assert principal.subject == "alice"
    assert principal.via == "oidc"
    assert not principal.may_mutate
    assert principal.expires_at is not None
    assert not principal.expired()
    operator = await verifier.verify(idp.token("viewer,operator"))
    assert operator.may_mutate


async def test_unknown_key_ids_do_not_hammer_the_provider(
    verifier: TokenVerifier, idp: FakeIdentityProvider
) -> None:
    await verifier.verify(idp.token("viewer"))
    fetched = idp.jwks_requests
    for n in range(20):
        with pytest.raises(TokenRefused, match="unknown key"):
            await verifier.verify(idp.token("viewer", kid=f"made-up-{n}", key=rsa_key()))
    # The first unknown id may look again (a rotation?); within the minimum interval, no more.
    assert idp.jwks_requests - fetched <= 1


async def test_requests_that_arrive_together_wait_for_one_fetch_of_the_keys(
    idp: FakeIdentityProvider,
) -> None:
    # The admin page opens with two queries at once; the second was answered
    # 503 ("keys unavailable") while the first one's fetch was in flight.
    import asyncio

    verifier = TokenVerifier(settings_for(idp, oidc_jwks_min_refresh=3600))
    try:
        before = idp.jwks_requests
        principals = await asyncio.gather(*(verifier.verify(idp.token("viewer")) for _ in range(5)))
        assert {p.role for p in principals} == {Role.VIEWER}
        assert idp.jwks_requests - before == 1
    finally:
        await verifier.aclose()


async def test_keys_expire_from_the_cache(idp: FakeIdentityProvider) -> None:
    cache = JwksCache(settings_for(idp, oidc_jwks_cache_seconds=0.01, oidc_jwks_min_refresh=0))
    try:
        before = idp.jwks_requests
        assert await cache.key("k1") is not None
        import asyncio

        await asyncio.sleep(0.05)
        assert await cache.key("k1") is not None
        assert idp.jwks_requests - before == 2
    finally:
        await cache.aclose()


async def test_an_unreachable_provider(idp: FakeIdentityProvider) -> None:
    import asyncio

    settings = settings_for(idp, oidc_jwks_cache_seconds=0.01, oidc_jwks_min_refresh=0)
    cache = JwksCache(settings)
    verifier = TokenVerifier(settings, keys=cache)
    try:
        await verifier.verify(idp.token("viewer"))
        idp.down = True
        await asyncio.sleep(0.05)
        # Stale keys beat no keys while the provider is down.
        assert (await verifier.verify(idp.token("viewer"))).role is Role.VIEWER
    finally:
        idp.down = False
        await verifier.aclose()

    idp.down = True
    cold = TokenVerifier(settings_for(idp, oidc_jwks_min_refresh=3600))
    try:
        before = idp.requests
        for _ in range(5):
            with pytest.raises(JwksUnavailable):
                await cold.verify(idp.token("viewer"))
        assert idp.requests - before == 1  # not once a request
    finally:
        idp.down = False
        await cold.aclose()


def test_roles_claim_shapes() -> None:
    assert roles_in({"roles": ["viewer", 3]}, "roles") == {"viewer"}
    assert roles_in({"roles": "viewer operator"}, "roles") == {"viewer", "operator"}
    assert roles_in({"realm_access": {"roles": ["operator"]}}, "realm_access.roles") == {"operator"}
    assert roles_in({"realm_access": "operator"}, "realm_access.roles") == set()
    assert roles_in({"roles": {"viewer": True}}, "roles") == set()
    assert roles_in({}, "roles") == set()


async def test_roles_from_a_nested_claim_with_own_names(idp: FakeIdentityProvider) -> None:
    verifier = TokenVerifier(
        settings_for(
            idp,
            oidc_roles_claim="realm_access.roles",
            oidc_operator_role="mailings:write",
            oidc_viewer_role="mailings:read",
        )
    )
    try:
        token = idp.token(None, realm_access={"roles": ["mailings:write"]})
        assert (await verifier.verify(token)).role is Role.OPERATOR
        with pytest.raises(TokenRefused) as refused:
            await verifier.verify(idp.token("operator"))
        assert refused.value.forbidden
    finally:
        await verifier.aclose()


def test_settings_refuse_weak_configurations(idp: FakeIdentityProvider) -> None:
    for algorithms in ("HS256", "none", "RS256 HS512", ""):
        with pytest.raises(ValidationError):
            settings_for(idp, oidc_algorithms=algorithms)
    with pytest.raises(ValidationError, match="OIDC_AUDIENCE is required"):
        Settings(oidc_issuer=idp.issuer)
    assert settings_for(idp, oidc_algorithms="RS256, ES256").oidc_algorithms == ("RS256", "ES256")


def test_public_client_config(idp: FakeIdentityProvider) -> None:
    assert public_client_config(Settings()) is None
    config = public_client_config(
        settings_for(idp, oidc_client_id="admin-page", api_token="secret")
    )
    assert config == {
        "issuer": idp.issuer,
        "clientId": "admin-page",
        "audience": AUDIENCE,
        "scopes": ["openid", "profile", "email"],
        "rolesClaim": "roles",
        "viewerRole": "viewer",
        "operatorRole": "operator",
    }
    assert "secret" not in json.dumps(config)
