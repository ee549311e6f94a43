"""Log formatters, the default logging configuration and the uvicorn logger aliases.

Loggers (the names are the public interface):

- ``fasterapi``        parent of the two below; the default handler writes to stderr.
- ``fasterapi.error``  server lifecycle and errors ("Started server process ...").
- ``fasterapi.access`` one record per response, written to stdout.
- ``fasterapi.asgi``   ASGI message tracing at ``--log-level trace``.

The access-log contract: the protocol logs
``logger.info('%s - "%s %s HTTP/%s" %d', client_addr, method, full_path, http_version, status)``,
i.e. ``record.args`` is that 5-tuple.  It is the tuple uvicorn's own access
formatter expects, so existing formatters, filters and log shippers keep
working unchanged.  A custom ``--access-log-format`` (or ``json``) instead
logs each line preformatted, ``logger.info(line)`` with no args: a
``--log-config`` should then format the access logger with ``%(message)s``.

uvicorn aliases: projects moving from uvicorn have log configs that name the
``uvicorn``, ``uvicorn.error`` and ``uvicorn.access`` loggers, and app code that
logs through ``logging.getLogger("uvicorn.error")``.  Both keep working:

1. The default configuration gives the ``uvicorn.*`` loggers the same handlers
   as ours, so app code logging to them prints as it did under uvicorn.
2. In a user's ``--log-config``, a ``uvicorn.*`` logger that is configured while
   its ``fasterapi.*`` twin is not is copied onto the twin (handlers, level,
   propagation), and formatter/handler classes spelled ``uvicorn.logging.X`` are
   read as ``fasterapi.logging.X``, so such a config neither needs uvicorn
   installed nor silently stops applying to our access log.
"""

from __future__ import annotations

import http
import logging
import sys
from typing import Any, Literal

import click

TRACE_LOG_LEVEL = 5

# Our logger -> the uvicorn name that existing configs and apps use for it.
UVICORN_ALIASES: dict[str, str] = {
    "fasterapi": "uvicorn",
    "fasterapi.error": "uvicorn.error",
    "fasterapi.access": "uvicorn.access",
    "fasterapi.asgi": "uvicorn.asgi",
}

LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE_LOG_LEVEL,
}


def _logger_block() -> dict[str, Any]:
    block: dict[str, Any] = {}
    for prefix in ("fasterapi", "uvicorn"):
        block[prefix] = {"handlers": ["default"], "level": "INFO", "propagate": False}
        # Explicit propagate: reconfiguring must undo an earlier config's choice.
        block[f"{prefix}.error"] = {"level": "INFO", "propagate": True}
        block[f"{prefix}.access"] = {"handlers": ["access"], "level": "INFO", "propagate": False}
    return block


# The access format of LOGGING_CONFIG.  fasterapi.accesslog writes lines of
# exactly this shape itself when it is in effect (the fast path).
ACCESS_FORMAT = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'

LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {
            "()": "fasterapi.logging.DefaultFormatter",
            "fmt": "%(levelprefix)s %(message)s",
            "use_colors": None,
        },
        "access": {
            "()": "fasterapi.logging.AccessFormatter",
            "fmt": ACCESS_FORMAT,
            "use_colors": None,
        },
    },
    "handlers": {
        "default": {
            "formatter": "default",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "formatter": "access",
            "class": "fasterapi.logging.AccessHandler",
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": _logger_block(),
}


_LEVEL_COLOURS = {
    TRACE_LOG_LEVEL: "blue",
    logging.DEBUG: "cyan",
    logging.INFO: "green",
    logging.WARNING: "yellow",
    logging.ERROR: "red",
    logging.CRITICAL: "bright_red",
}

_STATUS_COLOURS = {1: "bright_white", 2: "green", 3: "yellow", 4: "red", 5: "bright_red"}


def status_text(status: int) -> str:
    """``"200 OK"`` for a status code; ``"299 "`` (code and a space) for one without a phrase."""
    text = _STATUS_TEXT.get(status)
    if text is None:
        text = f"{status} "
    return text


def coloured_status_text(status: int) -> str:
    """`status_text` coloured by class (2xx green, 4xx red, ...), as ``AccessFormatter`` shows it."""
    text = _COLOURED_STATUS.get(status)
    if text is None:
        text = status_text(status)
        colour = _STATUS_COLOURS.get(status // 100)
        if colour:
            text = click.style(text, fg=colour)
        if len(_COLOURED_STATUS) < 1024:  # bounded: apps may send any code 100-999
            _COLOURED_STATUS[status] = text
    return text


# PERF: a dict lookup instead of http.HTTPStatus(status).phrase per access
# line (~0.55 us for the enum call, ~0.05 us for the lookup).
_STATUS_TEXT: dict[int, str] = {int(s): f"{int(s)} {s.phrase}" for s in http.HTTPStatus}
_COLOURED_STATUS: dict[int, str] = {}


def level_prefix(levelno: int, levelname: str, use_colors: bool) -> str:
    """``%(levelprefix)s``: the level name and a colon, padded to 9 columns, coloured if asked."""
    padding = " " * max(0, 8 - len(levelname))
    if use_colors:
        colour = _LEVEL_COLOURS.get(levelno)
        if colour:
            levelname = click.style(levelname, fg=colour)
    return f"{levelname}:{padding}"


class _Values:
    # What a Formatter's style is given instead of the record: an object whose
    # __dict__ is the values dict we built, so "%", "{" and "$" styles (and
    # their KeyError -> ValueError reporting) work unchanged.
    pass


class ColourizedFormatter(logging.Formatter):
    """A formatter that adds ``%(levelprefix)s`` ("INFO:     ", padded to 9 columns).

    With colours on, the level name is coloured and a record's
    ``extra={"color_message": ...}`` replaces its plain message.  ``use_colors``
    None means "colour if the stream we write to is a terminal".  The record
    itself is never modified (other handlers of it must see it unchanged).
    """

    stream_name = "stdout"

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        use_colors: bool | None = None,
    ):
        if use_colors is None:
            stream = getattr(sys, self.stream_name, None)
            use_colors = bool(stream is not None and stream.isatty())
        self.use_colors = use_colors
        super().__init__(fmt=fmt, datefmt=datefmt, style=style)

    def formatMessage(self, record: logging.LogRecord) -> str:
        return self._format_with(record, None)

    def _format_with(self, record: logging.LogRecord, extra: dict[str, Any] | None) -> str:
        # PERF: one dict of the record's values plus ours, instead of a
        # copy.copy(record) in each formatter class (two per access line):
        # AccessFormatter.format() ~10.5 -> ~3.3 us (CPU time, best of 7).
        values = record.__dict__.copy()
        if extra:
            values.update(extra)
        values["levelprefix"] = level_prefix(record.levelno, record.levelname, self.use_colors)
        if self.use_colors and "color_message" in values:
            # LogRecord.getMessage() with the coloured message in place of msg.
            message = str(values["color_message"])
            if record.args:
                message = message % record.args
            values["message"] = message
        view = _Values()
        view.__dict__ = values
        return self._style.format(view)


class DefaultFormatter(ColourizedFormatter):
    """The lifecycle/error formatter; it writes to stderr, so it checks stderr for a terminal."""

    stream_name = "stderr"


class AccessFormatter(ColourizedFormatter):
    """Formats access records whose args are ``(client_addr, method, full_path, http_version, status)``.

    Adds ``%(client_addr)s``, ``%(request_line)s`` ("GET /path HTTP/1.1") and
    ``%(status_code)s`` ("200 OK") for the format string.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        try:
            client_addr, method, full_path, http_version, status = record.args  # type: ignore[misc]
        except (TypeError, ValueError):
            # Not an access record (someone else logged to the access logger):
            # degrade to the plain message instead of raising inside logging.
            return self._format_with(record, {"client_addr": "", "request_line": "", "status_code": ""})
        request_line = f"{method} {full_path} HTTP/{http_version}"
        if self.use_colors:
            request_line = click.style(request_line, bold=True)
            status_code = coloured_status_text(int(status))
        else:
            status_code = status_text(int(status))
        extra = {"client_addr": client_addr, "request_line": request_line, "status_code": status_code}
        return self._format_with(record, extra)


class AccessHandler(logging.StreamHandler):
    """The access log's handler in ``LOGGING_CONFIG``: a StreamHandler that can write many lines at once.

    Records it handles one by one are written exactly as by ``logging.StreamHandler``.
    While the access logger is configured the default way (this handler,
    alone, with ``AccessFormatter`` and ``ACCESS_FORMAT``),
    ``fasterapi.accesslog`` formats a whole batch of access lines itself and
    hands them to `write_batch`.
    """

    def write_batch(self, text: str) -> None:
        """Write `text` (complete lines, terminators included) with one write and one flush.

        Errors go to ``handleError`` as ``emit``'s would; nothing is raised.
        """
        try:
            with self.lock:  # type: ignore[union-attr]
                stream = self.stream
                stream.write(text)
                # StreamHandler.flush() inlined (it would take the lock again).
                # PERF: ~1.6 -> ~1.4 us per batch written to a file.
                flush = getattr(stream, "flush", None)
                if flush is not None:
                    flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(logging.makeLogRecord({"name": "fasterapi.access", "msg": text}))


def rewrite_uvicorn_classes(config: Any) -> Any:
    """Return `config` with every string ``uvicorn.logging.X`` replaced by ``fasterapi.logging.X``.

    Works on nested dicts and lists (a dictConfig) and returns other values unchanged.
    """
    if isinstance(config, dict):
        return {key: rewrite_uvicorn_classes(value) for key, value in config.items()}
    if isinstance(config, list):
        return [rewrite_uvicorn_classes(value) for value in config]
    if isinstance(config, str) and config.startswith("uvicorn.logging."):
        return "fasterapi.logging." + config[len("uvicorn.logging."):]
    return config


def mirror_uvicorn_loggers(configured: set[str]) -> None:
    """Copy each configured ``uvicorn.*`` logger onto its unconfigured ``fasterapi.*`` twin.

    `configured` holds the logger names the user's log config set up.  A twin
    that the config names itself is left alone: the explicit setting wins.
    """
    for ours, theirs in UVICORN_ALIASES.items():
        if theirs not in configured or ours in configured:
            continue
        source = logging.getLogger(theirs)
        target = logging.getLogger(ours)
        target.handlers = list(source.handlers)
        target.setLevel(source.level)
        target.propagate = source.propagate
        target.disabled = source.disabled
        for log_filter in source.filters:
            target.addFilter(log_filter)
