"""The access log: batched per loop iteration, a fast path for the default config, the slow path for the rest.

Unit tests compare the fast path's lines with what ``AccessFormatter`` makes of
the same records (they must be byte-identical); in-process tests drive the
protocol with a mock transport on uvloop and plain asyncio; black-box tests
start the real CLI (``serve`` fixture) with the default config, a user
``--log-config``, a uvicorn-style one and ``--no-access-log``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import socket
import time
import types

import pytest
import uvloop

from fasterapi import accesslog
from fasterapi._protocol import flush_access_log, loop_state
from fasterapi.logging import (
    ACCESS_FORMAT,
    AccessFormatter,
    AccessHandler,
    ColourizedFormatter,
)
from fasterapi.protocol import HttpProtocol

RECORDS = [
    ("127.0.0.1:5000", "GET", "/", "1.1", 200),
    ("10.0.0.7:41000", "POST", "/items?x=1&y=%20", "1.1", 201),
    ("[::1]:8080", "HEAD", "/a/b", "1.0", 304),
    ("", "GET", "/unix", "1.1", 404),          # AF_UNIX peer: no address
    ("1.2.3.4:1", "PUT", "/odd", "1.1", 299),   # no phrase: "299 "
    ("1.2.3.4:1", "GET", "/boom", "1.1", 500),
    ("1.2.3.4:1", "GET", "/ws", "1.1", 101),
    ("1.2.3.4:1", "GET", "/edge", "1.1", 599),
]


async def app(scope, receive, send):
    """200 "ok" to every http request."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def slow_lines(records, use_colors):
    """What logging.StreamHandler + AccessFormatter write for `records` (the pre-batching output)."""
    formatter = AccessFormatter(ACCESS_FORMAT, use_colors=use_colors)
    out = []
    for args in records:
        record = logging.LogRecord("fasterapi.access", logging.INFO, __file__, 1,
                                   accesslog.ACCESS_MESSAGE, args, None)
        out.append(formatter.format(record) + "\n")
    return "".join(out)


def counts():
    return dict(accesslog.stats)


# -- formatting ----------------------------------------------------------------

@pytest.mark.parametrize("use_colors", [False, True])
def test_fast_lines_equal_formatter_lines(use_colors):
    assert accesslog.format_lines(RECORDS, use_colors) == slow_lines(RECORDS, use_colors)
    for record in RECORDS:  # a batch of one has its own shortcut
        assert accesslog.format_lines([record], use_colors) == slow_lines([record], use_colors)


def test_plain_lines_look_like_uvicorns():
    lines = accesslog.format_lines(RECORDS[:2] + RECORDS[4:5], False).splitlines()
    assert lines == [
        'INFO:     127.0.0.1:5000 - "GET / HTTP/1.1" 200 OK',
        'INFO:     10.0.0.7:41000 - "POST /items?x=1&y=%20 HTTP/1.1" 201 Created',
        'INFO:     1.2.3.4:1 - "PUT /odd HTTP/1.1" 299 ',
    ]


@pytest.mark.parametrize("use_colors", [False, True])
def test_emit_fast_and_slow_paths_write_the_same_bytes(default_logging, use_colors):
    out = default_logging(use_colors=use_colors)
    before = counts()
    accesslog.emit(RECORDS)
    fast = out.getvalue()
    assert counts()["fast_batches"] == before["fast_batches"] + 1
    assert counts()["slow_batches"] == before["slow_batches"]

    # A filter that lets everything through still forces the per-record path.
    handler = logging.getLogger("fasterapi.access").handlers[0]
    handler.addFilter(lambda record: True)
    out.seek(0)
    out.truncate()
    accesslog.emit(RECORDS)
    assert counts()["slow_batches"] == before["slow_batches"] + 1
    assert out.getvalue() == fast == slow_lines(RECORDS, use_colors)


def test_formatters_leave_the_record_alone():
    record = logging.LogRecord("fasterapi.access", logging.INFO, __file__, 1,
                               accesslog.ACCESS_MESSAGE, RECORDS[0], None)
    record.color_message = "coloured %s %s %s %s %d"
    before = dict(record.__dict__)
    AccessFormatter(ACCESS_FORMAT, use_colors=True).format(record)
    ColourizedFormatter("%(levelprefix)s %(message)s", use_colors=True).format(record)
    before["message"] = record.message  # Formatter.format() itself sets this one
    assert record.__dict__ == before


def test_colourized_formatter_styles_and_colour_message():
    record = logging.LogRecord("fasterapi.error", logging.WARNING, __file__, 1,
                               "pid %d", (7,), None)
    record.color_message = "pid <%d>"
    assert ColourizedFormatter("{levelprefix}|{message}", style="{",
                               use_colors=False).format(record) == "WARNING: |pid 7"
    coloured = ColourizedFormatter("$levelprefix|$message", style="$", use_colors=True)
    assert coloured.format(record) == "\x1b[33mWARNING\x1b[0m: |pid <7>"
    with pytest.raises(ValueError, match="Formatting field not found"):
        ColourizedFormatter("%(nope)s", use_colors=False).format(record)


def test_access_formatter_on_a_non_access_record():
    record = logging.LogRecord("fasterapi.access", logging.INFO, __file__, 1, "hello", None, None)
    out = AccessFormatter(ACCESS_FORMAT, use_colors=False).format(record)
    assert out == 'INFO:      - "" '


# -- when the fast path applies ----------------------------------------------

def test_default_config_takes_the_fast_path(default_logging):
    default_logging()
    handler = accesslog.default_handler()
    assert type(handler) is AccessHandler


@pytest.mark.parametrize("change", [
    "filter_on_logger", "second_handler", "propagate", "level", "handler_level",
    "subclass", "format", "disabled",
])
def test_anything_else_takes_the_slow_path(default_logging, change):
    default_logging()
    logger = logging.getLogger("fasterapi.access")
    handler = logger.handlers[0]
    if change == "filter_on_logger":
        logger.addFilter(lambda record: True)
    elif change == "second_handler":
        logger.addHandler(logging.NullHandler())
    elif change == "propagate":
        logger.propagate = True
    elif change == "level":
        logger.setLevel(logging.WARNING)
    elif change == "handler_level":
        handler.setLevel(logging.WARNING)
    elif change == "subclass":
        logger.handlers = [type("Mine", (AccessHandler,), {})(io.StringIO())]
        logger.handlers[0].setFormatter(handler.formatter)
    elif change == "format":
        handler.setFormatter(AccessFormatter("%(client_addr)s %(status_code)s", use_colors=False))
    elif change == "disabled":
        logger.disabled = True
    assert accesslog.default_handler() is None


def test_write_errors_go_to_handle_error(default_logging, monkeypatch):
    default_logging()
    handler = logging.getLogger("fasterapi.access").handlers[0]
    handler.setStream(types.SimpleNamespace(write=None, flush=lambda: None))  # write() raises
    seen = []
    monkeypatch.setattr(handler, "handleError", seen.append)
    accesslog.emit(RECORDS[:1])
    assert len(seen) == 1


# -- through the protocol (mock transport) ------------------------------------

class Transport:
    """Just enough of a socket transport for HttpProtocol."""

    def __init__(self):
        self.data = bytearray()
        self.closed = False

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 8123), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data):
        self.data += data

    def writelines(self, items):
        self.data += b"".join(items)

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def set_write_buffer_limits(self, high=None, low=None):
        pass


def protocol_config():
    return types.SimpleNamespace(
        loaded_app=app, root_path="", access_log=True, server_header=True, date_header=True,
        encoded_headers=[], limit_concurrency=None, timeout_keep_alive=5,
        timeout_request_header=10, timeout_request_body=30, max_request_line=8190,
        max_header_bytes=65536, max_headers=100, max_chunk_ext=1024, max_body_size=0,
        queue_size=1024, write_high_water=65536, read_buffer_limit=1048576,
    )


@pytest.fixture(params=["asyncio", "uvloop"])
def new_loop(request):
    loop = uvloop.new_event_loop() if request.param == "uvloop" else asyncio.new_event_loop()
    yield loop
    loop.close()


def test_pipelined_requests_one_fast_batch_in_order(default_logging, new_loop):
    out = default_logging(use_colors=False)
    before = counts()

    async def body():
        state = types.SimpleNamespace(total_requests=0, connections=set(), tasks=set(),
                                      root_path="")
        proto = HttpProtocol(config=protocol_config(), server_state=state)
        transport = Transport()
        proto.connection_made(transport)
        proto.data_received(b"".join(
            b"GET /r%d?q=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i, i) for i in range(5)))
        end = time.monotonic() + 5
        while transport.data.count(b"HTTP/1.1 200") < 5 or out.getvalue().count("\n") < 5:
            assert time.monotonic() < end, (bytes(transport.data), out.getvalue())
            await asyncio.sleep(0.001)
        proto.connection_lost(None)

    new_loop.run_until_complete(body())
    assert out.getvalue().splitlines() == [
        f'INFO:     127.0.0.1:8123 - "GET /r{i}?q={i} HTTP/1.1" 200 OK' for i in range(5)
    ]
    after = counts()
    assert after["slow_batches"] == before["slow_batches"]
    assert after["fast_lines"] == before["fast_lines"] + 5


class CountingStream(io.StringIO):
    writes = 0

    def write(self, text):
        self.writes += 1
        return super().write(text)


def test_responses_of_one_iteration_are_one_write(default_logging, new_loop):
    default_logging(use_colors=False)
    stream = CountingStream()
    logging.getLogger("fasterapi.access").handlers[0].setStream(stream)
    before = counts()

    async def body():
        state = types.SimpleNamespace(total_requests=0, connections=set(), tasks=set(),
                                      root_path="")
        transports = []
        # Ten connections whose requests arrive in the same loop step: their
        # tasks start in one drain and answer in the same iteration.
        for i in range(10):
            proto = HttpProtocol(config=protocol_config(), server_state=state)
            transport = Transport()
            proto.connection_made(transport)
            proto.data_received(b"GET /c%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            transports.append((proto, transport))
        end = time.monotonic() + 5
        while stream.getvalue().count("\n") < 10:
            assert time.monotonic() < end, stream.getvalue()
            await asyncio.sleep(0.001)
        for proto, _ in transports:
            proto.connection_lost(None)

    new_loop.run_until_complete(body())
    assert [line.split('"')[1] for line in stream.getvalue().splitlines()] == [
        f"GET /c{i} HTTP/1.1" for i in range(10)
    ]
    assert stream.writes == 1
    assert counts()["fast_batches"] == before["fast_batches"] + 1


def test_flush_access_log_writes_what_is_pending(default_logging, new_loop):
    out = default_logging(use_colors=False)

    async def body():
        loop = asyncio.get_running_loop()
        loop_state(loop)  # exists before any connection
        proto = HttpProtocol(config=protocol_config(), server_state=types.SimpleNamespace(
            total_requests=0, connections=set(), tasks=set(), root_path=""))
        transport = Transport()
        proto.connection_made(transport)
        proto.data_received(b"GET /last HTTP/1.1\r\nHost: x\r\n\r\n")
        while b"200" not in transport.data:
            await asyncio.sleep(0)
        # The response is written in the same step that queued its record, so
        # the scheduled flush has not run yet: the hook must write it now.
        pending_before = out.getvalue()
        flush_access_log(loop)
        proto.connection_lost(None)
        return pending_before

    pending_before = new_loop.run_until_complete(body())
    assert "/last" not in pending_before
    assert out.getvalue() == 'INFO:     127.0.0.1:8123 - "GET /last HTTP/1.1" 200 OK\n'
    other = asyncio.new_event_loop()
    flush_access_log(other)  # a loop that never served HTTP: nothing to do
    other.close()


# -- black box -----------------------------------------------------------------

def get(server, path):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def final_output(server):
    """All a stopped server printed (its log file is closed by stop())."""
    return server.log_path.read_text(errors="replace")


def access_lines(text):
    return [line for line in text.splitlines() if " - \"" in line]


def test_cli_default_pipelined_lines_in_order(serve):
    server = serve("http_apps:hello")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(8)))
        data = b""
        while data.count(b"Hello, world!") < 8:
            data += s.recv(65536)
    server.wait_for_log('"GET /p7 HTTP/1.1" 200 OK')
    assert server.stop() == 0
    lines = access_lines(final_output(server))
    assert [line.split('"')[1] for line in lines] == [f"GET /p{i} HTTP/1.1" for i in range(8)]
    assert all(line.startswith("INFO:     127.0.0.1:") and line.endswith(" 200 OK") for line in lines)


def access_log_config(path, formatter: str, fmt: str, logger: str) -> str:
    """Write a --log-config JSON file sending `logger` to stdout through
    `formatter` with `fmt`; return its path."""
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"access": {"()": formatter, "fmt": fmt}},
        "handlers": {"access": {"class": "logging.StreamHandler", "formatter": "access",
                                "stream": "ext://sys.stdout"}},
        "loggers": {logger: {"handlers": ["access"], "level": "INFO", "propagate": False}},
    }
    path.write_text(json.dumps(config))
    return str(path)


def test_cli_custom_log_config_gets_its_format(serve, tmp_path):
    path = access_log_config(tmp_path / "log.json", "fasterapi.logging.AccessFormatter",
                             "CUSTOM %(client_addr)s|%(request_line)s|%(status_code)s",
                             "fasterapi.access")
    server = serve("http_apps:hello", "--log-config", path)
    get(server, "/custom?a=1")
    out = server.wait_for_log("CUSTOM ")
    assert "|GET /custom?a=1 HTTP/1.1|200 OK" in out
    assert server.stop() == 0
    assert 'INFO:     127.0.0.1' not in final_output(server)


def test_cli_uvicorn_access_config_still_applies(serve, tmp_path):
    path = access_log_config(tmp_path / "uvicorn-log.json", "uvicorn.logging.AccessFormatter",
                             "UVA %(request_line)s => %(status_code)s", "uvicorn.access")
    server = serve("http_apps:hello", "--log-config", path)
    get(server, "/uv")
    server.wait_for_log("UVA GET /uv HTTP/1.1 => 200 OK")
    assert server.stop() == 0


def test_cli_no_access_log(serve):
    server = serve("http_apps:hello", "--no-access-log")
    assert b"Hello, world!" in get(server, "/quiet")
    assert server.stop() == 0
    out = final_output(server)
    assert "Finished server process" in out
    assert "/quiet" not in out


def test_cli_last_lines_survive_sigterm(serve):
    server = serve("http_apps:app")
    for i in range(3):
        get(server, f"/done{i}")
    # One response still in flight when SIGTERM arrives: graceful shutdown
    # finishes it, and its line must still be written, before "Finished".
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"GET /slow?0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.1)
    server.proc.send_signal(signal.SIGTERM)
    data = b""
    while b"slow" not in data:
        data += s.recv(65536)
    s.close()
    assert server.stop() == 0
    out = final_output(server)
    finished = out.index("Finished server process")
    for path in ("/done0", "/done1", "/done2", "/slow?0.5"):
        line = f'"GET {path} HTTP/1.1" 200 OK'
        assert line in out, out
        assert out.index(line) < finished, out
