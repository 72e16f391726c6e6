"""The ``habitat-http`` command (click)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from .archive import DOCUMENT_TYPES, open_archive
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
            after = rows[-1].id
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
        app.store.initialize()  # fail fast before listening
        config = app.config
        serve(
            app.wsgi_app,  # no ProxyFix: the front server sets REMOTE_ADDR
            path,
            mode=_octal(mode),
            threads=threads,
            timeout=config.scgi_timeout,
            prefix=config.scgi_prefix if prefix is None else prefix,
        )
    except (ConfigError, SCGIStartError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc


def _db(db_url: str | None) -> tuple[Config, str]:
    config = Config.from_env()
    return config, db_url or config.db_url


@main.command()
@click.option("--db", "db_url", metavar="URL", help="Database URL; default $HABITAT_DB.")
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="TOML file naming the sinks; default: the archive sink alone.",
)
def server(db_url: str | None, config_file: str | None) -> None:
    """Run the message server: deliver stored messages to the sinks, until SIGTERM.

    Each sink gets the messages of its types in commit order, at least once, with
    a durable checkpoint; see `habitat-http status`.
    """
    import logging
    import signal
    import threading

    from .config import ServerConfig
    from .server import MessageServer, load_sinks
    from .sinks import SinkLoadError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config, url = _db(db_url)
        server_config = ServerConfig.from_file(config_file)
        store = open_store(url, timeout=config.db_timeout)
        store.initialize()  # fail fast: unreachable database, or a newer schema
        sinks = load_sinks(server_config, url, store)
    except (ConfigError, SinkLoadError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from .serve import exit_with_parent

    exit_with_parent()  # when run by `habitat-http serve`
    try:
        MessageServer(store, sinks, server_config).run(stop)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--db", "db_url", metavar="URL", help="Database URL; default $HABITAT_DB.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per sink.")
def status(db_url: str | None, as_json: bool) -> None:
    """Show each sink's checkpoint, lag (messages and seconds) and last error."""
    import time

    from .server import status as sink_status

    try:
        config, url = _db(db_url)
        rows = sink_status(open_store(url, timeout=config.db_timeout), time.time())
    except (ConfigError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        click.echo("no sinks have run yet")
    for row in rows:
        click.echo(
            f"{row['sink']}: checkpoint {row['checkpoint']}, lag {row['lag_messages']} messages"
            f" / {row['lag_seconds']} s, failures {row['failures']},"
            f" last error: {row['last_error'] or 'none'}"
        )


@main.command()
@click.argument(
    "doc_type",
    type=click.Choice(DOCUMENT_TYPES),
)
@click.option("--db", "db_url", metavar="URL", help="Database URL; default $HABITAT_DB.")
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Only documents first made by a message with a greater id (a filter, not a"
    " cursor: on PostgreSQL, documents are not made in id order).",
)
def archive(doc_type: str, db_url: str | None, after: int) -> None:
    """Print archive documents as JSON lines, in the order they were first made."""
    try:
        config, url = _db(db_url)
        docs = open_archive(open_store(url, timeout=config.db_timeout))
        for doc in docs.documents(doc_type, after):
            click.echo(json.dumps(doc, ensure_ascii=False))
        docs.close()
    except (ConfigError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option(
    "--bind",
    default="127.0.0.1:8000",
    show_default=True,
    metavar="ADDR",
    help="Where gunicorn listens (host:port or unix:PATH).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="gunicorn worker processes.",
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Message server config (sinks); default: the archive sink alone.",
)
@click.option(
    "--no-server", is_flag=True, help="Serve the gateway alone, without the message server."
)
def serve(bind: str, workers: int, config_file: str | None, no_server: bool) -> None:
    """Run the whole pipeline: gunicorn serving the gateway, and the message server
    as a supervised child process. SIGTERM or SIGINT stops both cleanly."""
    from . import serve as pipeline
    from .config import ServerConfig

    try:
        config = Config.from_env()
        ServerConfig.from_file(config_file)  # fail now, not in the child
        store = open_store(config.db_url, timeout=config.db_timeout)
        store.initialize()  # an unreachable database or a newer schema stops us here
        store.close()
    except (ConfigError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    command = None if no_server else pipeline.server_command(config_file)
    pipeline.serve(bind, workers, command)


@main.command("init-db")
@click.option("--db", "db_url", metavar="URL", help="Database URL; default $HABITAT_DB.")
def init_db(db_url: str | None) -> None:
    """Create the schema or apply pending migrations (also those unsafe at start-up)."""
    try:
        config, url = _db(db_url)
        store = open_store(url, timeout=config.db_timeout)
        store.initialize(at_startup=False)
        open_archive(store).initialize(at_startup=False)
        store.close()
    except (ConfigError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{url}: schema is up to date")


from .client.command import upload  # noqa: E402

main.add_command(upload)
