/* data.c — corpus loading (file or directory tree), byte tokens, split and samplers. */
#include "data.h"

#include "philox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { SNIFF = 4096 };

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void tl_data_free(TlCorpus *c) {
    if (!c) return;
    if (c->map_) munmap(c->map_, c->map_size_);
    free(c->buf_);
    for (int i = 0; i < c->nfiles; i++) free(c->files[i]);
    free(c->files);
    free(c->offsets);
    free(c);
}

/* ---- one file ------------------------------------------------------------------------ */

static int load_file(TlCorpus *c, const char *path, int fd, const struct stat *st, char *err,
                     size_t errlen) {
    if (st->st_size == 0) {
        set_err(err, errlen, "%s: error: empty corpus (the file is empty)", path);
        return -1;
    }
    size_t n = (size_t)st->st_size;
    void *m = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        set_err(err, errlen, "%s: error: cannot map the file: %s", path, strerror(errno));
        return -1;
    }
    const void *nul = memchr(m, 0, n < SNIFF ? n : SNIFF);
    if (nul) {
        set_err(err, errlen, "%s: error: a binary file (NUL byte at offset %zu), expected text",
                path, (size_t)((const char *)nul - (const char *)m));
        munmap(m, n);
        return -1;
    }
    c->map_ = m;
    c->map_size_ = n;
    c->bytes = m;
    c->n = n;
    c->files = malloc(sizeof *c->files);
    c->offsets = calloc(1, sizeof *c->offsets);
    if (!c->files || !c->offsets || !(c->files[0] = strdup(path))) {
        set_err(err, errlen, "%s: error: out of memory", path);
        return -1;
    }
    c->nfiles = 1;
    return 0;
}

/* ---- a directory tree ---------------------------------------------------------------- */

typedef struct Entry {
    char *path;
    int is_link;
    dev_t dev;
    ino_t ino;
    size_t size;
    int keep;
} Entry;

typedef struct Walk {
    Entry *e;
    int n, cap;
    char *err;
    size_t errlen;
} Walk;

static int walk(Walk *w, const char *dir, int depth) {
    if (depth > 64) {
        set_err(w->err, w->errlen, "%s: error: directories nested too deeply", dir);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        set_err(w->err, w->errlen, "%s: error: cannot open the directory: %s", dir,
                strerror(errno));
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue; /* ".", "..", hidden files and .git */
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        char *p = malloc(len);
        if (!p) {
            set_err(w->err, w->errlen, "%s: error: out of memory", dir);
            rc = -1;
            break;
        }
        snprintf(p, len, "%s/%s", dir, de->d_name);
        struct stat ls, st;
        if (lstat(p, &ls) != 0) {
            set_err(w->err, w->errlen, "%s: error: %s", p, strerror(errno));
            free(p);
            rc = -1;
            break;
        }
        int is_link = S_ISLNK(ls.st_mode);
        if (is_link && stat(p, &st) != 0) {
            free(p); /* a dangling link: nothing to read */
            continue;
        }
        if (!is_link) st = ls;
        if (S_ISDIR(st.st_mode)) {
            if (!is_link) rc = walk(w, p, depth + 1);
            free(p);
            continue;
        }
        if (!S_ISREG(st.st_mode) || st.st_size == 0) {
            free(p);
            continue;
        }
        if (w->n == w->cap) {
            int cap = w->cap ? 2 * w->cap : 64;
            Entry *ne = realloc(w->e, (size_t)cap * sizeof *ne);
            if (!ne) {
                set_err(w->err, w->errlen, "%s: error: out of memory", dir);
                free(p);
                rc = -1;
                break;
            }
            w->e = ne;
            w->cap = cap;
        }
        w->e[w->n++] = (Entry){p, is_link, st.st_dev, st.st_ino, (size_t)st.st_size, 0};
    }
    closedir(d);
    return rc;
}

static int by_path(const void *a, const void *b) {
    return strcmp(((const Entry *)a)->path, ((const Entry *)b)->path);
}

/* Whether an earlier kept entry has the same file (dev, ino). Quadratic in the number of
 * files, which is small for a text corpus; fine next to reading them. */
static int seen_file(const Entry *e, int n, const Entry *x) {
    for (int i = 0; i < n; i++)
        if (e[i].keep && e[i].dev == x->dev && e[i].ino == x->ino) return 1;
    return 0;
}

/* Read up to size bytes of path into dst; returns the count or -1. */
static long long read_file(const char *path, uint8_t *dst, size_t size, char *err,
                           size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "%s: error: cannot open: %s", path, strerror(errno));
        return -1;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, dst + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            set_err(err, errlen, "%s: error: read failed: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (r == 0) break; /* shrank since stat */
        got += (size_t)r;
    }
    close(fd);
    return (long long)got;
}

static int load_dir(TlCorpus *c, const char *root, char *err, size_t errlen) {
    Walk w = {0};
    w.err = err;
    w.errlen = errlen;
    int rc = walk(&w, root, 0);
    if (rc == 0) qsort(w.e, (size_t)w.n, sizeof *w.e, by_path);
    /* Real files first, then links whose target is not among them. */
    size_t total = 0;
    for (int pass = 0; rc == 0 && pass < 2; pass++)
        for (int i = 0; i < w.n; i++) {
            Entry *x = &w.e[i];
            if (x->is_link != pass || seen_file(w.e, w.n, x)) continue;
            x->keep = 1;
            total += x->size;
        }
    int nbinary = 0;
    if (rc == 0) {
        c->buf_ = malloc(total ? total : 1);
        c->files = calloc((size_t)w.n + 1, sizeof *c->files);
        c->offsets = calloc((size_t)w.n + 1, sizeof *c->offsets);
        if (!c->buf_ || !c->files || !c->offsets) {
            set_err(err, errlen, "%s: error: out of memory (%zu bytes of text)", root, total);
            rc = -1;
        }
    }
    size_t at = 0;
    for (int i = 0; rc == 0 && i < w.n; i++) {
        Entry *x = &w.e[i];
        if (!x->keep) continue;
        long long got = read_file(x->path, c->buf_ + at, x->size, err, errlen);
        if (got < 0) {
            rc = -1;
            break;
        }
        size_t g = (size_t)got;
        if (memchr(c->buf_ + at, 0, g < SNIFF ? g : SNIFF)) {
            nbinary++;
            continue;
        }
        if (g == 0) continue;
        c->offsets[c->nfiles] = at;
        c->files[c->nfiles++] = x->path;
        x->path = NULL; /* now owned by c */
        at += g;
    }
    if (rc == 0 && at == 0) {
        set_err(err, errlen, "%s: error: empty corpus: no text files in the directory%s", root,
                nbinary ? " (only binary files)" : "");
        rc = -1;
    }
    c->bytes = c->buf_;
    c->n = at;
    for (int i = 0; i < w.n; i++) free(w.e[i].path);
    free(w.e);
    return rc;
}

int tl_data_load(const char *path, TlCorpus **out, char *err, size_t errlen) {
    *out = NULL;
    if (!path || !*path) {
        set_err(err, errlen, "error: no corpus path given");
        return -1;
    }
    TlCorpus *c = calloc(1, sizeof *c);
    if (!c) {
        set_err(err, errlen, "%s: error: out of memory", path);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int rc;
    if (fd < 0) {
        set_err(err, errlen, "%s: error: cannot open the corpus: %s", path, strerror(errno));
        rc = -1;
    } else if (fstat(fd, &st) != 0) {
        set_err(err, errlen, "%s: error: %s", path, strerror(errno));
        rc = -1;
    } else if (S_ISDIR(st.st_mode)) {
        /* Strip trailing slashes so file names read "dir/file". */
        size_t len = strlen(path);
        while (len > 1 && path[len - 1] == '/') len--;
        char *root = strndup(path, len);
        rc = root ? load_dir(c, root, err, errlen) : -1;
        free(root);
    } else if (S_ISREG(st.st_mode)) {
        rc = load_file(c, path, fd, &st, err, errlen);
    } else {
        set_err(err, errlen, "%s: error: not a regular file or a directory", path);
        rc = -1;
    }
    if (fd >= 0) close(fd);
    if (rc) {
        tl_data_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

/* ---- tokens and split ---------------------------------------------------------------- */

int tl_data_tokens_bytes(const TlCorpus *c, TlTokens *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    int32_t *ids = malloc((c->n ? c->n : 1) * sizeof *ids);
    if (!ids) {
        set_err(err, errlen, "%s: error: out of memory for %zu tokens",
                c->nfiles ? c->files[0] : "corpus", c->n);
        return -1;
    }
    for (size_t i = 0; i < c->n; i++) ids[i] = c->bytes[i];
    out->ids = ids;
    out->own_ = ids;
    out->n = (int64_t)c->n;
    return 0;
}

void tl_data_tokens_free(TlTokens *t) {
    free(t->own_);
    memset(t, 0, sizeof *t);
}

int tl_data_split(const TlTokens *all, double val_frac, TlTokens *train, TlTokens *val,
                  char *err, size_t errlen) {
    if (!(val_frac >= 0.0 && val_frac < 1.0)) {
        set_err(err, errlen, "error: validation fraction %g is not in [0, 1)", val_frac);
        return -1;
    }
    int64_t nval = (int64_t)((double)all->n * val_frac);
    if (nval > all->n) nval = all->n;
    *train = (TlTokens){all->ids, all->n - nval, NULL};
    *val = (TlTokens){all->ids + (all->n - nval), nval, NULL};
    return 0;
}

/* ---- samplers ------------------------------------------------------------------------ */

int tl_data_batcher_init(TlBatcher *b, const TlTokens *t, int B, int T, uint64_t seed,
                         const char *name, char *err, size_t errlen) {
    memset(b, 0, sizeof *b);
    if (!name) name = "token stream";
    if (B < 1 || T < 1) {
        set_err(err, errlen, "%s: error: batch shape [%d, %d] must be positive", name, B, T);
        return -1;
    }
    if (t->n < (int64_t)T + 1) {
        set_err(err, errlen,
                "%s: error: %lld tokens, too short for one sequence of T+1 = %lld tokens",
                name, (long long)t->n, (long long)T + 1);
        return -1;
    }
    *b = (TlBatcher){t->ids, t->n, B, T, seed};
    return 0;
}

int64_t tl_data_batch_offset(const TlBatcher *b, uint64_t index, int row) {
    uint32_t ctr[4] = {(uint32_t)index, (uint32_t)(index >> 32), (uint32_t)row, 0x64617461u};
    uint32_t key[2] = {(uint32_t)b->seed, (uint32_t)(b->seed >> 32)};
    uint32_t r[4];
    tl_philox4x32_10(ctr, key, r);
    uint64_t u = (uint64_t)r[1] << 32 | r[0];
    return (int64_t)(u % (uint64_t)(b->n - b->T));
}

void tl_data_batch(const TlBatcher *b, uint64_t index, int32_t *x, int32_t *y) {
    size_t T = (size_t)b->T;
    for (int r = 0; r < b->B; r++) {
        int64_t o = tl_data_batch_offset(b, index, r);
        memcpy(x + (size_t)r * T, b->ids + o, T * sizeof *x);
        memcpy(y + (size_t)r * T, b->ids + o + 1, T * sizeof *y);
    }
}

int64_t tl_data_seq_batches(const TlBatcher *b) {
    int64_t windows = (b->n - 1) / b->T;
    return (windows + b->B - 1) / b->B;
}

int tl_data_seq_batch(const TlBatcher *b, int64_t j, int32_t *x, int32_t *y) {
    int64_t windows = (b->n - 1) / b->T;
    size_t T = (size_t)b->T;
    int valid = 0;
    for (int r = 0; r < b->B; r++) {
        int64_t w = j * b->B + r;
        if (j >= 0 && w < windows) {
            memcpy(x + (size_t)r * T, b->ids + w * b->T, T * sizeof *x);
            memcpy(y + (size_t)r * T, b->ids + w * b->T + 1, T * sizeof *y);
            valid++;
        } else {
            memset(x + (size_t)r * T, 0, T * sizeof *x);
            memset(y + (size_t)r * T, 0, T * sizeof *y);
        }
    }
    return valid;
}
