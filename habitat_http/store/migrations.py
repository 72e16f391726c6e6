"""Versioned schema migrations, shared by both backends.

Each backend keeps an ordered tuple of :class:`Migration`; the database records
how many have been applied (SQLite: ``PRAGMA user_version``; PostgreSQL: the
``habitat_schema`` table). Start-up applies pending migrations only when every
one of them is marked ``online`` (safe while other processes use the database,
e.g. adding a table or a column); otherwise it refuses and asks for
``habitat-http init-db``. A database migrated by a newer habitat_http is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import SchemaTooNew, StoreError


@dataclass(frozen=True)
class Migration:
    """One schema step: SQL statements separated by ``;``.

    Attributes:
        sql: the statements.
        online: safe to apply at start-up while the database is in use.
    """

    sql: str
    online: bool = True

    def statements(self) -> list[str]:
        """The statements, one by one."""
        return [part.strip() for part in self.sql.split(";") if part.strip()]


class MigrationNeeded(StoreError):
    """Pending migrations are not safe at start-up; run ``habitat-http init-db``."""


def pending(
    name: str, current: int, migrations: Sequence[Migration], at_startup: bool
) -> Sequence[Migration]:
    """The migrations still to apply to a database at version ``current``.

    Args:
        name: the database, for messages.
        current: how many migrations it has.
        migrations: all of them, in order.
        at_startup: True when called by a gateway or server starting up, False
            for ``habitat-http init-db``.

    Raises:
        SchemaTooNew: the database has more migrations than this code knows.
        MigrationNeeded: at start-up, a pending migration is not ``online``.
    """
    if current > len(migrations):
        raise SchemaTooNew(
            f"{name} has schema version {current}, but this habitat_http knows only up to "
            f"{len(migrations)}; upgrade habitat_http."
        )
    todo = migrations[current:]
    if at_startup and not all(m.online for m in todo):
        raise MigrationNeeded(
            f"{name} needs schema migrations that are unsafe while it is in use; "
            "stop the gateways and run `habitat-http init-db`."
        )
    return todo


#: Per dialect: the parameter mark, and a query that gives a row when the table
#: named by its parameter exists.
_DIALECTS = {
    "sqlite": ("?", "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"),
    "postgresql": ("%s", "SELECT 1 WHERE to_regclass(%s) IS NOT NULL"),
}


def table_exists(conn: Any, dialect: str, table: str) -> bool:
    """Whether ``table`` exists (a read: nothing is created).

    Args:
        conn: a sqlite3 or psycopg connection.
        dialect: ``sqlite`` or ``postgresql``.
    """
    return bool(conn.execute(_DIALECTS[dialect][1], (table,)).fetchone())


def migrate_component(
    conn: Any,
    dialect: str,
    component: str,
    migrations: Sequence[Migration],
    name: str,
    at_startup: bool,
    unrecorded: int = 0,
) -> None:
    """Bring one component's tables (the archive's, the parser's) up to date.

    A component keeps its version in its row of the ``schema_versions (component,
    version)`` table, apart from the store's own version.

    Args:
        conn: a sqlite3 or psycopg connection, inside a transaction that holds the
            database's lock for migrations.
        dialect: ``sqlite`` or ``postgresql``.
        component: the row's name, e.g. ``archive``.
        migrations: the component's migrations for this dialect, in order.
        name: the database, for messages.
        at_startup: False for ``habitat-http init-db``.
        unrecorded: the version to assume when the component has no row yet.

    Raises:
        SchemaTooNew, MigrationNeeded: see :func:`pending`.
    """
    mark = _DIALECTS[dialect][0]
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions"
        " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    row = conn.execute(
        f"SELECT version FROM schema_versions WHERE component = {mark}", (component,)
    ).fetchone()
    recorded = None if row is None else int(row[0])
    current = unrecorded if recorded is None else recorded
    for migration in pending(f"{name} ({component})", current, migrations, at_startup):
        for statement in migration.statements():
            conn.execute(statement)
    if recorded is None or recorded < len(migrations):
        conn.execute(
            f"INSERT INTO schema_versions (component, version) VALUES ({mark}, {mark})"
            " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (component, max(current, len(migrations))),
        )
