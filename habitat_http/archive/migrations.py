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

from collections.abc import Sequence
from typing import Final, Protocol

from ..store.migrations import Migration, pending

COMPONENT: Final = "archive"
#: A table every archive version has; found without a recorded version, the
#: store's migrations of habitat_http before the split made it (version 1).
_FIRST_TABLE: Final = "payload_telemetry"

_TABLES = """
    CREATE TABLE payload_telemetry (
        id                     TEXT   PRIMARY KEY,
        raw                    TEXT   NOT NULL,
        receivers              {json} NOT NULL,
        estimated_time_created {int}  NOT NULL,
        first_message          {int}  NOT NULL
    );
    CREATE INDEX payload_telemetry_first ON payload_telemetry (first_message);
    CREATE TABLE listener_information (
        id             TEXT   PRIMARY KEY,
        callsign       TEXT   NOT NULL,
        time_created   {int}  NOT NULL,
        time_uploaded  {int}  NOT NULL,
        data           {json} NOT NULL,
        source_message {int}  NOT NULL UNIQUE
    );
    CREATE INDEX listener_information_latest
        ON listener_information (callsign, time_created, source_message);
    CREATE TABLE listener_telemetry (
        id             TEXT   PRIMARY KEY,
        callsign       TEXT   NOT NULL,
        time_created   {int}  NOT NULL,
        time_uploaded  {int}  NOT NULL,
        data           {json} NOT NULL,
        source_message {int}  NOT NULL UNIQUE
    );
    CREATE INDEX listener_telemetry_latest
        ON listener_telemetry (callsign, time_created, source_message);
"""

#: The archive's migrations for each store dialect (``CheckpointStore.dialect``).
MIGRATIONS: Final[dict[str, tuple[Migration, ...]]] = {
    "sqlite": (Migration(_TABLES.format(json="TEXT", int="INTEGER")),),
    "postgresql": (Migration(_TABLES.format(json="JSONB", int="BIGINT")),),
}


class SchemaTx(Protocol):
    """What :func:`migrate` needs, inside one transaction that holds the database's
    migration lock; each backend implements it in its own SQL."""

    def recorded_version(self, component: str) -> int | None:
        """The component's version in ``schema_versions`` (created if missing), or
        None when it has no row."""
        ...

    def has_table(self, name: str) -> bool:
        """Whether the table exists."""
        ...

    def execute(self, statement: str) -> None:
        """Run one DDL statement."""
        ...

    def record_version(self, component: str, version: int) -> None:
        """Set the component's row in ``schema_versions``."""
        ...


def migrate(tx: SchemaTx, name: str, migrations: Sequence[Migration], at_startup: bool) -> None:
    """Bring the archive's tables up to date, in ``tx``.

    Args:
        name: the database, for messages.
        migrations: the archive's migrations for this database's dialect.
        at_startup: False for ``habitat-http init-db``.

    Raises:
        SchemaTooNew, MigrationNeeded: see :func:`habitat_http.store.migrations.pending`.
    """
    recorded = tx.recorded_version(COMPONENT)
    current = recorded
    if current is None:
        current = 1 if tx.has_table(_FIRST_TABLE) else 0
    for migration in pending(f"{name} (archive)", current, migrations, at_startup):
        for statement in migration.statements():
            tx.execute(statement)
    if recorded is None or recorded < len(migrations):
        tx.record_version(COMPONENT, max(current, len(migrations)))
