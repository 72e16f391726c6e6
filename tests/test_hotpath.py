"""The plain-WSGI hot path (habitat_http/hotpath.py) answers exactly as the werkzeug
path does, and stores the same rows, for any body."""

from __future__ import annotations

import gzip
import json
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from habitat_http.hotpath import HotPath

from .conftest import Gateway, make_gateway, telem
from .test_validator import bodies, valid_messages


def rows(gw: Gateway) -> list[tuple[Any, ...]]:
    gw.store.initialize()
    with closing(sqlite3.connect(gw.db_path)) as conn:
        return conn.execute("SELECT * FROM messages ORDER BY id").fetchall()


class CountingHotPath(HotPath):
    """A HotPath that counts the requests it served itself."""

    served = 0

    def __call__(self, environ: Any, start_response: Any) -> Any:
        answer = super().__call__(environ, start_response)
        self.served += answer is not None
        return answer


def answer(gw: Gateway, path: str, raw: bytes, content_type: str) -> tuple[Any, ...]:
    r = gw.client.post(path, data=raw, content_type=content_type)
    headers = sorted((k, v) for k, v in r.headers.items())
    return r.status_code, headers, r.get_data()


batch_bodies = st.lists(valid_messages(), min_size=1, max_size=4).map(
    lambda items: json.dumps(items).encode()
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=bodies(valid_messages()) | bodies() | batch_bodies | st.binary(max_size=120),
    path=st.sampled_from(["/message", "/messages"]),
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain"]
    ),
    again=st.booleans(),
)
def test_both_paths_give_the_same_answer_and_rows(
    raw: bytes, path: str, content_type: str, again: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "hot").mkdir()
        (Path(tmp) / "slow").mkdir()
        hot = make_gateway(Path(tmp) / "hot")
        slow = make_gateway(Path(tmp) / "slow", hot=False)
        counter = CountingHotPath(hot.app)
        hot.app.hot_path = counter
        for _ in range(2 if again else 1):  # a retry is stored once on both
            assert answer(hot, path, raw, content_type) == answer(slow, path, raw, content_type)
        assert rows(hot) == rows(slow)
        # (werkzeug's test client sends no Content-Length for an empty body)
        common = bool(raw) and content_type != "text/plain"
        assert counter.served == common * (2 if again else 1)
        hot.store.close()
        slow.store.close()


def test_uncommon_requests_fall_through_to_werkzeug(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    counter = CountingHotPath(gw.app)
    gw.app.hot_path = counter
    raw = json.dumps(telem()).encode()
    assert (
        gw.client.post(
            "/message",
            data=gzip.compress(raw),
            content_type="application/json",
            headers={"Content-Encoding": "gzip"},
        ).status_code
        == 200
    )
    assert (
        gw.client.post(
            "/message", data=raw, content_type="application/json", headers={"Host": "a..b"}
        ).status_code
        == 400
    )
    assert gw.client.get("/").status_code == 200
    assert counter.served == 0
    assert gw.client.post("/message", data=raw, content_type="application/json").status_code == 200
    assert counter.served == 1
