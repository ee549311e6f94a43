"""Server configuration: every CLI option as a keyword, plus app loading and logging setup.

``Config(app, **options)`` stores the options and configures logging at once
(so even a failing app import is reported through the configured handlers);
``config.load()`` imports the app, applies ``--factory``, picks ASGI2 or ASGI3
and wraps the app; ``config.get_loop_factory()`` names the event loop to run on.

Startup failures follow uvicorn's contract: one error line on the
``fasterapi.error`` logger, then ``SystemExit(3)``.  The traceback of an
exception raised by the user's own code is logged at debug level, so the
default output stays one line and ``--log-level debug`` shows the rest.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import logging.config
import os
import random
import sys
from collections.abc import Callable, Iterable
from configparser import RawConfigParser
from typing import Any, Literal

from fasterapi.accesslog import compile_format
from fasterapi.importer import ImportFromStringError, import_from_string
from fasterapi.logging import (
    LOG_LEVELS,
    LOGGING_CONFIG,
    TRACE_LOG_LEVEL,
    UVICORN_ALIASES,
    mirror_uvicorn_loggers,
    rewrite_uvicorn_classes,
)
from fasterapi.middleware import ASGI2Middleware, MessageLoggerMiddleware
from fasterapi.proxy import ProxyTrust
from fasterapi.tls import PROTOCOL_TLS_SERVER, create_ssl_context, read_server_cert

STARTUP_FAILURE = 3

LifespanType = Literal["auto", "on", "off"]
InterfaceType = Literal["auto", "asgi3", "asgi2"]
LoopType = Literal["auto", "uvloop", "asyncio"]

LIFESPAN_MODES = ("auto", "on", "off")
INTERFACES = ("auto", "asgi3", "asgi2")
LOOPS = ("auto", "uvloop", "asyncio")
# --ws: one implementation (fasterapi.websocket); uvicorn's back-end names are
# accepted as aliases of "auto" so existing command lines keep working.
WS_PROTOCOLS = ("auto", "none", "websockets", "websockets-sansio", "wsproto")

# The one HTTP implementation; `Config(http=...)` may name another class (tests
# use a stand-in), which is constructed with the same keywords.
DEFAULT_HTTP = "fasterapi.protocol:HttpProtocol"

logger = logging.getLogger("fasterapi.error")

# RFC 9110 section 5.6.2: a field name is a token.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_header(header: str | tuple[str, str] | list[str]) -> tuple[str, str]:
    """Turn ``"Name: value"`` (or a ``(name, value)`` pair) into a checked ``(name, value)`` pair.

    Surrounding whitespace is dropped.  Raises ValueError for a missing colon,
    a name that is not an RFC 9110 token, or a value holding CR, LF or NUL
    (which would let a header inject more headers into every response).
    """
    if isinstance(header, str):
        name, sep, value = header.partition(":")
        if not sep:
            raise ValueError(f'header "{header}" must be in format "name:value"')
    else:
        name, value = header
    name, value = name.strip(), value.strip()
    if not name or not set(name) <= _TCHAR:
        raise ValueError(f'invalid header name "{name}"')
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f'header "{name}" has a CR, LF or NUL in its value')
    return name, value


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        inner = value[1:-1]
        if value[0] == '"':
            inner = inner.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        return inner
    # Unquoted: a " #" starts a comment, as in shells and python-dotenv.
    hash_at = value.find(" #")
    return value[:hash_at].rstrip() if hash_at >= 0 else value


def load_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read simple ``KEY=VALUE`` lines from `path` into ``os.environ`` and return them.

    Understands blank lines, ``#`` comments, an optional ``export`` prefix and
    single or double quotes (double quotes accept ``\\n``).  Variables already
    set in the environment win, as with python-dotenv's default, so a deploy
    can override the file.  No variable expansion and no multi-line values.
    Raises OSError if the file cannot be read and ValueError on a line without ``=``.
    """
    loaded: dict[str, str] = {}
    with open(path, encoding="utf-8") as file:
        for lineno, raw in enumerate(file, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[len("export "):].lstrip()
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError(f"{os.fspath(path)}:{lineno}: expected KEY=VALUE")
            loaded[key] = _unquote(value)
    for key, value in loaded.items():
        os.environ.setdefault(key, value)
    return loaded


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _is_asgi3(app: Any) -> bool:
    """uvicorn's rule: ASGI3 apps are coroutine functions (or have an async ``__call__``).

    A class is ASGI3 only if instances are awaitable; an ASGI2 class is
    instantiated with the scope and its instance then called.
    """
    if inspect.isclass(app):
        return hasattr(app, "__await__")
    if inspect.isfunction(app):
        return inspect.iscoroutinefunction(app)
    call = getattr(app, "__call__", None)  # noqa: B004 - we need the method itself
    return inspect.iscoroutinefunction(call)


class Config:
    """All server options; see ``fasterapi run --help`` for what each one does.

    Keyword names match the CLI options (``--timeout-keep-alive`` ->
    ``timeout_keep_alive``).  Raises ValueError for an unknown choice or an
    out-of-range value.  Logging is configured by the constructor.
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 8000,
        uds: str | None = None,
        fd: int | None = None,
        backlog: int = 2048,
        factory: bool = False,
        env_file: str | os.PathLike[str] | None = None,
        interface: InterfaceType = "auto",
        lifespan: LifespanType = "auto",
        loop: LoopType = "auto",
        http: type | str = DEFAULT_HTTP,
        log_config: dict[str, Any] | str | os.PathLike[str] | RawConfigParser | None = LOGGING_CONFIG,
        log_level: str | int | None = None,
        access_log: bool = True,
        access_log_format: str | None = None,
        use_colors: bool | None = None,
        root_path: str = "",
        limit_concurrency: int | None = None,
        limit_max_requests: int | None = None,
        limit_max_requests_jitter: int = 0,
        timeout_keep_alive: float = 5,
        timeout_graceful_shutdown: float | None = None,
        timeout_request_header: float = 10,
        timeout_request_body: float = 30,
        server_header: bool = True,
        date_header: bool = True,
        headers: Iterable[str | tuple[str, str]] | None = None,
        max_request_line: int = 8190,
        max_header_bytes: int = 65536,
        max_headers: int = 100,
        max_chunk_ext: int = 1024,
        max_body_size: int = 0,
        queue_size: int = 1024,
        write_high_water: int = 65536,
        read_buffer_limit: int = 1048576,
        ws: str = "auto",
        ws_max_size: int = 16 * 1024 * 1024,
        ws_max_queue: int = 32,
        ws_ping_interval: float | None = 20.0,
        ws_ping_timeout: float | None = 20.0,
        ws_per_message_deflate: bool = True,
        ssl_keyfile: str | os.PathLike[str] | None = None,
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile_password: str | None = None,
        ssl_version: int | None = None,
        ssl_min_version: str = "TLSv1.2",
        ssl_cert_reqs: int = 0,
        ssl_ca_certs: str | os.PathLike[str] | None = None,
        ssl_ciphers: str | None = None,
        proxy_headers: bool = True,
        forwarded_allow_ips: str | list[str] | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
    ):
        self.app = app
        self.host = host
        self.port = port
        self.uds = uds
        self.fd = fd
        self.backlog = backlog
        self.factory = factory
        self.interface = _choice("interface", interface, INTERFACES)
        self.lifespan = _choice("lifespan", lifespan, LIFESPAN_MODES)
        self.loop = _choice("loop", loop, LOOPS)
        self.http = http
        # As in uvicorn: a dict, a path (.json/.yaml/.ini) or a RawConfigParser
        # replaces our default; None leaves the program's logging untouched
        # (embedders pass it to keep their own setup).
        self.log_config = log_config
        self.log_level = log_level
        self.access_log = access_log
        # Compiled once here, so an unknown atom is a startup error (exit 3);
        # None keeps the default format and its fast path (fasterapi.accesslog).
        self.access_log_format = access_log_format
        self.access_format = compile_format(access_log_format)
        self.use_colors = use_colors
        self.root_path = root_path
        self.limit_concurrency = _positive_or_none("limit_concurrency", limit_concurrency)
        self.limit_max_requests = _positive_or_none("limit_max_requests", limit_max_requests)
        self.limit_max_requests_jitter = _non_negative("limit_max_requests_jitter", limit_max_requests_jitter)
        if self.limit_max_requests is not None and self.limit_max_requests_jitter:
            # Drawn once per process, so workers started together (each builds
            # its own Config) do not all recycle at the same moment.
            self.limit_max_requests += random.randint(0, self.limit_max_requests_jitter)
        self.timeout_keep_alive = _non_negative("timeout_keep_alive", timeout_keep_alive)
        self.timeout_graceful_shutdown = (
            None if timeout_graceful_shutdown is None
            else _non_negative("timeout_graceful_shutdown", timeout_graceful_shutdown)
        )
        self.timeout_request_header = _non_negative("timeout_request_header", timeout_request_header)
        self.timeout_request_body = _non_negative("timeout_request_body", timeout_request_body)
        self.server_header = server_header
        self.date_header = date_header
        self.headers: list[tuple[str, str]] = [parse_header(h) for h in headers or ()]
        # Only the user's --header values: the protocol adds Server and Date itself.
        self.encoded_headers: list[tuple[bytes, bytes]] = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers
        ]
        # A --header "server: x" or "date: x" replaces ours instead of doubling it.
        names = {name for name, _ in self.encoded_headers}
        if b"server" in names:
            self.server_header = False
        if b"date" in names:
            self.date_header = False
        self.max_request_line = _positive("max_request_line", max_request_line)
        self.max_header_bytes = _positive("max_header_bytes", max_header_bytes)
        self.max_headers = _positive("max_headers", max_headers)
        self.max_chunk_ext = _non_negative("max_chunk_ext", max_chunk_ext)
        self.max_body_size = _non_negative("max_body_size", max_body_size)
        self.queue_size = _positive("queue_size", queue_size)
        self.write_high_water = _positive("write_high_water", write_high_water)
        self.read_buffer_limit = _positive("read_buffer_limit", read_buffer_limit)
        self.ws = _choice("ws", ws, WS_PROTOCOLS)
        self.ws_max_size = _positive("ws_max_size", ws_max_size)
        self.ws_max_queue = _positive("ws_max_queue", ws_max_queue)
        # None or 0 turns keepalive pings (or their timeout) off, as in uvicorn.
        self.ws_ping_interval = _non_negative("ws_ping_interval", ws_ping_interval or 0) or None
        self.ws_ping_timeout = _non_negative("ws_ping_timeout", ws_ping_timeout or 0) or None
        self.ws_per_message_deflate = ws_per_message_deflate
        self.ws_protocol_class: Any = None
        # TLS: build the context now, so a bad certificate, key or password is
        # a startup error (exit 3), not a failed handshake later.
        self.ssl_keyfile, self.ssl_certfile = ssl_keyfile, ssl_certfile
        self.ssl: Any = None
        self.ssl_server_cert: str | None = None
        if ssl_certfile:
            self.ssl = create_ssl_context(
                ssl_certfile, ssl_keyfile, ssl_keyfile_password,
                ssl_version=ssl_version or PROTOCOL_TLS_SERVER, cert_reqs=ssl_cert_reqs,
                ca_certs=ssl_ca_certs, ciphers=ssl_ciphers, min_version=ssl_min_version,
            )
            self.ssl_server_cert = read_server_cert(ssl_certfile)
        elif ssl_keyfile:
            raise ValueError("--ssl-keyfile needs --ssl-certfile")
        # Proxy headers: as uvicorn, FORWARDED_ALLOW_IPS is read when the
        # option is not given; the trust list is compiled once (fasterapi.proxy).
        self.proxy_headers = proxy_headers
        if forwarded_allow_ips is None:
            forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
        self.forwarded_allow_ips = forwarded_allow_ips
        self.proxy_trust = ProxyTrust(forwarded_allow_ips) if proxy_headers else None
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host

        self.loaded = False
        self.loaded_app: Any = None
        self.http_protocol_class: Any = None
        self.configure_logging()

        if env_file is not None:
            logger.info("Loading environment from '%s'", os.fspath(env_file))
            try:
                load_env_file(env_file)
            except (OSError, ValueError) as exc:
                logger.error("Could not load environment file: %s", exc)
                sys.exit(STARTUP_FAILURE)

    @property
    def asgi_version(self) -> Literal["2.0", "3.0"]:
        """The ``scope["asgi"]["version"]`` to announce (known after ``load()``)."""
        return "2.0" if self.interface == "asgi2" else "3.0"

    def configure_logging(self) -> None:
        """Apply the log config, then --log-level, --no-access-log and the uvicorn aliases.

        Raises ImportError for a YAML config when PyYAML is missing, and
        whatever ``logging.config`` raises for a broken config.
        """
        logging.addLevelName(TRACE_LOG_LEVEL, "TRACE")
        log_config = self.log_config
        if isinstance(log_config, os.PathLike):
            log_config = os.fspath(log_config)

        if log_config is None:
            pass
        elif isinstance(log_config, dict):
            self._apply_dict_config(log_config)
        elif isinstance(log_config, str) and log_config.endswith(".json"):
            with open(log_config) as file:
                self._apply_dict_config(json.load(file))
        elif isinstance(log_config, str) and log_config.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError as exc:
                raise ImportError(
                    "Install PyYAML to use a YAML --log-config (pip install PyYAML)."
                ) from exc
            with open(log_config) as file:
                self._apply_dict_config(yaml.safe_load(file))
        else:
            self._apply_file_config(log_config)

        if self.log_level is not None:
            level = (
                LOG_LEVELS[self.log_level.lower()]
                if isinstance(self.log_level, str) else self.log_level
            )
            for ours, theirs in UVICORN_ALIASES.items():
                if ours != "fasterapi":
                    logging.getLogger(ours).setLevel(level)
                    logging.getLogger(theirs).setLevel(level)
        if self.access_log is False:
            for name in ("fasterapi.access", "uvicorn.access"):
                access = logging.getLogger(name)
                access.handlers = []
                access.propagate = False

    def _apply_dict_config(self, log_config: dict[str, Any]) -> None:
        # rewrite_uvicorn_classes() copies, so LOGGING_CONFIG and the
        # caller's dict are never modified by the colour setting below.
        log_config = rewrite_uvicorn_classes(log_config)
        if self.use_colors is not None:
            for formatter in log_config.get("formatters", {}).values():
                if str(formatter.get("()", "")).startswith("fasterapi.logging."):
                    formatter["use_colors"] = self.use_colors
        logging.config.dictConfig(log_config)
        mirror_uvicorn_loggers(set(log_config.get("loggers", {})))

    def _apply_file_config(self, log_config: str | RawConfigParser | Any) -> None:
        if isinstance(log_config, RawConfigParser):
            parser = log_config
        else:
            parser = RawConfigParser(defaults=None)
            if isinstance(log_config, str):
                with open(log_config) as file:
                    parser.read_file(file)
            else:
                parser.read_file(log_config)
        for section in parser.sections():
            for key, value in parser.items(section, raw=True):
                if value.startswith("uvicorn.logging."):
                    parser.set(section, key, rewrite_uvicorn_classes(value))
        configured = set()
        for section in parser.sections():
            if section.startswith("logger_"):
                configured.add(parser.get(section, "qualname", fallback=section[len("logger_"):]))
        logging.config.fileConfig(parser, disable_existing_loggers=False)
        mirror_uvicorn_loggers(configured)

    def load(self) -> None:
        """Import the app and wrap it into ``self.loaded_app``; exits with code 3 on failure."""
        if self.loaded:
            return

        # The user's app first: its errors are the ones users can fix.
        app = self._import_app()
        app = self._apply_factory(app)

        try:
            self.http_protocol_class = import_from_string(self.http)
        except (ImportFromStringError, ImportError) as exc:
            logger.error("Error loading the HTTP protocol %s: %s", self.http, exc)
            sys.exit(STARTUP_FAILURE)
        self.ws_protocol_class = self._load_ws()

        if self.interface == "auto":
            self.interface = "asgi3" if _is_asgi3(app) else "asgi2"
        if self.interface == "asgi2":
            app = ASGI2Middleware(app)
        if logger.getEffectiveLevel() <= TRACE_LOG_LEVEL:
            app = MessageLoggerMiddleware(app)

        self.loaded_app = app
        self.loaded = True

    def _load_ws(self) -> Any:
        """The WebSocket upgrade hook for HttpCore, or None (requests stay HTTP)."""
        if self.ws == "none":
            return None
        if self.ws != "auto":
            logger.info("--ws %s: fasterapi has one WebSocket implementation; using it.", self.ws)
        try:
            from fasterapi.websocket import upgrade
        except ImportError as exc:  # the compiled frame layer is missing
            logger.warning("WebSocket support unavailable (%s): upgrades are served as HTTP.", exc)
            return None
        return upgrade

    def _import_app(self) -> Any:
        try:
            return import_from_string(self.app)
        except ImportFromStringError as exc:
            logger.error("Error loading ASGI app. %s", exc)
        except Exception as exc:
            # The module was found but its own code failed while importing.
            logger.error(
                'Error loading ASGI app. Importing "%s" raised %s',
                str(self.app).partition(":")[0], _first_line(exc),
            )
            logger.debug("Traceback of the failed import:", exc_info=exc)
        sys.exit(STARTUP_FAILURE)

    def _apply_factory(self, app: Any) -> Any:
        """With --factory, call `app()`; without it, do so only if that works (as uvicorn does)."""
        if not self.factory:
            # An app called with no arguments raises TypeError; a factory
            # returns the app.  Only call plain functions: calling a class or
            # an app object could have side effects on import-time instances.
            if not inspect.isfunction(app) or inspect.iscoroutinefunction(app):
                return app
            try:
                signature = inspect.signature(app)
                signature.bind()
            except (TypeError, ValueError):
                return app
            logger.warning(
                "ASGI app factory detected. Using it, but please consider "
                "setting the --factory flag explicitly."
            )
        if not callable(app):
            logger.error("Error loading ASGI app factory: %r is not callable.", app)
            sys.exit(STARTUP_FAILURE)
        try:
            return app()
        except Exception as exc:
            logger.error("Error loading ASGI app factory: %s", _first_line(exc))
            logger.debug("Traceback of the failed factory:", exc_info=exc)
            sys.exit(STARTUP_FAILURE)

    def get_loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop]:
        """The callable that creates the event loop for ``--loop`` (auto: uvloop when installed).

        Exits with code 3 if ``--loop uvloop`` is asked for and not installed.
        """
        if self.loop in ("auto", "uvloop"):
            try:
                import uvloop
            except ImportError:
                if self.loop == "uvloop":
                    logger.error("--loop uvloop was requested but uvloop is not installed.")
                    sys.exit(STARTUP_FAILURE)
            else:
                return uvloop.new_event_loop
        return asyncio.new_event_loop

    def setup_event_loop(self) -> asyncio.AbstractEventLoop:
        """Create the loop ``--loop`` asks for, make it the current loop and return it.

        For code that drives the loop itself; ``Server.run()`` uses
        ``get_loop_factory()`` and needs no global loop.
        """
        loop = self.get_loop_factory()()
        asyncio.set_event_loop(loop)
        return loop


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _non_negative(name: str, value: Any) -> Any:
    if value < 0:
        raise ValueError(f"{name} must be >= 0; got {value!r}")
    return value


def _positive(name: str, value: Any) -> Any:
    if value <= 0:
        raise ValueError(f"{name} must be > 0; got {value!r}")
    return value


def _positive_or_none(name: str, value: Any) -> Any:
    return None if value is None else _positive(name, value)
