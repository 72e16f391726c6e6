"""The parser's commands: ``habitat-http payloads add|list|show``, ``parse`` and
``reparse`` (click; registered on the ``habitat-http`` group in cli.py)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import click

from ..config import Config, ConfigError
from ..store import CheckpointStore, NoDatabase, StoreError, open_store
from .config import ConfigurationError, load_configuration
from .documents import ConfigurationDocuments
from .engine import build_parser
from .telem import telem_message

_DB_HELP = "Database URL; default $HABITAT_DB."
#: TELEM messages stored per transaction by ``reparse``.
_CHUNK = 500


class _Db(NamedTuple):
    config: Config
    url: str
    source: str  # "--db" or "HABITAT_DB", named in messages


def _db(db_url: str | None) -> _Db:
    config = Config.from_env()
    if db_url:
        return _Db(replace(config, db_url=db_url), db_url, "--db")
    return _Db(config, config.db_url, "HABITAT_DB")


def _store(db: _Db, read_only: bool) -> CheckpointStore:
    store = open_store(
        db.url,
        synchronous=db.config.sqlite_synchronous,
        timeout=db.config.db_timeout,
        read_only=read_only,
        source=db.source,
    )
    store.initialize()  # read-only: checks, creating nothing; NoDatabase when none
    return store


def _failure(exc: Exception, db: _Db | None) -> click.ClickException:
    if isinstance(exc, NoDatabase) and db is not None:
        return click.ClickException(f"{exc} ({db.source} is {db.url}). Nothing was created.")
    return click.ClickException(str(exc))


def _read_file(path: Path) -> dict[str, Any]:
    """A payload_configuration file, decoded and validated.

    Raises:
        click.ClickException: not readable, not JSON, or a broken rule; the
            message names the file and every bad path.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise click.ClickException(f"{path}: cannot read it as JSON: {e}") from None
    if not isinstance(document, dict):
        raise click.ClickException(f"{path}: a payload_configuration must be a JSON object")
    try:
        load_configuration(document)
    except ConfigurationError as e:
        raise click.ClickException(
            "\n".join(f"{path}: {p or '(document)'}: {m}" for p, m in e.errors)
        ) from None
    return document


def _files(paths: Iterable[str]) -> list[Path]:
    """Each path, or the ``*.json`` files of a directory in name order."""
    out: list[Path] = []
    for name in paths:
        path = Path(name)
        out.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    return out


def _callsigns(document: dict[str, Any]) -> list[str]:
    return sorted({s.callsign for s in load_configuration(document).sentences})


@click.group()
def payloads() -> None:
    """Manage the payload_configuration documents the parser uses.

    The parser chooses, for a sentence's callsign, the newest document (by
    time_created) that has a sentence with that callsign.
    """


@payloads.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--db", "db_url", metavar="URL", help=_DB_HELP)
def add(files: tuple[str, ...], db_url: str | None) -> None:
    """Validate and store payload_configuration documents (JSON files, or
    directories of them).

    Every file is checked first; if any breaks a rule, nothing is stored and each
    error is printed as FILE: PATH: MESSAGE. A document without an _id gets one
    made from its content, so adding the same file again stores nothing new.
    """
    paths = _files(files)
    documents, errors = [], []
    for path in paths:
        try:
            documents.append((path, _read_file(path)))
        except click.ClickException as e:
            errors.append(e.message)
    if errors:
        raise click.ClickException("nothing was stored:\n" + "\n".join(errors))
    db = None
    try:
        db = _db(db_url)
        store = _store(db, read_only=False)
        docs = ConfigurationDocuments(store)
        docs.initialize()
        for path, document in documents:
            added = docs.add(document, time.time())
            state = "added" if added.new else "already stored"
            click.echo(
                f"{path}: {state} as {added.id} ({document['name']};"
                f" callsigns {', '.join(_callsigns(document))})"
            )
        store.close()
    except (ConfigError, StoreError) as exc:
        raise _failure(exc, db) from exc


def _stored(db_url: str | None) -> list[dict[str, Any]]:
    db = None
    try:
        db = _db(db_url)
        store = _store(db, read_only=True)
        documents = ConfigurationDocuments(store).documents()
        store.close()
    except (ConfigError, StoreError) as exc:
        raise _failure(exc, db) from exc
    return documents


@payloads.command("list")
@click.option("--db", "db_url", metavar="URL", help=_DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="The whole documents, as JSON lines.")
def list_(db_url: str | None, as_json: bool) -> None:
    """List the stored documents, oldest time_created first: _id, time_created,
    name and callsigns. Reads only."""
    for document in _stored(db_url):
        if as_json:
            click.echo(json.dumps(document, ensure_ascii=False))
        else:
            click.echo(
                f"{document['_id']}  {document['time_created']}  {document['name']}"
                f"  callsigns: {', '.join(_callsigns(document))}"
            )


@payloads.command("show")
@click.argument("callsign")
@click.option("--db", "db_url", metavar="URL", help=_DB_HELP)
def show(callsign: str, db_url: str | None) -> None:
    """Print the document the parser uses for CALLSIGN (the newest by
    time_created with a sentence of that callsign), as JSON. Reads only."""
    documents = _stored(db_url)
    chosen = build_parser(load_configuration(d) for d in documents).configuration_for(callsign)
    if chosen is None:
        raise click.ClickException(
            f"no payload_configuration has callsign {callsign!r}; its sentences are parsed"
            " in the default mode"
        )
    [document] = [d for d in documents if d["_id"] == chosen.key]
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@click.command()
@click.argument("sentences", nargs=-1, required=True)
@click.option(
    "--payloads",
    "payload_paths",
    multiple=True,
    type=click.Path(exists=True),
    metavar="FILE_OR_DIR",
    help="payload_configuration files (or directories of them) to parse with, instead"
    " of the database's documents. May be given more than once.",
)
@click.option("--db", "db_url", metavar="URL", help=_DB_HELP)
@click.option(
    "--no-default",
    is_flag=True,
    help="Fail for a callsign without a configuration instead of using the default mode.",
)
def parse(
    sentences: tuple[str, ...], payload_paths: tuple[str, ...], db_url: str | None, no_default: bool
) -> None:
    """Parse SENTENCES as the parser sink would, and print each result.

    A parsed sentence prints one JSON line: its fields, with "_parsed" naming the
    payload_configuration (_id, else name) and sentence index used. A sentence
    that does not parse prints the exact reason, and every configuration and
    sentence tried, on stderr; the command then exits with status 1. Quote each
    sentence for the shell: '$$CALLSIGN,...*CHECKSUM'.
    """
    if payload_paths:
        documents = [_read_file(path) for path in _files(payload_paths)]
    else:
        documents = _stored(db_url)
    parser = build_parser((load_configuration(d) for d in documents), default_mode=not no_default)
    failed = 0
    for sentence in sentences:
        result = parser.parse(sentence)
        if result.data is not None:
            parsed: dict[str, Any] = {
                "payload_configuration": result.configuration,
                "configuration_sentence_index": result.sentence_index,
            }
            if result.warnings:
                parsed["warnings"] = list(result.warnings)
            click.echo(json.dumps({**result.data, "_parsed": parsed}, ensure_ascii=False))
            continue
        failed += 1
        click.echo(f"cannot parse {sentence!r}: {result.reason}", err=True)
        for attempt in result.attempts if len(result.attempts) > 1 else ():
            tried = (
                "default mode"
                if attempt.configuration is None
                else f"payload_configuration {attempt.configuration!r}"
                f" sentence {attempt.sentence_index}"
            )
            click.echo(f"  tried {tried}: {attempt.reason}", err=True)
    if failed:
        sys.exit(1)


@click.command()
@click.option("--callsign", required=True, help="The payload whose strings to parse again.")
@click.option("--db", "db_url", metavar="URL", help=_DB_HELP)
def reparse(callsign: str, db_url: str | None) -> None:
    """Parse the archived strings of a payload again with the current documents.

    The strings are those parsed (or failed) as CALLSIGN, and those never parsed
    that start with $$CALLSIGN. Each gets a TELEM message, stored like the parser
    sink's; one already made with the same configuration is not stored again, so
    running this twice changes nothing. The message server's archive sink then
    merges them into the documents.
    """
    from ..archive import open_archive

    db = None
    try:
        db = _db(db_url)
        store = _store(db, read_only=False)
        documents = ConfigurationDocuments(store)
        documents.initialize()
        parser = build_parser(documents.configurations())
        strings = list(open_archive(store).strings_of(callsign))
        now = time.time()
        telems = [telem_message(parser, raw, estimate, now) for raw, estimate in strings]
        new = 0
        for start in range(0, len(telems), _CHUNK):
            new += sum(not s.duplicate for s in store.put_many(telems[start : start + _CHUNK]))
        store.close()
    except (ConfigError, ConfigurationError, StoreError) as exc:
        raise _failure(exc, db) from exc
    failures = sum("_parse_error" in t.data for t in telems)
    click.echo(
        f"{callsign}: {len(telems)} strings parsed again, {failures} did not parse;"
        f" {new} new TELEM messages ({len(telems) - new} were already stored)"
    )
