"""The lifespan protocol: in-process against the runner, then black-box through the CLI."""

from __future__ import annotations

import signal
import types

import httpx
import pytest

from fasterapi.lifespan import LifespanOff, LifespanOn, lifespan_for


def make_config(app, mode="auto"):
    return types.SimpleNamespace(loaded_app=app, lifespan=mode, asgi_version="3.0")


def lifespan_app(events, *, startup="complete", shutdown="complete", message=""):
    """An app that records the messages it receives and answers as told."""

    async def app(scope, receive, send):
        assert scope["type"] == "lifespan"
        assert scope["asgi"] == {"version": "3.0", "spec_version": "2.0"}
        msg = await receive()
        events.append(msg["type"])
        scope["state"]["db"] = "connected"
        await send({"type": f"lifespan.startup.{startup}", "message": message})
        if startup == "failed":
            return
        msg = await receive()
        events.append(msg["type"])
        await send({"type": f"lifespan.shutdown.{shutdown}", "message": message})

    return app


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_startup_and_shutdown_complete(mode):
    events = []
    lifespan = LifespanOn(make_config(lifespan_app(events), mode))
    await lifespan.startup()
    assert not lifespan.should_exit
    assert lifespan.state == {"db": "connected"}
    await lifespan.shutdown()
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert not lifespan.should_exit


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_startup_failed_is_fatal_in_every_mode(mode, capsys):
    lifespan = LifespanOn(make_config(lifespan_app([], startup="failed", message="no db"), mode))
    await lifespan.startup()
    assert lifespan.should_exit
    assert lifespan.error == "no db"


async def test_traceback_message_is_reduced_to_its_last_line():
    text = "Traceback (most recent call last):\n  File x\nRuntimeError: db down\n"
    lifespan = LifespanOn(make_config(lifespan_app([], startup="failed", message=text), "on"))
    await lifespan.startup()
    assert lifespan.should_exit
    assert lifespan.error == "RuntimeError: db down"


async def raises_on_lifespan(scope, receive, send):
    raise RuntimeError("lifespan? never heard of it")


async def test_auto_tolerates_an_app_without_lifespan():
    lifespan = LifespanOn(make_config(raises_on_lifespan, "auto"))
    await lifespan.startup()
    assert not lifespan.should_exit
    await lifespan.shutdown()  # a no-op: the lifespan call is already over
    assert not lifespan.should_exit


async def test_on_mode_makes_an_exception_fatal():
    lifespan = LifespanOn(make_config(raises_on_lifespan, "on"))
    await lifespan.startup()
    assert lifespan.should_exit
    assert lifespan.error == "RuntimeError: lifespan? never heard of it"


async def test_shutdown_failed_is_reported():
    lifespan = LifespanOn(make_config(lifespan_app([], shutdown="failed", message="flush failed"), "on"))
    await lifespan.startup()
    await lifespan.shutdown()
    assert lifespan.should_exit
    assert lifespan.error == "flush failed"


async def test_app_that_returns_early_counts_as_started():
    async def app(scope, receive, send):
        return

    lifespan = LifespanOn(make_config(app, "auto"))
    await lifespan.startup()
    await lifespan.shutdown()
    assert not lifespan.should_exit


async def test_invalid_transition_is_an_error():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.startup.complete"})

    lifespan = LifespanOn(make_config(app, "on"))
    await lifespan.startup()
    await lifespan.shutdown()
    assert lifespan.error.startswith("RuntimeError")


async def test_off_never_calls_the_app():
    async def app(scope, receive, send):
        raise AssertionError("must not be called")

    lifespan = lifespan_for(make_config(app, "off"))
    assert isinstance(lifespan, LifespanOff)
    await lifespan.startup()
    await lifespan.shutdown()
    assert lifespan.state == {} and not lifespan.should_exit


# -- through the real CLI (needs the HTTP protocol) ----------------------------

def test_state_reaches_requests_as_a_shallow_copy(serve):
    server = serve("lifecycle_apps:app", "--lifespan", "on")
    first = httpx.get(server.url + "/?mutate=1").json()
    assert first["state"]["greeting"] == "hello from lifespan"
    second = httpx.get(server.url + "/").json()
    # The mutation stayed in the first request's copy...
    assert second["state"]["greeting"] == "hello from lifespan"
    # ...while objects inside the state are shared, as the spec says.
    assert second["state"]["shared_requests"] == first["state"]["shared_requests"] + 1
    assert server.stop() == 0


def test_lifespan_off_sends_nothing(serve):
    server = serve("lifecycle_apps:lifespan_off_probe", "--lifespan", "off")
    assert httpx.get(server.url + "/").json() == {"saw_lifespan": False, "state": {}}
    assert server.stop() == 0


def test_lifespan_auto_with_an_app_that_rejects_it(serve):
    server = serve("lifecycle_apps:no_lifespan_app")
    assert httpx.get(server.url + "/p").json()["path"] == "/p"
    out = server.output()
    assert "ASGI 'lifespan' protocol appears unsupported." in out
    assert "ERROR" not in out
    assert server.stop() == 0


def test_lifespan_on_with_an_app_that_rejects_it_exits_3(serve):
    server = serve("lifecycle_apps:no_lifespan_app", "--lifespan", "on", ready=False)
    assert server.proc.wait(30) == 3
    errors = [line for line in server.output().splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, server.output()
    assert "Application startup failed" in errors[0]
    assert "AssertionError" in errors[0]


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_failed_exits_3_with_the_message(serve, mode):
    server = serve("lifecycle_apps:lifespan_failed_app", "--lifespan", mode, ready=False)
    assert server.proc.wait(30) == 3
    out = server.output()
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert errors == ["ERROR:    Application startup failed, exiting: database is unreachable"], out
    assert "running on" not in out


def test_shutdown_runs_on_sigterm(serve):
    server = serve("lifecycle_apps:app")
    server.wait_for_log("LIFESPAN-STARTUP-RAN")
    assert httpx.get(server.url + "/").status_code == 200
    assert server.stop(signal.SIGTERM) == 0
    out = server.log_path.read_text()
    assert "LIFESPAN-SHUTDOWN-RAN" in out
    assert "Application shutdown complete." in out
    assert out.index("Shutting down") < out.index("LIFESPAN-SHUTDOWN-RAN")
