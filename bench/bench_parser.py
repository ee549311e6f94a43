"""Micro-benchmark of the request parser: fasterapi._http against httptools and h11.

Two requests, each parsed many times on one keep-alive connection:

- a browser-like GET (Chrome's eleven header lines, ~600 bytes), and
- a small JSON POST with Content-Length.

Each parser does the work a server needs to hand an ASGI app its scope:

- fasterapi: ``feed`` + ``next_event`` until END (the scope dict is built).
- httptools (llhttp): callbacks collect the URL, lowercased headers and body,
  then ``parse_url`` and a scope dict as uvicorn's httptools_impl builds it.
- h11: a fresh ``h11.Connection`` per request (its server side must answer
  before it reads the next request), events until EndOfMessage.

Numbers are medians of repeats from ``time.perf_counter_ns``, in nanoseconds
per request.  The machine is shared and noisy: read ratios, not absolutes.
``run()`` is imported by bench/primitives.py; run this file for this section
alone:

    python bench/bench_parser.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import unquote

try:
    import fasterapi  # noqa: F401
except ImportError:  # run from a checkout: use the in-place build
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import main, per_op_or_skip, row

from fasterapi._http import END, RequestParser

SECTION = "parser"

SCOPE_BASE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "scheme": "http",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 50000),
    "root_path": "",
}

BROWSER_GET = (
    b"GET /static/app.js?v=3 HTTP/1.1\r\n"
    b"Host: localhost:8000\r\n"
    b"Connection: keep-alive\r\n"
    b'sec-ch-ua: "Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"\r\n'
    b"sec-ch-ua-mobile: ?0\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/124.0.0.0 Safari/537.36\r\n"
    b'sec-ch-ua-platform: "Linux"\r\n'
    b"Accept: */*\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"Sec-Fetch-Mode: no-cors\r\n"
    b"Referer: http://localhost:8000/\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\n"
    b"\r\n"
)

POST_BODY = b'{"name": "widget", "qty": 3}'
SMALL_POST = (
    b"POST /api/items HTTP/1.1\r\n"
    b"Host: localhost:8000\r\n"
    b"User-Agent: python-httpx/0.27.0\r\n"
    b"Accept: */*\r\n"
    b"Accept-Encoding: gzip, deflate\r\n"
    b"Connection: keep-alive\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n" % len(POST_BODY)
) + POST_BODY


def _row(name: str, value: float, note: str = "") -> dict:
    return row(SECTION, name, value, "ns/request", note)


# ---- the three parsers, one request per call ------------------------------------


def _ours(raw: bytes, n: int):
    parser = RequestParser(dict(SCOPE_BASE))
    feed = parser.feed
    next_event = parser.next_event

    def loop():
        for _ in range(n):
            feed(raw)
            while True:
                ev = next_event()
                if ev is END:
                    break
    return loop


class _HttptoolsCollector:
    """What uvicorn's httptools protocol keeps per request, minus the I/O."""

    __slots__ = ("url", "headers", "body", "done")

    def __init__(self):
        self.url = b""
        self.headers = []
        self.body = []
        self.done = False

    def on_message_begin(self):
        self.url = b""
        self.headers = []
        self.body = []

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        self.headers.append((name.lower(), value))

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        self.done = True


def _httptools(raw: bytes, n: int):
    import httptools

    proto = _HttptoolsCollector()
    parser = httptools.HttpRequestParser(proto)
    parse_url = httptools.parse_url

    def loop():
        for _ in range(n):
            parser.feed_data(raw)
            parsed = parse_url(proto.url)
            raw_path = parsed.path
            path = raw_path.decode("ascii")
            if "%" in path:
                path = unquote(path)
            scope = dict(SCOPE_BASE)
            scope.update(method=parser.get_method().decode("ascii"),
                         http_version=parser.get_http_version(), path=path, raw_path=raw_path,
                         query_string=parsed.query or b"", headers=proto.headers)
    return loop


def _h11(raw: bytes, n: int):
    import h11

    def loop():
        for _ in range(n):
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(raw)
            while True:
                ev = conn.next_event()
                if type(ev) is h11.EndOfMessage:
                    break
    return loop


def run(quick: bool = False) -> list[dict]:
    """Rows ``{"section": "parser", "name", "value", "unit": "ns/request", "note"}``.

    `quick` cuts the request count and repeats about tenfold, for a smoke run.
    """
    n = 2_000 if quick else 20_000
    repeats = 3 if quick else 7
    rows = []
    for label, raw in (("browser GET", BROWSER_GET), ("small POST", SMALL_POST)):
        size = f"{len(raw)} bytes"
        for who, make, note in (
            ("fasterapi", _ours, size + ", scope built"),
            ("httptools", _httptools, "callbacks + parse_url + scope, as uvicorn"),
            ("h11", _h11, "fresh Connection per request"),
        ):
            value, skipped = per_op_or_skip(make, (raw, n), n, repeats)
            rows.append(_row(f"{label}: {who}", value, skipped or note))
    return rows


if __name__ == "__main__":
    raise SystemExit(main(__doc__, run, "fewer requests and repeats"))
