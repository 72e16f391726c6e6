"""POST /messages, compressed bodies and idempotent retries."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from typing import Any

import pytest

from .conftest import Gateway, telem


def batch(gw: Gateway, items: Any, **kw: Any) -> Any:
    return gw.client.post(
        "/messages", data=json.dumps(items), content_type="application/json", **kw
    )


def sentence(n: int) -> dict[str, Any]:
    return telem(f"$$HABITAT,{n},12:00:{n % 60:02d},52.0,0.1,1000*00", callsign=f"M{n % 7}ABC")


# --- batches ----------------------------------------------------------------------


def test_mixed_batch_stores_the_valid_items(gw: Gateway) -> None:
    items = [
        sentence(0),
        {**sentence(1), "callsign": "N0CALL"},
        sentence(2),
        {**sentence(3), "data": {"string": "not base64!"}},
        "not an object",
        sentence(5),
    ]
    r = batch(gw, items)
    assert r.status_code == 200
    body = r.get_json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (3, 0, 3)
    assert [x["index"] for x in body["results"]] == list(range(6))
    assert [x["status"] for x in body["results"]] == [
        "stored",
        "rejected",
        "stored",
        "rejected",
        "rejected",
        "stored",
    ]
    assert body["results"][1]["field"] == "callsign"
    assert body["results"][3]["field"] == "data.string"
    assert body["results"][4]["field"] is None and "object" in body["results"][4]["error"]
    ids = [x["id"] for x in body["results"] if x["status"] == "stored"]
    stored = gw.store.read_after(0)
    assert [m.id for m in stored] == ids
    assert [m.data["string"] for m in stored] == [items[i]["data"]["string"] for i in (0, 2, 5)]


def test_all_rejected_is_400_with_the_same_shape(gw: Gateway) -> None:
    r = batch(gw, [{"callsign": "x"}, {**telem(), "type": "TELEM"}])
    assert r.status_code == 400
    body = r.get_json()
    assert (body["accepted"], body["rejected"]) == (0, 2)
    assert body["results"][1]["field"] == "type"
    assert gw.store.read_after(0) == []


@pytest.mark.parametrize(("items", "status"), [({"a": 1}, 400), ([], 400), ("x", 400)])
def test_the_body_must_be_a_non_empty_array(gw: Gateway, items: Any, status: int) -> None:
    r = batch(gw, items)
    assert r.status_code == status and r.get_json()["error"]


def test_1001_items_are_refused_saying_why(gw: Gateway) -> None:
    r = batch(gw, [sentence(0)] * 1001)
    assert r.status_code == 413
    assert "1001" in r.get_json()["error"] and "1000" in r.get_json()["error"]
    assert batch(gw, [sentence(n) for n in range(1000)]).get_json()["accepted"] == 1000


def test_batch_body_limit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from habitat_http.config import Config

    from .conftest import make_gateway

    gw = make_gateway(tmp_path, Config(max_batch_body=2000))
    r = batch(gw, [sentence(n) for n in range(20)])
    assert r.status_code == 413 and "2000 bytes" in r.get_json()["error"]


def test_batches_are_json_only(gw: Gateway) -> None:
    r = gw.client.post("/messages", data={"callsign": "M0ABC"})
    assert r.status_code == 415


# --- compressed bodies ------------------------------------------------------------


def deflate(data: bytes, wbits: int) -> bytes:
    engine = zlib.compressobj(wbits=wbits)
    return engine.compress(data) + engine.flush()


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", lambda d: deflate(d, zlib.MAX_WBITS)),  # zlib, as RFC 9110 says
        ("deflate", lambda d: deflate(d, -zlib.MAX_WBITS)),  # raw, as some clients send
        ("identity", lambda d: d),
        ("gzip, gzip", lambda d: gzip.compress(gzip.compress(d))),
    ],
)
def test_compressed_bodies_on_both_endpoints(gw: Gateway, encoding: str, compress: Any) -> None:
    one = compress(json.dumps(sentence(1)).encode())
    r = gw.client.post(
        "/message",
        data=one,
        content_type="application/json",
        headers={"Content-Encoding": encoding},
    )
    assert r.status_code == 200, r.get_json()
    many = compress(json.dumps([sentence(n) for n in range(2, 12)]).encode())
    r = gw.client.post(
        "/messages",
        data=many,
        content_type="application/json",
        headers={"Content-Encoding": encoding},
    )
    assert r.status_code == 200 and r.get_json()["accepted"] == 10
    assert len(gw.store.read_after(0)) == 11


def test_gzip_form_body(gw: Gateway) -> None:
    from urllib.parse import urlencode

    form = urlencode(
        {
            "callsign": "M0ABC",
            "type": "LISTENER_INFO",
            "time_created": "1",
            "time_uploaded": "2",
            "data": json.dumps({"name": "Zoë"}),
        }
    ).encode()
    r = gw.client.post(
        "/message",
        data=gzip.compress(form),
        content_type="application/x-www-form-urlencoded",
        headers={"Content-Encoding": "gzip"},
    )
    assert r.status_code == 200
    assert gw.store.read_after(0)[0].data == {"name": "Zoë"}


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """1 GiB of zeros, gzipped to about 1 MB."""
    engine = zlib.compressobj(9, wbits=16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    parts = [engine.compress(chunk) for _ in range(1024)]
    return b"".join(parts) + engine.flush()


@pytest.mark.parametrize("path", ["/message", "/messages"])
def test_a_gzip_bomb_is_refused_in_little_memory(gw: Gateway, bomb: bytes, path: str) -> None:
    assert len(bomb) < 1024 * 1024  # small enough to pass the batch limit compressed
    tracemalloc.start()
    try:
        r = gw.client.post(
            path, data=bomb, content_type="application/json", headers={"Content-Encoding": "gzip"}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 413
    assert peak < 8 * 1024 * 1024  # the compressed body and at most 1 MiB of output


@pytest.mark.parametrize(
    ("data", "encoding", "status"),
    [
        (b"\x1f\x8b\x08\x00garbage", "gzip", 400),
        (gzip.compress(b'{"a": 1}')[:-12], "gzip", 400),  # truncated
        (b"not deflate at all", "deflate", 400),
        (gzip.compress(b"{}") + b"trailing", "gzip", 400),
        (b"{}", "br", 415),
        (b"{}", "compress", 415),
    ],
)
def test_corrupt_or_unknown_encodings(gw: Gateway, data: bytes, encoding: str, status: int) -> None:
    for path in ("/message", "/messages"):
        r = gw.client.post(
            path, data=data, content_type="application/json", headers={"Content-Encoding": encoding}
        )
        assert r.status_code == status, (path, r.get_json())
        assert r.get_json()["error"]
    assert gw.post(telem()).status_code == 200  # and the next request is served


# --- idempotent retries -----------------------------------------------------------


def test_a_retry_is_stored_once(gw: Gateway) -> None:
    first = gw.post(telem(time_uploaded=1_699_999_995)).get_json()
    gw.clock.now += 30  # the client timed out and tries again with a fresh time_uploaded
    retry = gw.post(telem(time_uploaded=1_700_000_025)).get_json()
    assert first["duplicate"] is False and retry["duplicate"] is True
    assert retry["id"] == first["id"]
    assert len(gw.store.read_after(0)) == 1


def test_different_content_is_not_a_duplicate(gw: Gateway) -> None:
    base = telem()
    variants = [
        base,
        {**base, "callsign": "M1ABC"},
        {**base, "time_created": base["time_created"] - 1},
        {**base, "data": {**base["data"], "frequency": 1.0}},
    ]
    answers = [gw.post(v).get_json() for v in variants]
    assert [a["duplicate"] for a in answers] == [False] * 4
    assert len({a["id"] for a in answers}) == 4


def test_explicit_message_id(gw: Gateway) -> None:
    a = gw.post({**sentence(1), "message_id": "rx-42"}).get_json()
    # Other content, same callsign and message_id: the client says it is the same message.
    b = gw.post({**sentence(2), "callsign": "M1ABC", "message_id": "rx-42"}).get_json()
    c = gw.post({**sentence(1), "message_id": "rx-42", "callsign": "M9XYZ"}).get_json()
    assert b["duplicate"] is True and b["id"] == a["id"]
    assert c["duplicate"] is False  # message ids are scoped to the callsign


@pytest.mark.parametrize("message_id", ["", "x" * 65, "bad\nid", 42, None])
def test_bad_message_ids(gw: Gateway, message_id: Any) -> None:
    r = gw.post({**telem(), "message_id": message_id})
    if message_id is None:
        assert r.status_code == 200  # null means absent
    else:
        assert r.status_code == 400 and r.get_json()["field"] == "message_id"


def test_the_same_batch_twice(gw: Gateway) -> None:
    items = [sentence(n) for n in range(50)]
    first = batch(gw, items).get_json()
    second = batch(gw, items).get_json()
    assert (second["accepted"], second["duplicates"]) == (0, 50)
    assert [r["id"] for r in second["results"]] == [r["id"] for r in first["results"]]
    assert {r["status"] for r in second["results"]} == {"duplicate"}


def test_duplicates_inside_one_batch(gw: Gateway) -> None:
    body = batch(gw, [sentence(1), sentence(1), sentence(2)]).get_json()
    assert [r["status"] for r in body["results"]] == ["stored", "duplicate", "stored"]
    assert body["results"][0]["id"] == body["results"][1]["id"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_lone_surrogates_in_utf16_and_utf32_bodies_are_refused(gw: Gateway, encoding: str) -> None:
    body = json.dumps([{**telem(), "data": {**telem()["data"], "x": 1}}])
    body = body.replace('"x"', '"\\ud800"').encode(encoding)
    r = gw.client.post("/messages", data=body, content_type="application/json")
    assert r.status_code == 400 and "surrogate" in r.get_json()["error"]
    assert gw.store.read_after(0) == []
