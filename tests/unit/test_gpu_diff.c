/* test_gpu_diff.c — differential tests: the NVPTX back end on a real GPU against the
 * reference interpreter, on the same graph and the same inputs.
 *
 * Every primitive forward and backward, scans, the GPU schedules (tiled SGEMM with edge
 * tiles, warp-shuffle row reductions), a transformer Block's training step, and 100 random
 * graphs (gpu_cases.h, the generator of test_cpu_diff.c). Where no CUDA driver or no GPU
 * is present, prints one SKIP line saying which.
 *
 * Tolerance (b = interpreter, a = GPU, every output element): exact cases (movement,
 * integers, bool, casts, comparisons) bitwise; f32 |a - b| <= 1e-5 * max(1, max|b|) +
 * 1e-4 * |b| (libdevice's f32 functions are within 2 ulp of the rounded double result),
 * f64 1e-12 / 1e-10, bf16 1e-2, f16 2e-3 — test_cpu_diff's. Matmuls through the SGEMM
 * accumulate in f32 (the loop nest in f64): outputs of graphs with a contraction get
 * 3e-5 * max(1, max|b|) absolute instead (an f32 sum of K <= 300 products of |x| <= 2).
 * Cases that failed name the first node that differs. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cuda.h"
#include "interp.h"
#include "nvptx/nvptx.h"

#include "gpu_cases.h"

static int close_enough(TlDType t, double a, double b, double scale, int exact, int gemm) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (exact || isinf(a) || isinf(b)) return a == b;
    double at, rt;
    switch (t) {
    case TL_F64: at = 1e-12, rt = 1e-10; break;
    case TL_BF16: at = 1e-2, rt = 1e-2; break;
    case TL_F16: at = 2e-3, rt = 2e-3; break;
    case TL_F32: at = gemm ? 3e-5 : 1e-5, rt = 1e-4; break;
    default: return a == b;
    }
    return fabs(a - b) <= at * scale + rt * fabs(b);
}

static int has_contract(void) {
    for (int i = 0; i < G->nnodes; i++)
        if (G->nodes[i].op == TL_GOP_CONTRACT) return 1;
    return 0;
}

static int compare_outputs(TlGpuProgram *p, TlInterp *it, int exact, int gemm) {
    int ok = 1;
    for (int k = 0; k < G->noutputs; k++) {
        const TlTensor *a = tl_gpu_output(p, k), *b = tl_interp_output(it, k);
        if (!a || !b) { EXPECTF(0, "output %d missing (gpu %p, interp %p) %s", k, (void *)a, (void *)b, tl_gpu_error(p) ? tl_gpu_error(p) : ""); return 0; }
        if (a->numel != b->numel) { EXPECTF(0, "output %d: %lld vs %lld elements", k, (long long)a->numel, (long long)b->numel); return 0; }
        double scale = 1;
        for (int64_t i = 0; i < b->numel; i++) {
            double v = fabs(tl_tensor_get(b, i));
            if (isfinite(v) && v > scale) scale = v;
        }
        int bad = 0;
        for (int64_t i = 0; i < a->numel && bad < 3; i++) {
            double x = tl_tensor_get(a, i), y = tl_tensor_get(b, i);
            if (!close_enough(b->dtype, x, y, scale, exact || !tl_dtype_is_float(b->dtype), gemm)) {
                EXPECTF(0, "output %d (%s) [%lld]: gpu %.9g, interpreter %.9g", k, tl_dtype_name(b->dtype), (long long)i, x, y);
                bad++, ok = 0;
            }
        }
    }
    return ok;
}

static int ncases;

static void graph_case_run(const char *name, int exact) {
    case_begin("%s", name);
    ncases++;
    if (tl_graph_error(G)) { EXPECTF(0, "graph error: %s", tl_graph_error(G)); case_end(); return; }
    char err[512];
    TlInterp *it = tl_interp_new(G);
    TlGpuProgram *p = tl_gpu_compile(G, NULL, err, sizeof err);
    EXPECTF(p != NULL, "compile: %s", err);
    if (!p) { tl_interp_free(it); case_end(); return; }
    for (int i = 0; i < NSYM; i++) tl_interp_bind(it, SYM[i], SYMV[i]), tl_gpu_bind(p, SYM[i], SYMV[i]);
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
        tl_gpu_set(p, i, v, cnt);
        free(v);
    }
    int ri = tl_interp_run(it), rc = tl_gpu_run(p);
    EXPECTF(ri == 0, "interpreter: %s", tl_interp_error(it));
    EXPECTF(rc == 0, "gpu: %s", tl_gpu_error(p));
    int gemm = has_contract();
    int same = ri == 0 && rc == 0 && compare_outputs(p, it, exact, gemm);
    if (ri == 0 && rc == 0 && !same)
        for (int i = 0; i < G->nnodes; i++) {
            const TlTensor *a = tl_gpu_value(p, i), *b = tl_interp_value(it, i);
            if (!a || !b || a->numel != b->numel) continue;
            int64_t j = 0;
            while (j < a->numel && close_enough(b->dtype, tl_tensor_get(a, j), tl_tensor_get(b, j), 1, exact, gemm)) j++;
            if (j < a->numel) {
                if (getenv("TL_DIFF_DUMP")) tl_graph_print(stdout, G), tl_loops_print(stdout, tl_gpu_loops(p));
                printf("    first differing node: %%%d %s [%lld] %.9g vs %.9g\n", i, tl_gop_name(G->nodes[i].op), (long long)j,
                       tl_tensor_get(a, j), tl_tensor_get(b, j));
                break;
            }
        }
    if (same) { /* a second run on the same program gives the same bits */
        const TlTensor *a = tl_gpu_output(p, 0);
        size_t nb = a ? (size_t)a->numel * tl_interp_storage_size(a->dtype) : 0;
        char *saved = malloc(nb + 1);
        if (a) memcpy(saved, a->data, nb);
        EXPECTF(tl_gpu_run(p) == 0, "second run: %s", tl_gpu_error(p));
        a = tl_gpu_output(p, 0);
        EXPECT(a && memcmp(saved, a->data, nb) == 0);
        free(saved);
    }
    tl_gpu_free(p);
    tl_interp_free(it);
    case_end();
}

static void block_case(void) {
    char err[256];
    if (gpu_block_step(err, sizeof err)) {
        case_begin("transformer Block(D=16, H=4) training step");
        EXPECTF(0, "%s", err);
        case_end();
    } else {
        graph_case_run("transformer Block(D=16, H=4) training step: output and every param gradient", 0);
    }
    gpu_block_free();
}

int main(int argc, char **argv) {
    char err[256];
    if (tl_cuda_open(err, sizeof err)) {
        case_skip("GPU vs interpreter differential tests", err);
        return 0;
    }
    printf("# device: %s\n", tl_cuda_device_name());
    tl_diag_set_output(stdout);
    int nrandom = argc > 1 ? atoi(argv[1]) : 100;
    if (getenv("TL_TEST_LONG")) nrandom = 1000;
    unary_cases();
    binary_cases();
    cast_cases();
    reduce_cases();
    contract_cases();
    movement_cases();
    source_cases();
    attention_cases();
    scan_cases();
    gpu_schedule_cases();
    block_case();
    for (int s = 0; s < nrandom; s++) random_graph_case(s);
    printf("# %d GPU-vs-interpreter cases\n", ncases);
    return check_done();
}
