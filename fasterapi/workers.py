"""gunicorn worker classes: ``gunicorn -k fasterapi.workers.FasterAPIWorker module:app``.

``FasterAPIWorker`` runs on uvloop when it is installed, ``FasterAPIAsyncioWorker``
always on the standard asyncio loop.

gunicorn's arbiter owns the process tree (forking, respawning, SIGHUP,
SIGTTIN/SIGTTOU, ``--max-requests``); each worker process runs one fasterapi
``Server`` on the sockets gunicorn bound.  gunicorn settings map to ours:

===========================  =====================================
gunicorn                     fasterapi Config
===========================  =====================================
``keepalive``                ``timeout_keep_alive``
``worker_connections``       ``limit_concurrency``
``max_requests`` (+jitter)   ``limit_max_requests`` (drawn by gunicorn)
``graceful_timeout``         ``timeout_graceful_shutdown``
``accesslog`` unset          ``access_log=False``
===========================  =====================================

Logging goes through gunicorn's handlers, so ``--error-logfile`` and
``--access-logfile`` apply.  Signals follow gunicorn's contract: SIGTERM is a
graceful stop, SIGQUIT and SIGINT a quick one, SIGUSR1 reopens log files.
The worker proves it is alive by calling ``self.notify()`` from inside the
event loop, so an app that blocks the loop gets killed by the arbiter.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from fasterapi.config import Config
from fasterapi.server import Server, _run_on_new_loop


class FasterAPIWorker(Worker):
    """gunicorn worker that serves an ASGI app with fasterapi (uvloop when installed).

    Subclasses may set ``CONFIG_KWARGS`` to pass more Config keywords.
    """

    CONFIG_KWARGS: dict[str, Any] = {"loop": "auto"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._route_logging()
        cfg = self.cfg
        options: dict[str, Any] = {
            "log_config": None,  # gunicorn configured logging; leave it alone
            "access_log": bool(cfg.accesslog),
            "timeout_keep_alive": cfg.keepalive,
            "limit_concurrency": cfg.worker_connections or None,
            # Base Worker already added max_requests_jitter; sys.maxsize means "no limit".
            "limit_max_requests": self.max_requests if self.max_requests < sys.maxsize else None,
            "timeout_graceful_shutdown": cfg.graceful_timeout,
        }
        options.update(self.CONFIG_KWARGS)
        self.config = Config(app=None, **options)

    def _route_logging(self) -> None:
        # Our loggers write through gunicorn's handlers (its files, its format).
        error = logging.getLogger("fasterapi.error")
        error.handlers = list(self.log.error_log.handlers)
        error.setLevel(self.log.error_log.level)
        error.propagate = False
        access = logging.getLogger("fasterapi.access")
        if self.cfg.accesslog:
            access.handlers = list(self.log.access_log.handlers)
            access.setLevel(self.log.access_log.level)
        else:
            access.handlers = []
        access.propagate = False

    def init_signals(self) -> None:
        """Keep gunicorn's SIGUSR1/SIGWINCH/SIGABRT handling; the server handles the stop signals.

        While serving, ``Server.serve`` installs loop handlers for SIGTERM and
        SIGINT (and this class one for SIGQUIT).  Afterwards the server
        re-raises the signal it stopped for; the no-op handlers set here make
        that a clean exit instead of death by signal.
        """
        super().init_signals()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, _ignore)

    def run(self) -> None:
        """Serve gunicorn's sockets until told to stop; exit with gunicorn's boot-error code on failure."""
        self.config.app = self.wsgi
        server = Server(self.config)
        try:
            _run_on_new_loop(self._serve(server), self.config.get_loop_factory())
        except SystemExit:
            if not server.started:
                sys.exit(Arbiter.WORKER_BOOT_ERROR)
            raise
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    async def _serve(self, server: Server) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGQUIT, self._quit, server)
        beat = asyncio.create_task(self._notify_loop(server))
        try:
            await server.serve(sockets=[getattr(s, "sock", s) for s in self.sockets])
        finally:
            beat.cancel()
            loop.remove_signal_handler(signal.SIGQUIT)

    def _quit(self, server: Server) -> None:
        # gunicorn's quick stop: no drain, no lifespan shutdown.
        server.should_exit = True
        server.force_exit = True

    async def _notify_loop(self, server: Server) -> None:
        # The arbiter passes half of --timeout as self.timeout; beating at
        # least that often (and every second at most) keeps us well inside it.
        interval = min(self.timeout, 1.0) if self.timeout else 1.0
        while True:
            self.notify()
            if os.getppid() != self.ppid:
                self.log.info("Parent changed, shutting down: %s", self)
                server.should_exit = True
                return
            await asyncio.sleep(interval)


class FasterAPIAsyncioWorker(FasterAPIWorker):
    """The same worker on the standard-library asyncio loop (for apps or tools that break on uvloop)."""

    CONFIG_KWARGS: dict[str, Any] = {"loop": "asyncio"}


def _ignore(sig: int, frame: Any) -> None:
    pass
