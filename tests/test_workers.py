"""Black-box tests of ``--workers``: the supervisor and its worker processes, through the real CLI.

The app (tests/apps/ops_apps.py) answers with its PID, which is how these
tests tell workers apart.  Every request opens a fresh connection, so a
request that fails during a restart shows up as an error here.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time

import httpx
import pytest

APP = "ops_apps:app"


def get_pid(url: str, path: str = "/", timeout: float = 10.0) -> int:
    response = httpx.get(url + path, timeout=timeout)
    assert response.status_code == 200
    return response.json()["pid"]


def worker_pids(output: str) -> list[int]:
    """PIDs of every worker that logged its start, in order."""
    return [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", output)]


def wait_for_count(server, text: str, count: int, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = server.output()
        if out.count(text) >= count:
            return out
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not seen {count} times within {timeout}s:\n{server.output()}")


def pids_until(url: str, want: int, tries: int = 200) -> set[int]:
    """Request until `want` distinct PIDs answered (or `tries` ran out)."""
    seen: set[int] = set()
    for _ in range(tries):
        seen.add(get_pid(url))
        if len(seen) >= want:
            break
    return seen


class SteadyLoad:
    """A thread sending sequential requests on fresh connections; counts PIDs and failures."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pids: list[int] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.pids.append(get_pid(self.url))
            except Exception as exc:  # every failure counts
                self.errors.append(repr(exc))
            time.sleep(0.01)

    def __enter__(self) -> SteadyLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(15)


def test_two_workers_serve_from_two_pids(serve):
    server = serve(APP, "--workers", "2")
    out = wait_for_count(server, "Application startup complete", 2)
    assert f"Started parent process [{server.proc.pid}]" in out
    assert "Fasterapi running on http://127.0.0.1:" in out
    assert len(pids_until(server.url, 2)) == 2
    assert server.stop(signal.SIGINT) == 0
    assert "Stopping parent process" in server.log_path.read_text()


def test_killed_worker_is_replaced(serve):
    server = serve(APP, "--workers", "2")
    out = wait_for_count(server, "Application startup complete", 2)
    victim = worker_pids(out)[0]
    os.kill(victim, signal.SIGKILL)
    out = server.wait_for_log(f"Worker [{victim}] died unexpectedly (killed by signal SIGKILL)")
    out = wait_for_count(server, "Application startup complete", 3, timeout=10)
    replacement = worker_pids(out)[-1]
    assert replacement not in (victim, server.proc.pid)
    assert len(pids_until(server.url, 2)) == 2
    assert server.stop() == 0


def test_sighup_rolls_workers_without_dropping_requests(serve):
    server = serve(APP, "--workers", "2")
    old = set(worker_pids(wait_for_count(server, "Application startup complete", 2)))
    with SteadyLoad(server.url) as load:
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGHUP)
        out = wait_for_count(server, "stopped (exit code 0)", 2, timeout=20)
        time.sleep(0.5)
    assert load.errors == []
    new = set(worker_pids(out)) - old
    assert len(new) == 2
    assert set(load.pids[-5:]) <= new
    assert server.stop() == 0


def test_ttin_ttou_change_the_worker_count(serve):
    server = serve(APP, "--workers", "1")
    wait_for_count(server, "Application startup complete", 1)
    server.proc.send_signal(signal.SIGTTIN)
    server.wait_for_log("increasing to 2 worker(s)")
    wait_for_count(server, "Application startup complete", 2)
    assert len(pids_until(server.url, 2)) == 2
    server.proc.send_signal(signal.SIGTTOU)
    out = server.wait_for_log("stopped (exit code 0)")
    assert "decreasing to 1 worker(s)" in out
    first = worker_pids(out)[0]
    assert f"Worker [{first}] stopped" in out  # the oldest goes
    assert server.stop() == 0


def test_limit_max_requests_recycles_without_failures(serve):
    server = serve(APP, "--workers", "1", "--limit-max-requests", "5",
                   "--limit-max-requests-jitter", "2")
    pids = [get_pid(server.url) for _ in range(24)]
    assert len(set(pids)) >= 3
    out = server.output()
    assert "Maximum request limit of" in out
    assert "shutting down by itself; starting a replacement" in out
    assert server.stop() == 0


def test_workers_max_rss_recycles_a_growing_worker(serve):
    server = serve(APP, "--workers", "1", "--workers-max-rss", "100")
    first = get_pid(server.url)
    assert get_pid(server.url, "/?alloc=150") == first
    server.wait_for_log("over the --workers-max-rss limit of 100 MiB")
    server.wait_for_log(f"Worker [{first}] stopped")
    assert get_pid(server.url) != first
    assert server.stop() == 0


def test_unresponsive_worker_is_killed_and_replaced(serve):
    server = serve(APP, "--workers", "1", "--timeout-worker-healthcheck", "1")
    first = get_pid(server.url)
    blocked = threading.Thread(
        target=lambda: pytest.raises(httpx.HTTPError, get_pid, server.url, "/?block=30", 20),
        daemon=True,
    )
    blocked.start()
    server.wait_for_log(f"Worker [{first}] has not answered for")
    server.wait_for_log(f"Worker [{first}] was killed after failing its health check (killed by signal SIGKILL)")
    assert get_pid(server.url) != first
    blocked.join(10)
    assert server.stop() == 0


@pytest.mark.parametrize(("app", "reason"), [
    ("ops_apps:failing_startup_app", "the cache is unreachable"),
    ("broken_import:app", "Error loading ASGI app"),
])
def test_startup_failure_stops_everything_with_exit_3(serve, app, reason):
    server = serve(app, "--workers", "2", ready=False)
    assert server.proc.wait(30) == 3
    out = server.output()
    assert reason in out
    assert "failed to start (exit code 3); stopping." in out
    assert out.count("Started server process") <= 2  # no respawn loop


def test_sigterm_lets_an_in_flight_request_finish(serve):
    server = serve(APP, "--workers", "2")
    result: dict = {}

    def slow() -> None:
        result["response"] = httpx.get(server.url + "/?sleep=1.5", timeout=10)

    thread = threading.Thread(target=slow)
    thread.start()
    server.wait_for_log("SLOW-REQUEST-STARTED")
    assert server.stop(signal.SIGTERM) == 0
    thread.join(10)
    assert result["response"].status_code == 200
    assert "Received SIGTERM; stopping 2 worker(s) gracefully." in server.log_path.read_text()


def test_workers_from_web_concurrency(serve):
    server = serve(APP, env={"WEB_CONCURRENCY": "2"})
    wait_for_count(server, "Application startup complete", 2)
    assert "Started parent process" in server.output()
    assert server.stop() == 0


@pytest.mark.parametrize(("argv", "env", "expected"), [
    ([], {}, "run"),
    (["--workers", "1"], {}, "supervisor"),
    (["--workers-max-rss", "512"], {}, "supervisor"),
    ([], {"WEB_CONCURRENCY": "3"}, "supervisor"),
    (["--reload", "--workers", "2"], {}, "reloader"),
])
def test_cli_picks_the_process_layout(monkeypatch, argv, env, expected):
    from click.testing import CliRunner

    from fasterapi.cli import main

    calls: list = []
    monkeypatch.setattr("fasterapi.server.run", lambda app, **kw: calls.append(("run", kw)))
    monkeypatch.setattr("fasterapi.supervisor.run_supervisor",
                        lambda app, **kw: calls.append(("supervisor", kw)) or 0)
    monkeypatch.setattr("fasterapi.reload.run_reloader",
                        lambda app, **kw: calls.append(("reloader", kw)) or 0)
    for name in ("WEB_CONCURRENCY", "FASTERAPI_WORKERS", "UVICORN_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["run", "m:app", *argv], env=env)
    assert result.exit_code == 0, result.output
    assert [kind for kind, _ in calls] == [expected]
    if expected == "supervisor" and env:
        assert calls[0][1]["workers"] == 3
    if expected == "reloader":
        assert calls[0][1]["ignored_workers"] is True


VERSIONED = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": b"{version}"}})
'''


def test_sighup_loads_new_code_and_survives_broken_code(serve, tmp_path):
    source = tmp_path / "versioned_app.py"
    source.write_text(VERSIONED.format(version="v1"))
    server = serve("versioned_app:app", "--workers", "1", "--app-dir", str(tmp_path))
    assert httpx.get(server.url, timeout=10).content == b"v1"
    source.write_text("this is not python(\n")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for_log("failed to start (exit code 3); keeping the old worker(s).")
    assert httpx.get(server.url, timeout=10).content == b"v1"
    source.write_text(VERSIONED.format(version="v2"))
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for_log("stopped (exit code 0)")
    assert httpx.get(server.url, timeout=10).content == b"v2"
    assert server.stop() == 0


@pytest.mark.parametrize("layout", [["--workers", "2"], ["--reload", "--reload-dir", "tests/apps"]])
def test_busy_port_is_a_startup_failure(serve, layout):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = serve(APP, *layout, port=port, ready=False)
        assert server.proc.wait(20) == 3
    assert f"Could not bind to 127.0.0.1:{port}: Address already in use" in server.log_path.read_text()
