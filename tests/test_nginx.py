"""A real nginx in front of `fasterapi run`: the docs/deployment.md proxy settings, end to end."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import httpx
import pytest

from tests.conftest import free_port

# Debian installs it in /usr/sbin, which a non-root PATH may lack.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx binary not installed (apt-get install nginx)")

# The location block is the one docs/deployment.md recommends.
CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    upstream fasterapi {{
        server 127.0.0.1:{app_port};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://fasterapi;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }}
    }}
}}
"""


@pytest.fixture
def nginx(tmp_path):
    """Factory: nginx(app_port) -> the port nginx listens on; stopped at the end."""
    procs = []

    def start(app_port: int) -> int:
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(CONF.format(tmp=tmp_path, app_port=app_port, port=port))
        log = open(tmp_path / "nginx.out", "wb")
        proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                                 "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        procs.append((proc, log))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "error.log").read_text(errors="replace"))
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                return port
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("nginx did not start")

    yield start
    for proc, log in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_nginx_proxy_headers(serve, nginx):
    app = serve("ops_scope:app", "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1")
    port = nginx(app.port)
    # The browser is 127.0.0.2 (any 127/8 address is loopback); nginx reaches us from 127.0.0.1.
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport, base_url=f"http://127.0.0.1:{port}") as client:
        bodies = [client.get("/", headers={"host": "shop.example"}).json() for _ in range(3)]
        # A client forging the header gets its claim kept in the header, not in scope["client"].
        forged = client.get("/", headers={"x-forwarded-for": "198.51.100.9"}).json()
    for body in bodies:
        assert body["client"] == ["127.0.0.2", 0]
        assert body["scheme"] == "http"
        headers = dict(body["headers"])
        assert headers["host"] == "shop.example"
        assert headers["x-forwarded-for"] == "127.0.0.2"
    assert forged["client"] == ["127.0.0.2", 0]
    assert dict(forged["headers"])["x-forwarded-for"] == "198.51.100.9, 127.0.0.2"


def test_nginx_untrusted_without_allow_list(serve, nginx):
    app = serve("ops_scope:app", "--forwarded-allow-ips", "10.0.0.1")
    port = nginx(app.port)
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as client:
        body = client.get(f"http://127.0.0.1:{port}/").json()
    assert body["client"][0] == "127.0.0.1"   # nginx itself: it is not trusted


def test_nginx_websocket_upgrade(serve, nginx):
    from websockets.sync.client import connect

    app = serve("ops_scope:app")
    port = nginx(app.port)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0))
    with connect(f"ws://127.0.0.1:{port}/", sock=sock) as ws:
        body = json.loads(ws.recv(timeout=5))
    assert body["client"] == ["127.0.0.2", 0]
    assert body["scheme"] == "ws"
