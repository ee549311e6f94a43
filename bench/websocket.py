"""WebSocket benchmark: fasterapi against uvicorn (--ws websockets) and granian.

    python bench/websocket.py --quick        # 1 repeat, 2 s per cell (a trial run)
    python bench/websocket.py --repeats 5 --seconds 10

Two workloads, each at 16 B and 64 KiB, with permessage-deflate off and on:

- echo: CONNS connections each send a binary message and wait for the echo,
  in a loop; the figure is round trips per second.
- broadcast: each connection asks for a burst ("push:N") and counts what
  arrives; the figure is server-to-client messages per second.

Method (as bench/http.py): a fresh server per measurement, pinned to CPU 0
with taskset, the client (websockets' asyncio client) pinned to CPU 1;
servers interleaved round-robin inside each repeat with the order rotated
between repeats.  Server CPU is utime+stime of the server's process tree
from /proc before and after the measured window, divided by the messages the
server handled (an echo counts as one message in and one out).  The Python
client is usually the bottleneck for small messages, so CPU per message is
the figure to compare; the rate only says "at least this fast".
"""

from __future__ import annotations

import os
import sys

# As a script, sys.path[0] is bench/, whose http.py would shadow the stdlib's
# http (which the websockets client imports).
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
SIZES = {"16B": 16, "64KiB": 65536}


# -- the app every server runs (ASGI3) --

async def app(scope, receive, send):
    """Echo, or on "push:N:SIZE" send N binary messages of SIZE bytes."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            return
        text = msg.get("text")
        if text is not None and text.startswith("push:"):
            _, n, size = text.split(":")
            payload = {"type": "websocket.send", "bytes": b"x" * int(size)}
            for _ in range(int(n)):
                await send(payload)
        else:
            await send({"type": "websocket.send", "bytes": msg.get("bytes"), "text": text})


# -- servers --

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_argv(name: str, port: int, deflate: bool) -> list[str]:
    target = "bench.websocket:app"
    if name == "fasterapi":
        return [sys.executable, "-m", "fasterapi", "run", target, "--port", str(port),
                "--log-level", "warning", "--no-access-log",
                "--ws-per-message-deflate" if deflate else "--no-ws-per-message-deflate"]
    if name == "uvicorn":
        return [sys.executable, "-m", "uvicorn", target, "--port", str(port), "--ws", "websockets",
                "--log-level", "warning", "--no-access-log",
                "--ws-per-message-deflate", "true" if deflate else "false"]
    if name == "granian":
        return [shutil.which("granian") or "granian", "--interface", "asgi", "--port", str(port),
                "--log-level", "warning", target]
    raise ValueError(name)


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        todo.extend(int(k) for k in kids)
    return out


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(f[11]) + int(f[12])     # utime, stime
    return total / CLK_TCK


def start(name: str, deflate: bool, cpu: int | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    argv = server_argv(name, port, deflate)
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu), *argv]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            asyncio.run(_probe(port))
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{name} did not start")


async def _probe(port: int) -> None:
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
        await ws.send(b"p")
        await ws.recv()


# -- clients --

async def _echo(port: int, size: int, deflate: bool, seconds: float, conns: int) -> tuple[int, str]:
    from websockets.asyncio.client import connect

    payload = os.urandom(size // 2).hex().encode()[:size]   # compressible, not trivially
    stop = time.monotonic() + seconds
    counts = [0] * conns
    ext = ""

    async def one(i: int) -> None:
        nonlocal ext
        async with connect(f"ws://127.0.0.1:{port}/", max_size=None,
                           compression="deflate" if deflate else None) as ws:
            ext = ws.response.headers.get("sec-websocket-extensions", "") or ext
            while time.monotonic() < stop:
                await ws.send(payload)
                await ws.recv()
                counts[i] += 1

    await asyncio.gather(*(one(i) for i in range(conns)))
    return sum(counts), ext


async def _broadcast(port: int, size: int, deflate: bool, seconds: float, conns: int) -> tuple[int, str]:
    from websockets.asyncio.client import connect

    burst = 200 if size <= 1024 else 20
    stop = time.monotonic() + seconds
    counts = [0] * conns
    ext = ""

    async def one(i: int) -> None:
        nonlocal ext
        async with connect(f"ws://127.0.0.1:{port}/", max_size=None, max_queue=None,
                           compression="deflate" if deflate else None) as ws:
            ext = ws.response.headers.get("sec-websocket-extensions", "") or ext
            while time.monotonic() < stop:
                await ws.send(f"push:{burst}:{size}")
                for _ in range(burst):
                    await ws.recv()
                counts[i] += burst

    await asyncio.gather(*(one(i) for i in range(conns)))
    return sum(counts), ext


def measure(name: str, workload: str, size: int, deflate: bool, args) -> dict:
    proc, port = start(name, deflate, args.server_cpu)
    try:
        client = _echo if workload == "echo" else _broadcast
        asyncio.run(client(port, size, deflate, 0.5, args.conns))        # warm-up
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        n, ext = asyncio.run(client(port, size, deflate, args.seconds, args.conns))
        elapsed, cpu = time.monotonic() - t0, cpu_seconds(proc.pid) - c0
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    msgs = n * 2 if workload == "echo" else n
    return {"rate": n / elapsed, "us_per_msg": cpu / msgs * 1e6 if msgs else float("nan"),
            "deflate": "permessage-deflate" in ext}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="fasterapi,uvicorn,granian")
    ap.add_argument("--workloads", default="echo,broadcast")
    ap.add_argument("--sizes", default="16B,64KiB")
    ap.add_argument("--deflate", default="off,on")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="1 repeat of 2 s (a trial, not a result)")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.seconds = 1, 2.0
    if args.client_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.client_cpu})
    servers = [s for s in args.servers.split(",") if s != "granian" or shutil.which("granian")]
    cells = [(w, s, d == "on") for w in args.workloads.split(",") for s in args.sizes.split(",")
             for d in args.deflate.split(",")]
    results: dict[tuple, list[dict]] = {}
    for r in range(args.repeats):
        order = servers[r % len(servers):] + servers[:r % len(servers)]
        for w, s, d in cells:
            for name in order:
                res = measure(name, w, SIZES[s], d, args)
                results.setdefault((w, s, d, name), []).append(res)
                print(f"  {w:9} {s:5} deflate={'on ' if d else 'off'} {name:9} "
                      f"{res['rate']:9.0f}/s {res['us_per_msg']:7.1f} us/msg"
                      f"{'' if res['deflate'] == d else '  (deflate not negotiated)'}", flush=True)
    print(f"\nmedians over {args.repeats} repeat(s) of {args.seconds:g} s, {args.conns} connections, "
          f"server on CPU {args.server_cpu}:")
    print(f"| workload | size | deflate | {' | '.join(f'{n} /s | {n} us/msg' for n in servers)} |")
    print("|" + "---|" * (3 + 2 * len(servers)))
    for w, s, d in cells:
        row = [w, s, "on" if d else "off"]
        for name in servers:
            rs = results[(w, s, d, name)]
            neg = all(x["deflate"] == d for x in rs)
            row.append(f"{statistics.median(x['rate'] for x in rs):.0f}")
            row.append(f"{statistics.median(x['us_per_msg'] for x in rs):.1f}" + ("" if neg else "*"))
        print("| " + " | ".join(row) + " |")
    print("\n* deflate was not negotiated by that server")


if __name__ == "__main__":
    main()
