"""``gunicorn 'habitat_http.tracker.wsgi:app'`` serves the tracker alone, reading
the archive named by ``HABITAT_DB`` (read-only), so that page loads never compete
with uploads for a gateway's workers."""

from . import create_app

app = create_app()
