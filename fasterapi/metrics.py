"""Prometheus metrics on a separate listener: ``--metrics-port`` (and ``--metrics-host``).

Nothing here runs unless ``--metrics-port`` is given.  Then:

- the protocol counts each finished HTTP response into plain Python ints and
  lists (``Stats.observe``, called from ``HttpCore._response_complete``) on
  the event loop: no prometheus-client call and no lock per request;
  ``wrap_app`` does the same as an ASGI wrapper, for embedders of other
  servers;
- a custom Collector turns those numbers into metric families only when
  ``/metrics`` is scraped;
- the listener is a tiny asyncio server on the same loop (no thread), so the
  numbers it reads are never half-updated.

It uses prometheus-client's default registry, so metrics the app registers
itself come out on the same page.

With ``--workers`` the supervisor serves ``/metrics`` instead (one listener,
on an asyncio loop in a thread of the supervisor process).  Workers keep
counting into their ``Stats`` and send a ``snapshot()`` with every heartbeat;
``WorkerTotals`` sums them, keeps the last snapshot of every worker that
exited (counters never go backwards) and counts the supervisor's restarts.  prometheus-client is an optional
dependency (``pip install prometheus-client``); without it the server refuses
to start with a message saying so.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

__all__ = [
    "RESTART_REASONS", "STATS", "Snapshot", "Stats", "WorkerTotals", "record_worker_restart",
    "serve_worker_totals", "snapshot", "start_metrics_server", "wrap_app",
]

logger = logging.getLogger("fasterapi.error")

# prometheus-client's default histogram buckets (seconds).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_FIRST = BUCKETS[0]

_MAX_HEAD = 8192          # a scrape request head larger than this is refused
_HEAD_TIMEOUT = 5.0       # seconds a scraper may take to send its request head

# Why a supervisor replaced a worker: it died, it missed its health check,
# it stopped by itself (--limit-max-requests), it outgrew --workers-max-rss,
# or SIGHUP rolled it.  Every reason is exported from the start (at 0), so a
# rate() over it has a first sample before the first restart.
RESTART_REASONS = ("died", "hung", "recycled", "rss", "sighup")


class Stats:
    """Per-process counters, updated on the event loop, read at scrape time."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.bucket_counts = [0] * (len(BUCKETS) + 1)   # the last one is +Inf
        self.duration_sum = 0.0
        self.worker_restarts = dict.fromkeys(RESTART_REASONS, 0)

    def observe(self, method: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        key = (method, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        # PERF: most requests fit the first bucket; skip the bisect call for them.
        # bisect_left: the first bound >= seconds, as Prometheus' "le" means.
        self.bucket_counts[0 if seconds <= _FIRST else bisect.bisect_left(BUCKETS, seconds)] += 1
        self.duration_sum += seconds


# One per process: a gunicorn arbiter or supervisor counts restarts here.
STATS = Stats()


def record_worker_restart(reason: str = "died") -> None:
    """Count one restart in this process' ``fasterapi_worker_restarts_total{reason}``.

    For an embedder whose own process manager restarts workers (fasterapi's
    supervisor counts into ``WorkerTotals`` instead).  Raises ValueError if
    `reason` is not one of ``RESTART_REASONS``.
    """
    if reason not in STATS.worker_restarts:
        raise ValueError(f"reason must be one of {RESTART_REASONS}; got {reason!r}")
    STATS.worker_restarts[reason] += 1


class Snapshot(NamedTuple):
    """One process' numbers at one moment: what a worker sends its supervisor with each heartbeat."""

    requests: dict[tuple[str, int], int]
    bucket_counts: list[int]
    duration_sum: float
    open_connections: int
    app_tasks: int
    queue_depth: int


def snapshot(stats: Stats, server_state: Any) -> Snapshot:
    """A copy of `stats` and the current gauges of `server_state` (call it on the server's loop)."""
    return Snapshot(stats.requests.copy(), stats.bucket_counts.copy(), stats.duration_sum,
                    len(server_state.connections), len(server_state.tasks), _queue_depth())


class WorkerTotals:
    """The supervisor's sum of its workers' snapshots, plus the restarts it counted.

    The supervisor's main thread writes (``update``, ``retire``,
    ``count_restart``); the metrics thread reads (``totals``) at scrape time.
    One lock keeps a scrape from seeing a worker both live and retired.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, Snapshot] = {}
        # Counters of the workers that exited, as of their last snapshot.
        self._retired = Stats()
        self._restarts = dict.fromkeys(RESTART_REASONS, 0)

    def update(self, pid: int, snap: Snapshot) -> None:
        """Take `snap` as worker `pid`'s latest numbers (its counters only grow)."""
        with self._lock:
            self._live[pid] = snap

    def retire(self, pid: int) -> None:
        """Worker `pid` is gone: keep its counters, drop its gauges.

        Requests it answered after its last snapshot are lost (a SIGKILLed
        worker cannot report them); a graceful stop sends a final one.
        """
        with self._lock:
            snap = self._live.pop(pid, None)
            if snap is None:
                return
            retired = self._retired
            for key, count in snap.requests.items():
                retired.requests[key] = retired.requests.get(key, 0) + count
            for i, count in enumerate(snap.bucket_counts):
                retired.bucket_counts[i] += count
            retired.duration_sum += snap.duration_sum

    def count_restart(self, reason: str) -> None:
        """Count one restart; `reason` is one of ``RESTART_REASONS``."""
        with self._lock:
            self._restarts[reason] += 1

    def totals(self) -> tuple[Snapshot, dict[str, int]]:
        """Counters summed over live and retired workers, gauges over live ones, and the restarts."""
        with self._lock:
            live = list(self._live.values())
            retired = self._retired
            requests = retired.requests.copy()
            buckets = retired.bucket_counts.copy()
            duration = retired.duration_sum
            for snap in live:
                for key, count in snap.requests.items():
                    requests[key] = requests.get(key, 0) + count
                for i, count in enumerate(snap.bucket_counts):
                    buckets[i] += count
                duration += snap.duration_sum
            restarts = self._restarts.copy()
        return Snapshot(
            requests, buckets, duration,
            sum(s.open_connections for s in live), sum(s.app_tasks for s in live),
            sum(s.queue_depth for s in live),
        ), restarts


def wrap_app(app: Any, stats: Stats) -> Any:
    """The ASGI app `app`, with each ``http`` request observed into `stats`.

    Other scope types (lifespan, websocket) pass straight through.  A request
    whose app raised before ``http.response.start`` counts as status 500,
    which is what the server sends for it.
    """
    clock = time.perf_counter

    async def metrics_app(scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        start = clock()
        status = 500

        def observing_send(message: Any) -> Any:
            # Not a coroutine: hands back the server's own awaitable, so the
            # wrapper costs one Python call per message, not a coroutine.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            return await app(scope, receive, observing_send)
        finally:
            stats.observe(scope["method"], status, clock() - start)

    return metrics_app


class Collector:
    """prometheus-client Collector: builds the fasterapi_* families from Stats at scrape time."""

    def __init__(self, stats: Stats, server_state: Any):
        self.stats = stats
        self.server_state = server_state

    def describe(self) -> list[Any]:
        """No up-front description: the registry then calls collect() only at scrape time."""
        return []

    def collect(self) -> Iterator[Any]:
        """Yield the metric families (runs on the event loop, inside a scrape)."""
        yield from _families(snapshot(self.stats, self.server_state), self.stats.worker_restarts)


class TotalsCollector:
    """prometheus-client Collector for the supervisor: the fasterapi_* families from WorkerTotals."""

    def __init__(self, totals: WorkerTotals):
        self.totals = totals

    def describe(self) -> list[Any]:
        """No up-front description: the registry then calls collect() only at scrape time."""
        return []

    def collect(self) -> Iterator[Any]:
        """Yield the metric families summed over the workers (runs in the metrics thread)."""
        yield from _families(*self.totals.totals())


def _families(snap: Snapshot, restarts: dict[str, int]) -> Iterator[Any]:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    requests = CounterMetricFamily(
        "fasterapi_requests", "HTTP requests answered, by method and status.",
        labels=["method", "status"],
    )
    for (method, status), count in sorted(snap.requests.items()):
        requests.add_metric([method, str(status)], count)
    yield requests

    cumulative, buckets = 0, []
    for bound, count in zip((*BUCKETS, float("inf")), snap.bucket_counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    yield HistogramMetricFamily(
        "fasterapi_request_duration_seconds",
        "Time from the parsed request head to the complete response, per HTTP request.",
        buckets=buckets, sum_value=snap.duration_sum,
    )
    yield GaugeMetricFamily(
        "fasterapi_open_connections", "Open HTTP connections.", value=snap.open_connections)
    yield GaugeMetricFamily(
        "fasterapi_app_tasks", "App tasks running (requests being handled).", value=snap.app_tasks)
    yield GaugeMetricFamily(
        "fasterapi_dispatch_queue_depth",
        "Parsed requests waiting in the dispatch ring for an app task.", value=snap.queue_depth)
    restarted = CounterMetricFamily(
        "fasterapi_worker_restarts", "Worker processes replaced by the supervisor, by reason.",
        labels=["reason"],
    )
    for reason, count in restarts.items():
        restarted.add_metric([reason], count)
    yield restarted


def _queue_depth() -> int:
    from fasterapi._protocol import dispatch_queue_depth

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:   # collected outside the server's loop (tests, a foreign registry user)
        return 0
    return dispatch_queue_depth(loop)


_registered: Any = None


def _register(collector: Any) -> Any:
    global _registered
    from prometheus_client import REGISTRY

    # One fasterapi collector per process; a second server in it (tests) replaces it.
    if _registered is not None:
        REGISTRY.unregister(_registered)
    REGISTRY.register(collector)
    _registered = collector
    return REGISTRY


def _require_client() -> None:
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "--metrics-port needs prometheus-client: pip install prometheus-client"
        ) from exc


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, registry: Any) -> None:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT)
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
            ConnectionError):
        writer.close()
        return
    method, _, rest = head.partition(b" ")
    target = rest.partition(b" ")[0].partition(b"?")[0]
    if method not in (b"GET", b"HEAD"):
        status, ctype, body = b"405 Method Not Allowed", b"text/plain", b"Method Not Allowed\n"
    elif target != b"/metrics":
        status, ctype, body = b"404 Not Found", b"text/plain", b"Not Found: try /metrics\n"
    else:
        status, ctype, body = b"200 OK", CONTENT_TYPE_LATEST.encode(), generate_latest(registry)
    writer.write(
        b"HTTP/1.1 " + status + b"\r\ncontent-type: " + ctype + b"\r\ncontent-length: "
        + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
        + (b"" if method == b"HEAD" else body)
    )
    try:
        await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def start_metrics_server(config: Any, server_state: Any, stats: Stats = STATS) -> asyncio.AbstractServer:
    """Have connections count requests into `stats` and listen for scrapes on --metrics-host/port.

    Raises ImportError (with the install command) if prometheus-client is
    missing, and OSError if the address cannot be bound.
    """
    _require_client()
    registry = _register(Collector(stats, server_state))
    # Read by each new connection (HttpCore.connection_made).
    config.metrics_stats = stats
    return await _listen(registry, config.metrics_host, config.metrics_port)


async def _listen(registry: Any, host: str, port: int) -> asyncio.AbstractServer:
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, registry), host, port, limit=_MAX_HEAD)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    logger.info("Prometheus metrics on http://%s:%d/metrics", bound_host, bound_port)
    return server


def serve_worker_totals(totals: WorkerTotals, host: str, port: int) -> Callable[[], None]:
    """Serve `totals` on http://host:port/metrics from a daemon thread; return a stop function.

    For the ``--workers`` supervisor, whose main thread blocks in
    ``multiprocessing.connection.wait``: its own asyncio loop in a thread
    answers scrapes without waiting for the supervisor's next tick, and a
    slow scraper cannot delay health checks.  Returns once the port is
    bound; raises ImportError (prometheus-client missing) or OSError (the
    address cannot be bound) from the caller's thread.
    """
    _require_client()
    registry = _register(TotalsCollector(totals))
    loop = asyncio.new_event_loop()
    bound: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(_listen(registry, host, port))
        except BaseException as exc:
            loop.close()
            bound.set_exception(exc)
            return
        bound.set_result(None)
        try:
            loop.run_forever()
        finally:
            server.close()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=run, name="fasterapi-metrics", daemon=True)
    thread.start()
    bound.result()

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    return stop
