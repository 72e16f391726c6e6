"""The tracker's JSON API on a database filled by the real pipeline: three real
flights replayed through ``habitat-http serve`` (see tests/tracker_flights.py), read
with werkzeug's test client, through ``serve``'s ``/tracker`` mount, and through a
gunicorn serving the tracker alone."""

from __future__ import annotations

import base64
import csv
import io
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.test import Client

from habitat_http.config import Config
from habitat_http.tracker import create_app, state, views
from habitat_http.tracker.export import KML_NAMESPACE

from .tracker_flights import BROKEN, FLIGHTS, STATIONS, Flights, jsonl, replay_flights

ERROR_KEYS = {"ok", "error", "field", "errors"}


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flights]:
    yield from replay_flights(tmp_path_factory.mktemp("flights"))


@pytest.fixture(scope="module")
def client(flights: Flights) -> Client:
    return Client(create_app(Config(db_url=flights.db_url)))


@pytest.fixture(scope="module")
def reference() -> dict[str, list[dict[str, Any]]]:
    """habitat's own parse of each flight's sentences, in flight order."""
    return {f: [r for r in jsonl("habitat_parsed.jsonl") if r["flight"] == f] for f in FLIGHTS}


def get(client: Client, url: str) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    answer: dict[str, Any] = response.get_json()
    return answer


def whole_track(client: Client, callsign: str, limit: int = 1000) -> list[dict[str, Any]]:
    url: str | None = f"/api/payloads/{callsign}/telemetry?limit={limit}"
    points: list[dict[str, Any]] = []
    while url:
        answer = get(client, url)
        points += answer["points"]
        url = answer["next"]
    return points


def test_payloads_are_the_three_flights_with_their_latest_position_and_state(
    client: Client, flights: Flights, reference: dict[str, list[dict[str, Any]]]
) -> None:
    answer = get(client, "/api/payloads")
    assert answer["ok"] is True and answer["next"] is None
    assert answer["since_iso"] == views.iso(answer["since"])
    payloads = {p["callsign"]: p for p in answer["payloads"]}
    assert set(payloads) == {*FLIGHTS, "BZ3"}  # BZ3: the string that did not parse
    # Latest heard first: SP ended 10 min ago, WG3 20, STELLA2 30.
    assert [p["callsign"] for p in answer["payloads"]][:3] == list(FLIGHTS)
    for flight in FLIGHTS:
        p = payloads[flight]
        rows = reference[flight]
        assert p["strings"] == len({r["sentence"] for r in rows})
        assert p["parse_failures"] == 0
        assert p["max_altitude"] == max(float(r["habitat_parsed"]["altitude"]) for r in rows)
        recent = flights.archive.recent(flight, state.RATE_POINTS)
        assert p["position"]["altitude"] == recent[0]["altitude"]
        assert p["position"]["altitude"] == float(rows[-1]["habitat_parsed"]["altitude"])
        assert p["position"]["latitude"] == pytest.approx(
            float(rows[-1]["habitat_parsed"]["latitude"])
        )
        assert p["position"]["time_iso"] == views.iso(p["position"]["time"])
        assert p["last_heard_iso"] == views.iso(p["last_heard"])
        assert p["vertical_rate"] == pytest.approx(state.vertical_rate(recent), abs=0.01)
        assert p["state"] == state.flight_state(state.vertical_rate(recent))
        assert p["state"] in ("ascending", "descending", "landed")
    assert payloads["BZ3"]["parse_failures"] == 1 and payloads["BZ3"]["position"] is None
    assert payloads["BZ3"]["state"] == "unknown"
    # Paged: one at a time, the same payloads in the same order.
    url: str | None = "/api/payloads?limit=1"
    paged = []
    while url:
        page = get(client, url)
        paged += [p["callsign"] for p in page["payloads"]]
        url = page["next"]
    assert paged == [p["callsign"] for p in answer["payloads"]]


def test_the_track_is_paged_oldest_first_with_each_strings_receivers(
    client: Client, flights: Flights, reference: dict[str, list[dict[str, Any]]]
) -> None:
    sentences = jsonl("ukhas_sentences.jsonl")
    for flight in FLIGHTS:
        points = whole_track(client, flight, limit=37)
        assert points == whole_track(client, flight)  # page size does not matter
        assert len({p["_id"] for p in points}) == len(points)
        assert [p["time"] for p in points] == sorted(p["time"] for p in points)
        assert len(points) == len(flights.archive.track(flight, limit=5000))
        heard_by: dict[str, set[str]] = {}
        for row in sentences:
            if row["flight"] == flight:
                heard_by.setdefault(row["sentence"], set()).update(
                    c.upper() for c in row["receivers"]
                )
        for p in points:
            assert {r["callsign"] for r in p["receivers"]} == heard_by[p["sentence"]]
            assert all(
                r["time_created_iso"] == views.iso(r["time_created"]) for r in p["receivers"]
            )
            assert {r["frequency"] for r in p["receivers"]} == {
                434_075_000 + 250 * FLIGHTS.index(flight)
            }
        answer = get(client, f"/api/payloads/{flight}/telemetry?limit=1")
        assert answer["units"]["altitude"] == "m" and answer["units"]["latitude"] == "°"


def test_listeners_with_their_station_position_and_strings(
    client: Client, flights: Flights
) -> None:
    sentences = jsonl("ukhas_sentences.jsonl")
    strings: dict[str, set[str]] = {}
    for row in sentences:
        if row["flight"] in FLIGHTS:
            for receiver in row["receivers"]:
                strings.setdefault(receiver.upper(), set()).add(row["sentence"])
    strings["M0TEST"] = {BROKEN}
    url: str | None = "/api/listeners?limit=7"
    listeners: list[dict[str, Any]] = []
    while url:
        answer = get(client, url)
        assert len(answer["listeners"]) <= 7
        listeners += answer["listeners"]
        url = answer["next"]
    assert [entry["callsign"] for entry in listeners] == sorted(strings)
    counts = {entry["callsign"]: entry["strings"] for entry in listeners}
    assert counts == {callsign: len(s) for callsign, s in strings.items()}
    by_callsign = {entry["callsign"]: entry for entry in listeners}
    for n, callsign in enumerate(STATIONS):
        station = by_callsign[callsign]
        assert station["information"]["data"] == {"name": f"Station {n}", "radio": "FT-817"}
        assert station["telemetry"]["data"]["latitude"] == 52.0 + n
        assert station["telemetry"]["time_created_iso"] == views.iso(
            station["telemetry"]["time_created"]
        )
    assert by_callsign["M0TEST"]["information"] is None


def test_problems_say_why_a_string_did_not_parse(client: Client) -> None:
    [problem] = get(client, "/api/payloads/BZ3/problems")["problems"]
    assert problem["sentence"] == BROKEN
    assert base64.b64decode(problem["_raw"]).decode() == BROKEN
    assert problem["reason"] and problem["receivers"] == ["M0TEST"]
    assert problem["time_iso"] == views.iso(problem["time"])
    assert get(client, "/api/payloads/SP/problems")["problems"] == []
    assert get(client, f"/api/payloads/BZ3/problems?after={problem['_id']}")["problems"] == []


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/payloads?since=yesterday", "since"),
        ("/api/payloads?since=0", "since"),  # before the widest window
        (f"/api/payloads?since={int(time.time()) + 3600}", "since"),
        ("/api/payloads?limit=0", "limit"),
        ("/api/payloads?limit=100000", "limit"),
        ("/api/payloads?offset=-1", "offset"),
        ("/api/payloads/SP/telemetry?after=nope", "after"),
        ("/api/payloads/SP/telemetry?limit=1.5", "limit"),
        ("/api/payloads/SP/problems?after=", "after"),
        ("/api/listeners?after=" + "x" * 200, "after"),
        ("/api/payloads/SP/track.csv?since=x", "since"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(client: Client, url: str, field: str) -> None:
    response = client.get(url)
    assert response.status_code == 400
    body = response.get_json()
    assert set(body) >= ERROR_KEYS and body["ok"] is False
    assert body["field"] == field and body["errors"][0]["field"] == field
    assert body["error"].endswith(".")


def test_unknown_routes_and_methods_are_json_errors(client: Client) -> None:
    response = client.get("/api/nothing")
    assert response.status_code == 404 and set(response.get_json()) >= ERROR_KEYS
    assert any("telemetry" in r for r in response.get_json()["routes"])
    response = client.post("/api/payloads")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"


def test_a_missing_database_is_a_503(tmp_path: Path) -> None:
    client = Client(create_app(Config(db_url=f"sqlite:///{tmp_path}/none.db")))
    response = client.get("/api/payloads")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert set(response.get_json()) >= ERROR_KEYS
    assert not (tmp_path / "none.db").exists()


def test_the_track_exports_as_csv_and_kml(client: Client) -> None:
    points = whole_track(client, "WG3")
    response = client.get("/api/payloads/WG3/track.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == len(points)
    assert [float(r["altitude"]) for r in rows] == [p["altitude"] for p in points]
    assert rows[-1]["time_iso"] == points[-1]["time_iso"]
    assert response.headers["Content-Disposition"] == 'attachment; filename="WG3.csv"'
    odd = client.get('/api/payloads/A"B;C/track.csv')
    assert odd.headers["Content-Disposition"] == 'attachment; filename="A_B_C.csv"'
    response = client.get("/api/payloads/WG3/track.kml")
    assert response.mimetype == "application/vnd.google-earth.kml+xml"
    kml = ET.fromstring(response.get_data())
    ns = {"k": KML_NAMESPACE}
    line = kml.find(".//k:LineString/k:coordinates", ns)
    assert line is not None and line.text is not None
    coordinates = line.text.split()
    assert len(coordinates) == len(points)
    last = points[-1]
    assert coordinates[-1] == f"{last['longitude']},{last['latitude']},{last['altitude']}"


def test_serve_mounts_the_page_and_api_under_tracker(flights: Flights, client: Client) -> None:
    bare = requests.get(flights.tracker, timeout=10, allow_redirects=False)
    assert bare.status_code == 308 and bare.headers["Location"].endswith("/tracker/")
    page = requests.get(flights.tracker + "/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert 'src="/tracker/static/tracker.js"' in page.text
    script = requests.get(flights.tracker + "/static/tracker.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    mounted = requests.get(flights.tracker + "/api/payloads", timeout=10).json()
    direct = get(client, "/api/payloads")
    assert [p["callsign"] for p in mounted["payloads"]] == [
        p["callsign"] for p in direct["payloads"]
    ]
    assert requests.get(flights.serve.url + "/health", timeout=10).status_code == 200


def test_gunicorn_serves_the_tracker_alone(flights: Flights, gunicorn: Any) -> None:
    server = gunicorn({"HABITAT_DB": flights.db_url}, app="habitat_http.tracker.wsgi:app")
    answer = requests.get(server.url + "/api/payloads", timeout=10).json()
    assert {p["callsign"] for p in answer["payloads"]} >= set(FLIGHTS)
    assert 'src="/static/tracker.js"' in requests.get(server.url + "/", timeout=10).text


def test_the_api_on_both_backends(db_url: str) -> None:
    """The same answers from SQLite and PostgreSQL (jsonb receivers, listener SQL)."""
    from habitat_http.archive import open_archive
    from habitat_http.messages import LISTENER_INFO
    from habitat_http.store import open_store

    from .test_archive_parsed import b64, deliver, parsed, received
    from .test_archive_tracker_queries import listener

    store = open_store(db_url)
    archive = open_archive(store)
    archive.initialize()
    strings = [b64(f"$$ALMA-2,{n},x*00".encode()) for n in range(3)]
    deliver(
        store,
        archive,
        listener("M0AAA", LISTENER_INFO, 990, name="Anne"),
        *(received("M0AAA", 1000 + 30 * n, raw) for n, raw in enumerate(strings)),
        received("M0BBB", 1061, strings[2]),
        *(parsed(2000 + n, raw, altitude=1000 + 90 * n) for n, raw in enumerate(strings)),
    )
    try:
        client = Client(create_app(Config(db_url=db_url), store, clock=lambda: 5000.0))
        [payload] = get(client, "/api/payloads")["payloads"]
        assert payload["callsign"] == "ALMA-2" and payload["max_altitude"] == 1180
        assert payload["vertical_rate"] == 3.0 and payload["state"] == "ascending"
        track = get(client, "/api/payloads/ALMA-2/telemetry")["points"]
        assert [p["altitude"] for p in track] == [1000, 1090, 1180]
        assert [r["callsign"] for r in track[-1]["receivers"]] == ["M0AAA", "M0BBB"]
        listeners = get(client, "/api/listeners")["listeners"]
        assert [(e["callsign"], e["strings"]) for e in listeners] == [("M0AAA", 3), ("M0BBB", 1)]
        assert listeners[0]["information"]["data"] == {"name": "Anne"}
    finally:
        store.close()
