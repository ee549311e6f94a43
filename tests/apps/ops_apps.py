"""Apps for the process-management tests (workers, supervision, gunicorn).

``app`` answers every request with the serving process's PID, so tests can
tell workers apart.  Query strings steer it: ``?sleep=S`` waits S seconds
(without blocking the loop), ``?block=S`` blocks the event loop for S seconds
(a hung worker), ``?alloc=MIB`` keeps MIB more mebibytes alive.
"""

import asyncio
import json
import os
import time

_hoard = []


async def app(scope, receive, send):
    """Answer ``{"pid": ...}``; see the module docstring for the query parameters."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = dict(p.partition("=")[::2] for p in scope["query_string"].decode().split("&") if p)
    if "sleep" in query:
        print(f"SLOW-REQUEST-STARTED {os.getpid()}", flush=True)
        await asyncio.sleep(float(query["sleep"]))
    if "block" in query:
        time.sleep(float(query["block"]))
    if "alloc" in query:
        # Touch every page so it counts as resident.
        _hoard.append(bytearray(b"x" * (int(query["alloc"]) * 1024 * 1024)))
    body = json.dumps({"pid": os.getpid()}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def failing_startup_app(scope, receive, send):
    """Fails lifespan startup with a reason."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "the cache is unreachable"})
        return
