"""The bundled example: a plain ASGI3 app that needs nothing beyond fasterapi's own dependencies.

Run it from the repository root with

    fasterapi run examples.app:app          # or: fasterapi run app:app --app-dir examples

and try:

    curl http://127.0.0.1:8000/                         # plain text
    curl http://127.0.0.1:8000/json                     # JSON, including lifespan state
    curl -d 'hello' http://127.0.0.1:8000/echo           # the request body, echoed back

Lifespan: at startup the app puts a start time and a request counter into
``scope["state"]``; each request gets a shallow copy of that dict, so the
counter (a shared mutable object) counts across requests while plain values
stay per-request.
"""

import time

import orjson


async def app(scope, receive, send):
    """Dispatch on the scope type: lifespan events, or one HTTP request."""
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
    elif scope["type"] == "http":
        await http(scope, receive, send)


async def lifespan(scope, receive, send):
    """Set up state on startup; acknowledge shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started_at"] = time.time()
            scope["state"]["counter"] = {"requests": 0}
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def http(scope, receive, send):
    """Route /, /json and /echo; everything else is a 404."""
    state = scope.get("state", {})
    if "counter" in state:
        state["counter"]["requests"] += 1
    path, method = scope["path"], scope["method"]

    if path == "/" and method in ("GET", "HEAD"):
        await respond(send, 200, b"Hello from fasterapi!\n", b"text/plain; charset=utf-8")
    elif path == "/json" and method in ("GET", "HEAD"):
        payload = {
            "message": "Hello from fasterapi!",
            "uptime_seconds": round(time.time() - state.get("started_at", time.time()), 3),
            "requests": state.get("counter", {}).get("requests"),
        }
        await respond(send, 200, orjson.dumps(payload), b"application/json")
    elif path == "/echo" and method == "POST":
        body = await read_body(receive)
        content_type = dict(scope["headers"]).get(b"content-type", b"application/octet-stream")
        await respond(send, 200, body, content_type)
    elif path in ("/", "/json", "/echo"):
        await respond(send, 405, b"Method Not Allowed\n", b"text/plain; charset=utf-8")
    else:
        await respond(send, 404, b"Not Found\n", b"text/plain; charset=utf-8")


async def read_body(receive):
    """Collect the whole request body (it may arrive in several messages)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def respond(send, status, body, content_type):
    """Send a complete response with a Content-Length."""
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
        ],
    })
    await send({"type": "http.response.body", "body": body})
