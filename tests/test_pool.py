"""fasterapi._pool: DictPool, TuplePool, BufferPool.

What matters most is that a pool never hands out an object someone else may
still hold, so most tests build such a holder (another variable, a list, a
memoryview, a dict key, a finalizer) and check the object is left alone.
Reuse is checked by identity, and stats() by exact numbers.
"""

from __future__ import annotations

import gc
import sys
import threading
import tracemalloc
import weakref
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fasterapi import _pool

BufferPool, DictPool, PoolLease, TuplePool = (
    _pool.BufferPool, _pool.DictPool, _pool.PoolLease, _pool.TuplePool)


def stats(pool, **expected):
    """The pool's stats, with the keys not given expected to be zero."""
    s = pool.stats()
    want = dict.fromkeys(("hits", "misses", "releases", "drops", "in_use", "high_water"), 0)
    want.update(expected)
    assert s == want
    return s


# ---- construction ----------------------------------------------------------


def test_defaults_and_properties():
    d = DictPool()
    assert d.size == 2048 and len(d) == 0
    t = TuplePool()
    assert (t.size_per_arity, t.max_arity) == (512, 8) and len(t) == 0
    b = BufferPool()
    assert (b.buffer_size, b.count, b.zero) == (8192, 1024, True) and len(b) == 0
    stats(d)
    stats(t)
    stats(b)


@pytest.mark.parametrize(
    "make, exc",
    [
        (lambda: DictPool(-1), ValueError),
        (lambda: DictPool("8"), TypeError),
        (lambda: DictPool(2.0), TypeError),
        (lambda: DictPool(1 << 70), OverflowError),
        (lambda: DictPool(1 << 62), ValueError),      # above the ring's MAX_CAPACITY
        (lambda: TuplePool(-1), ValueError),
        (lambda: TuplePool(4, 0), ValueError),
        (lambda: TuplePool(4, 65), ValueError),
        (lambda: BufferPool(0), ValueError),
        (lambda: BufferPool(16, -1), ValueError),
        (lambda: BufferPool(None), TypeError),
    ],
)
def test_bad_arguments(make, exc):
    with pytest.raises(exc):
        make()


def test_prefill_and_warm():
    assert len(DictPool(8, prefill=True)) == 8
    # A size that is not a power of two is kept exactly (the ring is 8).
    p = DictPool(5, prefill=True)
    assert len(p) == 5
    assert p.warm(10) == 0
    stats(p)  # warming is neither a hit nor a release

    q = DictPool(5)
    assert q.warm(3) == 3 and q.warm(10) == 2 and len(q) == 5
    assert [q.acquire() for _ in range(5)] == [{}] * 5
    stats(q, hits=5, in_use=5, high_water=5)

    t = TuplePool(3, 4, prefill=True)
    assert len(t) == 12 and [t.pooled(k) for k in range(6)] == [0, 3, 3, 3, 3, 0]
    t2 = TuplePool(3, 4)
    assert t2.warm(2, arity=3) == 2 and t2.pooled(3) == 2 and len(t2) == 2
    with pytest.raises(ValueError):
        t2.warm(1, arity=5)
    with pytest.raises(ValueError):
        t2.warm(1, arity=0)

    b = BufferPool(32, 3, prefill=True)
    assert len(b) == 3
    assert all(x == bytearray(32) for x in (b.acquire(), b.acquire(), b.acquire()))
    stats(b, hits=3, in_use=3, high_water=3)


def test_size_zero_keeps_nothing():
    p = DictPool(0)
    assert p.release({}) is False and len(p) == 0
    stats(p, drops=1, in_use=-1)
    b = BufferPool(8, 0, prefill=True)
    assert len(b) == 0


def test_repr():
    p = DictPool(4)
    d = p.acquire()
    r = repr(p)
    assert r.startswith("<DictPool ") and "size=4" in r and "in_use=1" in r and "misses=1" in r
    assert p.release(d)
    assert "pooled=1" in repr(p)
    assert "max_arity=8" in repr(TuplePool())
    assert "buffer_size=8192" in repr(BufferPool()) and "zero=True" in repr(BufferPool())


# ---- DictPool ----------------------------------------------------------------


def test_dict_reuse_is_real_and_stats_exact():
    p = DictPool(4)
    d = p.acquire()
    assert d == {} and type(d) is dict
    stats(p, misses=1, in_use=1, high_water=1)
    first = id(d)
    d["a"] = 1
    d["b"] = [1, 2]
    assert p.release(d) is True
    assert d == {}  # cleared on release
    assert len(p) == 1
    stats(p, misses=1, releases=1, high_water=1)
    d = p.acquire()
    assert id(d) == first and d == {}
    stats(p, hits=1, misses=1, releases=1, in_use=1, high_water=1)


def test_dict_with_another_variable_is_not_reused():
    p = DictPool(4)
    d = p.acquire()
    d["k"] = "v"
    other = d
    assert p.release(d) is False
    assert other == {"k": "v"}  # left untouched for its other holder
    assert len(p) == 0
    assert p.acquire() is not other
    stats(p, misses=2, drops=1, in_use=1, high_water=1)


def test_dict_referenced_from_a_list_is_not_reused():
    p = DictPool(4)
    d = p.acquire()
    d["k"] = 1
    holder = [d]
    assert p.release(d) is False
    assert holder[0] == {"k": 1}
    assert len(p) == 0


def test_dict_used_as_a_value_is_not_reused():
    p = DictPool(4)
    d = p.acquire()
    scope = {"state": d}
    assert p.release(d) is False and scope["state"] is d


def test_double_release_is_refused():
    p = DictPool(4)
    d = p.acquire()
    assert p.release(d) is True
    assert p.release(d) is False  # the pool's own reference shows
    assert len(p) == 1
    a, b = p.acquire(), p.acquire()
    assert a is not b
    # Every release call counts as a return, so the bogus second one shows
    # as in_use one lower than the two objects really out.
    stats(p, hits=1, misses=2, releases=1, drops=1, in_use=1, high_water=1)


def test_dict_release_from_a_temporary_and_from_a_list_pop():
    p = DictPool(4)
    assert p.release(p.acquire()) is True
    objs = [p.acquire()]
    assert p.release(objs.pop()) is True
    assert len(p) == 1


@pytest.mark.parametrize("bad", [[], None, (), "x", type("D", (dict,), {})()])
def test_dict_release_wrong_type(bad):
    p = DictPool(4)
    with pytest.raises(TypeError):
        p.release(bad)
    stats(p)  # a refused call counts nothing
    assert len(p) == 0


def test_full_pool_drops():
    p = DictPool(2)
    assert [p.release({}) for _ in range(3)] == [True, True, False]
    assert len(p) == 2
    p3 = DictPool(3)  # ring of 4, bounded to 3
    assert [p3.release({}) for _ in range(5)] == [True, True, True, False, False]
    assert len(p3) == 3


def test_pool_is_fifo_so_objects_rotate():
    p = DictPool(4)
    a, b = {}, {}
    ia, ib = id(a), id(b)
    assert p.release(a) and p.release(b)
    del a, b
    assert id(p.acquire()) == ia
    assert id(p.acquire()) == ib


def test_finalizer_that_grabs_the_dict_during_clear():
    # clear() runs the values' __del__; one that takes a new reference to the
    # dict being released must make the pool drop it, not recycle it.
    p = DictPool(4)
    stolen = []

    class Thief:
        def __del__(self):
            stolen.append(sys._getframe(1).f_locals["d"])

    d = p.acquire()
    d["x"] = Thief()
    assert p.release(d) is False
    assert stolen and stolen[0] is d
    assert len(p) == 0
    stats(p, misses=1, drops=1, high_water=1)


def test_values_are_released_and_pooled_objects_hold_one_reference():
    p = DictPool(4)
    x = object()
    base = sys.getrefcount(x)
    for _ in range(1000):
        d = p.acquire()
        d["k"] = x
        d["j"] = x
        assert p.release(d)
    del d
    assert sys.getrefcount(x) == base
    stats(p, hits=999, misses=1, releases=1000, high_water=1)

    fresh = {}
    want = sys.getrefcount(fresh)
    d = p.acquire()
    assert sys.getrefcount(d) == want  # neither leaked nor over-released
    assert p.release(d)
    assert sys.getrefcount(d) == want + 1  # plus the ring's one reference


def test_dict_context_manager():
    p = DictPool(4)
    with p.dict() as d:
        assert d == {}
        d["a"] = 1
        first = id(d)
    assert d == {}  # released (and cleared) on exit
    del d
    with p.dict() as e:
        assert id(e) == first
    del e
    stats(p, hits=1, misses=1, releases=2, high_water=1)


def test_dict_context_manager_keeps_held_dicts_and_releases_on_error():
    p = DictPool(4)
    kept = []
    with p.dict() as d:
        d["a"] = 1
        kept.append(d)
    assert kept[0] == {"a": 1} and len(p) == 0
    del d
    with pytest.raises(ZeroDivisionError):
        with p.dict() as e:
            e["b"] = 2
            1 / 0  # noqa: B018
    assert e == {} and len(p) == 1
    # A lease used without `as` still releases.
    with p.dict():
        pass
    assert len(p) == 1


def test_base_class_is_abstract():
    with pytest.raises(TypeError):
        type(DictPool()).__mro__[1]()


def test_lease_single_use_and_not_constructible():
    p = DictPool(4)
    lease = p.dict()
    assert isinstance(lease, PoolLease)
    with lease:
        pass
    with pytest.raises(RuntimeError):
        lease.__enter__()
    assert lease.__exit__(None, None, None) is False  # second exit: nothing to do
    with pytest.raises(TypeError):
        PoolLease().__enter__()


# ---- TuplePool ---------------------------------------------------------------


def test_tuple_reuse_sets_items_and_hash():
    p = TuplePool(4, 4)
    t = p.acquire(1, 2)
    assert t == (1, 2) and type(t) is tuple
    first = id(t)
    assert p.release(t) is True
    assert t == (None, None)  # items dropped on release
    del t
    u = p.acquire("a", "b")
    assert id(u) == first and u == ("a", "b")
    assert hash(u) == hash(("a", "b"))
    assert {u: 1}[("a", "b")] == 1
    stats(p, hits=1, misses=1, releases=1, in_use=1, high_water=1)


def test_tuple_every_arity():
    p = TuplePool(2, 8)
    for k in range(1, 9):
        t = p.acquire(*range(k))
        assert t == tuple(range(k))
        assert p.release(t)
    del t
    assert len(p) == 8 and all(p.pooled(k) == 1 for k in range(1, 9))
    for k in range(1, 9):
        assert p.acquire(*range(k, 2 * k)) == tuple(range(k, 2 * k))
    assert p.stats()["hits"] == 8


def test_tuple_arity_zero_and_too_long_are_misses():
    p = TuplePool(2, 3)
    assert p.acquire() == ()
    t = p.acquire(1, 2, 3, 4)
    assert t == (1, 2, 3, 4)
    stats(p, misses=2, in_use=2, high_water=2)
    assert p.release(t) is False
    assert p.release(()) is False
    assert t == (1, 2, 3, 4)
    stats(p, misses=2, drops=2, high_water=2)


def test_tuple_items_are_released():
    p = TuplePool(4, 4)
    x = object()
    base = sys.getrefcount(x)
    t = p.acquire(x, x, x)
    assert sys.getrefcount(x) == base + 3
    assert p.release(t)
    assert sys.getrefcount(x) == base
    for _ in range(1000):
        t = p.acquire(x, x)
        assert p.release(t)
    del t
    assert sys.getrefcount(x) == base
    t = p.acquire(x)
    fresh = tuple([x])
    assert sys.getrefcount(t) == sys.getrefcount(fresh)  # one variable's worth


def test_held_tuples_are_not_reused_or_changed():
    p = TuplePool(4, 4)
    t = p.acquire(1, 2)
    headers = [t]
    assert p.release(t) is False and headers[0] == (1, 2)
    t2 = p.acquire(3, 4)
    index = {t2: "key"}
    assert p.release(t2) is False and index[(3, 4)] == "key"
    # A literal is a constant of the code object: referenced, so refused.
    assert p.release((5, 6)) is False
    assert len(p) == 0


@pytest.mark.parametrize("bad", [[1], None, {}, type("T", (tuple,), {})((1, 2))])
def test_tuple_release_wrong_type(bad):
    p = TuplePool(4, 4)
    with pytest.raises(TypeError):
        p.release(bad)
    stats(p)


def test_reused_tuple_is_tracked_by_gc():
    # A pooled tuple of None is untracked by a collection; reused to hold a
    # container it must be tracked again, or this cycle would never be freed.
    p = TuplePool(4, 2)
    p.warm(1, arity=2)
    gc.collect()

    class Node:
        pass

    n = Node()
    t = p.acquire(n, 1)
    assert p.stats()["hits"] == 1
    assert gc.is_tracked(t)
    n.t = t
    ref = weakref.ref(n)
    del n, t
    gc.collect()
    assert ref() is None


def test_tuple_context_manager():
    p = TuplePool(4, 4)
    with p.tuple("a", "b") as t:
        assert t == ("a", "b")
        first = id(t)
    del t
    with p.tuple("c", "d") as u:
        assert id(u) == first and u == ("c", "d")
    assert u == (None, None)
    lease = p.tuple(1)
    with lease as v:
        assert v == (1,)


# ---- BufferPool ----------------------------------------------------------------


def test_buffer_reuse_and_zero_fill():
    p = BufferPool(64, 4)
    b = p.acquire()
    assert type(b) is bytearray and b == bytearray(64)
    first = id(b)
    b[:5] = b"hello"
    assert p.release(b) is True
    assert b == bytearray(64)  # zeroed on release
    del b
    c = p.acquire()
    assert id(c) == first and c == bytearray(64)
    stats(p, hits=1, misses=1, releases=1, in_use=1, high_water=1)


def test_buffer_without_zero_fill_keeps_old_bytes():
    p = BufferPool(16, 4, zero=False)
    assert p.zero is False
    b = p.acquire()
    assert b == bytearray(16)  # fresh buffers are zeroed regardless
    b[:3] = b"abc"
    assert p.release(b)
    del b
    assert p.acquire()[:3] == b"abc"


def test_buffer_with_live_memoryview_is_dropped():
    p = BufferPool(16, 4)
    b = p.acquire()
    b[0] = 7
    view = memoryview(b)
    assert p.release(b) is False
    assert b[0] == 7 and view[0] == 7  # untouched
    assert len(p) == 0
    view.release()
    assert p.release(b) is True and len(p) == 1


def test_buffer_resized_or_held_is_dropped():
    p = BufferPool(16, 4)
    b = p.acquire()
    b.append(1)
    assert p.release(b) is False
    b = p.acquire()
    del b[:1]
    assert p.release(b) is False
    b = p.acquire()
    other = b
    assert p.release(b) is False and other is b
    assert len(p) == 0
    stats(p, misses=3, drops=3, high_water=1)


@pytest.mark.parametrize("bad", [b"x" * 16, memoryview(bytearray(16)), None,
                                 type("B", (bytearray,), {})(16)])
def test_buffer_release_wrong_type(bad):
    p = BufferPool(16, 4)
    with pytest.raises(TypeError):
        p.release(bad)
    stats(p)


def test_buffer_context_manager():
    p = BufferPool(16, 4)
    with p.buffer() as b:
        assert len(b) == 16
        b[0] = 1
        first = id(b)
    assert b == bytearray(16)
    del b
    with p.buffer() as c:
        assert id(c) == first
    del c
    views = []
    with p.buffer() as d:
        views.append(memoryview(d))
    assert len(p) == 0  # the view kept it out
    views[0].release()


# ---- C-level API ------------------------------------------------------------------


def test_c_level_release_accounts_for_one_reference():
    for pool, make in ((DictPool(4), dict), (TuplePool(4, 2), lambda: (object(), 1)),
                       (BufferPool(16, 4), lambda: bytearray(16))):
        assert _pool._c_release_last(pool, [make()]) == 1
        obj = make()
        assert _pool._c_release_last(pool, [obj]) == 0  # `obj` still holds it
        assert len(pool) == 1
        with pytest.raises(TypeError):
            _pool._c_release_last(pool, [1.5])


def test_c_level_loops_recycle_every_time():
    # The bench helpers are the C fast paths in a loop: one miss, then hits.
    p = DictPool(4)
    _pool._bench_dict_pool(p, 100)
    stats(p, hits=99, misses=1, releases=100, high_water=1)
    t = TuplePool(4, 4)
    _pool._bench_tuple_pool(t, 100, 4, "x")
    stats(t, hits=99, misses=1, releases=100, high_water=1)
    b = BufferPool(32, 4)
    _pool._bench_buffer_pool(b, 100)
    stats(b, hits=99, misses=1, releases=100, high_water=1)


def test_measured_argument_references():
    # variable + interpreter stack + Cython's own reference on CPython 3.11-3.13
    # with Cython >= 3.1; the behaviour tests above are what really matter.
    n = _pool._python_release_refs()
    assert 1 <= n <= 3


# ---- memory ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: BufferPool(65536, 16, prefill=True),
        lambda: DictPool(4096, prefill=True),
        # Tuples longer than CPython's tuple free list keeps (20), so freed
        # ones go back to the allocator where tracemalloc sees them.
        lambda: TuplePool(256, 40, prefill=True),
    ],
)
def test_pool_destroyed_with_objects_frees_them(make):
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        pool = make()
        grown = tracemalloc.get_traced_memory()[0] - before
        assert grown > 100_000  # the objects really were made
        del pool
        gc.collect()
        left = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert left < grown // 20, (grown, left)


@pytest.mark.skipif(sys.getrefcount(None) > 1 << 30, reason="None is immortal (3.12+)")
def test_pool_destroyed_releases_pooled_tuples():
    p = TuplePool(100, 3, prefill=True)  # pooled tuples hold None
    gc.collect()
    before = sys.getrefcount(None)
    del p
    after = sys.getrefcount(None)  # read before assert: its rewriting makes Nones
    assert before - after == 100 * (1 + 2 + 3)


def test_pool_destroyed_releases_tuple_contents():
    p = TuplePool(8, 2)
    x = object()
    base = sys.getrefcount(x)
    held = [p.acquire(x, x) for _ in range(4)]
    assert sys.getrefcount(x) == base + 8
    del p  # the pool dies while tuples are out: they stay valid
    assert held[0] == (x, x)
    del held
    assert sys.getrefcount(x) == base


# ---- a model: FIFO reuse and exact stats ---------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["acq", "rel", "rel_held"]), st.integers(0, 7)),
                max_size=60),
       st.integers(0, 5))
def test_dict_pool_matches_a_model(ops, size):
    p = DictPool(size)
    held: list[dict] = []
    pooled: deque[int] = deque()  # ids, oldest first: the ring is FIFO
    want = {"hits": 0, "misses": 0, "releases": 0, "drops": 0, "in_use": 0, "high_water": 0}
    keep_alive = []
    for op, i in ops:
        if op == "acq":
            d = p.acquire()
            if pooled:
                assert id(d) == pooled.popleft()
                want["hits"] += 1
            else:
                want["misses"] += 1
            assert d == {}
            d[i] = i
            held.append(d)
            del d
            want["in_use"] += 1
            want["high_water"] = max(want["high_water"], want["in_use"])
        elif held:
            d = held.pop(i % len(held))
            want["in_use"] -= 1
            if op == "rel_held":
                keep_alive.append(d)
                assert p.release(d) is False
                assert d  # a dropped dict is not cleared
                want["drops"] += 1
            elif len(pooled) < size:
                assert p.release(d) is True
                pooled.append(id(d))
                want["releases"] += 1
            else:
                assert p.release(d) is False
                want["drops"] += 1
            del d
        assert p.stats() == want
        assert len(p) == len(pooled)


# ---- threads ----------------------------------------------------------------------------


def _hammer(acquire, release, check, pool, n_threads=8, iterations=1500):
    """n threads acquire, mark, yield, verify the mark, release; a shared set
    of ids catches any object handed to two holders at once."""
    holders: set[int] = set()
    lock = threading.Lock()
    errors: list[str] = []
    start = threading.Barrier(n_threads)

    def worker(tid: int) -> None:
        try:
            work(tid)
        except BaseException as exc:  # a dead thread must fail the test
            errors.append(f"thread {tid}: {exc!r}")

    def work(tid: int) -> None:
        start.wait()
        for i in range(iterations):
            obj = acquire(tid, i)
            with lock:
                if id(obj) in holders:
                    errors.append(f"object {id(obj):#x} handed out twice")
                holders.add(id(obj))
            if i % 8 == 0:
                threading.Event().wait(0)  # let the others run while we hold it
            msg = check(obj, tid, i)
            if msg:
                errors.append(msg)
            with lock:
                holders.discard(id(obj))
            release(obj)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    s = pool.stats()
    total = n_threads * iterations
    assert s["hits"] + s["misses"] == total
    assert s["releases"] + s["drops"] == total
    assert s["in_use"] == 0
    assert 1 <= s["high_water"] <= n_threads
    assert s["hits"] > 0 and s["releases"] > 0
    assert len(pool) == s["releases"] - s["hits"]
    return s


def test_threads_dict_pool():
    p = DictPool(4)

    def acquire(tid, i):
        d = p.acquire()
        if d:
            raise AssertionError(f"dirty dict {d!r}")
        d["owner"] = tid
        return d

    def check(d, tid, i):
        return None if d == {"owner": tid} else f"dict mark changed: {d!r} (thread {tid})"

    _hammer(acquire, p.release, check, p)


def test_threads_tuple_pool():
    p = TuplePool(4, 2)
    _hammer(lambda tid, i: p.acquire(tid, i), p.release,
            lambda t, tid, i: None if t == (tid, i) else f"tuple changed: {t!r}", p)


def test_threads_buffer_pool():
    p = BufferPool(64, 4)

    def acquire(tid, i):
        b = p.acquire()
        if any(b):
            raise AssertionError("dirty buffer")
        b[:8] = tid.to_bytes(8, "little")
        return b

    def check(b, tid, i):
        return None if b[:8] == tid.to_bytes(8, "little") else f"buffer mark changed: {b[:8]!r}"

    _hammer(acquire, p.release, check, p)


def test_threads_leases():
    p = DictPool(4)
    errors = []

    def worker(tid):
        for _ in range(1000):
            with p.dict() as d:
                if d:
                    errors.append(dict(d))
                d["owner"] = tid
                threading.Event().wait(0)
                if d != {"owner": tid}:
                    errors.append(dict(d))
            del d

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    s = p.stats()
    assert s["in_use"] == 0 and s["hits"] + s["misses"] == 8000 == s["releases"] + s["drops"]
