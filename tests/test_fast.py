"""The public primitives API: `fasterapi.fast` exports exactly what the docs promise."""

import importlib

import fasterapi.fast as fast

PUBLIC = {"SPSCQueue", "MPMCQueue", "DictPool", "TuplePool", "BufferPool",
          "ResponseBuilder", "JsonBuilder"}


def test_fast_exports_the_documented_names():
    assert set(fast.__all__) == PUBLIC
    for name in PUBLIC:
        obj = getattr(fast, name)
        assert isinstance(obj, type), name
        # The classes are the compiled ones, not Python re-implementations.
        assert obj.__module__.startswith("fasterapi._"), (name, obj.__module__)
        assert obj.__doc__, f"{name} has no docstring"


def test_importing_fast_does_not_import_the_server():
    # Other servers embed the primitives; they must not pay for our event loop or CLI.
    import subprocess
    import sys

    code = ("import sys, fasterapi.fast; "
            "bad = [m for m in ('fasterapi.server', 'fasterapi.cli', 'uvloop', 'click') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pxd_and_stub_files_ship_for_every_compiled_module():
    pkg = importlib.import_module("fasterapi")
    from pathlib import Path

    root = Path(pkg.__file__).parent
    for mod in ("_queue", "_pool", "_response"):
        assert (root / f"{mod}.pxd").exists(), mod
        assert (root / f"{mod}.pyi").exists(), mod
    assert (root / "includes" / "fa_atomic.h").exists()
