"""The Autobahn|Testsuite fuzzing client against `fasterapi run` (RFC 6455 conformance).

Opt-in: it takes minutes, so it runs only with FASTERAPI_AUTOBAHN=1 (the
marker keeps it out of the default run).  autobahntestsuite is Python 2
only: it is pip-installed for the pyenv Python 2.7.18 into a cache dir
(FASTERAPI_AUTOBAHN_CACHE, default ~/.cache/fasterapi/autobahn) on first use.
Cases are chosen by tests/autobahn/fuzzingclient.json; FASTERAPI_AUTOBAHN_CASES
(comma-separated, e.g. "1.*,2.*") narrows them for a quick run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SPEC = HERE / "autobahn" / "fuzzingclient.json"
CACHE = Path(os.environ.get("FASTERAPI_AUTOBAHN_CACHE", Path.home() / ".cache/fasterapi/autobahn"))
PY27_ENV = {"PYENV_VERSION": "2.7.18"}
BAD = ("FAILED", "UNIMPLEMENTED", "WRONG CODE")

pytestmark = [
    pytest.mark.autobahn,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(os.environ.get("FASTERAPI_AUTOBAHN") != "1",
                       reason="Autobahn takes minutes: set FASTERAPI_AUTOBAHN=1 to run it"),
]


def _python27() -> list[str] | None:
    env = {**os.environ, **PY27_ENV}
    for exe in ("python2.7", "python2"):
        if shutil.which(exe) is None:
            continue
        ok = subprocess.run([exe, "-c", "import sys; assert sys.version_info[:2] == (2, 7)"],
                            env=env, capture_output=True)
        if ok.returncode == 0:
            return [exe]
    return None


def _install(py: list[str]) -> Path:
    wstest = CACHE / "bin" / "wstest"
    if not wstest.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([*py, "-m", "pip", "install", "--target", str(CACHE), "autobahntestsuite"],
                              env={**os.environ, **PY27_ENV}, capture_output=True, text=True)
        if done.returncode != 0 or not wstest.exists():
            pytest.skip(f"could not install autobahntestsuite for Python 2.7:\n{done.stdout[-2000:]}"
                        f"{done.stderr[-2000:]}")
    # zope.interface is installed without the namespace package's __init__.
    (CACHE / "zope" / "__init__.py").touch()
    return wstest


def test_autobahn_fuzzingclient(serve, tmp_path):
    py = _python27()
    if py is None:
        pytest.skip("Python 2.7 (PYENV_VERSION=2.7.18 python2.7) is not available")
    wstest = _install(py)
    server = serve("ws_apps:plain_echo", "--ws-max-size", str(16 * 1024 * 1024 + 1024),
                   "--log-level", "warning")
    spec = json.loads(SPEC.read_text())
    spec["outdir"] = str(tmp_path / "reports")
    spec["servers"][0]["url"] = f"ws://127.0.0.1:{server.port}"
    if os.environ.get("FASTERAPI_AUTOBAHN_CASES"):
        spec["cases"] = os.environ["FASTERAPI_AUTOBAHN_CASES"].split(",")
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, **PY27_ENV, "PYTHONPATH": str(CACHE)}
    started = time.monotonic()
    run = subprocess.run([*py, str(wstest), "-m", "fuzzingclient", "-s", str(spec_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3600)
    elapsed = time.monotonic() - started
    index = tmp_path / "reports" / "index.json"
    assert index.exists(), f"wstest wrote no report (exit {run.returncode}):\n{run.stdout[-3000:]}{run.stderr[-3000:]}"
    results = json.loads(index.read_text())["fasterapi"]
    counts: dict[str, int] = {}
    bad = []
    for case, r in sorted(results.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
        counts[r["behavior"]] = counts.get(r["behavior"], 0) + 1
        if r["behavior"] in BAD or r["behaviorClose"] in BAD:
            bad.append(f"{case}: {r['behavior']} / close {r['behaviorClose']}")
    print(f"autobahn: {len(results)} cases in {elapsed:.0f} s: {counts}")
    assert not bad, "Autobahn cases not passed:\n" + "\n".join(bad)
