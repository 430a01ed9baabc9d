/* loops.h — Loop IR: loop nests over index expressions, buffers, and a schedule per loop.
 *
 * A program (TlLProgram) is what a back end compiles:
 *   - a buffer table: one buffer per Graph IR value (its dtype and its element count as an
 *     expression over the graph's dim symbols), plus scratch state of scan nodes;
 *   - kernels: each a statement tree (loops, stores, scalar locals, ifs) over those
 *     buffers. A kernel is called as k(bufs, syms, begin, end): its one `parallel` loop
 *     runs [begin, end) so a thread pool can split it; every other loop runs its bounds;
 *   - a host program: the order in which kernels run, with copies, pointer aliases and
 *     loops (a scan is a host loop calling its body's kernels T times).
 *
 * Everything is plain data in arrays, referenced by int ids, so passes (fusion, tiling,
 * the autotuner) can rewrite it. Expressions and statements are shared pools of the
 * program; statement lists are linked through `next`.
 *
 * Types: an expression has a scalar type (TlLType). Index arithmetic is i64. Values are
 * computed in the *compute type* of their dtype (f32 for f32/bf16/f16, f64 for f64, i64 for
 * every integer and bool, as the interpreter does for integers) and stored in the *storage
 * type* (f32 for f32/bf16/f16 after rounding to bf16/f16, f64, i32, i64, i8 for bool).
 * Reductions and contractions accumulate in a local whose type the lowering picks (f64 for
 * floats, i64 for integers, matching the interpreter) and a later pass may change.
 *
 * Dim symbols are numbered (program->syms); at run time they are one i64 array. */
#ifndef TL_LOOPS_H
#define TL_LOOPS_H
#include <stdint.h>
#include <stdio.h>

#include "graph.h"

typedef enum TlLType { TL_LT_VOID, TL_LT_I1, TL_LT_I8, TL_LT_I32, TL_LT_I64, TL_LT_F32, TL_LT_F64 } TlLType;

typedef enum TlLOp {
    /* unary */
    TL_LOP_NEG, TL_LOP_EXP, TL_LOP_LOG, TL_LOP_SQRT, TL_LOP_RSQRT, TL_LOP_TANH, TL_LOP_ERF,
    TL_LOP_SIN, TL_LOP_COS, TL_LOP_ABS,
    /* binary, on the compute type. DIV: float division, or integer division truncating
     * toward zero that gives 0 for a zero divisor (never traps). */
    TL_LOP_ADD, TL_LOP_SUB, TL_LOP_MUL, TL_LOP_DIV, TL_LOP_POW, TL_LOP_MAX, TL_LOP_MIN,
    /* index arithmetic on i64 known to be >= 0 (floor = truncation) */
    TL_LOP_IDIV, TL_LOP_IMOD,
    /* i1 logic */
    TL_LOP_AND, TL_LOP_OR,
    /* comparisons -> i1 (floats: ordered, except NE which is unordered like C's !=) */
    TL_LOP_EQ, TL_LOP_NE, TL_LOP_LT, TL_LOP_LE, TL_LOP_GT, TL_LOP_GE,
    TL_LOP_COUNT
} TlLOp;

typedef enum TlLExprKind {
    TL_LE_INT,    /* ival, of type (i1/i8/i32/i64) */
    TL_LE_FLT,    /* fval, of type (f32/f64) */
    TL_LE_VAR,    /* loop variable `var` (i64): a kernel loop's or a host loop's */
    TL_LE_SYM,    /* dim symbol number `sym` (i64) */
    TL_LE_LOCAL,  /* scalar local `var` of the kernel */
    TL_LE_LOAD,   /* buf[a] in the buffer's storage type; a is an i64 element index */
    TL_LE_UN,     /* op a */
    TL_LE_BIN,    /* a op b: arithmetic (type of a), comparisons (i1) */
    TL_LE_SELECT, /* a ? b : c (a is i1) */
    TL_LE_CAST,   /* a converted to type: fp<->int truncates, ->i1/i8 is "!= 0" (0 or 1) */
    TL_LE_ROUND,  /* f32 a rounded to dtype (bf16 or f16), still f32 */
    TL_LE_RANDOM, /* f64: Philox element a (i64) of stream (seed b: i64, offset, dist) */
} TlLExprKind;

typedef struct TlLExpr {
    TlLExprKind kind;
    TlLType type;
    TlLOp op;
    int a, b, c;           /* operand expression ids, -1 when unused */
    int64_t ival;
    double fval;
    int var, sym, buf;
    TlDType dtype;         /* ROUND */
    TlRandomDist dist;     /* RANDOM */
    uint64_t offset;       /* RANDOM */
} TlLExpr;

/* The schedule of one loop: data that passes and the autotuner change. */
typedef struct TlLSched {
    int parallel;      /* split across threads (at most one loop per kernel; lo must be 0) */
    int vectorize;     /* 0: LLVM decides; 1: ask for vectorization; >1: that width */
    int unroll;        /* 0: LLVM decides; >1: unroll by that count */
    int64_t tile;      /* set by tl_loops_tile on the outer loop of a split: the tile size */
    int interleave;    /* with vectorize > 1: 0 LLVM decides; >= 1 that interleave count */
    int gpu;           /* NVPTX, from a source schedule (TlLKernel.gpu_sched): TL_LGPU_BLOCKS:
                          the (parallel) loop runs over the grid's blocks; TL_LGPU_THREADS:
                          over a block's threads (independent iterations); _REDUCE: a sum
                          or max over it, split across the block's threads and combined */
} TlLSched;

enum { TL_LGPU_NONE, TL_LGPU_BLOCKS, TL_LGPU_THREADS, TL_LGPU_THREADS_REDUCE };

typedef enum TlLStmtKind {
    TL_LS_LOOP,  /* for var in [lo, hi) { body } */
    TL_LS_STORE, /* buf[index] = value (value in the buffer's storage type) */
    TL_LS_SET,   /* local var = value */
    TL_LS_IF,    /* if (cond) { body } else { els } */
} TlLStmtKind;

typedef struct TlLStmt {
    TlLStmtKind kind;
    int var;               /* LOOP: loop variable; SET: local */
    int lo, hi;            /* LOOP bounds (i64 exprs) */
    TlLSched sched;        /* LOOP */
    int buf, index, value; /* STORE (value also SET) */
    int cond;              /* IF */
    int body, els;         /* first statement of the body / else list, -1 = empty */
    int next;              /* next statement in the same list, -1 = last */
    int axis;              /* LOOP: what it runs over, for source schedules (schedule_source.h):
                              >= 0: that axis of the kernel's stored result; <= -2: reduced
                              axis -2-axis (in the reduction's order); -1: not known */
} TlLStmt;

typedef enum TlLBufKind {
    TL_LB_TEMP,   /* a value computed by a kernel */
    TL_LB_INPUT,  /* set by the caller (graph input) */
    TL_LB_PARAM,  /* set by the caller (graph param) */
    TL_LB_CONST,  /* literal data (init, numel values), a constant global in the code */
    TL_LB_ALIAS,  /* no storage of its own: the host program points it into another buffer */
    TL_LB_STATE,  /* scratch of a scan: carries and stacked per-step outputs */
} TlLBufKind;

typedef struct TlLBuf {
    TlLBufKind kind;
    TlDType dtype;
    TlLType elem;          /* storage type */
    int numel;             /* element count (i64 expr over syms) */
    int node;              /* graph node id (in its graph) or -1 */
    int depth;             /* 0: the top graph; 1: a scan body; ... */
    const char *name;      /* input / param name */
    const double *init;    /* CONST: numel values (owned by the graph) */
} TlLBuf;

/* A contraction that is a (batched) matmul up to transposes and merged letters:
 *   C[b, i, j] = sum_k A[b, i, k] * B[b, k, j]   over strided views of three buffers,
 * with C's j stride 1. The lowering fills it for f32, bf16 and f16 contractions it
 * recognizes (dtype); a back end with a GEMM generator for that dtype compiles the kernel
 * from it (packing, cache blocking, a register-blocked microkernel: targets/cpu/gemm.c, f32;
 * targets/cpu/gemm_bf16.c, bf16 on AVX-512-BF16; tiled SGEMM and tensor cores: targets/nvptx)
 * and otherwise ignores it: the kernel's loop nest
 * stays the reference semantics. The blocking fields are schedule data (the host's caches
 * pick them: cpu_detect.h; the tuner may change them). */
typedef struct TlLGemm {
    int on;                /* 1: compile through the GEMM generator; 0: the loop nest */
    TlDType dtype;         /* of A, B and C: TL_F32, or TL_BF16 / TL_F16 (stored as f32 holding
                              values of that type; C is rounded to it; GPU tensor cores) */
    int a, b, c;           /* buffers */
    int batch, m, n, k;    /* i64 exprs: sizes (batch 1 when none) */
    int sa_b, sa_m, sa_k;  /* i64 exprs: element strides of A, B, C */
    int sb_b, sb_k, sb_n;
    int sc_b, sc_m;
    int mr, nr;            /* register block: mr rows x nr columns (6 x 64 on AVX-512: four zmm) */
    int kc, mc, nc;        /* cache blocks: k depth, rows per pass, columns of packed B */
    int ku;                /* k-loop unroll of the microkernel */
    int prefetch;          /* prefetch distance in k steps (0: none) */
    int nsplit;            /* the columns of C cut into nsplit parallel strips of whole
                              nr-panels (1: none): with the row panels, a 2-D grid of items */
    int par_extent;        /* i64 expr: parallel items (batch x nsplit x mr-row panels) */
    /* Epilogue (a fused `gemm` group: docs/fusion.md): once C[b, i, j] is fully summed
     * (after the last k block), C[b, i, j] = epi, an expression in C's storage type over
     * the local `epi_acc` (the sum, read as that local's type) and the loop variables
     * ev_b, ev_i, ev_j (the element's batch, row and column in the merged GEMM axes);
     * its loads read the epilogue's operands (bias, residual) at their own indices.
     * has_epi = 0: none. A back end that cannot apply it must not use the GEMM generator. */
    int has_epi, epi, epi_acc;
    int ev_b, ev_i, ev_j;
} TlLGemm;

/* Causal attention (Graph IR attn / attn_grad) over BH independent [T, K] heads, all
 * buffers row-major and contiguous. The lowering fills it and writes the kernel's loop nest
 * as the reference (one parallel row per item, scores recomputed, nothing T x T held); a
 * back end with an attention generator compiles from this instead (targets/cpu/attn.c):
 *   forward:  q, k, v [BH, T, K] -> o [BH, T, K + 1] (outputs, then the row logsumexp)
 *   backward: q, k, v, o, g (o's adjoint) -> out [3, BH, T, K] (dq, dk, dv)
 * bq x bk is the score tile held in registers/L1 (schedule data). */
typedef struct TlLAttn {
    int on;                /* 1: an attention kernel */
    int grad;              /* 0: forward, 1: backward */
    int q, k, v, o, g, out; /* buffers (g: backward only; out == o in the forward) */
    int bh, t, kd;         /* i64 exprs: heads (all leading dims), sequence, head size */
    double scale;
    int bq, bk;            /* query rows x key columns per tile */
} TlLAttn;

typedef struct TlLKernel {
    char name[64];         /* symbol name, "tl_k<n>_<op>" */
    int node;              /* graph node it computes, -1 */
    int body;              /* first statement */
    int nlocals;           /* locals 0..nlocals-1 (TL_LE_LOCAL / TL_LS_SET) */
    TlLType *local_type;
    int par_extent;        /* i64 expr: the parallel loop's trip count; -1 = none (call once) */
    TlLGemm gemm;          /* a matmul contraction (gemm.on), else zeros */
    int gpu_block;         /* NVPTX: threads per block of a flat (grid-stride) launch; 0: the
                              back end's default (256). Schedule data (tune --target cuda). */
    /* A `schedule` block of the source (compiler/schedule_source.h): the block of the
     * index-notation kernel whose result this kernel stores, applied by the lowering, or
     * NULL; sched_fused: the block of a kernel result computed here but not stored (fused
     * into a consumer), which is not applied (a warning says so). */
    const struct TlNode *sched, *sched_kernel, *sched_fused;
    char sched_text[192];  /* what the applied block did, for --emit=schedule */
    /* The block's GPU directives (docs/nvptx.md "Source schedules"), which only the NVPTX
     * back end reads: gpu_sched 1: launched as the loops' TlLSched.gpu say, with gpu_block
     * threads per block (no GEMM, warp or block schedule of its own). gpu_shared[i]: a
     * buffer one block stages into shared memory: the kernel reads it only at
     * v * gpu_shared_row[i] + [0, gpu_shared_len[i]) where v is the loop variable of the
     * blocks loop. sched_shared_buf: the buffers shared(t) named (-1: not one), for the
     * checks; sched_gpu: the directives as text. */
    int gpu_sched;
    int ngpu_shared;
    int gpu_shared[TL_SCHED_MAX_SHARED];
    int64_t gpu_shared_row[TL_SCHED_MAX_SHARED], gpu_shared_len[TL_SCHED_MAX_SHARED];
    int sched_shared_buf[TL_SCHED_MAX_SHARED];
    char sched_gpu[96];
    TlLAttn attn;          /* causal attention (attn.on), else zeros */
} TlLKernel;

typedef enum TlLHostKind {
    TL_LH_KERNEL, /* run kernel (over par_extent items through the thread pool) */
    TL_LH_COPY,   /* memmove(bufs[dst] + dst_off, bufs[src] + src_off, nbytes) */
    TL_LH_ALIAS,  /* bufs[dst] = bufs[src] + src_off (byte offsets) */
    TL_LH_LOOP,   /* for s in [0, count): var = reverse ? count-1-s : s; body */
} TlLHostKind;

typedef struct TlLHost {
    TlLHostKind kind;
    int kernel;
    int dst, src;
    int dst_off, src_off, nbytes; /* i64 exprs (may use host loop vars) */
    int var, count, reverse;
    int body, next;
} TlLHost;

typedef struct TlLProgram {
    TlLExpr *ex; int nex, excap;
    TlLStmt *st; int nst, stcap;
    TlLBuf *buf; int nbuf, bufcap;
    TlLKernel *kern; int nkern, kerncap;
    TlLHost *host; int nhost, hostcap;
    const char **syms; int nsyms, symcap; /* dim symbols, in the order of the syms array */
    int nvars;             /* loop variables (kernel and host) */
    int entry;             /* first host op, -1 = nothing to do */
    int *node_buf;         /* top graph node -> buffer (-1: none, e.g. the scan node or
                              a node computed inside a fused kernel) */
    int fuse;              /* lowered with fusion (compiler/fuse.h): kernels are groups */
    int epilogue;          /* with fusion: contractions carry their consumers (gemm groups) */
    const TlGraph *g;
    char err[256];
} TlLProgram;

/* Lower a Graph IR (one kernel per op; a scan becomes a host loop over its body's
 * kernels). NULL with a message in err on failure (an op it cannot lower). */
TlLProgram *tl_loops_lower(const TlGraph *g, char *err, int errn);

/* Lowering options. fuse: 1 = one kernel per fusion group (compiler/fuse.h, docs/fusion.md),
 * 0 = one kernel per op (the slow reference the tests compare with), -1 = the default.
 * no_source_schedules: 1 = leave the source's `schedule` blocks unapplied (by default the
 * lowering applies them: schedule_source.h; an invalid one is an error with a location,
 * and lowering fails).
 * no_epilogue: with fusion, 1 = a matmul never fuses with its consumers; 0 = its elementwise
 * consumers become its epilogue (gemm groups) unless the environment has TL_GEMM_EPILOGUE=0. */
typedef struct TlLoopsOptions { int fuse; int no_source_schedules; int no_epilogue; } TlLoopsOptions;
TlLProgram *tl_loops_lower_opts(const TlGraph *g, const TlLoopsOptions *o, char *err, int errn);
/* The default of tl_loops_lower: fusion on, unless the environment has TL_FUSE=0. */
int tl_loops_fuse_default(void);
void tl_loops_free(TlLProgram *p);

/* --emit=loops */
void tl_loops_print(FILE *f, const TlLProgram *p);
/* One kernel (--kernel NAME): the buffers it touches, then its loop nest. */
void tl_loops_print_kernel(FILE *f, const TlLProgram *p, int k);
void tl_loops_print_expr(FILE *f, const TlLProgram *p, int e);

/* Evaluate an i64 expression of syms (and no loop variables): buffer sizes, extents. */
int64_t tl_loops_eval(const TlLProgram *p, int e, const int64_t *syms);
/* The parallel extent of a GEMM, batch x nsplit x ceil(m / mr) items (TlLGemm.par_extent). */
int tl_loops_gemm_extent(TlLProgram *p, const TlLGemm *g);

/* ---- building blocks (used by the lowering and by passes) ---- */
int tl_loops_int(TlLProgram *p, TlLType t, int64_t v);
int tl_loops_flt(TlLProgram *p, TlLType t, double v);
int tl_loops_var(TlLProgram *p, int var);
int tl_loops_bin(TlLProgram *p, TlLOp op, int a, int b);
int tl_loops_un(TlLProgram *p, TlLOp op, int a);
int tl_loops_cast(TlLProgram *p, int a, TlLType t);
int tl_loops_select(TlLProgram *p, int c, int a, int b);
int tl_loops_load(TlLProgram *p, int buf, int index);
int tl_loops_new_var(TlLProgram *p);
int tl_loops_loop(TlLProgram *p, int var, int lo, int hi);
int tl_loops_store(TlLProgram *p, int buf, int index, int value);

/* ---- schedule transformations ---- */

/* Split loop statement `loop` of kernel k by `size`: for v in [lo, hi) becomes
 * for vo in [0, ceil((hi-lo)/size)) { for vi in [0, min(size, hi-lo-vo*size)) { v = lo +
 * vo*size + vi ... } }. The outer loop keeps the parallel flag, the inner one the vector
 * hint. Returns 0, or -1 when the loop is not in the kernel. */
int tl_loops_tile(TlLProgram *p, int k, int loop, int64_t size);
/* The loops of kernel k, outermost first (ids into p->st); returns the count (<= max). */
int tl_loops_kernel_loops(const TlLProgram *p, int k, int *loops, int max);
/* Reorder the perfect nest of kernel k's outermost n loops (loops[0] encloses only
 * loops[1], ... each with bounds that use no loop variable): the loop at position i gets
 * the header (variable, bounds, axis) of position perm[i]; hints stay by position. The
 * parallel flag stays on the outermost loop (par_extent follows). Only for loops whose
 * iterations are independent (the loops over a kernel's result). 0, or -1 when the loops
 * are not such a nest. */
int tl_loops_reorder(TlLProgram *p, int k, const int *loops, int n, const int *perm);

/* CPU pass (loops_colsum.c): reductions over a tensor's leading axes into its last axis
 * (bias and layer_norm weight gradients) turned inside out, tiles of outputs with their
 * accumulators in a scratch buffer, so the inner loop has unit stride; bitwise the same
 * results. Returns the number of kernels rewritten; TL_COLSUM=0: none. */
int tl_loops_colsum(TlLProgram *p);
/* CPU pass (loops_colsum.c): an f64 accumulation over a unit-stride innermost loop (a row
 * sum: layer_norm, softmax, cross-entropy) vectorized as 8 partial sums (vectorize 8,
 * interleave 1) instead of one chain of dependent adds. Reassociates the f64 sum (each
 * result still rounds to f32 after it); fixed by the code, so the same for any thread
 * count and in fused and unfused programs. Returns the loops marked; TL_ROWSUM=0: none. */
int tl_loops_rowsum(TlLProgram *p);

/* Types */
TlLType tl_loops_storage_type(TlDType t);
TlLType tl_loops_compute_type(TlDType t);
const char *tl_ltype_name(TlLType t);
int tl_ltype_is_float(TlLType t);
size_t tl_ltype_size(TlLType t);

#endif
