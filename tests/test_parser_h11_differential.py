"""fasterapi._http against two independent parsers used as oracles.

1. h11 (server role): hypothesis generates valid requests — methods, origin-,
   absolute- and asterisk-form targets, headers with OWS, bodies framed by
   Content-Length or chunked (with extensions and trailers), pipelined pairs —
   and both parsers must agree on method, target, version, headers and body.
2. httptools (llhttp): where llhttp rejects a message we reject it too.  The
   strict catalogue and mutated valid requests are the inputs.  The few places
   where we accept what llhttp refuses are listed in `WE_ACCEPT`, and every
   catalogue row llhttp accepts is listed, with the reason, in `STRICTER`.
"""

from __future__ import annotations

import string

import h11
import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_parser import parse, requests, run_pieces
from test_parser_strict import CASES, FOLLOWER

TCHAR = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters
# Path bytes both parsers accept: RFC 3986 pchar plus what browsers leave raw.
PCHAR = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@%|{}"
SPECIAL = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade",
           "te", "trailer", "keep-alive"}
SETTINGS = settings(max_examples=250, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---- generators of valid requests ------------------------------------------------

tokens = st.text(alphabet=TCHAR, min_size=1, max_size=12)
methods = st.one_of(
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]),
    tokens.filter(lambda m: m != "CONNECT"),
)
hosts = st.sampled_from(["a", "example.com", "127.0.0.1:8000", "[::1]:443", "x-y.z:80", "b_c"])
paths = st.text(alphabet=PCHAR + "/", max_size=30).map(lambda p: "/" + p)
queries = st.none() | st.text(alphabet=PCHAR + "/?", max_size=20)


@st.composite
def targets(draw, method):
    kind = draw(st.sampled_from(["origin", "origin", "origin", "absolute", "asterisk"]))
    if kind == "asterisk" and method == "OPTIONS":
        return "*"
    query = draw(queries)
    tail = draw(paths) + ("" if query is None else "?" + query)
    if kind == "absolute":
        return draw(st.sampled_from(["http", "https", "HTTP"])) + "://" + draw(hosts) + tail
    return tail


field_value_bytes = st.lists(
    st.one_of(st.integers(0x21, 0x7E), st.integers(0x80, 0xFF)), min_size=1, max_size=12
).map(bytes)


@st.composite
def field_values(draw):
    # field-content with inner SP/HTAB runs, then optional OWS on both sides.
    words = draw(st.lists(field_value_bytes, max_size=3))
    inner = b"".join(w + draw(st.sampled_from([b" ", b"\t", b"  "])) for w in words[:-1])
    value = inner + (words[-1] if words else b"")
    ows = st.sampled_from([b"", b" ", b"\t", b" \t "])
    return draw(ows), value, draw(ows)


@st.composite
def fields(draw):
    name = draw(tokens.filter(lambda n: n.lower() not in SPECIAL))
    lead, value, trail = draw(field_values())
    return name.encode(), lead, value, trail


@st.composite
def chunk_exts(draw):
    exts = b""
    for _ in range(draw(st.integers(0, 2))):
        name = draw(tokens).encode()
        kind = draw(st.sampled_from(["bare", "token", "quoted"]))
        if kind == "bare":
            exts += b";" + name
        elif kind == "token":
            exts += b";" + name + b"=" + draw(tokens).encode()
        else:
            qd = draw(st.text(alphabet=string.ascii_letters + " \t!#", max_size=8)).encode()
            exts += b";" + name + b'="' + qd + b'\\"' + b'"'
    return exts


@st.composite
def request_bytes(draw, version=None):
    """(raw bytes, expected dict) for one valid request."""
    method = draw(methods)
    target = draw(targets(method))
    version = version or draw(st.sampled_from(["1.1", "1.1", "1.0"]))
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["none", "cl", "chunked"] if version == "1.1" else ["none", "cl"]))
    if framing == "none":
        body = b""
    head = [f"{method} {target} HTTP/{version}".encode()]
    expected_headers = []
    field_list = draw(st.lists(fields(), max_size=6))
    host_at = draw(st.integers(0, len(field_list)))
    for i in range(len(field_list) + 1):
        if i == host_at and (version == "1.1" or draw(st.booleans())):
            host = draw(hosts).encode()
            head.append(b"Host: " + host)
            expected_headers.append((b"host", host))
        if i < len(field_list):
            name, lead, value, trail = field_list[i]
            head.append(name + b":" + lead + value + trail)
            expected_headers.append((name.lower(), value))
    if framing == "cl":
        head.append(b"Content-Length: %d" % len(body))
        expected_headers.append((b"content-length", b"%d" % len(body)))
    if framing == "chunked":
        head.append(b"Transfer-Encoding: chunked")
        expected_headers.append((b"transfer-encoding", b"chunked"))
    raw = b"\r\n".join(head) + b"\r\n\r\n"
    if framing == "cl":
        raw += body
    if framing == "chunked":
        cuts = sorted(draw(st.lists(st.integers(1, max(1, len(body) - 1)), max_size=4, unique=True)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        for piece in pieces:
            if piece:
                raw += b"%x" % len(piece) + draw(chunk_exts()) + b"\r\n" + piece + b"\r\n"
        raw += b"0" + draw(chunk_exts()) + b"\r\n"
        for name, lead, value, trail in draw(st.lists(fields(), max_size=2)):
            raw += name + b":" + lead + value + trail + b"\r\n"
        raw += b"\r\n"
    return raw, {"method": method, "target": target.encode(), "version": version,
                 "headers": expected_headers, "body": body}


# ---- the h11 oracle ------------------------------------------------------------


def h11_parse(raw: bytes) -> list[dict]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    out: list[dict] = []
    while True:
        ev = conn.next_event()
        if ev is h11.NEED_DATA:
            return out
        if ev is h11.PAUSED:
            # Answer so h11 moves on to the next pipelined request.
            conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            conn.send(h11.EndOfMessage())
            conn.start_next_cycle()
            continue
        if isinstance(ev, h11.Request):
            out.append({"method": ev.method.decode(), "target": ev.target,
                        "version": ev.http_version.decode(), "headers": list(ev.headers),
                        "body": b""})
        elif isinstance(ev, h11.Data):
            out[-1]["body"] += ev.data
        elif isinstance(ev, h11.EndOfMessage):
            out[-1]["done"] = True
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return out


def ours(raw: bytes) -> list[dict]:
    out = []
    for head, body in requests(parse(raw)):
        scope = head["scope"]
        out.append({"method": scope["method"], "raw_path": scope["raw_path"],
                    "query": scope["query_string"], "version": scope["http_version"],
                    "headers": scope["headers"], "body": body, "host": head["host"]})
    return out


def _split_target(target: bytes) -> tuple[bytes, bytes, bytes | None]:
    """(authority or None, raw_path, query) the way RFC 9112 §3.2 reads a target."""
    authority = None
    if target == b"*":
        return None, b"*", b""
    if not target.startswith(b"/"):
        rest = target.split(b"://", 1)[1]
        cut = min([i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0], default=len(rest))
        authority, target = rest[:cut], rest[cut:]
    path, _, query = target.partition(b"?")
    return authority, path or b"/", query


def assert_same(raw: bytes, expected: list[dict]) -> None:
    theirs = h11_parse(raw)
    mine = ours(raw)
    assert len(theirs) == len(mine) == len(expected)
    for t, m, e in zip(theirs, mine, expected, strict=True):
        assert t.get("done"), "h11 did not finish the request"
        assert m["method"] == t["method"] == e["method"]
        assert t["target"] == e["target"]
        authority, path, query = _split_target(t["target"])
        assert (m["raw_path"], m["query"]) == (path, query)
        if authority is not None:
            assert m["host"] == authority
        assert m["version"] == t["version"] == e["version"]
        assert m["headers"] == t["headers"] == e["headers"]
        assert m["body"] == t["body"] == e["body"]


@SETTINGS
@given(request_bytes())
def test_single_requests_match_h11(req):
    raw, expected = req
    assert_same(raw, [expected])


@SETTINGS
@given(request_bytes(version="1.1"), request_bytes(version="1.1"))
def test_pipelined_pairs_match_h11(first, second):
    assert_same(first[0] + second[0], [first[1], second[1]])


# ---- the llhttp oracle -----------------------------------------------------------


class _Sink:
    """httptools callbacks we do not need: llhttp still validates everything."""


def llhttp_rejects(raw: bytes) -> bool:
    parser = httptools.HttpRequestParser(_Sink())
    try:
        parser.feed_data(raw)
    except httptools.HttpParserUpgrade:
        return False   # llhttp stops at Upgrade/CONNECT: not a rejection
    except httptools.HttpParserError:
        return True
    return False


def we_reject(raw: bytes) -> bool:
    events, parser = run_pieces([raw])
    if events and events[-1][0] == "error":
        return True
    if parser.buffered and (not events or events[-1] == ("end",)):
        # Bytes of a next request that is not complete yet: llhttp judges a
        # request as its bytes arrive, we may need its line end.  End the
        # line and the head for both verdicts to be comparable.
        events, _ = run_pieces([raw + b"\r\n\r\n"])
        return events[-1][0] == "error"
    return False


# Catalogue rows llhttp (strict defaults, as httptools builds it) accepts and
# we refuse, each for a reason; a row missing here fails the test below.
STRICTER = {
    "two spaces after method": "RFC 9112 §3: exactly one SP; llhttp skips extra spaces",
    "two spaces before version": "RFC 9112 §3: exactly one SP",
    "bare LF before request line": "RFC 9112 §2.2 tolerates empty lines, ended by CRLF",
    "bare CR before request line": "a bare CR is never a line ending (RFC 9112 §2.2)",
    "chunk ext empty name": "RFC 9112 §7.1.1: chunk-ext-name is a token",
    "fragment in target": "RFC 9112 §3.2: origin-form has no fragment",
    "CONNECT authority-form": "we are not a proxy (501)",
    "CONNECT origin-form": "we are not a proxy (501)",
    "asterisk-form with GET": "RFC 9112 §3.2.4: only OPTIONS",
    "asterisk with a path": "not a request-target form",
    "absolute-form other scheme": "we serve http(s) only",
    "absolute-form empty host": "RFC 9110 §4.2.1",
    "absolute-form userinfo": "RFC 9110 §4.2.4",
    "absolute-form bad port": "RFC 3986 port = *DIGIT",
    "absolute-form bad IPv6": "RFC 3986 IP-literal",
    "HTTP/1.1 without Host": "RFC 9112 §3.2 MUST 400",
    "two Host fields": "RFC 9112 §3.2 MUST 400",
    "absolute-form without Host": "RFC 9112 §3.2 MUST 400",
    "Host with space": "RFC 9110 §7.2 Host grammar",
    "Host with userinfo": "RFC 9110 §7.2",
    "Host with path": "RFC 9110 §7.2",
    "Host with letters in port": "RFC 9110 §7.2",
    "Host with two ports": "RFC 9110 §7.2",
    "Host unclosed IPv6": "RFC 9110 §7.2",
    "Host bad IPv6": "RFC 9110 §7.2",
    "Host IPv6 zone": "RFC 9110 §7.2",
    "Host junk after IPv6": "RFC 9110 §7.2",
    "Host bad pct-encoding": "RFC 9110 §7.2",
    "Host non-ascii": "RFC 9110 §7.2",
    "Host empty IPvFuture": "RFC 3986 IPvFuture",
    "CL above max_body_size": "our limit, not a syntax error",
    "TE gzip then chunked": "we implement no other codings (501)",
    "TE deflate then chunked": "we implement no other codings (501)",
    "chunk ext empty value": "RFC 9112 §7.1.1 chunk-ext-val is 1*tchar or quoted",
    "chunk ext too long": "our max_chunk_ext",
    "chunk ext too long in total": "our max_chunk_ext",
    "chunk ext one over": "our max_chunk_ext",
    "chunked above max_body_size": "our limit",
    "too many leading CRLFs": "we bound RFC 9112 §2.2's tolerance",
    "header section too large": "our limit (llhttp has none of its own)",
    "too many fields": "our limit",
    "trailer section too large": "our limit",
    "too many trailer fields": "our limit",
    "request line too long": "our limit",
    "request line one over": "our limit",
    "request line two over": "our limit",
    "header section over mid-value": "our limit",
    "header section over at the final LF": "our limit",
    "header count one over": "our limit",
    "zero headers allowed": "our limit",
    "trailers one over": "our limit",
    "chunk-size 17 hex digits": "16 hex digits fill 64 bits",
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_catalogue_against_llhttp(case):
    name, raw = case[0], case[1] + FOLLOWER
    assert we_reject(raw) or len(case) > 3   # rows with custom limits reject only with them
    if not llhttp_rejects(raw):
        assert name in STRICTER, f"llhttp accepts {name!r}; say why we refuse it in STRICTER"


def test_stricter_lists_only_rows_llhttp_accepts():
    # Keeps the list honest: when an llhttp upgrade starts refusing a row,
    # drop it from STRICTER.
    rows = {c[0]: c[1] for c in CASES}
    assert set(STRICTER) <= set(rows)
    assert [n for n in STRICTER if llhttp_rejects(rows[n] + FOLLOWER)] == []


def llhttp_knows_method(method: bytes) -> bool:
    return not llhttp_rejects(method + b" / HTTP/1.1\r\nHost: a\r\n\r\n")


def _request_line(raw: bytes) -> bytes:
    return raw.lstrip(b"\r\n").split(b"\r\n", 1)[0]


# Where llhttp refuses and we accept, by design: llhttp knows a fixed list of
# methods (RFC 9110 §9.1 allows any token; the app decides), and refuses
# HTTP/1.2-1.9 (RFC 9110 §2.5: a higher minor version is compatible; we
# serve it as 1.1).  Each predicate gets the raw message.
WE_ACCEPT = {
    "method unknown to llhttp": lambda raw: not llhttp_knows_method(_request_line(raw).split(b" ")[0]),
    "HTTP/1.2 to HTTP/1.9": lambda raw: any(
        line.endswith(b" HTTP/1.%d" % d) for d in range(2, 10) for line in [_request_line(raw)]),
}

_BASES = [
    b"GET /p?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nUser-Agent: x/1.0\r\n\r\n",
    b"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    b"PUT /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"GET http://a:80/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
]
_MUTANT_BYTES = st.sampled_from(
    [0x00, 0x09, 0x0A, 0x0D, 0x20, 0x22, 0x23, 0x25, 0x2C, 0x2F, 0x3A, 0x3B, 0x3D, 0x3F, 0x40, 0x5C,
     0x7F, 0x80, 0xFF, ord("0"), ord("9"), ord("a"), ord("f"), ord("G"), ord("H"), ord("T"), ord("P")])


@st.composite
def mutants(draw):
    raw = bytearray(draw(st.sampled_from(_BASES)))
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        if op == "replace":
            raw[pos] = draw(_MUTANT_BYTES)
        elif op == "insert":
            raw.insert(pos, draw(_MUTANT_BYTES))
        elif len(raw) > 1:
            del raw[pos]
    return bytes(raw)


@settings(max_examples=300, deadline=None)
@given(mutants())
def test_mutants_llhttp_rejects_we_reject(raw):
    if llhttp_rejects(raw) and not we_reject(raw):
        reasons = [name for name, applies in WE_ACCEPT.items() if applies(raw)]
        assert reasons, f"llhttp rejects and we accept: {raw!r}"
