/* gemm_bench.c — tl's SGEMM (a tl graph C = A @ B, f32, compiled by the NVPTX back end)
 * against cuBLAS's cublasSgemm (FP32, default math mode: no TF32) on the same device
 * buffers, at n = 1024, 2048, 4096 (or the sizes given as arguments).
 *
 * Each figure is the median of 10 timed runs (CUDA events around one launch) after 3
 * warm-ups; TFLOPS = 2 n^3 / time. The two results are compared (max |tl - cublas| /
 * max |cublas|). cuBLAS is dlopen'd (libcublas.so.13, .12 or .so: put its directory on
 * LD_LIBRARY_PATH); without it only tl's figures are printed.
 *
 *   build/bench/gpu_gemm [n...]          (bench/gpu/run.sh builds and runs it) */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"
#include "nvptx/nvptx.h"

typedef int (*CublasCreate)(void **);
typedef int (*CublasSgemm)(void *, int, int, int, int, int, const float *, const float *, int, const float *, int,
                           const float *, float *, int);

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static float median(float *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    return v[n / 2];
}

enum { WARM = 3, RUNS = 10 };

int main(int argc, char **argv) {
    char err[512];
    if (tl_cuda_open(err, sizeof err)) { printf("SKIP: %s\n", err); return 0; }
    int maj, min;
    tl_cuda_capability(&maj, &min);
    printf("device: %s (sm_%d%d)\n", tl_cuda_device_name(), maj, min);
    void *cub = NULL;
    static const char *libs[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
    for (int i = 0; i < 3 && !cub; i++) cub = dlopen(libs[i], RTLD_NOW);
    CublasCreate create = cub ? (CublasCreate)(uintptr_t)dlsym(cub, "cublasCreate_v2") : NULL;
    CublasSgemm sgemm = cub ? (CublasSgemm)(uintptr_t)dlsym(cub, "cublasSgemm_v2") : NULL;
    void *handle = NULL;
    if (!create || !sgemm || create(&handle) != 0) {
        printf("cuBLAS not available (%s)\n", cub ? "no cublasCreate_v2/cublasSgemm_v2 or create failed" : dlerror());
        sgemm = NULL;
    }
    int sizes[8] = {1024, 2048, 4096}, ns = 3;
    if (argc > 1) {
        ns = 0;
        for (int i = 1; i < argc && ns < 8; i++) sizes[ns++] = atoi(argv[i]);
    }
    printf("%6s %12s %10s %12s %10s %8s %12s\n", "n", "tl ms", "tl TFLOPS", "cublas ms", "cublas TF", "tl/cub", "rel diff");
    TlCuEvent e0, e1;
    if (tl_cuda_event_create(&e0, err, sizeof err) || tl_cuda_event_create(&e1, err, sizeof err)) { puts(err); return 1; }
    for (int si = 0; si < ns; si++) {
        int n = sizes[si];
        TlLoc L = {0, 1, 1, 0, 0};
        TlGraph *g = tl_graph_new();
        TlGShape s = tl_gshape_make(g, 2, (int64_t[]){n, n});
        int a = tl_g_input(g, "a", TL_F32, s, L), b = tl_g_input(g, "b", TL_F32, s, L);
        int c = tl_g_contract(g, "ij,jk->ik", a, b, L);
        tl_graph_add_output(g, c);
        TlGpuProgram *p = tl_gpu_compile(g, NULL, err, sizeof err);
        if (!p) { printf("compile: %s\n", err); return 1; }
        size_t nn = (size_t)n * (size_t)n;
        float *h = malloc(nn * sizeof *h);
        srand(1);
        float *hb = malloc(nn * sizeof *hb);
        for (size_t i = 0; i < nn; i++) h[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        tl_gpu_set_raw(p, a, h, (int64_t)nn);
        for (size_t i = 0; i < nn; i++) hb[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        tl_gpu_set_raw(p, b, hb, (int64_t)nn);
        if (tl_gpu_run(p)) { printf("run: %s\n", tl_gpu_error(p)); return 1; }
        /* 64 entries against a double-precision dot product */
        const TlTensor *o0 = tl_gpu_output(p, 0);
        double ref_err = 0;
        for (int t = 0; t < 64; t++) {
            int i = rand() % n, j = rand() % n;
            double d = 0;
            for (int k = 0; k < n; k++) d += (double)h[(size_t)i * n + k] * hb[(size_t)k * n + j];
            double e = fabs(((float *)o0->data)[(size_t)i * n + j] - d) / sqrt((double)n);
            if (e > ref_err) ref_err = e;
        }
        printf("n=%d: max |tl - exact| / sqrt(n) over 64 entries: %.2e\n", n, ref_err);
        free(hb);
        float t_tl[RUNS], t_cb[RUNS], ms;
        for (int r = 0; r < WARM + RUNS; r++) {
            tl_cuda_event_record(e0, NULL, 0);
            if (tl_gpu_rerun(p)) { printf("run: %s\n", tl_gpu_error(p)); return 1; }
            tl_cuda_event_record(e1, NULL, 0);
            if (tl_cuda_event_elapsed(e0, e1, &ms, err, sizeof err)) { puts(err); return 1; }
            if (r >= WARM) t_tl[r - WARM] = ms;
        }
        double mt = median(t_tl, RUNS), flop = 2.0 * n * (double)n * n;
        double mc = 0, rel = 0;
        if (sgemm) {
            TlCuPtr dA = tl_gpu_device_ptr(p, a), dB = tl_gpu_device_ptr(p, b), dC;
            tl_cuda_alloc(&dC, nn * sizeof(float), err, sizeof err);
            float one = 1, zero = 0;
            for (int r = 0; r < WARM + RUNS; r++) {
                tl_cuda_event_record(e0, NULL, 0);
                /* row-major C = A B is column-major C^T = B^T A^T */
                int st = sgemm(handle, 0, 0, n, n, n, &one, (const float *)(uintptr_t)dB, n, (const float *)(uintptr_t)dA, n,
                               &zero, (float *)(uintptr_t)dC, n);
                tl_cuda_event_record(e1, NULL, 0);
                if (st) { printf("cublasSgemm failed: %d\n", st); return 1; }
                tl_cuda_event_elapsed(e0, e1, &ms, err, sizeof err);
                if (r >= WARM) t_cb[r - WARM] = ms;
            }
            mc = median(t_cb, RUNS);
            float *hc = malloc(nn * sizeof *hc);
            tl_cuda_dtoh(hc, dC, nn * sizeof(float), err, sizeof err);
            const TlTensor *out = tl_gpu_output(p, 0);
            double md = 0, mx = 0;
            for (size_t i = 0; i < nn; i++) {
                double d = fabs((double)((float *)out->data)[i] - hc[i]);
                if (d > md) md = d;
                if (fabs(hc[i]) > mx) mx = fabs(hc[i]);
            }
            rel = md / (mx > 0 ? mx : 1);
            free(hc);
            tl_cuda_free(dC);
        }
        printf("%6d %12.3f %10.2f %12.3f %10.2f %8.2f %12.2e\n", n, mt, flop / (mt * 1e9), mc, mc > 0 ? flop / (mc * 1e9) : 0,
               mc > 0 ? mc / mt : 0, rel);
        fflush(stdout);
        free(h);
        tl_gpu_free(p);
        tl_graph_free(g);
    }
    tl_cuda_event_destroy(e0);
    tl_cuda_event_destroy(e1);
    return 0;
}
