"""A small SCGI client for tests, written from the SCGI spec (python.ca/scgi/protocol.txt).

A request is a netstring of NUL-separated header names and values, CONTENT_LENGTH
first and SCGI=1 among them, followed by the body. The server answers with a
CGI-style response (``Status: 200 OK`` and headers, a blank line, the body) and
closes the connection.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SCGIResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class SCGIClient:
    """Sends one request per connection to the Unix socket ``path``."""

    path: str
    remote_addr: str = "192.0.2.44"
    timeout: float = 10.0
    extra: dict[str, str] = field(default_factory=dict)

    def environ(
        self,
        method: str,
        uri: str,
        body: bytes,
        content_type: str | None,
        headers: dict[str, str] | None = None,
    ) -> list[tuple[str, str]]:
        query = uri.partition("?")[2]
        env = [
            ("CONTENT_LENGTH", str(len(body))),  # the spec puts it first
            ("SCGI", "1"),
            ("REQUEST_METHOD", method),
            ("REQUEST_URI", uri),
            ("QUERY_STRING", query),
            ("SERVER_NAME", "habitat.test"),
            ("SERVER_PORT", "80"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REMOTE_ADDR", self.remote_addr),
        ]
        if content_type:
            env.append(("CONTENT_TYPE", content_type))
        for name, value in (headers or {}).items():
            env.append(("HTTP_" + name.upper().replace("-", "_"), value))
        env.extend(self.extra.items())
        return env

    @staticmethod
    def netstring(pairs: list[tuple[str, str]]) -> bytes:
        block = b"".join(
            k.encode("latin-1") + b"\0" + v.encode("latin-1") + b"\0" for k, v in pairs
        )
        return str(len(block)).encode() + b":" + block + b","

    def raw(self, data: bytes, *, shutdown: bool = True) -> bytes:
        """Send raw bytes, then read everything the server sends until it closes."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
            sock.sendall(data)
            if shutdown:
                sock.shutdown(socket.SHUT_WR)
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

    def request(
        self,
        method: str,
        uri: str,
        body: bytes = b"",
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SCGIResponse:
        data = self.netstring(self.environ(method, uri, body, content_type, headers)) + body
        return parse_response(self.raw(data))

    def post_json(
        self, uri: str, message: Any, headers: dict[str, str] | None = None
    ) -> SCGIResponse:
        return self.request("POST", uri, json.dumps(message).encode(), "application/json", headers)


def parse_response(data: bytes) -> SCGIResponse:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"no complete SCGI response: {data[:200]!r}")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    status = int(headers.pop("Status").split()[0])
    return SCGIResponse(status, headers, body)
