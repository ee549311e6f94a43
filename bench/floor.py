"""The floor: the least work a Python server on uvloop can do per request.

A bare `asyncio.Protocol` that writes canned HTTP/1.1 keep-alive responses.
It calls no ASGI app, builds no scope and parses no header except, in echo
mode, Content-Length.  Whatever a real server spends above this line is what
its parser, ASGI layer and response writer cost; nothing written in Python
on this event loop can go much below it.

Modes (one per bench/http.py scenario):

- `plaintext`, `json`: every request end (`CRLF CRLF`) is answered with the
  canned response, so pipelined GETs get one response each.  Requests must
  not carry a body; wrk's GETs do not.
- `echo`: request heads are found, Content-Length is read strictly (digits
  only, bounded) and that many body bytes are echoed back.  A request with
  Transfer-Encoding or a bad Content-Length gets a 400 and the connection is
  closed; this is a benchmark floor, not a general server.

Run:  python bench/floor.py --mode plaintext --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

try:
    import uvloop
except ImportError:  # pragma: no cover - the benchmark needs uvloop anyway
    uvloop = None

# Mirrors bench/apps.py (kept literal here so the floor imports nothing of ours
# and can be started as a plain script).
PLAINTEXT_BODY = b"Hello, world!"
JSON_BODY = json.dumps(
    {"message": "Hello, world!", "id": 1, "ok": True}, separators=(",", ":")
).encode()

TERMINATOR = b"\r\n\r\n"
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)


def canned(content_type: bytes, body: bytes) -> bytes:
    """A complete keep-alive 200 response (no Date header: the floor does no clock work)."""
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: "
        + content_type
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


CANNED = {
    "plaintext": canned(b"text/plain; charset=utf-8", PLAINTEXT_BODY),
    "json": canned(b"application/json", JSON_BODY),
}


class _FlowControl(asyncio.Protocol):
    """Stop reading while the transport's write buffer is over its high-water mark.

    Without this a client that pipelines but reads slowly would make the floor
    buffer responses without bound.
    """

    transport: asyncio.Transport

    def connection_made(self, transport) -> None:
        self.transport = transport

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


class CannedProtocol(_FlowControl):
    """Answers each `CRLF CRLF` with the same canned bytes."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        # Bytes after the last counted terminator, at most 3: enough to catch
        # a terminator split across reads without ever counting one twice.
        self.tail = b""
        self.head_bytes = 0

    def data_received(self, data: bytes) -> None:
        buf = self.tail + data if self.tail else data
        n = buf.count(TERMINATOR)
        if n:
            # PERF: one write of n copies; a write per request costs a syscall
            # attempt each when pipelining 16 deep.
            self.transport.write(self.response * n if n > 1 else self.response)
            after = len(buf) - (buf.rfind(TERMINATOR) + 4)
            self.head_bytes = after
        else:
            self.head_bytes += len(data)
        if self.head_bytes > MAX_HEAD:
            self.transport.write(_BAD_REQUEST)
            self.transport.close()
            return
        self.tail = buf[-min(3, self.head_bytes):] if self.head_bytes else b""


def parse_content_length(head: bytes) -> int:
    """Content-Length from a request head; 0 if absent; -1 if unusable.

    Unusable: Transfer-Encoding present, several Content-Length fields, or a
    value that is not 1*DIGIT within MAX_BODY (RFC 9112 section 6.3, rules 3-5).
    """
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            return -1
        name = name.lower()
        if name == b"transfer-encoding":
            return -1
        if name == b"content-length":
            value = value.strip(b" \t")
            if length is not None or not value or not value.isdigit() or len(value) > 10:
                return -1
            length = 0
            for digit in value:  # hand-rolled: int() would accept "+1", "1_0", " 1"
                length = length * 10 + (digit - 48)
            if length > MAX_BODY:
                return -1
    return length or 0


class EchoProtocol(_FlowControl):
    """Echoes each request's Content-Length body back, handling pipelining."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.need = -1  # body bytes still expected for the current request, -1: in head
        self.searched = 0  # how far the head search got, so a slow drip is not rescanned

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        while True:
            if self.need < 0:
                end = self.buf.find(TERMINATOR, max(0, self.searched - 3))
                if end < 0:
                    self.searched = len(self.buf)
                    if self.searched > MAX_HEAD:
                        self._reject(out)
                    break
                length = parse_content_length(bytes(self.buf[:end]))
                del self.buf[: end + 4]
                self.searched = 0
                if length < 0:
                    self._reject(out)
                    break
                self.need = length
            if len(self.buf) < self.need:
                break
            body = bytes(self.buf[: self.need])
            del self.buf[: self.need]
            self.need = -1
            out.append(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                b"content-length: %d\r\n\r\n" % len(body)
            )
            out.append(body)
        if out:
            self.transport.writelines(out)

    def _reject(self, out: list) -> None:
        out.append(_BAD_REQUEST)
        self.transport.writelines(out)
        out.clear()
        self.transport.close()
        self.buf.clear()


async def serve(mode: str, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    if mode == "echo":
        factory = EchoProtocol
    else:
        response = CANNED[mode]

        def factory() -> CannedProtocol:
            return CannedProtocol(response)

    server = await loop.create_server(factory, host, port, backlog=2048)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["plaintext", "json", "echo"], default="plaintext")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if uvloop is None:
        raise SystemExit("the floor needs uvloop")
    uvloop.run(serve(args.mode, args.host, args.port))


if __name__ == "__main__":
    main()
