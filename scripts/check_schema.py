"""Fail when schema.graphql or docs/api.md differs from what the code exports (``make test``)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

for command, path in (("export-schema", "schema.graphql"), ("export-docs", "docs/api.md")):
    exported = subprocess.run(
        [sys.executable, "-m", "cli", command], check=True, capture_output=True, text=True
    ).stdout
    if exported != ROOT.joinpath(path).read_text():
        sys.exit(f"{path} is stale: run `make schema` and commit it")
    print(f"{path} is current")
