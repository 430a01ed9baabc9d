/* graph_cases.h — the graphs the back-end differential tests build (test_cpu_diff,
 * test_gpu_diff, test_nvptx): every Graph IR primitive forward and backward (loss =
 * sum(y * W), gradients of every float param), scans, and seeded random graphs. The
 * including file defines
 *   static void graph_case_run(const char *name, int exact);
 * which gets each graph in G (outputs set, symbols in SYM/SYMV, value ranges of the
 * inputs in RLO/RHI) and must not free it. */
#ifndef TL_GRAPH_CASES_H
#define TL_GRAPH_CASES_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "diag.h"
#include "graph.h"
#include "lower.h"
#include "sema.h"

static void graph_case_run(const char *name, int exact);

static const TlLoc L = {0, 1, 1, 0, 0};

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rng_next(void) {
    uint64_t x = rng_state;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return rng_state = x;
}
static double urand(double lo, double hi) { return lo + (hi - lo) * (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0); }
static int irand(int lo, int hi) { return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1)); }

/* ---- the case under construction ---- */

static TlGraph *G;
static double RLO[4096], RHI[4096]; /* value range per input node */
static const char *SYM[4];
static int64_t SYMV[4];
static int NSYM;
static int NIN;

static void begin(void) {
    G = tl_graph_new();
    NSYM = 0, NIN = 0;
}

static void bind(const char *s, int64_t v) { SYM[NSYM] = s, SYMV[NSYM++] = v; }

static int input(TlDType t, TlGShape s, double lo, double hi) {
    char name[16];
    snprintf(name, sizeof name, "in%d", NIN++);
    int id = tl_g_input(G, name, t, s, L);
    if (id >= 0 && id < 4096) RLO[id] = lo, RHI[id] = hi;
    return id;
}

static int param(TlDType t, TlGShape s, double lo, double hi) {
    char name[16];
    snprintf(name, sizeof name, "p%d", NIN++);
    int id = tl_g_param(G, name, t, s, L);
    if (id >= 0 && id < 4096) RLO[id] = lo, RHI[id] = hi;
    return id;
}

static TlGShape shp(int rank, const int64_t *d) { return tl_gshape_make(G, rank, d); }
#define S(...) shp((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

static inline int64_t numel_of(const TlGShape *s) {
    TlGDimBinding b[4];
    for (int i = 0; i < NSYM; i++) b[i].name = SYM[i], b[i].value = SYMV[i];
    int64_t n = 1, v;
    for (int i = 0; i < s->rank; i++) {
        if (tl_gdim_eval(G, s->dim[i], b, NSYM, &v)) return -1;
        n *= v;
    }
    return n;
}

/* Forward only: outputs = {y}. */
static void fwd(const char *name, int y, int exact) {
    tl_graph_add_output(G, y);
    graph_case_run(name, exact);
    tl_graph_free(G);
}

/* Forward and backward: outputs = {y, dL/dp for every float param}, L = sum(y * W). */
static void fwdbwd(const char *name, int y) {
    char full[160];
    snprintf(full, sizeof full, "%s (forward + backward)", name);
    int params[16], np = 0, grads[16];
    for (int i = 0; i < G->nnodes && np < 16; i++)
        if (G->nodes[i].op == TL_GOP_PARAM && tl_dtype_is_float(G->nodes[i].dtype)) params[np++] = i;
    const TlGNode *yn = &G->nodes[y < 0 ? 0 : y];
    int w = input(yn->dtype, yn->shape, -1, 1);
    int loss = tl_g_sum(G, tl_g_mul(G, y, w, L), (uint32_t)((1u << yn->shape.rank) - 1), 0, L);
    tl_graph_add_output(G, y);
    if (tl_grad(G, loss, np, params, grads) == 0)
        for (int i = 0; i < np; i++) tl_graph_add_output(G, grads[i]);
    graph_case_run(full, 0);
    tl_graph_free(G);
}

/* ---- primitives ---- */

static TlGShape symshape(void) { /* [B, 3] with B bound to 4 */
    TlGDim d[2] = {tl_gdim_sym(G, "B"), tl_gdim_const(G, 3)};
    bind("B", 4);
    return tl_gshape_dims(2, d);
}

static void unary_cases(void) {
    static const TlGOp ops[] = {TL_GOP_NEG, TL_GOP_EXP, TL_GOP_LOG, TL_GOP_SQRT, TL_GOP_RSQRT, TL_GOP_TANH,
                                TL_GOP_ERF, TL_GOP_SIN, TL_GOP_COS, TL_GOP_ABS};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        int pos = ops[i] == TL_GOP_LOG || ops[i] == TL_GOP_SQRT || ops[i] == TL_GOP_RSQRT;
        char name[64];
        begin();
        int x = param(TL_F32, symshape(), pos ? 0.2 : -2, 2);
        snprintf(name, sizeof name, "%s f32[B, 3]", tl_gop_name(ops[i]));
        fwdbwd(name, tl_g_unary(G, ops[i], x, L));
        begin();
        x = param(TL_F64, S(2, 3), pos ? 0.2 : -2, 2);
        snprintf(name, sizeof name, "%s f64[2, 3]", tl_gop_name(ops[i]));
        fwdbwd(name, tl_g_unary(G, ops[i], x, L));
    }
    for (int t = 0; t < 2; t++) {
        TlDType dt = t ? TL_I64 : TL_I32;
        begin();
        fwd(t ? "neg i64" : "neg i32", tl_g_neg(G, input(dt, symshape(), -9, 9), L), 1);
        begin();
        fwd(t ? "abs i64" : "abs i32", tl_g_unary(G, TL_GOP_ABS, input(dt, symshape(), -9, 9), L), 1);
    }
    static const TlDType narrow[] = {TL_BF16, TL_F16};
    for (int t = 0; t < 2; t++) {
        char name[64];
        begin();
        snprintf(name, sizeof name, "exp %s", tl_dtype_name(narrow[t]));
        fwd(name, tl_g_exp(G, input(narrow[t], S(3, 5), -2, 2), L), 0);
        begin();
        snprintf(name, sizeof name, "mul %s", tl_dtype_name(narrow[t]));
        fwd(name, tl_g_mul(G, input(narrow[t], S(3, 5), -30, 30), input(narrow[t], S(3, 5), -30, 30), L), 0);
    }
}

static void binary_cases(void) {
    static const TlGOp ops[] = {TL_GOP_ADD, TL_GOP_SUB, TL_GOP_MUL, TL_GOP_DIV, TL_GOP_POW, TL_GOP_MAX, TL_GOP_MIN};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        char name[64];
        int pos = ops[i] == TL_GOP_POW, den = ops[i] == TL_GOP_DIV;
        begin();
        TlGShape s = symshape();
        int a = param(TL_F32, s, pos ? 0.3 : -2, 2), b = param(TL_F32, s, den ? 0.5 : -2, 2);
        snprintf(name, sizeof name, "%s f32[B, 3]", tl_gop_name(ops[i]));
        fwdbwd(name, tl_g_binary(G, ops[i], a, b, L));
        if (ops[i] == TL_GOP_POW) continue;
        for (int t = 0; t < 3; t++) {
            TlDType dt = t == 0 ? TL_I32 : t == 1 ? TL_I64 : TL_BOOL;
            if (dt == TL_BOOL && ops[i] != TL_GOP_MAX && ops[i] != TL_GOP_MIN) continue; /* not defined on bool */
            begin();
            s = symshape();
            a = input(dt, s, dt == TL_BOOL ? 0 : -20, dt == TL_BOOL ? 2 : 20);
            b = input(dt, s, dt == TL_BOOL ? 0 : -5, dt == TL_BOOL ? 2 : 6);
            snprintf(name, sizeof name, "%s %s", tl_gop_name(ops[i]), tl_dtype_name(dt));
            fwd(name, tl_g_binary(G, ops[i], a, b, L), 1);
        }
    }
    static const TlGOp cmp[] = {TL_GOP_EQ, TL_GOP_NE, TL_GOP_LT, TL_GOP_LE, TL_GOP_GT, TL_GOP_GE};
    for (size_t i = 0; i < 6; i++)
        for (int t = 0; t < 2; t++) {
            char name[64];
            begin();
            TlDType dt = t ? TL_I32 : TL_F32;
            TlGShape s = S(4, 5);
            int a = input(dt, s, -3, 3), b = input(dt, s, -3, 3);
            if (!t) b = tl_g_select(G, tl_g_binary(G, TL_GOP_LT, a, b, L), a, b, L); /* some equal pairs */
            snprintf(name, sizeof name, "%s %s", tl_gop_name(cmp[i]), tl_dtype_name(dt));
            fwd(name, tl_g_binary(G, cmp[i], a, b, L), 1);
        }
    begin();
    TlGShape s = symshape();
    int a = param(TL_F32, s, -2, 2), b = param(TL_F32, s, -2, 2);
    fwdbwd("select f32", tl_g_select(G, tl_g_binary(G, TL_GOP_LT, a, b, L), a, b, L));
    begin();
    s = S(3, 4);
    fwd("select i32", tl_g_select(G, tl_g_binary(G, TL_GOP_GT, input(TL_F32, s, -1, 1), input(TL_F32, s, -1, 1), L),
                                 input(TL_I32, s, -9, 9), input(TL_I32, s, -9, 9), L), 1);
}


static void cast_cases(void) {
    static const TlDType ts[] = {TL_F32, TL_F64, TL_BF16, TL_F16, TL_I32, TL_I64, TL_BOOL};
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 7; j++) {
            if (i == j) continue;
            char name[64];
            begin();
            int x = input(ts[i], S(3, 4), -40, 40);
            snprintf(name, sizeof name, "cast %s -> %s", tl_dtype_name(ts[i]), tl_dtype_name(ts[j]));
            fwd(name, tl_g_cast(G, x, ts[j], L), 1);
        }
    begin();
    int x = param(TL_F32, S(3, 4), -2, 2);
    fwdbwd("cast f32 -> f64", tl_g_cast(G, x, TL_F64, L));
}

static void reduce_cases(void) {
    for (int op = 0; op < 2; op++)
        for (uint32_t axes = 1; axes < 8; axes++)
            for (int kd = 0; kd < 2; kd++) {
                char name[64];
                begin();
                TlGDim d[3] = {tl_gdim_const(G, 2), tl_gdim_sym(G, "T"), tl_gdim_const(G, 5)};
                bind("T", 3);
                int x = param(TL_F32, tl_gshape_dims(3, d), -2, 2);
                snprintf(name, sizeof name, "%s axes=%u keepdims=%d f32[2, T, 5]", op ? "rmax" : "sum", axes, kd);
                fwdbwd(name, tl_g_reduce(G, op ? TL_GOP_RMAX : TL_GOP_SUM, x, axes, kd, L));
            }
    for (int op = 0; op < 2; op++) {
        begin();
        fwd(op ? "rmax i32 axis 1" : "sum i32 axis 1", tl_g_reduce(G, op ? TL_GOP_RMAX : TL_GOP_SUM, input(TL_I32, S(3, 4), -50, 50), 2, 0, L), 1);
    }
    begin();
    fwd("rmax of an empty axis is -inf", tl_g_reduce(G, TL_GOP_RMAX, input(TL_F32, S(3, 0), -1, 1), 2, 0, L), 1);
}

static void contract_cases(void) {
    static const struct { const char *spec; int ra, rb; int64_t a[4], b[4]; } cs[] = {
        {"ij,jk->ik", 2, 2, {3, 4}, {4, 5}},
        {"bij,bjk->bik", 3, 3, {2, 3, 4}, {2, 4, 2}},
        {"i,i->", 1, 1, {7}, {7}},
        {"i,j->ij", 1, 1, {3}, {4}},
        {"ij->ji", 2, 0, {3, 5}, {0}},
        {"ij->i", 2, 0, {3, 5}, {0}},
        {"ijk,k->ij", 3, 1, {2, 3, 4}, {4}},
        {"bhqd,bhkd->bhqk", 4, 4, {1, 2, 3, 4}, {1, 2, 5, 4}},
        {"ij,kj->ik", 2, 2, {3, 6}, {2, 6}},
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        begin();
        int a = param(TL_F32, shp(cs[i].ra, cs[i].a), -1, 1);
        int b = cs[i].rb ? param(TL_F32, shp(cs[i].rb, cs[i].b), -1, 1) : -1;
        char name[64];
        snprintf(name, sizeof name, "contract %s", cs[i].spec);
        fwdbwd(name, tl_g_contract(G, cs[i].spec, a, b, L));
    }
    begin(); /* a symbolic matmul dim */
    TlGDim da[2] = {tl_gdim_sym(G, "M"), tl_gdim_const(G, 4)}, db[2] = {tl_gdim_const(G, 4), tl_gdim_sym(G, "N")};
    bind("M", 5), bind("N", 3);
    int a = param(TL_F32, tl_gshape_dims(2, da), -1, 1), b = param(TL_F32, tl_gshape_dims(2, db), -1, 1);
    fwdbwd("contract ij,jk->ik [M,4]x[4,N]", tl_g_contract(G, "ij,jk->ik", a, b, L));
    /* matmul epilogues (fused into the GEMM: docs/fusion.md): bias, GELU (erf), residual;
     * a batched matmul with a scale and a broadcast subtract */
    for (int back = 0; back < 2; back++) {
        begin();
        TlGDim dx[2] = {tl_gdim_sym(G, "M"), tl_gdim_const(G, 37)};
        bind("M", 13);
        int x = input(TL_F32, tl_gshape_dims(2, dx), -1, 1), w = param(TL_F32, S(37, 70), -0.3, 0.3);
        int bias = param(TL_F32, S(70), -1, 1);
        TlGDim dr[2] = {tl_gdim_sym(G, "M"), tl_gdim_const(G, 70)};
        int r = input(TL_F32, tl_gshape_dims(2, dr), -1, 1);
        int h = tl_g_broadcast_binary(G, TL_GOP_ADD, tl_g_contract(G, "ij,jk->ik", x, w, L), bias, L);
        TlGShape hs = G->nodes[h].shape;
        int e = tl_g_unary(G, TL_GOP_ERF, tl_g_mul(G, h, tl_g_const(G, 0.7071067811865476, TL_F32, hs, L), L), L);
        int y = tl_g_mul(G, tl_g_mul(G, tl_g_const(G, 0.5, TL_F32, hs, L), h, L), tl_g_add(G, tl_g_const(G, 1, TL_F32, hs, L), e, L), L);
        y = tl_g_add(G, y, r, L);
        if (back) fwdbwd("matmul + bias + gelu + residual", y);
        else fwd("matmul + bias + gelu + residual", y, 0);
    }
    begin();
    a = param(TL_F32, S(2, 9, 21), -1, 1), b = param(TL_F32, S(2, 21, 67), -1, 1);
    int sc = param(TL_F32, S(9, 1), -1, 1);
    int hb = tl_g_contract(G, "bxz,bzy->bxy", a, b, L);
    hb = tl_g_mul(G, tl_g_const(G, 0.125, TL_F32, G->nodes[hb].shape, L), hb, L);
    fwd("batched matmul * 0.125 - s", tl_g_broadcast_binary(G, TL_GOP_SUB, hb, sc, L), 0);
}

static void movement_cases(void) {
    begin();
    int x = param(TL_F32, symshape(), -2, 2);
    TlGDim d1[1] = {tl_gdim_mul(G, tl_gdim_sym(G, "B"), tl_gdim_const(G, 3))};
    fwdbwd("reshape [B,3] -> [B*3]", tl_g_reshape(G, x, tl_gshape_dims(1, d1), L));
    begin();
    x = param(TL_F32, S(2, 3, 4), -2, 2);
    fwdbwd("permute [2,3,4] by (2,0,1)", tl_g_permute(G, x, (int[]){2, 0, 1}, L));
    begin();
    x = param(TL_F32, S(3, 1), -2, 2);
    fwdbwd("broadcast [3,1] -> [2,3,4]", tl_g_broadcast(G, x, S(2, 3, 4), L));
    begin();
    x = param(TL_F32, S(7, 5), -2, 2);
    fwdbwd("slice [1:7:2, 0:4]", tl_g_slice(G, x, (TlGDim[]){tl_gdim_const(G, 1), tl_gdim_const(G, 0)},
                                            (TlGDim[]){tl_gdim_const(G, 7), tl_gdim_const(G, 4)}, (int64_t[]){2, 1}, L));
    begin(); /* wpe[0..T] */
    TlGDim dt[2] = {tl_gdim_sym(G, "C"), tl_gdim_const(G, 3)};
    bind("C", 6), bind("T", 4);
    x = param(TL_F32, tl_gshape_dims(2, dt), -2, 2);
    fwdbwd("slice [0:T] of [C, 3] (symbolic)", tl_g_slice_axis(G, x, 0, tl_gdim_const(G, 0), tl_gdim_sym(G, "T"), 1, L));
    begin();
    x = param(TL_F32, S(3, 4), -2, 2);
    fwdbwd("pad lo (1,0) hi (2,1) interior (1,0)", tl_g_pad(G, x, (TlGDim[]){tl_gdim_const(G, 1), tl_gdim_const(G, 0)},
                                                          (TlGDim[]){tl_gdim_const(G, 2), tl_gdim_const(G, 1)}, (int64_t[]){1, 0}, 0.5, L));
    begin();
    int xs[3] = {param(TL_F32, S(2, 3), -2, 2), param(TL_F32, S(2, 1), -2, 2), param(TL_F32, S(2, 4), -2, 2)};
    fwdbwd("concat axis 1", tl_g_concat(G, 3, xs, 1, L));
    for (int ax = 0; ax < 2; ax++) {
        begin();
        int t = param(TL_F32, S(5, 4), -2, 2);
        int idx = input(TL_I32, S(2, 3), 0, ax ? 4 : 5);
        fwdbwd(ax ? "gather axis 1 idx [2,3]" : "gather axis 0 idx [2,3]", tl_g_gather(G, t, idx, ax, L));
    }
    begin();
    int src = param(TL_F32, S(6, 3), -2, 2);
    fwdbwd("scatter_add axis 0 size 4", tl_g_scatter_add(G, src, input(TL_I64, S(6), 0, 4), 0, tl_gdim_const(G, 4), L));
    begin();
    src = param(TL_F32, S(2, 5, 3), -2, 2);
    fwdbwd("scatter_add axis 1 size 3", tl_g_scatter_add(G, src, input(TL_I32, S(5), 0, 3), 1, tl_gdim_const(G, 3), L));
    begin();
    fwd("movement of bool (permute)", tl_g_permute(G, input(TL_BOOL, S(3, 4), 0, 2), (int[]){1, 0}, L), 1);
    begin();
    fwd("movement of i64 (broadcast)", tl_g_broadcast(G, input(TL_I64, S(3), -99, 99), S(2, 3), L), 1);
}

static void source_cases(void) {
    begin();
    fwd("iota f32 axis 1", tl_g_iota(G, TL_F32, symshape(), 1, L), 1);
    begin();
    fwd("iota i64 axis 0", tl_g_iota(G, TL_I64, symshape(), 0, L), 1);
    begin();
    fwd("const fill", tl_g_const(G, 0.1, TL_F32, symshape(), L), 1);
    begin();
    static const double lit[6] = {1, -2.5, 3.25, 0.1, 7, -0.3};
    fwd("const data", tl_g_add(G, tl_g_const_data(G, lit, TL_F32, S(2, 3), L), input(TL_F32, S(2, 3), -1, 1), L), 1);
    begin();
    fwd("random uniform", tl_g_random(G, TL_RANDOM_UNIFORM, -1, 1234, 7, TL_F32, symshape(), L), 1);
    begin();
    fwd("random normal f64", tl_g_random(G, TL_RANDOM_NORMAL, -1, 99, 3, TL_F64, S(5, 3), L), 0);
    begin();
    int seed = input(TL_I64, shp(0, NULL), 0, 1000);
    fwd("random uniform, seed operand", tl_g_random(G, TL_RANDOM_UNIFORM, seed, 0, 1, TL_F32, S(9), L), 1);
}

/* h' = tanh(W h + x_t); ys = h'^2 */
/* Causal attention, forward (outputs and logsumexp) and backward: T = 1, T not a multiple
 * of the tiles, odd and 64-wide heads, a symbolic T, the outputs alone as flash_attention
 * uses them. */
static void attention_cases(void) {
    static const int64_t sh[][4] = {{1, 1, 1, 4}, {2, 3, 37, 5}, {1, 2, 70, 64}, {1, 1, 100, 33}, {3, 1, 9, 16}, {1, 2, 200, 64}};
    for (size_t c = 0; c < sizeof sh / sizeof *sh; c++) {
        for (int sliced = 0; sliced < 2; sliced++) {
            begin();
            TlGShape s = shp(4, sh[c]);
            int q = param(TL_F32, s, -2, 2), k = param(TL_F32, s, -2, 2), v = param(TL_F32, s, -1, 1);
            int y = tl_g_attn(G, q, k, v, 1.0 / sqrt((double)sh[c][3]), L);
            if (sliced) y = tl_g_slice_axis(G, y, 3, tl_gdim_const(G, 0), tl_gdim_const(G, sh[c][3]), 1, L);
            char name[96];
            snprintf(name, sizeof name, "attn [%lld, %lld, %lld, %lld]%s", (long long)sh[c][0], (long long)sh[c][1],
                     (long long)sh[c][2], (long long)sh[c][3], sliced ? " outputs" : "");
            fwdbwd(name, y);
        }
    }
    begin(); /* [B, T, 8] with T symbolic: the kernel's trip counts come from the syms */
    TlGDim d[3] = {tl_gdim_const(G, 2), tl_gdim_sym(G, "T"), tl_gdim_const(G, 8)};
    bind("T", 45);
    TlGShape s = tl_gshape_dims(3, d);
    int q = param(TL_F32, s, -2, 2), k = param(TL_F32, s, -2, 2), v = param(TL_F32, s, -1, 1);
    fwdbwd("attn [2, T=45, 8]", tl_g_attn(G, q, k, v, 0.3, L));
}

static void scan_cases(void) {
    for (int rev = 0; rev < 2; rev++) {
        begin();
        TlGDim dx[2] = {tl_gdim_sym(G, "T"), tl_gdim_const(G, 3)};
        bind("T", 5);
        int W = param(TL_F32, S(3, 3), -0.8, 0.8), h0 = param(TL_F32, S(3), -1, 1);
        int X = param(TL_F32, tl_gshape_dims(2, dx), -1, 1);
        TlGraph *b = tl_graph_new_body(G);
        int h = tl_g_input(b, "h", TL_F32, tl_gshape_make(b, 1, (int64_t[]){3}), L);
        int x = tl_g_input(b, "x", TL_F32, tl_gshape_make(b, 1, (int64_t[]){3}), L);
        int w = tl_g_input(b, "W", TL_F32, tl_gshape_make(b, 2, (int64_t[]){3, 3}), L);
        int hn = tl_g_tanh(b, tl_g_add(b, tl_g_contract(b, "ij,j->i", w, h, L), x, L), L);
        tl_graph_add_output(b, hn);
        tl_graph_add_output(b, tl_g_mul(b, hn, hn, L));
        int res[2];
        tl_g_scan(G, b, 1, &h0, 1, &X, 1, &W, rev, res, L);
        int y = tl_g_add(G, tl_g_sum(G, res[1], 1, 0, L), res[0], L);
        fwdbwd(rev ? "scan rnn reverse T steps" : "scan rnn T steps", y);
    }
    begin(); /* two carries that swap each step, and a carry passed through */
    int a0 = input(TL_F32, S(2), -1, 1), b0 = input(TL_F32, S(2), -1, 1), X = input(TL_F32, S(4, 2), -1, 1);
    TlGraph *b = tl_graph_new_body(G);
    TlGShape s2 = tl_gshape_make(b, 1, (int64_t[]){2});
    int ca = tl_g_input(b, "a", TL_F32, s2, L), cb = tl_g_input(b, "b", TL_F32, s2, L), x = tl_g_input(b, "x", TL_F32, s2, L);
    tl_graph_add_output(b, cb);
    tl_graph_add_output(b, tl_g_add(b, ca, x, L));
    tl_graph_add_output(b, ca);
    int res[3];
    tl_g_scan(G, b, 2, (int[]){a0, b0}, 1, &X, 0, NULL, 0, res, L);
    tl_graph_add_output(G, res[0]);
    tl_graph_add_output(G, res[1]);
    fwd("scan with swapped carries", res[2], 1);
    begin(); /* nested */
    X = input(TL_F32, S(3, 2, 2), 0.5, 1.5);
    int c0 = input(TL_F32, S(2), -1, 1);
    TlGraph *ob = tl_graph_new_body(G);
    TlGShape o2 = tl_gshape_make(ob, 1, (int64_t[]){2});
    int oc = tl_g_input(ob, "c", TL_F32, o2, L);
    int ox = tl_g_input(ob, "x", TL_F32, tl_gshape_make(ob, 2, (int64_t[]){2, 2}), L);
    TlGraph *ib = tl_graph_new_body(ob);
    int ic = tl_g_input(ib, "c", TL_F32, tl_gshape_make(ib, 1, (int64_t[]){2}), L);
    int ix = tl_g_input(ib, "x", TL_F32, tl_gshape_make(ib, 1, (int64_t[]){2}), L);
    tl_graph_add_output(ib, tl_g_mul(ib, ic, tl_g_unary(ib, TL_GOP_SIN, ix, L), L));
    int ires[1];
    tl_g_scan(ob, ib, 1, &oc, 1, &ox, 0, NULL, 0, ires, L);
    tl_graph_add_output(ob, tl_g_add(ob, ires[0], oc, L));
    int ores[1];
    tl_g_scan(G, ob, 1, &c0, 1, &X, 0, NULL, 1, ores, L);
    fwd("nested scan (reverse outer)", ores[0], 0);
}

/* ---- random graphs ---- */

static int rand_dim_sym; /* use symbolic dims in this graph */

static TlGDim rand_dim(void) {
    if (rand_dim_sym && irand(0, 3) == 0) return tl_gdim_sym(G, irand(0, 1) ? "B" : "T");
    return tl_gdim_const(G, irand(1, 5));
}

static int new_value(int rank) {
    TlGDim d[TL_MAX_RANK];
    for (int i = 0; i < rank; i++) d[i] = rand_dim();
    return input(TL_F32, tl_gshape_dims(rank, d), -2, 2);
}

static int same_shape_input(int v) { return input(TL_F32, G->nodes[v].shape, -2, 2); }

/* One random step applied to value v; returns the new value. */
static int rand_step(int v, int depth) {
    const TlGNode *n = &G->nodes[v];
    int r = n->shape.rank;
    switch (irand(0, 15)) {
    case 0: case 1: {
        static const TlGOp u[] = {TL_GOP_NEG, TL_GOP_TANH, TL_GOP_SIN, TL_GOP_COS, TL_GOP_ABS, TL_GOP_EXP, TL_GOP_ERF};
        TlGOp op = u[irand(0, 6)];
        if (op == TL_GOP_EXP) v = tl_g_tanh(G, v, L);
        return tl_g_unary(G, op, v, L);
    }
    case 2: case 3: {
        static const TlGOp b[] = {TL_GOP_ADD, TL_GOP_SUB, TL_GOP_MUL, TL_GOP_MAX, TL_GOP_MIN, TL_GOP_DIV};
        TlGOp op = b[irand(0, 5)];
        int w = same_shape_input(v);
        if (op == TL_GOP_DIV) w = tl_g_add(G, tl_g_unary(G, TL_GOP_ABS, w, L), tl_g_const(G, 1, TL_F32, n->shape, L), L);
        return irand(0, 1) ? tl_g_binary(G, op, v, w, L) : tl_g_binary(G, op, w, v, L);
    }
    case 4: { /* broadcasting: v op reduced(keepdims) or a lower-rank operand */
        if (r == 0) return tl_g_sqrt(G, tl_g_unary(G, TL_GOP_ABS, v, L), L);
        uint32_t axes = (uint32_t)irand(1, (1 << r) - 1);
        int red = tl_g_reduce(G, irand(0, 1) ? TL_GOP_SUM : TL_GOP_RMAX, v, axes, 1, L);
        return tl_g_broadcast_binary(G, irand(0, 1) ? TL_GOP_SUB : TL_GOP_MUL, v, red, L);
    }
    case 5: { /* reduction over a random axis set */
        if (r == 0) return tl_g_neg(G, v, L);
        return tl_g_reduce(G, irand(0, 1) ? TL_GOP_SUM : TL_GOP_RMAX, v, (uint32_t)irand(1, (1 << r) - 1), irand(0, 1), L);
    }
    case 6: case 7: { /* contraction */
        if (r == 2) {
            TlGDim d[2] = {n->shape.dim[1], rand_dim()};
            int w = input(TL_F32, tl_gshape_dims(2, d), -1, 1);
            return tl_g_contract(G, "ij,jk->ik", v, w, L);
        }
        if (r == 3) {
            TlGDim d[3] = {n->shape.dim[0], n->shape.dim[2], rand_dim()};
            int w = input(TL_F32, tl_gshape_dims(3, d), -1, 1);
            return tl_g_contract(G, "bij,bjk->bik", v, w, L);
        }
        if (r == 1) return tl_g_contract(G, "i,j->ij", v, new_value(1), L);
        return tl_g_mul(G, v, v, L);
    }
    case 8: { /* permute */
        if (r < 2) return tl_g_unary(G, TL_GOP_COS, v, L);
        int perm[TL_MAX_RANK];
        for (int i = 0; i < r; i++) perm[i] = i;
        for (int i = r - 1; i > 0; i--) { int j = irand(0, i), t = perm[i]; perm[i] = perm[j], perm[j] = t; }
        return tl_g_permute(G, v, perm, L);
    }
    case 9: { /* reshape: flatten, or split a leading dim off */
        TlGDim d[1] = {tl_gshape_numel(G, n->shape)};
        if (r >= 2 && irand(0, 1)) {
            TlGDim e[TL_MAX_RANK];
            e[0] = tl_gdim_mul(G, n->shape.dim[0], n->shape.dim[1]);
            for (int i = 2; i < r; i++) e[i - 1] = n->shape.dim[i];
            return tl_g_reshape(G, v, tl_gshape_dims(r - 1, e), L);
        }
        return tl_g_reshape(G, v, tl_gshape_dims(1, d), L);
    }
    case 10: { /* slice or pad on a random axis */
        if (r == 0) return tl_g_exp(G, tl_g_tanh(G, v, L), L);
        int ax = irand(0, r - 1);
        if (irand(0, 1)) {
            int64_t c;
            TlGDim dim = n->shape.dim[ax];
            if (tl_gdim_is_const(G, dim, &c) && c >= 2) return tl_g_slice_axis(G, v, ax, tl_gdim_const(G, 1), dim, irand(1, 2), L);
            return tl_g_slice_axis(G, v, ax, tl_gdim_const(G, 0), dim, irand(1, 3), L);
        }
        TlGDim lo[TL_MAX_RANK], hi[TL_MAX_RANK];
        int64_t in[TL_MAX_RANK] = {0};
        for (int i = 0; i < r; i++) lo[i] = hi[i] = tl_gdim_const(G, 0);
        lo[ax] = tl_gdim_const(G, irand(0, 2)), hi[ax] = tl_gdim_const(G, irand(0, 2)), in[ax] = irand(0, 1);
        return tl_g_pad(G, v, lo, hi, in, urand(-1, 1), L);
    }
    case 11: { /* concat with a new operand */
        if (r == 0) return tl_g_add(G, v, v, L);
        int ax = irand(0, r - 1);
        TlGDim d[TL_MAX_RANK];
        for (int i = 0; i < r; i++) d[i] = n->shape.dim[i];
        d[ax] = tl_gdim_const(G, irand(1, 3));
        int xs[2] = {v, input(TL_F32, tl_gshape_dims(r, d), -2, 2)};
        if (irand(0, 1)) xs[0] = xs[1], xs[1] = v;
        return tl_g_concat(G, 2, xs, ax, L);
    }
    case 12: { /* broadcast to a new leading dim */
        if (r >= 4) return tl_g_sum(G, v, 1, 0, L);
        TlGDim d[TL_MAX_RANK];
        d[0] = rand_dim();
        for (int i = 0; i < r; i++) d[i + 1] = n->shape.dim[i];
        return tl_g_broadcast(G, v, tl_gshape_dims(r + 1, d), L);
    }
    case 13: { /* gather along an axis with a constant size */
        if (r == 0) return tl_g_neg(G, v, L);
        int ax = irand(0, r - 1);
        int64_t c;
        if (!tl_gdim_is_const(G, n->shape.dim[ax], &c)) c = 1; /* symbolic: index 0 only */
        int idx = input(irand(0, 1) ? TL_I32 : TL_I64, S(irand(1, 4)), 0, (double)c);
        return tl_g_gather(G, v, idx, ax, L);
    }
    case 14: { /* scatter_add along an axis */
        if (r == 0) return tl_g_neg(G, v, L);
        int ax = irand(0, r - 1);
        int64_t size = irand(1, 4);
        TlGDim d[1] = {n->shape.dim[ax]};
        int idx = input(TL_I64, tl_gshape_dims(1, d), 0, (double)size);
        return tl_g_scatter_add(G, v, idx, ax, tl_gdim_const(G, size), L);
    }
    default: { /* a scan over axis 0: h' = tanh(h + x_t) * 0.9; ys = h' - x_t */
        if (r < 1 || depth > 0) return tl_g_tanh(G, v, L);
        int rest = tl_g_reduce(G, TL_GOP_SUM, v, 1, 0, L); /* carry init: [dims 1..] */
        TlGraph *b = tl_graph_new_body(G);
        TlGShape cs = G->nodes[rest].shape;
        int h = tl_g_input(b, "h", TL_F32, cs, L), x = tl_g_input(b, "x", TL_F32, cs, L);
        int hn = tl_g_mul(b, tl_g_tanh(b, tl_g_add(b, h, x, L), L), tl_g_const(b, 0.9, TL_F32, cs, L), L);
        tl_graph_add_output(b, hn);
        tl_graph_add_output(b, tl_g_sub(b, hn, x, L));
        int res[2];
        tl_g_scan(G, b, 1, &rest, 1, &v, 0, NULL, irand(0, 1), res, L);
        return irand(0, 1) ? res[1] : tl_g_broadcast_binary(G, TL_GOP_ADD, res[1], res[0], L);
    }
    }
}

static void random_graph_case(int seed) {
    rng_state = 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed * 0x100000001B3ull);
    rng_next();
    begin();
    rand_dim_sym = seed % 3 == 0;
    bind("B", irand(1, 4));
    bind("T", irand(1, 4));
    int v = new_value(irand(1, 3));
    int steps = irand(2, 7);
    char desc[256];
    int dn = 0;
    for (int s = 0; s < steps; s++) {
        int nv = rand_step(v, 0);
        if (nv < 0 || G->nodes[nv].shape.rank > 5) break;
        dn += snprintf(desc + dn, sizeof desc - (size_t)dn, "%s%s", s ? "," : "", tl_gop_name(G->nodes[nv].op));
        if (dn >= (int)sizeof desc - 16) dn = (int)sizeof desc - 16;
        v = nv;
        if (G->nodes[v].op == TL_GOP_SUM || G->nodes[v].op == TL_GOP_RMAX || irand(0, 3) == 0) tl_graph_add_output(G, v);
    }
    char name[320];
    snprintf(name, sizeof name, "random graph %d (%s)", seed, desc);
    tl_graph_add_output(G, v);
    graph_case_run(name, 0);
    tl_graph_free(G);
}


#endif
