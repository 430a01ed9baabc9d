/* fakecuda.c — a stand-in libcuda.so.1 for tests on machines without a GPU (tests/gpu/
 * suite.sh builds it and puts it first on LD_LIBRARY_PATH). Device memory is host memory
 * (zeroed), copies are memcpy, modules load any text and kernels launch as no-ops: nothing
 * is computed, but everything the host side of a GPU program does — allocations, uploads,
 * downloads, device copies, launches, synchronizations — happens, and each transfer is
 * logged to $TL_FAKECUDA_LOG as one line ("H2D <bytes>", "D2H <bytes>", "D2D <bytes>",
 * "LAUNCH <kernel>", "SYNC"), so a test can check what crosses the bus. Events keep a
 * fake clock that each launch advances by 1 us per block plus 2 us ("EVENT" is logged per
 * record), so TL_GPU_PROFILE's per-kernel times are deterministic. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef uint64_t CUdeviceptr;

static FILE *logf_;
static void note(const char *what, const char *name, size_t n) {
    if (!logf_) {
        const char *p = getenv("TL_FAKECUDA_LOG");
        if (!p || !(logf_ = fopen(p, "a"))) return;
    }
    if (name) fprintf(logf_, "%s %s\n", what, name);
    else fprintf(logf_, "%s %zu\n", what, n);
    fflush(logf_);
}

CUresult cuInit(unsigned flags) { (void)flags; return 0; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return 0; }
CUresult cuDeviceGet(int *d, int i) { *d = i; return 0; }
CUresult cuDeviceGetName(char *s, int n, int d) { (void)d; snprintf(s, (size_t)n, "fake GPU (tests/gpu/fakecuda.c)"); return 0; }
CUresult cuDeviceGetAttribute(int *v, int attr, int d) { (void)d; *v = attr == 75 ? 9 : 0; return 0; }
CUresult cuDevicePrimaryCtxRetain(void **c, int d) { (void)d; *c = (void *)1; return 0; }
CUresult cuCtxSetCurrent(void *c) { (void)c; return 0; }
CUresult cuCtxSynchronize(void) { note("SYNC", "", 0); return 0; }
CUresult cuModuleLoadDataEx(void **m, const void *image, unsigned n, int *o, void **v) {
    (void)n, (void)o, (void)v;
    *m = (void *)image;
    return 0;
}
CUresult cuModuleUnload(void *m) { (void)m; return 0; }
/* the function handle is a copy of its name, so launches can be logged by name */
CUresult cuModuleGetFunction(void **f, void *m, const char *name) {
    char pat[300];
    snprintf(pat, sizeof pat, ".entry %s(", name);
    if (!strstr((const char *)m, pat)) return 500; /* CUDA_ERROR_NOT_FOUND */
    *f = strdup(name);
    return 0;
}
CUresult cuFuncGetAttribute(int *v, int attr, void *f) { (void)attr, (void)f; *v = 0; return 0; }
static double fake_clock_ms;
CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned sh,
                        void *stream, void **params, void **extra) {
    (void)bx, (void)by, (void)bz, (void)sh, (void)stream, (void)params, (void)extra;
    note("LAUNCH", (const char *)f, 0);
    fake_clock_ms += 0.002 + 0.001 * (double)gx * (double)gy * (double)gz;
    return 0;
}
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
    void *m = calloc(1, n ? n : 1);
    if (!m) return 2; /* CUDA_ERROR_OUT_OF_MEMORY */
    *p = (CUdeviceptr)(uintptr_t)m;
    return 0;
}
CUresult cuMemFree_v2(CUdeviceptr p) { free((void *)(uintptr_t)p); return 0; }
CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *s, size_t n) { memcpy((void *)(uintptr_t)d, s, n); note("H2D", NULL, n); return 0; }
CUresult cuMemcpyDtoH_v2(void *d, CUdeviceptr s, size_t n) { memcpy(d, (void *)(uintptr_t)s, n); note("D2H", NULL, n); return 0; }
CUresult cuMemcpyDtoD_v2(CUdeviceptr d, CUdeviceptr s, size_t n) { memmove((void *)(uintptr_t)d, (void *)(uintptr_t)s, n); note("D2D", NULL, n); return 0; }
CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) { memset((void *)(uintptr_t)d, v, n); return 0; }
CUresult cuEventCreate(void **e, unsigned f) {
    (void)f;
    *e = calloc(1, sizeof(double));
    return *e ? 0 : 2;
}
CUresult cuEventDestroy_v2(void *e) { free(e); return 0; }
CUresult cuEventRecord(void *e, void *s) {
    (void)s;
    *(double *)e = fake_clock_ms;
    note("EVENT", "", 0);
    return 0;
}
CUresult cuEventSynchronize(void *e) { (void)e; return 0; }
CUresult cuEventElapsedTime(float *ms, void *a, void *b) { *ms = (float)(*(double *)b - *(double *)a); return 0; }
CUresult cuGetErrorString(CUresult r, const char **s) { *s = r == 500 ? "not found" : "fake error"; return 0; }
