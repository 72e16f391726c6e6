"""The tracker's pure code: the vertical rate and state rule, times, units, and
the CSV and KML exports."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from habitat_http.tracker import export, state, views


def points(*pairs: tuple[int, float | None]) -> list[dict[str, Any]]:
    """Positions newest first from (time, altitude) pairs given oldest first."""
    return [{"estimated_time_created": t, "altitude": a} for t, a in reversed(pairs)]


def test_the_rate_is_the_least_squares_slope_of_the_latest_points() -> None:
    # Climbing 5 m/s with +-20 m of GPS noise: the fit is close, one step is not.
    noisy = points(*((10 * n, 50.0 * n + (20 if n % 2 else -20)) for n in range(10)))
    rate = state.vertical_rate(noisy)
    assert rate == pytest.approx(5.0, abs=0.6)
    assert state.flight_state(rate) == "ascending"
    # Only the latest RATE_POINTS count: an older climb does not hide the fall.
    fall = points(
        *((n, 10_000.0 + 5 * n) for n in range(20)),
        *((20 + n, 10_100.0 - 8 * n) for n in range(10)),
    )
    assert state.vertical_rate(fall) == pytest.approx(-8.0)
    assert state.flight_state(state.vertical_rate(fall)) == "descending"


def test_points_older_than_the_window_and_without_altitude_are_left_out() -> None:
    old_then_level = points(
        (0, 0.0), (state.RATE_WINDOW + 100, 500.0), (state.RATE_WINDOW + 130, 500.5)
    )
    assert state.vertical_rate(old_then_level) == pytest.approx(0.5 / 30)
    assert state.flight_state(state.vertical_rate(old_then_level)) == "landed"
    assert state.vertical_rate(points((0, 10.0), (10, None))) is None
    assert state.vertical_rate(points((5, 10.0), (5, 20.0))) is None  # no time between
    assert state.flight_state(None) == "unknown"


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(1.0, "ascending"), (0.99, "landed"), (-0.99, "landed"), (-1.0, "descending")],
)
def test_the_state_thresholds(rate: float, expected: str) -> None:
    assert state.flight_state(rate) == expected


def test_times_and_units() -> None:
    assert views.iso(1_700_000_000) == "2023-11-14T22:13:20Z"
    assert views.timed("t", None) == {"t": None, "t_iso": None}
    assert [views.unit(f) for f in ("altitude", "pressure_altitude", "latitude", "batterymv")] == [
        "m",
        "m",
        "°",
        "mV",
    ]
    assert views.unit("temperature_internal") == "°C" and views.unit("satellites") is None


POINTS = [
    {
        "time": 1_700_000_000 + n,
        "time_iso": views.iso(1_700_000_000 + n),
        "latitude": 52.0 + n / 100,
        "longitude": -1.0,
        "altitude": None if n == 0 else 100.0 * n,
        "sentence_id": n,
        "sentence": f'$$X,{n},"quoted"*00\n',
        "receivers": [{"callsign": "M0AAA"}, {"callsign": "M0BBB"}],
    }
    for n in range(3)
]


def test_csv_quotes_sentences_and_keeps_every_point() -> None:
    rows = list(csv.DictReader(io.StringIO("".join(export.csv_lines(POINTS)))))
    assert len(rows) == 3 and rows[0]["altitude"] == "" and rows[2]["altitude"] == "200.0"
    assert rows[1]["sentence"] == '$$X,1,"quoted"*00' and rows[1]["receivers"] == "M0AAA M0BBB"


def test_kml_is_a_line_and_the_latest_point() -> None:
    root = ET.fromstring(export.kml("X&Y", POINTS))
    ns = {"k": export.KML_NAMESPACE}
    assert root.findtext("k:Document/k:name", namespaces=ns) == "X&Y"
    line = root.findtext(".//k:LineString/k:coordinates", namespaces=ns)
    assert line is not None and line.split() == [
        "-1.0,52.0,0",
        "-1.0,52.01,100.0",
        "-1.0,52.02,200.0",
    ]
    assert root.findtext(".//k:Point/k:coordinates", namespaces=ns) == "-1.0,52.02,200.0"
    assert root.findtext(".//k:TimeStamp/k:when", namespaces=ns) == POINTS[-1]["time_iso"]
