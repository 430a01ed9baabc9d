/* test_simplify.c — one test per simplification rule: the rule fires (its counter moves),
 * the graph gets smaller, and the interpreter computes the same outputs before and after. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "check.h"
#include "graph.h"
#include "interp.h"
#include "simplify.h"

static const TlLoc L0 = {0, 0, 0, 0, 0};
#define SH(g, ...) tl_gshape_make(g, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

/* Evaluate every output with deterministic values for every input and param (by name, so
 * the same values go in after renumbering). Returns a malloc'd array of all outputs. */
static double *eval_all(TlGraph *g, int *count) {
    TlInterp *it = tl_interp_new(g);
    tl_interp_bind(it, "B", 3);
    for (int i = 0; i < g->nnodes; i++) {
        const TlGNode *n = &g->nodes[i];
        if (n->op != TL_GOP_INPUT && n->op != TL_GOP_PARAM) continue;
        int64_t numel = 1, v;
        TlGDimBinding b = {"B", 3};
        for (int k = 0; k < n->shape.rank; k++) tl_gdim_eval(g, n->shape.dim[k], &b, 1, &v), numel *= v;
        double *vals = malloc(sizeof(double) * (size_t)(numel + 1));
        unsigned h = 2166136261u;
        for (const char *p = n->name; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
        for (int64_t e = 0; e < numel; e++) vals[e] = sin((double)(h % 1000) + 1.7 * (double)e);
        tl_interp_set(it, i, vals, numel);
        free(vals);
    }
    double *out = NULL;
    int n = 0;
    if (tl_interp_run(it) != 0) {
        printf("    run error: %s\n", tl_interp_error(it));
    } else {
        for (int k = 0; k < g->noutputs; k++) {
            const TlTensor *t = tl_interp_output(it, k);
            out = realloc(out, sizeof(double) * (size_t)(n + t->numel + 1));
            for (int64_t e = 0; e < t->numel; e++) out[n++] = tl_tensor_get(t, e);
        }
    }
    tl_interp_free(it);
    *count = n;
    return out;
}

/* Simplify with `which`, check that the counter at `field` moved and values are kept. */
static TlSimplifyStats check_simplify(TlGraph *g, int which) {
    int n0, n1;
    double *before = eval_all(g, &n0);
    int nodes0 = g->nnodes;
    TlSimplifyStats st;
    memset(&st, 0, sizeof st);
    EXPECTF(tl_simplify(g, which, &st, NULL) == 0, "simplify: %s", tl_graph_error(g));
    double *after = eval_all(g, &n1);
    EXPECTF(before && after && n0 == n1, "%d values before, %d after", n0, n1);
    for (int i = 0; before && after && i < n0 && i < n1; i++)
        EXPECTF(before[i] == after[i] || fabs(before[i] - after[i]) <= 1e-12 * fabs(before[i]),
                "value %d: %g before, %g after", i, before[i], after[i]);
    EXPECTF(g->nnodes < nodes0, "%d nodes before, %d after", nodes0, g->nnodes);
    free(before);
    free(after);
    return st;
}

static TlGraph *G;
static int X, Y; /* f32[B, 4] input, param */

static void setup(void) {
    G = tl_graph_new();
    TlGShape s = tl_gshape_dims(2, (TlGDim[]){tl_gdim_sym(G, "B"), tl_gdim_const(G, 4)});
    X = tl_g_input(G, "x", TL_F64, s, L0);
    Y = tl_g_param(G, "y", TL_F64, s, L0);
}

static int fill(double v) { return tl_g_const(G, v, TL_F64, G->nodes[X].shape, L0); }

TEST(cse) {
    setup();
    int a = tl_g_exp(G, X, L0), b = tl_g_exp(G, X, L0);
    int c = tl_g_add(G, tl_g_mul(G, a, Y, L0), tl_g_mul(G, b, Y, L0), L0);
    tl_graph_add_output(G, c);
    TlSimplifyStats st = check_simplify(G, TL_SIMPLIFY_CSE | TL_SIMPLIFY_DCE);
    EXPECTF(st.cse == 2, "cse fired %d times", st.cse); /* exp, then the mul that used it */
    tl_graph_free(G);
}

TEST(constant_folding) {
    setup();
    int64_t d = 3;
    TlGShape s3 = tl_gshape_make(G, 1, &d);
    int k = tl_g_const_data(G, (double[]){1, 2, 3}, TL_F64, s3, L0);
    int k2 = tl_g_exp(G, tl_g_mul(G, k, k, L0), L0);               /* literal: folds twice */
    int f = tl_g_sqrt(G, tl_g_add(G, fill(2), fill(2), L0), L0);    /* symbolic fill: folds twice */
    tl_graph_add_output(G, tl_g_mul(G, X, f, L0));
    tl_graph_add_output(G, k2);
    TlSimplifyStats st = check_simplify(G, TL_SIMPLIFY_ALL);
    EXPECTF(st.fold == 4, "fold fired %d times", st.fold);
    EXPECT(G->nodes[G->outputs[1]].op == TL_GOP_CONST);
    tl_graph_free(G);
}

TEST(dead_code) {
    setup();
    tl_g_tanh(G, tl_g_exp(G, X, L0), L0); /* never used */
    tl_graph_add_output(G, tl_g_mul(G, X, Y, L0));
    TlSimplifyStats st = check_simplify(G, TL_SIMPLIFY_DCE);
    EXPECTF(st.dce == 2, "dce removed %d", st.dce);
    EXPECT(tl_graph_find(G, TL_GOP_PARAM, "y") >= 0 && G->nnodes == 3);
    tl_graph_free(G);
}

TEST(mul_one) {
    setup();
    tl_graph_add_output(G, tl_g_mul(G, tl_g_mul(G, X, fill(1), L0), tl_g_mul(G, fill(1), Y, L0), L0));
    TlSimplifyStats st = check_simplify(G, TL_SIMPLIFY_ALGEBRA | TL_SIMPLIFY_DCE);
    EXPECT(st.mul_one == 2);
    tl_graph_free(G);
}

TEST(add_zero) {
    setup();
    tl_graph_add_output(G, tl_g_mul(G, tl_g_add(G, X, fill(0), L0), tl_g_add(G, fill(0), Y, L0), L0));
    TlSimplifyStats st = check_simplify(G, TL_SIMPLIFY_ALGEBRA | TL_SIMPLIFY_DCE);
    EXPECT(st.add_zero == 2);
    tl_graph_free(G);
}

TEST(sub_zero) {
    setup();
    tl_graph_add_output(G, tl_g_sub(G, X, fill(0), L0));
    EXPECT(check_simplify(G, TL_SIMPLIFY_ALGEBRA | TL_SIMPLIFY_DCE).sub_zero == 1);
    EXPECT(G->outputs[0] == X);
    tl_graph_free(G);
}

TEST(div_one) {
    setup();
    tl_graph_add_output(G, tl_g_div(G, Y, fill(1), L0));
    EXPECT(check_simplify(G, TL_SIMPLIFY_ALGEBRA | TL_SIMPLIFY_DCE).div_one == 1);
    tl_graph_free(G);
}

TEST(neg_neg) {
    setup();
    tl_graph_add_output(G, tl_g_mul(G, tl_g_neg(G, tl_g_neg(G, X, L0), L0), Y, L0));
    EXPECT(check_simplify(G, TL_SIMPLIFY_ALGEBRA | TL_SIMPLIFY_DCE).neg_neg == 1);
    tl_graph_free(G);
}

TEST(permute_rules) {
    setup();
    int p = tl_g_permute(G, X, (int[]){1, 0}, L0);
    tl_graph_add_output(G, tl_g_add(G, tl_g_permute(G, p, (int[]){1, 0}, L0), Y, L0)); /* transpose twice */
    int64_t d[3] = {2, 3, 4};
    int z = tl_g_input(G, "z", TL_F64, tl_gshape_make(G, 3, d), L0);
    int q = tl_g_permute(G, tl_g_permute(G, z, (int[]){1, 2, 0}, L0), (int[]){1, 2, 0}, L0); /* -> one permute */
    tl_graph_add_output(G, q);
    tl_graph_add_output(G, tl_g_permute(G, z, (int[]){0, 1, 2}, L0));
    TlSimplifyStats st = check_simplify(G, TL_SIMPLIFY_ALGEBRA | TL_SIMPLIFY_DCE);
    EXPECT(st.permute_permute == 2 && st.permute_identity == 1);
    const TlGNode *o = &G->nodes[G->outputs[1]];
    EXPECT(o->op == TL_GOP_PERMUTE && o->in[0] == tl_graph_find(G, TL_GOP_INPUT, "z") && o->perm[0] == 2 && o->perm[1] == 0 && o->perm[2] == 1);
    tl_graph_free(G);
}

TEST(reshape_rules) {
    setup();
    TlGDim B = tl_gdim_sym(G, "B");
    int r1 = tl_g_reshape(G, X, tl_gshape_dims(1, (TlGDim[]){tl_gdim_mul(G, B, tl_gdim_const(G, 4))}), L0);
    int r2 = tl_g_reshape(G, r1, tl_gshape_dims(3, (TlGDim[]){B, tl_gdim_const(G, 2), tl_gdim_const(G, 2)}), L0);
    tl_graph_add_output(G, r2);
    tl_graph_add_output(G, tl_g_reshape(G, tl_g_reshape(G, Y, tl_gshape_dims(3, (TlGDim[]){B, tl_gdim_const(G, 2), tl_gdim_const(G, 2)}), L0),
                                        G->nodes[Y].shape, L0));
    tl_graph_add_output(G, tl_g_reshape(G, X, G->nodes[X].shape, L0));
    TlSimplifyStats st = check_simplify(G, TL_SIMPLIFY_ALGEBRA | TL_SIMPLIFY_DCE);
    EXPECT(st.reshape_reshape == 2 && st.reshape_identity == 1);
    EXPECT(G->outputs[1] == Y && G->nodes[G->outputs[0]].in[0] == X);
    tl_graph_free(G);
}

TEST(broadcast_rules) {
    setup();
    int k = tl_g_const(G, 3, TL_F64, tl_gshape_make(G, 0, NULL), L0);
    int b = tl_g_broadcast(G, k, G->nodes[X].shape, L0);
    tl_graph_add_output(G, tl_g_mul(G, tl_g_broadcast(G, X, G->nodes[X].shape, L0), b, L0));
    TlSimplifyStats st = check_simplify(G, TL_SIMPLIFY_ALGEBRA | TL_SIMPLIFY_DCE);
    EXPECT(st.broadcast_const == 1 && st.broadcast_identity == 1);
    tl_graph_free(G);
}

/* All passes on a gradient graph: the backward of a small MLP has plenty to clean. */
TEST(all_passes_on_gradients) {
    setup();
    int64_t d[2] = {4, 3};
    int w = tl_g_param(G, "w", TL_F64, tl_gshape_make(G, 2, d), L0);
    int h = tl_g_tanh(G, tl_g_contract(G, "bi,ij->bj", X, w, L0), L0);
    int loss = tl_g_sum(G, tl_g_mul(G, h, h, L0), 3, 0, L0);
    int gr[2], ps[2] = {w, Y};
    EXPECT(tl_grad(G, loss, 2, ps, gr) == 0);
    tl_graph_add_output(G, loss);
    tl_graph_add_output(G, gr[0]);
    tl_graph_add_output(G, gr[1]);
    TlSimplifyStats st = check_simplify(G, TL_SIMPLIFY_ALL);
    if (getenv("TL_SIMPLIFY_VERBOSE")) tl_simplify_stats_print(stdout, &st), tl_graph_print(stdout, G);
    EXPECT(st.dce + st.cse + st.fold + st.mul_one > 0);
    tl_graph_free(G);
}

/* Inside a scan body: simplified in place, the loop still computes the same. */
TEST(scan_body) {
    setup();
    int64_t d4 = 4, d54[2] = {5, 4};
    TlGShape s4 = tl_gshape_make(G, 1, &d4);
    int seq = tl_g_input(G, "seq", TL_F64, tl_gshape_make(G, 2, d54), L0);
    int c0 = tl_g_param(G, "c0", TL_F64, s4, L0);
    TlGraph *b = tl_graph_new_body(G);
    int c = tl_g_input(b, "c", TL_F64, s4, L0), x = tl_g_input(b, "x", TL_F64, s4, L0);
    int one = tl_g_const(b, 1, TL_F64, s4, L0);
    int cn = tl_g_tanh(b, tl_g_add(b, tl_g_mul(b, c, one, L0), tl_g_neg(b, tl_g_neg(b, x, L0), L0), L0), L0);
    tl_g_exp(b, x, L0); /* dead */
    tl_graph_add_output(b, cn);
    int res[1];
    tl_g_scan(G, b, 1, &c0, 1, &seq, 0, NULL, 0, res, L0);
    tl_graph_add_output(G, res[0]);
    int bn = b->nnodes;
    TlSimplifyStats st;
    memset(&st, 0, sizeof st);
    int n0, n1;
    double *before = eval_all(G, &n0);
    EXPECT(tl_simplify(G, TL_SIMPLIFY_ALL, &st, NULL) == 0);
    double *after = eval_all(G, &n1);
    EXPECT(before && after && n0 == n1 && memcmp(before, after, sizeof(double) * (size_t)n0) == 0);
    EXPECT(st.mul_one == 1 && st.neg_neg == 1 && st.dce >= 1 && b->nnodes < bn);
    free(before);
    free(after);
    tl_graph_free(G);
}

int main(void) {
    RUN(cse);
    RUN(constant_folding);
    RUN(dead_code);
    RUN(mul_one);
    RUN(add_zero);
    RUN(sub_zero);
    RUN(div_one);
    RUN(neg_neg);
    RUN(permute_rules);
    RUN(reshape_rules);
    RUN(broadcast_rules);
    RUN(all_passes_on_gradients);
    RUN(scan_body);
    return check_done();
}
