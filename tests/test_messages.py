"""Every message rule of POST /message: fields, callsigns, types, times and data."""

from __future__ import annotations

from typing import Any

import pytest

from habitat_http.config import Config
from habitat_http.messages import InvalidMessage, clock_correct, validate

from .conftest import Gateway, b64, make_gateway, telem

REQUIRED = ("callsign", "type", "time_created", "time_uploaded", "data")


def listener_telem(**data: Any) -> dict[str, Any]:
    base = {"latitude": 52.2135, "longitude": 0.0964, "altitude": 12.5, "time": "12:45:06"}
    return {**telem(), "type": "LISTENER_TELEM", "data": {**base, **data}}


def listener_info(**data: Any) -> dict[str, Any]:
    return {**telem(), "type": "LISTENER_INFO", "data": data}


def rejected(gw: Gateway, message: dict[str, Any], field: str) -> str:
    """Post ``message``, assert 400 naming ``field`` and nothing stored; return the error."""
    r = gw.post(message)
    assert r.status_code == 400, r.get_data(as_text=True)
    body = r.get_json()
    assert body["ok"] is False
    assert body["field"] == field
    error = body["error"]
    assert isinstance(error, str) and error.startswith(field)
    assert error.endswith(".") and error.count(". ") == 0  # one sentence
    assert gw.store.read_after(0) == []
    return str(error)


# --- required fields ------------------------------------------------------------


@pytest.mark.parametrize("missing", REQUIRED)
def test_each_missing_field_is_named(gw: Gateway, missing: str) -> None:
    message = telem()
    del message[missing]
    assert "required" in rejected(gw, message, missing)


def test_all_problems_are_listed(gw: Gateway) -> None:
    r = gw.post({"callsign": "M0ABC"})
    assert r.status_code == 400
    fields = [e["field"] for e in r.get_json()["errors"]]
    assert fields == ["type", "time_created", "time_uploaded", "data"]


# --- callsign -------------------------------------------------------------------


@pytest.mark.parametrize("callsign", ["M0ABC", "m0abc/p", "2E0XYZ-9", "A", "X" * 32, "_a_", "9"])
def test_valid_callsigns_are_stored_uppercased(gw: Gateway, callsign: str) -> None:
    assert gw.post(telem(callsign=callsign)).status_code == 200
    assert gw.store.read_after(0)[0].callsign == callsign.upper()


@pytest.mark.parametrize(
    "callsign",
    [
        "",
        "X" * 33,
        "M0 ABC",
        "M0ABC!",
        "---",
        "/_/",
        "Zoë",
        "M0ABC\n",
        "M0ABC\x00",
        12345,
        None,
        ["M0"],
    ],
)
def test_invalid_callsigns_get_400(gw: Gateway, callsign: Any) -> None:
    rejected(gw, telem(callsign=callsign), "callsign")


@pytest.mark.parametrize("callsign", ["N0CALL", "n0call", "MYCALL", "ChangeMe"])
def test_default_block_list(gw: Gateway, callsign: str) -> None:
    error = rejected(gw, telem(callsign=callsign), "callsign")
    assert callsign.upper() in error and "refuses" in error


def test_block_list_is_configurable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(tmp_path, Config(blocked_callsigns=frozenset({"SPAMMER"})))
    rejected(gw, telem(callsign="spammer"), "callsign")
    assert gw.post(telem(callsign="N0CALL")).status_code == 200


# --- type -----------------------------------------------------------------------


def test_telem_is_refused_saying_only_the_parser_makes_it(gw: Gateway) -> None:
    error = rejected(gw, {**telem(), "type": "TELEM"}, "type")
    assert "parser" in error


@pytest.mark.parametrize("type_", [0, 1, None, "received_telem", "LISTENER", "", True, {"a": 1}])
def test_bad_types_get_400(gw: Gateway, type_: Any) -> None:
    rejected(gw, {**telem(), "type": type_}, "type")


# --- times ----------------------------------------------------------------------


def test_clock_correction_with_a_fake_clock(gw: Gateway) -> None:
    # The client's clock is 1000 s slow: it made the message 30 s before uploading.
    gw.clock.now = 1_700_000_000.0
    r = gw.post(telem(time_created=1_699_998_970, time_uploaded=1_699_999_000))
    assert r.status_code == 200
    [m] = gw.store.read_after(0)
    assert (m.time_created, m.time_uploaded) == (1_699_999_970, 1_700_000_000)
    assert m.time_received == 1_700_000_000.0


def test_clock_correction_for_a_fast_client_clock(gw: Gateway) -> None:
    gw.clock.now = 1_700_000_000.0
    gw.post(telem(time_created=1_700_003_595.0, time_uploaded=1_700_003_600.0))
    [m] = gw.store.read_after(0)
    assert (m.time_created, m.time_uploaded) == (1_699_999_995, 1_700_000_000)


def test_times_as_decimal_strings_are_accepted(gw: Gateway) -> None:
    gw.clock.now = 1_700_000_000.25
    assert (
        gw.post(telem(time_created="1699999990.5", time_uploaded="1699999995")).status_code == 200
    )
    [m] = gw.store.read_after(0)
    assert m.time_created == round(1_699_999_990.5 + 5.25)
    assert m.time_uploaded == 1_700_000_000


def test_created_a_minute_ahead_of_upload_is_allowed(gw: Gateway) -> None:
    assert (
        gw.post(telem(time_created=1_700_000_060, time_uploaded=1_700_000_000)).status_code == 200
    )


def test_created_in_the_future_is_refused(gw: Gateway) -> None:
    error = rejected(
        gw, telem(time_created=1_700_000_061, time_uploaded=1_700_000_000), "time_created"
    )
    assert "future" in error


@pytest.mark.parametrize("field", ["time_created", "time_uploaded"])
@pytest.mark.parametrize(
    "value", [True, None, "", "soon", "1e9", "0x10", -1, 1e11, [1], {"s": 1}, "NaN"]
)
def test_bad_timestamps_get_400(gw: Gateway, field: str, value: Any) -> None:
    message = telem()
    message[field] = value
    rejected(gw, message, field)


def test_clock_correct_is_the_habitat_formula() -> None:
    assert clock_correct(100.0, 110.0, 1000.0) == (990, 1000)
    assert clock_correct(100.4, 100.0, 50.2) == (51, 50)


# --- RECEIVED_TELEM -------------------------------------------------------------


def test_frequency_is_optional_and_in_hz(gw: Gateway) -> None:
    assert gw.post(telem()).status_code == 200
    assert gw.post(telem(frequency=434_075_000)).status_code == 200
    assert gw.post(telem(frequency=0)).status_code == 200
    assert [m.data.get("frequency") for m in gw.store.read_after(0)] == [None, 434_075_000, 0]


@pytest.mark.parametrize("frequency", [-1, "434075000", True, [434e6], 1e300])
def test_bad_frequency(gw: Gateway, frequency: Any) -> None:
    rejected(gw, telem(frequency=frequency), "data.frequency")


@pytest.mark.parametrize(
    "string",
    [
        "",  # nothing received
        "JCRoYWJpdGF0",  # fine
        "JCRoYWJpdGF",  # bad padding
        "JCRoYWJpdGF=",  # non-canonical: padding bits set
        "JCRo YWJpdGF0",  # whitespace
        "JCRoYWJp\ndGF0",  # line break
        "JCRoYWJpdGF0====",  # excess padding
        "JC-_YWJp",  # urlsafe alphabet
        "JCRoYWJpdGF0Zä==",  # not ASCII
        b64(b"x" * 2049),  # too long
        None,
        12,
    ],
)
def test_string_must_be_canonical_base64_of_at_most_2048_bytes(gw: Gateway, string: Any) -> None:
    message = telem()
    message["data"]["string"] = string
    if string == "JCRoYWJpdGF0":
        assert gw.post(message).status_code == 200
    else:
        rejected(gw, message, "data.string")


def test_string_of_exactly_2048_bytes_is_accepted(gw: Gateway) -> None:
    message = telem()
    message["data"]["string"] = b64(b"\x00\xff" * 1024)
    assert gw.post(message).status_code == 200


def test_missing_string(gw: Gateway) -> None:
    rejected(gw, {**telem(), "data": {"frequency": 434e6}}, "data.string")


@pytest.mark.parametrize("data", ["JCRo", [1], None, 5])
def test_data_must_be_an_object(gw: Gateway, data: Any) -> None:
    rejected(gw, {**telem(), "data": data}, "data")


# --- LISTENER_INFO --------------------------------------------------------------


def test_listener_info_unicode_arrives_intact(gw: Gateway) -> None:
    info = {
        "name": "Jürgen Ødegård — 日本のリスナー 📡",
        "location": "Kraków, Polska",
        "radio": "FUNcube Dongle Pro+",
        "antenna": "½-wave ground plane ∠45°",
    }
    r = gw.post(listener_info(**info))
    assert r.status_code == 200
    assert gw.store.read_after(0)[0].data == info


def test_listener_info_fields_are_optional(gw: Gateway) -> None:
    assert gw.post(listener_info()).status_code == 200
    assert gw.post(listener_info(name="Only a name")).status_code == 200
    assert [m.data for m in gw.store.read_after(0)] == [{}, {"name": "Only a name"}]


@pytest.mark.parametrize("key", ["name", "location", "radio", "antenna"])
def test_listener_info_limits(gw: Gateway, key: str) -> None:
    assert gw.post(listener_info(**{key: "é" * 256})).status_code == 200
    gw.store.close()
    error = rejected_after(gw, listener_info(**{key: "é" * 257}), f"data.{key}")
    assert "256" in error
    rejected_after(gw, listener_info(**{key: 5}), f"data.{key}")


def rejected_after(gw: Gateway, message: dict[str, Any], field: str) -> str:
    before = len(gw.store.read_after(0))
    r = gw.post(message)
    assert r.status_code == 400 and r.get_json()["field"] == field
    assert len(gw.store.read_after(0)) == before
    return str(r.get_json()["error"])


# --- LISTENER_TELEM -------------------------------------------------------------


def test_listener_telem_stores_position_and_normalised_time(gw: Gateway) -> None:
    assert gw.post(listener_telem()).status_code == 200
    assert gw.post(listener_telem(time={"hour": 23, "minute": 59, "second": 60})).status_code == 200
    first, second = gw.store.read_after(0)
    assert first.data == {
        "latitude": 52.2135,
        "longitude": 0.0964,
        "altitude": 12.5,
        "time": {"hour": 12, "minute": 45, "second": 6},
    }
    assert second.data["time"] == {"hour": 23, "minute": 59, "second": 60}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("latitude", 90.0001),
        ("latitude", -91),
        ("latitude", "52.1"),
        ("latitude", None),
        ("longitude", 180.5),
        ("longitude", -181),
        ("longitude", False),
        ("altitude", "100m"),
        ("altitude", None),
        ("time", "24:00:00"),
        ("time", "12:60:00"),
        ("time", "12:00:61"),
        ("time", "12:00"),
        ("time", "noon"),
        ("time", {"hour": 12, "minute": 0}),
        ("time", {"hour": 12, "minute": 0, "second": 1.5}),
        ("time", {"hour": "12", "minute": 0, "second": 0}),
        ("time", {"hour": 12, "minute": 0, "second": 0, "ms": 3}),
        ("time", 1700000000),
    ],
)
def test_listener_telem_ranges(gw: Gateway, key: str, value: Any) -> None:
    rejected(gw, listener_telem(**{key: value}), f"data.{key}")


@pytest.mark.parametrize("key", ["latitude", "longitude", "altitude", "time"])
def test_listener_telem_required_keys(gw: Gateway, key: str) -> None:
    message = listener_telem()
    del message["data"][key]
    rejected(gw, message, f"data.{key}")


def test_listener_telem_edges_are_inclusive(gw: Gateway) -> None:
    for lat, lon in [(90, 180), (-90, -180), (0, 0)]:
        assert (
            gw.post(listener_telem(latitude=lat, longitude=lon, altitude=-400)).status_code == 200
        )


# --- the pure function ----------------------------------------------------------


def test_validate_reports_the_first_problem_first() -> None:
    with pytest.raises(InvalidMessage) as info:
        validate(
            {"callsign": "N0CALL", "type": "TELEM"},
            now=0,
            ip=None,
            blocked_callsigns=frozenset({"N0CALL"}),
        )
    assert info.value.first.field == "callsign"
    assert [e.field for e in info.value.errors][:2] == ["callsign", "type"]
