# Declarations of fa_atomic.h, the project's only atomics.  Plain integer and
# pointer types only: Cython never sees an _Atomic type (see the header).
from libc.stdint cimport uint64_t

cdef extern from "fa_atomic.h" nogil:
    const int FA_CACHE_LINE

    uint64_t fa_load_relaxed_u64(const uint64_t *p) noexcept
    uint64_t fa_load_acquire_u64(const uint64_t *p) noexcept
    void fa_store_relaxed_u64(uint64_t *p, uint64_t v) noexcept
    void fa_store_release_u64(uint64_t *p, uint64_t v) noexcept
    bint fa_cas_weak_relaxed_u64(uint64_t *p, uint64_t *expected, uint64_t desired) noexcept
    bint fa_cas_strong_acq_rel_u64(uint64_t *p, uint64_t *expected, uint64_t desired) noexcept
    uint64_t fa_fetch_add_relaxed_u64(uint64_t *p, uint64_t v) noexcept
    uint64_t fa_fetch_add_acq_rel_u64(uint64_t *p, uint64_t v) noexcept
    uint64_t fa_fetch_sub_relaxed_u64(uint64_t *p, uint64_t v) noexcept

    void *fa_load_acquire_ptr(void * const *p) noexcept
    void fa_store_release_ptr(void **p, void *v) noexcept
    void *fa_exchange_acq_rel_ptr(void **p, void *v) noexcept

    void fa_fence_seq_cst() noexcept
    void fa_cpu_relax() noexcept
    const char *fa_atomic_backend() noexcept
