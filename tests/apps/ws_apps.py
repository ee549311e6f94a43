"""ASGI WebSocket apps for tests/test_websocket.py and the Autobahn run.

Each is a plain ASGI3 callable so the tests see exactly what the server sends
and receives; the FastAPI/Starlette endpoints live at the bottom.
"""

# No "from __future__ import annotations": FastAPI resolves the endpoint's
# WebSocket annotation at runtime, and it is imported inside a function.
import json


async def echo(scope, receive, send):
    """Accept (picking the first offered subprotocol) and echo every message."""
    if scope["type"] == "http":
        # --ws none: the upgrade request arrives as plain HTTP.
        body = json.dumps({"type": scope["type"], "path": scope["path"]}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    subs = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": subs[0] if subs else None,
                "headers": [(b"x-echo", b"yes")]})
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            return
        if msg.get("text") == "scope":
            info = {k: scope[k] for k in ("type", "scheme", "path", "raw_path", "query_string",
                                          "http_version", "subprotocols", "extensions")}
            info["raw_path"] = info["raw_path"].decode()
            info["query_string"] = info["query_string"].decode()
            info["client"] = list(scope["client"])
            await send({"type": "websocket.send", "text": json.dumps(info)})
        elif msg.get("text", "").startswith("close:"):
            _, code, reason = msg["text"].split(":", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
            return
        elif msg.get("text") is not None:
            await send({"type": "websocket.send", "text": msg["text"]})
        else:
            await send({"type": "websocket.send", "bytes": msg["bytes"]})


EVENTS: list = []


async def recorder(scope, receive, send):
    """Echo, and report how the connection ended on the HTTP path /events."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(EVENTS).encode()})
        return
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            EVENTS.append({"code": msg["code"], "reason": msg.get("reason", "")})
            try:
                await send({"type": "websocket.send", "text": "too late"})
            except OSError as exc:
                EVENTS.append({"send_after_close": type(exc).__name__})
            return
        await send({"type": "websocket.send", **{k: v for k, v in msg.items() if k != "type"}})


async def deny(scope, receive, send):
    """Refuse: /403 closes before accepting, /teapot answers with its own response."""
    if scope["type"] != "websocket":
        return
    await receive()
    if scope["path"] == "/teapot":
        await send({"type": "websocket.http.response.start", "status": 418,
                    "headers": [(b"content-type", b"text/plain"), (b"x-why", b"tea")]})
        await send({"type": "websocket.http.response.body", "body": b"short and ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"stout"})
    elif scope["path"] == "/crash":
        raise RuntimeError("boom before accept")
    elif scope["path"] == "/crash-after":
        await send({"type": "websocket.accept"})
        raise RuntimeError("boom after accept")
    elif scope["path"] == "/send-first":
        await send({"type": "websocket.send", "text": "no accept"})
    else:
        await send({"type": "websocket.close"})


async def server_push(scope, receive, send):
    """Accept, then send N messages of SIZE bytes (query ?n=N&size=SIZE) and wait."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    q = dict(p.split("=") for p in scope["query_string"].decode().split("&") if p)
    payload = b"x" * int(q.get("size", "16"))
    for _ in range(int(q.get("n", "1"))):
        await send({"type": "websocket.send", "bytes": payload})
    while (await receive())["type"] != "websocket.disconnect":
        pass


def _fastapi_app():
    from fastapi import FastAPI, WebSocket, WebSocketDisconnect

    app = FastAPI()

    @app.websocket("/ws/{name}")
    async def ws(websocket: WebSocket, name: str):
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_json({"name": name, "text": text})
        except WebSocketDisconnect:
            pass

    return app


def _starlette_app():
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def ws(websocket: WebSocket):
        await websocket.accept(subprotocol="chat")
        data = await websocket.receive_bytes()
        await websocket.send_bytes(data[::-1])
        await websocket.close(code=4000, reason="bye")

    return Starlette(routes=[WebSocketRoute("/ws", ws)])


fastapi_app = _fastapi_app()
starlette_app = _starlette_app()


async def plain_echo(scope, receive, send):
    """Echo every message unchanged, nothing else (the Autobahn fuzzing target)."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": msg.get("text"), "bytes": msg.get("bytes")})
