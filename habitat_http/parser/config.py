"""payload_configuration documents: validation in habitat's shape.

Pure code with no I/O. A payload_configuration describes how one payload's
sentences are parsed. The shape is habitat's (ukhas/habitat
``couchdb/schemas/payload_configuration.json``), so real habitat documents load
unchanged; keys this module does not know are kept, as habitat's schema allows::

    {"type": "payload_configuration", "name": "AMSTG", "time_created": "2014-...Z",
     "metadata": {...}, "transmissions": [...],
     "sentences": [{"protocol": "UKHAS", "callsign": "AMSTG", "checksum": "crc16-ccitt",
                    "fields": [{"name": "sentence_id", "sensor": "base.ascii_int"}, ...],
                    "filters": {"intermediate": [...], "post": [...]}}]}

On top of the schema, the rules of habitat's UKHAS parser module are checked when
a document comes in, not when a sentence fails: the checksum is one of
:data:`~habitat_http.parser.checksums.ALGORITHMS`; a sentence has at least one
field; field names are unique, do not start with ``_`` and are not ``payload``;
a field names a known sensor; a ``stdtelem.coordinate`` field has a format; and
every filter is one this parser runs, with valid settings. Every failure names
its dotted path, e.g. ``sentences.0.fields.3.format``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)

from . import filters as filter_rules
from .checksums import ALGORITHMS
from .sensors import SENSOR_NAMES, SensorError, coordinate_format_kind

Checksum = Literal["crc16-ccitt", "xor", "fletcher-16", "fletcher-16-256", "none"]
assert set(Checksum.__args__) == set(ALGORITHMS)  # type: ignore[attr-defined]


class _RuleError(ValueError):
    """A rule broken below the model that checks it; *subpath* says where."""

    def __init__(self, subpath: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.subpath = subpath
        self.message = message


class ConfigurationError(ValueError):
    """A payload_configuration document breaks a rule.

    Attributes:
        errors: ``(path, message)`` for every broken rule, e.g.
            ``("sentences.0.fields.3.format", "a stdtelem.coordinate field needs a format")``.
        path: the first error's path (``""`` for the document itself).

    A gateway or CLI reports ``str(error)``: ``"<path>: <message>"`` per error.
    An HTTP front end would answer 400 with that text.
    """

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        self.path = errors[0][0]
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in errors))


class FieldConfig(BaseModel):
    """One field of a sentence, in order after the callsign.

    Attributes:
        name: the key of the parsed value, e.g. ``altitude``.
        sensor: one of :data:`~habitat_http.parser.sensors.SENSOR_NAMES`.
        format: for ``stdtelem.coordinate``, ``dd.dddd`` or ``ddmm.mmmm`` (required).
        base: for ``base.ascii_int``, the number base (2 .. 36, default 10).
        optional: for ``base.ascii_int`` / ``base.ascii_float``, empty text gives None.
        expect: for ``base.constant``, the text the field must hold (default empty).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    sensor: str
    format: str | None = None
    base: StrictInt = Field(default=10, ge=2, le=36)
    optional: StrictBool = False
    expect: str = ""

    @model_validator(mode="after")
    def _rules(self) -> FieldConfig:
        if not self.name:
            raise _RuleError(("name",), "a field name must not be empty")
        if self.name.startswith("_"):
            raise _RuleError(("name",), f"field name {self.name!r} must not start with '_'")
        if self.name == "payload":
            raise _RuleError(("name",), "field name 'payload' is reserved for the callsign")
        if self.sensor not in SENSOR_NAMES:
            known = ", ".join(sorted(SENSOR_NAMES))
            raise _RuleError(("sensor",), f"unknown sensor {self.sensor!r} (known: {known})")
        if self.sensor == "stdtelem.coordinate":
            if self.format is None:
                raise _RuleError(("format",), "a stdtelem.coordinate field needs a format")
            try:
                coordinate_format_kind(self.format)
            except SensorError as e:
                raise _RuleError(("format",), str(e)) from None
        return self


class FilterConfig(BaseModel):
    """One filter: ``{"type": "normal", "filter": "common.numeric_scale", ...settings}``.

    The settings sit beside ``type`` and ``filter``, as in habitat. ``hotfix``
    filters (code in the document) are refused: this parser runs no code from
    documents.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    type: Literal["normal"]
    filter: str

    def settings(self) -> dict[str, Any]:
        """The whole filter object as a plain dict (``type``, ``filter`` and settings)."""
        return self.model_dump()


class FiltersConfig(BaseModel):
    """Filters of a sentence: ``intermediate`` run on the sentence text before
    parsing, ``post`` on the parsed fields (habitat's two stages)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intermediate: tuple[FilterConfig, ...] = ()
    post: tuple[FilterConfig, ...] = ()

    @model_validator(mode="after")
    def _known(self) -> FiltersConfig:
        for stage, specs in (("intermediate", self.intermediate), ("post", self.post)):
            for i, spec in enumerate(specs):
                try:
                    filter_rules.check(stage, spec.settings())
                except filter_rules.FilterConfigError as e:
                    raise _RuleError((stage, i, *e.subpath), str(e)) from None
        return self


class SentenceConfig(BaseModel):
    """One sentence format of a payload.

    Attributes:
        protocol: ``UKHAS`` (the only protocol parsed here).
        callsign: the first field of the sentence; chooses this configuration.
        checksum: one of ``crc16-ccitt``, ``xor``, ``fletcher-16``,
            ``fletcher-16-256``, ``none``.
        fields: the fields after the callsign, in order; at least one.
        filters: optional intermediate and post filters.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    protocol: Literal["UKHAS"]
    callsign: str = Field(min_length=1)
    checksum: Checksum
    fields: tuple[FieldConfig, ...] = Field(min_length=1)
    filters: FiltersConfig = FiltersConfig()

    @model_validator(mode="after")
    def _unique_names(self) -> SentenceConfig:
        seen: set[str] = set()
        for i, field in enumerate(self.fields):
            if field.name in seen:
                raise _RuleError(("fields", i, "name"), f"field name {field.name!r} is repeated")
            seen.add(field.name)
        return self


class PayloadConfiguration(BaseModel):
    """A payload_configuration document (habitat's shape; unknown keys kept).

    Attributes:
        id: the document's ``_id`` when it has one (the store's key for it).
        name: the payload's name; need not be a callsign.
        time_created: when the document was made (RFC 3339 with offset); the
            newest document with a sentence of a callsign is the one used.
        metadata: free-form information about the payload.
        transmissions: radio settings (frequency in Hz, mode, modulation, ...),
            kept as given.
        sentences: the sentence formats, at least one.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    id: str | None = Field(default=None, alias="_id")
    type: Literal["payload_configuration"]
    name: str
    time_created: AwareDatetime
    metadata: dict[str, Any] | None = None
    transmissions: tuple[dict[str, Any], ...] = ()
    sentences: tuple[SentenceConfig, ...] = Field(min_length=1)

    @property
    def key(self) -> str:
        """How results name this document: its ``_id``, else its ``name``."""
        return self.id if self.id is not None else self.name


def _path(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in loc)


def load_configuration(document: Mapping[str, Any]) -> PayloadConfiguration:
    """Validate one payload_configuration document (a decoded JSON object).

    Raises:
        ConfigurationError: the document breaks a rule; every error names its
            dotted path (see the module docstring). A client sending it would get a 400.
    """
    try:
        return PayloadConfiguration.model_validate(document)
    except ValidationError as e:
        found: list[tuple[tuple[str | int, ...], str]] = []
        for err in e.errors():
            loc = tuple(err["loc"])
            cause = err.get("ctx", {}).get("error")
            if isinstance(cause, _RuleError):
                found.append((loc + cause.subpath, cause.message))
            elif err["type"] == "too_short":
                found.append((loc, f"needs at least {err['ctx']['min_length']} item"))
            else:
                found.append((loc, err["msg"]))
        # A list whose item failed is also reported as too short: keep the item's error.
        errors = [
            (_path(loc), message)
            for loc, message in found
            if not any(other[: len(loc)] == loc and len(other) > len(loc) for other, _ in found)
        ]
        raise ConfigurationError(errors) from None


def load_configuration_json(text: str | bytes) -> PayloadConfiguration:
    """Parse JSON text and validate it with :func:`load_configuration`.

    Raises:
        ConfigurationError: the text is not a JSON object (path ``""``), or the
            document breaks a rule.
    """
    try:
        document = json.loads(text)
    except ValueError as e:
        raise ConfigurationError([("", f"not JSON: {e}")]) from None
    if not isinstance(document, dict):
        raise ConfigurationError([("", "a payload_configuration must be a JSON object")])
    return load_configuration(document)
