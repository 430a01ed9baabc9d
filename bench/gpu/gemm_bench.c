/* gemm_bench.c — tl's GPU matmuls against cuBLAS, in the same run on the same device:
 *
 *   f32:  tl's SGEMM (a tl graph C = A @ B, f32)      vs cublasSgemm_v2 (FP32, default math
 *         mode: no TF32), on the same device buffers;
 *   bf16: tl's tensor-core GEMM (A, B bf16 inputs; C = A @ B rounded to bf16, f32
 *         accumulation) vs cublasGemmEx (CUDA_R_16BF A and B, CUDA_R_32F C,
 *         CUBLAS_COMPUTE_32F). tl keeps bf16 tensors as f32 holding bf16 values (docs/nvptx.md,
 *         "Tensor cores"), so cuBLAS gets its own 2-byte copies of the same values.
 *         The default kernel packs A and B^T into 2-byte panels first (a second launch,
 *         timed with it) and runs a cp.async main loop;
 *   bf16r: the same with the register-staged kernel (TlNvptxOptions.mma_regs), the
 *         reference; TL_BENCH_REGS=0 leaves these rows out.
 *
 * Shapes: n = 1024, 2048, 4096, 8192 (square) and the GPT shapes 2048x768x256 and
 * 8192x2304x768 (M x N x K: tokens x outputs x inputs), or those given as arguments (n or
 * MxNxK). Each figure is the median of 10 timed runs (CUDA events around one run of the program: its launches) after
 * 3 warm-ups; TFLOPS = 2 M N K / time. Checks: 64 entries of tl's C against a double-
 * precision dot product of the same operands, as a fraction of the f32-accumulation bound
 * K 2^-23 sum|a b| + u |C| (u the unit roundoff of C's type; <= 1 is right), and
 * max |tl - cuBLAS| / max |cuBLAS| over all of C.
 *
 * cuBLAS is dlopen'd (libcublas.so.13, .12 or .so: put its directory on LD_LIBRARY_PATH);
 * without it only tl's figures are printed. Without a GPU it prints one SKIP line.
 * --json FILE appends one JSON object per line per (shape, precision) in bench/results.json's
 * form: {"bench", "metric", "tl", "anchor_name", "anchor", "ratio", "device"}.
 *
 *   build/bench/gpu_gemm [--json FILE] [n | MxNxK ...]     (bench/gpu/run.sh builds and runs it) */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"
#include "nvptx/nvptx.h"

typedef int (*CublasCreate)(void **);
typedef int (*CublasSgemm)(void *, int, int, int, int, int, const float *, const float *, int, const float *, int,
                           const float *, float *, int);
typedef int (*CublasGemmEx)(void *, int, int, int, int, int, const void *, const void *, int, int, const void *, int, int,
                            const void *, void *, int, int, int, int);
enum { CUDA_R_32F = 0, CUDA_R_16BF = 14, CUBLAS_COMPUTE_32F = 68, CUBLAS_GEMM_DEFAULT = -1 };

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static float median(float *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    return v[n / 2];
}

/* f32 -> bf16 bits, round to nearest even (the values here are finite) */
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

enum { WARM = 3, RUNS = 10 };

static TlCuEvent e0, e1;
static char err[512];

typedef struct Cublas { void *handle; CublasSgemm sgemm; CublasGemmEx gemmex; } Cublas;

/* median ms of RUNS timed calls of fn(arg) after WARM; < 0 on failure */
typedef int (*Timed)(void *arg);
static double time_median(Timed fn, void *arg) {
    float t[RUNS], ms;
    for (int r = 0; r < WARM + RUNS; r++) {
        tl_cuda_event_record(e0, NULL, 0);
        if (fn(arg)) return -1;
        tl_cuda_event_record(e1, NULL, 0);
        if (tl_cuda_event_elapsed(e0, e1, &ms, err, sizeof err)) { puts(err); return -1; }
        if (r >= WARM) t[r - WARM] = ms;
    }
    return median(t, RUNS);
}

static int tl_call(void *arg) {
    TlGpuProgram *p = arg;
    if (tl_gpu_rerun(p)) { printf("run: %s\n", tl_gpu_error(p)); return -1; }
    return 0;
}

typedef struct CubCall { const Cublas *cb; int bf16, m, n, k; TlCuPtr A, B, C; } CubCall;
static int cub_call(void *arg) {
    const CubCall *c = arg;
    float one = 1, zero = 0;
    int st;
    /* row-major C = A B is column-major C^T = B^T A^T */
    if (c->bf16)
        st = c->cb->gemmex(c->cb->handle, 0, 0, c->n, c->m, c->k, &one, (const void *)(uintptr_t)c->B, CUDA_R_16BF, c->n,
                           (const void *)(uintptr_t)c->A, CUDA_R_16BF, c->k, &zero, (void *)(uintptr_t)c->C, CUDA_R_32F, c->n,
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    else
        st = c->cb->sgemm(c->cb->handle, 0, 0, c->n, c->m, c->k, &one, (const float *)(uintptr_t)c->B, c->n,
                          (const float *)(uintptr_t)c->A, c->k, &zero, (float *)(uintptr_t)c->C, c->n);
    if (st) printf("cuBLAS %s failed: %d\n", c->bf16 ? "cublasGemmEx" : "cublasSgemm_v2", st);
    return st;
}

/* One shape at one precision: a row of the table and a JSON line. 0, or -1 on a failure.
 * regs (bf16): the register-staged tensor-core kernel (TlNvptxOptions.mma_regs), the
 * reference for the default packed one (pack kernel + cp.async; its time includes the
 * pack kernel's). */
static int bench_one(const Cublas *cb, int m, int n, int k, int bf16, int regs, FILE *json) {
    const char *type = !bf16 ? "f32" : regs ? "bf16r" : "bf16";
    TlLoc L = {0, 1, 1, 0, 0};
    TlDType dt = bf16 ? TL_BF16 : TL_F32;
    TlGraph *g = tl_graph_new();
    int a = tl_g_input(g, "a", dt, tl_gshape_make(g, 2, (int64_t[]){m, k}), L);
    int b = tl_g_input(g, "b", dt, tl_gshape_make(g, 2, (int64_t[]){k, n}), L);
    tl_graph_add_output(g, tl_g_contract(g, "ij,jk->ik", a, b, L));
    TlGpuProgram *p = tl_gpu_compile(g, &(TlNvptxOptions){.opt_level = 3, .mma_regs = regs}, err, sizeof err);
    if (!p) { printf("compile: %s\n", err); return -1; }
    size_t na = (size_t)m * k, nb = (size_t)k * n, nc = (size_t)m * n;
    float *ha = malloc(na * sizeof *ha), *hb = malloc(nb * sizeof *hb);
    uint16_t *ha16 = malloc(na * 2), *hb16 = malloc(nb * 2);
    srand(1);
    for (size_t i = 0; i < na; i++) ha[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (size_t i = 0; i < nb; i++) hb[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    if (bf16) { /* the operands are bf16 values: tl gets them as f32, cuBLAS as bf16 */
        for (size_t i = 0; i < na; i++) ha16[i] = to_bf16(ha[i]), ha[i] = from_bf16(ha16[i]);
        for (size_t i = 0; i < nb; i++) hb16[i] = to_bf16(hb[i]), hb[i] = from_bf16(hb16[i]);
    }
    tl_gpu_set_raw(p, a, ha, (int64_t)na);
    tl_gpu_set_raw(p, b, hb, (int64_t)nb);
    int rc = -1;
    if (tl_gpu_run(p)) { printf("run: %s\n", tl_gpu_error(p)); goto done; }
    const float *tc = tl_gpu_output(p, 0)->data;
    /* 64 entries against the exact dot product, as a fraction of the accumulation bound */
    double worst = 0, u = bf16 ? ldexp(1, -8) : ldexp(1, -24);
    for (int t = 0; t < 64; t++) {
        int i = rand() % m, j = rand() % n;
        double s = 0, sa = 0;
        for (int q = 0; q < k; q++) {
            double v = (double)ha[(size_t)i * k + q] * hb[(size_t)q * n + j];
            s += v, sa += fabs(v);
        }
        double bound = k * ldexp(1, -23) * sa + 2.01 * u * fabs(s) + 1e-30;
        if (fabs(tc[(size_t)i * n + j] - s) / bound > worst) worst = fabs(tc[(size_t)i * n + j] - s) / bound;
    }
    double mt = time_median(tl_call, p);
    if (mt < 0) goto done;
    double flop = 2.0 * m * (double)n * k, mc = 0, rel = 0;
    if (cb->handle && (bf16 ? (void *)(uintptr_t)cb->gemmex : (void *)(uintptr_t)cb->sgemm)) {
        CubCall c = {cb, bf16, m, n, k, tl_gpu_device_ptr(p, a), tl_gpu_device_ptr(p, b), 0};
        if (tl_cuda_alloc(&c.C, nc * sizeof(float), err, sizeof err)) { puts(err); goto done; }
        if (bf16) {
            if (tl_cuda_alloc(&c.A, na * 2, err, sizeof err) || tl_cuda_alloc(&c.B, nb * 2, err, sizeof err) ||
                tl_cuda_htod(c.A, ha16, na * 2, err, sizeof err) || tl_cuda_htod(c.B, hb16, nb * 2, err, sizeof err)) {
                puts(err);
                goto done;
            }
        }
        mc = time_median(cub_call, &c);
        float *hc = malloc(nc * sizeof *hc);
        tl_cuda_dtoh(hc, c.C, nc * sizeof(float), err, sizeof err);
        double md = 0, mx = 0;
        for (size_t i = 0; i < nc; i++) {
            double d = fabs((double)tc[i] - hc[i]);
            if (d > md) md = d;
            if (fabs(hc[i]) > mx) mx = fabs(hc[i]);
        }
        rel = md / (mx > 0 ? mx : 1);
        free(hc);
        tl_cuda_free(c.C);
        if (bf16) tl_cuda_free(c.A), tl_cuda_free(c.B);
        if (mc < 0) goto done;
    }
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%dx%d", m, n, k);
    printf("%-16s %5s %10.3f %10.2f %10.3f %10.2f %8.3f %10.2e %9.3f\n", shape, type, mt, flop / (mt * 1e9), mc,
           mc > 0 ? flop / (mc * 1e9) : 0, mc > 0 ? mc / mt : 0, rel, worst);
    fflush(stdout);
    if (json && mc > 0)
        fprintf(json,
                "{\"bench\": \"gpu gemm %s %s\", \"metric\": \"TFLOPS\", \"tl\": %.2f, \"anchor_name\": \"%s\", "
                "\"anchor\": %.2f, \"ratio\": %.3f, \"device\": \"%s\"}\n",
                shape, bf16 && regs ? "bf16 (register-staged)" : type, flop / (mt * 1e9),
                bf16 ? "cuBLAS cublasGemmEx (bf16 in, f32 out, COMPUTE_32F)" : "cuBLAS cublasSgemm_v2 (FP32, no TF32)",
                flop / (mc * 1e9), mc / mt, tl_cuda_device_name());
    rc = worst <= 1 ? 0 : (printf("  %s %s: tl's C is outside the accumulation bound\n", shape, type), -1);
done:
    free(ha), free(hb), free(ha16), free(hb16);
    tl_gpu_free(p);
    tl_graph_free(g);
    return rc;
}

int main(int argc, char **argv) {
    FILE *json = NULL;
    const char *json_path = NULL;
    int shapes[16][3], ns = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json_path = argv[++i];
            continue;
        }
        int m, n, k;
        if (ns < 16 && sscanf(argv[i], "%dx%dx%d", &m, &n, &k) == 3 && m > 0 && n > 0 && k > 0) shapes[ns][0] = m, shapes[ns][1] = n, shapes[ns++][2] = k;
        else if (ns < 16 && (n = atoi(argv[i])) > 0) shapes[ns][0] = shapes[ns][1] = shapes[ns][2] = n, ns++;
        else { printf("usage: gpu_gemm [--json FILE] [n | MxNxK ...]\n"); return 1; }
    }
    if (!ns) {
        static const int def[][3] = {{1024, 1024, 1024}, {2048, 2048, 2048}, {4096, 4096, 4096}, {8192, 8192, 8192},
                                     {2048, 768, 256}, {8192, 2304, 768}};
        for (size_t i = 0; i < sizeof def / sizeof *def; i++) memcpy(shapes[ns++], def[i], sizeof def[i]);
    }
    if (tl_cuda_open(err, sizeof err)) { printf("SKIP: no GPU benchmark: %s\n", err); return 0; }
    int maj, min;
    tl_cuda_capability(&maj, &min);
    printf("device: %s (sm_%d%d)\n", tl_cuda_device_name(), maj, min);
    Cublas cb = {0};
    void *lib = NULL;
    static const char *libs[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
    for (int i = 0; i < 3 && !lib; i++) lib = dlopen(libs[i], RTLD_NOW);
    CublasCreate create = lib ? (CublasCreate)(uintptr_t)dlsym(lib, "cublasCreate_v2") : NULL;
    if (lib) {
        cb.sgemm = (CublasSgemm)(uintptr_t)dlsym(lib, "cublasSgemm_v2");
        cb.gemmex = (CublasGemmEx)(uintptr_t)dlsym(lib, "cublasGemmEx");
    }
    if (!create || create(&cb.handle) != 0) {
        printf("cuBLAS not available (%s): tl's figures only\n", lib ? "no cublasCreate_v2 or create failed" : dlerror());
        cb.handle = NULL;
    }
    if (json_path && !(json = fopen(json_path, "a"))) { printf("%s: cannot open\n", json_path); return 1; }
    if (tl_cuda_event_create(&e0, err, sizeof err) || tl_cuda_event_create(&e1, err, sizeof err)) { puts(err); return 1; }
    printf("%-16s %5s %10s %10s %10s %10s %8s %10s %9s\n", "MxNxK", "type", "tl ms", "tl TFLOPS", "cuBLAS ms", "cuBLAS TF",
           "tl/cuB", "rel diff", "err/bound");
    int status = 0;
    /* f32, bf16 (packed, the default), bf16r (register-staged; TL_BENCH_REGS=0 leaves it out) */
    const char *rv = getenv("TL_BENCH_REGS");
    int nvar = rv && rv[0] == '0' ? 2 : 3;
    for (int si = 0; si < ns; si++)
        for (int v = 0; v < nvar; v++)
            if (bench_one(&cb, shapes[si][0], shapes[si][1], shapes[si][2], v > 0, v == 2, json)) status = 1;
    tl_cuda_event_destroy(e0);
    tl_cuda_event_destroy(e1);
    if (json) fclose(json);
    return status;
}
