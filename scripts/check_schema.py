"""Fail when schema.graphql differs from what the code exports (run by ``make test``)."""

import subprocess
import sys
from pathlib import Path

exported = subprocess.run(
    [sys.executable, "-m", "cli", "export-schema"], check=True, capture_output=True, text=True
).stdout
committed = Path(__file__).resolve().parent.parent.joinpath("schema.graphql").read_text()
if exported != committed:
    sys.exit("schema.graphql is stale: run `make schema` and commit it")
print("schema.graphql is current")
