/* cuda.h — the CUDA driver API, loaded at run time with dlopen("libcuda.so.1").
 *
 * Nothing here links CUDA: executables and tests run on machines without a GPU or a
 * driver, and a GPU target there fails with one clear line ("no CUDA driver (libcuda.so.1
 * not found)", "no GPU found"). Only the driver API is used (no CUDA runtime library):
 * device 0's primary context, modules loaded from PTX text (the driver JIT-compiles it for
 * the card), kernel launches on the default stream, device memory, copies, and events for
 * timing.
 *
 *   char err[256];
 *   if (tl_cuda_open(err, sizeof err)) { puts(err); return; }   // e.g. "no GPU found"
 *   TlCuModule m; TlCuFunction f;
 *   tl_cuda_module_load(ptx, &m, err, sizeof err);
 *   tl_cuda_function(m, "tl_k1_exp", &f, err, sizeof err);
 *   TlCuPtr x; tl_cuda_alloc(&x, bytes, err, sizeof err);
 *   void *args[] = {&x, &n};
 *   tl_cuda_launch(f, grid, block, 0, args, err, sizeof err);
 *
 * The driver table is loaded once per process (tl_cuda_open is idempotent and thread-safe)
 * and makes device 0's primary context current on the calling thread. Every function
 * returns 0 or -1 with a one-line message in err. */
#ifndef TL_CUDA_H
#define TL_CUDA_H
#include <stddef.h>
#include <stdint.h>

typedef uint64_t TlCuPtr;      /* a device address (CUdeviceptr) */
typedef void *TlCuModule;      /* CUmodule */
typedef void *TlCuFunction;    /* CUfunction */
typedef void *TlCuEvent;       /* CUevent */

typedef struct TlCuDim { unsigned x, y, z; } TlCuDim;

/* Load the driver, initialise it, select device 0 and make its primary context current. */
int tl_cuda_open(char *err, int errn);
/* 1 when a driver and a GPU are usable (opens them); never fails loudly. */
int tl_cuda_available(void);
/* After a successful open: the device's name and compute capability (e.g. 9, 0). */
const char *tl_cuda_device_name(void);
void tl_cuda_capability(int *major, int *minor);

int tl_cuda_module_load(const char *ptx, TlCuModule *m, char *err, int errn);
void tl_cuda_module_unload(TlCuModule m);
int tl_cuda_function(TlCuModule m, const char *name, TlCuFunction *f, char *err, int errn);
/* Registers per thread, static shared bytes and local (spill) bytes of a loaded kernel. */
int tl_cuda_function_info(TlCuFunction f, int *regs, int *shared_bytes, int *local_bytes);

/* args: one pointer per kernel parameter, to its value (cuLaunchKernel's kernelParams). */
int tl_cuda_launch(TlCuFunction f, TlCuDim grid, TlCuDim block, unsigned shared_bytes, void **args, char *err, int errn);
int tl_cuda_sync(char *err, int errn);

int tl_cuda_alloc(TlCuPtr *p, size_t bytes, char *err, int errn);
void tl_cuda_free(TlCuPtr p);
int tl_cuda_htod(TlCuPtr dst, const void *src, size_t bytes, char *err, int errn);
int tl_cuda_dtoh(void *dst, TlCuPtr src, size_t bytes, char *err, int errn);
int tl_cuda_dtod(TlCuPtr dst, TlCuPtr src, size_t bytes, char *err, int errn);
int tl_cuda_memset(TlCuPtr dst, unsigned char value, size_t bytes, char *err, int errn);

/* Events on the default stream: elapsed milliseconds between two recorded events. */
int tl_cuda_event_create(TlCuEvent *e, char *err, int errn);
void tl_cuda_event_destroy(TlCuEvent e);
int tl_cuda_event_record(TlCuEvent e, char *err, int errn);
int tl_cuda_event_elapsed(TlCuEvent start, TlCuEvent end, float *ms, char *err, int errn);

#endif
