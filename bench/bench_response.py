"""Micro-benchmarks of ResponseBuilder and JsonBuilder against Python formatting.

Two questions:

1. What does a typical small response cost to format?  ``200 OK``, three
   headers (an ASGI list of byte pairs), a 13-byte body: ResponseBuilder
   reused with ``reset()`` and its view released (what the server does),
   beside the ways a Python server formats the same bytes: an f-string, a
   ``b"".join`` of the parts, and that join with uvicorn-style regex checks
   of every header (which is what ResponseBuilder's checks correspond to).
2. What does a small JSON response cost?  JsonBuilder writing into the
   ResponseBuilder's body, beside ``json.dumps`` / ``orjson.dumps`` followed
   by the same join formatting, and ``orjson.dumps`` fed to ``body()``.

Every row is a whole response, from nothing to bytes the transport could
take, in one Python ``for`` loop; the "loop overhead" row is that loop
around a trivial call, a floor under every number.  Medians of several
repeats of ``time.perf_counter_ns``; the machine is shared, so read ratios.
``run()`` is imported by bench/primitives.py; for this section alone:

    python bench/bench_response.py [--quick]
"""

from __future__ import annotations

import json
import re
import sys
from functools import partial
from pathlib import Path

try:
    import fasterapi  # noqa: F401
except ImportError:  # run from a checkout: use the in-place build
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
from _common import main, median_ns, row

from fasterapi._response import JsonBuilder, ResponseBuilder

SECTION = "response"

BODY = b"Hello, world!"
HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"server", b"fasterapi"),
    (b"date", b"Mon, 01 Jan 2024 00:00:00 GMT"),
]
JSON_HEADERS = [
    (b"content-type", b"application/json"),
    (b"server", b"fasterapi"),
    (b"date", b"Mon, 01 Jan 2024 00:00:00 GMT"),
]
JSON_DOC = {"message": "Hello, world!", "id": 1, "ok": True}  # = bench/apps.py JSON_BODY

# The checks a careful Python server runs per header (uvicorn's are of this
# shape): a name must be a token, a value free of CR/LF/NUL and other CTLs.
_TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS_200 = b"HTTP/1.1 200 OK\r\n"


def _join(status_line: bytes, headers, body: bytes) -> bytes:
    parts = [status_line]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts += (b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body)
    return b"".join(parts)


def _join_checked(status_line: bytes, headers, body: bytes) -> bytes:
    parts = [status_line]
    for name, value in headers:
        if _TOKEN_RE.fullmatch(name) is None or _BAD_VALUE_RE.search(value):
            raise ValueError("invalid header")
        parts += (name, b": ", value, b"\r\n")
    parts += (b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body)
    return b"".join(parts)


def _cases() -> list[tuple[str, object, str]]:
    """(name, loop function taking n, note) for every row."""
    rb = ResponseBuilder()
    jb = JsonBuilder(rb)
    hdrs, body, jhdrs, doc = HEADERS, BODY, JSON_HEADERS, JSON_DOC

    def loop_overhead(n):
        f = len
        for _ in range(n):
            f(body)

    def rb_plain(n):
        for _ in range(n):
            rb.reset()
            rb.status(200)
            rb.headers(hdrs)
            rb.body(body)
            rb.finalize().release()

    def rb_plain_bytes(n):
        for _ in range(n):
            rb.reset()
            rb.status(200)
            rb.headers(hdrs)
            rb.body(body)
            rb.getvalue()

    def fstring(n):
        ct, srv, date = (v.decode("latin-1") for _, v in hdrs)
        for _ in range(n):
            (
                f"HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\nserver: {srv}\r\ndate: {date}\r\n"
                f"content-length: {len(body)}\r\n\r\n"
            ).encode("latin-1") + body

    def join(n):
        for _ in range(n):
            _join(_STATUS_200, hdrs, body)

    def join_checked(n):
        for _ in range(n):
            _join_checked(_STATUS_200, hdrs, body)

    def rb_json(n):
        for _ in range(n):
            rb.reset()
            jb.reset()
            rb.status(200)
            rb.headers(jhdrs)
            jb.value(doc)
            rb.finalize().release()

    def rb_orjson(n):
        dumps = orjson.dumps
        for _ in range(n):
            rb.reset()
            rb.status(200)
            rb.headers(jhdrs)
            rb.body(dumps(doc))
            rb.finalize().release()

    def stdlib_json(n):
        dumps = json.dumps
        for _ in range(n):
            _join(_STATUS_200, jhdrs, dumps(doc, separators=(",", ":")).encode())

    def orjson_join(n):
        dumps = orjson.dumps
        for _ in range(n):
            _join(_STATUS_200, jhdrs, dumps(doc))

    # The same bytes from every formatter, or the comparison means nothing.
    rb.reset()
    rb.status(200)
    rb.headers(hdrs)
    rb.body(body)
    plain = rb.getvalue()
    assert plain == _join(_STATUS_200, hdrs, body) == _join_checked(_STATUS_200, hdrs, body)
    rb.reset()
    jb.reset()
    rb.status(200)
    rb.headers(jhdrs)
    jb.value(doc)
    assert rb.getvalue() == _join(_STATUS_200, jhdrs, orjson.dumps(doc))
    rb.reset()

    return [
        ("loop overhead (len(body) per iteration)", loop_overhead, "floor under every row"),
        ("text 200: ResponseBuilder, reset + finalize view", rb_plain,
         "validated headers, zero-copy view"),
        ("text 200: ResponseBuilder, getvalue() bytes", rb_plain_bytes, "same, plus one copy"),
        ("text 200: f-string .encode() + body", fstring, "no validation"),
        ("text 200: b''.join of parts", join, "no validation"),
        ("text 200: b''.join + regex header checks", join_checked,
         "validated, like ResponseBuilder"),
        ("json 200: JsonBuilder into ResponseBuilder", rb_json, "no intermediate bytes"),
        ("json 200: orjson.dumps + ResponseBuilder.body", rb_orjson, ""),
        ("json 200: orjson.dumps + b''.join", orjson_join, "no validation"),
        ("json 200: json.dumps + b''.join", stdlib_json, "no validation"),
    ]


def run(quick: bool = False) -> list[dict]:
    """Measure everything; return rows for bench/primitives.py.

    Each row is ``{"section": "response", "name", "value", "unit": "ns/op",
    "note"}`` (lower is better).  `quick` cuts the loop tenfold.
    """
    n = 20_000 if quick else 200_000
    repeats = 3 if quick else 7
    rows = []
    for name, fn, note in _cases():
        fn(n // 10)  # warm up
        rows.append(row(SECTION, name, median_ns(partial(fn, n), repeats) / n, "ns/op", note))
    by = {r["name"]: r["value"] for r in rows}
    ours = by["text 200: ResponseBuilder, reset + finalize view"]
    for other in ("text 200: b''.join of parts", "text 200: b''.join + regex header checks"):
        saved = by[other] - ours
        for r in rows:
            if r["name"] == other:
                r["note"] += (f"; ResponseBuilder saves {saved:.0f} ns/op vs this row "
                              f"(design doc claims ~300 ns saved)")
    return rows


if __name__ == "__main__":
    raise SystemExit(main(__doc__, run, "a tenth of the iterations",
                          value_width=8, unit_width=6, fmt="{:.0f}".format))
