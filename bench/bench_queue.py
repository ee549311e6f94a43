"""Micro-benchmarks of fasterapi's ring queues against the standard library.

Three questions, one section each:

1. What does one push+pop cost on one thread?  At the C level (a nogil
   Cython loop over the ring functions), and through Python (``try_push`` /
   ``try_pop``) next to ``collections.deque``, ``queue.SimpleQueue``,
   ``queue.Queue`` and ``asyncio.Queue``.  Python-level rows include the same
   ``for`` loop and bound-method calls; the "loop overhead" row says how much
   of each number that is.
2. How many items per second cross between C threads without the GIL?
3. How many cross between Python threads (GIL held for each call)?

Numbers are medians of several repeats from ``time.perf_counter_ns``.  The
machine is shared and may have fewer cores than the threads here, so read
ratios, not absolutes.  ``run()`` is imported by bench/primitives.py; run
this file directly for this section alone:

    python bench/bench_queue.py [--quick]
"""

from __future__ import annotations

import asyncio
import collections
import queue
import statistics
import sys
import threading
import time
from functools import partial
from pathlib import Path

try:
    import fasterapi  # noqa: F401
except ImportError:  # run from a checkout: use the in-place build
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import loop_floor, main, median_ns, row

from fasterapi import _queue
from fasterapi._queue import MPMCQueue, SPSCQueue

SECTION = "queue"
_row = partial(row, SECTION)   # (name, value, unit, note="")


# ---- 1. one thread ---------------------------------------------------------------


def _python_pair(push, pop, n: int):
    """A closure doing n rounds of push(x); pop(), with both methods bound."""

    def go():
        x = object()
        for _ in range(n):
            push(x)
            pop()

    return go


def _single_thread_rows(n_c: int, n_py: int, repeats: int) -> list[dict]:
    rows = []
    for kind in ("spsc", "mpmc"):
        secs = statistics.median(_queue._c_push_pop_loop(kind, n_c) for _ in range(repeats))
        rows.append(
            _row(f"{kind} push+pop, C level, 1 thread", secs * 1e9 / n_c, "ns/item",
                 "nogil Cython loop over the ring functions; MPMC pays two CAS")
        )

    candidates = []
    for cls in (SPSCQueue, MPMCQueue):
        q = cls(1024)
        candidates.append((f"{cls.__name__} try_push+try_pop", q.try_push, q.try_pop, ""))
    d = collections.deque()
    candidates.append(("collections.deque append+popleft", d.append, d.popleft,
                       "unbounded, not a cross-thread handoff by itself"))
    sq = queue.SimpleQueue()
    candidates.append(("queue.SimpleQueue put+get", sq.put, sq.get, "C, unbounded"))
    qq = queue.Queue(1024)
    candidates.append(("queue.Queue put_nowait+get_nowait", qq.put_nowait, qq.get_nowait,
                       "pure Python, lock + conditions"))
    aq = asyncio.Queue(1024)
    candidates.append(("asyncio.Queue put_nowait+get_nowait", aq.put_nowait, aq.get_nowait,
                       "single thread only"))

    overhead = median_ns(loop_floor(n_py), repeats) / n_py
    rows.append(_row("python loop floor (two len() calls)", overhead, "ns/item",
                     "the loop and call cost inside every Python-level row below"))
    for name, push, pop, note in candidates:
        ns = median_ns(_python_pair(push, pop, n_py), repeats) / n_py
        rows.append(_row(name, ns, "ns/item", note))
    return rows


# ---- 2. C threads, no GIL ---------------------------------------------------------


def _nogil_rows(items: int, repeats: int) -> list[dict]:
    rows = []
    for kind, p, c in (("spsc", 1, 1), ("mpmc", 1, 1), ("mpmc", 2, 2), ("mpmc", 4, 4)):
        runs = []
        for _ in range(repeats):
            secs, ok = _queue._nogil_throughput(kind, p, c, items)
            if not ok:
                raise AssertionError(f"{kind} {p}x{c}: items lost or duplicated")
            runs.append(secs)
        rows.append(
            _row(f"{kind} {p}P/{c}C, C threads (nogil)", items / statistics.median(runs),
                 "items/s", "capacity 1024; pthreads, spin then sched_yield")
        )
    return rows


# ---- 3. Python threads ------------------------------------------------------------


def _python_threads_once(make, push_name: str, pop_name: str, producers: int,
                         consumers: int, items: int) -> float:
    """Seconds to move `items` ints from producer to consumer Python threads."""
    q = make()
    stop = object()
    per = items // producers
    start = threading.Barrier(producers + consumers + 1)

    def produce():
        push = getattr(q, push_name)
        start.wait()
        for i in range(per):
            push(i)

    def consume():
        pop = getattr(q, pop_name)
        start.wait()
        while pop() is not stop:
            pass

    prod = [threading.Thread(target=produce) for _ in range(producers)]
    cons = [threading.Thread(target=consume) for _ in range(consumers)]
    for t in prod + cons:
        t.start()
    start.wait()
    t0 = time.perf_counter_ns()
    for t in prod:
        t.join()
    push = getattr(q, push_name)
    for _ in range(consumers):
        push(stop)
    for t in cons:
        t.join()
    return (time.perf_counter_ns() - t0) / 1e9


def _python_thread_rows(items: int, repeats: int) -> list[dict]:
    cases = [
        ("SPSCQueue push/pop", lambda: SPSCQueue(1024), "push", "pop", 1, 1),
        ("queue.SimpleQueue put/get", queue.SimpleQueue, "put", "get", 1, 1),
        ("MPMCQueue push/pop", lambda: MPMCQueue(1024), "push", "pop", 2, 2),
        ("queue.SimpleQueue put/get", queue.SimpleQueue, "put", "get", 2, 2),
        ("queue.Queue put/get", lambda: queue.Queue(1024), "put", "get", 2, 2),
    ]
    rows = []
    for name, make, push, pop, p, c in cases:
        secs = statistics.median(
            _python_threads_once(make, push, pop, p, c, items) for _ in range(repeats)
        )
        rows.append(_row(f"{name}, {p}P/{c}C Python threads", items / secs, "items/s",
                         "GIL held per call; blocking calls wait without it"))
    return rows


def run(quick: bool = False) -> list[dict]:
    """Measure everything; return rows for bench/primitives.py.

    Each row is ``{"section": "queue", "name", "value", "unit", "note"}`` with
    unit "ns/item" (lower is better) or "items/s" (higher is better).
    `quick` cuts sizes and repeats about tenfold, for a smoke run.
    """
    repeats = 3 if quick else 7
    n_c = 200_000 if quick else 2_000_000
    n_py = 20_000 if quick else 200_000
    # PERF: below ~1M items the nogil runs measure thread wake-up, not the
    # ring (SPSC 1P/1C: ~12M items/s at 200k items, ~75M items/s at 1M).
    nogil_items = 100_000 if quick else 1_000_000
    cross = 20_000 if quick else 200_000
    rows = _single_thread_rows(n_c, n_py, repeats)
    rows += _nogil_rows(nogil_items, repeats)
    rows += _python_thread_rows(cross, 3 if quick else 5)
    return rows


if __name__ == "__main__":
    raise SystemExit(main(__doc__, run, "smaller sizes, fewer repeats",
                          value_width=14, unit_width=8))
