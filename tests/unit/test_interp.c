/* test_interp.c — the reference interpreter on small hand-computed cases, one or more per
 * primitive, plus the Philox4x32-10 known-answer vectors of Random123. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "graph.h"
#include "interp.h"
#include "philox.h"

static const TlLoc L0 = {0, 0, 0, 0, 0};

#define D(...) ((double[]){__VA_ARGS__})
#define NV(...) ((int)(sizeof((double[]){__VA_ARGS__}) / sizeof(double)))
#define SH(g, ...) tl_gshape_make(g, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})
#define K(g, t, s, ...) tl_g_const_data(g, D(__VA_ARGS__), t, s, L0)

/* Run g and compare node's value with want[0..n) within tol. Returns 1 when equal. */
static int value_is(TlGraph *g, int node, const double *want, int n, double tol) {
    if (node < 0) {
        printf("    build error: %s\n", tl_graph_error(g));
        return 0;
    }
    TlInterp *it = tl_interp_new(g);
    int ok = tl_interp_run(it) == 0;
    if (!ok) printf("    run error: %s\n", tl_interp_error(it));
    const TlTensor *t = ok ? tl_interp_value(it, node) : NULL;
    if (ok && (!t || t->numel != n)) {
        printf("    %lld elements, expected %d\n", t ? (long long)t->numel : -1LL, n);
        ok = 0;
    }
    for (int i = 0; ok && i < n; i++) {
        double v = tl_tensor_get(t, i);
        if (!(fabs(v - want[i]) <= tol) && !(isinf(v) && v == want[i])) {
            printf("    element %d: got %.9g, expected %.9g\n", i, v, want[i]);
            ok = 0;
        }
    }
    tl_interp_free(it);
    return ok;
}
#define VALUE_IS(g, node, tol, ...) value_is(g, node, D(__VA_ARGS__), NV(__VA_ARGS__), tol)

TEST(philox_known_answers) {
    uint32_t out[4];
    static const struct { uint32_t ctr[4], key[2], want[4]; } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (int k = 0; k < 3; k++) {
        tl_philox4x32_10(kat[k].ctr, kat[k].key, out);
        EXPECTF(memcmp(out, kat[k].want, sizeof out) == 0, "vector %d: %08x %08x %08x %08x", k, out[0], out[1],
                out[2], out[3]);
    }
}

TEST(philox_distributions) {
    double s = 0, s2 = 0, n1 = 0, n2 = 0, lo = 1, hi = 0;
    int N = 200000;
    for (int i = 0; i < N; i++) {
        double u = tl_philox_uniform_at(42, 7, (uint64_t)i), z = tl_philox_normal_at(42, 7, (uint64_t)i);
        s += u, s2 += u * u, n1 += z, n2 += z * z;
        lo = fmin(lo, u), hi = fmax(hi, u);
    }
    EXPECT(lo >= 0 && hi < 1);
    EXPECTF(fabs(s / N - 0.5) < 0.005 && fabs(s2 / N - s * s / N / N - 1.0 / 12) < 0.002, "uniform mean %g", s / N);
    EXPECTF(fabs(n1 / N) < 0.01 && fabs(n2 / N - 1) < 0.02, "normal mean %g var %g", n1 / N, n2 / N);
    EXPECT(tl_philox_uniform_at(1, 0, 5) != tl_philox_uniform_at(1, 1, 5)); /* offsets differ */
    EXPECT(tl_philox_uniform_at(1, 0, 5) != tl_philox_uniform_at(2, 0, 5)); /* seeds differ */
}

TEST(random_op) {
    TlGraph *g = tl_graph_new();
    int r = tl_g_random(g, TL_RANDOM_UNIFORM, -1, 9, 4, TL_F64, SH(g, 2, 3), L0);
    double want[6];
    for (int i = 0; i < 6; i++) want[i] = tl_philox_uniform_at(9, 4, (uint64_t)i);
    EXPECT(value_is(g, r, want, 6, 0));
    int seed = K(g, TL_I64, SH(g), 11);
    int z = tl_g_random(g, TL_RANDOM_NORMAL, seed, 0, 0, TL_F32, SH(g, 5), L0);
    for (int i = 0; i < 5; i++) want[i] = (float)tl_philox_normal_at(11, 0, (uint64_t)i);
    EXPECT(value_is(g, z, want, 5, 0));
    tl_graph_free(g);
}

TEST(iota) {
    TlGraph *g = tl_graph_new();
    EXPECT(VALUE_IS(g, tl_g_iota(g, TL_I32, SH(g, 2, 3), 1, L0), 0, 0, 1, 2, 0, 1, 2));
    EXPECT(VALUE_IS(g, tl_g_iota(g, TL_F32, SH(g, 2, 3), 0, L0), 0, 0, 0, 0, 1, 1, 1));
    /* a causal mask: row >= col */
    int r = tl_g_iota(g, TL_I32, SH(g, 3, 3), 0, L0), c = tl_g_iota(g, TL_I32, SH(g, 3, 3), 1, L0);
    EXPECT(VALUE_IS(g, tl_g_binary(g, TL_GOP_GE, r, c, L0), 0, 1, 0, 0, 1, 1, 0, 1, 1, 1));
    tl_graph_free(g);
}

TEST(inputs_params_consts) {
    TlGraph *g = tl_graph_new();
    TlGShape s = tl_gshape_dims(1, (TlGDim[]){tl_gdim_sym(g, "N")});
    int x = tl_g_input(g, "x", TL_F32, s, L0);
    int p = tl_g_param(g, "p", TL_I32, SH(g, 2), L0);
    int c = tl_g_const(g, 2.5, TL_F32, s, L0);
    int y = tl_g_add(g, x, c, L0);
    tl_graph_add_output(g, y);
    TlInterp *it = tl_interp_new(g);
    tl_interp_bind(it, "N", 3);
    EXPECT(tl_interp_run(it) == -1 && strstr(tl_interp_error(it), "no value"));
    EXPECT(tl_interp_set_named(it, "x", D(1, 2, 3), 3) == 0);
    int32_t pv[2] = {7, -8};
    EXPECT(tl_interp_set_raw(it, p, pv, 2) == 0);
    EXPECT(tl_interp_run(it) == 0);
    const TlTensor *t = tl_interp_output(it, 0);
    EXPECT(t && t->numel == 3 && tl_tensor_get(t, 2) == 5.5);
    EXPECT(tl_tensor_get(tl_interp_value(it, p), 1) == -8);
    tl_interp_bind(it, "N", 4); /* the element count no longer matches */
    EXPECT(tl_interp_run(it) == -1 && strstr(tl_interp_error(it), "elements"));
    EXPECT(tl_interp_set_named(it, "nope", D(1), 1) == -1);
    tl_interp_free(it);
    it = tl_interp_new(g); /* unbound symbol */
    tl_interp_set(it, x, D(1, 2, 3), 3);
    EXPECT(tl_interp_run(it) == -1 && strstr(tl_interp_error(it), "unbound"));
    tl_interp_free(it);
    tl_graph_free(g);
}

TEST(unary_ops) {
    TlGraph *g = tl_graph_new();
    int x = K(g, TL_F64, SH(g, 3), -1, 0.5, 2);
    EXPECT(VALUE_IS(g, tl_g_neg(g, x, L0), 0, 1, -0.5, -2));
    EXPECT(VALUE_IS(g, tl_g_exp(g, x, L0), 1e-15, exp(-1), exp(0.5), exp(2)));
    EXPECT(VALUE_IS(g, tl_g_unary(g, TL_GOP_ABS, x, L0), 0, 1, 0.5, 2));
    EXPECT(VALUE_IS(g, tl_g_tanh(g, x, L0), 1e-15, tanh(-1), tanh(0.5), tanh(2)));
    EXPECT(VALUE_IS(g, tl_g_unary(g, TL_GOP_ERF, x, L0), 1e-15, -0.8427007929497149, 0.5204998778130465, 0.9953222650189527));
    EXPECT(VALUE_IS(g, tl_g_unary(g, TL_GOP_SIN, x, L0), 1e-15, sin(-1), sin(0.5), sin(2)));
    EXPECT(VALUE_IS(g, tl_g_unary(g, TL_GOP_COS, x, L0), 1e-15, cos(-1), cos(0.5), cos(2)));
    int y = K(g, TL_F64, SH(g, 3), 4, 0.25, 1);
    EXPECT(VALUE_IS(g, tl_g_log(g, y, L0), 1e-15, log(4), log(0.25), 0));
    EXPECT(VALUE_IS(g, tl_g_sqrt(g, y, L0), 0, 2, 0.5, 1));
    EXPECT(VALUE_IS(g, tl_g_rsqrt(g, y, L0), 0, 0.5, 2, 1));
    int i = K(g, TL_I32, SH(g, 2), -3, 4);
    EXPECT(VALUE_IS(g, tl_g_unary(g, TL_GOP_ABS, i, L0), 0, 3, 4));
    EXPECT(VALUE_IS(g, tl_g_neg(g, i, L0), 0, 3, -4));
    tl_graph_free(g);
}

TEST(binary_ops) {
    TlGraph *g = tl_graph_new();
    int a = K(g, TL_F32, SH(g, 4), 1, -2, 3, 0.5), b = K(g, TL_F32, SH(g, 4), 2, 2, -1, 0.5);
    EXPECT(VALUE_IS(g, tl_g_add(g, a, b, L0), 0, 3, 0, 2, 1));
    EXPECT(VALUE_IS(g, tl_g_sub(g, a, b, L0), 0, -1, -4, 4, 0));
    EXPECT(VALUE_IS(g, tl_g_mul(g, a, b, L0), 0, 2, -4, -3, 0.25));
    EXPECT(VALUE_IS(g, tl_g_div(g, a, b, L0), 0, 0.5, -1, -3, 1));
    EXPECT(VALUE_IS(g, tl_g_binary(g, TL_GOP_POW, a, b, L0), 1e-6, 1, 4, 1.0 / 3, sqrt(0.5)));
    EXPECT(VALUE_IS(g, tl_g_binary(g, TL_GOP_MAX, a, b, L0), 0, 2, 2, 3, 0.5));
    EXPECT(VALUE_IS(g, tl_g_binary(g, TL_GOP_MIN, a, b, L0), 0, 1, -2, -1, 0.5));
    EXPECT(VALUE_IS(g, tl_g_binary(g, TL_GOP_EQ, a, b, L0), 0, 0, 0, 0, 1));
    EXPECT(VALUE_IS(g, tl_g_binary(g, TL_GOP_NE, a, b, L0), 0, 1, 1, 1, 0));
    EXPECT(VALUE_IS(g, tl_g_binary(g, TL_GOP_LT, a, b, L0), 0, 1, 1, 0, 0));
    EXPECT(VALUE_IS(g, tl_g_binary(g, TL_GOP_LE, a, b, L0), 0, 1, 1, 0, 1));
    EXPECT(VALUE_IS(g, tl_g_binary(g, TL_GOP_GT, a, b, L0), 0, 0, 0, 1, 0));
    EXPECT(VALUE_IS(g, tl_g_binary(g, TL_GOP_GE, a, b, L0), 0, 0, 0, 1, 1));
    /* integers: exact, division truncates toward zero */
    int p = K(g, TL_I64, SH(g, 3), 7, -7, 9007199254740993.0), q = K(g, TL_I64, SH(g, 3), 2, 2, 1);
    EXPECT(VALUE_IS(g, tl_g_div(g, p, q, L0), 0, 3, -3, 9007199254740993.0));
    int big = tl_g_add(g, p, q, L0);
    tl_graph_add_output(g, big);
    TlInterp *it = tl_interp_new(g);
    EXPECT(tl_interp_run(it) == 0 && ((int64_t *)tl_interp_value(it, big)->data)[2] == 9007199254740993LL); /* 2^53 + 1: exact in i64, not in double */
    tl_interp_free(it);
    int z = K(g, TL_I32, SH(g, 1), 0);
    int bad = tl_g_div(g, K(g, TL_I32, SH(g, 1), 1), z, L0);
    it = tl_interp_new(g);
    EXPECT(tl_interp_run(it) == -1 && strstr(tl_interp_error(it), "division by zero"));
    tl_interp_free(it);
    (void)bad;
    tl_graph_free(g);
}

TEST(select_cast) {
    TlGraph *g = tl_graph_new();
    int c = tl_g_cast(g, K(g, TL_F32, SH(g, 3), 0, 2, -1), TL_BOOL, L0);
    EXPECT(VALUE_IS(g, c, 0, 0, 1, 1));
    int a = K(g, TL_F32, SH(g, 3), 1, 2, 3), b = K(g, TL_F32, SH(g, 3), -1, -2, -3);
    EXPECT(VALUE_IS(g, tl_g_select(g, c, a, b, L0), 0, -1, 2, 3));
    EXPECT(VALUE_IS(g, tl_g_cast(g, K(g, TL_F32, SH(g, 3), 2.7, -2.7, 0.2), TL_I32, L0), 0, 2, -2, 0));
    EXPECT(VALUE_IS(g, tl_g_cast(g, K(g, TL_F64, SH(g, 2), 1.0000001, 3.14159), TL_BF16, L0), 0, 1, 3.140625));
    EXPECT(VALUE_IS(g, tl_g_cast(g, K(g, TL_F64, SH(g, 3), 1.0009765625 + 1e-9, 70000, 1e-8), TL_F16, L0), 0,
                    1.0009765625, INFINITY, 0));
    EXPECT(VALUE_IS(g, tl_g_cast(g, K(g, TL_F64, SH(g, 1), 0.1), TL_F32, L0), 0, (float)0.1));
    tl_graph_free(g);
}

TEST(reductions) {
    TlGraph *g = tl_graph_new();
    int x = K(g, TL_F64, SH(g, 2, 3), 1, 5, 3, -4, 2, 6);
    EXPECT(VALUE_IS(g, tl_g_sum(g, x, 1, 0, L0), 0, -3, 7, 9));
    EXPECT(VALUE_IS(g, tl_g_sum(g, x, 2, 1, L0), 0, 9, 4));
    EXPECT(VALUE_IS(g, tl_g_sum(g, x, 3, 0, L0), 0, 13));
    EXPECT(VALUE_IS(g, tl_g_reduce(g, TL_GOP_RMAX, x, 1, 0, L0), 0, 1, 5, 6));
    EXPECT(VALUE_IS(g, tl_g_reduce(g, TL_GOP_RMAX, x, 2, 1, L0), 0, 5, 6));
    int i = K(g, TL_I32, SH(g, 2, 2), 1, -5, 3, 2);
    EXPECT(VALUE_IS(g, tl_g_reduce(g, TL_GOP_RMAX, i, 2, 0, L0), 0, 1, 3));
    EXPECT(VALUE_IS(g, tl_g_sum(g, i, 3, 0, L0), 0, 1));
    tl_graph_free(g);
}

TEST(contraction) {
    TlGraph *g = tl_graph_new();
    int a = K(g, TL_F64, SH(g, 2, 3), 1, 2, 3, 4, 5, 6), b = K(g, TL_F64, SH(g, 3, 2), 1, 0, 0, 1, 1, 1);
    EXPECT(VALUE_IS(g, tl_g_contract(g, "ij,jk->ik", a, b, L0), 0, 4, 5, 10, 11));
    EXPECT(VALUE_IS(g, tl_g_contract(g, "ij,kj->ki", a, a, L0), 0, 14, 32, 32, 77));
    EXPECT(VALUE_IS(g, tl_g_contract(g, "ij->ji", a, -1, L0), 0, 1, 4, 2, 5, 3, 6));
    EXPECT(VALUE_IS(g, tl_g_contract(g, "ij->", a, -1, L0), 0, 21));
    int u = K(g, TL_F64, SH(g, 2), 1, 2), v = K(g, TL_F64, SH(g, 3), 1, 10, 100);
    EXPECT(VALUE_IS(g, tl_g_contract(g, "i,j->ij", u, v, L0), 0, 1, 10, 100, 2, 20, 200));
    /* batched: two 2x2 matmuls */
    int p = K(g, TL_F64, SH(g, 2, 2, 2), 1, 2, 3, 4, 0, 1, 1, 0), q = K(g, TL_F64, SH(g, 2, 2, 2), 1, 0, 0, 1, 5, 6, 7, 8);
    EXPECT(VALUE_IS(g, tl_g_contract(g, "bij,bjk->bik", p, q, L0), 0, 1, 2, 3, 4, 7, 8, 5, 6));
    tl_graph_free(g);
}

TEST(movement) {
    TlGraph *g = tl_graph_new();
    int a = K(g, TL_F64, SH(g, 2, 3), 1, 2, 3, 4, 5, 6);
    EXPECT(VALUE_IS(g, tl_g_reshape(g, a, SH(g, 3, 2), L0), 0, 1, 2, 3, 4, 5, 6));
    EXPECT(VALUE_IS(g, tl_g_permute(g, a, (int[]){1, 0}, L0), 0, 1, 4, 2, 5, 3, 6));
    int r = K(g, TL_F64, SH(g, 2, 1), 7, 8);
    EXPECT(VALUE_IS(g, tl_g_broadcast(g, r, SH(g, 2, 2, 3), L0), 0, 7, 7, 7, 8, 8, 8, 7, 7, 7, 8, 8, 8));
    int v = K(g, TL_F64, SH(g, 6), 0, 1, 2, 3, 4, 5);
    EXPECT(VALUE_IS(g, tl_g_slice_axis(g, v, 0, tl_gdim_const(g, 1), tl_gdim_const(g, 6), 2, L0), 0, 1, 3, 5));
    EXPECT(VALUE_IS(g, tl_g_slice_axis(g, v, 0, tl_gdim_const(g, 0), tl_gdim_const(g, 5), 3, L0), 0, 0, 3));
    EXPECT(VALUE_IS(g, tl_g_slice_axis(g, a, 1, tl_gdim_const(g, 1), tl_gdim_const(g, 3), 1, L0), 0, 2, 3, 5, 6));
    int w = K(g, TL_F64, SH(g, 3), 1, 2, 3);
    EXPECT(VALUE_IS(g, tl_g_pad(g, w, (TlGDim[]){tl_gdim_const(g, 1)}, (TlGDim[]){tl_gdim_const(g, 2)}, (int64_t[]){1}, -1, L0),
                    0, -1, 1, -1, 2, -1, 3, -1, -1));
    int b = K(g, TL_F64, SH(g, 2, 1), 9, 10);
    EXPECT(VALUE_IS(g, tl_g_concat(g, 2, (int[]){a, b}, 1, L0), 0, 1, 2, 3, 9, 4, 5, 6, 10));
    EXPECT(VALUE_IS(g, tl_g_concat(g, 2, (int[]){a, a}, 0, L0), 0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6));
    tl_graph_free(g);
}

TEST(gather_scatter) {
    TlGraph *g = tl_graph_new();
    int t = K(g, TL_F32, SH(g, 3, 2), 1, 2, 3, 4, 5, 6);
    int ix = K(g, TL_I32, SH(g, 2, 2), 2, 0, 2, 1);
    EXPECT(VALUE_IS(g, tl_g_gather(g, t, ix, 0, L0), 0, 5, 6, 1, 2, 5, 6, 3, 4));
    int jx = K(g, TL_I64, SH(g, 3), 1, 1, 0);
    EXPECT(VALUE_IS(g, tl_g_gather(g, t, jx, 1, L0), 0, 2, 2, 1, 4, 4, 3, 6, 6, 5));
    int src = K(g, TL_F32, SH(g, 3, 2), 1, 2, 3, 4, 5, 6);
    int kx = K(g, TL_I32, SH(g, 3), 1, 3, 1);
    EXPECT(VALUE_IS(g, tl_g_scatter_add(g, src, kx, 0, tl_gdim_const(g, 4), L0), 0, 0, 0, 6, 8, 0, 0, 3, 4));
    int bad = tl_g_gather(g, t, K(g, TL_I32, SH(g, 1), 3), 0, L0);
    tl_graph_add_output(g, bad);
    TlInterp *it = tl_interp_new(g);
    EXPECT(tl_interp_run(it) == -1 && strstr(tl_interp_error(it), "out of range"));
    tl_interp_free(it);
    tl_graph_free(g);
}

/* cumulative sum with a running product as a second carry, forward and reverse */
TEST(scan_loop) {
    for (int rev = 0; rev <= 1; rev++) {
        TlGraph *g = tl_graph_new();
        int xs = K(g, TL_F64, SH(g, 4, 2), 1, 2, 3, 4, 5, 6, 7, 8);
        int c0 = K(g, TL_F64, SH(g, 2), 0, 0), p0 = K(g, TL_F64, SH(g, 2), 1, 1);
        int scale = K(g, TL_F64, SH(g, 2), 1, 10);
        TlGraph *b = tl_graph_new_body(g);
        int c = tl_g_input(b, "c", TL_F64, SH(b, 2), L0), p = tl_g_input(b, "p", TL_F64, SH(b, 2), L0);
        int x = tl_g_input(b, "x", TL_F64, SH(b, 2), L0), s = tl_g_input(b, "s", TL_F64, SH(b, 2), L0);
        int cn = tl_g_add(b, c, tl_g_mul(b, x, s, L0), L0);
        tl_graph_add_output(b, cn);
        tl_graph_add_output(b, tl_g_mul(b, p, x, L0));
        tl_graph_add_output(b, cn);
        int res[3], carries[2] = {c0, p0};
        EXPECT(tl_g_scan(g, b, 2, carries, 1, &xs, 1, &scale, rev, res, L0) >= 0);
        EXPECT(VALUE_IS(g, res[0], 0, 16, 200));
        EXPECT(VALUE_IS(g, res[1], 0, 105, 384));
        if (!rev) EXPECT(VALUE_IS(g, res[2], 0, 1, 20, 4, 60, 9, 120, 16, 200));
        else EXPECT(VALUE_IS(g, res[2], 0, 16, 200, 15, 180, 12, 140, 7, 80));
        tl_graph_free(g);
    }
}

int main(void) {
    RUN(philox_known_answers);
    RUN(philox_distributions);
    RUN(random_op);
    RUN(iota);
    RUN(inputs_params_consts);
    RUN(unary_ops);
    RUN(binary_ops);
    RUN(select_cast);
    RUN(reductions);
    RUN(contraction);
    RUN(movement);
    RUN(gather_scatter);
    RUN(scan_loop);
    return check_done();
}
