/* attn.c — causal attention kernels (TlLKernel.attn) as LLVM IR through the C API:
 * FlashAttention-2 on AVX-512, online softmax, nothing T x T ever stored
 * (docs/cpu-backend.md, "Fused attention").
 *
 * Per head, q, k, v are [T, K] (row-major); s_ij = scale q_i.k_j for j <= i.
 *
 * Every kernel holds a *stationary* block of B rows (B = 16 * NV, one vector lane per
 * row) transposed in a scratch array ([c][row]), and streams the other side's rows in
 * tiles of BK; the tile of scores is computed by an outer-product microkernel
 *     acc[r][v] += broadcast(A_r[c]) * Bt[c][v]          (MR x NV zmm accumulators)
 * so the softmax over the streamed index is vertical, lane-wise vector arithmetic (no
 * horizontal reductions), and the second product of each tile is the same microkernel
 * over the head dimension (MC rows of c at a time).
 *
 * forward, item = (head, query block i0):
 *   Qt = (scale q[i0..i0+B))^T;  m = -inf, l = 0, Ot = 0
 *   for key tiles j0 < min(i0 + B, T):            (causal: none above the diagonal)
 *     S[j][i] = k_j . Qt[.][i], -inf where j > i;  m' = max(m, max_j S);  a = exp(m - m')
 *     P = exp(S - m');  l = a l + sum_j P;  Ot = a Ot + V[j0..]^T P;  m = m'
 *   o_i = Ot[.][i] / l_i,  o_iK = m_i + log l_i
 * backward (FlashAttention-2, recomputing P from L = o[.., K]), item = head:
 *   dq = 0; for each key block j0 (stationary: Kt = (scale k)^T, Vt = v^T; dKt = dVt = 0):
 *     for query tiles i0 >= j0 (streamed), with L_i = o_iK, D_i = g_i.o_i - g_iK:
 *       P[i][j] = exp(q_i . Kt[.][j] - L_i) (0 where j > i),  dP[i][j] = g_i . Vt[.][j],
 *       dS = scale P (dP - D_i);  dVt += G^T P,  dKt += Q^T dS,  dq_i += dS[i][.] K[j0..]
 *     dk = dKt^T, dv = dVt^T
 *   (five products per tile; dq rows belong to the head's item, so no races and no
 *   second pass over the scores).
 * Every output element is written by exactly one item, in an order fixed by the schedule:
 * the results are bitwise the same for any thread count. Partial blocks (T not a multiple
 * of B or BK) clamp row indices to T - 1 for loads (the causal mask zeroes those keys) and
 * store only rows < T. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cpu_internal.h"
#include "cpu_vmath.h"

#define ATTN_MAX_K 256

typedef struct A {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    LLVMBasicBlockRef entry;
    LLVMTypeRef i1, i32, i64, f32, ptr, vf, vi32;
    int K, B, NV, BK, MR, MC, Kp; /* head size; stationary rows; their vectors; streamed
                                     tile; its rows per microkernel; c rows per update;
                                     K rounded up to MC */
    double scale;
    LLVMValueRef T;               /* i64 */
} A;

int tl_cpu_attn_supported(const TlCpuTarget *t, const TlLAttn *a, int64_t K) {
    if (!a->on || !t->gemm || !t->features || !strstr(t->features, "+avx512f")) return 0;
    return K >= 1 && K <= ATTN_MAX_K && a->bq >= 16 && a->bq <= 64 && a->bq % 16 == 0 && a->bk >= 1 && a->bk <= 128;
}

/* ---- small builders ---- */

static LLVMValueRef ci(A *a, int64_t v) { return LLVMConstInt(a->i64, (unsigned long long)v, 1); }
static LLVMValueRef c32(A *a, int v) { return LLVMConstInt(a->i32, (unsigned long long)v, 1); }
static LLVMValueRef cf(A *a, double v) { return LLVMConstReal(a->f32, v); }
static LLVMValueRef add(A *a, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildNSWAdd(a->b, x, y, ""); }
static LLVMValueRef sub(A *a, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildNSWSub(a->b, x, y, ""); }
static LLVMValueRef mul(A *a, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildNSWMul(a->b, x, y, ""); }
static LLVMValueRef imin(A *a, LLVMValueRef x, LLVMValueRef y) {
    return LLVMBuildSelect(a->b, LLVMBuildICmp(a->b, LLVMIntSLT, x, y, ""), x, y, "");
}
static LLVMValueRef fptr(A *a, LLVMValueRef p, LLVMValueRef i) { return LLVMBuildGEP2(a->b, a->f32, p, &i, 1, ""); }
static LLVMValueRef ld(A *a, LLVMValueRef p) { return LLVMBuildLoad2(a->b, a->f32, p, ""); }
static void st(A *a, LLVMValueRef v, LLVMValueRef p) { LLVMBuildStore(a->b, v, p); }
static LLVMValueRef vld(A *a, LLVMValueRef p) {
    LLVMValueRef v = LLVMBuildLoad2(a->b, a->vf, p, "");
    LLVMSetAlignment(v, 64);
    return v;
}
static void vst(A *a, LLVMValueRef v, LLVMValueRef p) { LLVMSetAlignment(LLVMBuildStore(a->b, v, p), 64); }

static LLVMValueRef entry_alloca(A *a, LLVMTypeRef t, int n) {
    LLVMBuilderRef eb = LLVMCreateBuilderInContext(a->ctx);
    LLVMValueRef first = LLVMGetFirstInstruction(a->entry);
    if (first) LLVMPositionBuilderBefore(eb, first);
    else LLVMPositionBuilderAtEnd(eb, a->entry);
    LLVMValueRef r = n ? LLVMBuildArrayAlloca(eb, t, LLVMConstInt(a->i64, (unsigned)n, 0), "") : LLVMBuildAlloca(eb, t, "");
    LLVMSetAlignment(r, 64);
    LLVMDisposeBuilder(eb);
    return r;
}

static LLVMValueRef intrinsic(A *a, const char *name, LLVMTypeRef ov, LLVMValueRef *args, int n) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(a->mod, id, &ov, 1);
    return LLVMBuildCall2(a->b, LLVMIntrinsicGetType(a->ctx, id, &ov, 1), f, args, (unsigned)n, "");
}
static LLVMValueRef vfma(A *a, LLVMValueRef x, LLVMValueRef y, LLVMValueRef z) {
    LLVMValueRef args[3] = {x, y, z};
    return intrinsic(a, "llvm.fma", a->vf, args, 3);
}
static LLVMValueRef vmax(A *a, LLVMValueRef x, LLVMValueRef y) {
    return LLVMBuildSelect(a->b, LLVMBuildFCmp(a->b, LLVMRealOGT, x, y, ""), x, y, "");
}
static LLVMValueRef splat(A *a, LLVMValueRef x) {
    LLVMTypeRef vt = LLVMTypeOf(x) == a->f32 ? a->vf : a->vi32;
    LLVMValueRef v = LLVMBuildInsertElement(a->b, LLVMGetPoison(vt), x, c32(a, 0), "");
    return LLVMBuildShuffleVector(a->b, v, LLVMGetPoison(vt), LLVMConstNull(a->vi32), "");
}
static LLVMValueRef vconst(A *a, double v) { return splat(a, cf(a, v)); }

/* exp of the arguments softmax has (x <= 0 up to rounding), flushed to 0 below e^-87 (no
 * denormal probabilities: they would slow the products' FMAs down, and the masked scores,
 * -inf, come out exactly 0). Cheaper than cpu_vmath's general exp, which handles every
 * range: with t = x log2e, n = roundeven(t), f = t - n in [-1/2, 1/2]: exp(x) = 2^n (1 + f
 * P(f)) (Cephes exp2f's degree-6 P, ~1 ulp), the 2^n scaling by AVX-512's vscalefps (one
 * instruction where building 2^n in the exponent field took four). x < -87 (-inf
 * included, whose f is NaN) is selected to 0 at the end, so x needs no clamping; NaN
 * passes through (every step keeps it). x > 88 cannot occur (a row's max is subtracted)
 * and would give +inf. */
static LLVMValueRef vexp(A *a, LLVMValueRef x) {
    static const double P[] = {1.535336188319500E-4, 1.339887440266574E-3, 9.618437357674640E-3,
                               5.550332471162809E-2, 2.402264791363012E-1, 6.931472028550421E-1};
    LLVMBuilderRef b = a->b;
    LLVMValueRef t = LLVMBuildFMul(b, x, vconst(a, 1.44269504088896341), "");
    LLVMValueRef n = intrinsic(a, "llvm.roundeven", a->vf, &t, 1);
    LLVMValueRef f = LLVMBuildFSub(b, t, n, "");
    LLVMValueRef p = vconst(a, P[0]);
    for (int i = 1; i < 6; i++) p = vfma(a, p, f, vconst(a, P[i]));
    p = vfma(a, p, f, vconst(a, 1.0));
    static const char sname[] = "llvm.x86.avx512.mask.scalef.ps.512";
    unsigned id = LLVMLookupIntrinsicID(sname, sizeof sname - 1);
    LLVMValueRef sf = LLVMGetIntrinsicDeclaration(a->mod, id, NULL, 0);
    LLVMValueRef args[5] = {p, n, LLVMGetPoison(a->vf), LLVMConstInt(LLVMInt16TypeInContext(a->ctx), 0xffff, 0),
                            c32(a, 4) /* the current rounding mode */};
    LLVMValueRef y = LLVMBuildCall2(b, LLVMIntrinsicGetType(a->ctx, id, NULL, 0), sf, args, 5, "");
    return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, x, vconst(a, -87.0), ""), LLVMConstNull(a->vf), y, "");
}

/* <16 x i32>: base + 16 v + lane (base an i64) */
static LLVMValueRef lane_index(A *a, LLVMValueRef base, int v) {
    LLVMValueRef lanes[16];
    for (int l = 0; l < 16; l++) lanes[l] = c32(a, 16 * v + l);
    return LLVMBuildAdd(a->b, splat(a, LLVMBuildTrunc(a->b, base, a->i32, "")), LLVMConstVector(lanes, 16), "");
}

static LLVMBasicBlockRef block(A *a, const char *name) { return LLVMAppendBasicBlockInContext(a->ctx, a->fn, name); }

/* for (v = lo; v < hi; v += step) */
typedef struct Loop { LLVMValueRef slot, step; LLVMBasicBlockRef head, exit; } Loop;

static LLVMValueRef loop_open(A *a, Loop *l, LLVMValueRef lo, LLVMValueRef hi, int64_t step) {
    l->slot = entry_alloca(a, a->i64, 0), l->step = ci(a, step);
    LLVMBuildStore(a->b, lo, l->slot);
    l->head = block(a, "a.loop");
    LLVMBasicBlockRef body = block(a, "a.body");
    l->exit = block(a, "a.done");
    LLVMBuildBr(a->b, l->head);
    LLVMPositionBuilderAtEnd(a->b, l->head);
    LLVMValueRef v = LLVMBuildLoad2(a->b, a->i64, l->slot, "");
    LLVMBuildCondBr(a->b, LLVMBuildICmp(a->b, LLVMIntSLT, v, hi, ""), body, l->exit);
    LLVMPositionBuilderAtEnd(a->b, body);
    return v;
}

static void loop_close(A *a, Loop *l) {
    LLVMBuildStore(a->b, add(a, LLVMBuildLoad2(a->b, a->i64, l->slot, ""), l->step), l->slot);
    LLVMBuildBr(a->b, l->head);
    LLVMPositionBuilderAtEnd(a->b, l->exit);
}

/* Accumulators: R x NV vectors in allocas (promoted to registers by mem2reg). */
typedef struct Acc { LLVMValueRef v[32]; int R; } Acc;

static void acc_init(A *a, Acc *c, int R) {
    c->R = R;
    for (int i = 0; i < R * a->NV; i++) c->v[i] = entry_alloca(a, a->vf, 0);
}
static LLVMValueRef acc_get(A *a, Acc *c, int r, int v) { return LLVMBuildLoad2(a->b, a->vf, c->v[r * a->NV + v], ""); }
static void acc_set(A *a, Acc *c, int r, int v, LLVMValueRef x) { LLVMBuildStore(a->b, x, c->v[r * a->NV + v]); }
static void acc_zero(A *a, Acc *c) {
    for (int r = 0; r < c->R; r++)
        for (int v = 0; v < a->NV; v++) acc_set(a, c, r, v, LLVMConstNull(a->vf));
}

/* The microkernel: acc[r][v] += sum_{c < n} arow[r][c * astride] * bt[c * B + 16 v]
 * (arow: R float pointers; bt: a stationary scratch array of rows of B floats). */
static void opk(A *a, Acc *acc, LLVMValueRef *arow, LLVMValueRef astride, LLVMValueRef bt, LLVMValueRef n) {
    Loop l;
    LLVMValueRef c = loop_open(a, &l, ci(a, 0), n, 1);
    LLVMValueRef bv[4], cb = mul(a, c, ci(a, a->B));
    for (int v = 0; v < a->NV; v++) bv[v] = vld(a, fptr(a, bt, add(a, cb, ci(a, 16 * v))));
    LLVMValueRef ca = mul(a, c, astride);
    for (int r = 0; r < acc->R; r++) {
        LLVMValueRef s = splat(a, ld(a, fptr(a, arow[r], ca)));
        for (int v = 0; v < a->NV; v++) acc_set(a, acc, r, v, vfma(a, s, bv[v], acc_get(a, acc, r, v)));
    }
    loop_close(a, &l);
}

/* dst[c * B + ii] = src[min(r0 + ii, T - 1) * stride + c] * mul for ii < B, c < K:
 * a stationary block transposed (rows past T repeat row T - 1). */
static void pack_t(A *a, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef r0, LLVMValueRef stride, double m) {
    Loop li, lc;
    LLVMValueRef ii = loop_open(a, &li, ci(a, 0), ci(a, a->B), 1);
    LLVMValueRef row = fptr(a, src, mul(a, imin(a, add(a, r0, ii), sub(a, a->T, ci(a, 1))), stride));
    LLVMValueRef c = loop_open(a, &lc, ci(a, 0), ci(a, a->K), 1);
    LLVMValueRef x = ld(a, fptr(a, row, c));
    if (m != 1.0) x = LLVMBuildFMul(a->b, x, cf(a, m), "");
    st(a, x, fptr(a, dst, add(a, mul(a, c, ci(a, a->B)), ii)));
    loop_close(a, &lc);
    loop_close(a, &li);
}

static void zero(A *a, LLVMValueRef dst, int n) {
    Loop l;
    LLVMValueRef i = loop_open(a, &l, ci(a, 0), ci(a, n), 16);
    vst(a, LLVMConstNull(a->vf), fptr(a, dst, i));
    loop_close(a, &l);
}

/* For ii < min(B, T - r0), c < K: dst[(r0 + ii) * stride + c] = src[c * B + ii] * m
 * (times 1 / den[ii] instead when den). */
static void unpack_t(A *a, LLVMValueRef dst, LLVMValueRef stride, LLVMValueRef src, LLVMValueRef r0, double m,
                     LLVMValueRef den) {
    Loop li, lc;
    LLVMValueRef n = imin(a, ci(a, a->B), sub(a, a->T, r0));
    LLVMValueRef ii = loop_open(a, &li, ci(a, 0), n, 1);
    LLVMValueRef f = den ? LLVMBuildFDiv(a->b, cf(a, 1.0), ld(a, fptr(a, den, ii)), "") : cf(a, m);
    LLVMValueRef row = fptr(a, dst, mul(a, add(a, r0, ii), stride));
    LLVMValueRef c = loop_open(a, &lc, ci(a, 0), ci(a, a->K), 1);
    st(a, LLVMBuildFMul(a->b, ld(a, fptr(a, src, add(a, mul(a, c, ci(a, a->B)), ii))), f, ""), fptr(a, row, c));
    loop_close(a, &lc);
    loop_close(a, &li);
}

/* The update of a transposed accumulator: for c0 in [0, Kp) step MC,
 *   dt[c][v] (= dt[c][v] * scl[v] when scl) += sum_{j < n} src[j * sstride + min(c, K-1)] * p[j][v]
 * (src: the streamed rows starting at the tile; p: the tile in scratch, rows of B). */
static void update_t(A *a, LLVMValueRef dt, LLVMValueRef *scl, LLVMValueRef src, LLVMValueRef sstride,
                     LLVMValueRef p, LLVMValueRef n, Acc *acc) {
    Loop l;
    LLVMValueRef c0 = loop_open(a, &l, ci(a, 0), ci(a, a->Kp), a->MC);
    LLVMValueRef arow[16], at[16];
    for (int r = 0; r < a->MC; r++) {
        LLVMValueRef c = add(a, c0, ci(a, r));
        at[r] = mul(a, c, ci(a, a->B));
        arow[r] = fptr(a, src, imin(a, c, ci(a, a->K - 1)));
        for (int v = 0; v < a->NV; v++) {
            LLVMValueRef x = vld(a, fptr(a, dt, add(a, at[r], ci(a, 16 * v))));
            acc_set(a, acc, r, v, scl ? LLVMBuildFMul(a->b, x, scl[v], "") : x);
        }
    }
    opk(a, acc, arow, sstride, p, n);
    for (int r = 0; r < a->MC; r++)
        for (int v = 0; v < a->NV; v++) vst(a, acc_get(a, acc, r, v), fptr(a, dt, add(a, at[r], ci(a, 16 * v))));
    loop_close(a, &l);
}

/* arow[r] = base + min(j + r, T - 1) * stride for the streamed rows of a microkernel. */
static void stream_rows(A *a, LLVMValueRef *arow, LLVMValueRef base, LLVMValueRef j, LLVMValueRef stride) {
    for (int r = 0; r < a->MR; r++)
        arow[r] = fptr(a, base, mul(a, imin(a, add(a, j, ci(a, r)), sub(a, a->T, ci(a, 1))), stride));
}

/* ---- forward ---- */

static void emit_forward(A *a, const TlCpuAttnArgs *x) {
    int B = a->B, NV = a->NV, K = a->K;
    LLVMValueRef T = a->T, K1 = ci(a, K + 1);
    LLVMValueRef qt = entry_alloca(a, a->f32, K * B), sc = entry_alloca(a, a->f32, a->BK * B);
    LLVMValueRef ot = entry_alloca(a, a->f32, a->Kp * B), ms = entry_alloca(a, a->f32, B), ls = entry_alloca(a, a->f32, B);
    LLVMValueRef m[4], l[4], tm[4], al[4];
    for (int v = 0; v < NV; v++) m[v] = entry_alloca(a, a->vf, 0), l[v] = entry_alloca(a, a->vf, 0), tm[v] = entry_alloca(a, a->vf, 0);
    Acc acc;
    acc_init(a, &acc, a->MR > a->MC ? a->MR : a->MC);
    LLVMValueRef nb = LLVMBuildSDiv(a->b, add(a, T, ci(a, B - 1)), ci(a, B), "");
    Loop li;
    LLVMValueRef it = loop_open(a, &li, x->begin, x->end, 1);
    LLVMValueRef hd = LLVMBuildSDiv(a->b, it, nb, ""), i0 = mul(a, LLVMBuildSRem(a->b, it, nb, ""), ci(a, B));
    LLVMValueRef hk = mul(a, mul(a, hd, T), ci(a, K));
    LLVMValueRef qh = fptr(a, x->q, hk), kh = fptr(a, x->k, hk), vh = fptr(a, x->v, hk);
    LLVMValueRef oh = fptr(a, x->out, mul(a, mul(a, hd, T), K1));
    pack_t(a, qt, qh, i0, ci(a, K), a->scale);
    zero(a, ot, a->Kp * B);
    for (int v = 0; v < NV; v++) st(a, vconst(a, -INFINITY), m[v]), st(a, LLVMConstNull(a->vf), l[v]);
    Loop lj;
    LLVMValueRef jend = imin(a, add(a, i0, ci(a, B)), T);
    LLVMValueRef j0 = loop_open(a, &lj, ci(a, 0), jend, a->BK);
    LLVMValueRef nk = imin(a, ci(a, a->BK), sub(a, jend, j0)); /* keys of the tile any row sees */
    for (int v = 0; v < NV; v++) st(a, vconst(a, -INFINITY), tm[v]);
    /* the scores of the tile and their running max; the causal mask only where the tile's
     * keys, padded to MR rows, reach past the block's first query (off the diagonal every
     * score is kept: the same values without a compare and select per vector) */
    LLVMValueRef npad = mul(a, LLVMBuildSDiv(a->b, add(a, nk, ci(a, a->MR - 1)), ci(a, a->MR), ""), ci(a, a->MR));
    LLVMValueRef diag = LLVMBuildICmp(a->b, LLVMIntSGT, sub(a, add(a, j0, npad), ci(a, 1)), i0, "");
    LLVMBasicBlockRef bdiag = block(a, "a.diag"), bbelow = block(a, "a.below"), bscored = block(a, "a.scored");
    LLVMBuildCondBr(a->b, diag, bdiag, bbelow);
    for (int masking = 1; masking >= 0; masking--) {
        LLVMPositionBuilderAtEnd(a->b, masking ? bdiag : bbelow);
        Loop lg;
        LLVMValueRef jg = loop_open(a, &lg, ci(a, 0), nk, a->MR), arow[16];
        LLVMValueRef j = add(a, j0, jg);
        stream_rows(a, arow, kh, j, ci(a, K));
        acc.R = a->MR;
        acc_zero(a, &acc);
        opk(a, &acc, arow, ci(a, 1), qt, ci(a, K));
        for (int r = 0; r < a->MR; r++) {
            LLVMValueRef jr = splat(a, LLVMBuildTrunc(a->b, add(a, j, ci(a, r)), a->i32, ""));
            LLVMValueRef row = mul(a, add(a, jg, ci(a, r)), ci(a, B));
            for (int v = 0; v < NV; v++) {
                LLVMValueRef s = acc_get(a, &acc, r, v);
                if (masking) {
                    LLVMValueRef masked = LLVMBuildICmp(a->b, LLVMIntSGT, jr, lane_index(a, i0, v), "");
                    s = LLVMBuildSelect(a->b, masked, vconst(a, -INFINITY), s, "");
                }
                vst(a, s, fptr(a, sc, add(a, row, ci(a, 16 * v))));
                st(a, vmax(a, LLVMBuildLoad2(a->b, a->vf, tm[v], ""), s), tm[v]);
            }
        }
        loop_close(a, &lg);
        LLVMBuildBr(a->b, bscored);
    }
    LLVMPositionBuilderAtEnd(a->b, bscored);
    for (int v = 0; v < NV; v++) { /* m' = max(m, tile max); a = exp(m - m'); l *= a */
        LLVMValueRef mo = LLVMBuildLoad2(a->b, a->vf, m[v], "");
        LLVMValueRef mn = vmax(a, mo, LLVMBuildLoad2(a->b, a->vf, tm[v], ""));
        al[v] = vexp(a, LLVMBuildFSub(a->b, mo, mn, ""));
        st(a, mn, m[v]);
        st(a, LLVMBuildFMul(a->b, LLVMBuildLoad2(a->b, a->vf, l[v], ""), al[v], ""), l[v]);
    }
    {   /* P = exp(S - m'), l += sum_j P */
        Loop lp;
        LLVMValueRef jj = loop_open(a, &lp, ci(a, 0), nk, 1);
        LLVMValueRef row = mul(a, jj, ci(a, B));
        for (int v = 0; v < NV; v++) {
            LLVMValueRef at = fptr(a, sc, add(a, row, ci(a, 16 * v)));
            LLVMValueRef pv = vexp(a, LLVMBuildFSub(a->b, vld(a, at), LLVMBuildLoad2(a->b, a->vf, m[v], ""), ""));
            vst(a, pv, at);
            st(a, LLVMBuildFAdd(a->b, LLVMBuildLoad2(a->b, a->vf, l[v], ""), pv, ""), l[v]);
        }
        loop_close(a, &lp);
    }
    acc.R = a->MC;
    update_t(a, ot, al, fptr(a, vh, mul(a, j0, ci(a, K))), ci(a, K), sc, nk, &acc);
    loop_close(a, &lj);
    for (int v = 0; v < NV; v++) {
        vst(a, LLVMBuildLoad2(a->b, a->vf, m[v], ""), fptr(a, ms, ci(a, 16 * v)));
        vst(a, LLVMBuildLoad2(a->b, a->vf, l[v], ""), fptr(a, ls, ci(a, 16 * v)));
    }
    unpack_t(a, oh, K1, ot, i0, 1.0, ls);
    {   /* o_iK = m_i + log l_i */
        Loop lr;
        LLVMValueRef ii = loop_open(a, &lr, ci(a, 0), imin(a, ci(a, B), sub(a, T, i0)), 1);
        LLVMValueRef lse = LLVMBuildFAdd(a->b, ld(a, fptr(a, ms, ii)),
                                         tl_vmath_f32(a->mod, a->b, TL_VM_LOG, ld(a, fptr(a, ls, ii))), "");
        st(a, lse, fptr(a, oh, add(a, mul(a, add(a, i0, ii), K1), ci(a, K))));
        loop_close(a, &lr);
    }
    loop_close(a, &li);
}

/* ---- backward ---- */

/* D_r = sum_{c<K} g_rc o_rc - g_rK and L_r = o_rK for rows r0 + ii, ii < n (clamped to T - 1). */
static void row_stats(A *a, LLVMValueRef dd, LLVMValueRef ll, LLVMValueRef gh, LLVMValueRef oh, LLVMValueRef r0, int n) {
    LLVMValueRef K1 = ci(a, a->K + 1);
    Loop li, lc;
    LLVMValueRef ii = loop_open(a, &li, ci(a, 0), ci(a, n), 1);
    LLVMValueRef ro = mul(a, imin(a, add(a, r0, ii), sub(a, a->T, ci(a, 1))), K1);
    LLVMValueRef g = fptr(a, gh, ro), o = fptr(a, oh, ro);
    LLVMValueRef sum = entry_alloca(a, a->f32, 0);
    st(a, LLVMBuildFNeg(a->b, ld(a, fptr(a, g, ci(a, a->K))), ""), sum);
    LLVMValueRef c = loop_open(a, &lc, ci(a, 0), ci(a, a->K), 1);
    st(a, LLVMBuildFAdd(a->b, ld(a, sum), LLVMBuildFMul(a->b, ld(a, fptr(a, g, c)), ld(a, fptr(a, o, c)), ""), ""), sum);
    loop_close(a, &lc);
    st(a, ld(a, sum), fptr(a, dd, ii));
    st(a, ld(a, fptr(a, o, ci(a, a->K))), fptr(a, ll, ii));
    loop_close(a, &li);
}

/* <16 x i1>: lanes 16 v + l < K, and `valid` (an i1) */
static LLVMValueRef kmask(A *a, int v, LLVMValueRef valid) {
    LLVMValueRef lanes[16];
    for (int l = 0; l < 16; l++) lanes[l] = LLVMConstInt(LLVMInt1TypeInContext(a->ctx), 16 * v + l < a->K, 0);
    LLVMValueRef m = LLVMConstVector(lanes, 16);
    if (!valid) return m;
    return LLVMBuildAnd(a->b, m, LLVMBuildShuffleVector(a->b, LLVMBuildInsertElement(a->b, LLVMGetPoison(LLVMVectorType(a->i1, 16)), valid, c32(a, 0), ""),
                                                        LLVMGetPoison(LLVMVectorType(a->i1, 16)), LLVMConstNull(a->vi32), ""), "");
}

static LLVMValueRef mload(A *a, LLVMValueRef p, LLVMValueRef mask) {
    LLVMTypeRef ov[2] = {a->vf, a->ptr};
    unsigned id = LLVMLookupIntrinsicID("llvm.masked.load", 16);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(a->mod, id, ov, 2);
    LLVMValueRef args[4] = {p, c32(a, 4), mask, LLVMConstNull(a->vf)};
    return LLVMBuildCall2(a->b, LLVMIntrinsicGetType(a->ctx, id, ov, 2), f, args, 4, "");
}

static void mstore(A *a, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask) {
    LLVMTypeRef ov[2] = {a->vf, a->ptr};
    unsigned id = LLVMLookupIntrinsicID("llvm.masked.store", 17);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(a->mod, id, ov, 2);
    LLVMValueRef args[4] = {v, p, c32(a, 4), mask};
    LLVMBuildCall2(a->b, LLVMIntrinsicGetType(a->ctx, id, ov, 2), f, args, 4, "");
}

/* dq[i] += sum_{jj < n} ds[ii][jj] k[jj] for the query rows i = i0 + ii of the tile
 * (ii < BK, i < T), vectors along the head dimension: MQ rows x NK vectors per step.
 * kb points at the key block's first row; ds rows are B floats (scale folded in). */
static void update_dq(A *a, LLVMValueRef dqh, LLVMValueRef i0, LLVMValueRef ds, LLVMValueRef kb, LLVMValueRef n,
                      LLVMValueRef *acc, int MQ, int NK) {
    LLVMValueRef K = ci(a, a->K);
    Loop lg, lj;
    LLVMValueRef ig = loop_open(a, &lg, ci(a, 0), ci(a, a->BK), MQ), row[24], valid[24], arow[24];
    for (int r = 0; r < MQ; r++) {
        LLVMValueRef ii = add(a, ig, ci(a, r)), i = add(a, i0, ii);
        valid[r] = LLVMBuildAnd(a->b, LLVMBuildICmp(a->b, LLVMIntSLT, ii, ci(a, a->BK), ""),
                                LLVMBuildICmp(a->b, LLVMIntSLT, i, a->T, ""), "");
        row[r] = fptr(a, dqh, mul(a, imin(a, i, sub(a, a->T, ci(a, 1))), K));
        arow[r] = fptr(a, ds, mul(a, ii, ci(a, a->B)));
        for (int v = 0; v < NK; v++) LLVMBuildStore(a->b, mload(a, fptr(a, row[r], ci(a, 16 * v)), kmask(a, v, valid[r])), acc[r * NK + v]);
    }
    LLVMValueRef jj = loop_open(a, &lj, ci(a, 0), n, 1), kv[16];
    LLVMValueRef krow = fptr(a, kb, mul(a, jj, K));
    for (int v = 0; v < NK; v++) kv[v] = 16 * v + 16 <= a->K ? LLVMBuildLoad2(a->b, a->vf, fptr(a, krow, ci(a, 16 * v)), "")
                                                             : mload(a, fptr(a, krow, ci(a, 16 * v)), kmask(a, v, NULL));
    for (int v = 0; v < NK; v++)
        if (16 * v + 16 <= a->K) LLVMSetAlignment(kv[v], 4);
    for (int r = 0; r < MQ; r++) {
        LLVMValueRef sv = splat(a, ld(a, fptr(a, arow[r], jj)));
        for (int v = 0; v < NK; v++)
            LLVMBuildStore(a->b, vfma(a, sv, kv[v], LLVMBuildLoad2(a->b, a->vf, acc[r * NK + v], "")), acc[r * NK + v]);
    }
    loop_close(a, &lj);
    for (int r = 0; r < MQ; r++)
        for (int v = 0; v < NK; v++)
            mstore(a, LLVMBuildLoad2(a->b, a->vf, acc[r * NK + v], ""), fptr(a, row[r], ci(a, 16 * v)), kmask(a, v, valid[r]));
    loop_close(a, &lg);
}

/* The backward of one head: for each key block j0 (stationary, Kt = (scale k)^T, Vt =
 * v^T), for each query tile i0 >= j0: P, dS as above (dS scaled), dVt += G^T P,
 * dKt += Q^T dS, dq += dS K; then the block's dk, dv. dq rows are owned by the head's
 * item and accumulated in key block order. */
static void emit_backward_head(A *a, LLVMValueRef qh, LLVMValueRef kh, LLVMValueRef vh, LLVMValueRef oh,
                               LLVMValueRef gh, LLVMValueRef dqh, LLVMValueRef dkh, LLVMValueRef dvh, LLVMValueRef *scratch,
                               Acc *acc, LLVMValueRef *qacc, int MQ, int NK) {
    int B = a->B, NV = a->NV, K = a->K;
    LLVMValueRef kt = scratch[0], vt = scratch[1], dkt = scratch[2], sc = scratch[3], dd = scratch[4], ll = scratch[5];
    LLVMValueRef dvt = scratch[6], ds = scratch[7];
    LLVMValueRef T = a->T, K1 = ci(a, K + 1);
    {   /* dq = 0 */
        Loop lz;
        LLVMValueRef z = loop_open(a, &lz, ci(a, 0), mul(a, T, ci(a, K)), 1);
        st(a, cf(a, 0), fptr(a, dqh, z));
        loop_close(a, &lz);
    }
    Loop lb;
    LLVMValueRef j0 = loop_open(a, &lb, ci(a, 0), T, B);
    pack_t(a, kt, kh, j0, ci(a, K), a->scale);
    pack_t(a, vt, vh, j0, ci(a, K), 1.0);
    zero(a, dkt, a->Kp * B);
    zero(a, dvt, a->Kp * B);
    Loop li;
    LLVMValueRef i0 = loop_open(a, &li, j0, T, a->BK);
    row_stats(a, dd, ll, gh, oh, i0, a->BK);
    {
        Loop lg;
        LLVMValueRef ig = loop_open(a, &lg, ci(a, 0), ci(a, a->BK), a->MR), arow[16];
        LLVMValueRef i = add(a, i0, ig);
        acc->R = a->MR;
        /* P[i][j] = exp(q_i . Kt[.][j] - L_i), 0 where j > i */
        stream_rows(a, arow, qh, i, ci(a, K));
        acc_zero(a, acc);
        opk(a, acc, arow, ci(a, 1), kt, ci(a, K));
        for (int r = 0; r < a->MR; r++) {
            LLVMValueRef ir = splat(a, LLVMBuildTrunc(a->b, add(a, i, ci(a, r)), a->i32, ""));
            LLVMValueRef row = mul(a, add(a, ig, ci(a, r)), ci(a, B));
            LLVMValueRef lr = splat(a, ld(a, fptr(a, ll, add(a, ig, ci(a, r)))));
            for (int v = 0; v < NV; v++) {
                LLVMValueRef p = vexp(a, LLVMBuildFSub(a->b, acc_get(a, acc, r, v), lr, ""));
                LLVMValueRef masked = LLVMBuildICmp(a->b, LLVMIntSGT, lane_index(a, j0, v), ir, "");
                vst(a, LLVMBuildSelect(a->b, masked, LLVMConstNull(a->vf), p, ""), fptr(a, sc, add(a, row, ci(a, 16 * v))));
            }
        }
        /* dS = scale P (dP - D_i), dP[i][j] = g_i . Vt[.][j] */
        stream_rows(a, arow, gh, i, K1);
        acc_zero(a, acc);
        opk(a, acc, arow, ci(a, 1), vt, ci(a, K));
        for (int r = 0; r < a->MR; r++) {
            LLVMValueRef row = mul(a, add(a, ig, ci(a, r)), ci(a, B));
            LLVMValueRef dr = splat(a, ld(a, fptr(a, dd, add(a, ig, ci(a, r)))));
            for (int v = 0; v < NV; v++) {
                LLVMValueRef off = add(a, row, ci(a, 16 * v));
                LLVMValueRef d = LLVMBuildFSub(a->b, acc_get(a, acc, r, v), dr, "");
                LLVMValueRef x = LLVMBuildFMul(a->b, LLVMBuildFMul(a->b, vld(a, fptr(a, sc, off)), d, ""), vconst(a, a->scale), "");
                vst(a, x, fptr(a, ds, off));
            }
        }
        loop_close(a, &lg);
    }
    LLVMValueRef n = imin(a, ci(a, a->BK), sub(a, T, i0));
    acc->R = a->MC;
    update_t(a, dvt, NULL, fptr(a, gh, mul(a, i0, K1)), K1, sc, n, acc);
    update_t(a, dkt, NULL, fptr(a, qh, mul(a, i0, ci(a, K))), ci(a, K), ds, n, acc);
    update_dq(a, dqh, i0, ds, fptr(a, kh, mul(a, j0, ci(a, K))), imin(a, ci(a, B), sub(a, T, j0)), qacc, MQ, NK);
    loop_close(a, &li);
    unpack_t(a, dkh, ci(a, K), dkt, j0, 1.0, NULL);
    unpack_t(a, dvh, ci(a, K), dvt, j0, 1.0, NULL);
    loop_close(a, &lb);
}

static void emit_backward(A *a, const TlCpuAttnArgs *x) {
    int B = a->B, K = a->K;
    LLVMValueRef T = a->T, K1 = ci(a, K + 1);
    int NK = (K + 15) / 16, MQ = 24 / NK < 1 ? 1 : 24 / NK > 8 ? 8 : 24 / NK;
    int stile = a->BK > B ? a->BK : B; /* rows of the stats arrays */
    LLVMValueRef scratch[8] = {
        entry_alloca(a, a->f32, K * B), entry_alloca(a, a->f32, K * B), entry_alloca(a, a->f32, a->Kp * B),
        entry_alloca(a, a->f32, a->BK * B), entry_alloca(a, a->f32, stile), entry_alloca(a, a->f32, stile),
        entry_alloca(a, a->f32, a->Kp * B), entry_alloca(a, a->f32, (a->BK + MQ) * B),
    };
    Acc acc;
    acc_init(a, &acc, a->MR > a->MC ? a->MR : a->MC);
    LLVMValueRef qacc[24];
    for (int i = 0; i < MQ * NK; i++) qacc[i] = entry_alloca(a, a->vf, 0);
    LLVMValueRef N = mul(a, mul(a, x->bh, T), ci(a, K));
    Loop li;
    LLVMValueRef hd = loop_open(a, &li, x->begin, x->end, 1);
    LLVMValueRef hk = mul(a, mul(a, hd, T), ci(a, K)), ho = mul(a, mul(a, hd, T), K1);
    LLVMValueRef qh = fptr(a, x->q, hk), kh = fptr(a, x->k, hk), vh = fptr(a, x->v, hk);
    LLVMValueRef oh = fptr(a, x->o, ho), gh = fptr(a, x->g, ho);
    LLVMValueRef dq = fptr(a, x->out, hk), dk = fptr(a, x->out, add(a, N, hk)), dv = fptr(a, x->out, add(a, add(a, N, N), hk));
    emit_backward_head(a, qh, kh, vh, oh, gh, dq, dk, dv, scratch, &acc, qacc, MQ, NK);
    loop_close(a, &li);
}

void tl_cpu_attn_emit(LLVMModuleRef mod, LLVMBuilderRef b, LLVMValueRef fn, const TlLAttn *s, int64_t K,
                      const TlCpuAttnArgs *x) {
    A a;
    memset(&a, 0, sizeof a);
    a.ctx = LLVMGetModuleContext(mod), a.mod = mod, a.b = b, a.fn = fn;
    a.entry = LLVMGetEntryBasicBlock(fn);
    a.i1 = LLVMInt1TypeInContext(a.ctx), a.i32 = LLVMInt32TypeInContext(a.ctx), a.i64 = LLVMInt64TypeInContext(a.ctx);
    a.f32 = LLVMFloatTypeInContext(a.ctx), a.ptr = LLVMPointerTypeInContext(a.ctx, 0);
    a.vf = LLVMVectorType(a.f32, 16), a.vi32 = LLVMVectorType(a.i32, 16);
    a.K = (int)K, a.B = s->bq, a.NV = s->bq / 16;
    a.MR = 24 / a.NV > 8 ? 8 : 24 / a.NV;          /* streamed rows: MR x NV <= 24 zmm */
    a.BK = (s->bk + a.MR - 1) / a.MR * a.MR;      /* whole microkernels per tile */
    a.MC = a.MR;
    a.Kp = (a.K + a.MC - 1) / a.MC * a.MC;
    a.scale = s->scale;
    a.T = x->t;
    if (s->grad) emit_backward(&a, x);
    else emit_forward(&a, x);
}
