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
itself come out on the same page.  prometheus-client is an optional
dependency (``pip install prometheus-client``); without it the server refuses
to start with a message saying so.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["Stats", "STATS", "record_worker_restart", "start_metrics_server", "wrap_app"]

logger = logging.getLogger("fasterapi.error")

# prometheus-client's default histogram buckets (seconds).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_FIRST = BUCKETS[0]

_MAX_HEAD = 8192          # a scrape request head larger than this is refused
_HEAD_TIMEOUT = 5.0       # seconds a scraper may take to send its request head


class Stats:
    """Per-process counters, updated on the event loop, read at scrape time."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.bucket_counts = [0] * (len(BUCKETS) + 1)   # the last one is +Inf
        self.duration_sum = 0.0
        self.worker_restarts = 0

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


def record_worker_restart() -> None:
    """Count one worker restart in ``fasterapi_worker_restarts_total`` (for the supervisor)."""
    STATS.worker_restarts += 1


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
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        stats = self.stats
        requests = CounterMetricFamily(
            "fasterapi_requests", "HTTP requests answered, by method and status.",
            labels=["method", "status"],
        )
        for (method, status), count in sorted(stats.requests.items()):
            requests.add_metric([method, str(status)], count)
        yield requests

        cumulative, buckets = 0, []
        for bound, count in zip((*BUCKETS, float("inf")), stats.bucket_counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "fasterapi_request_duration_seconds",
            "Time from the parsed request head to the complete response, per HTTP request.",
            buckets=buckets, sum_value=stats.duration_sum,
        )
        state = self.server_state
        yield GaugeMetricFamily(
            "fasterapi_open_connections", "Open HTTP connections.", value=len(state.connections))
        yield GaugeMetricFamily(
            "fasterapi_app_tasks", "App tasks running (requests being handled).",
            value=len(state.tasks))
        yield GaugeMetricFamily(
            "fasterapi_dispatch_queue_depth",
            "Parsed requests waiting in the dispatch ring for an app task.",
            value=_queue_depth())
        yield CounterMetricFamily(
            "fasterapi_worker_restarts", "Worker processes restarted by the supervisor.",
            value=stats.worker_restarts)


def _queue_depth() -> int:
    from fasterapi._protocol import dispatch_queue_depth

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:   # collected outside the server's loop (tests, a foreign registry user)
        return 0
    return dispatch_queue_depth(loop)


_registered: Collector | None = None


def _register(stats: Stats, server_state: Any) -> Any:
    global _registered
    from prometheus_client import REGISTRY

    # One collector per process; a second server in it (tests) takes it over.
    if _registered is None:
        _registered = Collector(stats, server_state)
        REGISTRY.register(_registered)
    else:
        _registered.stats, _registered.server_state = stats, server_state
    return REGISTRY


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
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "--metrics-port needs prometheus-client: pip install prometheus-client"
        ) from exc
    registry = _register(stats, server_state)
    # Read by each new connection (HttpCore.connection_made).
    config.metrics_stats = stats
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, registry), config.metrics_host, config.metrics_port,
        limit=_MAX_HEAD,
    )
    host, port = server.sockets[0].getsockname()[:2]
    logger.info("Prometheus metrics on http://%s:%d/metrics", host, port)
    return server
