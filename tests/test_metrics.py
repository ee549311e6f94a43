"""--metrics-port: Prometheus text on a second listener, with exact request counts."""

from __future__ import annotations

import os
import re
import signal
import time

import httpx
import pytest

from fasterapi.metrics import (
    RESTART_REASONS,
    STATS,
    Collector,
    Snapshot,
    Stats,
    TotalsCollector,
    WorkerTotals,
    record_worker_restart,
    wrap_app,
)
from tests.conftest import free_port

pytest.importorskip("prometheus_client")


def _sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in:\n{text}")


def test_scrape_counts_requests(serve):
    mport = free_port()
    proc = serve("ops_scope:app", "--metrics-port", str(mport))
    with httpx.Client(base_url=proc.url) as client:
        for _ in range(5):
            assert client.get("/").status_code == 200
        for _ in range(3):
            assert client.get("/status/404").status_code == 404
        assert client.post("/status/201", content=b"x").status_code == 201
        assert client.get("/raise").status_code == 500
        metrics = httpx.get(f"http://127.0.0.1:{mport}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert _sample(text, 'fasterapi_requests_total{method="GET",status="200"}') == 5
    assert _sample(text, 'fasterapi_requests_total{method="GET",status="404"}') == 3
    assert _sample(text, 'fasterapi_requests_total{method="POST",status="201"}') == 1
    assert _sample(text, 'fasterapi_requests_total{method="GET",status="500"}') == 1
    assert _sample(text, 'fasterapi_request_duration_seconds_bucket{le="+Inf"}') == 10
    assert _sample(text, "fasterapi_request_duration_seconds_count") == 10
    assert _sample(text, "fasterapi_open_connections") == 1   # the httpx keep-alive connection
    for reason in RESTART_REASONS:
        assert _sample(text, f'fasterapi_worker_restarts_total{{reason="{reason}"}}') == 0
    assert _sample(text, "fasterapi_dispatch_queue_depth") == 0
    assert _sample(text, "fasterapi_app_tasks") == 0
    assert "Prometheus metrics on http://127.0.0.1:" in proc.output()
    assert httpx.get(f"http://127.0.0.1:{mport}/other").status_code == 404


def test_taken_metrics_port_is_a_startup_error(serve, cli):
    taken = serve("ops_scope:app")
    proc = cli("run", "ops_scope:app", "--app-dir", "tests/apps", "--port", "0",
               "--metrics-port", str(taken.port))
    assert proc.proc.wait(15) == 3
    assert "address already in use" in proc.output().lower()


def test_without_prometheus_client(cli, tmp_path):
    # A module that fails to import stands in for an uninstalled package.
    (tmp_path / "prometheus_client.py").write_text("raise ImportError('not installed')\n")
    proc = cli("run", "ops_scope:app", "--app-dir", "tests/apps", "--port", "0",
               "--metrics-port", "0", env={"PYTHONPATH": str(tmp_path)})
    assert proc.proc.wait(15) == 3
    assert "pip install prometheus-client" in proc.output()


async def test_wrapper_and_collector():
    stats = Stats()

    async def app(scope, receive, send):
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message):
        pass

    wrapped = wrap_app(app, stats)
    await wrapped({"type": "http", "method": "GET", "path": "/"}, None, send)
    with pytest.raises(RuntimeError):
        await wrapped({"type": "http", "method": "GET", "path": "/boom"}, None, send)
    assert stats.requests == {("GET", 204): 1, ("GET", 500): 1}
    assert sum(stats.bucket_counts) == 2

    class State:
        connections = {1, 2}
        tasks: set = set()

    record_worker_restart("rss")
    with pytest.raises(ValueError):
        record_worker_restart("bored")
    families = {f.name: f for f in Collector(stats, State()).collect()}
    assert families["fasterapi_open_connections"].samples[0].value == 2
    assert families["fasterapi_requests"].samples[0].labels == {"method": "GET", "status": "204"}
    # record_worker_restart() counts into the process-wide STATS.
    families = {f.name: f for f in Collector(STATS, State()).collect()}
    restarts = {s.labels["reason"]: s.value for s in families["fasterapi_worker_restarts"].samples
                if s.name.endswith("_total")}
    assert restarts["rss"] >= 1


def _snap(requests: int, connections: int) -> Snapshot:
    buckets = [0] * 15
    buckets[0] = requests
    return Snapshot({("GET", 200): requests}, buckets, requests * 0.001, connections, 0, 0)


def test_worker_totals_keep_retired_counters_and_drop_their_gauges():
    totals = WorkerTotals()
    totals.update(1, _snap(3, 2))
    totals.update(2, _snap(4, 1))
    totals.update(1, _snap(5, 1))   # a later snapshot replaces the earlier one
    snap, _ = totals.totals()
    assert snap.requests == {("GET", 200): 9}
    assert (snap.bucket_counts[0], snap.open_connections) == (9, 2)
    totals.retire(1)
    totals.retire(1)                 # reaped once; a second call changes nothing
    totals.count_restart("died")
    snap, restarts = totals.totals()
    assert snap.requests == {("GET", 200): 9}
    assert (sum(snap.bucket_counts), snap.open_connections) == (9, 1)
    assert snap.duration_sum == pytest.approx(0.009)
    assert restarts == {"died": 1, "hung": 0, "recycled": 0, "rss": 0, "sighup": 0}
    families = {f.name: f for f in TotalsCollector(totals).collect()}
    assert families["fasterapi_requests"].samples[0].value == 9


def _scrape(mport: int) -> str:
    response = httpx.get(f"http://127.0.0.1:{mport}/metrics")
    assert response.status_code == 200
    return response.text


def _poll_sample(mport: int, line_start: str, want: float, floor: float = 0.0,
                 timeout: float = 10.0) -> str:
    """Scrape until `line_start` reads `want` (workers report once per heartbeat).

    Fails at once if the sample is ever below `floor`: a counter going backwards.
    """
    deadline = time.monotonic() + timeout
    while True:
        text = _scrape(mport)
        value = _sample(text, line_start)
        assert value >= floor, f"{line_start} went back to {value}:\n{text}"
        if value == want:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{line_start} is {value}, not {want}, after {timeout}s:\n{text}")
        time.sleep(0.05)


GET_200 = 'fasterapi_requests_total{method="GET",status="200"}'


def test_supervisor_serves_the_sum_of_its_workers(serve):
    mport = free_port()
    server = serve("ops_apps:app", "--workers", "2", "--metrics-port", str(mport))
    server.wait_for_log("Prometheus metrics on http://127.0.0.1:")
    deadline = time.monotonic() + 15
    while server.output().count("Application startup complete") < 2:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)
    # A fresh connection per request, so both workers answer some.
    pids = {httpx.get(server.url).json()["pid"] for _ in range(40)}
    assert len(pids) == 2
    text = _poll_sample(mport, GET_200, 40)
    assert _sample(text, "fasterapi_request_duration_seconds_count") == 40
    assert _sample(text, 'fasterapi_request_duration_seconds_bucket{le="+Inf"}') == 40
    assert _sample(text, 'fasterapi_worker_restarts_total{reason="died"}') == 0
    # One listener, in the supervisor: the workers never bind the port.
    assert server.output().count("Prometheus metrics on") == 1

    victim = int(re.findall(r"Started server process \[(\d+)\]", server.output())[0])
    os.kill(victim, signal.SIGKILL)
    _poll_sample(mport, 'fasterapi_worker_restarts_total{reason="died"}', 1)
    # The dead worker's requests stay counted; the replacement adds to them.
    server.wait_for_log("Application startup complete", timeout=10)
    for _ in range(10):
        assert httpx.get(server.url).status_code == 200
    text = _poll_sample(mport, GET_200, 50, floor=40)
    assert _sample(text, 'fasterapi_worker_restarts_total{reason="died"}') == 1
    assert _sample(text, "fasterapi_open_connections") >= 0
    assert server.stop() == 0


def test_recycled_workers_lose_no_requests_from_the_totals(serve):
    # Each worker stops by itself after a few requests; its final snapshot,
    # sent after the drain, must carry the requests since its last heartbeat.
    mport = free_port()
    server = serve("ops_apps:app", "--workers", "1", "--limit-max-requests", "4",
                   "--timeout-worker-healthcheck", "30", "--metrics-port", str(mport))
    for _ in range(14):
        assert httpx.get(server.url, timeout=10).status_code == 200
    text = _poll_sample(mport, GET_200, 14)
    assert _sample(text, 'fasterapi_worker_restarts_total{reason="recycled"}') >= 1
    assert _sample(text, 'fasterapi_worker_restarts_total{reason="died"}') == 0
    assert server.stop() == 0


def test_taken_metrics_port_stops_the_supervisor(serve, cli):
    taken = serve("ops_scope:app")
    proc = cli("run", "ops_scope:app", "--app-dir", "tests/apps", "--port", "0",
               "--workers", "2", "--metrics-port", str(taken.port))
    assert proc.proc.wait(15) == 3
    assert "address already in use" in proc.output().lower()
