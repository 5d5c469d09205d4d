"""GraphiQL's page and files: pinned copies from npm, served from here, without a credential."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from graphql_api.graphiql.routes import STATIC_DIR
from tests.conftest import serve_api, stop_process

ROOT = Path(__file__).resolve().parent.parent
VENDOR = STATIC_DIR / "vendor"
PAGE = ROOT / "graphql_api" / "graphiql" / "page.html"
TOKEN = "graphiql-token-0b9e"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def token_api(database: str) -> Iterator[str]:
    url, proc = serve_api({"API_TOKEN": TOKEN}, log_name="graphiql")
    yield url
    stop_process(proc)


def test_vendored_files_are_the_ones_the_manifest_pins() -> None:
    manifest = json.loads((VENDOR / "manifest.json").read_text())
    lock = json.loads((ROOT / "scripts" / "graphiql" / "package-lock.json").read_text())["packages"]
    wanted = json.loads((ROOT / "scripts" / "graphiql" / "package.json").read_text())
    for package, pinned in manifest["packages"].items():
        assert (
            pinned["version"]
            == wanted["dependencies"][package]
            == lock[f"node_modules/{package}"]["version"]
        )
        assert pinned["integrity"] == lock[f"node_modules/{package}"]["integrity"]
    served = {p.name for p in VENDOR.iterdir() if p.suffix in (".js", ".css")}
    assert served == set(manifest["files"])
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == entry["sha256"], name
        assert entry["version"] == manifest["packages"][entry["package"]]["version"]


def test_the_page_loads_only_files_of_this_origin() -> None:
    page = PAGE.read_text()
    loaded = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert loaded, page
    assert "<style" not in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "no inline script"
    for url in loaded:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        if url.startswith("/graphiql/"):
            assert (STATIC_DIR / url.removeprefix("/graphiql/")).is_file(), url
    script = (STATIC_DIR / "page.js").read_text()
    assert "http://" not in script
    assert "https://" not in script


def test_the_page_loads_without_a_credential(token_api: str) -> None:
    with httpx.Client(base_url=token_api) as client:
        page = client.get("/graphql", headers={"Accept": BROWSER_ACCEPT})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        nonce = re.search(r'<meta name="csp-nonce" content="([^"]+)">', page.text)
        assert nonce is not None
        assert f"style-src 'self' 'nonce-{nonce[1]}'" in policy
        for directive in ("default-src 'none'", "script-src 'self'", "connect-src 'self'"):
            assert directive in policy
        assert "unsafe" not in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["vary"] == "Accept"
        again = client.get("/graphql", headers={"Accept": BROWSER_ACCEPT})
        assert nonce[1] not in again.text  # a nonce is never reused

        for url in re.findall(r'(?:src|href)="(/graphiql/[^"]*)"', page.text):
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["x-content-type-options"] == "nosniff"

        # Everything else still needs the token: an operation, even over GET.
        for refused in (
            client.get("/graphql", params={"query": "{ __typename }"}),
            client.get("/graphql", headers={"Accept": "application/json"}),
            client.post("/graphql", json={"query": "{ __typename }"}),
        ):
            assert refused.status_code == 401
            assert "API token" in refused.json()["errors"][0]["message"]
        served = client.get(
            "/graphql",
            params={"query": "{ __typename }"},
            headers={"Accept": BROWSER_ACCEPT, "Authorization": f"Bearer {TOKEN}"},
        )
        assert served.json() == {"data": {"__typename": "Query"}}
