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
