"""Apps for the production-operations tests: each answers with part of its scope as JSON."""

import json


async def app(scope, receive, send):
    """Echo client, scheme, server, headers and the tls extension (lifespan: accept).

    A WebSocket gets one text message with client, scheme and tls, then a close.
    """
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps({
            "client": list(scope["client"]) if scope.get("client") else None,
            "scheme": scope["scheme"],
            "tls": scope.get("extensions", {}).get("tls"),
        })})
        await send({"type": "websocket.close", "code": 1000})
        return
    body = {
        "client": list(scope["client"]) if scope.get("client") else None,
        "scheme": scope["scheme"],
        "server": list(scope["server"]) if scope.get("server") else None,
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
        "tls": scope.get("extensions", {}).get("tls"),
        # Each request gets its own extensions dict: a mark left by the
        # previous request on this connection must not show up here.
        "extensions_is_fresh": "ops_scope.seen" not in scope.get("extensions", {}),
    }
    if "extensions" in scope:
        scope["extensions"]["ops_scope.seen"] = True
    status = 200
    if scope["path"] == "/raise":
        raise RuntimeError("ops_scope: /raise")
    if scope["path"].startswith("/status/"):
        status = int(scope["path"].rsplit("/", 1)[1])
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})
