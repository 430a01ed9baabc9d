/* gemm.c — a matmul contraction (TlLKernel.gemm) as LLVM IR: packing, cache blocking and a
 * register-blocked AVX-512 microkernel, all emitted through the C API with LLVM vector
 * types (docs/performance.md).
 *
 *   C[b, i, j] = sum_k A[b, i, k] * B[b, k, j]        (f32, C's j stride 1)
 *
 * The kernel runs items [begin, end) of batch x NS x ceil(M / MR): row panels of each of
 * NS column strips (TlLGemm.nsplit; strips are whole NR panels) of each batch, a 2-D grid
 * of C tiles. The thread pool gives each thread one contiguous range of them, and a
 * thread packs A for its rows and B for its strip only:
 *
 *   for each batch b, strip [n0, n1) and row range [r0, r1) of the items:
 *     for ic in [r0, r1) step MC:                    rows per pass over B
 *       for jc in [n0, n1) step NC:
 *         for pc in [0, K) step kc (K split in equal blocks of at most KC):
 *           pack B[pc:pc+KC, jc:jc+NC] -> pb        KC x NR micro-panels, zero-padded (L2)
 *           for ir in [ic, ic+MC) step MR:
 *             pack A[ir:ir+MR, pc:pc+KC] -> pa      k-major MR x KC, zero-padded (L1)
 *             for jr in [0, NC) step NR:
 *               ukr: C[ir.., jc+jr..] = (pc == 0 ? 0 : C) + pa * pb[jr]
 *               after the last k block: C[ir.., jc+jr..] = epilogue(C) (a fused bias,
 *               activation, residual: TlLGemm.epi, emitted by the caller)
 *
 * The microkernel keeps an MR x NR block of C in MR * NR/16 zmm accumulators, and per k
 * step loads NR/16 vectors of B, broadcasts MR floats of A and issues MR * NR/16 FMAs
 * (llvm.fma on <16 x float>, always fused). Its k loop is unrolled by `ku`, and B is
 * prefetched `prefetch` steps ahead. Partial tiles (M or N not a multiple of MR or NR)
 * run the same code: padded operands are zero and C is read and written with masks.
 *
 * Every element of C is a sum of KC-blocks in k order, each block one fused multiply-add
 * chain from 0 over its k in order, added to C after the block (reading C at the end, not
 * at the start, keeps a cache miss on C off the FMA chains). The blocks depend on the
 * schedule only, never on the thread count or the grid: results are bitwise the same for
 * any number of threads. */
#include <stdio.h>
#include <string.h>

#include "cpu_internal.h"

typedef struct G {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    LLVMBasicBlockRef entry;
    const TlCpuTarget *t;
    const TlLGemm *s;
    int nv;                       /* vectors per row of the register block: nr / 16 */
    LLVMTypeRef i1, i32, i64, f32, ptr, voidt, vf, vi1, vi32;
} G;

#include "gemm_ir.h" /* the IR builders shared with the other GEMM generator */

int tl_cpu_gemm_supported(const TlCpuTarget *t, const TlLGemm *g) {
    if (!g->on || g->dtype != TL_F32 || !t->gemm || !t->features || !strstr(t->features, "+avx512f")) return 0;
    return g->mr >= 1 && g->mr <= 16 && g->nr >= 16 && g->nr <= 64 && g->nr % 16 == 0 &&
           g->mr * (g->nr / 16) <= 28 && g->kc >= 1 && g->nc >= g->nr && g->nc % g->nr == 0 &&
           g->mc >= g->mr && g->ku >= 1 && g->ku <= 16 && g->prefetch >= 0 && g->nsplit >= 0 && g->nsplit <= 64;
}

/* ---- small builders of this generator (the shared ones: gemm_ir.h) ---- */

static LLVMValueRef fma16(G *g, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
    LLVMValueRef args[3] = {a, b, c};
    return intrinsic(g, "llvm.fma", &g->vf, 1, args, 3);
}

static LLVMValueRef masked_load(G *g, LLVMValueRef p, LLVMValueRef mask) {
    LLVMTypeRef ov[2] = {g->vf, g->ptr};
    LLVMValueRef args[4] = {p, c32(g, 4), mask, LLVMConstNull(g->vf)};
    return intrinsic(g, "llvm.masked.load", ov, 2, args, 4);
}

static void masked_store(G *g, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask) {
    LLVMTypeRef ov[2] = {g->vf, g->ptr};
    LLVMValueRef args[4] = {v, p, c32(g, 4), mask};
    intrinsic(g, "llvm.masked.store", ov, 2, args, 4);
}

static LLVMValueRef load_vec(G *g, LLVMValueRef p, unsigned align) {
    LLVMValueRef v = LLVMBuildLoad2(g->b, g->vf, p, "");
    LLVMSetAlignment(v, align);
    return v;
}

static LLVMValueRef splat(G *g, LLVMValueRef x) {
    LLVMValueRef v = LLVMBuildInsertElement(g->b, LLVMGetPoison(g->vf), x, c32(g, 0), "");
    return LLVMBuildShuffleVector(g->b, v, LLVMGetPoison(g->vf), LLVMConstNull(g->vi32), "");
}

/* The microkernel's epilogue: C[r, 16h..] = acc (first) or C + acc, for rows r < mr and
 * the columns in cmask (a full tile: every row and column, plain vector accesses). */
static void store_tile(G *g, LLVMValueRef acc[16][4], LLVMValueRef *crow, LLVMValueRef *cmask, LLVMValueRef mr,
                       LLVMValueRef first, int full_tile) {
    If ff;
    if_open(g, &ff, first);
    for (int add_c = 0; add_c < 2; add_c++) {
        if (add_c) if_else(g, &ff);
        for (int r = 0; r < g->s->mr; r++) {
            LLVMValueRef rowok = LLVMBuildICmp(g->b, LLVMIntSLT, ci(g, r), mr, "");
            for (int h = 0; h < g->nv; h++) {
                LLVMValueRef p = fptr(g, crow[r], ci(g, 16 * h));
                LLVMValueRef v = LLVMBuildLoad2(g->b, g->vf, acc[r][h], "");
                LLVMValueRef m = full_tile ? NULL : LLVMBuildSelect(g->b, rowok, cmask[h], LLVMConstNull(g->vi1), "");
                if (add_c) v = LLVMBuildFAdd(g->b, full_tile ? load_vec(g, p, 4) : masked_load(g, p, m), v, "");
                if (full_tile) store_vec(g, v, p, 4);
                else masked_store(g, v, p, m);
            }
        }
    }
    if_close(g, &ff);
}

/* ---- the microkernel ----
 * ukr(pa, pb, c, ldc, kc, mr, nr, first): C[0:mr, 0:nr] = (first ? 0 : C) + pa^T pb over kc
 * steps; pa is k-major MR floats per step, pb NR floats per step. */
static LLVMValueRef gen_ukr(G *g, const char *name) {
    const TlLGemm *s = g->s;
    int MR = s->mr, NV = g->nv, NR = s->nr;
    LLVMTypeRef at[8] = {g->ptr, g->ptr, g->ptr, g->i64, g->i64, g->i64, g->i64, g->i1};
    char fname[128];
    snprintf(fname, sizeof fname, "%s.ukr", name);
    LLVMValueRef fn = LLVMAddFunction(g->mod, fname, LLVMFunctionType(g->voidt, at, 8, 0));
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    attrs(g, fn);
    for (unsigned i = 1; i <= 3; i++)
        LLVMAddAttributeAtIndex(fn, i, LLVMCreateEnumAttribute(g->ctx, LLVMGetEnumAttributeKindForName("noalias", 7), 0));
    LLVMValueRef saved_fn = g->fn;
    LLVMBasicBlockRef saved_entry = g->entry, saved_bb = LLVMGetInsertBlock(g->b);
    g->fn = fn;
    g->entry = block(g, "entry");
    LLVMPositionBuilderAtEnd(g->b, g->entry);
    LLVMValueRef pa = LLVMGetParam(fn, 0), pb = LLVMGetParam(fn, 1), c = LLVMGetParam(fn, 2);
    LLVMValueRef ldc = LLVMGetParam(fn, 3), kc = LLVMGetParam(fn, 4), mr = LLVMGetParam(fn, 5);
    LLVMValueRef nr = LLVMGetParam(fn, 6), first = LLVMGetParam(fn, 7);
    LLVMValueRef acc[16][4], cmask[4], crow[16];
    LLVMValueRef full = ukr_block(g, acc, crow, cmask, c, ldc, mr, nr);
    /* k loop: unrolled by ku, then one step at a time */
    LLVMValueRef ks = entry_alloca(g, g->i64, NULL, 8);
    LLVMBuildStore(g->b, ci(g, 0), ks);
    for (int pass = 0; pass < 2; pass++) {
        int u = pass == 0 ? s->ku : 1;
        if (pass == 0 && u == 1) continue;
        LLVMBasicBlockRef head = block(g, "k.loop"), body = block(g, "k.body"), exit = block(g, "k.done");
        LLVMBuildBr(g->b, head);
        LLVMPositionBuilderAtEnd(g->b, head);
        LLVMValueRef k = LLVMBuildLoad2(g->b, g->i64, ks, "");
        LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLE, add(g, k, ci(g, u)), kc, ""), body, exit);
        LLVMPositionBuilderAtEnd(g->b, body);
        LLVMValueRef a[16][4];
        for (int r = 0; r < MR; r++)
            for (int h = 0; h < NV; h++) a[r][h] = LLVMBuildLoad2(g->b, g->vf, acc[r][h], "");
        for (int q = 0; q < u; q++) {
            LLVMValueRef kk = add(g, k, ci(g, q));
            LLVMValueRef pbk = fptr(g, pb, mul(g, kk, ci(g, NR)));
            LLVMValueRef pak = fptr(g, pa, mul(g, kk, ci(g, MR)));
            if (s->prefetch > 0)
                for (int h = 0; h < NR / 16; h++) prefetch(g, fptr(g, pbk, ci(g, (int64_t)s->prefetch * NR + 16 * h)));
            LLVMValueRef bv[4];
            for (int h = 0; h < NV; h++) bv[h] = load_vec(g, fptr(g, pbk, ci(g, 16 * h)), 64);
            for (int r = 0; r < MR; r++) {
                LLVMValueRef x = LLVMBuildLoad2(g->b, g->f32, fptr(g, pak, ci(g, r)), "");
                LLVMValueRef xv = splat(g, x);
                for (int h = 0; h < NV; h++) a[r][h] = fma16(g, xv, bv[h], a[r][h]);
            }
        }
        for (int r = 0; r < MR; r++)
            for (int h = 0; h < NV; h++) LLVMBuildStore(g->b, a[r][h], acc[r][h]);
        LLVMBuildStore(g->b, add(g, k, ci(g, u)), ks);
        LLVMBuildBr(g->b, head);
        LLVMPositionBuilderAtEnd(g->b, exit);
    }

    /* C = acc (first k block) or C + acc: plain vectors for a full tile, masks otherwise */
    If fb;
    if_open(g, &fb, full);
    store_tile(g, acc, crow, cmask, mr, first, 1);
    if_else(g, &fb);
    store_tile(g, acc, crow, cmask, mr, first, 0);
    if_close(g, &fb);
    LLVMBuildRetVoid(g->b);

    g->fn = saved_fn, g->entry = saved_entry;
    LLVMPositionBuilderAtEnd(g->b, saved_bb);
    return fn;
}

/* ---- packing ---- */

/* dst[k * ld + r] = src[r * rs + k] for r < 16 (rows r >= nrows are 0) and k in [0, kc),
 * 16 x 16 blocks through transpose16. Each block writes 16 rows of dst: up to 15 rows
 * past kc get junk, which the caller's layout overwrites later or keeps as slack. */
static void transpose_copy(G *g, LLVMValueRef dst, int ld, LLVMValueRef src, LLVMValueRef rs, LLVMValueRef nrows, LLVMValueRef kc) {
    Loop lk;
    LLVMValueRef k0 = loop_open(g, &lk, ci(g, 0), kc, ci(g, 16));
    LLVMValueRef km = lane_mask(g, 0, LLVMBuildSub(g->b, kc, k0, ""));
    LLVMValueRef rows[16];
    for (int r = 0; r < 16; r++) {
        LLVMValueRef ok = LLVMBuildICmp(g->b, LLVMIntSLT, ci(g, r), nrows, "");
        LLVMValueRef m = LLVMBuildSelect(g->b, ok, km, LLVMConstNull(g->vi1), "");
        rows[r] = masked_load(g, fptr(g, src, add(g, mul(g, ci(g, r), rs), k0)), m);
    }
    transpose16(g, rows);
    LLVMValueRef d = fptr(g, dst, mul(g, k0, ci(g, ld)));
    for (int k = 0; k < 16; k++) store_vec(g, rows[k], fptr(g, d, ci(g, (int64_t)k * ld)), 4);
    loop_close(g, &lk);
}

/* pb[jp][k][0:NR] = B[pc+k, jc + jp*NR + 0:NR] for k < kc, jp*NR + j < nc; 0 elsewhere. */
static void pack_b(G *g, LLVMValueRef pb, LLVMValueRef B, LLVMValueRef sbk, LLVMValueRef sbn,
                   LLVMValueRef pc, LLVMValueRef jc, LLVMValueRef kc, LLVMValueRef nc) {
    int NR = g->s->nr;
    LLVMValueRef src = fptr(g, B, add(g, mul(g, pc, sbk), mul(g, jc, sbn)));
    If f;
    if_open(g, &f, LLVMBuildICmp(g->b, LLVMIntEQ, sbn, ci(g, 1), ""));
    { /* rows of B contiguous: masked vector copies */
        Loop lj, lk;
        LLVMValueRef j0 = loop_open(g, &lj, ci(g, 0), nc, ci(g, NR));
        LLVMValueRef cols = LLVMBuildSub(g->b, nc, j0, "");
        LLVMValueRef m[4];
        for (int h = 0; h < g->nv; h++) m[h] = lane_mask(g, 16 * h, cols);
        LLVMValueRef dst = fptr(g, pb, mul(g, j0, kc));
        LLVMValueRef s0 = fptr(g, src, j0);
        LLVMValueRef k = loop_open(g, &lk, ci(g, 0), kc, ci(g, 1));
        LLVMValueRef sk = fptr(g, s0, mul(g, k, sbk)), dk = fptr(g, dst, mul(g, k, ci(g, NR)));
        for (int h = 0; h < g->nv; h++) store_vec(g, masked_load(g, fptr(g, sk, ci(g, 16 * h)), m[h]), fptr(g, dk, ci(g, 16 * h)), 64);
        loop_close(g, &lk);
        loop_close(g, &lj);
    }
    if_else(g, &f);
    If f2;
    if_open(g, &f2, LLVMBuildICmp(g->b, LLVMIntEQ, sbk, ci(g, 1), ""));
    { /* columns of B contiguous (B transposed): 16 x 16 transposes per half panel */
        Loop lj;
        LLVMValueRef j0 = loop_open(g, &lj, ci(g, 0), nc, ci(g, 16));
        LLVMValueRef jp = LLVMBuildSDiv(g->b, j0, ci(g, NR), ""), jj = LLVMBuildSRem(g->b, j0, ci(g, NR), "");
        LLVMValueRef dst = fptr(g, pb, add(g, mul(g, jp, mul(g, kc, ci(g, NR))), jj));
        transpose_copy(g, dst, NR, fptr(g, src, mul(g, j0, sbn)), sbn, LLVMBuildSub(g->b, nc, j0, ""), kc);
        loop_close(g, &lj);
        /* a last half panel of zeros when nc ends in the first half of a panel */
        LLVMValueRef ncp = mul(g, LLVMBuildSDiv(g->b, add(g, nc, ci(g, NR - 1)), ci(g, NR), ""), ci(g, NR));
        LLVMValueRef j1 = loop_open(g, &lj, mul(g, LLVMBuildSDiv(g->b, add(g, nc, ci(g, 15)), ci(g, 16), ""), ci(g, 16)), ncp, ci(g, 16));
        LLVMValueRef jp1 = LLVMBuildSDiv(g->b, j1, ci(g, NR), ""), jj1 = LLVMBuildSRem(g->b, j1, ci(g, NR), "");
        LLVMValueRef d1 = fptr(g, pb, add(g, mul(g, jp1, mul(g, kc, ci(g, NR))), jj1));
        Loop lk;
        LLVMValueRef k = loop_open(g, &lk, ci(g, 0), kc, ci(g, 1));
        store_vec(g, LLVMConstNull(g->vf), fptr(g, d1, mul(g, k, ci(g, NR))), 4);
        loop_close(g, &lk);
        loop_close(g, &lj);
    }
    if_else(g, &f2);
    { /* strided columns: element by element, k innermost; padding 0 */
        Loop lj, lk;
        LLVMValueRef ncp = mul(g, LLVMBuildSDiv(g->b, add(g, nc, ci(g, NR - 1)), ci(g, NR), ""), ci(g, NR));
        for (int pad = 0; pad < 2; pad++) {
            LLVMValueRef j = loop_open(g, &lj, pad ? nc : ci(g, 0), pad ? ncp : nc, ci(g, 1));
            LLVMValueRef jp = LLVMBuildSDiv(g->b, j, ci(g, NR), ""), jj = LLVMBuildSRem(g->b, j, ci(g, NR), "");
            LLVMValueRef dst = fptr(g, pb, add(g, mul(g, jp, mul(g, kc, ci(g, NR))), jj));
            LLVMValueRef sj = fptr(g, src, mul(g, j, sbn));
            LLVMValueRef k = loop_open(g, &lk, ci(g, 0), kc, ci(g, 1));
            LLVMValueRef x = pad ? LLVMConstReal(g->f32, 0) : LLVMBuildLoad2(g->b, g->f32, fptr(g, sj, mul(g, k, sbk)), "");
            LLVMBuildStore(g->b, x, fptr(g, dst, mul(g, k, ci(g, NR))));
            loop_close(g, &lk);
            loop_close(g, &lj);
        }
    }
    if_close(g, &f2);
    if_close(g, &f);
}

/* pa[k][0:MR] = A[ir + 0:MR, pc + k] for rows < mr; 0 for the padding rows. */
static void pack_a(G *g, LLVMValueRef pa, LLVMValueRef A, LLVMValueRef sam, LLVMValueRef sak,
                   LLVMValueRef ir, LLVMValueRef pc, LLVMValueRef kc, LLVMValueRef mr) {
    int MR = g->s->mr;
    LLVMValueRef src = fptr(g, A, add(g, mul(g, ir, sam), mul(g, pc, sak)));
    If f;
    if_open(g, &f, LLVMBuildICmp(g->b, LLVMIntEQ, sam, ci(g, 1), ""));
    { /* columns of A contiguous: one masked vector per k (pa has 16 floats of slack) */
        Loop lk;
        LLVMValueRef m = lane_mask(g, 0, mr);
        LLVMValueRef k = loop_open(g, &lk, ci(g, 0), kc, ci(g, 1));
        store_vec(g, masked_load(g, fptr(g, src, mul(g, k, sak)), m), fptr(g, pa, mul(g, k, ci(g, MR))), 4);
        loop_close(g, &lk);
    }
    if_else(g, &f);
    If f2;
    if_open(g, &f2, LLVMBuildICmp(g->b, LLVMIntEQ, sak, ci(g, 1), ""));
    /* rows of A contiguous (row-major A): 16 x 16 transposes, rows >= mr zero */
    transpose_copy(g, pa, MR, src, sam, mr, kc);
    if_else(g, &f2);
    { /* general strides: element by element, k innermost */
        Loop lr, lk;
        LLVMValueRef r = loop_open(g, &lr, ci(g, 0), mr, ci(g, 1));
        LLVMValueRef sr = fptr(g, src, mul(g, r, sam)), dr = fptr(g, pa, r);
        LLVMValueRef k = loop_open(g, &lk, ci(g, 0), kc, ci(g, 1));
        LLVMValueRef x = LLVMBuildLoad2(g->b, g->f32, fptr(g, sr, mul(g, k, sak)), "");
        LLVMBuildStore(g->b, x, fptr(g, dr, mul(g, k, ci(g, MR))));
        loop_close(g, &lk);
        loop_close(g, &lr);
        LLVMValueRef r2 = loop_open(g, &lr, mr, ci(g, MR), ci(g, 1));
        LLVMValueRef dz = fptr(g, pa, r2);
        LLVMValueRef k2 = loop_open(g, &lk, ci(g, 0), kc, ci(g, 1));
        LLVMBuildStore(g->b, LLVMConstReal(g->f32, 0), fptr(g, dz, mul(g, k2, ci(g, MR))));
        loop_close(g, &lk);
        loop_close(g, &lr);
    }
    if_close(g, &f2);
    if_close(g, &f);
}

/* The A micro-panels of rows [ig, ge) (at most PG panels), panel q at pa + q * pstride.
 * Columns of A contiguous (A^T views: dW = X^T dY): k outer, so each k reads one run of
 * contiguous rows for all the panels (a panel at a time would read MR floats from a new
 * page for every k: TLB and cache-line misses that cost ~15% of the product); otherwise
 * pack_a per panel. */
enum { PG = 8 };

static void pack_a_group(G *g, LLVMValueRef pa, int64_t pstride, LLVMValueRef A, LLVMValueRef sam, LLVMValueRef sak,
                         LLVMValueRef ig, LLVMValueRef ge, LLVMValueRef pc, LLVMValueRef kc) {
    int MR = g->s->mr;
    LLVMValueRef npan = LLVMBuildSDiv(g->b, add(g, LLVMBuildSub(g->b, ge, ig, ""), ci(g, MR - 1)), ci(g, MR), "");
    If f;
    if_open(g, &f, LLVMBuildICmp(g->b, LLVMIntEQ, sam, ci(g, 1), ""));
    {
        Loop lk, lq;
        LLVMValueRef k = loop_open(g, &lk, ci(g, 0), kc, ci(g, 1));
        LLVMValueRef src = fptr(g, A, add(g, mul(g, add(g, pc, k), sak), ig));
        LLVMValueRef q = loop_open(g, &lq, ci(g, 0), npan, ci(g, 1));
        LLVMValueRef r0 = mul(g, q, ci(g, MR));
        LLVMValueRef m = lane_mask(g, 0, imin(g, ci(g, MR), LLVMBuildSub(g->b, LLVMBuildSub(g->b, ge, ig, ""), r0, "")));
        LLVMValueRef dst = fptr(g, pa, add(g, mul(g, q, ci(g, pstride)), mul(g, k, ci(g, MR))));
        store_vec(g, masked_load(g, fptr(g, src, r0), m), dst, 4);
        loop_close(g, &lq);
        loop_close(g, &lk);
    }
    if_else(g, &f);
    {
        Loop lq;
        LLVMValueRef q = loop_open(g, &lq, ci(g, 0), npan, ci(g, 1));
        LLVMValueRef ir = add(g, ig, mul(g, q, ci(g, MR)));
        pack_a(g, fptr(g, pa, mul(g, q, ci(g, pstride))), A, sam, sak, ir, pc, kc, imin(g, ci(g, MR), LLVMBuildSub(g->b, ge, ir, "")));
        loop_close(g, &lq);
    }
    if_close(g, &f);
}

/* ---- the driver ---- */

void tl_cpu_gemm_emit(LLVMModuleRef mod, LLVMBuilderRef b, LLVMValueRef fn, const TlCpuTarget *t,
                      const TlLGemm *s, const char *name, const TlCpuGemmArgs *x) {
    G g;
    memset(&g, 0, sizeof g);
    g.ctx = LLVMGetModuleContext(mod), g.mod = mod, g.b = b, g.fn = fn, g.t = t, g.s = s;
    g.entry = LLVMGetEntryBasicBlock(fn);
    g.nv = s->nr / 16;
    g.i1 = LLVMInt1TypeInContext(g.ctx), g.i32 = LLVMInt32TypeInContext(g.ctx), g.i64 = LLVMInt64TypeInContext(g.ctx);
    g.f32 = LLVMFloatTypeInContext(g.ctx), g.ptr = LLVMPointerTypeInContext(g.ctx, 0);
    g.voidt = LLVMVoidTypeInContext(g.ctx);
    g.vf = LLVMVectorType(g.f32, 16), g.vi1 = LLVMVectorType(g.i1, 16), g.vi32 = LLVMVectorType(g.i32, 16);
    LLVMValueRef ukr = gen_ukr(&g, name);
    int MR = s->mr, NR = s->nr;

    /* packing buffers on the stack: B block KC x NC (+ slack), A micro-panel MR x KC */
    /* (slack: transpose_copy writes up to 15 k rows past kc; pack_a's vector path 16 lanes) */
    LLVMValueRef pb = entry_alloca(&g, g.f32, ci(&g, (int64_t)(s->kc + 16) * s->nc + 64), 64);
    int64_t pstride = (int64_t)(s->kc + 16) * MR; /* one A micro-panel with its slack */
    LLVMValueRef pa_all = entry_alloca(&g, g.f32, ci(&g, PG * pstride + 32), 64);
    LLVMValueRef panels = LLVMBuildSDiv(b, add(&g, x->m, ci(&g, MR - 1)), ci(&g, MR), "");
    /* column strips: nsplit runs of whole NR panels, the last one short */
    int NS = s->nsplit > 1 ? s->nsplit : 1;
    LLVMValueRef strip = NULL;
    if (NS > 1) {
        LLVMValueRef npan = LLVMBuildSDiv(b, add(&g, x->n, ci(&g, NR - 1)), ci(&g, NR), "");
        strip = mul(&g, LLVMBuildSDiv(b, add(&g, npan, ci(&g, NS - 1)), ci(&g, NS), ""), ci(&g, NR));
    }
    LLVMValueRef kend = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSGT, x->k, ci(&g, 1), ""), x->k, ci(&g, 1), "");
    /* k blocks of equal depth <= KC (K = 256 with KC = 192: two blocks of 128, not 192 + 64) */
    LLVMValueRef nkb = LLVMBuildSDiv(b, add(&g, kend, ci(&g, s->kc - 1)), ci(&g, s->kc), "");
    LLVMValueRef kstep = LLVMBuildSDiv(b, add(&g, kend, LLVMBuildSub(b, nkb, ci(&g, 1), "")), nkb, "");

    /* items [begin, end): runs of row panels within one batch and strip each */
    LLVMValueRef islot = entry_alloca(&g, g.i64, NULL, 8);
    LLVMBuildStore(b, x->begin, islot);
    LLVMBasicBlockRef head = block(&g, "items"), body = block(&g, "item"), done = block(&g, "items.done");
    LLVMBuildBr(b, head);
    LLVMPositionBuilderAtEnd(b, head);
    LLVMValueRef item = LLVMBuildLoad2(b, g.i64, islot, "");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, item, x->end, ""), body, done);
    LLVMPositionBuilderAtEnd(b, body);
    LLVMValueRef seg = LLVMBuildSDiv(b, item, panels, ""); /* bi * NS + strip */
    LLVMValueRef p0 = LLVMBuildSub(b, item, mul(&g, seg, panels), "");
    LLVMValueRef bi = NS > 1 ? LLVMBuildSDiv(b, seg, ci(&g, NS), "") : seg;
    LLVMValueRef col0 = NS > 1 ? mul(&g, LLVMBuildSub(b, seg, mul(&g, bi, ci(&g, NS)), ""), strip) : ci(&g, 0);
    LLVMValueRef col1 = NS > 1 ? imin(&g, x->n, add(&g, col0, strip)) : x->n;
    LLVMValueRef cnt = imin(&g, LLVMBuildSub(b, panels, p0, ""), LLVMBuildSub(b, x->end, item, ""));
    LLVMValueRef A = fptr(&g, x->a, mul(&g, bi, x->sa_b));
    LLVMValueRef B = fptr(&g, x->b, mul(&g, bi, x->sb_b));
    LLVMValueRef C = fptr(&g, x->c, mul(&g, bi, x->sc_b));
    LLVMValueRef row0 = mul(&g, p0, ci(&g, MR));
    LLVMValueRef row1 = imin(&g, x->m, mul(&g, add(&g, p0, cnt), ci(&g, MR)));

    Loop lic, ljc, lpc, lig, lir, ljr;
    LLVMValueRef ic = loop_open(&g, &lic, row0, row1, ci(&g, s->mc));
    LLVMValueRef ie = imin(&g, row1, add(&g, ic, ci(&g, s->mc)));
    LLVMValueRef jc = loop_open(&g, &ljc, col0, col1, ci(&g, s->nc));
    LLVMValueRef nc = imin(&g, ci(&g, s->nc), LLVMBuildSub(b, col1, jc, ""));
    LLVMValueRef pc = loop_open(&g, &lpc, ci(&g, 0), kend, kstep);
    LLVMValueRef kc = imin(&g, kstep, LLVMBuildSub(b, x->k, pc, ""));
    LLVMValueRef first = LLVMBuildICmp(b, LLVMIntEQ, pc, ci(&g, 0), "");
    pack_b(&g, pb, B, x->sb_k, x->sb_n, pc, jc, kc, nc);
    LLVMValueRef ig = loop_open(&g, &lig, ic, ie, ci(&g, (int64_t)PG * MR));
    LLVMValueRef ge = imin(&g, ie, add(&g, ig, ci(&g, (int64_t)PG * MR)));
    pack_a_group(&g, pa_all, pstride, A, x->sa_m, x->sa_k, ig, ge, pc, kc);
    LLVMValueRef ir = loop_open(&g, &lir, ig, ge, ci(&g, MR));
    LLVMValueRef mr = imin(&g, ci(&g, MR), LLVMBuildSub(b, ge, ir, ""));
    LLVMValueRef pa = fptr(&g, pa_all, mul(&g, LLVMBuildSDiv(b, LLVMBuildSub(b, ir, ig, ""), ci(&g, MR), ""), ci(&g, pstride)));
    LLVMValueRef crow = fptr(&g, C, add(&g, mul(&g, ir, x->sc_m), jc));
    LLVMValueRef jr = loop_open(&g, &ljr, ci(&g, 0), nc, ci(&g, NR));
    LLVMValueRef nr = imin(&g, ci(&g, NR), LLVMBuildSub(b, nc, jr, ""));
    LLVMValueRef args[8] = {pa, fptr(&g, pb, mul(&g, jr, kc)), fptr(&g, crow, jr), x->sc_m, kc, mr, nr, first};
    LLVMBuildCall2(b, LLVMGlobalGetValueType(ukr), ukr, args, 8, "");
    if (x->epi) { /* the tile is summed after the last k block: its epilogue, while in L1 */
        If fe;
        if_open(&g, &fe, LLVMBuildICmp(b, LLVMIntSGE, add(&g, pc, kstep), kend, ""));
        x->epi(x->epi_ctx, bi, ir, mr, add(&g, jc, jr), nr);
        if_else(&g, &fe);
        if_close(&g, &fe);
    }
    loop_close(&g, &ljr);
    loop_close(&g, &lir);
    loop_close(&g, &lig);
    loop_close(&g, &lpc);
    loop_close(&g, &ljc);
    loop_close(&g, &lic);
    LLVMBuildStore(b, add(&g, item, cnt), islot);
    LLVMBuildBr(b, head);
    LLVMPositionBuilderAtEnd(b, done);
}
