/* gemm_bf16.c — a bf16 matmul contraction (TlLGemm, dtype TL_BF16) with the AVX-512-BF16
 * dot product vdpbf16ps, emitted through the C API (docs/performance.md, "The bf16 GEMM").
 *
 *   C[b, i, j] = rnd_bf16( sum_k A[b, i, k] * B[b, k, j] )   (products exact, f32 accumulation)
 *
 * Storage: bf16 tensors are f32 holding bf16 values (compiler/loops.c to_storage), so the
 * high 16 bits of each f32 are its bf16, exactly. Packing keeps those halves, two k at a
 * time, because vdpbf16ps multiplies the two bf16 halves of each 32-bit lane:
 *
 *   vdpbf16ps acc, a, b:  acc[l] += a[l].hi * b[l].hi;  acc[l] += a[l].lo * b[l].lo
 *                         (16 lanes; each step fused, RNE, bf16 inputs and f32 outputs
 *                         that are denormal taken as 0)
 *
 *   pb[jp][p][j] = B[2p, jc + jp*NR + j] | B[2p + 1, ...] << 16    (k pair p, NR lanes a row)
 *   pa[q][p][r]  = A[ig + q*MR + r, 2p]  | A[..., 2p + 1]  << 16    (MR lanes a row)
 *   or pa[q][r][p] when A's k is contiguous (row-major A: no transposes to pack it)
 *
 * with 0 outside the matrix and for the second half of an odd K block's last pair. The
 * blocking is gemm.c's (same schedule fields; the microkernel's k loop, its unroll `ku`
 * and the prefetch distance count k pairs):
 *
 *   for each batch b and row range [r0, r1) of the items (batch x ceil(M / MR) panels):
 *     for ic step MC: for jc step NC: for pc step kc (equal blocks <= KC, even but the last):
 *       pack B[pc:pc+kc, jc:jc+NC] -> pb
 *       for ig step 8 MR: pack A[ig:ig+8MR, pc:pc+kc] -> pa
 *         for ir, jr: ukr: C = (pc == 0 ? 0 : C) + pa * pb[jr], rounded to bf16 after the
 *                     last k block
 *
 * The microkernel keeps MR x NR of C in MR * NR/16 zmm accumulators; per k pair it loads
 * NR/16 vectors of B, broadcasts MR 32-bit pairs of A and issues MR * NR/16 vdpbf16ps: two
 * multiply-adds per lane each, twice gemm.c's f32 FMAs per instruction.
 *
 * Like gemm.c, every element of C is a sum of k blocks in k order, each block one chain of
 * dot products from 0 added to C after the block; the blocks depend on the schedule only,
 * so results are bitwise the same for any number of threads. Against the loop nest (f64
 * accumulation) the f32 sum differs by at most K 2^-24 sum |a b| before rounding to bf16
 * (tests/unit/test_gemm_bf16.c holds it to that). */
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
    LLVMTypeRef i1, i16, i32, i64, f32, bf16, ptr, voidt, vf, vi1, vi32, vi16, vbf;
} G;

#include "gemm_ir.h" /* the IR builders shared with the other GEMM generator */

/* Whether `feature` (e.g. "avx512bf16") is on in an LLVM feature string: the last of its
 * "+f" / "-f" entries decides (cpu.c appends the user's features after the host's). */
static int feature_on(const char *fs, const char *feature) {
    int on = 0;
    size_t n = strlen(feature);
    for (const char *p = fs; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n + 1 && (p[0] == '+' || p[0] == '-') && !memcmp(p + 1, feature, n)) on = p[0] == '+';
        p = e ? e + 1 : NULL;
    }
    return on;
}

/* No epilogue: fusion gives one to f32 contractions only (compiler/fuse.c), so a bf16 one
 * would be untested here; such a kernel would compile its loop nest. No column strips
 * (TlLGemm.nsplit > 1: gemm.c's 2-D grid of items): the items here are row panels only,
 * so such a schedule (a tuning candidate) runs the loop nest too. */
int tl_cpu_gemm_bf16_supported(const TlCpuTarget *t, const TlLGemm *g) {
    if (!g->on || g->dtype != TL_BF16 || g->has_epi || g->nsplit > 1 || !t->gemm || !t->features) return 0;
    if (!feature_on(t->features, "avx512f") || !feature_on(t->features, "avx512bw") || !feature_on(t->features, "avx512bf16"))
        return 0;
    return g->mr >= 1 && g->mr <= 16 && g->nr >= 16 && g->nr <= 64 && g->nr % 16 == 0 &&
           g->mr * (g->nr / 16) <= 28 && g->kc >= 2 && g->nc >= g->nr && g->nc % g->nr == 0 &&
           g->mc >= g->mr && g->ku >= 1 && g->ku <= 16 && g->prefetch >= 0;
}

/* ---- small builders of this generator (the shared ones: gemm_ir.h) ---- */

static LLVMValueRef sub(G *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildNSWSub(g->b, a, b, ""); }
static LLVMValueRef sdiv(G *g, LLVMValueRef a, int64_t d) { return LLVMBuildSDiv(g->b, a, ci(g, d), ""); }
static LLVMValueRef ceil_div(G *g, LLVMValueRef a, int64_t d) { return sdiv(g, add(g, a, ci(g, d - 1)), d); }

static LLVMValueRef iptr(G *g, LLVMValueRef p, LLVMValueRef i) { return LLVMBuildGEP2(g->b, g->i32, p, &i, 1, ""); }

/* 16 lanes of type vt (<16 x float> or <16 x i32>) */
static LLVMValueRef masked_load(G *g, LLVMTypeRef vt, LLVMValueRef p, LLVMValueRef mask) {
    LLVMTypeRef ov[2] = {vt, g->ptr};
    LLVMValueRef args[4] = {p, c32(g, 4), mask, LLVMConstNull(vt)};
    return intrinsic(g, "llvm.masked.load", ov, 2, args, 4);
}

static void masked_store(G *g, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask) {
    LLVMTypeRef ov[2] = {LLVMTypeOf(v), g->ptr};
    LLVMValueRef args[4] = {v, p, c32(g, 4), mask};
    intrinsic(g, "llvm.masked.store", ov, 2, args, 4);
}

static LLVMValueRef load_vec(G *g, LLVMTypeRef vt, LLVMValueRef p, unsigned align) {
    LLVMValueRef v = LLVMBuildLoad2(g->b, vt, p, "");
    LLVMSetAlignment(v, align);
    return v;
}

/* <16 x i1>, constant: lanes l < n */
static LLVMValueRef const_mask(G *g, int n) {
    LLVMValueRef m[16];
    for (int l = 0; l < 16; l++) m[l] = LLVMConstInt(g->i1, l < n, 0);
    return LLVMConstVector(m, 16);
}

static LLVMValueRef splat_i32(G *g, LLVMValueRef x) {
    LLVMValueRef v = LLVMBuildInsertElement(g->b, LLVMGetPoison(g->vi32), x, c32(g, 0), "");
    return LLVMBuildShuffleVector(g->b, v, LLVMGetPoison(g->vi32), LLVMConstNull(g->vi32), "");
}

static LLVMValueRef vconst_i32(G *g, uint32_t x) {
    LLVMValueRef l[16];
    for (int i = 0; i < 16; i++) l[i] = LLVMConstInt(g->i32, x, 0);
    return LLVMConstVector(l, 16);
}

/* ---- bf16 pairs ---- */

/* The pair (lo, hi) of two bf16-valued f32 (or 16 lanes of them): lo's high half in the low
 * 16 bits, hi's in the high 16 (truncation: exact for bf16 values). */
static LLVMValueRef pair(G *g, LLVMValueRef lo, LLVMValueRef hi) {
    int vec = LLVMGetTypeKind(LLVMTypeOf(lo)) == LLVMVectorTypeKind;
    LLVMTypeRef it = vec ? g->vi32 : g->i32;
    lo = LLVMBuildBitCast(g->b, lo, it, ""), hi = LLVMBuildBitCast(g->b, hi, it, "");
    LLVMValueRef sh = vec ? vconst_i32(g, 16) : c32(g, 16), mk = vec ? vconst_i32(g, 0xffff0000u) : c32(g, (int)0xffff0000u);
    return LLVMBuildOr(g->b, LLVMBuildLShr(g->b, lo, sh, ""), LLVMBuildAnd(g->b, hi, mk, ""), "");
}

/* 32 consecutive bf16-valued f32 (x0: the first 16, x1: the next 16) as 16 pairs: the odd
 * 16-bit halves of the 64 (vpermt2w) */
static LLVMValueRef pairs_of_run(G *g, LLVMValueRef x0, LLVMValueRef x1) {
    LLVMValueRef m[32];
    for (int i = 0; i < 32; i++) m[i] = c32(g, 2 * i + 1);
    LLVMValueRef h = LLVMBuildShuffleVector(g->b, LLVMBuildBitCast(g->b, x0, g->vi16, ""), LLVMBuildBitCast(g->b, x1, g->vi16, ""),
                                            LLVMConstVector(m, 32), "");
    return LLVMBuildBitCast(g->b, h, g->vi32, "");
}

/* f32 lanes rounded to the nearest bf16, ties to even, NaN kept: the loop nest's rounding
 * (cpu_codegen.c gen_round), so a C element equal before rounding is equal after. */
static LLVMValueRef round_bf16(G *g, LLVMValueRef v) {
    LLVMValueRef bits = LLVMBuildBitCast(g->b, v, g->vi32, "");
    LLVMValueRef lsb = LLVMBuildAnd(g->b, LLVMBuildLShr(g->b, bits, vconst_i32(g, 16), ""), vconst_i32(g, 1), "");
    LLVMValueRef r = LLVMBuildAdd(g->b, bits, LLVMBuildAdd(g->b, lsb, vconst_i32(g, 0x7fff), ""), "");
    r = LLVMBuildAnd(g->b, r, vconst_i32(g, 0xffff0000u), "");
    LLVMValueRef isnan = LLVMBuildFCmp(g->b, LLVMRealUNO, v, v, "");
    return LLVMBuildSelect(g->b, isnan, v, LLVMBuildBitCast(g->b, r, g->vf, ""), "");
}

/* acc + a . b over the 16 lanes' bf16 pairs */
static LLVMValueRef dpbf16(G *g, LLVMValueRef acc, LLVMValueRef a, LLVMValueRef b) {
    LLVMValueRef args[3] = {acc, a, b};
    return intrinsic(g, "llvm.x86.avx512bf16.dpbf16ps.512", NULL, 0, args, 3);
}

/* ---- the microkernel ---- */

/* C[r, 16h..] = acc (first) or C + acc, then rounded to bf16 when rnd, for rows r < mr and
 * the columns in cmask (a full tile: every row and column, plain vector accesses). */
static void store_tile(G *g, LLVMValueRef acc[16][4], LLVMValueRef *crow, LLVMValueRef *cmask, LLVMValueRef mr,
                       LLVMValueRef first, LLVMValueRef rnd, int full_tile) {
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
                if (add_c) v = LLVMBuildFAdd(g->b, full_tile ? load_vec(g, g->vf, p, 4) : masked_load(g, g->vf, p, m), v, "");
                v = LLVMBuildSelect(g->b, rnd, round_bf16(g, v), v, "");
                if (full_tile) store_vec(g, v, p, 4);
                else masked_store(g, v, p, m);
            }
        }
    }
    if_close(g, &ff);
}

/* ukr(pa, pb, c, ldc, kp, mr, nr, first, rnd, ars, aps): C[0:mr, 0:nr] = (first ? 0 : C) +
 * A pb over kp k pairs, rounded to bf16 if rnd; A's pair (r, p) at pa[r * ars + p * aps]
 * (k-major or row-major panels: pack_pairs), pb NR pairs per step. */
static LLVMValueRef gen_ukr(G *g, const char *name) {
    const TlLGemm *s = g->s;
    int MR = s->mr, NV = g->nv, NR = s->nr;
    LLVMTypeRef at[11] = {g->ptr, g->ptr, g->ptr, g->i64, g->i64, g->i64, g->i64, g->i1, g->i1, g->i64, g->i64};
    char fname[128];
    snprintf(fname, sizeof fname, "%s.ukr", name);
    LLVMValueRef fn = LLVMAddFunction(g->mod, fname, LLVMFunctionType(g->voidt, at, 11, 0));
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
    LLVMValueRef ldc = LLVMGetParam(fn, 3), kp = LLVMGetParam(fn, 4), mr = LLVMGetParam(fn, 5);
    LLVMValueRef nr = LLVMGetParam(fn, 6), first = LLVMGetParam(fn, 7), rnd = LLVMGetParam(fn, 8);
    LLVMValueRef ars = LLVMGetParam(fn, 9), aps = LLVMGetParam(fn, 10);
    LLVMValueRef arow[16]; /* row r of A's panel */
    for (int r = 0; r < MR; r++) arow[r] = iptr(g, pa, mul(g, ci(g, r), ars));
    LLVMValueRef acc[16][4], cmask[4], crow[16];
    LLVMValueRef full = ukr_block(g, acc, crow, cmask, c, ldc, mr, nr);
    /* k-pair loop: unrolled by ku, then one pair at a time */
    LLVMValueRef ks = entry_alloca(g, g->i64, NULL, 8);
    LLVMBuildStore(g->b, ci(g, 0), ks);
    for (int pass = 0; pass < 2; pass++) {
        int u = pass == 0 ? s->ku : 1;
        if (pass == 0 && u == 1) continue;
        LLVMBasicBlockRef head = block(g, "k.loop"), body = block(g, "k.body"), exit = block(g, "k.done");
        LLVMBuildBr(g->b, head);
        LLVMPositionBuilderAtEnd(g->b, head);
        LLVMValueRef k = LLVMBuildLoad2(g->b, g->i64, ks, "");
        LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLE, add(g, k, ci(g, u)), kp, ""), body, exit);
        LLVMPositionBuilderAtEnd(g->b, body);
        LLVMValueRef a[16][4];
        for (int r = 0; r < MR; r++)
            for (int h = 0; h < NV; h++) a[r][h] = LLVMBuildLoad2(g->b, g->vf, acc[r][h], "");
        for (int q = 0; q < u; q++) {
            LLVMValueRef kk = add(g, k, ci(g, q));
            LLVMValueRef pbk = iptr(g, pb, mul(g, kk, ci(g, NR)));
            LLVMValueRef ak = mul(g, kk, aps);
            if (s->prefetch > 0)
                for (int h = 0; h < NV; h++) prefetch(g, iptr(g, pbk, ci(g, (int64_t)s->prefetch * NR + 16 * h)));
            LLVMValueRef bv[4];
            for (int h = 0; h < NV; h++) bv[h] = load_vec(g, g->vbf, iptr(g, pbk, ci(g, 16 * h)), 64);
            for (int r = 0; r < MR; r++) {
                LLVMValueRef x = LLVMBuildLoad2(g->b, g->i32, iptr(g, arow[r], ak), "");
                LLVMValueRef xv = LLVMBuildBitCast(g->b, splat_i32(g, x), g->vbf, "");
                for (int h = 0; h < NV; h++) a[r][h] = dpbf16(g, a[r][h], xv, bv[h]);
            }
        }
        for (int r = 0; r < MR; r++)
            for (int h = 0; h < NV; h++) LLVMBuildStore(g->b, a[r][h], acc[r][h]);
        LLVMBuildStore(g->b, add(g, k, ci(g, u)), ks);
        LLVMBuildBr(g->b, head);
        LLVMPositionBuilderAtEnd(g->b, exit);
    }

    If fb;
    if_open(g, &fb, full);
    store_tile(g, acc, crow, cmask, mr, first, rnd, 1);
    if_else(g, &fb);
    store_tile(g, acc, crow, cmask, mr, first, rnd, 0);
    if_close(g, &fb);
    LLVMBuildRetVoid(g->b);

    g->fn = saved_fn, g->entry = saved_entry;
    LLVMPositionBuilderAtEnd(g->b, saved_bb);
    return fn;
}

/* ---- packing ---- */

/* Panels of k pairs from a strided source X[k, x] = src[k * sk + x * sx] (k < kc, x < nx):
 *   dst[q * pstride + p * L + l] = (X[2p, x], X[2p + 1, x]),  x = q * L + l
 * for every pair p < kp = ceil(kc / 2) and lane x of the ceil(nx / L) panels; 0 for x >= nx
 * and for an odd kc's X[kc, x]. A: lanes are rows (L = MR), B: columns (L = NR). Stores past
 * a panel's last pair (up to 15 pair rows, zeros) land in the next panel, written after, or
 * in the buffer's slack.
 * rows (A only): when k is contiguous (row-major A) the panels are row-major instead,
 *   dst[q * pstride + l * kp + p], each row's pairs one run of its k: no transposes (the
 *   microkernel broadcasts one pair per row and step either way). */
static void pack_pairs(G *g, LLVMValueRef dst, int L, LLVMValueRef pstride, LLVMValueRef src, LLVMValueRef sk,
                       LLVMValueRef sx, LLVMValueRef nx, LLVMValueRef kc, int rows) {
    LLVMValueRef kp = ceil_div(g, kc, 2), npan = ceil_div(g, nx, L);
    int nh = (L + 15) / 16; /* 16-lane chunks of a pair row */
    If f;
    if_open(g, &f, LLVMBuildICmp(g->b, LLVMIntEQ, sx, ci(g, 1), ""));
    { /* lanes contiguous (row-major B, A^T views): per pair, masked rows of k and k + 1 */
        Loop lp, lq;
        LLVMValueRef p = loop_open(g, &lp, ci(g, 0), kp, ci(g, 1));
        LLVMValueRef k0 = mul(g, p, ci(g, 2)), has1 = LLVMBuildICmp(g->b, LLVMIntSLT, add(g, k0, ci(g, 1)), kc, "");
        LLVMValueRef r0 = fptr(g, src, mul(g, k0, sk)), r1 = fptr(g, src, mul(g, imin(g, add(g, k0, ci(g, 1)), sub(g, kc, ci(g, 1))), sk));
        LLVMValueRef q = loop_open(g, &lq, ci(g, 0), npan, ci(g, 1));
        LLVMValueRef d = iptr(g, dst, add(g, mul(g, q, pstride), mul(g, p, ci(g, L))));
        for (int h = 0; h < nh; h++) {
            LLVMValueRef x0 = add(g, mul(g, q, ci(g, L)), ci(g, 16 * h));
            LLVMValueRef m = lane_mask(g, 0, sub(g, nx, x0));
            LLVMValueRef lo = masked_load(g, g->vf, fptr(g, r0, x0), m);
            LLVMValueRef hi = masked_load(g, g->vf, fptr(g, r1, x0), LLVMBuildSelect(g->b, has1, m, LLVMConstNull(g->vi1), ""));
            LLVMValueRef v = pair(g, lo, hi), dh = iptr(g, d, ci(g, 16 * h));
            if (L - 16 * h >= 16) store_vec(g, v, dh, 4);
            else masked_store(g, v, dh, const_mask(g, L - 16 * h));
        }
        loop_close(g, &lq);
        loop_close(g, &lp);
    }
    if_else(g, &f);
    If f2;
    if_open(g, &f2, LLVMBuildICmp(g->b, LLVMIntEQ, sk, ci(g, 1), ""));
    if (rows) { /* k contiguous, row-major panels: per row, 32 k at a time -> 16 pairs */
        Loop lx, lp;
        LLVMValueRef x = loop_open(g, &lx, ci(g, 0), mul(g, npan, ci(g, L)), ci(g, 1));
        LLVMValueRef ok = LLVMBuildICmp(g->b, LLVMIntSLT, x, nx, "");
        LLVMValueRef sr = fptr(g, src, mul(g, x, sx));
        LLVMValueRef d = iptr(g, dst, add(g, mul(g, sdiv(g, x, L), pstride), mul(g, LLVMBuildSRem(g->b, x, ci(g, L), ""), kp)));
        LLVMValueRef p0 = loop_open(g, &lp, ci(g, 0), kp, ci(g, 16));
        LLVMValueRef k0 = mul(g, p0, ci(g, 2)), left = sub(g, kc, k0);
        LLVMValueRef lo = masked_load(g, g->vf, fptr(g, sr, k0), LLVMBuildSelect(g->b, ok, lane_mask(g, 0, left), LLVMConstNull(g->vi1), ""));
        LLVMValueRef hi = masked_load(g, g->vf, fptr(g, sr, add(g, k0, ci(g, 16))),
                                      LLVMBuildSelect(g->b, ok, lane_mask(g, 16, left), LLVMConstNull(g->vi1), ""));
        masked_store(g, pairs_of_run(g, lo, hi), iptr(g, d, p0), lane_mask(g, 0, sub(g, kp, p0)));
        loop_close(g, &lp);
        loop_close(g, &lx);
    } else { /* k contiguous (B^T views): 16 lanes x 32 k, pairs, 16 x 16 transposes */
        Loop lq, lp;
        LLVMValueRef q = loop_open(g, &lq, ci(g, 0), npan, ci(g, 1));
        for (int h = 0; h < nh; h++) {
            LLVMValueRef x0 = add(g, mul(g, q, ci(g, L)), ci(g, 16 * h));
            LLVMValueRef p0 = loop_open(g, &lp, ci(g, 0), kp, ci(g, 16));
            LLVMValueRef k0 = mul(g, p0, ci(g, 2)), left = sub(g, kc, k0);
            LLVMValueRef km0 = lane_mask(g, 0, left), km1 = lane_mask(g, 16, left);
            LLVMValueRef rows[16];
            for (int r = 0; r < 16; r++) {
                LLVMValueRef x = add(g, x0, ci(g, r)), ok = LLVMBuildICmp(g->b, LLVMIntSLT, x, nx, "");
                LLVMValueRef sr = fptr(g, src, add(g, mul(g, x, sx), k0));
                LLVMValueRef lo = masked_load(g, g->vf, sr, LLVMBuildSelect(g->b, ok, km0, LLVMConstNull(g->vi1), ""));
                LLVMValueRef hi = masked_load(g, g->vf, fptr(g, sr, ci(g, 16)), LLVMBuildSelect(g->b, ok, km1, LLVMConstNull(g->vi1), ""));
                rows[r] = pairs_of_run(g, lo, hi);
            }
            transpose16(g, rows);
            LLVMValueRef d = iptr(g, dst, add(g, add(g, mul(g, q, pstride), mul(g, p0, ci(g, L))), ci(g, 16 * h)));
            for (int pp = 0; pp < 16; pp++) {
                LLVMValueRef dp = iptr(g, d, ci(g, (int64_t)pp * L));
                if (L - 16 * h >= 16) store_vec(g, rows[pp], dp, 4);
                else masked_store(g, rows[pp], dp, const_mask(g, L - 16 * h));
            }
            loop_close(g, &lp);
        }
        loop_close(g, &lq);
    }
    if_else(g, &f2);
    { /* general strides: element by element; lanes past nx get zeros */
        Loop lx, lp;
        for (int pad = 0; pad < 2; pad++) {
            LLVMValueRef x = loop_open(g, &lx, pad ? nx : ci(g, 0), pad ? mul(g, npan, ci(g, L)) : nx, ci(g, 1));
            LLVMValueRef d = iptr(g, dst, add(g, mul(g, sdiv(g, x, L), pstride), LLVMBuildSRem(g->b, x, ci(g, L), "")));
            LLVMValueRef sxp = fptr(g, src, mul(g, x, sx));
            LLVMValueRef p = loop_open(g, &lp, ci(g, 0), kp, ci(g, 1));
            LLVMValueRef v = c32(g, 0);
            if (!pad) {
                LLVMValueRef k0 = mul(g, p, ci(g, 2)), k1 = add(g, k0, ci(g, 1));
                LLVMValueRef lo = LLVMBuildLoad2(g->b, g->f32, fptr(g, sxp, mul(g, k0, sk)), "");
                LLVMValueRef hi = LLVMBuildLoad2(g->b, g->f32, fptr(g, sxp, mul(g, imin(g, k1, sub(g, kc, ci(g, 1))), sk)), "");
                hi = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, k1, kc, ""), hi, LLVMConstReal(g->f32, 0), "");
                v = pair(g, lo, hi);
            }
            LLVMBuildStore(g->b, v, iptr(g, d, mul(g, p, ci(g, L))));
            loop_close(g, &lp);
            loop_close(g, &lx);
        }
    }
    if_close(g, &f2);
    if_close(g, &f);
}

/* ---- the driver ---- */

enum { PG = 8 }; /* A micro-panels packed together (gemm.c's group) */

void tl_cpu_gemm_bf16_emit(LLVMModuleRef mod, LLVMBuilderRef b, LLVMValueRef fn, const TlCpuTarget *t,
                           const TlLGemm *s, const char *name, const TlCpuGemmArgs *x) {
    G g;
    memset(&g, 0, sizeof g);
    g.ctx = LLVMGetModuleContext(mod), g.mod = mod, g.b = b, g.fn = fn, g.t = t, g.s = s;
    g.entry = LLVMGetEntryBasicBlock(fn);
    g.nv = s->nr / 16;
    g.i1 = LLVMInt1TypeInContext(g.ctx), g.i16 = LLVMInt16TypeInContext(g.ctx), g.i32 = LLVMInt32TypeInContext(g.ctx);
    g.i64 = LLVMInt64TypeInContext(g.ctx), g.f32 = LLVMFloatTypeInContext(g.ctx), g.bf16 = LLVMBFloatTypeInContext(g.ctx);
    g.ptr = LLVMPointerTypeInContext(g.ctx, 0), g.voidt = LLVMVoidTypeInContext(g.ctx);
    g.vf = LLVMVectorType(g.f32, 16), g.vi1 = LLVMVectorType(g.i1, 16), g.vi32 = LLVMVectorType(g.i32, 16);
    g.vi16 = LLVMVectorType(g.i16, 32), g.vbf = LLVMVectorType(g.bf16, 32);
    LLVMValueRef ukr = gen_ukr(&g, name);
    int MR = s->mr, NR = s->nr;

    /* k blocks of equal depth <= KC, rounded up to even so that only the last block can end
     * in a half pair; kpmax bounds their pairs (KC odd: KC + 1 k) */
    LLVMValueRef kend = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSGT, x->k, ci(&g, 1), ""), x->k, ci(&g, 1), "");
    LLVMValueRef nkb = ceil_div(&g, kend, s->kc);
    LLVMValueRef kstep = LLVMBuildSDiv(b, add(&g, kend, sub(&g, nkb, ci(&g, 1))), nkb, "");
    kstep = mul(&g, ceil_div(&g, kstep, 2), ci(&g, 2));
    int64_t kpmax = s->kc / 2 + 1;
    /* packing buffers on the stack (i32 pairs): the B block, then PG A micro-panels, each
     * with 16 pair rows of slack for pack_pairs' transposed stores */
    LLVMValueRef pb = entry_alloca(&g, g.i32, ci(&g, kpmax * s->nc + 16 * NR + 16), 64);
    LLVMValueRef pa_all = entry_alloca(&g, g.i32, ci(&g, PG * kpmax * MR + 16 * MR + 16), 64);
    LLVMValueRef panels = ceil_div(&g, x->m, MR);

    /* items [begin, end): runs of row panels within one batch each */
    LLVMValueRef islot = entry_alloca(&g, g.i64, NULL, 8);
    LLVMBuildStore(b, x->begin, islot);
    LLVMBasicBlockRef head = block(&g, "items"), body = block(&g, "item"), done = block(&g, "items.done");
    LLVMBuildBr(b, head);
    LLVMPositionBuilderAtEnd(b, head);
    LLVMValueRef item = LLVMBuildLoad2(b, g.i64, islot, "");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, item, x->end, ""), body, done);
    LLVMPositionBuilderAtEnd(b, body);
    LLVMValueRef bi = LLVMBuildSDiv(b, item, panels, "");
    LLVMValueRef p0 = sub(&g, item, mul(&g, bi, panels));
    LLVMValueRef cnt = imin(&g, sub(&g, panels, p0), sub(&g, x->end, item));
    LLVMValueRef A = fptr(&g, x->a, mul(&g, bi, x->sa_b));
    LLVMValueRef B = fptr(&g, x->b, mul(&g, bi, x->sb_b));
    LLVMValueRef C = fptr(&g, x->c, mul(&g, bi, x->sc_b));
    LLVMValueRef row0 = mul(&g, p0, ci(&g, MR));
    LLVMValueRef row1 = imin(&g, x->m, mul(&g, add(&g, p0, cnt), ci(&g, MR)));

    Loop lic, ljc, lpc, lig, lir, ljr;
    LLVMValueRef ic = loop_open(&g, &lic, row0, row1, ci(&g, s->mc));
    LLVMValueRef ie = imin(&g, row1, add(&g, ic, ci(&g, s->mc)));
    LLVMValueRef jc = loop_open(&g, &ljc, ci(&g, 0), x->n, ci(&g, s->nc));
    LLVMValueRef nc = imin(&g, ci(&g, s->nc), sub(&g, x->n, jc));
    LLVMValueRef pc = loop_open(&g, &lpc, ci(&g, 0), kend, kstep);
    LLVMValueRef kc = imin(&g, kstep, sub(&g, x->k, pc));
    LLVMValueRef kp = ceil_div(&g, kc, 2);
    LLVMValueRef first = LLVMBuildICmp(b, LLVMIntEQ, pc, ci(&g, 0), "");
    LLVMValueRef rnd = LLVMBuildICmp(b, LLVMIntSGE, add(&g, pc, kstep), kend, ""); /* C to bf16 after the last block */
    pack_pairs(&g, pb, NR, mul(&g, kp, ci(&g, NR)), fptr(&g, B, add(&g, mul(&g, pc, x->sb_k), mul(&g, jc, x->sb_n))), x->sb_k,
               x->sb_n, nc, kc, 0);
    LLVMValueRef ig = loop_open(&g, &lig, ic, ie, ci(&g, (int64_t)PG * MR));
    LLVMValueRef ge = imin(&g, ie, add(&g, ig, ci(&g, (int64_t)PG * MR)));
    LLVMValueRef pstride = mul(&g, kp, ci(&g, MR));
    /* A's panels row-major when k is contiguous and rows are not (pack_pairs' order of cases) */
    LLVMValueRef arows = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntNE, x->sa_m, ci(&g, 1), ""), LLVMBuildICmp(b, LLVMIntEQ, x->sa_k, ci(&g, 1), ""), "");
    LLVMValueRef ars = LLVMBuildSelect(b, arows, kp, ci(&g, 1), ""), aps = LLVMBuildSelect(b, arows, ci(&g, 1), ci(&g, MR), "");
    pack_pairs(&g, pa_all, MR, pstride, fptr(&g, A, add(&g, mul(&g, ig, x->sa_m), mul(&g, pc, x->sa_k))), x->sa_k, x->sa_m,
               sub(&g, ge, ig), kc, 1);
    LLVMValueRef ir = loop_open(&g, &lir, ig, ge, ci(&g, MR));
    LLVMValueRef mr = imin(&g, ci(&g, MR), sub(&g, ge, ir));
    LLVMValueRef pa = iptr(&g, pa_all, mul(&g, sdiv(&g, sub(&g, ir, ig), MR), pstride));
    LLVMValueRef crow = fptr(&g, C, add(&g, mul(&g, ir, x->sc_m), jc));
    LLVMValueRef jr = loop_open(&g, &ljr, ci(&g, 0), nc, ci(&g, NR));
    LLVMValueRef nr = imin(&g, ci(&g, NR), sub(&g, nc, jr));
    LLVMValueRef args[11] = {pa, iptr(&g, pb, mul(&g, jr, kp)), fptr(&g, crow, jr), x->sc_m, kp, mr, nr, first, rnd, ars, aps};
    LLVMBuildCall2(b, LLVMGlobalGetValueType(ukr), ukr, args, 11, "");
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
