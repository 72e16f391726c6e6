"""Client IP: REMOTE_ADDR, and X-Forwarded-For only behind HABITAT_TRUSTED_PROXIES."""

from __future__ import annotations

from pathlib import Path

import pytest

from habitat_http.config import Config

from .conftest import CLIENT_IP, make_gateway, telem


def stored_ip(tmp_path: Path, proxies: int, xff: str | None, remote: str = CLIENT_IP) -> str | None:
    gw = make_gateway(tmp_path, Config(trusted_proxies=proxies))
    headers = {"X-Forwarded-For": xff} if xff is not None else {}
    r = gw.client.post(
        "/message", json=telem(), headers=headers, environ_base={"REMOTE_ADDR": remote}
    )
    assert r.status_code == 200
    [message] = gw.store.read_after(0)
    gw.store.close()
    return message.ip


def test_ip_comes_from_remote_addr(tmp_path: Path) -> None:
    assert stored_ip(tmp_path, 0, None, remote="198.51.100.23") == "198.51.100.23"


def test_ipv6_remote_addr(tmp_path: Path) -> None:
    assert stored_ip(tmp_path, 0, None, remote="2001:db8::1") == "2001:db8::1"


def test_forwarded_for_is_ignored_by_default(tmp_path: Path) -> None:
    assert stored_ip(tmp_path, 0, "203.0.113.9") == CLIENT_IP


def test_one_trusted_proxy_uses_the_right_most_entry(tmp_path: Path) -> None:
    # The client forged the first entry; the proxy appended the real address.
    assert stored_ip(tmp_path, 1, "6.6.6.6, 203.0.113.9") == "203.0.113.9"


def test_two_trusted_proxies(tmp_path: Path) -> None:
    assert stored_ip(tmp_path, 2, "6.6.6.6, 203.0.113.9, 10.0.0.2") == "203.0.113.9"


@pytest.mark.parametrize("xff", ["", "not-an-ip", ",,,"])
def test_odd_forwarded_for_never_breaks_a_request(tmp_path: Path, xff: str) -> None:
    ip = stored_ip(tmp_path, 1, xff)
    assert ip in (CLIENT_IP, xff.split(",")[-1].strip())


def test_wsgi_app_skips_proxyfix(tmp_path: Path) -> None:
    # The SCGI path serves app.wsgi_app: X-Forwarded-For is never applied there.
    from werkzeug.test import Client

    gw = make_gateway(tmp_path, Config(trusted_proxies=1))
    client = Client(gw.app.wsgi_app)
    r = client.post(
        "/message",
        json=telem(),
        headers={"X-Forwarded-For": "203.0.113.9"},
        environ_base={"REMOTE_ADDR": CLIENT_IP},
    )
    assert r.status_code == 200
    assert gw.store.read_after(0)[0].ip == CLIENT_IP
