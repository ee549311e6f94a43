"""Build fasterapi's Cython extensions.

Environment switches (read at build time):

FASTERAPI_DEBUG=1        -O0 -g, Cython line tracing and bounds checks: for gdb,
                         coverage and profilers.
FASTERAPI_SANITIZE=name  add -fsanitize=name (address, undefined, thread) to
                         compile and link flags; run the tests with the
                         matching runtime preloaded.
FASTERAPI_ATOMIC_C11=1   build fa_atomic.h's C11 <stdatomic.h> back-end even
                         where the GCC/Clang builtins exist.
FASTERAPI_EXT=a,b        build only these modules (e.g. "_queue,_pool"): lets
                         several people rebuild their own module side by side.
"""

import os
import sys
from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).parent
PKG = ROOT / "fasterapi"
INCLUDES = PKG / "includes"


def _flag(name):
    return os.environ.get(name, "").strip() not in ("", "0", "false", "no")


def _extensions():
    debug = _flag("FASTERAPI_DEBUG")
    sanitize = os.environ.get("FASTERAPI_SANITIZE", "").strip()
    only = {m.strip() for m in os.environ.get("FASTERAPI_EXT", "").split(",") if m.strip()}

    compile_args = ["-std=c11"] if sys.platform != "win32" else []
    link_args = []
    macros = []
    if debug:
        compile_args += ["-O0", "-g3", "-UNDEBUG"]
        macros += [("CYTHON_TRACE_NOGIL", "1")]
    else:
        compile_args += ["-O2"]
    if sanitize:
        compile_args += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-g"]
        link_args += [f"-fsanitize={sanitize}"]
    if _flag("FASTERAPI_ATOMIC_C11"):
        macros += [("FA_ATOMIC_FORCE_C11", "1")]

    exts = []
    for pyx in sorted(PKG.glob("_*.pyx")):
        name = pyx.stem
        if only and name not in only:
            continue
        exts.append(
            Extension(
                f"fasterapi.{name}",
                [str(pyx.relative_to(ROOT))],
                include_dirs=[str(INCLUDES.relative_to(ROOT))],
                extra_compile_args=compile_args,
                extra_link_args=link_args,
                define_macros=macros,
            )
        )

    from Cython.Build import cythonize

    directives = {
        "language_level": 3,
        "embedsignature": True,
    }
    if debug:
        directives.update(linetrace=True, boundscheck=True, wraparound=True)
    else:
        directives.update(boundscheck=False, wraparound=False)
    return cythonize(
        exts,
        compiler_directives=directives,
        include_path=[str(PKG), str(INCLUDES)],
        # A changed build switch must rebuild: FASTERAPI_* are not in the
        # sources, so never trust a stale .c from another configuration.
        force=debug or bool(sanitize) or _flag("FASTERAPI_ATOMIC_C11"),
    )


setup(ext_modules=_extensions())
