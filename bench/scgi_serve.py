"""Serve any WSGI app (``module:attribute``) with habitat_http's SCGI server.

    python -m bench.scgi_serve bench.hello:app /tmp/hello.sock --threads 16

The baseline of bench/scgi_run.py runs through exactly the same flup server
settings as ``habitat-http scgi``.
"""

from __future__ import annotations

import argparse
import importlib

from habitat_http.scgi import serve_scgi


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("app")
    parser.add_argument("socket")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--prefix", default="/habitat")
    args = parser.parse_args()
    module, _, attribute = args.app.partition(":")
    app = getattr(importlib.import_module(module), attribute)
    serve_scgi(app, args.socket, mode=0o666, threads=args.threads, prefix=args.prefix)


if __name__ == "__main__":
    main()
