"""Relay against a real server: relay-compiler compiles a ``@refetchable`` fragment on ``Mailing``
from ``schema.graphql``, and relay-runtime refetches it through ``node(id:)``.

Pinned in ``tests/relay_client/`` (``npm ci``); the test runs them as a Relay
app's build and runtime would.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from graphql_api.ids import Kind, global_id
from models import Mailing, MailingStatus
from tests.conftest import DATA_DIR
from tests.support.factories import make_mailing
from tests.support.node import NODE, NPM, npm_install

PACKAGE = Path(__file__).parent / "relay_client"
ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def relay_app() -> Path:
    """The package installed, ``schema.graphql`` beside it, and relay-compiler's artifacts made."""
    if NODE is None or NPM is None:
        pytest.skip("Node.js (node and npm) is not installed; CI has it")
    target = npm_install(
        PACKAGE, ("package.json", "package-lock.json", "relay.config.json"), DATA_DIR / "relay"
    )
    shutil.copytree(PACKAGE / "src", target / "src")
    (target / "src" / "__generated__").mkdir()
    shutil.copyfile(ROOT / "schema.graphql", target / "schema.graphql")
    compiled = subprocess.run(
        [str(target / "node_modules" / ".bin" / "relay-compiler")],
        cwd=target,
        env={"PATH": str(Path(NODE).parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    return target


def test_relay_compiler_makes_a_refetch_query_through_node(relay_app: Path) -> None:
    artifact = (relay_app / "src/__generated__/MailingCardRefetchQuery.graphql.js").read_text()
    assert "node(id: $id)" in artifact


async def test_relay_refetches_a_mailing_through_node(
    relay_app: Path, served_api: str, db: str
) -> None:
    mailing = await make_mailing(text="Before")
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        "src/refetch.js",
        f"{served_api}/graphql",
        str(mailing.id),  # the integer key of the first release, still accepted by `mailing`
        cwd=relay_app,
        env={"PATH": str(Path(NODE).parent)},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def line() -> dict[str, Any]:
            assert proc.stdout is not None
            assert proc.stderr is not None
            async with asyncio.timeout(120):
                raw = await proc.stdout.readline()
            assert raw, (await proc.stderr.read()).decode()
            answer: dict[str, Any] = json.loads(raw)
            assert "failed" not in answer, answer
            return answer

        first = (await line())["first"]
        expected = {
            "id": global_id(Kind.MAILING, mailing.id),
            "text": "Before",
            "status": "SCHEDULED",
            "stats": {"total": 0, "sent": 0},
        }
        assert first == expected
        await Mailing.filter(id=mailing.id).update(text="After", status=MailingStatus.PAUSED)
        assert proc.stdin is not None
        proc.stdin.write(b"refetch\n")
        await proc.stdin.drain()
        answer = await line()
        assert answer["refetched"] == expected | {"text": "After", "status": "PAUSED"}
        assert [request["name"] for request in answer["sent"]] == [
            "MailingCardQuery",
            "MailingCardRefetchQuery",
        ]
        assert "node(id: $id)" in answer["sent"][1]["text"]
        async with asyncio.timeout(60):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
