# The map of fasterapi._http, the sans-IO HTTP/1.1 request parser: states,
# field layout and every cdef signature.  Bodies live in _http.pyx.


cdef enum ParserState:
    # What next_event() is waiting for.
    PS_HEAD = 0          # a request head (leading CRLFs, request line, fields)
    PS_END_PENDING = 1   # head returned, no body: END is next
    PS_BODY_CL = 2       # Content-Length body, `remaining` bytes to go
    PS_CHUNK_SIZE = 3    # a chunk-size line (RFC 9112 §7.1)
    PS_CHUNK_DATA = 4    # chunk data, `remaining` bytes to go
    PS_CHUNK_CR = 5      # the CR that ends chunk data
    PS_CHUNK_LF = 6      # the LF that ends chunk data
    PS_TRAILERS = 7      # the trailer section after the last chunk
    PS_DEAD = 8          # an error was raised; every call re-raises it


cdef enum HeadState:
    # Byte-level states of the head and trailer scanners.  One state per
    # grammar position, so any split of the input reaches the same state.
    HS_PRE = 0           # start of a request: CRLF (ignored) or a method byte
    HS_PRE_LF = 1        # saw CR of an ignored leading empty line
    HS_METHOD = 2        # inside the method token
    HS_TARGET = 3        # inside the request-target
    HS_VERSION = 4       # inside "HTTP/x.y" (vlen bytes seen), then its CR
    HS_RL_LF = 5         # the LF after the request line's CR
    FS_LINE_START = 6    # start of a field line, or the CR of the final CRLF
    FS_NAME = 7          # inside a field name
    FS_OWS = 8           # after the colon, before the value
    FS_VALUE = 9         # inside a field value
    FS_LF = 10           # the LF after a field line's CR
    FS_END_LF = 11       # the LF of the empty line that ends the section


cdef enum ChunkSizeState:
    # Byte-level states of the chunk-size line (RFC 9112 §7.1, §7.1.1),
    # without BWS (see _scan_chunk_size).
    CS_SIZE = 0            # hex digits of chunk-size
    CS_EXT_NAME_START = 1  # after ";": the first byte of chunk-ext-name
    CS_EXT_NAME = 2        # inside chunk-ext-name
    CS_EXT_VAL_START = 3   # after "=": a token or a quoted-string
    CS_EXT_TOKVAL = 4      # inside a token value
    CS_EXT_QS = 5          # inside a quoted-string value
    CS_EXT_QP = 6          # after a backslash inside the quoted-string
    CS_EXT_AFTER_QS = 7    # after the closing quote: ";" or CR
    CS_LF = 8              # the LF after the line's CR


cdef enum ScanResult:
    SCAN_ERROR = -1      # err_status / err_reason are set
    SCAN_MORE = 0        # need more bytes
    SCAN_DONE = 1        # the element is complete


cdef struct FieldSpan:
    # One field line of the current head, as offsets from the buffer's
    # consumed position (`start`), so compaction never invalidates them.
    Py_ssize_t name_off
    Py_ssize_t name_len
    Py_ssize_t value_off   # OWS already stripped on both sides (RFC 9110 §5.5)
    Py_ssize_t value_len


cdef class RequestHead:
    cdef readonly dict scope          # ASGI HTTP scope (a copy of scope_base plus request keys)
    cdef readonly str method          # case-sensitive token, e.g. "GET"
    cdef readonly str http_version    # "1.0" or "1.1"
    cdef readonly bint http11         # http_version == "1.1"
    cdef readonly bint is_head        # method == "HEAD"
    cdef readonly bint keep_alive     # RFC 9112 §9.3
    cdef readonly bint expect_continue  # "Expect: 100-continue" on HTTP/1.1
    cdef readonly bint chunked        # body framed by chunked coding
    cdef readonly long long content_length  # -1 when absent
    cdef readonly object upgrade      # bytes (Upgrade value) or None
    cdef readonly bytes host          # absolute-form authority, else Host value, else b""


cdef class RequestParser:
    cdef dict scope_template    # scope_base with every request key: copied per request

    # ---- receive buffer: [start, end) holds fed, unconsumed bytes ----
    cdef unsigned char *buf
    cdef Py_ssize_t cap
    cdef Py_ssize_t start
    cdef Py_ssize_t end
    # How many bytes after `start` the current scanner already examined:
    # a slow drip never rescans (h11's _receivebuffer property).
    cdef Py_ssize_t scan

    # ---- limits (set once in __init__) ----
    cdef Py_ssize_t max_request_line
    cdef Py_ssize_t max_header_bytes
    cdef Py_ssize_t max_headers
    cdef Py_ssize_t max_chunk_ext
    cdef Py_ssize_t max_trailer_bytes
    cdef unsigned long long max_body_size   # 0 = unlimited

    cdef int state          # ParserState
    cdef int hs             # HeadState of the head/trailer scanner

    # ---- request line, offsets from `start` ----
    cdef int leading_crlf   # ignored empty lines before this request line
    cdef Py_ssize_t rl_off  # first byte of the request line
    cdef Py_ssize_t method_len
    cdef Py_ssize_t target_off
    cdef Py_ssize_t target_len
    cdef int vlen           # bytes of "HTTP/x.y" seen
    cdef unsigned char major  # the version's major digit (ASCII)
    cdef unsigned char minor  # the version's minor digit (ASCII)

    # ---- field section being scanned ----
    cdef Py_ssize_t fields_off  # first byte of the field (or trailer) section
    cdef Py_ssize_t line_off    # first byte of the current field line
    cdef Py_ssize_t name_end
    cdef Py_ssize_t value_off
    cdef Py_ssize_t value_end   # one past the last non-OWS value byte
    cdef FieldSpan *fields      # max_headers entries
    cdef Py_ssize_t nfields

    # ---- body ----
    cdef unsigned long long remaining   # bytes left in this CL body or chunk
    cdef unsigned long long body_total  # chunked bytes announced so far
    cdef int cs                 # ChunkSizeState
    cdef int chunk_digits
    cdef Py_ssize_t ext_len     # bytes of chunk-ext on this size line

    # ---- the one error path: set by scanners (nogil) and by _build_head ----
    cdef int err_status
    cdef const char *err_reason

    cdef void _reset_head(self) noexcept nogil
    cdef int c_feed(self, const unsigned char *p, Py_ssize_t n) except -1
    cdef int _append(self, const unsigned char *p, Py_ssize_t n) except -1
    cdef int _fail(self, int status, const char *reason) noexcept nogil
    cdef int _scan_head(self) noexcept nogil
    cdef int _scan_fields(self, Py_ssize_t limit, bint record) noexcept nogil
    cdef int _scan_chunk_size(self) noexcept nogil
    cdef object _raise(self)
    cdef object _step(self)
    cdef RequestHead _build_head(self)
