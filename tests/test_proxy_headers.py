"""Proxy headers: unit tests of fasterapi.proxy, then the real CLI from trusted and untrusted peers."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from fasterapi.proxy import ProxyTrust, parse_forwarded


def _scope(*headers: tuple[bytes, bytes], type_: str = "http") -> dict:
    return {"type": type_, "client": ("127.0.0.1", 5000), "scheme": "http", "headers": list(headers)}


def test_parse_forwarded_quoted_and_ipv6():
    value = 'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711";host="a\\"b"'
    assert parse_forwarded(value) == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"},
        {"for": "[2001:db8:cafe::17]:4711", "host": 'a"b'},
    ]
    assert parse_forwarded("for=1.2.3.4;;,  ,for=unknown") == [{"for": "1.2.3.4"}, {"for": "unknown"}]
    assert parse_forwarded("for=1.2.3.4 junk") is None
    assert parse_forwarded('for="unterminated') is None


@pytest.mark.parametrize(("allow", "host", "trusted"), [
    ("127.0.0.1", "127.0.0.1", True),
    ("127.0.0.1", "127.0.0.2", False),
    ("10.0.0.0/8, 192.168.1.1", "10.20.30.40", True),
    ("10.0.0.0/8, 192.168.1.1", "11.0.0.1", False),
    ("*", "203.0.113.9", True),
    ("::1", "::1", True),
    ("2001:db8::/32", "2001:db8::5", True),
    ("127.0.0.1", "::ffff:127.0.0.1", True),
    ("proxy.internal", "proxy.internal", True),
    ("127.0.0.1", "not-an-ip", False),
])
def test_trust(allow, host, trusted):
    assert ProxyTrust(allow).trusts(host) is trusted


def test_unix_peers():
    assert ProxyTrust("unix:").for_peer(None, "/run/app.sock") is not None
    assert ProxyTrust("/run/app.sock").for_peer(None, "/run/app.sock") is not None
    assert ProxyTrust("unix:/run/app.sock").for_peer(None, "/run/app.sock") is not None
    assert ProxyTrust("127.0.0.1").for_peer(None, "/run/app.sock") is None
    with pytest.raises(ValueError):
        ProxyTrust(" , ")


def test_x_forwarded_for_rightmost_untrusted():
    trust = ProxyTrust("127.0.0.1, 10.0.0.0/8")
    scope = _scope((b"x-forwarded-for", b"198.51.100.7, 203.0.113.5, 10.1.1.1"),
                   (b"x-forwarded-proto", b"https"))
    trust.rewrite(scope)
    # 198.51.100.7 is what the client claimed; 203.0.113.5 is where our proxies saw it come from.
    assert scope["client"] == ("203.0.113.5", 0)
    assert scope["scheme"] == "https"


def test_x_forwarded_for_all_trusted_takes_leftmost():
    scope = _scope((b"x-forwarded-for", b"10.0.0.3, 10.0.0.2"))
    ProxyTrust("10.0.0.0/8").rewrite(scope)
    assert scope["client"] == ("10.0.0.3", 0)


def test_proto_values():
    trust = ProxyTrust("*")
    for proto, http, ws in [("https", "https", "wss"), ("WSS", "https", "wss"), ("ws", "http", "ws"),
                            ("gopher", "http", "ws")]:
        scope = _scope((b"x-forwarded-proto", proto.encode()))
        trust.rewrite(scope)
        assert scope["scheme"] == http
        scope = _scope((b"x-forwarded-proto", proto.encode()), type_="websocket")
        scope["scheme"] = "ws"
        trust.rewrite(scope)
        assert scope["scheme"] == ws


def test_forwarded_wins_and_keeps_port():
    scope = _scope((b"x-forwarded-for", b"198.51.100.1"),
                   (b"forwarded", b'for="[2001:db8::17]:4711";proto=https'))
    ProxyTrust("127.0.0.1").rewrite(scope)
    assert scope["client"] == ("2001:db8::17", 4711)
    assert scope["scheme"] == "https"


def test_forwarded_chain_and_malformed():
    trust = ProxyTrust("10.0.0.1")
    scope = _scope((b"forwarded", b"for=198.51.100.1;proto=http, for=192.0.2.9;proto=https, for=10.0.0.1"))
    trust.rewrite(scope)
    assert scope["client"] == ("192.0.2.9", 0)
    assert scope["scheme"] == "https"
    scope = _scope((b"forwarded", b"for=1.2.3.4 garbage"))
    trust.rewrite(scope)
    assert scope["client"] == ("127.0.0.1", 5000)


def test_no_headers_leaves_scope_alone():
    scope = _scope((b"host", b"example.com"), (b"x-forwarded-host", b"evil.example"))
    ProxyTrust("*").rewrite(scope)
    assert scope == _scope((b"host", b"example.com"), (b"x-forwarded-host", b"evil.example"))


# -- the real CLI ---------------------------------------------------------------

def _get(port: int, headers: dict[str, str], source: str = "127.0.0.1") -> dict:
    """One request over a raw socket bound to `source` (any 127/8 address is loopback)."""
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"GET / HTTP/1.1\r\nhost: x\r\n{lines}connection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(body)


XFF = {"x-forwarded-for": "203.0.113.7, 198.51.100.2", "x-forwarded-proto": "https"}


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_cli_trusted_peer(serve, loop):
    # --proxy-headers is the default, trusting 127.0.0.1.
    proc = serve("ops_scope:app", "--loop", loop)
    body = _get(proc.port, XFF)
    assert body["client"] == ["198.51.100.2", 0]
    assert body["scheme"] == "https"
    plain = _get(proc.port, {})
    assert plain["client"][0] == "127.0.0.1"
    assert plain["scheme"] == "http"


def test_cli_untrusted_peer(serve):
    proc = serve("ops_scope:app", "--forwarded-allow-ips", "127.0.0.1")
    body = _get(proc.port, XFF, source="127.0.0.2")
    assert body["client"][0] == "127.0.0.2"
    assert body["scheme"] == "http"


def test_cli_cidr_and_star(serve):
    cidr = serve("ops_scope:app", "--forwarded-allow-ips", "10.0.0.1,127.0.0.0/30")
    assert _get(cidr.port, XFF, source="127.0.0.2")["client"] == ["198.51.100.2", 0]
    # 127.0.0.0/30 trusts 127.0.0.1-3, so the chain walks past a trusted hop.
    chain = {"x-forwarded-for": "198.51.100.2, 127.0.0.3"}
    assert _get(cidr.port, chain, source="127.0.0.2")["client"] == ["198.51.100.2", 0]
    star = serve("ops_scope:app", env={"FORWARDED_ALLOW_IPS": "*"})
    # "*" trusts every hop too, so the leftmost (the original client) is taken.
    assert _get(star.port, XFF, source="127.0.0.5")["client"] == ["203.0.113.7", 0]


def test_cli_forwarded_ipv6(serve):
    proc = serve("ops_scope:app")
    body = _get(proc.port, {"forwarded": 'for="[2001:db8::1]:4711";proto=https;host=example.com'})
    assert body["client"] == ["2001:db8::1", 4711]
    assert body["scheme"] == "https"
    assert ["forwarded", 'for="[2001:db8::1]:4711";proto=https;host=example.com'] in body["headers"]


def test_cli_no_proxy_headers(serve):
    proc = serve("ops_scope:app", "--no-proxy-headers")
    body = _get(proc.port, XFF)
    assert body["client"][0] == "127.0.0.1"
    assert body["scheme"] == "http"


def _uds_get(path, headers: dict[str, str]) -> dict:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
        return client.get("http://app/", headers=headers).json()


def _wait_for_socket(proc, path) -> None:
    deadline = time.monotonic() + 15
    while not path.exists():
        assert proc.proc.poll() is None, proc.output()
        assert time.monotonic() < deadline, proc.output()
        time.sleep(0.05)


@pytest.mark.parametrize("allow", ["unix:", "{path}"])
def test_cli_unix_socket_peer(serve, tmp_path, allow):
    path = tmp_path / "app.sock"
    proc = serve("ops_scope:app", "--uds", str(path),
                 "--forwarded-allow-ips", allow.format(path=path), ready=False)
    _wait_for_socket(proc, path)
    body = _uds_get(path, XFF)
    assert body["client"] == ["198.51.100.2", 0]
    assert body["scheme"] == "https"


def test_cli_unix_socket_peer_untrusted(serve, tmp_path):
    path = tmp_path / "app.sock"
    proc = serve("ops_scope:app", "--uds", str(path), ready=False)   # default: 127.0.0.1 only
    _wait_for_socket(proc, path)
    body = _uds_get(path, XFF)
    assert body["client"] is None
    assert body["scheme"] == "http"


def test_cli_websocket_through_proxy(serve):
    from websockets.sync.client import connect

    proc = serve("ops_scope:app")
    with connect(f"ws://127.0.0.1:{proc.port}/", additional_headers=XFF) as ws:
        body = json.loads(ws.recv(timeout=5))
    assert body["client"] == ["198.51.100.2", 0]
    assert body["scheme"] == "wss"


def test_long_values_are_not_memoized():
    trust = ProxyTrust("127.0.0.1")
    junk = b",".join(b"junk%d" % i for i in range(2000))
    scope = _scope((b"x-forwarded-for", junk + b", 203.0.113.7, 127.0.0.1"))
    trust.rewrite(scope)
    assert scope["client"] == ("203.0.113.7", 0)
    assert trust._resolve.cache_info().currsize == 0
    assert trust.trusts.cache_info().currsize == 2   # the two hops walked, not the junk
