"""A payload's track as CSV (RFC 4180) or KML 2.2 (OGC 07-147r2). Pure code."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from typing import Any, Final

KML_NAMESPACE: Final = "http://www.opengis.net/kml/2.2"
CSV_COLUMNS: Final = (
    "time",
    "time_iso",
    "latitude",
    "longitude",
    "altitude",
    "sentence_id",
    "receivers",
    "sentence",
)


def csv_lines(points: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The track as CSV text, one line at a time (CRLF line ends, as RFC 4180).

    Args:
        points: track points as :func:`habitat_http.tracker.views.point` makes them,
            oldest first; ``receivers`` become their callsigns joined by spaces.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(row: Iterable[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        return buffer.getvalue()

    yield line(CSV_COLUMNS)
    for p in points:
        callsigns = " ".join(r["callsign"] for r in p["receivers"])
        sentence = (p.get("sentence") or "").rstrip("\n")
        yield line(
            (
                p["time"],
                p["time_iso"],
                p["latitude"],
                p["longitude"],
                "" if p["altitude"] is None else p["altitude"],
                "" if p["sentence_id"] is None else p["sentence_id"],
                callsigns,
                sentence,
            )
        )


def kml(payload: str, points: Iterable[dict[str, Any]]) -> bytes:
    """The track as a KML document: one LineString (``absolute`` altitudes, metres)
    and a Point at the latest position, UTF-8 encoded.

    Args:
        payload: the payload's callsign, the document's name.
        points: track points (see :func:`csv_lines`), oldest first.
    """
    ET.register_namespace("", KML_NAMESPACE)

    def tag(name: str) -> str:
        return f"{{{KML_NAMESPACE}}}{name}"

    root = ET.Element(tag("kml"))
    document = ET.SubElement(root, tag("Document"))
    ET.SubElement(document, tag("name")).text = payload
    coordinates = []
    last = None
    for p in points:
        coordinates.append(f"{p['longitude']},{p['latitude']},{p['altitude'] or 0}")
        last = p
    track = ET.SubElement(document, tag("Placemark"))
    ET.SubElement(track, tag("name")).text = f"{payload} track"
    line = ET.SubElement(track, tag("LineString"))
    ET.SubElement(line, tag("altitudeMode")).text = "absolute"
    ET.SubElement(line, tag("coordinates")).text = " ".join(coordinates)
    if last is not None:
        mark = ET.SubElement(document, tag("Placemark"))
        ET.SubElement(mark, tag("name")).text = f"{payload} at {last['time_iso']}"
        stamp = ET.SubElement(mark, tag("TimeStamp"))
        ET.SubElement(stamp, tag("when")).text = last["time_iso"]
        point = ET.SubElement(mark, tag("Point"))
        ET.SubElement(point, tag("altitudeMode")).text = "absolute"
        ET.SubElement(point, tag("coordinates")).text = coordinates[-1]
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
