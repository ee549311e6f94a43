"""Server lifecycle: graceful and forced shutdown through signals, and Server.serve() embedded in a loop."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading

import httpx
import pytest

from fasterapi.config import Config
from fasterapi.server import Server, ServerState
from tests.conftest import free_port


def final_output(server) -> str:
    return server.log_path.read_text(errors="replace")


class Request(threading.Thread):
    """An HTTP GET running in the background; `.response` or `.error` once joined."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.response: httpx.Response | None = None
        self.error: Exception | None = None
        self.start()

    def run(self) -> None:
        try:
            self.response = httpx.get(self.url, timeout=120)
        except Exception as exc:  # the assertion is made by the test
            self.error = exc


# -- through the real CLI ----------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_lets_the_in_flight_request_finish(serve, sig):
    server = serve("lifecycle_apps:app")
    request = Request(server.url + "/slow?sleep=1.5")
    server.wait_for_log("SLOW-REQUEST-STARTED /slow")
    server.proc.send_signal(sig)
    server.wait_for_log("Shutting down")
    # Not accepting any more: the listener is closed before the drain.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    request.join(60)
    assert request.error is None, request.error
    assert request.response.status_code == 200
    assert request.response.json()["path"] == "/slow"
    assert server.proc.wait(30) == 0
    out = final_output(server)
    assert "LIFESPAN-SHUTDOWN-RAN" in out, out
    assert out.index("Shutting down") < out.index("LIFESPAN-SHUTDOWN-RAN")


def test_graceful_timeout_bounds_the_drain(serve):
    server = serve("lifecycle_apps:app", "--timeout-graceful-shutdown", "0.5")
    request = Request(server.url + "/stuck?sleep=600")
    server.wait_for_log("SLOW-REQUEST-STARTED /stuck")
    # stop() fails the test if the server is still draining after 15 s.
    assert server.stop(signal.SIGTERM, timeout=15) == 0
    request.join(30)
    assert request.response is None or request.response.status_code >= 500
    out = final_output(server)
    assert "Graceful shutdown timed out after 0.5s" in out
    assert "LIFESPAN-SHUTDOWN-RAN" in out  # the app still gets its shutdown


def test_second_ctrl_c_forces_exit(serve):
    server = serve("lifecycle_apps:app")
    request = Request(server.url + "/stuck?sleep=600")
    server.wait_for_log("SLOW-REQUEST-STARTED /stuck")
    server.proc.send_signal(signal.SIGINT)
    server.wait_for_log("Waiting for connections to close. (CTRL+C to force quit)")
    assert server.stop(signal.SIGINT, timeout=15) == 0
    request.join(30)
    assert "LIFESPAN-SHUTDOWN-RAN" not in final_output(server)


def test_a_repeated_sigterm_keeps_the_shutdown_graceful(serve):
    server = serve("lifecycle_apps:app")
    request = Request(server.url + "/slow?sleep=1.5")
    server.wait_for_log("SLOW-REQUEST-STARTED /slow")
    server.proc.send_signal(signal.SIGTERM)
    server.wait_for_log("Waiting for connections to close.")
    server.proc.send_signal(signal.SIGTERM)
    request.join(60)
    assert request.response is not None and request.response.status_code == 200
    assert server.proc.wait(30) == 0
    assert "LIFESPAN-SHUTDOWN-RAN" in final_output(server)


def test_idle_keep_alive_connections_do_not_delay_shutdown(serve):
    server = serve("lifecycle_apps:app", "--timeout-keep-alive", "600")
    with httpx.Client() as client:
        assert client.get(server.url + "/").status_code == 200  # stays open, idle
        assert server.stop(signal.SIGTERM, timeout=15) == 0


def test_port_zero_reports_the_real_port(cli):
    server = cli("run", "lifecycle_apps:app", "--app-dir", "tests/apps", "--port", "0")
    out = server.wait_for_log("Fasterapi running on http://127.0.0.1:")
    port = int(out.split("Fasterapi running on http://127.0.0.1:")[1].split()[0])
    assert port != 0
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    assert server.stop() == 0


# -- embedded: Server.serve() in a running loop ------------------------------------

async def hello_app(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        scope["state"]["who"] = "embedded"
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = f"hello {scope['state']['who']}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def wait_started(server: Server) -> None:
    while not server.started:
        await asyncio.sleep(0.01)


async def test_serve_embedded_until_should_exit():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    port = free_port()
    server = Server(Config(hello_app, port=port, lifespan="on"))
    task = asyncio.create_task(server.serve())
    await asyncio.wait_for(wait_started(server), 15)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/")
    assert response.text == "hello embedded"
    assert server.server_state.total_requests == 1
    server.should_exit = True
    await asyncio.wait_for(task, 15)
    assert {sig: signal.getsignal(sig) for sig in before} == before


async def test_serve_on_given_sockets(capsys):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = Server(Config(hello_app, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await asyncio.wait_for(wait_started(server), 15)
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/")).text == "hello embedded"
    server.should_exit = True
    await asyncio.wait_for(task, 15)
    assert f"Fasterapi running on http://127.0.0.1:{port} " in capsys.readouterr().err


async def test_embedded_startup_failure_raises_system_exit_3():
    async def failing(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "nope"})

    server = Server(Config(failing, port=free_port(), lifespan="on"))
    with pytest.raises(SystemExit) as info:
        await server.serve()
    assert info.value.code == 3
    assert not server.started


# -- shutdown against a stand-in protocol: who gets shutdown() and force_close() --

class StandInConnection:
    """Records the calls the server makes; `busy` connections never finish by themselves."""

    def __init__(self, state: ServerState, busy: bool):
        self.state, self.busy = state, busy
        self.calls: list[str] = []

    def shutdown(self) -> None:
        self.calls.append("shutdown")
        if not self.busy:
            self.state.connections.discard(self)

    def force_close(self) -> None:
        self.calls.append("force_close")
        self.state.connections.discard(self)


async def test_shutdown_drains_then_force_closes_after_the_timeout():
    server = Server(Config(hello_app, lifespan="off", timeout_graceful_shutdown=0.2))
    server.lifespan = type("NoLifespan", (), {"shutdown": staticmethod(lambda: asyncio.sleep(0))})()
    state = server.server_state
    idle, busy = StandInConnection(state, busy=False), StandInConnection(state, busy=True)
    state.connections.update({idle, busy})
    never = asyncio.create_task(asyncio.sleep(3600))
    state.tasks.add(never)
    await server.shutdown()
    assert idle.calls == ["shutdown"]
    assert busy.calls == ["shutdown", "force_close"]
    assert never.cancelled()
    assert not state.connections


async def test_limit_max_requests_ends_the_main_loop():
    server = Server(Config(hello_app, limit_max_requests=2))
    server.server_state.total_requests = 2
    await asyncio.wait_for(server.main_loop(), 5)
    assert server.should_exit
