"""What pyproject.toml declares and what the locks pin.

Whatever our code imports is declared where it is needed (runtime code in
``dependencies``, tests in the ``dev`` extra), not left to arrive through
another package; every pin carries hashes, which ``make install`` and the
image check.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
_OURS = {
    "cli",
    "settings",
    "logs",
    "tallies",
    "models",
    "tasks",
    "graphql_api",
    "migrations",
    "provider_sim",
    "tests",
}
# Imported without being declared, on purpose: (module) -> why.
_UNDECLARED = {
    "uvloop": "optional: uvicorn[standard] brings it where it builds, and the code falls back",
}
_LOCKS = ("requirements.uv.lock", "requirements.lock", "requirements.prod.lock")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    return {_normal(re.split(r"[\[<>=!~ ;]", line, maxsplit=1)[0]) for line in requirements}


def _imported(paths: list[Path]) -> dict[str, set[str]]:
    """Third-party top-level modules imported by ``paths``, and where."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in _OURS and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _undeclared(paths: list[Path], declared: set[str]) -> dict[str, set[str]]:
    distributions = importlib.metadata.packages_distributions()
    return {
        module: where
        for module, where in _imported(paths).items()
        if module not in _UNDECLARED
        and not {_normal(dist) for dist in distributions.get(module, [module])} & declared
    }


def test_runtime_code_imports_only_runtime_dependencies() -> None:
    code = [ROOT / name for name in ("cli.py", "settings.py", "logs.py", "tallies.py")]
    # The image ships `mailings provider-sim`: the simulator's imports are runtime ones too.
    for package in ("models", "tasks", "graphql_api", "provider_sim"):
        code += sorted((ROOT / package).rglob("*.py"))
    assert _undeclared(code, _declared(_PROJECT["dependencies"])) == {}


def test_tests_import_only_declared_dependencies() -> None:
    declared = _declared(_PROJECT["dependencies"] + _PROJECT["optional-dependencies"]["dev"])
    code = sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "scripts").rglob("*.py"))
    assert _undeclared(code, declared) == {}


@pytest.mark.parametrize("lock", _LOCKS)
def test_every_pin_carries_its_hashes(lock: str) -> None:
    text = (ROOT / lock).read_text()
    pins = re.findall(r"^[A-Za-z0-9][^\n]*==[^\n]*$", text, re.M)
    hashed = re.findall(
        r"^[A-Za-z0-9][^\n]*== *\S+[^\n]* \\\n +--hash=sha256:[0-9a-f]{64}", text, re.M
    )
    assert pins
    assert len(hashed) == len(pins)


def test_the_locks_serve_every_python_the_project_allows() -> None:
    # `make lock` resolves with --universal: one lock for every allowed Python.
    for lock in _LOCKS:
        assert "--universal" in (ROOT / lock).read_text().split("\n", 2)[1], lock
    dockerfile = (ROOT / "Dockerfile").read_text()
    image_python = re.findall(r"^FROM python:(\d+\.\d+)", dockerfile, re.M)
    makefile_python = re.findall(
        r"^PYTHON \?= python(\d+\.\d+)$", (ROOT / "Makefile").read_text(), re.M
    )
    allowed = re.fullmatch(r">=(\d+\.\d+),<(\d+\.\d+)", _PROJECT["requires-python"])
    assert allowed, _PROJECT["requires-python"]
    low, high = allowed.groups()
    for version in [*image_python, *makefile_python]:
        assert _version(low) <= _version(version) < _version(high), version


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))
