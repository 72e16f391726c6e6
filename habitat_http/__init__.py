"""habitat_http: the gateway through which radio listeners insert messages into habitat."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .messages import Message

if TYPE_CHECKING:
    from .app import create_app

__version__ = "0.1.0"
__all__ = ["Message", "__version__", "create_app"]


def __getattr__(name: str) -> Any:
    # create_app is imported on first use, so that importing the package (the
    # CLI, gunicorn's config file) does not import prometheus_client before
    # PROMETHEUS_MULTIPROC_DIR is set (see config.multiprocess_metrics_dir).
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
