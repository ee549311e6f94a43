"""The ASGI apps every server in bench/http.py serves.

Each server gets the very same callable, so the numbers compare servers and
not apps.  The raw apps do the least an ASGI app can do (one start message,
one body message) so that server overhead dominates; `fastapi_json` shows
what a typical framework stack adds on top.

- `plaintext`: any GET -> 200 `Hello, world!` (text/plain).
- `echo`: any request -> 200 with the request body (application/octet-stream).
- `fastapi_json`: FastAPI, `GET /json` -> 200 `JSON_BODY` as JSON.

All three answer the lifespan protocol, so no server logs a lifespan error
or takes a slower fallback path at start-up.
"""

from __future__ import annotations

PLAINTEXT_BODY = b"Hello, world!"

# Small on purpose: the scenario measures the framework and server, not the
# JSON encoder.  bench/floor.py serves the same bytes in its json mode.
JSON_BODY = {"message": "Hello, world!", "id": 1, "ok": True}

_PLAINTEXT_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(PLAINTEXT_BODY)).encode()),
    ],
}
_PLAINTEXT_BODY_MSG = {"type": "http.response.body", "body": PLAINTEXT_BODY}


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def plaintext(scope, receive, send) -> None:
    """GET (any path) -> `Hello, world!`."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    # The messages are shared between requests; no server we run mutates
    # them, and a fresh dict per request would be app cost, not server cost.
    await send(_PLAINTEXT_START)
    await send(_PLAINTEXT_BODY_MSG)


async def echo(scope, receive, send) -> None:
    """Any method, any path -> the request body, whole, with a Content-Length."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    chunks = []
    more_body = True
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        more_body = message.get("more_body", False)
    body = b"".join(chunks)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _make_fastapi():
    # Imported here so `plaintext` and `echo` work without FastAPI installed.
    from fastapi import FastAPI

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/json")
    async def json_endpoint() -> dict:
        return JSON_BODY

    return app


def __getattr__(name: str):
    # Built on first access so importing bench.apps for the raw apps does not
    # pay FastAPI's import time (about 0.3 s) in every server start.
    if name == "fastapi_json":
        app = _make_fastapi()
        globals()["fastapi_json"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
