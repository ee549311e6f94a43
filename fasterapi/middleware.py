"""ASGI wrappers the config puts around the user's app.

- ASGI2Middleware: serves a legacy ASGI2 app ("double callable") as ASGI3.
- MessageLoggerMiddleware: at ``--log-level trace``, logs every ASGI message
  in and out of the app on the ``fasterapi.asgi`` logger.
"""

from __future__ import annotations

import logging
from typing import Any

from fasterapi.logging import TRACE_LOG_LEVEL


class ASGI2Middleware:
    """Adapt an ASGI2 app, ``app(scope) -> instance; await instance(receive, send)``, to ASGI3."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        instance = self.app(scope)
        await instance(receive, send)


# Bodies are truncated in trace logs: the point is to see the message flow,
# not to dump uploads into the log.
_MAX_BODY_LOG = 64


def _summarise(message: dict) -> dict:
    summary = dict(message)
    for key in ("body", "bytes", "text"):
        value = summary.get(key)
        if isinstance(value, (bytes, bytearray, str)) and len(value) > _MAX_BODY_LOG:
            summary[key] = f"<{len(value)} {'chars' if isinstance(value, str) else 'bytes'}>"
    return summary


class MessageLoggerMiddleware:
    """Log each connection's scope and every message it sends and receives, at TRACE level."""

    def __init__(self, app: Any):
        self.app = app
        self.logger = logging.getLogger("fasterapi.asgi")
        self.task_counter = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        self.task_counter += 1
        task_id = self.task_counter
        client = scope.get("client")
        prefix = f"{client[0]}:{client[1]} - ASGI [{task_id}]" if client else f"ASGI [{task_id}]"
        log = self.logger.log

        async def inner_receive() -> dict:
            message = await receive()
            log(TRACE_LOG_LEVEL, "%s Receive %s", prefix, _summarise(message))
            return message

        async def inner_send(message: dict) -> None:
            log(TRACE_LOG_LEVEL, "%s Send %s", prefix, _summarise(message))
            await send(message)

        log(TRACE_LOG_LEVEL, "%s Started scope=%s", prefix, _summarise(scope))
        try:
            await self.app(scope, inner_receive, inner_send)
        except BaseException:
            log(TRACE_LOG_LEVEL, "%s Raised exception", prefix)
            raise
        log(TRACE_LOG_LEVEL, "%s Completed", prefix)
