/* test_colsum.c — the CPU's column-reduction pass (compiler/loops_colsum.c): which kernels
 * it rewrites, and that a rewritten kernel gives bitwise the loop nest's results
 * (TL_COLSUM=0) for 1 and 2 threads, and the interpreter's within f32 rounding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/cpu.h"
#include "graph.h"
#include "interp.h"
#include "loops.h"

static const TlLoc L = {0, 1, 1, 0, 0};

/* How many kernels of g the pass rewrites. */
static int rewritten(const TlGraph *g) {
    char err[256];
    TlLProgram *p = tl_loops_lower(g, err, sizeof err);
    if (!p) return -1;
    int n = tl_loops_colsum(p);
    tl_loops_free(p);
    return n;
}

static double *fill(int64_t n, unsigned seed) {
    double *v = malloc(sizeof *v * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = ((double)(seed >> 8) / (double)(1u << 24)) * 2.0 - 1.0;
    }
    return v;
}

/* Run g (inputs x, y of n elements each; y may be -1) compiled with the pass on or off and
 * with `threads` threads; copies output 0 to out (f32). Returns its element count. */
static int64_t run_cpu(const TlGraph *g, int x, int y, const double *vx, const double *vy, int64_t n, const char *sym,
                       int64_t symv, int colsum, int threads, float *out, int64_t max) {
    if (colsum) unsetenv("TL_COLSUM");
    else setenv("TL_COLSUM", "0", 1);
    char err[512];
    TlCpuOptions o = {.threads = threads};
    TlCpuProgram *p = tl_cpu_compile(g, &o, err, sizeof err);
    unsetenv("TL_COLSUM");
    EXPECTF(p != NULL, "%s", err);
    if (!p) return -1;
    if (sym) tl_cpu_bind(p, sym, symv);
    tl_cpu_set(p, x, vx, n);
    if (y >= 0) tl_cpu_set(p, y, vy, n);
    int64_t m = -1;
    if (tl_cpu_run(p) == 0) {
        const TlTensor *t = tl_cpu_output(p, 0);
        m = t->numel < max ? t->numel : max;
        memcpy(out, t->data, sizeof *out * (size_t)m);
    } else {
        EXPECTF(0, "run: %s", tl_cpu_error(p));
    }
    tl_cpu_free(p);
    return m;
}

/* Pass on vs off (bitwise, 1 and 2 threads) and vs the interpreter (f32 rounding). */
static void check_same(const char *what, const TlGraph *g, int x, int y, int64_t n, const char *sym, int64_t symv) {
    double *vx = fill(n, 7), *vy = fill(n, 11);
    enum { MAX = 1 << 16 };
    float *a = calloc(MAX, sizeof *a), *b = calloc(MAX, sizeof *b), *c = calloc(MAX, sizeof *c);
    int64_t m = run_cpu(g, x, y, vx, vy, n, sym, symv, 0, 1, a, MAX);
    int64_t m1 = run_cpu(g, x, y, vx, vy, n, sym, symv, 1, 1, b, MAX);
    int64_t m2 = run_cpu(g, x, y, vx, vy, n, sym, symv, 1, 2, c, MAX);
    EXPECTF(m > 0 && m == m1 && m == m2, "%s: element counts %lld %lld %lld", what, (long long)m, (long long)m1, (long long)m2);
    if (m > 0 && m == m1 && m == m2) {
        EXPECTF(memcmp(a, b, sizeof *a * (size_t)m) == 0, "%s: the rewritten kernel differs from the loop nest", what);
        EXPECTF(memcmp(b, c, sizeof *b * (size_t)m) == 0, "%s: 1 and 2 threads differ", what);
    }
    TlInterp *it = tl_interp_new(g);
    if (sym) tl_interp_bind(it, sym, symv);
    tl_interp_set(it, x, vx, n);
    if (y >= 0) tl_interp_set(it, y, vy, n);
    EXPECTF(tl_interp_run(it) == 0, "%s: interpreter: %s", what, tl_interp_error(it));
    const TlTensor *r = tl_interp_output(it, 0);
    int bad = 0;
    for (int64_t i = 0; r && i < m; i++) {
        double want = tl_tensor_get(r, i);
        if (fabs(b[i] - want) > 1e-6 * (1 + fabs(want))) bad++;
    }
    EXPECTF(bad == 0, "%s: %d elements differ from the interpreter", what, bad);
    tl_interp_free(it);
    free(vx), free(vy), free(a), free(b), free(c);
}

TEST(bias_gradient_sum_is_rewritten_and_bitwise_equal) {
    TlGraph *g = tl_graph_new();
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_make(g, 3, (int64_t[]){5, 37, 200}), L);
    tl_graph_add_output(g, tl_g_sum(g, x, 0x3, 0, L));
    EXPECT(rewritten(g) == 1);
    check_same("sum over (0, 1) of [5, 37, 200]", g, x, -1, 5 * 37 * 200, NULL, 0);
    tl_graph_free(g);
}

TEST(fused_product_sum_with_symbolic_rows) {
    /* a layer_norm weight gradient: sum over rows of dy * xhat, rows = B * 64 */
    TlGraph *g = tl_graph_new();
    TlGDim d[2] = {tl_gdim_sym(g, "B"), tl_gdim_const(g, 130)};
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_dims(2, d), L);
    int y = tl_g_input(g, "y", TL_F32, tl_gshape_dims(2, d), L);
    tl_graph_add_output(g, tl_g_sum(g, tl_g_mul(g, x, y, L), 0x1, 1, L));
    EXPECT(rewritten(g) == 1);
    check_same("sum over rows of x * y, [B=97, 130]", g, x, y, 97 * 130, "B", 97);
    tl_graph_free(g);
}

TEST(column_max_is_rewritten) {
    TlGraph *g = tl_graph_new();
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_make(g, 2, (int64_t[]){300, 65}), L);
    tl_graph_add_output(g, tl_g_reduce(g, TL_GOP_RMAX, x, 0x1, 0, L));
    EXPECT(rewritten(g) == 1);
    check_same("max over rows of [300, 65]", g, x, -1, 300 * 65, NULL, 0);
    tl_graph_free(g);
}

TEST(row_sums_and_narrow_columns_are_left_alone) {
    TlGraph *g = tl_graph_new();
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_make(g, 2, (int64_t[]){64, 256}), L);
    tl_graph_add_output(g, tl_g_sum(g, x, 0x2, 0, L)); /* over the contiguous axis: already unit stride */
    EXPECT(rewritten(g) == 0);
    tl_graph_free(g);
    g = tl_graph_new();
    x = tl_g_input(g, "x", TL_F32, tl_gshape_make(g, 2, (int64_t[]){64, 8}), L);
    tl_graph_add_output(g, tl_g_sum(g, x, 0x1, 0, L)); /* 8 columns: not worth a scratch buffer */
    EXPECT(rewritten(g) == 0);
    tl_graph_free(g);
    g = tl_graph_new(); /* a middle axis: the loads are not q + j in the output's index */
    x = tl_g_input(g, "x", TL_F32, tl_gshape_make(g, 3, (int64_t[]){4, 40, 50}), L);
    tl_graph_add_output(g, tl_g_sum(g, x, 0x2, 0, L));
    EXPECT(rewritten(g) == 0);
    check_same("sum over the middle axis of [4, 40, 50]", g, x, -1, 4 * 40 * 50, NULL, 0);
    tl_graph_free(g);
}

TEST(many_column_sums_in_one_program) {
    /* several rewritten kernels in one program: the rewrite grows the statement and
     * expression pools while it builds (a use of a moved pool would show here or under
     * ASan); each output checked as above */
    TlGraph *g = tl_graph_new();
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_make(g, 3, (int64_t[]){3, 50, 96}), L);
    int y = tl_g_input(g, "y", TL_F32, tl_gshape_make(g, 3, (int64_t[]){3, 50, 96}), L);
    int acc = tl_g_sum(g, x, 0x3, 0, L);
    for (int i = 0; i < 6; i++) {
        int t = i % 2 ? tl_g_mul(g, x, y, L) : tl_g_add(g, x, tl_g_exp(g, y, L), L);
        acc = tl_g_add(g, acc, tl_g_sum(g, t, 0x3, 0, L), L);
    }
    tl_graph_add_output(g, acc);
    EXPECTF(rewritten(g) >= 1, "%d kernels rewritten", rewritten(g)); /* fusion makes one kernel of them */
    check_same("seven column sums added", g, x, y, 3 * 50 * 96, NULL, 0);
    tl_graph_free(g);
}

TEST(row_sums_are_vectorized_within_rounding) {
    /* a softmax-like row: exp, then its sum over the contiguous axis (f64 partial sums) */
    TlGraph *g = tl_graph_new();
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_make(g, 2, (int64_t[]){70, 333}), L);
    int e = tl_g_exp(g, x, L);
    tl_graph_add_output(g, tl_g_broadcast_binary(g, TL_GOP_DIV, e, tl_g_sum(g, e, 0x2, 1, L), L));
    char err[256];
    TlLProgram *p = tl_loops_lower(g, err, sizeof err);
    EXPECT(p && tl_loops_rowsum(p) >= 1);
    tl_loops_free(p);
    setenv("TL_ROWSUM", "0", 1);
    p = tl_loops_lower(g, err, sizeof err);
    EXPECT(p && tl_loops_rowsum(p) == 0);
    tl_loops_free(p);
    unsetenv("TL_ROWSUM");
    /* 1 vs 2 threads bitwise, and the interpreter within f32 rounding (check_same's first
     * run has the column pass off, which this graph does not use) */
    check_same("softmax rows of [70, 333]", g, x, -1, 70 * 333, NULL, 0);
    tl_graph_free(g);
}

TEST(off_switch) {
    TlGraph *g = tl_graph_new();
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_make(g, 2, (int64_t[]){100, 100}), L);
    tl_graph_add_output(g, tl_g_sum(g, x, 0x1, 0, L));
    setenv("TL_COLSUM", "0", 1);
    EXPECT(rewritten(g) == 0);
    unsetenv("TL_COLSUM");
    EXPECT(rewritten(g) == 1);
    tl_graph_free(g);
}

int main(void) {
    RUN(bias_gradient_sum_is_rewritten_and_bitwise_equal);
    RUN(fused_product_sum_with_symbolic_rows);
    RUN(column_max_is_rewritten);
    RUN(row_sums_and_narrow_columns_are_left_alone);
    RUN(many_column_sums_in_one_program);
    RUN(row_sums_are_vectorized_within_rounding);
    RUN(off_switch);
    return check_done();
}
