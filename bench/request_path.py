"""The server's user-space cost per request, without sockets or wrk.

    python -m bench.request_path                  # plaintext app, 64 connections
    python -m bench.request_path --app echo --rounds 3000
    python -m bench.request_path --app fastapi --server uvicorn
    python -m bench.request_path --instructions   # under valgrind: steady counts

Drives ``fasterapi.protocol.HttpProtocol`` (or uvicorn's httptools protocol,
``--server uvicorn``) on a uvloop loop with in-memory transports, the way
uvloop calls it (``get_buffer``/``buffer_updated`` for ours, ``data_received``
for uvicorn's), one request per connection per round, and reports CPU µs per
request.  Kernel TCP is
left out on purpose: it is the same for every server (see the floor in
bench/http.py), so a change to the request path can be judged in seconds.  On
this shared host the timings still drift with the host's load (uvicorn's read
13.8 and 25 µs an hour apart); use --instructions to compare builds.  The wrk
benchmark stays the measure that counts; this one only says which way a
change moves it.

``--instructions`` counts instructions instead of timing (valgrind's
callgrind, Debian package ``valgrind``): the program runs twice, with N and
2N rounds, and the difference divided by N rounds' requests leaves start-up
and imports out.  The count does not move with the host's load, so changes
of 1 % show; it is not time (a cache miss costs one instruction).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
import types

import uvloop

from bench import apps
from fasterapi.config import Config
from fasterapi.protocol import HttpProtocol

REQUESTS = {
    "plaintext": b"GET / HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: wrk\r\n\r\n",
    "echo": (b"POST / HTTP/1.1\r\nHost: localhost:8000\r\nContent-Length: 10240\r\n\r\n"
             + b"x" * 10240),
    "fastapi": b"GET /json HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: wrk\r\n\r\n",
}
APPS = {"plaintext": "plaintext", "echo": "echo", "fastapi": "fastapi_json"}


class Transport:
    """Counts the responses written; wakes the driver when a round is done."""

    def __init__(self, counter):
        self.counter = counter

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data):
        self.counter.wrote()

    def writelines(self, items):
        self.counter.wrote()

    def is_closing(self):
        return False

    def _ignore(self, *args, **kwargs):
        pass

    # Flow control and close never matter here: the driver never overfills.
    close = pause_reading = resume_reading = set_write_buffer_limits = _ignore


class Counter:
    def __init__(self):
        self.left = 0
        self.done = None

    def wrote(self):
        self.left -= 1
        if self.left == 0 and self.done is not None:
            self.done.set_result(None)


def fasterapi_protocol(app, state):
    """A factory of our protocol objects (configured as `fasterapi run` would
    be for bench/http.py), and how to feed one."""
    cfg = Config(app=app, access_log=False, proxy_headers=False, lifespan="off",
                 log_level="warning")
    cfg.load()

    def make():
        return HttpProtocol(config=cfg, server_state=state)

    def feed(p, request, n):
        buf = p.get_buffer(-1)
        buf[:n] = request
        p.buffer_updated(n)
    return make, feed


def uvicorn_protocol(app, state):
    """uvicorn's httptools protocol (as bench/http.py runs it: no access log)."""
    from uvicorn.config import Config as UvicornConfig
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    cfg = UvicornConfig(app, http="httptools", loop="uvloop", access_log=False,
                 proxy_headers=False, lifespan="off", log_level="warning")
    cfg.load()

    def make():
        return HttpToolsProtocol(config=cfg, server_state=state, app_state={})

    def feed(p, request, n):
        p.data_received(request)
    return make, feed


PROTOCOLS = {"fasterapi": fasterapi_protocol, "uvicorn": uvicorn_protocol}


async def run(server: str, app, request: bytes, conns: int, rounds: int) -> float:
    """CPU seconds per request over ``rounds`` rounds of one request per connection."""
    loop = asyncio.get_running_loop()
    counter = Counter()
    state = types.SimpleNamespace(total_requests=0, connections=set(), tasks=set(), root_path="",
                                  default_headers=[])
    make, feed = PROTOCOLS[server](app, state)
    protos = []
    for _ in range(conns):
        p = make()
        p.connection_made(Transport(counter))
        protos.append(p)
    n = len(request)
    t0 = time.process_time()
    for _ in range(rounds):
        counter.left = conns
        counter.done = loop.create_future()
        for p in protos:
            feed(p, request, n)
        await counter.done
    elapsed = time.process_time() - t0
    for p in protos:
        p.connection_lost(None)
    return elapsed / (conns * rounds)


def instructions(server: str, app: str, conns: int, rounds: int) -> float:
    """Instructions per request under callgrind (see the module docstring)."""
    def total(r: int) -> int:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, "-m", "bench.request_path", "--server", server, "--app", app,
               "--conns", str(conns), "--rounds", str(r), "--repeats", "1"]
        # A fixed hash seed: with a random one, set and dict probing moves the
        # count by up to 1 % from run to run.
        env = dict(os.environ, PYTHONHASHSEED="0")
        err = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stderr
        return int(re.search(r"Collected : (\d+)", err).group(1))
    return (total(2 * rounds) - total(rounds)) / (rounds * conns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app", choices=sorted(REQUESTS), default="plaintext")
    ap.add_argument("--server", choices=sorted(PROTOCOLS), default="fasterapi")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--rounds", type=int, help="2000; 200 with --instructions")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions per request under valgrind (--rounds defaults to 200)")
    args = ap.parse_args()
    rounds = args.rounds or (200 if args.instructions else 2000)
    if args.instructions:
        n = instructions(args.server, args.app, args.conns, rounds)
        print(f"{args.server} {args.app}: {n:,.0f} instructions/request "
              f"(callgrind, {sys.version.split()[0]}, {rounds} vs {2 * rounds} rounds x {args.conns} conns)")
        return
    app = getattr(apps, APPS[args.app])
    samples = []
    for _ in range(args.repeats):
        loop = uvloop.new_event_loop()
        try:
            samples.append(loop.run_until_complete(run(args.server, app, REQUESTS[args.app], args.conns,
                                                        rounds)))
        finally:
            loop.close()
    us = sorted(s * 1e6 for s in samples)
    print(f"{args.server} {args.app}: {statistics.median(us):.2f} µs/request "
          f"(min {us[0]:.2f}, max {us[-1]:.2f}, {args.repeats} x {rounds} rounds "
          f"x {args.conns} conns)")


if __name__ == "__main__":
    main()
