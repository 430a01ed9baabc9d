/* pool.h — a thread pool with a parallel-for.
 *
 *   TlPool *p = tl_pool_create(0);                 // 0: tl_pool_threads()
 *   tl_pool_for(p, n, body, &ctx);                 // body(ctx, begin, end, thread_id)
 *   tl_pool_destroy(p);
 *
 * Static chunking: with k threads, item range [0, n) is cut into k contiguous chunks whose
 * sizes differ by at most one, chunk t going to thread t (the caller is thread 0). Which
 * items a thread gets is therefore a pure function of (n, k), never of timing, so any
 * per-thread partial result is reproducible from run to run.
 *
 * Results independent of the thread count: a floating-point reduction summed per thread
 * changes with k. To get the same bits with any k, reduce over a fixed number of blocks
 * instead: tl_pool_for over block indices, each block writes its partial into its own slot,
 * then the caller adds the slots in order (see tests/unit/test_runtime_pool.c).
 *
 * The workers sleep on a condition variable between calls, and (Linux, no more threads
 * than CPUs) run on the CPUs their creator could use minus the one the caller is on when
 * it hands out work, so that a woken worker never queues behind its caller when the other
 * CPUs look busy (pool.c).
 * A pool of 1 runs everything inline on the caller. A tl_pool_for called from inside a
 * body (nested) runs inline too, instead of deadlocking; calls from several threads into
 * one pool are serialized. */
#ifndef TL_POOL_H
#define TL_POOL_H
#include <stddef.h>
#include <stdint.h>

typedef struct TlPool TlPool;
typedef void (*TlPoolFn)(void *ctx, int64_t begin, int64_t end, int thread_id);

/* The thread count to use: TL_THREADS when it holds an integer in [1, 1024], otherwise
 * the number of online cores (at least 1). */
int tl_pool_threads(void);
/* TL_THREADS validated: 0 with *out set (0 when unset); -1 with a message naming the
 * variable and its value when it is set but not an integer in [1, 1024]. For a main that
 * wants to reject a typo rather than ignore it. */
int tl_pool_env_threads(int *out, char *err, size_t errlen);

/* A pool of n threads (the caller counts as one; n <= 0 means tl_pool_threads()). If the
 * system refuses to start some threads, the pool is smaller (see tl_pool_size). NULL only
 * when out of memory. */
TlPool *tl_pool_create(int n);
void tl_pool_destroy(TlPool *p); /* NULL is allowed */
int tl_pool_size(const TlPool *p);

/* Run fn over [0, n_items) in at most tl_pool_size(p) chunks and wait for all of them.
 * Empty chunks are not called. p may be NULL: everything runs inline as thread 0. */
void tl_pool_for(TlPool *p, int64_t n_items, TlPoolFn fn, void *ctx);

/* The chunk [*begin, *end) of thread t out of k over n items (the rule above). */
void tl_pool_chunk(int64_t n, int k, int t, int64_t *begin, int64_t *end);

#endif
