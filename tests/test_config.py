"""Config in-process: defaults the protocol relies on, app loading, headers, env files, logging."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import pytest

from fasterapi.config import Config, load_env_file, parse_header
from fasterapi.importer import ImportFromStringError, import_from_string
from fasterapi.middleware import ASGI2Middleware

APPS = Path(__file__).resolve().parent / "apps"


@pytest.fixture(autouse=True)
def apps_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(APPS))


class StandIn:
    """Never constructed here; load() only needs something importable."""


async def asgi3_app(scope, receive, send):
    pass


def test_protocol_facing_defaults():
    config = Config(asgi3_app)
    expected = {
        "root_path": "", "access_log": True, "server_header": True, "date_header": True,
        "encoded_headers": [], "limit_concurrency": None, "timeout_keep_alive": 5,
        "timeout_request_header": 10, "timeout_request_body": 30, "max_request_line": 8190,
        "max_header_bytes": 65536, "max_headers": 100, "max_chunk_ext": 1024,
        "max_body_size": 0, "queue_size": 1024, "write_high_water": 65536,
        "read_buffer_limit": 1048576, "host": "127.0.0.1", "port": 8000, "backlog": 2048,
        "lifespan": "auto", "interface": "auto", "loop": "auto", "limit_max_requests": None,
        "timeout_graceful_shutdown": None,
    }
    assert {name: getattr(config, name) for name in expected} == expected


def test_headers_are_checked_and_encoded():
    config = Config(asgi3_app, headers=["X-Frame-Options: DENY", ("x-two", " a b ")])
    assert config.encoded_headers == [(b"x-frame-options", b"DENY"), (b"x-two", b"a b")]
    assert config.server_header and config.date_header


def test_user_server_and_date_headers_replace_ours():
    config = Config(asgi3_app, headers=["Server: mine", "date: never"])
    assert config.server_header is False
    assert config.date_header is False


@pytest.mark.parametrize("bad", ["no-colon", "bad name: x", ": empty", "x: a\r\nInjected: 1"])
def test_bad_headers_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_header(bad)


@pytest.mark.parametrize(
    "kwargs",
    [{"lifespan": "maybe"}, {"interface": "wsgi"}, {"loop": "trio"}, {"timeout_keep_alive": -1},
     {"max_headers": 0}, {"limit_concurrency": 0}],
)
def test_invalid_options_raise(kwargs):
    with pytest.raises(ValueError):
        Config(asgi3_app, **kwargs)


def test_load_asgi3_function_is_used_unwrapped():
    config = Config(asgi3_app, http=StandIn)
    config.load()
    assert config.loaded_app is asgi3_app
    assert config.interface == "asgi3" and config.asgi_version == "3.0"
    assert config.http_protocol_class is StandIn


def test_load_detects_and_wraps_asgi2_class():
    config = Config("lifecycle_apps:ASGI2App", http=StandIn)
    config.load()
    assert isinstance(config.loaded_app, ASGI2Middleware)
    assert config.interface == "asgi2" and config.asgi_version == "2.0"


def test_asgi2_adapter_serves_a_request():
    config = Config("lifecycle_apps:ASGI2App", http=StandIn)
    config.load()
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    asyncio.run(config.loaded_app({"type": "http", "path": "/x"}, receive, send))
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == {"interface": "asgi2", "path": "/x"}


def test_load_object_with_async_call_is_asgi3():
    class App:
        async def __call__(self, scope, receive, send):
            pass

    instance = App()
    config = Config(instance, http=StandIn)
    config.load()
    assert config.loaded_app is instance


def test_factory_flag_calls_the_factory():
    config = Config("lifecycle_apps:create_app", factory=True, http=StandIn)
    config.load()
    import lifecycle_apps

    assert config.loaded_app is lifecycle_apps.app


def test_factory_without_flag_is_detected(capsys):
    config = Config("lifecycle_apps:create_app", http=StandIn)
    config.load()
    import lifecycle_apps

    assert config.loaded_app is lifecycle_apps.app
    assert "factory detected" in capsys.readouterr().err


def test_dotted_attribute_path():
    config = Config("lifecycle_apps:Nested.app", http=StandIn)
    config.load()
    import lifecycle_apps

    assert config.loaded_app is lifecycle_apps.app


@pytest.mark.parametrize(
    ("app", "kwargs", "message"),
    [
        ("no_colon", {}, 'must be in format "<module>:<attribute>"'),
        ("no_such_module_xyz:app", {}, 'Could not import module "no_such_module_xyz"'),
        ("lifecycle_apps:nope", {}, 'Attribute "nope" not found in module "lifecycle_apps"'),
        ("broken_import:app", {}, 'Importing "broken_import" raised ModuleNotFoundError'),
        ("lifecycle_apps:bad_factory", {"factory": True}, "Error loading ASGI app factory"),
    ],
)
def test_load_failures_exit_3_with_one_line(capsys, app, kwargs, message):
    config = Config(app, http=StandIn, **kwargs)
    with pytest.raises(SystemExit) as info:
        config.load()
    assert info.value.code == 3
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, err
    assert message in errors[0]
    assert "Traceback" not in err


def test_missing_protocol_exits_3(capsys):
    config = Config(asgi3_app, http="no_such_protocol_mod:Proto")
    with pytest.raises(SystemExit) as info:
        config.load()
    assert info.value.code == 3


def test_importer_keeps_errors_from_inside_the_module():
    with pytest.raises(ModuleNotFoundError) as info:
        import_from_string("broken_import:app")
    assert info.value.name == "this_dependency_does_not_exist_xyz"
    with pytest.raises(ImportFromStringError):
        import_from_string("lifecycle_apps.missing_submodule:app")
    assert import_from_string(asgi3_app) is asgi3_app


def test_env_file(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text(
        "# a comment\n\n"
        "FA_T_PLAIN=value # trailing comment\n"
        "export FA_T_EXPORTED=yes\n"
        "FA_T_DOUBLE=\"two words\\nline\"\n"
        "FA_T_SINGLE='a # not a comment'\n"
        "FA_T_PRESET=from-file\n"
    )
    monkeypatch.setenv("FA_T_PRESET", "from-env")
    for name in ("FA_T_PLAIN", "FA_T_EXPORTED", "FA_T_DOUBLE", "FA_T_SINGLE"):
        monkeypatch.delenv(name, raising=False)
    load_env_file(env)
    import os

    assert os.environ["FA_T_PLAIN"] == "value"
    assert os.environ["FA_T_EXPORTED"] == "yes"
    assert os.environ["FA_T_DOUBLE"] == "two words\nline"
    assert os.environ["FA_T_SINGLE"] == "a # not a comment"
    assert os.environ["FA_T_PRESET"] == "from-env"  # the environment wins
    for name in ("FA_T_PLAIN", "FA_T_EXPORTED", "FA_T_DOUBLE", "FA_T_SINGLE"):
        monkeypatch.delenv(name, raising=False)


def test_env_file_bad_line(tmp_path):
    env = tmp_path / ".env"
    env.write_text("JUST_A_NAME\n")
    with pytest.raises(ValueError, match=":1:"):
        load_env_file(env)


def test_loop_factory():
    uvloop = pytest.importorskip("uvloop")
    assert Config(asgi3_app, loop="auto").get_loop_factory() is uvloop.new_event_loop
    assert Config(asgi3_app, loop="uvloop").get_loop_factory() is uvloop.new_event_loop
    assert Config(asgi3_app, loop="asyncio").get_loop_factory() is asyncio.new_event_loop


def test_setup_event_loop_installs_the_loop():
    loop = Config(asgi3_app, loop="asyncio").setup_event_loop()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert asyncio.get_event_loop() is loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


# -- logging -----------------------------------------------------------------

def test_default_logging_configures_ours_and_the_uvicorn_aliases():
    Config(asgi3_app)
    for name in ("fasterapi", "uvicorn"):
        assert logging.getLogger(name).handlers
        assert logging.getLogger(f"{name}.access").handlers
    assert logging.getLogger("fasterapi.error").getEffectiveLevel() == logging.INFO


def test_log_config_none_leaves_logging_alone():
    Config(asgi3_app)
    sentinel = logging.NullHandler()
    logging.getLogger("fasterapi.error").addHandler(sentinel)
    Config(asgi3_app, log_config=None)
    assert sentinel in logging.getLogger("fasterapi.error").handlers
    Config(asgi3_app)
    assert sentinel not in logging.getLogger("fasterapi.error").handlers


def test_default_config_is_not_mutated_by_use_colors():
    from fasterapi.logging import LOGGING_CONFIG

    Config(asgi3_app, use_colors=True)
    assert LOGGING_CONFIG["formatters"]["default"]["use_colors"] is None
    Config(asgi3_app)


def test_log_level_and_no_access_log():
    Config(asgi3_app, log_level="trace", access_log=False)
    assert logging.getLogger("fasterapi.error").level == 5
    assert logging.getLevelName(5) == "TRACE"
    assert logging.getLogger("fasterapi.access").handlers == []
    assert logging.getLogger("uvicorn.access").handlers == []
    Config(asgi3_app)  # back to the default for the other tests


def test_uvicorn_named_dict_config_reaches_our_loggers(tmp_path):
    log_file = tmp_path / "access.log"
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"access": {"()": "uvicorn.logging.AccessFormatter",
                                  "fmt": "UVFMT %(request_line)s %(status_code)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file),
                              "formatter": "access"}},
        "loggers": {"uvicorn.access": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    }
    Config(asgi3_app, log_config=config)
    access = logging.getLogger("fasterapi.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/x", "1.1", 404)
    for handler in access.handlers:
        handler.flush()
    assert log_file.read_text().strip() == "UVFMT GET /x HTTP/1.1 404 Not Found"
    Config(asgi3_app)


def test_ini_log_config_with_uvicorn_names(tmp_path):
    log_file = tmp_path / "error.log"
    ini = tmp_path / "logging.ini"
    ini.write_text(
        "[loggers]\nkeys=root,uverror\n\n"
        "[handlers]\nkeys=file\n\n"
        "[formatters]\nkeys=plain\n\n"
        "[logger_root]\nlevel=WARNING\nhandlers=\n\n"
        "[logger_uverror]\nlevel=INFO\nhandlers=file\npropagate=0\nqualname=uvicorn.error\n\n"
        f"[handler_file]\nclass=FileHandler\nformatter=plain\nargs=({str(log_file)!r},)\n\n"
        "[formatter_plain]\nclass=uvicorn.logging.DefaultFormatter\n"
        "format=INIFMT %(levelprefix)s%(message)s\n"
    )
    Config(asgi3_app, log_config=str(ini))
    logging.getLogger("fasterapi.error").info("hello ini")
    for handler in logging.getLogger("fasterapi.error").handlers:
        handler.flush()
    assert log_file.read_text().strip() == "INIFMT INFO:    hello ini"
    Config(asgi3_app)


def test_yaml_log_config(tmp_path):
    pytest.importorskip("yaml")
    log_file = tmp_path / "out.log"
    yml = tmp_path / "log.yaml"
    yml.write_text(
        "version: 1\n"
        "disable_existing_loggers: false\n"
        "formatters:\n  f:\n    format: 'YAMLFMT %(name)s %(message)s'\n"
        f"handlers:\n  h:\n    class: logging.FileHandler\n    filename: '{log_file}'\n    formatter: f\n"
        "loggers:\n  fasterapi.error:\n    handlers: [h]\n    level: INFO\n    propagate: false\n"
    )
    Config(asgi3_app, log_config=str(yml))
    logging.getLogger("fasterapi.error").info("from yaml")
    for handler in logging.getLogger("fasterapi.error").handlers:
        handler.flush()
    assert log_file.read_text().strip() == "YAMLFMT fasterapi.error from yaml"
    Config(asgi3_app)


def test_access_formatter_colours_are_optional():
    from fasterapi.logging import AccessFormatter

    record = logging.LogRecord("fasterapi.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d', ("1.2.3.4:5", "GET", "/", "1.1", 200), None)
    plain = AccessFormatter('%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
                            use_colors=False)
    assert plain.format(record) == 'INFO:     1.2.3.4:5 - "GET / HTTP/1.1" 200 OK'
    coloured = AccessFormatter("%(levelprefix)s %(status_code)s", use_colors=True)
    assert "\x1b[" in coloured.format(record)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")
def test_trace_level_wraps_app_in_message_logger():
    from fasterapi.middleware import MessageLoggerMiddleware

    config = Config(asgi3_app, log_level="trace", http=StandIn)
    config.load()
    assert isinstance(config.loaded_app, MessageLoggerMiddleware)
    Config(asgi3_app)
