"""What every ``habitat-http`` command shares: the settings in click's
``ctx.obj``, the ``--db`` option, and one-line errors.

The group (:data:`habitat_http.cli.main`) puts one :class:`Settings` in
``ctx.obj``. A command, in cli.py or in any module whose command is added with
``main.add_command``, takes ``--db`` with :data:`db_option` and the settings with
:data:`pass_settings`::

    @click.command()
    @db_option
    @pass_settings
    def count(settings: Settings) -> None:
        with settings.errors():
            store = settings.open_store(read_only=True)
            ...

Every command line keeps ``--db`` after the command's name
(``habitat-http messages --db URL``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace

import click

from .config import Config, ConfigError, store_from_config
from .sinks import SinkLoadError
from .store import CheckpointStore, NoDatabase, StoreError


class Settings:
    """The settings of one run of a command: read from the ``HABITAT_*`` variables
    once, when the command first asks, with ``--db`` over HABITAT_DB.

    Read when asked, not when the group starts, so that ``--help`` works whatever
    the environment holds, and ``habitat-http serve`` can set up the metrics
    directory (PROMETHEUS_MULTIPROC_DIR) before the settings name it.

    Args:
        environ: the variables to read; ``os.environ`` when None.

    Attributes:
        db_url: the ``--db`` option's URL, or None (set by :data:`db_option`).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.db_url: str | None = None
        self._environ = environ
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        """The settings (read once).

        Raises:
            ConfigError: a HABITAT_* variable is unusable; the message names it.
        """
        if self._config is None:
            config = Config.from_env(self._environ)
            if self.db_url:
                config = replace(config, db_url=self.db_url, db_source="--db")
            self._config = config
        return self._config

    def open_store(self, *, read_only: bool = False) -> CheckpointStore:
        """The store the settings name (see :func:`habitat_http.config.store_from_config`).

        Args:
            read_only: for a command that only reads: the database is checked at
                once, creating nothing.

        Raises:
            ConfigError: a setting is unusable, the database URL included.
            NoDatabase: read-only, and there is no habitat database there.
            StoreError: read-only, and the database cannot be read.
        """
        store = store_from_config(self.config, read_only=read_only)
        if read_only:
            store.initialize()  # checks, creating nothing
        return store

    @contextmanager
    def errors(self, *also: type[Exception]) -> Iterator[None]:
        """Turn what stops a command into its one-line error (exit status 1).

        ConfigError, StoreError, SinkLoadError and the types in ``also`` become a
        ``click.ClickException`` with their message; a missing database also
        names where its URL came from (``--db`` or HABITAT_DB).
        """
        caught: tuple[type[Exception], ...] = (ConfigError, StoreError, SinkLoadError, *also)
        try:
            yield
        except caught as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: Exception) -> click.ClickException:
        config = self._config
        if isinstance(exc, NoDatabase) and config is not None:
            return click.ClickException(
                f"{exc} ({config.db_source} is {config.db_url}). Nothing was created;"
                " `habitat-http init-db` or starting the gateway creates one."
            )
        return click.ClickException(str(exc))


def _set_db(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.ensure_object(Settings).db_url = value


#: The ``--db URL`` option of a command; the URL goes into its :class:`Settings`.
db_option = click.option(
    "--db",
    metavar="URL",
    expose_value=False,
    callback=_set_db,
    help="Database URL; default $HABITAT_DB.",
)

#: Passes the command's :class:`Settings` (the group's ``ctx.obj``) as its first
#: argument.
pass_settings = click.make_pass_decorator(Settings, ensure=True)
