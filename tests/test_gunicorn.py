"""gunicorn with ``-k fasterapi.workers.FasterAPIWorker``: the arbiter runs, fasterapi serves."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from conftest import APPS, ROOT, free_port

pytest.importorskip("gunicorn", reason="gunicorn is not installed (pip install gunicorn)")


@pytest.fixture
def gunicorn(tmp_path):
    """Factory: `gunicorn(*args)` -> (process, url, log path); stopped at the end of the test."""
    started: list[subprocess.Popen] = []

    def start(*args: str, app: str = "ops_apps:app", worker: str = "FasterAPIWorker"):
        port = free_port()
        log = tmp_path / f"gunicorn-{len(started)}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", f"fasterapi.workers.{worker}",
             "--bind", f"127.0.0.1:{port}", "--chdir", str(APPS), "--graceful-timeout", "5",
             *args, app],
            cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                httpx.get(url, timeout=2)
                return proc, url, log
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"gunicorn did not serve within 20s:\n{log.read_text()}")

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_gunicorn_serves_through_the_fasterapi_worker(gunicorn):
    proc, url, log = gunicorn("--workers", "2", "--access-logfile", "-")
    response = httpx.get(url + "/", timeout=5)
    assert response.status_code == 200
    assert response.headers["server"]
    assert response.json()["pid"] != proc.pid
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    out = log.read_text()
    assert "Booting worker with pid" in out
    assert '"GET / HTTP/1.1" 200' in out  # our access log through gunicorn's handler
    assert "Traceback" not in out


def test_gunicorn_asyncio_worker(gunicorn):
    proc, url, log = gunicorn("--workers", "1", worker="FasterAPIAsyncioWorker")
    assert httpx.get(url + "/", timeout=5).status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


def test_gunicorn_max_requests_recycles_workers(gunicorn):
    proc, url, log = gunicorn("--workers", "1", "--max-requests", "4")
    pids = [httpx.get(url + "/", timeout=10).json()["pid"] for _ in range(12)]
    assert len(set(pids)) >= 2
    assert "Maximum request limit of 4 reached" in log.read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


def test_gunicorn_sigterm_drains_an_in_flight_request(gunicorn):
    proc, url, log = gunicorn("--workers", "1")
    with httpx.Client(timeout=10) as client:
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(r=client.get(url + "/?sleep=1")))
        thread.start()
        deadline = time.monotonic() + 5
        while "SLOW-REQUEST-STARTED" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        thread.join(10)
    assert result["r"].status_code == 200
    assert proc.wait(20) == 0


def test_gunicorn_worker_boot_failure_stops_the_arbiter(tmp_path):
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-k", "fasterapi.workers.FasterAPIWorker",
         "--bind", f"127.0.0.1:{port}", "--chdir", str(APPS), "ops_apps:failing_startup_app"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode != 0
    assert "the cache is unreachable" in proc.stderr
