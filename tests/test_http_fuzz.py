"""Nothing a client sends may produce a 5xx: malformed HTTP at the raw-socket level
against a real gunicorn started with deploy/gunicorn.conf.py.

Requests are generated from pieces (request line, Host, framing headers, chunked
bodies, content codings, raw bytes), sent over loopback, and every status line
that comes back is checked. gunicorn may refuse a request itself with its own 400
before the app sees it; what must never appear is a 5xx. Afterwards the server
still stores a valid message.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
from collections.abc import Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import ROOT, Server, start_gunicorn, telem

pytestmark = pytest.mark.slow

STATUS_LINE = re.compile(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3})")
MESSAGE = json.dumps(telem()).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("fuzz")
    config = str(ROOT / "deploy/gunicorn.conf.py")
    # The deploy config; only the address is ours (a free loopback port).
    gunicorn = start_gunicorn(tmp, {"HABITAT_DB": f"sqlite:///{tmp}/habitat.db"}, "-c", config)
    yield gunicorn
    gunicorn.stop()
    log = gunicorn.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]


def exchange(server: Server, data: bytes) -> bytes:
    """Send raw bytes, half-close, and read everything until the server closes."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before it has read everything
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def statuses(reply: bytes) -> list[int]:
    return [int(code) for code in STATUS_LINE.findall(reply)]


def request(
    body: bytes,
    *,
    path: str = "/message",
    host: bytes = b"127.0.0.1",
    headers: tuple[bytes, ...] = (),
    chunked: bool = True,
) -> bytes:
    head = [f"POST {path} HTTP/1.1".encode(), b"Host: " + host, b"Content-Type: application/json"]
    if chunked:
        head.append(b"Transfer-Encoding: chunked")
    head.extend(headers)
    head.append(b"Connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def chunk(data: bytes, size: bytes | None = None, end: bytes = b"\r\n") -> bytes:
    return (size if size is not None else f"{len(data):x}".encode()) + b"\r\n" + data + end


def assert_answered_without_5xx(reply: bytes) -> list[int]:
    """No 5xx, except gunicorn's own 501 for a transfer coding it does not know.

    That 501 is what RFC 9112 section 6.1 asks of a server, and gunicorn sends it
    before the app is called; every answer from the app is JSON.
    """
    codes = statuses(reply)
    for code in codes:
        if code == 501:
            assert b"Unsupported transfer coding" in reply and b"application/json" not in reply
        else:
            assert code < 500, reply[:600]
    return codes


# --- the cases reported from outside, each checked for its exact answer -------------

BROKEN_CHUNKS = {
    "size zz": chunk(MESSAGE, b"zz") + b"0\r\n\r\n",
    "size -5": chunk(MESSAGE, b"-5") + b"0\r\n\r\n",
    "size 0x3": chunk(b"abc", b"0x3") + b"0\r\n\r\n",
    "size with trailing space": chunk(b"abc", b"3 ") + b"0\r\n\r\n",
    "XX instead of CRLF": chunk(MESSAGE, end=b"XX") + b"0\r\n\r\n",
    "control byte in extension": chunk(MESSAGE, f"{len(MESSAGE):x};\x01bad".encode())
    + b"0\r\n\r\n",
    "trailer without colon": chunk(MESSAGE) + b"0\r\nnot a header\r\n\r\n",
    "no last CRLF": chunk(MESSAGE) + b"0\r\n",
    "body ends inside a chunk": b"ffff\r\n" + MESSAGE,
}


@pytest.mark.parametrize("body", BROKEN_CHUNKS.values(), ids=BROKEN_CHUNKS.keys())
def test_broken_chunked_framing_gets_a_json_400(server: Server, body: bytes) -> None:
    reply = exchange(server, request(body))
    assert statuses(reply) == [400], reply[:600]
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert b"application/json" in head
    answer = json.loads(payload)
    assert answer["ok"] is False and answer["field"] is None
    assert "framing" in answer["error"], answer


@pytest.mark.parametrize("host", [b"a..b", b"..", b"127..0.1", b"a" * 64 + b".example", b"a" * 64])
def test_bad_host_gets_a_json_400(server: Server, host: bytes) -> None:
    reply = exchange(
        server,
        request(
            MESSAGE, host=host, chunked=False, headers=(f"Content-Length: {len(MESSAGE)}".encode(),)
        ),
    )
    codes = assert_answered_without_5xx(reply)
    assert codes == [400], reply[:600]
    head, _, payload = reply.partition(b"\r\n\r\n")
    if b"application/json" in head:  # gunicorn may refuse some before the app
        answer = json.loads(payload)
        assert set(answer) >= {"ok", "error", "field", "errors"}
        assert answer["ok"] is False


def test_a_valid_chunked_message_is_stored(server: Server) -> None:
    half = len(MESSAGE) // 2
    reply = exchange(server, request(chunk(MESSAGE[:half]) + chunk(MESSAGE[half:]) + b"0\r\n\r\n"))
    assert statuses(reply) == [200], reply[:600]


# --- generated malformed requests ----------------------------------------------------

HOSTS = [
    b"127.0.0.1",
    b"",
    b"a..b",
    b"..",
    b".",
    b"127..0.1",
    b"a" * 64,
    b"[::1",
    b"[::1]:99999",
    b"host:port",
    b"a b",
    b"\xff\xfe",
    b"-a-.b",
    b"xn--",
    b"localhost:0",
    b"%00",
]
METHODS = [b"POST", b"GET", b"HEAD", b"PUT", b"post", b"P\x00ST", b"OPTIONS", b"X" * 40]
TARGETS = [
    b"/message",
    b"/messages",
    b"/",
    b"*",
    b"http://127.0.0.1/message",
    b"//message",
    b"/message?%zz",
    b"/%ff%fe",
    b"/message/../message",
    b"/a%00b",
    b"message",
    b"/" + b"x" * 300,
]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1 x", b""]
CONTENT_TYPES = [
    b"application/json",
    b"application/x-www-form-urlencoded",
    b"application/json; charset=latin-1",
    b"text/plain",
    b"multipart/form-data; boundary=x",
    b"application/json; \xff",
]
FRAMING_HEADERS = [
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: Chunked",
    b"Transfer-Encoding: chunked, chunked",
    b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding: chunked, gzip",
    b"Transfer-Encoding: identity",
    b"Transfer-Encoding: x",
    b"Content-Length: 5",
    b"Content-Length: -1",
    b"Content-Length: abc",
    b"Content-Length: 1e3",
    b"Content-Length:  7 ",
    b"Content-Length: 99999999999999999999",
    b"Content-Length: 0",
    b"Expect: 100-continue",
    b"Expect: nonsense",
]
OTHER_HEADERS = [
    b"Content-Encoding: gzip",
    b"Content-Encoding: deflate",
    b"Content-Encoding: br",
    b"Content-Encoding: gzip, gzip",
    b"Content-Encoding: identity",
    b"X-Forwarded-For: \xff, ::1, 1.2.3.4",
    b"Bad Header: x",
    b"NoColon",
    b" folded: continuation",
    b"X-Null: a\x00b",
    b"X-Long: " + b"y" * 9000,
    b"Connection: keep-alive",
    b"Connection: upgrade",
    b"Upgrade: h2c",
]
CHUNK_SIZES = [None, b"zz", b"-5", b"0x3", b"3 ", b" 3", b"+3", b"", b"f" * 20, b"3;ext", b"3;\x01"]
CHUNK_ENDS = [b"\r\n", b"XX", b"\n", b"", b"\r", b"\r\n\r\n"]
LAST_CHUNKS = [
    b"0\r\n\r\n",
    b"0\r\n",
    b"",
    b"0\r\nX: y\r\n\r\n",
    b"0\r\nbad\r\n\r\n",
    b"0;\x7f\r\n\r\n",
]


@st.composite
def chunked_bodies(draw: st.DrawFn) -> bytes:
    payload = draw(st.sampled_from([MESSAGE, gzip.compress(MESSAGE), b"", b"{}", b"\xff" * 8]))
    pieces = draw(st.integers(1, 3))
    step = max(1, len(payload) // pieces)
    out = b""
    for start in range(0, max(len(payload), 1), step):
        out += chunk(
            payload[start : start + step],
            draw(st.sampled_from(CHUNK_SIZES)),
            draw(st.sampled_from(CHUNK_ENDS)),
        )
    return out + draw(st.sampled_from(LAST_CHUNKS))


@st.composite
def malformed_requests(draw: st.DrawFn) -> bytes:
    line = b" ".join(
        [
            draw(st.sampled_from(METHODS)),
            draw(st.sampled_from(TARGETS)),
            draw(st.sampled_from(VERSIONS)),
        ]
    )
    headers = [b"Host: " + draw(st.sampled_from(HOSTS))]
    headers += [b"Content-Type: " + draw(st.sampled_from(CONTENT_TYPES))]
    headers += draw(st.lists(st.sampled_from(FRAMING_HEADERS), max_size=3))
    headers += draw(st.lists(st.sampled_from(OTHER_HEADERS), max_size=2))
    headers = draw(st.permutations(headers))
    body = draw(
        st.one_of(
            chunked_bodies(),
            st.sampled_from([MESSAGE, gzip.compress(MESSAGE), b"name=J%FCrgen", b"\x1f\x8b\x08"]),
            st.binary(max_size=200),
        )
    )
    newline = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    return newline.join([line, *headers]) + newline + newline + body


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same cases on every run
)
@given(data=malformed_requests())
def test_generated_malformed_requests_never_get_a_5xx(server: Server, data: bytes) -> None:
    assert_answered_without_5xx(exchange(server, data))


def test_a_valid_message_is_stored_after_the_fuzzing(server: Server) -> None:
    # Runs after the generated cases (pytest keeps the file's order).
    r = requests.post(server.url + "/message", json=telem(callsign="M0AFTER"), timeout=15)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True
