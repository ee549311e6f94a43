"""The ASGI lifespan protocol: tell the app when the server starts and stops.

One long-lived call ``app({"type": "lifespan", ...}, receive, send)`` receives
``lifespan.startup`` then ``lifespan.shutdown`` and answers each with
``.complete`` or ``.failed``.  ``scope["state"]`` is a dict the app fills at
startup; the protocol gives every request a shallow copy of it.

Modes (``--lifespan``):

- ``on``:   the app must support lifespan; any error is fatal at startup.
- ``auto``: an app that raises before answering is taken not to support
  lifespan (logged at info) and the server starts anyway; an explicit
  ``lifespan.startup.failed`` is still fatal.
- ``off``:  no lifespan call; ``state`` stays an empty dict.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger("fasterapi.error")

_STATE_ERROR = "Got an invalid state transition on the lifespan protocol."


def _summary(text: str) -> str:
    """The last non-empty line of `text`: for a traceback, the exception itself."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


class LifespanOn:
    """Runs the lifespan call of an app for ``--lifespan on`` and ``auto``.

    After ``await startup()``, ``should_exit`` is True if the server must not
    start (exit code 3) and ``error`` holds the one-line reason.
    """

    def __init__(self, config: Any):
        self.config = config
        self.mode = config.lifespan
        self.state: dict[str, Any] = {}
        self.startup_event = asyncio.Event()
        self.shutdown_event = asyncio.Event()
        self.receive_queue: asyncio.Queue[dict] = asyncio.Queue()
        self.error_occurred = False
        self.startup_failed = False
        self.shutdown_failed = False
        self.should_exit = False
        self.error = ""
        self._task: asyncio.Task | None = None
        self._shutdown_requested = False

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the app's answer (or its failure)."""
        logger.info("Waiting for application startup.")
        # Keep a reference: the loop only holds tasks weakly.
        self._task = asyncio.get_running_loop().create_task(self.main())
        await self.receive_queue.put({"type": "lifespan.startup"})
        await self.startup_event.wait()

        if self.startup_failed or (self.error_occurred and self.mode == "on"):
            logger.error("Application startup failed, exiting: %s", self.error or "no message")
            self.should_exit = True
        else:
            logger.info("Application startup complete.")

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer; a no-op if lifespan already ended."""
        if self.error_occurred:
            return
        logger.info("Waiting for application shutdown.")
        self._shutdown_requested = True
        await self.receive_queue.put({"type": "lifespan.shutdown"})
        await self.shutdown_event.wait()

        if self.shutdown_failed or self.error_occurred:
            logger.error("Application shutdown failed: %s", self.error or "no message")
            self.should_exit = True
        else:
            logger.info("Application shutdown complete.")

    async def main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.config.loaded_app(scope, self.receive, self.send)
        except asyncio.CancelledError:
            # The server is being torn down without a lifespan shutdown
            # (a forced exit): nothing to report.
            raise
        except BaseException as exc:
            self.error_occurred = True
            if self.startup_failed or self.shutdown_failed:
                # The app already reported the failure; frameworks re-raise
                # after sending `.failed`, which says nothing new.
                return
            self.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            logger.debug("The app raised on the lifespan scope:", exc_info=exc)
            if not self.startup_event.is_set():
                # startup() reports it (once) in "on" mode.
                if self.mode == "auto":
                    logger.info("ASGI 'lifespan' protocol appears unsupported.")
            elif not self._shutdown_requested:
                logger.error("Exception in 'lifespan' protocol: %s", self.error)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self.startup_event.set()
            self.shutdown_event.set()

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
            if self.startup_event.is_set() or self.shutdown_event.is_set():
                raise RuntimeError(_STATE_ERROR)
            if kind == "lifespan.startup.failed":
                self.startup_failed = True
                self._record_failure(message)
            self.startup_event.set()
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if not self.startup_event.is_set() or self.shutdown_event.is_set():
                raise RuntimeError(_STATE_ERROR)
            if kind == "lifespan.shutdown.failed":
                self.shutdown_failed = True
                self._record_failure(message)
            self.shutdown_event.set()
        else:
            raise RuntimeError(f"Unexpected ASGI lifespan message type {kind!r}.")

    def _record_failure(self, message: dict) -> None:
        text = str(message.get("message") or "")
        # Frameworks send a whole traceback as the message: report its last
        # line (the exception) and keep the rest for --log-level debug.
        self.error = _summary(text)
        if "\n" in text.strip():
            logger.debug("The app's failure message:\n%s", text)

    async def receive(self) -> dict:
        return await self.receive_queue.get()


class LifespanOff:
    """``--lifespan off``: nothing is sent to the app and the state stays empty."""

    def __init__(self, config: Any):
        self.config = config
        self.state: dict[str, Any] = {}
        self.should_exit = False
        self.error = ""

    async def startup(self) -> None:
        """Do nothing."""

    async def shutdown(self) -> None:
        """Do nothing."""


def lifespan_for(config: Any) -> LifespanOn | LifespanOff:
    """The lifespan runner for ``config.lifespan``."""
    return LifespanOff(config) if config.lifespan == "off" else LifespanOn(config)
