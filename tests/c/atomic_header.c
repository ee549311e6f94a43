/* atomic_header.c: every fa_atomic.h helper, used once with a known answer.
 *
 * tests/test_tsan.py compiles this with -std=c11 -Wall -Wextra -Werror for
 * both back-ends (builtins, and -DFA_ATOMIC_FORCE_C11) and runs it: a helper
 * that does not compile warning-free, or computes the wrong thing, on either
 * back-end fails the suite.  Prints the back-end name on success.
 */
#include <stdio.h>
#include <string.h>

#include "fa_atomic.h"

#define CHECK(cond)                                                 \
    do {                                                            \
        if (!(cond)) {                                              \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                               \
        }                                                           \
    } while (0)

int main(void) {
    uint64_t x = 5, expected;
    int cell = 0, other = 0;
    void *p = &cell;

    CHECK(fa_load_relaxed_u64(&x) == 5);
    fa_store_relaxed_u64(&x, 6);
    CHECK(fa_load_acquire_u64(&x) == 6);
    fa_store_release_u64(&x, 7);
    CHECK(x == 7);

    /* CAS success stores; failure reports the current value. */
    expected = 7;
    while (!fa_cas_weak_relaxed_u64(&x, &expected, 8)) /* weak: may fail spuriously */
        CHECK(expected == 7);
    CHECK(x == 8);
    expected = 1;
    CHECK(!fa_cas_strong_acq_rel_u64(&x, &expected, 9));
    CHECK(expected == 8 && x == 8);
    CHECK(fa_cas_strong_acq_rel_u64(&x, &expected, 9));
    CHECK(x == 9);

    CHECK(fa_fetch_add_relaxed_u64(&x, 1) == 9);
    CHECK(fa_fetch_add_acq_rel_u64(&x, 2) == 10);
    CHECK(fa_fetch_sub_relaxed_u64(&x, 12) == 12);
    CHECK(x == 0);
    CHECK(fa_fetch_sub_relaxed_u64(&x, 1) == 0);
    CHECK(x == UINT64_MAX); /* unsigned wrap is defined */

    CHECK(fa_load_acquire_ptr(&p) == &cell);
    fa_store_release_ptr(&p, &other);
    CHECK(p == &other);
    CHECK(fa_exchange_acq_rel_ptr(&p, NULL) == &other);
    CHECK(p == NULL);

    fa_fence_seq_cst();
    fa_cpu_relax();
    CHECK(FA_CACHE_LINE >= 32 && (FA_CACHE_LINE & (FA_CACHE_LINE - 1)) == 0);
#ifdef FA_ATOMIC_FORCE_C11
    CHECK(strcmp(fa_atomic_backend(), "c11") == 0);
#else
    CHECK(strcmp(fa_atomic_backend(), "builtins") == 0);
#endif
    printf("%s\n", fa_atomic_backend());
    return 0;
}
