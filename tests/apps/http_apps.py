"""Raw ASGI apps for the protocol and black-box HTTP tests (no framework)."""

from __future__ import annotations

import asyncio


async def hello(scope, receive, send):
    """200 "Hello, world!" (the plaintext benchmark shape)."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def echo(scope, receive, send):
    """Echo the request body; headers say the method, path and query."""
    body = []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return
        body.append(msg.get("body", b""))
        if not msg.get("more_body"):
            break
    data = b"".join(body)
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"x-method", scope["method"].encode()),
        (b"x-path", scope["path"].encode()),
        (b"x-query", scope["query_string"]),
        (b"content-type", b"application/octet-stream"),
    ]})
    await send({"type": "http.response.body", "body": data})


async def stream(scope, receive, send):
    """Chunked response: ?n=<count> pieces "chunk-<i>\\n", with a yield between them."""
    n = 3
    qs = scope["query_string"].decode()
    if qs.startswith("n="):
        n = int(qs[2:])
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    for i in range(n):
        await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"chunk-%d\n" % i, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def path(scope, receive, send):
    """Body is the request path (order checks for pipelining)."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


async def slow(scope, receive, send):
    """Responds after ?<seconds> (default 0.2)."""
    delay = float(scope["query_string"] or b"0.2")
    await asyncio.sleep(delay)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"slow"})


async def crash(scope, receive, send):
    """Raises before responding: the server answers 500."""
    raise ValueError("boom")


async def scope_info(scope, receive, send):
    """The scope's plain fields as a repr (for scope checks over sockets)."""
    info = {k: v for k, v in scope.items() if k not in ("headers", "state")}
    info["headers"] = [list(h) for h in scope["headers"]]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": repr(info).encode()})


async def router(scope, receive, send):
    """Dispatch on the first path segment to the apps above (default: hello)."""
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    name = scope["path"].strip("/").split("/")[0]
    app = {
        "echo": echo, "stream": stream, "path": path, "slow": slow,
        "crash": crash, "scope": scope_info,
    }.get(name, hello)
    await app(scope, receive, send)


app = router
