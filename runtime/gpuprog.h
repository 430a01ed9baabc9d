/* gpuprog.h — a GPU program as plain data, and its executor (no LLVM, no CUDA at link time).
 *
 * targets/nvptx compiles a Loop IR program into a TlGpuDesc: the PTX text of its kernels,
 * how each kernel is launched and which buffers it takes, the buffers (kind, element size,
 * element count as an expression over dim symbols, constant contents), and the host
 * program (kernel launches in order, device copies, aliases, scan loops) with the integer
 * expressions it evaluates. Nothing in it points into the compiler: `tlc run --target=cuda`
 * executes it directly, and `tlc build --target=cuda` serializes it (tl_gpudesc_write) into
 * the generated executable, which reads it back (tl_gpudesc_read) and runs the same
 * executor through runtime/cuda (dlopen'd driver).
 *
 *   TlGpuDesc *d = tl_gpudesc_read(blob, n, err, sizeof err);
 *   TlGpuExec *x = tl_gpuexec_new(d, err, sizeof err);    // NULL: "no GPU found", ...
 *   tl_gpuexec_set(x, buf_x, ids, n);                      // staged; uploaded by the run
 *   if (tl_gpuexec_run(x)) puts(tl_gpuexec_error(x));
 *   tl_gpuexec_read(x, buf_loss, &loss, 1);
 *   tl_gpuexec_feed(x, outs, ins, n);   // resident training: outputs become next inputs
 *
 * Buffers are device allocations kept across runs (rounded up to 256 bytes, grown when a
 * binding needs more); inputs are uploaded when set, constants once, scan state zeroed each
 * run. "Feeding" output buffer o into input buffer i swaps their device allocations (or
 * copies on the device when o is an alias or feeds several inputs): an updated parameter
 * never leaves the device between training steps. */
#ifndef TL_GPUPROG_H
#define TL_GPUPROG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cuda.h"

/* Host integer expressions (sizes, offsets, trip counts). */
typedef enum TlGpuExprKind {
    TL_GPX_INT,    /* v */
    TL_GPX_SYM,    /* dim symbol number v */
    TL_GPX_VAR,    /* host loop variable number v */
    TL_GPX_SELECT, /* a ? b : c */
    TL_GPX_NEG,    /* -a */
    TL_GPX_ABS,    /* |a| */
    TL_GPX_BIN,    /* a op b */
} TlGpuExprKind;

typedef enum TlGpuExprOp {
    TL_GPO_ADD, TL_GPO_SUB, TL_GPO_MUL, TL_GPO_DIV, TL_GPO_MOD, TL_GPO_MIN, TL_GPO_MAX,
    TL_GPO_EQ, TL_GPO_NE, TL_GPO_LT, TL_GPO_LE, TL_GPO_GT, TL_GPO_GE, TL_GPO_AND, TL_GPO_OR,
} TlGpuExprOp;

typedef struct TlGpuExpr {
    int32_t kind, op;
    int32_t a, b, c;
    int64_t v;
} TlGpuExpr;

/* Buffer kinds: the Loop IR's order (compiler/loops.h TlLBufKind, runtime/compiled.h). */
enum { TL_GPB_TEMP, TL_GPB_INPUT, TL_GPB_PARAM, TL_GPB_CONST, TL_GPB_ALIAS, TL_GPB_STATE };

typedef struct TlGpuBuf {
    int32_t kind;       /* TL_GPB_* */
    int32_t elem;       /* bytes per element */
    int32_t numel;      /* expression: element count */
    int32_t node;       /* graph node (messages), -1 */
    char *name;         /* input / param name, or NULL */
    int64_t ninit;      /* CONST: elements in init */
    void *init;         /* CONST: ninit elements in storage form */
} TlGpuBuf;

/* How a kernel is launched (targets/nvptx/nvptx.h TlGpuLaunchKind). */
enum { TL_GPL_FLAT, TL_GPL_WARP, TL_GPL_GEMM, TL_GPL_BLOCK, TL_GPL_ATTN };

/* Fused attention launches (TL_GPL_ATTN, targets/nvptx/nvptx_attn.c): blocks of this many
 * threads, grid (ceil(T / TL_GPU_ATTN_ROWS), BH, passes) with T = gemm_m, BH = gemm_batch
 * and passes = gemm_n (1: the forward; 2: the backward's dk/dv and dq passes). */
#define TL_GPU_ATTN_ROWS 64

/* K of the packed tensor-core GEMM's panels is padded to a multiple of this (M and N to
 * the GEMM tile, gemm_bm and gemm_bn): targets/nvptx/nvptx_mma.c. */
#define TL_GPU_MMA_PACK_K 32

typedef struct TlGpuKernel {
    char *name;                       /* the PTX entry */
    int32_t launch;                   /* TL_GPL_* */
    int32_t par_extent;               /* expression, -1: no parallel loop (one thread) */
    int32_t gemm_m, gemm_n, gemm_batch; /* expressions (GEMM launches; ATTN: T, passes, BH) */
    int32_t mma_pack;                 /* GEMM launches: 1 for the packed tensor-core GEMM: the
                                         executor first launches `<name>_pack` (grid-stride,
                                         ceil(items / block) blocks, items = batch * (Mp + Np) *
                                         Kp / 8) and passes both kernels a scratch pointer after
                                         the buffers, 2 * batch * Kp * (Mp + Np) bytes (Mp, Np, Kp:
                                         M, N, K rounded up to gemm_bm, gemm_bn, TL_GPU_MMA_PACK_K) */
    int32_t gemm_k;                   /* expression (packed GEMM launches), else -1 */
    int32_t block;                    /* flat launches: threads per block (up to 1024), 0: the program's (schedule data: tlc tune --target cuda, a source schedule's gpu_threads) */
    int32_t nused;
    int32_t *used;                    /* buffers passed as parameters, in order */
} TlGpuKernel;

/* Host ops: the Loop IR's (TlLHostKind) in its order. */
enum { TL_GPH_KERNEL, TL_GPH_COPY, TL_GPH_ALIAS, TL_GPH_LOOP };

typedef struct TlGpuHostOp {
    int32_t kind;
    int32_t kernel;
    int32_t dst, src;
    int32_t dst_off, src_off, nbytes; /* expressions, byte counts */
    int32_t var, count, reverse;      /* LOOP */
    int32_t body, next;               /* host op indices, -1: none */
} TlGpuHostOp;

typedef struct TlGpuDesc {
    char *name;
    char *arch;                 /* the PTX's target, "sm_80" */
    char *ptx;
    int32_t block;              /* threads per block (flat, warp and GEMM launches) */
    int32_t gemm_bm, gemm_bn;   /* the SGEMM tile of C per block */
    int32_t nsyms;
    char **syms;
    int32_t nvars;
    int32_t nex;
    TlGpuExpr *ex;
    int32_t nbuf;
    TlGpuBuf *buf;
    int32_t nkern;
    TlGpuKernel *kern;
    int32_t nhost;
    TlGpuHostOp *host;
    int32_t entry;              /* first host op, -1: nothing to do */
} TlGpuDesc;

/* Checks indices and expression references: 0, or -1 with a message. */
int tl_gpudesc_check(const TlGpuDesc *d, char *err, int errn);
/* Expression e with the dim symbols' and host loop variables' values. */
int64_t tl_gpudesc_eval(const TlGpuDesc *d, int e, const int64_t *syms, const int64_t *vars);
/* The description as bytes (malloc'd) and back (every field malloc'd; checked). */
int tl_gpudesc_write(const TlGpuDesc *d, unsigned char **out, size_t *n);
TlGpuDesc *tl_gpudesc_read(const unsigned char *blob, size_t n, char *err, int errn);
void tl_gpudesc_free(TlGpuDesc *d);

typedef struct TlGpuExec TlGpuExec;

/* Opens the driver, loads the PTX, finds every kernel. d must outlive the executor. */
TlGpuExec *tl_gpuexec_new(const TlGpuDesc *d, char *err, int errn);
/* With TL_GPU_PROFILE=1 in the environment (read by tl_gpuexec_new), prints the profile
 * (tl_gpuexec_profile_print, top 20) to stderr first. */
void tl_gpuexec_free(TlGpuExec *x);
/* TL_GPU_PROFILE=1: every launch is timed with CUDA events (each launch then waits for its
 * kernel); this prints per kernel (top kernels by total time, all when top <= 0): rank,
 * name, launch kind, launches, total ms, mean us, % of the time in kernels. Nothing when
 * profiling is off (then launches carry no timing code at all). */
void tl_gpuexec_profile_print(const TlGpuExec *x, FILE *f, int top);
/* Profiling switched on (on = 1: counters from zero) or off (0) for this executor alone,
 * whatever TL_GPU_PROFILE says (tlc tune --target cuda times every kernel this way); the
 * table is printed at free only under TL_GPU_PROFILE=1. 0, or -1 with a message. */
int tl_gpuexec_profile(TlGpuExec *x, int on, char *err, int errn);
/* Per kernel (d->nkern entries): total ms in timed launches and their count. -1 when
 * profiling is off. */
int tl_gpuexec_profile_times(const TlGpuExec *x, double *ms, int64_t *launches);
const char *tl_gpuexec_error(const TlGpuExec *x);
const TlGpuDesc *tl_gpuexec_desc(const TlGpuExec *x);
/* Binds a dim symbol by name (a name the program does not use is ignored). */
void tl_gpuexec_bind(TlGpuExec *x, const char *sym, int64_t value);
/* Stages n elements (storage form) for an INPUT or PARAM buffer; uploaded by the next run. */
int tl_gpuexec_set(TlGpuExec *x, int buf, const void *data, int64_t n);
/* Buffer buf reads from_buf of another executor on the same device, whatever allocation
 * that is at the time of each run (eval reading the training step's resident params). */
int tl_gpuexec_share(TlGpuExec *x, int buf, TlGpuExec *from, int from_buf);
int tl_gpuexec_run(TlGpuExec *x);
/* Only the host program again, inputs already on the device (benchmarks). */
int tl_gpuexec_rerun(TlGpuExec *x);
/* After a run: out[k]'s contents become in[k]'s, on the device (swapped allocations, or a
 * device copy where o is an alias or feeds several inputs). in[k] is then resident: its
 * staged host copy is stale and is never uploaded again until the next set. */
int tl_gpuexec_feed(TlGpuExec *x, const int *out, const int *in, int n);
/* n elements of a buffer's current device contents into host memory. */
int tl_gpuexec_read(TlGpuExec *x, int buf, void *host, int64_t n);
/* After a run: a buffer's element count and device address (0 when none). */
int64_t tl_gpuexec_numel(const TlGpuExec *x, int buf);
TlCuPtr tl_gpuexec_ptr(const TlGpuExec *x, int buf);

#endif
