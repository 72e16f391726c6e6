"""Client input that must get the right 4xx: form bodies that are not UTF-8, keys
given twice, numbers too long to read, and the one shape of every error body."""

from __future__ import annotations

import json
from typing import Any

import pytest

from habitat_http.config import Config

from .conftest import Gateway, make_gateway, telem

FORM = b"callsign=M0ABC&type=LISTENER_INFO&time_created=1699999990&time_uploaded=1699999995"
ERROR_KEYS = {"ok", "error", "field", "errors"}


def post_form(gw: Gateway, body: bytes) -> Any:
    return gw.client.post("/message", data=body, content_type="application/x-www-form-urlencoded")


def post_json_text(gw: Gateway, body: bytes, path: str = "/message") -> Any:
    return gw.client.post(path, data=body, content_type="application/json")


def assert_refused(r: Any, field: str | None, *words: str) -> dict[str, Any]:
    assert r.status_code == 400, r.get_data(as_text=True)
    body: dict[str, Any] = r.get_json()
    assert body["ok"] is False and body["field"] == field, body
    for word in words:
        assert word in body["error"], body
    return body


# --- form bodies must be UTF-8 text ----------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (FORM + b"&data=%7B%7D&name=J%FCrgen", "name"),  # percent-encoded latin-1
        (FORM + b"&data=%7B%7D&name=J\xfcrgen", "name"),  # a raw latin-1 byte
        (FORM.replace(b"M0ABC", b"M0%FC"), "callsign"),
        (FORM + b'&data={"name":"J\xfcrgen"}', "data"),
        (FORM + b"&data=%7B%22name%22%3A%22J%FCrgen%22%7D", "data"),
    ],
)
def test_form_values_that_are_not_utf8_are_refused_naming_the_field(
    gw: Gateway, body: bytes, field: str
) -> None:
    assert_refused(post_form(gw, body), field, f"{field} must be UTF-8 text")
    assert gw.store.read_after(0) == []


def test_a_form_field_name_that_is_not_utf8_is_refused(gw: Gateway) -> None:
    assert_refused(post_form(gw, FORM + b"&data=%7B%7D&J%FCrgen=1"), None, "UTF-8 text")


def test_utf8_form_values_are_stored(gw: Gateway) -> None:
    name = "Jürgen 📡"
    body = FORM + b"&data=" + json.dumps({"name": name}).encode().replace(b" ", b"+")
    r = post_form(gw, body)
    assert r.status_code == 200, r.get_json()
    assert gw.store.read_after(0)[0].data == {"name": name}


# --- the same key twice ------------------------------------------------------------


def test_a_json_key_given_twice_is_refused_naming_it(gw: Gateway) -> None:
    body = json.dumps(telem()).encode().replace(b"{", b'{"callsign": "M0XYZ", ', 1)
    assert_refused(post_json_text(gw, body), "callsign", "callsign", "twice")
    assert gw.store.read_after(0) == []


def test_a_nested_json_key_given_twice_is_refused_naming_its_path(gw: Gateway) -> None:
    body = json.dumps(telem()).encode().replace(b'"data": {', b'"data": {"string": "QQ==", ', 1)
    assert_refused(post_json_text(gw, body), "data.string", "data.string", "twice")


def test_a_form_field_given_twice_is_refused_naming_it(gw: Gateway) -> None:
    body = FORM + b"&data=%7B%7D&callsign=M0XYZ"
    assert_refused(post_form(gw, body), "callsign", "callsign", "twice")
    assert gw.store.read_after(0) == []


def test_a_key_twice_in_form_data_json_is_refused(gw: Gateway) -> None:
    body = FORM + b"&data=%7B%22name%22%3A%22a%22%2C%22name%22%3A%22b%22%7D"
    assert_refused(post_form(gw, body), "data.name", "twice")


def test_a_key_twice_in_a_batch_item_rejects_that_item_only(gw: Gateway) -> None:
    good = json.dumps(telem()).encode()
    twice = json.dumps(telem("$$OTHER*00")).encode().replace(b"{", b'{"type": "TELEM", ', 1)
    r = post_json_text(gw, b"[" + good + b"," + twice + b"]", "/messages")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["accepted"] == 1 and body["rejected"] == 1
    rejected = body["results"][1]
    assert rejected["status"] == "rejected" and rejected["field"] == "type"
    assert "twice" in rejected["error"]


# --- numbers too long to read ------------------------------------------------------


@pytest.mark.parametrize("digits", [5001, 60_000])
def test_an_integer_with_too_many_digits_is_refused_plainly(gw: Gateway, digits: int) -> None:
    message = json.dumps({**telem(), "time_created": 0}).encode()
    body = message.replace(b'"time_created": 0', b'"time_created": ' + b"1" * digits)
    r = post_json_text(gw, body)
    error = assert_refused(r, "time_created", "number", "too long")["error"]
    assert "sys" not in error and "int_max_str_digits" not in error and "4300" not in error


def test_a_long_integer_in_a_batch_item_rejects_that_item_only(gw: Gateway) -> None:
    long_item = json.dumps(telem("$$LONG*00")).encode()[:-1] + b', "x": ' + b"9" * 5001 + b"}"
    r = post_json_text(
        gw, b"[" + json.dumps(telem()).encode() + b"," + long_item + b"]", "/messages"
    )
    assert r.status_code == 200, r.get_json()
    rejected = r.get_json()["results"][1]
    assert rejected["status"] == "rejected" and rejected["field"] == "x"
    assert "too long" in rejected["error"]
    assert len(gw.store.read_after(0)) == 1


def test_a_long_integer_in_form_data_is_refused_plainly(gw: Gateway) -> None:
    form = FORM + b"&data=%7B%22altitude%22%3A" + b"9" * 5001 + b"%7D"
    assert_refused(post_form(gw, form), "data.altitude", "too long")


def test_long_but_readable_numbers_are_judged_by_their_field(gw: Gateway) -> None:
    r = gw.post({**telem(), "time_created": 10**40})
    assert_refused(r, "time_created", "time_created")


# --- one shape for every error ------------------------------------------------------


def test_every_4xx_body_has_the_same_keys(gw: Gateway) -> None:
    big = Config().max_body + 1
    two_errors = gw.post({**telem(), "callsign": "", "type": "X"})
    answers = [
        (404, gw.client.get("/nowhere")),
        (405, gw.client.get("/message")),
        (413, post_json_text(gw, b" " * big)),
        (413, gw.client.post("/messages", json=[telem()] * 1001)),
        (415, gw.client.post("/message", data=b"x", content_type="text/plain")),
        (400, post_json_text(gw, b"{")),
        (400, two_errors),
        (400, gw.client.post("/message", json=telem(), headers={"Host": "a..b"})),
        (400, gw.client.post("/messages", json=[{"callsign": "x"}])),  # all rejected
    ]
    for status, r in answers:
        assert r.status_code == status, r.get_data(as_text=True)
        body = r.get_json()
        assert set(body) >= ERROR_KEYS, (status, body)
        assert body["ok"] is False and isinstance(body["error"], str)
        assert body["errors"][0] == {"field": body["field"], "error": body["error"]}
    assert [e["field"] for e in two_errors.get_json()["errors"]] == ["callsign", "type"]


def test_a_503_has_the_same_keys(tmp_path: Any) -> None:
    gw = make_gateway(tmp_path)
    gw.store.close()
    gw.db_path.unlink(missing_ok=True)
    gw.db_path.mkdir()  # a directory where the database should be: the store fails
    r = gw.post(telem())
    assert r.status_code == 503, r.get_data(as_text=True)
    assert set(r.get_json()) >= ERROR_KEYS


def test_a_rejected_batch_item_lists_all_its_errors(gw: Gateway) -> None:
    r = gw.client.post("/messages", json=[{**telem(), "callsign": "", "type": "X"}, telem()])
    assert r.status_code == 200
    rejected = r.get_json()["results"][0]
    assert rejected["status"] == "rejected"
    assert [e["field"] for e in rejected["errors"]] == ["callsign", "type"]
    assert rejected["errors"][0] == {"field": rejected["field"], "error": rejected["error"]}
    not_an_object = gw.client.post("/messages", json=[1, telem("$$B*00")]).get_json()["results"][0]
    assert not_an_object["errors"] == [{"field": None, "error": not_an_object["error"]}]
