"""gunicorn settings for bench/run.py: the deployed ones (deploy/gunicorn.conf.py,
gthread workers, with the gateway's own access line and multiprocess metrics) run
as they are, without only the store check at boot (post_worker_init), which the
baselines have no store for. Every server in a run (hello-world, durable-hello,
naive, habitat_http) runs under these settings; bench/run.py sets the bind
address, and workers and threads when asked."""

from pathlib import Path

exec((Path(__file__).resolve().parent.parent / "deploy/gunicorn.conf.py").read_text())
del post_worker_init  # noqa: F821  (defined by the deployed settings above)
loglevel = "warning"
