"""Black-box HTTP/1.1 tests: the real `fasterapi run` CLI over raw sockets and httpx.

The app is tests/apps/http_apps.py:app (a router over small raw ASGI apps).
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest

APP = "http_apps:app"


def connect(server, timeout=5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_closed(s: socket.socket, limit=5.0) -> bytes:
    """Everything the server sends until it closes (fails after `limit` seconds)."""
    data = b""
    s.settimeout(limit)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def read_responses(s: socket.socket, n: int) -> list[tuple[int, dict, bytes]]:
    """Read exactly n responses (content-length or chunked framing)."""
    buf = b""
    out = []

    def need(k):
        nonlocal buf
        while len(buf) < k:
            chunk = s.recv(65536)
            assert chunk, f"closed early after {out!r}, buffered {buf!r}"
            buf += chunk

    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            need(len(buf) + 1)
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip()
                   for k, v in (line.split(":", 1) for line in lines[1:])}
        if status == 100:
            out.append((100, headers, b""))
            continue
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in buf:
                    need(len(buf) + 1)
                size_line, buf = buf.split(b"\r\n", 1)
                size = int(size_line, 16)
                need(size + 2)
                body, buf = body + buf[:size], buf[size + 2:]
                if size == 0:
                    break
        else:
            size = int(headers.get("content-length", 0))
            need(size)
            body, buf = buf[:size], buf[size:]
        out.append((status, headers, body))
    return out


def test_pipelining_ten_deep_in_order(serve):
    server = serve(APP)
    with connect(server) as s:
        s.sendall(b"".join(b"GET /path/%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(10)))
        rs = read_responses(s, 10)
    assert [body for _, _, body in rs] == [b"/path/%d" % i for i in range(10)]


def test_keep_alive_reuse(serve):
    server = serve(APP)
    with connect(server) as s:
        for i in range(5):
            s.sendall(b"GET /path/%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
            [(status, headers, body)] = read_responses(s, 1)
            assert (status, body) == (200, b"/path/%d" % i)
            assert "connection" not in headers


def test_chunked_request_and_response(serve):
    server = serve(APP)
    with connect(server) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n")
        time.sleep(0.05)
        s.sendall(b"6\r\n world\r\n0\r\n\r\n")
        [(status, _, body)] = read_responses(s, 1)
        assert (status, body) == (200, b"hello world")
        s.sendall(b"GET /stream?n=4 HTTP/1.1\r\nHost: t\r\n\r\n")
        [(status, headers, body)] = read_responses(s, 1)
        assert headers["transfer-encoding"] == "chunked"
        assert body == b"".join(b"chunk-%d\n" % i for i in range(4))


def test_expect_100_continue(serve):
    server = serve(APP)
    with connect(server) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        [(status, _, _)] = read_responses(s, 1)
        assert status == 100
        s.sendall(b"data")
        [(status, _, body)] = read_responses(s, 1)
        assert (status, body) == (200, b"data")


@pytest.mark.parametrize("raw,status", [
    (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n", 400),
    (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Big: " + b"v" * 70000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/9.9\r\nHost: t\r\n\r\n", 505),
])
def test_malformed_request_precise_status_then_server_still_serves(serve, raw, status):
    server = serve(APP)
    with connect(server) as s:
        s.sendall(raw)
        data = read_until_closed(s)
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:200]
    assert b"connection: close" in head
    with connect(server) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        [(ok, _, body)] = read_responses(s, 1)
    assert (ok, body) == (200, b"Hello, world!")


def test_body_too_large_413(serve):
    server = serve(APP, "--max-body-size", "10")
    with connect(server) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"x" * 100)
        data = read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 413 ")


def test_keep_alive_timeout(serve):
    server = serve(APP, "--timeout-keep-alive", "0.3")
    with connect(server) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        read_responses(s, 1)
        t0 = time.monotonic()
        assert read_until_closed(s, limit=5) == b""
        assert time.monotonic() - t0 < 4


def test_request_header_timeout_slowloris(serve):
    server = serve(APP, "--timeout-request-header", "0.3")
    with connect(server) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        data = read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 408 ")


def test_request_body_timeout(serve):
    server = serve(APP, "--timeout-request-body", "0.3")
    with connect(server) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npartial")
        data = read_until_closed(s)
    assert data == b"" or data.startswith(b"HTTP/1.1 408 ")


def test_app_exception_is_500_and_logged(serve):
    server = serve(APP)
    r = httpx.get(server.url + "/crash")
    assert r.status_code == 500
    server.wait_for_log("Exception in ASGI application")


def test_httpx_get_post_stream(serve):
    server = serve(APP)
    with httpx.Client(base_url=server.url) as client:
        r = client.get("/")
        assert r.status_code == 200 and r.text == "Hello, world!"
        assert r.headers["server"] == "fasterapi"
        r = client.post("/echo?x=1", content=b"payload" * 1000)
        assert r.content == b"payload" * 1000
        assert r.headers["x-query"] == "x=1" and r.headers["x-method"] == "POST"
        with client.stream("GET", "/stream?n=50") as r:
            body = b"".join(r.iter_bytes())
        assert body == b"".join(b"chunk-%d\n" % i for i in range(50))
        r = client.head("/")
        assert r.headers["content-length"] == "13" and r.content == b""
    server.wait_for_log('"GET / HTTP/1.1" 200')


def test_large_streamed_upload(serve):
    server = serve(APP)

    def gen():
        for _ in range(64):
            yield b"z" * 65536

    r = httpx.post(server.url + "/echo", content=gen(), timeout=30)
    assert r.status_code == 200 and len(r.content) == 64 * 65536
