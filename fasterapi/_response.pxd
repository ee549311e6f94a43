# The C-level map of fasterapi._response: one growable buffer per response
# (status line, header lines, body) and a JSON writer that can fill that
# buffer's body directly.
#
# The server's Cython code cimports these classes and calls the cdef methods
# below without Python call overhead; every `except -1` method raises the same
# exception its Python-level twin documents in _response.pyx.
from libc.stdint cimport int64_t


cdef enum:
    # Bytes held inside the object itself; larger initial capacities are one
    # malloc made at construction (see ResponseBuilder.__cinit__).
    RB_INLINE_SIZE = 1024
    # reset() gives back a buffer that grew past this, so one large response
    # does not pin its memory to a keep-alive connection for its whole life.
    RB_MAX_RETAINED = 1048576
    # Room left between the header lines and the first body byte in
    # fixed-length mode: "content-length: " (16) + 19 digits (INT64_MAX) +
    # CRLF CRLF (4).  finalize() writes the header into it.
    RB_CL_GAP = 39
    # Nesting limit of JsonBuilder (also bounds value()'s recursion).
    JSON_MAX_DEPTH = 512
    # Strings at least this long are escaped with the GIL released; below it
    # the release/reacquire pair costs more than the loop it frees.
    JSON_NOGIL_MIN = 65536


# Where a response is: the methods allowed in each state are listed in
# ResponseBuilder's docstring.
cdef enum RBState:
    RB_EMPTY = 0        # nothing written: status() is due
    RB_HEAD             # status line (+ header lines): the head is open
    RB_HEAD_BODY        # head open, body bytes after the content-length gap
    RB_BODY             # head closed by flush(); raw body bytes follow
    RB_CHUNKED          # head closed by chunk()/end(); chunk frames follow
    RB_ENDED            # end() wrote the last chunk: nothing more may follow
    RB_DONE             # finalize() ran: finalize()/getvalue() again, or reset()


cdef class ResponseBuilder:
    cdef:
        char *_buf                # _inline or malloc'd; never NULL after init
        Py_ssize_t _cap           # bytes allocated at _buf
        Py_ssize_t _initial_cap   # what reset() shrinks back to
        Py_ssize_t _start         # first byte not yet handed out (head may be
                                  # moved right when the gap closes)
        Py_ssize_t _len           # end of the written bytes
        Py_ssize_t _gap_at        # offset of the RB_CL_GAP gap, -1 if none
        Py_ssize_t _head_end      # offset just past the head's final CRLF,
                                  # -1 while open or once flushed away
        Py_ssize_t _view_start    # region exported by __getbuffer__, set by
        Py_ssize_t _view_len      #   finalize()/flush()
        Py_ssize_t _body_len      # body bytes written (all flushes included)
        int64_t _content_length   # caller's content-length, -1 if none
        int _exports              # live buffer exports: writes refused while > 0
        int _status               # status code, 0 before status()
        RBState _state
        bint _discard_pending     # flush() handed out [_start, _len): the next
                                  # write starts the buffer again at 0
        bint _no_body             # 1xx, 204, 304: no body (RFC 9110 §6.4.1)
        bint _has_cl              # caller sent these (names case-insensitive)
        bint _has_te
        bint _te_chunked          # ... and its last coding is chunked
        bint _chunked             # chunked framing in use (ours or caller's)
        bint _conn_close          # caller sent "connection: close"
        bint _has_date
        bint _has_server
        bint _has_ct
        char _inline[RB_INLINE_SIZE]

    cdef void _clear_state(self) noexcept
    cdef int _check_writable(self) except -1
    cdef char *_reserve(self, Py_ssize_t n) except NULL
    cdef int _grow(self, Py_ssize_t need) except -1
    cdef int _check_head_open(self) except -1
    cdef int _close_head(self, bint auto_length) except -1
    cdef int _open_chunked(self) except -1
    cdef int _write_field(self, const char *name, Py_ssize_t nlen,
                          const char *value, Py_ssize_t vlen, bint track) except -1

    # The C-level API (the Python methods are thin wrappers of these).
    cdef int c_status(self, int code, const char *reason, Py_ssize_t rlen) except -1
    cdef int c_header(self, const char *name, Py_ssize_t nlen,
                      const char *value, Py_ssize_t vlen) except -1
    cdef int c_headers(self, object pairs) except -1
    cdef int c_raw_headers(self, const char *block, Py_ssize_t n) except -1
    cdef int c_body(self, const char *data, Py_ssize_t n) except -1
    cdef char *c_body_reserve(self, Py_ssize_t n) except NULL
    cdef int c_body_elsewhere(self, Py_ssize_t n) except -1
    cdef int _body_open(self, Py_ssize_t n) except -1
    cdef int c_chunk(self, const char *data, Py_ssize_t n) except -1
    cdef int c_end(self, object trailers) except -1
    # finalize()/flush() set the exported region; memoryview(self) is then
    # the response bytes (a Cython caller may instead read _buf + _view_start).
    cdef int c_finalize(self, bint head_only) except -1
    cdef int c_flush(self) except -1
    cdef int c_reset(self) except -1


cdef class JsonBuilder:
    cdef:
        ResponseBuilder _rb       # target, or None: write to _buf
        char *_buf                # own buffer (standalone mode)
        Py_ssize_t _len
        Py_ssize_t _cap
        bint _busy                # escaping with the GIL released
        int _depth                # open containers; _frames[0] is the root
        unsigned char _frames[JSON_MAX_DEPTH + 1]
        char _inline[256]

    cdef char *_reserve(self, Py_ssize_t n) except NULL
    cdef void _commit(self, Py_ssize_t n) noexcept
    cdef int _sep_value(self) except -1
    cdef int _sep_key(self) except -1
    cdef int _write_literal(self, const char *lit, Py_ssize_t n) except -1
    cdef int _write_string(self, object s, bint is_key) except -1
    cdef int _dict(self, dict d) except -1
    cdef int _seq(self, object seq) except -1

    cdef int c_begin(self, bint is_object) except -1
    cdef int c_end(self, bint is_object) except -1
    cdef int c_key(self, object s) except -1
    cdef int c_string(self, object s) except -1
    cdef int c_int(self, object v) except -1
    cdef int c_int64(self, int64_t v) except -1
    cdef int c_float(self, double v) except -1
    cdef int c_raw(self, const char *data, Py_ssize_t n) except -1
    cdef int c_value(self, object obj) except -1
