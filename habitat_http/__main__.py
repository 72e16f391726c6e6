"""``python -m habitat_http`` runs the ``habitat-http`` command."""

from .cli import main

main()
