"""The schema two ways, compared: what the migrations build and what the models describe.

aerich records the models' description in its table when it applies a
migration, so "aerich migrate: no changes" does not prove that the SQL of the
migrations builds what the models say. Here one database is built by the real
migrations (``models.db.migrate``), another by Tortoise from the models
(``generate_schemas``), and their catalogues are read back and compared:
tables, columns (type, nullability, default), indexes and constraints.
Comments are left out: they are documentation, not structure. So is the
order of columns: a migration can only add a column at the end.

The builds run in a child process (``python -m tests.support.schema
{migrations|models} URL``): aerich and Tortoise keep global state that must
not meet the test session's, and a test can put a changed copy of ``models/``
first on the child's path.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[2]

# Each table's items ("column x", "index y", "constraint z", ...) and what they are.
Schema = dict[str, dict[str, str]]

# What the migrations add on purpose and Tortoise cannot describe: (table, item)
# -> why; the item "table" allows a whole table that no model has.
ALLOWED_EXTRAS: dict[tuple[str, str], str] = {
    ("message", "index idx_message_claim"): (
        "the engine's claim index holds only waiting messages (a partial index:"
        " WHERE status = 'PENDING' AND leased_until IS NULL); models cannot declare one"
    ),
    ("message", "index idx_message_leased"): (
        "finds leases whose worker died (a partial index: WHERE leased_until IS NOT NULL);"
        " models cannot declare one"
    ),
    ("timeline_count", "table"): (
        "a mailing's outcomes per second, kept by triggers on message (migration 8); its"
        " primary key is (mailing_id, second, status), which a model cannot declare"
    ),
    ("send_schedule", "table"): (
        "the pacing schedule: only raw SQL in tasks/send_schedule.py touches it, and it is"
        " UNLOGGED on PostgreSQL, which a model cannot declare"
    ),
}


# Tortoise keeps a model's ``default=`` in Python, so the schema it builds has
# no DEFAULT for it; a migration that adds a NOT NULL column to a table that
# has rows must give one (aerich does, and SQLite insists). A default only the
# migrations set is therefore accepted; one the models set (``db_default``)
# must be there and be the same.
_ONLY_IN_MIGRATIONS_IS_FINE = "default "


def compare(
    migrated: Schema, generated: Schema, allowed: dict[tuple[str, str], str] = ALLOWED_EXTRAS
) -> list[str]:
    """How the migrated schema differs from the models', one line each; empty when they agree.

    ``allowed`` names what only the migrations may have, and must have.
    """
    problems: list[str] = []
    for table in sorted(migrated.keys() | generated.keys()):
        if table not in generated:
            if (table, "table") not in allowed:
                problems.append(f"table {table}: only the migrations create it")
            continue
        if table not in migrated:
            problems.append(f"table {table}: the models have it, no migration creates it")
            continue
        by_migrations, by_models = migrated[table], generated[table]
        for item in sorted(by_migrations.keys() | by_models.keys()):
            ours, theirs = by_migrations.get(item), by_models.get(item)
            if theirs is None:
                fine = item.startswith(_ONLY_IN_MIGRATIONS_IS_FINE)
                if not fine and (table, item) not in allowed:
                    problems.append(f"{table}: {item} only in the migrations: {ours}")
            elif ours is None:
                problems.append(f"{table}: {item} only in the models: {theirs}")
            elif ours != theirs:
                problems.append(f"{table}: {item} differs: migrations {ours!r}, models {theirs!r}")
    for table, item in sorted(allowed):
        if table not in migrated or (item != "table" and item not in migrated[table]):
            problems.append(f"{table}: {item} is allowed as an extra but no migration creates it")
    return problems


# PostgreSQL: the catalogue of the public schema.

_PG_COLUMNS = """
SELECT c.relname AS "table", a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS "default",
       NULLIF(a.attidentity::text, '') AS identity,
       NULLIF(a.attgenerated::text, '') AS generated
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
"""
_PG_INDEXES = "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
_PG_CONSTRAINTS = """
SELECT c.relname AS "table", k.conname AS name, pg_get_constraintdef(k.oid) AS definition
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
"""


async def postgres_schema(dsn: str) -> Schema:
    conn = await asyncpg.connect(dsn)
    try:
        schema: Schema = {}
        for row in await conn.fetch(_PG_COLUMNS):
            spec = row["type"] + (" NOT NULL" if row["not_null"] else " NULL")
            if row["identity"]:
                spec += f" IDENTITY {row['identity']}"
            if row["generated"]:
                spec += f" GENERATED {row['generated']}"
            items = schema.setdefault(row["table"], {})
            items[f"column {row['name']}"] = spec
            if row["default"] is not None:
                items[f"default {row['name']}"] = row["default"]
        for row in await conn.fetch(_PG_INDEXES):
            schema.setdefault(row["tablename"], {})[f"index {row['indexname']}"] = row["indexdef"]
        for row in await conn.fetch(_PG_CONSTRAINTS):
            schema.setdefault(row["table"], {})[f"constraint {row['name']}"] = row["definition"]
        return schema
    finally:
        await conn.close()


# SQLite: what its pragmas say. Automatic indexes are named by their position
# among a table's constraints, so they are keyed by their columns instead.


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _where(sql: str | None) -> str:
    match = re.search(r"\bWHERE\b(.*)$", sql or "", re.IGNORECASE | re.DOTALL)
    return " WHERE " + " ".join(match[1].replace('"', "").split()).rstrip(";") if match else ""


def sqlite_schema(path: Path) -> Schema:
    conn = sqlite3.connect(path)
    try:
        schema: Schema = {}
        tables = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        index_sql = dict(
            conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'").fetchall()
        )
        for table, table_sql in tables:
            items = schema.setdefault(table, {})
            options = [
                word
                for word in ("AUTOINCREMENT", "WITHOUT ROWID", "STRICT")
                if re.search(rf"\b{word}\b", table_sql, re.IGNORECASE)
            ]
            items["table options"] = " ".join(options) or "none"
            for _, name, type_, not_null, default, pk in conn.execute(
                f"PRAGMA table_info({_quoted(table)})"
            ):
                spec = type_.upper() + (" NOT NULL" if not_null else " NULL")
                if pk:
                    spec += f" PRIMARY KEY {pk}"
                items[f"column {name}"] = spec
                if default is not None:
                    items[f"default {name}"] = str(default)
            for _, name, unique, origin, partial in conn.execute(
                f"PRAGMA index_list({_quoted(table)})"
            ):
                columns = ", ".join(
                    str(column)
                    for _, _, column in conn.execute(f"PRAGMA index_info({_quoted(name)})")
                )
                spec = ("UNIQUE " if unique else "") + f"({columns})"
                if partial:
                    spec += _where(index_sql.get(name))
                key = f"index {name}" if origin == "c" else f"{origin} index ({columns})"
                items[key] = spec
            keys: dict[int, list[tuple[str, str, str, str, str]]] = {}
            for key_id, _, target, source, column, on_update, on_delete, _ in conn.execute(
                f"PRAGMA foreign_key_list({_quoted(table)})"
            ):
                keys.setdefault(key_id, []).append((target, source, column, on_update, on_delete))
            for parts in keys.values():
                target, _, _, on_update, on_delete = parts[0]
                sources = ", ".join(part[1] for part in parts)
                columns = ", ".join(str(part[2]) for part in parts)
                items[f"foreign key ({sources})"] = (
                    f"REFERENCES {target} ({columns}) ON UPDATE {on_update} ON DELETE {on_delete}"
                )
        return schema
    finally:
        conn.close()


# The builds.


def build(how: str, url: str, models_dir: Path | None = None) -> None:
    """Build the schema in the (empty) database at ``url`` from the migrations or the models.

    ``models_dir`` holds a changed copy of the ``models`` package to build from instead.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cwd = models_dir.parent if models_dir is not None else ROOT
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.schema", how, url],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building from the {how} failed:\n{result.stdout}{result.stderr}")


async def _build(how: str, url: str) -> None:
    from tortoise import Tortoise

    from models.db import migrate
    from models.tortoise_config import tortoise_config
    from settings import Settings

    settings = Settings(database_url=url)
    if how == "migrations":
        await migrate(settings)
        return
    await Tortoise.init(config=tortoise_config(settings))
    try:
        await Tortoise.generate_schemas(safe=False)
    finally:
        await Tortoise.close_connections()


if __name__ == "__main__":
    how, url = sys.argv[1:]
    if how not in ("migrations", "models"):
        sys.exit(f"build from 'migrations' or 'models', not {how!r}")
    asyncio.run(_build(how, url))
