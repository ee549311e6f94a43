"""``--access-log-format``: gunicorn-style atoms and ``json``.

Unit tests build the protocol's custom-format records by hand (the layout of
rule 5 in ``fasterapi.accesslog``) and check every atom; emit tests check the
direct write and the ``logger.info(line)`` path; black-box tests start the
real CLI (``serve`` fixture) with a format, with ``json`` and with a bad atom.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time

import httpx
import pytest

from fasterapi import accesslog
from fasterapi.accesslog import AccessFormat, JsonAccessFormat, compile_format
from fasterapi.config import Config

SCOPE = {
    "type": "http", "method": "POST", "path": "/items/1", "query_string": b"x=1&y=2",
    "http_version": "1.1", "client": ("10.0.0.7", 41000),
    "headers": [(b"host", b"example.com"), (b"user-agent", b"curl/8.0"),
                (b"referer", b"http://ref.example/"), (b"x-request-id", b"abc123")],
}
RESP_HEADERS = [(b"Content-Type", b"text/plain"), (b"X-Trace", b"t-9")]


def record(fmt, scope=SCOPE, status=201, headers=RESP_HEADERS, sent=42, t0=10.0, t1=10.25):
    """A custom-format access record as the protocol appends it."""
    return (fmt, "10.0.0.7:41000", scope, status, headers, sent, t0, t1)


def line(fmt_text, **kw):
    fmt = compile_format(fmt_text)
    return fmt.line(record(fmt, **kw), 971186136.0)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


# -- atoms ---------------------------------------------------------------------

@pytest.mark.parametrize(("atom", "expected"), [
    ("h", "10.0.0.7"),
    ("l", "-"),
    ("u", "-"),
    ("r", "POST /items/1?x=1&y=2 HTTP/1.1"),
    ("m", "POST"),
    ("U", "/items/1"),
    ("q", "x=1&y=2"),
    ("H", "HTTP/1.1"),
    ("s", "201"),
    ("B", "42"),
    ("b", "42"),
    ("f", "http://ref.example/"),
    ("a", "curl/8.0"),
    ("T", "0"),
    ("M", "250"),
    ("D", "250000"),
    ("L", "0.250000"),
    ("p", f"<{os.getpid()}>"),
    ("{X-Request-Id}i", "abc123"),
    ("{x-missing}i", "-"),
    ("{x-trace}o", "t-9"),
    ("{content-type}o", "text/plain"),
    ("{x-missing}o", "-"),
])
def test_each_atom(atom, expected):
    assert line(f"<%({atom})s>") == f"<{expected}>"


def test_time_atom_is_common_log_format():
    text = line("%(t)s")
    assert re.fullmatch(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", text), text
    local = time.localtime(971186136.0)
    assert text.startswith(f"[{local.tm_mday:02d}/Oct/2000:")


def test_environment_atom_is_read_at_startup(monkeypatch):
    monkeypatch.setenv("FASTERAPI_TEST_ZONE", "eu-1")
    fmt = compile_format("%({FASTERAPI_TEST_ZONE}e)s %({FASTERAPI_TEST_UNSET}e)s")
    monkeypatch.setenv("FASTERAPI_TEST_ZONE", "changed")
    assert fmt.line(record(fmt), 0.0) == "eu-1 -"
    assert fmt.parts == []  # both were folded into the literal tail


def test_b_is_dash_for_an_empty_body_and_B_is_zero():
    assert line("%(b)s %(B)s", sent=0) == "- 0"


def test_no_query_no_response_headers():
    scope = dict(SCOPE, query_string=b"", headers=[])
    assert line("%(r)s|%(q)s|%(a)s|%({x-trace}o)s", scope=scope, headers=None) == "POST /items/1 HTTP/1.1||-|-"


def test_unix_socket_peer_has_no_host():
    assert line("%(h)s", scope=dict(SCOPE, client=None)) == "-"


def test_percent_escape_and_literals():
    assert line("100%% %(s)s done") == "100% 201 done"


def test_gunicorn_default_format():
    fmt = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    text = line(fmt)
    assert re.fullmatch(r'10\.0\.0\.7 - - \[[^]]+\] "POST /items/1\?x=1&y=2 HTTP/1\.1" 201 42 '
                        r'"http://ref\.example/" "curl/8\.0"', text), text


def test_only_duration_atoms_time_requests():
    assert not compile_format("%(h)s %(r)s %(s)s %(t)s %({x}i)s").timed
    for atom in "TMDL":
        assert compile_format(f"%({atom})s").timed
    assert compile_format("json").timed
    assert compile_format(None) is None and compile_format("") is None


def test_compiled_once_into_parts():
    fmt = compile_format("a %(h)s b %(s)s c")
    assert [lit for lit, _ in fmt.parts] == ["a ", " b "] and fmt.tail == " c"


@pytest.mark.parametrize("bad", ["%(zz)s", "%(h)d", "%(h", "50% off", "%({x}z)s", "%()s"])
def test_bad_formats_raise_value_error(bad):
    with pytest.raises(ValueError, match="--access-log-format"):
        compile_format(bad)


# -- json ----------------------------------------------------------------------

def test_json_line_schema():
    fmt = compile_format("json")
    assert isinstance(fmt, JsonAccessFormat)
    obj = json.loads(fmt.line(record(fmt), 971186136.5))
    assert obj == {
        "time": obj["time"], "client": "10.0.0.7:41000", "method": "POST", "path": "/items/1",
        "query": "x=1&y=2", "http_version": "1.1", "status": 201, "bytes": 42,
        "duration_ms": 250.0, "user_agent": "curl/8.0", "referer": "http://ref.example/",
    }
    assert re.fullmatch(r"2000-10-\d\dT\d\d:\d\d:\d\d\.500[+-]\d\d:\d\d", obj["time"]), obj["time"]


def test_json_client_is_the_scopes_after_proxy_headers():
    fmt = compile_format("json")
    obj = json.loads(fmt.line(record(fmt, scope=dict(SCOPE, client=("203.0.113.9", 0))), 0.0))
    assert obj["client"] == "203.0.113.9:0"
    obj = json.loads(fmt.line(record(fmt, scope=dict(SCOPE, client=None)), 0.0))
    assert obj["client"] == ""


def test_json_missing_headers_are_null():
    fmt = compile_format("JSON")
    obj = json.loads(fmt.line(record(fmt, scope=dict(SCOPE, headers=[])), 0.0))
    assert obj["user_agent"] is None and obj["referer"] is None


# -- emit ----------------------------------------------------------------------

def test_emit_writes_plain_lines_directly_with_the_default_handler(default_logging):
    out = default_logging()
    fmt = compile_format("%(m)s %(U)s %(s)s")
    before = dict(accesslog.stats)
    accesslog.emit([record(fmt), record(fmt, status=404)])
    assert out.getvalue() == "POST /items/1 201\nPOST /items/1 404\n"  # no level prefix
    assert accesslog.stats["fast_batches"] == before["fast_batches"] + 1


def test_emit_logs_one_info_per_line_otherwise(default_logging):
    default_logging()
    logger = logging.getLogger("fasterapi.access")
    seen = []
    logger.addFilter(lambda rec: seen.append(rec.getMessage()) or False)
    fmt = compile_format("%(m)s %(s)s")
    before = dict(accesslog.stats)
    accesslog.emit([record(fmt), record(fmt, status=500)])
    assert seen == ["POST 201", "POST 500"]
    assert accesslog.stats["slow_lines"] == before["slow_lines"] + 2


def test_emit_mixed_batch_keeps_both_kinds(default_logging):
    # Two servers with different formats on one loop: rare, but no line is lost.
    out = default_logging()
    fmt = compile_format("custom %(s)s")
    logger = logging.getLogger("fasterapi.access")
    seen = []
    logger.addFilter(lambda rec: seen.append(rec.getMessage()) or False)
    accesslog.emit([("1.2.3.4:1", "GET", "/", "1.1", 200), record(fmt)])
    accesslog.emit([record(fmt), ("1.2.3.4:1", "GET", "/", "1.1", 200)])
    default = '1.2.3.4:1 - "GET / HTTP/1.1" 200'
    assert seen == [default, "custom 201", "custom 201", default]
    assert out.getvalue() == ""


def test_config_compiles_the_format(default_logging):
    assert isinstance(Config(app, access_log_format="%(h)s").access_format, AccessFormat)
    assert Config(app).access_format is None
    with pytest.raises(ValueError, match=r"unknown atom %\(x\)s"):
        Config(app, access_log_format="%(x)s")


# -- through the real CLI ------------------------------------------------------

def final_output(server):
    return server.log_path.read_text(errors="replace")


def test_cli_custom_format(serve):
    fmt = '%(h)s "%(r)s" %(s)s %(b)s "%(a)s" %({x-path}o)s %(D)s'
    server = serve("http_apps:echo", "--access-log-format", fmt)
    r = httpx.post(f"{server.url}/a/b?k=v", content=b"hello", headers={"user-agent": "t/1"})
    assert r.status_code == 200
    server.wait_for_log('"POST /a/b?k=v HTTP/1.1"')
    assert server.stop() == 0
    lines = [ln for ln in final_output(server).splitlines() if '"POST /a/b' in ln]
    assert len(lines) == 1, final_output(server)
    head, micros = lines[0].rsplit(" ", 1)
    assert head == '127.0.0.1 "POST /a/b?k=v HTTP/1.1" 200 5 "t/1" /a/b'
    assert 0 <= int(micros) < 5_000_000


def test_cli_duration_is_plausible(serve):
    server = serve("http_apps:slow", "--access-log-format", "%(U)s %(M)s %(L)s")
    assert httpx.get(f"{server.url}/?0.2").status_code == 200
    server.wait_for_log("/ ")
    assert server.stop() == 0
    (ms, seconds), = [ln.split()[1:] for ln in final_output(server).splitlines() if ln.startswith("/ ")]
    assert 190 <= int(ms) < 5000
    assert abs(float(seconds) * 1000 - int(ms)) < 1.0


def test_cli_json_lines(serve):
    server = serve("http_apps:hello", "--access-log-format", "json")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"".join(b"GET /p%d?i=%d HTTP/1.1\r\nHost: x\r\nReferer: r%d\r\n\r\n" % (i, i, i)
                           for i in range(4)))
        data = b""
        while data.count(b"Hello, world!") < 4:
            data += s.recv(65536)
    server.wait_for_log('"path":"/p3"')
    assert server.stop() == 0
    objs = [json.loads(ln) for ln in final_output(server).splitlines() if ln.startswith("{")]
    assert [o["path"] for o in objs] == [f"/p{i}" for i in range(4)]
    for i, o in enumerate(objs):
        assert o["query"] == f"i={i}" and o["referer"] == f"r{i}" and o["user_agent"] is None
        assert o["status"] == 200 and o["bytes"] == 13 and o["method"] == "GET"
        assert o["client"].startswith("127.0.0.1:") and o["http_version"] == "1.1"
        assert 0 <= o["duration_ms"] < 5000


def test_cli_format_from_the_environment(serve):
    server = serve("http_apps:hello", env={"FASTERAPI_ACCESS_LOG_FORMAT": "ENV %(s)s %(U)s"})
    httpx.get(f"{server.url}/e")
    server.wait_for_log("ENV 200 /e")
    assert server.stop() == 0


def test_cli_unknown_atom_exits_3_with_one_line(serve):
    server = serve("http_apps:hello", "--access-log-format", "%(h)s %(nope)s", ready=False)
    assert server.proc.wait(30) == 3
    out = final_output(server).strip()
    assert out.count("\n") == 0, out
    assert out.startswith("Error: --access-log-format: unknown atom %(nope)s")


def test_cli_custom_format_through_a_log_config(serve, tmp_path):
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "SHIPPED %(message)s"}},
        "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "plain",
                             "stream": "ext://sys.stdout"}},
        "loggers": {"fasterapi.access": {"handlers": ["out"], "level": "INFO", "propagate": False}},
    }
    path = tmp_path / "log.json"
    path.write_text(json.dumps(config))
    server = serve("http_apps:hello", "--log-config", str(path), "--access-log-format", "%(m)s %(U)s %(s)s")
    httpx.get(f"{server.url}/via-config")
    server.wait_for_log("SHIPPED GET /via-config 200")
    assert server.stop() == 0


def test_cli_remote_address_follows_trusted_proxy_headers(serve):
    server = serve("http_apps:hello", "--access-log-format", "%(h)s %(U)s")
    httpx.get(f"{server.url}/fwd", headers={"x-forwarded-for": "203.0.113.9"})
    server.wait_for_log("203.0.113.9 /fwd")
    assert server.stop() == 0
