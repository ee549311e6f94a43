"""A Starlette app: routes with path parameters, a streaming response and lifespan state."""

import contextlib

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"cache": {"warm": True}}
    print("STARLETTE-LIFESPAN-SHUTDOWN", flush=True)


async def homepage(request):
    return PlainTextResponse("starlette says hi")


async def user(request):
    return JSONResponse({"user": request.path_params["name"], "warm": request.state.cache["warm"]})


async def echo(request):
    body = await request.body()
    return JSONResponse({"length": len(body), "head": body[:10].decode()})


async def stream(request):
    async def parts():
        for word in ("alpha", "beta", "gamma"):
            yield word + "\n"

    return StreamingResponse(parts(), media_type="text/plain")


app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/users/{name}", user),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
    ],
    lifespan=lifespan,
)
