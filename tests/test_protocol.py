"""The HTTP protocol of POST /message and GET /, at the werkzeug test-client level."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest

from habitat_http.config import Config

from .conftest import CLIENT_IP, Gateway, b64, make_gateway, telem


def stored_rows(gw: Gateway) -> list[tuple[object, ...]]:
    # A separate connection proves the row is committed, not just in our transaction.
    gw.store.initialize()
    with closing(sqlite3.connect(gw.db_path)) as conn:
        return conn.execute(
            "SELECT id, callsign, type, ip, data FROM messages ORDER BY id"
        ).fetchall()


def test_post_json_stores_and_answers_with_id(gw: Gateway) -> None:
    r = gw.post(telem(frequency=434_075_000))
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    body = r.get_json()
    assert body == {"ok": True, "id": 1, "duplicate": False, "ignored": []}
    rows = stored_rows(gw)
    assert rows == [
        (
            1,
            "M0ABC",
            "RECEIVED_TELEM",
            CLIENT_IP,
            json.dumps(
                {"string": telem()["data"]["string"], "frequency": 434_075_000},
                separators=(",", ":"),
            ),
        )
    ]


def test_ids_increase(gw: Gateway) -> None:
    ids = [gw.post(telem(f"$$X,{i}*00")).get_json()["id"] for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_form_body_with_json_data(gw: Gateway) -> None:
    r = gw.client.post(
        "/message",
        data={
            "callsign": "m0abc",
            "type": "LISTENER_INFO",
            "time_created": "1699999990.4",
            "time_uploaded": "1699999995",
            "data": json.dumps({"name": "Zoë Ñandú 📡", "radio": "FT-817"}),
        },
    )
    assert r.status_code == 200, r.get_json()
    [message] = gw.store.read_after(0)
    assert message.callsign == "M0ABC"
    assert message.data == {"name": "Zoë Ñandú 📡", "radio": "FT-817"}


def test_form_data_that_is_not_json_names_the_field(gw: Gateway) -> None:
    r = gw.client.post(
        "/message",
        data={
            "callsign": "M0ABC",
            "type": "LISTENER_INFO",
            "time_created": "1",
            "time_uploaded": "1",
            "data": "{not json",
        },
    )
    assert r.status_code == 400
    assert r.get_json()["field"] == "data"
    assert gw.store.read_after(0) == []


def test_unknown_top_level_fields_are_allowed(gw: Gateway) -> None:
    r = gw.post({**telem(), "client": "dl-fldigi 3.21", "version": 2})
    assert r.status_code == 200
    assert r.get_json()["ignored"] == []


def test_unknown_data_keys_are_named_in_ignored_and_not_stored(gw: Gateway) -> None:
    r = gw.post(telem(frequency=1e6, snr=12.5, rssi=-90))
    assert r.status_code == 200
    assert r.get_json()["ignored"] == ["rssi", "snr"]
    [message] = gw.store.read_after(0)
    assert set(message.data) == {"string", "frequency"}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x", ""]
)
def test_other_content_types_get_415(gw: Gateway, content_type: str) -> None:
    r = gw.client.post("/message", data=b"callsign=M0ABC", content_type=content_type or None)
    assert r.status_code == 415
    assert "application/json" in r.get_json()["error"]
    assert stored_rows(gw) == []


def test_json_with_charset_parameter_is_json(gw: Gateway) -> None:
    r = gw.client.post(
        "/message", data=json.dumps(telem()), content_type="application/json; charset=utf-8"
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b"not json at all",
        b'{"callsign": NaN}',
        b'{"a": Infinity}',
        b"\xff\xfe\x00garbage",
        b"[" * 60_000,
        b'"just a string"',
        b"[1, 2, 3]",
        b"null",
        b"1e999999",
        b"9" * 5000,
    ],
)
def test_garbage_json_gets_400_and_the_next_request_is_served(gw: Gateway, payload: bytes) -> None:
    r = gw.client.post("/message", data=payload, content_type="application/json")
    assert r.status_code == 400
    body = r.get_json()
    assert body["ok"] is False and body["error"].endswith(".")
    assert "field" in body
    assert gw.post(telem()).status_code == 200


def test_body_over_the_limit_gets_413(tmp_path) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(tmp_path, Config(max_body=1000))
    big = telem()
    big["padding"] = "x" * 2000
    r = gw.post(big)
    assert r.status_code == 413
    assert "1000 bytes" in r.get_json()["error"]
    form = gw.client.post("/message", data={"data": "x" * 2000})
    assert form.status_code == 413
    assert gw.post(telem()).status_code == 200
    assert len(stored_rows(gw)) == 1


def test_default_body_limit_is_64_kib(gw: Gateway) -> None:
    ok = telem()
    ok["padding"] = "x" * (60 * 1024)
    assert gw.post(ok).status_code == 200
    ok["padding"] = "x" * (64 * 1024)
    assert gw.post(ok).status_code == 413


def test_get_message_is_405_with_allow(gw: Gateway) -> None:
    for method in ("GET", "PUT", "DELETE"):
        r = gw.client.open("/message", method=method)
        assert r.status_code == 405
        assert r.headers["Allow"] == "POST"
        assert r.get_json()["ok"] is False


def test_unknown_path_is_404_listing_actions(gw: Gateway) -> None:
    for path in ("/nope", "/message/", "//message", "/messages/1"):
        r = gw.client.post(path, json=telem())
        assert r.status_code == 404
        body = r.get_json()
        assert any(a.startswith("POST /message") for a in body["actions"])
    assert stored_rows(gw) == []


def test_info_page(gw: Gateway) -> None:
    r = gw.client.get("/")
    assert r.status_code == 200
    assert r.mimetype == "text/plain"
    text = r.get_data(as_text=True)
    assert "POST /message" in text and "RECEIVED_TELEM" in text
    head = gw.client.head("/")
    assert head.status_code == 200
    assert head.get_data() == b""
    assert int(head.headers["Content-Length"]) == len(text.encode())


def test_post_to_info_page_is_405(gw: Gateway) -> None:
    r = gw.client.post("/", json=telem())
    assert r.status_code == 405
    assert "GET" in r.headers["Allow"]


def test_sentence_bytes_round_trip_exactly(gw: Gateway) -> None:
    raw = bytes(range(256))  # the radio can deliver any byte
    r = gw.post({**telem(), "data": {"string": b64(raw)}})
    assert r.status_code == 200
    [message] = gw.store.read_after(0)
    import base64

    assert base64.b64decode(message.data["string"]) == raw


def test_limit_is_exact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(tmp_path, Config(max_body=1000))
    message = telem()
    message["pad"] = ""
    size = len(json.dumps(message).encode())
    message["pad"] = "x" * (1000 - size)
    body = json.dumps(message).encode()
    assert len(body) == 1000
    assert gw.client.post("/message", data=body, content_type="application/json").status_code == 200
    message["pad"] += "x"
    r = gw.client.post("/message", data=json.dumps(message), content_type="application/json")
    assert r.status_code == 413


def test_body_without_length_over_the_limit_is_413_not_truncated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A chunked body (no Content-Length, wsgi.input_terminated) whose first bytes
    # would parse on their own: it must be refused whole, never cut and accepted.
    import io

    gw = make_gateway(tmp_path, Config(max_body=1000))
    for content_type, body in [
        ("application/json", json.dumps(telem()).encode() + b" " * 2000),
        (
            "application/x-www-form-urlencoded",
            b"callsign=M0ABC&type=LISTENER_INFO&time_created=1&time_uploaded=1&data=%7B%7D"
            + b"&pad="
            + b"x" * 2000,
        ),
    ]:
        r = gw.client.post(
            "/message",
            input_stream=io.BytesIO(body),
            content_type=content_type,
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert r.status_code == 413, (content_type, r.get_data(as_text=True))
    assert stored_rows(gw) == []


@pytest.mark.timeout(10)
def test_long_digit_strings_are_refused_quickly(gw: Gateway) -> None:
    # A backtracking pattern once took 12 s of CPU on this; the length check comes first.
    message = telem()
    message["time_created"] = "1" * 60_000 + "x"
    r = gw.post(message)
    assert r.status_code == 400 and r.get_json()["field"] == "time_created"


@pytest.mark.parametrize(
    "body",
    [
        b'{"callsign":"M0ABC","type":"LISTENER_INFO","time_created":1,"time_uploaded":1,'
        b'"data":{"\\ud800":1}}',
        b'{"callsign":"M0ABC","type":"LISTENER_INFO","time_created":1,"time_uploaded":1,'
        b'"data":{"name":"x\\udc00y"}}',
        b'{"callsign":"M0ABC","type":"LISTENER_INFO","time_created":1,"time_uploaded":1,'
        b'"data":{},"extra":["\\uDBFF"]}',
    ],
)
def test_lone_surrogates_are_refused_before_anything_is_stored(gw: Gateway, body: bytes) -> None:
    r = gw.client.post("/message", data=body, content_type="application/json")
    assert r.status_code == 400
    assert "surrogate" in r.get_json()["error"]
    assert stored_rows(gw) == []


def test_escaped_surrogate_pairs_are_fine(gw: Gateway) -> None:
    body = (
        b'{"callsign":"M0ABC","type":"LISTENER_INFO","time_created":1,"time_uploaded":1,'
        b'"data":{"name":"\\ud83d\\udce1 station"}}'
    )
    assert gw.client.post("/message", data=body, content_type="application/json").status_code == 200
    assert gw.store.read_after(0)[0].data == {"name": "📡 station"}
