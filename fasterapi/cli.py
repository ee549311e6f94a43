"""The ``fasterapi`` command: ``fasterapi run APP [OPTIONS]``, uvicorn's options under a ``run`` verb.

Every option also reads an environment variable: ``FASTERAPI_<OPTION>`` (for
example ``FASTERAPI_PORT``, ``FASTERAPI_TIMEOUT_KEEP_ALIVE``), falling back to
uvicorn's ``UVICORN_<OPTION>`` so an existing deployment's environment keeps
working; a command-line flag beats both.  APP itself reads ``FASTERAPI_APP``
(then ``UVICORN_APP``).  ``FASTERAPI_HEADER`` holds one ``name:value`` per line,
because header values may contain spaces.

uvicorn options that fasterapi does not implement yet (``--http``) are not
accepted at all: a flag that is silently ignored is worse than a clear error.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

import click

import fasterapi
from fasterapi.config import (
    INTERFACES,
    LIFESPAN_MODES,
    LOOPS,
    STARTUP_FAILURE,
    WS_PROTOCOLS,
    parse_header,
)
from fasterapi.logging import LOG_LEVELS


def _envvars(name: str) -> list[str]:
    return [f"FASTERAPI_{name}", f"UVICORN_{name}"]


def option(*decls: str, **kwargs: Any) -> Any:
    """click.option that also reads FASTERAPI_<NAME> (then UVICORN_<NAME>) and shows it in --help."""
    longest = max(decls, key=len).split("/")[0].lstrip("-")
    kwargs.setdefault("envvar", _envvars(longest.upper().replace("-", "_")))
    kwargs.setdefault("show_envvar", True)
    return click.option(*decls, **kwargs)


class HeaderType(click.ParamType):
    """A ``name:value`` response header; from the environment, one per line."""

    name = "name:value"
    envvar_list_splitter = "\n"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_header(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)

    def split_envvar_value(self, rv: str) -> list[str]:
        return [line for line in (rv or "").splitlines() if line.strip()]


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(
        f"Running fasterapi {fasterapi.__version__} with {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()}"
    )
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version", is_flag=True, callback=_print_version, expose_value=False, is_eager=True,
    help="Show the fasterapi version and exit.",
)
def main() -> None:
    """fasterapi: a Cython-accelerated ASGI server with uvicorn's options.

    Start with `fasterapi run module:app`; `fasterapi run --help` lists every option.
    """


_SECONDS = click.FloatRange(min=0)
# Options of the process layout (supervisor, reloader), not of one server's Config.
_RELOAD_OPTIONS = ("reload_dirs", "reload_includes", "reload_excludes", "reload_delay")
_PROCESS_OPTIONS = ("workers", "timeout_worker_healthcheck", "workers_max_rss", "reload", *_RELOAD_OPTIONS)


@main.command("run")
@click.argument("app", envvar=_envvars("APP"))
@option("--host", default="127.0.0.1", show_default=True,
        help="Bind the socket to this host (IPv4 or IPv6 address, or a name).")
@option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
        help="Bind the socket to this port. 0 picks a free port.")
@option("--uds", default=None, help="Bind to this UNIX domain socket path instead of host/port.")
@option("--fd", type=click.IntRange(min=0), default=None,
        help="Serve on the already-listening socket with this file descriptor.")
@option("--backlog", type=click.IntRange(min=1), default=2048, show_default=True,
        help="Maximum number of connections waiting to be accepted.")
@option("--factory", is_flag=True, default=False,
        help="Treat APP as a factory: a callable with no arguments that returns the app.")
@option("--app-dir", default=".", show_default=True,
        help="Look for APP in this directory (it is put first on sys.path).")
@option("--env-file", type=click.Path(exists=True, dir_okay=False), default=None,
        help="Load KEY=VALUE lines from this file into the environment before loading APP.")
@option("--interface", type=click.Choice(INTERFACES), default="auto", show_default=True,
        help="The app's interface: ASGI3 or ASGI2 (auto: detect).")
@option("--lifespan", type=click.Choice(LIFESPAN_MODES), default="auto", show_default=True,
        help="Run the ASGI lifespan protocol (auto: if the app supports it).")
@option("--loop", type=click.Choice(LOOPS), default="auto", show_default=True,
        help="Event loop implementation (auto: uvloop if installed).")
@option("--log-level", type=click.Choice(list(LOG_LEVELS)), default=None,
        help="Log level. [default: info]")
@option("--log-config", type=click.Path(exists=True, dir_okay=False), default=None,
        help="Logging configuration file (.json, .yaml/.yml with PyYAML, or .ini). "
             "Configs written for the uvicorn.* loggers apply to fasterapi's too.")
@option("--access-log/--no-access-log", default=True, help="Enable or disable the access log.")
@option("--access-log-format", default=None,
        help="Access line format with gunicorn's atoms (%(h)s %(r)s %(s)s %(b)s %(D)s "
             "%({name}i)s ...), or json for one JSON object per line. [default: uvicorn's line]")
@option("--use-colors/--no-use-colors", default=None,
        help="Enable or disable coloured logs. [default: only on a terminal]")
@option("--root-path", default="",
        help="The ASGI root_path, for an app mounted below a URL prefix by a proxy.")
@option("--limit-concurrency", type=click.IntRange(min=1), default=None,
        help="Answer 503 beyond this many concurrent connections or tasks.")
@option("--limit-max-requests", type=click.IntRange(min=1), default=None,
        help="Shut down gracefully after serving this many requests.")
@option("--limit-max-requests-jitter", type=click.IntRange(min=0), default=0, show_default=True,
        help="Add a random 0..N to --limit-max-requests per process, so workers do not all restart at once.")
@option("--workers", type=click.IntRange(min=1), default=1,
        envvar=[*_envvars("WORKERS"), "WEB_CONCURRENCY"],
        help="Number of worker processes under a supervisor. [default: $WEB_CONCURRENCY or 1]")
@option("--timeout-worker-healthcheck", type=click.FloatRange(min=0, min_open=True), default=5.0,
        show_default=True, help="Kill and replace a worker whose event loop is silent this long (seconds).")
@option("--workers-max-rss", type=click.FloatRange(min=0, min_open=True), default=None,
        help="Replace a worker whose resident memory exceeds this many MiB (checked every second).")
@option("--reload", is_flag=True, default=False, help="Restart the server when watched files change.")
@option("--reload-dir", "reload_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
        help="Watch this directory for --reload (repeatable). [default: the current directory]")
@option("--reload-include", "reload_includes", multiple=True,
        help="Glob of files to watch for --reload (repeatable). [default: *.py]")
@option("--reload-exclude", "reload_excludes", multiple=True,
        help="Glob of files to ignore for --reload (repeatable). [default: .* .py[cod] .sw.* ~*]")
@option("--reload-delay", type=_SECONDS, default=0.25, show_default=True,
        help="Wait this long for more changes before restarting (seconds).")
@option("--timeout-keep-alive", type=_SECONDS, default=5, show_default=True,
        help="Close an idle keep-alive connection after this many seconds.")
@option("--timeout-graceful-shutdown", type=_SECONDS, default=None,
        help="On shutdown, wait at most this many seconds for in-flight requests. [default: no limit]")
@option("--timeout-request-header", type=_SECONDS, default=10, show_default=True,
        help="Close a connection whose request line and headers take longer than this (seconds).")
@option("--timeout-request-body", type=_SECONDS, default=30, show_default=True,
        help="Give up on a request body that takes longer than this to arrive (seconds).")
@option("--server-header/--no-server-header", default=True, help="Send the Server header.")
@option("--date-header/--no-date-header", default=True, help="Send the Date header.")
@option("--header", "headers", type=HeaderType(), multiple=True,
        help="Add a default response header, as name:value. Repeatable.")
@option("--max-request-line", type=click.IntRange(min=1), default=8190, show_default=True,
        help="Longest request line accepted, in bytes (longer: 414).")
@option("--max-header-bytes", type=click.IntRange(min=1), default=65536, show_default=True,
        help="Largest header section accepted, in bytes (larger: 431).")
@option("--max-headers", type=click.IntRange(min=1), default=100, show_default=True,
        help="Most header fields accepted in one request (more: 431).")
@option("--max-body-size", type=click.IntRange(min=0), default=0, show_default=True,
        help="Largest request body accepted, in bytes (larger: 413). 0 means no limit.")
@option("--queue-size", type=click.IntRange(min=1), default=1024, show_default=True,
        help="Capacity of the queue of parsed requests waiting for the app.")
@option("--ws", type=click.Choice(WS_PROTOCOLS), default="auto", show_default=True,
        help="WebSocket support; none serves upgrade requests as HTTP. uvicorn's names "
             "(websockets, wsproto, websockets-sansio) mean auto.")
@option("--ws-max-size", type=click.IntRange(min=1), default=16 * 1024 * 1024, show_default=True,
        help="Largest WebSocket message accepted, in bytes (larger: close 1009).")
@option("--ws-max-queue", type=click.IntRange(min=1), default=32, show_default=True,
        help="WebSocket messages held for a slow app before reading pauses.")
@option("--ws-ping-interval", type=_SECONDS, default=20.0, show_default=True,
        help="Send a WebSocket ping this often (seconds); 0 disables.")
@option("--ws-ping-timeout", type=_SECONDS, default=20.0, show_default=True,
        help="Close a WebSocket whose pong is this late (seconds); 0 disables.")
@option("--ws-per-message-deflate/--no-ws-per-message-deflate", default=True, show_default=True,
        help="Offer WebSocket permessage-deflate compression (RFC 7692).")
@option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False), default=None,
        help="TLS private key file (PEM).")
@option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False), default=None,
        help="TLS certificate chain file (PEM); turns TLS on.")
@option("--ssl-keyfile-password", default=None, help="Password of an encrypted --ssl-keyfile.")
@option("--ssl-version", type=int, default=None,
        help="Python ssl protocol constant, as in uvicorn. [default: PROTOCOL_TLS_SERVER]")
@option("--ssl-min-version", type=click.Choice(["TLSv1.2", "TLSv1.3"]), default="TLSv1.2",
        show_default=True, help="Oldest TLS version accepted.")
@option("--ssl-cert-reqs", type=click.IntRange(0, 2), default=0, show_default=True,
        help="Client certificates: 0 none, 1 optional, 2 required (verified with --ssl-ca-certs).")
@option("--ssl-ca-certs", type=click.Path(exists=True, dir_okay=False), default=None,
        help="CA bundle that client certificates are verified against.")
@option("--ssl-ciphers", default=None,
        help="OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's). [default: OpenSSL's; "
             "uvicorn's TLSv1 would limit TLS 1.2 to SHA-1 CBC suites]")
@option("--proxy-headers/--no-proxy-headers", default=True, show_default=True,
        help="Trust Forwarded / X-Forwarded-For / X-Forwarded-Proto from --forwarded-allow-ips "
             "for the client address and scheme.")
@option("--forwarded-allow-ips", default=None,
        envvar=[*_envvars("FORWARDED_ALLOW_IPS"), "FORWARDED_ALLOW_IPS"],
        help="Comma-separated proxies to trust: IPs, CIDR networks, unix: (Unix-socket peers), "
             "a socket path, or * (only behind a private network). [default: 127.0.0.1]")
@option("--metrics-port", type=click.IntRange(0, 65535), default=None,
        help="Serve Prometheus metrics on /metrics at this port (needs prometheus-client).")
@option("--metrics-host", default="127.0.0.1", show_default=True,
        help="Address of the --metrics-port listener.")
def run_command(app: str, app_dir: str, **options: Any) -> None:
    """Serve the ASGI app APP, given as "module:attribute" (e.g. main:app)."""
    from fasterapi.server import run

    if options["log_config"] is None:
        del options["log_config"]  # Config's default; None would mean "no logging setup"
    process = {name: options.pop(name) for name in _PROCESS_OPTIONS}
    # An explicit --workers (even 1) or a memory bound asks for supervision.
    source = click.get_current_context().get_parameter_source("workers")
    supervised = (process["workers"] > 1 or process["workers_max_rss"] is not None
                  or source is not click.core.ParameterSource.DEFAULT)
    try:
        if process["reload"]:
            from fasterapi.reload import run_reloader

            sys.exit(run_reloader(app, app_dir=app_dir, ignored_workers=supervised,
                                  **{k: process[k] for k in _RELOAD_OPTIONS}, **options))
        elif supervised:
            from fasterapi.supervisor import run_supervisor

            sys.exit(run_supervisor(app, app_dir=app_dir, workers=process["workers"],
                                    timeout_worker_healthcheck=process["timeout_worker_healthcheck"],
                                    workers_max_rss=process["workers_max_rss"], **options))
        run(app, app_dir=app_dir, **options)
    except (ValueError, ImportError, OSError) as exc:
        # Config or --log-config problems, found before logging works: one
        # line on stderr, and the startup-failure code.
        click.echo(f"Error: {exc}", err=True)
        sys.exit(STARTUP_FAILURE)
