/* nvptx_gemm.c — a matmul contraction (TlLGemm) as a classic tiled SGEMM kernel:
 *
 *   C[b, i, j] = sum_k A[b, i, k] * B[b, k, j]      (f32, accumulated in f32 with fma)
 *
 * Block (x, y, z) of the grid computes the BM x BN tile of C at rows y*BM, columns x*BN of
 * batch z, with TL_GPU_BLOCK = 256 threads; thread (ty, tx) = (tid / 16, tid % 16) owns the
 * TM x TN = 8 x 8 outputs of the tile (64 accumulators in
 * registers): rows ty*4 + {0..3} and 64 + ty*4 + {0..3}, columns likewise with tx, so the
 * 128-bit shared loads of a quarter warp hit 32 distinct banks. The k dimension goes BK = 8
 * at a time through shared memory:
 *
 *   regs <- A[tile rows, 0..8), B[0..8, tile cols)    (4 + 4 loads per thread)
 *   stage 0 <- regs; barrier
 *   for k0: regs <- the next slice (in flight while computing);
 *           for kk < 8: a[8] = As[cur][kk][ty*4.., 64+ty*4..], b[8] likewise (ld.shared.v4)
 *                       acc[i][j] = fma(a[i], b[j], acc[i][j]);
 *           stage 1-cur <- regs; barrier              (double-buffered: one barrier a slice)
 *   C[...] = acc, or epilogue(acc) for a fused gemm group (TlLGemm.epi) (bounds-checked)
 *
 * As is stored k-major (As[kk][m]) so the a[] of a thread is contiguous. Edges are handled by
 * loading 0 outside [0, M) x [0, K) and [0, K) x [0, N) (through a clamped address, so no
 * out-of-bounds load is ever issued) and by bounds-checked stores. Global loads are
 * coalesced along whichever of A's (m, k) strides is the constant 1 (and B's (k, n)).
 * Shared memory: 2 stages * 2 * 8 * 128 * 4 = 16 KiB. Accumulation is f32, the usual GPU SGEMM contract
 * (the loop nest's reference accumulates in f64; docs/nvptx.md). */
#include <stdio.h>
#include <string.h>

#include "nvptx_internal.h"

enum { NT = TL_GPU_BLOCK, BM = TL_GEMM_BM, BN = TL_GEMM_BN, BK = TL_GEMM_BK, TM = TL_GEMM_TM, TN = TL_GEMM_TN };
enum { A_LOADS = BM * BK / NT, B_LOADS = BK * BN / NT };
_Static_assert(BM == BN, "the two shared stages are BK * BM apart in both tiles");

static LLVMValueRef i64c(NvCg *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }

static LLVMValueRef shared_tile(NvCg *c, const char *name, int n) {
    LLVMValueRef g = LLVMGetNamedGlobal(c->mod, name);
    if (g) return g;
    LLVMTypeRef t = LLVMArrayType2(c->f32, (uint64_t)n);
    g = LLVMAddGlobalInAddressSpace(c->mod, t, name, 3);
    LLVMSetInitializer(g, LLVMGetUndef(t));
    LLVMSetLinkage(g, LLVMInternalLinkage);
    LLVMSetAlignment(g, 16);
    return g;
}

static int is_one(const TlLProgram *p, int e) { return p->ex[e].kind == TL_LE_INT && p->ex[e].ival == 1; }

/* v = ok ? p[off] : 0, where p[off] is only dereferenced when ok (else base[0], which every
 * buffer has: allocations are never empty). */
static LLVMValueRef guarded_load(NvCg *c, LLVMValueRef base, LLVMValueRef p, LLVMValueRef off, LLVMValueRef ok) {
    LLVMBuilderRef B = c->b;
    LLVMValueRef at = LLVMBuildSelect(B, ok, LLVMBuildInBoundsGEP2(B, c->f32, p, &off, 1, ""), base, "");
    LLVMValueRef v = LLVMBuildLoad2(B, c->f32, at, "");
    return LLVMBuildSelect(B, ok, v, LLVMConstReal(c->f32, 0), "");
}

static LLVMValueRef shared_ptr(NvCg *c, LLVMValueRef tile, LLVMValueRef idx) {
    return LLVMBuildInBoundsGEP2(c->b, c->f32, tile, &idx, 1, "");
}

static void barrier(NvCg *c) { tl_nvptx_intrinsic(c, "llvm.nvvm.barrier0", NULL, 0, NULL, 0); }

/* A fused epilogue (TlLGemm.epi) on the sum v of element (b, i, j): the expression with its
 * loop variables bound to the element and its accumulator local to v. */
static LLVMValueRef epilogue(NvCg *c, const TlLGemm *g, LLVMValueRef v, LLVMValueRef b, LLVMValueRef i, LLVMValueRef j) {
    int vars[3] = {g->ev_b, g->ev_i, g->ev_j};
    LLVMValueRef vals[3] = {b, i, j};
    for (int q = 0; q < 3; q++) {
        if (!c->varv[vars[q]]) c->varv[vars[q]] = tl_nvptx_entry_alloca(c, c->i64);
        LLVMBuildStore(c->b, vals[q], c->varv[vars[q]]);
    }
    int f64 = c->k->local_type[g->epi_acc] == TL_LT_F64;
    LLVMBuildStore(c->b, f64 ? LLVMBuildFPExt(c->b, v, c->f64, "") : v, c->localv[g->epi_acc]);
    return tl_nvptx_gen(c, g->epi);
}

void tl_nvptx_gen_gemm(NvCg *c, const TlLGemm *g) {
    LLVMBuilderRef B = c->b;
    const TlLProgram *p = c->p;
    LLVMValueRef M = tl_nvptx_gen(c, g->m), N = tl_nvptx_gen(c, g->n), K = tl_nvptx_gen(c, g->k);
    LLVMValueRef sam = tl_nvptx_gen(c, g->sa_m), sak = tl_nvptx_gen(c, g->sa_k);
    LLVMValueRef sbk = tl_nvptx_gen(c, g->sb_k), sbn = tl_nvptx_gen(c, g->sb_n), scm = tl_nvptx_gen(c, g->sc_m);
    LLVMValueRef tid = tl_nvptx_sreg(c, "tid.x");
    LLVMValueRef tx = LLVMBuildAnd(B, tid, i64c(c, BN / TN - 1), ""), ty = LLVMBuildLShr(B, tid, i64c(c, 4), "");
    LLVMValueRef bn0 = LLVMBuildMul(B, tl_nvptx_sreg(c, "ctaid.x"), i64c(c, BN), "");
    LLVMValueRef bm0 = LLVMBuildMul(B, tl_nvptx_sreg(c, "ctaid.y"), i64c(c, BM), "");
    LLVMValueRef bz = tl_nvptx_sreg(c, "ctaid.z");
    LLVMValueRef offa = LLVMBuildMul(B, bz, tl_nvptx_gen(c, g->sa_b), "");
    LLVMValueRef offb = LLVMBuildMul(B, bz, tl_nvptx_gen(c, g->sb_b), "");
    LLVMValueRef offc = LLVMBuildMul(B, bz, tl_nvptx_gen(c, g->sc_b), "");
    LLVMValueRef A0 = LLVMBuildInBoundsGEP2(B, c->f32, c->bufv[g->a], &offa, 1, "");
    LLVMValueRef B0 = LLVMBuildInBoundsGEP2(B, c->f32, c->bufv[g->b], &offb, 1, "");
    LLVMValueRef C0 = LLVMBuildInBoundsGEP2(B, c->f32, c->bufv[g->c], &offc, 1, "");
    LLVMValueRef As = shared_tile(c, "tl.gemm.As", 2 * BK * BM), Bs = shared_tile(c, "tl.gemm.Bs", 2 * BK * BN);
    int a_mcontig = is_one(p, g->sa_m) && !is_one(p, g->sa_k); /* A^T views: walk m fastest */
    int b_kcontig = is_one(p, g->sb_k) && !is_one(p, g->sb_n);

    /* per-thread load coordinates (tile-relative), fixed over the k loop */
    LLVMValueRef arow[A_LOADS], akk[A_LOADS], bkk[B_LOADS], bcol[B_LOADS];
    for (int r = 0; r < A_LOADS; r++) {
        LLVMValueRef e = LLVMBuildAdd(B, tid, i64c(c, NT * r), "");
        arow[r] = a_mcontig ? LLVMBuildAnd(B, e, i64c(c, BM - 1), "") : LLVMBuildLShr(B, e, i64c(c, 3), "");
        akk[r] = a_mcontig ? LLVMBuildLShr(B, e, i64c(c, 7), "") : LLVMBuildAnd(B, e, i64c(c, BK - 1), "");
    }
    for (int r = 0; r < B_LOADS; r++) {
        LLVMValueRef e = LLVMBuildAdd(B, tid, i64c(c, NT * r), "");
        bkk[r] = b_kcontig ? LLVMBuildAnd(B, e, i64c(c, BK - 1), "") : LLVMBuildLShr(B, e, i64c(c, 7), "");
        bcol[r] = b_kcontig ? LLVMBuildLShr(B, e, i64c(c, 3), "") : LLVMBuildAnd(B, e, i64c(c, BN - 1), "");
    }
    LLVMValueRef areg[A_LOADS], breg[B_LOADS], acc[TM * TN];
    for (int r = 0; r < A_LOADS; r++) areg[r] = tl_nvptx_entry_alloca(c, c->f32);
    for (int r = 0; r < B_LOADS; r++) breg[r] = tl_nvptx_entry_alloca(c, c->f32);
    for (int i = 0; i < TM * TN; i++) {
        acc[i] = tl_nvptx_entry_alloca(c, c->f32);
        LLVMBuildStore(B, LLVMConstReal(c->f32, 0), acc[i]);
    }
    /* loop-invariant per load: its address at k = 0 and whether its row (column) is in C */
    LLVMValueRef pa[A_LOADS], aok[A_LOADS], pb[B_LOADS], bok[B_LOADS];
    for (int r = 0; r < A_LOADS; r++) {
        LLVMValueRef gm = LLVMBuildAdd(B, bm0, arow[r], "");
        LLVMValueRef off = LLVMBuildAdd(B, LLVMBuildMul(B, gm, sam, ""), LLVMBuildMul(B, akk[r], sak, ""), "");
        pa[r] = LLVMBuildGEP2(B, c->f32, A0, &off, 1, "");
        aok[r] = LLVMBuildICmp(B, LLVMIntSLT, gm, M, "");
    }
    for (int r = 0; r < B_LOADS; r++) {
        LLVMValueRef gn = LLVMBuildAdd(B, bn0, bcol[r], "");
        LLVMValueRef off = LLVMBuildAdd(B, LLVMBuildMul(B, bkk[r], sbk, ""), LLVMBuildMul(B, gn, sbn, ""), "");
        pb[r] = LLVMBuildGEP2(B, c->f32, B0, &off, 1, "");
        bok[r] = LLVMBuildICmp(B, LLVMIntSLT, gn, N, "");
    }
#define LOAD_SLICE(k0)                                                                                          \
    do {                                                                                                        \
        LLVMValueRef ka = LLVMBuildMul(B, (k0), sak, ""), kb = LLVMBuildMul(B, (k0), sbk, "");                  \
        for (int r = 0; r < A_LOADS; r++) {                                                                     \
            LLVMValueRef kin = LLVMBuildICmp(B, LLVMIntSLT, LLVMBuildAdd(B, (k0), akk[r], ""), K, "");          \
            LLVMBuildStore(B, guarded_load(c, A0, pa[r], ka, LLVMBuildAnd(B, aok[r], kin, "")), areg[r]);       \
        }                                                                                                       \
        for (int r = 0; r < B_LOADS; r++) {                                                                     \
            LLVMValueRef kin = LLVMBuildICmp(B, LLVMIntSLT, LLVMBuildAdd(B, (k0), bkk[r], ""), K, "");          \
            LLVMBuildStore(B, guarded_load(c, B0, pb[r], kb, LLVMBuildAnd(B, bok[r], kin, "")), breg[r]);       \
        }                                                                                                       \
    } while (0)
    LOAD_SLICE(i64c(c, 0));
    LLVMValueRef am = LLVMBuildMul(B, ty, i64c(c, 4), ""), bn = LLVMBuildMul(B, tx, i64c(c, 4), "");

#define STORE_SLICE(base)                                                                                       \
    do {                                                                                                        \
        for (int r = 0; r < A_LOADS; r++) {                                                                     \
            LLVMValueRef i = LLVMBuildAdd(B, LLVMBuildMul(B, akk[r], i64c(c, BM), ""), arow[r], "");            \
            LLVMBuildStore(B, LLVMBuildLoad2(B, c->f32, areg[r], ""), shared_ptr(c, As, LLVMBuildAdd(B, i, (base), ""))); \
        }                                                                                                       \
        for (int r = 0; r < B_LOADS; r++) {                                                                     \
            LLVMValueRef i = LLVMBuildAdd(B, LLVMBuildMul(B, bkk[r], i64c(c, BN), ""), bcol[r], "");            \
            LLVMBuildStore(B, LLVMBuildLoad2(B, c->f32, breg[r], ""), shared_ptr(c, Bs, LLVMBuildAdd(B, i, (base), ""))); \
        }                                                                                                       \
    } while (0)
    STORE_SLICE(i64c(c, 0));
    barrier(c);

    /* for (k0 = 0; k0 < K; k0 += BK): compute from stage cur while the next slice goes to
     * the other stage (one barrier per slice) */
    LLVMValueRef kslot = tl_nvptx_entry_alloca(c, c->i64);
    LLVMBuildStore(B, i64c(c, 0), kslot);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "gemm.k");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "gemm.body");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "gemm.store");
    LLVMBuildBr(B, head);
    LLVMPositionBuilderAtEnd(B, head);
    LLVMValueRef k0 = LLVMBuildLoad2(B, c->i64, kslot, "");
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, k0, K, ""), body, exit);
    LLVMPositionBuilderAtEnd(B, body);
    LLVMValueRef cur = LLVMBuildMul(B, LLVMBuildAnd(B, LLVMBuildUDiv(B, k0, i64c(c, BK), ""), i64c(c, 1), ""), i64c(c, BK * BM), "");
    LLVMValueRef nxt = LLVMBuildSub(B, i64c(c, BK * BM), cur, "");
    LLVMValueRef k1 = LLVMBuildAdd(B, k0, i64c(c, BK), "");
    LOAD_SLICE(k1);
    LLVMValueRef amc = LLVMBuildAdd(B, am, cur, ""), bnc = LLVMBuildAdd(B, bn, cur, "");
    LLVMTypeRef v4 = LLVMVectorType(c->f32, 4);
    for (int kk = 0; kk < BK; kk++) {
        LLVMValueRef a[TM], b[TN];
        for (int h = 0; h < TM / 4; h++) {
            LLVMValueRef i = LLVMBuildAdd(B, amc, i64c(c, kk * BM + h * (BM / 2)), "");
            LLVMValueRef v = LLVMBuildLoad2(B, v4, shared_ptr(c, As, i), "");
            LLVMSetAlignment(v, 16);
            for (int q = 0; q < 4; q++) a[4 * h + q] = LLVMBuildExtractElement(B, v, LLVMConstInt(c->i32, (unsigned)q, 0), "");
        }
        for (int h = 0; h < TN / 4; h++) {
            LLVMValueRef i = LLVMBuildAdd(B, bnc, i64c(c, kk * BN + h * (BN / 2)), "");
            LLVMValueRef v = LLVMBuildLoad2(B, v4, shared_ptr(c, Bs, i), "");
            LLVMSetAlignment(v, 16);
            for (int q = 0; q < 4; q++) b[4 * h + q] = LLVMBuildExtractElement(B, v, LLVMConstInt(c->i32, (unsigned)q, 0), "");
        }
        LLVMTypeRef ft = c->f32;
        for (int i = 0; i < TM; i++)
            for (int j = 0; j < TN; j++) {
                LLVMValueRef args[3] = {a[i], b[j], LLVMBuildLoad2(B, c->f32, acc[i * TN + j], "")};
                LLVMBuildStore(B, tl_nvptx_intrinsic(c, "llvm.fma", &ft, 1, args, 3), acc[i * TN + j]);
            }
    }
    STORE_SLICE(nxt);
    barrier(c);
    LLVMBuildStore(B, k1, kslot);
    LLVMBuildBr(B, head);
#undef LOAD_SLICE
#undef STORE_SLICE

    /* C[gm, gn] = acc where in bounds */
    LLVMPositionBuilderAtEnd(B, exit);
    for (int i = 0; i < TM; i++) {
        LLVMValueRef row = LLVMBuildAdd(B, bm0, LLVMBuildAdd(B, am, i64c(c, (i & 3) + (i >> 2) * (BM / 2)), ""), "");
        LLVMValueRef rok = LLVMBuildICmp(B, LLVMIntSLT, row, M, "");
        LLVMValueRef rowoff = LLVMBuildMul(B, row, scm, "");
        for (int j = 0; j < TN; j++) {
            LLVMValueRef col = LLVMBuildAdd(B, bn0, LLVMBuildAdd(B, bn, i64c(c, (j & 3) + (j >> 2) * (BN / 2)), ""), "");
            LLVMValueRef ok = LLVMBuildAnd(B, rok, LLVMBuildICmp(B, LLVMIntSLT, col, N, ""), "");
            LLVMBasicBlockRef st = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "gemm.st");
            LLVMBasicBlockRef nx = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "gemm.next");
            LLVMBuildCondBr(B, ok, st, nx);
            LLVMPositionBuilderAtEnd(B, st);
            LLVMValueRef idx = LLVMBuildAdd(B, rowoff, col, "");
            LLVMValueRef v = LLVMBuildLoad2(B, c->f32, acc[i * TN + j], "");
            if (g->has_epi) v = epilogue(c, g, v, bz, row, col);
            LLVMBuildStore(B, v, LLVMBuildInBoundsGEP2(B, c->f32, C0, &idx, 1, ""));
            LLVMBuildBr(B, nx);
            LLVMPositionBuilderAtEnd(B, nx);
        }
    }
}
