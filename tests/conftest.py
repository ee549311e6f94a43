"""Shared fixtures: start the real `fasterapi run` CLI in a subprocess.

Black-box tests talk to it over real sockets.  Test apps live in tests/apps/
and are imported by the server with `--app-dir tests/apps`, exactly as a user
would point it at their own module.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "tests" / "apps"


# -- access-log tests (test_accesslog.py, test_accesslog_format.py) -----------

_LOGGERS = [f"{prefix}{suffix}" for prefix in ("fasterapi", "uvicorn")
            for suffix in ("", ".error", ".access", ".asgi")]


async def _ok_app(scope, receive, send):
    """200 "ok" to every http request."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(autouse=True)
def _restore_loggers():
    """Every test leaves our loggers as it found them.

    Config() applies a logging config in-process, and the tests that use
    caplog need our loggers unconfigured (propagating, without handlers).
    """
    saved = {}
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), list(logger.filters), logger.level,
                       logger.propagate, logger.disabled)
    yield
    for name, (handlers, filters, level, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers, logger.filters = handlers, filters
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled


@pytest.fixture
def default_logging():
    """Our LOGGING_CONFIG applied; yields a function that points the access handler at a fresh StringIO.

    The function takes Config's keywords and returns the StringIO.  The
    loggers are put back afterwards by _restore_loggers.
    """
    from fasterapi.config import Config

    def configure(**options):
        Config(_ok_app, **options)
        out = io.StringIO()
        logging.getLogger("fasterapi.access").handlers[0].setStream(out)
        return out
    return configure


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A running `python -m fasterapi run ...` and its combined output."""

    def __init__(self, args: list[str], env: dict | None, cwd: Path, log_path: Path, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        full_env = dict(os.environ)
        full_env.pop("FASTERAPI_PORT", None)
        full_env["PYTHONUNBUFFERED"] = "1"
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fasterapi", *args],
            cwd=cwd,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Block until the port accepts connections; fail with the log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.proc.returncode} before listening:\n{self.output()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"server did not listen within {timeout}s:\n{self.output()}")

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """Block until `text` appears in the output; return the whole output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if text in out:
                return out
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in server output within {timeout}s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send `sig`, wait for exit and return the exit code (kills after timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"server ignored signal {sig}:\n{self.output()}") from None
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def serve(tmp_path):
    """Factory: `serve("module:app", "--flag", ..., env=None, ready=True)` -> ServerProcess.

    The server listens on a fresh port on 127.0.0.1 with tests/apps as its app
    dir; every server still running at the end of the test is stopped.
    """
    started: list[ServerProcess] = []

    def start(app: str, *args: str, env: dict | None = None, ready: bool = True,
              port: int | None = None, cwd: Path | None = None) -> ServerProcess:
        port = port or free_port()
        argv = ["run", app, "--host", "127.0.0.1", "--port", str(port),
                "--app-dir", str(APPS), *args]
        log = tmp_path / f"server-{len(started)}.log"
        proc = ServerProcess(argv, env, cwd or ROOT, log, port)
        started.append(proc)
        if ready:
            proc.wait_ready()
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()


@pytest.fixture
def cli(tmp_path):
    """Factory: `cli(*args, env=None, port=None, ready=False)` -> ServerProcess.

    Runs `python -m fasterapi *args` exactly as given (no --host, --port or
    --app-dir added), for tests of options that come from the environment or
    that replace host/port.  `port` is only what wait_ready() polls.
    """
    started: list[ServerProcess] = []

    def start(*args: str, env: dict | None = None, port: int | None = None,
              ready: bool = False) -> ServerProcess:
        log = tmp_path / f"cli-{len(started)}.log"
        proc = ServerProcess(list(args), env, ROOT, log, port or 0)
        started.append(proc)
        if ready:
            proc.wait_ready()
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()
