"""Socket-free tests of the HTTP/1.1 protocol and the ASGI http cycle.

A mock transport records what the protocol writes; each test runs on a
fresh event loop, once with uvloop and once with plain asyncio (uvicorn's
tests/protocols/test_http.py shape).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import types

import pytest
import uvloop

from fasterapi.protocol import HttpProtocol, set_direct_dispatch

# -- harness -------------------------------------------------------------------


class MockTransport:
    """Records writes and flow-control calls like a socket transport would see them."""

    def __init__(self):
        self.data = bytearray()
        self.closed = False
        self.reading = True
        self.high = None
        self.protocol = None

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 8123), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data):
        assert not self.closed, "write after close"
        self.data += data

    def writelines(self, items):
        # One call is one syscall (writev) on uvloop: record it as one write.
        self.write(b"".join(items))

    def close(self):
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def is_closing(self):
        return self.closed

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        self.reading = True

    def set_write_buffer_limits(self, high=None, low=None):
        self.high = high

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


def make_config(app, **overrides):
    cfg = dict(
        loaded_app=app, root_path="", access_log=False, server_header=True, date_header=True,
        encoded_headers=[], limit_concurrency=None, timeout_keep_alive=5,
        timeout_request_header=10, timeout_request_body=30, max_request_line=8190,
        max_header_bytes=65536, max_headers=100, max_chunk_ext=1024, max_body_size=0,
        queue_size=1024, write_high_water=65536, read_buffer_limit=1048576,
    )
    cfg.update(overrides)
    return types.SimpleNamespace(**cfg)


def server_state():
    return types.SimpleNamespace(total_requests=0, connections=set(), tasks=set(), root_path="")


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    """run(coro_fn) executes an async test body on a fresh loop of the given kind."""
    def runner(fn):
        loop = uvloop.new_event_loop() if request.param == "uvloop" else asyncio.new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(fn(), 10))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    return runner


class Conn:
    """A protocol bound to a mock transport."""

    def __init__(self, app, state=None, app_state=None, **cfg):
        self.config = make_config(app, **cfg)
        self.state = state or server_state()
        self.proto = HttpProtocol(config=self.config, server_state=self.state,
                                  app_state=app_state)
        self.t = MockTransport()
        self.t.protocol = self.proto
        self.proto.connection_made(self.t)

    def feed(self, data: bytes):
        self.proto.data_received(data)

    def feed_buffered(self, data: bytes):
        buf = self.proto.get_buffer(-1)
        buf[: len(data)] = data
        self.proto.buffer_updated(len(data))

    async def until(self, pred, timeout=3.0):
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not pred():
            if loop.time() > end:
                raise AssertionError(f"condition not met; wrote {bytes(self.t.data)!r}")
            await asyncio.sleep(0.001)

    async def responses(self, n, timeout=3.0):
        await self.until(lambda: len(parse_responses(bytes(self.t.data), partial=True)) >= n,
                         timeout)
        return parse_responses(self.t.take())


def parse_responses(data: bytes, partial=False):
    """Split raw bytes into [(status, {name: value}, body, raw_head)] (CL, chunked or to-close)."""
    out = []
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        head = data[:end].decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            k, v = line.split(":", 1)
            headers.setdefault(k.strip().lower(), v.strip())
        rest = data[end + 4:]
        if status == 100:
            out.append((100, headers, b"", head))
            data = rest
            continue
        if "content-length" in headers and not headers.get("x-head"):
            n = int(headers["content-length"])
            if len(rest) < n:
                break
            body, data = rest[:n], rest[n:]
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            ok = False
            while True:
                le = rest.find(b"\r\n")
                if le < 0:
                    break
                size = int(rest[:le], 16)
                if len(rest) < le + 2 + size + 2:
                    break
                body += rest[le + 2: le + 2 + size]
                rest = rest[le + 2 + size + 2:]
                if size == 0:
                    ok = True
                    break
            if not ok:
                break
            data = rest
        else:
            body, data = rest, b""
        out.append((status, headers, body, head))
    if not partial:
        assert not data, f"trailing bytes {data!r}"
    return out


async def hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def echo(scope, receive, send):
    chunks = []
    while True:
        msg = await receive()
        assert msg["type"] == "http.request"
        chunks.append(msg["body"])
        if not msg["more_body"]:
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"".join(chunks)})


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(params=["ring", "direct"])
def dispatch(request):
    old = set_direct_dispatch(request.param == "direct")
    yield request.param
    set_direct_dispatch(old)


# -- basics ----------------------------------------------------------------------


def test_get_response_and_headers(run, dispatch):
    async def body():
        c = Conn(hello)
        c.feed(GET)
        [(status, headers, data, _)] = await c.responses(1)
        assert status == 200 and data == b"Hello, world!"
        assert headers["content-length"] == "13"
        assert headers["server"] == "fasterapi"
        assert headers["date"].endswith("GMT")
        assert "connection" not in headers
        assert not c.t.closed
        assert c.state.total_requests == 1
    run(body)


def test_buffered_protocol_path(run):
    async def body():
        c = Conn(hello)
        c.feed_buffered(GET)
        [(status, _, data, _)] = await c.responses(1)
        assert (status, data) == (200, b"Hello, world!")
    run(body)


def test_scope_contents(run):
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)
        await hello(scope, receive, send)

    async def body():
        c = Conn(app, app_state={"db": 1}, root_path="/api")
        c.feed(b"GET /p%20q?a=1 HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n")
        await c.responses(1)
        assert seen["type"] == "http"
        assert seen["asgi"] == {"version": "3.0", "spec_version": "2.4"}
        assert seen["http_version"] == "1.1"
        assert seen["method"] == "GET"
        assert seen["scheme"] == "http"
        assert seen["path"] == "/api/p q"
        assert seen["raw_path"] == b"/api/p%20q"
        assert seen["root_path"] == "/api"
        assert seen["query_string"] == b"a=1"
        assert (b"x-a", b"b") in [tuple(h) for h in seen["headers"]]
        assert seen["server"] == ("127.0.0.1", 8000)
        assert seen["client"] == ("127.0.0.1", 8123)
        assert seen["state"] == {"db": 1}
    run(body)


def test_state_is_a_copy_per_request(run):
    states = []

    async def app(scope, receive, send):
        scope["state"]["n"] = len(states)
        states.append(scope["state"])
        await hello(scope, receive, send)

    async def body():
        app_state = {}
        c = Conn(app, app_state=app_state)
        c.feed(GET + GET)
        await c.responses(2)
        assert app_state == {} and states[0] is not states[1]
    run(body)


def test_post_body_and_chunked_request(run):
    async def body():
        c = Conn(echo)
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        [(s, _, data, _)] = await c.responses(1)
        assert (s, data) == (200, b"hello")
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n")
        await asyncio.sleep(0.01)
        c.feed(b"2\r\nde\r\n0\r\n\r\n")
        [(s, _, data, _)] = await c.responses(1)
        assert (s, data) == (200, b"abcde")
    run(body)


def test_body_arrives_in_pieces_with_more_body(run):
    msgs = []

    async def app(scope, receive, send):
        while True:
            m = await receive()
            msgs.append(m)
            if not m["more_body"]:
                break
        await hello(scope, receive, send)

    async def body():
        c = Conn(app)
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
        await c.until(lambda: msgs)
        c.feed(b"def")
        await c.responses(1)
        assert b"".join(m["body"] for m in msgs) == b"abcdef"
        assert msgs[0]["more_body"] is True and msgs[-1]["more_body"] is False
    run(body)


def test_chunked_response_and_head(run):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await send({"type": "http.response.body", "body": b"cd", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def body():
        c = Conn(app)
        c.feed(GET)
        [(s, h, data, _)] = await c.responses(1)
        assert h["transfer-encoding"] == "chunked" and data == b"abcd"
        c.feed(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        await c.until(lambda: b"\r\n\r\n" in c.t.data)
        await asyncio.sleep(0.01)
        raw = c.t.take()
        assert raw.endswith(b"\r\n\r\n") and b"transfer-encoding: chunked" in raw
        assert b"ab" not in raw.split(b"\r\n\r\n", 1)[1]
        assert not c.t.closed
    run(body)


def test_head_keeps_content_length_without_body(run):
    async def body():
        c = Conn(hello)
        c.feed(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        await c.until(lambda: b"\r\n\r\n" in c.t.data)
        await asyncio.sleep(0.01)
        raw = c.t.take()
        assert b"content-length: 13\r\n" in raw and raw.endswith(b"\r\n\r\n")
        c.feed(GET)  # connection still in sync
        [(s, _, data, _)] = await c.responses(1)
        assert data == b"Hello, world!"
    run(body)


@pytest.mark.parametrize("size", [4095, 4096, 100_000])
def test_large_one_shot_bodies_go_out_beside_the_head(run, size):
    # From 4 KiB a one-shot body is written as its own buffer next to the
    # head: the automatic and the app's content-length, HEAD (head only) and
    # pipelined responses must come out exactly as for small bodies.
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)

    async def app(scope, receive, send):
        headers = [(b"content-length", str(size).encode())] if scope["path"] == "/cl" else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def body():
        c = Conn(app)
        c.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /cl HTTP/1.1\r\nHost: x\r\n\r\n")
        responses = await c.responses(2)
        for status, headers, data, _ in responses:
            assert (status, headers["content-length"], data) == (200, str(size), payload)
        c.feed(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        await c.until(lambda: b"\r\n\r\n" in c.t.data)
        await asyncio.sleep(0.01)
        raw = c.t.take()
        assert raw.endswith(b"\r\n\r\n") and f"content-length: {size}\r\n".encode() in raw
        c.feed(GET)  # still in sync after the bodiless HEAD answer
        [(_, _, data, _)] = await c.responses(1)
        assert data == payload and not c.t.closed
    run(body)


def test_http10_streaming_is_close_delimited(run):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await send({"type": "http.response.body", "body": b"cd"})

    async def body():
        c = Conn(app)
        c.feed(b"GET / HTTP/1.0\r\n\r\n")
        await c.until(lambda: c.t.closed)
        raw = c.t.take()
        assert b"transfer-encoding" not in raw and raw.endswith(b"\r\n\r\nabcd")
        assert b"connection: close" in raw
    run(body)


# -- keep-alive ------------------------------------------------------------------


@pytest.mark.parametrize("request_bytes,closes,conn_header", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False, None),
    (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", True, "close"),
    (b"GET / HTTP/1.0\r\n\r\n", True, "close"),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", False, "keep-alive"),
])
def test_keep_alive_rules(run, request_bytes, closes, conn_header):
    async def body():
        c = Conn(hello)
        c.feed(request_bytes)
        [(s, h, _, _)] = await c.responses(1)
        await asyncio.sleep(0.01)
        assert c.t.closed is closes
        assert h.get("connection") == conn_header
    run(body)


def test_app_connection_close_closes(run):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"connection", b"close")]})
        await send({"type": "http.response.body", "body": b"x"})

    async def body():
        c = Conn(app)
        c.feed(GET)
        [(s, h, _, _)] = await c.responses(1)
        await c.until(lambda: c.t.closed)
        assert h["connection"] == "close"
    run(body)


# -- pipelining ------------------------------------------------------------------


def test_pipelined_requests_answered_in_order_in_one_write(run, dispatch):
    writes = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async def body():
        c = Conn(app)
        orig = c.t.write
        c.t.write = lambda d: (writes.append(bytes(d)), orig(d))
        c.feed(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(10)))
        rs = await c.responses(10)
        assert [r[2] for r in rs] == [b"/%d" % i for i in range(10)]
        assert len(writes) == 1   # gathered: the pipeline drained before writing
    run(body)


def test_pipelined_slow_first_request_keeps_order(run):
    async def app(scope, receive, send):
        if scope["path"] == "/slow":
            await asyncio.sleep(0.05)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async def body():
        c = Conn(app)
        c.feed(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        rs = await c.responses(2)
        assert [r[2] for r in rs] == [b"/slow", b"/fast"]
    run(body)


def test_held_response_is_written_when_next_app_blocks(run):
    release = None

    async def app(scope, receive, send):
        if scope["path"] == "/block":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async def body():
        nonlocal release
        release = asyncio.Event()
        c = Conn(app)
        c.feed(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        [(s, _, data, _)] = await c.responses(1)   # /a must not wait for /block
        assert data == b"/a"
        release.set()
        [(s, _, data, _)] = await c.responses(1)
        assert data == b"/block"
    run(body)


# -- 100-continue ----------------------------------------------------------------


def test_expect_continue_sent_on_first_receive(run):
    async def body():
        c = Conn(echo)
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        await c.until(lambda: c.t.data)
        assert c.t.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.feed(b"abc")
        [(s, _, data, _)] = await c.responses(1)
        assert (s, data) == (200, b"abc")
    run(body)


def test_expect_continue_not_sent_when_body_unread(run):
    async def body():
        c = Conn(hello)
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        [(s, _, _, _)] = await c.responses(1)
        assert s == 200
        await c.until(lambda: c.t.closed)   # body never announced: cannot stay in sync
    run(body)


# -- receive() / disconnect --------------------------------------------------------


def test_receive_after_response_gives_disconnect(run):
    got = []

    async def app(scope, receive, send):
        await receive()
        await hello(scope, receive, send)
        got.append(await receive())

    async def body():
        c = Conn(app)
        c.feed(GET)
        await c.responses(1)
        await c.until(lambda: got)
        assert got == [{"type": "http.disconnect"}]
    run(body)


def test_client_disconnect_wakes_receive_and_send_is_noop(run):
    got = []

    async def app(scope, receive, send):
        await receive()
        got.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})
        got.append("sent")

    async def body():
        c = Conn(app)
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        await asyncio.sleep(0.01)
        c.proto.connection_lost(None)
        await c.until(lambda: len(got) == 2)
        assert got[0] == {"type": "http.disconnect"}
        assert c.t.data == b""
        assert c.proto not in c.state.connections
    run(body)


# -- errors ------------------------------------------------------------------------


def test_app_exception_before_start_is_500_and_logged(run, caplog):
    async def app(scope, receive, send):
        raise ValueError("boom")

    async def body():
        c = Conn(app)
        c.feed(GET)
        [(s, h, data, _)] = await c.responses(1)
        assert s == 500 and data == b"Internal Server Error\n"
        await asyncio.sleep(0.01)
        assert not c.t.closed
        c.feed(GET)
        [(s, _, _, _)] = await c.responses(1)
        assert s == 500
    with caplog.at_level(logging.ERROR, "fasterapi.error"):
        run(body)
    assert "Exception in ASGI application" in caplog.text


def test_app_exception_after_response_keeps_connection(run, caplog):
    async def app(scope, receive, send):
        await hello(scope, receive, send)
        raise ValueError("after")

    async def body():
        c = Conn(app)
        c.feed(GET)
        [(s, _, _, _)] = await c.responses(1)
        await asyncio.sleep(0.01)
        assert s == 200 and not c.t.closed
        c.feed(GET)
        [(s, _, _, _)] = await c.responses(1)
        assert s == 200
    with caplog.at_level(logging.ERROR, "fasterapi.error"):
        run(body)
    assert "after" in caplog.text


def test_app_exception_mid_stream_closes(run):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("mid")

    async def body():
        c = Conn(app)
        c.feed(GET)
        await c.until(lambda: c.t.closed)
        assert b"part" in c.t.data and not c.t.data.endswith(b"0\r\n\r\n")
    run(body)


def test_app_returns_without_response_is_500(run, caplog):
    async def app(scope, receive, send):
        pass

    async def body():
        c = Conn(app)
        c.feed(GET)
        [(s, _, _, _)] = await c.responses(1)
        assert s == 500
    with caplog.at_level(logging.ERROR, "fasterapi.error"):
        run(body)
    assert "without starting response" in caplog.text


@pytest.mark.parametrize("messages,status", [
    ([{"type": "http.response.body", "body": b"x"}], 500),
    ([{"type": "http.response.start", "status": 200, "headers": []},
      {"type": "http.response.start", "status": 200, "headers": []}], 500),
    ([{"type": "http.bogus"}], 500),
])
def test_message_order_errors(run, caplog, messages, status):
    errors = []

    async def app(scope, receive, send):
        for m in messages:
            try:
                await send(m)
            except RuntimeError as exc:
                errors.append(exc)
                raise

    async def body():
        c = Conn(app)
        c.feed(GET)
        [(s, _, _, _)] = await c.responses(1)
        assert s == status
        assert len(errors) == 1
    with caplog.at_level(logging.ERROR, "fasterapi.error"):
        run(body)
    assert str(errors[0]) in caplog.text


def test_send_after_complete_raises(run):
    errors = []

    async def app(scope, receive, send):
        await hello(scope, receive, send)
        try:
            await send({"type": "http.response.body", "body": b"more"})
        except RuntimeError as exc:
            errors.append(exc)

    async def body():
        c = Conn(app)
        c.feed(GET)
        [(s, _, data, _)] = await c.responses(1)
        await c.until(lambda: errors)
        assert data == b"Hello, world!"
        assert "after response already completed" in str(errors[0])
    run(body)


def test_content_length_too_much_and_too_little(run):
    async def long_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"toolong"})

    async def short_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await send({"type": "http.response.body", "body": b"c"})

    async def body():
        c = Conn(long_app)
        c.feed(GET)
        await c.until(lambda: c.t.closed)
        assert b"toolong" not in c.t.data and c.t.data.startswith(b"HTTP/1.1 500")
        c = Conn(short_app)
        c.feed(GET)
        await c.until(lambda: c.t.closed)
        assert c.t.data.endswith(b"\r\n\r\nabc")
    run(body)


def test_invalid_response_header_is_refused(run):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-bad", b"a\r\nset-cookie: evil")]})
        await send({"type": "http.response.body", "body": b""})

    async def body():
        c = Conn(app)
        c.feed(GET)
        [(s, h, _, _)] = await c.responses(1)
        assert s == 500 and "set-cookie" not in h
    run(body)


@pytest.mark.parametrize("raw,status", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431),
    (b"GET / HTTP/2.0\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
])
def test_parser_errors_answer_precise_status_and_close(run, raw, status):
    async def body():
        c = Conn(hello)
        c.feed(raw)
        await c.until(lambda: c.t.closed)
        [(s, h, data, _)] = parse_responses(c.t.take())
        assert s == status and h["connection"] == "close" and data
    run(body)


def test_body_too_large_is_413(run):
    async def body():
        c = Conn(echo, max_body_size=4)
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789")
        await c.until(lambda: c.t.closed)
        [(s, h, _, _)] = parse_responses(c.t.take())
        assert s == 413
    run(body)


# -- flow control --------------------------------------------------------------------


def test_send_waits_while_writing_paused(run):
    progress = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        progress.append("start")
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        progress.append("a")
        await send({"type": "http.response.body", "body": b"b"})
        progress.append("b")

    async def body():
        c = Conn(app)
        c.proto.pause_writing()
        c.feed(GET)
        await asyncio.sleep(0.02)
        assert progress == []
        c.proto.resume_writing()
        [(s, _, data, _)] = await c.responses(1)
        assert data == b"ab" and progress == ["start", "a", "b"]
    run(body)


def test_reading_paused_while_body_unread(run):
    gate = None

    async def app(scope, receive, send):
        await gate.wait()
        await echo(scope, receive, send)

    async def body():
        nonlocal gate
        gate = asyncio.Event()
        c = Conn(app, read_buffer_limit=10)
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n" + b"x" * 20)
        await asyncio.sleep(0.01)
        assert c.t.reading is False
        gate.set()
        await c.until(lambda: c.t.reading)
        c.feed(b"y" * 10)
        [(s, _, data, _)] = await c.responses(1)
        assert data == b"x" * 20 + b"y" * 10
    run(body)


# -- limits, timeouts, shutdown ------------------------------------------------------------


def test_limit_concurrency_503(run):
    async def body():
        state = server_state()
        state.tasks.add(object())
        c = Conn(hello, state=state, limit_concurrency=1)
        c.feed(GET)
        await c.until(lambda: c.t.closed)
        [(s, _, _, _)] = parse_responses(c.t.take())
        assert s == 503
    run(body)


def test_keep_alive_timeout_closes_idle(run):
    async def body():
        c = Conn(hello, timeout_keep_alive=0.1)
        c.feed(GET)
        await c.responses(1)
        await c.until(lambda: c.t.closed, timeout=2)
    run(body)


def test_header_timeout_408_for_partial_head(run):
    async def body():
        c = Conn(hello, timeout_request_header=0.1)
        c.feed(b"GET / HTTP/1.1\r\nHo")
        await c.until(lambda: c.t.closed, timeout=2)
        [(s, _, _, _)] = parse_responses(c.t.take())
        assert s == 408
        c = Conn(hello, timeout_request_header=0.1)   # silent idle socket: just closed
        await c.until(lambda: c.t.closed, timeout=2)
        assert c.t.data == b""
    run(body)


def test_body_timeout_disconnects_app(run):
    got = []

    async def app(scope, receive, send):
        while True:
            m = await receive()
            got.append(m["type"])
            if m["type"] == "http.disconnect":
                return

    async def body():
        c = Conn(app, timeout_request_body=0.1)
        c.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        await c.until(lambda: c.t.closed, timeout=2)
        await c.until(lambda: "http.disconnect" in got)
        [(s, _, _, _)] = parse_responses(c.t.take())
        assert s == 408
    run(body)


def test_shutdown_idle_and_busy(run):
    release = None

    async def app(scope, receive, send):
        await release.wait()
        await hello(scope, receive, send)

    async def body():
        nonlocal release
        release = asyncio.Event()
        # Idle after a served request (keep-alive): closed at once.
        idle = Conn(hello)
        idle.feed(GET)
        await idle.responses(1)
        idle.proto.shutdown()
        assert idle.t.closed
        # Never sent a request yet: its first request may be on the wire, so
        # it is answered (with connection: close) rather than reset.
        fresh = Conn(hello)
        fresh.proto.shutdown()
        assert not fresh.t.closed
        fresh.feed(GET)
        [(s, h, _, _)] = await fresh.responses(1)
        assert s == 200 and h["connection"] == "close"
        await fresh.until(lambda: fresh.t.closed)
        # ...and one that sends nothing is closed after the short grace.
        silent = Conn(hello)
        silent.proto.shutdown()
        await silent.until(lambda: silent.t.closed, timeout=3)
        busy = Conn(app)
        busy.feed(GET)
        await asyncio.sleep(0.01)
        busy.proto.shutdown()
        assert not busy.t.closed
        release.set()
        [(s, h, _, _)] = await busy.responses(1)
        assert h["connection"] == "close"
        await busy.until(lambda: busy.t.closed)
    run(body)


def test_force_close_sends_disconnect(run):
    got = []

    async def app(scope, receive, send):
        await receive()
        got.append(await receive())

    async def body():
        c = Conn(app)
        c.feed(GET)
        await asyncio.sleep(0.01)
        c.proto.force_close()
        await c.until(lambda: got)
        assert got == [{"type": "http.disconnect"}] and c.t.closed
    run(body)


def test_tasks_and_connections_bookkeeping(run):
    async def body():
        c = Conn(hello)
        assert c.proto in c.state.connections
        c.feed(GET)
        await c.responses(1)
        await c.until(lambda: not c.state.tasks)
        c.t.close()
        await c.until(lambda: c.proto not in c.state.connections)
    run(body)


def test_each_request_runs_in_its_own_task_and_context(run, dispatch):
    # Whether the task starts eagerly (3.12+) or through the loop, the app
    # sees a task of its own, a contextvars copy that no other request
    # shares, and a finished task leaves server_state.tasks.
    var = contextvars.ContextVar("request_var", default=None)
    seen = []

    async def app(scope, receive, send):
        seen.append((asyncio.current_task(), var.get()))
        var.set(scope["path"])
        if scope["path"] == "/slow":
            await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def body():
        c = Conn(app)
        c.feed(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert [r[0] for r in await c.responses(3)] == [200, 200, 200]
        tasks = [t for t, _ in seen]
        assert None not in tasks and len(set(map(id, tasks))) == 3
        # Named after the client, on every Python and both dispatch paths.
        assert {t.get_name() for t in tasks} == {"request from 127.0.0.1:8123"}
        assert [v for _, v in seen] == [None, None, None]
        await c.until(lambda: not c.state.tasks)
    run(body)


def test_pipelined_upgrade_does_not_inherit_the_previous_requests_context(run):
    # The WebSocket side is built (and starts its task) from inside the
    # previous request's task when the upgrade was pipelined behind it.
    var = contextvars.ContextVar("upgrade_var", default=None)
    seen = []

    async def app(scope, receive, send):
        var.set("leaked")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def ws_factory(config, server_state, loop, transport, head, rest):
        seen.append(var.get())
        transport.close()

    async def body():
        c = Conn(app, ws_protocol_class=ws_factory)
        c.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        await c.until(lambda: seen)
        assert seen == [None]
    run(body)


def test_access_log_line(run, caplog):
    async def body():
        c = Conn(hello, access_log=True)
        c.feed(b"GET /x?y=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        await c.responses(1)
    with caplog.at_level(logging.INFO, "fasterapi.access"):
        run(body)
    assert '127.0.0.1:8123 - "GET /x?y=1 HTTP/1.1" 200' in caplog.text
