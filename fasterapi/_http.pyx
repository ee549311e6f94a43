# cython: language_level=3
"""A strict, sans-IO HTTP/1.1 request parser (RFC 9110, RFC 9112).

Bytes go in with ``feed()``; ``next_event()`` hands back, in order, a
``RequestHead``, the body as ``bytes`` pieces, then ``END``, and continues with
the next pipelined request.  No sockets, no event loop.

Rules this module keeps:

1. Every byte is examined once.  The head, chunk-size line and trailer
   scanners are byte-level state machines that remember where they stopped,
   so a request dripped one byte at a time costs what it costs in one piece,
   and every split of the input gives the same events and the same error.
2. Limits are checked at the byte that crosses them, never "after the next
   read", so they hold however TCP splits the stream.
3. Anything RFC 9112 lets a server reject, and anything two parsers could
   disagree about (the request-smuggling surface), is rejected with the status
   the RFC names.  After an error the parser is dead: every later call raises
   the same error, so bytes after a bad request are never read as a request.
4. Framing numbers are parsed by hand-written digit loops with overflow
   guards, never ``int()`` or ``strtol``.
5. Errors cross the C boundary one way: the nogil scanners store a status and
   a static reason and return ``SCAN_ERROR``; ``_raise`` turns that into
   ``HttpParserError``.

Decisions where the RFCs leave room (each is tested in test_parser_strict.py):

- CONNECT is answered 501 (we are not a proxy), so authority-form targets are
  refused: 501 with CONNECT, 400 with any other method.
- ``HTTP/1.2`` .. ``HTTP/1.9`` are served as 1.1 (RFC 9110 §2.5: a minor
  version is compatible); another major version is 505.
- Content-Length must appear at most once and be 1*DIGIT: a repeat, even of
  the same value, and a comma list are 400 (RFC 9112 §6.3 lets us; they are a
  classic smuggling vector).
- Transfer-Encoding with Content-Length is 400, Transfer-Encoding in HTTP/1.0
  is 400, chunked not final or applied twice is 400, any other coding is 501
  (RFC 9112 §6.1, §6.3).  Empty list elements are ignored (RFC 9110 §5.6.1).
- Targets: origin-form, absolute-form (http/https only, no userinfo) and
  ``*`` with OPTIONS.  Target bytes are VCHAR except "#": browsers send "|",
  "{", "}" and friends unescaped; CTLs, SP, DEL and non-ASCII are refused.
- Up to ``MAX_LEADING_CRLF`` empty lines before a request line are ignored
  (RFC 9112 §2.2).
- Chunk extensions follow RFC 9112 §7.1.1 without its BWS: any whitespace on
  a chunk-size line is 400, as in llhttp (see _scan_chunk_size).
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8
from libc.limits cimport LLONG_MAX
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcpy, memmove

import ipaddress


# ---- byte classes (256-entry tables, built once at import) ---------------

cdef enum:
    C_TCHAR = 1      # tchar, RFC 9110 §5.6.2
    C_FVCHAR = 2     # field-vchar = VCHAR / obs-text, RFC 9110 §5.5
    C_WS = 4         # SP / HTAB (OWS, BWS)
    C_TARGET = 8     # request-target bytes we accept: VCHAR except "#"
    C_HEX = 16       # HEXDIG
    C_DIGIT = 32     # DIGIT
    C_REGNAME = 64   # unreserved / sub-delims, RFC 3986 §3.2.2 reg-name
    C_QDTEXT = 128   # qdtext, RFC 9110 §5.6.4

cdef enum:
    CR = 13
    LF = 10
    SP = 32
    HT = 9
    # RFC 9112 §2.2 asks a server to ignore "at least one" empty line before a
    # request line; a few cover clients that add CRLF after a POST body, and a
    # bound keeps an endless CRLF stream from holding a connection open.
    MAX_LEADING_CRLF = 8
    # Bytes kept per connection before the first feed grows the buffer.
    INITIAL_BUFFER = 4096
    # Header names up to this length are looked up in the interned table.
    MAX_INTERNED_LEN = 32

cdef unsigned char CLS[256]
cdef const char *HTTP_NAME = "HTTP/"
cdef unsigned char LOWER[256]


cdef void _init_tables() noexcept:
    cdef int c
    cdef bytes digit = b"0123456789"
    cdef bytes alpha = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    for c in range(256):
        CLS[c] = 0
        LOWER[c] = c + 32 if 65 <= c <= 90 else c
    for c in b"!#$%&'*+-.^_`|~" + digit + alpha:
        CLS[c] |= C_TCHAR
    for c in range(0x21, 0x7F):
        CLS[c] |= C_FVCHAR
        if c != 0x23:   # "#" starts a fragment, never sent to a server
            CLS[c] |= C_TARGET
    for c in range(0x80, 0x100):
        CLS[c] |= C_FVCHAR | C_QDTEXT   # obs-text
    CLS[SP] |= C_WS
    CLS[HT] |= C_WS
    for c in digit + b"abcdefABCDEF":
        CLS[c] |= C_HEX
    for c in digit:
        CLS[c] |= C_DIGIT
    for c in alpha + digit + b"-._~" + b"!$&'()*+,;=":
        CLS[c] |= C_REGNAME
    # qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
    CLS[HT] |= C_QDTEXT
    CLS[SP] |= C_QDTEXT
    CLS[0x21] |= C_QDTEXT
    for c in range(0x23, 0x5C):
        CLS[c] |= C_QDTEXT
    for c in range(0x5D, 0x7F):
        CLS[c] |= C_QDTEXT


_init_tables()


cdef inline unsigned int _hexval(unsigned char c) noexcept nogil:
    # Only called on bytes of class C_HEX.
    if c <= 0x39:
        return c - 0x30
    return (c | 0x20) - 0x61 + 10


# ---- interned objects ------------------------------------------------------

# Header names most requests carry: a browser GET allocates no name objects,
# and the parser recognises the framing headers by identity.
cdef bytes _H_HOST = b"host"
cdef bytes _H_CONTENT_LENGTH = b"content-length"
cdef bytes _H_TRANSFER_ENCODING = b"transfer-encoding"
cdef bytes _H_CONNECTION = b"connection"
cdef bytes _H_EXPECT = b"expect"
cdef bytes _H_UPGRADE = b"upgrade"

cdef tuple _COMMON_NAMES = (
    _H_HOST, _H_CONTENT_LENGTH, _H_TRANSFER_ENCODING, _H_CONNECTION, _H_EXPECT,
    _H_UPGRADE, b"user-agent", b"accept", b"accept-encoding", b"accept-language",
    b"accept-charset", b"content-type", b"content-encoding", b"cookie", b"referer",
    b"origin", b"authorization", b"cache-control", b"pragma", b"if-none-match",
    b"if-modified-since", b"if-match", b"if-unmodified-since", b"range", b"te",
    b"trailer", b"dnt", b"priority", b"via", b"forwarded", b"x-forwarded-for",
    b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"x-real-ip",
    b"x-request-id", b"x-requested-with", b"upgrade-insecure-requests",
    b"sec-fetch-site", b"sec-fetch-mode", b"sec-fetch-dest", b"sec-fetch-user",
    b"sec-ch-ua", b"sec-ch-ua-mobile", b"sec-ch-ua-platform", b"sec-websocket-key",
    b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol",
    b"keep-alive", b"date", b"x-csrftoken", b"x-api-key",
)
# Sorted by length: the candidates of length n are [_LEN_LO[n], _LEN_HI[n]).
cdef tuple _NAMES_BY_LEN = tuple(sorted(_COMMON_NAMES, key=len))
cdef PyObject *_NAME_OBJ[64]
cdef const unsigned char *_NAME_PTR[64]
cdef Py_ssize_t _LEN_LO[MAX_INTERNED_LEN + 1]
cdef Py_ssize_t _LEN_HI[MAX_INTERNED_LEN + 1]

cdef str _M_GET = "GET"
cdef str _M_HEAD = "HEAD"
cdef str _M_CONNECT = "CONNECT"
cdef str _M_OPTIONS = "OPTIONS"
cdef tuple _METHODS = (_M_GET, _M_HEAD, "POST", "PUT", "DELETE", _M_CONNECT, _M_OPTIONS,
                       "TRACE", "PATCH")
cdef tuple _METHODS_B = tuple(m.encode("ascii") for m in _METHODS)

cdef str _V10 = "1.0"
cdef str _V11 = "1.1"
cdef bytes _SLASH = b"/"
cdef bytes _STAR = b"*"
cdef bytes _EMPTY = b""


cdef void _init_names() noexcept:
    cdef Py_ssize_t k, n
    assert len(_NAMES_BY_LEN) <= 64
    for n in range(MAX_INTERNED_LEN + 1):
        _LEN_LO[n] = 0
        _LEN_HI[n] = 0
    for k in range(len(_NAMES_BY_LEN)):
        name = _NAMES_BY_LEN[k]
        n = len(name)
        assert n <= MAX_INTERNED_LEN
        _NAME_OBJ[k] = <PyObject *>name
        _NAME_PTR[k] = <const unsigned char *>PyBytes_AS_STRING(name)
        if _LEN_HI[n] == 0:
            _LEN_LO[n] = k
        _LEN_HI[n] = k + 1


_init_names()


cdef inline bytes _field_name(const unsigned char *p, Py_ssize_t n):
    """The lowercased name: an interned object for common names, else new bytes."""
    cdef Py_ssize_t k, j
    cdef const unsigned char *q
    cdef char *dst
    if n <= MAX_INTERNED_LEN:
        for k in range(_LEN_LO[n], _LEN_HI[n]):
            q = _NAME_PTR[k]
            j = 0
            while j < n and LOWER[p[j]] == q[j]:
                j += 1
            if j == n:
                return <bytes>_NAME_OBJ[k]
    name = PyBytes_FromStringAndSize(NULL, n)
    dst = PyBytes_AS_STRING(name)
    for j in range(n):
        dst[j] = <char>LOWER[p[j]]
    return name


cdef inline str _method_str(const unsigned char *p, Py_ssize_t n):
    """The method as str; the standard ones are shared objects."""
    cdef Py_ssize_t k
    cdef bytes m
    for k in range(len(_METHODS_B)):
        m = <bytes>(<tuple>_METHODS_B)[k]
        if PyBytes_GET_SIZE(m) == n and memcmp_eq(PyBytes_AS_STRING(m), p, n):
            return <str>(<tuple>_METHODS)[k]
    # A token is ASCII by construction (RFC 9110 §5.6.2).
    return PyUnicode_DecodeASCII(<const char *>p, n, NULL)


cdef inline bint memcmp_eq(const char *a, const unsigned char *b, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if <unsigned char>a[i] != b[i]:
            return False
    return True


cdef inline bint _ieq(const unsigned char *p, Py_ssize_t n, const char *lower) noexcept nogil:
    """Case-insensitive equality of p[:n] with a NUL-terminated lowercase literal."""
    cdef Py_ssize_t i = 0
    while i < n:
        if lower[i] == 0 or LOWER[p[i]] != <unsigned char>lower[i]:
            return False
        i += 1
    return lower[n] == 0


cdef inline Py_ssize_t _next_element(const unsigned char *p, Py_ssize_t n, Py_ssize_t pos,
                                     Py_ssize_t *es, Py_ssize_t *ee) noexcept nogil:
    """One element of a comma list (RFC 9110 §5.6.1) starting at pos.

    Stores the element's bounds, OWS trimmed, in es/ee (empty when es == ee)
    and returns where the next element starts (n + 1 after the last one).
    """
    cdef Py_ssize_t i = pos
    while i < n and p[i] != 0x2C:
        i += 1
    cdef Py_ssize_t a = pos
    cdef Py_ssize_t b = i
    while a < b and (CLS[p[a]] & C_WS):
        a += 1
    while b > a and (CLS[p[b - 1]] & C_WS):
        b -= 1
    es[0] = a
    ee[0] = b
    return i + 1


cdef inline long long _parse_content_length(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    """1*DIGIT as a non-negative integer; -1 if malformed, -2 if it overflows.

    RFC 9112 §6.3: anything but a single valid number is unrecoverable
    framing.  No int(): no signs, underscores, spaces or non-ASCII digits.
    """
    cdef long long v = 0
    cdef long long d
    cdef Py_ssize_t i
    if n == 0:
        return -1
    for i in range(n):
        if not (CLS[p[i]] & C_DIGIT):
            return -1
        d = p[i] - 0x30
        if v > (LLONG_MAX - d) // 10:
            return -2
        v = v * 10 + d
    return v


cdef bint _valid_authority(const unsigned char *p, Py_ssize_t n, bint need_host):
    """authority without userinfo: uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2).

    uri-host is an IP-literal in brackets, or a reg-name (which covers
    IPv4address): unreserved, sub-delims and %HH.  port = *DIGIT.  An empty
    host is valid in Host (RFC 9110 §7.2) but not in an http URI (§4.2.1).
    """
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t close
    cdef const unsigned char *hit
    if n == 0:
        return not need_host
    if p[0] == 0x5B:   # "[" IP-literal "]", RFC 3986 §3.2.2
        hit = <const unsigned char *>memchr(p, 0x5D, n)
        if hit == NULL:
            return False
        close = hit - p
        if not _valid_ip_literal(p + 1, close - 1):
            return False
        i = close + 1
    else:
        while i < n and p[i] != 0x3A:
            if p[i] == 0x25:   # pct-encoded
                if i + 2 >= n or not (CLS[p[i + 1]] & C_HEX) or not (CLS[p[i + 2]] & C_HEX):
                    return False
                i += 3
                continue
            if not (CLS[p[i]] & C_REGNAME):
                return False
            i += 1
        if i == 0 and need_host:
            return False
    if i == n:
        return True
    if p[i] != 0x3A:
        return False
    i += 1
    while i < n:
        if not (CLS[p[i]] & C_DIGIT):
            return False
        i += 1
    return True


cdef bint _valid_ip_literal(const unsigned char *p, Py_ssize_t n):
    """IPv6address / IPvFuture (RFC 3986 §3.2.2); no zone identifiers."""
    cdef Py_ssize_t i
    if n <= 0:
        return False
    if p[0] == 0x76 or p[0] == 0x56:   # IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        i = 1
        while i < n and (CLS[p[i]] & C_HEX):
            i += 1
        if i == 1 or i >= n or p[i] != 0x2E:
            return False
        i += 1
        if i == n:
            return False
        while i < n:
            if not (CLS[p[i]] & C_REGNAME) and p[i] != 0x3A:
                return False
            i += 1
        return True
    for i in range(n):
        if not (CLS[p[i]] & C_HEX) and p[i] != 0x3A and p[i] != 0x2E:
            return False   # also refuses "%" zone ids, which ipaddress would accept
    # The full IPv6 grammar is long; this path is rare, so let the stdlib judge.
    try:
        ipaddress.IPv6Address(PyUnicode_DecodeASCII(<const char *>p, n, NULL))
    except ValueError:
        return False
    return True


cdef str _decode_path(const unsigned char *p, Py_ssize_t n):
    """Percent-decode a path the way uvicorn does (urllib.parse.unquote).

    %XX sequences become bytes, malformed ones stay literal, and the result
    is decoded as UTF-8 with errors="replace".  Targets are ASCII (C_TARGET),
    so for them this equals unquote(path) exactly.
    """
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t j = 0
    cdef unsigned char c
    cdef char *dst
    if memchr(p, 0x25, n) == NULL:
        return PyUnicode_DecodeASCII(<const char *>p, n, NULL)
    tmp = PyBytes_FromStringAndSize(NULL, n)
    dst = PyBytes_AS_STRING(tmp)
    while i < n:
        c = p[i]
        if c == 0x25 and i + 2 < n and (CLS[p[i + 1]] & C_HEX) and (CLS[p[i + 2]] & C_HEX):
            dst[j] = <char>((_hexval(p[i + 1]) << 4) | _hexval(p[i + 2]))
            i += 3
        else:
            dst[j] = <char>c
            i += 1
        j += 1
    return PyUnicode_DecodeUTF8(dst, j, "replace")


cdef Py_ssize_t _absolute_form_authority(const unsigned char *t, Py_ssize_t n) noexcept nogil:
    """Offset of the authority if t starts with "http://" or "https://", else -1.

    RFC 9112 §3.2.2.  Scheme names are case-insensitive (RFC 3986 §3.1).
    """
    if n >= 7 and _ieq(t, 7, "http://"):
        return 7
    if n >= 8 and _ieq(t, 8, "https://"):
        return 8
    return -1


# ---- public objects ----------------------------------------------------------

class HttpParserError(Exception):
    """The request cannot be served; answer ``status`` and close the connection.

    ``status`` is 400, 413, 414, 431, 501 or 505; ``reason`` says which rule
    was broken, for the log (never echo it to the client verbatim).
    """

    def __init__(self, status, reason):
        Exception.__init__(self, status, reason)
        self.status = status
        self.reason = reason

    def __str__(self):
        return f"{self.status} {self.reason}"


class _EndOfMessage:
    """The type of END: the current request's body is complete."""

    __slots__ = ()

    def __repr__(self):
        return "END"

    def __reduce__(self):
        return "END"


END = _EndOfMessage()


cdef class RequestHead:
    """A parsed request head: the ASGI scope plus the framing decisions.

    All attributes are read-only; see _http.pxd for their meaning.
    """

    def __repr__(self):
        return (f"<RequestHead {self.method} {self.scope.get('raw_path')!r} "
                f"HTTP/{self.http_version} keep_alive={self.keep_alive} "
                f"chunked={self.chunked} content_length={self.content_length}>")


cdef class RequestParser:
    """Incremental parser for the requests of one HTTP/1.1 connection.

    ``feed(data)`` copies bytes in; ``next_event()`` returns a RequestHead,
    a non-empty ``bytes`` piece of body, ``END`` after each request's body
    (immediately after the head when there is none), or None when it needs
    more bytes.  Requests are returned in the order they arrived, so the
    server answers pipelined requests in order.

    Limits: ``max_request_line`` bytes of request line without its CRLF
    (414), ``max_header_bytes`` of field section including the CRLFs and
    ``max_headers`` field lines (431), ``max_chunk_ext`` bytes of extensions
    per chunk-size line (400), ``max_trailer_bytes`` of trailer section (431),
    ``max_body_size`` bytes of body, 0 for no limit (413).
    """

    def __cinit__(self):
        self.buf = NULL
        self.fields = NULL

    def __init__(self, dict scope_base not None, *, Py_ssize_t max_request_line=8190,
                 Py_ssize_t max_header_bytes=65536, Py_ssize_t max_headers=100,
                 Py_ssize_t max_chunk_ext=1024, Py_ssize_t max_trailer_bytes=8192,
                 long long max_body_size=0):
        if max_request_line < 16 or max_header_bytes < 2 or max_headers < 0 \
                or max_chunk_ext < 0 or max_trailer_bytes < 2 or max_body_size < 0:
            raise ValueError("parser limits must be non-negative (and fit a minimal request)")
        # scope_base plus a placeholder for each key _build_head sets.
        self.scope_template = dict(scope_base, method=None, http_version=None, path=None,
                                   raw_path=None, query_string=None, headers=None)
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_chunk_ext = max_chunk_ext
        self.max_trailer_bytes = max_trailer_bytes
        self.max_body_size = <unsigned long long>max_body_size
        free(self.fields)
        self.fields = <FieldSpan *>malloc(sizeof(FieldSpan) * (max_headers + 1))
        if self.fields == NULL:
            raise MemoryError()
        self.cap = 0
        self.start = 0
        self.end = 0
        self.state = PS_HEAD
        self._reset_head()

    def __dealloc__(self):
        free(self.buf)
        free(self.fields)

    cdef void _reset_head(self) noexcept nogil:
        self.scan = 0
        self.hs = HS_PRE
        self.leading_crlf = 0
        self.rl_off = 0
        self.vlen = 0
        self.nfields = 0

    # ---- input ----------------------------------------------------------------

    def feed(self, data):
        """Copy ``data`` (bytes, bytearray, memoryview: any C-contiguous buffer)
        into the parser's buffer.  Parsing happens in ``next_event()``.

        Raises the stored HttpParserError once the parser is dead, BufferError
        or TypeError for objects that are not contiguous buffers.
        """
        cdef Py_buffer view
        if PyBytes_CheckExact(data):
            self.c_feed(<const unsigned char *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            return
        if self.state == PS_DEAD:
            self._raise()       # the stored error, before exporting a buffer
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._append(<const unsigned char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef int c_feed(self, const unsigned char *p, Py_ssize_t n) except -1:
        """feed() for n bytes at p (the protocol's own read buffer)."""
        if self.state == PS_DEAD:
            self._raise()
        return self._append(p, n)

    cdef int _append(self, const unsigned char *p, Py_ssize_t n) except -1:
        cdef Py_ssize_t need, newcap
        cdef unsigned char *nb
        if n <= 0:
            return 0
        if self.start == self.end:
            # Everything consumed (and scan == 0): start over at the front.
            self.start = self.end = 0
        need = self.end - self.start + n
        if self.end + n > self.cap:
            if self.start > 0:
                # Offsets are kept relative to `start`, so moving the live
                # bytes to the front invalidates nothing.
                memmove(self.buf, self.buf + self.start, self.end - self.start)
                self.end -= self.start
                self.start = 0
            if need > self.cap:
                newcap = self.cap * 2 if self.cap else INITIAL_BUFFER
                if newcap < need:
                    newcap = need
                nb = <unsigned char *>realloc(self.buf, newcap)
                if nb == NULL:
                    raise MemoryError()
                self.buf = nb
                self.cap = newcap
        memcpy(self.buf + self.end, p, n)
        self.end += n
        return 0

    @property
    def buffered(self):
        """Bytes fed but not yet consumed (the server pauses reading when large)."""
        return self.end - self.start

    def reset_buffer_if_idle(self):
        """Free a buffer that grew past its initial size once nothing is buffered."""
        if self.start == self.end and self.cap > INITIAL_BUFFER:
            free(self.buf)
            self.buf = NULL
            self.cap = self.start = self.end = 0

    def take_buffer(self):
        """Return and drop the unparsed bytes: the first bytes of a new protocol.

        For the server after an Upgrade request's END (RFC 9110 §7.8): the
        bytes that follow belong to the new protocol, not to HTTP.  Raises the
        stored error when the parser is dead.
        """
        if self.state == PS_DEAD:
            self._raise()
        data = PyBytes_FromStringAndSize(<char *>self.buf + self.start, self.end - self.start)
        self.start = self.end = 0
        if self.state == PS_HEAD:
            self._reset_head()
        return data

    # ---- output ---------------------------------------------------------------

    def next_event(self):
        """The next event: RequestHead, body bytes (never empty), END, or None.

        None means more bytes are needed.  Raises HttpParserError (with
        ``.status``) for a request that must be refused; after that the
        parser is dead and every call raises the same error again.
        """
        if self.state == PS_DEAD:
            self._raise()
        return self._step()

    cdef object _raise(self):
        self.state = PS_DEAD
        raise HttpParserError(self.err_status, (<bytes>self.err_reason).decode("ascii"))

    cdef int _fail(self, int status, const char *reason) noexcept nogil:
        self.err_status = status
        self.err_reason = reason
        return SCAN_ERROR

    cdef object _step(self):
        cdef int r
        cdef Py_ssize_t avail, n
        cdef unsigned long long size
        cdef unsigned char c
        while True:
            if self.state == PS_HEAD:
                r = self._scan_head()
                if r == SCAN_MORE:
                    return None
                if r == SCAN_ERROR:
                    return self._raise()
                head = self._build_head()
                self.start += self.scan
                self._reset_head()
                return head
            elif self.state == PS_BODY_CL or self.state == PS_CHUNK_DATA:
                if self.remaining == 0:
                    if self.state == PS_BODY_CL:
                        self.state = PS_HEAD
                        return END
                    self.state = PS_CHUNK_CR
                    continue
                avail = self.end - self.start
                if avail == 0:
                    return None
                n = avail if <unsigned long long>avail < self.remaining else <Py_ssize_t>self.remaining
                data = PyBytes_FromStringAndSize(<char *>self.buf + self.start, n)
                self.start += n
                self.remaining -= <unsigned long long>n
                return data
            elif self.state == PS_END_PENDING:
                self.state = PS_HEAD
                return END
            elif self.state == PS_CHUNK_SIZE:
                r = self._scan_chunk_size()
                if r == SCAN_MORE:
                    return None
                if r == SCAN_ERROR:
                    return self._raise()
                self.start += self.scan
                self.scan = 0
                size = self.remaining
                if size == 0:
                    # last-chunk: the trailer section follows (RFC 9112 §7.1.2)
                    self.state = PS_TRAILERS
                    self.hs = FS_LINE_START
                    self.fields_off = 0
                    self.nfields = 0
                    continue
                if self.max_body_size and size > self.max_body_size - self.body_total:
                    self._fail(413, "chunked body exceeds max_body_size")
                    return self._raise()
                self.body_total += size
                self.state = PS_CHUNK_DATA
            elif self.state == PS_CHUNK_CR or self.state == PS_CHUNK_LF:
                # chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF: the
                # data must be followed by exactly CRLF (RFC 9112 §7.1).
                if self.start == self.end:
                    return None
                c = self.buf[self.start]
                if self.state == PS_CHUNK_CR:
                    if c != CR:
                        self._fail(400, "chunk data not followed by CRLF (RFC 9112 7.1)")
                        return self._raise()
                    self.state = PS_CHUNK_LF
                else:
                    if c != LF:
                        self._fail(400, "bare CR after chunk data (RFC 9112 7.1)")
                        return self._raise()
                    self.state = PS_CHUNK_SIZE
                    self.cs = CS_SIZE
                    self.chunk_digits = 0
                    self.ext_len = 0
                    self.remaining = 0
                self.start += 1
            elif self.state == PS_TRAILERS:
                r = self._scan_fields(self.max_trailer_bytes, False)
                if r == SCAN_MORE:
                    return None
                if r == SCAN_ERROR:
                    return self._raise()
                # Trailers are validated and dropped: ASGI has no request
                # trailers without the (unimplemented) extension.
                self.start += self.scan
                self._reset_head()
                self.state = PS_HEAD
                return END
            else:
                return self._raise()

    # ---- scanners (nogil, byte-level state machines) -------------------------
    #
    # They are `noexcept nogil` (no Python objects, so they could run without
    # the GIL) but are called with it held.  PERF: a whole browser GET, scope
    # included, costs ~2 us (bench/bench_parser.py); releasing the GIL per
    # event would add a release/re-acquire to each call and invite a thread
    # switch in the middle of every request, for no parallelism gained.

    cdef int _scan_head(self) noexcept nogil:
        # request-line = method SP request-target SP HTTP-version CRLF  (RFC 9112 §3)
        cdef const unsigned char *base = self.buf + self.start
        cdef Py_ssize_t i = self.scan
        cdef Py_ssize_t n = self.end - self.start
        cdef Py_ssize_t stop
        cdef unsigned char c
        cdef int st = self.hs
        if st >= FS_LINE_START:
            return self._scan_fields(self.max_header_bytes, True)
        while i < n:
            if st == HS_TARGET:
                # Bytes of the line at index >= rl_off + max_request_line
                # that are not its CRLF make it too long (414).
                stop = self.rl_off + self.max_request_line
                if stop > n:
                    stop = n
                while i < stop and (CLS[base[i]] & C_TARGET):
                    i += 1
                if i == n:
                    break
                if i == stop:
                    return self._fail(414, "request line too long")
                c = base[i]
                if c != SP:
                    return self._fail(400, "invalid byte in request-target")
                if i == self.target_off:
                    return self._fail(400, "empty request-target (RFC 9112 3)")
                self.target_len = i - self.target_off
                self.vlen = 0
                st = HS_VERSION
                i += 1
                continue
            c = base[i]
            if st == HS_PRE:
                if c == CR:
                    st = HS_PRE_LF
                elif CLS[c] & C_TCHAR:
                    self.rl_off = i
                    st = HS_METHOD
                    continue   # the method state counts this byte
                elif c == LF:
                    return self._fail(400, "bare LF before request line (RFC 9112 2.2)")
                else:
                    return self._fail(400, "invalid byte in method (RFC 9110 9.1)")
            elif st == HS_PRE_LF:
                if c != LF:
                    return self._fail(400, "bare CR before request line (RFC 9112 2.2)")
                self.leading_crlf += 1
                if self.leading_crlf > MAX_LEADING_CRLF:
                    return self._fail(400, "too many empty lines before request line")
                st = HS_PRE
            elif st == HS_METHOD:
                if i - self.rl_off >= self.max_request_line:
                    return self._fail(414, "request line too long")
                if CLS[c] & C_TCHAR:
                    pass
                elif c == SP:
                    self.method_len = i - self.rl_off
                    self.target_off = i + 1
                    st = HS_TARGET
                else:
                    return self._fail(400, "invalid byte in method (RFC 9110 9.1)")
            elif st == HS_VERSION:
                # HTTP-version = HTTP-name "/" DIGIT "." DIGIT, HTTP-name
                # case-sensitive (RFC 9112 §2.3): exactly 8 bytes, then CR.
                if self.vlen < 8:
                    if i - self.rl_off >= self.max_request_line:
                        return self._fail(414, "request line too long")
                    if self.vlen < 5:
                        if c != <unsigned char>HTTP_NAME[self.vlen]:
                            return self._fail(400, "malformed HTTP-version (RFC 9112 2.3)")
                    elif self.vlen == 6:
                        if c != 0x2E:
                            return self._fail(400, "malformed HTTP-version (RFC 9112 2.3)")
                    elif not (CLS[c] & C_DIGIT):
                        return self._fail(400, "malformed HTTP-version (RFC 9112 2.3)")
                    elif self.vlen == 5:
                        self.major = c
                    else:
                        self.minor = c
                    self.vlen += 1
                elif c == CR:
                    st = HS_RL_LF
                elif c == LF:
                    return self._fail(400, "bare LF ending the request line (RFC 9112 2.2)")
                else:
                    return self._fail(400, "malformed HTTP-version (RFC 9112 2.3)")
            elif st == HS_RL_LF:
                if c != LF:
                    return self._fail(400, "bare CR in request line (RFC 9112 2.2)")
                if self.major != 0x31:
                    return self._fail(505, "HTTP major version not supported")
                i += 1
                self.fields_off = i
                self.nfields = 0
                self.scan = i
                self.hs = FS_LINE_START
                return self._scan_fields(self.max_header_bytes, True)
            i += 1
        self.scan = i
        self.hs = st
        return SCAN_MORE

    cdef int _scan_fields(self, Py_ssize_t limit, bint record) noexcept nogil:
        # field-line = field-name ":" OWS field-value OWS   (RFC 9112 §5)
        # field-section ends with an empty line; only CRLF ends a line.
        cdef const unsigned char *base = self.buf + self.start
        cdef Py_ssize_t i = self.scan
        cdef Py_ssize_t n = self.end - self.start
        cdef Py_ssize_t stop = self.fields_off + limit
        cdef Py_ssize_t ve
        cdef bint over = stop < n
        cdef unsigned char c, k
        cdef int st = self.hs
        cdef FieldSpan *f
        if not over:
            stop = n
        while i < stop:
            if st == FS_VALUE:
                # PERF: one class test per byte (0.5 ns/byte instead of 2 with
                # a running "last non-OWS" index); trailing OWS is found by
                # walking back once, at the CR, so a drip never rescans.
                while i < stop and (CLS[base[i]] & (C_FVCHAR | C_WS)):
                    i += 1
                if i == stop:
                    break
                if base[i] == CR:
                    ve = i
                    while CLS[base[ve - 1]] & C_WS:   # stops at value_off, a field-vchar
                        ve -= 1
                    self.value_end = ve
                    st = FS_LF
                    i += 1
                    continue
                if base[i] == LF:
                    return self._fail(400, "bare LF in field section (RFC 9112 2.2)")
                return self._fail(400, "invalid byte in field value (RFC 9110 5.5)")
            if st == FS_NAME:
                while i < stop and (CLS[base[i]] & C_TCHAR):
                    i += 1
                if i == stop:
                    break
                c = base[i]
                if c == 0x3A:
                    self.name_end = i
                    st = FS_OWS
                elif CLS[c] & C_WS:
                    return self._fail(400, "whitespace between field name and colon (RFC 9112 5.1)")
                else:
                    return self._fail(400, "invalid byte in field name (RFC 9110 5.1)")
                i += 1
                continue
            c = base[i]
            if st == FS_LINE_START:
                if CLS[c] & C_TCHAR:
                    self.line_off = i
                    st = FS_NAME
                elif c == CR:
                    st = FS_END_LF
                elif CLS[c] & C_WS:
                    return self._fail(400, "obs-fold or whitespace-led field line (RFC 9112 5.2)")
                elif c == 0x3A:
                    return self._fail(400, "empty field name (RFC 9110 5.1)")
                elif c == LF:
                    return self._fail(400, "bare LF in field section (RFC 9112 2.2)")
                else:
                    return self._fail(400, "invalid byte in field name (RFC 9110 5.1)")
            elif st == FS_OWS:
                if CLS[c] & C_WS:
                    pass
                elif CLS[c] & C_FVCHAR:
                    self.value_off = i
                    self.value_end = i + 1
                    st = FS_VALUE
                elif c == CR:
                    self.value_off = i
                    self.value_end = i
                    st = FS_LF
                elif c == LF:
                    return self._fail(400, "bare LF in field section (RFC 9112 2.2)")
                else:
                    return self._fail(400, "invalid byte in field value (RFC 9110 5.5)")
            elif st == FS_LF:
                if c != LF:
                    return self._fail(400, "bare CR in field section (RFC 9112 2.2)")
                if self.nfields >= self.max_headers:
                    if self.state == PS_TRAILERS:
                        return self._fail(431, "too many trailer fields")
                    return self._fail(431, "too many header fields")
                if record:
                    f = &self.fields[self.nfields]
                    f.name_off = self.line_off
                    f.name_len = self.name_end - self.line_off
                    f.value_off = self.value_off
                    f.value_len = self.value_end - self.value_off
                self.nfields += 1
                st = FS_LINE_START
            elif st == FS_END_LF:
                if c != LF:
                    return self._fail(400, "bare CR in field section (RFC 9112 2.2)")
                self.scan = i + 1
                self.hs = st
                return SCAN_DONE
            i += 1
        self.scan = i
        self.hs = st
        if over:
            # A byte exists at index fields_off + limit and the section is
            # not complete: it is too large whatever follows.
            if self.state == PS_TRAILERS:
                return self._fail(431, "trailer section too large")
            return self._fail(431, "header section too large")
        return SCAN_MORE

    cdef int _scan_chunk_size(self) noexcept nogil:
        # chunk-size [ chunk-ext ] CRLF                           (RFC 9112 §7.1)
        # chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
        # chunk-ext-val = token / quoted-string                   (§7.1.1)
        #
        # BWS is refused: senders MUST NOT generate it, llhttp refuses it, and
        # whitespace on chunk lines is where front ends and back ends have
        # disagreed about where a chunk ends.  One reading, no whitespace.
        cdef const unsigned char *base = self.buf + self.start
        cdef Py_ssize_t i = self.scan
        cdef Py_ssize_t n = self.end - self.start
        cdef unsigned char c, k
        cdef int st = self.cs
        while i < n:
            c = base[i]
            k = CLS[c]
            if st == CS_SIZE:
                if k & C_HEX:
                    # 16 hex digits fill 64 bits: more could overflow.
                    if self.chunk_digits == 16:
                        return self._fail(400, "chunk-size longer than 16 hex digits")
                    self.remaining = (self.remaining << 4) | _hexval(c)
                    self.chunk_digits += 1
                    i += 1
                    continue
                if self.chunk_digits == 0:
                    return self._fail(400, "chunk-size is not 1*HEXDIG (RFC 9112 7.1)")
                if c == CR:
                    st = CS_LF
                    i += 1
                    continue
                if c == LF:
                    return self._fail(400, "bare LF in chunk-size line (RFC 9112 7.1)")
                if c != 0x3B:
                    return self._fail(400, "invalid byte after chunk-size (RFC 9112 7.1)")
                st = CS_EXT_NAME_START
                self.ext_len = 1
                if self.ext_len > self.max_chunk_ext:
                    return self._fail(400, "chunk extensions too long")
                i += 1
                continue
            if st == CS_LF:
                if c != LF:
                    return self._fail(400, "bare CR in chunk-size line (RFC 9112 7.1)")
                self.scan = i + 1
                self.cs = st
                return SCAN_DONE
            if c == CR:
                if st == CS_EXT_NAME or st == CS_EXT_TOKVAL or st == CS_EXT_AFTER_QS:
                    st = CS_LF
                    i += 1
                    continue
                return self._fail(400, "malformed chunk extension (RFC 9112 7.1.1)")
            self.ext_len += 1
            if self.ext_len > self.max_chunk_ext:
                return self._fail(400, "chunk extensions too long")
            if st == CS_EXT_NAME_START:
                if not (k & C_TCHAR):
                    return self._fail(400, "malformed chunk extension (RFC 9112 7.1.1)")
                st = CS_EXT_NAME
            elif st == CS_EXT_NAME:
                if k & C_TCHAR:
                    pass
                elif c == 0x3D:
                    st = CS_EXT_VAL_START
                elif c == 0x3B:
                    st = CS_EXT_NAME_START
                else:
                    return self._fail(400, "malformed chunk extension (RFC 9112 7.1.1)")
            elif st == CS_EXT_VAL_START:
                if c == 0x22:
                    st = CS_EXT_QS
                elif k & C_TCHAR:
                    st = CS_EXT_TOKVAL
                else:
                    return self._fail(400, "malformed chunk extension (RFC 9112 7.1.1)")
            elif st == CS_EXT_TOKVAL:
                if k & C_TCHAR:
                    pass
                elif c == 0x3B:
                    st = CS_EXT_NAME_START
                else:
                    return self._fail(400, "malformed chunk extension (RFC 9112 7.1.1)")
            elif st == CS_EXT_AFTER_QS:
                if c != 0x3B:
                    return self._fail(400, "malformed chunk extension (RFC 9112 7.1.1)")
                st = CS_EXT_NAME_START
            elif st == CS_EXT_QS:
                # quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE (RFC 9110 §5.6.4)
                if c == 0x22:
                    st = CS_EXT_AFTER_QS
                elif c == 0x5C:
                    st = CS_EXT_QP
                elif not (k & C_QDTEXT):
                    return self._fail(400, "invalid byte in chunk extension quoted-string")
            elif st == CS_EXT_QP:
                # quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                if not (k & (C_FVCHAR | C_WS)):
                    return self._fail(400, "invalid quoted-pair in chunk extension")
                st = CS_EXT_QS
            i += 1
        self.scan = i
        self.cs = st
        return SCAN_MORE

    # ---- head semantics (with the GIL, once per request) ---------------------

    cdef RequestHead _build_head(self):
        cdef const unsigned char *base = self.buf + self.start
        cdef const unsigned char *t = base + self.target_off
        cdef Py_ssize_t tlen = self.target_len
        cdef const unsigned char *hit
        cdef const unsigned char *v
        cdef Py_ssize_t q, k, a_end, vlen, pos, es, ee, semi
        cdef FieldSpan *f
        cdef long long cl = -1
        cdef long long parsed
        cdef int host_count = 0
        cdef bint is11 = self.minor != 0x30
        cdef bint conn_close = False
        cdef bint conn_keep_alive = False
        cdef bint conn_upgrade = False
        cdef bint expect_continue = False
        cdef bint has_te = False
        cdef int te_codings = 0
        cdef int te_chunked = 0
        cdef bint te_last_chunked = False
        cdef bint te_unknown = False
        cdef bytes authority = None
        cdef bytes host_value = None
        cdef object upgrade_value = None
        cdef RequestHead head

        method = _method_str(base + self.rl_off, self.method_len)
        if method is _M_CONNECT:
            self._fail(501, "CONNECT is not supported (not a proxy)")
            return self._raise()

        # request-target forms, RFC 9112 §3.2
        if tlen == 1 and t[0] == 0x2A:
            if method is not _M_OPTIONS:
                self._fail(400, "asterisk-form is only for OPTIONS (RFC 9112 3.2.4)")
                return self._raise()
            raw_path = _STAR
            query = _EMPTY
        else:
            if t[0] == 0x2F:   # origin-form = absolute-path [ "?" query ]
                k = 0
            else:              # absolute-form = absolute-URI
                k = _absolute_form_authority(t, tlen)
                if k < 0:
                    self._fail(400, "request-target is not origin-, absolute- or asterisk-form")
                    return self._raise()
                a_end = k
                while a_end < tlen and t[a_end] != 0x2F and t[a_end] != 0x3F:
                    a_end += 1
                # RFC 9110 §4.2.1: no empty host in http URIs; userinfo
                # ("@") is refused (§4.2.4) by the reg-name grammar.
                if not _valid_authority(t + k, a_end - k, True):
                    self._fail(400, "invalid authority in absolute-form target")
                    return self._raise()
                authority = PyBytes_FromStringAndSize(<const char *>t + k, a_end - k)
                k = a_end
            hit = <const unsigned char *>memchr(t + k, 0x3F, tlen - k)
            q = tlen if hit == NULL else hit - t
            if q == k:
                raw_path = _SLASH   # an empty path means "/" (RFC 9110 §4.2.3)
            else:
                raw_path = PyBytes_FromStringAndSize(<const char *>t + k, q - k)
            if q + 1 < tlen:
                query = PyBytes_FromStringAndSize(<const char *>t + q + 1, tlen - q - 1)
            else:
                query = _EMPTY
        if raw_path is _STAR:
            path = "*"
        else:
            path = _decode_path(<const unsigned char *>PyBytes_AS_STRING(raw_path),
                                PyBytes_GET_SIZE(raw_path))

        headers = []
        te_values = None
        for k in range(self.nfields):
            f = &self.fields[k]
            name = _field_name(base + f.name_off, f.name_len)
            v = base + f.value_off
            vlen = f.value_len
            value = PyBytes_FromStringAndSize(<const char *>v, vlen)
            headers.append((name, value))
            if name is _H_HOST:
                host_count += 1
                host_value = value
            elif name is _H_CONTENT_LENGTH:
                if cl != -1:
                    self._fail(400, "repeated Content-Length (RFC 9112 6.3)")
                    return self._raise()
                parsed = _parse_content_length(v, vlen)
                if parsed == -2:
                    self._fail(400, "Content-Length too large")
                    return self._raise()
                if parsed < 0:
                    self._fail(400, "invalid Content-Length (RFC 9110 8.6)")
                    return self._raise()
                cl = parsed
            elif name is _H_TRANSFER_ENCODING:
                has_te = True
                if te_values is None:
                    te_values = [value]
                else:
                    te_values.append(value)
            elif name is _H_CONNECTION:
                # Connection = #connection-option (RFC 9110 §7.6.1)
                pos = 0
                while pos <= vlen:
                    pos = _next_element(v, vlen, pos, &es, &ee)
                    if _ieq(v + es, ee - es, "close"):
                        conn_close = True
                    elif _ieq(v + es, ee - es, "keep-alive"):
                        conn_keep_alive = True
                    elif _ieq(v + es, ee - es, "upgrade"):
                        conn_upgrade = True
            elif name is _H_EXPECT:
                if _ieq(v, vlen, "100-continue"):
                    expect_continue = True
            elif name is _H_UPGRADE:
                upgrade_value = value if upgrade_value is None else upgrade_value + b", " + value

        # Host, RFC 9112 §3.2: exactly one in HTTP/1.1, at most one ever, valid.
        if host_count > 1:
            self._fail(400, "more than one Host field (RFC 9112 3.2)")
            return self._raise()
        if host_count == 0 and is11:
            self._fail(400, "HTTP/1.1 request without Host (RFC 9112 3.2)")
            return self._raise()
        if host_value is not None and not _valid_authority(
                <const unsigned char *>PyBytes_AS_STRING(host_value),
                PyBytes_GET_SIZE(host_value), False):
            self._fail(400, "invalid Host value (RFC 9110 7.2)")
            return self._raise()

        # Transfer-Encoding, RFC 9112 §6.1 and §6.3.
        if has_te:
            if not is11:
                self._fail(400, "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1)")
                return self._raise()
            if cl != -1:
                self._fail(400, "both Content-Length and Transfer-Encoding (RFC 9112 6.3)")
                return self._raise()
            for value in te_values:
                v = <const unsigned char *>PyBytes_AS_STRING(value)
                vlen = PyBytes_GET_SIZE(value)
                pos = 0
                while pos <= vlen:
                    pos = _next_element(v, vlen, pos, &es, &ee)
                    if es == ee:
                        continue   # empty list element (RFC 9110 §5.6.1)
                    # transfer-coding = token *( OWS ";" OWS transfer-parameter )
                    semi = es
                    while semi < ee and (CLS[v[semi]] & C_TCHAR):
                        semi += 1
                    if semi == es or (semi < ee and v[semi] != 0x3B and not (CLS[v[semi]] & C_WS)):
                        self._fail(400, "invalid transfer-coding (RFC 9112 7)")
                        return self._raise()
                    te_codings += 1
                    te_last_chunked = _ieq(v + es, semi - es, "chunked")
                    if te_last_chunked:
                        te_chunked += 1
                        if semi != ee:
                            self._fail(400, "chunked takes no parameters (RFC 9112 7.1)")
                            return self._raise()
                    else:
                        te_unknown = True
            if te_codings == 0:
                self._fail(400, "empty Transfer-Encoding (RFC 9112 6.1)")
                return self._raise()
            if not te_last_chunked:
                self._fail(400, "chunked is not the final transfer coding (RFC 9112 6.3)")
                return self._raise()
            if te_chunked > 1:
                self._fail(400, "chunked applied more than once (RFC 9112 6.1)")
                return self._raise()
            if te_unknown:
                self._fail(501, "transfer coding not implemented (RFC 9112 6.1)")
                return self._raise()

        if cl > 0 and self.max_body_size and <unsigned long long>cl > self.max_body_size:
            self._fail(413, "Content-Length exceeds max_body_size")
            return self._raise()

        version = _V11 if is11 else _V10
        # PERF: the template already holds every key (see __init__), so the
        # copy has room for them and these are overwrites, not resizes.
        scope = self.scope_template.copy()
        scope["method"] = method
        scope["http_version"] = version
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = query
        scope["headers"] = headers

        head = RequestHead.__new__(RequestHead)
        head.scope = scope
        head.method = method
        head.http_version = version
        head.http11 = is11
        head.is_head = method is _M_HEAD    # _method_str shares the object
        # RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive".
        head.keep_alive = (not conn_close) if is11 else (conn_keep_alive and not conn_close)
        # RFC 9110 §10.1.1: a 100-continue expectation in HTTP/1.0 is ignored.
        head.expect_continue = expect_continue and is11
        head.chunked = has_te
        head.content_length = cl
        head.upgrade = upgrade_value if conn_upgrade else None
        if authority is not None:
            head.host = authority   # RFC 9112 §3.2.2: the target's authority wins
        else:
            head.host = host_value if host_value is not None else _EMPTY

        self.remaining = 0
        if has_te:
            self.state = PS_CHUNK_SIZE
            self.cs = CS_SIZE
            self.chunk_digits = 0
            self.ext_len = 0
            self.body_total = 0
        elif cl > 0:
            self.state = PS_BODY_CL
            self.remaining = <unsigned long long>cl
        else:
            # No framing headers: a request has no body (RFC 9112 §6.3 rule 7).
            self.state = PS_END_PENDING
        return head
