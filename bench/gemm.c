/* gemm.c — tl's GEMM (a Graph IR contract node compiled through the CPU back end's JIT)
 * against OpenBLAS cblas_sgemm, side by side in one run, on 1 and 2 threads.
 *
 *   bench/gemm [--peak1 GFLOPS --peak2 GFLOPS] [--json out.json] [--quick] [--no-blas] [--no-bf16]
 *              [--only SUBSTRING]   (shapes whose name contains it)
 *              [--cpu-time]         (1-thread figures from the thread's CPU clock)
 *              [--one-thread] [--reps N]
 *
 * Shapes: square 512, 1024, 2048; the GPT-2-small-ish layer shapes M x K x N = 2048 x 256
 * x 768, 2048 x 256 x 256, 2048 x 1024 x 256, 2048 x 256 x 1024 as the forward product
 * (X W: "xz,zy->xy") and its two backward products (dX = dY W^T: "xy,zy->xz", dW = X^T
 * dY: "xz,xy->zy"). Median of >= 5 timed runs after a warm-up; GFLOPS = 2 M N K / t.
 * OpenBLAS is only the yardstick here: tl programs never link a BLAS.
 *
 * bf16 rows (`... bf16`; --no-bf16 leaves them out): the same products with bf16 operands
 * and result, tl's AVX-512-BF16 GEMM (targets/cpu/gemm_bf16.c), on hosts with avx512_bf16
 * (elsewhere the loop nest would run: skipped). Debian's OpenBLAS has no cblas_sbgemm, so
 * the anchor is cblas_sgemm on the same (bf16-valued) data in the same run; tl's f32 figure
 * for the shape is its f32 row. vdpbf16ps does two multiply-adds per f32 lane, so "% of
 * peak" of a bf16 row is against twice the measured fp32 FMA peak. */

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/cpu.h"
#include "cpu_detect.h"
#include "graph.h"

void openblas_set_num_threads(int);

/* --cpu-time: 1-thread figures from the calling thread's CPU clock (both libraries run a
 * 1-thread product on the caller), so time the thread spends descheduled on a shared
 * machine is not counted; 2-thread figures stay wall-clock. */
static int cpu_time, threads_max = 2;
static clockid_t clock_for(int th) { return cpu_time && th == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC; }

static double now_on(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct Shape { const char *name, *kind; int64_t m, k, n; TlDType dt; } Shape;

/* The product as a contraction over stored operands:
 *   fwd: C[M,N] = A[M,K] B[K,N]        "xz,zy->xy"    (NN)
 *   dX:  C[M,N] = A[M,K] B[N,K]^T      "xz,yz->xy"    (NT: dY W^T, W stored [N, K])
 *   dW:  C[M,N] = A[K,M]^T B[K,N]      "zx,zy->xy"    (TN: X^T dY) */
static const char *spec_of(const char *kind) {
    return strcmp(kind, "fwd") == 0 ? "xz,zy->xy" : strcmp(kind, "dX") == 0 ? "xz,yz->xy" : "zx,zy->xy";
}

/* bf16: values with 8 significant bits (bf16 values, as tl stores them) */
static void fill(float *x, int64_t n, unsigned seed, int bf16) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & (bf16 ? 0xff00 : 0xffff)) / 65536.0f - 0.5f;
    }
}

typedef struct Result { double tl[2], blas[2], err; int nsplit; } Result;

static int run_shape(const Shape *s, int reps, int blas, Result *r) {
    int64_t M = s->m, K = s->k, N = s->n;
    const char *spec = spec_of(s->kind);
    int ta = strcmp(s->kind, "dW") == 0, tb = strcmp(s->kind, "dX") == 0;
    TlGraph *g = tl_graph_new();
    TlLoc L = {0};
    int64_t da[2] = {ta ? K : M, ta ? M : K}, db[2] = {tb ? N : K, tb ? K : N};
    int a = tl_g_input(g, "a", s->dt, tl_gshape_make(g, 2, da), L);
    int b = tl_g_input(g, "b", s->dt, tl_gshape_make(g, 2, db), L);
    tl_graph_add_output(g, tl_g_contract(g, spec, a, b, L));
    char err[256];
    TlCpuOptions o = {.threads = 1, .opt_level = 3}; /* {0} would mean O0 */
    TlCpuProgram *p = tl_cpu_compile(g, &o, err, sizeof err);
    if (!p) {
        fprintf(stderr, "bench/gemm: %s: %s\n", s->name, err);
        tl_graph_free(g);
        return -1;
    }
    const TlLProgram *lp = tl_cpu_loops(p);
    for (int k = 0; k < lp->nkern; k++)
        if (lp->kern[k].gemm.on) r->nsplit = lp->kern[k].gemm.nsplit;
    float *A = aligned_alloc(64, (size_t)(M * K) * 4 + 64), *B = aligned_alloc(64, (size_t)(K * N) * 4 + 64);
    float *C = aligned_alloc(64, (size_t)(M * N) * 4 + 64);
    fill(A, M * K, 1, s->dt == TL_BF16), fill(B, K * N, 2, s->dt == TL_BF16);
    tl_cpu_set_raw(p, a, A, M * K);
    tl_cpu_set_raw(p, b, B, K * N);
    double t[64], tb_[64];
    for (int th = 1; th <= threads_max; th++) {
        clockid_t ck = clock_for(th);
        tl_cpu_set_threads(p, th);
        if (blas) openblas_set_num_threads(th);
        /* a warm-up of each, then the timed runs interleaved (tl, OpenBLAS, tl, ...) so
         * that both see the same load on a shared machine */
        for (int i = -1; i < reps; i++) {
            double t0 = now_on(ck);
            tl_cpu_run(p);
            if (i >= 0) t[i] = now_on(ck) - t0;
            if (!blas) continue;
            t0 = now_on(ck);
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
                        1.0f, A, ta ? (int)M : (int)K, B, tb ? (int)K : (int)N, 0.0f, C, (int)N);
            if (i >= 0) tb_[i] = now_on(ck) - t0;
        }
        r->tl[th - 1] = 2.0 * (double)(M * N * K) / median(t, reps) / 1e9;
        if (blas) r->blas[th - 1] = 2.0 * (double)(M * N * K) / median(tb_, reps) / 1e9;
    }
    r->err = 0;
    if (blas) { /* the two agree to f32 accumulation error (bf16: and C's rounding, 2^-9) */
        const float *x = tl_cpu_output(p, 0)->data;
        double big = 0;
        for (int64_t i = 0; i < M * N; i++) big = fmax(big, fabs(C[i]));
        for (int64_t i = 0; i < M * N; i++) r->err = fmax(r->err, fabs((double)x[i] - C[i]) / (big > 0 ? big : 1));
    }
    free(A), free(B), free(C);
    tl_cpu_free(p);
    tl_graph_free(g);
    return 0;
}

int main(int argc, char **argv) {
    double peak[2] = {0, 0};
    const char *json = NULL, *only = NULL;
    int quick = 0, blas = 1, reps = 7, bf16 = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--peak1") && i + 1 < argc) peak[0] = atof(argv[++i]);
        else if (!strcmp(argv[i], "--peak2") && i + 1 < argc) peak[1] = atof(argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1, reps = 5;
        else if (!strcmp(argv[i], "--no-blas")) blas = 0;
        else if (!strcmp(argv[i], "--no-bf16")) bf16 = 0;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--cpu-time")) cpu_time = 1;
        else if (!strcmp(argv[i], "--one-thread")) threads_max = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else { fprintf(stderr, "usage: %s [--peak1 G --peak2 G] [--json FILE] [--quick] [--no-blas] [--no-bf16] [--only SUBSTRING] [--cpu-time] [--one-thread] [--reps N]\n", argv[0]); return 2; }
    }
    Shape shapes[40];
    int ns = 0;
    static const int64_t sq[] = {512, 1024, 2048};
    static const int64_t gpt[][3] = {{2048, 256, 768}, {2048, 256, 256}, {2048, 1024, 256}, {2048, 256, 1024}};
    static char names[40][48];
    const TlHostCpu *h = tl_host_cpu();
    /* bf16 rows only where tl's bf16 GEMM runs; not 512^3 (the f32 row's small case) */
    for (int d = 0; d < (bf16 && h->avx512_bf16 ? 2 : 1); d++) {
        TlDType dt = d ? TL_BF16 : TL_F32;
        const char *sfx = d ? " bf16" : "";
        for (int i = 0; i < 3; i++) {
            if ((quick || d) && sq[i] == (d ? 512 : 2048)) continue;
            snprintf(names[ns], sizeof names[ns], "%lld^3%s", (long long)sq[i], sfx);
            shapes[ns] = (Shape){names[ns], "fwd", sq[i], sq[i], sq[i], dt}, ns++;
        }
        static const char *kinds[] = {"fwd", "dX", "dW"};
        for (int i = 0; i < 4; i++)
            for (int k = 0; k < 3; k++) {
                int64_t M = gpt[i][0], K = gpt[i][1], N = gpt[i][2];
                /* fwd: [M,K][K,N]; dX = dY[M,N] W[K,N]^T: M x N x K; dW = X[M,K]^T dY[M,N]: K x M x N */
                int64_t m = k == 0 ? M : k == 1 ? M : K, kk = k == 0 ? K : k == 1 ? N : M, n = k == 0 ? N : k == 1 ? K : N;
                snprintf(names[ns], sizeof names[ns], "%lldx%lldx%lld %s%s", (long long)M, (long long)K, (long long)N, kinds[k], sfx);
                shapes[ns] = (Shape){names[ns], kinds[k], m, kk, n, dt}, ns++;
            }
    }
    if (bf16 && !h->avx512_bf16) printf("no avx512_bf16 on this CPU: no bf16 rows (tl's bf16 GEMM needs it)\n");
    TlGemmBlocking bl = tl_host_gemm_blocking(h);
    printf("CPU: %s, %d cores, L1d %lld KiB, L2 %lld KiB, L3 %lld MiB\n", h->model, h->cores, (long long)(h->l1d >> 10),
           (long long)(h->l2 >> 10), (long long)(h->l3 >> 20));
    printf("tl GEMM blocking: %dx%d register block, KC %d, MC %d, NC %d, k unroll %d, prefetch %d\n", bl.mr, bl.nr, bl.kc, bl.mc,
           bl.nc, bl.ku, bl.prefetch);
    if (reps < 1 || reps > 64) { fprintf(stderr, "bench/gemm: --reps 1..64\n"); return 2; }
    printf("median of %d runs%s; GFLOPS (%% of the measured FMA peak: %.1f / %.1f GFLOPS on 1 / 2 threads; bf16 rows: tl%%pk of twice\n"
           "that, blas is cblas_sgemm (f32) on the same data)\n\n", reps, cpu_time ? " (1 thread: thread CPU time)" : "", peak[0], peak[1]);
    printf("%-24s %8s %8s %8s %6s %6s | %8s %8s %8s %6s %6s | %8s %6s\n", "shape M x K x N", "tl 1t", "blas 1t", "tl/blas", "tl%pk", "bl%pk",
           "tl 2t", "blas 2t", "tl/blas", "tl%pk", "bl%pk", "max err", "strips");
    FILE *jf = json ? fopen(json, "w") : NULL;
    if (json && !jf) { fprintf(stderr, "bench/gemm: cannot write %s\n", json); return 1; }
    if (jf)
        fprintf(jf, "{\"cpu\": \"%s\", \"cores\": %d, \"peak_gflops\": [%.1f, %.1f], \"blocking\": {\"mr\": %d, \"nr\": %d, \"kc\": %d, \"mc\": %d, \"nc\": %d},\n \"results\": [\n",
                h->model, h->cores, peak[0], peak[1], bl.mr, bl.nr, bl.kc, bl.mc, bl.nc);
    int nrows = 0; /* results written to the JSON (--only may skip the last shapes) */
    for (int i = 0; i < ns; i++) {
        if (only && !strstr(shapes[i].name, only)) continue;
        Result r;
        memset(&r, 0, sizeof r);
        if (run_shape(&shapes[i], reps, blas, &r)) return 1;
        printf("%-24s", shapes[i].name);
        int pf = shapes[i].dt == TL_BF16 ? 2 : 1; /* peak factor: vdpbf16ps does 2 FMAs a lane */
        for (int t = 0; t < 2; t++) {
            double pk = peak[t] > 0 ? pf * peak[t] : NAN;
            printf(" %8.1f %8.1f %8.2f %5.0f%% %5.0f%% |", r.tl[t], r.blas[t], blas ? r.tl[t] / r.blas[t] : NAN, 100 * r.tl[t] / pk,
                   100 * r.blas[t] / (peak[t] > 0 ? peak[t] : NAN));
        }
        printf(" %8.1e %6d\n", r.err, r.nsplit);
        fflush(stdout);
        if (jf)
            fprintf(jf, "%s  {\"shape\": \"%s\", \"dtype\": \"%s\", \"peak_factor\": %d, \"m\": %lld, \"k\": %lld, \"n\": %lld, \"tl_gflops\": [%.2f, %.2f], \"openblas_gflops\": [%.2f, %.2f], \"max_rel_err\": %.3g, \"nsplit\": %d}",
                    nrows++ ? ",\n" : "", shapes[i].name, tl_dtype_name(shapes[i].dt), pf, (long long)shapes[i].m, (long long)shapes[i].k, (long long)shapes[i].n,
                    r.tl[0], r.tl[1], r.blas[0], r.blas[1], r.err, r.nsplit);
    }
    if (jf) fputs("\n ]\n}\n", jf), fclose(jf);
    return 0;
}
