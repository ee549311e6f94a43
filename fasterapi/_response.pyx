"""HTTP/1.1 response and JSON writers over one growable C buffer.

Rules this module keeps:

1. Every byte of a response is written once, into one buffer, in wire order,
   and handed to the transport as a read-only memoryview of that buffer.  The
   only bytes ever moved are the head's (a few hundred), when finalize() has
   to fit ``content-length`` in front of a body written before its length was
   known (see ``_close_head``).
2. Nothing from the application reaches the wire unchecked: header names
   must be tokens, header values and reason phrases must be free of CTLs
   (the header-injection bytes CR, LF, NUL among them).  Checks happen
   before a byte is written, so a refused header leaves the buffer as it was.
   ``raw_headers()`` is the one trusted door, for the server's own blocks.
3. While a view of the buffer is exported, nothing may change it: every
   mutating method raises ``BufferError`` until the view is released (the
   guard asyncpg's WriteBuffer keeps).
"""

from cpython.buffer cimport (
    PyBUF_SIMPLE,
    PyBUF_WRITABLE,
    PyBuffer_FillInfo,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.conversion cimport Py_DTSF_ADD_DOT_0, PyOS_double_to_string
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free
from cpython.unicode cimport (
    PyUnicode_1BYTE_KIND,
    PyUnicode_AsUTF8AndSize,
    PyUnicode_Check,
    PyUnicode_DATA,
    PyUnicode_GET_LENGTH,
    PyUnicode_KIND,
)
from libc.math cimport isfinite
from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memmove

from fasterapi.includes.http_tables cimport (
    FA_H_CONNECTION,
    FA_H_CONTENT_LENGTH,
    FA_H_CONTENT_TYPE,
    FA_H_DATE,
    FA_H_OTHER,
    FA_H_SERVER,
    FA_H_TRANSFER_ENCODING,
    fa_header_kind,
    fa_json_escape,
    fa_json_escaped_len,
    fa_list_has_token,
    fa_parse_content_length,
    fa_scan_field_value,
    fa_scan_token,
    fa_size_to_hex_backwards,
    fa_u64_to_dec_backwards,
)

cdef extern from "Python.h":
    # 3.11 can still hold "legacy" strings built by deprecated APIs; READY
    # makes KIND/DATA valid for them (a no-op on 3.12+).
    int PyUnicode_READY(object o) except -1
    # Not declared in Cython's cpython/number.pxd.
    object PyNumber_ToBase(object n, int base)


__all__ = ["LAST_CHUNK", "WRITE_APART_MIN", "JsonBuilder", "ResponseBuilder", "format_chunk",
           "reason_phrase", "status_line"]

LAST_CHUNK = b"0\r\n\r\n"
"""The last chunk with no trailer section (RFC 9112 §7.1): ends a chunked body."""

# From this many bytes, a payload (an HTTP body sent in one message, a
# WebSocket binary message) goes out as its own buffer beside the head built
# here, in one writev, instead of being copied behind the head.  uvloop, per
# message on a socketpair (min of 7): 1 KiB 2.1 us copied vs 2.5 beside,
# 4 KiB 3.6 vs 3.5, 64 KiB 30.9 vs 29.6: break-even near 4 KiB.
WRITE_APART_MIN = 4096


# --- Status lines ---------------------------------------------------------

# RFC 9110 §15 reason phrases, plus the other codes IANA's HTTP Status Code
# Registry lists with the RFC that defines each.  306 and 418 are "(Unused)"
# in RFC 9110 §15.4.7 / §15.5.19 and get an empty reason, like any code not
# listed: RFC 9112 §4 allows an empty reason-phrase, and clients must ignore
# it anyway.
_REASONS = {
    100: "Continue", 101: "Switching Protocols",
    102: "Processing",                          # RFC 2518
    103: "Early Hints",                         # RFC 8297
    200: "OK", 201: "Created", 202: "Accepted",
    203: "Non-Authoritative Information", 204: "No Content",
    205: "Reset Content", 206: "Partial Content",
    207: "Multi-Status",                        # RFC 4918
    208: "Already Reported",                    # RFC 5842
    226: "IM Used",                             # RFC 3229
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Found",
    303: "See Other", 304: "Not Modified", 305: "Use Proxy",
    307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 409: "Conflict", 410: "Gone",
    411: "Length Required", 412: "Precondition Failed",
    413: "Content Too Large", 414: "URI Too Long",
    415: "Unsupported Media Type", 416: "Range Not Satisfiable",
    417: "Expectation Failed", 421: "Misdirected Request",
    422: "Unprocessable Content",
    423: "Locked", 424: "Failed Dependency",    # RFC 4918
    425: "Too Early",                           # RFC 8470
    426: "Upgrade Required",
    428: "Precondition Required",               # RFC 6585
    429: "Too Many Requests",                   # RFC 6585
    431: "Request Header Fields Too Large",     # RFC 6585
    451: "Unavailable For Legal Reasons",       # RFC 7725
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
    506: "Variant Also Negotiates",             # RFC 2295
    507: "Insufficient Storage",                # RFC 4918
    508: "Loop Detected",                       # RFC 5842
    511: "Network Authentication Required",     # RFC 6585
}

# status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF
# (RFC 9112 §4), built once for every code 100-599; the C arrays point into
# the bytes objects, which _STATUS_LINES keeps alive for the module's life.
cdef tuple _STATUS_LINES = tuple(
    b"HTTP/1.1 %d %s\r\n" % (code, _REASONS.get(code, "").encode("ascii"))
    for code in range(100, 600)
)
cdef const char *_status_ptr[500]
cdef Py_ssize_t _status_len[500]
cdef Py_ssize_t _i
for _i in range(500):
    _status_ptr[_i] = PyBytes_AS_STRING(_STATUS_LINES[_i])
    _status_len[_i] = PyBytes_GET_SIZE(_STATUS_LINES[_i])


def reason_phrase(int code):
    """Return the RFC 9110 §15 reason phrase for ``code`` ("" for a code with none).

    The one phrase table of the package: the server's own error responses and
    WebSocket handshake refusals use it too, so every response says the same.
    """
    return _REASONS.get(code, "")


def status_line(int code):
    """Return the precomputed ``HTTP/1.1 NNN Reason\\r\\n`` for ``code``.

    Raises ValueError for codes outside 100-599 (RFC 9110 §15: a status code
    is three digits, the first 1-5).
    """
    if code < 100 or code > 599:
        raise ValueError(f"status code {code} is outside 100-599 (RFC 9110 §15)")
    return _STATUS_LINES[code - 100]


# --- Helpers --------------------------------------------------------------

cdef object _latin1(object obj, const char **p, Py_ssize_t *n, str what):
    """Point p/n at obj's bytes (bytes, or latin-1 encodable str) and return the
    object that owns them; the caller keeps it alive while using p."""
    if PyBytes_Check(obj):
        p[0] = PyBytes_AS_STRING(obj)
        n[0] = PyBytes_GET_SIZE(obj)
        return obj
    if PyUnicode_Check(obj):
        PyUnicode_READY(obj)
        # A 1-byte-kind str stores exactly its latin-1 encoding: no copy.
        if PyUnicode_KIND(obj) == PyUnicode_1BYTE_KIND:
            p[0] = <const char *>PyUnicode_DATA(obj)
            n[0] = PyUnicode_GET_LENGTH(obj)
            return obj
        obj = (<str>obj).encode("latin-1")      # raises UnicodeEncodeError
        p[0] = PyBytes_AS_STRING(obj)
        n[0] = PyBytes_GET_SIZE(obj)
        return obj
    if isinstance(obj, (bytearray, memoryview)):
        obj = bytes(obj)
        p[0] = PyBytes_AS_STRING(obj)
        n[0] = PyBytes_GET_SIZE(obj)
        return obj
    raise TypeError(f"{what} must be bytes or str, not {type(obj).__name__}")


cdef str _show(const char *p, Py_ssize_t n):
    # For error messages: the offending name as Python would print it.
    return repr(PyBytes_FromStringAndSize(p, n if n <= 80 else 80))


cdef inline Py_ssize_t _copy(char *dst, const char *src, Py_ssize_t n) noexcept:
    memcpy(dst, src, <size_t>n)
    return n


# --- ResponseBuilder ------------------------------------------------------

cdef class ResponseBuilder:
    """Builds one HTTP/1.1 response at a time in a single growable buffer.

    ``ResponseBuilder(initial_capacity=4096)``: up to 1024 bytes live inside
    the object; a larger capacity is one malloc made now.  The buffer grows by
    doubling and is kept across ``reset()`` (unless it grew past 1 MiB), so a
    builder reused per connection is that connection's pooled buffer.

    Order of calls (anything else raises ValueError naming the problem)::

        status(code[, reason])
        header(name, value) / headers(pairs) / content_type(v) / raw_headers(block)   (any number)
        then ONE of the framings:
          fixed length: body(data)...            -> finalize([head_only])
          chunked:      chunk(data)... [end(trailers)] -> finalize()
        reset()

    Fixed length: body bytes are written right away, behind a small gap
    where ``finalize()`` writes ``content-length: N`` (unless the caller gave
    content-length or transfer-encoding, or the status has no body).

    Streaming: ``flush()`` returns what was built since the previous flush
    and closes the head if it is still open, which needs the framing to be
    known: the caller gave content-length (then body() writes raw bytes) or
    sent ``connection: close`` (a close-delimited body, RFC 9112 §6.3 rule 8)
    or used chunk().  The flushed bytes stay in the buffer until the next
    write, which starts the buffer over at offset 0 (so a long stream never
    grows it); that write raises BufferError if the flushed view is still
    alive, which is what keeps a transport that holds on to the view safe.
    ``finalize()`` after ``flush()`` returns only the remainder.

    The views returned by ``finalize()``/``flush()`` are read-only; release
    them (``view.release()`` or ``with builder.flush() as view:``) before the
    next write or ``reset()``.
    """

    def __cinit__(self, Py_ssize_t initial_capacity=4096):
        if initial_capacity < 0:
            raise ValueError("initial_capacity must be >= 0")
        if initial_capacity <= RB_INLINE_SIZE:
            self._buf = self._inline
            self._cap = RB_INLINE_SIZE
        else:
            self._buf = <char *>malloc(<size_t>initial_capacity)
            if self._buf == NULL:
                raise MemoryError()
            self._cap = initial_capacity
        self._initial_cap = self._cap
        self._clear_state()

    def __dealloc__(self):
        if self._buf != NULL and self._buf != self._inline:
            free(self._buf)
        self._buf = NULL

    cdef void _clear_state(self) noexcept:
        self._start = 0
        self._len = 0
        self._gap_at = -1
        self._head_end = -1
        self._view_start = 0
        self._view_len = 0
        self._body_len = 0
        self._content_length = -1
        self._status = 0
        self._state = RB_EMPTY
        self._discard_pending = False
        self._no_body = False
        self._has_cl = False
        self._has_te = False
        self._te_chunked = False
        self._chunked = False
        self._conn_close = False
        self._has_date = False
        self._has_server = False
        self._has_ct = False

    # -- buffer plumbing --

    def __getbuffer__(self, Py_buffer *view, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("ResponseBuilder views are read-only")
        PyBuffer_FillInfo(view, self, self._buf + self._view_start,
                          self._view_len, 1, flags)
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1

    cdef int _check_writable(self) except -1:
        if self._exports:
            raise BufferError(
                "a view of this ResponseBuilder is still exported; release it "
                "(view.release()) before writing or resetting")
        if self._discard_pending:
            # Everything up to _len was handed out by flush(): start over.
            self._discard_pending = False
            self._start = 0
            self._len = 0
            self._head_end = -1
        return 0

    cdef int _grow(self, Py_ssize_t need) except -1:
        cdef Py_ssize_t cap = self._cap
        cdef char *p
        while cap < need:
            if cap > (<Py_ssize_t>1 << 62):
                cap = need
                break
            cap <<= 1
        if self._buf == self._inline:
            p = <char *>malloc(<size_t>cap)
            if p == NULL:
                raise MemoryError()
            memcpy(p, self._inline, <size_t>self._len)
        else:
            p = <char *>realloc(self._buf, <size_t>cap)
            if p == NULL:
                raise MemoryError()
        self._buf = p
        self._cap = cap
        return 0

    cdef char *_reserve(self, Py_ssize_t n) except NULL:
        # Room for n more bytes at _buf + _len; callers advance _len.
        if n > self._cap - self._len:
            if n > (<Py_ssize_t>1 << 62) - self._len:
                raise MemoryError("response too large")
            self._grow(self._len + n)
        return self._buf + self._len

    cdef int _check_head_open(self) except -1:
        if self._state == RB_HEAD:
            return 0
        if self._state == RB_EMPTY:
            raise ValueError("status() must be called before headers")
        raise ValueError("the head is closed: headers must come before the body")

    # -- status line --

    cdef int c_status(self, int code, const char *reason, Py_ssize_t rlen) except -1:
        cdef char *p
        cdef Py_ssize_t i
        if code < 100 or code > 599:
            raise ValueError(f"status code {code} is outside 100-599 (RFC 9110 §15)")
        self._check_writable()
        if self._state != RB_EMPTY:
            raise ValueError("status() was already called; reset() starts a new response")
        if reason == NULL:
            p = self._reserve(_status_len[code - 100])
            self._len += _copy(p, _status_ptr[code - 100], _status_len[code - 100])
        else:
            # reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ) (RFC 9112 §4):
            # the field-value byte class, so the same table refuses CR/LF/NUL.
            i = <Py_ssize_t>fa_scan_field_value(<const unsigned char *>reason, <size_t>rlen)
            if i != rlen:
                raise ValueError(
                    f"invalid reason phrase: byte 0x{<unsigned char>reason[i]:02x} at "
                    f"offset {i} is a control character (RFC 9112 §4)")
            p = self._reserve(13 + rlen + 2)
            # "HTTP/1.1 NNN " is the precomputed line's first 13 bytes.
            memcpy(p, _status_ptr[code - 100], 13)
            memcpy(p + 13, reason, <size_t>rlen)
            p[13 + rlen] = b'\r'
            p[14 + rlen] = b'\n'
            self._len += 15 + rlen
        self._status = code
        # RFC 9110 §6.4.1: 1xx, 204 and 304 responses never have content.
        self._no_body = code < 200 or code == 204 or code == 304
        self._state = RB_HEAD
        return 0

    def status(self, int code, reason=None):
        """Start the response with ``HTTP/1.1 <code> <reason>\\r\\n``.

        ``reason`` (str or bytes) replaces the standard phrase; it may not
        contain CR, LF, NUL or other control characters except HTAB.  Raises
        ValueError for a code outside 100-599, a bad reason, or a second call
        before reset(); BufferError while a view is exported.
        """
        cdef const char *p = NULL
        cdef Py_ssize_t n = 0
        cdef object keep = None
        if reason is not None:
            keep = _latin1(reason, &p, &n, "reason")
        self.c_status(code, p, n)

    # -- header lines --

    cdef int _write_field(self, const char *name, Py_ssize_t nlen,
                          const char *value, Py_ssize_t vlen, bint track) except -1:
        # Validate first (RFC 9110 §5.1, §5.5), then classify, then copy: a
        # refused field leaves no trace in the buffer.
        cdef Py_ssize_t i
        cdef int kind
        cdef int64_t cl
        cdef char *p
        if nlen == 0:
            raise ValueError("empty header name (RFC 9110 §5.1: a name is a token)")
        i = <Py_ssize_t>fa_scan_token(<const unsigned char *>name, <size_t>nlen)
        if i != nlen:
            raise ValueError(
                f"invalid header name {_show(name, nlen)}: byte "
                f"0x{<unsigned char>name[i]:02x} at offset {i} is not a token "
                f"character (RFC 9110 §5.6.2)")
        i = <Py_ssize_t>fa_scan_field_value(<const unsigned char *>value, <size_t>vlen)
        if i != vlen:
            raise ValueError(
                f"invalid value for header {_show(name, nlen)}: byte "
                f"0x{<unsigned char>value[i]:02x} at offset {i} is a control "
                f"character (CR, LF and NUL would allow header injection; "
                f"RFC 9110 §5.5)")
        if track:
            kind = fa_header_kind(name, <size_t>nlen)
            if kind != FA_H_OTHER:
                if kind == FA_H_CONTENT_LENGTH:
                    if fa_parse_content_length(value, <size_t>vlen, &cl) != 0:
                        raise ValueError(
                            f"invalid content-length {_show(value, vlen)}: expected "
                            f"1*DIGIT up to {INT64_MAX} (RFC 9110 §8.6)")
                    # RFC 9110 §8.6: never in a 1xx or 204 response; drop it
                    # rather than fail an app for a harmless redundancy.
                    if self._status < 200 or self._status == 204:
                        return 0
                    if self._has_cl:
                        raise ValueError("duplicate content-length header")
                    if self._has_te:
                        raise ValueError(
                            "content-length together with transfer-encoding "
                            "(RFC 9112 §6.2: a sender MUST NOT send both)")
                    self._has_cl = True
                    self._content_length = cl
                elif kind == FA_H_TRANSFER_ENCODING:
                    # RFC 9112 §6.1: never in a 1xx or 204 response.
                    if self._status < 200 or self._status == 204:
                        return 0
                    if self._has_cl:
                        raise ValueError(
                            "transfer-encoding together with content-length "
                            "(RFC 9112 §6.2: a sender MUST NOT send both)")
                    self._has_te = True
                    # RFC 9112 §6.1: chunked must be the final coding.
                    self._te_chunked = fa_list_has_token(value, <size_t>vlen,
                                                         b"chunked", 7, 1)
                elif kind == FA_H_CONNECTION:
                    # RFC 9110 §7.6.1: a comma-separated list of options.
                    if fa_list_has_token(value, <size_t>vlen, b"close", 5, 0):
                        self._conn_close = True
                elif kind == FA_H_DATE:
                    self._has_date = True
                elif kind == FA_H_SERVER:
                    self._has_server = True
                elif kind == FA_H_CONTENT_TYPE:
                    self._has_ct = True
        p = self._reserve(nlen + vlen + 4)
        memcpy(p, name, <size_t>nlen)
        p[nlen] = b':'
        p[nlen + 1] = b' '
        memcpy(p + nlen + 2, value, <size_t>vlen)
        p[nlen + 2 + vlen] = b'\r'
        p[nlen + 3 + vlen] = b'\n'
        self._len += nlen + vlen + 4
        return 0

    cdef int c_header(self, const char *name, Py_ssize_t nlen,
                      const char *value, Py_ssize_t vlen) except -1:
        self._check_writable()
        self._check_head_open()
        return self._write_field(name, nlen, value, vlen, True)

    cdef int c_headers(self, object pairs) except -1:
        cdef const char *np
        cdef const char *vp
        cdef Py_ssize_t nn, vn
        cdef object name, value, kn, kv
        self._check_writable()
        self._check_head_open()
        for item in pairs:
            # ASGI gives lists of [bytes, bytes] or tuples: index them
            # directly; anything else unpacks the general way.
            if type(item) is tuple and len(<tuple>item) == 2:
                name = (<tuple>item)[0]
                value = (<tuple>item)[1]
            elif type(item) is list and len(<list>item) == 2:
                name = (<list>item)[0]
                value = (<list>item)[1]
            else:
                name, value = item
            kn = _latin1(name, &np, &nn, "header name")
            kv = _latin1(value, &vp, &vn, "header value")
            self._write_field(np, nn, vp, vn, True)
        return 0

    def header(self, name, value):
        """Append ``name: value\\r\\n``.

        ``name`` and ``value`` are bytes or latin-1 encodable str.  The name
        must be a token (RFC 9110 §5.6.2); the value may not contain CR, LF,
        NUL or other control characters except HTAB (RFC 9110 §5.5).
        content-length, transfer-encoding, connection, date, server and
        content-type are noticed (case-insensitively) and shown by the
        properties of the same names; content-length must be plain digits.
        content-length and transfer-encoding are dropped for 1xx and 204
        (RFC 9110 §8.6, RFC 9112 §6.1).

        Raises ValueError (bad field, header after the body, duplicate
        content-length, content-length with transfer-encoding), TypeError,
        UnicodeEncodeError, BufferError while a view is exported.
        """
        cdef const char *np
        cdef const char *vp
        cdef Py_ssize_t nn, vn
        kn = _latin1(name, &np, &nn, "header name")
        kv = _latin1(value, &vp, &vn, "header value")
        self.c_header(np, nn, vp, vn)

    def headers(self, pairs):
        """Append every ``(name, value)`` of an iterable of 2-item sequences
        (an ASGI ``headers`` list), with header()'s checks.  Headers before a
        refused one stay written."""
        self.c_headers(pairs)

    def content_type(self, value):
        """Append ``content-type: value\\r\\n`` (header()'s value checks)."""
        cdef const char *vp
        cdef Py_ssize_t vn
        kv = _latin1(value, &vp, &vn, "content type")
        self.c_header(b"content-type", 12, vp, vn)

    cdef int c_raw_headers(self, const char *block, Py_ssize_t n) except -1:
        cdef char *p
        self._check_writable()
        self._check_head_open()
        if n == 0:
            return 0
        if n < 2 or block[n - 2] != b'\r' or block[n - 1] != b'\n':
            raise ValueError("raw_headers() block must end with CRLF")
        p = self._reserve(n)
        self._len += _copy(p, block, n)
        return 0

    def raw_headers(self, block):
        """Append preformatted header lines, each ending in CRLF, WITHOUT
        validating them and without noticing framing fields.

        Trusted input only: the server's cached ``date:``/``server:`` block,
        never application data.  Only the final CRLF is checked (ValueError).
        """
        cdef const char *p
        cdef Py_ssize_t n
        keep = _latin1(block, &p, &n, "raw header block")
        self.c_raw_headers(p, n)

    # -- closing the head --

    cdef int _close_head(self, bint auto_length) except -1:
        # Ends the head with CRLF, after "content-length: N" if auto_length.
        # Body bytes written so far sit after a RB_CL_GAP gap; the closing
        # text is written at the gap's end and the head is moved up against
        # it, so the body never moves.
        cdef char tmp[RB_CL_GAP]
        cdef char *digits_end
        cdef Py_ssize_t k = 0, nd, head_len, dst
        cdef char *p
        if auto_length:
            memcpy(tmp, b"content-length: ", 16)
            # Digits straight after the name: write them backwards into the
            # tail of tmp, then slide them down.
            digits_end = tmp + RB_CL_GAP
            nd = <Py_ssize_t>fa_u64_to_dec_backwards(digits_end, <uint64_t>self._body_len)
            memmove(tmp + 16, digits_end - nd, <size_t>nd)
            k = 16 + nd
        memcpy(tmp + k, b"\r\n", 2)
        k += 2
        if auto_length:
            memcpy(tmp + k, b"\r\n", 2)
            k += 2
        if self._gap_at < 0:
            p = self._reserve(k)
            self._len += _copy(p, tmp, k)
            self._head_end = self._len
        else:
            dst = self._gap_at + RB_CL_GAP - k
            memcpy(self._buf + dst, tmp, <size_t>k)
            head_len = self._gap_at - self._start
            memmove(self._buf + dst - head_len, self._buf + self._start, <size_t>head_len)
            self._start = dst - head_len
            self._head_end = self._gap_at + RB_CL_GAP
            self._gap_at = -1
        return 0

    cdef int _open_chunked(self) except -1:
        # Enter chunked mode, closing the head (RFC 9112 §7.1).
        cdef char *p
        if self._state == RB_CHUNKED:
            return 0
        if self._state == RB_EMPTY:
            raise ValueError("status() must be called first")
        if self._state == RB_HEAD_BODY or self._state == RB_BODY:
            raise ValueError("body() and chunk()/end() cannot be mixed in one response")
        if self._state != RB_HEAD:
            raise ValueError("the response is complete; reset() starts a new one")
        if self._no_body:
            raise ValueError(f"a {self._status} response has no body (RFC 9110 §6.4.1)")
        if self._has_cl:
            raise ValueError("content-length was given: use body(), not chunk()")
        if self._has_te:
            if not self._te_chunked:
                raise ValueError("the given transfer-encoding does not end in chunked "
                                 "(RFC 9112 §6.1)")
            p = self._reserve(2)
            self._len += _copy(p, b"\r\n", 2)
        else:
            p = self._reserve(30)
            self._len += _copy(p, b"transfer-encoding: chunked\r\n\r\n", 30)
        self._head_end = self._len
        self._chunked = True
        self._state = RB_CHUNKED
        return 0

    # -- body --

    cdef char *c_body_reserve(self, Py_ssize_t n) except NULL:
        """Room for n body bytes at the returned pointer (fixed-length mode);
        the caller writes k <= n bytes there and adds k to _len and _body_len."""
        self._body_open(n)
        return self._reserve(n)

    cdef int c_body_elsewhere(self, Py_ssize_t n) except -1:
        """Count n body bytes that the caller sends itself, straight after
        the bytes built here (fixed-length mode): the automatic
        content-length includes them, the buffer does not hold them."""
        self._body_open(n)
        self._body_len += n
        return 0

    cdef int _body_open(self, Py_ssize_t n) except -1:
        # Body bytes may follow: check the state, and leave the gap for the
        # automatic content-length before the first of them.
        self._check_writable()
        if self._state == RB_HEAD:
            if n > 0:
                if self._no_body:
                    raise ValueError(
                        f"a {self._status} response has no body (RFC 9110 §6.4.1)")
                self._gap_at = self._len
                self._reserve(RB_CL_GAP)
                self._len += RB_CL_GAP
                self._state = RB_HEAD_BODY
        elif self._state == RB_HEAD_BODY or self._state == RB_BODY:
            if n > 0 and self._no_body:
                raise ValueError(f"a {self._status} response has no body (RFC 9110 §6.4.1)")
        elif self._state == RB_EMPTY:
            raise ValueError("status() must be called first")
        elif self._state == RB_CHUNKED:
            raise ValueError("the response is chunked: use chunk(), not body()")
        else:
            raise ValueError("the response is complete; reset() starts a new one")
        return 0

    cdef int c_body(self, const char *data, Py_ssize_t n) except -1:
        cdef char *p = self.c_body_reserve(n)
        if n:
            self._len += _copy(p, data, n)
            self._body_len += n
        return 0

    def body(self, data):
        """Append body bytes (any contiguous bytes-like); may be called many
        times.  Fixed-length framing: finalize() adds ``content-length``.

        Raises ValueError after chunk(), after the response is complete, or
        for a non-empty body on 1xx/204/304; TypeError for str; BufferError
        while a view is exported.
        """
        cdef Py_buffer buf
        if PyBytes_Check(data):
            self.c_body(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            return
        if PyUnicode_Check(data):
            raise TypeError("body() takes bytes, not str (encode it first)")
        PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE)
        try:
            self.c_body(<const char *>buf.buf, buf.len)
        finally:
            PyBuffer_Release(&buf)

    cdef int c_chunk(self, const char *data, Py_ssize_t n) except -1:
        cdef char *p
        cdef char hexbuf[16]
        cdef Py_ssize_t nh
        self._check_writable()
        self._open_chunked()
        if n == 0:
            # A zero-size chunk would be the last-chunk: write nothing.
            return 0
        # chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF (RFC 9112 §7.1)
        nh = <Py_ssize_t>fa_size_to_hex_backwards(hexbuf + 16, <uint64_t>n)
        p = self._reserve(nh + n + 4)
        memcpy(p, hexbuf + 16 - nh, <size_t>nh)
        p[nh] = b'\r'
        p[nh + 1] = b'\n'
        memcpy(p + nh + 2, data, <size_t>n)
        p[nh + 2 + n] = b'\r'
        p[nh + 3 + n] = b'\n'
        self._len += nh + n + 4
        self._body_len += n
        return 0

    def chunk(self, data):
        """Append one chunk frame of ``data`` (chunked framing).

        The first call closes the head with ``transfer-encoding: chunked``
        (or uses the caller's transfer-encoding if it ends in chunked).
        Empty data writes no frame.  Raises ValueError after body(), when
        content-length was given, for 1xx/204/304, or after end();
        BufferError while a view is exported.
        """
        cdef Py_buffer buf
        if PyBytes_Check(data):
            self.c_chunk(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            return
        if PyUnicode_Check(data):
            raise TypeError("chunk() takes bytes, not str (encode it first)")
        PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE)
        try:
            self.c_chunk(<const char *>buf.buf, buf.len)
        finally:
            PyBuffer_Release(&buf)

    cdef int c_end(self, object trailers) except -1:
        cdef char *p
        cdef const char *np
        cdef const char *vp
        cdef Py_ssize_t nn, vn, mark
        self._check_writable()
        self._open_chunked()
        mark = self._len
        p = self._reserve(3)
        self._len += _copy(p, b"0\r\n", 3)
        if trailers is not None:
            # trailer-section = *( field-line CRLF ) (RFC 9112 §7.1.2): the
            # same checks as header lines.  On error, undo the partial end.
            try:
                for name, value in trailers:
                    kn = _latin1(name, &np, &nn, "trailer name")
                    kv = _latin1(value, &vp, &vn, "trailer value")
                    self._write_field(np, nn, vp, vn, False)
            except BaseException:
                self._len = mark
                raise
        p = self._reserve(2)
        self._len += _copy(p, b"\r\n", 2)
        self._state = RB_ENDED
        return 0

    def end(self, trailers=None):
        """Write the last chunk ``0\\r\\n``, optional trailer fields (pairs,
        checked like headers) and the final CRLF (RFC 9112 §7.1).

        Chunked framing only (it opens it if no chunk was written yet).
        Raises ValueError after body() or a second end(), BufferError while a
        view is exported.
        """
        self.c_end(trailers)

    # -- output --

    cdef int c_finalize(self, bint head_only) except -1:
        cdef RBState st = self._state
        cdef char *p
        if st == RB_EMPTY:
            raise ValueError("nothing to finalize: call status() first")
        if st == RB_HEAD or st == RB_HEAD_BODY:
            self._check_writable()
            if st == RB_HEAD and self._te_chunked and not self._no_body:
                # The caller promised chunked framing but wrote no chunk:
                # the body is the last-chunk alone.
                self._close_head(False)
                self._chunked = True
                p = self._reserve(5)
                self._len += _copy(p, b"0\r\n\r\n", 5)
            else:
                # RFC 9110 §8.6: no automatic length for 1xx/204/304 (for 304
                # it would have to be the 200's length, which we cannot know),
                # nor next to the caller's own framing.
                self._close_head(not (self._has_cl or self._has_te or self._no_body))
        elif st == RB_CHUNKED:
            self.c_end(None)
        self._state = RB_DONE
        if self._discard_pending:
            self._view_start = 0
            self._view_len = 0
        else:
            self._view_start = self._start
            if head_only:
                self._view_len = (self._head_end - self._start) if self._head_end >= 0 else 0
            else:
                self._view_len = self._len - self._start
        return 0

    def finalize(self, bint head_only=False):
        """Complete the response and return a read-only memoryview of it.

        Adds ``content-length: <body length>`` in fixed-length mode when the
        caller gave neither content-length nor transfer-encoding (and the
        status allows a body), writes the last chunk in chunked mode, ends the
        head.  With ``head_only`` (a HEAD request, RFC 9110 §9.3.2) the view
        stops after the head, whose content-length is still the length of the
        body that a GET would get.  After flush() only the unflushed rest is
        returned.  Calling it again returns the same bytes.

        Raises ValueError before status(), BufferError if it must write while
        a view is exported.
        """
        self.c_finalize(head_only)
        return memoryview(self)

    cdef int c_flush(self) except -1:
        cdef RBState st = self._state
        if st == RB_EMPTY:
            raise ValueError("nothing to flush: call status() first")
        if st == RB_DONE:
            raise ValueError("flush() after finalize(); reset() starts a new response")
        if st == RB_HEAD or st == RB_HEAD_BODY:
            if not (self._has_cl or self._has_te or self._no_body or self._conn_close):
                raise ValueError(
                    "flush() with the framing unknown: give a content-length header, "
                    "use chunk(), or send connection: close")
            self._check_writable()
            self._close_head(False)
            self._state = RB_BODY
        if self._discard_pending:
            self._view_start = 0
            self._view_len = 0
        else:
            self._view_start = self._start
            self._view_len = self._len - self._start
            self._discard_pending = True
        return 0

    def flush(self):
        """Return a read-only memoryview of the bytes built since the last
        flush (the head, the first time) and mark them handed out.

        Release the view before the next write, which starts the buffer over
        (BufferError otherwise).  Raises ValueError before status(), after
        finalize(), or while the head is open and the framing is unknown (no
        content-length, transfer-encoding, connection: close, or no-body
        status; use chunk() to stream without a length).
        """
        self.c_flush()
        return memoryview(self)

    def getvalue(self):
        """finalize() and return a copy of the response as bytes (no view is
        kept, so the builder stays writable)."""
        self.c_finalize(False)
        return PyBytes_FromStringAndSize(self._buf + self._view_start, self._view_len)

    cdef int c_reset(self) except -1:
        cdef char *p
        if self._exports:
            raise BufferError(
                "a view of this ResponseBuilder is still exported; release it "
                "(view.release()) before reset()")
        if self._cap > RB_MAX_RETAINED and self._buf != self._inline:
            if self._initial_cap <= RB_INLINE_SIZE:
                free(self._buf)
                self._buf = self._inline
                self._cap = RB_INLINE_SIZE
            else:
                p = <char *>realloc(self._buf, <size_t>self._initial_cap)
                if p != NULL:
                    self._buf = p
                    self._cap = self._initial_cap
        self._clear_state()
        return 0

    def reset(self):
        """Forget the response and keep the buffer for the next one (a buffer
        that grew past 1 MiB shrinks back to the initial capacity).  Raises
        BufferError while a view is exported."""
        self.c_reset()

    def __len__(self):
        # Bytes built and not handed out by flush() (the reserved gap is not
        # counted; finalize() replaces it with the content-length line).
        if self._discard_pending:
            return 0
        if self._gap_at >= 0:
            return self._len - self._start - RB_CL_GAP
        return self._len - self._start

    # -- what the server needs to know --

    @property
    def status_code(self):
        """The status code given to status(), 0 before."""
        return self._status

    @property
    def has_content_length(self):
        """True if the caller sent a content-length header."""
        return self._has_cl

    @property
    def content_length(self):
        """The caller's content-length value, -1 if none was sent."""
        return self._content_length

    @property
    def has_transfer_encoding(self):
        """True if the caller sent a transfer-encoding header."""
        return self._has_te

    @property
    def chunked(self):
        """True once the response uses chunked framing (chunk()/end(), or a
        caller transfer-encoding ending in chunked)."""
        return self._chunked or self._te_chunked

    @property
    def connection_close(self):
        """True if the caller sent ``connection: close`` (RFC 9110 §7.6.1)."""
        return self._conn_close

    @property
    def has_date(self):
        """True if the caller sent a date header."""
        return self._has_date

    @property
    def has_server(self):
        """True if the caller sent a server header."""
        return self._has_server

    @property
    def has_content_type(self):
        """True if the caller sent a content-type header."""
        return self._has_ct

    @property
    def body_length(self):
        """Body bytes written so far (chunk payloads without framing); compare
        with content_length to catch an app that lies about its length."""
        return self._body_len

    @property
    def capacity(self):
        """Bytes currently allocated for the buffer."""
        return self._cap


def format_chunk(data):
    """Return one chunk frame ``<hex size>\\r\\n<data>\\r\\n`` (RFC 9112 §7.1).

    Empty data gives ``b""``: a zero-size frame would end the body (send
    ``LAST_CHUNK`` for that).
    """
    cdef Py_buffer buf
    cdef char hexbuf[16]
    cdef Py_ssize_t nh
    cdef bytes out
    cdef char *p
    PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE)
    try:
        if buf.len == 0:
            return b""
        nh = <Py_ssize_t>fa_size_to_hex_backwards(hexbuf + 16, <uint64_t>buf.len)
        out = PyBytes_FromStringAndSize(NULL, nh + buf.len + 4)
        p = PyBytes_AS_STRING(out)
        memcpy(p, hexbuf + 16 - nh, <size_t>nh)
        p[nh] = b'\r'
        p[nh + 1] = b'\n'
        memcpy(p + nh + 2, buf.buf, <size_t>buf.len)
        p[nh + 2 + buf.len] = b'\r'
        p[nh + 3 + buf.len] = b'\n'
        return out
    finally:
        PyBuffer_Release(&buf)


# --- JsonBuilder ----------------------------------------------------------

# One byte per open container: its kind in the low bits, plus whether it has
# an element already (so the next one needs a comma) and, for objects,
# whether a key was written and its value is due.
cdef enum:
    JF_ROOT = 0
    JF_OBJECT = 1
    JF_ARRAY = 2
    JF_KIND = 3
    JF_NONEMPTY = 4
    JF_AFTER_KEY = 8


cdef class JsonBuilder:
    """Writes one RFC 8259 JSON text, piece by piece, with commas and colons
    placed automatically.

    ``JsonBuilder()`` owns a buffer (read it with getvalue());
    ``JsonBuilder(target)`` writes straight into ``target``'s body
    (fixed-length mode; ``target.finalize()`` then adds the length), so the
    JSON is never copied.

    Output: strings escape ``"``, ``\\`` and U+0000-U+001F (short forms for
    \\b \\t \\n \\f \\r, else ``\\u00XX``) and keep non-ASCII as UTF-8; floats
    use Python's shortest round-trip repr; the bytes equal ``orjson.dumps``
    for str/int (64-bit)/bool/None/list/dict.

    Misuse raises ValueError: a value where a key is due, key() outside an
    object, unbalanced or mismatched ends, a second root value, nesting
    deeper than 512, NaN/Infinity, getvalue() on an incomplete document.  A
    document left half-written by an exception needs reset().
    """

    def __cinit__(self, ResponseBuilder target=None):
        self._rb = target
        self._buf = self._inline
        self._cap = sizeof(self._inline)
        self._len = 0
        self._busy = False
        self._depth = 0
        self._frames[0] = JF_ROOT

    def __dealloc__(self):
        if self._buf != NULL and self._buf != self._inline:
            free(self._buf)
        self._buf = NULL

    cdef char *_reserve(self, Py_ssize_t n) except NULL:
        cdef Py_ssize_t cap
        cdef char *p
        if self._busy:
            raise RuntimeError("JsonBuilder used from two threads at once")
        if self._rb is not None:
            return self._rb.c_body_reserve(n)
        if n > self._cap - self._len:
            if n > (<Py_ssize_t>1 << 62) - self._len:
                raise MemoryError("JSON document too large")
            cap = self._cap
            while cap < self._len + n:
                cap <<= 1
            if self._buf == self._inline:
                p = <char *>malloc(<size_t>cap)
                if p != NULL:
                    memcpy(p, self._inline, <size_t>self._len)
            else:
                p = <char *>realloc(self._buf, <size_t>cap)
            if p == NULL:
                raise MemoryError()
            self._buf = p
            self._cap = cap
        return self._buf + self._len

    cdef void _commit(self, Py_ssize_t n) noexcept:
        if self._rb is not None:
            self._rb._len += n
            self._rb._body_len += n
        else:
            self._len += n

    cdef int _sep_value(self) except -1:
        # Before any value: 1 if a comma must precede it, else 0.
        cdef unsigned char f = self._frames[self._depth]
        cdef unsigned char kind = f & JF_KIND
        if kind == JF_ARRAY:
            self._frames[self._depth] = f | JF_NONEMPTY
            return 1 if f & JF_NONEMPTY else 0
        if kind == JF_OBJECT:
            if not (f & JF_AFTER_KEY):
                raise ValueError("a value where a key is due: call key() first")
            self._frames[self._depth] = f & ~JF_AFTER_KEY
            return 0
        if f & JF_NONEMPTY:
            raise ValueError("the document already has its root value "
                             "(RFC 8259 §2: one value per JSON text)")
        self._frames[0] = f | JF_NONEMPTY
        return 0

    cdef int _sep_key(self) except -1:
        cdef unsigned char f = self._frames[self._depth]
        if (f & JF_KIND) != JF_OBJECT:
            raise ValueError("key() outside an object")
        if f & JF_AFTER_KEY:
            raise ValueError("two keys in a row: the first key's value is due")
        self._frames[self._depth] = f | JF_NONEMPTY | JF_AFTER_KEY
        return 1 if f & JF_NONEMPTY else 0

    cdef int _write_literal(self, const char *lit, Py_ssize_t n) except -1:
        cdef int sep = self._sep_value()
        cdef char *p = self._reserve(n + sep)
        if sep:
            p[0] = b','
        memcpy(p + sep, lit, <size_t>n)
        self._commit(n + sep)
        return 0

    cdef int _write_string(self, object s, bint is_key) except -1:
        cdef Py_ssize_t n, esc, sep
        cdef const unsigned char *u
        cdef char *p
        cdef bint big
        if not PyUnicode_Check(s):
            raise TypeError(f"{'key' if is_key else 'string'} must be str, "
                            f"not {type(s).__name__}")
        # UTF-8 of the str (cached on it; for ASCII it is the str's own
        # storage).  Lone surrogates raise UnicodeEncodeError here, before
        # any state changes.
        u = <const unsigned char *>PyUnicode_AsUTF8AndSize(s, &n)
        big = n >= JSON_NOGIL_MIN
        if big:
            with nogil:
                esc = <Py_ssize_t>fa_json_escaped_len(u, <size_t>n)
        else:
            esc = <Py_ssize_t>fa_json_escaped_len(u, <size_t>n)
        sep = self._sep_key() if is_key else self._sep_value()
        p = self._reserve(sep + esc + 2 + is_key)
        if sep:
            p[0] = b','
        p[sep] = b'"'
        if esc == n:
            memcpy(p + sep + 1, u, <size_t>n)
        elif big:
            # The GIL is released while we write into our buffer: mark it
            # busy (and the target exported) so another thread cannot grow,
            # reset or free it meanwhile.
            self._busy = True
            if self._rb is not None:
                self._rb._exports += 1
            with nogil:
                fa_json_escape(p + sep + 1, u, <size_t>n)
            if self._rb is not None:
                self._rb._exports -= 1
            self._busy = False
        else:
            fa_json_escape(p + sep + 1, u, <size_t>n)
        p[sep + 1 + esc] = b'"'
        if is_key:
            p[sep + 2 + esc] = b':'
        self._commit(sep + esc + 2 + is_key)
        return 0

    cdef int c_begin(self, bint is_object) except -1:
        if self._depth >= JSON_MAX_DEPTH:
            raise ValueError(f"JSON nesting deeper than {JSON_MAX_DEPTH}")
        self._write_literal(b"{" if is_object else b"[", 1)
        self._depth += 1
        self._frames[self._depth] = JF_OBJECT if is_object else JF_ARRAY
        return 0

    cdef int c_end(self, bint is_object) except -1:
        cdef unsigned char f = self._frames[self._depth]
        cdef unsigned char want = JF_OBJECT if is_object else JF_ARRAY
        cdef char *p
        if (f & JF_KIND) != want:
            if self._depth == 0:
                raise ValueError(f"end_{'object' if is_object else 'array'}() "
                                 f"with no open container")
            raise ValueError(f"end_{'object' if is_object else 'array'}() closes an "
                             f"open {'array' if is_object else 'object'}")
        if f & JF_AFTER_KEY:
            raise ValueError("end_object() right after key(): the value is missing")
        p = self._reserve(1)
        p[0] = b'}' if is_object else b']'
        self._depth -= 1
        self._commit(1)
        return 0

    cdef int c_key(self, object s) except -1:
        return self._write_string(s, True)

    cdef int c_string(self, object s) except -1:
        return self._write_string(s, False)

    cdef int c_int64(self, int64_t v) except -1:
        cdef char tmp[24]
        cdef uint64_t mag
        cdef Py_ssize_t nd
        cdef char *p
        cdef int sep
        # Magnitude as unsigned, so INT64_MIN does not overflow on negation.
        mag = (<uint64_t>0 - <uint64_t>v) if v < 0 else <uint64_t>v
        nd = <Py_ssize_t>fa_u64_to_dec_backwards(tmp + 24, mag)
        if v < 0:
            nd += 1
            tmp[24 - nd] = b'-'
        sep = self._sep_value()
        p = self._reserve(sep + nd)
        if sep:
            p[0] = b','
        memcpy(p + sep, tmp + 24 - nd, <size_t>nd)
        self._commit(sep + nd)
        return 0

    cdef int c_int(self, object v) except -1:
        cdef int overflow = 0
        cdef long long x
        cdef const char *s
        cdef Py_ssize_t n
        x = PyLong_AsLongLongAndOverflow(v, &overflow)
        if overflow == 0:
            return self.c_int64(x)
        # Beyond 64 bits: CPython's own conversion (base 10, no prefix, and
        # it ignores a subclass's __str__).  It enforces
        # sys.get_int_max_str_digits() (ValueError), a DoS guard worth keeping.
        digits = PyNumber_ToBase(v, 10)
        s = PyUnicode_AsUTF8AndSize(digits, &n)
        return self.c_raw(s, n)

    cdef int c_float(self, double v) except -1:
        cdef char *s
        cdef Py_ssize_t n
        if not isfinite(v):
            raise ValueError(f"{v!r} is not valid JSON (RFC 8259 §6: no NaN or Infinity)")
        # 'r' is repr()'s shortest string that round-trips; ADD_DOT_0 keeps
        # 1.0 a float for the reader ("1.0", as json.dumps and orjson write).
        s = PyOS_double_to_string(v, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
        try:
            n = 0
            while s[n]:
                n += 1
            self.c_raw(s, n)
        finally:
            PyMem_Free(s)
        return 0

    cdef int c_raw(self, const char *data, Py_ssize_t n) except -1:
        cdef int sep = self._sep_value()
        cdef char *p = self._reserve(sep + n)
        if sep:
            p[0] = b','
        memcpy(p + sep, data, <size_t>n)
        self._commit(sep + n)
        return 0

    cdef int c_value(self, object obj) except -1:
        cdef object t = type(obj)
        if t is str:
            return self._write_string(obj, False)
        if obj is None:
            return self._write_literal(b"null", 4)
        if obj is True:
            return self._write_literal(b"true", 4)
        if obj is False:
            return self._write_literal(b"false", 5)
        if t is int:
            return self.c_int(obj)
        if t is float:
            return self.c_float(obj)
        if t is dict:
            return self._dict(obj)
        if t is list or t is tuple:
            return self._seq(obj)
        # Subclasses, checked after the exact types (the common case).
        if PyUnicode_Check(obj):
            return self._write_string(obj, False)
        if isinstance(obj, int):
            return self.c_int(obj)
        if isinstance(obj, float):
            return self.c_float(obj)
        if isinstance(obj, dict):
            return self._dict(obj)
        if isinstance(obj, (list, tuple)):
            return self._seq(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    cdef int _dict(self, dict d) except -1:
        self.c_begin(True)
        for k, v in d.items():
            if not PyUnicode_Check(k):
                raise TypeError(f"JSON object keys must be str, not {type(k).__name__}")
            self._write_string(k, True)
            self.c_value(v)
        return self.c_end(True)

    cdef int _seq(self, object seq) except -1:
        self.c_begin(False)
        for v in seq:
            self.c_value(v)
        return self.c_end(False)

    # -- Python API --

    def begin_object(self):
        """Open ``{`` (as a value: in an array, at the root, or after key())."""
        self.c_begin(True)

    def end_object(self):
        """Close the innermost object; ValueError if it is not an object or a
        key is waiting for its value."""
        self.c_end(True)

    def begin_array(self):
        """Open ``[`` (as a value)."""
        self.c_begin(False)

    def end_array(self):
        """Close the innermost array; ValueError if it is not an array."""
        self.c_end(False)

    def key(self, s):
        """Write an object member's name (str) and its colon; ValueError
        outside an object or when a value is due."""
        self._write_string(s, True)

    def string_value(self, s):
        """Write a JSON string (str; lone surrogates: UnicodeEncodeError)."""
        self._write_string(s, False)

    def int_value(self, v):
        """Write an integer of any size (TypeError if not an int)."""
        if not isinstance(v, int):
            raise TypeError(f"int_value() takes an int, not {type(v).__name__}")
        self.c_int(v)

    def float_value(self, double v):
        """Write a finite float in shortest round-trip form; ValueError for
        NaN and infinities."""
        self.c_float(v)

    def bool_value(self, bint v):
        """Write ``true`` or ``false``."""
        if v:
            self._write_literal(b"true", 4)
        else:
            self._write_literal(b"false", 5)

    def null_value(self):
        """Write ``null``."""
        self._write_literal(b"null", 4)

    def raw_value(self, data):
        """Write pre-serialized JSON bytes (e.g. from orjson.dumps) as one
        value, NOT validated: invalid bytes give an invalid document."""
        cdef Py_buffer buf
        PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE)
        try:
            self.c_raw(<const char *>buf.buf, buf.len)
        finally:
            PyBuffer_Release(&buf)

    def value(self, obj):
        """Write a dict/list/tuple/str/int/float/bool/None tree (dict keys must
        be str).  TypeError for other types, ValueError past 512 levels (which
        also stops reference cycles)."""
        self.c_value(obj)

    @property
    def complete(self):
        """True once exactly one root value has been written and closed."""
        return self._depth == 0 and (self._frames[0] & JF_NONEMPTY) != 0

    def getvalue(self):
        """Return the finished document as bytes (standalone mode).

        ValueError if the document is incomplete; TypeError in target mode,
        where the JSON is part of the target's body (use its finalize()).
        """
        if not (self._depth == 0 and (self._frames[0] & JF_NONEMPTY)):
            if self._depth:
                raise ValueError(f"incomplete JSON document: {self._depth} "
                                 f"container(s) still open")
            raise ValueError("incomplete JSON document: no value written")
        if self._rb is not None:
            raise TypeError("this JsonBuilder writes into a ResponseBuilder; "
                            "read the response with its finalize()")
        return PyBytes_FromStringAndSize(self._buf, self._len)

    def reset(self):
        """Start a new document (standalone: the buffer is kept, up to 1 MiB;
        target mode: only the nesting state is reset, the target is not
        touched)."""
        if self._busy:
            raise RuntimeError("JsonBuilder used from two threads at once")
        if self._cap > RB_MAX_RETAINED and self._buf != self._inline:
            free(self._buf)
            self._buf = self._inline
            self._cap = sizeof(self._inline)
        self._len = 0
        self._depth = 0
        self._frames[0] = JF_ROOT

    def __len__(self):
        """Bytes written by this builder's own buffer (0 in target mode)."""
        return self._len
