"""Real frameworks served by the real CLI: FastAPI, Starlette and Django (ASGI), talked to with httpx.

The apps live in tests/apps/{fastapi,starlette,django}_app.py.  Each test
module-level fixture starts one server and shares it across the tests of
that framework, since importing a framework is the slow part.
"""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from tests.conftest import APPS, ROOT, ServerProcess, free_port

pytest.importorskip("fastapi")
pytest.importorskip("starlette")
pytest.importorskip("django")


def start(tmp_path_factory, app: str, *args: str) -> ServerProcess:
    port = free_port()
    log = tmp_path_factory.mktemp("framework") / "server.log"
    server = ServerProcess(
        ["run", app, "--host", "127.0.0.1", "--port", str(port), "--app-dir", str(APPS), *args],
        None, ROOT, log, port,
    )
    server.wait_ready(timeout=30)
    return server


def finish(server: ServerProcess) -> tuple[int, str]:
    code = server.stop(signal.SIGTERM)
    return code, server.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def fastapi_server(tmp_path_factory):
    server = start(tmp_path_factory, "fastapi_app:app", "--root-path", "/proxy")
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="module")
def starlette_server(tmp_path_factory):
    server = start(tmp_path_factory, "starlette_app:app")
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="module")
def django_server(tmp_path_factory):
    server = start(tmp_path_factory, "django_app:application")
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


# -- FastAPI ------------------------------------------------------------------------

def test_fastapi_json_and_params(fastapi_server):
    url = fastapi_server.url
    assert httpx.get(url + "/").json() == {"framework": "fastapi"}
    assert httpx.get(url + "/items/42", params={"q": "x y"}).json() == {"item_id": 42, "q": "x y"}


def test_fastapi_body_model(fastapi_server):
    item = {"name": "widget", "price": 2.5, "tags": ["a", "b"]}
    response = httpx.post(fastapi_server.url + "/items", json=item)
    assert response.status_code == 200
    assert response.json() == {"created": item, "total": 5.0}


def test_fastapi_validation_errors_are_422(fastapi_server):
    response = httpx.post(fastapi_server.url + "/items", json={"name": "widget"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "price"]
    assert httpx.get(fastapi_server.url + "/items/not-a-number").status_code == 422


def test_fastapi_streaming_response(fastapi_server):
    with httpx.stream("GET", fastapi_server.url + "/stream") as response:
        assert response.status_code == 200
        assert response.headers.get("transfer-encoding") == "chunked"
        body = b"".join(response.iter_bytes())
    assert body == b"".join(f"chunk-{i}\n".encode() for i in range(5))


def test_fastapi_exception_is_a_500_and_the_server_lives_on(fastapi_server):
    response = httpx.get(fastapi_server.url + "/boom")
    assert response.status_code == 500
    assert httpx.get(fastapi_server.url + "/").status_code == 200
    fastapi_server.wait_for_log("RuntimeError: handler exploded")


def test_fastapi_background_tasks_run(fastapi_server):
    url = fastapi_server.url
    assert httpx.post(url + "/background", params={"word": "later"}).json() == {"queued": "later"}
    deadline = time.monotonic() + 10
    while "later" not in httpx.get(url + "/background").json()["log"]:
        assert time.monotonic() < deadline, "background task never ran"
        time.sleep(0.05)


def test_fastapi_lifespan_state(fastapi_server):
    assert httpx.get(fastapi_server.url + "/state").json() == {"db": "connected", "started": True}


def test_fastapi_mounted_sub_app_with_root_path(fastapi_server):
    # The proxy strips /proxy; the server was told so with --root-path /proxy.
    data = httpx.get(fastapi_server.url + "/sub/info").json()
    assert data["root_path"] == "/proxy/sub"
    assert data["path"] == "/proxy/sub/info"
    assert data["url"].endswith("/proxy/sub/info")


def test_fastapi_shutdown_runs_the_lifespan_exit(fastapi_server):
    # Last test of the module: stop the shared server.
    code, out = finish(fastapi_server)
    assert code == 0
    assert "FASTAPI-LIFESPAN-SHUTDOWN" in out


# -- Starlette ------------------------------------------------------------------------

def test_starlette_routes_and_state(starlette_server):
    url = starlette_server.url
    assert httpx.get(url + "/").text == "starlette says hi"
    assert httpx.get(url + "/users/ada").json() == {"user": "ada", "warm": True}
    assert httpx.get(url + "/nowhere").status_code == 404


def test_starlette_request_body(starlette_server):
    body = b"0123456789" * 10_000
    response = httpx.post(starlette_server.url + "/echo", content=body)
    assert response.json() == {"length": len(body), "head": "0123456789"}


def test_starlette_streaming(starlette_server):
    with httpx.stream("GET", starlette_server.url + "/stream") as response:
        assert b"".join(response.iter_bytes()) == b"alpha\nbeta\ngamma\n"


def test_starlette_lifespan_shutdown(starlette_server):
    code, out = finish(starlette_server)
    assert code == 0
    assert "STARLETTE-LIFESPAN-SHUTDOWN" in out


# -- Django -----------------------------------------------------------------------------

def test_django_json_view(django_server):
    response = httpx.get(django_server.url + "/hello/", params={"q": "pony"})
    assert response.status_code == 200
    assert response.json() == {"framework": "django", "path": "/hello/", "q": "pony",
                               "script_name": ""}


def test_django_post_view(django_server):
    response = httpx.post(django_server.url + "/submit/", json={"a": [1, 2]})
    assert response.status_code == 201
    assert response.json() == {"received": {"a": [1, 2]}, "content_type": "application/json"}
    assert httpx.get(django_server.url + "/submit/").status_code == 405


def test_django_404_and_append_slash(django_server):
    assert httpx.get(django_server.url + "/missing/").status_code == 404
    redirect = httpx.get(django_server.url + "/hello")  # CommonMiddleware adds the slash
    assert redirect.status_code == 301
    assert redirect.headers["location"] == "/hello/"


def test_django_without_lifespan_support_still_starts(django_server):
    # Django raises on the lifespan scope; --lifespan auto treats that as "unsupported".
    code, out = finish(django_server)
    assert code == 0
    assert "ASGI 'lifespan' protocol appears unsupported." in out
    assert "ERROR" not in out
