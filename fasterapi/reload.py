"""``--reload``: restart the server process whenever a watched file changes (development only).

The reloader process binds the listening socket(s) once and runs the server in
a spawned child (``fasterapi.supervisor.worker_main``, the same entry point as
a ``--workers`` worker).  On a change it stops the child gracefully and starts
a fresh one, which imports the app anew; the socket stays open throughout, so
a request sent during the restart waits in the backlog instead of being
refused.  Watching is done by watchfiles (Rust ``notify``: inotify on Linux).

A child that fails to start (a syntax error just saved) is not fatal here, as
it is under the supervisor: the reloader logs it and waits for the next change.
"""

from __future__ import annotations

import fnmatch
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from fasterapi.config import STARTUP_FAILURE, Config
from fasterapi.supervisor import WorkerTarget, bind_and_announce, worker_main

logger = logging.getLogger("fasterapi.error")

# uvicorn's defaults, so a project's reload behaviour does not change.
DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")
# Directories never worth watching; changes there are tool noise.
_IGNORED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache",
                           ".ruff_cache", ".tox", ".venv", "node_modules", "site-packages"})
# How long one watchfiles wait may block before we look at the child again (ms).
_POLL_MS = 500


class FileFilter:
    """watchfiles filter: which changed files restart the server.

    Directories between a watched root and the file are skipped if they match
    an exclude glob (so ``.*`` keeps ``.git/`` and ``.venv/`` out).  For the
    file name, the user's globs come first: a ``--reload-exclude`` match is
    ignored, a ``--reload-include`` match is watched even if a default exclude
    matches it (``--reload-include .env``); otherwise the defaults decide.
    """

    def __init__(self, roots: Sequence[str], includes: Sequence[str] = (),
                 excludes: Sequence[str] = ()) -> None:
        # Longest first, so a file is judged relative to the innermost root.
        self.roots = sorted((Path(r).resolve() for r in roots), key=lambda p: len(p.parts), reverse=True)
        self.includes = list(includes)
        self.excludes = list(excludes)
        self.dir_excludes = [p for p in (*DEFAULT_EXCLUDES, *excludes) if p not in includes]

    def __call__(self, change: Any, path: str) -> bool:
        """True if a change to `path` should restart the server."""
        full = Path(path)
        parts = full.parts
        for root in self.roots:
            if full.is_relative_to(root):
                parts = full.relative_to(root).parts
                break
        if not parts:
            return False
        for part in parts[:-1]:
            if part in _IGNORED_DIRS or _matches(part, self.dir_excludes):
                return False
        name = parts[-1]
        if _matches(name, self.excludes):
            return False
        if _matches(name, self.includes):
            return True
        return _matches(name, DEFAULT_INCLUDES) and not _matches(name, DEFAULT_EXCLUDES)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


class Reloader:
    """Run the server in a child process and restart it when watched files change."""

    def __init__(self, target: WorkerTarget, sockets: list[Any], dirs: Sequence[str],
                 file_filter: FileFilter, delay: float) -> None:
        self.target = target
        self.sockets = sockets
        self.dirs = [str(Path(d).resolve()) for d in dirs]
        self.filter = file_filter
        self.delay = delay
        self.should_exit = threading.Event()
        self._ctx = multiprocessing.get_context("spawn")
        self.process: Any = None

    def _on_signal(self, sig: int, frame: Any) -> None:
        self.should_exit.set()

    def run(self) -> int:
        """Serve and reload until SIGINT/SIGTERM; return the exit code (0)."""
        import watchfiles

        logger.info("Will watch for changes in these directories: %s", sorted(self.dirs))
        pid = os.getpid()
        logger.info(
            "Started reloader process [%d] using WatchFiles", pid,
            extra={"color_message": "Started reloader process [" + click.style("%d", fg="cyan")
                   + "] using " + click.style("WatchFiles", fg="cyan", bold=True)},
        )
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._start()
            watcher = watchfiles.watch(
                *self.dirs, watch_filter=self.filter, step=max(1, int(self.delay * 1000)),
                stop_event=self.should_exit, rust_timeout=_POLL_MS, yield_on_timeout=True,
                raise_interrupt=False,
            )
            for changes in watcher:
                if self.should_exit.is_set():
                    break
                if not changes:
                    continue  # a timeout tick
                names = sorted({os.path.relpath(path) for _, path in changes})
                logger.warning("WatchFiles detected changes in %s. Reloading...",
                               ", ".join(repr(n) for n in names))
                self._stop()
                self._start()
        finally:
            self._stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        logger.info(
            "Stopping reloader process [%d]", pid,
            extra={"color_message": "Stopping reloader process [" + click.style("%d", fg="cyan") + "]"},
        )
        return 0

    def _start(self) -> None:
        self.process = self._ctx.Process(
            target=worker_main, args=(self.target, self.sockets, None), name="fasterapi-server",
        )
        self.process.start()

    def _stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.is_alive():
            process.terminate()
        process.join()


def run_reloader(app: str, *, app_dir: str | None = None, reload_dirs: Sequence[str] = (),
                 reload_includes: Sequence[str] = (), reload_excludes: Sequence[str] = (),
                 reload_delay: float = 0.25, ignored_workers: bool = False, **options: Any) -> int:
    """Serve the import string `app` in a child process restarted on file changes; return the exit code.

    `options` are Config's keywords.  `ignored_workers` only logs that
    ``--workers`` has no effect with ``--reload`` (as in uvicorn).  Exits with
    code 3 if watchfiles is missing or the socket cannot be bound.
    """
    if not isinstance(app, str):
        raise ValueError("--reload needs the app as an import string (\"module:attr\")")
    config = Config(app, **options)
    if ignored_workers:
        logger.warning('"workers" flag is ignored when reloading is enabled.')
    try:
        import watchfiles  # noqa: F401 - checked here to fail before binding
    except ImportError:
        logger.error("--reload needs watchfiles: pip install watchfiles")
        sys.exit(STARTUP_FAILURE)
    sockets, owner = bind_and_announce(config)
    target = WorkerTarget(app=app, app_dir=app_dir, options=options)
    dirs = list(reload_dirs) or [os.getcwd()]
    try:
        return Reloader(target, sockets, dirs, FileFilter(dirs, reload_includes, reload_excludes),
                        reload_delay).run()
    finally:
        for sock in sockets:
            sock.close()
        if owner is not None:
            owner._remove_uds()
