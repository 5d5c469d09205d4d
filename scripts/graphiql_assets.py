"""Refresh GraphiQL's browser files from npm (``make graphiql-assets``).

The versions are pinned by ``scripts/graphiql/package-lock.json``: ``npm ci``
installs exactly those in a scratch directory, and the files the page loads
are copied, unchanged, into ``graphql_api/graphiql/static/vendor/`` beside a
``manifest.json`` naming each file's package, version, source path and
sha256 (``tests/test_graphiql.py`` checks the committed files against it).
To upgrade: change the versions in ``scripts/graphiql/package.json``, run
``npm install --package-lock-only`` there, then this.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NPM_PROJECT = ROOT / "scripts" / "graphiql"
VENDOR = ROOT / "graphql_api" / "graphiql" / "static" / "vendor"

# Served name -> (package, path inside the package). The page loads them in this order.
FILES = {
    "react.production.min.js": ("react", "umd/react.production.min.js"),
    "react-dom.production.min.js": ("react-dom", "umd/react-dom.production.min.js"),
    "graphiql.min.js": ("graphiql", "graphiql.min.js"),
    "graphiql.min.css": ("graphiql", "graphiql.min.css"),
    "plugin-explorer.umd.js": ("@graphiql/plugin-explorer", "dist/index.umd.js"),
    "plugin-explorer.css": ("@graphiql/plugin-explorer", "dist/style.css"),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _install(scratch: Path) -> Path:
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(NPM_PROJECT / name, scratch / name)
    subprocess.run(
        # --loglevel=error: the explorer plugin's bundled graphiql-explorer
        # declares old React and graphql peers, which its browser build ignores.
        [
            "npm",
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
            "--loglevel=error",
        ],
        cwd=scratch,
        check=True,
    )
    return scratch / "node_modules"


def _package(modules: Path, name: str) -> dict[str, str]:
    meta = json.loads((modules / name / "package.json").read_text())
    return {"version": meta["version"], "license": meta.get("license", "")}


def main() -> None:
    lock = json.loads((NPM_PROJECT / "package-lock.json").read_text())["packages"]
    with tempfile.TemporaryDirectory(prefix="graphiql-assets-") as scratch:
        modules = _install(Path(scratch))
        shutil.rmtree(VENDOR, ignore_errors=True)
        VENDOR.mkdir(parents=True)
        packages: dict[str, dict[str, str]] = {}
        files: dict[str, dict[str, str]] = {}
        for served, (package, source) in FILES.items():
            shutil.copyfile(modules / package / source, VENDOR / served)
            if package not in packages:
                packages[package] = {
                    **_package(modules, package),
                    # The registry's hash of the whole package, as npm verified it.
                    "integrity": lock[f"node_modules/{package}"]["integrity"],
                }
                license_file = modules / package / "LICENSE"
                if license_file.exists():
                    shutil.copyfile(license_file, VENDOR / f"LICENSE.{package.replace('/', '-')}")
            files[served] = {
                "package": package,
                "version": packages[package]["version"],
                "source": source,
                "sha256": sha256(VENDOR / served),
            }
    manifest = {
        "about": "Written by `make graphiql-assets` (scripts/graphiql_assets.py) from "
        "scripts/graphiql/package-lock.json; do not edit by hand.",
        "packages": packages,
        "files": files,
    }
    (VENDOR / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for served, entry in files.items():
        print(f"{served}: {entry['package']}@{entry['version']} {entry['sha256'][:16]}…")


if __name__ == "__main__":
    sys.exit(main())
