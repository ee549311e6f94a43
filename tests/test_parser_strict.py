"""fasterapi._http refuses what RFC 9110/9112 let a server refuse, with the right status.

One table: (name, raw bytes, expected status[, parser limits]).  Every row is
fed whole, one byte at a time and split randomly (`parse` from test_parser),
so each limit is tested both in one piece and dripped.  Every row also gets a
valid request appended after the bad one: it must never come out as a
request, because after an error the parser is dead (request smuggling).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_parser import SCOPE_BASE, parse

from fasterapi._http import HttpParserError, RequestHead, RequestParser

H = b"Host: a\r\n"
GET = b"GET / HTTP/1.1\r\n" + H
POST = b"POST / HTTP/1.1\r\n" + H
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"
FOLLOWER = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

CASES = [
    # ---- request line, RFC 9112 §3 -------------------------------------------
    ("empty method", b" / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("non-token method", b"GE(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("non-ascii method", b"G\xc3\x89T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("two spaces after method", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("two spaces before version", b"GET /  HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("tab as separator", b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("tab before version", b"GET /\tHTTP/1.1\r\n" + H + b"\r\n", 400),
    ("trailing space after version", b"GET / HTTP/1.1 \r\n" + H + b"\r\n", 400),
    ("no version (HTTP/0.9 style)", b"GET /\r\n\r\n", 400),
    ("method only", b"GET\r\n\r\n", 400),
    ("lowercase HTTP-name", b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    ("version with two-digit minor", b"GET / HTTP/1.10\r\n" + H + b"\r\n", 400),
    ("version without minor", b"GET / HTTP/1\r\n" + H + b"\r\n", 400),
    ("version with two-digit major", b"GET / HTTP/11.1\r\n" + H + b"\r\n", 400),
    ("version with letters", b"GET / HTTP/1.x\r\n" + H + b"\r\n", 400),
    ("version with comma", b"GET / HTTP/1,1\r\n" + H + b"\r\n", 400),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("HTTP/0.9 with version", b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505),
    ("HTTP/3.0", b"GET / HTTP/3.0\r\n" + H + b"\r\n", 505),
    ("h2 prior-knowledge preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    ("bare LF after request line", b"GET / HTTP/1.1\n" + H + b"\r\n", 400),
    ("bare CR after request line", b"GET / HTTP/1.1\rX" + H + b"\r\n", 400),
    ("CR inside target", b"GET /a\rb HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("LF inside target", b"GET /a\nb HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("NUL in target", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("DEL in target", b"GET /a\x7fb HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("CTL in target", b"GET /a\x1bb HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("non-ascii in target", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("fragment in target", b"GET /a#frag HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("request line too long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("long method", b"G" * 9000 + b" / HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("too many leading CRLFs", b"\r\n" * 9 + GET + b"\r\n", 400),
    ("bare LF before request line", b"\n" + GET + b"\r\n", 400),
    ("bare CR before request line", b"\rGET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("leading space", b" GET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("TLS ClientHello on a plain port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
    # ---- request-target forms, RFC 9112 §3.2 ---------------------------------
    ("CONNECT authority-form", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
     501),
    ("CONNECT origin-form", b"CONNECT / HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("authority-form without CONNECT", b"GET example.com:443 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("relative target", b"GET index.html HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("asterisk-form with GET", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("asterisk with a path", b"OPTIONS */x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute-form other scheme", b"GET ftp://a/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute-form empty host", b"GET http:///p HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute-form userinfo", b"GET http://user:pw@a/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute-form one slash", b"GET http:/a/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute-form bad port", b"GET http://a:8x/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute-form bad IPv6", b"GET http://[::g]/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    # ---- field lines, RFC 9112 §5 --------------------------------------------
    ("space before colon", GET + b"X-A : b\r\n\r\n", 400),
    ("tab before colon", GET + b"X-A\t: b\r\n\r\n", 400),
    ("Transfer-Encoding space before colon",
     POST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("obs-fold", GET + b"X-A: b\r\n c\r\n\r\n", 400),
    ("obs-fold with tab", GET + b"X-A: b\r\n\tc\r\n\r\n", 400),
    ("whitespace-led first field line", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    ("bare CR in value", GET + b"X-A: b\rc\r\n\r\n", 400),
    ("bare LF ending a field line", GET + b"X-A: b\n\r\n", 400),
    ("bare LF ending the head", GET + b"X-A: b\r\n\n", 400),
    ("only bare LFs", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("CR CR LF", GET + b"X-A: b\r\r\n\r\n", 400),
    ("NUL in value", GET + b"X-A: b\x00c\r\n\r\n", 400),
    ("DEL in value", GET + b"X-A: b\x7fc\r\n\r\n", 400),
    ("ESC in value", GET + b"X-A: \x1b[31m\r\n\r\n", 400),
    ("VT in value", GET + b"X-A: b\x0bc\r\n\r\n", 400),
    ("CTL as first value byte", GET + b"X-A:\x01\r\n\r\n", 400),
    ("empty name", GET + b": value\r\n\r\n", 400),
    ("name with space", GET + b"X A: b\r\n\r\n", 400),
    ("name with parenthesis", GET + b"X(A): b\r\n\r\n", 400),
    ("name with slash", GET + b"X/A: b\r\n\r\n", 400),
    ("name with non-ascii", GET + b"X\xc3\xa9: b\r\n\r\n", 400),
    ("name with NUL", GET + b"X\x00: b\r\n\r\n", 400),
    ("line without colon", GET + b"X-A\r\n\r\n", 400),
    ("header section too large", GET + b"X: " + b"v" * 70000 + b"\r\n\r\n", 431),
    ("too many fields", GET + b"X: 1\r\n" * 100 + b"\r\n", 431),
    # ---- Host, RFC 9112 §3.2 and RFC 9110 §7.2 -------------------------------
    ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two Host fields", GET + H + b"\r\n", 400),
    ("two Host fields in HTTP/1.0", b"GET / HTTP/1.0\r\n" + H + H + b"\r\n", 400),
    ("absolute-form without Host", b"GET http://a/ HTTP/1.1\r\n\r\n", 400),
    ("Host with space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("Host with userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    ("Host with path", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    ("Host with letters in port", b"GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", 400),
    ("Host with two ports", b"GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400),
    ("Host unclosed IPv6", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    ("Host bad IPv6", b"GET / HTTP/1.1\r\nHost: [zz::1]\r\n\r\n", 400),
    ("Host IPv6 zone", b"GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", 400),
    ("Host junk after IPv6", b"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400),
    ("Host bad pct-encoding", b"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400),
    ("Host non-ascii", b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", 400),
    ("Host empty IPvFuture", b"GET / HTTP/1.1\r\nHost: [v1.]\r\n\r\n", 400),
    # ---- Content-Length, RFC 9110 §8.6 and RFC 9112 §6.3 ---------------------
    ("CL letters", POST + b"Content-Length: abc\r\n\r\n", 400),
    ("CL plus sign", POST + b"Content-Length: +5\r\n\r\nhello", 400),
    ("CL negative", POST + b"Content-Length: -1\r\n\r\n", 400),
    ("CL hex", POST + b"Content-Length: 0x5\r\n\r\nhello", 400),
    ("CL inner space", POST + b"Content-Length: 1 2\r\n\r\n", 400),
    ("CL empty", POST + b"Content-Length:\r\n\r\n", 400),
    ("CL underscore", POST + b"Content-Length: 1_0\r\n\r\n", 400),
    ("CL non-ascii digit", POST + b"Content-Length: \xd9\xa3\r\n\r\n", 400),
    ("CL comma list", POST + b"Content-Length: 5, 5\r\n\r\nhello", 400),
    ("CL repeated, same value", POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("CL repeated, different value", POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
     400),
    ("CL overflow", POST + b"Content-Length: 99999999999999999999\r\n\r\n", 400),
    ("CL and TE (CL.TE)", POST + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
     400),
    ("TE and CL (TE.CL)", POST + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
     400),
    ("CL above max_body_size", POST + b"Content-Length: 11\r\n\r\nhello world", 413,
     {"max_body_size": 10}),
    # ---- Transfer-Encoding, RFC 9112 §6.1, §6.3, §7 --------------------------
    ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE gzip only", POST + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    ("TE identity", POST + b"Transfer-Encoding: identity\r\n\r\n", 400),
    ("TE chunked not final", POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("TE chunked not final across lines",
     POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    ("TE chunked twice", POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE chunked twice across lines",
     POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE xchunked", POST + b"Transfer-Encoding: xchunked\r\n\r\n", 400),
    ("TE chunked with parameter", POST + b"Transfer-Encoding: chunked;q=1\r\n\r\n", 400),
    ("TE empty", POST + b"Transfer-Encoding:\r\n\r\n", 400),
    ("TE only commas", POST + b"Transfer-Encoding: , ,\r\n\r\n", 400),
    ("TE non-token", POST + b"Transfer-Encoding: chu\"nked\"\r\n\r\n", 400),
    ("TE gzip then chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("TE deflate then chunked", POST + b"Transfer-Encoding: deflate\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n0\r\n\r\n", 501),
    # ---- chunked body, RFC 9112 §7.1 -----------------------------------------
    ("chunk-size not hex", CHUNKED + b"g\r\n", 400),
    ("chunk-size empty", CHUNKED + b"\r\nx\r\n", 400),
    ("chunk-size negative", CHUNKED + b"-1\r\n", 400),
    ("chunk-size with 0x", CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size leading space", CHUNKED + b" 5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size trailing space", CHUNKED + b"5 \r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size trailing tab", CHUNKED + b"5\t\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size 17 hex digits", CHUNKED + b"00000000000000005\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size overflow", CHUNKED + b"1ffffffffffffffff\r\n", 400),
    ("chunk-size bare LF", CHUNKED + b"5\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size bare CR", CHUNKED + b"5\rhello\r\n0\r\n\r\n", 400),
    # RFC 9112 §7.1.1 allows BWS here; we refuse it, as llhttp does (see _http.pyx).
    ("chunk ext BWS before ;", CHUNKED + b"5 ;a=1\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext BWS after ;", CHUNKED + b"5; a=1\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext BWS before =", CHUNKED + b"5;a =1\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext BWS after =", CHUNKED + b"5;a= 1\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext tab before ;", CHUNKED + b"5\t;a\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext without name", CHUNKED + b"5;\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext empty name", CHUNKED + b"5;=x\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext empty value", CHUNKED + b"5;a=\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext trailing space", CHUNKED + b"5;a=b \r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext trailing space after name", CHUNKED + b"5;a \r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext non-token name", CHUNKED + b"5;a@b\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext non-token value", CHUNKED + b"5;a=b/c\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext unterminated quote", CHUNKED + b"5;a=\"b\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext junk after quote", CHUNKED + b"5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext CTL in quote", CHUNKED + b"5;a=\"b\x01\"\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext LF in quote", CHUNKED + b"5;a=\"b\nc\"\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext bad quoted-pair", CHUNKED + b"5;a=\"b\\\x00\"\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext NUL", CHUNKED + b"5;a\x00\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext too long", CHUNKED + b"5;" + b"a" * 1100 + b"\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk ext too long in total", CHUNKED + b"5" + b";a=b" * 300 + b"\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk data too long", CHUNKED + b"5\r\nhelloX\r\n0\r\n\r\n", 400),
    ("chunk data then LF only", CHUNKED + b"5\r\nhello\n0\r\n\r\n", 400),
    ("chunk data then CR junk", CHUNKED + b"5\r\nhello\rX0\r\n\r\n", 400),
    ("chunked above max_body_size", CHUNKED + b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n", 413,
     {"max_body_size": 10}),
    ("single chunk above max_body_size", CHUNKED + b"b\r\n", 413, {"max_body_size": 10}),
    # ---- trailers, RFC 9112 §7.1.2 --------------------------------------------
    ("trailer obs-fold", CHUNKED + b"0\r\nX: a\r\n b\r\n\r\n", 400),
    ("trailer space before colon", CHUNKED + b"0\r\nX : a\r\n\r\n", 400),
    ("trailer NUL", CHUNKED + b"0\r\nX: a\x00\r\n\r\n", 400),
    ("trailer bare LF", CHUNKED + b"0\r\nX: a\n\r\n", 400),
    ("trailer section bare LF end", CHUNKED + b"0\r\n\n", 400),
    ("trailer empty name", CHUNKED + b"0\r\n: a\r\n\r\n", 400),
    ("trailer section too large", CHUNKED + b"0\r\nX: " + b"v" * 9000 + b"\r\n\r\n", 431),
    ("too many trailer fields", CHUNKED + b"0\r\n" + b"X: 1\r\n" * 101 + b"\r\n", 431),
    # ---- limits at their exact boundaries (see also test_parser.py) ----------
    ("request line one over", b"GET /" + b"a" * 18 + b" HTTP/1.1\r\n" + H + b"\r\n", 414,
     {"max_request_line": 31}),
    ("request line two over", b"GET /" + b"a" * 18 + b" HTTP/1.1\r\n" + H + b"\r\n", 414,
     {"max_request_line": 30}),
    ("request line at the limit, bare LF", b"GET /" + b"a" * 18 + b" HTTP/1.1\n" + H + b"\r\n", 400,
     {"max_request_line": 32}),
    ("header section over mid-value", GET + b"X: 12345\r\n\r\n", 431, {"max_header_bytes": 15}),
    ("header section over at the final LF", GET + b"X: 12345\r\n\r\n", 431,
     {"max_header_bytes": 20}),
    ("header count one over", GET + b"X: 1\r\nY: 2\r\n\r\n", 431, {"max_headers": 2}),
    ("zero headers allowed", GET + b"\r\n", 431, {"max_headers": 0}),
    ("chunk ext one over", CHUNKED + b"1;abcd=efg\r\nx\r\n0\r\n\r\n", 400, {"max_chunk_ext": 8}),
    ("trailers one over", CHUNKED + b"0\r\nT: 12\r\n\r\n", 431, {"max_trailer_bytes": 8}),
]


# Where several rules share a status, the reason says which one fired: these
# rows must fail for the rule they are named after, not for an earlier typo.
REASONS = {
    "bare LF after request line": "bare LF",
    "bare LF ending a field line": "bare LF",
    "bare LF ending the head": "bare LF",
    "bare CR in value": "bare CR",
    "CR CR LF": "bare CR",
    "space before colon": "whitespace between field name and colon",
    "Transfer-Encoding space before colon": "whitespace between field name and colon",
    "obs-fold": "obs-fold",
    "whitespace-led first field line": "obs-fold",
    "two Host fields": "more than one Host",
    "HTTP/1.1 without Host": "without Host",
    "CL repeated, same value": "repeated Content-Length",
    "CL and TE (CL.TE)": "both Content-Length and Transfer-Encoding",
    "TE and CL (TE.CL)": "both Content-Length and Transfer-Encoding",
    "TE in HTTP/1.0": "HTTP/1.0",
    "TE chunked not final": "not the final",
    "TE chunked twice": "more than once",
    "TE chunked twice across lines": "more than once",
    "chunk-size trailing space": "invalid byte after chunk-size",
    "chunk-size 17 hex digits": "16 hex digits",
    "chunk ext too long": "too long",
    "chunk ext too long in total": "too long",
    "chunk ext one over": "too long",
    "chunk data too long": "not followed by CRLF",
    "chunk data then CR junk": "bare CR",
    "request line at the limit, bare LF": "bare LF",
    "zero headers allowed": "too many header fields",
    "too many trailer fields": "too many trailer fields",
    "trailer section too large": "trailer section too large",
}


def _ids(case):
    return case[0]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_catalogue(case):
    name, raw, status = case[:3]
    limits = case[3] if len(case) > 3 else {}
    events = parse(raw + FOLLOWER, **limits)
    assert events[-1][0] == "error", f"{name}: accepted: {events}"
    assert events[-1][1] == status, f"{name}: {events[-1]}"
    assert REASONS.get(name, "") in events[-1][2], f"{name}: {events[-1]}"
    # Nothing after the error, and the follower never became a request.
    for ev in events[:-1]:
        if ev[0] == "head":
            assert ev[1]["scope"]["raw_path"] != b"/smuggled"


def test_catalogue_names_are_unique():
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names))
    assert set(REASONS) <= set(names)


def test_header_boundary_is_exact():
    # The "one over" rows above sit next to their "exactly at" twins here, so
    # an off-by-one in either direction fails one of them.
    fields = b"Host: a\r\nX: 12345\r\n\r\n"
    assert parse(b"GET / HTTP/1.1\r\n" + fields, max_header_bytes=len(fields))[-1] == ("end",)
    got = parse(b"GET / HTTP/1.1\r\n" + fields, max_header_bytes=len(fields) - 1)[-1]
    assert got[:2] == ("error", 431)
    line = b"GET /" + b"a" * 18 + b" HTTP/1.1"
    assert parse(line + b"\r\n" + H + b"\r\n", max_request_line=len(line))[-1] == ("end",)
    got = parse(line + b"\r\n" + H + b"\r\n", max_request_line=len(line) - 1)[-1]
    assert got[:2] == ("error", 414)


def test_limit_holds_while_the_bytes_are_still_arriving():
    # 414/431 must fire as soon as the limit is crossed, not when the line or
    # section finally ends: a client dripping an endless line is cut off.
    p = RequestParser(dict(SCOPE_BASE), max_request_line=100)
    p.feed(b"GET /")
    for _ in range(95):
        p.feed(b"a")
        assert p.next_event() is None
    p.feed(b"a")
    with pytest.raises(HttpParserError) as exc:
        p.next_event()
    assert exc.value.status == 414
    p = RequestParser(dict(SCOPE_BASE), max_header_bytes=1000)
    p.feed(b"GET / HTTP/1.1\r\nX: ")
    with pytest.raises(HttpParserError) as exc:
        for _ in range(2000):
            p.feed(b"v")
            assert p.next_event() is None
    assert exc.value.status == 431
    assert p.buffered <= 1100


def test_error_is_sticky_and_later_bytes_are_never_parsed():
    p = RequestParser(dict(SCOPE_BASE))
    p.feed(POST + b"Content-Length: 5\r\nContent-Length: 0\r\n\r\n" + FOLLOWER)
    with pytest.raises(HttpParserError) as first:
        p.next_event()
    assert first.value.status == 400
    for _ in range(3):
        with pytest.raises(HttpParserError) as again:
            p.next_event()
        assert (again.value.status, again.value.reason) == (400, first.value.reason)
    with pytest.raises(HttpParserError):
        p.feed(FOLLOWER)
    with pytest.raises(HttpParserError):
        p.take_buffer()


def test_error_after_a_good_request_keeps_the_good_one():
    events = parse(GET + b"\r\n" + b"GET / HTTP/1.1\r\nX : y\r\n\r\n" + FOLLOWER)
    assert events[0][0] == "head" and events[1] == ("end",)
    assert events[2][:2] == ("error", 400) and len(events) == 3


def test_error_in_body_after_head_and_data():
    p = RequestParser(dict(SCOPE_BASE))
    p.feed(CHUNKED + b"3\r\nabcX\r\n")
    assert isinstance(p.next_event(), RequestHead)
    assert p.next_event() == b"abc"
    with pytest.raises(HttpParserError) as exc:
        p.next_event()
    assert exc.value.status == 400


def test_error_has_status_reason_and_message():
    p = RequestParser(dict(SCOPE_BASE))
    p.feed(b"GET / HTTP/2.0\r\n")
    with pytest.raises(HttpParserError) as exc:
        p.next_event()
    assert exc.value.status == 505
    assert isinstance(exc.value.reason, str) and exc.value.reason
    assert str(exc.value).startswith("505 ")


# ---- any input: one verdict whatever the split -----------------------------------

_BASES = [
    b"GET /a?b=1 HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;e=1\r\nabc\r\n2;q=\"\\\"\"\r\nde\r\n0\r\nT: v\r\n\r\n",
    b"\r\nOPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET http://h:1/p HTTP/1.1\r\nHost: a\r\n\r\n",
]
_PIECES = st.sampled_from([
    b"\r\n", b"\r", b"\n", b" ", b"\t", b":", b";", b"=", b'"', b"0", b"f", b"\x00", b"\x7f",
    b"\xff", b"Host: b\r\n", b"Content-Length: 2\r\n", b"Transfer-Encoding: chunked\r\n",
])
_SMALL_LIMITS = {"max_request_line": 24, "max_header_bytes": 40, "max_headers": 3,
                 "max_chunk_ext": 6, "max_trailer_bytes": 12, "max_body_size": 4}


@st.composite
def _damaged_streams(draw):
    raw = bytearray(b"".join(draw(st.lists(st.sampled_from(_BASES), min_size=1, max_size=3))))
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(raw)))
        op = draw(st.sampled_from(["insert", "replace", "delete"]))
        if op == "insert":
            raw[pos:pos] = draw(_PIECES)
        elif pos < len(raw):
            if op == "replace":
                raw[pos] = draw(_PIECES)[0]
            else:
                del raw[pos]
    return bytes(raw)


@settings(max_examples=250, deadline=None)
@given(_damaged_streams())
def test_any_bytes_give_one_verdict_whatever_the_split(raw):
    # parse() asserts that whole, dripped and random splits agree, and that
    # nothing but HttpParserError escapes; small limits reach every limit path.
    parse(raw)
    parse(raw, **_SMALL_LIMITS)
