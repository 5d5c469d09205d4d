"""Make the next migration with aerich, for PostgreSQL and SQLite at once (``make migration``).

aerich writes the SQL of one dialect, the one of the database it is pointed
at. Our migrations carry both (CONVENTIONS.md, "Database"), so aerich runs
twice here, offline (no database needed), once per dialect, each time on a
scratch copy of the migrations; the two results become one file in
migrations/models/ that picks its SQL by ``db.capabilities.dialect``.

Run from the project root: ``python scripts/new_migration.py NAME``. Where
aerich cannot write a dialect's SQL (SQLite cannot alter a column), that
dialect's part is left for the developer and the migration refuses to run
there until it is written.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aerich.utils import decompress_dict

APP = "models"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Offline, aerich only needs to know the dialect: nothing connects to these.
_DIALECT_URLS = {
    "postgres": "postgres://offline@127.0.0.1:1/offline",
    "sqlite": "sqlite://:memory:",
}


@dataclass
class Generated:
    """What aerich wrote for one dialect: the file's name, its SQL, the models' state."""

    version: str
    upgrade: str
    downgrade: str
    models_state: str


class Failed(Exception):
    pass


def _statements(sql: str) -> str:
    """aerich's SQL, one statement per line, without its indentation."""
    return "\n".join(line.strip() for line in sql.strip().splitlines() if line.strip())


def _load(path: Path) -> Generated:
    spec = importlib.util.spec_from_file_location(f"_generated_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = path.read_text(encoding="utf-8")
    # Keep aerich's own layout of the compressed state.
    state = text[text.index("MODELS_STATE = (") :].strip()
    # aerich's generated functions ignore their argument: the SQL is fixed text.
    upgrade = asyncio.run(module.upgrade(None))
    downgrade = asyncio.run(module.downgrade(None))
    return Generated(path.name, _statements(upgrade), _statements(downgrade), state)


def _aerich(name: str, dialect: str, migrations: Path) -> Generated | None:
    """aerich's migration for one dialect; ``None`` when the models have not changed."""
    with tempfile.TemporaryDirectory(prefix=f"migration-{dialect}-") as scratch:
        location = Path(scratch, "migrations")
        (location / APP).mkdir(parents=True)
        for path in migrations.glob("*.py"):
            (location / APP / path.name).write_bytes(path.read_bytes())
        before = {path.name for path in (location / APP).glob("*.py")}
        config = Path(scratch, "aerich.toml")
        config.write_text(
            "[tool.aerich]\n"
            'tortoise_orm = "models.tortoise_config.TORTOISE_ORM"\n'
            f"location = {str(location)!r}\n"
            'src_folder = "./."\n'
        )
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "aerich",
                "-c",
                str(config),
                "--app",
                APP,
                "migrate",
                "--offline",
                "--no-input",
                "--name",
                name,
            ],
            env={**os.environ, "DATABASE_URL": _DIALECT_URLS[dialect]},
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise Failed(lines[-1] if lines else f"aerich exited with {result.returncode}")
        added = sorted({path.name for path in (location / APP).glob("*.py")} - before)
        if not added:
            return None
        return _load(location / APP / added[0])


def _sql_constant(name: str, sql: str) -> str:
    if '"""' in sql or "\\" in sql:
        return f"{name} = {sql!r}\n"
    return f'{name} = """\n{sql}\n"""\n'


def render(name: str, generated: dict[str, Generated | Failed]) -> str:
    """The migration file: both dialects' SQL, chosen when it runs."""
    done = next(result for result in generated.values() if isinstance(result, Generated))
    lines = [
        f'"""{name}: made by `make migration` from the SQL aerich wrote for each dialect.',
        "",
        'Check both dialects by hand before committing (CONVENTIONS.md, "Database"),',
        "then say here what this migration does and why.",
        '"""',
        "",
        "from tortoise import BaseDBAsyncClient",
        "",
        "RUN_IN_TRANSACTION = True",
        "",
    ]
    for dialect, result in generated.items():
        prefix = f"_{dialect.upper()}"
        if isinstance(result, Generated):
            lines.append(_sql_constant(prefix, result.upgrade))
            lines.append(_sql_constant(f"{prefix}_DOWN", result.downgrade))
        else:
            lines.append(f"# aerich could not write the {dialect} SQL: {result}")
            lines.append("# Write it here by hand; until then the migration stops on this dialect.")
            lines.append(f"{prefix}: str | None = None")
            lines.append(f"{prefix}_DOWN: str | None = None\n")
    unwritten = any(isinstance(result, Failed) for result in generated.values())
    for function, suffix in (("upgrade", ""), ("downgrade", "_DOWN")):
        lines.append("")
        lines.append(f"async def {function}(db: BaseDBAsyncClient) -> str:")
        choice = f'_POSTGRES{suffix} if db.capabilities.dialect == "postgres" else _SQLITE{suffix}'
        if unwritten:
            lines.append(f"    sql = {choice}")
            lines.append("    if sql is None:")
            lines.append(
                "        raise NotImplementedError(f\"write this migration's"
                ' {db.capabilities.dialect} SQL")'
            )
            lines.append("    return sql")
        else:
            lines.append(f"    return {choice}")
        lines.append("")
    lines.append("")
    lines.append(done.models_state)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("name", help="what the migration does, in snake_case: add_message_note")
    args = parser.parse_args()
    if not _NAME.fullmatch(args.name):
        parser.error(f"NAME must be snake_case (a-z, 0-9, _), not {args.name!r}")
    migrations = Path.cwd() / "migrations" / APP
    if not migrations.is_dir():
        parser.error(f"no {migrations}: run from the project root")

    generated: dict[str, Generated | Failed] = {}
    for dialect in _DIALECT_URLS:
        try:
            result = _aerich(args.name, dialect, migrations)
        except Failed as error:
            generated[dialect] = error
            continue
        if result is None:
            print("No changes detected: the models match the last migration; nothing written.")
            return 1
        generated[dialect] = result
    written = [result for result in generated.values() if isinstance(result, Generated)]
    if not written:
        failures = "; ".join(f"{dialect}: {error}" for dialect, error in generated.items())
        print(f"aerich wrote no migration ({failures}); nothing written.", file=sys.stderr)
        return 1
    states = {
        str(decompress_dict("".join(re.findall(r'"([^"]*)"', result.models_state))))
        for result in written
    }
    if len(states) != 1:
        print("aerich described the models differently per dialect; nothing written.")
        return 1

    path = migrations / written[0].version
    path.write_text(render(args.name, generated), encoding="utf-8")
    print(f"Wrote {path.relative_to(Path.cwd())}")
    for dialect, result in generated.items():
        if isinstance(result, Failed):
            print(f"  {dialect}: aerich could not write it ({result}): write it by hand")
    print("Now check the SQL of both dialects by hand (CONVENTIONS.md, 'Database').")
    return 0


if __name__ == "__main__":
    sys.exit(main())
