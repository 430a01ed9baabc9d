/* test_runtime_pool.c — parallel-for: coverage, static chunks, determinism, no deadlock,
 * plus the aligned allocator and the workspace of mem.h. */
#include "check.h"
#include "mem.h"
#include "pool.h"

#include <stdint.h>
#include <stdlib.h>
#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#endif

enum { N = 100003, MAXT = 8 };

typedef struct SumCtx {
    const int64_t *x;
    int64_t partial[MAXT];
    int calls[MAXT];
    int64_t first[MAXT];
} SumCtx;

static void sum_body(void *c, int64_t b, int64_t e, int t) {
    SumCtx *s = c;
    int64_t acc = 0;
    for (int64_t i = b; i < e; i++) acc += s->x[i];
    s->partial[t] += acc;
    s->calls[t]++;
    s->first[t] = b;
}

static int64_t *data(void) {
    int64_t *x = malloc(N * sizeof *x);
    for (int64_t i = 0; i < N; i++) x[i] = (i * 2654435761u) % 1000 - 500;
    return x;
}

TEST(sums_match_serial) {
    int64_t *x = data();
    int64_t serial = 0;
    for (int64_t i = 0; i < N; i++) serial += x[i];
    int counts[] = {1, 2, 4};
    for (int k = 0; k < 3; k++) {
        TlPool *p = tl_pool_create(counts[k]);
        EXPECT(tl_pool_size(p) == counts[k]);
        SumCtx s = {.x = x};
        tl_pool_for(p, N, sum_body, &s);
        int64_t tot = 0;
        for (int t = 0; t < MAXT; t++) tot += s.partial[t];
        EXPECTF(tot == serial, "threads=%d: %lld vs %lld", counts[k], (long long)tot,
                (long long)serial);
        /* static chunks: thread t gets exactly the chunk the rule says, once */
        for (int t = 0; t < counts[k]; t++) {
            int64_t b, e;
            tl_pool_chunk(N, counts[k], t, &b, &e);
            EXPECT(s.calls[t] == 1 && s.first[t] == b);
        }
        tl_pool_destroy(p);
    }
    free(x);
}

TEST(chunk_rule) {
    /* chunks tile [0, n), sizes differ by at most one */
    for (int64_t n = 0; n < 50; n++)
        for (int k = 1; k <= 7; k++) {
            int64_t next = 0, mn = n, mx = 0;
            for (int t = 0; t < k; t++) {
                int64_t b, e;
                tl_pool_chunk(n, k, t, &b, &e);
                EXPECT(b == next && e >= b);
                next = e;
                if (e - b < mn) mn = e - b;
                if (e - b > mx) mx = e - b;
            }
            EXPECT(next == n && mx - mn <= 1);
        }
}

/* Float reduction over fixed blocks: the same bits with any thread count. */
typedef struct BlockCtx {
    const float *x;
    int64_t n, block;
    float *partials;
} BlockCtx;

static void block_body(void *c, int64_t b, int64_t e, int t) {
    (void)t;
    BlockCtx *s = c;
    for (int64_t blk = b; blk < e; blk++) {
        float acc = 0;
        int64_t end = (blk + 1) * s->block < s->n ? (blk + 1) * s->block : s->n;
        for (int64_t i = blk * s->block; i < end; i++) acc += s->x[i];
        s->partials[blk] = acc;
    }
}

static float block_sum(TlPool *p, const float *x, int64_t n) {
    BlockCtx s = {x, n, 1024, NULL};
    int64_t nb = (n + s.block - 1) / s.block;
    s.partials = calloc((size_t)nb, sizeof(float));
    tl_pool_for(p, nb, block_body, &s);
    float tot = 0;
    for (int64_t i = 0; i < nb; i++) tot += s.partials[i];
    free(s.partials);
    return tot;
}

TEST(float_blocks_thread_count_independent) {
    float *x = malloc(N * sizeof *x);
    for (int i = 0; i < N; i++) x[i] = (float)((i * 7919) % 1000) * 1e-3f + 1e-7f * (float)i;
    float ref = block_sum(NULL, x, N);
    for (int k = 1; k <= 5; k++) {
        TlPool *p = tl_pool_create(k);
        float v = block_sum(p, x, N);
        EXPECTF(memcmp(&v, &ref, sizeof v) == 0, "threads=%d: %.9g vs %.9g", k, v, ref);
        tl_pool_destroy(p);
    }
    free(x);
}

static void count_body(void *c, int64_t b, int64_t e, int t) {
    (void)t;
    int64_t *hits = c;
    for (int64_t i = b; i < e; i++) hits[i]++;
}

TEST(many_calls_no_deadlock) {
    TlPool *p = tl_pool_create(4);
    int64_t hits[64] = {0};
    int rounds = getenv("TL_TEST_LONG") ? 200000 : 20000;
    for (int r = 0; r < rounds; r++) tl_pool_for(p, 1 + r % 64, count_body, hits);
    int64_t total = 0;
    for (int i = 0; i < 64; i++) total += hits[i];
    int64_t want = 0;
    for (int r = 0; r < rounds; r++) want += 1 + r % 64;
    EXPECT(total == want);
    tl_pool_for(p, 0, count_body, hits); /* empty: no call */
    tl_pool_destroy(p);
    /* create/destroy in a loop */
    for (int r = 0; r < 50; r++) {
        TlPool *q = tl_pool_create(3);
        tl_pool_for(q, 10, count_body, hits);
        tl_pool_destroy(q);
    }
}

typedef struct NestCtx {
    TlPool *p;
    int64_t hits[4][16];
} NestCtx;

static void inner_body(void *c, int64_t b, int64_t e, int t) {
    int64_t *row = c;
    (void)t;
    for (int64_t i = b; i < e; i++) row[i]++;
}

static void outer_body(void *c, int64_t b, int64_t e, int t) {
    NestCtx *n = c;
    (void)t;
    for (int64_t i = b; i < e; i++) tl_pool_for(n->p, 16, inner_body, n->hits[i]);
}

TEST(nested_runs_inline) {
    NestCtx n = {0};
    n.p = tl_pool_create(4);
    tl_pool_for(n.p, 4, outer_body, &n);
    int ok = 1;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 16; j++) ok &= n.hits[i][j] == 1;
    EXPECT(ok);
    tl_pool_destroy(n.p);
}

TEST(env_threads) {
    char err[256];
    int n;
    setenv("TL_THREADS", "3", 1);
    EXPECT(tl_pool_threads() == 3);
    EXPECT(tl_pool_env_threads(&n, err, sizeof err) == 0 && n == 3);
    TlPool *p = tl_pool_create(0);
    EXPECT(tl_pool_size(p) == 3);
    tl_pool_destroy(p);
    setenv("TL_THREADS", "lots", 1);
    EXPECT(tl_pool_env_threads(&n, err, sizeof err) == -1);
    EXPECTF(strstr(err, "TL_THREADS=lots"), "%s", err);
    EXPECT(tl_pool_threads() >= 1);
    setenv("TL_THREADS", "0", 1);
    EXPECT(tl_pool_env_threads(&n, err, sizeof err) == -1);
    unsetenv("TL_THREADS");
    EXPECT(tl_pool_env_threads(&n, err, sizeof err) == 0 && n == 0);
    EXPECT(tl_pool_threads() >= 1);
}

TEST(mem_aligned) {
    for (size_t n = 0; n < 300; n += 7) {
        unsigned char *p = tl_mem_alloc(n);
        EXPECT(p && (uintptr_t)p % TL_MEM_ALIGN == 0);
        memset(p, 1, n);
        tl_mem_free(p);
    }
    unsigned char *z = tl_mem_calloc(100);
    int zero = 1;
    for (int i = 0; i < 100; i++) zero &= z[i] == 0;
    EXPECT(zero);
    tl_mem_free(z);
    EXPECT(tl_mem_alloc(SIZE_MAX - 10) == NULL);
    tl_mem_free(NULL);
}

TEST(workspace) {
    TlWorkspace ws;
    char err[128];
    EXPECT(tl_mem_ws_init(&ws, 1000, err, sizeof err) == 0);
    void *first = NULL;
    for (int step = 0; step < 3; step++) {
        char *a = tl_mem_ws_alloc(&ws, 10), *b = tl_mem_ws_alloc(&ws, 100);
        EXPECT(a && b && (uintptr_t)a % 64 == 0 && (uintptr_t)b % 64 == 0 && b >= a + 10);
        if (step == 0) first = a;
        EXPECT(a == first); /* reset reuses the same memory */
        size_t m = tl_mem_ws_mark(&ws);
        EXPECT(tl_mem_ws_alloc(&ws, 2000) == NULL && tl_mem_ws_mark(&ws) == m);
        EXPECT(tl_mem_ws_alloc(&ws, 64) != NULL);
        tl_mem_ws_rewind(&ws, m);
        EXPECT(tl_mem_ws_mark(&ws) == m);
        tl_mem_ws_reset(&ws);
    }
    EXPECT(ws.high == 64 + 128 + 64);
    EXPECT(tl_mem_ws_alloc(&ws, 1000) != NULL && tl_mem_ws_alloc(&ws, 1) == NULL);
    tl_mem_ws_release(&ws);
    EXPECT(tl_mem_ws_init(&ws, SIZE_MAX - 5, err, sizeof err) == -1 && strstr(err, "workspace"));
}

#if defined(__linux__)
typedef struct CpuCtx { int cpu[2]; } CpuCtx;

static void cpu_body(void *c, int64_t b, int64_t e, int t) {
    (void)b, (void)e;
    ((CpuCtx *)c)->cpu[t] = sched_getcpu();
    struct timespec t0, t1; /* 0.3 ms of work: a worker queued behind its caller waits */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do clock_gettime(CLOCK_MONOTONIC, &t1);
    while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 300000);
}

static atomic_int spin_stop;
static void *spinner(void *a) { /* an idle worker of another library: busy, yielding */
    (void)a;
    while (!atomic_load(&spin_stop)) sched_yield();
    return NULL;
}

/* The caller on CPU a, a yielding spinner on CPU b: the woken worker must run on b, not
 * queue behind the caller on a (Linux's wake-affine placement when b looks busy: 2
 * threads ran at 1-thread speed). */
static void worker_off_caller_cpu(void) {
    cpu_set_t all, one;
    if (sched_getaffinity(0, sizeof all, &all) || CPU_COUNT(&all) < 2) {
        case_skip("worker_off_caller_cpu", "fewer than 2 CPUs");
        return;
    }
    case_begin("worker_off_caller_cpu");
    int a = -1, b = -1;
    for (int i = 0; i < CPU_SETSIZE && b < 0; i++)
        if (CPU_ISSET(i, &all)) *(a < 0 ? &a : &b) = i;
    TlPool *p = tl_pool_create(2);
    pthread_t sp;
    atomic_store(&spin_stop, 0);
    EXPECT(pthread_create(&sp, NULL, spinner, NULL) == 0);
    CPU_ZERO(&one);
    CPU_SET(b, &one);
    pthread_setaffinity_np(sp, sizeof one, &one);
    CPU_ZERO(&one);
    CPU_SET(a, &one);
    EXPECT(sched_setaffinity(0, sizeof one, &one) == 0);
    int behind = 0;
    for (int r = 0; r < 200; r++) {
        CpuCtx c = {{-1, -1}};
        tl_pool_for(p, 2, cpu_body, &c);
        behind += c.cpu[1] == a;
        EXPECT(c.cpu[0] == a);
    }
    EXPECTF(behind == 0, "the worker ran on the caller's CPU in %d of 200 calls", behind);
    sched_setaffinity(0, sizeof all, &all);
    atomic_store(&spin_stop, 1);
    pthread_join(sp, NULL);
    tl_pool_destroy(p);
    case_end();
}
#endif

int main(void) {
    RUN(sums_match_serial);
    RUN(chunk_rule);
    RUN(float_blocks_thread_count_independent);
    RUN(many_calls_no_deadlock);
    RUN(nested_runs_inline);
    RUN(env_threads);
    RUN(mem_aligned);
    RUN(workspace);
#if defined(__linux__)
    worker_off_caller_cpu();
#endif
    return check_done();
}
