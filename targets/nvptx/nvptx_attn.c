/* nvptx_attn.c — causal attention (TlLKernel.attn, f32) as fused, shared-memory tiled GPU
 * kernels: FlashAttention-2's online softmax forward and its two-pass deterministic
 * backward, instead of the reference loop nests (one thread per row doing everything).
 *
 * Launch (TL_GPU_LAUNCH_ATTN, runtime/gpuprog.c): blocks of R = TL_GPU_ATTN_ROWS (64)
 * threads, grid (ceil(T / R), BH, passes): block (x, h, z) owns R consecutive rows of head
 * h, one thread per row ("own" rows, r = tid); the other side's rows stream through shared
 * memory in tiles of S = 16 rows. Per head, q, k, v are [T, K], o (the forward's output)
 * and g (its adjoint) [T, K + 1] (the last column: each row's logsumexp L), K <= 64 and a
 * constant. s_ij = scale q_i.k_j for j <= i.
 *
 * Own rows are staged transposed in shared memory (own[c * RP + r], RP = R + 1: conflict-
 * free both when staged, a row at a time, and when read, a column per thread), the
 * streamed tile row-major (st[jj * K + c]: every thread reads the same word, a broadcast).
 * The products are straight-line code over (c, jj) with the per-row accumulators (K of
 * them) in registers:
 *
 * forward, z = 0: own = scale q_i; m = -inf, l = 0, acc = 0
 *   for key tiles j0 < min(i0 + R, T):  st1 = k, st2 = v rows j0..j0+S (clamped to T - 1)
 *     s_jj = own . st1[jj] (masked: -inf where j0 + jj > i);  m' = max(m, max s)
 *     a = exp(m - m') (0 while m = -inf);  p = exp(s - m') (0 where masked)
 *     l = a l + sum p;  acc = a acc + sum_jj p_jj st2[jj];  m = m'
 *   o_i = acc / l, o_iK = m + log l                               (rows i < T)
 * backward, z = 0 (dk, dv; own rows are keys j): own1 = scale k_j, own2 = v_j
 *   for query tiles i0 = x R, .. < T:  st1 = q, st2 = g rows; L_i = o_iK and
 *     D_i = g_i.o_i - g_iK (the L column's adjoint enters here, as on the CPU) by threads < S
 *     P = exp(own1 . q_i - L_i) where j <= i < T, else 0;  dP = own2 . g_i
 *     dS = scale P (dP - D_i);  dv_j += sum_i P g_i,  dk_j += sum_i dS q_i
 * backward, z = 1 (dq; own rows are queries i): own1 = scale q_i, own2 = g_i, L_i, D_i
 *   for key tiles j0 < min(i0 + R, T):  st1 = k, st2 = v rows
 *     P, dS as above (masked j > i);  dq_i += sum_j dS k_j
 * The two backward passes write disjoint outputs (dq; dk, dv), each element by one thread
 * in a fixed order: no atomics, and the results are the same on every run.
 *
 * Partial tiles clamp row indices to T - 1 for loads (the masks zero those rows'
 * contributions) and store only rows < T. Every tile loop has bounds uniform over the
 * block, so the barriers are reached by all threads. exp and log are libdevice's. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nvptx_internal.h"

enum { R = TL_GPU_ATTN_ROWS, RP = R + 1, SMAX = 16, KMAX = 64 };

int tl_nvptx_attn_head(const TlLProgram *p, int k, const NvTarget *t) {
    const TlLAttn *a = &p->kern[k].attn;
    if (!a->on || t->no_attn || a->kd < 0) return 0;
    const TlLExpr *e = &p->ex[a->kd];
    if (e->kind != TL_LE_INT || e->ival < 1 || e->ival > KMAX) return 0;
    int bufs[6] = {a->q, a->k, a->v, a->out, a->o, a->grad ? a->g : a->out};
    for (int i = 0; i < 6; i++)
        if (bufs[i] < 0 || bufs[i] >= p->nbuf || p->buf[bufs[i]].elem != TL_LT_F32) return 0;
    return (int)e->ival;
}

typedef struct At {
    NvCg *c;
    LLVMBuilderRef b;
    int K, S;   /* head size; streamed rows per tile */
    double scale;
    LLVMValueRef T, tid, own1, own2, st1, st2, stl, std_;
} At;

static LLVMValueRef ci(At *a, int64_t v) { return LLVMConstInt(a->c->i64, (unsigned long long)v, 1); }
static LLVMValueRef cf(At *a, double v) { return LLVMConstReal(a->c->f32, v); }
static LLVMValueRef add(At *a, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildAdd(a->b, x, y, ""); }
static LLVMValueRef mul(At *a, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildMul(a->b, x, y, ""); }
static LLVMValueRef imin(At *a, LLVMValueRef x, LLVMValueRef y) {
    return LLVMBuildSelect(a->b, LLVMBuildICmp(a->b, LLVMIntSLT, x, y, ""), x, y, "");
}
static LLVMValueRef slt(At *a, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildICmp(a->b, LLVMIntSLT, x, y, ""); }
static LLVMValueRef sle(At *a, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildICmp(a->b, LLVMIntSLE, x, y, ""); }
static LLVMValueRef at(At *a, LLVMValueRef base, LLVMValueRef i) { return LLVMBuildInBoundsGEP2(a->b, a->c->f32, base, &i, 1, ""); }
static LLVMValueRef ld(At *a, LLVMValueRef p) { return LLVMBuildLoad2(a->b, a->c->f32, p, ""); }
static void st(At *a, LLVMValueRef v, LLVMValueRef p) { LLVMBuildStore(a->b, v, p); }
static LLVMValueRef f_add(At *a, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFAdd(a->b, x, y, ""); }
static LLVMValueRef f_sub(At *a, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFSub(a->b, x, y, ""); }
static LLVMValueRef f_mul(At *a, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFMul(a->b, x, y, ""); }
static LLVMValueRef fma_(At *a, LLVMValueRef x, LLVMValueRef y, LLVMValueRef z) {
    LLVMTypeRef ft = a->c->f32;
    LLVMValueRef args[3] = {x, y, z};
    return tl_nvptx_intrinsic(a->c, "llvm.fma", &ft, 1, args, 3);
}
static LLVMValueRef fmax_(At *a, LLVMValueRef x, LLVMValueRef y) {
    return LLVMBuildSelect(a->b, LLVMBuildFCmp(a->b, LLVMRealOGT, x, y, ""), x, y, "");
}
static void barrier(At *a) { tl_nvptx_intrinsic(a->c, "llvm.nvvm.barrier0", NULL, 0, NULL, 0); }

/* libdevice's __nv_<name>f(x) */
static LLVMValueRef libm(At *a, const char *name, LLVMValueRef x) {
    NvCg *c = a->c;
    LLVMTypeRef ft = LLVMFunctionType(c->f32, &c->f32, 1, 0);
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
    if (!f) f = LLVMAddFunction(c->mod, name, ft);
    return LLVMBuildCall2(a->b, ft, f, &x, 1, "");
}

static LLVMValueRef shared(NvCg *c, const char *name, int n) {
    LLVMValueRef g = LLVMGetNamedGlobal(c->mod, name);
    if (g) return g;
    LLVMTypeRef t = LLVMArrayType2(c->f32, (uint64_t)n);
    g = LLVMAddGlobalInAddressSpace(c->mod, t, name, 3);
    LLVMSetInitializer(g, LLVMGetUndef(t));
    LLVMSetLinkage(g, LLVMInternalLinkage);
    LLVMSetAlignment(g, 16);
    return g;
}

static LLVMValueRef slot(At *a, LLVMTypeRef t, LLVMValueRef init) {
    LLVMValueRef s = tl_nvptx_entry_alloca(a->c, t);
    LLVMBuildStore(a->b, init, s);
    return s;
}
static LLVMValueRef get(At *a, LLVMValueRef s) { return LLVMBuildLoad2(a->b, LLVMGetAllocatedType(s), s, ""); }

/* for (v = lo; v < hi; v += step): uniform or per-thread bounds */
typedef struct Loop { LLVMValueRef slot, step; LLVMBasicBlockRef head, exit; } Loop;

static LLVMValueRef loop_open(At *a, Loop *l, LLVMValueRef lo, LLVMValueRef hi, int64_t step) {
    NvCg *c = a->c;
    l->slot = slot(a, c->i64, lo), l->step = ci(a, step);
    l->head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "attn.loop");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "attn.body");
    l->exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "attn.done");
    LLVMBuildBr(a->b, l->head);
    LLVMPositionBuilderAtEnd(a->b, l->head);
    LLVMValueRef v = get(a, l->slot);
    LLVMBuildCondBr(a->b, slt(a, v, hi), body, l->exit);
    LLVMPositionBuilderAtEnd(a->b, body);
    return v;
}

static void loop_close(At *a, Loop *l) {
    LLVMBuildStore(a->b, add(a, get(a, l->slot), l->step), l->slot);
    LLVMBuildBr(a->b, l->head);
    LLVMPositionBuilderAtEnd(a->b, l->exit);
}

/* if (cond) { ... } */
static LLVMBasicBlockRef if_open(At *a, LLVMValueRef cond) {
    NvCg *c = a->c;
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "attn.then");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "attn.endif");
    LLVMBuildCondBr(a->b, cond, then, done);
    LLVMPositionBuilderAtEnd(a->b, then);
    return done;
}
static void if_close(At *a, LLVMBasicBlockRef done) {
    LLVMBuildBr(a->b, done);
    LLVMPositionBuilderAtEnd(a->b, done);
}

/* own[c * RP + rr] = src[min(r0 + rr, T - 1) * stride + c] * m for rr < R, c < K (the
 * block's threads cooperatively, consecutive threads on consecutive c: coalesced) */
static void stage_own(At *a, LLVMValueRef own, LLVMValueRef src, LLVMValueRef stride, LLVMValueRef r0, double m) {
    Loop l;
    LLVMValueRef e = loop_open(a, &l, a->tid, ci(a, (int64_t)R * a->K), R);
    LLVMValueRef rr = LLVMBuildUDiv(a->b, e, ci(a, a->K), ""), cc = LLVMBuildURem(a->b, e, ci(a, a->K), "");
    LLVMValueRef row = imin(a, add(a, r0, rr), LLVMBuildSub(a->b, a->T, ci(a, 1), ""));
    LLVMValueRef x = ld(a, at(a, src, add(a, mul(a, row, stride), cc)));
    if (m != 1.0) x = f_mul(a, x, cf(a, m));
    st(a, x, at(a, own, add(a, mul(a, cc, ci(a, RP)), rr)));
    loop_close(a, &l);
}

/* dst[jj * K + c] = src[min(r0 + jj, T - 1) * stride + c] for jj < a->S, c < K */
static void stage_tile(At *a, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef stride, LLVMValueRef r0) {
    Loop l;
    LLVMValueRef e = loop_open(a, &l, a->tid, ci(a, (int64_t)a->S * a->K), R);
    LLVMValueRef rr = LLVMBuildUDiv(a->b, e, ci(a, a->K), ""), cc = LLVMBuildURem(a->b, e, ci(a, a->K), "");
    LLVMValueRef row = imin(a, add(a, r0, rr), LLVMBuildSub(a->b, a->T, ci(a, 1), ""));
    st(a, ld(a, at(a, src, add(a, mul(a, row, stride), cc))), at(a, dst, e));
    loop_close(a, &l);
}

/* out[jj] = sum_c own[c * RP + tid] * tile[jj * K + c] for jj < a->S */
static void dots(At *a, LLVMValueRef *out, LLVMValueRef own, LLVMValueRef tile) {
    for (int jj = 0; jj < a->S; jj++) out[jj] = cf(a, 0);
    for (int c = 0; c < a->K; c++) {
        LLVMValueRef w = ld(a, at(a, own, add(a, a->tid, ci(a, (int64_t)c * RP))));
        for (int jj = 0; jj < a->S; jj++) out[jj] = fma_(a, w, ld(a, at(a, tile, ci(a, (int64_t)jj * a->K + c))), out[jj]);
    }
}

/* acc[c] = acc[c] * (scl or 1) + sum_jj w[jj] tile[jj * K + c] (acc: K slots) */
static void axpys(At *a, LLVMValueRef *acc, LLVMValueRef scl, LLVMValueRef *w, LLVMValueRef tile) {
    for (int c = 0; c < a->K; c++) {
        LLVMValueRef x = get(a, acc[c]);
        if (scl) x = f_mul(a, x, scl);
        for (int jj = 0; jj < a->S; jj++) x = fma_(a, w[jj], ld(a, at(a, tile, ci(a, (int64_t)jj * a->K + c))), x);
        st(a, x, acc[c]);
    }
}

/* D = sum_{c<K} g[c] o[c] - g[K] of one row (g, o: pointers to the row) */
static LLVMValueRef row_d(At *a, LLVMValueRef g, LLVMValueRef o) {
    LLVMValueRef d = cf(a, 0);
    for (int c = 0; c < a->K; c++) d = fma_(a, ld(a, at(a, g, ci(a, c))), ld(a, at(a, o, ci(a, c))), d);
    return f_sub(a, d, ld(a, at(a, g, ci(a, a->K))));
}

static void emit_forward(At *a, const TlLAttn *s, LLVMValueRef x, LLVMValueRef hd) {
    NvCg *c = a->c;
    int K = a->K;
    LLVMValueRef T = a->T, K1 = ci(a, K + 1), Kc = ci(a, K);
    LLVMValueRef i0 = mul(a, x, ci(a, R)), i = add(a, i0, a->tid), ic = imin(a, i, LLVMBuildSub(a->b, T, ci(a, 1), ""));
    LLVMValueRef hk = mul(a, mul(a, hd, T), Kc), ho = mul(a, mul(a, hd, T), K1);
    LLVMValueRef qh = at(a, c->bufv[s->q], hk), kh = at(a, c->bufv[s->k], hk), vh = at(a, c->bufv[s->v], hk);
    LLVMValueRef oh = at(a, c->bufv[s->out], ho);
    stage_own(a, a->own1, qh, Kc, i0, a->scale);
    LLVMValueRef m = slot(a, c->f32, cf(a, -INFINITY)), l = slot(a, c->f32, cf(a, 0)), acc[KMAX];
    for (int cc = 0; cc < K; cc++) acc[cc] = slot(a, c->f32, cf(a, 0));
    Loop lj;
    LLVMValueRef j0 = loop_open(a, &lj, ci(a, 0), imin(a, add(a, i0, ci(a, R)), T), a->S);
    barrier(a); /* the previous tile (or the staging of own) is done with */
    stage_tile(a, a->st1, kh, Kc, j0);
    stage_tile(a, a->st2, vh, Kc, j0);
    barrier(a);
    LLVMValueRef sc[SMAX], ok[SMAX], p[SMAX];
    dots(a, sc, a->own1, a->st1);
    LLVMValueRef mo = get(a, m), mn = mo;
    for (int jj = 0; jj < a->S; jj++) {
        ok[jj] = sle(a, add(a, j0, ci(a, jj)), ic);
        mn = LLVMBuildSelect(a->b, ok[jj], fmax_(a, mn, sc[jj]), mn, "");
    }
    /* key j0 <= ic always: mn is a score, finite for finite inputs */
    LLVMValueRef alpha = LLVMBuildSelect(a->b, LLVMBuildFCmp(a->b, LLVMRealOEQ, mo, cf(a, -INFINITY), ""), cf(a, 0),
                                         libm(a, "__nv_expf", f_sub(a, mo, mn)), "");
    LLVMValueRef sum = f_mul(a, get(a, l), alpha);
    for (int jj = 0; jj < a->S; jj++) {
        p[jj] = LLVMBuildSelect(a->b, ok[jj], libm(a, "__nv_expf", f_sub(a, sc[jj], mn)), cf(a, 0), "");
        sum = f_add(a, sum, p[jj]);
    }
    st(a, sum, l), st(a, mn, m);
    axpys(a, acc, alpha, p, a->st2);
    loop_close(a, &lj);
    LLVMBasicBlockRef done = if_open(a, slt(a, i, T));
    LLVMValueRef row = at(a, oh, mul(a, i, K1)), lv = get(a, l);
    for (int cc = 0; cc < K; cc++) st(a, LLVMBuildFDiv(a->b, get(a, acc[cc]), lv, ""), at(a, row, ci(a, cc)));
    st(a, f_add(a, get(a, m), libm(a, "__nv_logf", lv)), at(a, row, Kc));
    if_close(a, done);
}

/* dk, dv of the key rows j = x R + tid */
static void emit_dkdv(At *a, const TlLAttn *s, LLVMValueRef x, LLVMValueRef hd, LLVMValueRef N) {
    NvCg *c = a->c;
    int K = a->K;
    LLVMValueRef T = a->T, K1 = ci(a, K + 1), Kc = ci(a, K);
    LLVMValueRef j0 = mul(a, x, ci(a, R)), j = add(a, j0, a->tid), jc = imin(a, j, LLVMBuildSub(a->b, T, ci(a, 1), ""));
    LLVMValueRef hk = mul(a, mul(a, hd, T), Kc), ho = mul(a, mul(a, hd, T), K1);
    LLVMValueRef qh = at(a, c->bufv[s->q], hk), kh = at(a, c->bufv[s->k], hk), vh = at(a, c->bufv[s->v], hk);
    LLVMValueRef oh = at(a, c->bufv[s->o], ho), gh = at(a, c->bufv[s->g], ho), out = c->bufv[s->out];
    stage_own(a, a->own1, kh, Kc, j0, a->scale);
    stage_own(a, a->own2, vh, Kc, j0, 1.0);
    LLVMValueRef dk[KMAX], dv[KMAX];
    for (int cc = 0; cc < K; cc++) dk[cc] = slot(a, c->f32, cf(a, 0)), dv[cc] = slot(a, c->f32, cf(a, 0));
    Loop li;
    LLVMValueRef i0 = loop_open(a, &li, j0, T, a->S);
    barrier(a);
    stage_tile(a, a->st1, qh, Kc, i0);
    stage_tile(a, a->st2, gh, K1, i0);
    {   /* L and D of the tile's query rows */
        LLVMBasicBlockRef done = if_open(a, slt(a, a->tid, ci(a, a->S)));
        LLVMValueRef r = mul(a, imin(a, add(a, i0, a->tid), LLVMBuildSub(a->b, T, ci(a, 1), "")), K1);
        LLVMValueRef orow = at(a, oh, r), grow = at(a, gh, r);
        st(a, ld(a, at(a, orow, Kc)), at(a, a->stl, a->tid));
        st(a, row_d(a, grow, orow), at(a, a->std_, a->tid));
        if_close(a, done);
    }
    barrier(a);
    LLVMValueRef sc[SMAX], dp[SMAX], p[SMAX], ds[SMAX];
    dots(a, sc, a->own1, a->st1);
    dots(a, dp, a->own2, a->st2);
    for (int jj = 0; jj < a->S; jj++) {
        LLVMValueRef i = add(a, i0, ci(a, jj));
        LLVMValueRef ok = LLVMBuildAnd(a->b, sle(a, jc, i), slt(a, i, T), "");
        LLVMValueRef e = libm(a, "__nv_expf", f_sub(a, sc[jj], ld(a, at(a, a->stl, ci(a, jj)))));
        p[jj] = LLVMBuildSelect(a->b, ok, e, cf(a, 0), "");
        ds[jj] = f_mul(a, f_mul(a, p[jj], f_sub(a, dp[jj], ld(a, at(a, a->std_, ci(a, jj))))), cf(a, a->scale));
    }
    barrier(a); /* no thread writes the tiles here: it keeps the dots' loads from being reused
                   (held in registers) by the updates below */
    axpys(a, dv, NULL, p, a->st2);
    axpys(a, dk, NULL, ds, a->st1);
    loop_close(a, &li);
    LLVMBasicBlockRef done = if_open(a, slt(a, j, T));
    LLVMValueRef dkrow = at(a, out, add(a, N, add(a, hk, mul(a, j, Kc))));
    LLVMValueRef dvrow = at(a, out, add(a, add(a, N, N), add(a, hk, mul(a, j, Kc))));
    for (int cc = 0; cc < K; cc++) st(a, get(a, dk[cc]), at(a, dkrow, ci(a, cc))), st(a, get(a, dv[cc]), at(a, dvrow, ci(a, cc)));
    if_close(a, done);
}

/* dq of the query rows i = x R + tid */
static void emit_dq(At *a, const TlLAttn *s, LLVMValueRef x, LLVMValueRef hd) {
    NvCg *c = a->c;
    int K = a->K;
    LLVMValueRef T = a->T, K1 = ci(a, K + 1), Kc = ci(a, K);
    LLVMValueRef i0 = mul(a, x, ci(a, R)), i = add(a, i0, a->tid), ic = imin(a, i, LLVMBuildSub(a->b, T, ci(a, 1), ""));
    LLVMValueRef hk = mul(a, mul(a, hd, T), Kc), ho = mul(a, mul(a, hd, T), K1);
    LLVMValueRef qh = at(a, c->bufv[s->q], hk), kh = at(a, c->bufv[s->k], hk), vh = at(a, c->bufv[s->v], hk);
    LLVMValueRef oh = at(a, c->bufv[s->o], ho), gh = at(a, c->bufv[s->g], ho), out = c->bufv[s->out];
    stage_own(a, a->own1, qh, Kc, i0, a->scale);
    stage_own(a, a->own2, gh, K1, i0, 1.0);
    LLVMValueRef orow = at(a, oh, mul(a, ic, K1)), grow = at(a, gh, mul(a, ic, K1));
    LLVMValueRef L = ld(a, at(a, orow, Kc)), D = row_d(a, grow, orow);
    LLVMValueRef dq[KMAX];
    for (int cc = 0; cc < K; cc++) dq[cc] = slot(a, c->f32, cf(a, 0));
    Loop lj;
    LLVMValueRef j0 = loop_open(a, &lj, ci(a, 0), imin(a, add(a, i0, ci(a, R)), T), a->S);
    barrier(a);
    stage_tile(a, a->st1, kh, Kc, j0);
    stage_tile(a, a->st2, vh, Kc, j0);
    barrier(a);
    LLVMValueRef sc[SMAX], dp[SMAX], ds[SMAX];
    dots(a, sc, a->own1, a->st1);
    dots(a, dp, a->own2, a->st2);
    for (int jj = 0; jj < a->S; jj++) {
        LLVMValueRef ok = sle(a, add(a, j0, ci(a, jj)), ic);
        LLVMValueRef p = LLVMBuildSelect(a->b, ok, libm(a, "__nv_expf", f_sub(a, sc[jj], L)), cf(a, 0), "");
        ds[jj] = f_mul(a, f_mul(a, p, f_sub(a, dp[jj], D)), cf(a, a->scale));
    }
    barrier(a); /* as in emit_dkdv */
    axpys(a, dq, NULL, ds, a->st1);
    loop_close(a, &lj);
    LLVMBasicBlockRef done = if_open(a, slt(a, i, T));
    LLVMValueRef row = at(a, out, add(a, hk, mul(a, i, Kc)));
    for (int cc = 0; cc < K; cc++) st(a, get(a, dq[cc]), at(a, row, ci(a, cc)));
    if_close(a, done);
}

void tl_nvptx_gen_attn(NvCg *c, const TlLAttn *s, int K) {
    At a;
    memset(&a, 0, sizeof a);
    a.c = c, a.b = c->b, a.K = K, a.scale = s->scale;
    /* the backward holds two accumulator rows and four values per streamed row: 8 keeps it
       within 255 registers without spills (test_nvptx, K = 64) */
    a.S = s->grad ? 8 : 16;
    a.T = tl_nvptx_gen(c, s->t);
    LLVMValueRef BH = tl_nvptx_gen(c, s->bh);
    a.tid = tl_nvptx_sreg(c, "tid.x");
    LLVMValueRef x = tl_nvptx_sreg(c, "ctaid.x"), hd = tl_nvptx_sreg(c, "ctaid.y"), z = tl_nvptx_sreg(c, "ctaid.z");
    a.own1 = shared(c, "tl.attn.own1", KMAX * RP);
    a.st1 = shared(c, "tl.attn.st1", SMAX * KMAX);
    a.st2 = shared(c, "tl.attn.st2", SMAX * KMAX);
    if (!s->grad) {
        emit_forward(&a, s, x, hd);
        return;
    }
    a.own2 = shared(c, "tl.attn.own2", KMAX * RP);
    a.stl = shared(c, "tl.attn.stl", SMAX);
    a.std_ = shared(c, "tl.attn.std", SMAX);
    LLVMValueRef N = mul(&a, mul(&a, BH, a.T), ci(&a, K));
    LLVMBasicBlockRef pass0 = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "attn.dkdv");
    LLVMBasicBlockRef pass1 = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "attn.dq");
    LLVMBasicBlockRef end = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "attn.end");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, z, ci(&a, 0), ""), pass0, pass1);
    LLVMPositionBuilderAtEnd(c->b, pass0);
    emit_dkdv(&a, s, x, hd, N);
    LLVMBuildBr(c->b, end);
    LLVMPositionBuilderAtEnd(c->b, pass1);
    emit_dq(&a, s, x, hd);
    LLVMBuildBr(c->b, end);
    LLVMPositionBuilderAtEnd(c->b, end);
}
