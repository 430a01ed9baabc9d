/* schedule_cache.c — the tuning cache on disk (schedule_cache.h): one JSON file per key,
 * written by temp file + rename, read leniently (a bad file is a warning and a miss). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cpu_detect.h"
#include "fsutil.h"
#include "schedule_cache.h"

#include "cuda.h"
#include "nvptx/nvptx.h"
#include "cpu/cpu.h"

int tl_ksched_from_cjson(const void *j, TlKSched *s); /* tune_space.c */

const char *tl_schedule_cache_dir(const char *dir, char *buf, size_t n) {
    const char *env = getenv("TL_TUNE_CACHE"), *home = getenv("HOME");
    if (dir && *dir) snprintf(buf, n, "%s", dir);
    else if (env && *env) snprintf(buf, n, "%s", env);
    else if (home && *home) snprintf(buf, n, "%s/.cache/tl/tune", home);
    else snprintf(buf, n, ".tl-tune-cache");
    return buf;
}

void tl_schedule_target_key(const char *cpu, int threads, char *buf, size_t n) {
    const TlHostCpu *h = tl_host_cpu();
    if (threads <= 0) {
        const char *env = getenv("TL_THREADS");
        threads = env && atoi(env) > 0 ? atoi(env) : h->cores;
    }
    snprintf(buf, n, "cpu:%s:%s%s%s:%dt", cpu && *cpu ? cpu : h->model, h->avx512f ? "avx512f," : "",
             h->avx512_bf16 ? "avx512bf16," : "", h->fma ? "fma" : "", threads);
}

static uint64_t hash_str(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static int uses_unknown_sym(const char *shape) { return strstr(shape, "-1") != NULL; }

int tl_schedule_cache_key(const TlLProgram *p, int k, const int64_t *syms, const char *target_key,
                          char *key, size_t n, char *shape, size_t shape_n) {
    char sh[160];
    tl_kernel_shape_key(p, k, syms, sh, sizeof sh);
    if (shape) snprintf(shape, shape_n, "%s", sh);
    if (!syms && sh[0]) return -1;
    if (uses_unknown_sym(sh)) return -1;
    uint64_t h = tl_kernel_hash(p, k);
    h = hash_str(h ^ 0xcbf29ce484222325ull, target_key);
    h = hash_str(h * 31 + 7, "|");
    h = hash_str(h, sh);
    snprintf(key, n, "%016llx", (unsigned long long)h);
    return 0;
}

static void entry_path(const char *dir, const char *key, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s.json", dir, key);
}

static const char *str_member(const cJSON *j, const char *name) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static double num_member(const cJSON *j, const char *name, int *ok) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!cJSON_IsNumber(x)) { *ok = 0; return 0; }
    return x->valuedouble;
}

int tl_schedule_cache_get(const char *dir, const char *key, TlSchedEntry *e) {
    char path[1024];
    entry_path(dir, key, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    char *text = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && len < (1 << 20) && fseek(f, 0, SEEK_SET) == 0) {
        text = malloc((size_t)len + 1);
        if (text && fread(text, 1, (size_t)len, f) == (size_t)len) text[len] = 0;
        else free(text), text = NULL;
    }
    fclose(f);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    int ok = j != NULL;
    memset(e, 0, sizeof *e);
    if (ok) {
        const char *k = str_member(j, "key"), *kern = str_member(j, "kernel"), *t = str_member(j, "target"), *s = str_member(j, "shape");
        int version = (int)num_member(j, "version", &ok);
        e->default_s = num_member(j, "default_s", &ok);
        e->tuned_s = num_member(j, "tuned_s", &ok);
        e->candidates = (int)num_member(j, "candidates", &ok);
        if (!k || strcmp(k, key) != 0 || !t || !s || version != 1) ok = 0;
        if (ok && tl_ksched_from_cjson(cJSON_GetObjectItemCaseSensitive(j, "schedule"), &e->sched)) ok = 0;
        if (ok) {
            snprintf(e->key, sizeof e->key, "%s", k);
            snprintf(e->kernel, sizeof e->kernel, "%s", kern ? kern : "");
            snprintf(e->target, sizeof e->target, "%s", t);
            snprintf(e->shape, sizeof e->shape, "%s", s);
        }
    }
    cJSON_Delete(j);
    if (!ok) {
        fprintf(stderr, "tl: warning: ignoring the corrupt tuning cache entry %s\n", path);
        return -1;
    }
    return 0;
}

/* mkdir -p */
static int make_dirs(const char *dir, char *err, size_t errn) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *s = buf + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(buf, 0755) && errno != EEXIST) {
                snprintf(err, errn, "%s: cannot create the directory: %s", buf, strerror(errno));
                return -1;
            }
            *s = c;
            if (!c) break;
        }
    }
    return 0;
}

int tl_schedule_cache_put(const char *dir, const TlSchedEntry *e, char *err, size_t errn) {
    if (make_dirs(dir, err, errn)) return -1;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "key", e->key);
    cJSON_AddStringToObject(j, "kernel", e->kernel);
    cJSON_AddStringToObject(j, "target", e->target);
    cJSON_AddStringToObject(j, "shape", e->shape);
    cJSON_AddNumberToObject(j, "default_s", e->default_s);
    cJSON_AddNumberToObject(j, "tuned_s", e->tuned_s);
    cJSON_AddNumberToObject(j, "candidates", e->candidates);
    char *sched = tl_ksched_to_json(&e->sched);
    cJSON_AddItemToObject(j, "schedule", cJSON_Parse(sched));
    free(sched);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    char path[1024];
    entry_path(dir, e->key, path, sizeof path);
    TlAtomicFile a;
    int r = -1;
    if (tl_fs_atomic_begin(&a, path, err, errn) == 0) {
        fputs(text, a.f);
        fputc('\n', a.f);
        r = tl_fs_atomic_commit(&a, err, errn);
    }
    free(text);
    return r;
}

int tl_schedule_cache_apply(TlLProgram *p, const char *target_key, const int64_t *syms, const char *dir,
                            TlSchedSource *src, TlKSched *scheds) {
    char dbuf[1024];
    dir = tl_schedule_cache_dir(dir, dbuf, sizeof dbuf);
    int changed = 0;
    for (int k = 0; k < p->nkern; k++) {
        if (src) src[k] = TL_SCHED_DEFAULT;
        if (scheds) tl_ksched_default(p, k, &scheds[k]);
        if (p->kern[k].sched) { /* a source schedule wins over the cache */
            if (src) src[k] = TL_SCHED_SOURCE;
            continue;
        }
        char key[32];
        TlSchedEntry e;
        if (tl_schedule_cache_key(p, k, syms, target_key, key, sizeof key, NULL, 0)) continue;
        if (tl_schedule_cache_get(dir, key, &e) != 0) continue;
        TlKSched def;
        tl_ksched_default(p, k, &def);
        if (tl_ksched_equal(&def, &e.sched)) { /* tuned, and the default won */
            if (src) src[k] = TL_SCHED_CACHE;
            continue;
        }
        char err[256];
        if (tl_ksched_apply(p, k, &e.sched, err, sizeof err)) {
            fprintf(stderr, "tl: warning: tuning cache entry %s/%s.json does not fit kernel %s: %s\n", dir, key,
                    p->kern[k].name, err);
            continue;
        }
        if (src) src[k] = TL_SCHED_CACHE;
        if (scheds) scheds[k] = e.sched;
        changed++;
    }
    return changed;
}

void tl_schedule_print(FILE *f, const TlLProgram *p, const TlSchedSource *src, const TlKSched *scheds, int gpu) {
    for (int k = 0; k < p->nkern; k++) {
        char buf[512];
        TlKSched d;
        if (scheds) d = scheds[k];
        else tl_ksched_default(p, k, &d);
        tl_ksched_format(&d, buf, sizeof buf);
        const TlLKernel *K = &p->kern[k];
        if (src && src[k] == TL_SCHED_SOURCE && !K->sched_gpu[0]) snprintf(buf, sizeof buf, "%s", K->sched_text);
        else if (src && src[k] == TL_SCHED_SOURCE && gpu && !strcmp(K->sched_text, "default"))
            snprintf(buf, sizeof buf, "%s", K->sched_gpu);
        else if (src && src[k] == TL_SCHED_SOURCE && gpu) snprintf(buf, sizeof buf, "%s %s", K->sched_text, K->sched_gpu);
        else if (src && src[k] == TL_SCHED_SOURCE)
            snprintf(buf, sizeof buf, "%s [GPU only, ignored on the CPU: %s]", K->sched_text, K->sched_gpu);
        fprintf(f, "%-28s %-8s %s\n", p->kern[k].name, tl_sched_source_name(src ? src[k] : TL_SCHED_DEFAULT), buf);
    }
}

struct TlCpuProgram *tl_cpu_compile_cached(const TlGraph *g, const struct TlCpuOptions *o, int *ncached, char *err,
                                           int errn) {
    *ncached = 0;
    TlLProgram *lp = tl_loops_lower(g, err, errn);
    if (!lp) return NULL;
    char key[512];
    tl_schedule_target_key(o ? o->cpu : NULL, o ? o->threads : 0, key, sizeof key);
    *ncached = tl_schedule_cache_apply(lp, key, NULL, NULL, NULL, NULL);
    return tl_cpu_compile_loops(g, lp, o, err, errn); /* takes lp */
}

struct TlGpuProgram *tl_gpu_compile_cached(const TlGraph *g, int *ncached, char *err, int errn) {
    *ncached = 0;
    if (tl_cuda_open(err, errn)) return NULL; /* fail fast: no driver or no GPU */
    TlLProgram *lp = tl_loops_lower(g, err, errn);
    if (!lp) return NULL;
    char key[512];
    tl_schedule_gpu_target_key(key, sizeof key);
    *ncached = tl_schedule_cache_apply(lp, key, NULL, NULL, NULL, NULL);
    return tl_gpu_compile_loops(g, lp, NULL, err, errn); /* takes lp */
}
