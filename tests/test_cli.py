"""The `fasterapi` command: options, environment variables, startup failures, visible effects.

Most tests start the real CLI (`python -m fasterapi run ...`) and talk HTTP to
it; the option-plumbing tests call the click command in-process with the
server's `run()` replaced, so they check every option without timing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from click.testing import CliRunner

import fasterapi
from fasterapi.cli import main
from tests.conftest import APPS, ROOT, free_port

UVICORN_OPTIONS = [
    "--host", "--port", "--uds", "--fd", "--backlog", "--factory", "--app-dir", "--env-file",
    "--interface", "--lifespan", "--log-level", "--log-config", "--access-log", "--no-access-log",
    "--use-colors", "--no-use-colors", "--root-path", "--limit-concurrency",
    "--limit-max-requests", "--timeout-keep-alive", "--timeout-graceful-shutdown",
    "--server-header", "--no-server-header", "--date-header", "--no-date-header", "--header",
    "--loop",
    "--ssl-keyfile", "--ssl-certfile", "--ssl-keyfile-password", "--ssl-version",
    "--ssl-cert-reqs", "--ssl-ca-certs", "--ssl-ciphers", "--proxy-headers", "--no-proxy-headers",
    "--forwarded-allow-ips",
]
OUR_OPTIONS = [
    "--timeout-request-header", "--timeout-request-body", "--max-request-line",
    "--max-header-bytes", "--max-headers", "--max-body-size", "--queue-size",
    "--ssl-min-version", "--metrics-port", "--metrics-host",
]


def final_output(server) -> str:
    """The whole log once the process has exited (stop() closes the live handle)."""
    return server.log_path.read_text(errors="replace")


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("ERROR:")]


# -- in-process: the click command and its option plumbing --------------------

@pytest.fixture
def captured_run(monkeypatch):
    """Replace fasterapi.server.run; return the dict its last call's arguments land in."""
    calls: dict = {}

    def fake_run(app, **kwargs):
        calls.clear()
        calls.update(kwargs, app=app)

    monkeypatch.setattr("fasterapi.server.run", fake_run)
    for name in list(os.environ):
        if name.startswith(("FASTERAPI_", "UVICORN_")):
            monkeypatch.delenv(name)
    return calls


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert f"Running fasterapi {fasterapi.__version__} with" in result.output


def test_help_lists_uvicorn_options_and_env_vars():
    result = CliRunner().invoke(main, ["run", "--help"], terminal_width=200)
    assert result.exit_code == 0
    listed = set(re.findall(r"--[a-z][a-z-]*", result.output))
    assert set(UVICORN_OPTIONS + OUR_OPTIONS) <= listed
    assert "FASTERAPI_TIMEOUT_KEEP_ALIVE" in result.output


def test_unimplemented_uvicorn_options_are_refused(captured_run):
    for flag in ("--h11-max-incomplete-event-size=100",):
        result = CliRunner().invoke(main, ["run", "app:app", flag])
        assert result.exit_code == 2, flag
        assert "No such option" in result.output
    assert captured_run == {}


def test_defaults_reach_run(captured_run):
    result = CliRunner().invoke(main, ["run", "main:app"])
    assert result.exit_code == 0, result.output
    assert captured_run["app"] == "main:app"
    assert captured_run["host"] == "127.0.0.1" and captured_run["port"] == 8000
    assert captured_run["app_dir"] == "."
    assert captured_run["timeout_keep_alive"] == 5
    assert captured_run["headers"] == ()
    assert captured_run["use_colors"] is None and captured_run["log_level"] is None


def test_flags_reach_run(captured_run):
    result = CliRunner().invoke(main, [
        "run", "main:app", "--port", "9001", "--timeout-keep-alive", "0.5",
        "--timeout-graceful-shutdown", "1.5", "--header", "X-A: 1", "--header", "X-B:two words",
        "--no-server-header", "--lifespan", "off", "--max-body-size", "1024", "--loop", "asyncio",
    ])
    assert result.exit_code == 0, result.output
    assert captured_run["port"] == 9001
    assert captured_run["timeout_keep_alive"] == 0.5
    assert captured_run["timeout_graceful_shutdown"] == 1.5
    assert captured_run["headers"] == (("X-A", "1"), ("X-B", "two words"))
    assert captured_run["server_header"] is False
    assert captured_run["lifespan"] == "off"
    assert captured_run["max_body_size"] == 1024
    assert captured_run["loop"] == "asyncio"


def test_env_vars_reach_run(captured_run):
    env = {
        "FASTERAPI_APP": "envmod:app",
        "FASTERAPI_PORT": "9002",
        "FASTERAPI_TIMEOUT_KEEP_ALIVE": "0.5",
        "FASTERAPI_ACCESS_LOG": "false",
        "FASTERAPI_HEADER": "X-One: a b\nX-Two: c",
        "FASTERAPI_LIMIT_MAX_REQUESTS": "7",
        "UVICORN_ROOT_PATH": "/from-uvicorn-env",
        "UVICORN_PORT": "1",  # FASTERAPI_PORT wins
    }
    result = CliRunner().invoke(main, ["run"], env=env)
    assert result.exit_code == 0, result.output
    assert captured_run["app"] == "envmod:app"
    assert captured_run["port"] == 9002
    assert captured_run["timeout_keep_alive"] == 0.5
    assert captured_run["access_log"] is False
    assert captured_run["headers"] == (("X-One", "a b"), ("X-Two", "c"))
    assert captured_run["limit_max_requests"] == 7
    assert captured_run["root_path"] == "/from-uvicorn-env"


def test_flag_beats_env_var(captured_run):
    result = CliRunner().invoke(main, ["run", "main:app", "--port", "9003"],
                                env={"FASTERAPI_PORT": "9004"})
    assert result.exit_code == 0, result.output
    assert captured_run["port"] == 9003


@pytest.mark.parametrize("args", [
    ["--port", "70000"], ["--timeout-keep-alive", "-1"], ["--header", "no colon"],
    ["--lifespan", "sometimes"], ["--log-level", "loud"], ["--max-headers", "0"],
])
def test_bad_values_are_usage_errors(captured_run, args):
    result = CliRunner().invoke(main, ["run", "main:app", *args])
    assert result.exit_code == 2, result.output
    assert captured_run == {}


def test_missing_app_is_a_usage_error(captured_run):
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    assert "APP" in result.output


# -- the real process: startup failures --------------------------------------

def expect_startup_failure(server, message: str, timeout: float = 30) -> str:
    assert server.proc.wait(timeout) == 3, server.output()
    out = final_output(server)
    errors = error_lines(out)
    assert len(errors) == 1, out
    assert message in errors[0], out
    assert "Traceback" not in out
    return out


@pytest.mark.parametrize(("app", "args", "message"), [
    ("no_colon_here", [], 'Import string "no_colon_here" must be in format "<module>:<attribute>".'),
    ("no_such_module_xyz:app", [], 'Error loading ASGI app. Could not import module "no_such_module_xyz".'),
    ("lifecycle_apps:missing", [], 'Attribute "missing" not found in module "lifecycle_apps".'),
    ("broken_import:app", [], 'Importing "broken_import" raised ModuleNotFoundError: '
                              "No module named 'this_dependency_does_not_exist_xyz'"),
    ("lifecycle_apps:bad_factory", ["--factory"],
     "Error loading ASGI app factory: RuntimeError: factory could not build the app"),
    ("lifecycle_apps:lifespan_failed_app", [],
     "Application startup failed, exiting: database is unreachable"),
])
def test_startup_failures_exit_3_with_one_line(serve, app, args, message):
    expect_startup_failure(serve(app, *args, ready=False), message)


def test_port_in_use_exits_3(serve):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = serve("lifecycle_apps:app", port=port, ready=False)
        out = expect_startup_failure(server, f"Could not bind to 127.0.0.1:{port}: ")
    assert "LIFESPAN-SHUTDOWN-RAN" in out  # startup ran, so shutdown does too


def test_debug_level_shows_the_import_traceback(serve):
    server = serve("broken_import:app", "--log-level", "debug", ready=False)
    assert server.proc.wait(30) == 3
    out = final_output(server)
    assert len(error_lines(out)) == 1
    assert "Traceback" in out and "broken_import.py" in out


# -- the real process: serving -------------------------------------------------

def test_python_dash_m_serves_and_logs_the_lifecycle(serve):
    server = serve("lifecycle_apps:app")
    response = httpx.get(server.url + "/hello")
    assert response.status_code == 200
    assert response.json()["path"] == "/hello"
    server.wait_for_log('"GET /hello HTTP/1.1" 200')
    assert server.stop() == 0
    out = final_output(server)
    for line in (f"Started server process [{server.proc.pid}]", "Waiting for application startup.",
                 "Application startup complete.",
                 f"Fasterapi running on http://127.0.0.1:{server.port} (Press CTRL+C to quit)",
                 "Shutting down", "Finished server process"):
        assert line in out


def test_plain_asyncio_loop(serve):
    server = serve("lifecycle_apps:app", "--loop", "asyncio")
    assert httpx.get(server.url + "/on-asyncio").json()["path"] == "/on-asyncio"
    assert server.stop(signal.SIGINT) == 0
    assert "LIFESPAN-SHUTDOWN-RAN" in final_output(server)


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback")
def test_ipv6_host(cli):
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    server = cli("run", "lifecycle_apps:app", "--app-dir", str(APPS), "--host", "::1",
                 "--port", str(port))
    server.wait_for_log(f"Fasterapi running on http://[::1]:{port}")
    assert httpx.get(f"http://[::1]:{port}/v6").json()["path"] == "/v6"
    assert server.stop() == 0


def test_example_app_from_repo_root(serve):
    server = serve("examples.app:app", "--app-dir", str(ROOT))
    assert httpx.get(server.url + "/").text == "Hello from fasterapi!\n"
    data = httpx.get(server.url + "/json").json()
    assert data["message"] == "Hello from fasterapi!" and data["requests"] == 2
    echoed = httpx.post(server.url + "/echo", content=b"ping", headers={"content-type": "text/x"})
    assert echoed.content == b"ping" and echoed.headers["content-type"] == "text/x"
    assert httpx.get(server.url + "/nope").status_code == 404
    assert server.stop() == 0


def test_env_port_and_env_root_path(cli):
    port = free_port()
    server = cli("run", "lifecycle_apps:app", "--app-dir", str(APPS), port=port, ready=True,
                 env={"FASTERAPI_PORT": str(port), "FASTERAPI_ROOT_PATH": "/env-root",
                      "FASTERAPI_HEADER": "X-From-Env: yes please"})
    response = httpx.get(f"http://127.0.0.1:{port}/")
    assert response.json()["root_path"] == "/env-root"
    assert response.headers["x-from-env"] == "yes please"
    assert server.stop() == 0


def test_env_app(cli):
    port = free_port()
    server = cli("run", "--port", str(port), port=port, ready=True,
                 env={"FASTERAPI_APP": "lifecycle_apps:app", "FASTERAPI_APP_DIR": str(APPS)})
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    assert server.stop() == 0


def test_root_path_and_headers_are_visible(serve):
    server = serve("lifecycle_apps:app", "--root-path", "/api", "--header", "X-Custom: on",
                   "--header", "X-Other:2")
    response = httpx.get(server.url + "/api/items")
    assert response.json()["root_path"] == "/api"
    assert response.headers["x-custom"] == "on"
    assert response.headers["x-other"] == "2"
    assert "server" in response.headers and "date" in response.headers
    assert server.stop() == 0


def test_no_server_and_no_date_header(serve):
    server = serve("lifecycle_apps:app", "--no-server-header", "--no-date-header")
    response = httpx.get(server.url + "/")
    assert response.status_code == 200
    assert "server" not in response.headers
    assert "date" not in response.headers
    assert server.stop() == 0


def test_custom_server_header_replaces_ours(serve):
    server = serve("lifecycle_apps:app", "--header", "Server: my-proxy")
    response = httpx.get(server.url + "/")
    assert response.headers.get_list("server") == ["my-proxy"]
    assert server.stop() == 0


def test_limit_max_requests_exits_0(serve):
    server = serve("lifecycle_apps:app", "--limit-max-requests", "3")
    for _ in range(3):
        assert httpx.get(server.url + "/").status_code == 200
    assert server.proc.wait(30) == 0
    assert "Maximum request limit of 3 reached" in final_output(server)


def test_uds(serve, tmp_path):
    path = tmp_path / "fa.sock"
    server = serve("lifecycle_apps:app", "--uds", str(path), ready=False)
    server.wait_for_log(f"Fasterapi running on unix socket {path}")
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
        assert client.get("http://localhost/uds").json()["path"] == "/uds"
    assert server.stop() == 0
    assert not path.exists()  # removed on shutdown


def test_uds_replaces_a_stale_socket_but_not_a_file(serve, tmp_path):
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(stale))  # bound, never listening, then closed: a leftover
    assert stale.exists()
    server = serve("lifecycle_apps:app", "--uds", str(stale), ready=False)
    server.wait_for_log("running on unix socket")
    # A second server must not steal the live socket from the first.
    second = serve("lifecycle_apps:app", "--uds", str(stale), ready=False)
    expect_startup_failure(second, f"{stale} is in use by another server")
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(stale))) as client:
        assert client.get("http://localhost/still-mine").status_code == 200
    assert server.stop() == 0

    regular = tmp_path / "not-a-socket"
    regular.write_text("precious")
    server = serve("lifecycle_apps:app", "--uds", str(regular), ready=False)
    expect_startup_failure(server, f"Could not bind to unix socket {regular}: {regular} exists and is not a socket")
    assert regular.read_text() == "precious"


def test_fd(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    log = tmp_path / "fd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fasterapi", "run", "lifecycle_apps:app",
             "--fd", str(listener.fileno()), "--app-dir", str(APPS)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, pass_fds=[listener.fileno()],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        listener.close()  # the child holds its own copy
        deadline = time.monotonic() + 15
        while f"running on http://127.0.0.1:{port}" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/fd").json()["path"] == "/fd"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_factory_and_asgi2(serve):
    server = serve("lifecycle_apps:create_app", "--factory")
    assert httpx.get(server.url + "/f").json()["path"] == "/f"
    assert server.stop() == 0
    server = serve("lifecycle_apps:ASGI2App", "--interface", "asgi2")
    assert httpx.get(server.url + "/two").json() == {"interface": "asgi2", "path": "/two"}
    assert server.stop() == 0


def test_env_file(serve, tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("FASTERAPI_TEST_VALUE='from the env file'\n")
    server = serve("lifecycle_apps:app", "--env-file", str(env_file))
    assert httpx.get(server.url + "/").json()["env"] == "from the env file"
    assert server.stop() == 0


# -- logging -------------------------------------------------------------------

def test_access_log_by_default_and_no_access_log(serve):
    server = serve("lifecycle_apps:app")
    httpx.get(server.url + "/logged")
    server.wait_for_log('"GET /logged HTTP/1.1" 200 OK')
    assert server.stop() == 0

    server = serve("lifecycle_apps:app", "--no-access-log")
    httpx.get(server.url + "/quiet")
    assert server.stop() == 0
    out = final_output(server)
    assert "Application startup complete." in out
    assert "/quiet" not in out


def test_log_level_warning_hides_info(serve):
    server = serve("lifecycle_apps:app", "--log-level", "warning")
    assert httpx.get(server.url + "/").status_code == 200
    assert server.stop() == 0
    out = final_output(server)
    assert "Started server process" not in out
    assert "Application startup complete." not in out


def test_log_level_trace_logs_asgi_messages(serve):
    server = serve("lifecycle_apps:app", "--log-level", "trace")
    httpx.get(server.url + "/traced")
    server.wait_for_log("Send {'type': 'http.response.start'")
    assert "TRACE:" in server.output()
    assert server.stop() == 0


def test_use_colors(serve):
    server = serve("lifecycle_apps:app", "--use-colors")
    server.wait_for_log("Application startup complete.")
    assert "\x1b[" in server.output()
    assert server.stop() == 0
    server = serve("lifecycle_apps:app")
    server.wait_for_log("Application startup complete.")
    assert "\x1b[" not in server.output()  # not a terminal
    assert server.stop() == 0


def test_log_config_json(serve, tmp_path):
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "JSONCFG %(name)s %(message)s"}},
        "handlers": {"out": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout",
                             "formatter": "plain"}},
        "loggers": {"fasterapi": {"handlers": ["out"], "level": "INFO", "propagate": False}},
    }
    path = tmp_path / "log.json"
    path.write_text(json.dumps(config))
    server = serve("lifecycle_apps:app", "--log-config", str(path))
    server.wait_for_log("JSONCFG fasterapi.error Application startup complete.")
    assert server.stop() == 0


def test_log_config_written_for_uvicorn_applies_to_our_access_log(serve, tmp_path):
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "UVDEFAULT %(message)s"},
            "access": {"()": "uvicorn.logging.AccessFormatter",
                       "fmt": "UVACCESS %(request_line)s %(status_code)s"},
        },
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "default",
                        "stream": "ext://sys.stderr"},
            "access": {"class": "logging.StreamHandler", "formatter": "access",
                       "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
    path = tmp_path / "uvicorn-log.json"
    path.write_text(json.dumps(config))
    server = serve("lifecycle_apps:app", "--log-config", str(path))
    server.wait_for_log("UVDEFAULT Application startup complete.")
    httpx.get(server.url + "/via-uvicorn-config")
    server.wait_for_log("UVACCESS GET /via-uvicorn-config HTTP/1.1 200 OK")
    assert server.stop() == 0


def test_log_config_ini(serve, tmp_path):
    ini = tmp_path / "logging.ini"
    ini.write_text(
        "[loggers]\nkeys=root,fa\n\n[handlers]\nkeys=out\n\n[formatters]\nkeys=plain\n\n"
        "[logger_root]\nlevel=WARNING\nhandlers=\n\n"
        "[logger_fa]\nlevel=INFO\nhandlers=out\npropagate=0\nqualname=fasterapi\n\n"
        "[handler_out]\nclass=StreamHandler\nformatter=plain\nargs=(sys.stdout,)\n\n"
        "[formatter_plain]\nformat=INICFG %(levelname)s %(message)s\n"
    )
    server = serve("lifecycle_apps:app", "--log-config", str(ini))
    server.wait_for_log("INICFG INFO Application startup complete.")
    assert server.stop() == 0


def test_broken_log_config_exits_3_with_one_line(serve, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}))
    server = serve("lifecycle_apps:app", "--log-config", str(path), ready=False)
    assert server.proc.wait(30) == 3
    out = final_output(server)
    assert out.startswith("Error: Unable to configure handler 'h'"), out
    assert len(out.strip().splitlines()) == 1


def test_missing_log_config_file_is_a_usage_error(serve, tmp_path):
    server = serve("lifecycle_apps:app", "--log-config", str(tmp_path / "nope.json"), ready=False)
    assert server.proc.wait(30) == 2
