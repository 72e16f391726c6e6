"""habitat_http: the gateway through which radio listeners insert messages into habitat."""

from .app import create_app
from .messages import Message

__version__ = "0.1.0"
__all__ = ["Message", "__version__", "create_app"]
