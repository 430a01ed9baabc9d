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
 * bf16 / f16 matmuls on tensor cores are also held to the bound of f32 accumulation
 * (mma_bound_check). Cases that failed name the first node that differs. */
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

/* bf16 / f16 matmuls on tensor cores (gpu_mma_cases): output 0 = rnd(A @ B), A and B of
 * dtype dt. The interpreter gives b = rnd(S), S = sum_k a_k b_k exact; the GPU multiplies
 * exactly and accumulates in f32, so it gives g = rnd(S + e) with |e| <= gamma * T,
 * T = sum_k |a_k b_k|, gamma = K * 2^-23 (K additions of relative error 2^-24, doubled for
 * the tensor core's internal alignment of addends). With u the unit roundoff of dt (2^-8
 * bf16, 2^-11 f16) and rnd(x) within u|x| (+ half the subnormal spacing for f16):
 *   |g - b| <= |e| + u (|S + e| + |S|) <= gamma T + 2.01 u (|b| + gamma T) + tiny.
 * A fragment or tile mistake, a dropped k slice or bf16 accumulation is far outside it. */
static int mma_bound_check(TlGpuProgram *p, TlInterp *it) {
    const TlGNode *y = &G->nodes[G->outputs[0]];
    TlContractSpec cs;
    if (y->op != TL_GOP_CONTRACT || tl_contract_parse(y->spec, &cs, NULL, 0) || cs.nin != 2) {
        EXPECTF(0, "output 0 is not a two-operand contraction");
        return 0;
    }
    const TlTensor *x[2] = {tl_interp_value(it, y->in[0]), tl_interp_value(it, y->in[1])};
    const TlTensor *g = tl_gpu_output(p, 0), *r = tl_interp_output(it, 0);
    if (!x[0] || !x[1] || !g || !r || g->numel != r->numel) { EXPECTF(0, "operands or outputs missing"); return 0; }
    char let[2 * TL_MAX_RANK];
    int64_t size[2 * TL_MAX_RANK], nk = 1;
    int nl = 0;
    for (int t = 0; t < 2; t++)
        for (int j = 0; j < cs.rank[t]; j++)
            if (!memchr(let, cs.in[t][j], (size_t)nl)) let[nl] = cs.in[t][j], size[nl++] = x[t]->dim[j];
    for (int l = 0; l < nl; l++)
        if (!memchr(cs.out, let[l], (size_t)cs.out_rank)) nk *= size[l];
    double *S = calloc((size_t)r->numel, sizeof *S), *T = calloc((size_t)r->numel, sizeof *T);
    int64_t idx[2 * TL_MAX_RANK] = {0};
    for (;;) { /* every letter combination: S[out] += a b, T[out] += |a b| */
        int64_t off[3] = {0, 0, 0};
        for (int t = 0; t < 3; t++) {
            int rank = t < 2 ? cs.rank[t] : cs.out_rank;
            const char *ax = t < 2 ? cs.in[t] : cs.out;
            for (int j = 0; j < rank; j++) {
                int l = (int)((const char *)memchr(let, ax[j], (size_t)nl) - let);
                off[t] = off[t] * size[l] + idx[l];
            }
        }
        double v = tl_tensor_get(x[0], off[0]) * tl_tensor_get(x[1], off[1]);
        S[off[2]] += v, T[off[2]] += fabs(v);
        int l = nl - 1;
        while (l >= 0 && ++idx[l] == size[l]) idx[l--] = 0;
        if (l < 0) break;
    }
    double u = y->dtype == TL_BF16 ? ldexp(1, -8) : ldexp(1, -11), gamma = (double)nk * ldexp(1, -23);
    double tiny = y->dtype == TL_F16 ? ldexp(1, -25) : 0, worst = 0;
    int bad = 0;
    for (int64_t i = 0; i < r->numel; i++) {
        double gv = tl_tensor_get(g, i), bv = tl_tensor_get(r, i);
        double tol = gamma * T[i] + 2.01 * u * (fabs(bv) + gamma * T[i]) + tiny;
        if (!(fabs(bv - S[i]) <= u * fabs(S[i]) + tiny) && bad < 3) { /* the interpreter's is rnd(S) */
            EXPECTF(0, "interpreter [%lld] %.9g is not within u of S = %.9g", (long long)i, bv, S[i]);
            bad++;
        }
        if (!(fabs(gv - bv) <= tol) && bad < 3) {
            EXPECTF(0, "[%lld]: gpu %.9g, interpreter %.9g, exact %.9g: |diff| %.3g > bound %.3g", (long long)i, gv, bv, S[i], fabs(gv - bv), tol);
            bad++;
        }
        if (tol > 0 && fabs(gv - bv) / tol > worst) worst = fabs(gv - bv) / tol;
    }
    printf("    f32-accumulation bound: worst |gpu - interpreter| / bound = %.3f over %lld outputs (K = %lld)\n", worst,
           (long long)r->numel, (long long)nk);
    free(S), free(T);
    return bad == 0;
}

static int ncases;
/* > 0: every kernel launched with this many threads per block (the tuner's gpu_block knob:
 * only flat launches use it; a grid-stride loop must not depend on it) */
static int force_block;

static TlGpuProgram *compile_case(char *err, int errn) {
    if (!force_block) return tl_gpu_compile(G, NULL, err, errn);
    TlLProgram *lp = tl_loops_lower(G, err, errn);
    if (!lp) return NULL;
    for (int k = 0; k < lp->nkern; k++) lp->kern[k].gpu_block = force_block;
    return tl_gpu_compile_loops(G, lp, NULL, err, errn);
}

static void graph_case_run(const char *name, int exact) {
    if (force_block) case_begin("gpu_block %d: %s", force_block, name);
    else case_begin("%s", name);
    ncases++;
    if (tl_graph_error(G)) { EXPECTF(0, "graph error: %s", tl_graph_error(G)); case_end(); return; }
    char err[512];
    TlInterp *it = tl_interp_new(G);
    TlGpuProgram *p = compile_case(err, sizeof err);
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
    if (ri == 0 && rc == 0 && mma_strict) same = mma_bound_check(p, it) && same;
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
    gpu_source_schedule_cases();
    gpu_mma_cases();
    block_case();
    for (force_block = 32; force_block <= 64; force_block *= 2) { /* tune --target cuda's knob */
        unary_cases();
        reduce_cases();
        movement_cases();
        block_case();
    }
    force_block = 0;
    for (int s = 0; s < nrandom; s++) random_graph_case(s);
    printf("# %d GPU-vs-interpreter cases\n", ncases);
    return check_done();
}
