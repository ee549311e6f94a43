"""Micro-benchmarks of fasterapi's pools against plain object creation.

One question: is acquire+release from a pool cheaper than making the object
the ordinary way (and letting it die)?  Asked twice:

1. C level: a Cython loop calling the ``_pool.pxd`` fast paths
   (``dictpool_acquire``/``dictpool_release`` ...), which is how the server
   uses the pools, beside a Cython loop that builds ``{}``, ``(a, b)``,
   ``(a, b, c, d)`` or an 8 KiB zeroed bytearray.
2. Python level: ``acquire()``/``release()`` as bound methods and the
   ``with pool.dict() as d`` context managers, beside ``{}``, ``(a, b)``,
   ``bytearray(8192)`` in the same ``for`` loop.  The "loop overhead" row
   is the same loop calling two trivial builtins: a floor under every
   Python-level number.

CPython already keeps free lists of dicts (80) and of tuples of each length
below 20 (2000 each), so a fresh small dict or tuple is a pop from a free
list too; the rows' notes say where the pool loses.  Numbers are medians of
several repeats from ``time.perf_counter_ns``, per acquire+release (or per
create+free).  The machine is shared: read ratios, not absolutes;
``--cpu-time`` times with ``time.thread_time_ns`` instead, which leaves out
the time other processes take from us and is much steadier on a busy box.
``run()`` is imported by bench/primitives.py; run this file for this section
alone:

    python bench/bench_pool.py [--quick] [--cpu-time]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

try:
    import fasterapi  # noqa: F401
except ImportError:  # run from a checkout: use the in-place build
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import arg_parser, loop_floor, per_op_ns, row

from fasterapi import _pool
from fasterapi._pool import BufferPool, DictPool, TuplePool

SECTION = "pool"
BUF = 8192

# The design document's claim, quoted beside our numbers.
CLAIM = "design doc: PyObject creation 500 ns -> 50 ns with pooling"


_clock = time.perf_counter_ns


def _row(name: str, value: float, note: str = "") -> dict:
    return row(SECTION, name, round(value, 1), "ns/op", note)


def _per_op(fn, n: int, repeats: int) -> float:
    """ns per op after one warm call (fills the pool and the free lists); wall
    time unless --cpu-time."""
    return per_op_ns(fn, n, repeats, _clock)


def _verdict(pool_ns: float, plain_ns: float) -> str:
    ratio = plain_ns / pool_ns if pool_ns else float("inf")
    if ratio >= 1.1:
        return f"pool wins, {ratio:.1f}x"
    if ratio <= 1 / 1.1:
        return f"pool loses, {1 / ratio:.1f}x slower"
    return "a tie"


# ---- 1. C level ------------------------------------------------------------------


def _c_level(n: int, repeats: int) -> list[dict]:
    rows = []
    item = object()
    dp = DictPool(64)
    tp = TuplePool(64, 4)
    bz = BufferPool(BUF, 64)
    bn = BufferPool(BUF, 64, zero=False)

    new_dict = _per_op(lambda: _pool._bench_dict_new(n), n, repeats)
    pool_dict = _per_op(lambda: _pool._bench_dict_pool(dp, n), n, repeats)
    rows.append(_row("C: {} create+free", new_dict,
                     "PyDict_New: a pop from CPython's dict free list"))
    rows.append(_row("C: DictPool acquire+release", pool_dict,
                     f"{_verdict(pool_dict, new_dict)}; release pays a refcount check, "
                     "a clear, 2 ring CASes and 2 atomic counter adds"))

    for arity in (2, 4):
        new_t = _per_op(lambda a=arity: _pool._bench_tuple_new(n, a, item), n, repeats)
        pool_t = _per_op(lambda a=arity: _pool._bench_tuple_pool(tp, n, a, item), n, repeats)
        rows.append(_row(f"C: {arity}-tuple create+free", new_t,
                         "CPython's tuple free list (2000 per length)"))
        rows.append(_row(f"C: TuplePool {arity}-tuple acquire+release", pool_t,
                         _verdict(pool_t, new_t)))

    new_b = _per_op(lambda: _pool._bench_buffer_new(n, BUF), n, repeats)
    pool_bz = _per_op(lambda: _pool._bench_buffer_pool(bz, n), n, repeats)
    pool_bn = _per_op(lambda: _pool._bench_buffer_pool(bn, n), n, repeats)
    rows.append(_row(f"C: bytearray({BUF}) create+zero+free", new_b,
                     "malloc + memset + free: no free list for 8 KiB"))
    rows.append(_row("C: BufferPool acquire+release, zero=True", pool_bz,
                     f"{_verdict(pool_bz, new_b)}; the memset stays, the malloc/free go"))
    rows.append(_row("C: BufferPool acquire+release, zero=False", pool_bn,
                     f"{_verdict(pool_bn, new_b)}; {CLAIM}: here "
                     f"{new_b:.0f} ns -> {pool_bn:.0f} ns"))
    return rows


# ---- 2. Python level ------------------------------------------------------------------


def _py_new_dict(n):
    def go():
        for _ in range(n):
            d = {}
        return d

    return go


def _py_pool(acquire, release, n):
    def go():
        for _ in range(n):
            d = acquire()
            release(d)

    return go


def _py_lease(make, n):
    def go():
        for _ in range(n):
            with make() as d:
                pass
        return d

    return go


def _py_new_tuple2(n):
    def go():
        a, b = 1, "x"
        for _ in range(n):
            t = (a, b)  # built at run time: a and b are variables
        return t

    return go


def _py_new_tuple4(n):
    def go():
        a, b = 1, "x"
        for _ in range(n):
            t = (a, b, a, b)
        return t

    return go


def _py_pool_tuple2(pool, n):
    acquire, release = pool.acquire, pool.release

    def go():
        a, b = 1, "x"
        for _ in range(n):
            t = acquire(a, b)
            release(t)

    return go


def _py_pool_tuple4(pool, n):
    acquire, release = pool.acquire, pool.release

    def go():
        a, b = 1, "x"
        for _ in range(n):
            t = acquire(a, b, a, b)
            release(t)

    return go


def _py_lease_tuple2(pool, n):
    make = pool.tuple

    def go():
        a, b = 1, "x"
        for _ in range(n):
            with make(a, b) as t:
                pass
        return t

    return go


def _py_new_buffer(n):
    def go():
        for _ in range(n):
            b = bytearray(BUF)
        return b

    return go


def _python_level(n: int, repeats: int) -> list[dict]:
    rows = []
    floor = _per_op(loop_floor(n), n, repeats)
    rows.append(_row("Py: loop overhead (2 trivial calls)", floor,
                     "a floor under every Py: row"))

    dp = DictPool(64)
    new_d = _per_op(_py_new_dict(n), n, repeats)
    pool_d = _per_op(_py_pool(dp.acquire, dp.release, n), n, repeats)
    lease_d = _per_op(_py_lease(dp.dict, n), n, repeats)
    rows.append(_row("Py: {}", new_d, "one BUILD_MAP opcode, CPython's dict free list"))
    rows.append(_row("Py: DictPool acquire()+release()", pool_d, _verdict(pool_d, new_d)))
    rows.append(_row("Py: with DictPool.dict()", lease_d,
                     f"{_verdict(lease_d, new_d)}; + a lease object and 2 method calls"))

    tp = TuplePool(64, 4)
    new_t2 = _per_op(_py_new_tuple2(n), n, repeats)
    pool_t2 = _per_op(_py_pool_tuple2(tp, n), n, repeats)
    lease_t2 = _per_op(_py_lease_tuple2(tp, n), n, repeats)
    new_t4 = _per_op(_py_new_tuple4(n), n, repeats)
    pool_t4 = _per_op(_py_pool_tuple4(tp, n), n, repeats)
    rows.append(_row("Py: (a, b)", new_t2, "one BUILD_TUPLE opcode"))
    rows.append(_row("Py: TuplePool acquire(a, b)+release()", pool_t2,
                     f"{_verdict(pool_t2, new_t2)}; the call packs *items into a "
                     "tuple anyway: never worth it from Python"))
    rows.append(_row("Py: with TuplePool.tuple(a, b)", lease_t2, _verdict(lease_t2, new_t2)))
    rows.append(_row("Py: (a, b, a, b)", new_t4, ""))
    rows.append(_row("Py: TuplePool acquire(a, b, a, b)+release()", pool_t4,
                     _verdict(pool_t4, new_t4)))

    bz = BufferPool(BUF, 64)
    bn = BufferPool(BUF, 64, zero=False)
    new_b = _per_op(_py_new_buffer(n), n, repeats)
    pool_bz = _per_op(_py_pool(bz.acquire, bz.release, n), n, repeats)
    pool_bn = _per_op(_py_pool(bn.acquire, bn.release, n), n, repeats)
    lease_b = _per_op(_py_lease(bz.buffer, n), n, repeats)
    rows.append(_row(f"Py: bytearray({BUF})", new_b, "calloc + free"))
    rows.append(_row("Py: BufferPool acquire()+release(), zero=True", pool_bz,
                     _verdict(pool_bz, new_b)))
    rows.append(_row("Py: BufferPool acquire()+release(), zero=False", pool_bn,
                     f"{_verdict(pool_bn, new_b)}; {CLAIM}: here "
                     f"{new_b:.0f} ns -> {pool_bn:.0f} ns"))
    rows.append(_row("Py: with BufferPool.buffer(), zero=True", lease_b,
                     _verdict(lease_b, new_b)))
    return rows


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows for bench/primitives.py: ns per acquire+release (or create+free)."""
    n = 20_000 if quick else 200_000
    repeats = 3 if quick else 7
    return _c_level(n, repeats) + _python_level(n, repeats)


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__, "fewer loops and repeats")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with thread_time_ns (steadier on a shared machine)")
    args = parser.parse_args(argv)
    if args.cpu_time:
        global _clock
        _clock = time.thread_time_ns
    rows = run(quick=args.quick)
    width = max(len(r["name"]) for r in rows)
    print(f"{'measurement':<{width}}  {'ns/op':>8}  note")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['value']:>8.1f}  {r['note']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
