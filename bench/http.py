"""HTTP benchmark: fasterapi against uvicorn, granian and the floor, in one run.

    python -m bench.http                 # full run (~11 min): 5 repeats x 4 scenarios x 4 servers
    python -m bench.http --quick         # smoke test: 1 repeat, 2 s per measurement
    python -m bench.http --servers uvicorn,floor --scenarios plaintext,echo

Run it as a module from the repository root: as a script (`python bench/http.py`)
this file would shadow the standard library's `http` package.  A guard below
handles that case too, but `-m` is the documented way.

Method (bench/README.md has the long form):

- Every measurement starts a fresh server pinned to one CPU (`taskset -c 0`)
  and drives it with `wrk -t1` pinned to another (`taskset -c 1`).  Servers are
  interleaved round-robin inside each repeat, with the order rotated between
  repeats, so a slow minute on a shared machine hits every server alike.
- Before measuring: wait until a real request gets the right answer (not just
  a TCP accept: granian's parent accepts before its worker is ready), then a
  1 s wrk warm-up.
- Server CPU is utime+stime (plus reaped children) of the whole process tree,
  from /proc/PID/stat before and after the measured wrk run, divided by the
  successful responses.  Peak RSS is the sum of VmHWM over the tree.
- req/s counts only 2xx/3xx responses, and errors are shown next to it, so a
  server that answers errors quickly does not look fast.
- Each cell is the median over repeats; ratios compare medians.
"""

from __future__ import annotations

import os
import sys

# Run as `python bench/http.py`, sys.path[0] is bench/ and this file would be
# imported as the stdlib `http` by anything that needs http.client.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import contextlib
import datetime
import json
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WRK_DIR = BENCH / "wrk"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def markers(section: str) -> tuple[str, str]:
    """The comment lines that delimit a run's section in RESULTS.md."""
    return f"<!-- {section}:begin -->", f"<!-- {section}:end -->"

# fasterapi-log is fasterapi with its access log on (written to the server's
# log file): the issue bounds the access log's cost, so it is measured in the
# same interleaved run as everything else.
ALL_SERVERS = ["fasterapi", "uvicorn", "granian", "floor", "fasterapi-log"]


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    app: str  # module:attr served by the ASGI servers
    floor_mode: str  # bench/floor.py --mode
    path: str
    script: str  # file in bench/wrk/
    script_args: tuple[str, ...]
    method: str  # for the readiness check
    check_body: bytes  # request body sent by the readiness check
    expect: bytes  # response body the readiness check requires
    pipeline: int = 1  # requests the readiness check sends in one write
    # wrk times a pipelined batch as one sample, and its coordinated-omission
    # correction then spreads synthetic samples at 1/16 of the real interval,
    # below the histogram minimum, so its percentiles come out as 0 or junk.
    latency: bool = True


def _json_expect() -> bytes:
    # The same dict the apps serve; compared as parsed JSON, not bytes, since
    # servers may order or space it differently.
    return json.dumps({"message": "Hello, world!", "id": 1, "ok": True}).encode()


SCENARIOS = {
    s.name: s
    for s in [
        Scenario("plaintext", "GET plaintext", "bench.apps:plaintext", "plaintext", "/",
                 "get.lua", (), "GET", b"", b"Hello, world!"),
        Scenario("pipelined", "GET plaintext, pipelined x16", "bench.apps:plaintext",
                 "plaintext", "/", "pipeline.lua", ("16",), "GET", b"", b"Hello, world!",
                 pipeline=2, latency=False),
        Scenario("echo", "POST 10 KiB echoed", "bench.apps:echo", "echo", "/echo", "post.lua",
                 ("10240",), "POST", b"x" * 10240, b"x" * 10240),
        Scenario("fastapi", "FastAPI GET JSON", "bench.apps:fastapi_json", "json", "/json",
                 "get.lua", (), "GET", b"", _json_expect()),
    ]
}


def server_command(server: str, sc: Scenario, port: int) -> list[str]:
    """The argv that starts `server` for scenario `sc` on `port` (without pinning)."""
    py = sys.executable
    if server in ("fasterapi", "fasterapi-log"):
        access = ["--access-log"] if server == "fasterapi-log" else ["--no-access-log"]
        return [py, "-m", "fasterapi", "run", sc.app, "--host", HOST, "--port", str(port),
                *access]
    if server == "uvicorn":
        return [py, "-m", "uvicorn", sc.app, "--host", HOST, "--port", str(port),
                "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                "--no-proxy-headers", "--log-level", "warning"]
    if server == "granian":
        # One worker process, one runtime thread, single-threaded runtime: the
        # same one-core budget as the others.  Granian still runs a parent
        # process, which the /proc tree walk counts.
        return [py, "-m", "granian", "--interface", "asgi", "--host", HOST, "--port", str(port),
                "--workers", "1", "--runtime-threads", "1", "--runtime-mode", "st",
                "--loop", "uvloop", "--no-ws", "--no-access-log", "--log-level", "warning",
                sc.app]
    if server == "floor":
        return [py, str(BENCH / "floor.py"), "--mode", sc.floor_mode, "--host", HOST,
                "--port", str(port)]
    raise ValueError(f"unknown server {server!r}")


# --------------------------------------------------------------------------- /proc sampling


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses; everything after the
    # last ')' is fixed-format, starting with field 3 (state).
    return raw[raw.rfind(")") + 2:].split()


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, found through the ppid field of /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def cpu_ticks(root: int) -> dict[int, int]:
    """Per process of the tree: utime+stime+cutime+cstime, in clock ticks.

    The process-level stat already sums all its threads, dead ones included;
    cutime/cstime add children that exited and were reaped during the run.
    """
    out = {}
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields:
            # Fields 14-17 of proc(5), shifted by the 3 skipped above.
            out[pid] = sum(int(x) for x in fields[11:15])
    return out


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return ticks / CLK_TCK


def cpu_busy_ticks(cpu: int | None) -> int:
    """Ticks CPU `cpu` spent on anything but idle, iowait and interrupts.

    From the `cpuN` line of /proc/stat: user+nice+system+steal.  Interrupt
    and softirq time is left out because loopback TCP work done on behalf of
    the server lands there.  Minus the server tree's own ticks this is the
    load that shared the server's core, hypervisor steal included.
    """
    if cpu is None:
        return 0
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                user, nice, system, _idle, _iowait, _irq, _softirq, steal = (
                    int(x) for x in line.split()[1:9])
                return user + nice + system + steal
    return 0


def peak_rss_mib(root: int) -> float:
    total_kib = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total_kib += int(line.split()[1])
                        break
        except OSError:
            pass
    return total_kib / 1024


# --------------------------------------------------------------------------- servers


class StartError(Exception):
    """The server did not start, or answered the readiness check wrongly."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def error_line(log: str) -> str:
    """The line that says why a server died: the exception line of a
    traceback (the first line, 'Traceback ...', says nothing), else the first
    non-empty line."""
    # The interpreter's full path only makes the table wider.
    log = log.replace(sys.executable + ":", "python:")
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    if not lines:
        return "(no output)"
    if any(ln.startswith("Traceback") for ln in lines):
        return lines[-1][:200]
    return lines[0][:200]


class Server:
    """One server process (and its process group), started pinned to a CPU."""

    live: set[Server] = set()

    def __init__(self, name: str, sc: Scenario, cpu: int | None, log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        argv = server_command(name, sc, self.port)
        if cpu is not None:
            # taskset execs the server, so the pid stays the server's.
            argv = ["taskset", "-c", str(cpu), *argv]
        self.argv = argv
        self.log_path = log_dir / f"{name}-{sc.name}-{self.port}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("FASTERAPI_PORT", None)
        with open(self.log_path, "wb") as log:
            # A new session: Ctrl+C in the terminal reaches only this script,
            # which then stops the whole group itself, children included.
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        Server.live.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, sc: Scenario, timeout: float) -> None:
        """Return once the server answers `sc`'s request correctly, else raise StartError."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(f"failed to start: {error_line(self.output())}")
            try:
                bodies = http_exchange(self.port, sc)
            except (OSError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.05)
                continue
            for status, body in bodies:
                if status != 200 or not body_matches(sc, body):
                    raise StartError(f"bad response: status {status}, body {body[:60]!r}")
            return
        raise StartError(f"failed to start: not answering after {timeout:.0f} s ({last}); "
                         f"{error_line(self.output())}")

    def stop(self) -> None:
        Server.live.discard(self)
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Granian's worker may outlive a parent killed hard; it is still in
        # the group, so sweep the group once more.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    @classmethod
    def stop_all(cls) -> None:
        for server in list(cls.live):
            server.stop()


def body_matches(sc: Scenario, body: bytes) -> bool:
    if sc.name == "fastapi":
        try:
            return json.loads(body) == json.loads(sc.expect)
        except ValueError:
            return False
    return body == sc.expect


def http_exchange(port: int, sc: Scenario) -> list[tuple[int, bytes]]:
    """Send `sc.pipeline` requests in one write; return (status, body) of each response."""
    req = (f"{sc.method} {sc.path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n").encode()
    if sc.method == "POST":
        req += b"Content-Type: application/octet-stream\r\n"
        req += b"Content-Length: %d\r\n" % len(sc.check_body)
    req += b"\r\n" + sc.check_body
    with socket.create_connection((HOST, port), timeout=3) as s:
        s.sendall(req * sc.pipeline)
        reader = _Reader(s)
        return [reader.response() for _ in range(sc.pipeline)]


class _Reader:
    """Just enough of an HTTP/1.1 response reader for the readiness check."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ValueError("connection closed mid-response")
        self.buf += data

    def _until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(sep, 1)
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self) -> tuple[int, bytes]:
        head = self._until(b"\r\n\r\n").split(b"\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            return status, self._exactly(int(headers[b"content-length"]))
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = b""
            while True:
                size = int(self._until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._until(b"\r\n")
                    return status, body
                body += self._exactly(size)
                self._exactly(2)
        raise ValueError("response without Content-Length or chunked framing")


# --------------------------------------------------------------------------- wrk


def run_wrk(args: argparse.Namespace, sc: Scenario, port: int, seconds: int) -> dict:
    """Run wrk once; return its WRK_JSON summary (see bench/wrk/report.lua)."""
    argv = ["wrk", "-t1", f"-c{args.connections}", f"-d{seconds}s", "--latency",
            "--timeout", "5s", "-s", str(WRK_DIR / sc.script),
            f"http://{HOST}:{port}{sc.path}"]
    if sc.script_args:
        argv += ["--", *sc.script_args]
    if args.client_cpu is not None:
        argv = ["taskset", "-c", str(args.client_cpu), *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON "):])
    raise RuntimeError(f"wrk gave no summary (rc {proc.returncode}): "
                       f"{(proc.stderr or proc.stdout).strip()[:200]}")


@dataclass
class Sample:
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    cpu_us: float  # server CPU per successful response
    cpu_util: float  # server CPU seconds / wall seconds
    other: float | None  # CPU-0 time used by anything else / wall seconds
    rss_mib: float
    errors: dict[str, int]
    repeat: int = -1  # which round of the interleaved run it came from


def measure(args: argparse.Namespace, server: str, sc: Scenario, log_dir: Path) -> Sample:
    srv = Server(server, sc, args.server_cpu, log_dir)
    try:
        srv.wait_ready(sc, args.start_timeout)
        if args.warmup:
            run_wrk(args, sc, srv.port, args.warmup)
        before, cpu0_before = cpu_ticks(srv.pid), cpu_busy_ticks(args.server_cpu)
        t_before = time.monotonic()
        res = run_wrk(args, sc, srv.port, args.duration)
        # Let the server finish closing wrk's connections: that work belongs
        # to the run, and it takes well under this.
        time.sleep(0.2)
        after, cpu0_after = cpu_ticks(srv.pid), cpu_busy_ticks(args.server_cpu)
        window = time.monotonic() - t_before  # what the CPU samples span
        rss = peak_rss_mib(srv.pid)
        if srv.proc.poll() is not None:
            raise StartError(f"died during the run: {error_line(srv.output())}")
    finally:
        srv.stop()
    errors = {k: res[k] for k in ("status", "connect", "read", "write", "timeout")}
    good = max(res["requests"] - res["status"], 0)
    wall = res["duration_us"] / 1e6
    cpu = cpu_seconds_between(before, after)

    def ms(us: int) -> float | None:
        # A 0 percentile means wrk had no samples (or its histogram lost them).
        return us / 1000 if us else None

    return Sample(
        rps=good / wall,
        p50_ms=ms(res["p50"]) if sc.latency else None,
        p99_ms=ms(res["p99"]) if sc.latency else None,
        cpu_us=cpu * 1e6 / good if good else float("inf"),
        cpu_util=cpu / window,
        other=(max((cpu0_after - cpu0_before) / CLK_TCK - cpu, 0.0) / window
               if args.server_cpu is not None else None),
        rss_mib=rss,
        errors=errors,
    )


# --------------------------------------------------------------------------- aggregation


@dataclass
class Cell:
    samples: list[Sample] = field(default_factory=list)
    failure: str | None = None  # set when the server could not start or answer

    def med(self, attr: str) -> float | None:
        vals = [getattr(s, attr) for s in self.samples if getattr(s, attr) is not None]
        return statistics.median(vals) if vals else None

    def span(self, attr: str) -> tuple[float, float] | None:
        vals = [getattr(s, attr) for s in self.samples if getattr(s, attr) is not None]
        return (min(vals), max(vals)) if vals else None

    def paired(self, other: Cell, attr: str) -> float | None:
        """Median over repeats of self/other, each pair measured in the same
        round (minutes apart at most): steadier than a ratio of medians when
        the shared host's speed drifts between rounds."""
        theirs = {s.repeat: getattr(s, attr) for s in other.samples}
        ratios = [getattr(s, attr) / theirs[s.repeat] for s in self.samples
                  if theirs.get(s.repeat) and getattr(s, attr) is not None]
        return statistics.median(ratios) if ratios else None

    def errors(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for s in self.samples:
            for k, v in s.errors.items():
                total[k] = total.get(k, 0) + v
        return total


ERROR_LABELS = {"status": "non-2xx", "connect": "connect", "read": "read", "write": "write",
                "timeout": "timeout"}


def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "–"
    if x == float("inf"):
        return "inf"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0 or a == float("inf") or b == float("inf"):
        return "–"
    return f"{a / b:.2f}"


def render_table(cells: dict[tuple[str, str], Cell], scenarios: list[str],
                 servers: list[str]) -> str:
    head = ["scenario", "server", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "srv CPU %", "other on CPU %",
            "peak RSS MiB", "errors", "req/s ÷ uvicorn", "CPU ÷ uvicorn",
            "CPU ÷ uvicorn, paired", "req/s ÷ floor", "CPU ÷ floor"]
    rows = [head, ["---"] * len(head)]
    for scn in scenarios:
        base = {ref: cells.get((scn, ref)) for ref in ("uvicorn", "floor")}

        def ref(name: str, attr: str, _base=base) -> float | None:
            c = _base[name]
            return c.med(attr) if c and not c.failure else None

        for srv in servers:
            cell = cells[(scn, srv)]
            if not cell.samples:
                why = cell.failure or "not measured (run interrupted)"
                rows.append([scn, srv, why.replace("|", "/")] + [""] * (len(head) - 3))
                continue
            errs = cell.errors()
            err_txt = ", ".join(f"{ERROR_LABELS[k]} {v}" for k, v in errs.items() if v) or "0"
            if cell.failure:
                err_txt += f"; {cell.failure}"
            rps, cpu = cell.med("rps"), cell.med("cpu_us")
            util, other = cell.med("cpu_util"), cell.med("other")
            if SCENARIOS[scn].latency:
                p50, p99 = _fmt(cell.med("p50_ms"), 2), _fmt(cell.med("p99_ms"), 2)
            else:
                p50 = p99 = "n/a"
            rows.append([
                scn, srv, _fmt(rps, 0), p50, p99,
                _fmt(cpu, 1), _fmt(util * 100 if util is not None else None, 0),
                _fmt(other * 100 if other is not None else None, 0),
                _fmt(cell.med("rss_mib"), 1), err_txt.replace("|", "/"),
                _ratio(rps, ref("uvicorn", "rps")), _ratio(cpu, ref("uvicorn", "cpu_us")),
                _fmt(cell.paired(base["uvicorn"], "cpu_us") if base["uvicorn"] else None, 2),
                _ratio(rps, ref("floor", "rps")), _ratio(cpu, ref("floor", "cpu_us")),
            ])
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


# --------------------------------------------------------------------------- report


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        pass
    if dist == "fasterapi":
        # Not installed: the servers import it from the source tree (cwd).
        with contextlib.suppress(Exception):
            import fasterapi

            return f"{fasterapi.__version__} (source tree)"
    return "not installed"


def git_revision() -> str:
    """Short commit of the checkout, marked when the work tree has changes."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + (" with uncommitted changes" if dirty else "")


def machine_info() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk = "unknown"
    with contextlib.suppress(OSError):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        wrk = (out.stdout or out.stderr).split(" [")[0].strip() or wrk
    versions = ", ".join(f"{d} {_version(d)}" for d in
                         ("fasterapi", "uvloop", "uvicorn", "httptools", "granian", "fastapi"))
    return {
        "machine": f"{platform.machine()}, {model}, {os.cpu_count()} CPUs, "
                   f"Linux {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": versions,
        "wrk": wrk,
        "commit": git_revision(),
    }


def busy_warning(cells: dict[tuple[str, str], Cell], limit: float = 0.10) -> str | None:
    """A sentence for the report when other work ran on the server's CPU."""
    others = [c.med("other") for c in cells.values() if c.samples]
    busy = [w for w in others if w is not None and w > limit]
    if not busy:
        return None
    return (f"**Busy machine:** in {len(busy)} of {len(others)} cells other work used the "
            f"server's CPU (up to {max(busy) * 100:.0f}% of it, column 'other on CPU %'), so "
            "these numbers are noisy; rerun on an idle machine to publish.")


def render_section(args: argparse.Namespace, table: str, chart: Path | None,
                   started: datetime.datetime, elapsed: float, load: str,
                   warning: str | None) -> str:
    info = machine_info()
    pin = ("not pinned" if args.server_cpu is None else
           f"server on CPU {args.server_cpu} (`taskset`), wrk -t1 on CPU {args.client_cpu}")
    kind = " (quick smoke test: not for comparison)" if args.quick else ""
    begin, end = markers(args.section)
    title = "## HTTP servers (`bench/http.py`)"
    if args.section != "http":
        title += f", section `{args.section}`"
    lines = [
        begin,
        title + kind,
        "",
        f"- Date: {started:%Y-%m-%d %H:%M %Z}".rstrip() + f" (run took {elapsed / 60:.1f} min)",
        f"- Machine: {info['machine']}",
        f"- Python: {info['python']}; {info['versions']}; {info['wrk']}",
        f"- Commit: {info['commit']}",
        f"- Load average (1 min) at start / end: {load}",
        f"- Command: `{' '.join(shlex.quote(a) for a in ['python', '-m', 'bench.http', *sys.argv[1:]])}`",
        f"- {args.repeats} repeat(s) x {args.duration} s per measurement after a {args.warmup} s "
        f"warm-up, {args.connections} connections, {pin}; medians over repeats.",
        "- req/s counts 2xx/3xx responses only; CPU µs/req is server-tree CPU per such response;"
        " srv CPU % near 100 means the server was the bottleneck (below it, wrk or the"
        " network path was). Ratios: ÷ uvicorn and ÷ floor of the same scenario; for CPU,"
        " lower is better. See bench/README.md.",
        "",
    ]
    if warning:
        lines += [warning, ""]
    lines += [table, ""]
    if chart is not None:
        rel = os.path.relpath(chart.resolve(), args.results.resolve().parent)
        lines += [f"![server CPU per request]({rel})", ""]
    lines.append(end)
    return "\n".join(lines)


def write_results(path: Path, name: str, section: str) -> None:
    """Replace section `name` in `path`, leaving every other section as it was."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    mark_begin, mark_end = markers(name)
    begin, end = text.find(mark_begin), text.find(mark_end)
    if begin != -1 and end > begin:
        text = text[:begin] + section + text[end + len(mark_end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def draw_chart(path: Path, cells: dict[tuple[str, str], Cell], scenarios: list[str],
               servers: list[str], log_scale: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / max(len(servers), 1)
    for ax, attr, label in ((axes[0], "cpu_us", "server CPU µs per request (lower is better)"),
                            (axes[1], "rps", "requests/s (higher is better)")):
        plotted = []
        for i, srv in enumerate(servers):
            xs, ys, lo, hi = [], [], [], []
            for j, scn in enumerate(scenarios):
                cell = cells[(scn, srv)]
                med, span = cell.med(attr), cell.span(attr)
                x = j + (i - (len(servers) - 1) / 2) * width
                if med is None or med == float("inf") or span is None:
                    # Axis-relative y, so the mark also shows on a log scale.
                    ax.text(x, 0.01, "n/a", ha="center", va="bottom", fontsize=7, rotation=90,
                            transform=ax.get_xaxis_transform())
                    continue
                xs.append(x)
                ys.append(med)
                lo.append(med - span[0])
                hi.append(span[1] - med)
            plotted += ys
            # A fixed colour per server, so charts of different runs read alike.
            color = f"C{ALL_SERVERS.index(srv)}"
            bars = ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=srv, color=color)
            labels = [f"{y / 1000:.0f}k" if attr == "rps" else f"{y:.3g}" for y in ys]
            ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
        ax.set_xticks(range(len(scenarios)), [SCENARIOS[s].title for s in scenarios],
                      fontsize=8)
        ax.set_ylabel(label)
        # req/s spans 10k (FastAPI) to 1M (pipelined floor): linear hides the rest.
        if (log_scale or attr == "rps") and plotted:
            ax.set_yscale("log")
            ax.set_ylim(bottom=min(plotted) / 3)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("HTTP/1.1 servers on one pinned CPU: median over repeats, bars span min-max")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.http",
        description="Compare fasterapi, uvicorn, granian and the raw-uvloop floor under wrk.")
    p.add_argument("--servers", default=",".join(ALL_SERVERS),
                   help="comma-separated, from: " + ",".join(ALL_SERVERS))
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help="comma-separated, from: " + ",".join(SCENARIOS))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--duration", type=int, default=5, help="seconds per measured wrk run")
    p.add_argument("--warmup", type=int, default=1, help="seconds of wrk before measuring")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="smoke test: 1 repeat of 2 s")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--start-timeout", type=float, default=20.0)
    p.add_argument("--results", type=Path, default=BENCH / "RESULTS.md",
                   help="markdown file whose http section is rewritten")
    p.add_argument("--section", default="http",
                   help="name of the RESULTS.md section to (re)write, e.g. http-py3.12 for a run "
                        "under another Python; the chart defaults to bench/<section>.png")
    p.add_argument("--chart", type=Path, default=None)
    p.add_argument("--log-chart", action="store_true", help="log-scale y axes in the chart")
    p.add_argument("--no-write", action="store_true",
                   help="print the table only; leave RESULTS.md and the chart alone")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.duration = 1, 2
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in args.server_list:
        if s not in ALL_SERVERS:
            p.error(f"unknown server {s!r}")
    for s in args.scenario_list:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}")
    if args.no_pin or not shutil.which("taskset"):
        args.server_cpu = args.client_cpu = None
    else:
        allowed = os.sched_getaffinity(0)
        if args.server_cpu not in allowed or args.client_cpu not in allowed:
            print(f"CPUs {args.server_cpu}/{args.client_cpu} not available ({sorted(allowed)}); "
                  "running unpinned", file=sys.stderr)
            args.server_cpu = args.client_cpu = None
    if not shutil.which("wrk"):
        p.error("wrk is not on PATH")
    return args


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    servers, scenarios = args.server_list, args.scenario_list
    cells = {(scn, srv): Cell() for scn in scenarios for srv in servers}
    runs = args.repeats * len(servers) * len(scenarios)
    est = runs * (args.duration + args.warmup + 1.5)
    print(f"{runs} measurements, about {est / 60:.1f} min", file=sys.stderr)
    # SIGINT, SIGTERM and SIGHUP all end in the finally below, which stops the
    # servers; SIGINT is set explicitly because a shell starting us in the
    # background would otherwise leave it ignored.
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    started = datetime.datetime.now().astimezone()
    load_start = os.getloadavg()[0]
    t0 = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="fasterapi-bench-http-"))
    interrupted = False
    try:
        for rep in range(args.repeats):
            for scn in scenarios:
                sc = SCENARIOS[scn]
                # Rotate the order each repeat so no server always runs first
                # (or right after the heaviest one).
                k = rep % len(servers)
                for srv in servers[k:] + servers[:k]:
                    cell = cells[(scn, srv)]
                    if cell.failure and not cell.samples:
                        continue  # never started for this scenario; do not retry
                    print(f"[{rep + 1}/{args.repeats}] {scn:<10} {srv:<10}", end=" ",
                          file=sys.stderr, flush=True)
                    try:
                        s = measure(args, srv, sc, log_dir)
                    except (StartError, RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                        cell.failure = str(exc)
                        print(cell.failure, file=sys.stderr)
                        continue
                    s.repeat = rep
                    cell.samples.append(s)
                    errs = sum(s.errors.values())
                    print(f"{s.rps:>10,.0f} req/s  {s.cpu_us:7.1f} µs/req  "
                          f"cpu {s.cpu_util:4.0%}  other {s.other or 0:4.0%}  rss {s.rss_mib:5.1f} MiB"
                          + (f"  ERRORS {s.errors}" if errs else ""),
                          file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; stopping servers and reporting what was measured",
              file=sys.stderr)
    finally:
        Server.stop_all()
    elapsed = time.monotonic() - t0
    load = f"{load_start:.2f} / {os.getloadavg()[0]:.2f}"
    table = render_table(cells, scenarios, servers)
    warning = busy_warning(cells)
    print()
    print(table)
    if warning:
        print("\n" + warning.replace("**", ""))
    if not args.no_write and not interrupted:
        chart = args.chart or BENCH / f"{args.section}.png"
        try:
            draw_chart(chart, cells, scenarios, servers, args.log_chart)
        except ImportError as exc:
            print(f"no chart: {exc}", file=sys.stderr)
            chart = None
        write_results(args.results, args.section, render_section(args, table, chart, started, elapsed, load, warning))
        print(f"\nwrote {args.results}" + (f" and {chart}" if chart else ""), file=sys.stderr)
    failed = [k for k, c in cells.items() if c.failure]
    if failed:
        print(f"server logs: {log_dir}", file=sys.stderr)
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
