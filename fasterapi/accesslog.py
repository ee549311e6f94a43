"""Writing the access log a loop iteration at a time.

Rules this module keeps:

1. The protocol never logs a response itself.  It appends one record, the
   tuple ``(client_addr, method, full_path, http_version, status)``, to its
   loop's pending list; the first append of a loop iteration schedules one
   ``emit`` of the whole list (``LoopState`` in ``_protocol.pyx``).
2. Fast path: while ``fasterapi.access`` is configured the default way
   (``default_handler`` says what that means), ``emit`` formats the lines
   itself and writes the batch with one ``write()`` and one ``flush()`` under
   the handler's lock.  The lines are byte for byte what ``AccessFormatter``
   would make of the same records (tests/test_accesslog.py compares both).
3. Slow path: any other configuration (a ``--log-config``, an added filter
   or handler, a uvicorn-style config mirrored onto our logger) gets one
   ``logger.info('%s - "%s %s HTTP/%s" %d', *record)`` per record, the
   contract documented in ``fasterapi.logging``, so every formatter, filter
   and handler sees exactly what it saw before batching.
4. Order is kept: records are emitted in the order the responses completed,
   and a batch is written before the next one is started.
5. A custom ``--access-log-format`` (gunicorn's atoms, or ``json``) is
   compiled once at startup into an ``AccessFormat``.  The protocol then
   appends a wider record, ``(format, client, scope, status, resp_headers,
   sent_len, t0, t1)``, whose first item is the format: ``emit`` hands such a
   batch to ``AccessFormat.emit``.  ``t0``/``t1`` (``perf_counter`` at the
   request head and at the response end) are taken only if the format has a
   duration atom (``AccessFormat.timed``); else both are 0.0.  Custom lines
   are complete lines with no level prefix: written directly while the
   handler setup is the default one, else one ``logger.info(line)`` each.
"""

from __future__ import annotations

import logging
import os
import time

import click

from fasterapi.logging import (
    _STATUS_TEXT,
    ACCESS_FORMAT,
    AccessFormatter,
    AccessHandler,
    coloured_status_text,
    level_prefix,
    status_text,
)

__all__ = ["ACCESS_MESSAGE", "AccessFormat", "JsonAccessFormat", "compile_format", "default_handler",
           "emit", "stats"]

# The message (and so record.args) of every access record: see fasterapi.logging.
ACCESS_MESSAGE = '%s - "%s %s HTTP/%s" %d'

access_logger = logging.getLogger("fasterapi.access")

# How many batches took each path; the tests read these instead of timing.
stats = {"fast_batches": 0, "fast_lines": 0, "slow_batches": 0, "slow_lines": 0}

_INFO = logging.INFO
_PLAIN_PREFIX = level_prefix(logging.INFO, "INFO", False) + " "
_COLOUR_PREFIX = level_prefix(logging.INFO, "INFO", True) + " "
# click.style(request_line, bold=True) is the line between these two.
_BOLD_OPEN, _BOLD_CLOSE = click.style("\0", bold=True).split("\0")


def default_handler(logger: logging.Logger = access_logger) -> AccessHandler | None:
    """The handler to write to directly if `logger` is configured the default way, else None.

    Default means: INFO enabled, no filters, propagation off, exactly one
    handler, of class ``AccessHandler`` (not a subclass, which may override
    ``emit``), without filters, at level INFO or lower, whose formatter is an
    ``AccessFormatter`` (not a subclass) with ``ACCESS_FORMAT`` in %-style and
    no defaults.  Anything else may change what a line looks like or where it
    goes, so it takes the slow path.
    """
    # PERF: ~0.3 us, once per batch (not per line).  Checked afresh each time
    # rather than cached: filters, levels and formatters can all be changed
    # in place without the handlers list changing, and a cache that noticed
    # that would cost about as much as this.
    if logger.propagate or logger.filters or not logger.isEnabledFor(_INFO):
        return None
    handlers = logger.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if type(handler) is not AccessHandler or handler.filters or handler.level > _INFO:
        return None
    formatter = handler.formatter
    if type(formatter) is not AccessFormatter:
        return None
    style = formatter._style
    if type(style) is not logging.PercentStyle or style._fmt != ACCESS_FORMAT or style._defaults:
        return None
    return handler


def format_lines(records: list[tuple], use_colors: bool, terminator: str = "\n") -> str:
    """The default access lines for `records`, each ended by `terminator`, as one string.

    Equal to ``AccessFormatter(ACCESS_FORMAT, use_colors=use_colors)``
    formatting each record's ``logger.info(ACCESS_MESSAGE, *record)``.
    """
    if len(records) == 1 and not use_colors:
        # PERF: a lone line (one connection, one request per iteration) skips
        # the list and the join: ~0.55 -> ~0.36 us.
        client, method, path, version, status = records[0]
        return (f'{_PLAIN_PREFIX}{client} - "{method} {path} HTTP/{version}" '
                f"{_STATUS_TEXT.get(status) or status_text(status)}{terminator}")
    if use_colors:
        prefix = _COLOUR_PREFIX
        return "".join([
            f'{prefix}{client} - "{_BOLD_OPEN}{method} {path} HTTP/{version}{_BOLD_CLOSE}" '
            f"{coloured_status_text(status)}{terminator}"
            for client, method, path, version, status in records
        ])
    prefix = _PLAIN_PREFIX
    texts = _STATUS_TEXT
    return "".join([
        f'{prefix}{client} - "{method} {path} HTTP/{version}" '
        f"{texts.get(status) or status_text(status)}{terminator}"
        for client, method, path, version, status in records
    ])


def emit(records: list[tuple]) -> None:
    """Log `records` (protocol access tuples, in completion order) through ``fasterapi.access``.

    Never raises for a logging problem: write errors go to the handler's
    ``handleError``, as they do for ``logging``'s own handlers.
    """
    if not records:
        return
    first = records[0]
    if len(first) != 5:
        # A custom format's records (rule 5) carry their AccessFormat first.
        first[0].emit(records)
        return
    handler = default_handler()
    if handler is not None:
        try:
            text = format_lines(records, handler.formatter.use_colors, handler.terminator)  # type: ignore[union-attr]
        except ValueError:
            # A custom-format record further in: two servers with different
            # formats share this loop.  Rare, so handled per record.
            _emit_mixed(records)
            return
        stats["fast_batches"] += 1
        stats["fast_lines"] += len(records)
        handler.write_batch(text)
        return
    _emit_mixed(records)


def _emit_mixed(records: list[tuple]) -> None:
    # The slow path, one record at a time, for any mix of record kinds.
    stats["slow_batches"] += 1
    stats["slow_lines"] += len(records)
    info = access_logger.info
    for record in records:
        if len(record) == 5:
            info(ACCESS_MESSAGE, *record)
        else:
            info(record[0].line(record, time.time()))


# -- custom formats (--access-log-format) ---------------------------------------
#
# Record layout (rule 5): indexes of the fields a getter reads.
_CLIENT, _SCOPE, _STATUS, _RESP_HEADERS, _SENT, _T0, _T1 = 1, 2, 3, 4, 5, 6, 7

# Month names of Apache's common log format, independent of the C locale
# (strftime's %b is not).
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _clf_time(now: float) -> str:
    """``[10/Oct/2000:13:55:36 -0700]``: local time in Apache's common log format."""
    t = time.localtime(now)
    offset = t.tm_gmtoff or 0
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return (f"[{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{hours:02d}{minutes:02d}]")


def _full_path(scope: dict) -> str:
    qs = scope["query_string"]
    if qs:
        return scope["path"] + "?" + qs.decode("latin-1")
    return scope["path"]


def _host(rec: tuple) -> str:
    # %(h)s is the address alone (gunicorn), after --proxy-headers rewrote it.
    client = rec[_SCOPE].get("client")
    return client[0] if client else "-"


def _duration(rec: tuple) -> float:
    return rec[_T1] - rec[_T0]


def _request_header(name: str):
    key = name.lower().encode("latin-1")

    def get(rec: tuple) -> str:
        # Request header names are lowercase in the scope (ASGI spec).
        for n, v in rec[_SCOPE]["headers"]:
            if n == key:
                return v.decode("latin-1")
        return "-"
    return get


def _response_header(name: str):
    key = name.lower().encode("latin-1")

    def get(rec: tuple) -> str:
        # The app's own header list: any case, maybe None before a response start.
        for n, v in rec[_RESP_HEADERS] or ():
            if n.lower() == key:
                return v.decode("latin-1")
        return "-"
    return get


# Getters of the one-letter atoms; each maps a record to the text of its atom.
# %(t)s and %(p)s are per batch and per process, so they are not here.
_ATOMS = {
    "h": _host,
    "r": lambda rec: f"{rec[_SCOPE]['method']} {_full_path(rec[_SCOPE])} HTTP/{rec[_SCOPE]['http_version']}",
    "m": lambda rec: rec[_SCOPE]["method"],
    "U": lambda rec: rec[_SCOPE]["path"],
    "q": lambda rec: rec[_SCOPE]["query_string"].decode("latin-1"),
    "H": lambda rec: f"HTTP/{rec[_SCOPE]['http_version']}",
    "s": lambda rec: str(rec[_STATUS]),
    "B": lambda rec: str(rec[_SENT]),
    "b": lambda rec: str(rec[_SENT]) if rec[_SENT] else "-",
    "f": _request_header("referer"),
    "a": _request_header("user-agent"),
    "T": lambda rec: str(int(_duration(rec))),
    "M": lambda rec: str(int(_duration(rec) * 1e3)),
    "D": lambda rec: str(int(_duration(rec) * 1e6)),
    "L": lambda rec: f"{_duration(rec):.6f}",
}
# Atoms whose text never changes: folded into the literals at compile time.
_CONSTANT_ATOMS = {"l": "-", "u": "-"}
_TIMED_ATOMS = frozenset("TMDL")
_KNOWN = "h l u t r m U q H s B b f a T M D L p {header}i {header}o {var}e"


class AccessFormat:
    """A gunicorn-style access log format (``%(h)s %(r)s ...``), compiled once.

    ``parts`` is a list of ``(literal, getter)``; a line is each literal
    followed by its getter's text for the record, then ``tail``.  ``%%`` is a
    literal ``%``.  ``%(t)s`` is the time the batch is written (lines of one
    loop iteration share it, as they share the iteration), ``%(p)s`` is
    ``<pid>`` as in gunicorn, ``%({var}e)s`` is read from the environment at
    startup.  Raises ValueError naming the first unknown or malformed atom.
    """

    json = False

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.timed = False      # the protocol records t0/t1 only if True
        self._now = -1.0        # one-entry cache of %(t)s, by whole second
        self._now_text = ""
        parts: list[tuple[str, object]] = []
        literal: list[str] = []
        i, n = 0, len(fmt)
        while i < n:
            j = fmt.find("%", i)
            if j < 0:
                literal.append(fmt[i:])
                break
            literal.append(fmt[i:j])
            if fmt.startswith("%%", j):
                literal.append("%")
                i = j + 2
                continue
            end = fmt.find(")s", j)
            if not fmt.startswith("%(", j) or end < 0:
                raise ValueError(f"--access-log-format: expected %(name)s at {fmt[j:j + 12]!r} "
                                 f"(write %% for a literal %)")
            name = fmt[j + 2:end]
            i = end + 2
            getter = self._getter(name)
            if isinstance(getter, str):       # a value fixed at startup
                literal.append(getter)
                continue
            parts.append(("".join(literal), getter))
            literal = []
        self.parts = parts
        self.tail = "".join(literal)

    def _getter(self, name: str):
        if name in _ATOMS:
            self.timed = self.timed or name in _TIMED_ATOMS
            return _ATOMS[name]
        if name in _CONSTANT_ATOMS:
            return _CONSTANT_ATOMS[name]
        if name == "t":
            return self._time_text
        if name == "p":
            return f"<{os.getpid()}>"
        if len(name) > 3 and name[0] == "{" and name[-2] == "}" and name[-1] in "ioe":
            key = name[1:-2]
            if name[-1] == "i":
                return _request_header(key)
            if name[-1] == "o":
                return _response_header(key)
            return os.environ.get(key, "-")
        raise ValueError(f"--access-log-format: unknown atom %({name})s; known: {_KNOWN}")

    def _time_text(self, rec: tuple) -> str:
        return self._now_text

    def _set_now(self, now: float) -> None:
        if int(now) != self._now:
            self._now = int(now)
            self._now_text = _clf_time(now)

    def line(self, rec: tuple, now: float) -> str:
        """The access line (no terminator) for one record, at wall time `now`."""
        self._set_now(now)
        return self._line(rec)

    def _line(self, rec: tuple) -> str:
        # PERF: ~2.0-2.5 us per line for gunicorn's common format (7 getters,
        # batches of 16), against ~0.35-0.45 us for the default line; under
        # wrk -c64 on one core the server spent ~21 us/request with it, ~18
        # with the default line (noisy 2-CPU host, medians of 5).
        return "".join([lit + get(rec) for lit, get in self.parts]) + self.tail

    def emit(self, records: list[tuple]) -> None:
        """Write the lines of `records` (this format's; a 5-tuple is passed to the default path)."""
        now = time.time()
        self._set_now(now)
        handler = default_handler()
        line = self._line
        if handler is None:
            _emit_mixed(records)
            return
        try:
            lines = [line(rec) for rec in records]
        except (TypeError, IndexError):
            # A default 5-tuple from another server on this loop (see emit).
            _emit_mixed(records)
            return
        stats["fast_batches"] += 1
        stats["fast_lines"] += len(records)
        term = handler.terminator
        handler.write_batch(term.join(lines) + term)


try:
    import orjson

    def _dumps(obj: dict) -> str:
        return orjson.dumps(obj).decode()
except ImportError:  # orjson is a dependency; this only keeps a broken install logging
    import json as _json

    def _dumps(obj: dict) -> str:
        return _json.dumps(obj, separators=(",", ":"))


def _iso_second(now: float) -> tuple[str, str]:
    # RFC 3339 local time to the second and its UTC offset, e.g.
    # ("2026-11-29T20:08:13", "+01:00"); the milliseconds go between them.
    t = time.localtime(now)
    offset = t.tm_gmtoff or 0
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d}", f"{sign}{hours:02d}:{minutes:02d}")


_referer = _request_header("referer")
_user_agent = _request_header("user-agent")


class JsonAccessFormat(AccessFormat):
    """``--access-log-format json``: one JSON object per line.

    Schema (every key always present)::

        time          str    RFC 3339 local time of the batch write, ms precision
        client        str    "host:port" of the client (after --proxy-headers), "" if unknown
        method        str    "GET"
        path          str    the decoded path, without the query
        query         str    the raw query string, "" if none
        http_version  str    "1.1"
        status        int    200
        bytes         int    response body bytes the app sent
        duration_ms   float  request head read -> response end, 3 decimals
        user_agent    str|null
        referer       str|null
    """

    json = True

    def __init__(self) -> None:
        self.fmt = "json"
        self.timed = True
        self._now = -1.0
        self._now_text = ""
        self._second = self._offset = ""

    def _set_now(self, now: float) -> None:
        # PERF: localtime() and its formatting once per second, not per
        # batch: ~1.5 us less per batch (most batches hold one line).
        second = int(now)
        if second != self._now:
            self._now = second
            self._second, self._offset = _iso_second(now)
        self._now_text = f"{self._second}.{int((now - second) * 1000):03d}{self._offset}"

    def _line(self, rec: tuple) -> str:
        scope = rec[_SCOPE]
        # The scope's client, as %(h)s: what --proxy-headers made of the peer.
        client = scope.get("client")
        agent = _user_agent(rec)
        referer = _referer(rec)
        return _dumps({
            "time": self._now_text,
            "client": f"{client[0]}:{client[1]}" if client else "",
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode("latin-1"),
            "http_version": scope["http_version"],
            "status": rec[_STATUS],
            "bytes": rec[_SENT],
            "duration_ms": round((rec[_T1] - rec[_T0]) * 1e3, 3),
            "user_agent": None if agent == "-" else agent,
            "referer": None if referer == "-" else referer,
        })


def compile_format(fmt: str | None) -> AccessFormat | None:
    """The compiled ``--access-log-format``: None for the default format, else an ``AccessFormat``.

    ``json`` (any case) selects ``JsonAccessFormat``.  Raises ValueError for an
    unknown or malformed atom.
    """
    if not fmt:
        return None
    if fmt.strip().lower() == "json":
        return JsonAccessFormat()
    return AccessFormat(fmt)
