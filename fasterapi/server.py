"""The server lifecycle: bind, lifespan startup, serve until told to stop, drain, lifespan shutdown.

``Server(config).serve()`` runs inside an existing event loop (so it can be
embedded); ``Server.run()`` and ``fasterapi.run()`` create the loop the config
asks for.  The HTTP work itself happens in the protocol (``config.http``); this
module only owns the listeners, the shared ``ServerState`` and the order of
events on the way up and down:

1. lifespan startup (a failure exits with code 3 before anything listens),
2. bind the listeners and log "Fasterapi running on ...",
3. tick every 0.1 s until a signal, ``should_exit`` or ``--limit-max-requests``,
4. stop accepting, ask every connection to ``shutdown()`` (close when idle),
   wait for them and their tasks up to ``--timeout-graceful-shutdown``, then
   ``force_close()`` what is left,
5. lifespan shutdown (skipped on a forced exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import signal
import socket
import stat
import sys
import threading
from collections.abc import Coroutine, Generator, Sequence
from typing import Any

import click

from fasterapi._protocol import flush_access_log
from fasterapi.config import STARTUP_FAILURE, Config
from fasterapi.lifespan import lifespan_for

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
if sys.platform == "win32":  # pragma: no cover
    HANDLED_SIGNALS += (signal.SIGBREAK,)

# How often the main loop looks at should_exit and the request limit.  0.1 s
# is uvicorn's tick: short enough that a stop feels immediate, long enough to
# cost nothing.  Signals set should_exit from a loop callback, so no lock.
TICK = 0.1
# After the graceful timeout: how long apps that were sent http.disconnect
# may take to finish by themselves before their tasks are cancelled.
FORCE_CLOSE_GRACE = 1.0

logger = logging.getLogger("fasterapi.error")


class ServerState:
    """State shared by the server and every protocol instance (one per connection).

    - ``total_requests``: requests started so far; protocols increment it.
    - ``connections``: live protocol instances; each adds itself on connect and
      removes itself on close, so shutdown can reach them.
    - ``tasks``: running request tasks; shutdown waits for them to finish.
    - ``root_path``: the ASGI ``root_path`` for every scope.
    """

    def __init__(self, root_path: str = "") -> None:
        self.total_requests = 0
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task] = set()
        self.root_path = root_path


class Server:
    """Serve one Config.  Set ``should_exit = True`` (from any thread) to stop gracefully."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.server_state = ServerState(config.root_path)
        self.started = False
        self.should_exit = False
        self.force_exit = False
        self.servers: list[asyncio.AbstractServer] = []
        self.lifespan: Any = None
        self._captured_signals: list[int] = []
        self._uds_inode: tuple[int, int] | None = None

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Create the configured event loop and serve on it until stopped."""
        _run_on_new_loop(self.serve(sockets=sockets), self.config.get_loop_factory())

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve in the running loop until stopped.

        `sockets`: already-bound listening sockets to serve on instead of
        binding host/port, --uds or --fd.  SIGINT and SIGTERM are handled while
        this runs (in the main thread) and re-delivered to the previous
        handlers afterwards, so an embedding program still sees them.
        Exits with code 3 (SystemExit) if startup fails.
        """
        with self.capture_signals():
            await self._serve(sockets)

    async def _serve(self, sockets: list[socket.socket] | None) -> None:
        config = self.config
        if not config.loaded:
            config.load()
        self.lifespan = lifespan_for(config)

        pid = os.getpid()
        logger.info(
            "Started server process [%d]", pid,
            extra={"color_message": "Started server process [" + click.style("%d", fg="cyan") + "]"},
        )
        await self.startup(sockets=sockets)
        await self.main_loop()
        await self.shutdown(sockets=sockets)
        # Access lines wait for the end of a loop iteration: write the last ones first.
        flush_access_log(asyncio.get_running_loop())
        logger.info(
            "Finished server process [%d]", pid,
            extra={"color_message": "Finished server process [" + click.style("%d", fg="cyan") + "]"},
        )

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Run lifespan startup, then start listening.  Exits with code 3 on failure."""
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)

        config = self.config
        loop = asyncio.get_running_loop()
        protocol_factory = functools.partial(
            config.http_protocol_class,
            config=config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        if config.metrics_port is not None:
            from fasterapi.metrics import start_metrics_server

            try:
                # Before the HTTP listeners: it sets config.metrics_stats,
                # which every new connection reads.
                self.servers.append(await start_metrics_server(config, self.server_state))
            except (ImportError, OSError) as exc:
                logger.error("%s", exc)
                await self.lifespan.shutdown()
                sys.exit(STARTUP_FAILURE)
        try:
            listeners = await self._listen(loop, protocol_factory, sockets)
        except OSError as exc:
            logger.error("%s", self._bind_error(exc))
            await self.lifespan.shutdown()
            sys.exit(STARTUP_FAILURE)
        self._log_started(listeners, given=sockets is not None)
        self.started = True

    async def _listen(
        self, loop: asyncio.AbstractEventLoop, factory: Any, sockets: list[socket.socket] | None
    ) -> Sequence[socket.socket]:
        config = self.config
        if sockets is not None:
            # Sockets bound by someone else (a process manager, a test).
            for sock in sockets:
                self.servers.append(
                    await loop.create_server(factory, sock=sock, backlog=config.backlog, ssl=config.ssl)
                )
            return sockets
        if config.fd is not None:
            # socket.socket(fileno=) detects the family (TCP or Unix) itself;
            # the dup leaves the inherited descriptor to whoever passed it.
            sock = socket.socket(fileno=os.dup(config.fd))
            server = await loop.create_server(factory, sock=sock, backlog=config.backlog, ssl=config.ssl)
        elif config.uds is not None:
            sock = self._bind_unix(config.uds)
            server = await loop.create_unix_server(factory, sock=sock, backlog=config.backlog, ssl=config.ssl)
        else:
            server = await loop.create_server(
                factory, host=config.host, port=config.port, backlog=config.backlog, ssl=config.ssl
            )
        self.servers.append(server)
        return list(server.sockets or ())

    def _bind_unix(self, path: str) -> socket.socket:
        """Bind a Unix socket at `path`, replacing a stale socket file but nothing else.

        A socket file nobody listens on is left behind by a crashed server and
        is removed; a live one, or any other kind of file, is an OSError.
        """
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None:
            if not stat.S_ISSOCK(mode):
                raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # nobody answers: left behind by a server that is gone
            else:
                raise OSError(errno.EADDRINUSE, f"{path} is in use by another server")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            # Like uvicorn: a proxy running as another user must be able to connect.
            os.chmod(path, 0o666)
        except OSError:
            sock.close()
            raise
        st = os.stat(path)
        self._uds_inode = (st.st_dev, st.st_ino)
        return sock

    def _bind_error(self, exc: OSError) -> str:
        config = self.config
        # The loops' bind errors repeat the address in strerror; the errno's
        # own text is the clear part.  Our Unix-socket checks say more.
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if config.fd is not None:
            return f"Could not serve on file descriptor {config.fd}: {reason}"
        if config.uds is not None:
            return f"Could not bind to unix socket {config.uds}: {exc.strerror or reason}"
        return f"Could not bind to {_format_host(config.host)}:{config.port}: {reason}"

    def _log_started(self, listeners: Sequence[socket.socket], given: bool) -> None:
        config = self.config
        # Sockets we did not bind ourselves (--fd, or passed to serve()) say
        # where they listen; otherwise the options do.
        sock = listeners[0] if listeners and (given or config.fd is not None) else None
        if config.uds is not None and sock is None:
            where = f"unix socket {config.uds}"
        elif sock is not None and sock.family == getattr(socket, "AF_UNIX", None):
            where = f"unix socket {sock.getsockname()}"
        elif sock is not None:
            host, port = sock.getsockname()[:2]
            where = f"{'https' if config.ssl else 'http'}://{_format_host(host)}:{port}"
        else:
            host = config.host or "0.0.0.0"
            port = config.port or (listeners[0].getsockname()[1] if listeners else 0)
            where = f"{'https' if config.ssl else 'http'}://{_format_host(host)}:{port}"
        logger.info(
            "Fasterapi running on %s (Press CTRL+C to quit)", where,
            extra={"color_message": "Fasterapi running on " + click.style("%s", bold=True)
                   + " (Press CTRL+C to quit)"},
        )

    async def main_loop(self) -> None:
        """Tick until should_exit, or until --limit-max-requests have been served."""
        while not self.should_exit:
            await asyncio.sleep(TICK)
            limit = self.config.limit_max_requests
            if limit is not None and self.server_state.total_requests >= limit:
                logger.info("Maximum request limit of %d reached. Shutting down.", limit)
                self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, drain connections (bounded by --timeout-graceful-shutdown), then lifespan shutdown."""
        logger.info("Shutting down")
        for server in self.servers:
            server.close()
        for sock in sockets or ():
            sock.close()
        self._remove_uds()

        state = self.server_state
        # A connection accepted just before the listeners closed usually has
        # its first request on the wire but not read yet: its shutdown() gives
        # it a moment to arrive instead of resetting it as idle.
        for connection in list(state.connections):
            connection.shutdown()

        timeout = self.config.timeout_graceful_shutdown
        try:
            await asyncio.wait_for(self._wait_drained(), timeout)
        except asyncio.TimeoutError:
            logger.error(
                "Graceful shutdown timed out after %ss: closing %d connection(s) and "
                "cancelling %d task(s).", timeout, len(state.connections), len(state.tasks),
            )
        if state.connections or state.tasks:
            await self._force_close()

        for server in self.servers:
            # Bounded: on Python 3.12+ wait_closed() also waits for connections,
            # and a protocol that never reports its close must not hang us.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)

        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _wait_drained(self) -> None:
        state = self.server_state
        if state.connections and not self.force_exit:
            logger.info("Waiting for connections to close. (CTRL+C to force quit)")
            while state.connections and not self.force_exit:
                await asyncio.sleep(TICK)
        if state.tasks and not self.force_exit:
            logger.info("Waiting for background tasks to complete. (CTRL+C to force quit)")
            while state.tasks and not self.force_exit:
                await asyncio.sleep(TICK)

    async def _force_close(self) -> None:
        state = self.server_state
        for connection in list(state.connections):
            connection.force_close()
        tasks = [task for task in state.tasks if not task.done()]
        if tasks:
            # force_close() told each app http.disconnect (WebSockets got
            # 1012): a stream (SSE) that listens for it ends by itself and
            # runs its own clean-up.  Give that a bounded moment first.
            _, tasks = await asyncio.wait(tasks, timeout=FORCE_CLOSE_GRACE)
        for task in tasks:
            task.cancel()
        if tasks:
            # Let the cancellations run (the app's finally blocks), bounded in
            # case an app swallows CancelledError.
            await asyncio.wait(tasks, timeout=1.0)

    def _remove_uds(self) -> None:
        path = self.config.uds
        if path is None or self._uds_inode is None:
            return
        # Only unlink the file we created: another server may have replaced it.
        with contextlib.suppress(OSError):
            st = os.stat(path)
            if (st.st_dev, st.st_ino) == self._uds_inode:
                os.unlink(path)
        self._uds_inode = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Handle SIGINT/SIGTERM as "exit gracefully" while serving.

        The loop's add_signal_handler runs our handler as a loop callback (not
        in the middle of a protocol callback) and wakes the loop at once.
        Afterwards the previous handlers are restored and the captured signals
        re-raised, newest first, so the program behaves as if we had not
        intercepted them (Ctrl+C still ends an embedding script).
        """
        if threading.current_thread() is not threading.main_thread():
            # Only the main thread may install signal handlers.
            yield
            return
        loop = asyncio.get_running_loop()
        previous: dict[int, Any] = {}
        via_loop: set[int] = set()
        for sig in HANDLED_SIGNALS:
            previous[sig] = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
                via_loop.add(sig)
            except (NotImplementedError, RuntimeError):  # Windows, or a loop without it
                signal.signal(sig, self.handle_exit)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                if sig in via_loop:
                    loop.remove_signal_handler(sig)
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for sig in reversed(self._captured_signals):
            signal.raise_signal(sig)

    def handle_exit(self, sig: int, frame: Any) -> None:
        """First signal: graceful exit.  A second SIGINT: force exit (skip the drain and lifespan).

        Only SIGINT escalates, as in uvicorn: a person presses Ctrl+C twice,
        while a supervisor that repeats SIGTERM still wants a graceful stop.
        """
        self._captured_signals.append(sig)
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _run_on_new_loop(coro: Coroutine[Any, Any, Any], loop_factory: Any) -> Any:
    """asyncio.run() with a loop factory, on Python 3.10 too."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(coro)
    loop = loop_factory()  # pragma: no cover - Python 3.10 only
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _raise_keyboard_interrupt(sig: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(app: Any, *, app_dir: str | None = None, **options: Any) -> None:
    """Serve `app` (an ASGI app or a ``"module:attr"`` string) until SIGINT/SIGTERM.

    `options` are Config's keywords.  `app_dir` is put first on ``sys.path``
    so the import string is found there.  A graceful stop by either signal
    returns normally (the CLI exits 0); a startup failure raises SystemExit(3).
    """
    if app_dir is not None:
        sys.path.insert(0, os.path.abspath(app_dir))
    config = Config(app, **options)
    server = Server(config)
    # The server re-raises the signals it handled once it has drained.  Make
    # SIGTERM arrive as KeyboardInterrupt, like SIGINT, so both end here
    # with a clean exit instead of the process dying of the signal.
    on_main = threading.current_thread() is threading.main_thread()
    previous_term = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt) if on_main else None
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous_term if previous_term is not None else signal.SIG_DFL)
