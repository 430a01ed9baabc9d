/* nvptx_internal.h — shared between the NVPTX code generator (nvptx_codegen.c), its SGEMM
 * and warp-reduction schedules (nvptx_gemm.c) and the driver (nvptx.c). */
#ifndef TL_NVPTX_INTERNAL_H
#define TL_NVPTX_INTERNAL_H
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "nvptx.h"

/* Threads per block of every launch (flat, warp and GEMM kernels). */
#define TL_GPU_BLOCK 256
/* The SGEMM tile: a BM x BN block of C per thread block, BK deep k slices through shared
 * memory, TM x TN outputs per thread ((BM/TM) * (BN/TN) = TL_GPU_BLOCK threads). */
#define TL_GEMM_BM 128
#define TL_GEMM_BN 128
#define TL_GEMM_BK 8
#define TL_GEMM_TM 8
#define TL_GEMM_TN 8

/* The tensor-core GEMM (bf16/f16 operands, nvptx_mma.c): the same BM x BN block tile and
 * grid, k slices of TL_MMA_BK, 8 warps as 2 (m) x 4 (n), each a 64 x 32 warp tile. */
#define TL_MMA_BK 32
_Static_assert(TL_MMA_BK == TL_GPU_MMA_PACK_K, "the executor pads K of the packed panels to TL_MMA_BK");

typedef struct NvTarget {
    char arch[16];       /* sm_80 */
    int sm;              /* 80 for sm_80 */
    int opt_level;
    int no_gemm, no_warp_reduce, no_collapse;
    int mma_regs;        /* bf16/f16 GEMMs: the register-staged kernel, no pack step */
    int no_attn;         /* attention as its reference loop nests */
} NvTarget;

/* How kernel k is compiled and launched; used[] (nbuf entries) gets the buffers it takes as
 * parameters, in buffer order. */
TlGpuLaunchKind tl_nvptx_plan(const TlLProgram *p, int k, const NvTarget *t, char *used);

/* The loops of kernel k that one flat index of its launch runs over (at most max, into
 * loops[], outermost first): the parallel loop, then each loop that is the only statement
 * of the previous one's body, has bounds of integers and dim symbols only, and whose
 * iterations store different elements (every store index uses its variable and loads
 * nothing), in a kernel that reads no buffer it writes. The launch's extent is the product
 * of their trip counts. 0: no parallel loop (one thread) or a GEMM launch. */
int tl_nvptx_collapse(const TlLProgram *p, int k, const NvTarget *t, TlGpuLaunchKind kind, int *loops, int max);
#define TL_NVPTX_MAX_COLLAPSE 8
/* A kernel without a parallel loop (flat launch) whose body is a nest of loops: the loop of
 * the nest (integer bounds, lo >= 0; the longest such) whose iterations touch disjoint
 * elements of every buffer the kernel stores (each access of such a buffer is v or
 * Y * C + v with C >= hi, the same C per buffer: a scatter_add's column loop). Threads run
 * its iterations (grid-stride), each every iteration of the loops around it, so each
 * element sees the same updates in the same order as on one thread. -1: none. */
int tl_nvptx_inner_parallel(const TlLProgram *p, int k, const NvTarget *t, TlGpuLaunchKind kind);
/* A kernel with a source schedule's gpu_blocks(i) (TlLKernel.gpu_sched): its parallel
 * loop, whose iterations the grid's blocks take (each block all its gpu_block threads),
 * or -1. Its launch is flat, over (trip count of that loop) x gpu_block threads. */
int tl_nvptx_blocks_loop(const TlLProgram *p, int k);
/* Threads per block of a flat launch at most (a source schedule's gpu_threads(j = T)). */
#define TL_GPU_MAX_BLOCK 1024

/* The warp schedule's tests (nvptx_codegen.c), for the report (nvptx_report.c): the x of
 * a reduction loop s (after statement prev) a warp splits, or -1; statements that only store. */
int tl_nvptx_warp_reducible(const TlLProgram *p, int prev, int s);
int tl_nvptx_only_stores(const TlLProgram *p, int s);
int tl_nvptx_reduce_nest(const TlLProgram *p, int prev, int s, int *loops, int *n);

void tl_nvptx_target(NvTarget *t, const TlNvptxOptions *o);
LLVMTargetMachineRef tl_nvptx_target_machine(const NvTarget *t, char *err, int errn);
/* Generate, link libdevice, internalise, optimize: the module ready for PTX emission. */
LLVMModuleRef tl_nvptx_build(LLVMContextRef ctx, const TlLProgram *p, const NvTarget *t, LLVMTargetMachineRef tm,
                             char *err, int errn);
/* PTX text of a module (malloc'd). */
char *tl_nvptx_module_ptx(LLVMTargetMachineRef tm, LLVMModuleRef m, char *err, int errn);

/* ---- the code generator's state, for the schedules in nvptx_gemm.c ---- */
typedef struct NvCg {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    const TlLProgram *p;
    const NvTarget *t;
    LLVMTypeRef i1, i8, i16, i32, i64, f16, f32, f64, ptr0, ptr1, ptr3, voidt;
    LLVMValueRef fn;
    LLVMBasicBlockRef entry;
    LLVMValueRef *bufv;   /* per buffer: global pointer in the current kernel */
    LLVMValueRef *symv;   /* per symbol: i64 value */
    LLVMValueRef *varv;   /* per variable: alloca */
    LLVMValueRef *localv; /* per local of the current kernel: alloca */
    const TlLKernel *k;
    LLVMValueRef n;       /* the parallel extent parameter */
    int chain[TL_NVPTX_MAX_COLLAPSE]; /* the collapsed loops (tl_nvptx_collapse) */
    int nchain;
    int par_mode;         /* how gen_loop maps the parallel loop: 0 grid-stride threads, 1 warps;
                             2: a block launch (no parallel loop, the block's threads are lanes);
                             3: gpu_blocks (the parallel loop over blocks, their threads lanes of
                             the loops marked TlLSched.gpu) */
    LLVMValueRef lane;    /* warp mode: lane id; block mode: thread id (i64) */
    LLVMValueRef lanes;   /* the lanes' count: 32, or the block's size (i64) */
    int split;            /* warp mode: inside a loop split across the lanes */
    int ipar;             /* a kernel without a parallel loop: the loop run as one (grid-stride), or -1 */
    /* par_mode 3 (a source schedule's gpu_blocks: tl_nvptx_blocks_loop): the staged rows
     * of TlLKernel.gpu_shared in this iteration of the blocks loop: shared array shv[i]
     * holds elements shbase[i] + [0, len) of buffer k->gpu_shared[i] */
    LLVMValueRef shv[TL_SCHED_MAX_SHARED], shbase[TL_SCHED_MAX_SHARED];
    /* combine(a, b) of a warp reduction: the update expression with local sub_acc read as
     * sub_accv and expression sub_x as sub_xv (-1: no substitution) */
    int sub_acc, sub_x;
    LLVMValueRef sub_accv, sub_xv;
} NvCg;

LLVMValueRef tl_nvptx_gen(NvCg *c, int e);
LLVMValueRef tl_nvptx_sreg(NvCg *c, const char *name);
LLVMValueRef tl_nvptx_entry_alloca(NvCg *c, LLVMTypeRef t);
LLVMValueRef tl_nvptx_intrinsic(NvCg *c, const char *name, LLVMTypeRef *ts, int nts, LLVMValueRef *args, int n);
/* The SGEMM body of kernel k (parameters already bound in c). */
void tl_nvptx_gen_gemm(NvCg *c, const TlLGemm *g);
/* The tensor-core body of a bf16/f16 TlLGemm (sm_80+): staged through registers from the
 * f32 operands (gen_mma), or (the default) a pack kernel writing 2-byte k-contiguous panels
 * of A and B^T into scratch (gen_mma_pack) and the cp.async main loop on them
 * (gen_mma_packed); see nvptx_mma.c for the launch contract. */
void tl_nvptx_gen_mma(NvCg *c, const TlLGemm *g);
void tl_nvptx_gen_mma_pack(NvCg *c, const TlLGemm *g, LLVMValueRef scratch);
void tl_nvptx_gen_mma_packed(NvCg *c, const TlLGemm *g, LLVMValueRef scratch);
/* Kernel k (planned as a GEMM launch) is the packed tensor-core GEMM: it takes a scratch
 * pointer after its buffers and has a `<name>_pack` companion. */
int tl_nvptx_mma_packed(const TlLProgram *p, int k, const NvTarget *t);
/* Kernel k is fused attention (a TL_GPU_LAUNCH_ATTN launch): its head size K (a constant,
 * 1..64), else 0 (the reference loop nest). */
int tl_nvptx_attn_head(const TlLProgram *p, int k, const NvTarget *t);
/* The fused attention body of kernel c->k (nvptx_attn.c; parameters already bound). */
void tl_nvptx_gen_attn(NvCg *c, const TlLAttn *s, int K);
/* f32 v rounded to the nearest value of dt (TL_BF16 or TL_F16), still an f32. */
LLVMValueRef tl_nvptx_round(NvCg *c, LLVMValueRef v, TlDType dt);

#endif
