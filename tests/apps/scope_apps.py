"""An app that scribbles on its scope, to prove scopes are not shared between requests."""


async def mutate_asgi(scope, receive, send):
    """Answer with the scope's asgi dict as it arrived, then write into it."""
    if scope["type"] != "http":
        return
    seen = repr(sorted(scope["asgi"].items())).encode()
    scope["asgi"]["scribbled"] = True
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": seen})
