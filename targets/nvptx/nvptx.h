/* nvptx.h — the NVPTX back end: Loop IR -> LLVM IR (nvptx64-nvidia-cuda, libdevice) -> PTX,
 * run on the GPU through the CUDA driver (runtime/cuda.h, dlopen'd).
 *
 *   char err[256];
 *   char *ptx = tl_nvptx_emit_ptx(g, NULL, NULL, err, sizeof err);   // --emit=ptx, no GPU needed
 *
 *   TlGpuProgram *p = tl_gpu_compile(g, NULL, err, sizeof err);  // NULL: "no GPU found" etc.
 *   tl_gpu_bind(p, "B", 4);
 *   tl_gpu_set_named(p, "x", values, n);
 *   if (tl_gpu_run(p)) puts(tl_gpu_error(p));
 *   const TlTensor *y = tl_gpu_output(p, 0);        // copied back to the host, interp.h storage
 *   tl_gpu_free(p);
 *
 * Every Loop IR kernel becomes one `.visible .entry` with the PTX kernel calling
 * convention; its parameters are the buffers it touches (global pointers, in buffer order),
 * every dim symbol (i64), then the parallel extent n (i64). The parallel loop is spread
 * over the grid (a grid-stride loop over [0, n)); matmul contractions (TlLGemm) get a
 * shared-memory tiled SGEMM kernel (f32) or a tensor-core mma.sync kernel (bf16 / f16 on
 * sm_80+), and row reductions a warp per row with shuffles (docs/nvptx.md).
 * tl_nvptx_describe turns a compiled program into plain data (runtime/gpuprog.h: PTX,
 * launches, buffers, host program) that the runtime's executor runs: buffers live on the
 * device; the host program (kernel launches in order, copies, aliases, scan loops) runs on
 * the CPU and launches on the default stream. A TlGpuProgram is that executor over a
 * graph's description. */
#ifndef TL_NVPTX_H
#define TL_NVPTX_H
#include <stdint.h>

#include "gpuprog.h"
#include "graph.h"
#include "interp.h"
#include "loops.h"

typedef struct TlNvptxOptions {
    const char *arch;  /* "sm_80" (default) or "sm_90" ... */
    int opt_level;     /* 0..3; -1 or unset (with a zeroed struct: 0 means 0) */
    int no_gemm;       /* 1: compile matmuls as plain loop nests (tests, comparisons) */
    int no_warp_reduce;/* 1: row reductions as one thread per row */
    int no_collapse;   /* 1: launch over the parallel loop only, not the loops nested in it */
    int mma_regs;      /* 1: bf16/f16 GEMMs stage f32 operands through registers (no pack
                          kernel, no cp.async: the slower reference); also TL_MMA_REGS=1 */
    int no_attn;       /* 1: attention (attn, attn_grad) as its reference loop nests (one thread
                          per row), not the fused tiled kernels; also TL_GPU_ATTN_REF=1 */
} TlNvptxOptions;

/* The PTX of a whole program (kernel NULL) or of one kernel (its name, e.g. "tl_k3_exp").
 * malloc'd; NULL with a message in err. Needs no GPU. */
char *tl_nvptx_emit_ptx(const TlGraph *g, const TlNvptxOptions *o, const char *kernel, char *err, int errn);
/* The optimized LLVM IR (after libdevice and O3) of the program or one kernel. */
char *tl_nvptx_emit_llvm(const TlGraph *g, const TlNvptxOptions *o, const char *kernel, char *err, int errn);
/* The same from a Loop IR program (not taken over). */
char *tl_nvptx_emit_ptx_loops(const TlLProgram *lp, const TlNvptxOptions *o, char *err, int errn);
/* The CUDA toolkit root used for libdevice ($CUDA_HOME, $CUDA_PATH, else /usr/local/cuda). */
const char *tl_nvptx_cuda_root(void);

/* How kernel k of a program is launched (shared with the driver; see nvptx_codegen.c). */
typedef enum TlGpuLaunchKind {
    TL_GPU_LAUNCH_FLAT,   /* grid-stride over n = par_extent (or 1 thread when none) */
    TL_GPU_LAUNCH_WARP,   /* a warp per item of the parallel loop */
    TL_GPU_LAUNCH_GEMM,   /* 2-D tiles of C: grid (ceil(n/BN), ceil(m/BM), batch) */
    TL_GPU_LAUNCH_BLOCK,  /* no parallel loop: one block shares the kernel's reductions */
    TL_GPU_LAUNCH_ATTN,   /* fused causal attention (nvptx_attn.c): grid (ceil(T/64), BH, passes)
                             of TL_GPU_ATTN_ROWS-thread blocks */
} TlGpuLaunchKind;

/* What one kernel asks of the GPU (tl_nvptx_kernel_stats, `tlc kernels --gpu-report`):
 * how it is launched, how many threads, and the serial work of its busiest thread, in
 * statements executed (a store or a local's update counts 1, an `if` 1 plus its longer
 * branch; a loop its trip count times its body, a warp-split loop ceil(trip / 32) times,
 * plus 5 butterfly steps for a reduction; a GEMM thread 8 per k: 64 FMAs and 16 shared
 * loads). Bounds that depend on loop variables are evaluated at a few values (first,
 * middle, last) and the body's work averaged, so triangular loops count about right. */
typedef struct TlGpuKernelStat {
    char name[64];
    TlGpuLaunchKind launch;
    int serial;          /* no parallel loop: one thread runs it all */
    int collapsed;       /* loops the launch's index runs over (tl_nvptx_collapse) */
    double items;        /* parallel items: threads (flat), warps (warp), output tiles (gemm) */
    double threads;      /* threads launched */
    double work;         /* serial work per thread (busiest thread) */
} TlGpuKernelStat;

/* Stats of every kernel of lp (out: lp->nkern entries), dim symbols bound to syms (lp's
 * order; NULL when it has none). Needs no GPU and generates no code. */
void tl_nvptx_kernel_stats(const TlLProgram *lp, const TlNvptxOptions *o, const int64_t *syms, TlGpuKernelStat *out);
/* The report: a header, then the top kernels (0: all) by serial work per thread, then a
 * summary line (kernels, the largest and the summed work per thread). */
void tl_nvptx_report_print(FILE *f, const TlGpuKernelStat *s, int n, int top);

/* The plain-data description of a compiled Loop IR program (runtime/gpuprog.h): the PTX
 * (for o's arch, sm_80 by default), every kernel's launch and parameters, the buffers and
 * the host program. What `tlc build --target=cuda` embeds. NULL with a message in err. */
TlGpuDesc *tl_nvptx_describe(const TlLProgram *lp, const TlNvptxOptions *o, const char *name, char *err, int errn);

/* A graph compiled for the GPU: its description run by the runtime's executor. */
typedef struct TlGpuProgram TlGpuProgram;

TlGpuProgram *tl_gpu_compile(const TlGraph *g, const TlNvptxOptions *o, char *err, int errn);
/* Takes ownership of lp, also on failure. */
TlGpuProgram *tl_gpu_compile_loops(const TlGraph *g, TlLProgram *lp, const TlNvptxOptions *o, char *err, int errn);
void tl_gpu_free(TlGpuProgram *p);
const TlLProgram *tl_gpu_loops(const TlGpuProgram *p);
const char *tl_gpu_ptx(const TlGpuProgram *p);
const TlGpuDesc *tl_gpu_desc(const TlGpuProgram *p);
/* The executor, for buffer-level use (resident training: tl_gpuexec_feed, _share). */
TlGpuExec *tl_gpu_exec(TlGpuProgram *p);

void tl_gpu_bind(TlGpuProgram *p, const char *sym, int64_t value);
int tl_gpu_set(TlGpuProgram *p, int node, const double *values, int64_t n);
int tl_gpu_set_named(TlGpuProgram *p, const char *name, const double *values, int64_t n);
int tl_gpu_set_raw(TlGpuProgram *p, int node, const void *data, int64_t n);
int tl_gpu_run(TlGpuProgram *p);
const char *tl_gpu_error(const TlGpuProgram *p);
/* Copied from the device on each call after a run; valid until the next run. */
const TlTensor *tl_gpu_value(TlGpuProgram *p, int node);
const TlTensor *tl_gpu_output(TlGpuProgram *p, int k);
/* The device address of a node's buffer after a run (benchmarks), 0 when none. */
uint64_t tl_gpu_device_ptr(TlGpuProgram *p, int node);
/* Run only the kernels (inputs already on the device from the last run): benchmarks. */
int tl_gpu_rerun(TlGpuProgram *p);
/* How kernel k is launched (the tuner varies the block of flat launches: gpu_block). */
TlGpuLaunchKind tl_gpu_kernel_launch(const TlGpuProgram *p, int k);
/* Per-kernel timing (runtime/gpuprog.h's profile): on = 1 starts it from zero, 0 stops it;
 * tl_gpu_kernel_ms fills ms[k] with kernel k's mean milliseconds per launch (0 when never
 * launched), -1 when profiling is off. */
int tl_gpu_profile(TlGpuProgram *p, int on);
int tl_gpu_kernel_ms(const TlGpuProgram *p, double *ms);

#endif
