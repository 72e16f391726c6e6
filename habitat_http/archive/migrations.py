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

from ..store.migrations import Migration, migrate_component, table_exists

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

_PARSED_COLUMNS = """
    ALTER TABLE payload_telemetry ADD COLUMN data {json};
    ALTER TABLE payload_telemetry ADD COLUMN payload TEXT;
    ALTER TABLE payload_telemetry ADD COLUMN time_parsed {real};
    ALTER TABLE payload_telemetry ADD COLUMN latitude {real};
    ALTER TABLE payload_telemetry ADD COLUMN longitude {real};
    ALTER TABLE payload_telemetry ADD COLUMN altitude {real};
    ALTER TABLE payload_telemetry ADD COLUMN parse_error INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE payload_telemetry ADD COLUMN telem_message {int};
    CREATE INDEX payload_telemetry_payload ON payload_telemetry (payload, estimated_time_created);
    CREATE INDEX payload_telemetry_time ON payload_telemetry (estimated_time_created);
    CREATE INDEX payload_telemetry_problems ON payload_telemetry (payload, estimated_time_created)
        WHERE parse_error = 1
"""

_LISTENER_TIME = """
    CREATE INDEX listener_information_time ON listener_information (time_created, callsign);
    CREATE INDEX listener_telemetry_time ON listener_telemetry (time_created, callsign)
"""

#: The archive's migrations for each store dialect (``CheckpointStore.dialect``):
#: 1. the three document tables;
#: 2. what the parser's TELEM adds to payload_telemetry: its parsed ``data``, and
#:    columns a tracker queries by (``payload``, the position, ``parse_error``);
#: 3. the listeners a tracker lists by time (index on time_created, callsign).
MIGRATIONS: Final[dict[str, tuple[Migration, ...]]] = {
    "sqlite": (
        Migration(_TABLES.format(json="TEXT", int="INTEGER")),
        Migration(_PARSED_COLUMNS.format(json="TEXT", int="INTEGER", real="REAL")),
        Migration(_LISTENER_TIME),
    ),
    "postgresql": (
        Migration(_TABLES.format(json="JSONB", int="BIGINT")),
        Migration(_PARSED_COLUMNS.format(json="JSONB", int="BIGINT", real="DOUBLE PRECISION")),
        Migration(_LISTENER_TIME),
    ),
}


def has_tables(conn: Any, dialect: str) -> bool:
    """Whether the archive's tables exist (a read: nothing is created)."""
    return table_exists(conn, dialect, _FIRST_TABLE)


def version(conn: Any, dialect: str) -> int:
    """The archive's schema version in the database (a read: nothing is created)."""
    if not table_exists(conn, dialect, "schema_versions"):
        return 1 if has_tables(conn, dialect) else 0
    mark = "?" if dialect == "sqlite" else "%s"
    row = conn.execute(
        f"SELECT version FROM schema_versions WHERE component = {mark}", (COMPONENT,)
    ).fetchone()
    if row is None:
        return 1 if has_tables(conn, dialect) else 0
    return int(row[0])


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
    # Without a recorded version, tables made by the store's migrations before
    # the split are archive version 1.
    migrate_component(
        conn,
        dialect,
        COMPONENT,
        MIGRATIONS[dialect],
        name,
        at_startup,
        unrecorded=1 if has_tables(conn, dialect) else 0,
    )
