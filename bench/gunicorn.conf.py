"""gunicorn settings for bench/run.py: the deployed ones (deploy/gunicorn.conf.py)
without gunicorn's access log and the store check at boot, so that every server
in a run (hello-world, durable-hello, naive, habitat_http) runs under the same
settings. bench/run.py sets the bind address, and workers and threads when asked."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "deployed_gunicorn_conf", Path(__file__).resolve().parent.parent / "deploy/gunicorn.conf.py"
)
assert _spec is not None and _spec.loader is not None
_deployed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_deployed)

worker_class = _deployed.worker_class
workers = _deployed.workers
threads = _deployed.threads
timeout = _deployed.timeout
graceful_timeout = _deployed.graceful_timeout
keepalive = _deployed.keepalive
accesslog = None
errorlog = "-"
loglevel = "warning"
