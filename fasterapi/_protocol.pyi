# Type stub for fasterapi._protocol (Cython).  The asyncio-facing class is
# fasterapi.protocol.HttpProtocol; these are its compiled bases.
import asyncio
from collections.abc import Awaitable
from typing import Any

def set_direct_dispatch(direct: bool) -> bool:
    """Bypass the per-loop dispatch ring (for benchmarks); returns the old setting."""

class LoopState:
    """Per event loop: the dispatch ring, the timeout tick, the cached Date line, pending access lines."""
    date_line: bytes
    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int = 1024) -> None: ...
    def flush_access(self) -> None:
        """Emit the pending access records now."""

def loop_state(loop: asyncio.AbstractEventLoop, capacity: int = 1024) -> LoopState: ...
def dispatch_queue_depth(loop: asyncio.AbstractEventLoop) -> int: ...
def flush_access_log(loop: asyncio.AbstractEventLoop) -> None:
    """Write the access lines `loop` still holds (the server calls it before "Finished server process")."""

class HttpCore:
    """One HTTP/1.1 connection (parse, dispatch, write, time out)."""
    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any] | None = None,
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None: ...
    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...
    def connection_lost(self, exc: BaseException | None) -> None: ...
    def get_buffer(self, sizehint: int) -> bytearray: ...
    def buffer_updated(self, nbytes: int) -> None: ...
    def data_received(self, data: bytes) -> None: ...
    def eof_received(self) -> bool | None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    def shutdown(self) -> None:
        """Close now if idle, else after the in-flight response."""
    def force_close(self) -> None:
        """Send http.disconnect to the in-flight request and close."""
    @property
    def is_idle(self) -> bool: ...

class RequestCycle:
    """One request/response exchange; ``receive``/``send`` are the ASGI callables."""
    scope: dict[str, Any]
    async def receive(self) -> dict[str, Any]: ...
    def send(self, message: dict[str, Any]) -> Awaitable[None]: ...
