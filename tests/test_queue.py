"""fasterapi._queue: the SPSC and MPMC rings through their Python classes and
the nogil C helpers.

Layers: single-thread behaviour (API, errors, FIFO, full/empty, wraparound),
reference ownership (push takes a reference, pop hands it over, a dying queue
lets go), then concurrency from Python threads and from C threads without the
GIL.  The memory-ordering proof lives in tests/test_tsan.py.
"""

from __future__ import annotations

import gc
import math
import pickle
import signal
import sys
import threading
import weakref

import pytest

from fasterapi import _queue
from fasterapi._queue import MAX_CAPACITY, MPMCQueue, SPSCQueue

QUEUES = [SPSCQueue, MPMCQueue]
BOTH = pytest.mark.parametrize("cls", QUEUES, ids=lambda c: c.__name__)

# A stuck thread must fail the test, not hang the suite.
JOIN_TIMEOUT = 60.0


class Token:
    """A weakref-able object, so tests can see exactly when it dies."""

    __slots__ = ("n", "__weakref__")

    def __init__(self, n=0):
        self.n = n


def min_capacity(cls, requested):
    """What `capacity` becomes: the next power of two (MPMC: at least 2)."""
    cap = 1
    while cap < requested:
        cap *= 2
    return max(cap, 2) if cls is MPMCQueue else cap


# ---- construction ------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("requested", [1, 2, 3, 5, 8, 1000, 1024, 1025])
def test_capacity_rounds_up_to_power_of_two(cls, requested):
    q = cls(requested)
    assert q.capacity == min_capacity(cls, requested)
    assert len(q) == 0


def test_mpmc_capacity_one_still_keeps_fifo():
    # Vyukov's algorithm breaks with one cell (a consumed cell reads as
    # "filled" for the next lap); the queue must round up, not corrupt.
    q = MPMCQueue(1)
    assert q.try_push("a") and q.try_push("b")
    assert not q.try_push("c")
    assert [q.try_pop(), q.try_pop(), q.try_pop()] == ["a", "b", None]


@BOTH
@pytest.mark.parametrize("bad", [0, -1, -(2**40), MAX_CAPACITY + 1, 2**64, 2**100])
def test_bad_capacity_is_value_error(cls, bad):
    with pytest.raises(ValueError, match="capacity"):
        cls(bad)


@BOTH
@pytest.mark.parametrize("bad", [4.0, "4", None, b"4", [4]])
def test_non_integer_capacity_is_type_error(cls, bad):
    with pytest.raises(TypeError):
        cls(bad)


def test_max_capacity_is_two_to_the_thirtieth():
    assert MAX_CAPACITY == 2**30


@BOTH
def test_capacity_accepts_index_objects(cls):
    class Seven:
        def __index__(self):
            return 7

    assert cls(Seven()).capacity == 8


@BOTH
def test_capacity_is_read_only(cls):
    q = cls(4)
    with pytest.raises(AttributeError):
        q.capacity = 16
    assert q.capacity == 4


@BOTH
def test_repr_names_class_capacity_and_size(cls):
    q = cls(4)
    q.try_push(1)
    assert repr(q) == f"<{cls.__name__} capacity=4 size=1>"


@BOTH
def test_not_picklable(cls):
    with pytest.raises(TypeError):
        pickle.dumps(cls(4))


@BOTH
def test_subscriptable_for_annotations(cls):
    alias = cls[int]
    assert alias.__origin__ is cls and alias.__args__ == (int,)


@BOTH
def test_docstrings_carry_signatures(cls):
    # embedsignature: help() shows the real parameters.
    assert cls.push.__doc__.startswith(f"{cls.__name__}.push(self, obj, timeout=None)")
    assert "TimeoutError" in cls.pop.__doc__
    assert cls.__doc__


def test_spsc_documents_its_contract():
    doc = " ".join(SPSCQueue.__doc__.split())
    assert "exactly one producer thread and one consumer thread" in doc
    assert "undefined behaviour" in doc


# ---- single-thread behaviour ----------------------------------------------------


@BOTH
def test_fifo_full_and_empty(cls):
    q = cls(8)
    assert q.try_pop() is None
    for i in range(8):
        assert q.try_push(i) is True
        assert len(q) == i + 1
    assert q.try_push("overflow") is False
    assert len(q) == 8
    assert [q.try_pop() for _ in range(8)] == list(range(8))
    assert len(q) == 0
    assert q.try_pop() is None


@BOTH
def test_try_pop_default(cls):
    q = cls(2)
    marker = object()
    assert q.try_pop(marker) is marker
    assert q.try_pop(default=marker) is marker
    q.try_push(None)
    # A queued None is told apart from "empty" by the default.
    assert q.try_pop(marker) is None
    assert q.try_pop(marker) is marker


@BOTH
def test_wraparound_many_laps(cls):
    q = cls(4)
    expected_next = 0
    pushed = 0
    # Uneven batches so the indexes land on every slot offset, ~2,500 laps.
    for batch in [1, 3, 4, 2, 1, 4, 3] * 1500:
        for _ in range(batch):
            assert q.try_push(pushed)
            pushed += 1
        assert len(q) == batch
        for _ in range(batch):
            assert q.try_pop() == expected_next
            expected_next += 1
        assert len(q) == 0
    assert pushed == expected_next > 10_000


@BOTH
def test_wraparound_while_partly_full(cls):
    q = cls(8)
    for i in range(5):
        q.try_push(i)
    nxt, out = 5, 0
    for _ in range(10_000):
        assert q.try_push(nxt)
        nxt += 1
        assert q.try_pop() == out
        out += 1
        assert len(q) == 5


@BOTH
def test_blocking_push_pop_fast_paths(cls):
    q = cls(2)
    q.push("a")
    q.push("b", timeout=0)
    assert q.pop() == "a"
    assert q.pop(timeout=0) == "b"


@BOTH
@pytest.mark.parametrize("timeout", [0, 0.0, 0.02])
def test_pop_times_out_when_empty(cls, timeout):
    q = cls(2)
    with pytest.raises(TimeoutError, match="empty"):
        q.pop(timeout=timeout)


@BOTH
@pytest.mark.parametrize("timeout", [0, 0.02])
def test_push_times_out_when_full(cls, timeout):
    q = cls(1)
    while q.try_push(0):
        pass
    obj = Token()
    before = sys.getrefcount(obj)
    with pytest.raises(TimeoutError, match="full"):
        q.push(obj, timeout=timeout)
    # The reference taken for the push is given back on timeout.
    assert sys.getrefcount(obj) == before
    assert len(q) == q.capacity


@BOTH
@pytest.mark.parametrize("bad", [-1, -0.001, math.nan])
def test_bad_timeout_is_value_error(cls, bad):
    q = cls(2)
    with pytest.raises(ValueError, match="timeout"):
        q.pop(timeout=bad)
    obj = Token()
    before = sys.getrefcount(obj)
    with pytest.raises(ValueError, match="timeout"):
        q.push(obj, timeout=bad)
    assert sys.getrefcount(obj) == before
    assert len(q) == 0


@BOTH
def test_non_number_timeout_is_type_error(cls):
    with pytest.raises(TypeError):
        cls(2).pop(timeout=object())


@BOTH
def test_infinite_timeout_means_forever(cls):
    q = cls(2)
    q.push(1, timeout=math.inf)
    assert q.pop(timeout=math.inf) == 1


@BOTH
def test_blocking_pop_waits_for_another_thread(cls):
    q = cls(2)
    release = threading.Event()

    def producer():
        release.wait()
        q.push("late")

    t = threading.Thread(target=producer)
    t.start()
    release.set()
    assert q.pop(timeout=JOIN_TIMEOUT) == "late"
    t.join(JOIN_TIMEOUT)


@BOTH
def test_blocking_push_waits_for_another_thread(cls):
    q = cls(2)
    while q.try_push("old"):
        pass
    started = threading.Event()
    done = []

    def producer():
        started.set()
        q.push("new", timeout=JOIN_TIMEOUT)
        done.append(True)

    t = threading.Thread(target=producer)
    t.start()
    started.wait()
    got = [q.pop(timeout=JOIN_TIMEOUT) for _ in range(q.capacity + 1)]
    t.join(JOIN_TIMEOUT)
    assert done == [True]
    assert got == ["old"] * q.capacity + ["new"]


class Interrupted(Exception):
    pass


@pytest.fixture
def alarm():
    """Raise Interrupted from a SIGALRM 0.1 s from now (main thread only)."""
    if not hasattr(signal, "setitimer"):
        pytest.skip("needs setitimer")

    def handler(signum, frame):
        raise Interrupted

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@BOTH
def test_endless_pop_is_interruptible_by_signals(cls, alarm):
    # pop(timeout=None) drops the GIL to spin; it must still come back to run
    # Python signal handlers (this is what makes Ctrl-C work).
    with pytest.raises(Interrupted):
        cls(2).pop()


@BOTH
def test_endless_push_is_interruptible_and_gives_back_its_reference(cls, alarm):
    q = cls(1)
    while q.try_push(0):
        pass
    obj = Token()
    before = sys.getrefcount(obj)
    with pytest.raises(Interrupted):
        q.push(obj)
    assert sys.getrefcount(obj) == before


# ---- reference ownership -----------------------------------------------------------


@BOTH
def test_push_takes_a_reference_and_pop_hands_it_over(cls):
    q = cls(4)
    obj = Token()
    base = sys.getrefcount(obj)
    assert q.try_push(obj)
    assert sys.getrefcount(obj) == base + 1
    got = q.try_pop()
    assert got is obj
    # `got` now holds the queue's former reference: nothing extra, nothing lost.
    assert sys.getrefcount(obj) == base + 1
    del got
    assert sys.getrefcount(obj) == base


@BOTH
def test_queue_keeps_items_alive(cls):
    q = cls(4)
    q.try_push(Token(7))
    gc.collect()
    got = q.try_pop()
    assert isinstance(got, Token) and got.n == 7


@BOTH
def test_popped_item_dies_when_caller_drops_it(cls):
    q = cls(4)
    obj = Token()
    ref = weakref.ref(obj)
    q.push(obj)
    del obj
    gc.collect()
    assert ref() is not None
    q.pop()  # result discarded at once
    gc.collect()
    assert ref() is None


@BOTH
def test_failed_try_push_keeps_no_reference(cls):
    q = cls(1)
    while q.try_push(0):
        pass
    obj = Token()
    base = sys.getrefcount(obj)
    for _ in range(100):
        assert q.try_push(obj) is False
    assert sys.getrefcount(obj) == base


@BOTH
def test_empty_try_pop_does_not_touch_default_refcount(cls):
    q = cls(2)
    marker = Token()
    base = sys.getrefcount(marker)
    for _ in range(100):
        q.try_pop(marker)
    assert sys.getrefcount(marker) == base


@BOTH
def test_destroying_a_non_empty_queue_releases_items(cls):
    q = cls(8)
    objs = [Token(i) for i in range(5)]
    refs = [weakref.ref(o) for o in objs]
    keep = objs[0]
    keep_base = sys.getrefcount(keep)
    for o in objs:
        q.try_push(o)
    del objs, o
    assert sys.getrefcount(keep) == keep_base  # `objs` list gone, queue holds one
    del q
    gc.collect()
    assert [r() is None for r in refs] == [False] + [True] * 4
    # Released exactly once: still alive through `keep`, count back to base - 1
    # (the list reference went away with `objs`).
    assert sys.getrefcount(keep) == keep_base - 1


@BOTH
def test_destroying_after_wraparound_releases_exactly_the_queued_items(cls):
    q = cls(4)
    alive = []
    for i in range(10):  # wrap the indexes first
        q.try_push(Token(i))
        q.try_pop()
    for i in range(3):
        t = Token(i)
        alive.append(weakref.ref(t))
        q.try_push(t)
    del t
    assert all(r() is not None for r in alive)
    del q
    gc.collect()
    assert all(r() is None for r in alive)


# ---- concurrency from Python threads -------------------------------------------------


def _run_threads(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a worker thread is stuck"


def test_mpmc_python_threads_lose_and_duplicate_nothing():
    producers, consumers, per_producer = 4, 4, 50_000  # 200,000 items
    q = MPMCQueue(256)
    stop = object()
    results = [[] for _ in range(consumers)]
    errors = []

    def produce(p):
        try:
            # Values above 256 are fresh int objects, so their refcounts
            # really travel through the queue.
            for i in range(per_producer):
                q.push(1000 + i * producers + p, timeout=JOIN_TIMEOUT)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    def consume(c):
        out = results[c]
        try:
            while True:
                item = q.pop(timeout=JOIN_TIMEOUT)
                if item is stop:
                    return
                out.append(item)
        except BaseException as exc:
            errors.append(exc)

    prod = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    cons = [threading.Thread(target=consume, args=(c,)) for c in range(consumers)]
    for t in cons:
        t.start()
    _run_threads(prod)
    for _ in range(consumers):
        q.push(stop, timeout=JOIN_TIMEOUT)
    for t in cons:
        t.join(JOIN_TIMEOUT)
    assert not errors
    assert not any(t.is_alive() for t in cons)

    everything = [x for out in results for x in out]
    total = producers * per_producer
    assert len(everything) == total
    assert sorted(everything) == list(range(1000, 1000 + total))
    # Each consumer sees any one producer's items in the order pushed.
    for out in results:
        last = [-1] * producers
        for x in out:
            p = (x - 1000) % producers
            assert x > last[p]
            last[p] = x
    assert len(q) == 0


# Capacity 1 makes every item a thread handoff (and a GIL handoff), so it
# gets fewer items to stay within a few seconds on a loaded machine.
@pytest.mark.parametrize(("capacity", "n"), [(64, 200_000), (1, 20_000)])
def test_spsc_python_threads_preserve_order(capacity, n):
    q = SPSCQueue(capacity)
    errors = []

    def produce():
        try:
            for i in range(n):
                q.push(i, timeout=JOIN_TIMEOUT)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=produce)
    t.start()
    bad = None
    for expected in range(n):
        got = q.pop(timeout=JOIN_TIMEOUT)
        if got != expected and bad is None:
            bad = (expected, got)
    t.join(JOIN_TIMEOUT)
    assert not errors
    assert bad is None, f"expected {bad[0]}, got {bad[1]}"
    assert len(q) == 0


def test_mpmc_try_methods_under_thread_contention():
    # The non-blocking path only: every failed try must give its reference back.
    q = MPMCQueue(4)
    obj = Token()
    base = sys.getrefcount(obj)
    rounds = 20_000

    def hammer():
        for _ in range(rounds):
            if q.try_push(obj):
                q.try_pop()

    _run_threads([threading.Thread(target=hammer) for _ in range(4)])
    while q.try_pop() is not None:
        pass
    assert sys.getrefcount(obj) == base


# ---- C threads without the GIL -------------------------------------------------------


def test_atomic_backend_is_known():
    assert _queue._atomic_backend() in ("builtins", "c11")


@pytest.mark.parametrize(
    ("kind", "producers", "consumers", "capacity", "items"),
    [
        ("spsc", 1, 1, 1024, 200_000),
        # Full/empty on every item: the cached-index reloads.  Fewer items:
        # each one is a cross-core handoff.
        ("spsc", 1, 1, 1, 50_000),
        ("mpmc", 1, 1, 1024, 200_000),
        ("mpmc", 2, 2, 64, 200_000),
        ("mpmc", 4, 4, 2, 50_000),  # heavy CAS contention, laps every two items
        ("mpmc", 3, 1, 16, 200_000),
        ("mpmc", 1, 3, 16, 200_000),
    ],
)
def test_nogil_threads_lose_and_duplicate_nothing(kind, producers, consumers, capacity, items):
    seconds, ok = _queue._nogil_throughput(kind, producers, consumers, items, capacity)
    assert ok
    assert seconds > 0


@pytest.mark.parametrize("kind", ["spsc", "mpmc"])
def test_nogil_throughput_with_no_items(kind):
    _, ok = _queue._nogil_throughput(kind, 1, 1, 0)
    assert ok


@pytest.mark.parametrize(
    ("args", "exc"),
    [
        (("lifo", 1, 1, 10), ValueError),
        (("spsc", 2, 1, 10), ValueError),
        (("spsc", 1, 2, 10), ValueError),
        (("mpmc", 0, 1, 10), ValueError),
        (("mpmc", 1, 65, 10), ValueError),
        (("mpmc", 1, 1, -1), ValueError),
        (("mpmc", 1, 1, 10, 0), ValueError),
        ((b"mpmc", 1, 1, 10), TypeError),
    ],
)
def test_nogil_throughput_rejects_bad_arguments(args, exc):
    with pytest.raises(exc):
        _queue._nogil_throughput(*args)


@pytest.mark.parametrize("kind", ["spsc", "mpmc"])
def test_c_push_pop_loop(kind):
    assert _queue._c_push_pop_loop(kind, 10_000) >= 0
    assert _queue._c_push_pop_loop(kind, 0) >= 0
    with pytest.raises(ValueError):
        _queue._c_push_pop_loop(kind, -1)
    with pytest.raises(ValueError):
        _queue._c_push_pop_loop("deque", 10)
