# The C-level map of fasterapi._pool: free lists of dicts, tuples and
# bytearrays whose lock-free part is the MPMC ring of fasterapi._queue.
#
# Ownership: a pooled object is held by exactly one reference, the ring's
# (taken with Py_INCREF on push, handed to the caller on pop).  A release
# recycles an object only if the references to it are exactly the ones the
# caller accounts for; anything more means someone else may still use it,
# and the object is dropped (left to its other holders), never reused.
#
# The C functions below hold the GIL (they touch reference counts); only the
# ring operations inside them would be safe without it.
from cpython.object cimport PyObject
from libc.stdint cimport uint64_t

from fasterapi._queue cimport MPMCRing


# Counters shared by the three pools, updated with relaxed atomic adds (they
# are statistics: nothing is ordered by them).  in_use is not stored: it is
# hits + misses - releases - drops (see _count_acquire for why).
cdef struct PoolCounters:
    uint64_t hits          # acquires served from the ring
    uint64_t misses        # acquires that built a fresh object
    uint64_t releases      # releases that put the object back in the ring
    uint64_t drops         # releases that did not (held elsewhere, full, unfit)
    uint64_t high_water    # the largest in_use seen, as int64_t


cdef class _PoolBase:
    cdef PoolCounters _c
    cdef Py_ssize_t _limit        # most objects kept (per arity for tuples)
    cdef bint _bounded            # _limit is below the ring's capacity


cdef class DictPool(_PoolBase):
    cdef MPMCRing _ring
    cdef bint _ready              # _ring is allocated (for __dealloc__)


cdef class TuplePool(_PoolBase):
    cdef MPMCRing *_rings         # _rings[k - 1] holds tuples of arity k
    cdef Py_ssize_t _max_arity
    cdef Py_ssize_t _nrings       # rings allocated so far (for __dealloc__)


cdef class BufferPool(_PoolBase):
    cdef MPMCRing _ring
    cdef bint _ready
    cdef Py_ssize_t _buffer_size
    cdef bint _zero               # zero-fill buffers on release


# The fast paths for other Cython modules.
#
# acquire: a new reference to an empty dict / a filled tuple / a bytearray of
# the pool's buffer_size (zero-filled unless the pool was made zero=False).
#
# release: the caller hands over its one reference (a local variable or a
# temporary) and must not use the object afterwards.  Returns 1 if the object
# went back into the pool, 0 if it was dropped (another reference exists, the
# pool is full, or the object does not fit), -1 with TypeError for an object
# of the wrong type (subclasses included).  The GIL must be held.
cdef dict dictpool_acquire(DictPool pool)
cdef int dictpool_release(DictPool pool, object d) except -1

cdef tuple tuplepool_acquire2(TuplePool pool, object a, object b)
# `items` points at n borrowed references; n < 1 or above max_arity gives a
# fresh tuple (a miss).
cdef tuple tuplepool_acquire_array(TuplePool pool, Py_ssize_t n, PyObject **items)
cdef int tuplepool_release(TuplePool pool, object t) except -1

cdef bytearray bufferpool_acquire(BufferPool pool)
cdef int bufferpool_release(BufferPool pool, object b) except -1
