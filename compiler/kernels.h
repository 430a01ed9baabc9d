/* kernels.h — the table of kernels of a graph (`tlc kernels FILE`): for each kernel the
 * fusion partition makes (compiler/fuse.h), its name, the .tl lines its ops came from, the
 * ops it fuses, its output shape, FLOPs, bytes moved and arithmetic intensity.
 *
 *   TlGDimBinding b[] = {{"B", 16}, {"T", 128}};     // values for the dim symbols, if any
 *   TlKernelTable *t = tl_kernels_build(g, NULL, b, 2); // NULL options: fusion on
 *   tl_kernels_print(stdout, t);
 *   tl_kernels_free(t);
 *
 * Counting: FLOPs are one per element per elementwise op, one per input element of a
 * reduction, 2*M*N*K for a contraction (2 * the product of every letter's size), one per
 * source element of scatter_add, none for movement and generators. Bytes are what the
 * kernel must move at least: every buffer it reads, once, plus the buffer it writes, in
 * their storage types (f32 for f32/bf16/f16). A symbol without a value makes the
 * numbers unknown (printed "?", stored as -1). */
#ifndef TL_KERNELS_H
#define TL_KERNELS_H
#include <stdio.h>

#include "fuse.h"
#include "graph.h"
#include "loops.h"
#include "tune.h"

typedef struct TlKernelInfo {
    char name[64];      /* the Loop IR kernel's name: tl_k<n>_<op>, tl_k<n>_fused_<op> */
    int group;          /* index into the fusion's groups */
    int root;           /* the node it stores */
    int nkern;          /* Loop IR kernels it lowers to (concat: one per operand, scatter_add 2) */
    const char *kind;   /* "op", "pointwise", "reduce", "row" */
    int nops;           /* ops computed (members, plus constants recomputed in it) */
    char ops[160];      /* their names, "rmax sub exp sum div (+2 broadcast)" */
    char source[160];   /* "nn.tl:25-26 gpt.tl:17": the lines of its ops */
    char shape[96];     /* the output: "f32[16, 128, 64]" */
    double flops, bytes, intensity; /* -1 when a dim is unknown */
    int lk;             /* its first Loop IR kernel (tl_kernels_schedule), -1 when none */
    char sched[200];    /* "source: ...", "cache: ...", "default: ..." (tl_kernels_schedule) */
    double seconds;     /* measured time of its kernels (tl_kernels_time), -1: not measured */
} TlKernelInfo;

typedef struct TlKernelTable {
    const TlGraph *g;
    TlFusion *fusion;
    TlKernelInfo *k;
    int n;              /* rows (groups with a kernel) */
    int nkernels;       /* Loop IR kernels (sum of nkern) */
    int nprims;         /* primitives of the graph (tl_fuse_primitive_count) */
    int fused;          /* built with fusion on */
    double flops, bytes;/* totals (-1 when unknown) */
    int timed;          /* tl_kernels_time ran: print time, GFLOP/s and GB/s columns */
} TlKernelTable;

/* o: NULL = fusion on; {.enabled = 0} gives the unfused table (one kernel per op). */
TlKernelTable *tl_kernels_build(const TlGraph *g, const TlFuseOptions *o, const TlGDimBinding *b, int nb);
void tl_kernels_print(FILE *f, const TlKernelTable *t);

/* Attaches each row's Loop IR kernel and schedule: lp is the same graph lowered (with
 * source schedules, then the tuning cache applied: src and sched from
 * tl_schedule_cache_apply, or NULL for defaults). */
void tl_kernels_schedule(TlKernelTable *t, const TlLProgram *lp, const TlSchedSource *src, const TlKSched *sched);
/* --time: measures every row's kernels alone (tune_bench.c: deterministic inputs in
 * [0.05, 0.95), a warm-up, then the median of 5 samples of >= 1 ms) under the schedule lp
 * holds, syms (lp's order) bound; threads 0: TL_THREADS or all cores. A kernel inside a
 * scan's loop is not measured (seconds -1). progress: a line per kernel, or NULL. 0, or -1
 * with a message. */
int tl_kernels_time(TlKernelTable *t, const TlLProgram *lp, const int64_t *syms, const char *cpu, int threads,
                    FILE *progress, char *err, int errn);
void tl_kernels_free(TlKernelTable *t);

#endif
