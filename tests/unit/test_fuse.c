/* test_fuse.c — fusion (compiler/fuse.{h,c}, the fused lowering in compiler/loops.c).
 *
 * Each case compiles one graph twice through the CPU back end, with fusion (one kernel
 * per group) and without (one kernel per op, the reference), runs both and the
 * interpreter on the same inputs, and requires:
 *   - fused == unfused bitwise on every output (fusion keeps every intermediate's storage
 *     rounding, so it changes no bits);
 *   - fused close to the interpreter (f32: |a-b| <= 1e-5*max(1,max|b|) + 1e-4*|b|);
 *   - fused with 2 threads == fused with 1 thread bitwise;
 *   - the kernel count of known patterns (a 5-op elementwise chain is 1 kernel; softmax,
 *     layer_norm, GELU are 1; ...).
 * Graphs: hand-built patterns, 150 random graphs (elementwise chains, broadcasts of
 * keepdims reductions, reductions, permute/reshape/slice, multi-use values), and stdlib
 * layers lowered from tl (tl_lower_call) with their backward (tl_grad): softmax,
 * layer_norm, GELU, cross_entropy, a transformer Block, the GPT loss. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "check.h"
#include "cpu/cpu.h"
#include "diag.h"
#include "fuse.h"
#include "graph.h"
#include "interp.h"
#include "kernels.h"
#include "loops.h"
#include "lower.h"
#include "sema.h"

static const TlLoc L = {0, 1, 1, 0, 0};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) {
    uint64_t x = rng_state;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return rng_state = x;
}
static double urand(double lo, double hi) { return lo + (hi - lo) * (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0); }
static int irand(int lo, int hi) { return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1)); }

/* ---- running one graph three ways ---- */

typedef struct Bind { const char *name; int64_t v; } Bind;

static int64_t numel_of(const TlGraph *g, const TlGShape *s, const Bind *b, int nb) {
    TlGDimBinding gb[8];
    for (int i = 0; i < nb; i++) gb[i].name = b[i].name, gb[i].value = b[i].v;
    int64_t n = 1, v;
    for (int i = 0; i < s->rank; i++) {
        if (tl_gdim_eval(g, s->dim[i], gb, nb, &v)) return -1;
        n *= v;
    }
    return n;
}

static int case_no_gemm; /* 1: matmuls run their loop nest (the reference of gemm.c) */

static TlCpuProgram *compile(const TlGraph *g, int fuse, int *nkern) {
    char err[512];
    TlLoopsOptions lo = {.fuse = fuse};
    TlLProgram *lp = tl_loops_lower_opts(g, &lo, err, sizeof err);
    EXPECTF(lp != NULL, "lower (fuse=%d): %s", fuse, err);
    if (!lp) return NULL;
    if (nkern) *nkern = lp->nkern;
    if (getenv("TL_FUSE_DUMP") && fuse) tl_loops_print(stdout, lp);
    TlCpuOptions o = {0};
    o.threads = 1;
    o.no_gemm = case_no_gemm;
    TlCpuProgram *p = tl_cpu_compile_loops(g, lp, &o, err, sizeof err);
    EXPECTF(p != NULL, "compile (fuse=%d): %s", fuse, err);
    return p;
}

static int close_enough(TlDType t, double a, double b, double scale) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b)) return a == b;
    switch (t) {
    case TL_F64: return fabs(a - b) <= 1e-12 * scale + 1e-10 * fabs(b);
    case TL_F32: return fabs(a - b) <= 1e-5 * scale + 1e-4 * fabs(b);
    case TL_BF16: return fabs(a - b) <= 1e-2 * scale + 1e-2 * fabs(b);
    case TL_F16: return fabs(a - b) <= 2e-3 * scale + 2e-3 * fabs(b);
    default: return a == b;
    }
}

typedef struct Range { const char *name; double lo, hi; } Range; /* input values by name */

static int ncases, nkern_fused_total, nkern_unfused_total;

/* Returns the fused kernel count (or -1). Inputs and params get uniform values in
 * [-2, 2] (floats) or [0, 3] (integers) unless a range names them. */
static int run_case(const TlGraph *g, const Bind *b, int nb, const Range *rg, int nrg) {
    ncases++;
    if (tl_graph_error(g)) { EXPECTF(0, "graph error: %s", tl_graph_error(g)); return -1; }
    int kf = -1, ku = -1;
    TlCpuProgram *pf = compile(g, 1, &kf), *pu = compile(g, 0, &ku);
    TlInterp *it = tl_interp_new(g);
    if (!pf || !pu) goto out;
    for (int i = 0; i < nb; i++) tl_cpu_bind(pf, b[i].name, b[i].v), tl_cpu_bind(pu, b[i].name, b[i].v), tl_interp_bind(it, b[i].name, b[i].v);
    for (int i = 0; i < g->nnodes; i++) {
        const TlGNode *n = &g->nodes[i];
        if (n->op != TL_GOP_INPUT && n->op != TL_GOP_PARAM) continue;
        int64_t cnt = numel_of(g, &n->shape, b, nb);
        double lo = -2, hi = 2;
        if (!tl_dtype_is_float(n->dtype)) lo = 0, hi = 3.99;
        for (int r = 0; r < nrg; r++)
            if (n->name && strcmp(n->name, rg[r].name) == 0) lo = rg[r].lo, hi = rg[r].hi;
        double *v = malloc(sizeof(double) * (size_t)(cnt + 1));
        for (int64_t j = 0; j < cnt; j++) {
            double x = urand(lo, hi);
            v[j] = tl_dtype_is_float(n->dtype) ? x : floor(x);
        }
        tl_cpu_set(pf, i, v, cnt), tl_cpu_set(pu, i, v, cnt), tl_interp_set(it, i, v, cnt);
        free(v);
    }
    int rf = tl_cpu_run(pf), ru = tl_cpu_run(pu), ri = tl_interp_run(it);
    EXPECTF(rf == 0, "fused: %s", tl_cpu_error(pf));
    EXPECTF(ru == 0, "unfused: %s", tl_cpu_error(pu));
    EXPECTF(ri == 0, "interpreter: %s", tl_interp_error(it));
    if (rf || ru || ri) goto out;
    size_t total = 0;
    for (int k = 0; k < g->noutputs; k++) {
        const TlTensor *a = tl_cpu_output(pf, k), *u = tl_cpu_output(pu, k), *r = tl_interp_output(it, k);
        size_t nbytes = (size_t)a->numel * tl_interp_storage_size(a->dtype);
        total += nbytes;
        EXPECTF(a->numel == u->numel && memcmp(a->data, u->data, nbytes) == 0, "output %d: fused and unfused differ", k);
        double scale = 1;
        for (int64_t j = 0; j < r->numel; j++) {
            double v = fabs(tl_tensor_get(r, j));
            if (isfinite(v) && v > scale) scale = v;
        }
        int bad = 0;
        for (int64_t j = 0; j < a->numel && bad < 3; j++)
            if (!close_enough(r->dtype, tl_tensor_get(a, j), tl_tensor_get(r, j), scale)) {
                EXPECTF(0, "output %d [%lld]: fused %.9g, interpreter %.9g", k, (long long)j, tl_tensor_get(a, j), tl_tensor_get(r, j));
                bad++;
            }
    }
    /* 1 vs 2 threads, bitwise */
    char *saved = malloc(total + 1), *q = saved;
    for (int k = 0; k < g->noutputs; k++) {
        const TlTensor *a = tl_cpu_output(pf, k);
        size_t nbytes = (size_t)a->numel * tl_interp_storage_size(a->dtype);
        memcpy(q, a->data, nbytes), q += nbytes;
    }
    tl_cpu_set_threads(pf, 2);
    EXPECT(tl_cpu_run(pf) == 0);
    q = saved;
    for (int k = 0; k < g->noutputs; k++) {
        const TlTensor *a = tl_cpu_output(pf, k);
        size_t nbytes = (size_t)a->numel * tl_interp_storage_size(a->dtype);
        EXPECTF(memcmp(q, a->data, nbytes) == 0, "output %d differs between 1 and 2 threads", k);
        q += nbytes;
    }
    free(saved);
    nkern_fused_total += kf, nkern_unfused_total += ku;
out:
    tl_cpu_free(pf);
    tl_cpu_free(pu);
    tl_interp_free(it);
    return kf;
}

static TlGShape shp(TlGraph *g, int rank, const int64_t *d) { return tl_gshape_make(g, rank, d); }
#define S(g, ...) shp(g, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

/* ---- known patterns ---- */

TEST(elementwise_chain_is_one_kernel) {
    TlGraph *g = tl_graph_new();
    TlGDim d[2] = {tl_gdim_sym(g, "B"), tl_gdim_const(g, 37)};
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_dims(2, d), L);
    int y = tl_g_input(g, "y", TL_F32, tl_gshape_dims(2, d), L);
    int v = tl_g_exp(g, x, L);                 /* 5 ops: exp, mul, tanh, sub, neg */
    v = tl_g_mul(g, v, y, L);
    v = tl_g_tanh(g, v, L);
    v = tl_g_sub(g, v, x, L);
    v = tl_g_neg(g, v, L);
    tl_graph_add_output(g, v);
    TlFusion *f = tl_fuse(g, NULL);
    EXPECTF(f->ngroups == 1 && f->groups[0].nnodes == 5 && f->groups[0].ninputs == 2, "%d groups", f->ngroups);
    tl_fuse_free(f);
    Bind b[] = {{"B", 5}};
    EXPECT(run_case(g, b, 1, NULL, 0) == 1);
    tl_graph_free(g);
}

/* softmax over the last axis: rmax, sub, exp, sum, div (+ broadcasts): one kernel */
static int softmax(TlGraph *g, int x) {
    int r = g->nodes[x].shape.rank;
    int m = tl_g_reduce(g, TL_GOP_RMAX, x, 1u << (r - 1), 1, L);
    int e = tl_g_exp(g, tl_g_broadcast_binary(g, TL_GOP_SUB, x, m, L), L);
    int s = tl_g_sum(g, e, 1u << (r - 1), 1, L);
    return tl_g_broadcast_binary(g, TL_GOP_DIV, e, s, L);
}

TEST(softmax_is_one_kernel) {
    TlGraph *g = tl_graph_new();
    TlGDim d[3] = {tl_gdim_sym(g, "B"), tl_gdim_const(g, 3), tl_gdim_const(g, 50)};
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_dims(3, d), L);
    tl_graph_add_output(g, softmax(g, x));
    TlFusion *f = tl_fuse(g, NULL);
    EXPECTF(f->ngroups == 1 && f->groups[0].kind == TL_FUSE_ROW, "%d groups", f->ngroups);
    tl_fuse_free(f);
    Bind b[] = {{"B", 4}};
    Range rg[] = {{"x", -30, 30}};
    EXPECT(run_case(g, b, 1, rg, 1) == 1);
    tl_graph_free(g);
}

/* sum(exp(x - max(x))) and the log-sum-exp per row, kept shape: one kernel each */
TEST(logsumexp_is_one_kernel) {
    TlGraph *g = tl_graph_new();
    int x = tl_g_input(g, "x", TL_F32, S(g, 6, 33), L);
    int m = tl_g_reduce(g, TL_GOP_RMAX, x, 2, 1, L);
    int s = tl_g_sum(g, tl_g_exp(g, tl_g_broadcast_binary(g, TL_GOP_SUB, x, m, L), L), 2, 1, L);
    int lse = tl_g_add(g, m, tl_g_log(g, s, L), L);
    tl_graph_add_output(g, lse);
    TlFusion *f = tl_fuse(g, NULL);
    EXPECTF(f->ngroups == 1 && f->groups[0].kept_root, "%d groups", f->ngroups);
    tl_fuse_free(f);
    EXPECT(run_case(g, NULL, 0, NULL, 0) == 1);
    tl_graph_free(g);
}

/* layer_norm forward: mean, variance, normalize, scale, shift: one kernel per row */
static int layer_norm(TlGraph *g, int x, int w, int b) {
    int r = g->nodes[x].shape.rank;
    TlGDim D = g->nodes[x].shape.dim[r - 1];
    int64_t dv;
    tl_gdim_is_const(g, D, &dv);
    uint32_t ax = 1u << (r - 1);
    int sum = tl_g_sum(g, x, ax, 1, L);
    int mean = tl_g_div(g, sum, tl_g_const(g, (double)dv, TL_F32, g->nodes[sum].shape, L), L);
    int xc = tl_g_broadcast_binary(g, TL_GOP_SUB, x, mean, L);
    int var = tl_g_sum(g, tl_g_mul(g, xc, xc, L), ax, 1, L);
    var = tl_g_div(g, var, tl_g_const(g, (double)dv, TL_F32, g->nodes[var].shape, L), L);
    int rs = tl_g_rsqrt(g, tl_g_add(g, var, tl_g_const(g, 1e-5, TL_F32, g->nodes[var].shape, L), L), L);
    int y = tl_g_broadcast_binary(g, TL_GOP_MUL, xc, rs, L);
    y = tl_g_broadcast_binary(g, TL_GOP_MUL, y, w, L);
    return tl_g_broadcast_binary(g, TL_GOP_ADD, y, b, L);
}

TEST(layer_norm_is_one_kernel) {
    TlGraph *g = tl_graph_new();
    TlGDim d[3] = {tl_gdim_sym(g, "B"), tl_gdim_const(g, 5), tl_gdim_const(g, 24)};
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_dims(3, d), L);
    int w = tl_g_param(g, "w", TL_F32, S(g, 24), L);
    int bb = tl_g_param(g, "b", TL_F32, S(g, 24), L);
    tl_graph_add_output(g, layer_norm(g, x, w, bb));
    Bind b[] = {{"B", 3}};
    EXPECT(run_case(g, b, 1, NULL, 0) == 1);
    tl_graph_free(g);
}

/* a matmul's operand is materialized; its elementwise consumer chain is one kernel */
TEST(contraction_materializes_its_operands) {
    TlGraph *g = tl_graph_new();
    int a = tl_g_input(g, "a", TL_F32, S(g, 8, 16), L);
    int w = tl_g_param(g, "w", TL_F32, S(g, 16, 12), L);
    int bias = tl_g_param(g, "bias", TL_F32, S(g, 12), L);
    int h = tl_g_contract(g, "ij,jk->ik", tl_g_tanh(g, a, L), w, L);
    h = tl_g_broadcast_binary(g, TL_GOP_ADD, h, bias, L);
    int x = h; /* GELU (tanh form) */
    int inner = tl_g_mul(g, tl_g_const(g, 0.044715, TL_F32, g->nodes[x].shape, L), tl_g_mul(g, x, tl_g_mul(g, x, x, L), L), L);
    inner = tl_g_mul(g, tl_g_const(g, 0.7978845608, TL_F32, g->nodes[x].shape, L), tl_g_add(g, x, inner, L), L);
    int y = tl_g_mul(g, tl_g_mul(g, tl_g_const(g, 0.5, TL_F32, g->nodes[x].shape, L), x, L),
                     tl_g_add(g, tl_g_const(g, 1, TL_F32, g->nodes[x].shape, L), tl_g_tanh(g, inner, L), L), L);
    tl_graph_add_output(g, y);
    /* tanh(a) | contract + bias + GELU (the GEMM's epilogue) */
    EXPECT(run_case(g, NULL, 0, NULL, 0) == 2);
    tl_graph_free(g);
}

/* ---- matmul epilogues (gemm groups) ---- */

static int gelu_tanh(TlGraph *g, int x) {
    TlGShape s = g->nodes[x].shape;
    int inner = tl_g_mul(g, tl_g_const(g, 0.044715, TL_F32, s, L), tl_g_mul(g, x, tl_g_mul(g, x, x, L), L), L);
    inner = tl_g_mul(g, tl_g_const(g, 0.7978845608, TL_F32, s, L), tl_g_add(g, x, inner, L), L);
    return tl_g_mul(g, tl_g_mul(g, tl_g_const(g, 0.5, TL_F32, s, L), x, L),
                    tl_g_add(g, tl_g_const(g, 1, TL_F32, s, L), tl_g_tanh(g, inner, L), L), L);
}

static int gelu_erf(TlGraph *g, int x) {
    TlGShape s = g->nodes[x].shape;
    int e = tl_g_unary(g, TL_GOP_ERF, tl_g_mul(g, x, tl_g_const(g, 0.7071067811865476, TL_F32, s, L), L), L);
    return tl_g_mul(g, tl_g_mul(g, tl_g_const(g, 0.5, TL_F32, s, L), x, L), tl_g_add(g, tl_g_const(g, 1, TL_F32, s, L), e, L), L);
}

/* The fused lowering of g: kernels whose GEMM carries an epilogue. */
static int epilogue_kernels(const TlGraph *g, int no_epilogue) {
    char err[256];
    TlLoopsOptions lo = {.fuse = 1, .no_epilogue = no_epilogue};
    TlLProgram *lp = tl_loops_lower_opts(g, &lo, err, sizeof err);
    EXPECTF(lp != NULL, "lower: %s", err);
    if (!lp) return -1;
    int n = 0;
    for (int k = 0; k < lp->nkern; k++) n += lp->kern[k].gemm.on && lp->kern[k].gemm.has_epi;
    tl_loops_free(lp);
    return n;
}

/* A gemm case: the kernel count with the epilogue fused (and that count + the number of
 * fused matmuls without), the GEMM path (run_case: fused == unfused bitwise, close to the
 * interpreter, 1 == 2 threads bitwise) and the loop nests (no_gemm: the reference). */
static void gemm_case(const TlGraph *g, const Bind *b, int nb, int kernels, int nepi) {
    EXPECTF(epilogue_kernels(g, 0) == nepi, "%d GEMM epilogues, expected %d", epilogue_kernels(g, 0), nepi);
    EXPECT(epilogue_kernels(g, 1) == 0);
    int k = run_case(g, b, nb, NULL, 0);
    EXPECTF(k == kernels, "%d kernels, expected %d", k, kernels);
    case_no_gemm = 1;
    EXPECT(run_case(g, b, nb, NULL, 0) == kernels);
    case_no_gemm = 0;
}

/* y = gelu(x W + bias) + r: one kernel; odd sizes (partial tiles in m and n) */
TEST(matmul_bias_gelu_residual_is_one_kernel) {
    int64_t shapes[][3] = {{13, 37, 70}, {1, 5, 1}, {6, 64, 64}, {7, 600, 130}}; /* K 600: 3 k blocks */
    for (int t = 0; t < 4; t++) {
        int64_t M = shapes[t][0], K = shapes[t][1], N = shapes[t][2];
        for (int form = 0; form < 2; form++) {
            TlGraph *g = tl_graph_new();
            int x = tl_g_input(g, "x", TL_F32, S(g, M, K), L);
            int w = tl_g_param(g, "w", TL_F32, S(g, K, N), L);
            int bias = tl_g_param(g, "bias", TL_F32, S(g, N), L);
            int r = tl_g_input(g, "r", TL_F32, S(g, M, N), L);
            int h = tl_g_broadcast_binary(g, TL_GOP_ADD, tl_g_contract(g, "ij,jk->ik", x, w, L), bias, L);
            tl_graph_add_output(g, tl_g_add(g, form ? gelu_erf(g, h) : gelu_tanh(g, h), r, L));
            gemm_case(g, NULL, 0, 1, 1);
            tl_graph_free(g);
        }
    }
}

/* batched (bxz,bzy->bxy, a symbolic batch), transposed B (xz,yz->xy), m-last output
 * (xz,zy->yx: A and B swap) and a merged M (btc,cd->btd), each with a scale and a
 * broadcast operand in the epilogue */
TEST(matmul_epilogue_layouts) {
    TlGraph *g = tl_graph_new();
    TlGDim d[3] = {tl_gdim_sym(g, "B"), tl_gdim_const(g, 9), tl_gdim_const(g, 21)};
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_dims(3, d), L);
    TlGDim dw[3] = {tl_gdim_sym(g, "B"), tl_gdim_const(g, 21), tl_gdim_const(g, 67)};
    int w = tl_g_input(g, "w", TL_F32, tl_gshape_dims(3, dw), L);
    int s = tl_g_param(g, "s", TL_F32, S(g, 9, 1), L);
    int h = tl_g_contract(g, "bxz,bzy->bxy", x, w, L);
    h = tl_g_mul(g, tl_g_const(g, 0.125, TL_F32, g->nodes[h].shape, L), h, L);
    tl_graph_add_output(g, tl_g_broadcast_binary(g, TL_GOP_SUB, h, s, L));
    Bind b[] = {{"B", 3}};
    gemm_case(g, b, 1, 1, 1);
    tl_graph_free(g);

    g = tl_graph_new();
    x = tl_g_input(g, "x", TL_F32, S(g, 11, 40), L);
    w = tl_g_param(g, "w", TL_F32, S(g, 70, 40), L);
    int r = tl_g_input(g, "r", TL_F32, S(g, 11, 70), L);
    tl_graph_add_output(g, tl_g_add(g, r, tl_g_contract(g, "xz,yz->xy", x, w, L), L));
    gemm_case(g, NULL, 0, 1, 1);
    tl_graph_free(g);

    g = tl_graph_new();
    x = tl_g_input(g, "x", TL_F32, S(g, 20, 33), L);
    w = tl_g_param(g, "w", TL_F32, S(g, 33, 7), L);
    int bias = tl_g_param(g, "bias", TL_F32, S(g, 20), L);
    h = tl_g_contract(g, "xz,zy->yx", x, w, L);
    tl_graph_add_output(g, tl_g_exp(g, tl_g_broadcast_binary(g, TL_GOP_ADD, h, bias, L), L));
    gemm_case(g, NULL, 0, 1, 1);
    tl_graph_free(g);

    g = tl_graph_new();
    x = tl_g_input(g, "x", TL_F32, S(g, 2, 5, 24), L);
    w = tl_g_param(g, "w", TL_F32, S(g, 24, 18), L);
    bias = tl_g_param(g, "bias", TL_F32, S(g, 18), L);
    h = tl_g_broadcast_binary(g, TL_GOP_ADD, tl_g_contract(g, "btc,cd->btd", x, w, L), bias, L);
    tl_graph_add_output(g, tl_g_unary(g, TL_GOP_TANH, h, L));
    gemm_case(g, NULL, 0, 1, 1);
    tl_graph_free(g);
}

/* where the sum is needed elsewhere too (the pre-activation for GELU's backward, a graph
 * output) or not at the element's own index, the contraction (or the value after the part
 * of the epilogue that is shared) is stored and its consumers read it */
TEST(matmul_epilogue_boundaries) {
    /* h = x W + bias is used by GELU and by a second consumer: h is the GEMM's root (bias
     * fused), GELU and the other consumer read it: 3 kernels */
    TlGraph *g = tl_graph_new();
    int x = tl_g_input(g, "x", TL_F32, S(g, 10, 30), L);
    int w = tl_g_param(g, "w", TL_F32, S(g, 30, 50), L);
    int bias = tl_g_param(g, "bias", TL_F32, S(g, 50), L);
    int h = tl_g_broadcast_binary(g, TL_GOP_ADD, tl_g_contract(g, "ij,jk->ik", x, w, L), bias, L);
    tl_graph_add_output(g, gelu_tanh(g, h));
    tl_graph_add_output(g, tl_g_sum(g, h, 1, 0, L));
    gemm_case(g, NULL, 0, 3, 1);
    tl_graph_free(g);

    /* the contraction is an output: stored, no epilogue (2 kernels) */
    g = tl_graph_new();
    x = tl_g_input(g, "x", TL_F32, S(g, 10, 30), L);
    w = tl_g_param(g, "w", TL_F32, S(g, 30, 50), L);
    h = tl_g_contract(g, "ij,jk->ik", x, w, L);
    tl_graph_add_output(g, h);
    tl_graph_add_output(g, tl_g_exp(g, h, L));
    gemm_case(g, NULL, 0, 2, 0);
    tl_graph_free(g);

    /* read at another index (a transpose of the product): not an epilogue (2 kernels) */
    g = tl_graph_new();
    x = tl_g_input(g, "x", TL_F32, S(g, 12, 30), L);
    w = tl_g_param(g, "w", TL_F32, S(g, 30, 12), L);
    h = tl_g_contract(g, "ij,jk->ik", x, w, L);
    int perm[2] = {1, 0};
    tl_graph_add_output(g, tl_g_add(g, h, tl_g_permute(g, h, perm, L), L));
    gemm_case(g, NULL, 0, 2, 0);
    tl_graph_free(g);

    /* a reduction consumer (a row sum of the product) stays its own kernel */
    g = tl_graph_new();
    x = tl_g_input(g, "x", TL_F32, S(g, 12, 30), L);
    w = tl_g_param(g, "w", TL_F32, S(g, 30, 20), L);
    tl_graph_add_output(g, tl_g_sum(g, tl_g_exp(g, tl_g_contract(g, "ij,jk->ik", x, w, L), L), 2, 0, L));
    gemm_case(g, NULL, 0, 2, 0);
    tl_graph_free(g);
}

/* a value used by two groups is stored once and read by both */
TEST(shared_value_is_materialized) {
    TlGraph *g = tl_graph_new();
    int x = tl_g_input(g, "x", TL_F32, S(g, 4, 9), L);
    int e = tl_g_exp(g, tl_g_neg(g, x, L), L);
    int s = tl_g_sum(g, e, 1, 0, L);              /* over axis 0: not e's row */
    int t = tl_g_sum(g, e, 2, 0, L);              /* over axis 1 */
    tl_graph_add_output(g, s);
    tl_graph_add_output(g, t);
    TlFusion *f = tl_fuse(g, NULL);
    EXPECTF(f->ngroups == 3 && !tl_fuse_is_inlined(f, e) && tl_fuse_is_inlined(f, e - 1), "%d groups", f->ngroups);
    tl_fuse_free(f);
    EXPECT(run_case(g, NULL, 0, NULL, 0) == 3);
    tl_graph_free(g);
}

/* cheap arithmetic used by two groups is recomputed in each, not stored; a chain of it
 * only TL_FUSE_RECOMPUTE_DEPTH links deep; TlFuseOptions.no_recompute stores it */
TEST(cheap_arithmetic_is_recomputed) {
    TlGraph *g = tl_graph_new();
    int x = tl_g_input(g, "x", TL_F32, S(g, 4, 9), L);
    int m = tl_g_mul(g, x, x, L);
    tl_graph_add_output(g, tl_g_exp(g, m, L));
    tl_graph_add_output(g, tl_g_sum(g, m, 1, 0, L)); /* over axis 0: another group */
    TlFusion *f = tl_fuse(g, NULL);
    EXPECTF(f->ngroups == 2 && f->group_of[m] == TL_FUSE_INLINED, "%d groups", f->ngroups);
    tl_fuse_free(f);
    TlFuseOptions keep = {1, 0, 0, 1};
    f = tl_fuse(g, &keep);
    EXPECTF(f->ngroups == 3 && f->group_of[m] >= 0, "no_recompute: %d groups", f->ngroups);
    tl_fuse_free(f);
    EXPECT(run_case(g, NULL, 0, NULL, 0) == 2);
    tl_graph_free(g);

    /* a chain c0 = x + 1, c(i+1) = c(i) * x, each link also read by a reduction of its
     * own: the DEPTH links nearest the exp are recomputed, the next one is stored, and
     * the count starts again from it (c0, c1 are recomputed in the groups reading c2) */
    enum { LINKS = 7 };
    g = tl_graph_new();
    x = tl_g_input(g, "x", TL_F32, S(g, 5, 6), L);
    int c[LINKS];
    c[0] = tl_g_add(g, x, tl_g_const(g, 1, TL_F32, g->nodes[x].shape, L), L);
    for (int i = 1; i < LINKS; i++) c[i] = tl_g_mul(g, c[i - 1], x, L);
    tl_graph_add_output(g, tl_g_exp(g, c[LINKS - 1], L));
    for (int i = 0; i < LINKS; i++) tl_graph_add_output(g, tl_g_sum(g, c[i], 1, 0, L));
    f = tl_fuse(g, NULL);
    int stored = LINKS - 1 - TL_FUSE_RECOMPUTE_DEPTH;
    for (int i = 0; i < LINKS; i++)
        EXPECTF((f->group_of[c[i]] == TL_FUSE_INLINED) == (i != stored), "link %d: group %d", i, f->group_of[c[i]]);
    tl_fuse_free(f);
    EXPECT(run_case(g, NULL, 0, NULL, 0) == 1 + LINKS + 1);
    tl_graph_free(g);

    /* transcendentals are stored once, read by both */
    g = tl_graph_new();
    x = tl_g_input(g, "x", TL_F32, S(g, 4, 9), L);
    int t = tl_g_tanh(g, x, L);
    tl_graph_add_output(g, tl_g_exp(g, t, L));
    tl_graph_add_output(g, tl_g_sum(g, t, 1, 0, L));
    EXPECT(run_case(g, NULL, 0, NULL, 0) == 3);
    tl_graph_free(g);
}

/* permute / reshape / slice / broadcast inside a chain: index remapping, one kernel */
TEST(movement_is_index_remapping) {
    TlGraph *g = tl_graph_new();
    int x = tl_g_input(g, "x", TL_F32, S(g, 4, 6, 5), L);
    int v = tl_g_permute(g, tl_g_exp(g, x, L), (int[]){2, 0, 1}, L);          /* [5, 4, 6] */
    v = tl_g_reshape(g, v, S(g, 5, 24), L);
    v = tl_g_slice_axis(g, v, 1, tl_gdim_const(g, 2), tl_gdim_const(g, 20), 3, L); /* [5, 6] */
    int y = tl_g_input(g, "y", TL_F32, S(g, 6), L);
    v = tl_g_broadcast_binary(g, TL_GOP_MUL, v, y, L);
    tl_graph_add_output(g, tl_g_sqrt(g, tl_g_unary(g, TL_GOP_ABS, v, L), L));
    EXPECT(run_case(g, NULL, 0, NULL, 0) == 1);
    tl_graph_free(g);
}

/* integer, bool and bf16 chains keep every intermediate's rounding */
TEST(storage_rounding_is_kept) {
    TlGraph *g = tl_graph_new();
    int a = tl_g_input(g, "a", TL_I32, S(g, 7, 3), L);
    int x = tl_g_input(g, "x", TL_F32, S(g, 7, 3), L);
    int c = tl_g_binary(g, TL_GOP_GT, tl_g_cast(g, a, TL_F32, L), x, L);
    int h = tl_g_cast(g, tl_g_exp(g, x, L), TL_BF16, L);
    h = tl_g_mul(g, h, h, L);
    int y = tl_g_select(g, c, tl_g_cast(g, h, TL_F32, L), tl_g_cast(g, tl_g_mul(g, a, a, L), TL_F32, L), L);
    tl_graph_add_output(g, tl_g_cast(g, y, TL_F16, L));
    tl_graph_add_output(g, tl_g_sum(g, tl_g_cast(g, c, TL_I64, L), 3, 0, L));
    EXPECT(run_case(g, NULL, 0, NULL, 0) >= 1);
    tl_graph_free(g);
}

/* ---- random graphs ---- */

static int rand_unary(TlGraph *g, int x) {
    static const TlGOp ops[] = {TL_GOP_NEG, TL_GOP_EXP, TL_GOP_TANH, TL_GOP_SIN, TL_GOP_ABS, TL_GOP_ERF};
    TlGOp op = ops[irand(0, 5)];
    if (op == TL_GOP_EXP) x = tl_g_tanh(g, x, L); /* keep values small */
    return tl_g_unary(g, op, x, L);
}

static int rand_binary(TlGraph *g, int a, int b) {
    static const TlGOp ops[] = {TL_GOP_ADD, TL_GOP_SUB, TL_GOP_MUL, TL_GOP_MAX, TL_GOP_MIN};
    if (irand(0, 9) == 0) return tl_g_select(g, tl_g_binary(g, TL_GOP_LT, a, b, L), a, tl_g_neg(g, b, L), L);
    return tl_g_binary(g, ops[irand(0, 4)], a, b, L);
}

/* A random graph over x: f32[R0, R1, R2] (R0 maybe symbolic). */
static void random_graph(int seed) {
    TlGraph *g = tl_graph_new();
    int64_t d1 = irand(1, 5), d2 = irand(1, 40);
    int sym = seed % 3 == 0;
    TlGDim dims[3] = {sym ? tl_gdim_sym(g, "B") : tl_gdim_const(g, irand(1, 4)), tl_gdim_const(g, d1), tl_gdim_const(g, d2)};
    TlGShape s = tl_gshape_dims(3, dims);
    int pool[64], np = 0;
    pool[np++] = tl_g_input(g, "x0", TL_F32, s, L);
    pool[np++] = tl_g_input(g, "x1", TL_F32, s, L);
    int steps = irand(3, 14);
    for (int i = 0; i < steps && np < 60; i++) {
        int a = pool[irand(0, np - 1)], b = pool[irand(0, np - 1)], v;
        switch (irand(0, 9)) {
        case 0: case 1: v = rand_unary(g, a); break;
        case 2: case 3: case 4: v = rand_binary(g, a, b); break;
        case 5: { /* a keepdims reduction broadcast back (softmax/layer_norm shape) */
            uint32_t ax = (uint32_t)irand(1, 7);
            int r = tl_g_reduce(g, irand(0, 1) ? TL_GOP_SUM : TL_GOP_RMAX, a, ax, 1, L);
            if (irand(0, 1)) r = rand_unary(g, r);
            v = tl_g_broadcast_binary(g, irand(0, 1) ? TL_GOP_SUB : TL_GOP_MUL, b, r, L);
            break;
        }
        case 6: { /* a reduction consumed as is (an output) */
            uint32_t ax = (uint32_t)irand(1, 7);
            tl_graph_add_output(g, tl_g_reduce(g, irand(0, 1) ? TL_GOP_SUM : TL_GOP_RMAX, rand_unary(g, a), ax, irand(0, 1), L));
            continue;
        }
        case 7: { /* permute there and back */
            int p1[3] = {2, 0, 1}, p2[3] = {1, 2, 0};
            v = tl_g_permute(g, rand_unary(g, tl_g_permute(g, a, p1, L)), p2, L);
            break;
        }
        case 8: { /* reshape through a squeeze-like shape, and back */
            TlGDim r4[4] = {dims[0], tl_gdim_const(g, 1), dims[1], dims[2]};
            v = tl_g_reshape(g, rand_unary(g, tl_g_reshape(g, a, tl_gshape_dims(4, r4), L)), s, L);
            break;
        }
        default: /* a broadcast row vector */
            v = tl_g_broadcast_binary(g, TL_GOP_ADD, a, tl_g_slice_axis(g, tl_g_slice_axis(g, b, 0, tl_gdim_const(g, 0), tl_gdim_const(g, 1), 1, L), 1, tl_gdim_const(g, 0), tl_gdim_const(g, 1), 1, L), L);
            break;
        }
        pool[np++] = v;
    }
    tl_graph_add_output(g, pool[np - 1]);
    if (irand(0, 2) == 0) tl_graph_add_output(g, pool[irand(2, np - 1)]);
    Bind b[] = {{"B", irand(1, 5)}};
    case_begin("random fused graph %d (%d nodes)", seed, g->nnodes);
    run_case(g, b, sym, NULL, 0);
    case_end();
    tl_graph_free(g);
}

/* ---- stdlib layers, forward and backward ---- */

/* Lowers callee from file with args (tl_lower_call), adds loss = sum(out * dy) (or the
 * loss itself) and the gradients wrt every float input and param; runs the case; returns
 * the graph's fused kernel count, and the primitive count in *prims. */
static int stdlib_case(const char *file, const char *callee, const char *ctor, const char *method, const char *args,
                       const Range *rg, int nrg, int *prims) {
    char err[512];
    TlSemaOptions opt = {.stdlib_dir = "stdlib", .warn_unused = 0};
    tl_diag_reset();
    TlProgram *prog = tl_sema_check_file(file, &opt);
    EXPECTF(tl_diag_error_count() == 0, "%s has errors", file);
    TlLowerArg cargs[8], targs[8];
    int nc = ctor ? tl_lower_parse_args(ctor, cargs, 8, err, sizeof err) : 0;
    int na = tl_lower_parse_args(args, targs, 8, err, sizeof err);
    EXPECTF(nc >= 0 && na >= 0, "%s", err);
    TlLowered *l = tl_lower_call(prog, callee, cargs, nc, method, targs, na);
    if (nc > 0) tl_lower_args_free(cargs, nc);
    tl_lower_args_free(targs, na);
    EXPECTF(l != NULL, "lowering %s failed", callee);
    int k = -1;
    if (l) {
        TlGraph *g = l->g;
        int o = g->outputs[0], loss = o;
        if (g->nodes[o].shape.rank) {
            int dy = tl_g_input(g, "dy", g->nodes[o].dtype, g->nodes[o].shape, L);
            int m = tl_g_mul(g, o, dy, L);
            loss = tl_g_reduce(g, TL_GOP_SUM, m, (1u << g->nodes[m].shape.rank) - 1, 0, L);
        }
        int wrt[64], nw = 0, grads[64];
        for (int i = 0; i < l->ninputs && nw < 64; i++)
            if (tl_dtype_is_float(g->nodes[l->inputs[i]].dtype) && strcmp(g->nodes[l->inputs[i]].name, "dy") != 0)
                wrt[nw++] = l->inputs[i];
        for (int i = 0; i < l->nparams && nw < 64; i++) wrt[nw++] = l->params[i].node;
        EXPECTF(tl_grad(g, loss, nw, wrt, grads) == 0, "tl_grad: %s", tl_graph_error(g) ? tl_graph_error(g) : "?");
        for (int i = 0; i < nw; i++) tl_graph_add_output(g, grads[i]);
        if (prims) *prims = tl_fuse_primitive_count(g);
        k = run_case(g, NULL, 0, rg, nrg);
    }
    tl_lowered_free(l);
    tl_program_free(prog);
    return k;
}

static void stdlib_layer(const char *name, const char *file, const char *callee, const char *ctor, const char *method,
                         const char *args, const Range *rg, int nrg) {
    case_begin("stdlib %s forward + backward", name);
    int prims = 0, k = stdlib_case(file, callee, ctor, method, args, rg, nrg, &prims);
    printf("  %s: %d kernels fused for %d primitives\n", name, k, prims);
    EXPECTF(k > 0 && k < prims, "%d kernels for %d primitives", k, prims);
    case_end();
}

/* The forward pass alone: the layer's kernel count. */
static int forward_kernels(const char *callee, const char *args) {
    char err[256];
    TlSemaOptions opt = {.stdlib_dir = "stdlib", .warn_unused = 0};
    tl_diag_reset();
    TlProgram *prog = tl_sema_check_file("stdlib/nn.tl", &opt);
    TlLowerArg a[8];
    int na = tl_lower_parse_args(args, a, 8, err, sizeof err);
    TlLowered *l = tl_lower_call(prog, callee, NULL, 0, NULL, a, na);
    tl_lower_args_free(a, na);
    int n = -1;
    if (l) {
        TlFusion *f = tl_fuse(l->g, NULL);
        n = f->ngroups;
        tl_fuse_free(f);
    }
    tl_lowered_free(l);
    tl_program_free(prog);
    return n;
}

TEST(stdlib_forward_kernel_counts) {
    int s = forward_kernels("softmax", "x:f32[4,7,33]");
    int ln = forward_kernels("layer_norm", "x:f32[4,7,32] w:f32[32] b:f32[32]");
    int ge = forward_kernels("gelu", "x:f32[4,7,32]");
    int ls = forward_kernels("log_softmax", "x:f32[4,7,33]");
    printf("  softmax %d, layer_norm %d, gelu %d, log_softmax %d kernels\n", s, ln, ge, ls);
    EXPECT(s >= 1 && s <= 2);
    EXPECT(ln == 1);
    EXPECT(ge == 1);
    EXPECT(ls >= 1 && ls <= 2);
}

/* ---- the kernel table ---- */

TEST(kernel_table) {
    TlGraph *g = tl_graph_new();
    TlGDim d[2] = {tl_gdim_sym(g, "N"), tl_gdim_const(g, 64)};
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_dims(2, d), L);
    int w = tl_g_param(g, "w", TL_F32, S(g, 64, 32), L);
    int h = tl_g_contract(g, "ij,jk->ik", x, w, L);
    tl_graph_add_output(g, softmax(g, h));
    TlKernelTable *t = tl_kernels_build(g, NULL, (TlGDimBinding[]){{"N", 10}}, 1);
    EXPECT(t && t->nkernels == 2);
    if (t && t->nkernels == 2) {
        EXPECT(t->k[0].flops == 2.0 * 10 * 64 * 32);
        EXPECT(t->k[0].bytes == 4.0 * (10 * 64 + 64 * 32 + 10 * 32));
        EXPECT(t->k[1].bytes == 4.0 * (10 * 32 * 2));
        EXPECT(t->k[1].nops >= 5);
    }
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    tl_kernels_print(f, t);
    fclose(f);
    EXPECTF(buf && strstr(buf, "contract") && strstr(buf, "rmax") && strstr(buf, "2 kernels"), "%s", buf);
    free(buf);
    tl_kernels_free(t);
    tl_graph_free(g);
}

int main(void) {
    tl_diag_set_output(stdout);
    RUN(elementwise_chain_is_one_kernel);
    RUN(softmax_is_one_kernel);
    RUN(logsumexp_is_one_kernel);
    RUN(layer_norm_is_one_kernel);
    RUN(contraction_materializes_its_operands);
    RUN(matmul_bias_gelu_residual_is_one_kernel);
    RUN(matmul_epilogue_layouts);
    RUN(matmul_epilogue_boundaries);
    RUN(shared_value_is_materialized);
    RUN(cheap_arithmetic_is_recomputed);
    RUN(movement_is_index_remapping);
    RUN(storage_rounding_is_kept);
    RUN(stdlib_forward_kernel_counts);
    RUN(kernel_table);
    Range sm[] = {{"x", -8, 8}};
    stdlib_layer("softmax", "stdlib/nn.tl", "softmax", NULL, NULL, "x:f32[3,5,17]", sm, 1);
    stdlib_layer("log_softmax", "stdlib/nn.tl", "log_softmax", NULL, NULL, "x:f32[3,5,17]", sm, 1);
    stdlib_layer("layer_norm", "stdlib/nn.tl", "layer_norm", NULL, NULL, "x:f32[3,5,16] w:f32[16] b:f32[16]", NULL, 0);
    stdlib_layer("gelu", "stdlib/nn.tl", "gelu", NULL, NULL, "x:f32[3,5,16]", NULL, 0);
    Range ce[] = {{"targets", 0, 10.99}};
    stdlib_layer("cross_entropy", "stdlib/nn.tl", "cross_entropy", NULL, NULL, "logits:f32[3,5,11] targets:i32[3,5]", ce, 1);
    stdlib_layer("Block", "stdlib/nn.tl", "Block", "D=16 H=4", "forward", "x:f32[2,8,16]", NULL, 0);
    Range gp[] = {{"idx", 0, 10.99}, {"targets", 0, 10.99}};
    stdlib_layer("GPT loss", "examples/gpt/gpt.tl", "GPT", "V=11 C=8 D=16 H=4 L=2", "loss", "idx:i32[2,8] targets:i32[2,8]", gp, 2);
    int nrand = getenv("TL_TEST_LONG") ? 1500 : 150;
    for (int i = 0; i < nrand; i++) random_graph(i);
    printf("# %d fused-vs-unfused cases: %d kernels fused, %d unfused\n", ncases, nkern_fused_total, nkern_unfused_total);
    return check_done();
}
