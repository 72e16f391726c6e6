"""The ``habitat-http`` command (click).

The group puts the settings in ``ctx.obj``; each command takes them with
``pass_settings`` and ``--db`` with ``db_option`` (see habitat_http/cli_context.py,
also for commands of other modules added with ``main.add_command``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

import click

from .archive import DOCUMENT_TYPES, open_archive
from .cli_context import Settings, db_option, pass_settings
from .config import ServerConfig
from .store import StoreError

#: The keys ``habitat-http messages`` prints, in this order.
MESSAGE_KEYS = ("id", "callsign", "type", "time_created", "time_uploaded", "ip", "data")


@click.group()
@click.version_option(package_name="habitat_http")
@click.pass_context
def main(ctx: click.Context) -> None:
    """habitat_http: the message gateway of the balloon tracking network."""
    ctx.ensure_object(Settings)  # the settings, read when a command first asks


F = TypeVar("F", bound=Callable[..., Any])


def sinks_config_option(help_text: str) -> Callable[[F], F]:
    """The ``--config FILE`` option naming the message server's sinks (TOML)."""
    return click.option(
        "--config",
        "config_file",
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help=help_text,
    )


@main.command()
@db_option
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
@pass_settings
def messages(settings: Settings, after: int, limit: int | None) -> None:
    """Print stored messages as JSON lines, in id order.

    Each line holds id, callsign, type, time_created, time_uploaded (UNIX seconds,
    clock-corrected), ip and data. Reads only: creates no database.
    """
    with settings.errors():
        store = settings.open_store(read_only=True)
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
@db_option
@sinks_config_option(
    "The message server's config: its sinks are loaded and checked before serving."
)
@pass_settings
def scgi(
    settings: Settings,
    path: str,
    mode: str,
    threads: int,
    prefix: str | None,
    config_file: str | None,
) -> None:
    """Serve the gateway over SCGI on a Unix socket (flup's threaded server).

    For Apache's mod_proxy_scgi or nginx's scgi_pass in front. Configured from the
    same HABITAT_* variables as the HTTP path. Stops gracefully on SIGTERM or SIGINT.
    Exits at once on what waiting cannot fix (a bad URL, a schema newer than this
    code, a migration that needs init-db, a sink that cannot be loaded); a
    database that is busy or down at start only gets 503s until it is back.
    """
    from .app import create_app
    from .scgi import SCGIStartError, serve_scgi
    from .store import prepare

    _log_to_stderr()
    with settings.errors(SCGIStartError):
        config = settings.config
        if config_file is not None:
            _load_sinks(ServerConfig.from_file(config_file), config.db_url)
        app = create_app(config)
        _warn_unavailable(prepare(app.store))
        serve_scgi(
            app.wsgi_app,  # no ProxyFix: the front server sets REMOTE_ADDR
            path,
            mode=_octal(mode),
            threads=threads,
            timeout=config.scgi_timeout,
            prefix=config.scgi_prefix if prefix is None else prefix,
        )


def _log_to_stderr() -> None:
    """Log INFO and above to stderr, for the commands that run until stopped."""
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _warn_unavailable(problem: StoreError | None) -> None:
    if problem is not None:
        import logging

        logging.getLogger("habitat_http").warning(
            "the database is unavailable at start-up (%s); answering 503 until it is back",
            problem,
        )


def _load_sinks(server_config: ServerConfig, url: str) -> None:
    """Load and check every sink of ``server_config`` (and discard them).

    Raises:
        SinkLoadError: one cannot be loaded; the message says which and why.
    """
    from .message_server import load_sinks

    load_sinks(server_config, url)


@main.command()
@db_option
@sinks_config_option("TOML file naming the sinks; default: the archive and parser sinks.")
@pass_settings
def server(settings: Settings, config_file: str | None) -> None:
    """Run the message server: deliver stored messages to the sinks, until SIGTERM.

    Each sink gets the messages of its types in commit order, at least once, with
    a durable checkpoint; see `habitat-http status`. Exits at once when a sink
    cannot be loaded or the schema does not fit; waits for a database that is
    busy or down.
    """
    import signal
    import threading

    from .config import supervisor_pid
    from .message_server import MessageServer, load_sinks
    from .parent import exit_with_parent
    from .store import prepare

    _log_to_stderr()
    with settings.errors():
        server_config = ServerConfig.from_file(config_file)
        store = settings.open_store()
        sinks = load_sinks(server_config, settings.config.db_url, store)
        _warn_unavailable(prepare(store))
        parent = supervisor_pid()  # set when run by `habitat-http serve`
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    exit_with_parent(parent)
    with settings.errors():
        MessageServer(store, sinks, server_config).run(stop)


@main.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per sink.")
@click.option(
    "--stale-after",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Report a message server whose last heartbeat is older than this as DOWN.",
)
@pass_settings
def status(settings: Settings, as_json: bool, stale_after: float) -> None:
    """Show when each message server was last alive (DOWN when its heartbeat is
    stale), and each sink's checkpoint, lag (messages and seconds) and last error.

    Exits 0 when a message server is alive and no sink is failing, and 1 otherwise
    (or when the database cannot be read), so that cron or a monitor can use it.
    Reads only: creates no database.
    """
    import time

    from . import message_server

    with settings.errors():
        store = settings.open_store(read_only=True)
        try:
            now = time.time()
            beats = message_server.servers(store, now, stale_after)
            rows = message_server.status(store, now, stale_after)
        finally:
            store.close()
    problems = [] if any(b["alive"] for b in beats) else ["no message server is alive"]
    problems += [f"sink {r['sink']} is failing" for r in rows if r["failures"]]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
    else:
        _print_status(beats, rows)
    if problems:
        click.echo(f"unhealthy: {'; '.join(problems)}", err=True)
        sys.exit(1)


def _print_status(beats: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    if not beats:
        click.echo("message server: DOWN, never seen (no heartbeat in this database)")
    for beat in beats:
        state = "alive" if beat["alive"] else "DOWN"
        click.echo(
            f"message server {beat['server']}: {state}, last alive"
            f" {beat['seconds_since_beat']} s ago"
        )
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
@db_option
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Only documents first made by a message with a greater id (a filter, not a"
    " cursor: on PostgreSQL, documents are not made in id order).",
)
@pass_settings
def archive(settings: Settings, doc_type: str, after: int) -> None:
    """Print archive documents as JSON lines, in the order they were first made.

    Reads only: creates no database.
    """
    with settings.errors():
        docs = open_archive(settings.open_store(read_only=True))
        for doc in docs.documents(doc_type, after):
            click.echo(json.dumps(doc, ensure_ascii=False))
        docs.close()


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
@db_option
@sinks_config_option("Message server config (sinks); default: the archive and parser sinks.")
@click.option(
    "--no-server", is_flag=True, help="Serve the gateway alone, without the message server."
)
@click.option(
    "--max-restart-delay",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Longest wait before restarting a message server that died (the wait doubles"
    " from 1 s with each death in a row).",
)
@pass_settings
def serve(
    settings: Settings,
    bind: str,
    workers: int,
    config_file: str | None,
    no_server: bool,
    max_restart_delay: float,
) -> None:
    """Run the whole pipeline: gunicorn serving the gateway, and the message server
    as a supervised child process. SIGTERM or SIGINT stops both cleanly.

    Exits at once on what waiting cannot fix (a bad URL, a schema newer than this
    code, a migration that needs init-db, a sink that cannot be loaded); a
    database that is busy or down at start only gets 503s until it is back.
    """
    from .config import multiprocess_metrics_dir

    # Before prometheus_client is imported (by the app, below): the workers add up
    # their metrics through this directory, and the settings read below name it.
    multiprocess_metrics_dir()

    from . import pipeline
    from .store import prepare

    _log_to_stderr()  # the supervisor's restarts go to the log too
    with settings.errors():
        config = settings.config
        # Fail now, not in the child:
        _load_sinks(ServerConfig.from_file(config_file), config.db_url)
        store = settings.open_store()
        _warn_unavailable(prepare(store))
        store.close()
    command = None if no_server else pipeline.server_command(config_file)
    pipeline.run_pipeline(bind, workers, command, max_restart_delay, config)


@main.command("init-db")
@db_option
@pass_settings
def init_db(settings: Settings) -> None:
    """Create the schema or apply pending migrations (also those unsafe at start-up)."""
    with settings.errors():
        store = settings.open_store()
        store.initialize(at_startup=False)
        open_archive(store).initialize(at_startup=False)
        ConfigurationDocuments(store).initialize(at_startup=False)
        store.close()
    click.echo(f"{settings.config.db_url}: schema is up to date")


from .client.command import upload  # noqa: E402
from .parser.commands import parse, payloads, reparse  # noqa: E402
from .parser.documents import ConfigurationDocuments  # noqa: E402

main.add_command(upload)
for _command in (payloads, parse, reparse):
    main.add_command(_command)
