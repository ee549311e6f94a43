# cython: language_level=3
"""The sans-IO WebSocket core: RFC 6455 framing and RFC 7692 permessage-deflate.

Bytes go in with ``FrameParser.feed()``; ``next_event()`` hands back whole
messages (``TextMessage``, ``BytesMessage``, fragments reassembled) and
control frames (``Ping``, ``Pong``, ``Close``).  ``FrameWriter`` and
``build_frame``/``build_close`` make the bytes to send.  No sockets, no event
loop: the asyncio layer is fasterapi/websocket.py.

Rules this module keeps:

1. A protocol violation raises ``WebSocketError`` whose ``.code`` is the close
   code to send (1002 protocol error, 1007 invalid payload data, 1009 message
   too big; RFC 6455 §7.4.1).  After it the parser is dead: every later
   ``next_event()`` raises the same error and ``feed()`` drops its input.
2. Every rule is checked at the earliest byte that decides it: the first two
   header bytes (opcode, RSV bits, MASK, control-frame rules), the extended
   length (``max_size``, before any payload is buffered), and for
   uncompressed text the read that brings the first byte after which the
   UTF-8 cannot be completed, even in the middle of a frame (Autobahn 6.x);
   compressed text fails at the fragment that inflates to such a byte.
3. Header bytes are re-read from the buffer until the header is complete (at
   most 14 bytes, so a drip costs O(1) per byte).  A payload is processed
   once: when all of it is here, except that the part of an uncompressed
   text frame already here is unmasked and checked at each next_event().
4. After the peer's Close is returned the parser reads nothing more (RFC 6455
   §5.5.1: no data follows a Close).

Decisions where the RFCs leave room:

- Non-minimal length encodings (e.g. 5 in the 16-bit field) are accepted.
  RFC 6455 §5.2 puts "minimal number of bytes" on the sender; there is only
  one way to read the number, so unlike HTTP framing no two parsers can
  disagree about where a frame ends.  A 64-bit length with the MSB set is
  refused (1002), as §5.2 requires.
- ``max_size`` bounds a message's wire bytes (the declared lengths, checked
  before buffering) and, when compressed, its inflated size too: an
  incompressible message whose deflate output is a few bytes larger than
  ``max_size`` is refused although its text would fit.
- A Close payload of 0 bytes becomes ``Close(1005, "")`` (RFC 6455 §7.1.5:
  1005 means "no status code was present"); 1004, 1005, 1006, 1015, codes
  below 1000, 1016-2999 and 5000+ are refused with 1002 (§7.4.1, §7.4.2);
  1012-1014 (registered with IANA since) are accepted.
- Data inflated with ``max_size`` + 1 as zlib's output bound, fragment by
  fragment, so a decompression bomb costs at most ``max_size`` + 1 bytes.
"""

from cpython.buffer cimport (
    PyBUF_SIMPLE,
    PyBuffer_FillInfo,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy, memmove

import zlib

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX

# PERF: below this payload size the mask loop runs with the GIL held; at 64 KiB
# (~5 us of XOR) the release/re-take pair was lost in the noise (apply_mask at
# 65535 and 65536 bytes: 23.0 and 20.6 us wall), so larger payloads let other
# threads run meanwhile.
cdef Py_ssize_t NOGIL_MIN_MASK = 65536

# What a SYNC_FLUSH ends with, stripped on send and put back on receive
# (RFC 7692 §7.2.1, §7.2.2).
cdef bytes DEFLATE_TAIL = b"\x00\x00\xff\xff"

DEFAULT_MAX_SIZE = 16 * 1024 * 1024

# What get_buffer() offers once nothing more is parsed: reads still have to go
# somewhere, and what lands here is dropped (rule 4).
cdef bytearray _DISCARD = bytearray(4096)


class WebSocketError(Exception):
    """The peer broke RFC 6455/7692; fail the connection (RFC 6455 §7.1.7).

    ``code`` is the close code to send (1002, 1007 or 1009), ``reason`` a short
    text fit for the Close frame (ASCII, well under 123 bytes).
    """

    def __init__(self, int code, str reason):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self):
        return f"{self.reason} (close code {self.code})"


# ---------------------------------------------------------------- events

cdef class TextMessage:
    """A whole text message (fragments reassembled, UTF-8 checked)."""

    def __init__(self, str data):
        self.data = data

    def __repr__(self):
        return f"TextMessage({self.data!r})"

    def __eq__(self, other):
        return type(other) is TextMessage and (<TextMessage>other).data == self.data

    __hash__ = None


cdef class BytesMessage:
    """A whole binary message (fragments reassembled)."""

    def __init__(self, bytes data):
        self.data = data

    def __repr__(self):
        return f"BytesMessage({self.data!r})"

    def __eq__(self, other):
        return type(other) is BytesMessage and (<BytesMessage>other).data == self.data

    __hash__ = None


cdef class Ping:
    """A Ping frame; answer with a Pong carrying the same payload (§5.5.2)."""

    def __init__(self, bytes payload=b""):
        self.payload = payload

    def __repr__(self):
        return f"Ping({self.payload!r})"

    def __eq__(self, other):
        return type(other) is Ping and (<Ping>other).payload == self.payload

    __hash__ = None


cdef class Pong:
    """A Pong frame (solicited or not, §5.5.3)."""

    def __init__(self, bytes payload=b""):
        self.payload = payload

    def __repr__(self):
        return f"Pong({self.payload!r})"

    def __eq__(self, other):
        return type(other) is Pong and (<Pong>other).payload == self.payload

    __hash__ = None


cdef class Close:
    """The peer's Close frame: ``code`` (1005 when it carried none) and ``reason``."""

    def __init__(self, int code=1005, str reason=""):
        self.code = code
        self.reason = reason

    def __repr__(self):
        return f"Close({self.code}, {self.reason!r})"

    def __eq__(self, other):
        return (type(other) is Close and (<Close>other).code == self.code
                and (<Close>other).reason == self.reason)

    __hash__ = None


# Events are made without the __init__ call (they are built per message).
cdef inline TextMessage _text(str s):
    cdef TextMessage ev = TextMessage.__new__(TextMessage)
    ev.data = s
    return ev


cdef inline BytesMessage _binary(bytes b):
    cdef BytesMessage ev = BytesMessage.__new__(BytesMessage)
    ev.data = b
    return ev


# ---------------------------------------------------------------- masking

cdef void _mask(unsigned char *p, Py_ssize_t n, const unsigned char *key,
                Py_ssize_t phase) noexcept nogil:
    """XOR p[0:n] with the masking key (RFC 6455 §5.3), p[0] being payload
    byte `phase` (mod 4)."""
    _mask_copy(p, p, n, key, phase)


cdef void _mask_copy(unsigned char *p, const unsigned char *src, Py_ssize_t n,
                     const unsigned char *key, Py_ssize_t phase) noexcept nogil:
    """p[0:n] = src[0:n] XOR the masking key, src[0] being payload byte
    `phase` (mod 4); src may be p (in place).  Aligns p to 8 bytes, then
    works on uint64 words holding the key twice (rotated to the alignment),
    then does the tail."""
    cdef Py_ssize_t i = 0, j
    cdef uint64_t m, w0, w1, w2, w3
    cdef unsigned char k8[8]
    while i < n and (<size_t>(p + i)) & 7:
        p[i] = src[i] ^ key[(phase + i) & 3]
        i += 1
    if n - i >= 8:
        for j in range(8):
            k8[j] = key[(phase + i + j) & 3]
        memcpy(&m, k8, 8)
        # memcpy of a word compiles to one load/store, aligned or
        # not, with no aliasing questions.
        # PERF: four words per round, which gcc 12 -O2 turns into SSE2 pxor
        # on 16 bytes: apply_mask(64 KiB) 7.4-11.8 -> 4.9-6.3 us CPU on the
        # shared box (one word per round before), then 2.4-3.5 us once it
        # read the source instead of XOR-ing a memcpy'd copy; websockets'
        # SSE2 apply_mask took 3.3-3.5 us in the same runs.
        while n - i >= 32:
            memcpy(&w0, src + i, 8)
            memcpy(&w1, src + i + 8, 8)
            memcpy(&w2, src + i + 16, 8)
            memcpy(&w3, src + i + 24, 8)
            w0 ^= m
            w1 ^= m
            w2 ^= m
            w3 ^= m
            memcpy(p + i, &w0, 8)
            memcpy(p + i + 8, &w1, 8)
            memcpy(p + i + 16, &w2, 8)
            memcpy(p + i + 24, &w3, 8)
            i += 32
        while n - i >= 8:
            memcpy(&w0, src + i, 8)
            w0 ^= m
            memcpy(p + i, &w0, 8)
            i += 8
    while i < n:
        p[i] = src[i] ^ key[(phase + i) & 3]
        i += 1


cdef inline void _mask_maybe_nogil(unsigned char *p, Py_ssize_t n,
                                   const unsigned char *key, Py_ssize_t phase) noexcept:
    if n >= NOGIL_MIN_MASK:
        with nogil:
            _mask(p, n, key, phase)
    else:
        _mask(p, n, key, phase)


def apply_mask(data, mask) -> bytes:
    """Return `data` XOR-ed with the 4-byte `mask` (RFC 6455 §5.3); for tests
    and benchmarks (the parser unmasks in place)."""
    cdef Py_buffer view
    cdef bytes km = bytes(mask)
    if PyBytes_GET_SIZE(km) != 4:
        raise ValueError("mask must be 4 bytes")
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        # Allocated empty, then filled: PyBytes_FromStringAndSize(p, 1)
        # returns CPython's shared one-byte object, which must never be
        # written to.  One pass, source to copy (no memcpy first).
        out = PyBytes_FromStringAndSize(NULL, view.len)
        _mask_copy(<unsigned char *>PyBytes_AS_STRING(out), <const unsigned char *>view.buf,
                   view.len, <const unsigned char *>PyBytes_AS_STRING(km), 0)
    finally:
        PyBuffer_Release(&view)
    return out


# ---------------------------------------------------------------- UTF-8

cdef inline void _utf8_reset(Utf8State *st) noexcept nogil:
    st.need = 0
    st.lo = 0x80
    st.hi = 0xBF


cdef Py_ssize_t _utf8_feed(Utf8State *st, const unsigned char *s,
                           Py_ssize_t n) noexcept nogil:
    """Advance `st` over s[0:n]; return the index of the first byte after which
    no continuation can make the text valid UTF-8 (RFC 3629 §4), or -1.

    Each lead byte fixes how many continuation bytes follow and the range of
    the first one (that range excludes overlongs, surrogates and code points
    above U+10FFFF); so the state is a count and one byte range, and a
    sequence cut by a fragment boundary resumes in the next fragment."""
    cdef Py_ssize_t i = 0
    cdef unsigned char c
    cdef uint64_t w
    while i < n:
        c = s[i]
        if st.need:
            if c < st.lo or c > st.hi:
                return i
            st.need -= 1
            st.lo = 0x80
            st.hi = 0xBF
            i += 1
        elif c < 0x80:
            i += 1
            # ASCII runs 8 bytes at a time.
            while n - i >= 8:
                memcpy(&w, s + i, 8)
                if w & 0x8080808080808080ULL:
                    break
                i += 8
        elif c < 0xC2:      # a stray continuation byte, or overlong C0/C1
            return i
        elif c < 0xE0:
            st.need = 1
            i += 1
        elif c < 0xF0:
            st.need = 2
            if c == 0xE0:   # overlong below U+0800
                st.lo = 0xA0
            elif c == 0xED:  # U+D800..U+DFFF are surrogates
                st.hi = 0x9F
            i += 1
        elif c < 0xF5:
            st.need = 3
            if c == 0xF0:   # overlong below U+10000
                st.lo = 0x90
            elif c == 0xF4:  # above U+10FFFF
                st.hi = 0x8F
            i += 1
        else:
            return i
    return -1


def _utf8_check(chunks) -> int:
    """Validate `chunks` as one text split into pieces; return the index of the
    first piece after which the text cannot be valid, ``len(chunks)`` if it
    ends inside a sequence, or -1 if valid.  For tests."""
    cdef Utf8State st
    cdef bytes b
    _utf8_reset(&st)
    for idx, c in enumerate(chunks):
        b = bytes(c)
        if _utf8_feed(&st, <const unsigned char *>PyBytes_AS_STRING(b),
                      PyBytes_GET_SIZE(b)) >= 0:
            return idx
    return len(chunks) if st.need else -1


# ---------------------------------------------------------------- buffers

cdef int _buf_reserve(ByteBuf *b, Py_ssize_t extra) except -1:
    """Make room for `extra` bytes after b.end (moving live bytes to the front
    first, growing only if that is not enough)."""
    cdef Py_ssize_t live = b.end - b.start, cap
    cdef unsigned char *data
    if b.cap - b.end >= extra:
        return 0
    if b.start:
        memmove(b.data, b.data + b.start, live)
        b.start = 0
        b.end = live
        if b.cap - live >= extra:
            return 0
    if extra > PY_SSIZE_T_MAX - live:
        raise MemoryError()
    cap = b.cap * 2 if b.cap else 1024
    if cap < live + extra:
        cap = live + extra
    data = <unsigned char *>PyMem_Realloc(b.data, cap)
    if data == NULL:
        raise MemoryError()
    b.data = data
    b.cap = cap
    return 0


cdef int _buf_append(ByteBuf *b, const void *p, Py_ssize_t n) except -1:
    if n:
        _buf_reserve(b, n)
        memcpy(b.data + b.end, p, n)
        b.end += n
    return 0


cdef inline void _buf_drained(ByteBuf *b) noexcept:
    """Called when b holds no live bytes: rewind, and give back a big block."""
    b.start = b.end = 0
    if b.cap > WS_MAX_RETAINED:
        PyMem_Free(b.data)
        b.data = NULL
        b.cap = 0


cdef inline void _buf_free(ByteBuf *b) noexcept:
    PyMem_Free(b.data)
    b.data = NULL
    b.start = b.end = b.cap = 0


# ---------------------------------------------------------------- close codes

cdef inline bint _close_code_ok(int code) noexcept:
    # RFC 6455 §7.4.1/§7.4.2 and the IANA registry (§11.7): 1004 reserved,
    # 1005/1006/1015 must never be sent in a Close frame.
    return ((1000 <= code <= 1003) or (1007 <= code <= 1014)
            or (3000 <= code <= 4999))


# ---------------------------------------------------------------- deflate

cdef inline bint _is_tchar(Py_UCS4 c) noexcept:
    # RFC 9110 §5.6.2 tchar.
    return (c < 128 and (("0" <= c <= "9") or ("a" <= c <= "z") or ("A" <= c <= "Z")
                         or c in "!#$%&'*+-.^_`|~"))


def _parse_extensions(str header):
    """Parse a Sec-WebSocket-Extensions value (RFC 6455 §9.1) into
    ``[(name, [(param, value or None), ...]), ...]`` (names lowercased,
    quoted values unquoted).  Empty list elements are skipped (RFC 9110
    §5.6.1).  Raises ValueError on anything else."""
    cdef Py_ssize_t i = 0, n = len(header), j
    out = []

    def token(Py_ssize_t k):
        cdef Py_ssize_t m = k
        while m < n and _is_tchar(header[m]):
            m += 1
        if m == k:
            raise ValueError(f"token expected at {k}")
        return header[k:m], m

    def ows(Py_ssize_t k):
        while k < n and header[k] in " \t":
            k += 1
        return k

    while True:
        i = ows(i)
        if i < n and header[i] == ",":
            i += 1
            continue
        if i >= n:
            break
        name, i = token(i)
        params = []
        i = ows(i)
        while i < n and header[i] == ";":
            i = ows(i + 1)
            pname, i = token(i)
            i = ows(i)
            value = None
            if i < n and header[i] == "=":
                i = ows(i + 1)
                if i < n and header[i] == '"':
                    # quoted-string (RFC 9110 §5.6.4); §9.1 of RFC 6455 wants
                    # its content to be a token once unquoted.
                    j = i + 1
                    chars = []
                    while True:
                        if j >= n:
                            raise ValueError("unterminated quoted string")
                        if header[j] == "\\" and j + 1 < n:
                            chars.append(header[j + 1])
                            j += 2
                        elif header[j] == '"':
                            break
                        else:
                            chars.append(header[j])
                            j += 1
                    value = "".join(chars)
                    if not value or not all(_is_tchar(ch) for ch in value):
                        raise ValueError("quoted value is not a token")
                    i = j + 1
                else:
                    value, i = token(i)
                i = ows(i)
            params.append((pname.lower(), value))
        out.append((name.lower(), params))
        i = ows(i)
        if i < n:
            if header[i] != ",":
                raise ValueError(f"',' expected at {i}")
            i += 1
    return out


cdef int _window_bits(object value) except -2:
    """A *_max_window_bits value: 1*DIGIT in 8..15 without leading zeros
    (RFC 7692 §7.1.2.1), else -1."""
    if value is None or not (1 <= len(value) <= 2) or not value.isdigit() \
            or not value.isascii() or value[0] == "0":
        return -1
    bits = int(value)
    return bits if 8 <= bits <= 15 else -1


cdef class PerMessageDeflate:
    """The negotiated parameters and zlib state of permessage-deflate, server
    side (RFC 7692).  One instance per connection, shared by its
    ``FrameParser`` (inflates the client's messages) and ``FrameWriter``
    (deflates ours).

    ``server_max_window_bits`` 8 cannot be honoured (zlib's raw deflate
    needs 9..15), so ``negotiate`` declines offers that ask for it.

    ``window_bits`` and ``mem_level`` size our compressor below what was
    agreed (any window up to the agreed one is allowed, and the client's
    inflater copes with a smaller one unannounced): zlib's deflate state is
    2**(window_bits+2) + 2**(mem_level+9) bytes, 256 KiB at 15/8 against
    32 KiB at the default 12/5, per connection.  uvicorn (websockets'
    ServerPerMessageDeflateFactory() with no arguments) answers the same
    offers the same way but compresses at 15/8; per 64 KiB message, min of
    15 runs in-process, 12/5 cost the same on b"x" * 65536 (184 vs 185 us)
    and 7% less on hex text (2540 vs 2738 us) at a like ratio."""

    def __init__(self, *, bint server_no_context_takeover=False,
                 bint client_no_context_takeover=False,
                 int server_max_window_bits=15, int client_max_window_bits=15,
                 int level=6, int window_bits=12, int mem_level=5):
        if not 9 <= server_max_window_bits <= 15:
            raise ValueError("server_max_window_bits must be 9..15")
        if not 8 <= client_max_window_bits <= 15:
            raise ValueError("client_max_window_bits must be 8..15")
        if not -1 <= level <= 9:
            raise ValueError("level must be -1..9")
        if not 9 <= window_bits <= 15:
            raise ValueError("window_bits must be 9..15")
        if not 1 <= mem_level <= 9:
            raise ValueError("mem_level must be 1..9")
        self.window_bits = min(window_bits, server_max_window_bits)
        self.mem_level = mem_level
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.level = level
        self._compressor = None
        self._decompressor = None

    def __repr__(self):
        return (f"PerMessageDeflate(server_no_context_takeover={self.server_no_context_takeover}, "
                f"client_no_context_takeover={self.client_no_context_takeover}, "
                f"server_max_window_bits={self.server_max_window_bits}, "
                f"client_max_window_bits={self.client_max_window_bits})")

    @staticmethod
    def negotiate(offer_header, *, enabled=True, int level=6, int window_bits=12,
                  int mem_level=5):
        """Answer a client's Sec-WebSocket-Extensions header (RFC 7692 §5, §7.1).

        `offer_header` is the header value (several header fields joined with
        ", "), or None.  The first permessage-deflate offer whose parameters
        are all known, unrepeated and valid is accepted; others are skipped.
        Returns ``(response header value, PerMessageDeflate)``, or None to
        decline (not enabled, no acceptable offer, or a header that does not
        parse: a malformed header is declined, not an error).  `level`,
        `window_bits` and `mem_level` go to the instance's compressor.
        """
        if not enabled or offer_header is None:
            return None
        if isinstance(offer_header, (bytes, bytearray)):
            try:
                offer_header = bytes(offer_header).decode("ascii")
            except UnicodeDecodeError:
                return None
        try:
            offers = _parse_extensions(offer_header)
        except ValueError:
            return None
        for name, params in offers:
            if name != "permessage-deflate":
                continue
            accepted = _accept_offer(params, level, window_bits, mem_level)
            if accepted is not None:
                return accepted
        return None

    def compress(self, payload) -> bytes:
        """Deflate one whole message (RFC 7692 §7.2.1): SYNC_FLUSH, then strip
        the trailing 00 00 ff ff.  Keeps the LZ77 window between messages
        unless server_no_context_takeover was agreed."""
        if self._compressor is None:
            # PERF: a fresh compressobj at 15 bits / memLevel 8 took 93 us
            # on this box (zeroing 256 KiB), at 12 / 5 about 2 us: it matters
            # with server_no_context_takeover, which makes one per message.
            self._compressor = zlib.compressobj(
                self.level, zlib.DEFLATED, -self.window_bits, self.mem_level)
        data = self._compressor.compress(payload) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        if self.server_no_context_takeover:
            self._compressor = None
        # A SYNC_FLUSH output always ends with the empty stored block's
        # 00 00 ff ff; for an empty message what is left is the single 00 byte
        # §7.2.3.6 describes.
        cdef Py_ssize_t n = len(data)
        return data[:n - 4] if n >= 4 and data[n - 4:] == DEFLATE_TAIL else data

    def decompress(self, payload, max_size=None) -> bytes:
        """Inflate one whole message (RFC 7692 §7.2.2): append 00 00 ff ff and
        inflate at most `max_size` bytes (None: unbounded).  Raises
        WebSocketError 1009 past `max_size`, 1007 on corrupt data."""
        cdef Py_ssize_t limit = PY_SSIZE_T_MAX if max_size is None else max_size
        if limit < 0:
            raise ValueError("max_size must be >= 0")
        out = self._inflate(payload, True, limit)
        self._end_inbound()
        return out

    cdef bytes _inflate(self, object chunk, bint final, Py_ssize_t limit):
        """Inflate one fragment of a message; `limit` bytes of output at most
        (the rest of max_size).  With `final`, the stripped tail is put back."""
        cdef Py_ssize_t bound = 0 if limit >= PY_SSIZE_T_MAX - 1 else limit + 1
        d = self._decompressor
        if d is None:
            # Inflating with a 32 KiB window works whatever window the client
            # deflated with (8..15 bits), so client_max_window_bits need not be
            # known here.
            d = self._decompressor = zlib.decompressobj(-15)
        try:
            out = d.decompress(chunk, bound)
            if bound and PyBytes_GET_SIZE(out) >= bound:
                raise WebSocketError(1009, "message too big (inflated)")
            if final:
                if bound:
                    bound -= PyBytes_GET_SIZE(out)
                tail = d.decompress(DEFLATE_TAIL, bound)
                if bound and PyBytes_GET_SIZE(tail) >= bound:
                    raise WebSocketError(1009, "message too big (inflated)")
                if tail:
                    out += tail
        except zlib.error:
            raise WebSocketError(1007, "invalid compressed data") from None
        return out

    cdef void _end_inbound(self):
        # client_no_context_takeover: the client resets its window after each
        # message, so our inflater's history is useless memory (§7.1.1.2).
        if self.client_no_context_takeover:
            self._decompressor = None


cdef object _accept_offer(list params, int level, int window_bits, int mem_level):
    """Return (response, PerMessageDeflate) for one offer's parameters, or None
    to skip it (RFC 7692 §7.1: unknown, repeated or invalid parameters mean
    the offer must be declined)."""
    cdef int smwb = 15, cmwb = 15
    seen = set()
    snct = cnct = False
    has_smwb = False
    parts = ["permessage-deflate"]
    for name, value in params:
        if name in seen:
            return None
        seen.add(name)
        if name == "server_no_context_takeover":
            if value is not None:
                return None
            snct = True
        elif name == "client_no_context_takeover":
            if value is not None:
                return None
            cnct = True
        elif name == "server_max_window_bits":
            smwb = _window_bits(value)
            if smwb < 9:        # invalid, or 8 that zlib cannot produce
                return None
            has_smwb = True
        elif name == "client_max_window_bits":
            # Without a value: the client can take a limit.  We set none (we
            # inflate with 15 bits whatever it uses), so nothing to answer.
            if value is not None and _window_bits(value) < 0:
                return None
        else:
            return None
    # §7.1.1.1, §7.1.2.1: these two must be acknowledged when requested.
    # client_no_context_takeover is echoed too: then the client resets its
    # window, and we can drop our inflater between messages.
    if snct:
        parts.append("server_no_context_takeover")
    if cnct:
        parts.append("client_no_context_takeover")
    if has_smwb:
        parts.append(f"server_max_window_bits={smwb}")
    return "; ".join(parts), PerMessageDeflate(
        server_no_context_takeover=snct, client_no_context_takeover=cnct,
        server_max_window_bits=smwb, level=level, window_bits=window_bits,
        mem_level=mem_level)


# ---------------------------------------------------------------- parser

cdef class FrameParser:
    """Incremental RFC 6455 frame parser: ``feed()`` bytes, then call
    ``next_event()`` until it returns None.

    Server side by default: every frame must be masked (§5.1), else 1002.
    With ``client_mode=True`` every frame must be unmasked.  `max_size`
    (bytes, None for no limit) bounds each message (1009).  `deflate` is the
    PerMessageDeflate from ``negotiate`` or None; without it any RSV bit is
    1002 (§5.2).
    """

    def __cinit__(self):
        self._buf.data = NULL
        self._buf.start = self._buf.end = self._buf.cap = 0
        self._msg.data = NULL
        self._msg.start = self._msg.end = self._msg.cap = 0
        _utf8_reset(&self._utf8)

    def __init__(self, *, max_size=DEFAULT_MAX_SIZE, bint client_mode=False,
                 PerMessageDeflate deflate=None):
        if max_size is None:
            self._max_size = PY_SSIZE_T_MAX
        else:
            if max_size < 0:
                raise ValueError("max_size must be >= 0 or None")
            self._max_size = max_size
        self._client_mode = client_mode
        self._deflate = deflate
        self._state = WS_HEADER
        self._msg_opcode = 0
        self._error = None

    def __dealloc__(self):
        _buf_free(&self._buf)
        _buf_free(&self._msg)

    @property
    def buffered(self):
        """Bytes fed and not yet consumed by next_event()."""
        return self._buf.end - self._buf.start

    @property
    def max_size(self):
        """The per-message limit in bytes (None: unlimited)."""
        return None if self._max_size == PY_SSIZE_T_MAX else self._max_size

    def feed(self, data):
        """Copy `data` (bytes, bytearray, memoryview: any contiguous buffer)
        into the receive buffer.  Dropped once the parser is closed or dead."""
        cdef Py_buffer view
        if self._state >= WS_CLOSED:
            return
        if self._exports:
            raise BufferError("feed() while a get_buffer() view is held")
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            _buf_append(&self._buf, view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def get_buffer(self, Py_ssize_t sizehint=-1):
        """The asyncio.BufferedProtocol half: return a writable memoryview of
        the free end of the receive buffer, so the transport reads straight
        into it; then call ``buffer_updated(nbytes)``.  The buffer stays put
        until that view is released.

        It offers at least WS_READ_MIN bytes, and while a frame's payload is
        due, room for the rest of it and WS_READ_MIN more (up to
        WS_MAX_RETAINED), so large frames back to back take few reads.  The room grows with what has arrived, never with
        what a header merely announces past that bound.  Once the parser is
        closed or dead it offers a scratch area whose bytes are dropped.
        Raises BufferError while an earlier view is still held.
        """
        cdef Py_ssize_t want = WS_READ_MIN, due
        if self._exports:
            raise BufferError("get_buffer() while an earlier view is held")
        if self._state >= WS_CLOSED:
            return _DISCARD
        if self._buf.start == self._buf.end:
            _buf_drained(&self._buf)
        if self._state == WS_PAYLOAD:
            due = self._plen - (self._buf.end - self._buf.start) + WS_READ_MIN
            if due > want:
                want = due if due < WS_MAX_RETAINED else WS_MAX_RETAINED
        if sizehint > want:
            want = sizehint if sizehint < WS_MAX_RETAINED else WS_MAX_RETAINED
        _buf_reserve(&self._buf, want)
        # A memoryview, not the parser itself: asyncio's transports take
        # len() of what they get.
        return memoryview(self)

    def buffer_updated(self, Py_ssize_t nbytes):
        """`nbytes` bytes were written at the start of get_buffer()'s view;
        they are now part of the input (as if fed).  Then call next_event()."""
        if self._state >= WS_CLOSED:
            return
        if not 0 <= nbytes <= self._buf.cap - self._buf.end:
            raise ValueError("nbytes is beyond the buffer get_buffer() gave")
        self._buf.end += nbytes

    def __getbuffer__(self, Py_buffer *view, int flags):
        # The free tail of the receive buffer (see get_buffer).
        PyBuffer_FillInfo(view, self, self._buf.data + self._buf.end,
                          self._buf.cap - self._buf.end, 0, flags)
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1

    def next_event(self):
        """Return the next event (TextMessage, BytesMessage, Ping, Pong, Close)
        or None when more bytes are needed (or after Close).  Raises
        WebSocketError on a protocol violation, then on every later call."""
        cdef object ev
        if self._state == WS_DEAD:
            raise self._error
        try:
            while True:
                if self._state == WS_HEADER:
                    if not self._parse_header():
                        return None
                if self._state == WS_PAYLOAD:
                    if self._buf.end - self._buf.start < self._plen:
                        if self._early:
                            self._early_text()
                        return None
                    ev = self._frame()
                    if ev is not None:
                        return ev
                else:       # WS_CLOSED
                    return None
        except WebSocketError as exc:
            self._state = WS_DEAD
            self._error = exc
            _buf_free(&self._buf)
            _buf_free(&self._msg)
            raise

    cdef object _fail(self, int code, str reason):
        raise WebSocketError(code, reason)

    cdef int _parse_header(self) except -1:
        """Parse and check the header at the buffer's start; return 1 when it is
        complete (state WS_PAYLOAD, header consumed), 0 if more bytes are due.
        Each rule is checked as soon as its bytes are here."""
        cdef Py_ssize_t avail = self._buf.end - self._buf.start, hlen = 2
        cdef const unsigned char *p = self._buf.data + self._buf.start
        cdef uint64_t plen
        cdef int b0, b1, opcode
        cdef bint fin, masked, rsv1
        if avail < 2:
            return 0
        b0 = p[0]
        b1 = p[1]
        # bint is a C int: normalise to 0/1 before comparing with another bint.
        fin = (b0 & 0x80) != 0
        rsv1 = (b0 & 0x40) != 0
        opcode = b0 & 0x0F
        masked = (b1 & 0x80) != 0
        plen = b1 & 0x7F
        # §5.2: opcodes 3-7 and 0xB-0xF are reserved.
        if opcode > OP_BINARY and opcode < OP_CLOSE or opcode > OP_PONG:
            self._fail(1002, f"reserved opcode {opcode}")
        # §5.2: RSV bits only with an extension that defines them.  RFC 7692
        # §6 gives RSV1 to permessage-deflate, on a message's first frame only.
        if b0 & 0x30:
            self._fail(1002, "RSV2/RSV3 set")
        if rsv1:
            if self._deflate is None:
                self._fail(1002, "RSV1 set without a negotiated extension")
            if opcode != OP_TEXT and opcode != OP_BINARY:
                self._fail(1002, "RSV1 set on a control or continuation frame")
        if opcode >= OP_CLOSE:
            # §5.5: control frames are never fragmented and carry <= 125 bytes.
            if not fin:
                self._fail(1002, "fragmented control frame")
            if plen > WS_MAX_CONTROL:
                self._fail(1002, "control frame payload over 125 bytes")
        elif opcode == OP_CONT:
            if self._msg_opcode == 0:
                self._fail(1002, "continuation frame without a message to continue")
        elif self._msg_opcode != 0:
            # §5.4: fragments of one message are not interleaved with another.
            self._fail(1002, "new data frame before the fragmented message ended")
        # §5.1: client-to-server frames are masked, server-to-client are not.
        if masked == self._client_mode:
            self._fail(1002, "masked frame from the server" if self._client_mode
                       else "unmasked frame from the client")
        if plen == 126:
            if avail < 4:
                return 0
            plen = (<uint64_t>p[2] << 8) | p[3]
            hlen = 4
        elif plen == 127:
            if avail < 10:
                return 0
            plen = ((<uint64_t>p[2] << 56) | (<uint64_t>p[3] << 48) | (<uint64_t>p[4] << 40)
                    | (<uint64_t>p[5] << 32) | (<uint64_t>p[6] << 24) | (<uint64_t>p[7] << 16)
                    | (<uint64_t>p[8] << 8) | p[9])
            if plen >> 63:
                self._fail(1002, "64-bit payload length with the MSB set")
            hlen = 10
        # §10.4: the limit holds before any payload byte is buffered.
        if opcode < OP_CLOSE and plen > <uint64_t>(
                self._max_size - (self._msg_wire if opcode == OP_CONT else 0)):
            self._fail(1009, "message too big")
        if masked:
            if avail < hlen + 4:
                return 0
            memcpy(self._key, p + hlen, 4)
            hlen += 4
        self._opcode = opcode
        self._fin = fin
        self._rsv1 = rsv1
        self._masked = masked
        self._done = 0
        if opcode == OP_TEXT or opcode == OP_BINARY:
            _utf8_reset(&self._utf8)
        self._early = ((opcode == OP_TEXT and not rsv1)
                       or (opcode == OP_CONT and self._msg_opcode == OP_TEXT
                           and not self._msg_compressed))
        self._hlen = hlen
        self._plen = <Py_ssize_t>plen
        self._buf.start += hlen
        self._state = WS_PAYLOAD
        return 1

    cdef int _early_text(self) except -1:
        """Unmask and UTF-8 check the part of a text frame that is here, so
        invalid text fails at the read that brings it, not when the frame
        ends (Autobahn 6.4.3/6.4.4 "fail fast").  Each byte is done once."""
        cdef unsigned char *p = self._buf.data + self._buf.start + self._done
        cdef Py_ssize_t n = self._buf.end - self._buf.start - self._done
        if n <= 0:
            return 0
        if self._masked:
            _mask(p, n, self._key, self._done)
        if _utf8_feed(&self._utf8, p, n) >= 0:
            self._fail(1007, "invalid UTF-8 in a text message")
        self._done += n
        return 0

    cdef object _frame(self):
        """The whole payload is buffered: unmask it in place, consume it and
        return its event (None for a non-final fragment)."""
        cdef unsigned char *p = self._buf.data + self._buf.start
        cdef Py_ssize_t n = self._plen
        self._buf.start += n
        self._state = WS_HEADER
        if self._opcode == OP_BINARY and self._fin and not self._rsv1:
            # A whole binary message in one uncompressed frame: unmask while
            # copying into its bytes (one pass over the payload, not two).
            ev = _binary(self._unmasked(p, n))
        else:
            if self._masked:
                _mask_maybe_nogil(p + self._done, n - self._done, self._key, self._done)
            if self._opcode >= OP_CLOSE:
                ev = self._control_frame(p, n)
            else:
                ev = self._data_frame(p, n)
        if self._buf.start == self._buf.end:
            if self._exports:
                # Called from buffer_updated() while the transport still
                # holds its view: rewind, but keep the block (get_buffer()
                # gives back a big one later).
                self._buf.start = self._buf.end = 0
            else:
                _buf_drained(&self._buf)
        return ev

    cdef bytes _unmasked(self, unsigned char *p, Py_ssize_t n):
        """A new bytes object holding p[0:n] unmasked (p is left masked)."""
        # Allocated empty and filled (see apply_mask on CPython's shared
        # one-byte objects).
        cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
        cdef unsigned char *o = <unsigned char *>PyBytes_AS_STRING(out)
        if not self._masked:
            memcpy(o, p, n)
        elif n >= NOGIL_MIN_MASK:
            with nogil:
                _mask_copy(o, p, n, self._key, 0)
        else:
            _mask_copy(o, p, n, self._key, 0)
        return out

    cdef object _control_frame(self, unsigned char *p, Py_ssize_t n):
        cdef Ping ping
        cdef Pong pong
        cdef Close close
        cdef int code
        if self._opcode == OP_PING:
            ping = Ping.__new__(Ping)
            ping.payload = PyBytes_FromStringAndSize(<const char *>p, n)
            return ping
        if self._opcode == OP_PONG:
            pong = Pong.__new__(Pong)
            pong.payload = PyBytes_FromStringAndSize(<const char *>p, n)
            return pong
        # §5.5.1: empty, or a 2-byte code and a UTF-8 reason.
        close = Close.__new__(Close)
        if n == 0:
            close.code = 1005
            close.reason = ""
        elif n == 1:
            self._fail(1002, "close frame with a 1-byte payload")
        else:
            code = (p[0] << 8) | p[1]
            if not _close_code_ok(code):
                self._fail(1002, f"invalid close code {code}")
            close.code = code
            try:
                close.reason = PyUnicode_DecodeUTF8(<const char *>p + 2, n - 2, NULL)
            except UnicodeDecodeError:
                self._fail(1007, "close reason is not valid UTF-8")
        self._state = WS_CLOSED
        _buf_free(&self._msg)
        return close

    cdef object _data_frame(self, unsigned char *p, Py_ssize_t n):
        cdef Py_ssize_t room, skip
        cdef const unsigned char *d
        cdef bytes chunk
        if self._opcode != OP_CONT:
            if self._fin and not self._rsv1:
                # PERF: a message in one uncompressed frame (nearly all of
                # them) is built straight from the receive buffer; CPython's
                # decoder validates UTF-8 at least as fast as our loop.
                # (Binary ones never get here: _frame builds them.)
                try:
                    return _text(PyUnicode_DecodeUTF8(<const char *>p, n, NULL))
                except UnicodeDecodeError:
                    self._fail(1007, "invalid UTF-8 in a text message")
            self._msg_opcode = self._opcode
            self._msg_compressed = self._rsv1
            self._msg_wire = 0
            self._msg.start = self._msg.end = 0
        self._msg_wire += n
        if self._msg_compressed:
            room = self._max_size - self._msg.end
            chunk = self._deflate._inflate(
                PyBytes_FromStringAndSize(<const char *>p, n), self._fin, room)
            d = <const unsigned char *>PyBytes_AS_STRING(chunk)
            n = PyBytes_GET_SIZE(chunk)
            if self._fin and self._msg.end == 0:
                # Nothing reassembled yet (one frame, or earlier fragments
                # that inflated to nothing): no reassembly copy.  The type is
                # the message's, not this frame's (it may be a continuation).
                self._deflate._end_inbound()
                if self._msg_opcode == OP_BINARY:
                    self._msg_opcode = 0
                    return _binary(chunk)
                self._msg_opcode = 0
                try:
                    return _text(PyUnicode_DecodeUTF8(<const char *>d, n, NULL))
                except UnicodeDecodeError:
                    self._fail(1007, "invalid UTF-8 in a text message")
        else:
            d = p
        if self._msg_opcode == OP_TEXT:
            # Autobahn 6.x: fail at the fragment where the text turns invalid
            # (the first _done bytes of an uncompressed one are checked).
            skip = 0 if self._msg_compressed else self._done
            if _utf8_feed(&self._utf8, d + skip, n - skip) >= 0:
                self._fail(1007, "invalid UTF-8 in a text message")
            if self._fin and self._utf8.need:
                self._fail(1007, "text message ends inside a UTF-8 sequence")
        _buf_append(&self._msg, d, n)
        if not self._fin:
            return None
        if self._msg_compressed:
            self._deflate._end_inbound()
        if self._msg_opcode == OP_TEXT:
            # Already validated: this decode cannot fail.
            ev = _text(PyUnicode_DecodeUTF8(<const char *>self._msg.data, self._msg.end, NULL))
        else:
            ev = _binary(PyBytes_FromStringAndSize(<const char *>self._msg.data, self._msg.end))
        self._msg_opcode = 0
        _buf_drained(&self._msg)
        return ev


# ---------------------------------------------------------------- writing

cdef bytes _header(int b0, Py_ssize_t n):
    """An unmasked frame header: first byte `b0`, payload length `n`."""
    cdef unsigned char h[10]
    cdef Py_ssize_t hlen = _put_header(h, b0, n)
    return PyBytes_FromStringAndSize(<const char *>h, hlen)


cdef inline Py_ssize_t _put_header(unsigned char *o, int b0, Py_ssize_t n) noexcept:
    """Write the first 2-10 header bytes (no mask bit or key) to `o`; return
    how many.  Minimal length encoding (§5.2)."""
    cdef uint64_t ln = <uint64_t>n
    cdef int i
    o[0] = <unsigned char>b0
    if n < 126:
        o[1] = <unsigned char>n
        return 2
    if n < 65536:
        o[1] = 126
        o[2] = <unsigned char>(n >> 8)
        o[3] = <unsigned char>n
        return 4
    o[1] = 127
    for i in range(8):
        o[2 + i] = <unsigned char>(ln >> (56 - 8 * i))
    return 10


cdef bytes _build(int b0, const unsigned char *payload, Py_ssize_t n,
                  const unsigned char *key):
    """One frame: first header byte `b0`, the payload, masked with `key`
    unless NULL.  Minimal length encoding (§5.2)."""
    cdef Py_ssize_t hlen = 2 if n < 126 else (4 if n < 65536 else 10)
    cdef bytes out
    cdef unsigned char *o
    if key != NULL:
        hlen += 4
    out = PyBytes_FromStringAndSize(NULL, hlen + n)
    o = <unsigned char *>PyBytes_AS_STRING(out)
    _put_header(o, b0, n)
    if key != NULL:
        o[1] |= 0x80
        memcpy(o + hlen - 4, key, 4)
    if n:
        if key != NULL:
            _mask_copy(o + hlen, payload, n, key, 0)
        else:
            memcpy(o + hlen, payload, n)
    return out


def build_frame(int opcode, payload, *, bint fin=True, bint rsv1=False, mask=None,
                bint check=True) -> bytes:
    """Return one frame with `payload` (any contiguous buffer).  `mask` (4
    bytes) masks it, as a client must (§5.3); servers send None.

    With `check` (the default) reserved opcodes and fragmented or oversized
    (> 125 bytes) control frames raise ValueError; ``check=False`` builds
    them anyway, for tests.  RSV1 is set as asked, never checked."""
    cdef Py_buffer view
    cdef bytes key = None
    cdef const unsigned char *k = NULL
    if not 0 <= opcode <= 15:
        raise ValueError("opcode must be 0..15")
    if mask is not None:
        key = bytes(mask)
        if PyBytes_GET_SIZE(key) != 4:
            raise ValueError("mask must be 4 bytes")
        k = <const unsigned char *>PyBytes_AS_STRING(key)
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        if check:
            if OP_BINARY < opcode < OP_CLOSE or opcode > OP_PONG:
                raise ValueError(f"reserved opcode {opcode}")
            if opcode >= OP_CLOSE and (not fin or view.len > WS_MAX_CONTROL):
                raise ValueError("control frames must be final and <= 125 bytes")
        return _build((0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode,
                      <const unsigned char *>view.buf, view.len, k)
    finally:
        PyBuffer_Release(&view)


cdef bytes _close_payload(object code, str reason):
    cdef bytes r = reason.encode("utf-8")
    cdef int c
    if code is None:
        if r:
            raise ValueError("a close reason needs a close code")
        return b""
    c = code
    if not _close_code_ok(c):
        raise ValueError(f"close code {c} may not be sent (RFC 6455 §7.4)")
    if PyBytes_GET_SIZE(r) > WS_MAX_CONTROL - 2:
        raise ValueError("close reason over 123 bytes of UTF-8")
    return bytes((c >> 8, c & 0xFF)) + r


def build_close(code, str reason="", *, mask=None) -> bytes:
    """Return a Close frame (§5.5.1).  `code` must be sendable (1000-1003,
    1007-1014, 3000-4999) or None for an empty payload; `reason` at most 123
    bytes of UTF-8.  Raises ValueError otherwise."""
    return build_frame(OP_CLOSE, _close_payload(code, reason), mask=mask)


cdef class FrameWriter:
    """Server-to-client frames (unmasked, §5.1), each message in one frame,
    deflated when `deflate` (a negotiated PerMessageDeflate) is given."""

    def __init__(self, PerMessageDeflate deflate=None):
        self._deflate = deflate

    def text(self, str s) -> bytes:
        """A Text message frame for `s`."""
        cdef Py_ssize_t n
        cdef const char *u
        if self._deflate is not None:
            return self._compressed(0x80 | OP_TEXT, s.encode("utf-8"))
        # PyUnicode_AsUTF8AndSize gives an ASCII str's own bytes (no copy)
        # and caches the encoding of the others.
        u = PyUnicode_AsUTF8AndSize(s, &n)
        return _build(0x80 | OP_TEXT, <const unsigned char *>u, n, NULL)

    def binary(self, data) -> bytes:
        """A Binary message frame for `data` (any contiguous buffer)."""
        cdef Py_buffer view
        if self._deflate is not None:
            return self._compressed(0x80 | OP_BINARY, data)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return _build(0x80 | OP_BINARY, <const unsigned char *>view.buf, view.len, NULL)
        finally:
            PyBuffer_Release(&view)

    @property
    def compresses(self):
        """True when permessage-deflate was negotiated: text() and binary()
        compress every message."""
        return self._deflate is not None

    def binary_header(self, Py_ssize_t n) -> bytes:
        """The header alone of a final, uncompressed Binary frame carrying
        `n` bytes, for a caller that writes the payload right after it (one
        gathered write, the payload not copied).  Legal with deflate
        negotiated (RFC 7692 §6: no RSV1, not compressed), but such a
        connection expects its messages compressed: check ``compresses``."""
        if n < 0:
            raise ValueError("n must be >= 0")
        return _header(0x80 | OP_BINARY, n)

    cdef bytes _compressed(self, int b0, object data):
        cdef bytes z = self._deflate.compress(data)
        # RFC 7692 §6: RSV1 marks the message as compressed.
        return _build(b0 | 0x40, <const unsigned char *>PyBytes_AS_STRING(z),
                      PyBytes_GET_SIZE(z), NULL)

    def ping(self, payload=b"") -> bytes:
        """A Ping frame (payload at most 125 bytes, else ValueError)."""
        return build_frame(OP_PING, payload)

    def pong(self, payload=b"") -> bytes:
        """A Pong frame (payload at most 125 bytes, else ValueError)."""
        return build_frame(OP_PONG, payload)

    def close(self, code=1000, str reason="") -> bytes:
        """A Close frame; see build_close for what is accepted."""
        return build_frame(OP_CLOSE, _close_payload(code, reason))
