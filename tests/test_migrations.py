"""The migrations build what the models describe, on this run's backend, and aerich runs.

The schema is built twice in scratch databases, once by the real migrations
and once by Tortoise from the models, and the two catalogues must agree
(``tests/support/schema.py``). ``make test`` runs this on PostgreSQL and on
SQLite, since every migration carries SQL for each.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from models import Client
from models.db import MIGRATIONS_DIR
from tests.conftest import BACKEND, DATA_DIR, PG_ADMIN_URL, RUN_ID
from tests.support.schema import (
    ROOT,
    Schema,
    build,
    compare,
    postgres_schema,
    sqlite_schema,
)

MakeDatabase = Callable[[str], Awaitable[str]]


async def _read(url: str) -> Schema:
    if BACKEND == "postgres":
        return await postgres_schema(url)
    return await asyncio.to_thread(sqlite_schema, Path(url.removeprefix("sqlite://")))


async def _built(how: str, url: str, models_dir: Path | None = None) -> Schema:
    await asyncio.to_thread(build, how, url, models_dir)
    return await _read(url)


@pytest.fixture(scope="module")
async def scratch(backend: str) -> AsyncIterator[MakeDatabase]:
    """Makes empty databases of this run's backend; drops them at the end."""
    made: list[str] = []

    async def make(label: str) -> str:
        name = f"mailings_test_{RUN_ID}_{label}_{len(made)}"
        made.append(name)
        if BACKEND == "sqlite":
            return f"sqlite://{DATA_DIR}/{name}.sqlite3"
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    yield make
    if BACKEND == "postgres":
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            for name in made:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="module")
async def migrated(scratch: MakeDatabase) -> Schema:
    """The schema the real migrations build."""
    return await _built("migrations", await scratch("migrated"))


def _project_copy(root: Path, *, with_fields: bool) -> Path:
    """A copy of the models and migrations to change; its ``models/`` comes first on the path."""
    shutil.copytree(ROOT / "models", root / "models", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        ROOT / "migrations", root / "migrations", ignore=shutil.ignore_patterns("__pycache__")
    )
    if with_fields:
        _add_client_fields(root / Path(inspect.getsourcefile(Client) or "").relative_to(ROOT))
    return root


def _add_client_fields(path: Path) -> None:
    """Two fields more on ``Client``, wherever its class statement is: the throwaway change."""
    source = path.read_text()
    [client] = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == Client.__name__
    ]
    first = client.body[1] if ast.get_docstring(client) else client.body[0]
    lines = source.splitlines(keepends=True)
    lines[first.lineno - 1 : first.lineno - 1] = [
        "    nickname = fields.CharField(max_length=20, null=True)\n",
        "    score = fields.IntField(default=0)\n",
    ]
    path.write_text("".join(lines))


def _new_migration(project: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "new_migration.py"), name],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _migration_names(migrations: Path) -> list[str]:
    names = [path.name for path in migrations.glob("models/[0-9]*_*.py")]
    return sorted(names, key=lambda name: int(name.split("_", 1)[0]))


async def test_the_migrations_build_what_the_models_describe(
    migrated: Schema, scratch: MakeDatabase
) -> None:
    generated = await _built("models", await scratch("models"))
    problems = compare(migrated, generated)
    assert not problems, "the migrations and the models disagree:\n" + "\n".join(problems)


async def test_a_model_field_without_a_migration_is_caught(
    migrated: Schema, scratch: MakeDatabase, tmp_path: Path
) -> None:
    project = _project_copy(tmp_path, with_fields=True)
    generated = await _built("models", await scratch("changed"), project / "models")
    if BACKEND == "postgres":
        nickname, score = "character varying(20) NULL", "integer NOT NULL"
    else:
        nickname, score = "VARCHAR(20) NULL", "INT NOT NULL"
    assert compare(migrated, generated) == [
        f"client: column nickname only in the models: {nickname}",
        f"client: column score only in the models: {score}",
    ]


@pytest.mark.slow
async def test_make_migration_writes_one_that_builds_the_models(
    scratch: MakeDatabase, tmp_path: Path
) -> None:
    project = _project_copy(tmp_path, with_fields=True)
    result = _new_migration(project, "add_client_nickname")
    assert result.returncode == 0, result.stdout + result.stderr
    *before, written = _migration_names(project / "migrations")
    assert before == _migration_names(MIGRATIONS_DIR)
    assert re.fullmatch(rf"{len(before)}_\d{{14}}_add_client_nickname\.py", written)
    text = (project / "migrations" / "models" / written).read_text()
    for dialect in ("POSTGRES", "SQLITE"):
        upgrade = text.split(f'_{dialect} = """\n', 1)[1].split('"""', 1)[0]
        assert sorted(upgrade.splitlines()) == [
            'ALTER TABLE "client" ADD "nickname" VARCHAR(20);',
            'ALTER TABLE "client" ADD "score" INT NOT NULL DEFAULT 0;',
        ]

    migrated = await _built("migrations", await scratch("made"), project / "models")
    generated = await _built("models", await scratch("made_models"), project / "models")
    problems = compare(migrated, generated)
    assert not problems, "\n".join(problems)


def test_the_last_migration_records_the_models(tmp_path: Path) -> None:
    # A stale MODELS_STATE would slip a forgotten change into the next `make migration`.
    project = _project_copy(tmp_path, with_fields=False)
    result = _new_migration(project, "nothing")
    assert "No changes detected" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 1
    assert _migration_names(project / "migrations") == _migration_names(MIGRATIONS_DIR)


def test_make_migration_refuses_a_bad_name(tmp_path: Path) -> None:
    project = _project_copy(tmp_path, with_fields=True)
    result = _new_migration(project, "Add Nickname")
    assert result.returncode == 2
    assert "NAME must be snake_case" in result.stderr
    assert _migration_names(project / "migrations") == _migration_names(MIGRATIONS_DIR)


def test_migration_numbers_are_unique_and_consecutive() -> None:
    # Two branches that each add migration N merge into a tie aerich cannot order.
    numbers = [int(name.split("_", 1)[0]) for name in _migration_names(MIGRATIONS_DIR)]
    assert numbers == list(range(len(numbers)))


def _aerich(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aerich", *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.usefixtures("database")
def test_aerich_runs_on_the_project() -> None:
    heads = _aerich("heads")
    assert heads.returncode == 0, heads.stderr
    assert heads.stdout.strip() == "No available heads."
    history = _aerich("history")
    assert history.returncode == 0, history.stderr
    assert history.stdout.split() == _migration_names(MIGRATIONS_DIR)


def test_aerich_config_names_the_project_layout() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["aerich"]
    assert config["tortoise_orm"] == "models.tortoise_config.TORTOISE_ORM"
    assert (ROOT / config["location"]).resolve() == MIGRATIONS_DIR


def test_the_config_for_aerich_says_what_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "mailings.sqlite3"
    result = subprocess.run(
        [sys.executable, "-c", "import models.tortoise_config as c; c.TORTOISE_ORM"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": f"sqlite://{missing}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{missing.parent} does not exist" in result.stderr
    assert not missing.parent.exists()


# The comparison itself, on hand-made catalogues.

_TABLE = {
    "column id": "bigint NOT NULL",
    "column tag": "character varying(64) NOT NULL",
    "index client_pkey": "CREATE UNIQUE INDEX client_pkey ON public.client USING btree (id)",
    "constraint client_pkey": "PRIMARY KEY (id)",
}
_ALLOWED = {
    ("message", "index idx_message_claim"): "partial",
    ("schedule", "table"): "no model",
}


def _schema(**changes: str | None) -> Schema:
    """The models' catalogue, changed: ``column_tag="..."`` sets an item, ``None`` drops it."""
    table = dict(_TABLE)
    for item, spec in changes.items():
        key = item.replace("_", " ", 1)
        if spec is None:
            table.pop(key)
        else:
            table[key] = spec
    return {"client": table, "message": {}}


def _migrated(**changes: str | None) -> Schema:
    """The same, with what ``_ALLOWED`` lets only the migrations have."""
    schema = _schema(**changes)
    schema["message"]["index idx_message_claim"] = "CREATE INDEX ... WHERE ..."
    schema["schedule"] = {"column name": "text NOT NULL"}
    return schema


def test_compare_accepts_equal_schemas() -> None:
    assert compare(_migrated(), _schema(), _ALLOWED) == []


@pytest.mark.parametrize(
    ("migrated", "generated", "problem"),
    [
        (
            _migrated(column_tag="character varying(64) NULL"),
            _schema(),
            "client: column tag differs: migrations 'character varying(64) NULL',"
            " models 'character varying(64) NOT NULL'",
        ),
        (
            _migrated(default_tag="'a'::character varying"),
            _schema(default_tag="'b'::character varying"),
            "client: default tag differs: migrations \"'a'::character varying\","
            " models \"'b'::character varying\"",
        ),
        (
            _migrated(),
            _schema(default_tag="''::character varying"),
            "client: default tag only in the models: ''::character varying",
        ),
        (
            _migrated(index_idx_client_tag="CREATE INDEX idx_client_tag ON public.client (tag)"),
            _schema(),
            "client: index idx_client_tag only in the migrations:"
            " CREATE INDEX idx_client_tag ON public.client (tag)",
        ),
        (
            _migrated(constraint_client_pkey=None),
            _schema(),
            "client: constraint client_pkey only in the models: PRIMARY KEY (id)",
        ),
    ],
)
def test_compare_names_each_difference(migrated: Schema, generated: Schema, problem: str) -> None:
    assert compare(migrated, generated, _ALLOWED) == [problem]


def test_compare_names_missing_and_extra_tables() -> None:
    note = {"column id": "bigint NOT NULL"}
    assert compare(_migrated(), {**_schema(), "note": note}, _ALLOWED) == [
        "table note: the models have it, no migration creates it"
    ]
    assert compare({**_migrated(), "note": note}, _schema(), _ALLOWED) == [
        "table note: only the migrations create it"
    ]


def test_compare_allows_a_default_only_the_migrations_set() -> None:
    # aerich gives a NOT NULL column it adds a default, to fill the rows there are.
    assert compare(_migrated(default_tag="''::character varying"), _schema(), _ALLOWED) == []


def test_compare_wants_what_it_allows() -> None:
    assert compare(_schema(), _schema(), _ALLOWED) == [
        "message: index idx_message_claim is allowed as an extra but no migration creates it",
        "schedule: table is allowed as an extra but no migration creates it",
    ]
