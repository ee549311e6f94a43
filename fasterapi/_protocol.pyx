"""HTTP/1.1 connections and the ASGI ``http`` request/response cycle.

Rules this module keeps:

1. One connection answers its requests strictly in order.  The parser may
   hold pipelined bytes, but the next request head is only taken out of it
   once the previous response is complete (as uvicorn does), so a slow app
   never has two of its requests interleaved on one socket.
2. Every response byte goes through ``HttpCore._write``; responses of
   pipelined requests are gathered and written together when no further
   complete request is waiting (see ``_response_complete``/``_check_pending``).
3. Requests reach the app through the loop's dispatch ring (``LoopState``):
   a connection pushes a ready ``RequestCycle``; the first push into an empty
   ring schedules one ``_drain`` that starts a Task per cycle.
4. All timeouts hang off one per-loop tick (``LoopState._tick``), which also
   refreshes the cached ``date:`` line; no per-request timer handles.
5. ASGI ``receive``/``send`` are ``async def`` methods of ``RequestCycle``:
   a Cython coroutine that finishes without suspending costs ~200 ns, less
   than a done Future or a custom awaitable raising StopIteration(value)
   (measured: 195 / 720 / 515 ns on this machine).
"""

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.ref cimport Py_INCREF, Py_DECREF

cdef extern from "Python.h":
    # Python 3's signature (Cython's cpython.method still declares 2.x's).
    object PyMethod_New(object func, object self)

from fasterapi._queue cimport spsc_init, spsc_free, spsc_try_push, spsc_try_pop, spsc_size
from fasterapi._http cimport PS_DEAD, RequestHead, RequestParser
from fasterapi._response cimport ResponseBuilder

import asyncio
import contextvars
import logging
import os
import sys
import time
import weakref
from email.utils import formatdate

from fasterapi._http import END, HttpParserError
from fasterapi._response import WRITE_APART_MIN, reason_phrase, status_line
from fasterapi.tls import tls_extension as _tls_extension

from fasterapi.accesslog import emit as _emit_access
from fasterapi._task_registry import install as _install_task_registry

__all__ = ["HttpCore", "RequestCycle", "LoopState", "loop_state", "set_direct_dispatch",
           "flush_access_log"]

error_logger = logging.getLogger("fasterapi.error")

# ASGI HTTP connection scope (asgiref "www" spec 2.4).  Each request gets its
# own copy (_start_request): a scope belongs to its request, and a middleware
# that writes into scope["asgi"] must not change what other requests see.
cdef dict _ASGI = {"version": "3.0", "spec_version": "2.4"}
cdef dict _DISCONNECT_PROTO = {"type": "http.disconnect"}

cdef bytes _CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"   # RFC 9110 §15.2.1
cdef bytes _CRLF = b"\r\n"
cdef Py_ssize_t _READ_SIZE = 65536       # bytes uvloop may read per callback
cdef Py_ssize_t _GATHER_LIMIT = 65536    # pipelined response bytes held back at most
# One-shot bodies from this size on are written beside the head, not copied
# behind it (twice: into the builder, then into bytes).
cdef Py_ssize_t _BODY_APART = WRITE_APART_MIN
cdef double _MAX_TICK = 1.0
# At shutdown, how long a connection that has not sent its first request
# head yet may still send it (see HttpCore.shutdown).
cdef double _FIRST_REQUEST_GRACE = 1.0
cdef double _MIN_TICK = 0.01

# Request tasks start eagerly on 3.12+ (RequestCycle._start);
# FASTERAPI_EAGER_TASKS=0 turns that off for A/B runs.
_Task = asyncio.Task
cdef bint _EAGER_TASKS = sys.version_info >= (3, 12) and (
    os.environ.get("FASTERAPI_EAGER_TASKS", "1") != "0")

# Bench switch: start tasks straight from the protocol instead of the ring
# (also FASTERAPI_DIRECT_DISPATCH=1 in the environment, for wrk runs).
cdef bint _direct_dispatch = os.environ.get("FASTERAPI_DIRECT_DISPATCH", "") == "1"


def set_direct_dispatch(bint direct):
    """Bypass the dispatch ring (bench/ compares both); returns the old setting."""
    global _direct_dispatch
    old = _direct_dispatch
    _direct_dispatch = direct
    return old


@cython.final
cdef class _Done:
    # An awaitable that has already finished with None: send()'s return value
    # when nothing has to wait.  Stateless, so one instance serves everyone.
    # PERF: saves a coroutine object per send() (~80 ns of ~200 ns measured).
    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        raise StopIteration


cdef _Done _DONE = _Done()


cdef inline object _next_event(RequestParser parser):
    # RequestParser.next_event() without the Python method call: the same
    # dead-parser check, then the parser's C step (declared in _http.pxd).
    if parser.state == PS_DEAD:
        return parser.next_event()      # re-raises the stored error
    return parser._step()


# -- per event loop ------------------------------------------------------------

_states = weakref.WeakKeyDictionary()


def dispatch_queue_depth(loop):
    """Requests parsed on ``loop`` and waiting in its dispatch ring for a task (0 if none).

    Read by fasterapi.metrics at scrape time, on the loop's own thread.
    """
    cdef LoopState ls = _states.get(loop)
    if ls is None or not ls.ring_ready:
        return 0
    return spsc_size(&ls.ring)


cpdef LoopState loop_state(object loop, Py_ssize_t capacity=1024):
    """The LoopState of ``loop``, created on first use with a ring of ``capacity``."""
    cdef LoopState ls = _states.get(loop)
    if ls is None:
        ls = LoopState(loop, capacity)
        _states[loop] = ls
    return ls


def flush_access_log(loop):
    """Write the access lines ``loop`` still holds now, instead of on its next iteration.

    The server calls this before "Finished server process", so the lines of
    the last requests are never lost or printed after it.  Safe to call on a
    loop that never served HTTP.  Call it from the loop's own thread.
    """
    cdef LoopState ls = _states.get(loop)
    if ls is not None:
        ls.flush_access()


cdef class LoopState:
    """What every connection on one event loop shares: the dispatch ring, the
    timeout tick, the cached Date line and the pending access-log records."""

    def __cinit__(self, object loop, Py_ssize_t capacity=1024):
        self.ring_ready = False
        spsc_init(&self.ring, capacity)
        self.ring_ready = True
        self.loop = loop
        self.loop_time = loop.time
        self.call_soon = loop.call_soon
        self.create_task = loop.create_task
        # What every request task starts from (a copy each): the server's
        # context at its first connection, never another request's.
        self.context = contextvars.copy_context()
        # Eager task start (Python 3.12+) unless the loop has its own task
        # factory, which create_task must keep calling.
        self.own_tasks = loop.get_task_factory() is None
        self.eager = _EAGER_TASKS and self.own_tasks
        # 3.10/3.11: a request task's entry in asyncio's all-tasks set costs
        # more than parsing its request; fasterapi._task_registry cuts that.
        _install_task_registry()
        self.blocked = []
        self.check_after = []
        self.conns = set()
        self.timer = None
        self.tick = _MAX_TICK
        self.date_second = -1
        self._refresh_date()
        self.access_pending = []
        self.access_flush = self.flush_access

    def __dealloc__(self):
        cdef void *p
        if self.ring_ready:
            # The ring owns a reference to each queued cycle (taken in push).
            while spsc_try_pop(&self.ring, &p):
                Py_DECREF(<object>p)
            spsc_free(&self.ring)
            self.ring_ready = False

    cdef void _refresh_date(self) noexcept:
        cdef double now = time.time()
        cdef long long sec = <long long>now
        if sec != self.date_second:
            self.date_second = sec
            # RFC 9110 §6.6.1: IMF-fixdate, the only format a sender may use.
            self.date_line = b"date: " + formatdate(sec, usegmt=True).encode() + b"\r\n"

    cdef int push(self, RequestCycle cycle) except -1:
        """Queue ``cycle`` for a task; 0 when the ring is full."""
        Py_INCREF(cycle)
        if not spsc_try_push(&self.ring, <void *>cycle):
            Py_DECREF(cycle)
            return 0
        if not self.drain_scheduled:
            self.drain_scheduled = True
            # Not the pusher's context: a pipelined request is pushed from
            # inside the previous request's task, and every task _drain
            # creates copies the context _drain runs in.
            self.call_soon(self._drain, context=self.context)
        return 1

    cdef int log_access(self, tuple record) except -1:
        # Rule: the first record of a loop iteration schedules the one flush.
        # An empty list means none is scheduled, because flush_access empties
        # it (an early flush_access() may leave one extra, harmless callback).
        # PERF: one write+flush per iteration and no LogRecord per line: wrk
        # plaintext with the access log on went from ~58 to ~20 us of server
        # CPU per request (~20-22 us with it off); see fasterapi.accesslog.
        if not self.access_pending:
            self.call_soon(self.access_flush)
        self.access_pending.append(record)
        return 0

    def flush_access(self):
        """Emit the pending access records (scheduled by the first one of an iteration)."""
        pending = self.access_pending
        if pending:
            self.access_pending = []
            _emit_access(pending)

    def _drain(self):
        """Start a task for every queued cycle, then retry blocked connections."""
        cdef void *p
        cdef RequestCycle cycle
        cdef HttpCore conn
        cdef bint ls_eager = self.eager
        cdef object state = None
        cdef Py_ssize_t counted = 0
        self.drain_scheduled = False
        try:
            while spsc_try_pop(&self.ring, &p):
                cycle = <RequestCycle>p
                Py_DECREF(cycle)        # the ring's reference, handed over by pop
                # Count requests per server_state with one Python-level add
                # per batch, not one per request (~640 instructions each).
                if cycle.conn.server_state is not state:
                    if counted:
                        state.total_requests += counted
                    state = cycle.conn.server_state
                    counted = 0
                counted += 1
                cycle._start(ls_eager)
        finally:
            if counted:
                state.total_requests += counted
        self.now = self.loop_time()
        if self.blocked:
            blocked, self.blocked = self.blocked, []
            for conn in blocked:
                conn._retry_dispatch()
        if self.check_after:
            check, self.check_after = self.check_after, []
            # Runs after the first step of the tasks just created (FIFO).
            self.call_soon(_check_pending, check)

    cdef void add_conn(self, HttpCore conn, double tick) except *:
        self.conns.add(conn)
        if tick < self.tick:
            self.tick = tick
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
        if self.timer is None:
            self.now = self.loop_time()
            self._refresh_date()
            self.timer = self.loop.call_later(self.tick, self._tick)

    cdef void remove_conn(self, HttpCore conn) except *:
        self.conns.discard(conn)
        if not self.conns and self.timer is not None:
            self.timer.cancel()
            self.timer = None
            self.tick = _MAX_TICK

    def _tick(self):
        """Refresh the Date line and close connections past their deadline."""
        cdef HttpCore conn
        cdef double now = self.loop_time()
        self.now = now
        self._refresh_date()
        expired = None
        for conn in self.conns:
            if conn.deadline_kind != DL_NONE and conn.deadline <= now:
                if expired is None:
                    expired = []
                expired.append(conn)
        if expired is not None:
            for conn in expired:
                try:
                    conn._on_timeout()
                except Exception:
                    error_logger.exception("Error while closing a timed-out connection")
        if self.conns:
            self.timer = self.loop.call_later(self.tick, self._tick)
        else:
            self.timer = None


def _check_pending(list cycles):
    # Pipelined responses are held back while the next request runs.  If that
    # request's app did not finish its response in its first step (it awaits
    # something), write what is held now rather than delay earlier responses.
    cdef RequestCycle cycle
    cdef HttpCore conn
    for cycle in cycles:
        conn = cycle.conn
        if conn.out_len and not conn.closed:
            nxt = conn.cycle
            if nxt is None or nxt is cycle or (<RequestCycle>nxt).running:
                conn._flush()


cdef bytes _error_body(int status):
    return ((reason_phrase(status) or "Error") + "\n").encode()


# -- per connection ------------------------------------------------------------

cdef class HttpCore:
    """One HTTP/1.1 connection: parse, dispatch, write, time out.

    ``fasterapi.protocol.HttpProtocol`` adds ``asyncio.BufferedProtocol`` as a
    second base so uvloop reads straight into ``get_buffer()``'s bytearray.
    """

    def __init__(self, config, server_state, app_state=None, _loop=None):
        cdef double tick = _MAX_TICK
        cdef list lines
        self.config = config
        self.server_state = server_state
        self.tasks = server_state.tasks
        self.app_state = app_state
        self.app = config.loaded_app
        self.root_path = config.root_path or ""
        self.root_path_b = self.root_path.encode("latin-1") if self.root_path else b""
        self.access_log = bool(config.access_log)
        self.access_format = getattr(config, "access_format", None)
        self.access_timed = self.access_format is not None and self.access_format.timed
        self.limit_concurrency = config.limit_concurrency
        self.timeout_keep_alive = config.timeout_keep_alive
        self.timeout_request_header = config.timeout_request_header
        self.timeout_request_body = config.timeout_request_body
        self.read_buffer_limit = config.read_buffer_limit
        self.write_high_water = config.write_high_water
        self.server_header = bool(config.server_header)
        self.date_header = bool(config.date_header)
        lines = [n + b": " + v + b"\r\n" for n, v in config.encoded_headers]
        self.user_block = b"".join(lines)
        self.ws_factory = getattr(config, "ws_protocol_class", None)
        if _loop is None:
            try:
                _loop = asyncio.get_running_loop()
            except RuntimeError:
                _loop = asyncio.get_event_loop()
        self.loop = _loop
        self.ls = loop_state(_loop, config.queue_size)
        self.header_block_date = None
        self.rbuf = bytearray(_READ_SIZE)
        self.out = []
        self.builder = ResponseBuilder()
        self.cycle = None
        self.blocked_cycle = None
        self.deadline_kind = DL_NONE

    # -- asyncio protocol callbacks --

    def connection_made(self, transport):
        cdef double tick = _MAX_TICK
        cdef double t
        self.transport = transport
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.client = _addr(peer)
        server = _addr(sock)
        self.client_str = _client_text(self.client)
        # PERF: a name of our own, made once per connection.  Without one,
        # CPython 3.11 formats "Task-N" with printf for every task (~0.3 us).
        self.task_name = f"request from {self.client_str}" if self.client_str else "request"
        scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        self.scope_base = {
            "type": "http",
            "asgi": _ASGI,
            "server": server,
            "client": self.client,
            "scheme": scheme,
            "root_path": self.root_path,
        }
        config = self.config
        ssl_object = transport.get_extra_info("ssl_object")
        # Once per connection; its requests share it (fasterapi.tls).
        self.tls = None if ssl_object is None else _tls_extension(
            ssl_object, getattr(config, "ssl_server_cert", None))
        trust = getattr(config, "proxy_trust", None)
        self.proxy = None if trust is None else trust.for_peer(self.client, sock)
        self.metrics = getattr(config, "metrics_stats", None)
        self.parser = RequestParser(
            self.scope_base,
            max_request_line=config.max_request_line,
            max_header_bytes=config.max_header_bytes,
            max_headers=config.max_headers,
            max_chunk_ext=config.max_chunk_ext,
            max_trailer_bytes=config.max_header_bytes,
            max_body_size=config.max_body_size,
        )
        try:
            transport.set_write_buffer_limits(high=self.write_high_water)
        except (AttributeError, NotImplementedError):
            pass
        for t in (self.timeout_keep_alive, self.timeout_request_header,
                  self.timeout_request_body):
            if 0 < t and t / 4 < tick:
                tick = t / 4
        if tick < _MIN_TICK:
            tick = _MIN_TICK
        self.server_state.connections.add(self)
        self.ls.add_conn(self, tick)
        # A fresh connection owes us a request head (slowloris guard).
        self._arm(DL_HEADER, self.timeout_request_header)

    def connection_lost(self, exc):
        cdef RequestCycle cycle = self.cycle
        self.closed = True
        self.closing = True
        self.deadline_kind = DL_NONE
        self.server_state.connections.discard(self)
        self.ls.remove_conn(self)
        if cycle is not None:
            cycle.on_disconnect()
        if self.blocked_cycle is not None:
            self.blocked_cycle.on_disconnect()
            self.blocked_cycle = None
        self.out = []
        self.out_len = 0
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def get_buffer(self, Py_ssize_t sizehint):
        """uvloop/asyncio read into this buffer, then call buffer_updated()."""
        return self.rbuf

    def buffer_updated(self, Py_ssize_t nbytes):
        """``nbytes`` new bytes are at the front of the read buffer."""
        cdef RequestParser parser = self.parser
        if self.closing:
            return
        try:
            # Not parser.feed(): no memoryview slice and Python call per read.
            parser.c_feed(<const unsigned char *>PyByteArray_AS_STRING(self.rbuf), nbytes)
        except HttpParserError as exc:
            self._parser_error(exc)
            return
        self._process()

    def data_received(self, data):
        """The plain-Protocol path (and the tests'): feed ``data``."""
        if self.closing:
            return
        try:
            self.parser.feed(data)
        except HttpParserError as exc:
            self._parser_error(exc)
            return
        self._process()

    def eof_received(self):
        # The client shut its write side.  A response in flight may still be
        # delivered (RFC 9112 §9.6 allows half-close), so keep the transport
        # open while a request is being answered; otherwise close.
        if self.cycle is not None and not self.cycle.disconnected:
            if self.cycle.rstate != RS_COMPLETE:
                self.cycle.keep_alive = False
                return True
        return None

    def pause_writing(self):
        """The transport's buffer passed write_high_water: send() waits."""
        self.write_paused = True

    def resume_writing(self):
        """The transport drained below the low-water mark: wake send()."""
        self.write_paused = False
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- graceful shutdown hooks (server.py) --

    def shutdown(self):
        """Graceful: close now if idle, else close after the in-flight response.

        A connection still owed its first request head is not idle: a client
        that connected just before the listener closed usually has that
        request on the wire, not yet read.  It gets _FIRST_REQUEST_GRACE
        seconds to arrive and is answered with ``connection: close``; closing
        it at once would reset a request the client rightly expects served.
        """
        cdef RequestCycle cycle = self.cycle
        cdef double grace
        self.shutting_down = True
        if self.closing:
            return
        if cycle is None and self.deadline_kind == DL_HEADER:
            grace = self.ls.now + _FIRST_REQUEST_GRACE + self.ls.tick
            if self.deadline > grace:
                self.deadline = grace
            return
        if cycle is None or cycle.rstate == RS_COMPLETE:
            self._flush()
            self._close()
        else:
            cycle.keep_alive = False

    def force_close(self):
        """End of the graceful timeout: the app sees http.disconnect; close."""
        cdef RequestCycle cycle = self.cycle
        self.shutting_down = True
        if cycle is not None:
            cycle.on_disconnect()
        if not self.closing:
            self._flush()
            self._close()

    @property
    def is_idle(self):
        """No request is being read or answered on this connection."""
        return self.cycle is None

    # -- the request pipeline --

    cdef int _process(self) except -1:
        # Pull parser events while the current request may take them (rule 1).
        cdef RequestCycle cycle
        cdef RequestParser parser = self.parser
        try:
            while not self.closing:
                cycle = self.cycle
                if cycle is None:
                    ev = _next_event(parser)
                    if ev is None:
                        if parser.end != parser.start:
                            # Part of a head: its whole head must arrive within
                            # the header timeout, so never re-arm on a drip.
                            if self.deadline_kind != DL_HEADER:
                                self._arm(DL_HEADER, self.timeout_request_header)
                        elif self.deadline_kind == DL_NONE:
                            self._arm(DL_KEEP_ALIVE, self.timeout_keep_alive)
                        return 0
                    self._start_request(ev)
                elif cycle.request_complete:
                    # Rule 1: the next head waits for this response; bound
                    # what a pipelining client may park in the parser.
                    if parser.end - parser.start > self.read_buffer_limit:
                        self._pause(RP_PIPELINE)
                    return 0
                else:
                    ev = _next_event(parser)
                    if ev is None:
                        if not (self.read_paused & RP_BODY):
                            self._arm(DL_BODY, self.timeout_request_body)
                        return 0
                    if ev is END:
                        self.deadline_kind = DL_NONE
                        cycle.on_end()
                        if cycle.rstate == RS_COMPLETE:
                            self._request_complete(cycle)
                    else:
                        cycle.on_body(<bytes>ev)
        except HttpParserError as exc:
            self._parser_error(exc)
        return 0

    cdef int _start_request(self, object ev) except -1:
        cdef RequestHead head = <RequestHead?>ev
        cdef RequestCycle cycle = RequestCycle.__new__(RequestCycle)
        cdef dict scope = head.scope
        self.deadline_kind = DL_NONE
        # server_state.total_requests counts this request when it is
        # dispatched (_drain adds a whole batch at once), or below.
        scope["asgi"] = _ASGI.copy()
        if self.root_path_b:
            # ASGI 2.4 / uvicorn: path and raw_path include root_path.
            scope["path"] = self.root_path + scope["path"]
            scope["raw_path"] = self.root_path_b + scope["raw_path"]
        if self.app_state is not None:
            scope["state"] = self.app_state.copy()
        if self.metrics is not None or self.access_timed:
            cycle.t0 = _perf_counter()
        if self.tls is not None:
            # A fresh outer dict per request: middleware may add extensions.
            scope["extensions"] = {"tls": self.tls}
        if self.proxy is not None and _has_proxy_header(<list>scope["headers"]):
            # Only connections from a trusted proxy get here (fasterapi.proxy).
            self.proxy.rewrite(scope)
        if head.upgrade is not None and self._upgrade(head):
            self.server_state.total_requests += 1
            return 0
        cycle.conn = self
        cycle.head = head
        cycle.scope = scope
        cycle.keep_alive = head.keep_alive and not self.shutting_down
        cycle.http11 = head.http11
        cycle.head_request = head.is_head
        cycle.expect_continue = head.expect_continue
        cycle.expected_len = -1
        self.cycle = cycle
        if self.limit_concurrency is not None and (
                len(self.server_state.connections) > self.limit_concurrency
                or len(self.tasks) >= self.limit_concurrency):
            # As uvicorn: over the limit, answer 503 without running the app.
            error_logger.warning("Exceeded concurrency limit.")
            self.server_state.total_requests += 1
            cycle.keep_alive = False
            cycle._error_response(503, b"Service Unavailable\n")
            return 0
        self._dispatch(cycle)
        return 0

    cdef int _upgrade(self, object head) except -1:
        # RFC 6455 §4.1/§4.2 and RFC 9110 §7.8: a WebSocket upgrade leaves
        # HTTP for good, so the transport, and the bytes read past the head
        # (the client's first frames), go to the WebSocket protocol, which
        # validates the handshake itself.  1 when it took the connection;
        # 0 serves the request as plain HTTP (other protocols, --ws none).
        if b"websocket" not in head.upgrade.lower():
            return 0
        if self.ws_factory is None:
            # As uvicorn: warn, and let the app see an ordinary http request.
            error_logger.warning("Unsupported upgrade request.")
            return 0
        self.closing = True         # HttpCore never touches this transport again
        self.deadline_kind = DL_NONE
        self.server_state.connections.discard(self)
        self.ls.remove_conn(self)
        # In a copy of the loop's base context: a pipelined upgrade gets here
        # from inside the previous request's task, whose contextvars the
        # WebSocket's task must not inherit.
        self.ls.context.copy().run(
            self.ws_factory, self.config, self.server_state, self.loop, self.transport,
            head, self.parser.take_buffer())
        return 1

    cdef int _dispatch(self, RequestCycle cycle) except -1:
        if _direct_dispatch:
            # Never eager here: we are inside _process, which has not yet
            # taken this request's END from the parser.
            self.server_state.total_requests += 1
            cycle._start(False)
            if self.out_len:
                self.ls.call_soon(_check_pending, [cycle])
            return 0
        if self.ls.push(cycle):
            return 0
        # Ring full: park the cycle and stop reading until _drain retries.
        self.blocked_cycle = cycle
        self.ls.blocked.append(self)
        self._pause(RP_RING)
        return 0

    cdef int _retry_dispatch(self) except -1:
        cdef RequestCycle cycle = self.blocked_cycle
        self.blocked_cycle = None
        if cycle is None or self.closed:
            return 0
        self._resume(RP_RING)
        self._dispatch(cycle)
        return 0

    cdef int _request_complete(self, RequestCycle cycle) except -1:
        # Both halves of `cycle` are done: move on to the next request.
        if self.cycle is cycle:
            self.cycle = None
            if self.read_paused & RP_PIPELINE:
                self._resume(RP_PIPELINE)
            self._process()
        return 0

    cdef int _response_complete(self, RequestCycle cycle) except -1:
        cdef RequestCycle nxt
        self.deadline_kind = DL_NONE
        if self.access_log:
            _log_access(self, cycle)
        if self.metrics is not None:
            _observe(self, cycle)
        if not cycle.keep_alive or self.shutting_down:
            self._flush()
            self._close()
            return 0
        if not cycle.request_complete:
            if cycle.expect_continue:
                # 100 Continue was never sent: the client may be holding the
                # body back (RFC 9110 §10.1.1), so we cannot drain it.
                self._flush()
                self._close()
                return 0
            # Read and discard the rest of the body, then continue (rule 1).
            self._flush()
            self._process()
            return 0
        self._request_complete(cycle)
        if self.closing:
            return 0
        nxt = self.cycle
        if (nxt is None or nxt.running or nxt.rstate != RS_NONE
                or self.out_len >= _GATHER_LIMIT or self.blocked_cycle is not None):
            self._flush()
        # else: the next pipelined request is queued; its dispatch checks
        # the held bytes after its first step (_check_pending).
        return 0

    cdef int _parser_error(self, object exc) except -1:
        cdef RequestCycle cycle = self.cycle
        cdef int status = exc.status
        error_logger.warning("Invalid HTTP request received: %s", exc)
        if cycle is None:
            cycle = RequestCycle.__new__(RequestCycle)
            cycle.conn = self
            cycle.http11 = True
            cycle.expected_len = -1
            self.cycle = cycle
        cycle.keep_alive = False
        if cycle.rstate <= RS_STARTED:
            cycle._error_response(status, _error_body(status))
        cycle.on_disconnect()
        self._flush()
        self._close()
        return 0

    # -- output --

    cdef int _write(self, object data) except -1:
        self.out.append(data)
        self.out_len += len(data)
        return 0

    cdef int _flush(self) except -1:
        cdef list out = self.out
        if not out:
            return 0
        if self.closed:
            self.out = []
            self.out_len = 0
            return 0
        if len(out) == 1:
            self.transport.write(out[0])
            out.clear()
        else:
            self.out = []
            self.transport.writelines(out)
        self.out_len = 0
        return 0

    cdef bytes _headers_block(self):
        # User --header lines + server + date, rebuilt when the date changes.
        cdef bytes date = self.ls.date_line
        if date is not self.header_block_date:
            block = self.user_block
            if self.server_header:
                block += b"server: fasterapi\r\n"
            if self.date_header:
                block += date
            self.header_block = block
            self.header_block_date = date
        return self.header_block

    cdef int _close(self) except -1:
        if not self.closing:
            self.closing = True
            self.deadline_kind = DL_NONE
            self.transport.close()
        return 0

    cdef int _pause(self, int why) except -1:
        if not self.read_paused and not self.closing:
            try:
                self.transport.pause_reading()
            except (AttributeError, RuntimeError):
                pass
        self.read_paused |= why
        if why == RP_BODY and self.deadline_kind == DL_BODY:
            # The app is slow, not the client.
            self.deadline_kind = DL_NONE
        return 0

    cdef int _resume(self, int why) except -1:
        if not (self.read_paused & why):
            return 0
        self.read_paused &= ~why
        if not self.read_paused and not self.closing:
            try:
                self.transport.resume_reading()
            except (AttributeError, RuntimeError):
                pass
        if why == RP_BODY and self.cycle is not None and not self.cycle.request_complete:
            self._arm(DL_BODY, self.timeout_request_body)
        return 0

    cdef int _arm(self, int kind, double timeout) except -1:
        # 0 disables the header and body timeouts; keep-alive 0 means "close
        # as soon as idle" (at the next tick).
        if timeout <= 0 and kind != DL_KEEP_ALIVE:
            self.deadline_kind = DL_NONE
            return 0
        # PERF: the loop's coarse clock (refreshed each tick and each drain)
        # instead of a loop.time() call per request; one extra tick of slack
        # keeps the timeout from firing early.
        self.deadline_kind = kind
        self.deadline = self.ls.now + timeout + self.ls.tick
        return 0

    cdef int _on_timeout(self) except -1:
        cdef int kind = self.deadline_kind
        cdef RequestCycle cycle = self.cycle
        self.deadline_kind = DL_NONE
        if self.closing:
            return 0
        if kind == DL_HEADER:
            if self.parser.end != self.parser.start:
                # Part of a head arrived: say why we give up (RFC 9110
                # §15.5.9), as nginx does; a silent idle socket just closes.
                error_logger.debug("Request head not received in time: 408")
                cycle = RequestCycle.__new__(RequestCycle)
                cycle.conn = self
                cycle.http11 = True
                cycle.expected_len = -1
                self.cycle = cycle
                cycle._error_response(408, b"Request Timeout\n")
        elif kind == DL_BODY:
            error_logger.debug("Request body stalled past the timeout")
            if cycle is not None:
                cycle.keep_alive = False
                if cycle.rstate <= RS_STARTED:
                    cycle._error_response(408, b"Request Timeout\n")
                cycle.on_disconnect()
        self._flush()
        self._close()
        return 0


cdef object _addr(object a):
    # (host, port) for TCP (an IPv6 peer has 4 fields); None for AF_UNIX.
    if isinstance(a, tuple) and len(a) >= 2:
        return (str(a[0]), int(a[1]))
    return None


cdef frozenset _PROXY_NAMES = frozenset((b"forwarded", b"x-forwarded-for", b"x-forwarded-proto"))
cdef object _perf_counter = time.perf_counter


cdef int _observe(HttpCore conn, RequestCycle cycle) except -1:
    # --metrics-port: plain counters on the loop, turned into Prometheus
    # families only at scrape time (fasterapi.metrics).  PERF: ~1-2 us less
    # per request than wrapping the app.
    cdef dict scope = cycle.scope
    if scope is not None:
        conn.metrics.observe(scope["method"], cycle.status, _perf_counter() - cycle.t0)
    return 0


cdef bint _has_proxy_header(list headers) except -1:
    # PERF: the same test in Python (a set lookup per header) cost ~0.3 us per
    # request from a trusted peer; a length test first keeps it to a few ns.
    cdef Py_ssize_t n
    for item in headers:
        name = (<tuple>item)[0]
        n = len(<bytes>name)
        if (n == 9 or n == 15 or n == 17) and name in _PROXY_NAMES:
            return True
    return False


cdef void _log_access(HttpCore conn, RequestCycle cycle) except *:
    # One access record, the 5-tuple of fasterapi.logging's contract, queued
    # on the loop; whether INFO is enabled is decided once per batch.
    cdef dict scope = cycle.scope
    if scope is None:
        return
    if conn.access_format is not None:
        # A custom --access-log-format: the wider record of
        # fasterapi.accesslog (rule 5); formatting waits for the batch.
        conn.ls.log_access((conn.access_format, conn.client_str, scope, cycle.status,
                            cycle.resp_headers, cycle.sent_len, cycle.t0,
                            _perf_counter() if conn.access_timed else 0.0))
        return
    path = scope["path"]
    qs = scope["query_string"]
    if qs:
        path = path + "?" + qs.decode("latin-1")
    client = scope["client"]
    # Behind a trusted proxy the scope's client is the rewritten one, and
    # that is the address to log (as uvicorn does).
    client_str = conn.client_str if client is conn.client else _client_text(client)
    conn.ls.log_access((client_str, scope["method"], path, scope["http_version"],
                        cycle.status))


cdef str _client_text(object client):
    # "host:port" for a (host, port) client, "" for none (a UNIX socket).
    if client is None:
        return ""
    return f"{client[0]}:{client[1]}"


# -- per request ---------------------------------------------------------------

cdef class RequestCycle:
    """One request and its response: the ASGI ``receive``/``send`` pair."""

    cdef int _start(self, bint eager) except -1:
        # Even if the client is gone already the app runs (as in uvicorn):
        # its receive() gives http.disconnect.
        cdef HttpCore conn = self.conn
        cdef LoopState ls = conn.ls
        self.started = True
        coro = self._run()
        if eager:
            # The app's first step runs now, inside the task (current_task(),
            # its own contextvars copy); an app that answers without awaiting
            # anything never goes through the loop's ready queue nor the
            # all-tasks WeakSet (~1 us of the ~2 us a task costs on 3.12).
            # loop= must be given here: CPython 3.12.1's eager start reads
            # the argument, not the loop it resolves from it.
            task = _Task(coro, loop=ls.loop, eager_start=True, name=conn.task_name)
            if self.finished:
                return 0
        elif _direct_dispatch:
            # Started from _process, maybe inside the previous request's task.
            # (create_task's context= is 3.11+; run it in the copy instead.)
            task = ls.context.copy().run(ls.create_task, coro, name=conn.task_name)
        elif ls.own_tasks:
            # What loop.create_task does without a task factory, minus its
            # Python-level call and name handling.  _drain runs in ls.context.
            # loop= stays: without it CPython 3.11 finds the running loop
            # with a getpid() system call per task, which callgrind counts as
            # cheaper than parsing the keyword but perf shows is not.
            task = _Task(coro, loop=ls.loop, name=conn.task_name)
        else:
            task = ls.create_task(coro, name=conn.task_name)
        self.task = task
        conn.tasks.add(task)
        if conn.out_len:
            ls.check_after.append(self)
        return 0

    async def _run(self):
        cdef HttpCore conn = self.conn
        self.running = True
        try:
            # PyMethod_New: what `self.receive` makes, without the attribute
            # lookup (~210 instructions each).
            result = await conn.app(self.scope, PyMethod_New(_RECEIVE, self),
                                    PyMethod_New(_SEND, self))
        except BaseException as exc:
            self._app_done(exc)
            if not isinstance(exc, Exception):
                raise       # CancelledError, KeyboardInterrupt, SystemExit
        else:
            if result is not None:
                error_logger.error("ASGI callable should return None, but returned %r.", result)
            self._app_done(None)
        finally:
            self.finished = True
            if self.task is not None:
                conn.tasks.discard(self.task)
                self.task = None

    cdef int _app_done(self, object exc) except -1:
        cdef HttpCore conn = self.conn
        if exc is not None:
            if isinstance(exc, asyncio.CancelledError):
                pass
            elif exc is not self.raised:
                error_logger.error("Exception in ASGI application", exc_info=exc)
            if self.rstate <= RS_STARTED:
                if not self.disconnected:
                    self._error_response(500, b"Internal Server Error\n")
            elif self.rstate == RS_STREAMING:
                # Part of the response is on the wire: close so the client
                # sees it incomplete (RFC 9112 §8).
                self.disconnected = True
                conn._flush()
                conn._close()
            return 0
        if self.rstate == RS_COMPLETE or self.disconnected:
            return 0
        if self.rstate <= RS_STARTED:
            error_logger.error("ASGI callable returned without starting response.")
            self._error_response(500, b"Internal Server Error\n")
        else:
            error_logger.error("ASGI callable returned without completing response.")
            self.disconnected = True
            conn._flush()
            conn._close()
        return 0

    # -- events from the connection --

    cdef int on_body(self, bytes data) except -1:
        cdef HttpCore conn = self.conn
        if self.rstate == RS_COMPLETE or self.disconnected:
            return 0            # answered already: discard the rest
        if self.body is None:
            self.body = [data]
        else:
            self.body.append(data)
        self.body_len += len(data)
        waiter = self.recv_waiter
        if waiter is not None:
            self.recv_waiter = None
            if not waiter.done():
                waiter.set_result(self._take_message())
                return 0
        if self.body_len > conn.read_buffer_limit:
            conn._pause(RP_BODY)
        return 0

    cdef int on_end(self) except -1:
        self.request_complete = True
        self.expect_continue = False
        waiter = self.recv_waiter
        if waiter is not None and not self.body_done:
            self.recv_waiter = None
            if not waiter.done():
                waiter.set_result(self._take_message())
        return 0

    cdef int on_disconnect(self) except -1:
        self.disconnected = True
        waiter = self.recv_waiter
        if waiter is not None:
            self.recv_waiter = None
            if not waiter.done():
                waiter.set_result(_DISCONNECT_PROTO.copy())
        return 0

    cdef dict _take_message(self):
        cdef list body = self.body
        cdef HttpCore conn = self.conn
        if body is None:
            data = b""
        elif len(body) == 1:
            data = body[0]
        else:
            data = b"".join(body)
        self.body = None
        self.body_len = 0
        if self.request_complete:
            self.body_done = True
        if conn.read_paused & RP_BODY:
            conn._resume(RP_BODY)
        return {"type": "http.request", "body": data, "more_body": not self.request_complete}

    # -- ASGI --

    async def receive(self):
        """ASGI receive: ``http.request`` messages, then ``http.disconnect``
        once the response is complete or the client is gone."""
        cdef HttpCore conn = self.conn
        if self.expect_continue:
            self.expect_continue = False
            if (self.rstate <= RS_STARTED and not self.disconnected
                    and not self.request_complete and self.http11):
                # RFC 9110 §10.1.1: only now that the app wants the body.
                conn._write(_CONTINUE)
                conn._flush()
        if self.disconnected:
            return _DISCONNECT_PROTO.copy()
        if not self.body_done:
            if self.body_len or self.request_complete:
                return self._take_message()
        elif self.rstate == RS_COMPLETE:
            return _DISCONNECT_PROTO.copy()
        if self.recv_waiter is not None:
            raise RuntimeError("receive() called while another receive() is pending")
        waiter = conn.loop.create_future()
        self.recv_waiter = waiter
        try:
            return await waiter
        finally:
            if self.recv_waiter is waiter:
                self.recv_waiter = None

    def send(self, message):
        """ASGI send: ``http.response.start`` then ``http.response.body``
        messages.  Returns an awaitable; waits while the transport's buffer
        is above the high-water mark; a no-op once the client is gone.
        Raises RuntimeError for a message out of order or of an unknown type.

        Not ``async def``: when nothing has to wait, the message is written
        at call time and a shared finished awaitable is returned.
        """
        if self.disconnected:
            return _DONE
        if self.conn.write_paused:
            return self._send_later(message)
        self._send(message)
        return _DONE

    async def _send_later(self, message):
        # Flow control (asyncio's pause_writing/resume_writing contract).
        cdef HttpCore conn = self.conn
        while conn.write_paused and not self.disconnected:
            waiter = conn.drain_waiter
            if waiter is None:
                waiter = conn.drain_waiter = conn.loop.create_future()
            await waiter
        if not self.disconnected:
            self._send(message)

    cdef int _send(self, object message) except -1:
        # Typed as a dict, message.get() is a C call, not a method lookup.
        cdef dict msg = message if type(message) is dict else dict(message)
        mtype = msg["type"]
        if mtype == "http.response.body":
            self._send_body(msg)
        elif mtype == "http.response.start":
            self._send_start(msg)
        else:
            raise self._misuse(f"Unexpected ASGI message '{mtype}' sent, "
                               f"expected 'http.response.start' or 'http.response.body'.")
        return 0

    cdef object _misuse(self, str text):
        exc = RuntimeError(text)
        self.raised = exc
        error_logger.error("%s", text)
        return exc

    cdef int _send_start(self, dict message) except -1:
        cdef int status
        if self.rstate != RS_NONE:
            if self.rstate == RS_COMPLETE:
                raise self._misuse("Unexpected ASGI message 'http.response.start' sent, "
                                   "after response already completed.")
            raise self._misuse("Unexpected ASGI message 'http.response.start' sent, "
                               "after response already started.")
        status = message["status"]
        if status < 100 or status > 999:
            raise self._misuse(f"Invalid HTTP status code {status!r} in response.")
        self.status = status
        self.resp_headers = message.get("headers")
        self.no_body = self.head_request or status < 200 or status == 204 or status == 304
        self.rstate = RS_STARTED
        return 0

    cdef int _begin(self) except -1:
        # Status line, the app's headers, then ours (unless the app gave them).
        cdef HttpCore conn = self.conn
        cdef ResponseBuilder b = conn.builder
        cdef bytes block
        b.c_reset()
        b.c_status(self.status, NULL, 0)
        if self.resp_headers:
            try:
                b.c_headers(self.resp_headers)
            except ValueError as exc:
                raise self._misuse(f"Invalid response header: {exc}") from None
        if b._has_server or b._has_date:
            block = conn.user_block
            if conn.server_header and not b._has_server:
                block += b"server: fasterapi\r\n"
            if conn.date_header and not b._has_date:
                block += conn.ls.date_line
        else:
            block = conn._headers_block()
        if block:
            b.c_raw_headers(PyBytes_AS_STRING(block), PyBytes_GET_SIZE(block))
        if b._conn_close:
            self.keep_alive = False
        return 0

    cdef int _connection_header(self, ResponseBuilder b) except -1:
        # RFC 9112 §9.3/§9.6: say "close" when we will close; an HTTP/1.0
        # client assumes close unless told keep-alive.
        if not self.keep_alive:
            if not b._conn_close:
                b.c_header(b"connection", 10, b"close", 5)
        elif not self.http11:
            b.c_header(b"connection", 10, b"keep-alive", 10)
        return 0

    cdef int _send_body(self, dict message) except -1:
        cdef HttpCore conn = self.conn
        cdef ResponseBuilder b = conn.builder
        cdef Py_ssize_t n
        cdef bint more
        cdef bint counted, apart
        if self.rstate == RS_NONE:
            raise self._misuse("Expected ASGI message 'http.response.start', "
                               "but got 'http.response.body'.")
        if self.rstate == RS_COMPLETE:
            raise self._misuse("Unexpected ASGI message 'http.response.body' sent, "
                               "after response already completed.")
        body = message.get("body", b"")
        if type(body) is not bytes:
            body = bytes(body)
        more = message.get("more_body", False)
        n = PyBytes_GET_SIZE(body)
        if self.rstate == RS_STARTED:
            self._begin()
            if not more:
                # One-shot response: one buffer, content-length by the builder.
                if b._has_cl and not self.no_body:
                    if n > b._content_length:
                        self.keep_alive = False
                        raise self._misuse("Response content longer than Content-Length")
                    if n < b._content_length:
                        error_logger.error("Response content shorter than Content-Length")
                        self.keep_alive = False
                self._connection_header(b)
                # 1xx/204/304: whatever body the app gave is dropped.  HEAD
                # keeps it for the automatic content-length, then sends none.
                counted = n and not (self.no_body and not self.head_request)
                # A large body goes out as its own buffer beside the head (one
                # writev), not copied into the builder and again into bytes.
                apart = counted and n >= _BODY_APART
                if apart:
                    b.c_body_elsewhere(n)
                elif counted:
                    b.c_body(PyBytes_AS_STRING(body), n)
                b.c_finalize(self.no_body)
                conn._write(PyBytes_FromStringAndSize(b._buf + b._view_start, b._view_len))
                if apart and not self.no_body:
                    conn._write(body)
                self.sent_len = n
                self.rstate = RS_COMPLETE
                self._complete()
                return 0
            self._stream_head(body, n)
            return 0
        self._stream(body, n, more)
        return 0

    cdef int _stream_head(self, bytes body, Py_ssize_t n) except -1:
        # First message of a streamed response: decide the framing.
        cdef HttpCore conn = self.conn
        cdef ResponseBuilder b = conn.builder
        if b._has_cl:
            self.expected_len = b._content_length
        elif self.no_body:
            if self.head_request and not b._has_te:
                if self.http11:
                    # What the GET would carry (RFC 9110 §9.3.2).
                    b.c_header(b"transfer-encoding", 17, b"chunked", 7)
                else:
                    self.keep_alive = False
        elif self.http11 and (not b._has_te or b._te_chunked):
            self.chunked = True
        else:
            # HTTP/1.0 (or a foreign transfer-coding): the body ends when we
            # close (RFC 9112 §6.3 rule 8).
            self.keep_alive = False
        self._connection_header(b)
        self.rstate = RS_STREAMING
        if self.chunked:
            b.c_chunk(PyBytes_AS_STRING(body), n)
            self.sent_len = n
            b.c_flush()
            conn._write(PyBytes_FromStringAndSize(b._buf + b._view_start, b._view_len))
            conn._flush()
            return 0
        b.c_flush()
        conn._write(PyBytes_FromStringAndSize(b._buf + b._view_start, b._view_len))
        self._stream(body, n, True)
        return 0

    cdef int _stream(self, bytes body, Py_ssize_t n, bint more) except -1:
        cdef HttpCore conn = self.conn
        cdef ResponseBuilder b = conn.builder
        if self.chunked:
            if n:
                b.c_chunk(PyBytes_AS_STRING(body), n)
            if not more:
                b.c_end(None)
            b.c_flush()
            if b._view_len:
                conn._write(PyBytes_FromStringAndSize(b._buf + b._view_start, b._view_len))
        elif not self.no_body:
            if self.expected_len >= 0 and self.sent_len + n > self.expected_len:
                self.keep_alive = False
                raise self._misuse("Response content longer than Content-Length")
            if n:
                conn._write(body)
        self.sent_len += n
        if more:
            conn._flush()
            return 0
        if self.expected_len >= 0 and self.sent_len < self.expected_len and not self.no_body:
            error_logger.error("Response content shorter than Content-Length")
            self.keep_alive = False
        self.rstate = RS_COMPLETE
        self._complete()
        return 0

    cdef int _complete(self) except -1:
        # The response is done: an app waiting in receive() now gets
        # http.disconnect (asgiref www spec, "Disconnected Client").
        waiter = self.recv_waiter
        if waiter is not None and self.body_done:
            self.recv_waiter = None
            if not waiter.done():
                waiter.set_result(_DISCONNECT_PROTO.copy())
        self.conn._response_complete(self)
        return 0

    cdef int _error_response(self, int status, bytes body) except -1:
        # A response of our own (400-505 for parser errors, 408, 500, 503):
        # text body, and close unless the exchange may go on (500).
        cdef HttpCore conn = self.conn
        cdef bytes head
        if status != 500:
            self.keep_alive = False
        head = (status_line(status) + b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\n" % len(body))
        if not self.keep_alive:
            head += b"connection: close\r\n"
        elif not self.http11:
            head += b"connection: keep-alive\r\n"
        head += conn._headers_block() + _CRLF
        self.status = status
        self.rstate = RS_COMPLETE
        if self.head_request:
            conn._write(head)
        else:
            conn._write(head + body)
        self._complete()
        return 0


# The functions behind RequestCycle.receive/send, bound per request in _run.
cdef object _RECEIVE = RequestCycle.receive
cdef object _SEND = RequestCycle.send
