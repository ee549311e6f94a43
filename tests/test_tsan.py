"""ThreadSanitizer check of the ring algorithms and the atomics header.

tests/c/ring_harness.c repeats _queue.pyx's two rings in plain C and drives
them from pthreads; TSan must find nothing with either fa_atomic.h back-end,
and MUST find a race once the producer's release store is weakened to relaxed
(the negative control: a harness that cannot fail proves nothing).
tests/c/atomic_header.c compiles every helper warning-free and checks its
answers.  A test here also keeps the harness in step with _queue.pyx.

gcc is required, not optional: without it these tests fail (CI installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INCLUDES = ROOT / "fasterapi" / "includes"
HEADER = INCLUDES / "fa_atomic.h"
HARNESS = ROOT / "tests" / "c" / "ring_harness.c"
HEADER_TEST = ROOT / "tests" / "c" / "atomic_header.c"
QUEUE_PYX = ROOT / "fasterapi" / "_queue.pyx"

BACKENDS = {"builtins": [], "c11": ["-DFA_ATOMIC_FORCE_C11"]}
STRICT = ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
TSAN = ["-fsanitize=thread", "-O1", "-g", "-pthread"]
# Bounded: each run takes about a second under TSan on a small machine.
ITEMS = "20000"
RUN_TIMEOUT = 120


@pytest.fixture(scope="module")
def gcc() -> str:
    path = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("gcc")
    if path is None:
        pytest.fail(
            "gcc not found: the ThreadSanitizer tests need gcc with -fsanitize=thread "
            "(install it, e.g. `apt-get install gcc`); they are not optional."
        )
    return path


def _compile(gcc: str, src: Path, out: Path, *flags: str) -> Path:
    cmd = [gcc, *STRICT, *flags, f"-I{INCLUDES}", str(src), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stdout}{res.stderr}"
    return out


def _run(exe: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # Stop at the first report: the negative control needs only one, and a
    # clean run is unaffected.
    env["TSAN_OPTIONS"] = "halt_on_error=1"
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_header_compiles_alone_warning_free(gcc, backend):
    res = subprocess.run(
        [gcc, *STRICT, *BACKENDS[backend], "-fsyntax-only", "-x", "c", str(HEADER)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_header_helper_gives_the_right_answer(gcc, backend, tmp_path):
    exe = _compile(gcc, HEADER_TEST, tmp_path / "atomic_header", "-O1", *BACKENDS[backend])
    res = _run(exe)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_rings_are_race_free_under_tsan(gcc, backend, tmp_path):
    exe = _compile(gcc, HARNESS, tmp_path / "ring_harness", *TSAN, *BACKENDS[backend])
    res = _run(exe, "all", ITEMS)
    assert "ThreadSanitizer" not in res.stderr, res.stderr
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    # 2 SPSC + 3 MPMC configurations, each verified by the harness itself.
    assert len(lines) == 5, res.stdout
    assert all(line.startswith("ok ") and f"backend={backend}" in line for line in lines)


@pytest.mark.parametrize("kind", ["mpmc", "spsc"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_tsan_catches_a_relaxed_publish(gcc, backend, kind, tmp_path):
    exe = _compile(
        gcc,
        HARNESS,
        tmp_path / "ring_harness_broken",
        *TSAN,
        *BACKENDS[backend],
        "-DFA_HARNESS_BROKEN_RELEASE",
    )
    res = _run(exe, kind, ITEMS)
    assert "WARNING: ThreadSanitizer: data race" in res.stderr, (
        "the negative control went unnoticed: the harness cannot detect a missing "
        f"release store\n{res.stdout}{res.stderr}"
    )
    assert res.returncode != 0


# ---- keeping the harness in step with _queue.pyx -----------------------------------

RING_FUNCTIONS = [
    "mpmc_try_push",
    "mpmc_try_pop",
    "mpmc_size",
    "spsc_try_push",
    "spsc_try_pop",
    "spsc_size",
]
ATOMIC_CALL = re.compile(r"\bfa_\w+\b|\bPUBLISH\b")


def _pyx_body(text: str, name: str) -> str:
    m = re.search(rf"^cdef [^\n]*\b{name}\(.*?(?=^\S)", text, re.M | re.S)
    assert m, f"{name} not found in _queue.pyx"
    return m.group(0)


def _c_body(text: str, name: str) -> str:
    m = re.search(rf"^static [^\n]*\b{name}\(.*?^\}}", text, re.M | re.S)
    assert m, f"{name} not found in ring_harness.c"
    return m.group(0)


def _atomic_calls(body: str) -> list[str]:
    # Strip comments and docstrings first: only code counts.
    body = re.sub(r'""".*?"""', "", body, flags=re.S)
    body = re.sub(r"/\*.*?\*/|#[^\n]*", "", body, flags=re.S)
    calls = ATOMIC_CALL.findall(body)
    return ["fa_store_release_u64" if c == "PUBLISH" else c for c in calls]


@pytest.mark.parametrize("name", RING_FUNCTIONS)
def test_harness_mirrors_the_pyx_atomics(name):
    pyx = _atomic_calls(_pyx_body(QUEUE_PYX.read_text(), name))
    c = _atomic_calls(_c_body(HARNESS.read_text(), name))
    assert pyx, f"no atomics found in _queue.pyx's {name}: the parser is stale"
    assert pyx == c, f"{name}: _queue.pyx does {pyx}, ring_harness.c does {c}"
