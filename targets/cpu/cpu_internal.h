/* cpu_internal.h — shared between the CPU back end's files (not a public contract). */
#ifndef TL_CPU_INTERNAL_H
#define TL_CPU_INTERNAL_H
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "cpu.h"

typedef struct TlCpuTarget {
    char *triple, *cpu, *features; /* LLVM-allocated (LLVMDisposeMessage) */
    int vector_width;
    int opt_level;
    int gemm;                      /* matmul kernels through gemm.c (TlCpuOptions.no_gemm) */
} TlCpuTarget;

int tl_cpu_target_init(TlCpuTarget *t, const TlCpuOptions *o, char *err, int errn);
void tl_cpu_target_fini(TlCpuTarget *t);
LLVMTargetMachineRef tl_cpu_target_machine(const TlCpuTarget *t, int jit, char *err, int errn);

/* Builds the module of a program (kernels, tl_main, tl_sizes) in ctx. NULL + err. */
LLVMModuleRef tl_cpu_codegen(LLVMContextRef ctx, const TlLProgram *p, const TlCpuTarget *t,
                             LLVMTargetMachineRef tm, char *err, int errn);
/* Verifies, then runs default<On>. 0 or -1 + err. */
int tl_cpu_optimize(LLVMModuleRef m, LLVMTargetMachineRef tm, int level, char *err, int errn);

/* gemm.c: the body of a matmul kernel (TlLKernel.gemm; docs/performance.md). The values
 * are those of the kernel's body function: buffer pointers, i64 sizes and strides. */
typedef struct TlCpuGemmArgs {
    LLVMValueRef a, b, c;
    LLVMValueRef batch, m, n, k;
    LLVMValueRef sa_b, sa_m, sa_k, sb_b, sb_k, sb_n, sc_b, sc_m;
    LLVMValueRef begin, end;   /* the range of gemm.par_extent items to compute */
    /* The epilogue (gemm.has_epi), emitted by the caller at the builder's position: rows
     * [row0, row0 + nrows) x columns [col0, col0 + ncols) of batch bi of C are summed and
     * get C = epi(C) in place. NULL: none. */
    void (*epi)(void *ctx, LLVMValueRef bi, LLVMValueRef row0, LLVMValueRef nrows, LLVMValueRef col0, LLVMValueRef ncols);
    void *epi_ctx;
} TlCpuGemmArgs;

/* Whether the target can run the generated GEMM (AVX-512F) and the schedule is one the
 * generator handles; otherwise the kernel's loop nest is compiled. */
int tl_cpu_gemm_supported(const TlCpuTarget *t, const TlLGemm *g);
/* Emits the GEMM into fn at the builder's position; returns with the builder at the end of
 * the block where the function must return. `name` names the microkernel function. */
void tl_cpu_gemm_emit(LLVMModuleRef mod, LLVMBuilderRef b, LLVMValueRef fn, const TlCpuTarget *t,
                      const TlLGemm *g, const char *name, const TlCpuGemmArgs *args);

/* gemm_bf16.c: the same for a bf16 matmul (gemm.dtype TL_BF16, no epilogue) with
 * AVX-512-BF16 dot products (vdpbf16ps); the target needs +avx512bf16, else the loop nest
 * is compiled. args.epi is not used. */
int tl_cpu_gemm_bf16_supported(const TlCpuTarget *t, const TlLGemm *g);
void tl_cpu_gemm_bf16_emit(LLVMModuleRef mod, LLVMBuilderRef b, LLVMValueRef fn, const TlCpuTarget *t,
                           const TlLGemm *g, const char *name, const TlCpuGemmArgs *args);

/* attn.c: the body of a causal attention kernel (TlLKernel.attn; docs/cpu-backend.md).
 * The parallel items are heads x ceil(T / attn.bq) query (or key) blocks, twice that for
 * the backward. */
typedef struct TlCpuAttnArgs {
    LLVMValueRef q, k, v, o, g, out; /* buffer pointers (o, g: backward only) */
    LLVMValueRef bh, t;              /* i64: heads, sequence length */
    LLVMValueRef begin, end;         /* the range of items to compute */
} TlCpuAttnArgs;

/* Whether the target runs the generated kernel (AVX-512F) for head size K (a constant);
 * otherwise the kernel's loop nest is compiled. */
int tl_cpu_attn_supported(const TlCpuTarget *t, const TlLAttn *a, int64_t K);
void tl_cpu_attn_emit(LLVMModuleRef mod, LLVMBuilderRef b, LLVMValueRef fn, const TlLAttn *a, int64_t K,
                      const TlCpuAttnArgs *args);

#endif
