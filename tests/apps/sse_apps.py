"""A server-sent-events stream that ends when the client (or the server) goes away."""

import asyncio


async def events(scope, receive, send):
    """Send an event every 50 ms until receive() says http.disconnect."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})
    gone = asyncio.Event()

    async def watch():
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.ensure_future(watch())
    i = 0
    while not gone.is_set():
        await send({"type": "http.response.body", "body": b"data: %d\n\n" % i, "more_body": True})
        i += 1
        try:
            await asyncio.wait_for(gone.wait(), 0.05)
        except asyncio.TimeoutError:
            pass
    print("SSE-DISCONNECTED after", i, "events", flush=True)
    watcher.cancel()
