"""Unit tests of the UKHAS parser: checksums, sensors, filters, framing,
payload_configuration validation and the choice of configuration."""

from __future__ import annotations

import binascii
import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from habitat_http.parser import (
    ConfigurationError,
    build_parser,
    checksums,
    filters,
    load_configuration,
    load_configuration_json,
    parse,
    sensors,
)
from habitat_http.parser.sensors import SensorError
from habitat_http.parser.ukhas import SentenceError, frame


def doc(*sentences: dict[str, Any], time_created: str = "2014-06-01T10:00:00Z", **kw: Any) -> Any:
    document = {
        "type": "payload_configuration",
        "name": kw.pop("name", "TEST"),
        "time_created": time_created,
        "sentences": list(sentences),
        **kw,
    }
    return document


def sentence(callsign: str = "TEST", checksum: str = "crc16-ccitt", **kw: Any) -> dict[str, Any]:
    return {
        "protocol": "UKHAS",
        "callsign": callsign,
        "checksum": checksum,
        "fields": kw.pop(
            "fields",
            [
                {"name": "sentence_id", "sensor": "base.ascii_int"},
                {"name": "time", "sensor": "stdtelem.time"},
                {"name": "latitude", "sensor": "stdtelem.coordinate", "format": "dd.dddd"},
                {"name": "longitude", "sensor": "stdtelem.coordinate", "format": "dd.dddd"},
                {"name": "altitude", "sensor": "base.ascii_int"},
            ],
        ),
        **kw,
    }


def crc(body: str) -> str:
    return f"$${body}*{checksums.crc16_ccitt(body.encode())}"


# --- checksums -----------------------------------------------------------------


def test_checksums_match_habitat_and_the_standard_library() -> None:
    # habitat's own doctests (habitat/utils/checksums.py).
    assert checksums.crc16_ccitt(b"hello,world") == "E408"
    assert checksums.xor(b"hello,world") == "2C"
    assert checksums.fletcher16(b"hello,world") == "6C62"
    assert checksums.fletcher16(b"hello,world", 256) == "6848"
    body = b"SP,2,08:18:20,4725.7217,01910.7650,2143"  # a real XOR sentence: *20
    assert checksums.xor(body) == "20"
    for data in (b"", b"a", b"AMSTG,27,08:33:27,525776815,-19651728,139,6,3,6"):
        assert checksums.crc16_ccitt(data) == f"{binascii.crc_hqx(data, 0xFFFF):04X}"
    assert checksums.crc16_ccitt(b"AMSTG,27,08:33:27,525776815,-19651728,139,6,3,6") == "B707"
    assert checksums.ALGORITHMS["fletcher-16-256"](b"hello,world") == "6848"
    assert checksums.ALGORITHMS["none"](b"anything") == ""


def test_fletcher16_moduli_differ_once_the_sums_pass_255() -> None:
    data = b"\xff\x01" * 3
    assert checksums.fletcher16(data) != checksums.fletcher16(data, 256)
    assert checksums.fletcher16(b"\x01\x02") == checksums.fletcher16(b"\x01\x02", 256) == "0304"


# --- sensors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12:34:56", "12:34:56"), ("123456", "12:34:56"), ("12:34", "12:34:00"), ("1234", "12:34:00")],
)
def test_time_accepts_habitats_four_shapes(text: str, expected: str) -> None:
    assert sensors.time(text) == expected


@pytest.mark.parametrize(
    "text", ["24:00:00", "12:60:00", "12:00:62", "1:2:3", "12-34-56", "12:3a:00", "", "-24097"]
)
def test_time_refuses_other_text(text: str) -> None:
    with pytest.raises(SensorError):
        sensors.time(text)


def test_decimal_degree_coordinates() -> None:
    lat = sensors.make_coordinate("dd.dddd", "latitude")
    lon = sensors.make_coordinate("dd.dddd", "longitude")
    assert lat("+50.821541") == 50.821541
    assert lon(" 0.730013") == 0.730013  # MAX pads with a space; habitat's float() took it
    assert lon("-91.5") == -91.5
    for bad in ("91", "-90.0001", "nan", "inf", "1_0", "", "N52.1"):
        with pytest.raises(SensorError):
            lat(bad)
    with pytest.raises(SensorError, match="180"):
        lon("180.5")


def test_degrees_and_minutes_coordinates_round_like_habitat() -> None:
    lat = sensors.make_coordinate("ddmm.mmmm", "latitude")
    lon = sensors.make_coordinate("dddmm.mmmm", "longitude")
    # Real EDUPIC10 and SP values with habitat's parsed output.
    assert lat("5232.57415") == 52.5429025
    assert lon("-00152.58697") == -1.8764495
    assert lon("01910.6882") == 19.1781367  # 4 minute decimals -> 7 places
    assert lat("-0030.0") == -0.5  # the sign of "-00" degrees is kept
    for bad in ("5260.0", "5275.1", "5232", "5.1", "52.32.1", "9100.0", "ab12.5"):
        with pytest.raises(SensorError):
            lat(bad)


def test_coordinate_formats_follow_habitats_shapes() -> None:
    assert sensors.coordinate_format_kind("d.dddddd") == "dd"
    assert sensors.coordinate_format_kind("ddmm.mm") == "ddmm"
    for bad in ("dd.mm", "ddmm", "xx.dddd", "dddd.ddddddd"):
        with pytest.raises(SensorError):
            sensors.coordinate_format_kind(bad)


def test_rounding_takes_halves_away_from_zero_as_python_2_did() -> None:
    assert sensors.round_half_away(17.25, 1) == 17.3  # Python 3's round gives 17.2
    assert sensors.round_half_away(-17.25, 1) == -17.3
    assert sensors.round_half_away(2.675, 2) == 2.67  # 2.675 is 2.67499999... in binary
    assert sensors.round_half_away(1250.0, -2) == 1300.0


def test_ascii_int_float_string_constant() -> None:
    assert sensors.make_ascii_int()("08") == 8
    assert sensors.make_ascii_int()(" 1") == 1
    assert sensors.make_ascii_int(base=16)("1D70") == 0x1D70
    assert sensors.make_ascii_int(optional=True)("") is None
    for bad in ("", "1.5", "1_0", "0x10"):
        with pytest.raises(SensorError):
            sensors.make_ascii_int()(bad)
    assert sensors.make_ascii_float()("-1275.5") == -1275.5
    assert sensors.make_ascii_float(optional=True)("") is None
    for bad in ("nan", "inf", "-inf", "", "1_0.5"):
        with pytest.raises(SensorError):
            sensors.make_ascii_float()(bad)
    assert sensors.string("29b") == "29b"
    assert sensors.make_constant("N")("N") is None
    with pytest.raises(SensorError, match="expected 'N'"):
        sensors.make_constant("N")("S")


# --- framing -------------------------------------------------------------------


def test_frame_normalises_dollars_line_endings_and_splits_the_checksum() -> None:
    body = "HORUS,4,07:24:17,0.000000,0.000000,0,0,0,1304,20"
    for raw in (f"$$$$${body}*938B", f"$${body}*938b\n", f"$$${body}*938B\r\n"):
        framed = frame(raw.encode())
        assert framed.body == body and framed.callsign == "HORUS"
        assert framed.checksum in ("938B", "938b")
        assert framed.text == f"$${body}*{framed.checksum}"
    assert frame("$$X,1").checksum is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"$X,1*00", "does not start with '\\$\\$'"),
        (b"X,1*00", "does not start"),
        ("$$X,1,caf\u00e9*00".encode(), "not ASCII"),
        (b"$$X,1\t2*00", "not printable"),
        (b"$$X,1*5", "not 2 or 4 hex digits"),
        (b"$$X,1*ABC", "not 2 or 4 hex digits"),
        (b"$$X,1*GG", "not 2 or 4 hex digits"),
        (b"$$*ABCD", "nothing between"),
        (b"$$X Y,1*00", "not a callsign"),
        (b"$$X,1*00\n\n", "not 2 or 4 hex digits"),
    ],
)
def test_frame_refuses_what_is_not_a_ukhas_sentence(raw: bytes, reason: str) -> None:
    with pytest.raises(SentenceError, match=reason):
        frame(raw)


def test_the_checksum_is_after_the_last_star() -> None:
    body = "X,1,a*b"
    framed = frame(crc(body))
    assert framed.body == body


# --- configuration validation --------------------------------------------------


def errors_of(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigurationError) as e:
        load_configuration(document)
    return e.value.errors


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (lambda s: s.update(checksum="crc32"), "sentences.0.checksum", "crc16-ccitt"),
        (lambda s: s.update(fields=[]), "sentences.0.fields", "at least 1"),
        (lambda s: s.update(protocol="simple_binary"), "sentences.0.protocol", "UKHAS"),
        (lambda s: s["fields"][4].update(name="time"), "sentences.0.fields.4.name", "repeated"),
        (lambda s: s["fields"][0].update(name="_id"), "sentences.0.fields.0.name", "'_'"),
        (lambda s: s["fields"][0].update(name="payload"), "sentences.0.fields.0.name", "reserved"),
        (lambda s: s["fields"][2].pop("format"), "sentences.0.fields.2.format", "needs a format"),
        (lambda s: s["fields"][3].update(format="dd.mm"), "sentences.0.fields.3.format", "neither"),
        (
            lambda s: s["fields"][1].update(sensor="stdtelem.date"),
            "sentences.0.fields.1.sensor",
            "unknown sensor",
        ),
        (lambda s: s["fields"][0].update(base=40), "sentences.0.fields.0.base", "36"),
        (lambda s: s["fields"][0].pop("sensor"), "sentences.0.fields.0.sensor", "required"),
        (
            lambda s: s.update(filters={"post": [{"type": "normal", "filter": "common.bogus"}]}),
            "sentences.0.filters.post.0.filter",
            "unknown post filter",
        ),
        (
            lambda s: s.update(
                filters={
                    "post": [
                        {"type": "normal", "filter": "common.numeric_scale", "source": "altitude"}
                    ]
                }
            ),
            "sentences.0.filters.post.0.factor",
            "number",
        ),
        (
            lambda s: s.update(
                filters={
                    "post": [
                        {
                            "type": "normal",
                            "filter": "common.numeric_scale",
                            "source": "altitude",
                            "factor": 2,
                            "destination": "_x",
                        }
                    ]
                }
            ),
            "sentences.0.filters.post.0.destination",
            "'_'",
        ),
        (
            lambda s: s.update(filters={"post": [{"type": "hotfix", "code": "return data"}]}),
            "sentences.0.filters.post.0.type",
            "normal",
        ),
        (
            lambda s: s.update(
                filters={"intermediate": [{"type": "normal", "filter": "common.invalid_always"}]}
            ),
            "sentences.0.filters.intermediate.0.filter",
            "unknown intermediate filter",
        ),
        (
            lambda s: s.update(
                filters={"post": [{"type": "normal", "filter": "common.invalid_gps_lock"}]}
            ),
            "sentences.0.filters.post.0.ok",
            "list",
        ),
    ],
)
def test_configuration_errors_name_the_bad_path(change: Any, path: str, words: str) -> None:
    s = sentence()
    change(s)
    errors = errors_of(doc(s))
    assert errors[0][0] == path, errors
    assert words in errors[0][1], errors


def test_configuration_document_level_errors() -> None:
    assert errors_of(doc())[0][0] == "sentences"
    assert errors_of(doc(sentence(), time_created="2014-06-01T10:00:00"))[0][0] == "time_created"
    assert errors_of({**doc(sentence()), "type": "flight"})[0][0] == "type"
    both = errors_of(doc(sentence(checksum="crc32"), sentence(fields=[])))
    assert [p for p, _ in both] == ["sentences.0.checksum", "sentences.1.fields"]
    with pytest.raises(ConfigurationError, match="JSON object"):
        load_configuration_json("[1]")
    with pytest.raises(ConfigurationError, match="not JSON"):
        load_configuration_json("{")
    message = str(ConfigurationError([("sentences.0.checksum", "bad")]))
    assert message == "sentences.0.checksum: bad"


def test_habitat_documents_with_extra_keys_load_unchanged() -> None:
    s = sentence(description="main RTTY sentence")
    s["fields"][4]["units"] = "m"
    document = doc(
        s,
        _id="0123abcd",
        _rev="3-abc",
        metadata={"location": "Churchill College"},
        transmissions=[{"frequency": 434075000, "mode": "USB", "modulation": "RTTY", "baud": 50}],
    )
    config = load_configuration(document)
    assert config.key == "0123abcd" and config.id == "0123abcd"
    assert config.sentences[0].fields[4].model_extra == {"units": "m"}
    assert config.transmissions[0]["frequency"] == 434075000
    assert load_configuration(doc(sentence())).key == "TEST"


# --- filters -------------------------------------------------------------------


def parsed_with(filters_doc: dict[str, Any], raw: str, **kw: Any) -> Any:
    parser = build_parser([load_configuration(doc(sentence(filters=filters_doc, **kw)))])
    return parser.parse(raw)


def test_numeric_scale_factor_offset_destination_and_significant_figures() -> None:
    post = [
        {
            "type": "normal",
            "filter": "common.numeric_scale",
            "source": "altitude",
            "factor": 0.001,
            "destination": "altitude_km",
            "round": 3,
        },
        {
            "type": "normal",
            "filter": "common.numeric_scale",
            "source": "sentence_id",
            "factor": 2,
            "offset": -1.5,
        },
    ]
    result = parsed_with({"post": post}, crc("TEST,5,12:00:00,52.0,-1.0,12345"))
    assert result.ok, result.reason
    assert result.data["altitude"] == 12345 and result.data["altitude_km"] == 12.3
    assert result.data["sentence_id"] == 8.5
    assert filters.round_significant(3.027, 3) == 3.03
    assert filters.round_significant(17.25, 3) == 17.3  # WG3's real case: habitat said 17.3
    assert filters.round_significant(0.0, 3) == 0.0


def test_a_filter_that_cannot_run_is_skipped_with_a_warning() -> None:
    post = [{"type": "normal", "filter": "common.numeric_scale", "source": "battery", "factor": 2}]
    result = parsed_with({"post": post}, crc("TEST,5,12:00:00,52.0,-1.0,100"))
    assert result.ok and "battery" not in result.data
    assert result.warnings == ("post filter 0 (common.numeric_scale) skipped: KeyError: 'battery'",)


def test_invalid_filters_set_fix_invalid() -> None:
    zero = {"post": [{"type": "normal", "filter": "common.invalid_location_zero"}]}
    assert parsed_with(zero, crc("TEST,1,00:00:00,0.000,0.0000,0")).data["_fix_invalid"] is True
    assert "_fix_invalid" not in parsed_with(zero, crc("TEST,1,00:00:00,0.0,1.0,0")).data
    always = {"post": [{"type": "normal", "filter": "common.invalid_always"}]}
    assert parsed_with(always, crc("TEST,1,00:00:00,52.0,1.0,0")).data["_fix_invalid"] is True
    fields = [*sentence()["fields"], {"name": "gps_lock", "sensor": "base.ascii_int"}]
    lock = {"post": [{"type": "normal", "filter": "common.invalid_gps_lock", "ok": [3]}]}
    good = parsed_with(lock, crc("TEST,1,00:00:00,52.0,1.0,0,3"), fields=fields)
    bad = parsed_with(lock, crc("TEST,1,00:00:00,52.0,1.0,0,1"), fields=fields)
    assert "_fix_invalid" not in good.data and bad.data["_fix_invalid"] is True


def test_simple_map_looks_up_numbers_by_their_text() -> None:
    fields = [*sentence()["fields"], {"name": "mode", "sensor": "base.ascii_int"}]
    post = [
        {
            "type": "normal",
            "filter": "common.simple_map",
            "source": "mode",
            "destination": "mode_name",
            "map": {"1": "ascent", "2": "descent"},
        }
    ]
    result = parsed_with({"post": post}, crc("TEST,1,00:00:00,52.0,1.0,0,2"), fields=fields)
    assert result.data["mode_name"] == "descent"


def test_intermediate_filters_fix_the_text_and_its_checksum() -> None:
    # habitat's doctest for semicolons_to_commas.
    fix = filters.build_intermediate({"type": "normal", "filter": "common.semicolons_to_commas"})
    assert fix("$$testpayload,1,2,3;4;5;6*8A24") == "$$testpayload,1,2,3,4,5,6*888F"
    assert fix("$$testpayload,1,2,3;4;5;6*0000") == "$$testpayload,1,2,3,4,5,6*0000"  # stays wrong
    pad = filters.build_intermediate({"type": "normal", "filter": "common.zero_pad_times"})
    assert pad(crc("TEST,1,9:5:3,52.0,1.0,0")) == crc("TEST,1,09:05:03,52.0,1.0,0")
    inter = {"intermediate": [{"type": "normal", "filter": "common.semicolons_to_commas"}]}
    result = parsed_with(inter, crc("TEST,1;00:00:01;52.0;1.0;7"))
    assert result.ok and result.data["altitude"] == 7
    assert result.data["_sentence"] == crc("TEST,1,00:00:01,52.0,1.0,7")


# --- choosing a configuration, reasons for failure ----------------------------


def test_the_newest_document_for_a_callsign_is_used() -> None:
    old = load_configuration(doc(sentence(), name="old", time_created="2014-01-01T00:00:00Z"))
    new_fields = [{"name": "n", "sensor": "base.ascii_int"}]
    new = load_configuration(
        doc(sentence(fields=new_fields), name="new", time_created="2014-02-01T00:00:00+01:00")
    )
    raw = crc("TEST,42")
    for order in ([old, new], [new, old]):
        result = build_parser(order).parse(raw)
        assert result.ok and result.configuration == "new" and result.data["n"] == 42
    tie = load_configuration(doc(sentence(), name="tie", time_created="2014-02-01T00:00:00+01:00"))
    assert build_parser([new, tie]).configuration_for("TEST").name == "tie"
    assert build_parser([tie, new]).configuration_for("TEST").name == "new"


def test_several_sentence_formats_are_tried_in_order() -> None:
    short = sentence(fields=[{"name": "n", "sensor": "base.ascii_int"}])
    xor = sentence(checksum="xor")
    other = sentence(callsign="OTHER")
    config = load_configuration(doc(other, short, xor, name="multi"))
    body = "TEST,1,00:00:01,52.0,1.0,7"
    result = build_parser([config]).parse(f"$${body}*{checksums.xor(body.encode())}")
    assert result.ok and result.sentence_index == 2 and result.configuration == "multi"
    assert [(a.configuration, a.sentence_index) for a in result.attempts] == [("multi", 1)]
    assert "crc16-ccitt has 4" in result.attempts[0].reason


def test_a_failure_says_which_configuration_and_sentence_failed_and_why() -> None:
    config = load_configuration(doc(sentence(), sentence(checksum="xor"), _id="cfg1"))
    result = build_parser([config]).parse(crc("TEST,1,00:00:01,52.0,1.0"))
    assert not result.ok
    error = result.parse_error()
    assert error == {
        "callsign": "TEST",
        "reason": "none of the 2 sentence formats of 'cfg1' fits",
        "attempts": [
            {
                "configuration": "cfg1",
                "sentence_index": 0,
                "reason": "the sentence has 4 fields after the callsign; the configuration has 5",
            },
            {
                "configuration": "cfg1",
                "sentence_index": 1,
                "reason": "the checksum "
                + checksums.crc16_ccitt(b"TEST,1,00:00:01,52.0,1.0")
                + " has 4 digits; xor has 2",
            },
        ],
    }
    one = build_parser([load_configuration(doc(sentence(), _id="cfg1"))])
    bad_lat = one.parse(crc("TEST,1,00:00:01,95.0,1.0,0"))
    assert bad_lat.reason == (
        "payload_configuration 'cfg1' sentence 0: fields.2 'latitude' (stdtelem.coordinate):"
        " coordinate '95.0' is outside +-90 degrees"
    )
    wrong_sum = one.parse("$$TEST,1,00:00:01,52.0,1.0,0*0000")
    assert "the crc16-ccitt checksum is " in wrong_sum.reason
    assert "the sentence says 0000" in wrong_sum.reason
    assert parse(b"$TEST").parse_error() == {
        "callsign": None,
        "reason": "the sentence does not start with '$$'",
        "attempts": [],
    }


def test_a_configured_payload_does_not_fall_back_to_the_default_mode() -> None:
    fields = [{"name": "n", "sensor": "base.ascii_int"}]
    parser = build_parser([load_configuration(doc(sentence(fields=fields)))])
    result = parser.parse(crc("TEST,1,00:00:01,52.0,1.0,0"))
    assert not result.ok and result.attempts[0].configuration == "TEST"


def test_checksum_none_and_case_insensitive_digits() -> None:
    parser = build_parser([load_configuration(doc(sentence(checksum="none")))])
    assert parser.parse("$$TEST,1,00:00:01,52.0,1.0,0").ok
    assert parser.parse("$$TEST,1,00:00:01,52.0,1.0,0*FFFF").ok
    crc_parser = build_parser([load_configuration(doc(sentence()))])
    assert crc_parser.parse(
        crc("TEST,1,00:00:01,52.0,1.0,0").lower().replace("$$test", "$$TEST")
    ).ok
    missing = crc_parser.parse("$$TEST,1,00:00:01,52.0,1.0,0")
    assert (
        missing.attempts[0].reason
        == "the sentence has no checksum; the configuration expects crc16-ccitt"
    )


def test_parsed_data_carries_habitats_reserved_keys() -> None:
    raw = b"$$$AMSTG,27,08:33:27,52.5776815,-1.9651728,139*"
    body = raw.decode().strip("$").split("*")[0]
    raw = f"$$${body}*{checksums.crc16_ccitt(body.encode())}\r\n".encode()
    result = build_parser([load_configuration(doc(sentence(callsign="AMSTG")))]).parse(raw)
    assert result.data == {
        "payload": "AMSTG",
        "sentence_id": 27,
        "time": "08:33:27",
        "latitude": 52.5776815,
        "longitude": -1.9651728,
        "altitude": 139,
        "_sentence": f"$${body}*{checksums.crc16_ccitt(body.encode())}",
        "_protocol": "UKHAS",
    }
    assert result.parse_error() is None and result.configuration == "TEST"


# --- default mode --------------------------------------------------------------


def test_default_mode_reads_the_common_layout_and_keeps_the_rest() -> None:
    result = parse(b"$$$$$HORUS,4,07:24:17,0.000000,0.000000,0,0,0,1304,20*938B\n")
    assert result.ok and result.used_default_config
    assert result.data["_extra_data"] == ["0", "0", "1304", "20"]
    assert (result.data["sentence_id"], result.data["time"], result.data["altitude"]) == (
        4,
        "07:24:17",
        0,
    )
    ddmm = parse(b"$$SP,2,08:17:11,4725.6524,01910.6882,1779*27")  # XOR, degrees and minutes
    assert (ddmm.data["latitude"], ddmm.data["longitude"]) == (47.42754, 19.1781367)
    assert "_extra_data" not in ddmm.data
    west = parse(crc("EDU,9,08:13:04,5232.57415,-00152.58697,231.4"))
    assert (west.data["latitude"], west.data["longitude"], west.data["altitude"]) == (
        52.5429025,
        -1.8764495,
        231.4,
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("$$X,1,00:00:01,52.0,1.0,0", "needs a checksum"),
        (crc("X,1,00:00:01,52.0,1.0"), "has 4 fields after the callsign"),
        (crc("BZ3,1,13:36,91.5,4.2,10"), "latitude"),
        (crc("X,A,00:00:01,52.0,1.0,0"), "sentence_id"),
        ("$$X,1,00:00:01,52.0,1.0,0*0000", "checksum"),
    ],
)
def test_default_mode_failures(raw: str, reason: str) -> None:
    result = parse(raw)
    assert not result.ok and reason in result.reason
    assert result.attempts[0].to_json()["default"] is True


def test_without_default_mode_an_unknown_callsign_is_a_failure() -> None:
    result = build_parser([], default_mode=False).parse(crc("X,1,00:00:01,52.0,1.0,0"))
    assert result.reason == "no payload_configuration has callsign 'X'"


def test_configurations_are_not_changed_by_parsing() -> None:
    document = doc(
        sentence(filters={"post": [{"type": "normal", "filter": "common.invalid_always"}]})
    )
    before = copy.deepcopy(document)
    build_parser([load_configuration(document)]).parse(crc("TEST,1,00:00:01,52.0,1.0,0"))
    assert document == before


# --- never raises --------------------------------------------------------------

_FUZZ_PARSER = build_parser(
    [
        load_configuration(
            doc(
                sentence(
                    filters={
                        "intermediate": [
                            {"type": "normal", "filter": "common.zero_pad_times"},
                            {"type": "normal", "filter": "common.semicolons_to_commas"},
                        ],
                        "post": [
                            {
                                "type": "normal",
                                "filter": "common.numeric_scale",
                                "source": "altitude",
                                "factor": 1e300,
                                "round": 2,
                            },
                            {"type": "normal", "filter": "common.invalid_location_zero"},
                        ],
                    }
                ),
                sentence(checksum="none", fields=[{"name": "x", "sensor": "base.ascii_float"}]),
            )
        )
    ]
)
_SENTENCE_TEXT = st.text(alphabet="$TEST,*:;.-+0123456789abcdefABCDEF \r\n\x00é", max_size=60)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=80), _SENTENCE_TEXT.map(str.encode), _SENTENCE_TEXT))
def test_parse_never_raises_and_always_explains(raw: bytes | str) -> None:
    for parser in (_FUZZ_PARSER, build_parser([])):
        result = parser.parse(raw)
        if result.ok:
            assert result.data is not None and result.reason is None
        else:
            error = result.parse_error()
            assert error is not None and isinstance(error["reason"], str) and error["reason"]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 10**6),
    st.integers(0, 23),
    st.integers(0, 59),
    st.floats(-90, 90),
    st.floats(-180, 180),
    st.integers(-500, 50_000),
)
def test_well_formed_sentences_round_trip(
    n: int, hh: int, mm: int, lat: float, lon: float, alt: int
) -> None:
    body = f"TEST,{n},{hh:02d}:{mm:02d}:07,{lat!r},{lon!r},{alt}"
    result = _FUZZ_PARSER.parse(crc(body) + "\n")
    assert result.ok, result.reason
    assert (result.data["sentence_id"], result.data["time"]) == (n, f"{hh:02d}:{mm:02d}:07")
    assert (result.data["latitude"], result.data["longitude"]) == (lat, lon)
