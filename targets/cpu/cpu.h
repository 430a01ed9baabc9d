/* cpu.h — the LLVM CPU back end: Loop IR -> LLVM IR (C API) -> native code, in memory
 * through ORC LLJIT (tlc run, tests) or as an object file (tlc build).
 *
 *   char err[256];
 *   TlCpuProgram *p = tl_cpu_compile(g, NULL, err, sizeof err);  // NULL options: host CPU, O3
 *   tl_cpu_bind(p, "B", 4);
 *   tl_cpu_set_named(p, "x", values, n);          // like tl_interp_set_named
 *   if (tl_cpu_run(p)) puts(tl_cpu_error(p));
 *   const TlTensor *y = tl_cpu_output(p, 0);        // the interpreter's TlTensor
 *   tl_cpu_free(p);
 *
 * Storage is the interpreter's (interp.h): f32/bf16/f16 as float (bf16/f16 rounded on
 * every store), f64 double, i32, i64, bool as uint8, so values compare directly.
 *
 * The generated code (see docs/cpu-backend.md) exports, per program:
 *   void tl_main(void **bufs, const int64_t *syms, TlCpuParFor parfor, void *pool);
 *   void tl_sizes(const int64_t *syms, int64_t *numel);   // element count per buffer
 * and one function per kernel with the TlCpuKernelFn signature. bufs has one slot per
 * Loop IR buffer (tl_main rewrites the slots of scan arguments and constants); syms holds
 * the dim symbols in TlLProgram order. parfor runs a kernel over [0, n) in chunks; the
 * generated code never calls LLVM or the compiler, only parfor, libm, memmove and the
 * runtime's Philox functions. */
#ifndef TL_CPU_H
#define TL_CPU_H
#include <stdint.h>

#include "graph.h"
#include "interp.h"
#include "loops.h"
#include "memplan.h"

typedef void (*TlCpuKernelFn)(void **bufs, const int64_t *syms, int64_t begin, int64_t end);
typedef void (*TlCpuParFor)(void *pool, TlCpuKernelFn k, void **bufs, const int64_t *syms, int64_t n);
typedef void (*TlCpuMainFn)(void **bufs, const int64_t *syms, TlCpuParFor parfor, void *pool);

typedef struct TlCpuOptions {
    const char *cpu;      /* NULL or "": the host CPU (LLVMGetHostCPUName) and its features */
    const char *features; /* extra or overriding features ("+avx2,-avx512f"); NULL: none */
    int opt_level;        /* 0..3 (default 3 = default<O3>); -1 means 3 */
    int threads;          /* 0: TL_THREADS or all cores (runtime/pool.h); else that many */
    int vector_width;     /* "prefer-vector-width" in bits; 0: 512 */
    int no_gemm;          /* 1: compile matmul contractions from their loop nest, not gemm.c */
} TlCpuOptions;

typedef struct TlCpuProgram TlCpuProgram;

/* Lower, generate, optimize and JIT-compile a graph (which must outlive the program). NULL
 * with a message in err on failure. */
TlCpuProgram *tl_cpu_compile(const TlGraph *g, const TlCpuOptions *o, char *err, int errn);
/* The same from a Loop IR program already lowered from g (and maybe rescheduled: tiles,
 * vector widths, unroll counts). Takes ownership of lp, also on failure. */
TlCpuProgram *tl_cpu_compile_loops(const TlGraph *g, TlLProgram *lp, const TlCpuOptions *o, char *err, int errn);
void tl_cpu_free(TlCpuProgram *p);
const TlLProgram *tl_cpu_loops(const TlCpuProgram *p);

/* The interpreter's API, for the compiled program. */
void tl_cpu_bind(TlCpuProgram *p, const char *sym, int64_t value);
int tl_cpu_set(TlCpuProgram *p, int node, const double *values, int64_t n);
int tl_cpu_set_named(TlCpuProgram *p, const char *name, const double *values, int64_t n);
int tl_cpu_set_raw(TlCpuProgram *p, int node, const void *data, int64_t n);
int tl_cpu_run(TlCpuProgram *p);
const char *tl_cpu_error(const TlCpuProgram *p);
const TlTensor *tl_cpu_value(TlCpuProgram *p, int node); /* valid until the next run */
const TlTensor *tl_cpu_output(TlCpuProgram *p, int k);
void tl_cpu_set_threads(TlCpuProgram *p, int threads);  /* a new pool of that size */
/* The plan of the temporaries' arena (compiler/memplan.h) the last run used; NULL before
 * the first run. Values of graph nodes other than the outputs are overwritten by later
 * kernels unless TL_MEMPLAN=0 was set when the program was compiled. */
const TlMemPlan *tl_cpu_memplan(const TlCpuProgram *p);

/* Text of the optimized LLVM IR / assembly of a whole program (kernel NULL) or one kernel
 * (its name, e.g. "tl_k3_exp"). malloc'd; NULL with a message in err. */
char *tl_cpu_emit_llvm(const TlGraph *g, const TlCpuOptions *o, const char *kernel, char *err, int errn);
char *tl_cpu_emit_asm(const TlGraph *g, const TlCpuOptions *o, const char *kernel, char *err, int errn);
/* The program as a relocatable object (PIC) for the host, for linking with libtlrt.a. */
int tl_cpu_emit_object(const TlCpuProgram *p, const char *path, char *err, int errn);
/* The same with the exported symbols renamed: tl_main -> PREFIXmain, tl_sizes ->
 * PREFIXsizes, each kernel tl_kN_op -> PREFIXkN_op (prefix e.g. "tl_step_"). */
int tl_cpu_emit_object_as(const TlCpuProgram *p, const char *path, const char *prefix, char *err, int errn);

/* The parallel-for the JIT-run programs use: runtime/pool.h static chunks over [0, n). */
void tl_cpu_parfor(void *pool, TlCpuKernelFn k, void **bufs, const int64_t *syms, int64_t n);

#endif
