/* fa_atomic.h: the only place fasterapi touches atomic memory operations.
 *
 * Rules this header keeps:
 *  - Plain integer and pointer types in the API (uint64_t, void *): Cython
 *    code never sees an _Atomic type, so it cannot turn `x += 1` into a
 *    non-atomic load/store pair by accident.
 *  - The memory order is part of every helper's name; a reader of the
 *    queue code knows the ordering without opening this file.
 *  - Back-end 1 is the GCC/Clang __atomic builtins (they take plain
 *    pointers).  Back-end 2 is C11 <stdatomic.h>, reached by casting the
 *    plain pointer to an _Atomic one; define FA_ATOMIC_FORCE_C11 to build it
 *    even where the builtins exist, so that path is compiled and tested.
 *    Anything else is a build error rather than a silent data race.
 */
#ifndef FA_ATOMIC_H
#define FA_ATOMIC_H

#include <stdint.h>
#include <stddef.h>

/* Head and tail indexes live on separate lines of this size to avoid
 * false sharing between producer and consumer cores. */
#define FA_CACHE_LINE 64

#if (defined(__GNUC__) || defined(__clang__)) && !defined(FA_ATOMIC_FORCE_C11)
#  define FA_ATOMIC_BACKEND "builtins"
#  define FA__LOAD(p, mo)            __atomic_load_n((p), (mo))
#  define FA__STORE(p, v, mo)        __atomic_store_n((p), (v), (mo))
#  define FA__CAS(p, e, d, w, s, f)  __atomic_compare_exchange_n((p), (e), (d), (w), (s), (f))
#  define FA__FETCH_ADD(p, v, mo)    __atomic_fetch_add((p), (v), (mo))
#  define FA__EXCHANGE(p, v, mo)     __atomic_exchange_n((p), (v), (mo))
#  define FA__FENCE(mo)              __atomic_thread_fence(mo)
#  define FA__RELAXED __ATOMIC_RELAXED
#  define FA__ACQUIRE __ATOMIC_ACQUIRE
#  define FA__RELEASE __ATOMIC_RELEASE
#  define FA__ACQ_REL __ATOMIC_ACQ_REL
#  define FA__SEQ_CST __ATOMIC_SEQ_CST
#  define FA__U64(p) (p)
#  define FA__PTR(p) (p)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && !defined(__STDC_NO_ATOMICS__)
#  include <stdatomic.h>
#  define FA_ATOMIC_BACKEND "c11"
/* The cast below is sound only if an _Atomic object has the layout of the
 * plain one, which holds for lock-free 64-bit integers and pointers on
 * every platform CPython supports; check it rather than assume it. */
_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t), "atomic u64 layout");
_Static_assert(_Alignof(_Atomic uint64_t) == _Alignof(uint64_t), "atomic u64 alignment");
_Static_assert(sizeof(void *_Atomic) == sizeof(void *), "atomic pointer layout");
#  define FA__LOAD(p, mo)            atomic_load_explicit((p), (mo))
#  define FA__STORE(p, v, mo)        atomic_store_explicit((p), (v), (mo))
#  define FA__CAS(p, e, d, w, s, f)  ((w) ? atomic_compare_exchange_weak_explicit((p), (e), (d), (s), (f)) \
                                          : atomic_compare_exchange_strong_explicit((p), (e), (d), (s), (f)))
#  define FA__FETCH_ADD(p, v, mo)    atomic_fetch_add_explicit((p), (v), (mo))
#  define FA__EXCHANGE(p, v, mo)     atomic_exchange_explicit((p), (v), (mo))
#  define FA__FENCE(mo)              atomic_thread_fence(mo)
#  define FA__RELAXED memory_order_relaxed
#  define FA__ACQUIRE memory_order_acquire
#  define FA__RELEASE memory_order_release
#  define FA__ACQ_REL memory_order_acq_rel
#  define FA__SEQ_CST memory_order_seq_cst
#  define FA__U64(p) ((_Atomic uint64_t *)(p))
#  define FA__PTR(p) ((void *_Atomic *)(p))
#else
#  error "fasterapi needs GCC/Clang __atomic builtins or C11 <stdatomic.h>"
#endif

/* ---- 64-bit unsigned integers ---------------------------------------- */

static inline uint64_t fa_load_relaxed_u64(const uint64_t *p) { return FA__LOAD(FA__U64((uint64_t *)p), FA__RELAXED); }
static inline uint64_t fa_load_acquire_u64(const uint64_t *p) { return FA__LOAD(FA__U64((uint64_t *)p), FA__ACQUIRE); }
static inline void fa_store_relaxed_u64(uint64_t *p, uint64_t v) { FA__STORE(FA__U64(p), v, FA__RELAXED); }
static inline void fa_store_release_u64(uint64_t *p, uint64_t v) { FA__STORE(FA__U64(p), v, FA__RELEASE); }

/* Compare-and-swap: returns 1 and stores `desired` if *p == *expected,
 * else returns 0 and writes the current value into *expected.  The weak
 * form may fail spuriously and belongs inside a retry loop. */
static inline int fa_cas_weak_relaxed_u64(uint64_t *p, uint64_t *expected, uint64_t desired) {
    return FA__CAS(FA__U64(p), expected, desired, 1, FA__RELAXED, FA__RELAXED);
}
static inline int fa_cas_strong_acq_rel_u64(uint64_t *p, uint64_t *expected, uint64_t desired) {
    return FA__CAS(FA__U64(p), expected, desired, 0, FA__ACQ_REL, FA__ACQUIRE);
}
static inline uint64_t fa_fetch_add_relaxed_u64(uint64_t *p, uint64_t v) { return FA__FETCH_ADD(FA__U64(p), v, FA__RELAXED); }
static inline uint64_t fa_fetch_add_acq_rel_u64(uint64_t *p, uint64_t v) { return FA__FETCH_ADD(FA__U64(p), v, FA__ACQ_REL); }
/* Subtraction is addition of the two's complement; unsigned wrap is defined. */
static inline uint64_t fa_fetch_sub_relaxed_u64(uint64_t *p, uint64_t v) { return FA__FETCH_ADD(FA__U64(p), (uint64_t)0 - v, FA__RELAXED); }

/* ---- pointers -------------------------------------------------------- */

static inline void *fa_load_acquire_ptr(void *const *p) { return FA__LOAD(FA__PTR((void **)p), FA__ACQUIRE); }
static inline void fa_store_release_ptr(void **p, void *v) { FA__STORE(FA__PTR(p), v, FA__RELEASE); }
static inline void *fa_exchange_acq_rel_ptr(void **p, void *v) { return FA__EXCHANGE(FA__PTR(p), v, FA__ACQ_REL); }

/* ---- fences and spinning ---------------------------------------------- */

static inline void fa_fence_seq_cst(void) { FA__FENCE(FA__SEQ_CST); }

/* A hint to the CPU that we are busy-waiting (lets the sibling
 * hyper-thread run, saves power); a no-op where there is no such hint. */
static inline void fa_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline const char *fa_atomic_backend(void) { return FA_ATOMIC_BACKEND; }

#endif /* FA_ATOMIC_H */
