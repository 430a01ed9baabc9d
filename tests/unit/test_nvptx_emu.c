/* test_nvptx_emu.c — the tensor-core GEMM of bf16 / f16 matmuls run without a GPU.
 *
 * The optimized NVPTX LLVM IR of a graph (tl_nvptx_emit_llvm, sm_80, O3: the module whose
 * PTX the GPU would run) is retargeted to the host: its NVVM intrinsics (thread and block
 * ids, bar.sync, ldmatrix, mma.sync, cvt.rn.bf16x2 / f16x2) become calls into an emulator
 * of one thread block — 256 cooperative user-level threads (ucontext) that switch at every
 * barrier and warp collective — and the module is JIT-compiled (ORC) and run block by block
 * over the launch grid. Outputs are compared with the interpreter under the error bound of
 * f32 accumulation (test_gpu_diff's mma_bound_check). This checks what is tl's in the
 * kernel: tiling, shared-memory layouts, ldmatrix addressing, the double-buffered pipeline,
 * vector and guarded loads, edges, batches, rounding. The semantics of ldmatrix and
 * mma.m16n8k16 here are the PTX ISA's fragment layouts (docs/nvptx.md); the GPU run
 * (test_gpu_diff) checks them against the hardware. */
#include <fenv.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <llvm-c/Core.h>
#include <llvm-c/IRReader.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>

#include "check.h"
#include "interp.h"
#include "nvptx/nvptx_internal.h"

/* only gpu_mma_cases of the shared builders is used here */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "gpu_cases.h"

/* ---- the block emulator ---- */

/* NTHR: the most threads a block may have (a source schedule's gpu_threads(j = 1024)) */
enum { NTHR = TL_GPU_MAX_BLOCK, NWARP = NTHR / 32, STACK = 256 * 1024 };

static ucontext_t sched_ctx, thr_ctx[NTHR];
static char *stacks;
static int cur, finished[NTHR];
static int nthr = TL_GPU_BLOCK; /* threads of the current launch's blocks (attention: TL_GPU_ATTN_ROWS) */
static unsigned ctaid[3], nctaid[3];
static long progress;
static int bar_count, bar_gen, warp_count[NWARP], warp_gen[NWARP];
static uintptr_t w_addr[NWARP][32];
static uint32_t w_a[NWARP][32][4], w_b[NWARP][32][2];
static float w_c[NWARP][32][4];

static void yield(void) { swapcontext(&thr_ctx[cur], &sched_ctx); }

/* wait until `total` threads have arrived (a barrier generation) */
static void arrive(int *count, int *gen, int total) {
    int g = *gen;
    progress++;
    if (++*count == total) { *count = 0, ++*gen; return; }
    while (*gen == g) yield();
}
static void warp_sync(void) { arrive(&warp_count[cur / 32], &warp_gen[cur / 32], 32); }

static uint32_t emu_tid_x(void) { return (uint32_t)cur; }
static uint32_t emu_zero(void) { return 0; }
static uint32_t emu_one(void) { return 1; }
static uint32_t emu_ntid_x(void) { return (uint32_t)nthr; }
static uint32_t emu_ctaid_x(void) { return ctaid[0]; }
static uint32_t emu_ctaid_y(void) { return ctaid[1]; }
static uint32_t emu_ctaid_z(void) { return ctaid[2]; }
static uint32_t emu_nctaid_x(void) { return nctaid[0]; }
static uint32_t emu_nctaid_y(void) { return nctaid[1]; }
static uint32_t emu_nctaid_z(void) { return nctaid[2]; }
static void emu_barrier0(void) { arrive(&bar_count, &bar_gen, nthr); }

/* shfl.sync.bfly.b32 (full mask): lane t gets lane t ^ m's value; every lane posts, waits
 * for the warp, reads, and waits again before a later shuffle overwrites the slots */
static uint32_t w_shfl[NWARP][32];
static uint32_t emu_shfl_bfly(uint32_t v, uint32_t m) {
    int w = cur / 32, t = cur % 32;
    w_shfl[w][t] = v;
    warp_sync();
    uint32_t r = w_shfl[w][(t ^ (int)m) & 31];
    warp_sync();
    return r;
}

/* ldmatrix.sync.aligned.m8n8.x4[.trans].b16: lane l gives the address of row l % 8 of
 * matrix l / 8 (16 bytes); lane t receives, of matrix j, row t / 4, halves 2(t % 4) and
 * 2(t % 4) + 1 — with .trans, column t / 4 of rows 2(t % 4) and 2(t % 4) + 1. */
static void emu_ldmatrix(uint32_t *out, void *addr, int32_t trans) {
    int w = cur / 32, t = cur % 32;
    w_addr[w][t] = (uintptr_t)addr;
    warp_sync();
    for (int j = 0; j < 4; j++) {
        uint16_t lo, hi;
        if (!trans) {
            const uint16_t *row = (const uint16_t *)w_addr[w][8 * j + t / 4];
            lo = row[2 * (t % 4)], hi = row[2 * (t % 4) + 1];
        } else {
            lo = ((const uint16_t *)w_addr[w][8 * j + 2 * (t % 4)])[t / 4];
            hi = ((const uint16_t *)w_addr[w][8 * j + 2 * (t % 4) + 1])[t / 4];
        }
        out[j] = (uint32_t)lo | (uint32_t)hi << 16;
    }
    warp_sync();
}

static double half_value(uint16_t h, int bf16) {
    if (bf16) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return h >> 15 ? -v : v;
}

/* mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.f32: lane (g, t) = (l / 4, l % 4) holds
 * A (g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..) in a0..a3; B (2t..2t+1, g),
 * (2t+8.., g) in b0, b1; C/D (g, 2t..2t+1), (g+8, 2t..2t+1). D = A B + C, summed in double
 * and rounded to f32 (the bound allows the hardware's f32 accumulation). */
static void emu_mma(float *out, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1, float c0,
                    float c1, float c2, float c3, int32_t bf16) {
    int w = cur / 32, t = cur % 32;
    uint32_t a[4] = {a0, a1, a2, a3}, b[2] = {b0, b1};
    float c[4] = {c0, c1, c2, c3};
    memcpy(w_a[w][t], a, sizeof a), memcpy(w_b[w][t], b, sizeof b), memcpy(w_c[w][t], c, sizeof c);
    warp_sync();
    int g = t / 4, q = t % 4;
    for (int i = 0; i < 4; i++) {
        int row = g + 8 * (i / 2), col = 2 * q + (i % 2);
        double s = w_c[w][t][i];
        for (int k = 0; k < 16; k++) {
            uint32_t ar = w_a[w][(row % 8) * 4 + (k % 8) / 2][(row >= 8) + 2 * (k >= 8)];
            uint32_t br = w_b[w][col * 4 + (k % 8) / 2][k >= 8];
            s += half_value((uint16_t)(ar >> 16 * (k % 2)), bf16) * half_value((uint16_t)(br >> 16 * (k % 2)), bf16);
        }
        out[i] = (float)s;
    }
    warp_sync();
}

/* cvt.rn.bf16x2.f32 / cvt.rn.f16x2.f32 d, a, b: a in the upper half */
/* cp.async.cg.shared.global (16 bytes), commit_group, wait_group n, wait_all: a copy reads
 * its source when issued and lands in shared memory only when a wait completes its group
 * (per thread, as the PTX ISA orders them), so a kernel that reads a stage before waiting
 * for it reads the stage's old contents. */
enum { MAXCP = 64 };
static struct { void *dst; unsigned char src[16]; int group; } cps[NTHR][MAXCP];
static int ncp[NTHR], ngroup[NTHR];
static long cp_total;

static void emu_cp_async(void *dst, const void *src) {
    if (ncp[cur] == MAXCP) abort(); /* more copies in flight than any pipeline here issues */
    cps[cur][ncp[cur]].dst = dst, cps[cur][ncp[cur]].group = -1;
    memcpy(cps[cur][ncp[cur]++].src, src, 16);
    cp_total++;
}
static void emu_cp_commit(void) {
    for (int i = 0; i < ncp[cur]; i++)
        if (cps[cur][i].group < 0) cps[cur][i].group = ngroup[cur];
    ngroup[cur]++;
}
/* complete every committed group but the newest n */
static void emu_cp_wait(int32_t n) {
    int keep = 0;
    for (int i = 0; i < ncp[cur]; i++) {
        if (cps[cur][i].group >= 0 && cps[cur][i].group < ngroup[cur] - n) memcpy(cps[cur][i].dst, cps[cur][i].src, 16);
        else cps[cur][keep++] = cps[cur][i];
    }
    ncp[cur] = keep;
}
static void emu_cp_wait_all(void) { emu_cp_commit(), emu_cp_wait(0); }

/* ex2.approx.ftz.f32 / lg2.approx.ftz.f32 (libdevice's expf and logf): the exact 2^x and
 * log2 x rounded to f32 (the hardware's are within 2 ulp), subnormal inputs and results
 * flushed to zero */
static float ftz(float x) { return fabsf(x) < 0x1p-126f ? copysignf(0.0f, x) : x; }
static float emu_ex2(float x) { return ftz((float)exp2((double)ftz(x))); }
static float emu_lg2(float x) { return (float)log2((double)ftz(x)); }
/* saturate.f32: x clamped to [0, 1], NaN to 0 */
static float emu_sat(float x) { return x > 0 ? (x < 1 ? x : 1) : 0; }
static float emu_sat_ftz(float x) { return emu_sat(ftz(x)); }
/* fma.rm.f32: a b + c rounded toward -inf (libdevice's expf) */
static float emu_fma_rm(float a, float b, float c) {
    int mode = fegetround();
    fesetround(FE_DOWNWARD);
    volatile float r = fmaf(a, b, c);
    fesetround(mode);
    return r;
}

static uint32_t emu_ff2bf16x2(float a, float b) {
    uint32_t r = 0;
    float v[2] = {b, a};
    for (int i = 0; i < 2; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        r |= ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) << 16 * i;
    }
    return r;
}
static uint32_t emu_ff2f16x2(float a, float b) {
    uint32_t r = 0;
    float v[2] = {b, a};
    for (int i = 0; i < 2; i++) {
        _Float16 h = (_Float16)v[i];
        uint16_t bits;
        memcpy(&bits, &h, 2);
        r |= (uint32_t)bits << 16 * i;
    }
    return r;
}

/* ---- retargeting the module ---- */

typedef struct Repl { const char *intr; const char *fn; void *addr; } Repl;
static const Repl repls[] = {
    {"llvm.nvvm.read.ptx.sreg.tid.x", "emu_tid_x", (void *)emu_tid_x},
    {"llvm.nvvm.read.ptx.sreg.tid.y", "emu_zero", (void *)emu_zero},
    {"llvm.nvvm.read.ptx.sreg.tid.z", "emu_zero", (void *)emu_zero},
    {"llvm.nvvm.read.ptx.sreg.ntid.x", "emu_ntid_x", (void *)emu_ntid_x},
    {"llvm.nvvm.read.ptx.sreg.ntid.y", "emu_one", (void *)emu_one},
    {"llvm.nvvm.read.ptx.sreg.ntid.z", "emu_one", (void *)emu_one},
    {"llvm.nvvm.read.ptx.sreg.ctaid.x", "emu_ctaid_x", (void *)emu_ctaid_x},
    {"llvm.nvvm.read.ptx.sreg.ctaid.y", "emu_ctaid_y", (void *)emu_ctaid_y},
    {"llvm.nvvm.read.ptx.sreg.ctaid.z", "emu_ctaid_z", (void *)emu_ctaid_z},
    {"llvm.nvvm.read.ptx.sreg.nctaid.x", "emu_nctaid_x", (void *)emu_nctaid_x},
    {"llvm.nvvm.read.ptx.sreg.nctaid.y", "emu_nctaid_y", (void *)emu_nctaid_y},
    {"llvm.nvvm.read.ptx.sreg.nctaid.z", "emu_nctaid_z", (void *)emu_nctaid_z},
    {"llvm.nvvm.barrier0", "emu_barrier0", (void *)emu_barrier0},
    {"llvm.nvvm.ex2.approx.ftz.f", "emu_ex2", (void *)emu_ex2},
    {"llvm.nvvm.lg2.approx.ftz.f", "emu_lg2", (void *)emu_lg2},
    {"llvm.nvvm.saturate.ftz.f", "emu_sat_ftz", (void *)emu_sat_ftz},
    {"llvm.nvvm.saturate.f", "emu_sat", (void *)emu_sat},
    {"llvm.nvvm.fma.rm.f", "emu_fma_rm", (void *)emu_fma_rm},
    {"llvm.nvvm.shfl.sync.bfly.i32", "emu_shfl_bfly", (void *)emu_shfl_bfly},
    {"llvm.nvvm.ldmatrix.sync.aligned.m8n8.x4.b16", "emu_ldmatrix", (void *)emu_ldmatrix},
    {"llvm.nvvm.ldmatrix.sync.aligned.m8n8.x4.trans.b16", "emu_ldmatrix", (void *)emu_ldmatrix},
    {"llvm.nvvm.mma.m16n8k16.row.col.bf16", "emu_mma", (void *)emu_mma},
    {"llvm.nvvm.mma.m16n8k16.row.col.f32.f32", "emu_mma", (void *)emu_mma},
    {"llvm.nvvm.ff2bf16x2.rn", "emu_ff2bf16x2", (void *)emu_ff2bf16x2},
    {"llvm.nvvm.ff2f16x2.rn", "emu_ff2f16x2", (void *)emu_ff2f16x2},
    {"llvm.nvvm.cp.async.cg.shared.global.16", "emu_cp_async", (void *)emu_cp_async},
    {"llvm.nvvm.cp.async.commit.group", "emu_cp_commit", (void *)emu_cp_commit},
    {"llvm.nvvm.cp.async.wait.group", "emu_cp_wait", (void *)emu_cp_wait},
    {"llvm.nvvm.cp.async.wait.all", "emu_cp_wait_all", (void *)emu_cp_wait_all},
};

static LLVMValueRef host_fn(LLVMModuleRef m, const char *name, LLVMTypeRef ret, LLVMTypeRef *args, int n) {
    LLVMValueRef f = LLVMGetNamedFunction(m, name);
    return f ? f : LLVMAddFunction(m, name, LLVMFunctionType(ret, args, (unsigned)n, 0));
}

/* Replaces call `call` of NVVM intrinsic r->intr by a call of the C function r->fn. */
static void rewrite_call(LLVMModuleRef m, LLVMBuilderRef b, LLVMValueRef call, const Repl *r) {
    LLVMContextRef ctx = LLVMGetModuleContext(m);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx), f32 = LLVMFloatTypeInContext(ctx), ptr = LLVMPointerTypeInContext(ctx, 0);
    LLVMTypeRef voidt = LLVMVoidTypeInContext(ctx), rt = LLVMTypeOf(call);
    LLVMValueRef fn = LLVMGetInstructionParent(call) ? LLVMGetBasicBlockParent(LLVMGetInstructionParent(call)) : NULL;
    LLVMBuilderRef eb = LLVMCreateBuilderInContext(ctx); /* allocas in the entry block */
    LLVMPositionBuilderBefore(eb, LLVMGetFirstInstruction(LLVMGetEntryBasicBlock(fn)));
    LLVMPositionBuilderBefore(b, call);
    LLVMValueRef res = NULL;
    if (strstr(r->intr, "ldmatrix")) {
        LLVMValueRef out = LLVMBuildAlloca(eb, LLVMArrayType2(i32, 4), "");
        LLVMTypeRef at[3] = {ptr, ptr, i32};
        LLVMValueRef args[3] = {out, LLVMBuildAddrSpaceCast(b, LLVMGetOperand(call, 0), ptr, ""),
                                LLVMConstInt(i32, strstr(r->intr, "trans") != NULL, 0)};
        LLVMValueRef f = host_fn(m, r->fn, voidt, at, 3);
        LLVMBuildCall2(b, LLVMGlobalGetValueType(f), f, args, 3, "");
        res = LLVMGetUndef(rt);
        for (unsigned j = 0; j < 4; j++) {
            LLVMValueRef idx[2] = {LLVMConstInt(i32, 0, 0), LLVMConstInt(i32, j, 0)};
            LLVMValueRef v = LLVMBuildLoad2(b, i32, LLVMBuildGEP2(b, LLVMArrayType2(i32, 4), out, idx, 2, ""), "");
            res = LLVMBuildInsertValue(b, res, v, j, "");
        }
    } else if (strstr(r->intr, "mma")) {
        LLVMValueRef out = LLVMBuildAlloca(eb, LLVMArrayType2(f32, 4), "");
        LLVMTypeRef at[12] = {ptr, i32, i32, i32, i32, i32, i32, f32, f32, f32, f32, i32};
        LLVMValueRef args[12];
        args[0] = out;
        for (unsigned j = 0; j < 10; j++) {
            LLVMValueRef v = LLVMGetOperand(call, j);
            args[1 + j] = j < 6 ? LLVMBuildBitCast(b, v, i32, "") : v;
        }
        args[11] = LLVMConstInt(i32, strstr(r->intr, "bf16") != NULL, 0);
        LLVMValueRef f = host_fn(m, r->fn, voidt, at, 12);
        LLVMBuildCall2(b, LLVMGlobalGetValueType(f), f, args, 12, "");
        res = LLVMGetUndef(rt);
        for (unsigned j = 0; j < 4; j++) {
            LLVMValueRef idx[2] = {LLVMConstInt(i32, 0, 0), LLVMConstInt(i32, j, 0)};
            LLVMValueRef v = LLVMBuildLoad2(b, f32, LLVMBuildGEP2(b, LLVMArrayType2(f32, 4), out, idx, 2, ""), "");
            res = LLVMBuildInsertValue(b, res, v, j, "");
        }
    } else if (strstr(r->intr, "cp.async.cg")) {
        LLVMTypeRef at[2] = {ptr, ptr};
        LLVMValueRef args[2] = {LLVMBuildAddrSpaceCast(b, LLVMGetOperand(call, 0), ptr, ""),
                                LLVMBuildAddrSpaceCast(b, LLVMGetOperand(call, 1), ptr, "")};
        LLVMValueRef f = host_fn(m, r->fn, voidt, at, 2);
        LLVMBuildCall2(b, LLVMGlobalGetValueType(f), f, args, 2, "");
    } else if (strstr(r->intr, "wait.group")) {
        LLVMTypeRef at[1] = {i32};
        LLVMValueRef args[1] = {LLVMGetOperand(call, 0)};
        LLVMValueRef f = host_fn(m, r->fn, voidt, at, 1);
        LLVMBuildCall2(b, LLVMGlobalGetValueType(f), f, args, 1, "");
    } else if (strstr(r->intr, "ff2")) {
        LLVMTypeRef at[2] = {f32, f32};
        LLVMValueRef args[2] = {LLVMGetOperand(call, 0), LLVMGetOperand(call, 1)};
        LLVMValueRef f = host_fn(m, r->fn, i32, at, 2);
        res = LLVMBuildBitCast(b, LLVMBuildCall2(b, LLVMGlobalGetValueType(f), f, args, 2, ""), rt, "");
    } else if (strstr(r->intr, "ex2.") || strstr(r->intr, "lg2.") || strstr(r->intr, "saturate")) { /* f32 -> f32 */
        LLVMTypeRef at[1] = {f32};
        LLVMValueRef args[1] = {LLVMGetOperand(call, 0)};
        LLVMValueRef f = host_fn(m, r->fn, f32, at, 1);
        res = LLVMBuildCall2(b, LLVMGlobalGetValueType(f), f, args, 1, "");
    } else if (strstr(r->intr, "fma.rm")) { /* f32 x 3 -> f32 */
        LLVMTypeRef at[3] = {f32, f32, f32};
        LLVMValueRef args[3] = {LLVMGetOperand(call, 0), LLVMGetOperand(call, 1), LLVMGetOperand(call, 2)};
        LLVMValueRef f = host_fn(m, r->fn, f32, at, 3);
        res = LLVMBuildCall2(b, LLVMGlobalGetValueType(f), f, args, 3, "");
    } else if (strstr(r->intr, "shfl")) { /* (mask, value, lane mask, clamp) */
        LLVMTypeRef at[2] = {i32, i32};
        LLVMValueRef args[2] = {LLVMGetOperand(call, 1), LLVMGetOperand(call, 2)};
        LLVMValueRef f = host_fn(m, r->fn, i32, at, 2);
        res = LLVMBuildCall2(b, LLVMGlobalGetValueType(f), f, args, 2, "");
    } else { /* ids and the barrier: no arguments */
        LLVMValueRef f = host_fn(m, r->fn, rt, NULL, 0);
        res = LLVMBuildCall2(b, LLVMGlobalGetValueType(f), f, NULL, 0, "");
    }
    if (LLVMGetTypeKind(rt) != LLVMVoidTypeKind) LLVMReplaceAllUsesWith(call, res);
    LLVMInstructionEraseFromParent(call);
    LLVMDisposeBuilder(eb);
}

/* Host triple and data layout, kernels with the C calling convention, every llvm.nvvm.*
 * call rewritten; -1 with the intrinsic's name in err when one is not emulated. */
static int retarget(LLVMModuleRef m, LLVMTargetMachineRef tm, char *err, int errn) {
    err[0] = 0;
    char *triple = LLVMGetDefaultTargetTriple();
    LLVMSetTarget(m, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    char *dl = LLVMCopyStringRepOfTargetData(td);
    LLVMSetDataLayout(m, dl);
    LLVMDisposeMessage(dl);
    LLVMDisposeTargetData(td);
    LLVMBuilderRef b = LLVMCreateBuilderInContext(LLVMGetModuleContext(m));
    for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
        if (!LLVMIsDeclaration(f)) LLVMSetFunctionCallConv(f, LLVMCCallConv);
        LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "target-cpu", 10);
        LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "target-features", 15);
        size_t n;
        const char *name = LLVMGetValueName2(f, &n);
        if (strncmp(name, "llvm.nvvm.", 10) != 0) continue;
        const Repl *r = NULL;
        for (size_t i = 0; i < sizeof repls / sizeof *repls && !r; i++)
            if (strncmp(name, repls[i].intr, strlen(repls[i].intr)) == 0 &&
                (name[strlen(repls[i].intr)] == 0 || name[strlen(repls[i].intr)] == '.') &&
                !(strstr(name, "trans") && !strstr(repls[i].intr, "trans")))
                r = &repls[i];
        if (!r) { /* every one not emulated, in the message */
            size_t at = strlen(err);
            snprintf(err + at, (size_t)errn - at, "%s%s", at ? ", " : "no emulation of ", name);
            continue;
        }
        LLVMValueRef calls[4096];
        int nc = 0;
        for (LLVMUseRef u = LLVMGetFirstUse(f); u && nc < 4096; u = LLVMGetNextUse(u)) calls[nc++] = LLVMGetUser(u);
        for (int i = 0; i < nc; i++) rewrite_call(m, b, calls[i], r);
    }
    LLVMDisposeBuilder(b);
    return err[0] ? -1 : 0;
}

/* ---- running a program ---- */

typedef void (*K0)(void);
static int launched[5], collapsed, inner; /* kernels run per launch kind; collapsed; inner-parallel */
static int gpu_blocks_run, gpu_threads_run, staged; /* source schedules: gpu_blocks, gpu_threads only; with shared */
static int attn_fwd, attn_bwd;  /* fused attention kernels run */
static void *kfn;
static int64_t kargs[64];
static int nkargs;

static void thread_main(void) {
    int64_t *a = kargs;
    switch (nkargs) { /* every kernel parameter is 64 bits: a pointer or an i64 */
#define A1 int64_t
    case 2: ((void (*)(A1, A1))kfn)(a[0], a[1]); break;
    case 3: ((void (*)(A1, A1, A1))kfn)(a[0], a[1], a[2]); break;
    case 4: ((void (*)(A1, A1, A1, A1))kfn)(a[0], a[1], a[2], a[3]); break;
    case 5: ((void (*)(A1, A1, A1, A1, A1))kfn)(a[0], a[1], a[2], a[3], a[4]); break;
    case 6: ((void (*)(A1, A1, A1, A1, A1, A1))kfn)(a[0], a[1], a[2], a[3], a[4], a[5]); break;
    case 7: ((void (*)(A1, A1, A1, A1, A1, A1, A1))kfn)(a[0], a[1], a[2], a[3], a[4], a[5], a[6]); break;
    case 8: ((void (*)(A1, A1, A1, A1, A1, A1, A1, A1))kfn)(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]); break;
    case 9: ((void (*)(A1, A1, A1, A1, A1, A1, A1, A1, A1))kfn)(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]); break;
    case 10:
        ((void (*)(A1, A1, A1, A1, A1, A1, A1, A1, A1, A1))kfn)(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
        break;
#undef A1
    default: break;
    }
    finished[cur] = 1;
}

/* fresh contexts for the NTHR threads of a block (getcontext returns twice: kept out of
 * run_grid's loops) */
static void start_threads(void) {
    for (int t = 0; t < nthr; t++) {
        finished[t] = 0;
        getcontext(&thr_ctx[t]);
        thr_ctx[t].uc_stack.ss_sp = stacks + (size_t)t * STACK;
        thr_ctx[t].uc_stack.ss_size = STACK;
        thr_ctx[t].uc_link = &sched_ctx;
        makecontext(&thr_ctx[t], thread_main, 0);
    }
}

/* All blocks of a grid, one after another; -1 on a deadlock (threads waiting at different
 * barriers). */
static int run_grid(unsigned gx, unsigned gy, unsigned gz) {
    nctaid[0] = gx, nctaid[1] = gy, nctaid[2] = gz;
    for (unsigned z = 0; z < gz; z++)
        for (unsigned y = 0; y < gy; y++)
            for (unsigned x = 0; x < gx; x++) {
                ctaid[0] = x, ctaid[1] = y, ctaid[2] = z;
                bar_count = 0;
                memset(warp_count, 0, sizeof warp_count);
                memset(ncp, 0, sizeof ncp), memset(ngroup, 0, sizeof ngroup);
                start_threads();
                for (int alive = nthr; alive;) {
                    long before = progress;
                    alive = 0;
                    for (int t = 0; t < nthr; t++)
                        if (!finished[t]) {
                            cur = t;
                            swapcontext(&sched_ctx, &thr_ctx[t]);
                            alive += !finished[t];
                        }
                    if (alive && progress == before) return -1;
                }
                for (int t = 0; t < nthr; t++)
                    if (ncp[t]) return -2; /* copies never waited for */
            }
    return 0;
}

typedef struct Emu {
    const TlLProgram *lp;
    LLVMOrcLLJITRef jit;
    char **mem;      /* per buffer: host storage (aliases point into others) */
    int64_t *syms;
} Emu;

static int emu_regs; /* 1: the register-staged tensor-core GEMM (TlNvptxOptions.mma_regs) */

static void *lookup(Emu *e, const char *name, char *err, int errn) {
    LLVMOrcExecutorAddress addr = 0;
    LLVMErrorRef le = LLVMOrcLLJITLookup(e->jit, &addr, name);
    if (le) {
        char *msg = LLVMGetErrorMessage(le);
        snprintf(err, (size_t)errn, "lookup %s: %s", name, msg);
        LLVMDisposeErrorMessage(msg);
        return NULL;
    }
    return (void *)(uintptr_t)addr;
}

static int grid_err(int rc, const char *name, char *err, int errn) {
    if (rc) snprintf(err, (size_t)errn, "%s: %s", name, rc == -1 ? "deadlock at a barrier" : "cp.async copies never waited for");
    return rc;
}

static int exec_host(Emu *e, int h, char *err, int errn) {
    const TlLProgram *lp = e->lp;
    NvTarget t;
    tl_nvptx_target(&t, &(TlNvptxOptions){.arch = "sm_80", .opt_level = 3, .mma_regs = emu_regs});
    for (; h >= 0; h = lp->host[h].next) {
        const TlLHost *o = &lp->host[h];
        if (o->kind == TL_LH_ALIAS) {
            e->mem[o->dst] = e->mem[o->src] + tl_loops_eval(lp, o->src_off, e->syms);
            continue;
        }
        if (o->kind == TL_LH_COPY) {
            memmove(e->mem[o->dst] + tl_loops_eval(lp, o->dst_off, e->syms), e->mem[o->src] + tl_loops_eval(lp, o->src_off, e->syms),
                    (size_t)tl_loops_eval(lp, o->nbytes, e->syms));
            continue;
        }
        if (o->kind != TL_LH_KERNEL) { snprintf(err, (size_t)errn, "host op %d not emulated", o->kind); return -1; }
        const TlLKernel *k = &lp->kern[o->kernel];
        char used[512];
        if (lp->nbuf >= 512) { snprintf(err, (size_t)errn, "too many buffers"); return -1; }
        TlGpuLaunchKind kind = tl_nvptx_plan(lp, o->kernel, &t, used);
        launched[kind]++;
        int packed = kind == TL_GPU_LAUNCH_GEMM && tl_nvptx_mma_packed(lp, o->kernel, &t);
        nkargs = 0;
        for (int i = 0; i < lp->nbuf; i++)
            if (used[i]) kargs[nkargs++] = (int64_t)(uintptr_t)e->mem[i];
        unsigned char *panels = NULL;
        if (packed) { /* the panels (runtime/gpuprog.c's launch), poisoned: the pack kernel writes every byte */
            int64_t m = tl_loops_eval(lp, k->gemm.m, e->syms), n = tl_loops_eval(lp, k->gemm.n, e->syms);
            int64_t kk = tl_loops_eval(lp, k->gemm.k, e->syms), b = tl_loops_eval(lp, k->gemm.batch, e->syms);
            int64_t mp = (m + TL_GEMM_BM - 1) / TL_GEMM_BM * TL_GEMM_BM, np = (n + TL_GEMM_BN - 1) / TL_GEMM_BN * TL_GEMM_BN;
            int64_t kp = (kk + TL_MMA_BK - 1) / TL_MMA_BK * TL_MMA_BK;
            size_t bytes = (size_t)(2 * b * kp * (mp + np));
            panels = aligned_alloc(256, (bytes + 256) / 256 * 256);
            memset(panels, 0xff, bytes); /* NaN as bf16 and f16: an unwritten element shows */
            kargs[nkargs++] = (int64_t)(uintptr_t)panels;
        }
        for (int i = 0; i < lp->nsyms; i++) kargs[nkargs++] = e->syms[i];
        /* n: the launch's extent as the description computes it (tl_nvptx_collapse,
         * tl_nvptx_inner_parallel) */
        int64_t n = k->par_extent >= 0 ? tl_loops_eval(lp, k->par_extent, e->syms) : 1;
        int loops[TL_NVPTX_MAX_COLLAPSE];
        int nl = tl_nvptx_collapse(lp, o->kernel, &t, kind, loops, TL_NVPTX_MAX_COLLAPSE);
        for (int j = 1; j < nl; j++) {
            int64_t trip = tl_loops_eval(lp, lp->st[loops[j]].hi, e->syms) - tl_loops_eval(lp, lp->st[loops[j]].lo, e->syms);
            n *= trip > 0 ? trip : 0;
        }
        collapsed += nl > 1;
        int ip = tl_nvptx_inner_parallel(lp, o->kernel, &t, kind);
        if (ip >= 0) n = tl_loops_eval(lp, lp->st[ip].hi, e->syms) - tl_loops_eval(lp, lp->st[ip].lo, e->syms), inner++;
        int bl = tl_nvptx_blocks_loop(lp, o->kernel);
        if (bl >= 0) n *= k->gpu_block; /* the description's extent: a block per iteration */
        kargs[nkargs++] = n;
        if (nkargs < 2 || nkargs > 10) { snprintf(err, (size_t)errn, "%s: %d parameters", k->name, nkargs); free(panels); return -1; }
        if (packed) {
            char pname[300];
            snprintf(pname, sizeof pname, "%s_pack", k->name);
            if (!(kfn = lookup(e, pname, err, errn)) || grid_err(run_grid(1, 1, 1), pname, err, errn)) { free(panels); return -1; }
        }
        if (!(kfn = lookup(e, k->name, err, errn))) { free(panels); return -1; }
        unsigned gx = 1, gy = 1, gz = 1; /* flat, warp, block: one block; grid-stride loops cover n */
        nthr = TL_GPU_BLOCK;
        if (kind == TL_GPU_LAUNCH_ATTN) { /* runtime/gpuprog.c's geometry */
            int64_t T = tl_loops_eval(lp, k->attn.t, e->syms);
            gx = (unsigned)((T + TL_GPU_ATTN_ROWS - 1) / TL_GPU_ATTN_ROWS), gy = (unsigned)tl_loops_eval(lp, k->attn.bh, e->syms);
            gz = k->attn.grad ? 2 : 1, nthr = TL_GPU_ATTN_ROWS;
            if (k->attn.grad) attn_bwd++;
            else attn_fwd++;
        }
        if (k->gpu_sched) { /* runtime/gpuprog.c's flat launch of gpu_block threads; with gpu_blocks a few
                               blocks, so that each takes several iterations (grid-stride) */
            nthr = k->gpu_block;
            if (bl >= 0) gx = n / k->gpu_block < 3 ? (unsigned)(n / k->gpu_block > 0 ? n / k->gpu_block : 1) : 3;
            gpu_blocks_run += bl >= 0, gpu_threads_run += bl < 0, staged += k->ngpu_shared > 0;
        }
        if (kind == TL_GPU_LAUNCH_GEMM) {
            int64_t m = tl_loops_eval(lp, k->gemm.m, e->syms), n = tl_loops_eval(lp, k->gemm.n, e->syms);
            gx = (unsigned)((n + TL_GEMM_BN - 1) / TL_GEMM_BN), gy = (unsigned)((m + TL_GEMM_BM - 1) / TL_GEMM_BM);
            gz = (unsigned)tl_loops_eval(lp, k->gemm.batch, e->syms);
        }
        int rc = grid_err(run_grid(gx, gy, gz), k->name, err, errn);
        nthr = TL_GPU_BLOCK;
        free(panels);
        if (rc) return -1;
    }
    return 0;
}

static LLVMTargetMachineRef host_tm(void) {
    char *triple = LLVMGetDefaultTargetTriple(), *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
    LLVMTargetRef target;
    char *msg = NULL;
    LLVMTargetMachineRef tm = NULL;
    if (!LLVMGetTargetFromTriple(triple, &target, &msg))
        tm = LLVMCreateTargetMachine(target, triple, cpu, feat, LLVMCodeGenLevelDefault, LLVMRelocDefault, LLVMCodeModelJITDefault);
    LLVMDisposeMessage(msg), LLVMDisposeMessage(triple), LLVMDisposeMessage(cpu), LLVMDisposeMessage(feat);
    return tm;
}

/* The graph G through the emulated GPU; the values of every output (malloc'd, numel[o] of
 * output o) or NULL with err. The inputs get the values the interpreter was given
 * (vals[node]). */
static double **emulate(double **vals, int64_t *numel, char *err, int errn) {
    double **out = NULL;
    TlLProgram *lp = tl_loops_lower(G, err, errn);
    if (!lp) return NULL;
    char *ir = tl_nvptx_emit_llvm(G, &(TlNvptxOptions){.arch = "sm_80", .opt_level = 3, .mma_regs = emu_regs}, NULL, err, errn);
    LLVMTargetMachineRef tm = host_tm();
    Emu e = {.lp = lp};
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    if (!ir || !tm) { if (!tm) snprintf(err, (size_t)errn, "no host target machine"); goto done; }
    LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRangeCopy(ir, strlen(ir), "tl");
    LLVMModuleRef m = NULL;
    char *msg = NULL;
    if (LLVMParseIRInContext(LLVMOrcThreadSafeContextGetContext(tsc), mb, &m, &msg)) { /* consumes mb */
        snprintf(err, (size_t)errn, "parse: %s", msg ? msg : "");
        LLVMDisposeMessage(msg);
        goto done;
    }
    if (retarget(m, tm, err, errn)) { LLVMDisposeModule(m); goto done; }
    LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
    tm = NULL; /* taken over */
    if (LLVMOrcCreateLLJIT(&e.jit, jb)) { snprintf(err, (size_t)errn, "no LLJIT"); LLVMDisposeModule(m); goto done; }
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(e.jit);
    enum { NR = sizeof repls / sizeof *repls };
    LLVMOrcCSymbolMapPair pairs[NR];
    int np = 0;
    for (int i = 0; i < NR; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++) dup |= strcmp(repls[j].fn, repls[i].fn) == 0;
        if (dup) continue;
        pairs[np].Name = LLVMOrcLLJITMangleAndIntern(e.jit, repls[i].fn);
        pairs[np].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)repls[i].addr;
        pairs[np++].Sym.Flags = (LLVMJITSymbolFlags){LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable, 0};
    }
    LLVMOrcDefinitionGeneratorRef gen = NULL;
    if (LLVMOrcJITDylibDefine(jd, LLVMOrcAbsoluteSymbols(pairs, (size_t)np)) ||
        LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(e.jit), NULL, NULL)) {
        snprintf(err, (size_t)errn, "JIT symbols");
        LLVMDisposeModule(m);
        goto done;
    }
    LLVMOrcJITDylibAddGenerator(jd, gen);
    if (LLVMOrcLLJITAddLLVMIRModule(e.jit, jd, LLVMOrcCreateNewThreadSafeModule(m, tsc))) { snprintf(err, (size_t)errn, "add module"); goto done; }
    /* buffers: storage-sized, zeroed; inputs as tl_gpu_set stores them */
    e.syms = calloc((size_t)lp->nsyms + 1, sizeof *e.syms);
    for (int i = 0; i < lp->nsyms; i++)
        for (int s = 0; s < NSYM; s++)
            if (strcmp(lp->syms[i], SYM[s]) == 0) e.syms[i] = SYMV[s];
    e.mem = calloc((size_t)lp->nbuf + 1, sizeof *e.mem);
    for (int i = 0; i < lp->nbuf; i++) {
        const TlLBuf *bf = &lp->buf[i];
        if (bf->kind == TL_LB_ALIAS) continue;
        int64_t n = tl_loops_eval(lp, bf->numel, e.syms);
        e.mem[i] = calloc((size_t)n + 1, tl_ltype_size(bf->elem));
        if (bf->kind == TL_LB_CONST)
            for (int64_t j = 0; j < n; j++) ((float *)e.mem[i])[j] = (float)tl_interp_round(bf->dtype, bf->init[j]);
        if ((bf->kind == TL_LB_INPUT || bf->kind == TL_LB_PARAM) && bf->node >= 0 && vals[bf->node]) {
            for (int64_t j = 0; j < n; j++) {
                double v = tl_interp_round(bf->dtype, vals[bf->node][j]);
                switch (bf->elem) {
                case TL_LT_F32: ((float *)e.mem[i])[j] = (float)v; break;
                case TL_LT_F64: ((double *)e.mem[i])[j] = v; break;
                case TL_LT_I32: ((int32_t *)e.mem[i])[j] = (int32_t)v; break;
                case TL_LT_I64: ((int64_t *)e.mem[i])[j] = (int64_t)v; break;
                default: snprintf(err, (size_t)errn, "input b%d: storage not emulated", i); goto done;
                }
            }
        }
    }
    if (exec_host(&e, lp->entry, err, errn)) goto done;
    out = calloc((size_t)G->noutputs + 1, sizeof *out);
    for (int o = 0; o < G->noutputs; o++) {
        int ob = lp->node_buf[G->outputs[o]];
        if (ob < 0) continue;
        TlLType el = lp->buf[ob].elem;
        numel[o] = tl_loops_eval(lp, lp->buf[ob].numel, e.syms);
        out[o] = malloc(sizeof **out * (size_t)(numel[o] + 1));
        for (int64_t j = 0; j < numel[o]; j++)
            out[o][j] = el == TL_LT_F32 ? ((float *)e.mem[ob])[j] : el == TL_LT_F64 ? ((double *)e.mem[ob])[j]
                      : el == TL_LT_I32 ? ((int32_t *)e.mem[ob])[j] : el == TL_LT_I64 ? (double)((int64_t *)e.mem[ob])[j]
                                        : ((uint8_t *)e.mem[ob])[j];
    }
done:
    if (e.mem)
        for (int i = 0; i < lp->nbuf; i++)
            if (lp->buf[i].kind != TL_LB_ALIAS) free(e.mem[i]);
    free(e.mem), free(e.syms);
    if (e.jit) LLVMOrcDisposeLLJIT(e.jit);
    LLVMOrcDisposeThreadSafeContext(tsc);
    if (tm) LLVMDisposeTargetMachine(tm);
    free(ir);
    tl_loops_free(lp);
    return out;
}

/* ---- cases ---- */

static int ncases;

static int emu_parallel;
static void parallel_case_run(const char *name, int exact);

static void graph_case_run(const char *name, int exact) {
    if (emu_parallel) {
        parallel_case_run(name, exact);
        return;
    }
    if (!mma_strict) return; /* only the tensor-core cases of gpu_mma_cases */
    case_begin("emulated GPU (%s): %s", emu_regs ? "register-staged" : "packed, cp.async", name);
    cp_total = 0;
    char err[512] = "";
    TlInterp *it = tl_interp_new(G);
    for (int i = 0; i < NSYM; i++) tl_interp_bind(it, SYM[i], SYMV[i]);
    double **vals = calloc((size_t)G->nnodes, sizeof *vals);
    for (int i = 0; i < G->nnodes; i++) {
        const TlGNode *n = &G->nodes[i];
        if (n->op != TL_GOP_INPUT && n->op != TL_GOP_PARAM) continue;
        int64_t cnt = numel_of(&n->shape);
        vals[i] = malloc(sizeof(double) * (size_t)(cnt + 1));
        for (int64_t j = 0; j < cnt; j++) vals[i][j] = urand(RLO[i], RHI[i]);
        tl_interp_set(it, i, vals[i], cnt);
    }
    EXPECTF(tl_interp_run(it) == 0, "interpreter: %s", tl_interp_error(it));
    const TlGNode *y = &G->nodes[G->outputs[0]];
    TlContractSpec cs;
    tl_contract_parse(y->spec, &cs, NULL, 0);
    const TlTensor *x[2] = {tl_interp_value(it, y->in[0]), tl_interp_value(it, y->in[1])}, *r = tl_interp_output(it, 0);
    char let[2 * TL_MAX_RANK];
    int64_t size[2 * TL_MAX_RANK], nk = 1, idx[2 * TL_MAX_RANK] = {0};
    int nl = 0;
    for (int t = 0; t < 2 && x[0] && x[1]; t++)
        for (int j = 0; j < cs.rank[t]; j++)
            if (!memchr(let, cs.in[t][j], (size_t)nl)) let[nl] = cs.in[t][j], size[nl++] = x[t]->dim[j];
    for (int l = 0; l < nl; l++)
        if (!memchr(cs.out, let[l], (size_t)cs.out_rank)) nk *= size[l];
    int64_t n = 0, ns[64] = {0};
    /* ~3 s per 10^7 emulated multiply-adds: anything larger than the cases is left to the GPU */
    double **all = r && (double)r->numel * (double)nk > 1e8 ? NULL : emulate(vals, ns, err, sizeof err);
    double *got = all ? all[0] : NULL;
    n = ns[0];
    if (r && (double)r->numel * (double)nk > 1e8) printf("    not emulated: %.2g multiply-adds\n", (double)r->numel * (double)nk);
    else EXPECTF(got != NULL, "%s", err);
    ncases += got != NULL;
    /* the path asked for is the one that ran */
    if (got) EXPECTF(emu_regs ? cp_total == 0 : cp_total > 0, "%ld cp.async copies", cp_total);
    if (got && r) {
        EXPECTF(r->numel == n, "%lld vs %lld outputs", (long long)n, (long long)r->numel);
        /* the f32-accumulation bound of test_gpu_diff, over S = sum a b, T = sum |a b| */
        double *S = calloc((size_t)n + 1, sizeof *S), *T = calloc((size_t)n + 1, sizeof *T);
        for (;;) {
            int64_t off[3] = {0, 0, 0};
            for (int t = 0; t < 3; t++) {
                int rank = t < 2 ? cs.rank[t] : cs.out_rank;
                const char *ax = t < 2 ? cs.in[t] : cs.out;
                for (int j = 0; j < rank; j++) {
                    int l = (int)((const char *)memchr(let, ax[j], (size_t)nl) - let);
                    off[t] = off[t] * size[l] + idx[l];
                }
            }
            double v = tl_tensor_get(x[0], off[0]) * tl_tensor_get(x[1], off[1]);
            if (off[2] < n) S[off[2]] += v, T[off[2]] += fabs(v);
            int l = nl - 1;
            while (l >= 0 && ++idx[l] == size[l]) idx[l--] = 0;
            if (l < 0) break;
        }
        double u = y->dtype == TL_BF16 ? ldexp(1, -8) : ldexp(1, -11), gamma = (double)nk * ldexp(1, -23);
        double tiny = y->dtype == TL_F16 ? ldexp(1, -25) : 0, worst = 0;
        int bad = 0;
        for (int64_t i = 0; i < n && i < r->numel; i++) {
            double gv = got[i], bv = tl_tensor_get(r, i);
            double tol = gamma * T[i] + 2.01 * u * (fabs(bv) + gamma * T[i]) + tiny;
            if (!(fabs(gv - bv) <= tol) && bad++ < 3)
                EXPECTF(0, "[%lld]: emulated %.9g, interpreter %.9g, exact %.9g: |diff| %.3g > bound %.3g", (long long)i, gv, bv, S[i],
                        fabs(gv - bv), tol);
            if (tol > 0 && fabs(gv - bv) / tol > worst) worst = fabs(gv - bv) / tol;
        }
        EXPECTF(bad == 0, "%d outputs outside the bound", bad);
        printf("    worst |emulated - interpreter| / bound = %.3f over %lld outputs (K = %lld)\n", worst, (long long)n, (long long)nk);
        free(S), free(T);
    }
    for (int o = 0; all && o < G->noutputs; o++) free(all[o]);
    free(all);
    for (int i = 0; i < G->nnodes; i++) free(vals[i]);
    free(vals);
    tl_interp_free(it);
    case_end();
}

/* gpu_parallel_cases: every kernel of the graph (flat with collapsed loops, warp, block,
 * inner-parallel) emulated; every output against the interpreter: exact cases bit for bit,
 * the others within 2e-5 of the output's largest magnitude (f32 storage; the interpreter
 * accumulates in f64, the kernels too, in another order). */
static void parallel_case_run(const char *name, int exact) {
    case_begin("emulated GPU: %s", name);
    char err[512] = "";
    TlInterp *it = tl_interp_new(G);
    for (int i = 0; i < NSYM; i++) tl_interp_bind(it, SYM[i], SYMV[i]);
    double **vals = calloc((size_t)G->nnodes, sizeof *vals);
    for (int i = 0; i < G->nnodes; i++) {
        const TlGNode *nd = &G->nodes[i];
        if (nd->op != TL_GOP_INPUT && nd->op != TL_GOP_PARAM) continue;
        int64_t cnt = numel_of(&nd->shape);
        vals[i] = malloc(sizeof(double) * (size_t)(cnt + 1));
        for (int64_t j = 0; j < cnt; j++) {
            double v = urand(RLO[i], RHI[i]);
            vals[i][j] = tl_dtype_is_float(nd->dtype) ? v : floor(v);
        }
        tl_interp_set(it, i, vals[i], cnt);
    }
    EXPECTF(tl_interp_run(it) == 0, "interpreter: %s", tl_interp_error(it));
    int64_t ns[64] = {0};
    double **got = emulate(vals, ns, err, sizeof err);
    EXPECTF(got != NULL, "%s", err);
    ncases += got != NULL;
    for (int o = 0; got && o < G->noutputs && o < 64; o++) {
        const TlTensor *r = tl_interp_output(it, o);
        EXPECTF(r && got[o] && r->numel == ns[o], "output %d: %lld values vs %lld", o, (long long)ns[o], r ? (long long)r->numel : -1LL);
        if (!r || !got[o] || r->numel != ns[o]) continue;
        double scale = 0, worst = 0;
        for (int64_t j = 0; j < r->numel; j++) scale = fmax(scale, fabs(tl_tensor_get(r, j)));
        int bad = 0;
        for (int64_t j = 0; j < r->numel; j++) {
            double gv = got[o][j], rv = tl_tensor_get(r, j), d = fabs(gv - rv);
            int ok = exact ? (gv == rv || (gv != gv && rv != rv)) : d <= 2e-5 * (scale > 1 ? scale : 1);
            if (!ok && bad++ < 3) EXPECTF(0, "output %d [%lld]: emulated %.9g, interpreter %.9g", o, (long long)j, gv, rv);
            worst = fmax(worst, d);
        }
        printf("    output %d: %lld values, max |emulated - interpreter| = %.3g (max |value| %.3g)\n", o, (long long)r->numel, worst, scale);
    }
    for (int o = 0; got && o < G->noutputs; o++) free(got[o]);
    free(got);
    for (int i = 0; i < G->nnodes; i++) free(vals[i]);
    free(vals);
    tl_interp_free(it);
    case_end();
}

int main(void) {
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    LLVMInitializeNativeAsmParser();
    tl_diag_set_output(stdout);
    stacks = malloc((size_t)NTHR * STACK);
    if (!stacks) return 1;
    const char *only = getenv("TL_EMU_ONLY"); /* "attn": only the attention cases (debugging) */
    int all = !only || strcmp(only, "attn") != 0;
    for (emu_regs = 0; emu_regs < 2 && all; emu_regs++) gpu_mma_cases();
    printf("# %d tensor-core GEMM cases emulated (both paths)\n", ncases);
    emu_regs = 0;
    ncases = 0;
    emu_parallel = 1;
    if (all) gpu_parallel_cases();
    emu_parallel = 0;
    printf("# %d cases of the parallel schedules emulated: %d flat, %d warp, %d block kernels run; %d with collapsed loops, "
           "%d inner-parallel\n", ncases, launched[TL_GPU_LAUNCH_FLAT], launched[TL_GPU_LAUNCH_WARP], launched[TL_GPU_LAUNCH_BLOCK],
           collapsed, inner);
    case_begin("the parallel cases ran every new schedule");
    EXPECTF(launched[TL_GPU_LAUNCH_ATTN] == 0, "%d attention kernels", launched[TL_GPU_LAUNCH_ATTN]);
    EXPECTF(!all || (launched[TL_GPU_LAUNCH_WARP] > 0 && launched[TL_GPU_LAUNCH_BLOCK] >= 6 && collapsed > 0 && inner > 0),
            "%d warp, %d block kernels, %d collapsed, %d inner-parallel", launched[TL_GPU_LAUNCH_WARP],
            launched[TL_GPU_LAUNCH_BLOCK], collapsed, inner);
    case_end();
    /* source schedules' gpu_blocks / gpu_threads / shared (tests/unit/schedule_cases.tl) */
    ncases = 0;
    emu_parallel = 1;
    gpu_source_schedule_cases();
    emu_parallel = 0;
    printf("# %d source-scheduled cases emulated: %d gpu_blocks kernels (%d staging rows in shared memory), %d gpu_threads-only\n",
           ncases, gpu_blocks_run, staged, gpu_threads_run);
    case_begin("the source-scheduled cases ran their launch shapes");
    EXPECTF(ncases == 6 && gpu_blocks_run == 5 && staged == 4 && gpu_threads_run == 1, "%d cases, %d gpu_blocks, %d staged, %d gpu_threads",
            ncases, gpu_blocks_run, staged, gpu_threads_run);
    case_end();
    /* fused attention (nvptx_attn.c), forward and backward, against the interpreter */
    ncases = 0;
    emu_parallel = 1;
    attention_cases();
    emu_parallel = 0;
    printf("# %d attention cases emulated: %d forward, %d backward fused kernels run\n", ncases, attn_fwd, attn_bwd);
    case_begin("the attention cases ran the fused kernels");
    EXPECTF(attn_fwd >= 13 && attn_bwd >= 13 && launched[TL_GPU_LAUNCH_ATTN] == attn_fwd + attn_bwd, "%d forward, %d backward", attn_fwd, attn_bwd);
    case_end();
    free(stacks);
    return check_done();
}
