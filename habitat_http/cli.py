"""The ``habitat-http`` command (click)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from .config import Config, ConfigError
from .store import StoreError, open_store

#: The keys ``habitat-http messages`` prints, in this order.
MESSAGE_KEYS = ("id", "callsign", "type", "time_created", "time_uploaded", "ip", "data")


@click.group()
@click.version_option(package_name="habitat_http")
def main() -> None:
    """habitat_http: the message gateway of the balloon tracking network."""


@main.command()
@click.option("--db", "db_url", metavar="URL", help="Database URL; default $HABITAT_DB.")
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Print messages with an id greater than this.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Print at most this many messages."
)
def messages(db_url: str | None, after: int, limit: int | None) -> None:
    """Print stored messages as JSON lines, in id order.

    Each line holds id, callsign, type, time_created, time_uploaded (UNIX seconds,
    clock-corrected), ip and data.
    """
    try:
        config = Config.from_env()
        store = open_store(db_url or config.db_url, timeout=config.db_timeout)
        out = sys.stdout
        batch = 1000
        remaining = limit
        while remaining is None or remaining > 0:
            rows = store.read_after(after, batch if remaining is None else min(batch, remaining))
            if not rows:
                break
            for message in rows:
                record = asdict(message)
                out.write(json.dumps({k: record[k] for k in MESSAGE_KEYS}, ensure_ascii=False))
                out.write("\n")
            after = rows[-1].id or after
            if remaining is not None:
                remaining -= len(rows)
        store.close()
    except (ConfigError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc


def _octal(value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an octal mode such as 0660.") from None
    if not 0 <= mode <= 0o777:
        raise click.BadParameter(f"{value!r} is not a permission mode between 000 and 777.")
    return mode


@main.command()
@click.option("--socket", "path", required=True, metavar="PATH", help="Unix socket to create.")
@click.option(
    "--mode",
    default="0660",
    show_default=True,
    metavar="OCTAL",
    help="Permission bits of the socket file.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Most connections served at once.",
)
@click.option(
    "--prefix",
    default=None,
    metavar="PATH",
    help="URL path the front server mounts the app at, e.g. /habitat; "
    "default $HABITAT_SCGI_PREFIX or the root.",
)
def scgi(path: str, mode: str, threads: int, prefix: str | None) -> None:
    """Serve the gateway over SCGI on a Unix socket (flup's threaded server).

    For Apache's mod_proxy_scgi or nginx's scgi_pass in front. Configured from the
    same HABITAT_* variables as the HTTP path. Stops gracefully on SIGTERM or SIGINT.
    """
    import logging

    from .app import create_app
    from .scgi import SCGIStartError, serve

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app = create_app()
        config = app.config
        serve(
            app.wsgi_app,  # no ProxyFix: the front server sets REMOTE_ADDR
            path,
            mode=_octal(mode),
            threads=threads,
            timeout=config.scgi_timeout,
            prefix=config.scgi_prefix if prefix is None else prefix,
        )
    except (ConfigError, SCGIStartError) as exc:
        raise click.ClickException(str(exc)) from exc
