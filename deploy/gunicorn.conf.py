"""Production gunicorn settings for habitat_http (gunicorn's config is Python code).

    python3 -m gunicorn -c deploy/gunicorn.conf.py wsgi:app

Run from the repository root (or set ``chdir``); the gateway itself is configured
by HABITAT_* variables. Command-line options override these settings.

gunicorn listens on loopback only, behind nginx (deploy/nginx/habitat-http.conf),
which reads whole requests before passing them on. Exposed directly, it is
starved by slow clients: 200 connections that trickle a request a byte at a time
hold every thread, and other clients wait for as long as they trickle.
"""

import multiprocessing

from habitat_http.config import multiprocess_metrics_dir

# Before anything imports prometheus_client: /metrics adds up every worker's
# counts through PROMETHEUS_MULTIPROC_DIR (a fresh temporary directory unless set).
multiprocess_metrics_dir()

wsgi_app = "wsgi:app"
bind = ["127.0.0.1:8000"]

# gthread workers' threads share SQLite commits: one fsync for many messages.
# A thread reads one request at a time, from its first byte to its last, so
# without nginx in front a slow client holds a thread (see the docstring).
worker_class = "gthread"
workers = min(4, multiprocessing.cpu_count())
threads = 8

# A worker whose main loop is silent for 30 s is restarted. (With gthread this
# watches the worker's event loop, not single requests; a write waits at most
# HABITAT_DB_TIMEOUT for the database before answering 504.)
timeout = 30
# In-flight requests get this long to finish on SIGTERM; a systemd unit's
# TimeoutStopSec must be longer than this.
graceful_timeout = 20
keepalive = 5

# The gateway writes one JSON line per request on the habitat_http.access logger
# (stdout), with its phases and the reason of any rejection; gunicorn's own access
# log would repeat each request. Set accesslog = "-" to have both.
accesslog = None
errorlog = "-"

# Check the database before serving: what waiting cannot fix (a bad URL, a newer
# schema) stops the worker; a locked or unreachable database is logged, and the
# worker answers 503 until it is back.
from habitat_http.ops.hooks import child_exit  # noqa: E402, F401
from habitat_http.pipeline import check_store as post_worker_init  # noqa: E402, F401
