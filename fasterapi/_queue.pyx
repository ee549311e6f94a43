# Bounded lock-free ring queues of pointers, and their Python face.
#
# Rules this module keeps:
#  - Every atomic access goes through fa_atomic.h, and the memory order is in
#    the helper's name.  Each side reads its *own* index relaxed, reads what
#    the other side publishes with acquire, and publishes with a release store
#    only after the slot is written.
#  - The C functions (declared in _queue.pxd) are `noexcept nogil` and never
#    touch Python objects: other modules use them without the GIL.
#  - The Python classes own what they hold: push takes a reference
#    (Py_INCREF), pop hands that same reference to the caller, and a queue
#    that dies non-empty releases what is left.
#  - Waiting (push/pop with a timeout) spins only inside `with nogil:`, so a
#    blocked thread never starves the others of the GIL.
#
# tests/c/ring_harness.c repeats both algorithms line for line so
# ThreadSanitizer can check them without Python in the way; a change to an
# algorithm here must be made there too.

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject
from libc.stdint cimport int64_t, uint64_t, uintptr_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, nanosleep, timespec

from fasterapi.includes.atomic cimport (
    fa_atomic_backend,
    fa_cas_weak_relaxed_u64,
    fa_cpu_relax,
    fa_load_acquire_u64,
    fa_load_relaxed_u64,
    fa_store_release_u64,
)

import math
import operator
from types import GenericAlias

cdef extern from "<sched.h>" nogil:
    int sched_yield()

# Only what the nogil helpers below need.  pthread_t is opaque here: it is
# stored and passed back, never inspected, so its real C type does not matter
# to Cython.
cdef extern from "<pthread.h>" nogil:
    ctypedef int pthread_t
    ctypedef struct pthread_attr_t:
        pass
    int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                       void *(*start)(void *) noexcept nogil, void *arg)
    int pthread_join(pthread_t thread, void **retval)


MAX_CAPACITY = QUEUE_MAX_CAPACITY


# ---- capacity -------------------------------------------------------------

cdef uint64_t ring_capacity(Py_ssize_t capacity) except 0:
    """Round `capacity` up to a power of two (so a slot index is a mask, not
    a division); ValueError outside 1..QUEUE_MAX_CAPACITY."""
    if capacity < 1 or capacity > QUEUE_MAX_CAPACITY:
        raise ValueError(
            f"queue capacity must be between 1 and {QUEUE_MAX_CAPACITY}, got {capacity}"
        )
    cdef uint64_t cap = 1
    while cap < <uint64_t>capacity:
        cap <<= 1
    return cap


cdef Py_ssize_t _python_capacity(object capacity) except -1:
    # operator.index: ints and int-likes pass, floats and strings get the
    # standard TypeError.  The range check happens on the Python int, so
    # 2**100 is a ValueError like any other absurd size, not an OverflowError.
    cap = operator.index(capacity)
    if cap < 1 or cap > QUEUE_MAX_CAPACITY:
        raise ValueError(
            f"queue capacity must be between 1 and {QUEUE_MAX_CAPACITY}, got {cap}"
        )
    return cap


# ---- Vyukov's bounded MPMC queue -------------------------------------------
#
# After D. Vyukov, "Bounded MPMC queue" (1024cores.net).  Each cell carries a
# sequence number saying whose turn it is: seq == pos means free for the
# producer that claims position `pos`; seq == pos + 1 means filled, for the
# consumer that claims `pos`.  Positions are claimed with a CAS on the shared
# counter; the cell's seq is the only thing that carries data between
# threads (release store after writing, acquire load before reading).

cdef int mpmc_init(MPMCRing *r, Py_ssize_t capacity) except -1:
    """Allocate and reset `r` for `capacity` (rounded up to a power of two,
    and to at least 2) pointers.  ValueError for a bad capacity, MemoryError
    if out of memory.  Must not be called on a ring that is in use or still allocated."""
    cdef uint64_t cap = ring_capacity(capacity)
    cdef uint64_t i
    # At least two cells: with one, the seq a consumer leaves behind
    # (pos + capacity) equals the "filled" mark for pos (pos + 1), and the next
    # producer would overwrite an item nobody popped.
    if cap < 2:
        cap = 2
    # Raw allocator: callable without the GIL, so mpmc_free may be too.
    cdef MPMCCell *cells = <MPMCCell *>PyMem_RawMalloc(cap * sizeof(MPMCCell))
    if cells == NULL:
        raise MemoryError(f"cannot allocate a ring of {cap} slots")
    for i in range(cap):
        # Plain stores: nothing else can see the ring yet; whatever hands it
        # to another thread (thread start, a lock, the GIL) orders them.
        cells[i].seq = i
        cells[i].data = NULL
    r.cells = cells
    r.mask = cap - 1
    r.enqueue_pos = 0
    r.dequeue_pos = 0
    return 0


cdef void mpmc_free(MPMCRing *r) noexcept:
    """Release the cells.  Items still in the ring are not touched (the
    caller owns them); safe to call twice."""
    PyMem_RawFree(r.cells)
    r.cells = NULL
    r.mask = 0


cdef bint mpmc_try_push(MPMCRing *r, void *item) noexcept nogil:
    """Append `item`; False if the ring is full.  Any number of threads may
    push and pop concurrently.  "Full" can also mean a consumer has claimed
    the oldest slot but not yet released it."""
    cdef MPMCCell *cell
    cdef uint64_t seq
    cdef int64_t dif
    cdef uint64_t pos = fa_load_relaxed_u64(&r.enqueue_pos)
    while True:
        cell = &r.cells[pos & r.mask]
        seq = fa_load_acquire_u64(&cell.seq)
        dif = <int64_t>(seq - pos)
        if dif == 0:
            # The slot is free for `pos`; claim the position.  Relaxed is
            # enough: the CAS only hands out positions, the cell's seq
            # carries the data.  On failure `pos` is reloaded by the CAS.
            if fa_cas_weak_relaxed_u64(&r.enqueue_pos, &pos, pos + 1):
                break
        elif dif < 0:
            # The slot still holds the item from one lap ago: full.
            return False
        else:
            # Another producer took `pos` meanwhile; catch up.
            pos = fa_load_relaxed_u64(&r.enqueue_pos)
    cell.data = item
    fa_store_release_u64(&cell.seq, pos + 1)   # publish: data before seq
    return True


cdef bint mpmc_try_pop(MPMCRing *r, void **item) noexcept nogil:
    """Take the oldest item into `*item`; False (and `*item` untouched) if
    the ring is empty or the oldest slot's producer has not published yet."""
    cdef MPMCCell *cell
    cdef uint64_t seq
    cdef int64_t dif
    cdef uint64_t pos = fa_load_relaxed_u64(&r.dequeue_pos)
    while True:
        cell = &r.cells[pos & r.mask]
        seq = fa_load_acquire_u64(&cell.seq)
        dif = <int64_t>(seq - (pos + 1))
        if dif == 0:
            if fa_cas_weak_relaxed_u64(&r.dequeue_pos, &pos, pos + 1):
                break
        elif dif < 0:
            return False
        else:
            pos = fa_load_relaxed_u64(&r.dequeue_pos)
    item[0] = cell.data
    # Hand the slot to the producer one lap ahead: read before release.
    fa_store_release_u64(&cell.seq, pos + r.mask + 1)
    return True


cdef Py_ssize_t mpmc_size(MPMCRing *r) noexcept nogil:
    """Claimed positions between consumers and producers: a snapshot that is
    exact only when no thread is pushing or popping."""
    cdef uint64_t head = fa_load_acquire_u64(&r.dequeue_pos)
    cdef uint64_t tail = fa_load_acquire_u64(&r.enqueue_pos)
    # The two loads are not one atomic snapshot (and the position CASes are
    # relaxed), so clamp into 0..capacity rather than trust the difference.
    cdef int64_t n = <int64_t>(tail - head)
    if n < 0:
        return 0
    if <uint64_t>n > r.mask + 1:
        return <Py_ssize_t>(r.mask + 1)
    return <Py_ssize_t>n


# ---- single-producer single-consumer ring ----------------------------------
#
# head and tail run free (they are never masked when stored; 2**64 pushes do
# not happen), so full is tail - head == capacity and empty is head == tail,
# with no slot wasted.  Each side keeps a private copy of the other's index
# and reloads it (acquire) only when the copy says full/empty: the common
# case touches no cache line the other core writes.

cdef int spsc_init(SPSCRing *r, Py_ssize_t capacity) except -1:
    """Allocate and reset `r` for `capacity` (rounded up to a power of two)
    pointers.  ValueError for a bad capacity, MemoryError if out of memory."""
    cdef uint64_t cap = ring_capacity(capacity)
    cdef uint64_t i
    cdef void **slots = <void **>PyMem_RawMalloc(cap * sizeof(void *))
    if slots == NULL:
        raise MemoryError(f"cannot allocate a ring of {cap} slots")
    for i in range(cap):
        slots[i] = NULL
    r.slots = slots
    r.mask = cap - 1
    r.head = 0
    r.cached_tail = 0
    r.tail = 0
    r.cached_head = 0
    return 0


cdef void spsc_free(SPSCRing *r) noexcept:
    """Release the slots (not the items); safe to call twice."""
    PyMem_RawFree(r.slots)
    r.slots = NULL
    r.mask = 0


cdef bint spsc_try_push(SPSCRing *r, void *item) noexcept nogil:
    """Append `item`; False if full.  Only ONE thread may push (at a time,
    with a happens-before edge when the role moves): undefined otherwise."""
    cdef uint64_t tail = fa_load_relaxed_u64(&r.tail)     # our own index
    if tail - r.cached_head > r.mask:
        r.cached_head = fa_load_acquire_u64(&r.head)      # the consumer's
        if tail - r.cached_head > r.mask:
            return False
    r.slots[tail & r.mask] = item
    fa_store_release_u64(&r.tail, tail + 1)               # publish the slot
    return True


cdef bint spsc_try_pop(SPSCRing *r, void **item) noexcept nogil:
    """Take the oldest item into `*item`; False if empty.  Only ONE thread
    may pop (same rule as spsc_try_push)."""
    cdef uint64_t head = fa_load_relaxed_u64(&r.head)     # our own index
    if head == r.cached_tail:
        r.cached_tail = fa_load_acquire_u64(&r.tail)      # the producer's
        if head == r.cached_tail:
            return False
    item[0] = r.slots[head & r.mask]
    fa_store_release_u64(&r.head, head + 1)               # slot is free again
    return True


cdef Py_ssize_t spsc_size(SPSCRing *r) noexcept nogil:
    """Items in the ring: a snapshot, exact when both sides are idle."""
    cdef uint64_t head = fa_load_acquire_u64(&r.head)
    cdef uint64_t tail = fa_load_acquire_u64(&r.tail)
    cdef int64_t n = <int64_t>(tail - head)
    if n < 0:
        return 0
    if <uint64_t>n > r.mask + 1:
        return <Py_ssize_t>(r.mask + 1)
    return <Py_ssize_t>n


# ---- waiting without the GIL -----------------------------------------------
#
# One try-operation shape for both rings and both directions, so the wait
# loop is written once: for a push `*slot` is the item to append, for a pop
# the item is written to `*slot` (_try_op, declared in _queue.pxd).

cdef bint _op_mpmc_push(void *ring, void **slot) noexcept nogil:
    return mpmc_try_push(<MPMCRing *>ring, slot[0])

cdef bint _op_mpmc_pop(void *ring, void **slot) noexcept nogil:
    return mpmc_try_pop(<MPMCRing *>ring, slot)

cdef bint _op_spsc_push(void *ring, void **slot) noexcept nogil:
    return spsc_try_push(<SPSCRing *>ring, slot[0])

cdef bint _op_spsc_pop(void *ring, void **slot) noexcept nogil:
    return spsc_try_pop(<SPSCRing *>ring, slot)


cdef enum _WaitResult:
    _WAIT_DONE = 0
    _WAIT_TIMEOUT = 1
    _WAIT_SLICE = 2          # time to take the GIL and look at signals

cdef enum:
    # Pause-spin this many tries before looking at the clock: a waiting peer
    # usually shows up within a few microseconds.
    _SPINS_BEFORE_CLOCK = 256
    # Then yield the CPU this many more tries, then nap.  On a box with fewer
    # cores than busy threads, spinning only steals time from the very
    # thread we wait for.
    _SPINS_BEFORE_NAP = 512
    _NAP_NS = 50000                        # 50 us: short next to any timeout
    _SLICE_NS = 50000000                   # 50 ms between signal checks


cdef inline uint64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000 + <uint64_t>ts.tv_nsec


cdef _WaitResult _spin(void *ring, _try_op op, void **slot, bint forever,
                       uint64_t deadline, uint64_t slice_end) noexcept nogil:
    cdef unsigned int spins = 0
    cdef uint64_t now
    cdef timespec nap
    nap.tv_sec = 0
    nap.tv_nsec = _NAP_NS
    while True:
        if op(ring, slot):
            return _WAIT_DONE
        if spins < _SPINS_BEFORE_NAP:
            spins += 1
        if spins < _SPINS_BEFORE_CLOCK:
            fa_cpu_relax()
            continue
        now = _now_ns()
        if not forever and now >= deadline:
            return _WAIT_TIMEOUT
        if now >= slice_end:
            return _WAIT_SLICE
        if spins < _SPINS_BEFORE_NAP:
            sched_yield()
        else:
            nanosleep(&nap, NULL)


cdef bint _wait(void *ring, _try_op op, void **slot, bint forever,
                uint64_t deadline) except -1:
    # Returns 1 when the operation succeeded, 0 on timeout.  The GIL is
    # dropped while spinning and retaken every _SLICE_NS so Ctrl-C (or any
    # signal handler that raises) can interrupt an endless wait.
    cdef _WaitResult res
    while True:
        with nogil:
            res = _spin(ring, op, slot, forever, deadline, _now_ns() + _SLICE_NS)
        if res == _WAIT_DONE:
            return 1
        if res == _WAIT_TIMEOUT:
            return 0
        PyErr_CheckSignals()


cdef int _deadline(object timeout, bint *forever, uint64_t *deadline) except -1:
    # timeout None or +inf: wait forever.  Negative or NaN: ValueError (as
    # queue.Queue does).  Anything float() rejects: its TypeError.
    forever[0] = True
    deadline[0] = 0
    if timeout is None:
        return 0
    cdef double t = float(timeout)
    if math.isnan(t) or t < 0:
        raise ValueError(f"timeout must be a non-negative number or None, got {timeout!r}")
    # 2**62 ns is about 146 years: treat anything longer as forever rather
    # than overflow the deadline.
    if t * 1e9 >= 4611686018427387904.0:
        return 0
    forever[0] = False
    deadline[0] = _now_ns() + <uint64_t>(t * 1e9)
    return 0


# ---- the Python classes ------------------------------------------------------
#
# Both classes are one implementation, _RingQueue, over a _RingOps table: the
# ring's own functions behind void pointers.  Each class only builds its ring
# and keeps its own method docstrings (embedsignature names the class in each,
# and SPSC's state which side of its contract a method belongs to).

cdef Py_ssize_t _op_mpmc_size(void *ring) noexcept nogil:
    return mpmc_size(<MPMCRing *>ring)

cdef void _op_mpmc_free(void *ring) noexcept:
    mpmc_free(<MPMCRing *>ring)

cdef Py_ssize_t _op_spsc_size(void *ring) noexcept nogil:
    return spsc_size(<SPSCRing *>ring)

cdef void _op_spsc_free(void *ring) noexcept:
    spsc_free(<SPSCRing *>ring)

cdef _RingOps _SPSC_OPS
_SPSC_OPS.name = "SPSCQueue"
_SPSC_OPS.push = _op_spsc_push
_SPSC_OPS.pop = _op_spsc_pop
_SPSC_OPS.size = _op_spsc_size
_SPSC_OPS.free = _op_spsc_free

cdef _RingOps _MPMC_OPS
_MPMC_OPS.name = "MPMCQueue"
_MPMC_OPS.push = _op_mpmc_push
_MPMC_OPS.pop = _op_mpmc_pop
_MPMC_OPS.size = _op_mpmc_size
_MPMC_OPS.free = _op_mpmc_free


@cython.auto_pickle(False)
cdef class _RingQueue:
    """What SPSCQueue and MPMCQueue share; not constructed by itself."""

    def __cinit__(self, *args, **kwargs):
        # Without a subclass's ring, _ops is NULL: len() would crash.
        if not isinstance(self, (SPSCQueue, MPMCQueue)):
            raise TypeError("construct SPSCQueue or MPMCQueue, not _RingQueue")

    def __dealloc__(self):
        cdef void *p
        if self._ring == NULL:
            return
        # Nobody else can reach a queue being deallocated, so the SPSC
        # contract holds trivially here.
        while self._ops.pop(self._ring, &p):
            Py_XDECREF(<PyObject *>p)
        self._ops.free(self._ring)

    cdef void _bind(self, void *ring, const _RingOps *ops, uint64_t mask) noexcept:
        # Called by a subclass once its ring is initialised.
        self._ring = ring
        self._ops = ops
        self._capacity = <Py_ssize_t>(mask + 1)

    @property
    def capacity(self):
        """The number of items the queue holds when full (a power of two)."""
        return self._capacity

    def __len__(self):
        """The number of queued items: a snapshot, exact when idle."""
        return self._ops.size(self._ring)

    def __class_getitem__(cls, item):
        """`SPSCQueue[T]` / `MPMCQueue[T]` in annotations, as for the standard
        containers."""
        return GenericAlias(cls, item)

    def __repr__(self):
        return (f"<{self._ops.name.decode()} capacity={self._capacity} "
                f"size={self._ops.size(self._ring)}>")


# The methods' bodies.  Each class passes its ring's own try-operation `op`
# (push or pop): a constant the C compiler inlines through, and the waits
# stay out of line so these bodies inline too.
# PERF: through q._ops, or with the waits inline, SPSC try_push+try_pop cost
# ~3 ns more of ~54 ns and push+pop ~5 ns more of ~57 ns; as written both are
# within ~1-2 ns of the two separate classes (thread_time_ns, 200k rounds).

cdef inline object _try_push(_RingQueue q, _try_op op, object obj):
    cdef void *p = <void *>obj
    Py_INCREF(obj)
    if op(q._ring, &p):
        return True
    Py_XDECREF(<PyObject *>obj)
    return False


cdef inline object _try_pop(_RingQueue q, _try_op op, object default):
    cdef void *p
    if not op(q._ring, &p):
        return default
    obj = <object>p                 # a new reference for the caller...
    Py_XDECREF(<PyObject *>p)       # ...replaces the one the queue held
    return obj


cdef inline object _push(_RingQueue q, _try_op op, object obj, object timeout):
    cdef bint forever
    cdef uint64_t deadline
    cdef void *p = <void *>obj
    _deadline(timeout, &forever, &deadline)
    Py_INCREF(obj)
    if not op(q._ring, &p):
        _push_wait(q, op, obj, timeout, forever, deadline)


cdef int _push_wait(_RingQueue q, _try_op op, object obj, object timeout, bint forever,
                    uint64_t deadline) except -1:
    # push's slow path, out of line so the fast one inlines; the queue's
    # reference to `obj` is already taken, and dropped again on failure.
    cdef void *p = <void *>obj
    try:
        if not forever and timeout == 0:
            ok = False
        else:
            ok = _wait(q._ring, op, &p, forever, deadline)
    except BaseException:
        Py_XDECREF(<PyObject *>obj)
        raise
    if not ok:
        Py_XDECREF(<PyObject *>obj)
        raise TimeoutError(f"{q._ops.name.decode()}.push: still full after {timeout} s")
    return 0


cdef inline object _pop(_RingQueue q, _try_op op, object timeout):
    cdef bint forever
    cdef uint64_t deadline
    cdef void *p = NULL
    _deadline(timeout, &forever, &deadline)
    if not op(q._ring, &p):
        _pop_wait(q, op, &p, timeout, forever, deadline)
    obj = <object>p
    Py_XDECREF(<PyObject *>p)
    return obj


cdef int _pop_wait(_RingQueue q, _try_op op, void **p, object timeout, bint forever,
                   uint64_t deadline) except -1:
    # pop's slow path, out of line so the fast one inlines.
    if (not forever and timeout == 0) or not _wait(q._ring, op, p, forever, deadline):
        raise TimeoutError(f"{q._ops.name.decode()}.pop: still empty after {timeout} s")
    return 0


@cython.auto_pickle(False)
cdef class SPSCQueue(_RingQueue):
    """SPSCQueue(capacity)

    A bounded lock-free FIFO for exactly one producer thread and one consumer
    thread.  `capacity` is rounded up to a power of two (see `.capacity`).

    Contract: at any moment at most one thread calls the pushing methods
    (try_push, push) and at most one thread calls the popping methods
    (try_pop, pop).  The two may be different threads and run concurrently;
    a role may move to another thread only with a happens-before edge (a
    join, a lock).  Breaking this is undefined behaviour: items may be lost
    or duplicated, and reference counts corrupted.  Use MPMCQueue when in
    doubt.  len() and repr() are safe from any thread.

    The queue holds a strong reference to each item from push until pop.
    Reference cycles that pass through a queue are not seen by the garbage
    collector (the ring is lock-free, so it cannot be traversed safely).

    Raises TypeError if capacity is not an integer, ValueError if it is
    below 1 or above MAX_CAPACITY, MemoryError if the slots cannot be
    allocated.
    """

    def __cinit__(self, capacity):
        spsc_init(&self.ring, _python_capacity(capacity))
        self._bind(&self.ring, &_SPSC_OPS, self.ring.mask)

    def try_push(self, obj):
        """Append `obj` and return True, or return False if the queue is full.

        Producer side: see the class contract.
        """
        return _try_push(self, _op_spsc_push, obj)

    def try_pop(self, default=None):
        """Remove and return the oldest item, or return `default` if empty.

        Consumer side: see the class contract.
        """
        return _try_pop(self, _op_spsc_pop, default)

    def push(self, obj, timeout=None):
        """Append `obj`, waiting while the queue is full.

        Waits up to `timeout` seconds (None: forever) without holding the
        GIL.  Raises TimeoutError if the queue is still full by then,
        ValueError for a negative or NaN timeout.  Producer side: see the
        class contract.
        """
        _push(self, _op_spsc_push, obj, timeout)

    def pop(self, timeout=None):
        """Remove and return the oldest item, waiting while the queue is empty.

        Waits up to `timeout` seconds (None: forever) without holding the
        GIL.  Raises TimeoutError if the queue is still empty by then,
        ValueError for a negative or NaN timeout.  Consumer side: see the
        class contract.
        """
        return _pop(self, _op_spsc_pop, timeout)


@cython.auto_pickle(False)
cdef class MPMCQueue(_RingQueue):
    """MPMCQueue(capacity)

    A bounded lock-free FIFO (Vyukov's algorithm) for any number of producer
    and consumer threads.  `capacity` is rounded up to a power of two, and
    to at least 2, which the algorithm needs (see `.capacity`).

    Items pushed by one thread are popped in the order that thread pushed
    them.  try_push may report full while len() < capacity, and try_pop may
    report empty while len() > 0, when another thread is between claiming a
    slot and finishing with it; the blocking push/pop simply wait that out.

    The queue holds a strong reference to each item from push until pop.
    Reference cycles that pass through a queue are not seen by the garbage
    collector (the ring is lock-free, so it cannot be traversed safely).

    Raises TypeError if capacity is not an integer, ValueError if it is
    below 1 or above MAX_CAPACITY, MemoryError if the cells cannot be
    allocated.
    """

    def __cinit__(self, capacity):
        mpmc_init(&self.ring, _python_capacity(capacity))
        self._bind(&self.ring, &_MPMC_OPS, self.ring.mask)

    def try_push(self, obj):
        """Append `obj` and return True, or return False if the queue is full."""
        return _try_push(self, _op_mpmc_push, obj)

    def try_pop(self, default=None):
        """Remove and return the oldest item, or return `default` if empty."""
        return _try_pop(self, _op_mpmc_pop, default)

    def push(self, obj, timeout=None):
        """Append `obj`, waiting while the queue is full.

        Waits up to `timeout` seconds (None: forever) without holding the
        GIL.  Raises TimeoutError if the queue is still full by then,
        ValueError for a negative or NaN timeout.
        """
        _push(self, _op_mpmc_push, obj, timeout)

    def pop(self, timeout=None):
        """Remove and return the oldest item, waiting while the queue is empty.

        Waits up to `timeout` seconds (None: forever) without holding the
        GIL.  Raises TimeoutError if the queue is still empty by then,
        ValueError for a negative or NaN timeout.
        """
        return _pop(self, _op_mpmc_pop, timeout)


# ---- private helpers for tests and bench/ -------------------------------------

def _atomic_backend():
    """Which fa_atomic.h back-end this build uses: "builtins" or "c11"."""
    return fa_atomic_backend().decode()


cdef enum _Kind:
    _KIND_SPSC = 1
    _KIND_MPMC = 2

cdef _Kind _parse_kind(str kind) except *:
    if kind == "spsc":
        return _KIND_SPSC
    if kind == "mpmc":
        return _KIND_MPMC
    raise ValueError(f"kind must be 'spsc' or 'mpmc', got {kind!r}")


cdef struct _Shared:
    void *ring
    _Kind kind
    uint64_t items          # tokens 1..items; 0 is the stop token
    uint64_t producers
    uint64_t go             # 0: wait, 1: run, 2: abort (atomic)


cdef struct _Worker:
    _Shared *sh
    uint64_t index          # this producer's number (producers only)
    uint64_t count          # tokens taken (consumers only)
    uint64_t sum
    uint64_t sumsq
    uint64_t order_errors   # a producer's tokens seen out of order
    uint64_t *last          # per producer: the last token seen from it


cdef inline bint _push_token(_Shared *sh, uint64_t token) noexcept nogil:
    if sh.kind == _KIND_SPSC:
        return spsc_try_push(<SPSCRing *>sh.ring, <void *><uintptr_t>token)
    return mpmc_try_push(<MPMCRing *>sh.ring, <void *><uintptr_t>token)


cdef inline bint _pop_token(_Shared *sh, uint64_t *token) noexcept nogil:
    cdef void *p
    cdef bint ok
    if sh.kind == _KIND_SPSC:
        ok = spsc_try_pop(<SPSCRing *>sh.ring, &p)
    else:
        ok = mpmc_try_pop(<MPMCRing *>sh.ring, &p)
    if ok:
        token[0] = <uint64_t><uintptr_t>p
    return ok


cdef inline void _backoff(unsigned int *spins) noexcept nogil:
    # Pause a little, then give the core away, then nap: the machine may have
    # fewer cores than threads, and on a loaded Linux box sched_yield alone
    # hands the core back to the spinner before its peer has run.  The caller
    # resets *spins after progress.
    cdef timespec nap
    spins[0] += 1
    if spins[0] < 64:
        fa_cpu_relax()
    elif spins[0] < 128:
        sched_yield()
    else:
        nap.tv_sec = 0
        nap.tv_nsec = 20000
        nanosleep(&nap, NULL)


cdef void _push_blocking(_Shared *sh, uint64_t token) noexcept nogil:
    cdef unsigned int spins = 0
    while not _push_token(sh, token):
        _backoff(&spins)


cdef bint _await_go(_Shared *sh) noexcept nogil:
    cdef uint64_t go
    cdef unsigned int spins = 0
    while True:
        go = fa_load_acquire_u64(&sh.go)
        if go != 0:
            return go == 1
        _backoff(&spins)


cdef void *_producer_main(void *arg) noexcept nogil:
    cdef _Worker *w = <_Worker *>arg
    cdef _Shared *sh = w.sh
    cdef uint64_t token
    if not _await_go(sh):
        return NULL
    # Producer i owns tokens i+1, i+1+P, i+1+2P, ...: disjoint, and their
    # order is known, so consumers can check per-producer FIFO.
    token = w.index + 1
    while token <= sh.items:
        _push_blocking(sh, token)
        token += sh.producers
    return NULL


cdef void *_consumer_main(void *arg) noexcept nogil:
    cdef _Worker *w = <_Worker *>arg
    cdef _Shared *sh = w.sh
    cdef uint64_t token = 0
    cdef uint64_t src
    cdef unsigned int spins = 0
    if not _await_go(sh):
        return NULL
    while True:
        if not _pop_token(sh, &token):
            _backoff(&spins)
            continue
        spins = 0
        if token == 0:          # stop token: every real token came before it
            return NULL
        w.count += 1
        w.sum += token
        w.sumsq += token * token
        src = (token - 1) % sh.producers
        if token <= w.last[src]:
            w.order_errors += 1
        w.last[src] = token


def _nogil_throughput(str kind, int producers, int consumers, long long items,
                      long long capacity=1024):
    """Move `items` integer tokens through a ring from C threads without the
    GIL; return (seconds, ok).

    `kind` is "spsc" (then producers == consumers == 1) or "mpmc".  `ok` is
    True when the consumers together saw every token exactly once (count,
    sum and sum of squares match) and each producer's tokens in the order it
    pushed them.  Seconds run from the start signal to the last consumer's
    exit.  For tests and bench/ only.
    """
    cdef _Kind k = _parse_kind(kind)
    if producers < 1 or consumers < 1 or producers > 64 or consumers > 64:
        raise ValueError("producers and consumers must be between 1 and 64")
    if k == _KIND_SPSC and (producers != 1 or consumers != 1):
        raise ValueError("an SPSC ring takes exactly one producer and one consumer")
    if items < 0:
        raise ValueError("items must be >= 0")

    cdef MPMCRing mring
    cdef SPSCRing sring
    cdef _Shared sh
    sh.kind = k
    sh.items = <uint64_t>items
    sh.producers = <uint64_t>producers
    sh.go = 0
    if k == _KIND_SPSC:
        spsc_init(&sring, capacity)
        sh.ring = &sring
    else:
        mpmc_init(&mring, capacity)
        sh.ring = &mring

    cdef int nthreads = producers + consumers
    cdef _Worker *workers = <_Worker *>PyMem_RawMalloc(nthreads * sizeof(_Worker))
    cdef pthread_t *tids = <pthread_t *>PyMem_RawMalloc(nthreads * sizeof(pthread_t))
    cdef uint64_t *lasts = <uint64_t *>PyMem_RawMalloc(
        consumers * producers * sizeof(uint64_t))
    cdef int started = 0
    cdef int i, rc = 0
    cdef uint64_t t0 = 0, t1 = 0, t
    cdef uint64_t count = 0, total = 0, sumsq = 0, want_sum = 0, want_sumsq = 0
    cdef uint64_t order_errors = 0
    try:
        if workers == NULL or tids == NULL or lasts == NULL:
            raise MemoryError()
        for i in range(consumers * producers):
            lasts[i] = 0
        for i in range(nthreads):
            workers[i].sh = &sh
            workers[i].index = <uint64_t>i if i < producers else 0
            workers[i].count = 0
            workers[i].sum = 0
            workers[i].sumsq = 0
            workers[i].order_errors = 0
            workers[i].last = &lasts[(i - producers) * producers] if i >= producers else NULL

        with nogil:
            for i in range(nthreads):
                rc = pthread_create(
                    &tids[i], NULL,
                    _producer_main if i < producers else _consumer_main,
                    &workers[i])
                if rc != 0:
                    break
                started += 1
            if started < nthreads:
                # Release the threads that did start into an immediate exit.
                fa_store_release_u64(&sh.go, 2)
                for i in range(started):
                    pthread_join(tids[i], NULL)
            else:
                t0 = _now_ns()
                fa_store_release_u64(&sh.go, 1)
                for i in range(producers):
                    pthread_join(tids[i], NULL)
                # Every real token is in the ring (join orders it); one stop
                # token per consumer follows them.
                for i in range(consumers):
                    _push_blocking(&sh, 0)
                for i in range(producers, nthreads):
                    pthread_join(tids[i], NULL)
                t1 = _now_ns()
        if started < nthreads:
            raise OSError(rc, f"pthread_create failed after {started} threads")

        for i in range(producers, nthreads):
            count += workers[i].count
            total += workers[i].sum
            sumsq += workers[i].sumsq
            order_errors += workers[i].order_errors
        # The expected sums, computed the same wrapping way (mod 2**64).
        t = 1
        while t <= sh.items:
            want_sum += t
            want_sumsq += t * t
            t += 1
        ok = (count == sh.items and total == want_sum and sumsq == want_sumsq
              and order_errors == 0)
        return (t1 - t0) / 1e9, bool(ok)
    finally:
        PyMem_RawFree(workers)
        PyMem_RawFree(tids)
        PyMem_RawFree(lasts)
        if k == _KIND_SPSC:
            spsc_free(&sring)
        else:
            mpmc_free(&mring)


def _c_push_pop_loop(str kind, long long n, long long capacity=1024):
    """Push then pop one pointer `n` times on one thread, without the GIL,
    through the C functions; return the seconds taken.  For bench/ only."""
    cdef _Kind k = _parse_kind(kind)
    cdef MPMCRing mring
    cdef SPSCRing sring
    cdef void *p = NULL
    cdef void *token = <void *>&p
    cdef long long i
    cdef uint64_t t0, t1
    cdef bint ok = True
    if n < 0:
        raise ValueError("n must be >= 0")
    if k == _KIND_SPSC:
        spsc_init(&sring, capacity)
    else:
        mpmc_init(&mring, capacity)
    try:
        with nogil:
            t0 = _now_ns()
            if k == _KIND_SPSC:
                for i in range(n):
                    ok &= spsc_try_push(&sring, token)
                    ok &= spsc_try_pop(&sring, &p)
            else:
                for i in range(n):
                    ok &= mpmc_try_push(&mring, token)
                    ok &= mpmc_try_pop(&mring, &p)
            t1 = _now_ns()
        if not ok or (n and p != token):
            raise AssertionError("push/pop loop lost its token")
        return (t1 - t0) / 1e9
    finally:
        if k == _KIND_SPSC:
            spsc_free(&sring)
        else:
            mpmc_free(&mring)
