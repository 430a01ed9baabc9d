/* tune.h — the schedule space of a kernel as data, applying a schedule, measuring kernels,
 * and `tlc tune`: a measured beam search over schedules whose results go to the tuning
 * cache (schedule_cache.h). docs/tuning.md explains the space, the search and the cache.
 *
 *   TlKSched s;
 *   tl_ksched_default(p, k, &s);            // what the lowering chose, as knobs
 *   s.loop[2].vec = 16; s.loop[2].unroll = 4;
 *   if (tl_ksched_apply(p, k, &s, err, n)) ...   // rewrite kernel k of p in place
 *
 * A schedule never changes what a kernel computes beyond floating-point reassociation:
 * tiling keeps iteration order, vector and unroll hints let LLVM reorder reductions, the
 * GEMM blocking changes the kc-blocks of the f32 sums. The tuner checks every candidate's
 * outputs against the default schedule's before it may win. */
#ifndef TL_TUNE_H
#define TL_TUNE_H
#include <stdint.h>
#include <stdio.h>

#include "graph.h"
#include "loops.h"

#define TL_KSCHED_MAX_LOOPS 16

/* The knobs of one loop, by its position in tl_loops_kernel_loops order (outermost first,
 * before any tiling). 0 means "as lowered" for every field. */
typedef struct TlKLoopSched {
    int vec;     /* vector width hint: 0 (LLVM decides), 8 or 16 */
    int unroll;  /* unroll count: 0/1 (LLVM decides), 2, 4, 8 */
    int64_t tile;/* split by this size (a power of two below the extent); 0: no split */
} TlKLoopSched;

/* The GEMM blocking of a matmul kernel (TlLGemm's schedule fields: nsplit is its column
 * strips, the second axis of the parallel grid); on = 0: untouched. */
typedef struct TlKGemmSched { int on, mr, nr, kc, mc, nc, ku, prefetch, nsplit; } TlKGemmSched;

/* A kernel's schedule. */
typedef struct TlKSched {
    int serial;                  /* 1: run on one thread (drop the parallel loop) */
    int nloops;                  /* loops described (the kernel's, at most MAX) */
    TlKLoopSched loop[TL_KSCHED_MAX_LOOPS];
    TlKGemmSched gemm;
    int gpu_block;               /* NVPTX flat launches: threads per block (32..256, a power of
                                    two), 0: the default; ignored by the CPU back end */
} TlKSched;

/* Where a kernel's schedule came from (--emit=schedule). */
typedef enum TlSchedSource { TL_SCHED_DEFAULT, TL_SCHED_CACHE, TL_SCHED_SOURCE } TlSchedSource;
const char *tl_sched_source_name(TlSchedSource s); /* "default", "cache", "source" */

/* The default (identity) schedule of kernel k: all zeros plus the lowered GEMM blocking. */
void tl_ksched_default(const TlLProgram *p, int k, TlKSched *s);
/* 1 when two schedules are the same point of the space. */
int tl_ksched_equal(const TlKSched *a, const TlKSched *b);
/* Checks s against kernel k (loop count, tile sizes, GEMM limits, stack use); 0 or -1
 * with a message. */
int tl_ksched_check(const TlLProgram *p, int k, const TlKSched *s, char *err, int errn);
/* Rewrites kernel k of p with s (checked first). 0, or -1 with a message and p unchanged
 * as far as the kernel's semantics go. Apply to a freshly lowered kernel only: loop
 * positions refer to the loops before any tiling. */
int tl_ksched_apply(TlLProgram *p, int k, const TlKSched *s, char *err, int errn);
/* Short text ("default", "serial L0:tile=64 L2:vec=16,unroll=4", "gemm 14x32 kc=192 ..."). */
void tl_ksched_format(const TlKSched *s, char *buf, size_t n);
/* JSON text of s (one line) and back. parse: 0, or -1 on a malformed text. */
char *tl_ksched_to_json(const TlKSched *s); /* malloc'd */
int tl_ksched_from_json(const char *text, TlKSched *s);

/* The structural hash of kernel k: statements, expressions, buffer types and size
 * expressions, GEMM views, with loop variables, locals and buffers numbered by first use
 * (so kernel and buffer names and ids do not matter) and schedules left out. */
uint64_t tl_kernel_hash(const TlLProgram *p, int k);
/* The concrete shape part of a key: "B=4,T=16" for the syms kernel k uses, at the values
 * in syms (the program's order). */
void tl_kernel_shape_key(const TlLProgram *p, int k, const int64_t *syms, char *buf, size_t n);
/* 1 when kernel k runs at the top level of the host program (not inside a scan's loop)
 * and touches only top-graph buffers: the kernels the tuner measures on their own. */
int tl_kernel_tunable(const TlLProgram *p, int k);

/* ---- measurement (tune_bench.c) ---- */

typedef struct TlTuneBench TlTuneBench;
typedef struct TlTuneMeasureOpts {
    const char *cpu;      /* TlCpuOptions.cpu */
    int threads;          /* 0: TL_THREADS or all cores; 1: also pins to one idle core */
    int repeats;          /* timed samples (median), default 5 */
    double min_sample_s;  /* a sample runs the kernel enough times to last this long (1e-3) */
} TlTuneMeasureOpts;

/* A bench for kernel k of p: a program of its own holding only k, with every buffer k
 * reads filled with deterministic values (floats in [0.05, 0.95), integers small and
 * non-negative) and syms bound to the given values (program order). */
TlTuneBench *tl_tune_bench_new(const TlGraph *g, const TlLProgram *p, int k, const int64_t *syms,
                               const TlTuneMeasureOpts *o, char *err, int errn);
void tl_tune_bench_free(TlTuneBench *b);
/* Compile k under schedule s, run it once and compare what it writes with the default
 * schedule's output (the first call stores that reference); then time it: median seconds
 * per kernel run. 0 ok; 1 when the outputs differ (err says where); -1 on other errors. */
int tl_tune_bench_measure(TlTuneBench *b, const TlKSched *s, double *seconds, char *err, int errn);

/* ---- the tuner (tune.c) ---- */

typedef struct TlTuneOptions {
    double budget_s;        /* whole search (default 60) */
    const char *kernel;     /* only this kernel (by name, e.g. "tl_k3_contract"), or NULL */
    const char *cpu;        /* --cpu */
    const char *cache_dir;  /* NULL: $TL_TUNE_CACHE or ~/.cache/tl/tune */
    const char *out_dir;    /* the JSONL log and the SVG plot go here (NULL: "tune-out") */
    int threads;            /* see TlTuneMeasureOpts */
    int force;              /* re-tune kernels that have a cache entry */
    int beam;               /* beam width (default 3) */
    int verify_program;     /* also time the whole program default vs tuned (median of 5) */
    unsigned seed;
    int target_cuda;        /* measure on the GPU (tune_gpu.c); the caller opened the driver */
    FILE *out;              /* the table (stdout) */
} TlTuneOptions;

/* Tunes every tunable kernel of g (or opts->kernel) with syms bound by bind (graph dim
 * names and values). Writes cache entries, the log and the plot; prints the table.
 * 0, or -1 with a message. */
typedef struct TlTuneBinding { const char *name; int64_t value; } TlTuneBinding;
int tl_tune_graph(const TlGraph *g, const TlTuneBinding *bind, int nbind, const TlTuneOptions *o,
                  char *err, int errn);
/* The same on the GPU (o->target_cuda; tune_gpu.c): the launch block of each flat kernel,
 * the whole program measured per candidate. tl_tune_graph calls it. */
int tl_tune_graph_gpu(const TlGraph *g, const TlTuneBinding *bind, int nbind, const TlTuneOptions *o,
                      char *err, int errn);

/* `tlc tune FILE [--budget SECONDS] [--kernel NAME] [--target cpu] [--entry NAME --args ...]
 * [--dims B=4,T=16] [--cache DIR] [--out DIR] [--threads N] [--force] [--stdlib DIR]
 * [--train NAME] [--cpu NAME]`. argv[0] is "tune". Returns the exit status (0 ok, 1 input
 * errors, 2 usage, 3 internal). */
int tl_tune_main(int argc, char **argv);

#endif
