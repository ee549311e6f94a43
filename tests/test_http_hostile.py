"""Every malformed request of the parser's catalogue, sent to the real server.

test_parser_strict.py proves the parser's verdicts byte by byte; this file
proves they reach the wire: each bad request, with a valid request pipelined
behind it, gets exactly one response with the precise status and
``connection: close``, the server closes the socket (so the follower can never
be read as a request: no smuggling), and the next good request on a fresh
connection is served.  One server takes the whole catalogue, so a crash or a
leaked state anywhere along the way fails every row after it.
"""

from __future__ import annotations

import socket
import time

import pytest
from test_parser_strict import CASES, FOLLOWER

from fasterapi._response import status_line
from tests.conftest import APPS, ROOT, ServerProcess, free_port

# Rows that need other parser limits than the CLI defaults are covered at the
# parser level; here the server runs with its defaults.  The server bounds
# trailers by --max-header-bytes (64 KiB), not the parser's 8 KiB default, so
# the 9 KB trailer row is a valid request on the wire.
LIMIT_DEPENDENT = {"trailer section too large"}
WIRE_CASES = [c for c in CASES if len(c) == 3 and c[0] not in LIMIT_DEPENDENT]
GOOD = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"


def exchange(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send `raw`, read until the server closes; fail if it never does."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass        # the server may close before the pipelined follower is sent
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                return b"".join(chunks)
            chunks.append(data)
    raise AssertionError(f"server kept the connection open; got {b''.join(chunks)[:200]!r}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("hostile") / "server.log"
    proc = ServerProcess(
        ["run", "http_apps:echo", "--host", "127.0.0.1", "--port", str(port),
         "--app-dir", str(APPS)],
        None, ROOT, log, port,
    )
    proc.wait_ready()
    yield proc
    assert proc.stop() == 0, proc.output()


@pytest.mark.parametrize("case", WIRE_CASES, ids=lambda c: c[0])
def test_bad_request_gets_its_status_and_a_close(server, case):
    name, raw, status = case
    reply = exchange(server.port, raw + FOLLOWER)
    head = reply.split(b"\r\n\r\n", 1)[0].lower()
    # The same RFC 9110 status line an app's response would carry.
    assert reply.startswith(status_line(status)), (name, reply[:200])
    assert b"\r\nconnection: close" in head, (name, head)
    # One response only: the pipelined follower was never answered.
    assert reply.count(b"HTTP/1.1 ") == 1, (name, reply)
    # The server is unharmed: a good request on a new connection is served.
    ok = exchange(server.port, GOOD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert ok.startswith(b"HTTP/1.1 200 "), (name, ok[:200])


def test_each_refusal_is_logged(server):
    # Run last in this module (pytest keeps file order): the log names the problem.
    out = server.output()
    assert "Invalid HTTP request received" in out, out[-2000:]
    assert server.proc.poll() is None
