"""The tracker mounted beside the gateway under ``/tracker`` (``habitat-http serve``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from werkzeug.middleware.dispatcher import DispatcherMiddleware

from ..app import HabitatApp
from .api import create_app

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

#: Where ``serve`` mounts the tracker.
PREFIX: Final = "/tracker"


class WithTracker(DispatcherMiddleware):
    """The gateway with the tracker under :data:`PREFIX` (werkzeug's
    DispatcherMiddleware); other attributes are the gateway's (gunicorn's hooks
    read ``store``)."""

    def __init__(self, gateway: HabitatApp, tracker: WSGIApplication) -> None:
        super().__init__(gateway, {PREFIX: tracker})
        self.gateway = gateway

    def __getattr__(self, name: str) -> Any:
        return getattr(self.gateway, name)


def with_tracker(gateway: HabitatApp) -> WithTracker:
    """``gateway`` with a tracker on the same settings, reading the database through
    a read-only store of its own (its own connection: page loads do not hold the
    gateway store's lock)."""
    return WithTracker(gateway, create_app(gateway.config))
