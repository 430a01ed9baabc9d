/* cuda.c — the CUDA driver API through dlopen (see cuda.h). The few declarations of the
 * driver API used are written out here (CUresult is an int, handles are pointers, device
 * addresses 64-bit), so neither CUDA's headers nor its libraries are needed to build. */
#include "cuda.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;

#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76
#define CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES 1
#define CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES 3
#define CU_FUNC_ATTRIBUTE_NUM_REGS 4
#define CU_JIT_INFO_LOG_BUFFER 3
#define CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES 4
#define CU_JIT_ERROR_LOG_BUFFER 5
#define CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES 6

static struct {
    CUresult (*Init)(unsigned);
    CUresult (*DeviceGetCount)(int *);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetName)(char *, int, CUdevice);
    CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
    CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*CtxSetCurrent)(CUcontext);
    CUresult (*CtxSynchronize)(void);
    CUresult (*ModuleLoadDataEx)(TlCuModule *, const void *, unsigned, int *, void **);
    CUresult (*ModuleUnload)(TlCuModule);
    CUresult (*ModuleGetFunction)(TlCuFunction *, TlCuModule, const char *);
    CUresult (*FuncGetAttribute)(int *, int, TlCuFunction);
    CUresult (*LaunchKernel)(TlCuFunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             void *, void **, void **);
    CUresult (*MemAlloc)(TlCuPtr *, size_t);
    CUresult (*MemFree)(TlCuPtr);
    CUresult (*MemcpyHtoD)(TlCuPtr, const void *, size_t);
    CUresult (*MemcpyDtoH)(void *, TlCuPtr, size_t);
    CUresult (*MemcpyDtoD)(TlCuPtr, TlCuPtr, size_t);
    CUresult (*MemsetD8)(TlCuPtr, unsigned char, size_t);
    CUresult (*EventCreate)(TlCuEvent *, unsigned);
    CUresult (*EventDestroy)(TlCuEvent);
    CUresult (*EventRecord)(TlCuEvent, void *);
    CUresult (*EventSynchronize)(TlCuEvent);
    CUresult (*EventElapsedTime)(float *, TlCuEvent, TlCuEvent);
    CUresult (*GetErrorString)(CUresult, const char **);
} cu;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char open_err[256];
static int opened;
static CUcontext ctx;
static CUdevice dev;
static char dev_name[128];
static int cc_major, cc_minor;

static int fail(char *err, int errn, const char *fmt, ...) {
    if (err && errn > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, (size_t)errn, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const char *cu_str(CUresult r) {
    const char *s = NULL;
    if (cu.GetErrorString && cu.GetErrorString(r, &s) == 0 && s) return s;
    return "unknown CUDA error";
}

/* r != 0 -> "what: CUDA error N (text)" */
static int check(CUresult r, const char *what, char *err, int errn) {
    if (r == 0) return 0;
    return fail(err, errn, "%s: CUDA error %d (%s)", what, r, cu_str(r));
}

static void load_driver(void) {
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(open_err, sizeof open_err, "no CUDA driver (libcuda.so.1 not found)");
        return;
    }
    struct { void **slot; const char *name; } syms[] = {
#define S(f, n) {(void **)&cu.f, n}
        S(Init, "cuInit"), S(DeviceGetCount, "cuDeviceGetCount"), S(DeviceGet, "cuDeviceGet"),
        S(DeviceGetName, "cuDeviceGetName"), S(DeviceGetAttribute, "cuDeviceGetAttribute"),
        S(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"), S(CtxSetCurrent, "cuCtxSetCurrent"),
        S(CtxSynchronize, "cuCtxSynchronize"), S(ModuleLoadDataEx, "cuModuleLoadDataEx"),
        S(ModuleUnload, "cuModuleUnload"), S(ModuleGetFunction, "cuModuleGetFunction"),
        S(FuncGetAttribute, "cuFuncGetAttribute"), S(LaunchKernel, "cuLaunchKernel"),
        S(MemAlloc, "cuMemAlloc_v2"), S(MemFree, "cuMemFree_v2"), S(MemcpyHtoD, "cuMemcpyHtoD_v2"),
        S(MemcpyDtoH, "cuMemcpyDtoH_v2"), S(MemcpyDtoD, "cuMemcpyDtoD_v2"), S(MemsetD8, "cuMemsetD8_v2"),
        S(EventCreate, "cuEventCreate"), S(EventDestroy, "cuEventDestroy_v2"), S(EventRecord, "cuEventRecord"),
        S(EventSynchronize, "cuEventSynchronize"), S(EventElapsedTime, "cuEventElapsedTime"),
        S(GetErrorString, "cuGetErrorString"),
#undef S
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        *syms[i].slot = dlsym(h, syms[i].name);
        if (!*syms[i].slot) {
            snprintf(open_err, sizeof open_err, "CUDA driver too old: libcuda.so.1 lacks %s", syms[i].name);
            return;
        }
    }
    CUresult r = cu.Init(0);
    int n = 0;
    if (r == 0) r = cu.DeviceGetCount(&n);
    if (r != 0 || n <= 0) {
        if (r == 100 || n <= 0) snprintf(open_err, sizeof open_err, "no GPU found");
        else snprintf(open_err, sizeof open_err, "CUDA driver: cuInit failed: error %d (%s)", r, cu_str(r));
        return;
    }
    if ((r = cu.DeviceGet(&dev, 0)) || (r = cu.DevicePrimaryCtxRetain(&ctx, dev))) {
        snprintf(open_err, sizeof open_err, "CUDA: cannot open device 0: error %d (%s)", r, cu_str(r));
        return;
    }
    cu.DeviceGetName(dev_name, (int)sizeof dev_name, dev);
    cu.DeviceGetAttribute(&cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
    cu.DeviceGetAttribute(&cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
    opened = 1;
}

int tl_cuda_open(char *err, int errn) {
    pthread_once(&once, load_driver);
    if (!opened) return fail(err, errn, "%s", open_err);
    return check(cu.CtxSetCurrent(ctx), "cuCtxSetCurrent", err, errn);
}

int tl_cuda_available(void) { return tl_cuda_open(NULL, 0) == 0; }
const char *tl_cuda_device_name(void) { return opened ? dev_name : ""; }

void tl_cuda_capability(int *major, int *minor) {
    if (major) *major = opened ? cc_major : 0;
    if (minor) *minor = opened ? cc_minor : 0;
}

int tl_cuda_module_load(const char *ptx, TlCuModule *m, char *err, int errn) {
    if (!opened) return fail(err, errn, "%s", open_err[0] ? open_err : "CUDA is not open");
    char elog[4096] = {0};
    int opts[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *vals[2] = {elog, (void *)(uintptr_t)sizeof elog};
    CUresult r = cu.ModuleLoadDataEx(m, ptx, 2, opts, vals);
    if (r != 0) {
        char *nl = strchr(elog, '\n');
        if (nl) *nl = 0;
        return fail(err, errn, "cuModuleLoadData: CUDA error %d (%s)%s%s", r, cu_str(r), elog[0] ? ": " : "", elog);
    }
    return 0;
}

void tl_cuda_module_unload(TlCuModule m) {
    if (opened && m) cu.ModuleUnload(m);
}

int tl_cuda_function(TlCuModule m, const char *name, TlCuFunction *f, char *err, int errn) {
    CUresult r = cu.ModuleGetFunction(f, m, name);
    if (r) return fail(err, errn, "kernel %s: CUDA error %d (%s)", name, r, cu_str(r));
    return 0;
}

int tl_cuda_function_info(TlCuFunction f, int *regs, int *shared_bytes, int *local_bytes) {
    int r = 0;
    if (regs) r |= cu.FuncGetAttribute(regs, CU_FUNC_ATTRIBUTE_NUM_REGS, f);
    if (shared_bytes) r |= cu.FuncGetAttribute(shared_bytes, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, f);
    if (local_bytes) r |= cu.FuncGetAttribute(local_bytes, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, f);
    return r ? -1 : 0;
}

int tl_cuda_launch(TlCuFunction f, TlCuDim grid, TlCuDim block, unsigned shared_bytes, void **args, char *err, int errn) {
    return check(cu.LaunchKernel(f, grid.x, grid.y, grid.z, block.x, block.y, block.z, shared_bytes, NULL, args, NULL),
                 "cuLaunchKernel", err, errn);
}

int tl_cuda_sync(char *err, int errn) { return check(cu.CtxSynchronize(), "kernel execution", err, errn); }

int tl_cuda_alloc(TlCuPtr *p, size_t bytes, char *err, int errn) {
    if (!opened) return fail(err, errn, "%s", open_err[0] ? open_err : "CUDA is not open");
    CUresult r = cu.MemAlloc(p, bytes ? bytes : 1);
    if (r) return fail(err, errn, "cuMemAlloc of %zu bytes: CUDA error %d (%s)", bytes, r, cu_str(r));
    return 0;
}

void tl_cuda_free(TlCuPtr p) {
    if (opened && p) cu.MemFree(p);
}

int tl_cuda_htod(TlCuPtr dst, const void *src, size_t bytes, char *err, int errn) {
    return bytes ? check(cu.MemcpyHtoD(dst, src, bytes), "cuMemcpyHtoD", err, errn) : 0;
}

int tl_cuda_dtoh(void *dst, TlCuPtr src, size_t bytes, char *err, int errn) {
    return bytes ? check(cu.MemcpyDtoH(dst, src, bytes), "cuMemcpyDtoH", err, errn) : 0;
}

int tl_cuda_dtod(TlCuPtr dst, TlCuPtr src, size_t bytes, char *err, int errn) {
    return bytes ? check(cu.MemcpyDtoD(dst, src, bytes), "cuMemcpyDtoD", err, errn) : 0;
}

int tl_cuda_memset(TlCuPtr dst, unsigned char value, size_t bytes, char *err, int errn) {
    return bytes ? check(cu.MemsetD8(dst, value, bytes), "cuMemsetD8", err, errn) : 0;
}

int tl_cuda_event_create(TlCuEvent *e, char *err, int errn) {
    if (!opened) return fail(err, errn, "%s", open_err[0] ? open_err : "CUDA is not open");
    return check(cu.EventCreate(e, 0), "cuEventCreate", err, errn);
}

void tl_cuda_event_destroy(TlCuEvent e) {
    if (opened && e) cu.EventDestroy(e);
}

int tl_cuda_event_record(TlCuEvent e, char *err, int errn) { return check(cu.EventRecord(e, NULL), "cuEventRecord", err, errn); }

int tl_cuda_event_elapsed(TlCuEvent start, TlCuEvent end, float *ms, char *err, int errn) {
    if (check(cu.EventSynchronize(end), "cuEventSynchronize", err, errn)) return -1;
    return check(cu.EventElapsedTime(ms, start, end), "cuEventElapsedTime", err, errn);
}
