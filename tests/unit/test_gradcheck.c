/* test_gradcheck.c — finite-difference checks of every gradient rule in autodiff.c.
 *
 * Each case builds a small f64 graph y = f(params), takes loss = sum(y * W) with W a fixed
 * Philox normal tensor (so that every element of dy is different), appends the backward
 * graph with tl_grad, and compares each gradient entry, on the interpreter, against the
 * central difference (L(p + h) - L(p - h)) / 2h.
 *
 * Tolerance: |analytic - numeric| <= ATOL + RTOL * max(|analytic|, |numeric|) with h = 1e-6,
 * ATOL = 1e-6, RTOL = 1e-5 (double precision: the truncation error is O(h^2) ~ 1e-12 and
 * the rounding error ~ eps * |L| / h ~ 1e-9). The cast case goes through f32 and uses
 * h = 1e-2, ATOL = RTOL = 1e-4. Parameter values and shapes come from a fixed-seed
 * xorshift generator, so every run checks the same numbers. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "autodiff.h"
#include "check.h"
#include "graph.h"
#include "interp.h"

#define ATOL 1e-6
#define RTOL 1e-5
#define H 1e-6
#define tl_g_sin(g, x, l) tl_g_unary(g, TL_GOP_SIN, x, l)

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) {
    uint64_t x = rng_state;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return rng_state = x;
}
static double rng_unit(void) { return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0); }
static int rng_int(int lo, int hi) { return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1)); }

static const TlLoc L = {0, 1, 1, 0, 0};
static TlGraph *G;
static struct { int node; double lo, hi; } P[16];
static int NP;
static const char *bind_name;
static int64_t bind_value;
static int ncases, nentries;

static void begin(void) {
    G = tl_graph_new();
    NP = 0;
    bind_name = NULL;
}

static TlGShape shp(int rank, const int64_t *d) { return tl_gshape_make(G, rank, d); }
#define S(...) shp((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})
#define S0 shp(0, NULL)

static int param(TlGShape s, double lo, double hi) {
    char name[16];
    snprintf(name, sizeof name, "p%d", NP);
    int id = tl_g_param(G, name, TL_F64, s, L);
    P[NP].node = id, P[NP].lo = lo, P[NP].hi = hi;
    NP++;
    return id;
}

static TlGShape rshape(int rank, int maxd) {
    int64_t d[TL_MAX_RANK];
    for (int i = 0; i < rank; i++) d[i] = rng_int(1, maxd);
    return shp(rank, d);
}

static int64_t numel_of(const TlGraph *g, int node) {
    int64_t n = 1, v;
    const TlGNode *nd = &g->nodes[node];
    TlGDimBinding b = {bind_name ? bind_name : "", bind_value};
    for (int i = 0; i < nd->shape.rank; i++) {
        if (tl_gdim_eval(g, nd->shape.dim[i], &b, 1, &v)) return -1;
        n *= v;
    }
    return n;
}

static double run_loss(TlInterp *it) {
    if (tl_interp_run(it)) return NAN;
    return tl_tensor_get(tl_interp_output(it, 0), 0);
}

/* The whole check; y is the node whose weighted sum is the loss. */
static void check_grad(const char *name, int y, double h, double atol, double rtol) {
    case_begin("%s", name);
    ncases++;
    const char *err = tl_graph_error(G);
    if (!err && y >= 0) {
        const TlGNode *yn = &G->nodes[y];
        int w = tl_g_random(G, TL_RANDOM_NORMAL, -1, 1234, 0, TL_F64, yn->shape, L);
        int prod = tl_g_mul(G, y, w, L);
        int rank = G->nodes[prod].shape.rank;
        int loss = rank ? tl_g_sum(G, prod, (1u << rank) - 1, 0, L) : prod;
        int params[16], grads[16];
        for (int i = 0; i < NP; i++) params[i] = P[i].node;
        if (tl_grad(G, loss, NP, params, grads) == 0) {
            tl_graph_add_output(G, loss);
            for (int i = 0; i < NP; i++) tl_graph_add_output(G, grads[i]);
        }
        err = tl_graph_error(G);
    }
    if (err || y < 0) {
        EXPECTF(0, "graph error: %s", err ? err : "no node");
        tl_graph_free(G);
        case_end();
        return;
    }
    TlInterp *it = tl_interp_new(G);
    if (bind_name) tl_interp_bind(it, bind_name, bind_value);
    double *vals[16];
    int64_t cnt[16];
    for (int i = 0; i < NP; i++) {
        cnt[i] = numel_of(G, P[i].node);
        vals[i] = malloc(sizeof(double) * (size_t)(cnt[i] + 1));
        for (int64_t e = 0; e < cnt[i]; e++) vals[i][e] = P[i].lo + (P[i].hi - P[i].lo) * rng_unit();
        tl_interp_set(it, P[i].node, vals[i], cnt[i]);
    }
    double l0 = run_loss(it);
    EXPECTF(!isnan(l0), "run failed: %s", tl_interp_error(it) ? tl_interp_error(it) : "NaN loss");
    double *an[16] = {0};
    for (int i = 0; i < NP && !isnan(l0); i++) {
        const TlTensor *gt = tl_interp_output(it, 1 + i);
        EXPECTF(gt && gt->numel == cnt[i], "gradient %d has the wrong size", i);
        an[i] = malloc(sizeof(double) * (size_t)(cnt[i] + 1));
        for (int64_t e = 0; gt && e < cnt[i] && e < gt->numel; e++) an[i][e] = tl_tensor_get(gt, e);
    }
    int bad = 0;
    for (int i = 0; i < NP && !isnan(l0) && !check_case_failed; i++)
        for (int64_t e = 0; e < cnt[i]; e++) {
            double v = vals[i][e];
            vals[i][e] = v + h;
            tl_interp_set(it, P[i].node, vals[i], cnt[i]);
            double lp = run_loss(it);
            vals[i][e] = v - h;
            tl_interp_set(it, P[i].node, vals[i], cnt[i]);
            double lm = run_loss(it);
            vals[i][e] = v;
            tl_interp_set(it, P[i].node, vals[i], cnt[i]);
            double num = (lp - lm) / (2 * h), a = an[i][e];
            nentries++;
            if (!(fabs(a - num) <= atol + rtol * fmax(fabs(a), fabs(num)))) {
                if (bad++ < 4) EXPECTF(0, "param %d element %lld: analytic %.10g numeric %.10g", i, (long long)e, a, num);
            }
        }
    if (bad) {
        printf("    %d mismatches\n", bad);
        if (getenv("TL_GRADCHECK_DUMP")) tl_graph_print(stdout, G);
    }
    for (int i = 0; i < NP; i++) free(vals[i]), free(an[i]);
    tl_interp_free(it);
    tl_graph_free(G);
    case_end();
}

static void check(const char *name, int y) { check_grad(name, y, H, ATOL, RTOL); }

static char nbuf[256];
#define NAME(...) (snprintf(nbuf, sizeof nbuf, __VA_ARGS__), nbuf)

static void shape_name(char *buf, int n, TlGShape s) {
    tl_gshape_str(G, TL_F64, s, buf, n);
}

/* ---- cases ---- */

static void unary_cases(void) {
    static const struct { TlGOp op; double lo, hi; } ops[] = {
        {TL_GOP_NEG, -2, 2}, {TL_GOP_EXP, -2, 2}, {TL_GOP_LOG, 0.3, 3}, {TL_GOP_SQRT, 0.3, 3},
        {TL_GOP_RSQRT, 0.3, 3}, {TL_GOP_TANH, -2, 2}, {TL_GOP_ERF, -2, 2}, {TL_GOP_SIN, -3, 3},
        {TL_GOP_COS, -3, 3}, {TL_GOP_ABS, -2, 2},
    };
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        for (int rank = 0; rank <= 3; rank++) {
            begin();
            TlGShape s = rshape(rank, 4);
            char sn[64];
            shape_name(sn, sizeof sn, s);
            int a = param(s, ops[k].lo, ops[k].hi);
            check(NAME("%s %s", tl_gop_name(ops[k].op), sn), tl_g_unary(G, ops[k].op, a, L));
        }
}

static void binary_cases(void) {
    static const struct { TlGOp op; double alo, ahi, blo, bhi; } ops[] = {
        {TL_GOP_ADD, -2, 2, -2, 2}, {TL_GOP_SUB, -2, 2, -2, 2}, {TL_GOP_MUL, -2, 2, -2, 2},
        {TL_GOP_DIV, -2, 2, 0.5, 2}, {TL_GOP_POW, 0.5, 2, -1.5, 1.5}, {TL_GOP_MAX, -2, 2, -2, 2},
        {TL_GOP_MIN, -2, 2, -2, 2},
    };
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        for (int rank = 0; rank <= 3; rank++) {
            begin();
            TlGShape s = rshape(rank, 4);
            char sn[64];
            shape_name(sn, sizeof sn, s);
            int a = param(s, ops[k].alo, ops[k].ahi), b = param(s, ops[k].blo, ops[k].bhi);
            check(NAME("%s %s", tl_gop_name(ops[k].op), sn), tl_g_binary(G, ops[k].op, a, b, L));
        }
    /* the same operand twice: contributions must add up */
    begin();
    int a = param(S(3, 2), -2, 2);
    check("mul x*x (accumulation)", tl_g_mul(G, a, a, L));
}

static void broadcast_binary_cases(void) {
    static const int64_t shapes[][2][4] = {
        /* rank a, dims a..., rank b, dims b... encoded as {ra, d0, d1, d2}, {rb, ...} */
        {{3, 3, 1, 4}, {2, 5, 4}},
        {{2, 2, 3}, {1, 3}},
        {{2, 2, 3}, {0}},
        {{1, 1}, {2, 4, 3}},
        {{3, 2, 1, 3}, {3, 1, 4, 1}},
        {{2, 3, 1}, {2, 1, 3}},
    };
    static const TlGOp ops[] = {TL_GOP_ADD, TL_GOP_MUL, TL_GOP_SUB, TL_GOP_DIV};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
            begin();
            TlGShape sa = shp((int)shapes[k][0][0], &shapes[k][0][1]);
            TlGShape sb = shp((int)shapes[k][1][0], &shapes[k][1][1]);
            char s1[64], s2[64];
            shape_name(s1, sizeof s1, sa);
            shape_name(s2, sizeof s2, sb);
            int a = param(sa, -2, 2), b = param(sb, 0.5, 2);
            check(NAME("broadcast %s %s %s", tl_gop_name(ops[o]), s1, s2), tl_g_broadcast_binary(G, ops[o], a, b, L));
        }
}

static void select_cast_cases(void) {
    for (int rank = 1; rank <= 3; rank++) {
        begin();
        TlGShape s = rshape(rank, 4);
        int a = param(s, -2, 2), b = param(s, -2, 2), c = param(s, -2, 2);
        /* c only feeds the condition: its gradient must be exactly zero */
        int cond = tl_g_binary(G, TL_GOP_GT, c, tl_g_const(G, 0.1, TL_F64, s, L), L);
        check(NAME("select rank %d", rank), tl_g_select(G, cond, a, b, L));
    }
    begin();
    int a = param(S(3, 4), -2, 2);
    int y = tl_g_cast(G, tl_g_mul(G, tl_g_cast(G, a, TL_F32, L), tl_g_cast(G, a, TL_F32, L), L), TL_F64, L);
    check_grad("cast f64->f32->f64", y, 1e-2, 1e-4, 1e-4);
    begin();
    a = param(S(5), -3, 3);
    y = tl_g_mul(G, a, tl_g_cast(G, tl_g_cast(G, a, TL_I32, L), TL_F64, L), L); /* int cast: no gradient */
    check("cast to i32 stops the gradient", y);
}

static void reduce_cases(void) {
    for (int op = 0; op < 2; op++)
        for (int rank = 1; rank <= 3; rank++)
            for (uint32_t axes = 1; axes < (1u << rank); axes++)
                for (int kd = 0; kd <= 1; kd++) {
                    begin();
                    TlGShape s = rshape(rank, 4);
                    char sn[64];
                    shape_name(sn, sizeof sn, s);
                    int a = param(s, -2, 2);
                    TlGOp o = op ? TL_GOP_RMAX : TL_GOP_SUM;
                    check(NAME("%s %s axes=0x%x keepdims=%d", tl_gop_name(o), sn, axes, kd),
                          tl_g_reduce(G, o, a, axes, kd, L));
                }
    /* rmax with exact ties is not differentiable; its rule is checked by value below */
}

/* Tie rule of rmax: d max(x) / dx_i = 1/count for each maximal x_i. */
TEST(rmax_tie_rule) {
    TlGraph *g = tl_graph_new();
    int64_t d4 = 4;
    int x = tl_g_param(g, "x", TL_F64, tl_gshape_make(g, 1, &d4), L);
    int m = tl_g_reduce(g, TL_GOP_RMAX, x, 1, 0, L);
    int gr;
    EXPECT(tl_grad(g, m, 1, &x, &gr) == 0);
    tl_graph_add_output(g, gr);
    TlInterp *it = tl_interp_new(g);
    double v[4] = {1, 3, 3, 2};
    tl_interp_set(it, x, v, 4);
    EXPECT(tl_interp_run(it) == 0);
    const TlTensor *t = tl_interp_output(it, 0);
    EXPECT(t && tl_tensor_get(t, 0) == 0 && tl_tensor_get(t, 1) == 0.5 && tl_tensor_get(t, 2) == 0.5 &&
           tl_tensor_get(t, 3) == 0);
    tl_interp_free(it);
    tl_graph_free(g);
}

/* Tie rule of binary max/min: the first operand takes the whole gradient. */
TEST(max_tie_rule) {
    TlGraph *g = tl_graph_new();
    int64_t d2 = 2;
    TlGShape s = tl_gshape_make(g, 1, &d2);
    int a = tl_g_param(g, "a", TL_F64, s, L), b = tl_g_param(g, "b", TL_F64, s, L);
    int y = tl_g_sum(g, tl_g_binary(g, TL_GOP_MAX, a, b, L), 1, 0, L);
    int gr[2], p[2] = {a, b};
    EXPECT(tl_grad(g, y, 2, p, gr) == 0);
    tl_graph_add_output(g, gr[0]);
    tl_graph_add_output(g, gr[1]);
    TlInterp *it = tl_interp_new(g);
    double va[2] = {1, 5}, vb[2] = {1, 2};
    tl_interp_set(it, a, va, 2);
    tl_interp_set(it, b, vb, 2);
    EXPECT(tl_interp_run(it) == 0);
    EXPECT(tl_tensor_get(tl_interp_output(it, 0), 0) == 1 && tl_tensor_get(tl_interp_output(it, 1), 0) == 0);
    tl_interp_free(it);
    tl_graph_free(g);
}

static void contract_cases(void) {
    static const char *specs[] = {
        "ij,jk->ik", "bij,bjk->bik", "i,j->ij", "ji,jk->ik", "ij,kj->ik", "ij,ij->", "ij->ji",
        "ij->", "ij->i", "bij,jk->bik", "ij,jk->i", "i,i->i", "ijk,jl->lik", "abc,cd->abd",
    };
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++)
        for (int rep = 0; rep < 2; rep++) {
            begin();
            TlContractSpec cs;
            tl_contract_parse(specs[k], &cs, NULL, 0);
            int64_t size[128];
            for (int l = 0; l < 128; l++) size[l] = rng_int(1, 4);
            int ops[2] = {-1, -1};
            for (int o = 0; o < cs.nin; o++) {
                int64_t d[TL_MAX_RANK];
                for (int j = 0; j < cs.rank[o]; j++) d[j] = size[(int)cs.in[o][j]];
                ops[o] = param(shp(cs.rank[o], d), -2, 2);
            }
            check(NAME("contract \"%s\" #%d", specs[k], rep), tl_g_contract(G, specs[k], ops[0], ops[1], L));
        }
}

static void movement_cases(void) {
    begin();
    int a = param(S(2, 3, 4), -2, 2);
    check("reshape [2,3,4] -> [4,6]", tl_g_reshape(G, a, S(4, 6), L));
    begin();
    a = param(S(6), -2, 2);
    check("reshape [6] -> [1,2,1,3]", tl_g_reshape(G, a, S(1, 2, 1, 3), L));

    static const int perms[][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int k = 0; k < 6; k++) {
        begin();
        a = param(S(2, 3, 4), -2, 2);
        check(NAME("permute [%d,%d,%d]", perms[k][0], perms[k][1], perms[k][2]), tl_g_permute(G, a, perms[k], L));
    }

    static const int64_t bc[][2][5] = {
        {{1, 3}, {2, 4, 3}}, {{2, 3, 1}, {3, 2, 3, 5}}, {{0}, {2, 2, 3}}, {{2, 1, 1}, {3, 4, 2, 3}},
        {{3, 1, 2, 1}, {3, 3, 2, 2}},
    };
    for (size_t k = 0; k < sizeof bc / sizeof bc[0]; k++) {
        begin();
        TlGShape s0 = shp((int)bc[k][0][0], &bc[k][0][1]), s1 = shp((int)bc[k][1][0], &bc[k][1][1]);
        char n0[64], n1[64];
        shape_name(n0, sizeof n0, s0);
        shape_name(n1, sizeof n1, s1);
        a = param(s0, -2, 2);
        check(NAME("broadcast %s -> %s", n0, n1), tl_g_broadcast(G, a, s1, L));
    }

    for (int rep = 0; rep < 8; rep++) {
        begin();
        int rank = rng_int(1, 3);
        TlGShape s = rshape(rank, 6);
        TlGDim st[TL_MAX_RANK], sp[TL_MAX_RANK];
        int64_t step[TL_MAX_RANK], v;
        char desc[128] = "";
        int len = 0;
        for (int i = 0; i < rank; i++) {
            tl_gdim_is_const(G, s.dim[i], &v);
            int64_t s0 = rng_int(0, (int)v - 1), s1 = rng_int((int)s0 + 1, (int)v);
            step[i] = rng_int(1, 3);
            st[i] = tl_gdim_const(G, s0), sp[i] = tl_gdim_const(G, s1);
            len += snprintf(desc + len, sizeof desc - (size_t)len, "%s%lld:%lld:%lld/%lld", i ? "," : "",
                            (long long)s0, (long long)s1, (long long)step[i], (long long)v);
        }
        a = param(s, -2, 2);
        check(NAME("slice [%s]", desc), tl_g_slice(G, a, st, sp, step, L));
    }

    for (int rep = 0; rep < 6; rep++) {
        begin();
        int rank = rng_int(1, 3);
        TlGShape s = rshape(rank, 3);
        TlGDim lo[TL_MAX_RANK], hi[TL_MAX_RANK];
        int64_t in[TL_MAX_RANK];
        char desc[128] = "";
        int len = 0;
        for (int i = 0; i < rank; i++) {
            int64_t l = rng_int(0, 2), h = rng_int(0, 2);
            in[i] = rng_int(0, 2);
            lo[i] = tl_gdim_const(G, l), hi[i] = tl_gdim_const(G, h);
            len += snprintf(desc + len, sizeof desc - (size_t)len, "%s%lld/%lld/%lld", i ? "," : "",
                            (long long)l, (long long)h, (long long)in[i]);
        }
        a = param(s, -2, 2);
        check(NAME("pad [%s] fill 0.5", desc), tl_g_pad(G, a, lo, hi, in, 0.5, L));
    }

    for (int axis = 0; axis < 3; axis++) {
        begin();
        int64_t d0[3] = {2, 3, 2}, d1[3] = {2, 3, 2}, d2[3] = {2, 3, 2};
        d0[axis] = 1, d1[axis] = 3, d2[axis] = 2;
        int xs[3] = {param(shp(3, d0), -2, 2), param(shp(3, d1), -2, 2), param(shp(3, d2), -2, 2)};
        check(NAME("concat 3 tensors axis %d", axis), tl_g_concat(G, 3, xs, axis, L));
    }
    begin();
    a = param(S(2, 3), -2, 2);
    int xs[2] = {a, a};
    check("concat x with itself", tl_g_concat(G, 2, xs, 1, L));
}

static void gather_cases(void) {
    for (int axis = 0; axis < 2; axis++)
        for (int ir = 1; ir <= 2; ir++) {
            begin();
            int64_t td[2] = {5, 4};
            int tab = param(shp(2, td), -2, 2);
            int64_t id[2] = {3, 2};
            double idx[6];
            for (int i = 0; i < 6; i++) idx[i] = rng_int(0, (int)td[axis] - 1);
            int ix = tl_g_const_data(G, idx, TL_I32, shp(ir, id), L);
            check(NAME("gather axis %d index rank %d", axis, ir), tl_g_gather(G, tab, ix, axis, L));
        }
    for (int axis = 0; axis < 2; axis++) {
        begin();
        int64_t sd[3] = {3, 4, 2};
        int src = param(shp(3, sd), -2, 2);
        double idx[4] = {1, 0, 1, 2};
        int64_t n = axis == 0 ? 3 : 4;
        int ix = tl_g_const_data(G, idx, TL_I64, shp(1, &sd[axis]), L);
        (void)n;
        check(NAME("scatter_add axis %d (repeated indices)", axis), tl_g_scatter_add(G, src, ix, axis, tl_gdim_const(G, 5), L));
    }
    /* embedding-like: table rows gathered by a 2-d index, then summed with a broadcast */
    begin();
    int64_t td[2] = {6, 3}, bt[2] = {2, 4};
    int tab = param(shp(2, td), -2, 2), pos = param(S(4, 3), -2, 2);
    double idx[8] = {0, 5, 5, 2, 1, 0, 3, 3};
    int ix = tl_g_const_data(G, idx, TL_I32, shp(2, bt), L);
    check("embedding gather + broadcast add", tl_g_broadcast_binary(G, TL_GOP_ADD, tl_g_gather(G, tab, ix, 0, L), pos, L));
}

/* h_{t+1} = tanh(W h_t + U x_t + b); returns final h and the stacked hs. */
static void rnn_case(int reverse, int use_final, int use_seq) {
    begin();
    int64_t Hd = 3, Id = 2, T = 4;
    int W = param(S(3, 3), -0.8, 0.8), U = param(S(3, 2), -0.8, 0.8), bias = param(S(3), -0.5, 0.5);
    int h0 = param(S(3), -1, 1), X = param(S(4, 2), -1, 1);
    (void)Hd, (void)Id, (void)T;
    TlGraph *b = tl_graph_new_body(G);
    int h = tl_g_input(b, "h", TL_F64, tl_gshape_make(b, 1, (int64_t[]){3}), L);
    int x = tl_g_input(b, "x", TL_F64, tl_gshape_make(b, 1, (int64_t[]){2}), L);
    int w = tl_g_input(b, "W", TL_F64, tl_gshape_make(b, 2, (int64_t[]){3, 3}), L);
    int u = tl_g_input(b, "U", TL_F64, tl_gshape_make(b, 2, (int64_t[]){3, 2}), L);
    int bb = tl_g_input(b, "b", TL_F64, tl_gshape_make(b, 1, (int64_t[]){3}), L);
    int z = tl_g_add(b, tl_g_add(b, tl_g_contract(b, "ij,j->i", w, h, L), tl_g_contract(b, "ij,j->i", u, x, L), L), bb, L);
    int hn = tl_g_tanh(b, z, L);
    tl_graph_add_output(b, hn);
    tl_graph_add_output(b, tl_g_mul(b, hn, hn, L)); /* a per-step output that differs from the carry */
    int res[2], inv[3] = {W, U, bias};
    tl_g_scan(G, b, 1, &h0, 1, &X, 3, inv, reverse, res, L);
    int y;
    if (use_final && use_seq)
        y = tl_g_add(G, tl_g_sum(G, res[1], 1, 0, L), res[0], L);
    else
        y = use_final ? res[0] : res[1];
    check(NAME("scan rnn%s%s%s", reverse ? " reverse" : "", use_final ? " final" : "", use_seq ? " stacked" : ""), y);
}

/* An LSTM cell over T steps: two carries (h, c), gates from one matmul. */
static void lstm_case(void) {
    begin();
    int Wx = param(S(8, 3), -0.6, 0.6), Wh = param(S(8, 2), -0.6, 0.6), bias = param(S(8), -0.3, 0.3);
    int h0 = param(S(2), -0.5, 0.5), c0 = param(S(2), -0.5, 0.5), X = param(S(5, 3), -1, 1);
    TlGraph *b = tl_graph_new_body(G);
    TlGShape s2 = tl_gshape_make(b, 1, (int64_t[]){2});
    int h = tl_g_input(b, "h", TL_F64, s2, L), c = tl_g_input(b, "c", TL_F64, s2, L);
    int x = tl_g_input(b, "x", TL_F64, tl_gshape_make(b, 1, (int64_t[]){3}), L);
    int wx = tl_g_input(b, "Wx", TL_F64, tl_gshape_make(b, 2, (int64_t[]){8, 3}), L);
    int wh = tl_g_input(b, "Wh", TL_F64, tl_gshape_make(b, 2, (int64_t[]){8, 2}), L);
    int bb = tl_g_input(b, "b", TL_F64, tl_gshape_make(b, 1, (int64_t[]){8}), L);
    int z = tl_g_add(b, tl_g_add(b, tl_g_contract(b, "ij,j->i", wx, x, L), tl_g_contract(b, "ij,j->i", wh, h, L), L), bb, L);
    int gate[4];
    for (int k = 0; k < 4; k++) {
        int zk = tl_g_slice_axis(b, z, 0, tl_gdim_const(b, 2 * k), tl_gdim_const(b, 2 * k + 2), 1, L);
        if (k == 3) { gate[k] = tl_g_tanh(b, zk, L); continue; }
        int one = tl_g_const(b, 1, TL_F64, s2, L); /* sigmoid = 1 / (1 + exp(-z)) */
        gate[k] = tl_g_div(b, one, tl_g_add(b, one, tl_g_exp(b, tl_g_neg(b, zk, L), L), L), L);
    }
    int cn = tl_g_add(b, tl_g_mul(b, gate[1], c, L), tl_g_mul(b, gate[0], gate[3], L), L);
    int hn = tl_g_mul(b, gate[2], tl_g_tanh(b, cn, L), L);
    tl_graph_add_output(b, hn);
    tl_graph_add_output(b, cn);
    tl_graph_add_output(b, hn);
    int res[3], carries[2] = {h0, c0}, inv[3] = {Wx, Wh, bias};
    tl_g_scan(G, b, 2, carries, 1, &X, 3, inv, 0, res, L);
    int y = tl_g_add(G, tl_g_sum(G, res[2], 1, 0, L), tl_g_mul(G, res[1], res[0], L), L);
    check("scan lstm 5 steps (h, c carries)", y);
}

/* Scans inside scans: an outer scan whose body runs an inner cumulative-product scan. */
static void nested_scan_case(void) {
    begin();
    int X = param(S(3, 2, 2), 0.5, 1.5), c0 = param(S(2), -1, 1);
    TlGraph *ob = tl_graph_new_body(G);
    TlGShape s2 = tl_gshape_make(ob, 1, (int64_t[]){2});
    int oc = tl_g_input(ob, "c", TL_F64, s2, L);
    int ox = tl_g_input(ob, "x", TL_F64, tl_gshape_make(ob, 2, (int64_t[]){2, 2}), L);
    TlGraph *ib = tl_graph_new_body(ob);
    int ic = tl_g_input(ib, "c", TL_F64, tl_gshape_make(ib, 1, (int64_t[]){2}), L);
    int ix = tl_g_input(ib, "x", TL_F64, tl_gshape_make(ib, 1, (int64_t[]){2}), L);
    tl_graph_add_output(ib, tl_g_mul(ib, ic, tl_g_sin(ib, ix, L), L));
    int ires[1];
    tl_g_scan(ob, ib, 1, &oc, 1, &ox, 0, NULL, 0, ires, L);
    tl_graph_add_output(ob, tl_g_add(ob, ires[0], oc, L));
    int res[1];
    tl_g_scan(G, ob, 1, &c0, 1, &X, 0, NULL, 0, res, L);
    check("nested scan", res[0]);
}

static void composite_cases(void) {
    /* softmax cross-entropy of logits [4, 5] against fixed labels */
    begin();
    int logits = param(S(4, 5), -2, 2);
    int m = tl_g_reduce(G, TL_GOP_RMAX, logits, 2, 1, L);
    int sh = tl_g_broadcast_binary(G, TL_GOP_SUB, logits, m, L);
    int e = tl_g_exp(G, sh, L);
    int lse = tl_g_log(G, tl_g_sum(G, e, 2, 1, L), L);
    int logp = tl_g_broadcast_binary(G, TL_GOP_SUB, sh, lse, L);
    double lab[4] = {1, 4, 0, 2};
    int ix = tl_g_const_data(G, lab, TL_I32, S(4), L);
    int onehot = tl_g_cast(G, tl_g_binary(G, TL_GOP_EQ, tl_g_broadcast(G, tl_g_reshape(G, ix, S(4, 1), L), S(4, 5), L),
                                          tl_g_const_data(G, (double[]){0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4}, TL_I32, S(4, 5), L), L),
                           TL_F64, L);
    check("softmax cross-entropy", tl_g_neg(G, tl_g_sum(G, tl_g_mul(G, logp, onehot, L), 3, 0, L), L));

    /* layernorm over the last axis with gain and bias, symbolic batch B */
    begin();
    bind_name = "B", bind_value = 3;
    TlGDim B = tl_gdim_sym(G, "B"), D = tl_gdim_const(G, 4);
    int x = param(tl_gshape_dims(2, (TlGDim[]){B, D}), -2, 2), gain = param(S(4), 0.5, 1.5), bias = param(S(4), -1, 1);
    int inv_n = tl_g_const(G, 0.25, TL_F64, tl_gshape_dims(2, (TlGDim[]){B, tl_gdim_const(G, 1)}), L);
    int mean = tl_g_mul(G, tl_g_sum(G, x, 2, 1, L), inv_n, L);
    int xc = tl_g_broadcast_binary(G, TL_GOP_SUB, x, mean, L);
    int var = tl_g_mul(G, tl_g_sum(G, tl_g_mul(G, xc, xc, L), 2, 1, L), inv_n, L);
    int rstd = tl_g_rsqrt(G, tl_g_add(G, var, tl_g_const(G, 1e-5, TL_F64, G->nodes[var].shape, L), L), L);
    int y = tl_g_broadcast_binary(G, TL_GOP_ADD, tl_g_broadcast_binary(G, TL_GOP_MUL, tl_g_broadcast_binary(G, TL_GOP_MUL, xc, rstd, L), gain, L), bias, L);
    check("layernorm f64[B, 4] with B = 3", y);

    /* gelu (erf form) of a matmul */
    begin();
    int a = param(S(3, 4), -1, 1), w = param(S(4, 2), -1, 1);
    int z = tl_g_contract(G, "ij,jk->ik", a, w, L);
    TlGShape zs = G->nodes[z].shape;
    int t = tl_g_unary(G, TL_GOP_ERF, tl_g_mul(G, z, tl_g_const(G, 0.7071067811865476, TL_F64, zs, L), L), L);
    check("gelu(matmul)", tl_g_mul(G, tl_g_mul(G, z, tl_g_const(G, 0.5, TL_F64, zs, L), L), tl_g_add(G, t, tl_g_const(G, 1, TL_F64, zs, L), L), L));

    /* dropout-style: random mask (no gradient) times x */
    begin();
    a = param(S(4, 4), -1, 1);
    int r = tl_g_random(G, TL_RANDOM_UNIFORM, -1, 7, 3, TL_F64, S(4, 4), L);
    int keep = tl_g_cast(G, tl_g_binary(G, TL_GOP_GT, r, tl_g_const(G, 0.3, TL_F64, S(4, 4), L), L), TL_F64, L);
    check("dropout mask * x", tl_g_mul(G, a, keep, L));
}

/* attn: every input through both results (the outputs and the logsumexp column), and
 * through the outputs alone as flash_attention uses it. */
static void attention_cases(void) {
    static const int64_t shapes[][4] = {{1, 1, 1, 3}, {1, 2, 5, 3}, {2, 2, 4, 2}, {1, 1, 7, 1}};
    for (int c = 0; c < 4; c++) {
        for (int sliced = 0; sliced < 2; sliced++) {
            begin();
            TlGShape s = shp(4, shapes[c]);
            int q = param(s, -1.5, 1.5), k = param(s, -1.5, 1.5), v = param(s, -1, 1);
            double scale = c == 2 ? 0.7 : 1.0 / sqrt((double)shapes[c][3]);
            int o = tl_g_attn(G, q, k, v, scale, L);
            if (sliced) o = tl_g_slice_axis(G, o, 3, tl_gdim_const(G, 0), tl_gdim_const(G, shapes[c][3]), 1, L);
            check(NAME("attn [%lld, %lld, %lld, %lld]%s", (long long)shapes[c][0], (long long)shapes[c][1],
                       (long long)shapes[c][2], (long long)shapes[c][3], sliced ? " outputs only" : " with logsumexp"), o);
        }
    }
    /* q = k = v: the three gradients meet in one param */
    begin();
    int x = param(S(2, 4, 3), -1, 1);
    check("attn (x, x, x)", tl_g_attn(G, x, x, x, 0.5, L));
}

/* Nodes that do not lie on a path from a param to the loss get no backward nodes. */
TEST(unused_branches_cost_nothing) {
    TlGraph *g = tl_graph_new();
    int64_t d[2] = {3, 4};
    TlGShape s = tl_gshape_make(g, 2, d);
    int p = tl_g_param(g, "p", TL_F64, s, L), q = tl_g_param(g, "q", TL_F64, s, L);
    int x = tl_g_input(g, "x", TL_F64, s, L);
    int branch = tl_g_exp(g, tl_g_tanh(g, p, L), L); /* never reaches the loss */
    (void)branch;
    int xin = tl_g_exp(g, x, L); /* reaches the loss but depends on no param */
    int loss = tl_g_sum(g, tl_g_mul(g, tl_g_mul(g, p, q, L), xin, L), 3, 0, L);
    int n0 = g->nnodes, gr[2], ps[2] = {p, q};
    EXPECT(tl_grad(g, loss, 2, ps, gr) == 0);
    for (int i = n0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) {
            int in = g->nodes[i].in[k];
            EXPECTF(in != branch && in != branch - 1, "backward node %%%d uses the unused branch", i);
        }
    /* seed, sum grad (broadcast), mul grads: a handful of nodes, nothing for exp(x) */
    EXPECTF(g->nnodes - n0 <= 8, "%d backward nodes", g->nnodes - n0);
    tl_graph_free(g);
}

int main(void) {
    unary_cases();
    binary_cases();
    broadcast_binary_cases();
    select_cast_cases();
    reduce_cases();
    RUN(rmax_tie_rule);
    RUN(max_tie_rule);
    contract_cases();
    movement_cases();
    gather_cases();
    rnn_case(0, 1, 1);
    rnn_case(0, 1, 0);
    rnn_case(0, 0, 1);
    rnn_case(1, 1, 1);
    lstm_case();
    nested_scan_case();
    composite_cases();
    attention_cases();
    RUN(unused_branches_cost_nothing);
    printf("gradcheck: %d cases, %d gradient entries compared by central differences "
           "(h=%g, |a-n| <= %g + %g*max(|a|,|n|))\n", ncases, nentries, H, ATOL, RTOL);
    return check_done();
}
