"""``--reload``: the file filter as a unit, and an edited module picked up through the real CLI."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from fasterapi.reload import FileFilter

MODULE = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": b"{version}"}})
'''


@pytest.mark.parametrize(("path", "watched"), [
    ("/srv/app/main.py", True),
    ("/srv/app/pkg/models.py", True),
    ("/srv/app/main.pyc", False),
    ("/srv/app/.main.py.swp", False),
    ("/srv/app/.git/hooks/x.py", False),
    ("/srv/app/__pycache__/main.cpython-311.py", False),
    ("/srv/app/~main.py", False),
    ("/srv/app/README.md", False),
    ("/srv/.hidden/app/main.py", True),  # only parts below the watched root count
])
def test_default_filter(path, watched):
    assert FileFilter(["/srv/app", "/srv/.hidden/app"])(None, path) is watched


def test_include_and_exclude_globs():
    file_filter = FileFilter(["/srv/app"], includes=["*.html", ".env"], excludes=["test_*"])
    assert file_filter(None, "/srv/app/templates/index.html")
    assert file_filter(None, "/srv/app/.env")  # an include beats the default ".*" exclude
    assert not file_filter(None, "/srv/app/test_main.py")
    assert file_filter(None, "/srv/app/main.py")


def _wait_for_body(url: str, body: bytes, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url, timeout=5).content
        except httpx.HTTPError as exc:
            last = repr(exc)
        if last == body:
            return
        time.sleep(0.1)
    raise AssertionError(f"never saw {body!r}; last answer {last!r}")


def test_reload_picks_up_an_edited_module(serve, tmp_path):
    source = tmp_path / "reload_target.py"
    source.write_text(MODULE.format(version="v1"))
    server = serve("reload_target:app", "--app-dir", str(tmp_path), "--reload",
                   "--reload-dir", str(tmp_path), "--reload-delay", "0.1", "--workers", "2")
    _wait_for_body(server.url, b"v1")
    out = server.output()
    assert "Started reloader process" in out
    assert '"workers" flag is ignored when reloading is enabled.' in out
    (tmp_path / "notes.txt").write_text("not watched")
    source.write_text(MODULE.format(version="v2"))
    _wait_for_body(server.url, b"v2")
    assert "WatchFiles detected changes in" in server.output()
    assert "notes.txt" not in server.output()
    assert server.stop(signal.SIGINT) == 0


def test_reload_survives_a_broken_edit(serve, tmp_path):
    source = tmp_path / "reload_broken.py"
    source.write_text(MODULE.format(version="v1"))
    server = serve("reload_broken:app", "--app-dir", str(tmp_path), "--reload",
                   "--reload-dir", str(tmp_path), "--reload-delay", "0.1")
    _wait_for_body(server.url, b"v1")
    source.write_text("this is not python(\n")
    server.wait_for_log("SyntaxError")
    source.write_text(MODULE.format(version="v3"))
    _wait_for_body(server.url, b"v3")
    assert server.proc.poll() is None
    assert server.stop() == 0
