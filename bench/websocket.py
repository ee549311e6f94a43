"""WebSocket benchmark: fasterapi against uvicorn (--ws websockets) and granian.

    python bench/websocket.py --quick        # 1 repeat, 2 s per cell (a trial run)
    python bench/websocket.py --repeats 5 --seconds 10
    python bench/websocket.py --check        # the raw client's counts against known totals

Two workloads, each at 16 B and 64 KiB, with permessage-deflate off and on:

- echo: CONNS connections each keep up to WINDOW binary messages in flight
  (topped up once half have come back; one with ``--client websockets``);
  the figure is round trips per second.
- broadcast: each connection keeps two bursts ("push:N:SIZE") requested and
  counts what arrives; the figure is server-to-client messages per second.

Clients.  The default ("raw") is one uvloop ``asyncio.Protocol`` per
connection that does the upgrade by hand, writes pre-built masked frames and
counts the server's frames from their 2-10 byte headers, skipping payloads,
with no per-message Python objects.  Its cost is mostly one read or write
per few frames (trials: 3-5 us per 16 B message, the servers 5-17 us), and
each line prints its share of its CPU: near 100% means the client, not the
server, set that cell's rate, which is then a floor.  It does not speak
permessage-deflate, so deflate-on cells always use ``--client websockets``
(the websockets library's asyncio client, one message in flight per
connection), which is the bottleneck there at ~20-25k round trips/s.

Method (as bench/http.py): a fresh server per measurement, pinned to CPU 0
with taskset, the client pinned to CPU 1; servers interleaved round-robin
inside each repeat with the order rotated between repeats.  Server CPU is
utime+stime of the server's process tree from /proc before and after the
measured window, divided by the messages the server handled (an echo counts
as one message in and one out).  The raw client stops asking at the end of
the window and waits for what is still in flight, so every message the
server handled is counted.
"""

from __future__ import annotations

import os
import sys

# As a script, sys.path[0] is bench/, whose http.py would shadow the stdlib's
# http (which the websockets client imports); the repo root takes its place,
# so the raw client finds the in-place fasterapi build.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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


# -- the raw client (deflate off) --

# RFC 6455 §1.3's worked example: a fixed key is fine for a benchmark (the
# nonce only guards against caching intermediaries) and the answer is known.
_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
_MASK = b"\x37\xfa\x21\x3d"          # clients must mask (§5.3); any key will do


class RawClient(asyncio.Protocol):
    """One connection: a hand-made upgrade, then WINDOW requests in flight.

    A request is one pre-built masked frame that the server answers with UNIT
    data messages (the echo: 1; "push:N:SIZE": N).  The server's frames are
    counted from their headers only (§5.2: 2 bytes, plus 2 or 8 of extended
    length; servers never mask), their payloads skipped.  Whenever answers
    complete and half the window or more is free, the window is filled again
    in one write.
    """

    def __init__(self, port: int, batches: list[bytes], unit: int) -> None:
        self.port = port
        self.batches = batches      # batches[k]: k request frames, pre-joined
        self.window = len(batches) - 1
        # Refill only once half the window is free: fewer, larger writes, so
        # the client spends fewer syscalls per message than the server.
        self.refill_at = max(1, self.window // 2)
        self.unit = unit
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened = loop.create_future()   # set after a valid 101
        self.drained = loop.create_future()  # set when stop() finds nothing owed
        self.head = b""          # handshake bytes, then a partial frame header
        self.upgraded = False
        self.skip = 0            # payload bytes of the current frame still to come
        self.skip_counts = False  # that frame ends a data message
        self.sent = 0            # requests written
        self.received = 0        # data messages completed
        self.received_bytes = 0  # their payload bytes (for --check)
        self.stopping = False
        self.closed = False      # close() called: losing TCP is expected

    def connection_made(self, transport: asyncio.Transport) -> None:
        """Send the upgrade request (RFC 6455 §4.1)."""
        self.transport = transport
        transport.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        b"Sec-WebSocket-Version: 13\r\n\r\n" % (self.port, _KEY))

    def start(self) -> None:
        """Fill the window."""
        self.sent = self.window
        self.transport.write(self.batches[self.window])

    def stop(self) -> None:
        """Ask for nothing more; ``drained`` resolves once all answers are in."""
        self.stopping = True
        if self.sent * self.unit == self.received and not self.drained.done():
            self.drained.set_result(None)

    def _refill(self) -> None:
        owed = self.sent * self.unit - self.received
        free = self.window - (owed + self.unit - 1) // self.unit
        if free >= self.refill_at:
            self.sent += free
            self.transport.write(self.batches[free])

    def data_received(self, data: bytes) -> None:
        """Count completed server messages; top the window up."""
        if not self.upgraded:
            data = self._handshake(data)
            if not data:
                return
        done = self._count(data)
        if done:
            self.received += done
            if not self.stopping:
                self._refill()
            elif self.sent * self.unit == self.received and not self.drained.done():
                self.drained.set_result(None)

    def _handshake(self, data: bytes) -> bytes:
        # Returns what followed the 101's head (already frames).
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return b""
        head, rest = self.head[:end], self.head[end + 4:]
        self.head = b""
        lines = head.split(b"\r\n")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        if not lines[0].startswith(b"HTTP/1.1 101 "):
            self._fail(f"handshake answered {lines[0]!r}")
        elif fields.get(b"sec-websocket-accept") != _ACCEPT:
            self._fail(f"bad Sec-WebSocket-Accept {fields.get(b'sec-websocket-accept')!r}")
        elif b"sec-websocket-extensions" in fields:
            # We offered none, so none may be in use (§9.1).
            self._fail(f"unrequested extensions {fields[b'sec-websocket-extensions']!r}")
        else:
            self.upgraded = True
            self.opened.set_result(None)
            return rest
        return b""

    def _count(self, data: bytes) -> int:
        # PERF: this loop is all the client does per message; it touches
        # only frame headers so its cost does not grow with the payload.
        if self.head:
            data = self.head + data
            self.head = b""
        n = len(data)
        done = 0
        pos = self.skip
        if pos:
            if pos > n:
                self.skip = pos - n
                return 0
            self.skip = 0
            done = self.skip_counts
        while pos < n:
            start = pos
            if pos + 2 > n:
                self.head = data[start:]
                break
            b0 = data[pos]
            length = data[pos + 1]
            if length & 0x80:
                self._fail("masked server frame (RFC 6455 §5.1)")
                return 0
            if length < 126:
                pos += 2
            elif length == 126:
                if pos + 4 > n:
                    self.head = data[start:]
                    break
                length = data[pos + 2] << 8 | data[pos + 3]
                pos += 4
            else:
                if pos + 10 > n:
                    self.head = data[start:]
                    break
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                pos += 10
            opcode = b0 & 0x0F
            counts = False
            if opcode < 3:            # continuation, text, binary
                self.received_bytes += length
                counts = b0 & 0x80 != 0      # FIN: a message is complete
            elif opcode == 9 and pos + length <= n:
                # Answer a keepalive ping (§5.5.2) so long runs survive.
                self.transport.write(_build_frame(10, data[pos:pos + length], mask=_MASK))
            elif opcode == 8:
                self._fail("the server closed the connection")
            pos += length
            if pos > n:
                self.skip = pos - n
                self.skip_counts = counts
                break
            done += counts
        return done

    def _fail(self, why: str) -> None:
        exc = ConnectionError(why)
        for fut in (self.opened, self.drained):
            if not fut.done():
                fut.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Losing the connection before close() is an error."""
        if not self.closed:
            self._fail(f"connection lost: {exc}")

    def close(self) -> None:
        """Close politely (§5.5.1: a masked Close), then drop TCP."""
        self.closed = True
        if not self.transport.is_closing():
            self.transport.write(_build_frame(8, (1000).to_bytes(2, "big"), mask=_MASK))
            self.transport.close()


def _build_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    from fasterapi._websocket import build_frame

    return build_frame(opcode, payload, mask=mask)


def raw_requests(workload: str, size: int, window: int) -> tuple[list[bytes], int]:
    """(batches, unit): ``batches[k]`` is k request frames joined, ``unit`` the
    data messages the server sends for each request."""
    if workload == "echo":
        payload = os.urandom(size // 2).hex().encode()[:size]
        frame, unit = _build_frame(2, payload, mask=_MASK), 1
    else:
        unit = burst_size(size)
        frame = _build_frame(1, f"push:{unit}:{size}".encode(), mask=_MASK)
    return [frame * k for k in range(window + 1)], unit


async def raw_run(port: int, workload: str, size: int, seconds: float | None, conns: int,
                  window: int, requests: int | None = None) -> tuple[int, int]:
    """Drive CONNS raw connections for ``seconds``, or until each has had
    ``requests`` requests answered; return (messages, payload bytes) received."""
    loop = asyncio.get_running_loop()
    batches, unit = raw_requests(workload, size, window)
    clients = []
    for _ in range(conns):
        _, c = await loop.create_connection(lambda: RawClient(port, batches, unit), "127.0.0.1", port)
        clients.append(c)
    try:
        await asyncio.gather(*(c.opened for c in clients))
        if requests is not None:
            # --check: a known total.  A window bigger than what is left
            # would overshoot, so send exactly `requests` per connection.
            for c in clients:
                c.sent = requests
                c.stopping = True
                c.transport.write(batches[1] * requests)
            await asyncio.wait_for(asyncio.gather(*(c.drained for c in clients)), 30)
        else:
            for c in clients:
                c.start()
            await asyncio.sleep(seconds)
            for c in clients:
                c.stop()
            await asyncio.wait_for(asyncio.gather(*(c.drained for c in clients)), 30)
        return sum(c.received for c in clients), sum(c.received_bytes for c in clients)
    finally:
        for c in clients:
            c.close()


def burst_size(size: int) -> int:
    """Messages per "push" request (fewer when they are large)."""
    return 200 if size <= 1024 else 20


# -- the websockets client (any deflate) --

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

    burst = burst_size(size)
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
    raw = args.client == "raw" and not deflate
    window = args.window if workload == "echo" else 2

    def run(seconds: float) -> int:
        if raw:
            return asyncio.run(raw_run(port, workload, size, seconds, args.conns, window))[0]
        client = _echo if workload == "echo" else _broadcast
        n, ext = asyncio.run(client(port, size, deflate, seconds, args.conns))
        negotiated.append("permessage-deflate" in ext)
        return n

    negotiated: list[bool] = []
    try:
        run(0.5)                                                        # warm-up
        c0, t0, k0 = cpu_seconds(proc.pid), time.monotonic(), time.process_time()
        n = run(args.seconds)
        elapsed, cpu = time.monotonic() - t0, cpu_seconds(proc.pid) - c0
        client_cpu = time.process_time() - k0
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    msgs = n * 2 if workload == "echo" else n
    # The client's own CPU per message shows whether it, not the server,
    # set the pace (it should be well under the server's).
    return {"rate": n / elapsed, "us_per_msg": cpu / msgs * 1e6 if msgs else float("nan"),
            "client_us": client_cpu / msgs * 1e6 if msgs else float("nan"),
            "client_busy": client_cpu / elapsed, "server_busy": cpu / elapsed,
            "deflate": negotiated[-1] if negotiated else False,
            "client": "raw" if raw else "websockets"}


def check(args) -> bool:
    """Run the raw client against each server for known totals; True if every
    count and byte total matches what the server was asked to send."""
    ok = True
    cases = [("echo", 16, 1000), ("echo", 200, 1000), ("echo", 65536, 50),
             ("broadcast", 16, 5), ("broadcast", 200, 5), ("broadcast", 65536, 5)]
    for name in args.servers.split(","):
        if name == "granian" and not shutil.which("granian"):
            continue
        proc, port = start(name, False, args.server_cpu)
        try:
            for workload, size, requests in cases:
                n, nbytes = asyncio.run(raw_run(port, workload, size, None, args.conns,
                                                args.window, requests))
                want = args.conns * requests * (1 if workload == "echo" else burst_size(size))
                good = (n, nbytes) == (want, want * size)
                ok &= good
                print(f"  {name:9} {workload:9} {size:6} B: {n} messages, {nbytes} bytes; "
                      f"expected {want}, {want * size}: {'ok' if good else 'MISMATCH'}", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="fasterapi,uvicorn,granian")
    ap.add_argument("--workloads", default="echo,broadcast")
    ap.add_argument("--sizes", default="16B,64KiB")
    ap.add_argument("--deflate", default="off,on")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--client", choices=("raw", "websockets"), default="raw",
                    help="load client for deflate-off cells (deflate-on always uses websockets)")
    ap.add_argument("--window", type=int, default=16,
                    help="echo messages in flight per connection (raw client)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="1 repeat of 2 s (a trial, not a result)")
    ap.add_argument("--check", action="store_true",
                    help="verify the raw client's counts against known totals, then exit")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.seconds = 1, 2.0
    if args.client_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.client_cpu})
    try:
        import uvloop
    except ImportError:
        pass
    else:
        # The raw client's per-message cost is mostly the event loop's.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.check:
        sys.exit(0 if check(args) else 1)
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
                      f"{res['rate']:9.0f}/s {res['us_per_msg']:7.1f} us/msg  "
                      f"(server {res['server_busy']:.0%} of a CPU; {res['client']} client "
                      f"{res['client_us']:.1f} us/msg, {res['client_busy']:.0%})"
                      f"{'' if res['client'] == 'raw' or res['deflate'] == d else '  (deflate not negotiated)'}",
                      flush=True)
    print(f"\nmedians over {args.repeats} repeat(s) of {args.seconds:g} s, {args.conns} connections "
          f"(raw client: echo window {args.window}, 2 bursts in flight), server on CPU {args.server_cpu}:")
    print(f"| workload | size | deflate | client | {' | '.join(f'{n} /s | {n} us/msg' for n in servers)} |")
    print("|" + "---|" * (4 + 2 * len(servers)))
    for w, s, d in cells:
        client = results[(w, s, d, servers[0])][0]["client"]
        row = [w, s, "on" if d else "off", client]
        for name in servers:
            rs = results[(w, s, d, name)]
            neg = client == "raw" or all(x["deflate"] == d for x in rs)
            row.append(f"{statistics.median(x['rate'] for x in rs):.0f}")
            row.append(f"{statistics.median(x['us_per_msg'] for x in rs):.1f}" + ("" if neg else "*"))
        print("| " + " | ".join(row) + " |")
    print("\n* deflate was not negotiated by that server; deflate-on cells use the websockets client "
          "(the raw client speaks no permessage-deflate), which caps them near its own rate")


if __name__ == "__main__":
    main()
