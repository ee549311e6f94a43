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
"""

from __future__ import annotations

import logging

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

__all__ = ["ACCESS_MESSAGE", "default_handler", "emit", "stats"]

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
    handler = default_handler()
    if handler is not None:
        stats["fast_batches"] += 1
        stats["fast_lines"] += len(records)
        text = format_lines(records, handler.formatter.use_colors, handler.terminator)  # type: ignore[union-attr]
        handler.write_batch(text)
        return
    stats["slow_batches"] += 1
    stats["slow_lines"] += len(records)
    info = access_logger.info
    for record in records:
        info(ACCESS_MESSAGE, *record)
