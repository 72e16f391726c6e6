"""The whole pipeline in one process tree (``habitat-http serve``).

gunicorn serves the gateway through its documented custom-application API
(``gunicorn.app.base.BaseApplication``), and the gunicorn master supervises the
message server (``habitat-http server``) as a child process: it starts it when
gunicorn is ready, restarts it with backoff if it dies, and stops it with SIGTERM
when gunicorn exits (SIGTERM or SIGINT to the master stops both cleanly).

The master's SIGCHLD handler waits for *any* child (``waitpid(-1)``), so it may
collect the message server's exit status first; ``Popen.wait`` would then report
0, as if it had been asked to stop. The supervisor therefore watches the child
through a pidfd (Linux), which says that it exited whoever reaps it, and treats
an exit whose status was taken as a death.

``subprocess.Popen`` reads a close-on-exec pipe until the child has exec'd. A
gunicorn worker forked by the master at that moment inherits the pipe's write
end and holds it open for its whole life, so Popen would block until that
worker exits, and the supervisor would watch nothing. Starting a child and
``os.fork`` therefore exclude each other (:data:`_SPAWN_LOCK`).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from gunicorn.app.base import BaseApplication

from .app import create_app
from .config import EXIT_WITH_PARENT, Config, child_environ
from .ops.hooks import child_exit
from .store import prepare
from .tracker.mount import WithTracker, with_tracker

log = logging.getLogger(__name__)

#: Held while starting a child; os.fork (a gunicorn worker) waits for it (see above).
_SPAWN_LOCK = threading.Lock()
os.register_at_fork(
    before=_SPAWN_LOCK.acquire,
    after_in_parent=_SPAWN_LOCK.release,
    after_in_child=_SPAWN_LOCK.release,
)

#: The production settings of deploy/gunicorn.conf.py that ``serve`` uses too.
GUNICORN_DEFAULTS: dict[str, Any] = {
    "worker_class": "gthread",
    "threads": 8,
    "timeout": 30,
    "graceful_timeout": 20,
    "keepalive": 5,
    "accesslog": None,  # the gateway's own JSON access line replaces gunicorn's
    "errorlog": "-",
}


class Supervisor:
    """Runs a command as a child process and restarts it when it fails.

    A child that exits with status 0 was asked to stop and is not restarted.

    Args:
        command: the argv of the child.
        max_backoff: the longest wait before a restart, in seconds.
    """

    def __init__(
        self, command: list[str], max_backoff: float = 30.0, env: dict[str, str] | None = None
    ) -> None:
        self.command = command
        self.max_backoff = max_backoff
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the child and a thread that watches it."""
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        backoff = min(1.0, self.max_backoff)
        while not self._stopping.is_set():
            with self._lock:
                if self._stopping.is_set():
                    return
                started = time.monotonic()
                # The child asks the kernel for SIGTERM if we die (habitat_http.parent).
                env = child_environ({**self.env, EXIT_WITH_PARENT: str(os.getpid())})
                with _SPAWN_LOCK:
                    self.process = subprocess.Popen(self.command, env=env)
            code = _wait(self.process)
            if self._stopping.is_set() or code == 0:
                # 0: it was told to stop (a SIGTERM or SIGINT sent to the whole
                # process group reaches it before the master's on_exit).
                log.info("message server (pid %d) stopped", self.process.pid)
                return
            if time.monotonic() - started > self.max_backoff * 2:
                backoff = min(1.0, self.max_backoff)  # it ran well for a while: a new failure
            self.restarts += 1
            log.error(
                "message server (pid %d) %s; restarting in %.1f s (restart %d)",
                self.process.pid,
                "died; gunicorn's master took its exit status"
                if code is None
                else f"exited with {code}",
                backoff,
                self.restarts,
            )
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the child and wait for it (SIGKILL after ``timeout`` seconds)."""
        with self._lock:
            self._stopping.set()
            process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(timeout)


def _wait(process: subprocess.Popen[bytes]) -> int | None:
    """Block until ``process`` exits, whoever reaps it.

    Returns:
        Its exit code (negative: killed by that signal, as in Popen.returncode),
        or None when another waiter (gunicorn's master) collected it first.
    """
    if not hasattr(os, "pidfd_open"):  # not Linux: the exit status may be lost
        return process.wait()
    try:
        fd = os.pidfd_open(process.pid)
    except ProcessLookupError:  # exited and reaped already
        code = None
    else:
        try:
            select.select([fd], [], [])  # readable once it has exited
            try:
                result = os.waitid(os.P_PIDFD, fd, os.WEXITED)
            except ChildProcessError:
                code = None
            else:
                assert result is not None
                code = result.si_status if result.si_code == os.CLD_EXITED else -result.si_status
        finally:
            os.close(fd)
    process.returncode = -1 if code is None else code  # Popen must not wait for it again
    return code


def check_store(worker: Any) -> None:
    """gunicorn's post_worker_init hook: reach the database (and apply migrations
    that are safe) before serving.

    Only what waiting cannot fix stops the worker from booting (and so gunicorn,
    with the reason in its log): a bad URL (BadURL), a schema newer than
    this code (SchemaTooNew), a migration that needs init-db (MigrationNeeded).
    A database that is locked or briefly down is logged; the worker boots and
    answers 503 with Retry-After until it is back (see store.prepare).
    """
    problem = prepare(worker.wsgi.store)
    if problem is not None:
        log.warning(
            "worker %s: the database is unavailable at start-up (%s);"
            " answering 503 until it is back",
            os.getpid(),
            problem,
        )


class GatewayApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn serving :func:`create_app`, with the tracker under ``/tracker``
    (:mod:`habitat_http.tracker.mount`), and the message server supervised.

    Args:
        options: gunicorn settings (``bind``, ``workers``, ...), over
            :data:`GUNICORN_DEFAULTS`.
        server_command: argv of the message server, or None to run the gateway alone.
        max_restart_delay: the longest wait, in seconds, before restarting it.
        config: the gateway's settings; from the HABITAT_* variables when None.
            The message server gets its ``db_url`` as HABITAT_DB (not in argv,
            where the process list would show a password).
    """

    def __init__(
        self,
        options: dict[str, Any],
        server_command: list[str] | None,
        max_restart_delay: float = 30.0,
        config: Config | None = None,
    ) -> None:
        self.options = {**GUNICORN_DEFAULTS, **options}
        self.config = config
        env = {"HABITAT_DB": config.db_url} if config is not None else None
        self.supervisor = (
            Supervisor(server_command, max_restart_delay, env) if server_command else None
        )
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        self.cfg.set("post_worker_init", check_store)
        self.cfg.set("child_exit", child_exit)
        if self.supervisor is not None:
            supervisor = self.supervisor
            self.cfg.set("when_ready", lambda arbiter: supervisor.start())
            self.cfg.set("on_exit", lambda arbiter: supervisor.stop())

    def load(self) -> WithTracker:
        # Called in each worker after the fork, so stores open per process.
        return with_tracker(create_app(self.config))


def run_pipeline(
    bind: str,
    workers: int,
    server_command: list[str] | None,
    max_restart_delay: float = 30.0,
    config: Config | None = None,
) -> None:
    """Run gunicorn (and the supervised message server) until SIGTERM or SIGINT.

    Args:
        max_restart_delay: the longest wait, in seconds, before restarting a
            message server that died.
        config: the gateway's settings (see :class:`GatewayApplication`).
    """
    GatewayApplication(
        {"bind": bind, "workers": workers}, server_command, max_restart_delay, config
    ).run()


def server_command(config_file: str | None) -> list[str]:
    """The argv that runs ``habitat-http server`` with this interpreter.

    The database comes from the inherited HABITAT_DB, so no password shows in
    the process list.
    """
    command = [sys.executable, "-m", "habitat_http", "server"]
    if config_file:
        command += ["--config", config_file]
    return command
