"""MountedApp, the SCGI path's environ fix-ups, without a server."""

from __future__ import annotations

import io
from typing import Any

import pytest

from habitat_http.scgi import DRAIN_LIMIT, MountedApp


class StrictInput(io.BytesIO):
    """A body stream that fails if read past CONTENT_LENGTH, like a socket would block."""

    def __init__(self, data: bytes, length: int) -> None:
        super().__init__(data)
        self.length = length

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self.length:
            raise AssertionError("read past CONTENT_LENGTH: this would block on a socket")
        return super().read(size)


def call(app: Any, environ: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    seen: dict[str, Any] = {}

    def inner(env: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(env)
        reads = env.get("test.reads", 0)
        if reads:
            env["wsgi.input"].read(reads)
        start_response("200 OK", [])
        return [b"ok"]

    body = MountedApp(inner, app)(environ, lambda *a: None)
    return seen, list(body)


def env(uri: str, body: bytes = b"", reads: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "REQUEST_URI": uri,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": StrictInput(body, len(body)),
        "test.reads": reads,
        **extra,
    }


@pytest.mark.parametrize(
    ("prefix", "uri", "script_name", "path_info"),
    [
        ("/habitat", "/habitat/message", "/habitat", "/message"),
        ("/habitat", "/habitat/message?x=1", "/habitat", "/message"),
        ("/habitat", "/habitat", "/habitat", ""),
        ("/habitat/", "/habitat/", "/habitat", "/"),
        ("/habitat", "/habitatx/message", "", "/habitatx/message"),
        ("", "/message", "", "/message"),
        ("", "/a%20b/%C3%A9", "", "/a b/\xc3\xa9"),  # PEP 3333: decoded bytes as latin-1
    ],
)
def test_script_name_and_path_info(prefix: str, uri: str, script_name: str, path_info: str) -> None:
    seen, _ = call(prefix, env(uri, SCRIPT_NAME="/habitat/message", PATH_INFO=""))
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == (script_name, path_info)


def test_no_request_uri_keeps_the_servers_values() -> None:
    seen, _ = call(
        "/habitat",
        {"SCRIPT_NAME": "/x", "PATH_INFO": "/y", "CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO()},
    )
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == ("/x", "/y")


def test_a_fully_read_body_is_not_read_again() -> None:
    e = env("/message", b"x" * 100, reads=100)
    call("", e)  # StrictInput raises if the drain reads past the body


def test_an_unread_body_is_drained_up_to_the_limit() -> None:
    small = env("/message", b"x" * 100, reads=10)
    call("", small)
    assert small["wsgi.input"].consumed == 100
    big = env("/message", b"x" * (DRAIN_LIMIT + 5000))
    call("", big)
    assert big["wsgi.input"].consumed == DRAIN_LIMIT


@pytest.mark.parametrize(
    ("sent", "uri", "script_name", "path_info"),
    [
        ("/habitat", "/habitat/message", "/habitat", "/message"),  # nginx scgi_param
        ("/habitat/", "/habitat/message", "/habitat", "/message"),
        ("/habitat", "/habitat/", "/habitat", "/"),
        ("/habitat/message", "/habitat/message", "", "/habitat/message"),  # Apache: whole path
        ("/habitat", "/habitatx/message", "", "/habitatx/message"),
        ("/other", "/habitat/message", "", "/habitat/message"),
        ("", "/message", "", "/message"),
    ],
)
def test_a_script_name_sent_by_the_front_server_is_the_mount_point(
    sent: str, uri: str, script_name: str, path_info: str
) -> None:
    seen, _ = call("", env(uri, SCRIPT_NAME=sent, PATH_INFO=""))
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == (script_name, path_info)


def test_the_prefix_wins_over_a_sent_script_name() -> None:
    seen, _ = call("/habitat", env("/habitat/message", SCRIPT_NAME="/habitat/message"))
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == ("/habitat", "/message")


def test_the_body_is_content_length_bytes_even_when_chunked_was_passed() -> None:
    from werkzeug.wrappers import Request

    body = b'{"a": 1}'
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["data"] = Request(environ).get_data()
        start_response("200 OK", [])
        return []

    environ = env("/message", body, HTTP_TRANSFER_ENCODING="chunked")
    MountedApp(app, "")(environ, lambda *a: None)  # type: ignore[arg-type]
    assert seen["data"] == body
