"""The one validator (habitat_http/validator.py): its fast way gives exactly what the
exact way (strictjson + messages.validate) gives, for any body; dedup keys are
unchanged from before the fast way existed."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from habitat_http import validator
from habitat_http.messages import Accepted, InvalidMessage, dedup_key, validate
from habitat_http.strictjson import loads

SETTINGS = validator.Settings(
    now=1_700_000_000.5, ip="192.0.2.7", blocked_callsigns=frozenset({"N0CALL"})
)


def exact(raw: bytes) -> Accepted:
    """The way bodies were validated before the fast way: strictjson, then validate."""
    try:
        fields = loads(raw)
    except ValueError as exc:
        raise validator.not_json(exc) from None
    if not isinstance(fields, dict):
        raise InvalidMessage.one(None, "The body must be a JSON object holding one message.")
    return validate(
        fields,
        now=SETTINGS.now,
        ip=SETTINGS.ip,
        blocked_callsigns=SETTINGS.blocked_callsigns,
        future_tolerance=SETTINGS.future_tolerance,
    )


def outcome(check: Any, raw: bytes) -> Any:
    try:
        return check(raw)
    except InvalidMessage as exc:
        return [e.as_json() for e in exc.errors]


def old_dedup_key(
    callsign: str, type_: str, time_created: float, data: Any, message_id: str | None = None
) -> str:
    """dedup_key as released before the fast way: the keys already in stores."""
    if message_id is not None:
        material: list[Any] = ["message_id", callsign, message_id]
    else:
        material = ["content", callsign, type_, time_created, data]
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from(':"\\'), max_size=12
)
scalars = (
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False) | text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
raw_strings = st.binary(min_size=0, max_size=40).map(lambda b: base64.b64encode(b).decode())
data_values = st.fixed_dictionaries(
    {},
    optional={
        "string": raw_strings | text,
        "frequency": st.integers(-5, 10**10) | st.floats(allow_nan=False) | st.none(),
        "name": text | st.none(),
        "radio": text,
        "latitude": st.floats(-100, 100),
        "longitude": st.integers(-200, 200),
        "altitude": st.floats(allow_nan=False, allow_infinity=False),
        "time": st.sampled_from(["12:34:56", "25:00:00", {"hour": 1, "minute": 2, "second": 3}]),
        "extra": json_values,
        "a:b": json_values,
    },
)
messages = st.fixed_dictionaries(
    {
        "callsign": st.sampled_from(["M0ABC", "m0abc", "N0CALL", "", "a:b", "X" * 40]) | text,
        "type": st.sampled_from(["RECEIVED_TELEM", "LISTENER_INFO", "LISTENER_TELEM", "TELEM", ""]),
        "time_created": st.sampled_from([1_699_999_990, 1_699_999_990.25, "1699999990", True])
        | st.floats(allow_nan=False),
        "time_uploaded": st.sampled_from([1_699_999_995, 1_700_000_100.0, -1]),
        "data": data_values,
    },
    optional={"message_id": text | st.none(), "extra": json_values},
)

info_text = text | st.sampled_from(["Zoë Ñandú 📡", "a:b:c", 'say "hi"', "back\\slash"])
valid_data = {
    "RECEIVED_TELEM": st.fixed_dictionaries(
        {"string": st.binary(min_size=1, max_size=60).map(lambda b: base64.b64encode(b).decode())},
        optional={"frequency": st.integers(0, 10**10) | st.floats(0, 1e10) | st.none()},
    ),
    "LISTENER_INFO": st.fixed_dictionaries(
        {}, optional={k: info_text | st.none() for k in ("name", "location", "radio", "antenna")}
    ),
    "LISTENER_TELEM": st.fixed_dictionaries(
        {
            "latitude": st.floats(-90, 90),
            "longitude": st.integers(-180, 180) | st.floats(-180, 180),
            "altitude": st.floats(-1000, 50000),
            "time": st.sampled_from(["12:34:56", {"hour": 1, "minute": 2, "second": 3}]),
        }
    ),
}


@st.composite
def valid_messages(draw: st.DrawFn) -> dict[str, Any]:
    """Messages the validator accepts, give or take an extra key."""
    type_ = draw(st.sampled_from(sorted(valid_data)))
    data = draw(valid_data[type_])
    if draw(st.booleans()):
        data[draw(text)] = draw(json_values)
    message = {
        "callsign": draw(st.from_regex(r"[A-Za-z0-9/_-]{0,4}[A-Za-z0-9]", fullmatch=True)),
        "type": type_,
        "time_created": draw(st.sampled_from([1_699_999_990, 1_699_999_990.25, "1699999990"])),
        "time_uploaded": draw(st.sampled_from([1_699_999_995, 1_699_999_995.5])),
        "data": data,
    }
    if draw(st.booleans()):
        message["message_id"] = draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=9))
    if draw(st.booleans()):
        message[draw(text)] = draw(json_values)
    return message


@st.composite
def bodies(draw: st.DrawFn, item: st.SearchStrategy[Any] = messages) -> bytes:
    """JSON text of a message, then sometimes changed the ways the strict rules watch:
    a key repeated, NaN or Infinity, a very long integer, escapes, other encodings."""
    body = json.dumps(draw(item), ensure_ascii=draw(st.booleans()))
    change = draw(
        st.sampled_from(["none", "none", "repeat", "nan", "long", "encoding", "trail", "cut"])
    )
    if change == "repeat" and '"' in body:
        key = draw(st.sampled_from(['"callsign": "M0ABC", ', '"string": "JA==", ', '"x": 1, ']))
        at = draw(st.sampled_from([i + 1 for i, c in enumerate(body) if c == "{"] or [0]))
        body = body[:at] + key * draw(st.sampled_from([1, 2])) + body[at:]
    elif change == "nan":
        body = body.replace("1699999995", draw(st.sampled_from(["NaN", "Infinity", "-Infinity"])))
    elif change == "long":
        body = body.replace("1699999995", "1" * draw(st.sampled_from([999, 1000, 1001, 5000])))
    elif change == "trail":
        body += draw(st.sampled_from([" ", "\n", " x", "}"]))
    elif change == "cut":
        body = body[: draw(st.integers(0, len(body)))]
    encoding = "utf-8"
    if change == "encoding":
        encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "utf-8-sig"]))
    return body.encode(encoding, "surrogatepass")


@settings(max_examples=1500, deadline=None)
@given(raw=bodies(valid_messages()) | bodies() | st.binary(max_size=200))
def test_fast_and_exact_give_the_same_answer(raw: bytes) -> None:
    assert outcome(lambda r: validator.message(r, SETTINGS), raw) == outcome(exact, raw)


def exact_batch(raw: bytes) -> list[Any]:
    items = json.loads(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    return [outcome(exact, json.dumps(item).encode()) for item in items]


@settings(max_examples=300, deadline=None)
@given(items=st.lists(valid_messages() | messages, min_size=1, max_size=5))
def test_batch_fast_and_item_by_item_agree(items: list[Any]) -> None:
    try:
        raw = json.dumps(items, allow_nan=False).encode()
    except ValueError:
        assume(False)
    got = [
        [e.as_json() for e in r.errors] if isinstance(r, InvalidMessage) else r
        for r in validator.batch(raw, SETTINGS, 1000)
    ]
    assert got == exact_batch(raw)


def test_batch_item_with_a_repeated_key_is_rejected_alone() -> None:
    good = json.dumps(
        {
            "callsign": "M0ABC",
            "type": "LISTENER_INFO",
            "time_created": 1_699_999_990,
            "time_uploaded": 1_699_999_995,
            "data": {"name": "x"},
        }
    )
    raw = f'[{good}, {good[:-1]}, "data": {{}}}}]'.encode()
    first, second = validator.batch(raw, SETTINGS, 1000)
    assert isinstance(first, Accepted)
    assert isinstance(second, InvalidMessage) and second.first.field == "data"


@settings(max_examples=500, deadline=None)
@given(
    callsign=st.from_regex(r"[A-Z0-9/_-]{1,32}", fullmatch=True),
    type_=st.sampled_from(["RECEIVED_TELEM", "LISTENER_INFO", "LISTENER_TELEM"]),
    time_created=st.floats(0, 1e10) | st.integers(0, 10**10).map(float),
    data=data_values,
    message_id=st.none() | text,
)
def test_dedup_key_is_the_key_already_stored(
    callsign: str, type_: str, time_created: float, data: Any, message_id: str | None
) -> None:
    args = (callsign, type_, time_created, data, message_id)
    assert dedup_key(*args) == old_dedup_key(*args)


@pytest.mark.parametrize("frequency", [434_075_000, 434075000.5, 1e16, None])
def test_dedup_key_of_received_telem(frequency: float | None) -> None:
    data: dict[str, Any] = {"string": "JA=="}
    if frequency is not None:
        data["frequency"] = frequency
    args = ("M0ABC", "RECEIVED_TELEM", 1_699_999_990.0, data)
    assert dedup_key(*args) == old_dedup_key(*args)


GOOD = (
    '{"callsign": "M0ABC", "type": "RECEIVED_TELEM", "time_created": 1699999990, '
    '"time_uploaded": 1699999995, "data": {"string": "JA==", "x": %s}}'
)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        # An escaped ':' in a key hides one ':' byte; a key given twice adds one back.
        (GOOD.replace('"x": %s', '"x\\u003a": 1, "string": "JA=="').encode(), "data.string"),
        ((GOOD % "NaN").encode(), None),
        ((GOOD % "-Infinity").encode(), None),
        ((GOOD % ("9" * 1001)).encode(), "data.x"),
        ((GOOD % '"\\ud800"').encode(), None),
        ((GOOD % '{"a": 1, "a": 2}').encode(), "data.x.a"),
        (
            (GOOD % '"12:00"')
            .replace('"callsign": "M0ABC"', '"callsign": "M0ABC", "callsign": "M0ABC"')
            .encode(),
            "callsign",
        ),
    ],
)
def test_every_strict_rule_holds_on_the_fast_way(raw: bytes, field: str | None) -> None:
    got = outcome(lambda r: validator.message(r, SETTINGS), raw)
    assert got == outcome(exact, raw)
    assert isinstance(got, list) and got[0]["field"] == field


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_any_utf_encoding_is_accepted(encoding: str) -> None:
    raw = (GOOD % '"Zoë"').encode(encoding)
    accepted = validator.message(raw, SETTINGS)
    assert accepted == exact(raw) and accepted.ignored == ["x"]


def test_a_retry_that_straddles_the_upgrade_is_stored_once(tmp_path: Any) -> None:
    from .conftest import make_gateway, telem

    gw = make_gateway(tmp_path)
    posted = telem(frequency=434_075_000)
    # Stored by a release before the fast way, under the key that release computed.
    accepted = exact(json.dumps(posted).encode())
    old_key = old_dedup_key(
        "M0ABC", "RECEIVED_TELEM", float(posted["time_created"]), accepted.message.data
    )
    assert accepted.message.dedup_key == old_key
    original = gw.store.put(accepted.message)
    retry = gw.post({**posted, "time_uploaded": posted["time_uploaded"] + 30})
    assert retry.status_code == 200
    assert retry.get_json()["id"] == original.id and retry.get_json()["duplicate"] is True
    assert len(gw.store.read_after(0)) == 1
