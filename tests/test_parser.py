"""fasterapi._http: valid requests of every kind parse to the right events.

Every case goes through `parse()`, which feeds the bytes whole, one byte at a
time and split at seeded random points (as bytes, bytearray and memoryview),
and asserts that every way gives identical events or the identical error.
The strict catalogue (test_parser_strict.py) and the differential tests
import `parse` from here.
"""

from __future__ import annotations

import random
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fasterapi._http import END, HttpParserError, RequestHead, RequestParser

SCOPE_BASE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "scheme": "http",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 50000),
    "root_path": "",
}

# Above this size the drip uses small pieces instead of single bytes, to
# keep the run bounded; the head (where the state machines are) is always
# inside the first pieces.
_DRIP_WHOLE_LIMIT = 1 << 16


def head_view(head: RequestHead) -> dict:
    """Everything a RequestHead says, as plain data for comparisons."""
    return {
        "scope": head.scope,
        "method": head.method,
        "http_version": head.http_version,
        "keep_alive": head.keep_alive,
        "expect_continue": head.expect_continue,
        "chunked": head.chunked,
        "content_length": head.content_length,
        "upgrade": head.upgrade,
        "host": head.host,
    }


def _assert_dead(parser: RequestParser, exc: HttpParserError) -> None:
    # After an error every call raises the same error: the next bytes can
    # never be read as a new request.
    for call in (parser.next_event, lambda: parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
                 parser.next_event):
        with pytest.raises(HttpParserError) as again:
            call()
        assert (again.value.status, again.value.reason) == (exc.status, exc.reason)


def run_pieces(pieces, **limits) -> tuple[list[tuple], RequestParser]:
    """Feed `pieces` one after another, draining events after each feed.

    Returns the normalized events — ("head", view), ("body", bytes) with
    adjacent body pieces joined (their sizes depend on the split), ("end",),
    ("error", status, reason) — and the parser.
    """
    parser = RequestParser(dict(SCOPE_BASE), **limits)
    events: list[tuple] = []
    for piece in pieces:
        parser.feed(piece)
        while True:
            try:
                ev = parser.next_event()
            except HttpParserError as exc:
                assert exc.status in (400, 413, 414, 431, 501, 505)
                events.append(("error", exc.status, exc.reason))
                _assert_dead(parser, exc)
                return events, parser
            if ev is None:
                break
            if ev is END:
                events.append(("end",))
            elif isinstance(ev, bytes):
                assert ev, "body events are never empty"
                if events and events[-1][0] == "body":
                    events[-1] = ("body", events[-1][1] + ev)
                else:
                    events.append(("body", ev))
            else:
                assert isinstance(ev, RequestHead)
                events.append(("head", head_view(ev)))
    return events, parser


def _splits(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 12))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def parse(data: bytes, **limits) -> list[tuple]:
    """Events for `data` fed whole, dripped and split randomly; all must agree."""
    whole, parser = run_pieces([data], **limits)
    if len(data) <= _DRIP_WHOLE_LIMIT:
        drip = [data[i:i + 1] for i in range(len(data))]
    else:
        drip = [data[i:i + 1] for i in range(4096)]
        drip += [data[i:i + 997] for i in range(4096, len(data), 997)]
    ways = {"drip": drip}
    if len(data) > 1:
        for seed in range(3):
            ways[f"random{seed}"] = _splits(data, seed)
        ways["bytearray"] = [bytearray(p) for p in _splits(data, 7)]
        ways["memoryview"] = [memoryview(p) for p in _splits(data, 8)]
    for name, pieces in ways.items():
        assert b"".join(bytes(p) for p in pieces) == data
        got, _ = run_pieces(pieces, **limits)
        assert got == whole, f"{name} split disagrees with the whole feed"
    return whole


def requests(events: list[tuple]) -> list[tuple[dict, bytes]]:
    """(head view, body) per complete request; asserts the event grammar."""
    out = []
    i = 0
    while i < len(events):
        assert events[i][0] == "head", events
        head = events[i][1]
        i += 1
        body = b""
        if i < len(events) and events[i][0] == "body":
            body = events[i][1]
            i += 1
        assert events[i] == ("end",), events
        i += 1
        out.append((head, body))
    return out


def one(data: bytes, **limits) -> tuple[dict, bytes]:
    """The single request in `data`: (head view, body)."""
    reqs = requests(parse(data, **limits))
    assert len(reqs) == 1
    return reqs[0]


# ---- basic requests -----------------------------------------------------------


def test_simple_get():
    head, body = one(b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n")
    scope = head["scope"]
    for key, value in SCOPE_BASE.items():
        assert scope[key] == value
    assert scope["method"] == "GET" and head["method"] == "GET"
    assert scope["http_version"] == "1.1" == head["http_version"]
    assert scope["path"] == "/index.html"
    assert scope["raw_path"] == b"/index.html"
    assert scope["query_string"] == b""
    assert scope["headers"] == [(b"host", b"example.com"), (b"accept", b"*/*")]
    assert head["keep_alive"] is True
    assert head["chunked"] is False
    assert head["content_length"] == -1
    assert head["expect_continue"] is False
    assert head["upgrade"] is None
    assert head["host"] == b"example.com"
    assert body == b""


def test_no_body_means_head_then_end_immediately():
    p = RequestParser(dict(SCOPE_BASE))
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert isinstance(p.next_event(), RequestHead)
    assert p.next_event() is END
    assert p.next_event() is None
    assert p.buffered == 0


def test_scope_is_a_fresh_copy_of_scope_base():
    base = dict(SCOPE_BASE)
    p = RequestParser(base)
    p.feed(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
    h1 = p.next_event()
    assert p.next_event() is END
    h2 = p.next_event()
    assert h1.scope is not h2.scope and h1.scope is not base
    assert "path" not in base
    h1.scope["state"] = {}
    assert "state" not in h2.scope and "state" not in base


def test_head_attributes_are_read_only():
    p = RequestParser(dict(SCOPE_BASE))
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    head = p.next_event()
    with pytest.raises(AttributeError):
        head.keep_alive = False
    assert "GET" in repr(head) and repr(END) == "END"


def test_post_with_content_length():
    head, body = one(b"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: 11\r\n\r\nhello world")
    assert head["method"] == "POST"
    assert head["content_length"] == 11
    assert body == b"hello world"


def test_content_length_zero_and_leading_zeros():
    head, body = one(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert head["content_length"] == 0 and body == b""
    head, body = one(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 003\r\n\r\nabc")
    assert head["content_length"] == 3 and body == b"abc"


def test_get_with_content_length_has_a_body():
    # RFC 9112 §6.3: Content-Length frames the body whatever the method.
    head, body = one(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
    assert body == b"hi"


def test_body_never_exceeds_content_length_and_rest_is_next_request():
    events = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                   b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    reqs = requests(events)
    assert [r[1] for r in reqs] == [b"abc", b""]
    assert reqs[1][0]["scope"]["path"] == "/next"


def test_body_arrives_as_it_is_fed():
    p = RequestParser(dict(SCOPE_BASE))
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    assert isinstance(p.next_event(), RequestHead)
    assert p.next_event() == b"abc"
    assert p.next_event() is None
    p.feed(b"defghijXYZ")
    assert p.next_event() == b"defghij"
    assert p.next_event() is END
    assert p.buffered == 3


def test_chunked_with_extensions_and_trailers():
    raw = (b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;name=value\r\nhello\r\n"
           b"6;a;b=\"q \\\"x\\\" \t\xff\";c=tok\r\n world\r\n"
           b"A;x\r\n0123456789\r\n"
           b"0;last=1\r\nX-Checksum: abc\r\nX-Other:  v \r\n\r\n")
    head, body = one(raw)
    assert head["chunked"] is True and head["content_length"] == -1
    assert body == b"hello world0123456789"
    # Trailers are validated and dropped: the head's headers are unchanged.
    assert head["scope"]["headers"] == [(b"host", b"a"), (b"transfer-encoding", b"chunked")]


def test_chunked_hex_sizes_and_case_insensitive_coding():
    data = bytes(range(256)) * 2
    raw = (b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n"
           b"1ff\r\n" + data[:511] + b"\r\n00001\r\n" + data[511:] + b"\r\n000\r\n\r\n")
    head, body = one(raw)
    assert body == data


def test_transfer_encoding_list_and_empty_elements():
    # RFC 9110 §5.6.1: empty list elements are ignored.
    head, body = one(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked ,\r\n\r\n"
                     b"2\r\nhi\r\n0\r\n\r\n")
    assert head["chunked"] and body == b"hi"


def test_chunked_empty_body():
    head, body = one(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert head["chunked"] and body == b""


def test_pipelined_requests_in_one_buffer():
    raw = (b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
           b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"
           b"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
           b"\r\n"  # an extra CRLF after a body is tolerated (RFC 9112 §2.2)
           b"DELETE /4?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    reqs = requests(parse(raw))
    assert [(h["method"], h["scope"]["path"], b) for h, b in reqs] == [
        ("GET", "/1", b""), ("POST", "/2", b"body"), ("POST", "/3", b"abc"), ("DELETE", "/4", b"")]


def test_pipelined_request_after_partial_body_waits():
    p = RequestParser(dict(SCOPE_BASE))
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab")
    assert isinstance(p.next_event(), RequestHead)
    assert p.next_event() == b"ab"
    assert p.next_event() is None
    p.feed(b"cdeGET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert p.next_event() == b"cde"
    assert p.next_event() is END
    assert p.next_event().scope["path"] == "/x"


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.1", None, True),
        (b"1.1", b"close", False),
        (b"1.1", b"Close", False),
        (b"1.1", b"keep-alive", True),
        (b"1.1", b"foo, close", False),
        (b"1.1", b"keep-alive, close", False),
        (b"1.1", b"closed", True),
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", True),
        (b"1.0", b"Keep-Alive", True),
        (b"1.0", b"x , keep-alive ,y", True),
        (b"1.0", b"close", False),
        (b"1.0", b"keep-alive, close", False),
    ],
)
def test_keep_alive_rules(version, connection, keep_alive):
    # RFC 9112 §9.3
    raw = b"GET / HTTP/" + version + b"\r\nHost: a\r\n"
    if connection is not None:
        raw += b"Connection: " + connection + b"\r\n"
    head, _ = one(raw + b"\r\n")
    assert head["keep_alive"] is keep_alive
    assert head["http_version"] == version.decode()


def test_connection_header_across_lines():
    head, _ = one(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n")
    assert head["keep_alive"] is False


def test_http_1_0_without_host_is_fine():
    head, _ = one(b"GET / HTTP/1.0\r\n\r\n")
    assert head["host"] == b"" and head["scope"]["headers"] == []


@pytest.mark.parametrize("minor", b"23456789")
def test_higher_minor_versions_are_served_as_1_1(minor):
    head, _ = one(b"GET / HTTP/1." + bytes([minor]) + b"\r\nHost: a\r\n\r\n")
    assert head["http_version"] == "1.1" and head["scope"]["http_version"] == "1.1"
    assert head["keep_alive"] is True


def test_absolute_form_authority_wins_over_host():
    head, _ = one(b"GET http://example.org:8080/p/a%20b?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    assert head["host"] == b"example.org:8080"
    assert (b"host", b"other") in head["scope"]["headers"]
    assert head["scope"]["raw_path"] == b"/p/a%20b"
    assert head["scope"]["path"] == "/p/a b"
    assert head["scope"]["query_string"] == b"q=1"


@pytest.mark.parametrize(
    ("target", "raw_path", "query", "host"),
    [
        (b"HTTPS://Example.com", b"/", b"", b"Example.com"),
        (b"http://a?x", b"/", b"x", b"a"),
        (b"http://[::1]:80/", b"/", b"", b"[::1]:80"),
        (b"http://127.0.0.1/x/", b"/x/", b"", b"127.0.0.1"),
        (b"http://a:/p", b"/p", b"", b"a:"),
    ],
)
def test_absolute_form_variants(target, raw_path, query, host):
    head, _ = one(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert head["scope"]["raw_path"] == raw_path
    assert head["scope"]["query_string"] == query
    assert head["host"] == host


def test_asterisk_form_options():
    head, _ = one(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
    assert head["method"] == "OPTIONS"
    assert head["scope"]["path"] == "*" and head["scope"]["raw_path"] == b"*"
    assert head["scope"]["query_string"] == b""


@pytest.mark.parametrize(
    ("raw_path", "path"),
    [
        (b"/a%2Fb", "/a/b"),                 # %2F decoded in path, kept in raw_path
        (b"/caf%C3%A9", "/caf\u00e9"),        # UTF-8 multibyte
        (b"/%E2%82%AC%F0%9F%98%80", "/\u20ac\U0001f600"),
        (b"/%zz/%4", "/%zz/%4"),              # invalid escapes stay literal
        (b"/%", "/%"),
        (b"/%C3", "/\ufffd"),                 # truncated UTF-8 is replaced
        (b"/%ff%fe", "/\ufffd\ufffd"),
        (b"/%41%6a", "/Aj"),                  # either hex case
        (b"/a+b", "/a+b"),                    # "+" is not a space in a path
        (b"/%00", "/\x00"),
    ],
)
def test_percent_decoding(raw_path, path):
    head, _ = one(b"GET " + raw_path + b"?k=%41 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert head["scope"]["raw_path"] == raw_path
    assert head["scope"]["path"] == path == unquote(raw_path.decode("ascii"))
    assert head["scope"]["query_string"] == b"k=%41"   # the query is never decoded


_TARGET_CHARS = st.sampled_from(
    list("abcXYZ019-._~!$&'()*+,;=:@/|{}[]^`\"<>\\") + ["%", "%2F", "%C3%A9", "%e2%82", "%ZZ"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_TARGET_CHARS, max_size=30))
def test_path_decoding_matches_unquote(parts):
    raw_path = ("/" + "".join(parts)).encode()
    p = RequestParser(dict(SCOPE_BASE))
    p.feed(b"GET " + raw_path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    head = p.next_event()
    assert head.scope["raw_path"] == raw_path
    assert head.scope["path"] == unquote(raw_path.decode())


@pytest.mark.parametrize(
    ("target", "raw_path", "query"),
    [
        (b"/p?", b"/p", b""),
        (b"/p?a=1&b=2", b"/p", b"a=1&b=2"),
        (b"/p?a?b", b"/p", b"a?b"),
        (b"/?x=%20+y", b"/", b"x=%20+y"),
        (b"//double", b"//double", b""),
        (b"/a|b{c}d", b"/a|b{c}d", b""),
    ],
)
def test_query_string(target, raw_path, query):
    head, _ = one(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert head["scope"]["raw_path"] == raw_path
    assert head["scope"]["query_string"] == query


def test_header_values_are_ows_stripped_and_names_lowercased():
    head, _ = one(b"GET / HTTP/1.1\r\nHost:a\r\nX-A:   spaced  value \t \r\nX-EMPTY:\r\n"
                  b"X-Empty-Ows: \t \r\nX-Obs: caf\xc3\xa9\xff\r\nX-Tab:\tv\t\r\n\r\n")
    assert head["scope"]["headers"] == [
        (b"host", b"a"), (b"x-a", b"spaced  value"), (b"x-empty", b""),
        (b"x-empty-ows", b""), (b"x-obs", b"caf\xc3\xa9\xff"), (b"x-tab", b"v")]


def test_header_order_and_duplicates_are_kept():
    head, _ = one(b"GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nX: 1\r\nCookie: b=2\r\n\r\n")
    assert head["scope"]["headers"] == [
        (b"host", b"a"), (b"cookie", b"a=1"), (b"x", b"1"), (b"cookie", b"b=2")]


def test_common_header_names_are_interned():
    raw = (b"GET / HTTP/1.1\r\nHOST: a\r\nUser-Agent: x\r\nAccept-Encoding: gzip\r\n"
           b"X-Custom-Thing: 1\r\n\r\n")
    heads = []
    for _ in range(2):
        p = RequestParser(dict(SCOPE_BASE))
        p.feed(raw)
        heads.append(p.next_event().scope["headers"])
    names1 = [n for n, _ in heads[0]]
    names2 = [n for n, _ in heads[1]]
    assert names1 == [b"host", b"user-agent", b"accept-encoding", b"x-custom-thing"]
    for a, b in zip(names1[:3], names2[:3], strict=True):
        assert a is b
    assert names1[3] is not names2[3]


def test_common_methods_are_shared_and_others_accepted():
    p = RequestParser(dict(SCOPE_BASE))
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPROPFIND /d HTTP/1.1\r\nHost: a\r\n\r\n"
           b"M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n")
    h1 = p.next_event()
    assert h1.method is h1.scope["method"] and h1.method == "GET"
    assert p.next_event() is END
    assert p.next_event().method == "PROPFIND"


def test_methods_are_case_sensitive_tokens():
    head, _ = one(b"get / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert head["method"] == "get"


@pytest.mark.parametrize("n", [1, 2, 8])
def test_leading_empty_lines_are_ignored(n):
    head, _ = one(b"\r\n" * n + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert head["method"] == "GET"


def test_large_body():
    body = random.Random(1).randbytes(1 << 20)
    head, got = one(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert got == body


def test_buffered_and_reset_buffer_if_idle():
    p = RequestParser(dict(SCOPE_BASE))
    assert p.buffered == 0
    p.feed(b"GET / HTTP/1.1\r\nHo")
    assert p.buffered == 18
    assert p.next_event() is None
    assert p.buffered == 18            # scanned but not consumed
    p.feed(b"st: a\r\n\r\nPOST / HTTP/1.1\r\n")
    assert isinstance(p.next_event(), RequestHead)
    assert p.buffered == 17
    assert p.next_event() is END
    rest = b"Host: a\r\nContent-Length: 100000\r\n\r\n"
    p.feed(rest + b"x" * 100000)
    assert p.buffered == 17 + len(rest) + 100000
    assert isinstance(p.next_event(), RequestHead)
    assert p.next_event() == b"x" * 100000
    assert p.buffered == 0
    p.reset_buffer_if_idle()
    assert p.next_event() is END
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert isinstance(p.next_event(), RequestHead)


def test_expect_continue():
    head, _ = one(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx")
    assert head["expect_continue"] is True
    # RFC 9110 §10.1.1: ignored in HTTP/1.0.
    head, _ = one(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx")
    assert head["expect_continue"] is False
    head, _ = one(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n")
    assert head["expect_continue"] is False


def test_upgrade_and_take_buffer():
    raw = (b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
           b"Upgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n\x81\x85frame")
    p = RequestParser(dict(SCOPE_BASE))
    p.feed(raw)
    head = p.next_event()
    assert head.upgrade == b"websocket"
    assert p.next_event() is END
    assert p.take_buffer() == b"\x81\x85frame"
    assert p.buffered == 0
    head, _ = one(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n")
    assert head["upgrade"] is None    # no "upgrade" connection option


@pytest.mark.parametrize(
    "host", [b"example.com", b"example.com:8080", b"127.0.0.1:1", b"[::1]", b"[2001:db8::1]:443",
             b"[v1.fe:x]", b"xn--nxasmq6b.example", b"a%41b", b"under_score.local", b""])
def test_valid_host_values(host):
    head, _ = one(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert head["host"] == host


def test_feed_accepts_buffers():
    p = RequestParser(dict(SCOPE_BASE))
    p.feed(bytearray(b"GET / HTTP/1.1\r\n"))
    p.feed(memoryview(b"xxHost: a\r\n\r\n")[2:])
    p.feed(b"")
    assert p.next_event().host == b"a"
    with pytest.raises(TypeError):
        p.feed("GET")


def test_max_body_size_exactly_reached_is_fine():
    head, body = one(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd", max_body_size=4)
    assert body == b"abcd"
    head, body = one(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n", max_body_size=4)
    assert body == b"abcd"


def test_limits_exactly_reached_are_fine():
    line = b"GET /" + b"a" * 17 + b" HTTP/1.1"          # 31 bytes
    fields = b"Host: a\r\nX: 12345\r\n\r\n"                 # 21 bytes
    # A pipelined request right behind must not count against the first's limits.
    reqs = requests(parse(line + b"\r\n" + fields + line + b"\r\n" + fields,
                          max_request_line=len(line), max_header_bytes=len(fields), max_headers=2))
    assert [h["scope"]["raw_path"] for h, _ in reqs] == [b"/" + b"a" * 17] * 2
    raw = (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"1;abcd=ef\r\nx\r\n0\r\nT: 1\r\n\r\n")
    reqs = requests(parse(raw + raw, max_chunk_ext=len(b";abcd=ef"),
                          max_trailer_bytes=len(b"T: 1\r\n\r\n")))
    assert [b for _, b in reqs] == [b"x", b"x"]


def test_drip_of_a_big_header_section():
    fields = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 600) for i in range(90))
    head, _ = one(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n")
    assert len(head["scope"]["headers"]) == 91


def test_invalid_limits_are_refused():
    with pytest.raises(ValueError):
        RequestParser({}, max_headers=-1)
    with pytest.raises(TypeError):
        RequestParser(None)
