"""WSGI entry point for gunicorn: ``gunicorn wsgi:app``; configured from HABITAT_*."""

from habitat_http import create_app

app = create_app()
