"""Settings for habitat_http, read from ``HABITAT_*`` environment variables.

This is the only module that reads the environment. Everything else receives a
:class:`Config`, so tests build one directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_DB_URL = "sqlite:///habitat.db"
DEFAULT_BLOCKED_CALLSIGNS = frozenset({"N0CALL", "MYCALL", "CHANGEME"})
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


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
        blocked_callsigns: upper-cased callsigns refused with 400
            (``HABITAT_BLOCKED_CALLSIGNS``, comma separated).
        trusted_proxies: how many proxies in front append to X-Forwarded-For
            (``HABITAT_TRUSTED_PROXIES``); 0 means REMOTE_ADDR is the client.
        max_body: largest request body accepted, in bytes (``HABITAT_MAX_BODY``);
            larger bodies get 413.
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
    """

    db_url: str = DEFAULT_DB_URL
    blocked_callsigns: frozenset[str] = field(default=DEFAULT_BLOCKED_CALLSIGNS)
    trusted_proxies: int = 0
    max_body: int = 64 * 1024
    sqlite_synchronous: str = "FULL"
    db_timeout: float = 5.0
    future_tolerance: float = 60.0
    scgi_timeout: float = 5.0
    scgi_prefix: str = ""

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
            sqlite_synchronous=synchronous,
            db_timeout=_float(env, "HABITAT_DB_TIMEOUT", defaults.db_timeout),
            scgi_timeout=_float(env, "HABITAT_SCGI_TIMEOUT", defaults.scgi_timeout),
            scgi_prefix=_prefix(env.get("HABITAT_SCGI_PREFIX", defaults.scgi_prefix)),
        )


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


def _prefix(raw: str) -> str:
    prefix = raw.strip().rstrip("/")
    if prefix and not prefix.startswith("/"):
        raise ConfigError(f"HABITAT_SCGI_PREFIX must start with '/', not {raw!r}.")
    return prefix
