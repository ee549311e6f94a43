"""Type stub for fasterapi._http, the strict sans-IO HTTP/1.1 request parser."""

from typing import Any, Final

class HttpParserError(Exception):
    """The request must be refused with ``status``; the connection closes."""

    status: int  # 400, 413, 414, 431, 501 or 505
    reason: str  # which rule was broken, for the log
    def __init__(self, status: int, reason: str) -> None: ...

class _EndOfMessage: ...

END: Final[_EndOfMessage]  # the current request's body is complete

class RequestHead:
    @property
    def scope(self) -> dict[str, Any]: ...  # ASGI HTTP scope
    @property
    def method(self) -> str: ...
    @property
    def http_version(self) -> str: ...  # "1.0" or "1.1"
    @property
    def http11(self) -> bool: ...
    @property
    def is_head(self) -> bool: ...
    @property
    def keep_alive(self) -> bool: ...
    @property
    def expect_continue(self) -> bool: ...
    @property
    def chunked(self) -> bool: ...
    @property
    def content_length(self) -> int: ...  # -1 when absent
    @property
    def upgrade(self) -> bytes | None: ...
    @property
    def host(self) -> bytes: ...

class RequestParser:
    def __init__(
        self,
        scope_base: dict[str, Any],
        *,
        max_request_line: int = 8190,
        max_header_bytes: int = 65536,
        max_headers: int = 100,
        max_chunk_ext: int = 1024,
        max_trailer_bytes: int = 8192,
        max_body_size: int = 0,
    ) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview) -> None: ...
    def next_event(self) -> RequestHead | bytes | _EndOfMessage | None: ...
    @property
    def buffered(self) -> int: ...
    def reset_buffer_if_idle(self) -> None: ...
    def take_buffer(self) -> bytes: ...
