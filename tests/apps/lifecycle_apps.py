"""Plain ASGI apps for the CLI, lifespan and server tests (no framework needed).

The main ``app`` answers every request with a JSON description of what it saw
(path, root_path, lifespan state, an environment variable), so tests can check
what the server passed in.  Query strings steer it: ``?sleep=S`` waits S
seconds before answering, ``?mutate=1`` changes the request's state copy.
"""

import asyncio
import json
import os
import sys


def _log(text):
    # Printed (not logged) so tests see it whatever the log configuration is.
    print(text, flush=True)
    sys.stdout.flush()


async def _lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["greeting"] = "hello from lifespan"
            scope["state"]["shared"] = {"requests": 0}
            _log("LIFESPAN-STARTUP-RAN")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _log("LIFESPAN-SHUTDOWN-RAN")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive):
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _json(send, status, payload):
    body = json.dumps(payload).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    """Lifespan with state; every request is answered with what the app saw."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    query = dict(p.partition("=")[::2] for p in scope.get("query_string", b"").decode().split("&") if p)
    if "sleep" in query:
        _log(f"SLOW-REQUEST-STARTED {scope['path']}")
        await asyncio.sleep(float(query["sleep"]))
    state = scope.get("state")
    seen_state = None
    if state is not None:
        seen_state = {k: v for k, v in state.items() if k != "shared"}
        if "shared" in state:
            state["shared"]["requests"] += 1
            seen_state["shared_requests"] = state["shared"]["requests"]
        if query.get("mutate"):
            state["greeting"] = "mutated by a request"
    body = await _read_body(receive)
    await _json(send, 200, {
        "path": scope["path"],
        "root_path": scope.get("root_path", ""),
        "state": seen_state,
        "asgi": scope.get("asgi"),
        "body": body.decode("latin-1"),
        "env": os.environ.get("FASTERAPI_TEST_VALUE"),
    })


async def no_lifespan_app(scope, receive, send):
    """Rejects the lifespan scope by raising, as many minimal apps do."""
    assert scope["type"] == "http", "this app only speaks HTTP"
    await _json(send, 200, {"path": scope["path"], "state": dict(scope.get("state") or {})})


async def lifespan_failed_app(scope, receive, send):
    """Reports a failed startup with a message."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database is unreachable"})
        return
    await _json(send, 200, {})


async def lifespan_raises_app(scope, receive, send):
    """Raises during startup without sending anything."""
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("startup exploded")
    await _json(send, 200, {"path": scope["path"]})


async def lifespan_off_probe(scope, receive, send):
    """Answers with whether a lifespan scope was ever seen by this process."""
    global _saw_lifespan
    if scope["type"] == "lifespan":
        _saw_lifespan = True
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await _json(send, 200, {"saw_lifespan": _saw_lifespan, "state": dict(scope.get("state") or {})})


_saw_lifespan = False


def create_app():
    """A factory: returns the main app."""
    return app


def bad_factory():
    """A factory that fails."""
    raise RuntimeError("factory could not build the app")


class ASGI2App:
    """A legacy ASGI2 ("double callable") app."""

    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        if self.scope["type"] != "http":
            return
        await _json(send, 200, {"interface": "asgi2", "path": self.scope["path"]})


class Nested:
    """For "module:attr.sub" import strings."""

    app = app
