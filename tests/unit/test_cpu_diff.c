/* test_cpu_diff.c — differential tests: the LLVM CPU back end (JIT) against the reference
 * interpreter, on the same graph and the same inputs.
 *
 * Every primitive forward and backward (the backward graph from tl_grad: loss = sum(y*W)
 * with W a random input), then 200+ random graphs from a seeded generator (elementwise
 * chains, broadcasting, reductions over each axis, contractions, movement, gather /
 * scatter_add, scans), on random shapes with symbolic dims bound at run time. Each case
 * also runs with 1 and 2 threads and requires bitwise-identical outputs.
 *
 * Tolerance (every output, element by element, b = interpreter, a = compiled):
 *   exact cases (movement, integer and bool ops, casts, comparisons): a == b bitwise
 *     (NaN == NaN);
 *   f32: |a - b| <= 1e-5 * max(1, max|b|) + 1e-4 * |b|   (libm's expf/tanhf... in f32
 *     against the interpreter's double functions rounded to f32: an ulp or two, amplified
 *     along a chain; max|b| over the tensor scales the absolute part);
 *   f64: 1e-12 * max(1, max|b|) + 1e-10 * |b|;  bf16: 1e-2 and 1e-2;  f16: 2e-3 and 2e-3.
 *   Infinities must match exactly. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "check.h"
#include "cpu/cpu.h"
#include "graph.h"
#include "interp.h"

static void graph_case_run(const char *name, int exact);
#include "graph_cases.h"

/* ---- comparison ---- */

static int close_enough(TlDType t, double a, double b, double scale, int exact) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (exact || isinf(a) || isinf(b)) return a == b;
    double at, rt;
    switch (t) {
    case TL_F64: at = 1e-12, rt = 1e-10; break;
    case TL_BF16: at = 1e-2, rt = 1e-2; break;
    case TL_F16: at = 2e-3, rt = 2e-3; break;
    case TL_F32: at = 1e-5, rt = 1e-4; break;
    default: return a == b;
    }
    return fabs(a - b) <= at * scale + rt * fabs(b);
}

/* Compare every output of the compiled program with the interpreter's. */
static int compare_outputs(TlCpuProgram *p, TlInterp *it, int exact) {
    int ok = 1;
    for (int k = 0; k < G->noutputs; k++) {
        const TlTensor *a = tl_cpu_output(p, k), *b = tl_interp_output(it, k);
        if (!a || !b) { EXPECTF(0, "output %d missing (cpu %p, interp %p)", k, (void *)a, (void *)b); return 0; }
        if (a->numel != b->numel) { EXPECTF(0, "output %d: %lld vs %lld elements", k, (long long)a->numel, (long long)b->numel); return 0; }
        double scale = 1;
        for (int64_t i = 0; i < b->numel; i++) {
            double v = fabs(tl_tensor_get(b, i));
            if (isfinite(v) && v > scale) scale = v;
        }
        int bad = 0;
        for (int64_t i = 0; i < a->numel && bad < 3; i++) {
            double x = tl_tensor_get(a, i), y = tl_tensor_get(b, i);
            if (!close_enough(b->dtype, x, y, scale, exact || !tl_dtype_is_float(b->dtype))) {
                EXPECTF(0, "output %d (%s) [%lld]: compiled %.9g, interpreter %.9g", k, tl_dtype_name(b->dtype), (long long)i, x, y);
                bad++, ok = 0;
            }
        }
    }
    return ok;
}

static int ncases, nthreadchecks;
static int case_opt_level; /* 0 (fast compiles) unless a case asks for O3 */

/* Run G on both, with the same random inputs; then 1 vs 2 threads bitwise. */
static void run_graph_case(int exact) {
    ncases++;
    if (tl_graph_error(G)) { EXPECTF(0, "graph error: %s", tl_graph_error(G)); return; }
    char err[512];
    TlInterp *it = tl_interp_new(G);
    TlCpuOptions o = {0};
    o.threads = 1, o.opt_level = case_opt_level;
    TlCpuProgram *p = tl_cpu_compile(G, &o, err, sizeof err);
    EXPECTF(p != NULL, "compile: %s", err);
    if (!p) { tl_interp_free(it); return; }
    for (int i = 0; i < NSYM; i++) tl_interp_bind(it, SYM[i], SYMV[i]), tl_cpu_bind(p, SYM[i], SYMV[i]);
    for (int i = 0; i < G->nnodes; i++) {
        const TlGNode *n = &G->nodes[i];
        if (n->op != TL_GOP_INPUT && n->op != TL_GOP_PARAM) continue;
        int64_t cnt = numel_of(&n->shape);
        double *v = malloc(sizeof(double) * (size_t)(cnt + 1));
        for (int64_t j = 0; j < cnt; j++) {
            double x = urand(RLO[i], RHI[i]);
            v[j] = tl_dtype_is_float(n->dtype) ? x : floor(x);
        }
        tl_interp_set(it, i, v, cnt);
        tl_cpu_set(p, i, v, cnt);
        free(v);
    }
    int ri = tl_interp_run(it), rc = tl_cpu_run(p);
    EXPECTF(ri == 0, "interpreter: %s", tl_interp_error(it));
    EXPECTF(rc == 0, "compiled: %s", tl_cpu_error(p));
    int same = ri == 0 && rc == 0 && compare_outputs(p, it, exact);
    if (ri == 0 && rc == 0 && !same) /* name the first node that differs */
        for (int i = 0; i < G->nnodes; i++) {
            const TlTensor *a = tl_cpu_value(p, i), *b = tl_interp_value(it, i);
            if (!a || !b || a->numel != b->numel) continue;
            int64_t j = 0;
            while (j < a->numel && close_enough(b->dtype, tl_tensor_get(a, j), tl_tensor_get(b, j), 1, exact)) j++;
            if (j < a->numel) {
                if (getenv("TL_DIFF_DUMP")) tl_graph_print(stdout, G), tl_loops_print(stdout, tl_cpu_loops(p));
                printf("    first differing node: %%%d %s [%lld] %.9g vs %.9g\n", i, tl_gop_name(G->nodes[i].op), (long long)j,
                       tl_tensor_get(a, j), tl_tensor_get(b, j));
                break;
            }
        }
    if (same) {
        /* the same bits with 2 threads */
        size_t total = 0;
        for (int k = 0; k < G->noutputs; k++) {
            const TlTensor *a = tl_cpu_output(p, k);
            total += (size_t)a->numel * tl_interp_storage_size(a->dtype);
        }
        char *saved = malloc(total + 1), *q = saved;
        for (int k = 0; k < G->noutputs; k++) {
            const TlTensor *a = tl_cpu_output(p, k);
            size_t nb = (size_t)a->numel * tl_interp_storage_size(a->dtype);
            memcpy(q, a->data, nb), q += nb;
        }
        tl_cpu_set_threads(p, 2);
        EXPECTF(tl_cpu_run(p) == 0, "compiled (2 threads): %s", tl_cpu_error(p));
        q = saved;
        for (int k = 0; k < G->noutputs; k++) {
            const TlTensor *a = tl_cpu_output(p, k);
            size_t nb = (size_t)a->numel * tl_interp_storage_size(a->dtype);
            EXPECTF(memcmp(q, a->data, nb) == 0, "output %d differs between 1 and 2 threads", k);
            q += nb;
        }
        nthreadchecks++;
        free(saved);
    }
    tl_cpu_free(p);
    tl_interp_free(it);
}

/* The hook of graph_cases.h: one case, compiled vs interpreted. */
static void graph_case_run(const char *name, int exact) {
    case_begin("%s", name);
    run_graph_case(exact);
    case_end();
}

/* The attention generator's code after O3 (the other cases compile at O0). */
static void attention_o3_cases(void) {
    /* the last case's scores have a standard deviation of ~21: within a row they differ by
     * more than 87, where exp flushes to 0, and maxima move from tile to tile (wider
     * ranges make the rounding of the scores themselves exceed the comparison's bound) */
    static const int64_t sh[][4] = {{2, 3, 100, 64}, {1, 2, 77, 40}, {1, 1, 130, 16}, {1, 2, 150, 16}};
    static const double qk_range[] = {2, 2, 2, 8};
    case_opt_level = 3;
    for (size_t c = 0; c < sizeof sh / sizeof *sh; c++) {
        begin();
        TlGShape s = shp(4, sh[c]);
        double rg = qk_range[c];
        int q = param(TL_F32, s, -rg, rg), k = param(TL_F32, s, -rg, rg), v = param(TL_F32, s, -1, 1);
        int y = tl_g_attn(G, q, k, v, 1.0 / sqrt((double)sh[c][3]), L);
        char name[96];
        snprintf(name, sizeof name, "attn [%lld, %lld, %lld, %lld] at O3", (long long)sh[c][0], (long long)sh[c][1],
                 (long long)sh[c][2], (long long)sh[c][3]);
        fwdbwd(name, y);
    }
    case_opt_level = 0;
}

/* ---- emitters ---- */

/* attn and attn_grad of f32 heads with a constant head size compile through the
 * attention generator (targets/cpu/attn.c), not their loop nests. */
static void emit_attn_cases(void) {
    begin();
    int64_t d[3] = {2, 50, 64};
    int q = param(TL_F32, shp(3, d), -1, 1), k = param(TL_F32, shp(3, d), -1, 1), v = param(TL_F32, shp(3, d), -1, 1);
    int o = tl_g_attn(G, q, k, v, 0.125, L);
    int g = input(TL_F32, G->nodes[o].shape, -1, 1);
    tl_graph_add_output(G, o);
    tl_graph_add_output(G, tl_g_attn_grad(G, q, k, v, o, g, 0.125, L));
    char err[256];
    case_begin("emit llvm: attn through the attention generator (blocked, 16-wide, no T x T buffer)");
    char *ir = tl_cpu_emit_llvm(G, NULL, NULL, err, sizeof err);
    EXPECTF(ir != NULL, "%s", err);
    EXPECT(ir && strstr(ir, "a.body") && strstr(ir, "<16 x float>"));
    free(ir);
    TlCpuProgram *p = tl_cpu_compile(G, NULL, err, sizeof err);
    EXPECTF(p != NULL, "%s", err);
    for (int i = 0; p && i < tl_cpu_loops(p)->nbuf; i++) { /* no buffer of T x T or more per head */
        const TlLProgram *lp = tl_cpu_loops(p);
        int64_t syms[1] = {0};
        EXPECTF(tl_loops_eval(lp, lp->buf[i].numel, syms) <= 3 * 2 * 50 * 65, "buffer %d has %lld elements", i,
                (long long)tl_loops_eval(lp, lp->buf[i].numel, syms));
    }
    tl_cpu_free(p);
    case_end();
    tl_graph_free(G);
}

static void emit_cases(void) {
    begin();
    int x = input(TL_F32, symshape(), -1, 1);
    tl_graph_add_output(G, tl_g_exp(G, tl_g_add(G, x, x, L), L));
    char err[256];
    case_begin("emit llvm: kernels carry prefer-vector-width=512 and target-cpu");
    char *ir = tl_cpu_emit_llvm(G, NULL, NULL, err, sizeof err);
    EXPECTF(ir != NULL, "%s", err);
    EXPECT(ir && strstr(ir, "define void @tl_main"));
    EXPECT(ir && strstr(ir, "\"prefer-vector-width\"=\"512\""));
    EXPECT(ir && strstr(ir, "\"target-cpu\""));
    free(ir);
    case_end();
    case_begin("emit llvm of one kernel");
    ir = tl_cpu_emit_llvm(G, NULL, "tl_k0_fused_exp", err, sizeof err);
    EXPECTF(ir && strstr(ir, "@tl_k0_fused_exp") && !strstr(ir, "tl_main"), "%s", ir ? ir : err);
    free(ir);
    ir = tl_cpu_emit_llvm(G, NULL, "no_such_kernel", err, sizeof err);
    EXPECT(ir == NULL && strstr(err, "no_such_kernel"));
    case_end();
    case_begin("emit asm of one kernel");
    char *as = tl_cpu_emit_asm(G, NULL, "tl_k0_fused_exp", err, sizeof err);
    EXPECTF(as && strstr(as, "tl_k0_fused_exp:") && strstr(as, "ret"), "%s", as ? as : err);
    free(as);
    case_end();
    case_begin("emit object");
    TlCpuProgram *p = tl_cpu_compile(G, NULL, err, sizeof err);
    EXPECTF(p != NULL, "%s", err);
    char path[] = "/tmp/tl_cpu_objXXXXXX";
    int fd = mkstemp(path);
    if (p && fd >= 0) {
        EXPECTF(tl_cpu_emit_object(p, path, err, sizeof err) == 0, "%s", err);
        FILE *f = fopen(path, "rb");
        unsigned char magic[4] = {0};
        if (f) { EXPECT(fread(magic, 1, 4, f) == 4); fclose(f); }
        EXPECT(magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F');
        remove(path);
    }
    tl_cpu_free(p);
    case_end();
    case_begin("unbound symbol and unset input are errors, not crashes");
    p = tl_cpu_compile(G, NULL, err, sizeof err);
    EXPECT(p && tl_cpu_run(p) != 0 && strstr(tl_cpu_error(p), "'B'"));
    if (p) {
        tl_cpu_bind(p, "B", 2);
        EXPECT(tl_cpu_run(p) != 0 && strstr(tl_cpu_error(p), "not set"));
    }
    tl_cpu_free(p);
    case_end();
    tl_graph_free(G);
}

/* The schedule is data: tiling loops (by 3, so some tiles are partial) and forcing a vector
 * width and an unroll count keep the results. */
static void tile_case(void) {
    begin();
    TlGDim d[2] = {tl_gdim_sym(G, "B"), tl_gdim_const(G, 7)};
    bind("B", 5);
    int x = input(TL_F32, tl_gshape_dims(2, d), -2, 2);
    int y = tl_g_sum(G, tl_g_exp(G, x, L), 2, 0, L);
    tl_graph_add_output(G, y);
    tl_graph_add_output(G, tl_g_contract(G, "ij,kj->ik", x, x, L));
    case_begin("tl_loops_tile + vectorize/unroll hints: same results as the interpreter");
    char err[256];
    TlLoopsOptions unfused = {0}; /* one kernel per op: 7 loops to tile */
    TlLProgram *lp = tl_loops_lower_opts(G, &unfused, err, sizeof err);
    EXPECTF(lp != NULL, "%s", err);
    if (lp) {
        int ntiled = 0;
        for (int k = 0; k < lp->nkern; k++) {
            int loops[16];
            int n = tl_loops_kernel_loops(lp, k, loops, 16);
            for (int i = 0; i < n; i++) ntiled += tl_loops_tile(lp, k, loops[i], 3) == 0;
            n = tl_loops_kernel_loops(lp, k, loops, 16);
            lp->st[loops[n - 1]].sched.vectorize = 8, lp->st[loops[n - 1]].sched.unroll = 2;
        }
        EXPECT(ntiled == 7);
        TlInterp *it = tl_interp_new(G);
        TlCpuProgram *p = tl_cpu_compile_loops(G, lp, NULL, err, sizeof err);
        EXPECTF(p != NULL, "%s", err);
        if (p) {
            double v[35];
            for (int i = 0; i < 35; i++) v[i] = urand(-2, 2);
            tl_cpu_bind(p, "B", 5), tl_interp_bind(it, "B", 5);
            tl_cpu_set(p, x, v, 35), tl_interp_set(it, x, v, 35);
            EXPECT(tl_cpu_run(p) == 0 && tl_interp_run(it) == 0);
            compare_outputs(p, it, 0);
        }
        tl_cpu_free(p);
        tl_interp_free(it);
    }
    case_end();
    tl_graph_free(G);
}

int main(int argc, char **argv) {
    int nrandom = argc > 1 ? atoi(argv[1]) : 220;
    if (getenv("TL_TEST_LONG")) nrandom = 2000;
    unary_cases();
    binary_cases();
    cast_cases();
    reduce_cases();
    contract_cases();
    movement_cases();
    source_cases();
    attention_cases();
    scan_cases();
    emit_cases();
    emit_attn_cases();
    attention_o3_cases();
    tile_case();
    for (int s = 0; s < nrandom; s++) random_graph_case(s);
    printf("# %d compiled-vs-interpreter cases, %d also checked 1 vs 2 threads\n", ncases, nthreadchecks);
    return check_done();
}
