"""Settings for habitat_http, read from ``HABITAT_*`` environment variables.

This is the only module that reads the environment. Everything else receives a
:class:`Config`, so tests build one directly, and :func:`store_from_config` is
the one path from the settings to a store.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from .store import CheckpointStore, UnsupportedURL, open_store

DEFAULT_DB_URL = "sqlite:///habitat.db"
DEFAULT_BLOCKED_CALLSIGNS = frozenset({"N0CALL", "MYCALL", "CHANGEME"})
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
#: Set by ``habitat-http serve`` for the message server it supervises: the
#: supervisor's pid (see :func:`supervisor_pid` and habitat_http/parent.py).
EXIT_WITH_PARENT = "HABITAT_EXIT_WITH_PARENT"


class ConfigError(ValueError):
    """A ``HABITAT_*`` variable holds a value that cannot be used.

    The message names the variable and says what it must be. Raised at start-up,
    before any request is served.
    """


@dataclass(frozen=True, slots=True)
class Config:
    """Every setting of the gateway.

    Attributes:
        db_url: where messages are stored (``HABITAT_DB``), e.g.
            ``sqlite:///habitat.db`` (relative to the working directory) or
            ``sqlite:////var/lib/habitat/habitat.db`` (absolute).
        db_source: where ``db_url`` came from, named in error messages:
            ``HABITAT_DB``, or ``--db`` when a command line gave it.
        blocked_callsigns: upper-cased callsigns refused with 400
            (``HABITAT_BLOCKED_CALLSIGNS``, comma separated).
        trusted_proxies: how many proxies in front append to X-Forwarded-For
            (``HABITAT_TRUSTED_PROXIES``); 0 means REMOTE_ADDR is the client.
        max_body: largest request body accepted, in bytes (``HABITAT_MAX_BODY``);
            larger bodies get 413. Applies to a compressed body and to what it
            decompresses to.
        max_batch_body: the same for POST /messages (``HABITAT_MAX_BATCH_BODY``).
        max_batch_items: the most messages in one POST /messages.
        sqlite_synchronous: SQLite ``PRAGMA synchronous`` level
            (``HABITAT_SQLITE_SYNCHRONOUS``); FULL makes a commit survive power loss.
        db_timeout: seconds a write waits for the database before the client gets
            503 (``HABITAT_DB_TIMEOUT``).
        future_tolerance: seconds by which time_created may exceed time_uploaded
            before a message counts as created in the future.
        scgi_timeout: seconds an SCGI connection may stay idle before it is
            dropped; also bounds a graceful shutdown (``HABITAT_SCGI_TIMEOUT``).
        scgi_prefix: URL path the front server mounts the SCGI app at, e.g.
            ``/habitat`` (``HABITAT_SCGI_PREFIX``); empty for the root.
        metrics: whether ``GET /metrics`` serves Prometheus metrics
            (``HABITAT_METRICS``, on by default; off gives 404 and counts nothing).
        access_log: whether each request writes its JSON line on the
            ``habitat_http.access`` logger (``HABITAT_ACCESS_LOG``, on by default).
        ready_timeout: seconds ``GET /ready`` waits for the store's answer
            (``HABITAT_READY_TIMEOUT``).
        prometheus_multiproc_dir: prometheus_client's ``PROMETHEUS_MULTIPROC_DIR``,
            set when several gunicorn workers share their metrics; None otherwise.
    """

    db_url: str = DEFAULT_DB_URL
    db_source: str = "HABITAT_DB"
    blocked_callsigns: frozenset[str] = field(default=DEFAULT_BLOCKED_CALLSIGNS)
    trusted_proxies: int = 0
    max_body: int = 64 * 1024
    max_batch_body: int = 1024 * 1024
    max_batch_items: int = 1000
    sqlite_synchronous: str = "FULL"
    db_timeout: float = 5.0
    future_tolerance: float = 60.0
    scgi_timeout: float = 5.0
    scgi_prefix: str = ""
    metrics: bool = True
    access_log: bool = True
    ready_timeout: float = 1.0
    prometheus_multiproc_dir: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build a Config from ``HABITAT_*`` variables; unset ones keep their defaults.

        Args:
            environ: the variables to read; ``os.environ`` when None.

        Raises:
            ConfigError: a variable is set to an unusable value.
        """
        env = os.environ if environ is None else environ
        defaults = cls()
        blocked = env.get("HABITAT_BLOCKED_CALLSIGNS")
        synchronous = env.get("HABITAT_SQLITE_SYNCHRONOUS", defaults.sqlite_synchronous).upper()
        if synchronous not in SYNCHRONOUS_MODES:
            raise ConfigError(
                f"HABITAT_SQLITE_SYNCHRONOUS must be one of {', '.join(SYNCHRONOUS_MODES)}."
            )
        return cls(
            db_url=env.get("HABITAT_DB", "").strip() or defaults.db_url,
            blocked_callsigns=(
                defaults.blocked_callsigns
                if blocked is None
                else frozenset(c.strip().upper() for c in blocked.split(",") if c.strip())
            ),
            trusted_proxies=_int(env, "HABITAT_TRUSTED_PROXIES", defaults.trusted_proxies, 0),
            max_body=_int(env, "HABITAT_MAX_BODY", defaults.max_body, 1),
            max_batch_body=_int(env, "HABITAT_MAX_BATCH_BODY", defaults.max_batch_body, 1),
            sqlite_synchronous=synchronous,
            db_timeout=_float(env, "HABITAT_DB_TIMEOUT", defaults.db_timeout),
            scgi_timeout=_float(env, "HABITAT_SCGI_TIMEOUT", defaults.scgi_timeout),
            scgi_prefix=_prefix(env.get("HABITAT_SCGI_PREFIX", defaults.scgi_prefix)),
            metrics=_switch(env, "HABITAT_METRICS", defaults.metrics),
            access_log=_switch(env, "HABITAT_ACCESS_LOG", defaults.access_log),
            ready_timeout=_float(env, "HABITAT_READY_TIMEOUT", defaults.ready_timeout),
            prometheus_multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        )


def store_from_config(config: Config, *, read_only: bool = False) -> CheckpointStore:
    """The store that ``config`` names: the one path from the settings to a store,
    for the app, every command and the message server (and its sinks).

    Opening does no I/O: the database is first touched when the store is used.

    Args:
        config: the settings; ``db_url``, ``sqlite_synchronous`` and ``db_timeout``
            are used.
        read_only: for the commands that only read: the store opens only an
            existing habitat database (NoDatabase otherwise) and never writes.

    Raises:
        ConfigError: ``db_url`` is not a sqlite:/// or postgresql:// URL; the
            message names ``config.db_source``.
    """
    try:
        return open_store(
            config.db_url,
            synchronous=config.sqlite_synchronous,
            timeout=config.db_timeout,
            read_only=read_only,
        )
    except UnsupportedURL as exc:
        raise ConfigError(
            f"{config.db_source} must be a sqlite:/// or postgresql:// URL, not {exc.url!r}."
        ) from None


def supervisor_pid(environ: Mapping[str, str] | None = None) -> int | None:
    """The pid of the process supervising this one (``HABITAT_EXIT_WITH_PARENT``,
    set by ``habitat-http serve`` for its message server), or None.

    Raises:
        ConfigError: the variable is not a pid.
    """
    env = os.environ if environ is None else environ
    return _int(env, EXIT_WITH_PARENT, 0, 1) or None


def child_environ(overrides: Mapping[str, str]) -> dict[str, str]:
    """The environment for a child process: this process's, with ``overrides``."""
    return {**os.environ, **overrides}


def multiprocess_metrics_dir(environ: MutableMapping[str, str] | None = None) -> str:
    """Make prometheus_client's multiprocess mode ready for gunicorn's workers.

    Uses ``PROMETHEUS_MULTIPROC_DIR`` when set, emptied of an earlier run's files
    (prometheus_client's documented rule), or else a new temporary directory,
    which it sets in ``environ`` for the workers to inherit. Call it in gunicorn's
    master before anything imports prometheus_client: the library picks its
    multiprocess mode at import.

    Args:
        environ: the environment to read and set; ``os.environ`` when None.

    Returns:
        The directory.
    """
    env = os.environ if environ is None else environ
    path = env.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
    else:
        path = tempfile.mkdtemp(prefix="habitat-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}.")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}.") from None
    if not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {raw!r}.")
    return value


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise ConfigError(f"{name} must be on or off, not {raw!r}.")


def _prefix(raw: str) -> str:
    prefix = raw.strip().rstrip("/")
    if prefix and not prefix.startswith("/"):
        raise ConfigError(f"HABITAT_SCGI_PREFIX must start with '/', not {raw!r}.")
    return prefix


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """One sink of the message server.

    Attributes:
        name: its name; its checkpoint is kept under it.
        use: an entry point name in ``habitat_http.sinks`` or a dotted path.
        options: everything else in its table of the config file.
    """

    name: str
    use: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings of the message server (``habitat-http server --config FILE``).

    Attributes:
        sinks: the sinks to load; by default the archive and the parser (which
            turns RECEIVED_TELEM into TELEM, which the archive merges).
        batch_size: messages read and delivered at once.
        poll_interval: seconds between looks for new messages when idle.
        retry_initial: seconds before the first retry of a failing sink; doubled
            after each further failure, up to ``retry_max``.
        retry_max: the longest wait between retries, in seconds.
    """

    sinks: tuple[SinkSpec, ...] = (SinkSpec("archive", "archive"), SinkSpec("parser", "parser"))
    batch_size: int = 500
    poll_interval: float = 0.2
    retry_initial: float = 0.5
    retry_max: float = 60.0

    @classmethod
    def from_file(cls, path: str | None) -> ServerConfig:
        """Read a TOML config file; None gives the defaults.

        The file holds the settings above at the top level and one table per
        sink::

            batch_size = 500
            [sinks.archive]
            use = "archive"
            [sinks.mirror]
            use = "mypackage.sinks:Mirror"   # anything else is the sink's options
            url = "https://example.org/"

        Raises:
            ConfigError: the file cannot be read or holds a wrong value.
        """
        if path is None:
            return cls()
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read the server config {path}: {exc}") from exc
        defaults = cls()
        sinks_table = doc.pop("sinks", None)
        sinks = defaults.sinks
        if sinks_table is not None:
            if not isinstance(sinks_table, dict) or not sinks_table:
                raise ConfigError(f"{path}: [sinks] must hold at least one [sinks.NAME] table.")
            specs = []
            for name, table in sinks_table.items():
                if not isinstance(table, dict) or not isinstance(table.get("use"), str):
                    raise ConfigError(f'{path}: [sinks.{name}] needs use = "entry point or path".')
                options = {k: v for k, v in table.items() if k != "use"}
                specs.append(SinkSpec(name, table["use"], options))
            sinks = tuple(specs)
        values: dict[str, Any] = {}
        for key, kind in (
            ("batch_size", int),
            ("poll_interval", float),
            ("retry_initial", float),
            ("retry_max", float),
        ):
            if key in doc:
                value = doc.pop(key)
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ConfigError(f"{path}: {key} must be a positive number.")
                if kind is int and (not isinstance(value, int) or value < 1):
                    raise ConfigError(f"{path}: {key} must be a whole number of at least 1.")
                values[key] = kind(value)
        if doc:
            raise ConfigError(f"{path}: unknown settings {sorted(doc)}.")
        return cls(sinks=sinks, **values)
