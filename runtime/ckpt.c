/* ckpt.c — checkpoints as validated safetensors files in a directory. */
#include "ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct TlCkpt {
    TlSafetensors *st;
    TlCkptInfo info;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- names and the checksum ---------------------------------------------------------- */

/* The step in a basename "ckpt-<digits>.safetensors", or -1. */
static int64_t step_of_name(const char *base) {
    if (strncmp(base, "ckpt-", 5) != 0) return -1;
    const char *p = base + 5, *q = p;
    int64_t v = 0;
    while (*q >= '0' && *q <= '9') {
        if (v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*q - '0');
        q++;
    }
    if (q == p || strcmp(q, ".safetensors") != 0) return -1;
    return v;
}

static const char *base_of(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* FNV-1a, 64-bit, over the name bytes and a 0, then over the data in 8-byte little-endian
 * words (the tail byte by byte): fast enough to run over a whole checkpoint on load. */
static const uint64_t FNV_OFFSET = 0xcbf29ce484222325ull, FNV_PRIME = 0x100000001b3ull;

static uint64_t hash_tensor(uint64_t h, const char *name, const void *data, size_t n) {
    for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * FNV_PRIME;
    h = (h ^ 0) * FNV_PRIME;
    const unsigned char *d = data;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        h = (h ^ w) * FNV_PRIME;
    }
    for (; i < n; i++) h = (h ^ d[i]) * FNV_PRIME;
    return h;
}

static void format_checksum(uint64_t h, char *buf, size_t n) {
    snprintf(buf, n, "fnv1a64w:%016" PRIx64, h);
}

/* ---- directories --------------------------------------------------------------------- */

static int mkdir_p(const char *dir, char *err, size_t errlen) {
    char *p = strdup(dir);
    if (!p) {
        set_err(err, errlen, "%s: error: out of memory", dir);
        return -1;
    }
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                set_err(err, errlen, "%s: error: cannot create the directory: %s", p,
                        strerror(errno));
                free(p);
                return -1;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "%s: error: not a directory", dir);
        return -1;
    }
    return 0;
}

static int by_step_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int tl_ckpt_list(const char *dir, int64_t **steps, int *n, char *err, size_t errlen) {
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        set_err(err, errlen, "%s: error: cannot list the checkpoint directory: %s", dir,
                strerror(errno));
        return -1;
    }
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t s = step_of_name(de->d_name);
        if (s < 0) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *ns = realloc(*steps, (size_t)cap * sizeof *ns);
            if (!ns) {
                closedir(d);
                free(*steps);
                *steps = NULL;
                *n = 0;
                set_err(err, errlen, "%s: error: out of memory", dir);
                return -1;
            }
            *steps = ns;
        }
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    if (*n) qsort(*steps, (size_t)*n, sizeof **steps, by_step_desc);
    return 0;
}

static char *ckpt_path(const char *dir, int64_t step) {
    size_t n = strlen(dir) + 48;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/ckpt-%" PRId64 ".safetensors", dir, step);
    return p;
}

/* Remove ".ckpt-<step>.safetensors.tmp.XXXXXX" left behind by a killed writer. */
static void remove_stray_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (strncmp(nm, ".ckpt-", 6) != 0 || !strstr(nm, ".safetensors.tmp.")) continue;
        size_t n = strlen(dir) + strlen(nm) + 2;
        char *p = malloc(n);
        if (!p) break;
        snprintf(p, n, "%s/%s", dir, nm);
        unlink(p);
        free(p);
    }
    closedir(d);
}

/* Keep `keep` checkpoints: the one just written plus the newest older ones. */
static void prune(const char *dir, int64_t step, int keep) {
    if (keep <= 0) return;
    int64_t *steps;
    int n;
    if (tl_ckpt_list(dir, &steps, &n, NULL, 0) != 0) return;
    int kept = 1; /* this step */
    for (int i = 0; i < n; i++) {
        if (steps[i] >= step) continue;
        if (kept < keep) {
            kept++;
            continue;
        }
        char *p = ckpt_path(dir, steps[i]);
        if (p) unlink(p);
        free(p);
    }
    free(steps);
}

/* ---- saving -------------------------------------------------------------------------- */

static int by_name_idx(const void *a, const void *b) {
    const TlCkptTensor *x = *(const TlCkptTensor *const *)a, *y = *(const TlCkptTensor *const *)b;
    return strcmp(x->name, y->name);
}

static size_t numel_of(const TlCkptTensor *t) {
    size_t n = 1;
    for (int k = 0; k < t->rank; k++) n *= (size_t)t->shape[k];
    return n;
}

int tl_ckpt_save(const char *dir, const TlCkptInfo *info, const TlCkptTensor *tensors, int n,
                 const TlStMeta *user, int nuser, int keep, char *err, size_t errlen) {
    if (info->step < 0) {
        set_err(err, errlen, "%s: error: checkpoint step %" PRId64 " is negative", dir,
                info->step);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const TlCkptTensor *t = &tensors[i];
        if (!t->name || !*t->name || t->rank < 0 || t->rank > TL_CKPT_MAX_RANK ||
            (!t->data && numel_of(t) > 0)) {
            set_err(err, errlen, "%s: error: tensor %d ('%s') is malformed (name, rank %d, "
                    "data)", dir, i, t->name ? t->name : "", t->rank);
            return -1;
        }
        for (int k = 0; k < t->rank; k++)
            if (t->shape[k] < 0) {
                set_err(err, errlen, "%s: error: tensor '%s' has a negative dimension", dir,
                        t->name);
                return -1;
            }
    }
    for (int i = 0; i < nuser; i++)
        if (!user[i].key || strncmp(user[i].key, "tl.", 3) == 0 || !user[i].value) {
            set_err(err, errlen, "%s: error: metadata key '%s' is reserved or malformed", dir,
                    user[i].key ? user[i].key : "");
            return -1;
        }
    if (mkdir_p(dir, err, errlen)) return -1;
    remove_stray_temps(dir);

    int rc = -1;
    const TlCkptTensor **order = malloc((size_t)(n ? n : 1) * sizeof *order);
    TlStTensor *st = calloc((size_t)(n ? n : 1), sizeof *st);
    TlStMeta *meta = malloc((size_t)(nuser + 6) * sizeof *meta);
    char *path = ckpt_path(dir, info->step);
    if (!order || !st || !meta || !path) {
        set_err(err, errlen, "%s: error: out of memory", dir);
        goto done;
    }
    for (int i = 0; i < n; i++) order[i] = &tensors[i];
    qsort(order, (size_t)n, sizeof *order, by_name_idx);
    uint64_t h = FNV_OFFSET;
    for (int i = 0; i < n; i++) {
        const TlCkptTensor *t = order[i];
        if (i > 0 && strcmp(t->name, order[i - 1]->name) == 0) {
            set_err(err, errlen, "%s: error: tensor '%s' is given twice", dir, t->name);
            goto done;
        }
        st[i].name = t->name;
        st[i].dtype = TL_ST_F32;
        st[i].rank = t->rank;
        for (int k = 0; k < t->rank; k++) st[i].shape[k] = t->shape[k];
        st[i].data = t->data;
        h = hash_tensor(h, t->name, t->data, numel_of(t) * sizeof(float));
    }
    char fmt[8], step[24], seed[24], pos[24], rng[24], sum[40];
    snprintf(fmt, sizeof fmt, "%d", TL_CKPT_FORMAT);
    snprintf(step, sizeof step, "%" PRId64, info->step);
    snprintf(seed, sizeof seed, "%" PRIu64, info->seed);
    snprintf(pos, sizeof pos, "%" PRIu64, info->data_pos);
    snprintf(rng, sizeof rng, "%" PRIu64, info->rng_counter);
    format_checksum(h, sum, sizeof sum);
    meta[0] = (TlStMeta){"tl.format", fmt};
    meta[1] = (TlStMeta){"tl.step", step};
    meta[2] = (TlStMeta){"tl.seed", seed};
    meta[3] = (TlStMeta){"tl.data_pos", pos};
    meta[4] = (TlStMeta){"tl.rng_counter", rng};
    meta[5] = (TlStMeta){"tl.checksum", sum};
    for (int i = 0; i < nuser; i++) meta[6 + i] = user[i];
    if (tl_st_write(path, st, n, meta, nuser + 6, err, errlen)) goto done;
    /* Only now, with the new file durable under its name, may older ones go. */
    prune(dir, info->step, keep);
    rc = 0;
done:
    free(order);
    free(st);
    free(meta);
    free(path);
    return rc;
}

/* ---- loading ------------------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s) return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10) return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return 0;
}

int tl_ckpt_open(const char *path, TlCkpt **out, char *err, size_t errlen) {
    *out = NULL;
    TlSafetensors *st;
    if (tl_st_open(path, &st, err, errlen)) return -1;
    const char *fmt = tl_st_meta(st, "tl.format");
    uint64_t step, seed, pos, rng;
    const char *what = NULL;
    if (!fmt)
        what = "no tl.format metadata (not a tl checkpoint)";
    else if (strcmp(fmt, "1") != 0)
        what = "unsupported checkpoint format version";
    else if (parse_u64(tl_st_meta(st, "tl.step"), &step) || step > (uint64_t)INT64_MAX)
        what = "missing or malformed tl.step";
    else if (parse_u64(tl_st_meta(st, "tl.seed"), &seed))
        what = "missing or malformed tl.seed";
    else if (parse_u64(tl_st_meta(st, "tl.data_pos"), &pos))
        what = "missing or malformed tl.data_pos";
    else if (parse_u64(tl_st_meta(st, "tl.rng_counter"), &rng))
        what = "missing or malformed tl.rng_counter";
    else if (step_of_name(base_of(path)) >= 0 && (uint64_t)step_of_name(base_of(path)) != step)
        what = "tl.step differs from the step in the file name";
    if (what) {
        set_err(err, errlen, "%s: error: %s", path, what);
        tl_st_close(st);
        return -1;
    }
    uint64_t h = FNV_OFFSET;
    for (int i = 0; i < st->ntensors; i++) /* tensors are sorted by name */
        h = hash_tensor(h, st->tensors[i].name, st->tensors[i].data, st->tensors[i].nbytes);
    char sum[40];
    format_checksum(h, sum, sizeof sum);
    const char *want = tl_st_meta(st, "tl.checksum");
    if (!want || strcmp(want, sum) != 0) {
        set_err(err, errlen, "%s: error: checksum mismatch (file says %s, data gives %s)", path,
                want ? want : "nothing", sum);
        tl_st_close(st);
        return -1;
    }
    TlCkpt *c = malloc(sizeof *c);
    if (!c) {
        set_err(err, errlen, "%s: error: out of memory", path);
        tl_st_close(st);
        return -1;
    }
    c->st = st;
    c->info = (TlCkptInfo){(int64_t)step, seed, pos, rng};
    *out = c;
    return 0;
}

int tl_ckpt_open_latest(const char *dir, TlCkpt **out, FILE *warn, char *err, size_t errlen) {
    *out = NULL;
    int64_t *steps;
    int n;
    if (tl_ckpt_list(dir, &steps, &n, err, errlen)) return -1;
    int rc = 1;
    for (int i = 0; i < n && rc == 1; i++) {
        char *p = ckpt_path(dir, steps[i]);
        if (!p) {
            set_err(err, errlen, "%s: error: out of memory", dir);
            rc = -1;
            break;
        }
        char why[512];
        if (tl_ckpt_open(p, out, why, sizeof why) == 0)
            rc = 0;
        else if (warn)
            fprintf(warn, "warning: skipping checkpoint %s: %s\n", p, why);
        free(p);
    }
    free(steps);
    if (rc == 1) set_err(err, errlen, "%s: no valid checkpoint", dir);
    return rc;
}

void tl_ckpt_close(TlCkpt *c) {
    if (!c) return;
    tl_st_close(c->st);
    free(c);
}

const char *tl_ckpt_path(const TlCkpt *c) { return c->st->path; }
TlCkptInfo tl_ckpt_info(const TlCkpt *c) { return c->info; }
const char *tl_ckpt_meta(const TlCkpt *c, const char *key) { return tl_st_meta(c->st, key); }
int tl_ckpt_count(const TlCkpt *c) { return c->st->ntensors; }

const TlStTensor *tl_ckpt_tensor(const TlCkpt *c, int i) {
    return i >= 0 && i < c->st->ntensors ? &c->st->tensors[i] : NULL;
}

static void shape_str(char *buf, size_t n, int rank, const int64_t *shape) {
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int k = 0; k < rank && at < n; k++)
        at += (size_t)snprintf(buf + at, n - at, "%s%" PRId64, k ? ", " : "", shape[k]);
    if (at < n) snprintf(buf + at, n - at, "]");
}

int tl_ckpt_read(const TlCkpt *c, const char *name, int rank, const int64_t *shape,
                 float *dst, char *err, size_t errlen) {
    if (rank < 0 || rank > TL_CKPT_MAX_RANK) {
        set_err(err, errlen, "%s: error: tensor '%s': expected rank %d is not in 0..%d",
                c->st->path, name, rank, TL_CKPT_MAX_RANK);
        return -1;
    }
    const TlStTensor *t = tl_st_find(c->st, name);
    if (!t) {
        set_err(err, errlen, "%s: error: tensor '%s' is missing from the checkpoint",
                c->st->path, name);
        return -1;
    }
    if (t->dtype != TL_ST_F32) {
        set_err(err, errlen, "%s: error: tensor '%s' is %s, expected F32", c->st->path, name,
                tl_st_dtype_name(t->dtype));
        return -1;
    }
    int same = t->rank == rank;
    for (int k = 0; same && k < rank; k++) same = t->shape[k] == shape[k];
    if (!same) {
        char have[160], want[160];
        shape_str(have, sizeof have, t->rank, t->shape);
        shape_str(want, sizeof want, rank, shape);
        set_err(err, errlen, "%s: error: tensor '%s' has shape %s in the checkpoint, the "
                "program expects %s", c->st->path, name, have, want);
        return -1;
    }
    if (t->nbytes) memcpy(dst, t->data, t->nbytes);
    return 0;
}

int tl_ckpt_load(const TlCkpt *c, const TlCkptTensor *tensors, int n, char *err,
                 size_t errlen) {
    for (int i = 0; i < n; i++) {
        const TlCkptTensor *t = &tensors[i];
        if (tl_ckpt_read(c, t->name, t->rank, t->shape, t->data, err, errlen)) return -1;
    }
    return 0;
}
