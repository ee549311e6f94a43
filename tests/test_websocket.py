"""WebSockets through the real `fasterapi run` CLI (tests/apps/ws_apps.py).

The `websockets` client checks the happy paths (it validates our handshake
and framing strictly); a raw socket does what a polite client never does:
broken handshakes, invalid UTF-8, ignoring pings, vanishing mid-connection.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


def url(server, path="/"):
    return f"ws://127.0.0.1:{server.port}{path}"


# -- raw-socket helpers (RFC 6455 §5.2 framing, client side) --

def raw_upgrade(port, path="/", *, key=None, version=b"13", method=b"GET", extra=b""):
    """Send an upgrade request; return (socket, response head bytes, buffered reader)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)) if key is None else key
    req = (method + b" " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\n")
    if key:
        req += b"Sec-WebSocket-Key: " + key + b"\r\n"
    if version:
        req += b"Sec-WebSocket-Version: " + version + b"\r\n"
    s.sendall(req + extra + b"\r\n")
    f = s.makefile("rb")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = f.readline()
        if not line:
            break
        head += line
    return s, head, f


def masked(opcode, payload, fin=True):
    mask = os.urandom(4)
    n = len(payload)
    b1 = (0x80 if fin else 0) | opcode
    if n < 126:
        hdr = struct.pack("!BB", b1, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b1, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", b1, 0x80 | 127, n)
    return hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(f):
    """(opcode, payload) of the next server frame, or None at EOF."""
    h = f.read(2)
    if len(h) < 2:
        return None
    n = h[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", f.read(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", f.read(8))[0]
    return h[0] & 0x0F, f.read(n)


def close_code(payload):
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def events(server):
    return httpx.get(server.url + "/events", timeout=5).json()


# -- happy paths --

async def test_text_binary_scope_and_headers(serve):
    server = serve("ws_apps:echo")
    async with connect(url(server, "/x/y?a=1"), subprotocols=["chat", "v2"]) as ws:
        assert ws.response.status_code == 101
        assert ws.response.headers["x-echo"] == "yes"
        assert ws.response.headers["server"] == "fasterapi"
        assert ws.subprotocol == "chat"
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xff")
        assert await ws.recv() == b"\x00\xff"
        await ws.send("scope")
        scope = json.loads(await ws.recv())
    assert scope == {
        "type": "websocket", "scheme": "ws", "path": "/x/y", "raw_path": "/x/y",
        "query_string": "a=1", "http_version": "1.1", "subprotocols": ["chat", "v2"],
        "extensions": {"websocket.http.response": {}}, "client": scope["client"],
    }
    assert scope["client"][0] == "127.0.0.1"
    assert '"WebSocket /x/y?a=1" [accepted]' in server.output()


@pytest.mark.parametrize("server_deflate", [True, False])
@pytest.mark.parametrize("client_deflate", ["deflate", None])
async def test_large_and_fragmented_with_and_without_compression(serve, server_deflate, client_deflate):
    args = () if server_deflate else ("--no-ws-per-message-deflate",)
    server = serve("ws_apps:echo", *args)
    async with connect(url(server), compression=client_deflate, max_size=None) as ws:
        ext = ws.response.headers.get("sec-websocket-extensions")
        if server_deflate and client_deflate:
            assert ext is not None and ext.startswith("permessage-deflate")
        else:
            assert ext is None
        big = os.urandom(1 << 20)
        await ws.send(big)
        assert await ws.recv() == big
        text = "abc" * 400_000
        await ws.send(text)
        assert await ws.recv() == text
        await ws.send(["frag", "men", "ted"])
        assert await ws.recv() == "fragmented"
        await ws.send([b"\x01", b"\x02"])
        assert await ws.recv() == b"\x01\x02"


def test_large_binary_is_compressed_when_deflate_is_negotiated(serve):
    # Large binary messages take a gathered-write path; with deflate on they
    # must still be compressed (RSV1 set, RFC 7692 §6).
    server = serve("ws_apps:echo")
    s, head, f = raw_upgrade(server.port, extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert b"permessage-deflate" in head.lower()
    payload = b"a" * 100_000
    s.sendall(masked(0x2, payload))
    h = f.read(2)
    assert h[0] & 0x40, "echo of a large binary message was not compressed"
    n = h[1] & 0x7F
    assert n != 127, "a 64-bit length: the echo was not compressed"
    n = struct.unpack("!H", f.read(2))[0] if n == 126 else n
    assert n < len(payload) // 10
    s.close()


async def test_client_ping_gets_pong(serve):
    server = serve("ws_apps:echo")
    async with connect(url(server)) as ws:
        pong = await ws.ping(b"payload")
        await asyncio.wait_for(pong, 5)


def test_server_pings_and_times_out_a_silent_client(serve):
    server = serve("ws_apps:echo", "--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.3")
    s, head, f = raw_upgrade(server.port)
    assert head.startswith(b"HTTP/1.1 101 ")
    op, payload = read_frame(f)
    assert op == 0x9 and len(payload) == 4          # our keepalive ping
    # Never answer: the server gives up with 1011 (as the websockets library).
    while True:
        frame = read_frame(f)
        assert frame is not None
        if frame[0] == 0x8:
            assert close_code(frame[1]) == 1011
            break
    s.close()


def test_server_ping_answered_keeps_connection(serve):
    server = serve("ws_apps:echo", "--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.3")
    s, head, f = raw_upgrade(server.port)
    for _ in range(3):
        op, payload = read_frame(f)
        assert op == 0x9
        s.sendall(masked(0xA, payload))
    s.sendall(masked(0x1, b"still here"))
    while True:
        op, payload = read_frame(f)
        if op == 0x1:
            assert payload == b"still here"
            break
        assert op == 0x9
        s.sendall(masked(0xA, payload))
    s.close()


# -- closing --

async def test_app_closes_with_code_and_reason(serve):
    server = serve("ws_apps:echo")
    async with connect(url(server)) as ws:
        await ws.send("close:4001:bye now")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4001
    assert ws.close_reason == "bye now"


async def test_client_close_code_reaches_app_and_send_after_raises(serve):
    server = serve("ws_apps:recorder")
    async with connect(url(server)) as ws:
        await ws.send("x")
        assert await ws.recv() == "x"
        await ws.close(4002, "cya")
    await asyncio.sleep(0.2)
    assert events(server) == [{"code": 4002, "reason": "cya"},
                              {"send_after_close": "ClientDisconnected"}]


def test_close_without_code_is_1005_and_echoed_empty(serve):
    server = serve("ws_apps:recorder")
    s, head, f = raw_upgrade(server.port)
    s.sendall(masked(0x8, b""))
    op, payload = read_frame(f)
    assert (op, payload) == (0x8, b"")
    assert f.read(1) == b""                      # the server closes TCP first (§7.1.1)
    s.close()
    assert events(server)[0] == {"code": 1005, "reason": ""}


def test_abrupt_disconnect_is_1006(serve):
    server = serve("ws_apps:recorder")
    s, head, f = raw_upgrade(server.port)
    assert head.startswith(b"HTTP/1.1 101 ")
    f.close()                                    # makefile() holds the fd open too
    s.close()
    for _ in range(50):
        got = events(server)
        if got:
            break
        time.sleep(0.05)
    assert got[0] == {"code": 1006, "reason": ""}


async def test_max_size_closes_1009(serve):
    server = serve("ws_apps:echo", "--ws-max-size", "1000")
    async with connect(url(server), compression=None) as ws:
        await ws.send(b"x" * 1000)
        assert len(await ws.recv()) == 1000
        await ws.send(b"x" * 1001)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1009


def test_invalid_utf8_closes_1007(serve):
    server = serve("ws_apps:recorder")
    s, head, f = raw_upgrade(server.port)
    s.sendall(masked(0x1, b"ok \xc3\x28"))
    op, payload = read_frame(f)
    assert op == 0x8 and close_code(payload) == 1007
    s.close()
    assert events(server)[0]["code"] == 1007


def test_unmasked_frame_closes_1002(serve):
    server = serve("ws_apps:echo")
    s, head, f = raw_upgrade(server.port)
    s.sendall(b"\x81\x02hi")                     # §5.1: clients must mask
    op, payload = read_frame(f)
    assert op == 0x8 and close_code(payload) == 1002
    s.close()


def test_frames_sent_with_the_handshake_are_kept(serve):
    # Bytes right after the request head (take_buffer) belong to the socket.
    server = serve("ws_apps:echo")
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
              + masked(0x1, b"early"))
    f = s.makefile("rb")
    while f.readline() != b"\r\n":
        pass
    assert read_frame(f) == (0x1, b"early")
    s.close()


# -- refusing --

@pytest.mark.parametrize(("path", "status"), [("/403", 403), ("/crash", 500), ("/send-first", 500)])
async def test_denied_before_accept(serve, path, status):
    server = serve("ws_apps:deny")
    with pytest.raises(InvalidStatus) as info:
        async with connect(url(server, path)):
            pass
    assert info.value.response.status_code == status


async def test_denial_response_extension(serve):
    server = serve("ws_apps:deny")
    with pytest.raises(InvalidStatus) as info:
        async with connect(url(server, "/teapot")):
            pass
    resp = info.value.response
    assert resp.status_code == 418
    assert resp.headers["x-why"] == "tea"
    assert resp.body == b"short and stout"


async def test_app_error_after_accept_closes_1011(serve):
    server = serve("ws_apps:deny")
    async with connect(url(server, "/crash-after")) as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1011
    assert "boom after accept" in server.output()


@pytest.mark.parametrize(("kwargs", "status"), [
    ({"key": b""}, 400),
    ({"key": base64.b64encode(b"short")}, 400),
    ({"key": b"not base64!!!!!!!!!!!!=="}, 400),
    ({"version": b"8"}, 426),
    ({"version": b""}, 426),
    ({"method": b"POST", "extra": b"Content-Length: 0\r\n"}, 400),
])
def test_bad_handshakes(serve, kwargs, status):
    server = serve("ws_apps:echo")
    s, head, f = raw_upgrade(server.port, **kwargs)
    assert head.startswith(b"HTTP/1.1 %d " % status), head
    if status == 426:
        assert b"sec-websocket-version: 13\r\n" in head
    assert b"connection: close\r\n" in head
    n = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
    f.read(n)
    assert f.read(1) == b""                      # closed
    s.close()


async def test_limit_concurrency_refuses_upgrade_with_503(serve):
    server = serve("ws_apps:echo", "--limit-concurrency", "1")

    async def first():
        # The readiness probe's connection (or the last refused one) may not
        # have been dropped yet and still counts against the limit: retry.
        for _ in range(50):
            try:
                return await connect(url(server, "/first"))
            except InvalidStatus as exc:
                assert exc.response.status_code == 503
                await asyncio.sleep(0.05)
        raise AssertionError("no WebSocket was accepted under --limit-concurrency 1")

    ws = await first()
    try:
        await ws.send("held")
        assert await ws.recv() == "held"
        s, head, f = await asyncio.to_thread(raw_upgrade, server.port, "/second")
        assert head.startswith(b"HTTP/1.1 503 "), head
        assert b"connection: close\r\n" in head
        n = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        assert f.read(n) == b"Service Unavailable\n"
        assert f.read(1) == b""                  # closed, and the app never ran
        s.close()
        await ws.send("still")                    # the held one is unaffected
        assert await ws.recv() == "still"
    finally:
        await ws.close()
    out = server.output()
    assert "Exceeded concurrency limit." in out
    assert '"WebSocket /second" 503' in out
    assert '"WebSocket /second" [accepted]' not in out


def test_ws_none_serves_http(serve):
    server = serve("ws_apps:echo", "--ws", "none")
    s, head, f = raw_upgrade(server.port, "/plain")
    assert head.startswith(b"HTTP/1.1 200 ")
    n = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert json.loads(f.read(n)) == {"type": "http", "path": "/plain"}
    s.close()
    assert "Unsupported upgrade request." in server.output()


async def test_uvicorn_ws_names_are_aliases(serve):
    server = serve("ws_apps:echo", "--ws", "websockets")
    async with connect(url(server)) as ws:
        await ws.send("hi")
        assert await ws.recv() == "hi"
    assert "one WebSocket implementation" in server.output()


async def test_slow_app_is_bounded_by_max_queue(serve):
    # The app never reads: with --ws-max-queue 2 the server stops reading, so
    # the client's writes back up instead of the server's memory growing.
    server = serve("ws_apps:server_push", "--ws-max-queue", "2")
    async with connect(url(server, "/?n=1"), compression=None, write_limit=0) as ws:
        assert await ws.recv() == b"x" * 16
        for _ in range(5):
            await ws.send("m")
        await ws.ping()                           # still alive


async def test_many_server_messages_in_order(serve):
    server = serve("ws_apps:server_push")
    async with connect(url(server, "/?n=200&size=65536"), max_size=None) as ws:
        for _ in range(200):
            assert await ws.recv() == b"x" * 65536


# -- frameworks --

async def test_fastapi_websocket(serve):
    server = serve("ws_apps:fastapi_app")
    async with connect(url(server, "/ws/ann")) as ws:
        await ws.send("hi")
        assert json.loads(await ws.recv()) == {"name": "ann", "text": "hi"}


async def test_starlette_websocket(serve):
    server = serve("ws_apps:starlette_app")
    async with connect(url(server, "/ws"), subprotocols=["chat"]) as ws:
        assert ws.subprotocol == "chat"
        await ws.send(b"abc")
        assert await ws.recv() == b"cba"
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert (ws.close_code, ws.close_reason) == (4000, "bye")


# -- shutdown --

async def test_sigterm_closes_open_websocket_with_1012(serve):
    server = serve("ws_apps:echo")
    async with connect(url(server)) as ws:
        await ws.send("hi")
        assert await ws.recv() == "hi"
        server.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 1012
    await asyncio.to_thread(server.proc.wait, 10)
    assert server.proc.returncode == 0


# -- pieces --

def test_accept_key_rfc_example():
    from fasterapi.websocket import accept_key

    # RFC 6455 §1.3's worked example.
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_config_ws_options():
    from fasterapi.config import Config

    cfg = Config("x:y", ws="wsproto", ws_ping_interval=0, ws_ping_timeout=None, log_config=None)
    assert (cfg.ws, cfg.ws_ping_interval, cfg.ws_ping_timeout) == ("wsproto", None, None)
    with pytest.raises(ValueError):
        Config("x:y", ws="tornado", log_config=None)
    with pytest.raises(ValueError):
        Config("x:y", ws_max_size=0, log_config=None)


async def test_plain_asyncio_loop(serve):
    # set_protocol() from the BufferedProtocol to ours on the stdlib loop too.
    server = serve("ws_apps:echo", "--loop", "asyncio")
    async with connect(url(server)) as ws:
        big = os.urandom(300_000)
        await ws.send(big)
        assert await ws.recv() == big
        await ws.send("close:4003:done")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4003
