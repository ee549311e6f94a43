"""WebSocket connections: the RFC 6455 handshake and the ASGI ``websocket`` cycle.

``HttpCore`` hands a connection over through :func:`upgrade` when a request
asks for ``Upgrade: websocket`` (RFC 6455 §4.1); from then on the transport
belongs to one :class:`WebSocketProtocol`.  Framing, UTF-8 validation and
permessage-deflate live in the sans-IO frame layer ``fasterapi._websocket``;
this module only moves bytes, keeps the ASGI state machine and the timers.

Rules this module keeps:

1. States go one way: HANDSHAKE (app not yet answered) -> OPEN (101 sent) ->
   CLOSING (our Close sent, waiting for the peer's) -> CLOSED (TCP closing);
   a denial (403 or ``websocket.http.response``) goes HANDSHAKE -> CLOSED.
2. The app gets exactly one ``websocket.disconnect``; after it, ``send``
   raises :class:`ClientDisconnected` (asgiref ``www.rst``: "a server-specific
   subclass of IOError"), unless the app closed first (then RuntimeError, as
   any message after ``websocket.close``).
3. Reading pauses while ``--ws-max-queue`` messages wait for the app, so a
   slow app pushes back on the client through TCP instead of buffering.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
from collections import deque
from email.utils import formatdate
from typing import Any

from fasterapi._response import WRITE_APART_MIN, reason_phrase
from fasterapi._websocket import (
    BytesMessage,
    Close,
    FrameParser,
    FrameWriter,
    PerMessageDeflate,
    Ping,
    Pong,
    TextMessage,
    WebSocketError,
)

__all__ = ["ClientDisconnected", "WebSocketProtocol", "upgrade"]

error_logger = logging.getLogger("fasterapi.error")

# RFC 6455 §1.3: the GUID appended to the key for Sec-WebSocket-Accept.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# How long to wait for the peer's Close after ours (RFC 6455 §7.1.1 leaves it
# to us; 10 s is the websockets library's default close_timeout).
CLOSE_TIMEOUT = 10.0

_HANDSHAKE, _OPEN, _CLOSING, _CLOSED = range(4)

# Where reads go while the frame parser takes none (before the 101, after a
# failure): handshake bytes are kept from here, the rest dropped.
_SCRATCH_SIZE = 4096

class ClientDisconnected(OSError):
    """``send()`` on a WebSocket the client already closed (or that was lost)."""


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for ``key`` (RFC 6455 §4.2.2 step 5.4)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def upgrade(config: Any, server_state: Any, loop: asyncio.AbstractEventLoop,
            transport: asyncio.Transport, head: Any, data: bytes) -> WebSocketProtocol:
    """Take over ``transport`` from HttpCore after a WebSocket upgrade request.

    ``head`` is the parser's RequestHead (its scope already has root_path and
    state applied); ``data`` is what the client sent after the head.
    """
    proto = WebSocketProtocol(config, server_state, loop, transport, head)
    transport.set_protocol(proto)
    proto.start(data)
    return proto


def _header_values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in headers if n == name]


def _check_header(name: bytes, value: bytes) -> None:
    # RFC 9110 §5.5: CR, LF and NUL never belong in a field (header injection).
    for b in (name, value):
        if b"\r" in b or b"\n" in b or b"\0" in b:
            raise RuntimeError(f"Invalid response header {name!r}: {value!r}")


class WebSocketProtocol(asyncio.BufferedProtocol):
    """One WebSocket connection running the app's ``websocket`` scope.

    A BufferedProtocol: the transport reads straight into the frame parser's
    receive buffer (``FrameParser.get_buffer``), so a payload is copied once
    in user space, when it is unmasked into the message's bytes.
    """

    def __init__(self, config: Any, server_state: Any, loop: asyncio.AbstractEventLoop,
                 transport: asyncio.Transport, head: Any) -> None:
        self.config = config
        self.server_state = server_state
        self.loop = loop
        self.transport = transport
        self.app = config.loaded_app
        self.max_size = config.ws_max_size
        self.max_queue = config.ws_max_queue
        self.ping_interval = config.ws_ping_interval
        self.ping_timeout = config.ws_ping_timeout
        self.head = head
        scope = head.scope
        self.headers: list[tuple[bytes, bytes]] = scope["headers"]
        scope.pop("method", None)
        scope["type"] = "websocket"
        scope["scheme"] = "wss" if scope.get("scheme") == "https" else "ws"
        protos: list[str] = []
        for v in _header_values(self.headers, b"sec-websocket-protocol"):
            protos.extend(p.strip() for p in v.decode("latin-1").split(",") if p.strip())
        scope["subprotocols"] = protos
        # Keep what the HTTP layer put there (the "tls" extension on wss).
        scope["extensions"] = {**(scope.get("extensions") or {}), "websocket.http.response": {}}
        self.scope = scope
        self.client = scope.get("client")
        self.state = _HANDSHAKE
        self.parser: FrameParser | None = None
        self.writer: FrameWriter | None = None
        self.pending = bytearray()       # bytes read before the 101 went out
        self.scratch: bytearray | None = None  # get_buffer() when the parser takes none
        self.read_into_parser = False    # what the last get_buffer() returned
        self.queue: deque[dict[str, Any]] = deque()
        self.recv_waiter: asyncio.Future[None] | None = None
        self.read_paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.connect_sent = False
        self.disconnected = False        # websocket.disconnect queued
        self.app_closed = False          # the app sent websocket.close
        self.lost = False                # connection_lost seen
        self.failed = False              # parser error: discard input
        self.close_code = 1006           # what the app is told on loss
        self.close_reason = ""
        self.response_status = 0         # websocket.http.response.start
        self.response_headers: list[Any] = []
        self.response_body: list[bytes] = []
        self.task: asyncio.Task[None] | None = None
        self.ping_handle: asyncio.TimerHandle | None = None
        self.pong_handle: asyncio.TimerHandle | None = None
        self.ping_payload: bytes | None = None
        self.close_handle: asyncio.TimerHandle | None = None

    # -- the handshake --

    def start(self, data: bytes) -> None:
        """Check the upgrade request (RFC 6455 §4.2.1), then run the app.

        Over ``--limit-concurrency`` the handshake is answered 503 and the
        connection closed without running the app.
        """
        self.server_state.connections.add(self)
        if data:
            self.pending += data
        self._pause()            # the client must wait for our 101 (§4.1)
        limit = self.config.limit_concurrency
        if limit is not None and (len(self.server_state.connections) > limit
                                  or len(self.server_state.tasks) >= limit):
            # The same test HttpCore makes before running an HTTP request (this
            # connection is counted, HttpCore having handed it over): an
            # upgrade is a request, so over the limit it gets the same 503 and
            # the app never runs.
            error_logger.warning("Exceeded concurrency limit.")
            self._http_response(503, [(b"content-type", b"text/plain; charset=utf-8")],
                                b"Service Unavailable\n")
            return
        problem = self._check_request()
        if problem is not None:
            status, text, extra = problem
            error_logger.warning("Invalid WebSocket upgrade request: %s", text)
            self._http_response(status, [(b"content-type", b"text/plain; charset=utf-8"), *extra],
                                text.encode() + b"\n")
            return
        self.task = self.loop.create_task(self._run())
        self.server_state.tasks.add(self.task)

    def _check_request(self) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        head = self.head
        if head.method != "GET" or head.http_version != "1.1":
            return 400, "a WebSocket handshake is a GET over HTTP/1.1", []
        versions = _header_values(self.headers, b"sec-websocket-version")
        if [v.strip() for v in versions] != [b"13"]:
            # §4.2.2 / §4.4: name the version we speak.
            return 426, "unsupported Sec-WebSocket-Version (this server speaks 13)", [
                (b"sec-websocket-version", b"13")]
        keys = _header_values(self.headers, b"sec-websocket-key")
        key = keys[0].strip() if len(keys) == 1 else b""
        try:
            raw = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 16:
            # §4.1: the key is a base64-encoded 16-byte nonce, sent once.
            return 400, "missing or invalid Sec-WebSocket-Key", []
        self.key = key
        return None

    def _accept(self, message: dict[str, Any]) -> None:
        extra = [(b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
                 (b"sec-websocket-accept", accept_key(self.key))]
        sub = message.get("subprotocol")
        if sub is not None:
            if sub not in self.scope["subprotocols"]:
                # §4.2.2: the server picks one the client offered, or none.
                raise RuntimeError(f"Subprotocol {sub!r} was not offered by the client.")
            extra.append((b"sec-websocket-protocol", sub.encode("latin-1")))
        deflate = None
        offers = _header_values(self.headers, b"sec-websocket-extensions")
        if offers and self.config.ws_per_message_deflate:
            got = PerMessageDeflate.negotiate(b", ".join(offers).decode("latin-1"))
            if got is not None:
                value, deflate = got
                if isinstance(value, str):
                    value = value.encode("latin-1")
                extra.append((b"sec-websocket-extensions", value))
        for name, value in message.get("headers") or ():
            name = bytes(name).lower()
            value = bytes(value)
            _check_header(name, value)
            extra.append((name, value))
        self.parser = FrameParser(max_size=self.max_size, deflate=deflate)
        self.writer = FrameWriter(deflate=deflate)
        self.transport.write(self._head(101, extra))
        self._log(101)
        self.state = _OPEN
        if self.ping_interval:
            self.ping_handle = self.loop.call_later(self.ping_interval, self._send_ping)
        data, self.pending = bytes(self.pending), bytearray()
        self._resume()
        if data:
            self._feed(data)

    def _head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        # 600-999 are accepted from the app but have no phrase: empty, as
        # RFC 9112 §4 allows and the response builder does.
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status).encode("ascii"))]
        lines.extend(n + b": " + v + b"\r\n" for n, v in headers)
        names = {n for n, _ in headers}
        for n, v in self.config.encoded_headers:
            if n not in names:
                lines.append(n + b": " + v + b"\r\n")
        if self.config.server_header and b"server" not in names:
            lines.append(b"server: fasterapi\r\n")
        if self.config.date_header and b"date" not in names:
            lines.append(b"date: " + formatdate(usegmt=True).encode() + b"\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def _http_response(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        # A refused handshake is an ordinary HTTP response, then close
        # (RFC 6455 §4.2.2: "the server ... MUST NOT" switch protocols).
        names = {n for n, _ in headers}
        headers = list(headers)
        if b"content-length" not in names:
            headers.append((b"content-length", str(len(body)).encode()))
        headers.append((b"connection", b"close"))
        self.state = _CLOSED
        if not self.lost:
            self.transport.write(self._head(status, headers) + body)
            self.transport.close()
        self._log(status)

    def _log(self, status: int) -> None:
        # As uvicorn: handshake outcomes go to the error logger (the access
        # logger's records have the HTTP request shape), "[accepted]" for 101.
        if not error_logger.isEnabledFor(logging.INFO):
            return
        c = self.client
        path = self.scope["path"]
        qs = self.scope["query_string"]
        if qs:
            path += "?" + qs.decode("latin-1")
        error_logger.info('%s - "WebSocket %s" %s', f"{c[0]}:{c[1]}" if c else "", path,
                          "[accepted]" if status == 101 else status)

    # -- the app --

    async def _run(self) -> None:
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            # Our own "peer is gone" from send(), left unhandled: that is
            # the normal end of a socket the client closed (uvicorn too
            # ends such an app quietly).
            error_logger.debug("WebSocket app ended by a send after the client closed")
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                error_logger.error("Exception in ASGI application", exc_info=exc)
            self._app_failed()
            if not isinstance(exc, Exception):
                raise
        else:
            if result is not None:
                error_logger.error("ASGI callable should return None, but returned %r.", result)
            if self.state == _HANDSHAKE:
                error_logger.error("ASGI callable returned without sending handshake.")
                self._app_failed()
            elif self.state == _OPEN:
                # The app is done with an open socket: end it politely.
                self._close(1000, "")
        finally:
            self.server_state.tasks.discard(self.task)
            self.task = None

    def _app_failed(self) -> None:
        # Before the handshake answer: 500 (uvicorn does the same); after
        # it: close 1011, "unexpected condition" (RFC 6455 §7.4.1).
        if self.state == _HANDSHAKE:
            if self.response_status:
                error_logger.error("ASGI callable returned without completing the response.")
            self._http_response(500, [(b"content-type", b"text/plain; charset=utf-8")],
                                b"Internal Server Error\n")
        elif self.state == _OPEN:
            self._close(1011, "")

    async def receive(self) -> dict[str, Any]:
        """ASGI receive: ``websocket.connect``, then ``websocket.receive``
        messages, then one ``websocket.disconnect`` (repeated if called again)."""
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        while not self.queue:
            if self.disconnected:
                return {"type": "websocket.disconnect", "code": self.close_code,
                        "reason": self.close_reason}
            if self.recv_waiter is not None:
                raise RuntimeError("receive() called while another receive() is pending")
            waiter = self.recv_waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self.recv_waiter = None
        message = self.queue.popleft()
        if self.read_paused and len(self.queue) < self.max_queue and self.state == _OPEN:
            self._resume()
        return message

    async def send(self, message: dict[str, Any]) -> None:
        """ASGI send.  Raises RuntimeError for a message out of order or of an
        unknown type, ClientDisconnected once the peer has closed or gone."""
        while self.write_paused and not self.lost:
            waiter = self.drain_waiter
            if waiter is None:
                waiter = self.drain_waiter = self.loop.create_future()
            await waiter
        mtype = message["type"]
        state = self.state
        if state == _HANDSHAKE:
            if self.response_status:
                if mtype != "websocket.http.response.body":
                    raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body', "
                                       f"but got '{mtype}'.")
                self.response_body.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    self._http_response(self.response_status, self.response_headers,
                                        b"".join(self.response_body))
                return
            if self.lost:
                raise ClientDisconnected("the client closed the connection")
            if mtype == "websocket.accept":
                self._accept(message)
            elif mtype == "websocket.close":
                # Close before accept: deny with 403 (asgiref www spec).
                self.app_closed = True
                self._http_response(403, [], b"")
            elif mtype == "websocket.http.response.start":
                status = message["status"]
                if not 100 <= status <= 999:
                    raise RuntimeError(f"Invalid HTTP status code {status!r} in response.")
                headers = []
                for n, v in message.get("headers") or ():
                    n, v = bytes(n).lower(), bytes(v)
                    _check_header(n, v)
                    headers.append((n, v))
                self.response_status = status
                self.response_headers = headers
            else:
                raise RuntimeError(f"Expected ASGI message 'websocket.accept', 'websocket.close' "
                                   f"or 'websocket.http.response.start', but got '{mtype}'.")
            return
        if self.app_closed or state == _CLOSED and not self.disconnected:
            raise RuntimeError(f"Unexpected ASGI message '{mtype}', after sending "
                               f"'websocket.close' or response already completed.")
        if state != _OPEN or self.lost:
            raise ClientDisconnected("the WebSocket is closed")
        if mtype == "websocket.send":
            text = message.get("text")
            if text is not None:
                self.transport.write(self.writer.text(text))
            else:
                data = message.get("bytes")
                if data is None:
                    raise RuntimeError("websocket.send needs 'text' or 'bytes'.")
                data = bytes(data)
                # With permessage-deflate negotiated every message is
                # compressed: the header + payload path is for plain frames.
                if len(data) >= WRITE_APART_MIN and not self.writer.compresses:
                    self.transport.writelines((self.writer.binary_header(len(data)), data))
                else:
                    self.transport.write(self.writer.binary(data))
        elif mtype == "websocket.close":
            self.app_closed = True
            code = message.get("code") or 1000
            self._close(code, message.get("reason") or "")
        else:
            raise RuntimeError(f"Expected ASGI message 'websocket.send' or 'websocket.close', "
                               f"but got '{mtype}'.")

    # -- closing --

    def _close(self, code: int, reason: str) -> None:
        # Start the closing handshake (RFC 6455 §7.1.2): send Close, then
        # wait up to CLOSE_TIMEOUT for the peer's before closing TCP.
        if self.state != _OPEN:
            return
        self.state = _CLOSING
        self._stop_pings()
        if not self.lost:
            self.transport.write(self.writer.close(code, reason))
            self.close_handle = self.loop.call_later(CLOSE_TIMEOUT, self._drop)
            if self.read_paused:
                self._resume()   # the peer's Close must get through
        self._disconnect(code, reason)

    def _fail(self, code: int, reason: str) -> None:
        # "Fail the WebSocket Connection" (RFC 6455 §7.1.7): Close with the
        # error's code, then nothing more is read.  We half-close so the
        # client sees our end at once, and drop TCP on its EOF or timeout.
        self.failed = True
        if self.state == _OPEN and not self.lost:
            self.transport.write(self.writer.close(code, reason))
            if self.transport.can_write_eof():
                self.transport.write_eof()
        self.state = _CLOSING
        self._stop_pings()
        self._disconnect(code, reason)
        if self.close_handle is None and not self.lost:
            self.close_handle = self.loop.call_later(CLOSE_TIMEOUT, self._drop)

    def _drop(self) -> None:
        self.close_handle = None
        self.state = _CLOSED
        if not self.lost:
            self.transport.close()

    def _disconnect(self, code: int, reason: str) -> None:
        # Queue the app's single websocket.disconnect (rule 2).
        if self.disconnected:
            return
        self.disconnected = True
        self.close_code = code
        self.close_reason = reason
        self._wake()

    def _wake(self) -> None:
        waiter = self.recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- keepalive (the websockets library's ping_interval/ping_timeout) --

    def _send_ping(self) -> None:
        self.ping_handle = None
        if self.state != _OPEN or self.lost:
            return
        self.ping_payload = os.urandom(4)
        self.transport.write(self.writer.ping(self.ping_payload))
        if self.ping_timeout:
            self.pong_handle = self.loop.call_later(self.ping_timeout, self._ping_timed_out)
        if self.ping_interval:
            self.ping_handle = self.loop.call_later(self.ping_interval, self._send_ping)

    def _ping_timed_out(self) -> None:
        self.pong_handle = None
        error_logger.info("WebSocket keepalive ping timed out; closing.")
        # 1011 as the websockets library does on a keepalive timeout.
        self._fail(1011, "keepalive ping timeout")

    def _stop_pings(self) -> None:
        for handle in (self.ping_handle, self.pong_handle):
            if handle is not None:
                handle.cancel()
        self.ping_handle = self.pong_handle = None

    # -- input --

    def get_buffer(self, sizehint: int) -> Any:
        """Where the transport reads to: the parser's buffer once open."""
        if self.state == _HANDSHAKE or self.failed or self.state == _CLOSED:
            self.read_into_parser = False
            if self.scratch is None:
                self.scratch = bytearray(_SCRATCH_SIZE)
            return self.scratch
        self.read_into_parser = True
        return self.parser.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` arrived in what get_buffer() returned."""
        if not self.read_into_parser:
            self.data_received(memoryview(self.scratch)[:nbytes])
            return
        self.parser.buffer_updated(nbytes)
        if not (self.failed or self.state == _CLOSED):
            self._events()

    def data_received(self, data: Any) -> None:
        """Frames from the client (buffered until the handshake is answered).
        The plain-Protocol path; transports that read into get_buffer() end
        up here only before the 101 and after a failure."""
        if self.state == _HANDSHAKE:
            self.pending += data
            return
        if self.failed or self.state == _CLOSED:
            return
        self._feed(data)

    def _feed(self, data: Any) -> None:
        self.parser.feed(data)
        self._events()

    def _events(self) -> None:
        # Hand the parser's events to the app until it has no more or
        # reading must stop.
        parser = self.parser
        try:
            while True:
                event = parser.next_event()
                if event is None:
                    break
                if self._event(event):
                    break
        except WebSocketError as exc:
            self._fail(exc.code, exc.reason)

    def _event(self, event: Any) -> bool:
        # One parser event; True when reading must stop.
        if isinstance(event, TextMessage):
            if self.state == _OPEN:
                self._push({"type": "websocket.receive", "text": event.data})
        elif isinstance(event, BytesMessage):
            if self.state == _OPEN:
                self._push({"type": "websocket.receive", "bytes": event.data})
        elif isinstance(event, Ping):
            if self.state == _OPEN:
                # §5.5.2: answer with a Pong carrying the same data.
                self.transport.write(self.writer.pong(event.payload))
        elif isinstance(event, Pong):
            if event.payload == self.ping_payload and self.pong_handle is not None:
                self.pong_handle.cancel()
                self.pong_handle = None
        elif isinstance(event, Close):
            if self.state == _OPEN:
                # §5.5.1: echo the status code; 1005 means "none given",
                # which must not go on the wire, so the echo is empty.
                code = None if event.code == 1005 else event.code
                self.transport.write(self.writer.close(code, event.reason))
                self._stop_pings()
                self._disconnect(event.code, event.reason)
            # §7.1.1: the server closes TCP first, once Closes are exchanged.
            self._drop()
            return True
        return False

    def _push(self, message: dict[str, Any]) -> None:
        self.queue.append(message)
        self._wake()
        if len(self.queue) >= self.max_queue and not self.read_paused:
            self._pause()

    def _pause(self) -> None:
        self.read_paused = True
        try:
            self.transport.pause_reading()
        except (AttributeError, RuntimeError):
            pass

    def _resume(self) -> None:
        self.read_paused = False
        try:
            self.transport.resume_reading()
        except (AttributeError, RuntimeError):
            pass

    def eof_received(self) -> bool | None:
        """The client shut its write side: nothing more can come."""
        return None      # close the transport; connection_lost reports 1006 if open

    def pause_writing(self) -> None:
        """The transport's buffer is full: send() waits."""
        self.write_paused = True

    def resume_writing(self) -> None:
        """The transport drained: wake send()."""
        self.write_paused = False
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        """TCP is gone: the app gets websocket.disconnect (1006 if no Close came)."""
        self.lost = True
        self.state = _CLOSED
        self.server_state.connections.discard(self)
        self._stop_pings()
        if self.close_handle is not None:
            self.close_handle.cancel()
            self.close_handle = None
        self._disconnect(1006, "")
        self.resume_writing()

    # -- graceful shutdown hooks (server.py) --

    def shutdown(self) -> None:
        """Server going away: close an open WebSocket with 1012 (Service
        Restart, IANA WebSocket close code registry); refuse a pending
        handshake with 503."""
        if self.state == _OPEN:
            self._close(1012, "")
        elif self.state == _HANDSHAKE and not self.response_status:
            self._http_response(503, [(b"content-type", b"text/plain; charset=utf-8")],
                                b"Service Unavailable\n")
            self._disconnect(1012, "")

    def force_close(self) -> None:
        """End of the graceful timeout: drop the connection now."""
        self._disconnect(1006, "")
        if not self.lost:
            self.transport.close()

    @property
    def is_idle(self) -> bool:
        """A WebSocket is never idle while open (server.py asks HttpCore-style)."""
        return False
