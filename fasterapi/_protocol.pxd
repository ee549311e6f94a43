# The C-level map of fasterapi._protocol: one HTTP/1.1 connection (HttpCore),
# one request/response exchange on it (RequestCycle), and the per-event-loop
# services every connection on that loop shares (LoopState: the dispatch ring,
# the timeout tick, the cached Date line and the pending access-log records).
#
# Bodies live in _protocol.pyx; the asyncio-facing subclass is
# fasterapi.protocol.HttpProtocol.
from fasterapi._queue cimport SPSCRing
from fasterapi._http cimport RequestParser
from fasterapi._response cimport ResponseBuilder


# Why a connection's deadline is armed (see LoopState._tick).
cdef enum DeadlineKind:
    DL_NONE = 0
    DL_KEEP_ALIVE = 1        # idle between requests
    DL_HEADER = 2            # a request head is incomplete (slowloris guard)
    DL_BODY = 3              # waiting for request-body bytes


# Why reading is paused; reading resumes when all bits are clear.
cdef enum ReadPause:
    RP_BODY = 1              # unread request body above read_buffer_limit
    RP_RING = 2              # the dispatch ring was full
    RP_PIPELINE = 4          # too many bytes parsed ahead of the current request


# Response progress of one cycle.
cdef enum ResponseState:
    RS_NONE = 0              # nothing from the app yet
    RS_STARTED = 1           # http.response.start stored, nothing on the wire
    RS_STREAMING = 2         # head (and maybe body) on the wire, more to come
    RS_COMPLETE = 3          # final body sent (or an error response written)


cdef class LoopState:
    cdef object loop
    cdef object loop_time            # bound loop.time
    cdef object call_soon            # bound loop.call_soon
    cdef object create_task          # bound loop.create_task
    cdef object context              # contextvars.Context request tasks copy
    cdef bint eager                  # start request tasks eagerly (3.12+, no task factory)
    cdef bint own_tasks              # no task factory: construct asyncio.Task directly
    cdef SPSCRing ring               # request cycles waiting for a task
    cdef bint ring_ready             # spsc_init succeeded (free on dealloc)
    cdef bint drain_scheduled        # a _drain callback is queued
    cdef list blocked                # connections whose cycle found the ring full
    cdef list check_after            # cycles to check after their first task step
    cdef set conns                   # every live HttpCore on this loop
    cdef object timer                # the TimerHandle of the next tick, or None
    cdef double tick                 # seconds between ticks
    cdef double now                  # coarse loop time: set by each tick and drain
    cdef long long date_second       # wall-clock second date_line was made for
    cdef readonly bytes date_line    # b"date: <IMF-fixdate>\r\n"
    cdef list access_pending         # access records of this loop iteration (fasterapi.accesslog)
    cdef object access_flush         # bound self.flush_access, scheduled by the first record

    cdef int push(self, RequestCycle cycle) except -1
    cdef void _refresh_date(self) noexcept
    cdef void add_conn(self, HttpCore conn, double tick) except *
    cdef void remove_conn(self, HttpCore conn) except *
    cdef int log_access(self, tuple record) except -1


cdef class HttpCore:
    # -- configuration, copied once per connection ----------------------------
    cdef object app                  # the ASGI3 callable
    cdef object config
    cdef object server_state
    cdef set tasks                   # server_state.tasks (running app tasks)
    cdef object app_state            # lifespan state dict, or None
    cdef str root_path
    cdef bytes root_path_b
    cdef bint access_log
    cdef object access_format        # fasterapi.accesslog.AccessFormat (--access-log-format) or None
    cdef bint access_timed           # access_format has a duration atom: time each request
    cdef object limit_concurrency    # int or None
    cdef double timeout_keep_alive
    cdef double timeout_request_header
    cdef double timeout_request_body
    cdef Py_ssize_t read_buffer_limit
    cdef Py_ssize_t write_high_water
    cdef bint server_header          # add "server: fasterapi"
    cdef bint date_header            # add the cached date line
    cdef bytes user_block            # the --header lines, preformatted
    cdef bytes header_block          # default_block + the date line it was joined with
    cdef bytes header_block_date     # the date line header_block was built from
    cdef object ws_factory           # WebSocket upgrade hook (config.ws_protocol_class) or None

    # -- per connection -------------------------------------------------------
    cdef LoopState ls
    cdef object loop
    cdef object transport
    cdef RequestParser parser        # sans-IO request parser, one per connection
    cdef ResponseBuilder builder     # reused for every response on this connection
    cdef dict scope_base             # copied by the parser into each scope
    cdef object client               # (host, port) or None
    cdef object proxy                # fasterapi.proxy.ProxyTrust if the peer is a trusted proxy
    cdef dict tls                    # the ASGI tls extension of this TLS connection, or None
    cdef object metrics              # fasterapi.metrics.Stats with --metrics-port, else None
    cdef str client_str              # "host:port" for the access log
    cdef str task_name               # the name of this connection's request tasks
    cdef bytearray rbuf              # uvloop reads straight into this
    cdef list out                    # response bytes not yet written
    cdef Py_ssize_t out_len
    cdef RequestCycle cycle          # the request being read/answered, or None
    cdef RequestCycle blocked_cycle  # waiting for room in the dispatch ring
    cdef bint closed                 # transport gone (connection_lost)
    cdef bint closing                # we called transport.close()
    cdef bint shutting_down          # graceful shutdown: no more keep-alive
    cdef int read_paused             # ReadPause bits
    cdef bint write_paused           # transport said pause_writing
    cdef object drain_waiter         # future send() waits on while write_paused
    cdef double deadline             # loop time, 0.0 when unarmed
    cdef int deadline_kind           # DeadlineKind

    cdef int _process(self) except -1
    cdef int _start_request(self, object head) except -1
    cdef int _upgrade(self, object head) except -1
    cdef int _dispatch(self, RequestCycle cycle) except -1
    cdef int _retry_dispatch(self) except -1
    cdef int _parser_error(self, object exc) except -1
    cdef int _write(self, object data) except -1
    cdef int _flush(self) except -1
    cdef int _close(self) except -1
    cdef int _pause(self, int why) except -1
    cdef int _resume(self, int why) except -1
    cdef int _arm(self, int kind, double timeout) except -1
    cdef int _on_timeout(self) except -1
    cdef int _response_complete(self, RequestCycle cycle) except -1
    cdef int _request_complete(self, RequestCycle cycle) except -1
    cdef bytes _headers_block(self)


cdef class RequestCycle:
    cdef HttpCore conn
    cdef readonly dict scope
    cdef object head                 # the parser's RequestHead
    cdef object task
    cdef bint keep_alive             # may the connection carry another request
    cdef bint http11                 # HTTP/1.1 (chunked, 100-continue allowed)
    cdef bint head_request           # method HEAD: headers only
    cdef bint expect_continue        # 100 Continue owed on first body read
    cdef bint request_complete       # END seen: all body bytes received
    cdef bint disconnected           # client gone or connection closed by us
    cdef bint body_done              # the last http.request (more_body False) was delivered
    cdef bint started                # the app task was created
    cdef bint running                # the app task took its first step
    cdef bint finished               # the app returned or raised (_run's finally ran)
    # request body not yet handed to the app
    cdef list body
    cdef Py_ssize_t body_len
    cdef object recv_waiter          # future receive() waits on, or None
    # response
    cdef int rstate                  # ResponseState
    cdef int status
    cdef object resp_headers         # headers of http.response.start
    cdef bint chunked                # we frame the body with chunked coding
    cdef bint no_body                # HEAD, 1xx, 204, 304: never write body bytes
    cdef long long expected_len      # Content-Length from the app, -1 none
    cdef long long sent_len          # body bytes the app sent
    cdef object raised               # the RuntimeError we raised to the app
    cdef double t0                   # perf_counter() at the request head (metrics or a timed access format)

    cdef int _start(self, bint eager) except -1
    cdef int _send(self, object message) except -1
    cdef int on_body(self, bytes data) except -1
    cdef int on_end(self) except -1
    cdef int on_disconnect(self) except -1
    cdef dict _take_message(self)
    cdef int _send_start(self, dict message) except -1
    cdef int _send_body(self, dict message) except -1
    cdef int _begin(self) except -1
    cdef int _connection_header(self, ResponseBuilder b) except -1
    cdef int _stream_head(self, bytes body, Py_ssize_t n) except -1
    cdef int _stream(self, bytes body, Py_ssize_t n, bint more) except -1
    cdef int _complete(self) except -1
    cdef int _error_response(self, int status, bytes reason) except -1
    cdef int _app_done(self, object exc) except -1
    cdef object _misuse(self, str text)
