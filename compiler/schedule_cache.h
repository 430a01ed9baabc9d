/* schedule_cache.h — the tuning cache: the best schedule found per kernel, per target, per
 * shape, kept on disk so that `tlc build` and `tlc run` get tuned kernels without tuning.
 *
 * Key: a 64-bit hash of (the kernel's Loop IR structure: tl_kernel_hash; the target key:
 * CPU model, vector features and thread count; the concrete values of the dim symbols the
 * kernel uses), written as 16 hex digits. Renaming a kernel, a buffer or a symbol keeps
 * the key; changing its loops, types, shapes or the machine changes it.
 *
 * Store: one JSON file per key, DIR/KEY.json, DIR = $TL_TUNE_CACHE, else
 * $HOME/.cache/tl/tune. Each file is written to a temporary file beside it and renamed
 * over the target (runtime/fsutil.h), so two tuners writing at once never leave a torn
 * entry: a reader sees the old entry or one of the new ones, whole. A file that does not
 * parse is ignored with one warning on stderr, never an error.
 *
 *   {"version": 1, "key": "9f1c...", "kernel": "tl_k3_contract", "target": "cpu:AMD EPYC:
 *    avx512f,fma:16t", "shape": "64,512,512", "default_s": 1.2e-3, "tuned_s": 0.9e-3,
 *    "candidates": 41, "schedule": {"serial": 0, "loops": [...], "gemm": {...}}}
 *
 * docs/tuning.md has the details. */
#ifndef TL_SCHEDULE_CACHE_H
#define TL_SCHEDULE_CACHE_H
#include <stddef.h>
#include <stdint.h>

#include "loops.h"
#include "tune.h"

typedef struct TlSchedEntry {
    char key[17];
    char kernel[64];   /* informative: the kernel's name when it was tuned */
    char target[160];
    char shape[160];
    double default_s, tuned_s;
    int candidates;
    TlKSched sched;
} TlSchedEntry;

/* The cache directory: dir when not NULL, else $TL_TUNE_CACHE, else ~/.cache/tl/tune
 * (./.tl-tune-cache without HOME). Written into buf; returns buf. */
const char *tl_schedule_cache_dir(const char *dir, char *buf, size_t n);
/* The target part of a key: "cpu:MODEL:FEATURES:Nt" for the host (or the named cpu) and
 * threads (0: TL_THREADS, else the host's cores). */
void tl_schedule_target_key(const char *cpu, int threads, char *buf, size_t n);
/* The target part of a key for the GPU the driver opened: "cuda:NAME:sm_XY" (tune_gpu.c). */
void tl_schedule_gpu_target_key(char *buf, size_t n);
/* The key of kernel k of p on target with the sym values syms (program order; NULL when
 * unknown: a kernel that uses a sym then has no key and -1 is returned). 0 ok. */
int tl_schedule_cache_key(const TlLProgram *p, int k, const int64_t *syms, const char *target_key,
                          char *key, size_t n, char *shape, size_t shape_n);

/* 0: found (e filled); 1: no entry; -1: an unreadable or corrupt entry (warned about once
 * on stderr, treated as missing). */
int tl_schedule_cache_get(const char *dir, const char *key, TlSchedEntry *e);
/* Writes e atomically (creating dir and its parents). 0, or -1 with a message. */
int tl_schedule_cache_put(const char *dir, const TlSchedEntry *e, char *err, size_t errn);

/* Applies the cached schedule of every kernel of a freshly lowered p that has an entry
 * for target_key (see tl_schedule_target_key) and the sym values syms (NULL: only kernels
 * that use no symbols). dir NULL: the default directory. src, when not NULL, has p->nkern
 * slots and receives where each kernel's schedule came from (TL_SCHED_DEFAULT;
 * TL_SCHED_CACHE for an entry, also one that keeps the default; TL_SCHED_SOURCE for a
 * kernel with a source schedule block, which the cache never overrides); scheds, when not NULL, has p->nkern slots and receives each kernel's
 * schedule (for --emit=schedule: tl_schedule_print). An entry that does not fit its kernel
 * is skipped with a warning. Returns the number of kernels changed. */
int tl_schedule_cache_apply(TlLProgram *p, const char *target_key, const int64_t *syms, const char *dir,
                            TlSchedSource *src, TlKSched *scheds);

/* --emit=schedule: one line per kernel: name, where its schedule came from, the schedule
 * (scheds NULL: each kernel's default). gpu: for --target=cuda, where a source block's
 * GPU directives apply (TlLKernel.sched_gpu); on the CPU they are listed as ignored. */
void tl_schedule_print(FILE *f, const TlLProgram *p, const TlSchedSource *src, const TlKSched *scheds, int gpu);

struct TlCpuProgram;
struct TlCpuOptions;
/* Lowers g, applies the tuning cache for the host (or o->cpu) and o->threads, and compiles
 * it (what tlc run and tlc build do). *ncached receives how many kernels got a cached
 * schedule. NULL with a message on failure. */
struct TlCpuProgram *tl_cpu_compile_cached(const TlGraph *g, const struct TlCpuOptions *o, int *ncached, char *err,
                                           int errn);

struct TlGpuProgram;
/* The same for the GPU (tlc run --target cuda): the cache's entries for this GPU
 * (tune --target cuda: launch blocks). NULL with a message (no GPU, ...). */
struct TlGpuProgram *tl_gpu_compile_cached(const TlGraph *g, int *ncached, char *err, int errn);

#endif
