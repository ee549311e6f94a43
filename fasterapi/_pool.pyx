# Object pools: free lists of empty dicts, filled tuples and fixed-size
# bytearrays, for the server's per-request objects.
#
# Rules this module keeps:
#  - The free list of every pool is a bounded MPMC ring (fasterapi._queue,
#    Vyukov's design).  Acquire and release are one CAS each on the ring,
#    with no ABA problem (a Treiber stack of recycled nodes has one), and
#    the ring does not rely on the GIL: it stays correct when a free-threaded
#    CPython (PEP 703) or a C thread without the GIL pushes and pops, so the
#    pool's correctness does not hang on an interpreter detail that is going
#    away.  The GIL still guards what the ring cannot: reference counts.
#  - The ring owns one reference to each pooled object (Py_INCREF on push,
#    handed to the caller on pop); a pool that dies releases what it holds.
#  - Reuse is safe by construction.  release() recycles an object only when
#    its reference count equals the references the caller can account for;
#    any other reference (an ASGI app that kept the scope, a list, a
#    memoryview) means the object may still be used, so it is dropped: left
#    to its other holders, untouched, and never handed out again.  uvicorn
#    learned this the hard way when it shared dicts between requests.
#  - Pooled objects hold no references (dicts are empty, tuples hold None,
#    bytearrays hold bytes), so the pool cannot hide a reference cycle from
#    the garbage collector and needs no tp_traverse.
#  - Counters are statistics: relaxed atomic adds from fa_atomic.h.
#  - Not yet fit for a free-threaded build: there, another thread could take
#    a reference between the count check and the push.  That needs an
#    ownership flag per object (or PyUnstable_Object_IsUniquelyReferenced,
#    3.14), not a different free list.

cimport cython
from cpython.bytearray cimport (
    PyByteArray_AS_STRING,
    PyByteArray_FromStringAndSize,
    PyByteArray_GET_SIZE,
)
from cpython.dict cimport PyDict_Clear
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_REFCNT
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_New
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset

from fasterapi._queue cimport mpmc_free, mpmc_init, mpmc_size, mpmc_try_pop, mpmc_try_push
from fasterapi.includes.atomic cimport (
    fa_cas_weak_relaxed_u64,
    fa_fetch_add_relaxed_u64,
    fa_fetch_sub_relaxed_u64,
    fa_load_relaxed_u64,
)


cdef extern from *:
    """
    /* Tuple slots are written in C: Cython's PyTuple_SET_ITEM steals a
     * reference through an `object` argument, which makes the "old item out,
     * new item in" order hard to read and easy to get wrong. */

    /* Put items[0..n) (borrowed) into t, which the caller holds as its only
     * reference: a pooled tuple (slots hold None) or one fresh from
     * PyTuple_New (slots hold NULL).  Writing into a tuple is only valid
     * while nobody else can see it; the pool guarantees that. */
    static inline void fa_pool_tuple_fill(PyObject *t, Py_ssize_t n, PyObject *const *items) {
        Py_ssize_t i;
    #if PY_VERSION_HEX >= 0x030E0000
        /* 3.14 caches a tuple's hash in the object (gh-131525); a reused
         * tuple must forget the hash of its old items, as CPython's own
         * free list does. */
        ((PyTupleObject *)t)->ob_hash = -1;
    #endif
        for (i = 0; i < n; i++) {
            PyObject *old = PyTuple_GET_ITEM(t, i);
            Py_INCREF(items[i]);
            PyTuple_SET_ITEM(t, i, items[i]);
            Py_XDECREF(old);   /* None or NULL: runs no code */
        }
        /* The collector untracks tuples that hold only atomic objects (as a
         * pooled tuple of None does); one that now holds containers must be
         * tracked again or cycles through it would never be collected
         * (bpo-42536 is the same bug in CPython's own tuple reuse). */
        if (!PyObject_GC_IsTracked(t)) {
            PyObject_GC_Track(t);
        }
    }

    /* Replace every item with None before dropping the old one, so the
     * tuple is a valid object at every step even if a __del__ runs. */
    static inline void fa_pool_tuple_clear(PyObject *t) {
        Py_ssize_t i, n = PyTuple_GET_SIZE(t);
        for (i = 0; i < n; i++) {
            PyObject *old = PyTuple_GET_ITEM(t, i);
            Py_INCREF(Py_None);
            PyTuple_SET_ITEM(t, i, Py_None);
            Py_XDECREF(old);
        }
    }

    #define fa_pool_tuple_items(t) (((PyTupleObject *)(t))->ob_item)

    /* Buffer views currently exported (memoryview, PyObject_GetBuffer). */
    #define fa_pool_bytearray_exports(b) (((PyByteArrayObject *)(b))->ob_exports)
    """
    void fa_pool_tuple_fill(object t, Py_ssize_t n, PyObject **items)
    void fa_pool_tuple_clear(object t)
    PyObject **fa_pool_tuple_items(object t)
    Py_ssize_t fa_pool_bytearray_exports(object b)


# ---- how many references a caller holds -----------------------------------
#
# Inside `def release(self, obj)` the argument has more references than the
# caller's own variable: the interpreter keeps the argument on its value
# stack for the duration of the call, and Cython 3.1+ takes a reference of
# its own to every argument it unpacks (__Pyx_ArgRef_FASTCALL; 3.0 borrowed
# it).  CPython 3.14 may *borrow* the stack slot instead (LOAD_FAST_BORROW).
# So the count depends on both the Cython that built us and the interpreter
# we run on; it is measured once at import with the very same call shape,
# rather than assumed.  The measurement is a plain local passed as an
# argument, the site most likely to be optimised into a borrow: other sites
# can only show more references, which makes the pool drop, never reuse
# wrongly.  (3.11 + Cython 3.3: variable + stack + Cython = 3.)
@cython.final
cdef class _ArgProbe:
    # Same signature and flags as the pools' release(), so Cython unpacks
    # the argument the same way.
    def release(self, obj):
        return Py_REFCNT(obj)


cdef Py_ssize_t _measure_python_held() except -1:
    ns = {}
    exec(compile("def probe(p):\n"
                 "    obj = object()\n"
                 "    return p.release(obj)\n",
                 "<fasterapi._pool calibration>", "exec"), ns)
    cdef Py_ssize_t n = ns["probe"](_ArgProbe())
    if n < 1:
        raise ImportError(f"fasterapi._pool: implausible argument refcount {n}")
    return n


# References to an object passed to a Python-level release(), counting the
# caller's one variable.
cdef Py_ssize_t _PY_HELD = _measure_python_held()

cdef enum:
    # Inside a lease's __exit__: the lease's own reference (moved into a
    # local) plus the `as` target.
    _LEASE_HELD = 2
    # The C-level API: the caller's one reference (Cython passes cdef
    # arguments borrowed and takes no reference of its own).
    _C_HELD = 1
    # TuplePool arities are small by design (ASGI header pairs, scope
    # tuples); past this a per-arity ring costs more memory than it saves.
    _MAX_ARITY_LIMIT = 64


def _python_release_refs():
    """The reference count release() accepts for an argument (the caller's
    variable included), as measured at import.  For tests."""
    return _PY_HELD


# ---- counters ---------------------------------------------------------------

cdef inline int64_t _in_use(PoolCounters *c) noexcept nogil:
    # Signed: releasing objects the pool never handed out can take it below
    # zero (two's-complement wrap is defined for uint64_t).
    return <int64_t>(fa_load_relaxed_u64(&c.hits) + fa_load_relaxed_u64(&c.misses)
                     - fa_load_relaxed_u64(&c.releases) - fa_load_relaxed_u64(&c.drops))


cdef inline void _count_acquire(PoolCounters *c, bint hit) noexcept nogil:
    # PERF: in_use is derived from the four counters, not kept as a fifth:
    # one locked add fewer on each acquire and each release (perf puts most
    # of the fast path's time on its locked instructions).  C-level DictPool
    # acquire+release, thread CPU time, median of 15, the two builds run
    # alternately three times: 60-70 ns with the counter, 48-56 ns without.
    # The price: without the GIL the four loads below are not one snapshot,
    # so high_water may be off by the threads in flight; hits, misses,
    # releases and drops stay exact, and in_use is exact when the pool is
    # quiet.  With the GIL nothing runs between a push and its count.
    if hit:
        fa_fetch_add_relaxed_u64(&c.hits, 1)
    else:
        fa_fetch_add_relaxed_u64(&c.misses, 1)
    cdef int64_t now = _in_use(c)
    cdef uint64_t hw = fa_load_relaxed_u64(&c.high_water)
    while now > <int64_t>hw:
        # On failure the CAS reloads hw; retry only while we are still higher.
        if fa_cas_weak_relaxed_u64(&c.high_water, &hw, <uint64_t>now):
            break


cdef inline int _kept(PoolCounters *c) noexcept nogil:
    fa_fetch_add_relaxed_u64(&c.releases, 1)
    return 1


cdef inline int _dropped(PoolCounters *c) noexcept nogil:
    fa_fetch_add_relaxed_u64(&c.drops, 1)
    return 0


cdef inline bint _full(MPMCRing *ring, _PoolBase pool) noexcept:
    # Only when the requested size is not the ring's power of two.  A
    # snapshot: concurrent releases may overshoot the size by a few, never
    # the ring's capacity.
    return pool._bounded and mpmc_size(ring) >= pool._limit


cdef inline int _push_owned(MPMCRing *ring, object obj, PoolCounters *c) noexcept:
    # The ring's reference is taken before the push: once pushed, another
    # thread may pop it at once.
    Py_INCREF(obj)
    if mpmc_try_push(ring, <void *>obj):
        return _kept(c)
    Py_DECREF(obj)
    return _dropped(c)


cdef void _drain(MPMCRing *ring) noexcept:
    cdef void *p
    while mpmc_try_pop(ring, &p):
        Py_DECREF(<object>p)


cdef Py_ssize_t _check_size(str what, Py_ssize_t n, Py_ssize_t lo) except -1:
    if n < lo:
        raise ValueError(f"{what} must be >= {lo}, got {n}")
    return n


cdef class _PoolBase:
    """The counters and statistics shared by DictPool, TuplePool and BufferPool."""

    def __cinit__(self, *args, **kwargs):
        if type(self) is _PoolBase:
            raise TypeError("_PoolBase is abstract: use DictPool, TuplePool or BufferPool")

    def stats(self):
        """A snapshot of the counters, as a dict.

        hits: acquires served from the pool; misses: acquires that built a
        fresh object; releases: objects put back; drops: releases that did
        not keep the object (still referenced elsewhere, pool full, or unfit);
        in_use: acquires minus releases (negative if objects the pool never
        handed out were released to it); high_water: the largest in_use.
        Exact when no other thread is using the pool.
        """
        return {
            "hits": <int64_t>fa_load_relaxed_u64(&self._c.hits),
            "misses": <int64_t>fa_load_relaxed_u64(&self._c.misses),
            "releases": <int64_t>fa_load_relaxed_u64(&self._c.releases),
            "drops": <int64_t>fa_load_relaxed_u64(&self._c.drops),
            "in_use": _in_use(&self._c),
            "high_water": <int64_t>fa_load_relaxed_u64(&self._c.high_water),
        }

    def __repr__(self):
        s = self.stats()
        return (f"<{type(self).__name__} {self._describe()} pooled={len(self)} "
                f"in_use={s['in_use']} hits={s['hits']} misses={s['misses']} "
                f"drops={s['drops']}>")

    def _describe(self):
        return ""


# ---- leases (the context managers) -----------------------------------------

cdef enum _Kind:
    _KIND_DICT = 1
    _KIND_TUPLE = 2
    _KIND_BUFFER = 3


@cython.final
@cython.freelist(8)
@cython.auto_pickle(False)  # a lease is a moment in one thread, not data
cdef class PoolLease:
    """One object borrowed from a pool for the length of a ``with`` block.

    Made by ``DictPool.dict()``, ``TuplePool.tuple(*items)`` and
    ``BufferPool.buffer()``.  The object is acquired on entry and released on
    exit (also when the block raises), so it is recycled only if nothing
    besides the ``as`` target still refers to it.  Single use: entering twice
    raises RuntimeError.
    """

    cdef _PoolBase _pool
    cdef object _obj          # the leased object, between enter and exit
    cdef tuple _items         # TuplePool only: the items to pack
    cdef _Kind _kind
    cdef bint _entered

    def __enter__(self):
        if self._pool is None:
            raise TypeError("a PoolLease is made by a pool's dict(), tuple() or buffer()")
        if self._entered:
            raise RuntimeError("a pool lease can be entered only once")
        self._entered = True
        if self._kind == _KIND_DICT:
            obj = _dict_acquire(<DictPool>self._pool)
        elif self._kind == _KIND_TUPLE:
            obj = _tuple_acquire(<TuplePool>self._pool, PyTuple_GET_SIZE(self._items),
                                 fa_pool_tuple_items(self._items))
            self._items = None
        else:
            obj = _buffer_acquire(<BufferPool>self._pool)
        self._obj = obj
        return obj

    def __exit__(self, exc_type, exc, tb):
        # Move the object into a local first: the count in the release below
        # is then exactly this local plus the `as` target (_LEASE_HELD).
        obj = self._obj
        if obj is None:
            return False
        self._obj = None
        if self._kind == _KIND_DICT:
            _dict_release(<DictPool>self._pool, obj, _LEASE_HELD)
        elif self._kind == _KIND_TUPLE:
            _tuple_release(<TuplePool>self._pool, obj, _LEASE_HELD)
        else:
            _buffer_release(<BufferPool>self._pool, obj, _LEASE_HELD)
        return False


cdef inline PoolLease _lease(_PoolBase pool, _Kind kind, tuple items):
    cdef PoolLease lease = PoolLease.__new__(PoolLease)
    lease._pool = pool
    lease._kind = kind
    lease._items = items
    return lease


# ---- DictPool ---------------------------------------------------------------

cdef inline dict _dict_acquire(DictPool self):
    cdef void *p
    cdef dict d
    if mpmc_try_pop(&self._ring, &p):
        d = <dict>p
        Py_DECREF(d)        # the ring's reference is now d's
        _count_acquire(&self._c, True)
        return d
    _count_acquire(&self._c, False)
    return {}


cdef int _dict_release(DictPool self, object d, Py_ssize_t held) except -1:
    if type(d) is not dict:
        raise TypeError(f"DictPool takes back exact dicts only, not {type(d).__name__}")
    if Py_REFCNT(d) > held or _full(&self._ring, self):
        return _dropped(&self._c)
    # Frees the keys table too, so a pooled dict holds no memory beyond itself.
    PyDict_Clear(d)
    # Clearing runs the values' finalizers, which could have stored d.
    if Py_REFCNT(d) > held:
        return _dropped(&self._c)
    return _push_owned(&self._ring, d, &self._c)


cdef dict dictpool_acquire(DictPool pool):
    return _dict_acquire(pool)


cdef int dictpool_release(DictPool pool, object d) except -1:
    return _dict_release(pool, d, _C_HELD)


@cython.final
cdef class DictPool(_PoolBase):
    """A pool of empty dicts.

    ``DictPool(size=2048, *, prefill=False)`` keeps at most ``size`` dicts;
    ``prefill=True`` creates them all now.  ``acquire()`` returns an empty
    dict, ``release(d)`` takes it back: cleared and kept for reuse if the
    caller's variable is its only reference, otherwise left alone and counted
    as a drop.  Safe to use from many threads.
    """

    def __cinit__(self, Py_ssize_t size=2048, *, bint prefill=False):
        _check_size("size", size, 0)
        mpmc_init(&self._ring, size if size > 0 else 1)
        self._ready = True
        self._limit = size
        self._bounded = size < <Py_ssize_t>(self._ring.mask + 1)
        if prefill:
            self.warm(size)

    def __dealloc__(self):
        if self._ready:
            _drain(&self._ring)
            mpmc_free(&self._ring)

    @property
    def size(self):
        """The most dicts the pool keeps."""
        return self._limit

    def __len__(self):
        """Dicts pooled now (a snapshot while other threads use the pool)."""
        return mpmc_size(&self._ring)

    def _describe(self):
        return f"size={self._limit}"

    def acquire(self):
        """Return an empty dict, pooled if one is available (a hit), else new (a miss)."""
        return _dict_acquire(self)

    def release(self, d):
        """Give back a dict; return True if it was kept for reuse.

        The caller gives up its reference (the variable passed) and must not
        use ``d`` afterwards.  Any other reference (a list, another variable,
        an app that kept it) makes the pool drop it instead: the dict is not
        cleared and never handed out again.  TypeError for anything but an
        exact dict.
        """
        return _dict_release(self, d, _PY_HELD) == 1

    def dict(self):
        """A context manager: ``with pool.dict() as d:`` acquires ``d`` and releases it on exit."""
        return _lease(self, _KIND_DICT, None)

    def warm(self, Py_ssize_t n):
        """Add up to ``n`` new dicts to the pool (not past its size); return how many were added."""
        cdef Py_ssize_t added = 0
        while added < n and not _full(&self._ring, self):
            d = {}
            Py_INCREF(d)
            if not mpmc_try_push(&self._ring, <void *>d):
                Py_DECREF(d)
                break
            added += 1
        return added


# ---- TuplePool --------------------------------------------------------------

cdef tuple _tuple_acquire(TuplePool self, Py_ssize_t n, PyObject **items):
    cdef void *p
    cdef tuple t
    if 1 <= n <= self._max_arity and mpmc_try_pop(&self._rings[n - 1], &p):
        t = <tuple>p
        Py_DECREF(t)        # the ring's reference is now t's: the only one
        fa_pool_tuple_fill(t, n, items)
        _count_acquire(&self._c, True)
        return t
    _count_acquire(&self._c, False)
    t = PyTuple_New(n)
    fa_pool_tuple_fill(t, n, items)
    return t


cdef int _tuple_release(TuplePool self, object t, Py_ssize_t held) except -1:
    if type(t) is not tuple:
        raise TypeError(f"TuplePool takes back exact tuples only, not {type(t).__name__}")
    cdef Py_ssize_t n = PyTuple_GET_SIZE(t)
    # The count check also refuses constants: a literal tuple is referenced
    # by its code object, and () is a shared singleton.
    if n < 1 or n > self._max_arity or Py_REFCNT(t) > held:
        return _dropped(&self._c)
    cdef MPMCRing *ring = &self._rings[n - 1]
    if _full(ring, self):
        return _dropped(&self._c)
    fa_pool_tuple_clear(t)
    if Py_REFCNT(t) > held:       # an item's finalizer stored t somewhere
        return _dropped(&self._c)
    return _push_owned(ring, t, &self._c)


cdef tuple tuplepool_acquire2(TuplePool pool, object a, object b):
    cdef PyObject *items[2]
    items[0] = <PyObject *>a
    items[1] = <PyObject *>b
    return _tuple_acquire(pool, 2, items)


cdef tuple tuplepool_acquire_array(TuplePool pool, Py_ssize_t n, PyObject **items):
    return _tuple_acquire(pool, n, items)


cdef int tuplepool_release(TuplePool pool, object t) except -1:
    return _tuple_release(pool, t, _C_HELD)


@cython.final
cdef class TuplePool(_PoolBase):
    """A pool of tuples, one free list per arity.

    ``TuplePool(size_per_arity=512, max_arity=8, *, prefill=False)``.
    ``acquire(*items)`` returns a tuple of exactly those items, reusing a
    pooled tuple of that length when there is one; lengths 0 and above
    ``max_arity`` always get a fresh tuple (a miss).  ``release(t)`` drops
    the items (the tuple then holds None) and keeps the tuple only if the
    caller's variable is its only reference.

    From Python the call itself packs ``*items`` into a tuple, so this pool
    cannot beat ``(a, b)`` there; it exists for Cython callers of
    ``tuplepool_acquire2`` / ``tuplepool_acquire_array``.
    """

    def __cinit__(self, Py_ssize_t size_per_arity=512, Py_ssize_t max_arity=8, *,
                  bint prefill=False):
        _check_size("size_per_arity", size_per_arity, 0)
        _check_size("max_arity", max_arity, 1)
        if max_arity > _MAX_ARITY_LIMIT:
            raise ValueError(f"max_arity must be <= {_MAX_ARITY_LIMIT}, got {max_arity}")
        # Zeroed, so __dealloc__ can free a partly built array.
        self._rings = <MPMCRing *>PyMem_Calloc(max_arity, sizeof(MPMCRing))
        if self._rings == NULL:
            raise MemoryError()
        self._max_arity = max_arity
        self._limit = size_per_arity
        cdef Py_ssize_t k
        for k in range(max_arity):
            mpmc_init(&self._rings[k], size_per_arity if size_per_arity > 0 else 1)
            self._nrings = k + 1
        self._bounded = size_per_arity < <Py_ssize_t>(self._rings[0].mask + 1)
        if prefill:
            self.warm(size_per_arity)

    def __dealloc__(self):
        cdef Py_ssize_t k
        if self._rings != NULL:
            for k in range(self._nrings):
                _drain(&self._rings[k])
                mpmc_free(&self._rings[k])
            PyMem_Free(self._rings)
            self._rings = NULL

    @property
    def size_per_arity(self):
        """The most tuples the pool keeps of each arity."""
        return self._limit

    @property
    def max_arity(self):
        """The longest tuple the pool recycles."""
        return self._max_arity

    def __len__(self):
        """Tuples pooled now, all arities together (a snapshot)."""
        cdef Py_ssize_t k, n = 0
        for k in range(self._nrings):
            n += mpmc_size(&self._rings[k])
        return n

    def pooled(self, Py_ssize_t arity):
        """Tuples of length ``arity`` pooled now (0 for arities the pool does not keep)."""
        if arity < 1 or arity > self._max_arity:
            return 0
        return mpmc_size(&self._rings[arity - 1])

    def _describe(self):
        return f"size_per_arity={self._limit} max_arity={self._max_arity}"

    def acquire(self, *items):
        """Return a tuple holding ``items``: pooled if one of that length is free, else new."""
        return _tuple_acquire(self, PyTuple_GET_SIZE(items), fa_pool_tuple_items(items))

    def release(self, t):
        """Give back a tuple; return True if it was kept for reuse.

        Kept only if the caller's variable is its only reference (the caller
        must not use ``t`` afterwards); its items are then replaced by None.
        Otherwise the tuple is left untouched (a drop).  TypeError for
        anything but an exact tuple.
        """
        return _tuple_release(self, t, _PY_HELD) == 1

    def tuple(self, *items):
        """A context manager: ``with pool.tuple(a, b) as t:`` packs ``t`` and releases it on exit."""
        return _lease(self, _KIND_TUPLE, items)

    def warm(self, Py_ssize_t n, arity=None):
        """Add up to ``n`` tuples (of None) of each arity, or only of ``arity``;
        return how many were added in all.  ValueError for an arity the pool
        does not keep."""
        cdef Py_ssize_t k, lo = 1, hi = self._max_arity, added = 0, i
        cdef MPMCRing *ring
        if arity is not None:
            lo = hi = arity
            if lo < 1 or lo > self._max_arity:
                raise ValueError(f"arity must be in 1..{self._max_arity}, got {arity}")
        for k in range(lo, hi + 1):
            ring = &self._rings[k - 1]
            i = 0
            while i < n and not _full(ring, self):
                t = PyTuple_New(k)
                fa_pool_tuple_clear(t)      # NULL slots -> None
                Py_INCREF(t)
                if not mpmc_try_push(ring, <void *>t):
                    Py_DECREF(t)
                    break
                i += 1
            added += i
        return added


# ---- BufferPool -------------------------------------------------------------

cdef inline bytearray _buffer_acquire(BufferPool self):
    cdef void *p
    cdef bytearray b
    if mpmc_try_pop(&self._ring, &p):
        b = <bytearray>p
        Py_DECREF(b)
        _count_acquire(&self._c, True)
        return b
    _count_acquire(&self._c, False)
    return _new_buffer(self._buffer_size)


cdef inline bytearray _new_buffer(Py_ssize_t size):
    b = PyByteArray_FromStringAndSize(NULL, size)
    # Always zeroed: a fresh buffer must never show another object's old
    # heap bytes, whatever the pool's zero setting.
    memset(PyByteArray_AS_STRING(b), 0, size)
    return b


cdef int _buffer_release(BufferPool self, object b, Py_ssize_t held) except -1:
    if type(b) is not bytearray:
        raise TypeError(f"BufferPool takes back exact bytearrays only, not {type(b).__name__}")
    # A resized buffer is not the pool's shape any more; a buffer with an
    # exported view (memoryview, a C consumer) could be written through it
    # after reuse.  The view also holds a reference, so the count check
    # would catch it too: the exports check says why.
    if (PyByteArray_GET_SIZE(b) != self._buffer_size
            or fa_pool_bytearray_exports(b) != 0
            or Py_REFCNT(b) > held
            or _full(&self._ring, self)):
        return _dropped(&self._c)
    if self._zero:
        memset(PyByteArray_AS_STRING(b), 0, self._buffer_size)
    return _push_owned(&self._ring, b, &self._c)


cdef bytearray bufferpool_acquire(BufferPool pool):
    return _buffer_acquire(pool)


cdef int bufferpool_release(BufferPool pool, object b) except -1:
    return _buffer_release(pool, b, _C_HELD)


@cython.final
cdef class BufferPool(_PoolBase):
    """A pool of bytearrays of one size.

    ``BufferPool(buffer_size=8192, count=1024, *, prefill=False, zero=True)``
    keeps at most ``count`` buffers.  ``acquire()`` returns a bytearray of
    exactly ``buffer_size`` bytes; ``release(b)`` keeps it only if it still
    has that size, no buffer view of it is alive (``memoryview(b)``
    unreleased) and the caller's variable is its only reference.

    With ``zero=True`` (the default) released buffers are zero-filled, so
    every acquired buffer is all zeros and one request's bytes never reach
    the next holder; that costs a memset of ``buffer_size`` per release
    (see bench/bench_pool.py).  ``zero=False`` skips it for callers that
    track how many bytes they wrote; fresh buffers are zeroed either way.
    """

    def __cinit__(self, Py_ssize_t buffer_size=8192, Py_ssize_t count=1024, *,
                  bint prefill=False, bint zero=True):
        _check_size("buffer_size", buffer_size, 1)
        _check_size("count", count, 0)
        mpmc_init(&self._ring, count if count > 0 else 1)
        self._ready = True
        self._limit = count
        self._bounded = count < <Py_ssize_t>(self._ring.mask + 1)
        self._buffer_size = buffer_size
        self._zero = zero
        if prefill:
            self.warm(count)

    def __dealloc__(self):
        if self._ready:
            _drain(&self._ring)
            mpmc_free(&self._ring)

    @property
    def buffer_size(self):
        """The length of every buffer the pool hands out."""
        return self._buffer_size

    @property
    def count(self):
        """The most buffers the pool keeps."""
        return self._limit

    @property
    def zero(self):
        """Whether released buffers are zero-filled."""
        return self._zero

    def __len__(self):
        """Buffers pooled now (a snapshot while other threads use the pool)."""
        return mpmc_size(&self._ring)

    def _describe(self):
        return f"buffer_size={self._buffer_size} count={self._limit} zero={bool(self._zero)}"

    def acquire(self):
        """Return a bytearray of ``buffer_size`` bytes: pooled if one is free, else new."""
        return _buffer_acquire(self)

    def release(self, b):
        """Give back a buffer; return True if it was kept for reuse.

        Dropped (left alone) if it was resized, has a live buffer view, or is
        referenced anywhere but by the caller's variable.  TypeError for
        anything but an exact bytearray.
        """
        return _buffer_release(self, b, _PY_HELD) == 1

    def buffer(self):
        """A context manager: ``with pool.buffer() as b:`` acquires ``b`` and releases it on exit."""
        return _lease(self, _KIND_BUFFER, None)

    def warm(self, Py_ssize_t n):
        """Add up to ``n`` new buffers (not past ``count``); return how many were added."""
        cdef Py_ssize_t added = 0
        while added < n and not _full(&self._ring, self):
            b = _new_buffer(self._buffer_size)
            Py_INCREF(b)
            if not mpmc_try_push(&self._ring, <void *>b):
                Py_DECREF(b)
                break
            added += 1
        return added


# ---- benchmark loops ----------------------------------------------------------
#
# C-level loops for bench/bench_pool.py: what a Cython caller (the server)
# pays per acquire+release, beside building the object the plain way in the
# same kind of loop.  Not API.

def _bench_dict_pool(DictPool pool, Py_ssize_t n):
    cdef Py_ssize_t i
    cdef dict d
    for i in range(n):
        d = dictpool_acquire(pool)
        dictpool_release(pool, d)


def _bench_dict_new(Py_ssize_t n):
    cdef Py_ssize_t i
    cdef dict d
    for i in range(n):
        d = {}


def _bench_tuple_pool(TuplePool pool, Py_ssize_t n, Py_ssize_t arity, object item):
    cdef Py_ssize_t i
    cdef tuple t
    cdef PyObject *items[64]
    for i in range(arity):
        items[i] = <PyObject *>item
    for i in range(n):
        t = tuplepool_acquire_array(pool, arity, items)
        tuplepool_release(pool, t)


def _bench_tuple_new(Py_ssize_t n, Py_ssize_t arity, object item):
    cdef Py_ssize_t i
    cdef tuple t
    if arity == 2:
        for i in range(n):
            t = (item, item)
    elif arity == 4:
        for i in range(n):
            t = (item, item, item, item)
    else:
        raise ValueError("arity 2 or 4")


def _bench_buffer_pool(BufferPool pool, Py_ssize_t n):
    cdef Py_ssize_t i
    cdef bytearray b
    for i in range(n):
        b = bufferpool_acquire(pool)
        bufferpool_release(pool, b)


def _bench_buffer_new(Py_ssize_t n, Py_ssize_t size):
    cdef Py_ssize_t i
    cdef bytearray b
    for i in range(n):
        b = _new_buffer(size)


def _c_release_last(object pool, list objs):
    """Pop the last object of ``objs`` into a Cython local and release it
    through the C-level API; return what the API returned.  For tests: the
    list's reference becomes the local, the caller's one reference."""
    obj = objs.pop()
    if type(pool) is DictPool:
        return dictpool_release(<DictPool>pool, obj)
    if type(pool) is TuplePool:
        return tuplepool_release(<TuplePool>pool, obj)
    return bufferpool_release(<BufferPool>pool, obj)
