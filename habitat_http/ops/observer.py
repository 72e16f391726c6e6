"""The one step that turns a served request into its access log line and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from . import accesslog
from .metrics import Metrics
from .record import RequestRecord

log = logging.getLogger(__name__)


class Observer:
    """Logs and counts each request once it is answered.

    Args:
        metrics: the Prometheus metrics, or None when turned off.
        logger: the access logger, or None when the access log is turned off.
        clock: seconds since the UNIX epoch, for the log line's ``time``.
    """

    def __init__(
        self,
        metrics: Metrics | None,
        logger: logging.Logger | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.logger = logger
        self.clock = clock

    def observe(self, record: RequestRecord) -> None:
        """Write the access line and count the request; never raises.

        Observing must not change an answer that is already decided, so a
        failure here (a full disk under the log, say) is logged and dropped.
        """
        try:
            if self.logger is not None:
                accesslog.write(self.logger, record, self.clock())
            if self.metrics is not None:
                self.metrics.observe(record)
        except Exception:  # see the docstring
            log.exception("could not log or count a request")
