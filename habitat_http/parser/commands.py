"""The parser's commands: ``habitat-http payloads add|list|show``, ``parse`` and
``reparse`` (click; registered on the ``habitat-http`` group in cli.py)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from ..cli_context import Settings, db_option, pass_settings
from .config import ConfigurationError, load_configuration
from .documents import ConfigurationDocuments
from .engine import build_parser
from .telem import telem_message

#: TELEM messages stored per transaction by ``reparse``.
_CHUNK = 500


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
@db_option
@pass_settings
def add(settings: Settings, files: tuple[str, ...]) -> None:
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
    with settings.errors():
        store = settings.open_store()
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


def _stored(settings: Settings) -> list[dict[str, Any]]:
    with settings.errors():
        store = settings.open_store(read_only=True)
        documents = ConfigurationDocuments(store).documents()
        store.close()
    return documents


@payloads.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="The whole documents, as JSON lines.")
@pass_settings
def list_(settings: Settings, as_json: bool) -> None:
    """List the stored documents, oldest time_created first: _id, time_created,
    name and callsigns. Reads only."""
    for document in _stored(settings):
        if as_json:
            click.echo(json.dumps(document, ensure_ascii=False))
        else:
            click.echo(
                f"{document['_id']}  {document['time_created']}  {document['name']}"
                f"  callsigns: {', '.join(_callsigns(document))}"
            )


@payloads.command("show")
@click.argument("callsign")
@db_option
@pass_settings
def show(settings: Settings, callsign: str) -> None:
    """Print the document the parser uses for CALLSIGN (the newest by
    time_created with a sentence of that callsign), as JSON. Reads only."""
    documents = _stored(settings)
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
@db_option
@click.option(
    "--no-default",
    is_flag=True,
    help="Fail for a callsign without a configuration instead of using the default mode.",
)
@pass_settings
def parse(
    settings: Settings, sentences: tuple[str, ...], payload_paths: tuple[str, ...], no_default: bool
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
        documents = _stored(settings)
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
@db_option
@pass_settings
def reparse(settings: Settings, callsign: str) -> None:
    """Parse the archived strings of a payload again with the current documents.

    The strings are those parsed (or failed) as CALLSIGN, and those never parsed
    that start with $$CALLSIGN. Each gets a TELEM message, stored like the parser
    sink's; one already made with the same configuration is not stored again, so
    running this twice changes nothing. The message server's archive sink then
    merges them into the documents.
    """
    from ..archive import open_archive

    with settings.errors(ConfigurationError):
        store = settings.open_store()
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
    failures = sum("_parse_error" in t.data for t in telems)
    click.echo(
        f"{callsign}: {len(telems)} strings parsed again, {failures} did not parse;"
        f" {new} new TELEM messages ({len(telems) - new} were already stored)"
    )
