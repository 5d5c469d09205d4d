"""A stand-in OpenID Connect provider on loopback: key pairs made here, a JWKS, tokens.

It serves ``/.well-known/openid-configuration`` and ``/jwks`` from a real
HTTP server in a thread, counts the requests for the keys, and mints tokens
with any claims, key or algorithm a test wants, including broken ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "mailings-api"

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: SigningKey, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LoopbackServer:
    """A threaded HTTP server on a free loopback port; ``issuer`` is its base URL."""

    issuer: str

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class FakeIdentityProvider(LoopbackServer):
    """The provider's HTTP side, and a mint for its tokens."""

    def __init__(self) -> None:
        self.keys: dict[str, SigningKey] = {"k1": rsa_key()}
        self.published: list[dict[str, Any]] = [public_jwk(self.keys["k1"], "k1")]
        self.jwks_requests = 0
        self.requests = 0
        self.down = False
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.requests += 1
                if provider.down:
                    self.send_error(503)
                    return
                if self.path == "/.well-known/openid-configuration":
                    body: dict[str, Any] = {
                        "issuer": provider.issuer,
                        "jwks_uri": provider.issuer + "/jwks",
                    }
                elif self.path == "/jwks":
                    provider.jwks_requests += 1
                    body = {"keys": provider.published}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self._serve(Handler)

    def rotate(self, kid: str, key: SigningKey | None = None) -> SigningKey:
        """Publish a new key and stop publishing the others."""
        self.keys[kid] = key or rsa_key()
        self.published = [public_jwk(self.keys[kid], kid)]
        return self.keys[kid]

    def claims(self, role: str | list[str] | None = "viewer", **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "user-1",
            "iat": now,
            "exp": now + 300,
        }
        if role is not None:
            claims["roles"] = role
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self,
        role: str | list[str] | None = "viewer",
        *,
        kid: str = "k1",
        key: SigningKey | None = None,
        algorithm: str = "RS256",
        **overrides: Any,
    ) -> str:
        """A token signed as the provider would (or, with ``key``, as a forger would)."""
        signing_key = key or self.keys[kid]
        return jwt.encode(
            self.claims(role, **overrides), signing_key, algorithm=algorithm, headers={"kid": kid}
        )

    def unsigned_token(self, role: str = "operator") -> str:
        """``alg: none``: no signature at all."""
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
        payload = _b64(json.dumps(self.claims(role)).encode())
        return f"{header}.{payload}."

    def hmac_token_with_public_key(self, role: str = "operator") -> str:
        """HS256 keyed with the provider's public key: the classic algorithm confusion."""
        public_pem = (
            self.keys["k1"]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
        payload = _b64(json.dumps(self.claims(role)).encode())
        signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"
