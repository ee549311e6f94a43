# The C-level map of fasterapi._queue: bounded lock-free rings of pointers.
#
# Other Cython modules (the pools, the server) cimport these functions and use
# them without the GIL.  Ownership of what travels through a ring is the
# caller's business at this level; the Python classes below take a reference
# on push and hand it over on pop.
from libc.stdint cimport uint64_t

cdef extern from "fa_atomic.h":
    # Cache-line padding; a #define in the header.
    enum: FA_CACHE_LINE


# One slot of Vyukov's bounded MPMC queue: `seq` says whose turn the slot is
# (== position: free for the producer of that position; == position + 1:
# filled, for the consumer of that position).
cdef struct MPMCCell:
    uint64_t seq
    void *data


cdef struct MPMCRing:
    char _pad0[FA_CACHE_LINE]
    uint64_t enqueue_pos          # next position producers claim (CAS)
    char _pad1[FA_CACHE_LINE - 8]
    uint64_t dequeue_pos          # next position consumers claim (CAS)
    char _pad2[FA_CACHE_LINE - 8]
    MPMCCell *cells               # capacity cells, allocated at init
    uint64_t mask                 # capacity - 1 (capacity is a power of two)


# Single producer, single consumer: each side owns one index and only reads
# the other's with acquire; a cached copy of the other index saves that
# cross-core read while the ring is neither full nor empty.
#
# The pads are whole lines, not "line minus the fields": a ring embedded in a
# PyObject is only 8- or 16-byte aligned, and a 16-byte group followed by
# FA_CACHE_LINE - 16 bytes of pad can straddle a line and share it with the
# other side's group.  A full line of pad between groups rules that out at
# any alignment; the leading pad keeps ob_refcnt (written by every method
# call) off the consumer's line.
cdef struct SPSCRing:
    char _pad0[FA_CACHE_LINE]
    uint64_t head                 # consumer's next read position (free-running)
    uint64_t cached_tail          # consumer's last view of tail
    char _pad1[FA_CACHE_LINE]
    uint64_t tail                 # producer's next write position (free-running)
    uint64_t cached_head          # producer's last view of head
    char _pad2[FA_CACHE_LINE]
    void **slots                  # capacity slots, allocated at init
    uint64_t mask                 # capacity - 1 (capacity is a power of two)


# The largest capacity a ring accepts (2**30 slots: 16 GiB of MPMC cells, far
# beyond any sane bound; the limit exists so the power-of-two rounding and
# the 64-bit position arithmetic can never overflow).
cdef enum:
    QUEUE_MAX_CAPACITY = 1073741824

# Capacity is rounded up to a power of two; ValueError for capacity < 1 or
# above QUEUE_MAX_CAPACITY, MemoryError when the slots cannot be allocated.
cdef uint64_t ring_capacity(Py_ssize_t capacity) except 0

cdef int mpmc_init(MPMCRing *r, Py_ssize_t capacity) except -1   # rounds up to >= 2 cells (Vyukov needs two)
cdef void mpmc_free(MPMCRing *r) noexcept
cdef bint mpmc_try_push(MPMCRing *r, void *item) noexcept nogil
cdef bint mpmc_try_pop(MPMCRing *r, void **item) noexcept nogil
cdef Py_ssize_t mpmc_size(MPMCRing *r) noexcept nogil   # a snapshot, exact when quiescent

cdef int spsc_init(SPSCRing *r, Py_ssize_t capacity) except -1
cdef void spsc_free(SPSCRing *r) noexcept
cdef bint spsc_try_push(SPSCRing *r, void *item) noexcept nogil
cdef bint spsc_try_pop(SPSCRing *r, void **item) noexcept nogil
cdef Py_ssize_t spsc_size(SPSCRing *r) noexcept nogil


# One try-operation for either ring and direction: for a push `*slot` is the
# item to append, for a pop the item is written to `*slot`.
ctypedef bint (*_try_op)(void *ring, void **slot) noexcept nogil

# A ring kind's functions behind void pointers, so that one Python class
# implementation (_RingQueue) serves both rings.
cdef struct _RingOps:
    const char *name                                  # the Python class's name
    _try_op push
    _try_op pop
    Py_ssize_t (*size)(void *ring) noexcept nogil
    void (*free)(void *ring) noexcept


cdef class _RingQueue:
    cdef void *_ring                  # the subclass's ring; NULL until its init succeeded
    cdef const _RingOps *_ops         # that ring's functions
    cdef Py_ssize_t _capacity
    cdef void _bind(self, void *ring, const _RingOps *ops, uint64_t mask) noexcept


cdef class SPSCQueue(_RingQueue):
    cdef SPSCRing ring


cdef class MPMCQueue(_RingQueue):
    cdef MPMCRing ring
