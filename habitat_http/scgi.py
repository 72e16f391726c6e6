"""Serving the same app over SCGI on a Unix socket, with flup's threaded server.

flup (>= 1.0.3) speaks the protocol; this module only adds what habitat's original
SCGI server did around it:

- no fork: flup's bounded thread pool serves connections in this process;
- a per-connection timeout: the whole request must arrive within it, so one
  stuck or trickling client cannot hold a thread for ever;
- SIGTERM/SIGINT stop accepting, let in-flight requests finish (bounded by that
  timeout), remove the socket file and return; SIGHUP does the same and then
  listens again;
- a stale socket file from a crashed run is replaced, but a live server on the
  same path is never stolen from;
- the socket gets the configured mode (0660 by default), never world-writable
  unless asked, and is created under a umask so it is never wider in between;
- SCRIPT_NAME and PATH_INFO are rebuilt from REQUEST_URI and the mount prefix,
  because Apache's mod_proxy_scgi sends the whole path as SCRIPT_NAME and nginx's
  scgi_params send no PATH_INFO (docs/architecture.rst, "Front servers"); without a prefix, a
  SCRIPT_NAME that is a proper prefix of the path is the mount point (PEP 3333);
- the body is read as exactly CONTENT_LENGTH bytes, as the SCGI spec defines it,
  even when the front server passes the client's Transfer-Encoding: chunked;
- the app is served without ProxyFix: the front server sets REMOTE_ADDR, so
  X-Forwarded-For is never applied on this path.

Names follow the SCGI spec (netstring headers, CONTENT_LENGTH first) and PEP 3333.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from . import body

# flup 1.0.3 still calls Thread.setDaemon and threading.currentThread.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"flup\.")

from flup.server.scgi import WSGIServer  # noqa: E402
from flup.server.scgi_base import Connection  # noqa: E402

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

#: Bytes of an unread request body drained before closing, so that closing a
#: socket with unread data does not reset the response the front server reads.
DRAIN_LIMIT = body.DRAIN_LIMIT


class SCGIStartError(Exception):
    """The SCGI server cannot start: the socket path is in use or unusable.

    The message says what is wrong and what to do; the CLI prints it and exits 1.
    """


class _DeadlineSocket(socket.socket):
    """A client socket with one deadline for reading the whole request.

    Every read times out at ``read_deadline`` (time.monotonic), however the
    client trickles its bytes, so a stuck or slow client frees its thread after
    the connection timeout. Writes get ``write_timeout`` seconds each, so a
    response to a committed message is not cut short by that deadline. flup
    switches the socket to blocking mode before reading the body; here
    ``setblocking(True)`` keeps the timeouts instead.
    """

    read_deadline: float = 0.0
    write_timeout: float = 5.0

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(self.write_timeout)
        else:
            super().setblocking(False)

    def _before_read(self) -> None:
        remaining = self.read_deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the SCGI connection timeout passed while reading the request")
        self.settimeout(remaining)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._before_read()
        return super().recv(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._before_read()
        return super().recv_into(buffer, nbytes, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        self.settimeout(self.write_timeout)
        return super().send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.settimeout(self.write_timeout)
        super().sendall(data, flags)


def _connection_class(timeout: float) -> type[Connection]:
    class TimedConnection(Connection):  # type: ignore[misc]
        """flup's Connection, with a per-connection deadline once a thread takes it."""

        def __init__(self, sock: socket.socket, addr: Any, server: Any, _timeout: Any) -> None:
            # flup's own timeout uses SIGALRM, which only works in the main thread.
            super().__init__(sock, addr, server, None)

        def run(self) -> None:
            # Wrapped here, not in __init__: a connection refused for want of a
            # thread keeps its plain socket, which flup then closes at once.
            sock: socket.socket = self._sock  # type: ignore[has-type]
            timed = _DeadlineSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
            timed.read_deadline = time.monotonic() + timeout
            timed.write_timeout = timeout
            self._sock = timed
            super().run()

    return TimedConnection


class MountedApp:
    """WSGI middleware for the SCGI path: the mount point, and the body's length.

    SCRIPT_NAME and PATH_INFO are rebuilt from REQUEST_URI:

    - with a ``prefix`` (``--prefix``), a path under it is split there. Apache's
      mod_proxy_scgi needs this: it sends the whole path as SCRIPT_NAME;
    - without one, a SCRIPT_NAME sent by the front server is the mount point
      (PEP 3333) when it is a proper prefix of the path, ending at a ``/``, as
      from nginx's ``scgi_param SCRIPT_NAME /habitat;``. Otherwise, as for a
      whole path sent as SCRIPT_NAME, the path is routed from the root.

    The body is exactly CONTENT_LENGTH bytes (the SCGI spec: always present, the
    body's length). A front server that de-chunked a chunked request still
    passes HTTP_TRANSFER_ENCODING (nginx does), which would make werkzeug ignore
    the length and read nothing; it is removed, as it described the client's
    hop, not this body.

    Args:
        app: the WSGI application (habitat's app without ProxyFix).
        prefix: the mount point, e.g. ``/habitat``, or ``""`` for none. A request
            outside the prefix keeps its whole path in PATH_INFO with an empty
            SCRIPT_NAME, so it is routed from the root.

    After the app has answered, an unread request body is drained (up to
    :data:`DRAIN_LIMIT` bytes) so that flup's close does not reset the connection.
    """

    def __init__(self, app: WSGIApplication, prefix: str = "") -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")

    def _mount_point(self, environ: WSGIEnvironment, path: str) -> str:
        if self.prefix:
            return self.prefix
        sent = str(environ.get("SCRIPT_NAME", "")).rstrip("/")
        return sent if sent and path.startswith(sent + "/") else ""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        uri = environ.get("REQUEST_URI")
        if uri is not None:
            # PEP 3333: PATH_INFO is the percent-decoded path as latin-1 text.
            # flup hands REQUEST_URI over as latin-1 text of the raw bytes.
            raw = uri.split("?", 1)[0].encode("latin-1", "replace")
            path = unquote_to_bytes(raw).decode("latin-1")
            mount = self._mount_point(environ, path)
            if mount and (path == mount or path.startswith(mount + "/")):
                environ["SCRIPT_NAME"], environ["PATH_INFO"] = mount, path[len(mount) :]
            else:
                environ["SCRIPT_NAME"], environ["PATH_INFO"] = "", path
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        stream = environ["wsgi.input"] = _CountingInput(environ["wsgi.input"])
        body = self.app(environ, start_response)
        stream.drain(environ.get("CONTENT_LENGTH"))
        return body


class _CountingInput:
    """``wsgi.input`` (PEP 3333 input methods) that counts the bytes the app read."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._stream.read(size)
        self.consumed += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data: bytes = self._stream.readline(size)
        self.consumed += len(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = self._stream.readlines(hint)
        self.consumed += sum(map(len, lines))
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def drain(self, content_length: str | None) -> None:
        """Read what the app left of a CONTENT_LENGTH body, up to DRAIN_LIMIT bytes."""
        try:
            remaining = min(int(content_length or 0) - self.consumed, DRAIN_LIMIT)
        except ValueError:
            return
        try:
            while remaining > 0:
                chunk = self.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except (OSError, ValueError):
            pass  # the client went away or timed out; the connection closes anyway


class HabitatSCGIServer(WSGIServer):  # type: ignore[misc]
    """flup's threaded SCGI WSGIServer on a Unix socket, with habitat's socket rules.

    Args:
        app: the WSGI application to serve.
        path: the Unix socket path.
        mode: permission bits of the socket file, e.g. ``0o660``.
        threads: the most connections served at once; more are refused.
        timeout: seconds a connection may stay idle before it is dropped.
    """

    def __init__(
        self, app: WSGIApplication, path: str, *, mode: int, threads: int, timeout: float
    ) -> None:
        super().__init__(
            app,
            bindAddress=path,
            umask=~mode & 0o777,
            loggingLevel=logging.WARNING,
            minSpare=1,
            maxSpare=min(5, threads),
            maxThreads=threads,
        )
        self.path = path
        self.mode = mode
        self._jobClass = _connection_class(timeout)

    def _setupSocket(self) -> socket.socket:
        _check_socket_path(self.path)
        try:
            sock: socket.socket = super()._setupSocket()
        except OSError as exc:
            raise SCGIStartError(f"cannot listen on {self.path}: {exc.strerror or exc}.") from exc
        os.chmod(self.path, self.mode)
        return sock

    def _cleanupSocket(self, sock: socket.socket) -> None:
        super()._cleanupSocket(sock)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _check_socket_path(path: str) -> None:
    """Refuse a path that holds a live server or is not a socket; allow a stale socket.

    Raises:
        SCGIStartError: another server answers on ``path``, or it is not a socket.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SCGIStartError(f"{path} exists and is not a socket; refusing to replace it.")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            log.warning("replacing stale socket %s", path)
            return  # flup unlinks it before binding
        raise SCGIStartError(f"cannot check {path}: {exc.strerror or exc}.") from exc
    finally:
        probe.close()
    raise SCGIStartError(
        f"another server is already listening on {path}; stop it first or use another --socket."
    )


def serve_scgi(
    app: WSGIApplication,
    path: str,
    *,
    mode: int = 0o660,
    threads: int = 16,
    timeout: float = 5.0,
    prefix: str = "",
) -> None:
    """Serve ``app`` over SCGI on the Unix socket ``path`` until SIGTERM or SIGINT.

    Args:
        app: the WSGI application, without ProxyFix (``HabitatApp.wsgi_app``).
        path: the socket file to create.
        mode: its permission bits (0o660 by default).
        threads: the most connections served at once.
        timeout: per-connection timeout in seconds; also bounds shutdown.
        prefix: the URL path the front server mounts the app at, e.g. ``/habitat``.

    Raises:
        SCGIStartError: the socket path is in use by a live server, is not a
            socket, or cannot be bound.
    """
    mounted = MountedApp(app, prefix)
    while True:
        server = HabitatSCGIServer(mounted, path, mode=mode, threads=threads, timeout=timeout)
        log.info("habitat_http SCGI server on %s (mode %o, %d threads)", path, mode, threads)
        # flup returns True after SIGHUP ("reload"): in-flight requests have finished
        # and the socket is gone, so listen afresh; SIGTERM and SIGINT return False.
        if not server.run():
            break
        log.info("SIGHUP: listening again on %s", path)
    log.info("habitat_http SCGI server stopped")
