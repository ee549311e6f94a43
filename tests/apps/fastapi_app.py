"""A FastAPI app exercising what users rely on: models, validation, streaming, errors,
background tasks, lifespan state and a mounted sub-app."""

from contextlib import asynccontextmanager

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

background_log: list[str] = []


@asynccontextmanager
async def lifespan(app):
    # Lifespan state: FastAPI/Starlette expose it as request.state.
    yield {"db": "connected", "started": True}
    print("FASTAPI-LIFESPAN-SHUTDOWN", flush=True)


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.get("/")
async def root():
    return {"framework": "fastapi"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item):
    return {"created": item.model_dump(), "total": item.price * 2}


@app.get("/state")
async def state(request: Request):
    return {"db": request.state.db, "started": request.state.started}


@app.get("/stream")
async def stream():
    async def numbers():
        for i in range(5):
            yield f"chunk-{i}\n".encode()

    return StreamingResponse(numbers(), media_type="text/plain")


@app.get("/boom")
async def boom():
    raise RuntimeError("handler exploded")


@app.post("/background")
async def background(tasks: BackgroundTasks, word: str):
    tasks.add_task(background_log.append, word)
    return {"queued": word}


@app.get("/background")
async def background_result():
    return {"log": background_log}


sub = FastAPI()


@sub.get("/info")
async def sub_info(request: Request):
    return {
        "root_path": request.scope["root_path"],
        "url": str(request.url_for("sub_info")),
        "path": request.url.path,
    }


app.mount("/sub", sub)
