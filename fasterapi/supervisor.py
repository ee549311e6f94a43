"""``--workers N``: one supervisor process that keeps N server processes alive.

The supervisor binds the listening socket(s) itself and every worker (a
``multiprocessing`` *spawn* child, so no state leaks in from the parent)
serves on an inherited copy with ``Server.serve(sockets=...)``.  One shared
socket rather than one ``SO_REUSEPORT`` socket per worker, on purpose: when a
reuseport listener closes, Linux resets the connections still waiting in *its*
accept queue (unless ``net.ipv4.tcp_migrate_req`` is set), so every rolling
restart or recycle would drop a few requests.  With one shared queue a
retiring worker's share is simply accepted by the others, and while no worker
accepts at all the kernel keeps queueing.  It also makes ``--uds`` and
``--fd`` work unchanged.

Each worker writes to a pipe: ``ready`` once it listens, ``alive`` every
heartbeat, ``stopping`` when it begins a graceful shutdown (including one it
chose itself, for ``--limit-max-requests``).  The supervisor waits on those
pipes, the process sentinels and a self-pipe for signals, all in one thread:

- a worker silent for ``--timeout-worker-healthcheck`` seconds is SIGKILLed and
  replaced; a worker that dies is replaced (the exit code or signal is logged);
- a worker that exits before it was ever ready (import error, lifespan
  failure) stops everything with exit code 3 instead of a respawn loop;
- SIGHUP replaces the workers one at a time: start the new one, wait for its
  ``ready``, then SIGTERM the old one (which drains gracefully);
- SIGTTIN / SIGTTOU add / remove one worker; SIGINT / SIGTERM stop them all
  gracefully and exit 0 (a second SIGINT kills them);
- ``--workers-max-rss`` replaces a worker whose resident memory (from /proc)
  exceeds the bound, the same way as SIGHUP does for one worker.

With ``--metrics-port`` the supervisor serves ``/metrics`` (fasterapi.metrics
``serve_worker_totals``) and the workers only count: each ``alive`` carries a
snapshot of the worker's counters, and a final ``stopped`` message carries
the requests it answered while draining.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

import click

from fasterapi.config import STARTUP_FAILURE, Config
from fasterapi.metrics import WorkerTotals

logger = logging.getLogger("fasterapi.error")

# How long the supervisor sleeps when nothing happens; health and memory
# checks run at this granularity.
TICK = 0.25
# Memory is read from /proc at most this often (seconds): sampling is cheap,
# but there is no point doing it faster than a worker can grow.
RSS_INTERVAL = 1.0
DEFAULT_HEALTHCHECK_TIMEOUT = 5.0


@dataclass
class WorkerTarget:
    """What every worker process needs to build its own Config and Server (must pickle)."""

    app: str
    app_dir: str | None
    options: dict[str, Any]
    heartbeat: float = 1.0
    # Count requests and send snapshots with the heartbeat (the supervisor
    # serves --metrics-port; the worker's options then lack it).
    report_metrics: bool = False


# --- the worker side -------------------------------------------------------------------------


def worker_main(target: WorkerTarget, sockets: list[socket.socket], conn: Connection | None) -> None:
    """Entry point of a worker process: serve `target` on `sockets` until SIGTERM/SIGINT.

    Messages go to `conn` (None: no supervisor listens, as under the
    reloader).  Exits 0 after a graceful stop and 3 (from Config/Server) if
    startup fails.
    """
    # Process-management signals are the supervisor's business; by default
    # SIGTTIN/SIGTTOU would stop this process and SIGHUP would kill it.
    for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(sig, signal.SIG_IGN)
    # The server re-raises the signal it stopped for once it has drained; make
    # SIGTERM arrive as KeyboardInterrupt (like SIGINT) so both end in exit 0.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    if target.app_dir is not None:
        sys.path.insert(0, os.path.abspath(target.app_dir))

    from fasterapi.server import Server, _run_on_new_loop

    config = Config(target.app, **target.options)
    if target.report_metrics and conn is not None:
        from fasterapi.metrics import STATS

        # Read by each new connection, as start_metrics_server would set it.
        config.metrics_stats = STATS
    server = Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        _run_on_new_loop(_serve_worker(server, sockets, conn, target.heartbeat), config.get_loop_factory())


def _raise_keyboard_interrupt(sig: int, frame: Any) -> None:
    raise KeyboardInterrupt


async def _serve_worker(server: Any, sockets: list[socket.socket], conn: Connection | None,
                        interval: float) -> None:
    import asyncio

    if conn is None:
        await server.serve(sockets=sockets)
        return
    heartbeat = _Heartbeat(server, conn, interval)
    beat = asyncio.create_task(heartbeat.run())
    try:
        await server.serve(sockets=sockets)
    finally:
        beat.cancel()
        # A drain shorter than one poll ends before run() saw should_exit;
        # say "stopping" now, so the exit is not mistaken for a crash.  Not
        # after a failed startup: that exit must read as one.
        if server.started:
            heartbeat.send_stopping()
            heartbeat.send_final()


class _Heartbeat:
    """Reports ready / alive / stopping to the supervisor from inside the event loop.

    Running in the server's own loop is the point: if the app blocks the loop,
    the heartbeats stop and the supervisor notices.
    """

    def __init__(self, server: Any, conn: Connection, interval: float) -> None:
        self.server = server
        self.conn = conn
        self.interval = interval
        self.parent = os.getppid()
        self.stopping_sent = False
        self.stats = getattr(server.config, "metrics_stats", None)

    def _snapshot(self) -> Any:
        if self.stats is None:
            return None
        from fasterapi.metrics import snapshot

        # PERF: measured with 6 (method, status) keys: snapshot 5 us; send and
        # receive 31 us against 12.5 us for a bare heartbeat (180 bytes
        # pickled), once per heartbeat (1 s by default): negligible.
        return snapshot(self.stats, self.server.server_state)

    def send_stopping(self) -> None:
        if not self.stopping_sent:
            self.stopping_sent = True
            with contextlib.suppress(OSError):
                self.conn.send(("stopping", os.getpid()))

    def send_final(self) -> None:
        """Send the counters after the drain, so a graceful exit loses no request from the totals."""
        if self.stats is not None:
            with contextlib.suppress(OSError):
                self.conn.send(("stopped", os.getpid(), self._snapshot()))

    async def run(self) -> None:
        import asyncio

        server = self.server
        try:
            while not server.started and not server.should_exit:
                await asyncio.sleep(0.02)
            if server.started:
                self.conn.send(("ready", os.getpid()))
            last_beat = 0.0
            while True:
                # Look at should_exit every 0.05 s: "stopping" should reach the
                # supervisor while the drain runs, so the successor starts early.
                if server.should_exit:
                    self.send_stopping()
                now = time.monotonic()
                if now - last_beat >= self.interval:
                    self.conn.send(("alive", os.getpid(), self._snapshot()))
                    last_beat = now
                    if os.getppid() != self.parent:
                        raise BrokenPipeError("the supervisor is gone")
                await asyncio.sleep(min(self.interval, 0.05))
        except OSError:
            # No supervisor any more: nobody would replace or stop us, so leave.
            logger.warning("Supervisor [%d] is gone; shutting down.", self.parent)
            server.should_exit = True


# --- the supervisor side ---------------------------------------------------------------------


@dataclass(eq=False)
class Worker:
    """The supervisor's view of one worker process."""

    process: Any
    conn: Connection
    started_at: float
    state: str = "starting"  # starting -> ready -> stopping
    last_beat: float = 0.0
    replaces: Worker | None = None  # an old worker to SIGTERM once this one is ready
    superseded: bool = False  # a replacement for this worker is starting
    killed_for: str | None = None
    replaced_for: str | None = None  # "rss" or "sighup": counted once the successor is ready
    ever_ready: bool = False  # health checks start with the first "ready"
    pid: int = field(default=0)


def bind_sockets(config: Config) -> tuple[list[socket.socket], Any]:
    """Bind and listen on what `config` names (--fd, --uds or host/port).

    Returns the sockets and a helper Server that removes the Unix socket file
    on cleanup (or None).  Raises OSError if binding fails.
    """
    from fasterapi.server import Server

    if config.fd is not None:
        sock = socket.socket(fileno=os.dup(config.fd))
        return [sock], None
    if config.uds is not None:
        owner = Server(config)
        sock = owner._bind_unix(config.uds)
        sock.listen(config.backlog)
        return [sock], owner
    sockets: list[socket.socket] = []
    seen = set()
    host = config.host or None
    try:
        infos = socket.getaddrinfo(host, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # As asyncio does: one socket per family, not dual-stack.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(config.backlog)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets, None


class Supervisor:
    """Run `workers` worker processes for `target` on `sockets` until SIGINT/SIGTERM.

    ``run()`` returns the process exit code: 0 after a graceful stop, 3 when a
    worker failed to start.
    """

    def __init__(self, target: WorkerTarget, sockets: Sequence[socket.socket], workers: int = 1,
                 healthcheck_timeout: float = DEFAULT_HEALTHCHECK_TIMEOUT,
                 max_rss_mib: float | None = None, totals: WorkerTotals | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1; got {workers}")
        self.target = target
        self.sockets = list(sockets)
        self.target_count = workers
        self.healthcheck_timeout = healthcheck_timeout
        self.max_rss = None if max_rss_mib is None else int(max_rss_mib * 1024 * 1024)
        # Beat often enough that one late beat is not mistaken for a hang.
        target.heartbeat = max(0.05, min(1.0, healthcheck_timeout / 5))
        self.workers: list[Worker] = []
        self.exit_code = 0
        self.stopping = False
        self._ctx = multiprocessing.get_context("spawn")
        self._signals: list[int] = []
        self._restart_queue: list[Worker] = []
        self._last_rss_check = 0.0
        # Worker snapshots and restart counts, served by --metrics-port.
        self.totals = totals if totals is not None else WorkerTotals()

    # Signals are only recorded here; the main loop acts on them, woken
    # through the self-pipe that set_wakeup_fd writes to.
    def _on_signal(self, sig: int, frame: Any) -> None:
        self._signals.append(sig)

    def run(self) -> int:
        """Supervise until stopped; return the exit code."""
        pid = os.getpid()
        logger.info(
            "Started parent process [%d]", pid,
            extra={"color_message": "Started parent process [" + click.style("%d", fg="cyan") + "]"},
        )
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)
        on_main = threading.current_thread() is threading.main_thread()
        previous: dict[int, Any] = {}
        old_wakeup = -1
        if on_main:
            for sig in handled:
                previous[sig] = signal.signal(sig, self._on_signal)
            old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        try:
            for _ in range(self.target_count):
                self._spawn()
            while self.workers or not self.stopping:
                self._step(wake_r)
        finally:
            for worker in self.workers:  # only left if something raised
                with contextlib.suppress(OSError):
                    worker.process.kill()
            if on_main:
                signal.set_wakeup_fd(old_wakeup)
                for sig, handler in previous.items():
                    signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            wake_r.close()
            wake_w.close()
        logger.info(
            "Stopping parent process [%d]", pid,
            extra={"color_message": "Stopping parent process [" + click.style("%d", fg="cyan") + "]"},
        )
        return self.exit_code

    def _step(self, wake_r: socket.socket) -> None:
        waitables: list[Any] = [wake_r]
        for worker in self.workers:
            waitables.append(worker.conn)
            waitables.append(worker.process.sentinel)
        wait(waitables, timeout=TICK)
        with contextlib.suppress(BlockingIOError):
            while wake_r.recv(512):
                pass
        while self._signals:
            self._handle_signal(self._signals.pop(0))
        self._read_messages()
        self._reap()
        now = time.monotonic()
        self._check_health(now)
        if self.max_rss is not None and now - self._last_rss_check >= RSS_INTERVAL:
            self._last_rss_check = now
            self._check_memory()
        if not self.stopping:
            self._advance_restart()
            self._reconcile()

    # --- events ---

    def _handle_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if sig in (signal.SIGINT, signal.SIGTERM):
            if self.stopping and sig == signal.SIGINT:
                logger.warning("Received %s again; killing the workers.", name)
                for worker in self.workers:
                    worker.process.kill()
                return
            if not self.stopping:
                logger.info("Received %s; stopping %d worker(s) gracefully.", name, len(self.workers))
            self.stopping = True
            for worker in self.workers:
                self._terminate(worker)
        elif self.stopping:
            return
        elif sig == signal.SIGHUP:
            logger.info("Received SIGHUP; restarting the workers one at a time.")
            self._restart_queue = [w for w in self.workers if self._in_service(w)]
        elif sig == signal.SIGTTIN:
            self.target_count += 1
            logger.info("Received SIGTTIN; increasing to %d worker(s).", self.target_count)
        elif sig == signal.SIGTTOU:
            if self.target_count > 1:
                self.target_count -= 1
                logger.info("Received SIGTTOU; decreasing to %d worker(s).", self.target_count)
            else:
                logger.warning("Received SIGTTOU; keeping the last worker.")

    def _read_messages(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            self._receive(worker, now)

    def _receive(self, worker: Worker, now: float) -> None:
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                kind = message[0]
                worker.last_beat = now
                if len(message) > 2 and message[2] is not None:
                    self.totals.update(worker.pid, message[2])
                if kind == "ready":
                    self._on_ready(worker)
                elif kind == "stopping" and worker.state == "ready":
                    # The worker stopped by itself (--limit-max-requests):
                    # _reconcile() starts its successor right away.
                    worker.state = "stopping"
                    self.totals.count_restart("recycled")
                    logger.info("Worker [%d] is shutting down by itself; starting a replacement.",
                                worker.pid)
        except (EOFError, OSError):
            pass  # the process is gone; _reap() reports it

    def _on_ready(self, worker: Worker) -> None:
        worker.ever_ready = True
        if worker.state == "starting":
            worker.state = "ready"
        old = worker.replaces
        worker.replaces = None
        if old is not None and old in self.workers and old.state != "stopping":
            if old.replaced_for is not None:
                self.totals.count_restart(old.replaced_for)
            self._terminate(old)

    def _reap(self) -> None:
        for worker in list(self.workers):
            if worker.process.is_alive():
                continue
            worker.process.join()
            # What it wrote just before exiting (its final counters, a
            # "stopping") may still be unread: the pipe outlives the process.
            self._receive(worker, time.monotonic())
            self.workers.remove(worker)
            worker.conn.close()
            self.totals.retire(worker.pid)
            code = worker.process.exitcode
            how = _describe_exit(code)
            if worker.replaces is not None:
                worker.replaces.superseded = False  # the old one stays in service
            if worker.state == "starting" and worker.replaces is not None and not self.stopping:
                # A restart with broken code must not take down the workers
                # that still serve the old code.
                logger.error("Worker [%d] failed to start (%s); keeping the old worker(s).",
                             worker.pid, how)
                self._restart_queue = []
            elif worker.state == "starting" and not worker.killed_for and not self.stopping:
                logger.error("Worker [%d] failed to start (%s); stopping.", worker.pid, how)
                self._fail()
            elif worker.killed_for:
                logger.warning("Worker [%d] %s (%s).", worker.pid, worker.killed_for, how)
                if not self.stopping:
                    self.totals.count_restart("hung")
            elif worker.state == "stopping":
                logger.info("Worker [%d] stopped (%s).", worker.pid, how)
            elif code == 0:
                logger.info("Worker [%d] exited by itself (%s); replacing it.", worker.pid, how)
                if not self.stopping:
                    self.totals.count_restart("died")
            else:
                logger.warning("Worker [%d] died unexpectedly (%s); replacing it.", worker.pid, how)
                if not self.stopping:
                    self.totals.count_restart("died")

    def _fail(self) -> None:
        self.exit_code = STARTUP_FAILURE
        self.stopping = True
        for other in self.workers:
            self._terminate(other)

    def _check_health(self, now: float) -> None:
        for worker in self.workers:
            # A worker is only judged once it has said "ready": startup (app
            # import, lifespan) may take any time, even after a SIGTERM.
            if not worker.ever_ready or worker.killed_for:
                continue
            silent = now - worker.last_beat
            if silent > self.healthcheck_timeout:
                logger.error("Worker [%d] has not answered for %.1fs; killing it.", worker.pid, silent)
                worker.killed_for = "was killed after failing its health check"
                worker.process.kill()

    def _check_memory(self) -> None:
        assert self.max_rss is not None
        for worker in self.workers:
            if not self._in_service(worker) or worker.state != "ready":
                continue
            rss = _rss_bytes(worker.pid)
            if rss is not None and rss > self.max_rss:
                logger.warning(
                    "Worker [%d] uses %d MiB, over the --workers-max-rss limit of %d MiB; replacing it.",
                    worker.pid, rss // 2**20, self.max_rss // 2**20,
                )
                self._replace(worker, "rss")

    # --- actions ---

    def _spawn(self) -> Worker:
        reader, writer = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=worker_main, args=(self.target, self.sockets, writer), name="fasterapi-worker",
        )
        process.start()
        writer.close()  # the child holds the only writer, so its death reads as EOF
        worker = Worker(process=process, conn=reader, started_at=time.monotonic(), pid=process.pid)
        self.workers.append(worker)
        return worker

    def _terminate(self, worker: Worker) -> None:
        worker.state = "stopping"
        with contextlib.suppress(OSError):
            worker.process.terminate()

    def _replace(self, old: Worker, reason: str) -> None:
        """Start a successor for `old`; `old` gets SIGTERM once the successor is ready.

        `reason` ("rss" or "sighup") is counted as a restart then, not before:
        a successor that fails to start leaves `old` serving.
        """
        new = self._spawn()
        new.replaces = old
        old.superseded = True
        old.replaced_for = reason

    def _in_service(self, worker: Worker) -> bool:
        return worker.state != "stopping" and not worker.superseded and not worker.killed_for

    def _advance_restart(self) -> None:
        # One replacement at a time: wait while a successor is still starting.
        if any(w.replaces is not None for w in self.workers):
            return
        while self._restart_queue:
            old = self._restart_queue.pop(0)
            if old in self.workers and self._in_service(old):
                self._replace(old, "sighup")
                return
        self._restart_queue = []

    def _reconcile(self) -> None:
        active = [w for w in self.workers if self._in_service(w)]
        for _ in range(self.target_count - len(active)):
            self._spawn()
        if len(active) > self.target_count:
            # The oldest goes first, as in gunicorn.
            for worker in sorted(active, key=lambda w: w.started_at)[: len(active) - self.target_count]:
                self._terminate(worker)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _rss_bytes(pid: int) -> int | None:
    """Resident set size of `pid` from /proc (None where /proc is missing or the process is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as file:
            return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def run_supervisor(app: str, *, app_dir: str | None = None, workers: int = 1,
                   timeout_worker_healthcheck: float = DEFAULT_HEALTHCHECK_TIMEOUT,
                   workers_max_rss: float | None = None, **options: Any) -> int:
    """Serve the import string `app` with `workers` supervised processes; return the exit code.

    `options` are Config's keywords.  Exits with code 3 (SystemExit) if the
    listening socket cannot be bound; returns 3 if a worker fails to start.
    """
    if not isinstance(app, str):
        raise ValueError("--workers needs the app as an import string (\"module:attr\")")
    config = Config(app, **options)  # configures logging; validates options early
    sockets, owner = bind_and_announce(config)
    totals = WorkerTotals()
    stop_metrics = None
    try:
        if config.metrics_port is not None:
            from fasterapi.metrics import serve_worker_totals

            # One listener, here: every worker binding the one port would
            # fail, and each would only know its own share anyway.
            try:
                stop_metrics = serve_worker_totals(totals, config.metrics_host, config.metrics_port)
            except (ImportError, OSError) as exc:
                logger.error("%s", exc)
                return STARTUP_FAILURE
        worker_options = {k: v for k, v in options.items() if k not in ("metrics_port", "metrics_host")}
        target = WorkerTarget(app=app, app_dir=app_dir, options=worker_options,
                              report_metrics=stop_metrics is not None)
        return Supervisor(target, sockets, workers, timeout_worker_healthcheck, workers_max_rss,
                          totals).run()
    finally:
        if stop_metrics is not None:
            stop_metrics()
        for sock in sockets:
            sock.close()
        if owner is not None:
            owner._remove_uds()


def bind_and_announce(config: Config) -> tuple[list[socket.socket], Any]:
    """bind_sockets, then log where we listen (the --workers and --reload parents).

    Logs the reason and exits with code 3 (SystemExit) if the listening
    socket cannot be bound.
    """
    try:
        sockets, owner = bind_sockets(config)
    except OSError as exc:
        from fasterapi.server import Server

        logger.error("%s", Server(config)._bind_error(exc))
        sys.exit(STARTUP_FAILURE)
    _log_listening(config, sockets)
    return sockets, owner


def _log_listening(config: Config, sockets: list[socket.socket]) -> None:
    if config.uds is not None:
        where = f"unix socket {config.uds}"
    elif sockets and sockets[0].family == socket.AF_UNIX:
        where = f"unix socket {sockets[0].getsockname()}"
    else:
        host, port = sockets[0].getsockname()[:2]
        where = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    logger.info(
        "Fasterapi running on %s (Press CTRL+C to quit)", where,
        extra={"color_message": "Fasterapi running on " + click.style("%s", bold=True)
               + " (Press CTRL+C to quit)"},
    )
