"""Graceful shutdown never resets a request the client had every right to send,
and the access log names the client the app saw."""

from __future__ import annotations

import signal
import socket
import time


def _read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def test_connection_opened_before_sigterm_gets_its_first_request_served(serve):
    server = serve("http_apps:hello")
    sock = socket.create_connection(("127.0.0.1", server.port))
    time.sleep(0.2)                         # accepted, but no request yet
    server.proc.send_signal(signal.SIGTERM)
    server.wait_for_log("Shutting down")
    # The request arrives after shutdown began: RFC 9112 §9.6 lets the
    # server close, but only after answering what it accepted to read.
    sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    reply = _read_all(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 200 "), reply
    assert b"connection: close" in reply.lower()
    assert reply.endswith(b"Hello, world!")
    assert server.stop() == 0


def test_fresh_idle_connection_does_not_hold_shutdown_long(serve):
    server = serve("http_apps:hello")
    sock = socket.create_connection(("127.0.0.1", server.port))
    time.sleep(0.2)
    start = time.monotonic()
    assert server.stop() == 0
    # Bounded by the first-request grace (1 s) plus a tick, not the 10 s
    # header timeout.
    assert time.monotonic() - start < 5
    assert _read_all(sock) == b""
    sock.close()


def test_access_log_names_the_client_after_proxy_headers(serve):
    server = serve("http_apps:hello", "--access-log", "--proxy-headers",
                   "--forwarded-allow-ips", "127.0.0.1")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /p HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.7\r\n"
                     b"Connection: close\r\n\r\n")
        assert _read_all(sock).startswith(b"HTTP/1.1 200 ")
    out = server.wait_for_log('"GET /p HTTP/1.1" 200')
    line = next(ln for ln in out.splitlines() if '"GET /p HTTP/1.1"' in ln)
    assert "203.0.113.7:0" in line or "203.0.113.7" in line, line
    assert "127.0.0.1" not in line, line


def test_sse_stream_gets_disconnect_at_the_graceful_timeout(serve):
    # A stream never ends by itself: at the end of --timeout-graceful-shutdown
    # the app is told http.disconnect (so it can clean up) and the server exits 0.
    server = serve("sse_apps:events", "--timeout-graceful-shutdown", "1")
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: a\r\n\r\n")
    sock.settimeout(5)
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200 ") and b"text/event-stream" in first
    start = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    rest = _read_all(sock, timeout=10)       # the server closes the stream
    sock.close()
    assert b"data: " in first + rest
    assert server.proc.wait(15) == 0
    out = server.output()
    assert "SSE-DISCONNECTED" in out, out
    assert "Graceful shutdown timed out after 1" in out, out
    assert time.monotonic() - start < 8


def test_scope_asgi_dict_is_not_shared_between_requests(serve):
    # Strictly a scope-isolation test; it lives with the other black-box
    # lifecycle tests for want of a better home.
    server = serve("scope_apps:mutate_asgi")
    replies = []
    for _ in range(3):      # a new connection each time, and ...
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            replies.append(_read_all(sock))
    with socket.create_connection(("127.0.0.1", server.port)) as sock:   # ... keep-alive
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 2
                     + b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        replies.append(_read_all(sock))
    for reply in replies:
        assert b"scribbled" not in reply, reply
        assert b"('spec_version', '2.4'), ('version', '3.0')" in reply, reply
