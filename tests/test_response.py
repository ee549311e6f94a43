"""ResponseBuilder: exact bytes, every error, the export guard, and h11 as the
oracle that what we build is valid HTTP/1.1."""

from __future__ import annotations

import ctypes
import re
from http import HTTPStatus

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fasterapi._response import LAST_CHUNK, ResponseBuilder, format_chunk, status_line

# RFC 9110 §15 renamed or retired these phrases since http.HTTPStatus (3.11)
# was written; everything else must agree with the stdlib's table.
RFC9110_PHRASES = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    418: "",  # "(Unused)", RFC 9110 §15.5.19
    422: "Unprocessable Content",
    510: "",  # "Not Extended" (RFC 2774) is historic and left out
}

TCHAR = set(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def expected_reason(code: int) -> str:
    if code in RFC9110_PHRASES:
        return RFC9110_PHRASES[code]
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def h11_parse(data: bytes, method: bytes = b"GET"):
    """Parse `data` as the response to a `method` request with h11's client.

    Returns (response event, body bytes, trailer headers); fails the test if
    h11 considers the bytes invalid or incomplete."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "example")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    response, body, trailers, eof_sent = None, b"", None, False
    while True:
        ev = conn.next_event()
        if ev is h11.NEED_DATA:
            assert not eof_sent, "h11 wants more bytes than were built"
            conn.receive_data(b"")  # close-delimited bodies end at EOF
            eof_sent = True
            continue
        if isinstance(ev, h11.InformationalResponse):
            return ev, b"", []
        if isinstance(ev, h11.Response):
            response = ev
        elif isinstance(ev, h11.Data):
            body += ev.data
        elif isinstance(ev, h11.EndOfMessage):
            trailers = list(ev.headers)
            break
    return response, body, trailers


def simple(code=200, headers=(), body=b"", head_only=False) -> bytes:
    rb = ResponseBuilder()
    rb.status(code)
    rb.headers(headers)
    if body:
        rb.body(body)
    with rb.finalize(head_only=head_only) as view:
        return bytes(view)


# --- exact bytes ----------------------------------------------------------


def test_simple_response_exact_bytes():
    out = simple(200, [(b"content-type", b"text/plain")], b"Hello, world!")
    assert out == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
        b"content-length: 13\r\n\r\nHello, world!"
    )
    resp, body, _ = h11_parse(out)
    assert resp.status_code == 200 and body == b"Hello, world!"


def test_empty_body_gets_content_length_zero():
    assert simple(200) == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


def test_body_in_several_calls_and_buffer_types():
    rb = ResponseBuilder()
    rb.status(201)
    rb.body(b"ab")
    rb.body(bytearray(b"cd"))
    rb.body(memoryview(b"xxef")[2:])
    rb.body(b"")
    assert rb.getvalue() == b"HTTP/1.1 201 Created\r\ncontent-length: 6\r\n\r\nabcdef"
    assert rb.body_length == 6


def test_head_only_keeps_the_get_length():
    get = simple(200, [(b"content-type", b"text/plain")], b"0123456789")
    head = simple(200, [(b"content-type", b"text/plain")], b"0123456789", head_only=True)
    assert get == head + b"0123456789"
    assert head.endswith(b"content-length: 10\r\n\r\n")
    resp, body, _ = h11_parse(head, method=b"HEAD")
    assert resp.status_code == 200 and body == b""


def test_finalize_again_returns_same_bytes_and_can_switch_to_head():
    rb = ResponseBuilder()
    rb.status(200)
    rb.body(b"xyz")
    first = bytes(rb.finalize())
    assert bytes(rb.finalize()) == first
    assert bytes(rb.finalize(head_only=True)) == first[:-3]
    assert rb.getvalue() == first


def test_caller_content_length_is_not_duplicated():
    out = simple(200, [(b"Content-Length", b"5")], b"hello")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    assert out.lower().count(b"content-length") == 1


def test_caller_content_length_with_head_only():
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"content-length", b"5")
    rb.body(b"hello")
    assert bytes(rb.finalize(head_only=True)) == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"


@pytest.mark.parametrize("code", [100, 101, 103, 204, 304])
def test_no_body_statuses_get_no_length(code):
    out = simple(code)
    assert b"content-length" not in out.lower() and out.endswith(b"\r\n\r\n")
    with pytest.raises(ValueError, match="no body"):
        rb = ResponseBuilder()
        rb.status(code)
        rb.body(b"x")


@pytest.mark.parametrize("code", [101, 204])
def test_framing_fields_dropped_for_1xx_and_204(code):
    rb = ResponseBuilder()
    rb.status(code)
    rb.headers([(b"content-length", b"0"), (b"transfer-encoding", b"chunked")])
    assert bytes(rb.finalize()) == status_line(code) + b"\r\n"
    assert not rb.has_content_length and not rb.has_transfer_encoding


def test_304_keeps_caller_content_length():
    rb = ResponseBuilder()
    rb.status(304)
    rb.header(b"content-length", b"42")
    assert rb.getvalue() == b"HTTP/1.1 304 Not Modified\r\ncontent-length: 42\r\n\r\n"
    resp, body, _ = h11_parse(rb.getvalue())
    assert resp.status_code == 304 and body == b""


def test_chunked_exact_bytes_and_h11():
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"content-type", b"text/plain")
    rb.chunk(b"hello")
    rb.chunk(b"")
    rb.chunk(bytearray(b"x" * 26))
    rb.end()
    out = rb.getvalue()
    assert out == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1a\r\n" + b"x" * 26 + b"\r\n0\r\n\r\n"
    )
    assert rb.chunked and rb.body_length == 31
    _, body, trailers = h11_parse(out)
    assert body == b"hello" + b"x" * 26 and trailers == []


def test_chunked_trailers():
    rb = ResponseBuilder()
    rb.status(200)
    rb.chunk(b"abc")
    rb.end([(b"x-checksum", b"123"), ("x-other", "v")])
    out = rb.getvalue()
    assert out.endswith(b"3\r\nabc\r\n0\r\nx-checksum: 123\r\nx-other: v\r\n\r\n")
    _, body, trailers = h11_parse(out)
    assert body == b"abc" and trailers == [(b"x-checksum", b"123"), (b"x-other", b"v")]


def test_bad_trailer_leaves_response_unended():
    rb = ResponseBuilder()
    rb.status(200)
    rb.chunk(b"abc")
    before = len(rb)
    with pytest.raises(ValueError, match="x-bad"):
        rb.end([(b"x-ok", b"1"), (b"x-bad", b"a\r\nb")])
    assert len(rb) == before
    rb.end()
    assert rb.getvalue().endswith(b"abc\r\n0\r\n\r\n")


def test_finalize_ends_chunked_and_end_without_chunks():
    rb = ResponseBuilder()
    rb.status(200)
    rb.chunk(b"a")
    assert rb.getvalue().endswith(b"1\r\na\r\n0\r\n\r\n")
    rb.reset()
    rb.status(200)
    rb.end()
    assert rb.getvalue() == b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"


def test_caller_transfer_encoding_chunked():
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"Transfer-Encoding", b"gzip, Chunked")
    assert rb.has_transfer_encoding and rb.chunked
    rb.chunk(b"zz")
    out = rb.getvalue()
    assert out == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n"
    # Given but never used: the body is the last chunk alone.
    rb.reset()
    rb.status(200)
    rb.header(b"transfer-encoding", b"chunked")
    out = rb.getvalue()
    assert out == b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
    assert h11_parse(out)[1] == b""


def test_chunk_refused_when_transfer_encoding_not_chunked():
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"transfer-encoding", b"chunked, gzip")
    assert not rb.chunked
    with pytest.raises(ValueError, match="chunked"):
        rb.chunk(b"x")


def test_head_only_chunked():
    rb = ResponseBuilder()
    rb.status(200)
    rb.chunk(b"abc")
    head = bytes(rb.finalize(head_only=True))
    assert head == b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


# --- streaming ------------------------------------------------------------


def test_streaming_chunked_flushes():
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"content-type", b"text/event-stream")
    rb.chunk(b"one")
    parts = []
    with rb.flush() as v:
        parts.append(bytes(v))
    assert parts[0] == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\n3\r\none\r\n"
    )
    assert len(rb) == 0
    rb.chunk(b"two!")
    assert len(rb) == 9
    with rb.flush() as v:
        parts.append(bytes(v))
    assert parts[1] == b"4\r\ntwo!\r\n"
    with rb.flush() as v:  # nothing new
        assert bytes(v) == b""
    rb.end()
    with rb.finalize() as v:
        parts.append(bytes(v))
    assert parts[2] == b"0\r\n\r\n"
    _, body, _ = h11_parse(b"".join(parts))
    assert body == b"onetwo!"


def test_streaming_head_first_then_chunks():
    rb = ResponseBuilder()
    rb.status(200)
    rb.chunk(b"")  # an empty first message: the head goes out alone
    with rb.flush() as v:
        assert bytes(v) == b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    rb.chunk(b"x")
    with rb.finalize() as v:
        assert bytes(v) == b"1\r\nx\r\n0\r\n\r\n"


def test_streaming_fixed_length_with_caller_length():
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"content-length", b"10")
    rb.body(b"01234")
    parts = []
    with rb.flush() as v:
        parts.append(bytes(v))
    assert parts[0] == b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234"
    rb.body(b"56789")
    with rb.finalize() as v:
        parts.append(bytes(v))
    assert parts[1] == b"56789"
    assert rb.body_length == rb.content_length == 10
    assert h11_parse(b"".join(parts))[1] == b"0123456789"


def test_streaming_close_delimited():
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"Connection", b"close")
    assert rb.connection_close
    with rb.flush() as v:
        head = bytes(v)
    assert head == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    rb.body(b"streamed")
    with rb.finalize() as v:
        rest = bytes(v)
    assert h11_parse(head + rest)[1] == b"streamed"


def test_flush_refused_while_framing_unknown():
    rb = ResponseBuilder()
    rb.status(200)
    rb.body(b"abc")
    with pytest.raises(ValueError, match="framing"):
        rb.flush()
    # Still usable as a plain fixed-length response.
    assert rb.getvalue().endswith(b"content-length: 3\r\n\r\nabc")


def test_flush_errors():
    rb = ResponseBuilder()
    with pytest.raises(ValueError, match="status"):
        rb.flush()
    rb.status(204)
    with rb.flush() as v:
        assert bytes(v) == b"HTTP/1.1 204 No Content\r\n\r\n"
    rb.finalize().release()
    with pytest.raises(ValueError, match="finalize"):
        rb.flush()


def test_write_after_flush_while_view_alive_is_refused():
    rb = ResponseBuilder()
    rb.status(200)
    rb.chunk(b"a")
    view = rb.flush()
    with pytest.raises(BufferError):
        rb.chunk(b"b")
    assert bytes(view).endswith(b"1\r\na\r\n")  # untouched
    view.release()
    rb.chunk(b"b")
    with rb.flush() as v:
        assert bytes(v) == b"1\r\nb\r\n"


def test_long_stream_does_not_grow_the_buffer():
    rb = ResponseBuilder(initial_capacity=4096)
    rb.status(200)
    for _ in range(1000):
        rb.chunk(b"x" * 1000)
        rb.flush().release()
    assert rb.capacity == 4096


# --- status line ----------------------------------------------------------


@pytest.mark.parametrize("code", range(100, 600))
def test_every_status_line(code):
    line = status_line(code)
    assert line == f"HTTP/1.1 {code} {expected_reason(code)}\r\n".encode()
    assert re.fullmatch(rb"HTTP/1\.1 [1-5]\d\d [\t -~]*\r\n", line)
    rb = ResponseBuilder()
    rb.status(code)
    assert rb.status_code == code
    assert rb.getvalue().startswith(line)


def test_status_lines_parse_with_h11():
    for code in (100, 200, 299, 404, 451, 599):
        resp = h11_parse(simple(code))[0]
        assert resp.status_code == code
        assert resp.reason == expected_reason(code).encode()


@pytest.mark.parametrize("code", [-1, 0, 99, 600, 1000])
def test_status_out_of_range(code):
    with pytest.raises(ValueError, match="100-599"):
        status_line(code)
    with pytest.raises(ValueError, match="100-599"):
        ResponseBuilder().status(code)


def test_custom_reason():
    rb = ResponseBuilder()
    rb.status(200, "Fine\tThanks é")
    assert rb.getvalue().startswith(b"HTTP/1.1 200 Fine\tThanks \xe9\r\n")
    rb.reset()
    rb.status(599, b"")
    assert rb.getvalue().startswith(b"HTTP/1.1 599 \r\n")


@pytest.mark.parametrize("reason", [b"OK\r\nX-Injected: 1", b"a\nb", b"a\x00", b"\x7f", b"\x1b[31m"])
def test_reason_with_controls_refused(reason):
    rb = ResponseBuilder()
    with pytest.raises(ValueError, match="reason"):
        rb.status(200, reason)
    rb.status(200)  # the refused call left nothing behind
    assert rb.getvalue().startswith(b"HTTP/1.1 200 OK\r\n")


def test_status_twice_and_order_errors():
    rb = ResponseBuilder()
    with pytest.raises(ValueError, match="status"):
        rb.header(b"a", b"b")
    with pytest.raises(ValueError, match="status"):
        rb.body(b"x")
    with pytest.raises(ValueError, match="status"):
        rb.chunk(b"x")
    with pytest.raises(ValueError, match="status"):
        rb.finalize()
    with pytest.raises(ValueError, match="status"):
        rb.raw_headers(b"a: b\r\n")
    rb.status(200)
    with pytest.raises(ValueError, match="already"):
        rb.status(200)
    with pytest.raises(TypeError):
        rb.status(200, 5)


# --- header validation ----------------------------------------------------


@pytest.mark.parametrize(
    "name, value",
    [
        (b"x-a", b"1\r\nSet-Cookie: evil=1"),
        (b"x-a", b"1\nX: y"),
        (b"x-a", b"1\rX: y"),
        (b"x-a", b"nul\x00byte"),
        (b"x-a", b"del\x7f"),
        (b"x-a", b"esc\x1b"),
        (b"x-a\r\nX-Injected", b"1"),
        (b"x-a ", b"space before colon"),
        (b"x a", b"1"),
        (b"x:a", b"1"),
        (b"", b"empty name"),
        (b"x-\xe9", b"non-ASCII name"),
        (b"(x)", b"1"),
        ("x-a", "1\r\n"),
    ],
)
def test_header_injection_refused(name, value):
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"x-ok", b"1")
    before = len(rb)
    with pytest.raises(ValueError) as err:
        rb.header(name, value)
    assert "header" in str(err.value)
    assert len(rb) == before
    with pytest.raises(ValueError):
        rb.headers([(b"x-fine", b"2"), (name, value)])
    out = rb.getvalue()
    assert b"X-Injected" not in out and b"evil" not in out
    h11_parse(out)


def test_error_names_the_header():
    rb = ResponseBuilder()
    rb.status(200)
    with pytest.raises(ValueError, match="x-secret"):
        rb.header(b"x-secret", b"a\nb")


def test_value_byte_classes_match_rfc9110():
    # field-vchar = VCHAR / obs-text, plus SP and HTAB inside (RFC 9110 §5.5).
    for b in range(256):
        rb = ResponseBuilder()
        rb.status(200)
        ok = b == 0x09 or 0x20 <= b <= 0x7E or b >= 0x80
        if ok:
            rb.header(b"x", bytes([b]))
        else:
            with pytest.raises(ValueError):
                rb.header(b"x", bytes([b]))


def test_name_byte_classes_match_rfc9110():
    for b in range(256):
        rb = ResponseBuilder()
        rb.status(200)
        if b in TCHAR:
            rb.header(bytes([b]), b"v")
        else:
            with pytest.raises(ValueError, match="token"):
                rb.header(bytes([b, 0x61]), b"v")


def test_header_types():
    rb = ResponseBuilder()
    rb.status(200)
    rb.header("x-str", "caf\xe9")
    rb.header(bytearray(b"x-ba"), memoryview(b"mv"))
    rb.header(b"x-empty", b"")
    with pytest.raises(UnicodeEncodeError):
        rb.header("x-a", "\u20ac")
    with pytest.raises(TypeError):
        rb.header(b"x-a", 5)
    with pytest.raises(TypeError):
        rb.header(None, b"v")
    assert rb.getvalue() == (
        b"HTTP/1.1 200 OK\r\nx-str: caf\xe9\r\nx-ba: mv\r\nx-empty: \r\ncontent-length: 0\r\n\r\n"
    )


def test_headers_accepts_asgi_shapes():
    rb = ResponseBuilder()
    rb.status(200)
    rb.headers([[b"a", b"1"], (b"b", b"2")])
    rb.headers(x for x in [(b"c", b"3")])
    rb.headers([])
    with pytest.raises(ValueError):
        rb.headers([(b"a", b"1", b"2")])
    with pytest.raises(TypeError):
        rb.headers([5])
    with pytest.raises(TypeError):
        rb.headers(None)
    assert rb.getvalue() == b"HTTP/1.1 200 OK\r\na: 1\r\nb: 2\r\nc: 3\r\ncontent-length: 0\r\n\r\n"


def test_headers_after_body_refused():
    rb = ResponseBuilder()
    rb.status(200)
    rb.body(b"x")
    for call in (lambda: rb.header(b"a", b"b"), lambda: rb.headers([(b"a", b"b")]),
                 lambda: rb.content_type(b"text/plain"), lambda: rb.raw_headers(b"a: b\r\n")):
        with pytest.raises(ValueError, match="before the body"):
            call()


def test_content_type_and_flags():
    rb = ResponseBuilder()
    rb.status(200)
    assert not (rb.has_content_type or rb.has_date or rb.has_server or rb.connection_close)
    rb.content_type("application/json")
    rb.headers([(b"DATE", b"Mon, 01 Jan 2024 00:00:00 GMT"), (b"Server", b"x")])
    rb.header(b"connection", b"keep-alive, Close")
    assert rb.has_content_type and rb.has_date and rb.has_server and rb.connection_close
    assert not rb.has_content_length and rb.content_length == -1
    assert not rb.has_transfer_encoding and not rb.chunked
    assert rb.getvalue().startswith(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")


@pytest.mark.parametrize("value", [b"keep-alive", b"closed", b"xclose", b"upgrade"])
def test_connection_without_close(value):
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"Connection", value)
    assert not rb.connection_close


@pytest.mark.parametrize("value, n", [(b"0", 0), (b"007", 7), (b"9223372036854775807", 2**63 - 1)])
def test_content_length_values(value, n):
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"CONTENT-LENGTH", value)
    assert rb.has_content_length and rb.content_length == n


@pytest.mark.parametrize(
    "value", [b"", b"-1", b"+1", b" 1", b"1 ", b"1,1", b"0x10", b"1e3", b"9223372036854775808",
              b"99999999999999999999999"]
)
def test_content_length_invalid(value):
    rb = ResponseBuilder()
    rb.status(200)
    with pytest.raises(ValueError, match="content-length"):
        rb.header(b"content-length", value)
    assert not rb.has_content_length


def test_content_length_conflicts():
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"content-length", b"1")
    with pytest.raises(ValueError, match="duplicate"):
        rb.header(b"Content-Length", b"1")
    with pytest.raises(ValueError, match="MUST NOT"):
        rb.header(b"transfer-encoding", b"chunked")
    with pytest.raises(ValueError, match="body"):
        rb.chunk(b"x")
    rb.reset()
    rb.status(200)
    rb.header(b"transfer-encoding", b"chunked")
    with pytest.raises(ValueError, match="MUST NOT"):
        rb.header(b"content-length", b"1")


def test_raw_headers_are_trusted_but_must_end_in_crlf():
    rb = ResponseBuilder()
    rb.status(200)
    rb.raw_headers(b"date: Mon, 01 Jan 2024 00:00:00 GMT\r\nserver: fasterapi\r\n")
    rb.raw_headers(b"")
    with pytest.raises(ValueError, match="CRLF"):
        rb.raw_headers(b"x: 1")
    with pytest.raises(ValueError, match="CRLF"):
        rb.raw_headers(b"\n")
    # Not parsed: the flags stay off.
    assert not rb.has_date and not rb.has_server
    out = rb.getvalue()
    assert out == (
        b"HTTP/1.1 200 OK\r\ndate: Mon, 01 Jan 2024 00:00:00 GMT\r\nserver: fasterapi\r\n"
        b"content-length: 0\r\n\r\n"
    )
    assert h11_parse(out)[0].headers[1] == (b"server", b"fasterapi")


# --- state errors ---------------------------------------------------------


def test_mixing_framings_refused():
    rb = ResponseBuilder()
    rb.status(200)
    rb.body(b"x")
    with pytest.raises(ValueError, match="mixed"):
        rb.chunk(b"y")
    with pytest.raises(ValueError, match="mixed"):
        rb.end()
    rb.reset()
    rb.status(200)
    rb.chunk(b"y")
    with pytest.raises(ValueError, match="chunk"):
        rb.body(b"x")
    rb.end()
    with pytest.raises(ValueError, match="complete"):
        rb.end()
    with pytest.raises(ValueError, match="complete"):
        rb.chunk(b"z")


def test_writes_after_finalize_refused():
    rb = ResponseBuilder()
    rb.status(200)
    rb.finalize().release()
    with pytest.raises(ValueError, match="complete"):
        rb.body(b"x")
    with pytest.raises(ValueError, match="before the body"):
        rb.header(b"a", b"b")
    with pytest.raises(ValueError, match="complete"):
        rb.chunk(b"x")


def test_body_and_chunk_reject_str():
    rb = ResponseBuilder()
    rb.status(200)
    with pytest.raises(TypeError):
        rb.body("text")
    with pytest.raises(TypeError):
        rb.chunk("text")
    with pytest.raises(TypeError):
        rb.body(5)


# --- the export guard -----------------------------------------------------


def test_buffer_error_while_view_exported():
    rb = ResponseBuilder()
    rb.status(200)
    rb.chunk(b"a")
    view = rb.flush()
    for call in (lambda: rb.chunk(b"b"), lambda: rb.end(), rb.reset, rb.finalize):
        with pytest.raises(BufferError):
            call()
    view.release()
    rb.reset()
    rb.status(200)
    rb.header(b"a", b"b")
    view = rb.finalize()
    with pytest.raises(BufferError):
        rb.reset()
    sub = view[9:12]  # slices share the export
    view.release()
    with pytest.raises(BufferError):
        rb.reset()
    assert bytes(sub) == b"200"
    sub.release()
    rb.reset()
    assert len(rb) == 0


def test_views_are_read_only():
    rb = ResponseBuilder()
    rb.status(200)
    view = rb.finalize()
    assert view.readonly
    with pytest.raises(TypeError):
        view[0] = 0
    view.release()
    # A consumer asking for a writable buffer (PyBUF_WRITABLE) is refused.
    with pytest.raises((BufferError, TypeError), match="writable"):
        (ctypes.c_char * 4).from_buffer(rb)
    assert bytes(memoryview(rb)) == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


def test_getvalue_keeps_no_export():
    rb = ResponseBuilder()
    rb.status(200)
    rb.body(b"x")
    assert rb.getvalue().endswith(b"x")
    rb.reset()  # no BufferError


# --- growth and reuse -----------------------------------------------------


def test_one_megabyte_body():
    body = bytes(range(256)) * 4096  # 1 MiB
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"content-type", b"application/octet-stream")
    for i in range(0, len(body), 65536):
        rb.body(body[i:i + 65536])
    assert rb.capacity >= len(body)
    with rb.finalize() as v:
        out = bytes(v)
    assert out.endswith(b"content-length: 1048576\r\n\r\n" + body)
    assert h11_parse(out)[1] == body
    rb.reset()
    assert rb.capacity == 4096  # > 1 MiB is not retained


def test_buffer_kept_across_reset_below_limit():
    rb = ResponseBuilder()
    rb.status(200)
    rb.body(b"x" * 100_000)
    grown = rb.capacity
    assert grown > 4096
    rb.reset()
    assert rb.capacity == grown


@pytest.mark.parametrize("cap", [0, 16, 1024, 1025, 100_000])
def test_inline_and_heap_initial_buffers(cap):
    rb = ResponseBuilder(cap)
    for n in (0, 10, 5000, 70_000):
        rb.reset()
        rb.status(200)
        rb.body(b"y" * n)
        assert rb.getvalue() == f"HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n".encode() + b"y" * n


def test_negative_capacity():
    with pytest.raises(ValueError):
        ResponseBuilder(-1)


def test_len_counts_built_bytes():
    rb = ResponseBuilder()
    assert len(rb) == 0
    rb.status(200)
    assert len(rb) == 17
    rb.body(b"abc")
    assert len(rb) == 20
    with rb.finalize() as v:
        assert len(rb) == len(v) == 20 + len(b"content-length: 3\r\n\r\n")


def test_reset_reuses_for_a_different_response():
    rb = ResponseBuilder()
    rb.status(200)
    rb.header(b"content-length", b"3")
    rb.header(b"connection", b"close")
    rb.body(b"abc")
    rb.getvalue()
    rb.reset()
    assert rb.status_code == 0 and not rb.has_content_length and not rb.connection_close
    assert rb.body_length == 0 and rb.content_length == -1
    rb.status(404)
    assert rb.getvalue() == b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


# --- module helpers -------------------------------------------------------


def test_format_chunk_and_last_chunk():
    assert format_chunk(b"hello") == b"5\r\nhello\r\n"
    assert format_chunk(bytearray(b"x" * 255)) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert format_chunk(b"") == b""
    assert LAST_CHUNK == b"0\r\n\r\n"
    with pytest.raises(TypeError):
        format_chunk("str")


# --- property: anything we accept, h11 parses back ------------------------

token = st.text(alphabet=sorted(chr(c) for c in TCHAR), min_size=1, max_size=20)
field_value = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if c == 9 or 0x20 <= c <= 0x7E or c >= 0x80).strip(b" \t")
)
framing = {"content-length", "transfer-encoding", "connection"}


@settings(max_examples=150, deadline=None)
@given(
    code=st.sampled_from([200, 201, 202, 203, 206, 301, 400, 404, 418, 500, 599]),
    headers=st.lists(st.tuples(token.filter(lambda t: t.lower() not in framing), field_value),
                     max_size=8),
    parts=st.lists(st.binary(max_size=300), max_size=5),
    chunked=st.booleans(),
)
def test_h11_parses_what_we_build(code, headers, parts, chunked):
    rb = ResponseBuilder(64)
    rb.status(code)
    rb.headers([(n.encode(), v) for n, v in headers])
    for p in parts:
        rb.chunk(p) if chunked else rb.body(p)
    if chunked:
        rb.end()
    resp, body, _ = h11_parse(rb.getvalue())
    assert resp.status_code == code
    assert body == b"".join(parts)
    got = [(n, v) for n, v in resp.headers if n not in (b"content-length", b"transfer-encoding")]
    assert got == [(n.lower().encode(), v) for n, v in headers]
