/* pool.c — persistent workers woken by a generation counter; static chunks. */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { TL_POOL_MAX = 1024 };

struct TlPool {
    int n;                  /* threads including the caller */
    pthread_t *th;          /* n - 1 workers */
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers wait here for a new generation */
    pthread_cond_t done_cv; /* the caller waits here for pending == 0 */
    pthread_mutex_t call_mu; /* serializes tl_pool_for callers */
    unsigned long gen;
    int pending;
    int stop;
    TlPoolFn fn;
    void *ctx;
    int64_t n_items;
    int away_from;          /* the CPU the workers are kept off (the caller's), -1: none */
#if defined(__linux__)
    cpu_set_t cpus;         /* the CPUs the pool may use: its creator's at creation */
    int ncpus;              /* CPU_COUNT(&cpus), 0 when unknown */
#endif
};

typedef struct Worker {
    TlPool *p;
    int id;
} Worker;

/* 1 + the thread id while a thread runs a body (0 outside), so a nested tl_pool_for runs
 * inline under the same id: per-thread scratch indexed by thread_id stays private. */
static _Thread_local int tl_pool_inside;

void tl_pool_chunk(int64_t n, int k, int t, int64_t *begin, int64_t *end) {
    int64_t base = n / k, rem = n % k;
    *begin = (int64_t)t * base + (t < rem ? t : rem);
    *end = *begin + base + (t < rem ? 1 : 0);
}

int tl_pool_env_threads(int *out, char *err, size_t errlen) {
    *out = 0;
    const char *s = getenv("TL_THREADS");
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > TL_POOL_MAX) {
        if (err && errlen)
            snprintf(err, errlen,
                     "error: TL_THREADS=%s: expected a thread count between 1 and %d", s,
                     TL_POOL_MAX);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int tl_pool_threads(void) {
    int n;
    if (tl_pool_env_threads(&n, NULL, 0) == 0 && n > 0) return n;
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    if (c < 1) c = 1;
    if (c > TL_POOL_MAX) c = TL_POOL_MAX;
    return (int)c;
}

static void run_chunk(TlPool *p, TlPoolFn fn, void *ctx, int64_t n, int t) {
    int64_t b, e;
    tl_pool_chunk(n, p->n, t, &b, &e);
    if (b < e) {
        tl_pool_inside = t + 1;
        fn(ctx, b, e, t);
        tl_pool_inside = 0;
    }
}

/* Keeps the workers off the CPU the caller runs on. Linux places a woken thread on the
 * waker's CPU when the others look busy (wake-affine), and a CPU running anything at all,
 * even a niced job or another library's spinning worker, looks busy: the worker then
 * queues behind the caller and the two run one after the other. A call of a few ms ends
 * before the load balancer moves it (2 threads measured at 1-thread speed on 268 MFLOP
 * GEMMs while OpenBLAS's idle workers spun on the other vCPU: docs/performance.md). So
 * each worker may run on the pool's CPUs but the one the caller is on (when there are at
 * least as many CPUs as threads); updated only when the caller has moved. Linux only;
 * elsewhere a no-op. */
static void keep_off_caller(TlPool *p) {
#if defined(__linux__)
    int c = sched_getcpu();
    /* more threads than CPUs: the scheduler shares them out; the caller's CPU is needed */
    if (c < 0 || c == p->away_from || p->n < 2 || p->n > p->ncpus || !CPU_ISSET(c, &p->cpus)) return;
    cpu_set_t m = p->cpus;
    CPU_CLR(c, &m);
    for (int i = 1; i < p->n; i++) pthread_setaffinity_np(p->th[i - 1], sizeof m, &m);
    p->away_from = c;
#else
    (void)p;
#endif
}

static void *worker_main(void *arg) {
    Worker w = *(Worker *)arg;
    free(arg);
    TlPool *p = w.p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->stop) pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        TlPoolFn fn = p->fn;
        void *ctx = p->ctx;
        int64_t n = p->n_items;
        pthread_mutex_unlock(&p->mu);
        run_chunk(p, fn, ctx, n, w.id);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

TlPool *tl_pool_create(int n) {
    if (n <= 0) n = tl_pool_threads();
    if (n > TL_POOL_MAX) n = TL_POOL_MAX;
    TlPool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->th = calloc((size_t)n, sizeof *p->th);
    if (!p->th) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->call_mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->n = 1;
    p->away_from = -1;
#if defined(__linux__)
    if (sched_getaffinity(0, sizeof p->cpus, &p->cpus) == 0) p->ncpus = CPU_COUNT(&p->cpus);
#endif
    for (int i = 1; i < n; i++) {
        Worker *w = malloc(sizeof *w);
        if (!w) break;
        w->p = p;
        w->id = i;
        if (pthread_create(&p->th[i - 1], NULL, worker_main, w) != 0) {
            free(w);
            break; /* a smaller pool still works */
        }
        p->n = i + 1;
    }
    return p;
}

void tl_pool_destroy(TlPool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->th[i - 1], NULL);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->call_mu);
    free(p->th);
    free(p);
}

int tl_pool_size(const TlPool *p) { return p ? p->n : 1; }

void tl_pool_for(TlPool *p, int64_t n_items, TlPoolFn fn, void *ctx) {
    if (n_items <= 0) return;
    if (!p || p->n == 1 || tl_pool_inside) {
        /* Inline: the whole range as one chunk of thread 0. */
        int was = tl_pool_inside, id = was ? was - 1 : 0;
        tl_pool_inside = id + 1;
        fn(ctx, 0, n_items, id);
        tl_pool_inside = was;
        return;
    }
    pthread_mutex_lock(&p->call_mu);
    keep_off_caller(p);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_items = n_items;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    run_chunk(p, fn, ctx, n_items, 0);

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->call_mu);
}
