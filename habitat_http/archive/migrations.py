"""The archive's own schema migrations, versioned apart from the store's.

The archive keeps its version in the row ``component = 'archive'`` of a small
``schema_versions (component, version)`` table, so that the store's migrations
(SQLite ``PRAGMA user_version``, PostgreSQL ``habitat_schema``) stay the store's
alone. The rules for applying them are the store's: see
:mod:`habitat_http.store.migrations`.

Databases made before the archive had its own migrations already hold its
tables, created by the store's second migration, but have no ``archive`` row.
Such a database is at archive version 1, whose tables are the same: it is
recorded as such and nothing is created again.
"""

from __future__ import annotations

from typing import Any, Final

from ..store.migrations import Migration, pending

COMPONENT: Final = "archive"
#: A table every archive version has; found without a recorded version, the
#: store's migrations of habitat_http before the split made it (version 1).
_FIRST_TABLE: Final = "payload_telemetry"

_LISTENER_TABLE = """
    CREATE TABLE {table} (
        id             TEXT   PRIMARY KEY,
        callsign       TEXT   NOT NULL,
        time_created   {int}  NOT NULL,
        time_uploaded  {int}  NOT NULL,
        data           {json} NOT NULL,
        source_message {int}  NOT NULL UNIQUE
    );
    CREATE INDEX {table}_latest ON {table} (callsign, time_created, source_message);
"""
_TABLES = (
    """
    CREATE TABLE payload_telemetry (
        id                     TEXT   PRIMARY KEY,
        raw                    TEXT   NOT NULL,
        receivers              {json} NOT NULL,
        estimated_time_created {int}  NOT NULL,
        first_message          {int}  NOT NULL
    );
    CREATE INDEX payload_telemetry_first ON payload_telemetry (first_message);
"""
    + _LISTENER_TABLE.replace("{table}", "listener_information")
    + _LISTENER_TABLE.replace("{table}", "listener_telemetry")
)

#: The archive's migrations for each store dialect (``CheckpointStore.dialect``).
MIGRATIONS: Final[dict[str, tuple[Migration, ...]]] = {
    "sqlite": (Migration(_TABLES.format(json="TEXT", int="INTEGER")),),
    "postgresql": (Migration(_TABLES.format(json="JSONB", int="BIGINT")),),
}

#: What differs between dialects in the version bookkeeping: the parameter mark,
#: and a query that gives a row when the table named by its parameter exists.
_DIALECTS: Final = {
    "sqlite": ("?", "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"),
    "postgresql": ("%s", "SELECT 1 WHERE to_regclass(%s) IS NOT NULL"),
}


def has_tables(conn: Any, dialect: str) -> bool:
    """Whether the archive's tables exist (a read: nothing is created)."""
    return bool(conn.execute(_DIALECTS[dialect][1], (_FIRST_TABLE,)).fetchone())


def migrate(conn: Any, dialect: str, name: str, at_startup: bool) -> None:
    """Bring the archive's tables up to date.

    Args:
        conn: a sqlite3 or psycopg connection, inside a transaction that holds the
            database's lock for migrations.
        dialect: ``sqlite`` or ``postgresql``.
        name: the database, for messages.
        at_startup: False for ``habitat-http init-db``.

    Raises:
        SchemaTooNew, MigrationNeeded: see :func:`habitat_http.store.migrations.pending`.
    """
    mark = _DIALECTS[dialect][0]
    migrations = MIGRATIONS[dialect]
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions"
        " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    row = conn.execute(
        f"SELECT version FROM schema_versions WHERE component = {mark}", (COMPONENT,)
    ).fetchone()
    recorded = None if row is None else int(row[0])
    current = recorded
    if current is None:
        current = 1 if has_tables(conn, dialect) else 0
    for migration in pending(f"{name} (archive)", current, migrations, at_startup):
        for statement in migration.statements():
            conn.execute(statement)
    if recorded is None or recorded < len(migrations):
        conn.execute(
            f"INSERT INTO schema_versions (component, version) VALUES ({mark}, {mark})"
            " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (COMPONENT, max(current, len(migrations))),
        )
