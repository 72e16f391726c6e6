"""bench/gunicorn.conf.py, plus a worker_exit hook that appends the worker's group
commit sizes (SQLiteStore.group_sizes) as one JSON line to $BENCH_GROUPS_FILE."""

import json
import os
from pathlib import Path

exec((Path(__file__).resolve().parent / "gunicorn.conf.py").read_text())


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    sizes = getattr(getattr(worker.wsgi, "store", None), "group_sizes", None)
    if sizes is not None:
        with open(os.environ["BENCH_GROUPS_FILE"], "a") as out:
            out.write(json.dumps({str(k): v for k, v in sizes.items()}) + "\n")
