"""--metrics-port: Prometheus text on a second listener, with exact request counts."""

from __future__ import annotations

import httpx
import pytest

from fasterapi.metrics import Collector, Stats, record_worker_restart, wrap_app
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
    assert _sample(text, "fasterapi_worker_restarts_total") == 0
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

    record_worker_restart()
    families = {f.name: f for f in Collector(stats, State()).collect()}
    assert families["fasterapi_open_connections"].samples[0].value == 2
    assert families["fasterapi_requests"].samples[0].labels == {"method": "GET", "status": "204"}


def test_metrics_with_several_workers_is_refused(cli):
    proc = cli("run", "ops_scope:app", "--app-dir", "tests/apps", "--port", "0",
               "--workers", "2", "--metrics-port", "0")
    assert proc.proc.wait(15) == 3
    assert "--metrics-port cannot be combined with --workers" in proc.output()
