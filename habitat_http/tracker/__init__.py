"""The live tracker: a page and its read-only JSON API over the archive.

- :mod:`.api`: the WSGI app, ``create_app(config, store)``;
- :mod:`.params`: query parameters, refused with 400 naming the field;
- :mod:`.views`: the JSON shapes, times in UNIX seconds and ISO 8601 UTC;
- :mod:`.state`: vertical rate and ascending/descending/landed;
- :mod:`.export`: CSV and KML;
- :mod:`.mount`: mounted under ``/tracker`` by ``habitat-http serve``;
- :mod:`.wsgi`: ``gunicorn habitat_http.tracker.wsgi:app`` serves it alone.
"""

from .api import TrackerApp, create_app

__all__ = ["TrackerApp", "create_app"]
