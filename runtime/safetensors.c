/* safetensors.c — validate-everything reader (mmap + cJSON) and deterministic atomic
 * writer of the safetensors format. The contract is in safetensors.h. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (the format is little-endian)"
#endif

/* The reference implementation refuses headers over 100 MB; so do we. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)
/* Integers in the header are read through doubles: keep them exact. */
#define ST_MAX_INT 9007199254740992.0 /* 2^53 */

/* ---- dtypes ---------------------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t size;
} dtype_info[TL_ST_DTYPE_COUNT] = {
    [TL_ST_INVALID] = {"?", 0}, [TL_ST_F64] = {"F64", 8},  [TL_ST_F32] = {"F32", 4},
    [TL_ST_BF16] = {"BF16", 2}, [TL_ST_F16] = {"F16", 2},  [TL_ST_I64] = {"I64", 8},
    [TL_ST_I32] = {"I32", 4},   [TL_ST_U8] = {"U8", 1},    [TL_ST_BOOL] = {"BOOL", 1},
};

const char *tl_st_dtype_name(TlStDType t) {
    return (t > TL_ST_INVALID && t < TL_ST_DTYPE_COUNT) ? dtype_info[t].name : "?";
}

size_t tl_st_dtype_size(TlStDType t) {
    return (t > TL_ST_INVALID && t < TL_ST_DTYPE_COUNT) ? dtype_info[t].size : 0;
}

TlStDType tl_st_dtype_from_name(const char *name) {
    for (int t = TL_ST_INVALID + 1; t < TL_ST_DTYPE_COUNT; t++)
        if (strcmp(name, dtype_info[t].name) == 0) return (TlStDType)t;
    return TL_ST_INVALID;
}

int64_t tl_st_numel(const TlStTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    return n;
}

/* numel * size in bytes, or -1 on overflow past 2^62 or a negative dimension. */
static int64_t checked_nbytes(const int64_t *shape, int rank, size_t size) {
    const int64_t lim = (int64_t)1 << 62;
    int64_t n = (int64_t)size;
    for (int i = 0; i < rank; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] != 0 && n > lim / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

/* ---- half precision -------------------------------------------------------------------- */

float tl_st_bf16_to_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t tl_st_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1); /* round to nearest, ties to even */
    return (uint16_t)(x >> 16);
}

float tl_st_f16_to_f32(uint16_t h) {
    unsigned e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 0x400), (int)e - 25);
    return (h & 0x8000) ? -v : v;
}

uint16_t tl_st_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00;  /* NaN */
    if (ax >= 0x477ff000u) return sign | 0x7c00; /* >= 65520 rounds to infinity */
    if (ax < 0x38800000u) {                      /* below 2^-14: a subnormal half */
        float v;
        memcpy(&v, &ax, 4);
        return sign | (uint16_t)lrintf(v * 16777216.0f); /* exact scaling, then RNE */
    }
    uint32_t h = ((((ax >> 23) - 127 + 15) << 10) | ((ax & 0x7fffff) >> 13));
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* a carry bumps the exponent */
    return sign | (uint16_t)h;
}

/* ---- element conversion ---------------------------------------------------------------- */

/* Element i of t as a double; memcpy because mapped data may be unaligned. */
static double elem_f64(const TlStTensor *t, int64_t i) {
    const unsigned char *p = (const unsigned char *)t->data + (size_t)i * tl_st_dtype_size(t->dtype);
    switch (t->dtype) {
    case TL_ST_F64: { double v; memcpy(&v, p, 8); return v; }
    case TL_ST_F32: { float v; memcpy(&v, p, 4); return v; }
    case TL_ST_BF16: { uint16_t v; memcpy(&v, p, 2); return tl_st_bf16_to_f32(v); }
    case TL_ST_F16: { uint16_t v; memcpy(&v, p, 2); return tl_st_f16_to_f32(v); }
    case TL_ST_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case TL_ST_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case TL_ST_U8: return *p;
    case TL_ST_BOOL: return *p != 0;
    default: return 0;
    }
}

void tl_st_to_f64(const TlStTensor *t, double *out) {
    int64_t n = tl_st_numel(t);
    for (int64_t i = 0; i < n; i++) out[i] = elem_f64(t, i);
}

void tl_st_to_f32(const TlStTensor *t, float *out) {
    int64_t n = tl_st_numel(t);
    for (int64_t i = 0; i < n; i++) out[i] = (float)elem_f64(t, i);
}

/* ---- errors ---------------------------------------------------------------------------- */

typedef struct Ctx {
    const char *path;
    char *err;
    size_t errlen;
} Ctx;

static int fail(Ctx *c, const char *fmt, ...) {
    if (!c->err || !c->errlen) return -1;
    int k = snprintf(c->err, c->errlen, "%s: error: ", c->path);
    if (k >= 0 && (size_t)k < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A name fit for a message: about 80 bytes at most, control characters escaped. */
static const char *shown(const char *s, char buf[128]) {
    size_t j = 0;
    for (size_t i = 0; s[i]; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (j >= 80) {
            memcpy(buf + j, "...", 3);
            j += 3;
            break;
        }
        if (ch < 0x20 || ch == 0x7f) j += (size_t)snprintf(buf + j, 128 - j, "\\x%02x", ch);
        else buf[j++] = (char)ch;
    }
    buf[j] = 0;
    return buf;
}

/* ---- reading --------------------------------------------------------------------------- */

/* A JSON number that is an exact integer in [0, 2^53]; -1 otherwise. */
static int64_t json_uint(const cJSON *j) {
    if (!cJSON_IsNumber(j)) return -1;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= ST_MAX_INT) || v != floor(v)) return -1;
    return (int64_t)v;
}

static int parse_tensor(Ctx *c, const cJSON *item, uint64_t bufsize, TlStTensor *t) {
    char nb[128];
    const char *nm = shown(item->string, nb);
    if (!cJSON_IsObject(item)) return fail(c, "tensor '%s': entry is not a JSON object", nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!dt) return fail(c, "tensor '%s': missing \"dtype\"", nm);
    if (!cJSON_IsString(dt)) return fail(c, "tensor '%s': \"dtype\" is not a string", nm);
    t->dtype = tl_st_dtype_from_name(dt->valuestring);
    if (t->dtype == TL_ST_INVALID) {
        char db[128];
        return fail(c, "tensor '%s': unsupported dtype \"%s\" (tl reads F64, F32, BF16, F16, "
                       "I64, I32, U8, BOOL)", nm, shown(dt->valuestring, db));
    }
    if (!sh) return fail(c, "tensor '%s': missing \"shape\"", nm);
    if (!cJSON_IsArray(sh)) return fail(c, "tensor '%s': \"shape\" is not an array", nm);
    int rank = cJSON_GetArraySize(sh);
    if (rank > TL_ST_MAX_RANK)
        return fail(c, "tensor '%s': rank %d exceeds the maximum of %d", nm, rank, TL_ST_MAX_RANK);
    t->rank = rank;
    int i = 0;
    for (const cJSON *d = sh->child; d; d = d->next, i++) {
        t->shape[i] = json_uint(d);
        if (t->shape[i] < 0)
            return fail(c, "tensor '%s': shape[%d] is not a non-negative integer", nm, i);
    }
    if (!off) return fail(c, "tensor '%s': missing \"data_offsets\"", nm);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return fail(c, "tensor '%s': \"data_offsets\" is not an array of two integers", nm);
    int64_t b = json_uint(off->child), e = json_uint(off->child->next);
    if (b < 0 || e < 0)
        return fail(c, "tensor '%s': \"data_offsets\" are not non-negative integers", nm);
    if (b > e)
        return fail(c, "tensor '%s': data_offsets [%lld, %lld] end before they begin", nm,
                    (long long)b, (long long)e);
    if ((uint64_t)e > bufsize)
        return fail(c, "tensor '%s': data_offsets [%lld, %lld] go past the end of the data "
                       "(%llu bytes)", nm, (long long)b, (long long)e,
                    (unsigned long long)bufsize);
    int64_t nbytes = checked_nbytes(t->shape, t->rank, tl_st_dtype_size(t->dtype));
    if (nbytes < 0) return fail(c, "tensor '%s': shape is too large", nm);
    if (nbytes != e - b)
        return fail(c, "tensor '%s': data_offsets [%lld, %lld] hold %lld bytes but shape x "
                       "%s needs %lld", nm, (long long)b, (long long)e, (long long)(e - b),
                    tl_st_dtype_name(t->dtype), (long long)nbytes);
    t->nbytes = (size_t)nbytes;
    t->data = (const void *)(uintptr_t)b; /* an offset for now; made a pointer later */
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const TlStTensor *)a)->name, ((const TlStTensor *)b)->name);
}

static int cmp_meta_key(const void *a, const void *b) {
    return strcmp(((const TlStMeta *)a)->key, ((const TlStMeta *)b)->key);
}

/* Orders tensors by where their data begins (then ends): for the coverage check. */
static int cmp_tensor_offset(const void *a, const void *b) {
    const TlStTensor *x = *(const TlStTensor *const *)a, *y = *(const TlStTensor *const *)b;
    uintptr_t xb = (uintptr_t)x->data, yb = (uintptr_t)y->data;
    if (xb != yb) return xb < yb ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* The tensors must tile [0, bufsize) exactly: no overlap, no hole, nothing trailing. */
static int check_coverage(Ctx *c, TlStTensor *ts, int n, uint64_t bufsize) {
    TlStTensor **by = malloc(sizeof *by * (size_t)(n ? n : 1));
    if (!by) return fail(c, "out of memory");
    for (int i = 0; i < n; i++) by[i] = &ts[i];
    qsort(by, (size_t)n, sizeof *by, cmp_tensor_offset);
    uint64_t at = 0;
    const TlStTensor *prev = NULL;
    int rc = 0;
    char nb1[128], nb2[128];
    for (int i = 0; i < n && rc == 0; i++) {
        uint64_t b = (uintptr_t)by[i]->data;
        if (b < at)
            rc = fail(c, "tensors '%s' and '%s' overlap in the data", shown(prev->name, nb1),
                      shown(by[i]->name, nb2));
        else if (b > at)
            rc = fail(c, "tensor '%s': %llu bytes before its data belong to no tensor",
                      shown(by[i]->name, nb1), (unsigned long long)(b - at));
        at = b + by[i]->nbytes;
        prev = by[i];
    }
    if (rc == 0 && at != bufsize)
        rc = fail(c, "the last %llu bytes of the data belong to no tensor",
                  (unsigned long long)(bufsize - at));
    free(by);
    return rc;
}

/* Copies every tensor name and metadata string into one block owned by f. */
static int copy_strings(Ctx *c, TlSafetensors *f, const cJSON *root, const cJSON *md) {
    size_t total = 1;
    for (const cJSON *it = root->child; it; it = it->next)
        if (it != md) total += strlen(it->string) + 1;
    if (md)
        for (const cJSON *it = md->child; it; it = it->next)
            total += strlen(it->string) + strlen(it->valuestring) + 2;
    char *s = malloc(total);
    if (!s) return fail(c, "out of memory");
    f->strings_ = s;
    int k = 0;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (it == md) continue;
        size_t n = strlen(it->string) + 1;
        memcpy(s, it->string, n);
        f->tensors[k++].name = s;
        s += n;
    }
    k = 0;
    if (md)
        for (const cJSON *it = md->child; it; it = it->next) {
            size_t n = strlen(it->string) + 1;
            memcpy(s, it->string, n);
            f->meta[k].key = s;
            s += n;
            n = strlen(it->valuestring) + 1;
            memcpy(s, it->valuestring, n);
            f->meta[k++].value = s;
            s += n;
        }
    return 0;
}

static int parse_header(Ctx *c, const cJSON *root, const unsigned char *data, uint64_t bufsize,
                        TlSafetensors *f) {
    if (!cJSON_IsObject(root)) return fail(c, "header is not a JSON object");
    const cJSON *md = NULL;
    int nt = 0;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (strcmp(it->string, "__metadata__") != 0) {
            nt++;
            continue;
        }
        if (md) return fail(c, "\"__metadata__\" appears twice");
        md = it;
    }
    if (md) {
        if (!cJSON_IsObject(md)) return fail(c, "\"__metadata__\" is not a JSON object");
        char nb[128];
        for (const cJSON *it = md->child; it; it = it->next, f->nmeta++)
            if (!cJSON_IsString(it))
                return fail(c, "\"__metadata__\" value of '%s' is not a string",
                            shown(it->string, nb));
    }
    f->tensors = calloc((size_t)(nt ? nt : 1), sizeof *f->tensors);
    f->meta = calloc((size_t)(f->nmeta ? f->nmeta : 1), sizeof *f->meta);
    if (!f->tensors || !f->meta) return fail(c, "out of memory");
    int k = 0;
    for (const cJSON *it = root->child; it; it = it->next)
        if (it != md && parse_tensor(c, it, bufsize, &f->tensors[k++])) return -1;
    f->ntensors = nt;
    if (copy_strings(c, f, root, md)) return -1;

    char nb[128];
    qsort(f->tensors, (size_t)nt, sizeof *f->tensors, cmp_tensor_name);
    for (int i = 1; i < nt; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return fail(c, "tensor '%s' appears twice", shown(f->tensors[i].name, nb));
    qsort(f->meta, (size_t)f->nmeta, sizeof *f->meta, cmp_meta_key);
    for (int i = 1; i < f->nmeta; i++)
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
            return fail(c, "metadata key '%s' appears twice", shown(f->meta[i].key, nb));
    if (check_coverage(c, f->tensors, nt, bufsize)) return -1;
    for (int i = 0; i < nt; i++) f->tensors[i].data = data + (uintptr_t)f->tensors[i].data;
    return 0;
}

int tl_st_parse(const void *buf, size_t len, const char *name, TlSafetensors **out, char *err,
                size_t errlen) {
    Ctx c = {name ? name : "(memory)", err, errlen};
    *out = NULL;
    const unsigned char *p = buf;
    if (len < 8)
        return fail(&c, "file is %zu bytes, too short for the 8-byte header length", len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | p[i];
    if (n > len - 8)
        return fail(&c, "header length %llu goes past the end of the file (%zu bytes)",
                    (unsigned long long)n, len);
    if (n > ST_MAX_HEADER)
        return fail(&c, "header length %llu is larger than the 100 MB limit",
                    (unsigned long long)n);
    if (n < 2 || p[8] != '{')
        return fail(&c, "header is not a JSON object (it must start with '{')");

    const char *hdr = (const char *)p + 8, *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        return fail(&c, "header is not valid JSON (near byte %zu of %llu)", at,
                    (unsigned long long)n);
    }
    /* The format allows trailing spaces as padding; anything else after the object is junk. */
    for (const char *q = end; q < hdr + n; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            cJSON_Delete(root);
            return fail(&c, "header has bytes after its JSON object (at byte %zu)",
                        (size_t)(q - hdr));
        }

    TlSafetensors *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(c.path))) {
        free(f);
        cJSON_Delete(root);
        return fail(&c, "out of memory");
    }
    int rc = parse_header(&c, root, p + 8 + n, (uint64_t)(len - 8 - n), f);
    cJSON_Delete(root);
    if (rc) {
        tl_st_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

int tl_st_open(const char *path, TlSafetensors **out, char *err, size_t errlen) {
    Ctx c = {path, err, errlen};
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us */
    if (fd < 0) return fail(&c, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fail(&c, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail(&c, "not a regular file");
    }
    size_t len = (size_t)st.st_size;
    if (len < 8) {
        close(fd);
        return fail(&c, "file is %zu bytes, too short for the 8-byte header length", len);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return fail(&c, "cannot map: %s", strerror(e));
    TlSafetensors *f;
    if (tl_st_parse(map, len, path, &f, err, errlen)) {
        munmap(map, len);
        return -1;
    }
    f->map_ = map;
    f->map_size_ = len;
    *out = f;
    return 0;
}

void tl_st_close(TlSafetensors *f) {
    if (!f) return;
    if (f->map_) munmap(f->map_, f->map_size_);
    free(f->tensors);
    free(f->meta);
    free(f->strings_);
    free(f->path);
    free(f);
}

const TlStTensor *tl_st_find(const TlSafetensors *f, const char *name) {
    TlStTensor key = {.name = name};
    return bsearch(&key, f->tensors, (size_t)f->ntensors, sizeof key, cmp_tensor_name);
}

const char *tl_st_meta(const TlSafetensors *f, const char *key) {
    TlStMeta k = {.key = key};
    const TlStMeta *m = bsearch(&k, f->meta, (size_t)f->nmeta, sizeof k, cmp_meta_key);
    return m ? m->value : NULL;
}

/* ---- writing --------------------------------------------------------------------------- */

typedef struct Buf {
    char *p;
    size_t n, cap;
    int oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void buf_puts(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_printf(Buf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0) buf_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* A JSON string literal; bytes >= 0x80 pass through (names are UTF-8). */
static void buf_json_str(Buf *b, const char *s) {
    buf_puts(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            buf_put(b, e, 2);
        } else if (ch < 0x20) {
            buf_printf(b, "\\u%04x", ch);
        } else {
            buf_put(b, (const char *)&ch, 1);
        }
    }
    buf_puts(b, "\"");
}

typedef struct WEnt {
    const TlStTensor *t;
    size_t nbytes;
    uint64_t begin;
} WEnt;

static int cmp_went_name(const void *a, const void *b) {
    return strcmp(((const WEnt *)a)->t->name, ((const WEnt *)b)->t->name);
}

/* Layout order: larger elements first (so each tensor is aligned), then by name. */
static int cmp_went_layout(const void *a, const void *b) {
    const WEnt *x = *(const WEnt *const *)a, *y = *(const WEnt *const *)b;
    size_t sx = tl_st_dtype_size(x->t->dtype), sy = tl_st_dtype_size(y->t->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->t->name, y->t->name);
}

static int cmp_meta_ptr(const void *a, const void *b) {
    return strcmp((*(const TlStMeta *const *)a)->key, (*(const TlStMeta *const *)b)->key);
}

static int check_write_args(Ctx *c, const TlStTensor *ts, int n, const TlStMeta *meta,
                            int nmeta, WEnt *ents) {
    char nb[128];
    for (int i = 0; i < n; i++) {
        const TlStTensor *t = &ts[i];
        if (!t->name || !*t->name) return fail(c, "tensor %d has no name", i);
        const char *nm = shown(t->name, nb);
        if (strcmp(t->name, "__metadata__") == 0)
            return fail(c, "\"__metadata__\" is reserved and cannot name a tensor");
        if (tl_st_dtype_size(t->dtype) == 0) return fail(c, "tensor '%s': invalid dtype", nm);
        if (t->rank < 0 || t->rank > TL_ST_MAX_RANK)
            return fail(c, "tensor '%s': rank %d out of range", nm, t->rank);
        int64_t nbytes = checked_nbytes(t->shape, t->rank, tl_st_dtype_size(t->dtype));
        if (nbytes < 0) return fail(c, "tensor '%s': invalid or too large shape", nm);
        if (nbytes > 0 && !t->data) return fail(c, "tensor '%s': no data", nm);
        ents[i] = (WEnt){t, (size_t)nbytes, 0};
    }
    for (int i = 0; i < nmeta; i++)
        if (!meta[i].key || !meta[i].value) return fail(c, "metadata entry %d is NULL", i);
    return 0;
}

int tl_st_write(const char *path, const TlStTensor *ts, int n, const TlStMeta *meta, int nmeta,
                char *err, size_t errlen) {
    Ctx c = {path, err, errlen};
    if (n < 0 || nmeta < 0 || (n && !ts) || (nmeta && !meta))
        return fail(&c, "invalid arguments to tl_st_write");
    WEnt *ents = calloc((size_t)n + 1, sizeof *ents);
    WEnt **lay = calloc((size_t)n + 1, sizeof *lay);
    const TlStMeta **ms = calloc((size_t)nmeta + 1, sizeof *ms);
    Buf h = {0};
    int rc = -1;
    char nb[128];
    if (!ents || !lay || !ms) {
        fail(&c, "out of memory");
        goto done;
    }
    if (check_write_args(&c, ts, n, meta, nmeta, ents)) goto done;
    qsort(ents, (size_t)n, sizeof *ents, cmp_went_name);
    for (int i = 1; i < n; i++)
        if (strcmp(ents[i - 1].t->name, ents[i].t->name) == 0) {
            fail(&c, "tensor '%s' is given twice", shown(ents[i].t->name, nb));
            goto done;
        }
    for (int i = 0; i < nmeta; i++) ms[i] = &meta[i];
    qsort(ms, (size_t)nmeta, sizeof *ms, cmp_meta_ptr);
    for (int i = 1; i < nmeta; i++)
        if (strcmp(ms[i - 1]->key, ms[i]->key) == 0) {
            fail(&c, "metadata key '%s' is given twice", shown(ms[i]->key, nb));
            goto done;
        }
    for (int i = 0; i < n; i++) lay[i] = &ents[i];
    qsort(lay, (size_t)n, sizeof *lay, cmp_went_layout);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        lay[i]->begin = at;
        at += lay[i]->nbytes;
    }

    /* The header: __metadata__ first, then tensors by name. */
    buf_puts(&h, "{");
    if (nmeta) {
        buf_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i) buf_puts(&h, ",");
            buf_json_str(&h, ms[i]->key);
            buf_puts(&h, ":");
            buf_json_str(&h, ms[i]->value);
        }
        buf_puts(&h, "}");
    }
    for (int i = 0; i < n; i++) {
        const TlStTensor *t = ents[i].t;
        if (i || nmeta) buf_puts(&h, ",");
        buf_json_str(&h, t->name);
        buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", tl_st_dtype_name(t->dtype));
        for (int d = 0; d < t->rank; d++) buf_printf(&h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        buf_printf(&h, "],\"data_offsets\":[%llu,", (unsigned long long)ents[i].begin);
        buf_printf(&h, "%llu]}", (unsigned long long)(ents[i].begin + ents[i].nbytes));
    }
    buf_puts(&h, "}");
    while (!h.oom && (8 + h.n) % 8 != 0) buf_puts(&h, " ");
    if (h.oom) {
        fail(&c, "out of memory");
        goto done;
    }

    TlAtomicFile af;
    if (tl_fs_atomic_begin(&af, path, err, errlen)) goto done;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    fwrite(len8, 1, 8, af.f);
    fwrite(h.p, 1, h.n, af.f);
    for (int i = 0; i < n; i++)
        if (lay[i]->nbytes) fwrite(lay[i]->t->data, 1, lay[i]->nbytes, af.f);
    rc = tl_fs_atomic_commit(&af, err, errlen);
done:
    free(h.p);
    free(ents);
    free(lay);
    free(ms);
    return rc;
}
