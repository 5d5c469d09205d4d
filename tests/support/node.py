"""Node.js tools the tests run at pinned versions: ``npm ci`` into a folder of this run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["NODE", "NPM", "npm_install"]

NODE = shutil.which("node")
NPM = shutil.which("npm")


def npm_install(package: Path, files: tuple[str, ...], target: Path) -> Path:
    """Copy ``files`` of ``package`` to ``target`` and ``npm ci`` there (offline once cached)."""
    assert NPM is not None, "npm is not installed"
    target.mkdir()
    for name in files:
        shutil.copyfile(package / name, target / name)
    subprocess.run(
        [NPM, "ci", "--prefer-offline", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=target,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return target
