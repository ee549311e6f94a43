# The C-level map of fasterapi._websocket: the sans-IO RFC 6455 frame layer
# (parser, writer, events) and RFC 7692 permessage-deflate.
#
# The asyncio layer (fasterapi/websocket.py) uses the Python API only; Cython
# code may cimport these classes and read the event fields directly.
from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef enum:
    # Opcodes, RFC 6455 §5.2 / §11.8.
    OP_CONT = 0x0
    OP_TEXT = 0x1
    OP_BINARY = 0x2
    OP_CLOSE = 0x8
    OP_PING = 0x9
    OP_PONG = 0xA
    # Control frames carry at most 125 bytes (RFC 6455 §5.5).
    WS_MAX_CONTROL = 125
    # Longest header: 2 + 8 (64-bit length) + 4 (masking key).
    WS_MAX_HEADER = 14
    # The parser's receive buffer is given back when it grew past this and
    # drained (one large message must not pin its memory to the connection).
    WS_MAX_RETAINED = 262144
    # get_buffer() offers at least this much room to read into: libuv's own
    # suggested read size, and the HTTP layer's read buffer.
    WS_READ_MIN = 65536


# Where the parser is.
cdef enum WSState:
    WS_HEADER = 0       # waiting for (the rest of) a frame header
    WS_PAYLOAD          # header parsed, waiting for the whole payload
    WS_CLOSED           # the peer's Close was returned: nothing more is read
    WS_DEAD             # a WebSocketError was raised: the parser is unusable


# Incremental UTF-8 validation (RFC 3629 §4) that may stop inside a sequence.
cdef struct Utf8State:
    int need            # continuation bytes still due for the current sequence
    uint8_t lo, hi      # allowed range of the next continuation byte


# A growable byte buffer (PyMem): receive buffer and message reassembly.
cdef struct ByteBuf:
    unsigned char *data
    Py_ssize_t start    # first unread byte
    Py_ssize_t end      # one past the last written byte
    Py_ssize_t cap


cdef class TextMessage:
    cdef readonly str data

cdef class BytesMessage:
    cdef readonly bytes data

cdef class Ping:
    cdef readonly bytes payload

cdef class Pong:
    cdef readonly bytes payload

cdef class Close:
    cdef readonly int code      # 1005 when the frame had no payload
    cdef readonly str reason


cdef class PerMessageDeflate:
    cdef readonly bint server_no_context_takeover
    cdef readonly bint client_no_context_takeover
    cdef readonly int server_max_window_bits    # agreed bound on our window
    cdef readonly int client_max_window_bits    # what we told the client (15: unset)
    cdef readonly int level                     # zlib level of compress()
    cdef readonly int window_bits               # our compressor's window (<= the bound)
    cdef readonly int mem_level                 # our compressor's zlib memLevel
    cdef object _compressor                     # zlib.Compress, reused unless no takeover
    cdef object _decompressor                   # zlib.Decompress, idem for the client

    cdef bytes _inflate(self, object chunk, bint final, Py_ssize_t limit)
    cdef void _end_inbound(self)


cdef class FrameParser:
    cdef:
        ByteBuf _buf            # received, not yet consumed bytes
        ByteBuf _msg            # payload of the fragmented message in progress
        Utf8State _utf8         # validation state of _msg (text messages)
        WSState _state
        Py_ssize_t _max_size    # bytes; PY_SSIZE_T_MAX when unlimited
        bint _client_mode       # we are a client: frames must be unmasked
        PerMessageDeflate _deflate  # None when not negotiated
        # The message in progress (between its first frame and FIN):
        int _msg_opcode         # OP_TEXT/OP_BINARY, 0 when none
        bint _msg_compressed    # its first frame had RSV1
        Py_ssize_t _msg_wire    # payload bytes received for it on the wire
        # The parsed header of the current frame (WS_PAYLOAD):
        int _opcode
        bint _fin
        bint _rsv1
        bint _masked
        unsigned char _key[4]
        Py_ssize_t _hlen        # header bytes
        Py_ssize_t _plen        # payload bytes
        Py_ssize_t _done        # payload bytes unmasked and UTF-8 checked
                                # while the rest of the frame was due
        bint _early             # text, uncompressed: check it as it arrives
        object _error           # the WebSocketError that killed the parser
        Py_ssize_t _exports     # live buffer views of _buf's free tail
                                # (get_buffer): _buf must not move meanwhile

    cdef int _parse_header(self) except -1
    cdef int _early_text(self) except -1
    cdef object _frame(self)
    cdef bytes _unmasked(self, unsigned char *p, Py_ssize_t n)
    cdef object _data_frame(self, unsigned char *p, Py_ssize_t n)
    cdef object _control_frame(self, unsigned char *p, Py_ssize_t n)
    cdef object _fail(self, int code, str reason)


cdef class FrameWriter:
    cdef PerMessageDeflate _deflate     # None: messages are sent as they are

    cdef bytes _compressed(self, int b0, object data)
