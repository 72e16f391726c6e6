"""Nothing a client sends may produce a 500: random bodies, fields and headers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import make_gateway, telem

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["callsign", "type", "time_created", "time_uploaded", "data"]
fuzz_settings = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def assert_client_error_or_ok(r: Any) -> None:
    assert r.status_code in (200, 400, 413, 415), r.get_data(as_text=True)
    body = r.get_json()
    assert isinstance(body, dict) and isinstance(body["ok"], bool)
    if r.status_code != 200:
        assert isinstance(body["error"], str) and body["error"]


@fuzz_settings
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "application/ld+json",
            "text/plain",
        ]
    ),
)
def test_random_bytes(tmp_path: Path, body: bytes, content_type: str) -> None:
    gw = make_gateway(tmp_path)
    assert_client_error_or_ok(gw.client.post("/message", data=body, content_type=content_type))
    gw.store.close()


@fuzz_settings
@given(
    field=st.sampled_from(FIELDS),
    value=json_values,
    message_type=st.sampled_from(["RECEIVED_TELEM", "LISTENER_INFO", "LISTENER_TELEM"]),
)
def test_one_field_replaced_by_random_json(
    tmp_path: Path, field: str, value: Any, message_type: str
) -> None:
    gw = make_gateway(tmp_path)
    message = {**telem(), "type": message_type, field: value}
    r = gw.post(message)
    assert_client_error_or_ok(r)
    if r.status_code == 200:
        assert gw.store.read_after(r.get_json()["id"] - 1)[0].type == message["type"]
    gw.store.close()


@fuzz_settings
@given(
    data=st.dictionaries(
        st.sampled_from(
            [
                "string",
                "frequency",
                "name",
                "location",
                "radio",
                "antenna",
                "latitude",
                "longitude",
                "altitude",
                "time",
                "extra",
            ]
        ),
        json_values,
        max_size=6,
    ),
    message_type=st.sampled_from(["RECEIVED_TELEM", "LISTENER_INFO", "LISTENER_TELEM"]),
)
def test_random_data_objects(tmp_path: Path, data: dict[str, Any], message_type: str) -> None:
    gw = make_gateway(tmp_path)
    assert_client_error_or_ok(gw.post({**telem(), "type": message_type, "data": data}))
    gw.store.close()


@fuzz_settings
@given(
    fields=st.dictionaries(st.sampled_from([*FIELDS, "other"]), st.text(max_size=40), max_size=6)
)
def test_random_form_fields(tmp_path: Path, fields: dict[str, str]) -> None:
    gw = make_gateway(tmp_path)
    assert_client_error_or_ok(gw.client.post("/message", data=fields))
    gw.store.close()


def test_stored_data_is_always_json_serialisable(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    assert gw.post(telem(frequency=1.5e9)).status_code == 200
    [m] = gw.store.read_after(0)
    assert json.loads(json.dumps(m.data)) == m.data
    gw.store.close()
