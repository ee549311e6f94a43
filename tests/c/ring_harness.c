/* ring_harness.c: fasterapi's two ring algorithms under ThreadSanitizer,
 * without Python in the way.
 *
 * The ring structs and the mpmc_* / spsc_* functions below repeat
 * fasterapi/_queue.pxd and fasterapi/_queue.pyx LINE FOR LINE (same loads,
 * same stores, same memory orders, same fa_atomic.h helpers).  A change to
 * either algorithm in _queue.pyx must be made here too, or this harness stops
 * proving anything.  The only deliberate difference is PUBLISH below.
 *
 * What it checks: producer threads fill a plain (non-atomic) payload struct
 * per token, push a pointer to it, and consumer threads pop the pointer and
 * read the payload.  The payload is ordered only by the ring's release/acquire
 * pair, so TSan sees a data race on it if that pair is broken.  The counts,
 * sums and per-producer order of what the consumers saw are checked too.
 *
 * Build (tests/test_tsan.py does this for both fa_atomic.h back-ends):
 *   gcc -fsanitize=thread -O1 -g -pthread -Ifasterapi/includes \
 *       [-DFA_ATOMIC_FORCE_C11] [-DFA_HARNESS_BROKEN_RELEASE] \
 *       tests/c/ring_harness.c -o ring_harness
 * Run: ./ring_harness [mpmc|spsc|all] [items]
 *
 * FA_HARNESS_BROKEN_RELEASE is the negative control: the producer's
 * publishing store (MPMC cell seq, SPSC tail) becomes relaxed, and TSan must
 * then report a race.  A harness that stays quiet with it proves nothing.
 */
/* pthreads and sched_yield under a strict -std=c11. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fa_atomic.h"

#ifdef FA_HARNESS_BROKEN_RELEASE
#  define PUBLISH(p, v) fa_store_relaxed_u64((p), (v))
#else
#  define PUBLISH(p, v) fa_store_release_u64((p), (v))
#endif

#define MAX_CAPACITY ((uint64_t)1 << 30)

/* ---- the rings: as fasterapi/_queue.pxd lays them out ------------------ */

typedef struct {
    uint64_t seq;
    void *data;
} MPMCCell;

typedef struct {
    char _pad0[FA_CACHE_LINE];
    uint64_t enqueue_pos;
    char _pad1[FA_CACHE_LINE - 8];
    uint64_t dequeue_pos;
    char _pad2[FA_CACHE_LINE - 8];
    MPMCCell *cells;
    uint64_t mask;
} MPMCRing;

typedef struct {
    char _pad0[FA_CACHE_LINE];
    uint64_t head;
    uint64_t cached_tail;
    char _pad1[FA_CACHE_LINE];
    uint64_t tail;
    uint64_t cached_head;
    char _pad2[FA_CACHE_LINE];
    void **slots;
    uint64_t mask;
} SPSCRing;

static uint64_t ring_capacity(uint64_t capacity) {
    uint64_t cap = 1;
    if (capacity < 1 || capacity > MAX_CAPACITY) {
        fprintf(stderr, "bad capacity %llu\n", (unsigned long long)capacity);
        exit(2);
    }
    while (cap < capacity)
        cap <<= 1;
    return cap;
}

/* ---- Vyukov MPMC: mirrors _queue.pyx ------------------------------------ */

static void mpmc_init(MPMCRing *r, uint64_t capacity) {
    uint64_t cap = ring_capacity(capacity);
    uint64_t i;
    if (cap < 2)
        cap = 2;
    MPMCCell *cells = malloc(cap * sizeof(MPMCCell));
    if (cells == NULL) {
        perror("malloc");
        exit(2);
    }
    for (i = 0; i < cap; i++) {
        cells[i].seq = i;
        cells[i].data = NULL;
    }
    r->cells = cells;
    r->mask = cap - 1;
    r->enqueue_pos = 0;
    r->dequeue_pos = 0;
}

static void mpmc_free(MPMCRing *r) {
    free(r->cells);
    r->cells = NULL;
    r->mask = 0;
}

static int mpmc_try_push(MPMCRing *r, void *item) {
    MPMCCell *cell;
    uint64_t seq;
    int64_t dif;
    uint64_t pos = fa_load_relaxed_u64(&r->enqueue_pos);
    for (;;) {
        cell = &r->cells[pos & r->mask];
        seq = fa_load_acquire_u64(&cell->seq);
        dif = (int64_t)(seq - pos);
        if (dif == 0) {
            if (fa_cas_weak_relaxed_u64(&r->enqueue_pos, &pos, pos + 1))
                break;
        } else if (dif < 0) {
            return 0;
        } else {
            pos = fa_load_relaxed_u64(&r->enqueue_pos);
        }
    }
    cell->data = item;
    PUBLISH(&cell->seq, pos + 1);
    return 1;
}

static int mpmc_try_pop(MPMCRing *r, void **item) {
    MPMCCell *cell;
    uint64_t seq;
    int64_t dif;
    uint64_t pos = fa_load_relaxed_u64(&r->dequeue_pos);
    for (;;) {
        cell = &r->cells[pos & r->mask];
        seq = fa_load_acquire_u64(&cell->seq);
        dif = (int64_t)(seq - (pos + 1));
        if (dif == 0) {
            if (fa_cas_weak_relaxed_u64(&r->dequeue_pos, &pos, pos + 1))
                break;
        } else if (dif < 0) {
            return 0;
        } else {
            pos = fa_load_relaxed_u64(&r->dequeue_pos);
        }
    }
    *item = cell->data;
    fa_store_release_u64(&cell->seq, pos + r->mask + 1);
    return 1;
}

static int64_t mpmc_size(MPMCRing *r) {
    uint64_t head = fa_load_acquire_u64(&r->dequeue_pos);
    uint64_t tail = fa_load_acquire_u64(&r->enqueue_pos);
    int64_t n = (int64_t)(tail - head);
    if (n < 0)
        return 0;
    if ((uint64_t)n > r->mask + 1)
        return (int64_t)(r->mask + 1);
    return n;
}

/* ---- SPSC: mirrors _queue.pyx -------------------------------------------- */

static void spsc_init(SPSCRing *r, uint64_t capacity) {
    uint64_t cap = ring_capacity(capacity);
    uint64_t i;
    void **slots = malloc(cap * sizeof(void *));
    if (slots == NULL) {
        perror("malloc");
        exit(2);
    }
    for (i = 0; i < cap; i++)
        slots[i] = NULL;
    r->slots = slots;
    r->mask = cap - 1;
    r->head = 0;
    r->cached_tail = 0;
    r->tail = 0;
    r->cached_head = 0;
}

static void spsc_free(SPSCRing *r) {
    free(r->slots);
    r->slots = NULL;
    r->mask = 0;
}

static int spsc_try_push(SPSCRing *r, void *item) {
    uint64_t tail = fa_load_relaxed_u64(&r->tail);
    if (tail - r->cached_head > r->mask) {
        r->cached_head = fa_load_acquire_u64(&r->head);
        if (tail - r->cached_head > r->mask)
            return 0;
    }
    r->slots[tail & r->mask] = item;
    PUBLISH(&r->tail, tail + 1);
    return 1;
}

static int spsc_try_pop(SPSCRing *r, void **item) {
    uint64_t head = fa_load_relaxed_u64(&r->head);
    if (head == r->cached_tail) {
        r->cached_tail = fa_load_acquire_u64(&r->tail);
        if (head == r->cached_tail)
            return 0;
    }
    *item = r->slots[head & r->mask];
    fa_store_release_u64(&r->head, head + 1);
    return 1;
}

static int64_t spsc_size(SPSCRing *r) {
    uint64_t head = fa_load_acquire_u64(&r->head);
    uint64_t tail = fa_load_acquire_u64(&r->tail);
    int64_t n = (int64_t)(tail - head);
    if (n < 0)
        return 0;
    if ((uint64_t)n > r->mask + 1)
        return (int64_t)(r->mask + 1);
    return n;
}

/* ---- the workload ---------------------------------------------------------- */

/* Written by the producer with plain stores before the push, read by the
 * consumer with plain loads after the pop: only the ring orders them. */
typedef struct {
    uint64_t token;
    uint64_t check;
} Payload;

#define CHECK_OF(t) ((t) * 0x9E3779B97F4A7C15ull ^ 0xA5A5A5A5A5A5A5A5ull)

typedef struct {
    int spsc;
    MPMCRing mpmc;
    SPSCRing ring;
    Payload *payloads;      /* payloads[t - 1] belongs to token t */
    uint64_t items;
    uint64_t producers;
    uint64_t go;            /* atomic start flag */
} Shared;

typedef struct {
    Shared *sh;
    uint64_t index;
    uint64_t count, sum, sumsq, bad_payload, order_errors;
    uint64_t *last;
    int64_t max_size_seen;
} Worker;

static int push_item(Shared *sh, void *p) {
    return sh->spsc ? spsc_try_push(&sh->ring, p) : mpmc_try_push(&sh->mpmc, p);
}

static int pop_item(Shared *sh, void **p) {
    return sh->spsc ? spsc_try_pop(&sh->ring, p) : mpmc_try_pop(&sh->mpmc, p);
}

static int64_t size_of(Shared *sh) {
    return sh->spsc ? spsc_size(&sh->ring) : mpmc_size(&sh->mpmc);
}

/* Spin, then yield, then nap (as _queue.pyx's helper threads do): on a
 * machine with fewer cores than threads, spinning only delays the peer. */
static void backoff(unsigned *spins) {
    ++*spins;
    if (*spins < 64) {
        fa_cpu_relax();
    } else if (*spins < 128) {
        sched_yield();
    } else {
        struct timespec nap = {0, 20000};
        nanosleep(&nap, NULL);
    }
}

static void push_blocking(Shared *sh, void *p) {
    unsigned spins = 0;
    while (!push_item(sh, p))
        backoff(&spins);
}

static void await_go(Shared *sh) {
    unsigned spins = 0;
    while (!fa_load_acquire_u64(&sh->go))
        backoff(&spins);
}

static void *producer_main(void *arg) {
    Worker *w = arg;
    Shared *sh = w->sh;
    uint64_t t;
    await_go(sh);
    for (t = w->index + 1; t <= sh->items; t += sh->producers) {
        Payload *pl = &sh->payloads[t - 1];
        pl->token = t;
        pl->check = CHECK_OF(t);
        push_blocking(sh, pl);
    }
    return NULL;
}

static void *consumer_main(void *arg) {
    Worker *w = arg;
    Shared *sh = w->sh;
    void *p;
    unsigned spins = 0;
    await_go(sh);
    for (;;) {
        if (!pop_item(sh, &p)) {
            backoff(&spins);
            continue;
        }
        spins = 0;
        if (p == NULL)          /* stop: every payload was pushed before it */
            return NULL;
        Payload *pl = p;
        uint64_t t = pl->token;
        if (t < 1 || t > sh->items || pl->check != CHECK_OF(t) || pl != &sh->payloads[t - 1]) {
            w->bad_payload++;
            continue;
        }
        w->count++;
        w->sum += t;
        w->sumsq += t * t;
        uint64_t src = (t - 1) % sh->producers;
        if (t <= w->last[src])
            w->order_errors++;
        w->last[src] = t;
        int64_t n = size_of(sh);
        if (n > w->max_size_seen)
            w->max_size_seen = n;
    }
}

static int run(int spsc, uint64_t producers, uint64_t consumers, uint64_t items,
               uint64_t capacity) {
    Shared *sh = calloc(1, sizeof(Shared));
    uint64_t n = producers + consumers, i;
    Worker *workers = calloc(n, sizeof(Worker));
    pthread_t *tids = calloc(n, sizeof(pthread_t));
    uint64_t *lasts = calloc(producers * consumers, sizeof(uint64_t));
    if (!sh || !workers || !tids || !lasts) {
        perror("calloc");
        return 2;
    }
    sh->spsc = spsc;
    sh->items = items;
    sh->producers = producers;
    sh->payloads = calloc(items ? items : 1, sizeof(Payload));
    if (!sh->payloads) {
        perror("calloc");
        return 2;
    }
    if (spsc)
        spsc_init(&sh->ring, capacity);
    else
        mpmc_init(&sh->mpmc, capacity);
    uint64_t cap = spsc ? sh->ring.mask + 1 : sh->mpmc.mask + 1;

    for (i = 0; i < n; i++) {
        workers[i].sh = sh;
        workers[i].index = i < producers ? i : 0;
        workers[i].last = i < producers ? NULL : &lasts[(i - producers) * producers];
        if (pthread_create(&tids[i], NULL, i < producers ? producer_main : consumer_main,
                           &workers[i]) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    fa_store_release_u64(&sh->go, 1);
    for (i = 0; i < producers; i++)
        pthread_join(tids[i], NULL);
    for (i = 0; i < consumers; i++)
        push_blocking(sh, NULL);
    for (i = producers; i < n; i++)
        pthread_join(tids[i], NULL);

    uint64_t count = 0, sum = 0, sumsq = 0, bad = 0, order = 0, want_sum = 0, want_sumsq = 0;
    int64_t max_size = 0;
    for (i = producers; i < n; i++) {
        count += workers[i].count;
        sum += workers[i].sum;
        sumsq += workers[i].sumsq;
        bad += workers[i].bad_payload;
        order += workers[i].order_errors;
        if (workers[i].max_size_seen > max_size)
            max_size = workers[i].max_size_seen;
    }
    for (i = 1; i <= items; i++) {
        want_sum += i;
        want_sumsq += i * i;
    }
    int64_t left = size_of(sh);
    int ok = count == items && sum == want_sum && sumsq == want_sumsq && bad == 0 && order == 0
             && left == 0 && (uint64_t)max_size <= cap;
    printf("%s %s backend=%s producers=%llu consumers=%llu capacity=%llu items=%llu "
           "count=%llu bad_payload=%llu order_errors=%llu max_size=%lld\n",
           ok ? "ok" : "FAIL", spsc ? "spsc" : "mpmc", fa_atomic_backend(),
           (unsigned long long)producers, (unsigned long long)consumers,
           (unsigned long long)cap, (unsigned long long)items, (unsigned long long)count,
           (unsigned long long)bad, (unsigned long long)order, (long long)max_size);

    if (spsc)
        spsc_free(&sh->ring);
    else
        mpmc_free(&sh->mpmc);
    free(sh->payloads);
    free(sh);
    free(workers);
    free(tids);
    free(lasts);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "all";
    uint64_t items = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000;
    int rc = 0;
    if (!strcmp(which, "spsc") || !strcmp(which, "all")) {
        rc |= run(1, 1, 1, items, 64);
        rc |= run(1, 1, 1, items, 1);    /* full/empty at every item */
    }
    if (!strcmp(which, "mpmc") || !strcmp(which, "all")) {
        rc |= run(0, 4, 4, items, 64);
        rc |= run(0, 3, 2, items, 2);    /* laps every two items, heavy CAS contention */
        rc |= run(0, 1, 1, items, 1);    /* the two-cell minimum */
    }
    if (strcmp(which, "spsc") && strcmp(which, "mpmc") && strcmp(which, "all")) {
        fprintf(stderr, "usage: %s [mpmc|spsc|all] [items]\n", argv[0]);
        return 2;
    }
    return rc;
}
