/* metrics.c — JSONL writer (one write per line) and reader. */
#include "metrics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A bounded appender: counts what it would write so the caller can grow and retry. */
typedef struct Out {
    char *buf;
    size_t cap, len;
} Out;

static void put(Out *o, const char *s, size_t n) {
    if (o->len < o->cap) memcpy(o->buf + o->len, s, o->len + n <= o->cap ? n : o->cap - o->len);
    o->len += n;
}

static void put_str(Out *o, const char *s) {
    put(o, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': put(o, "\\\"", 2); break;
        case '\\': put(o, "\\\\", 2); break;
        case '\n': put(o, "\\n", 2); break;
        case '\r': put(o, "\\r", 2); break;
        case '\t': put(o, "\\t", 2); break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                put(o, esc, 6);
            } else {
                put(o, (const char *)p, 1);
            }
        }
    }
    put(o, "\"", 1);
}

static void put_num(Out *o, double v) {
    char b[40];
    int n;
    if (!isfinite(v))
        n = snprintf(b, sizeof b, "null");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        n = snprintf(b, sizeof b, "%.0f", v);
    else
        n = snprintf(b, sizeof b, "%.9g", v);
    put(o, b, (size_t)n);
}

size_t tl_metrics_format(char *buf, size_t cap, const TlMetric *fields, int n) {
    Out o = {buf, cap, 0};
    put(&o, "{", 1);
    for (int i = 0; i < n; i++) {
        if (i) put(&o, ",", 1);
        put_str(&o, fields[i].key ? fields[i].key : "");
        put(&o, ":", 1);
        if (fields[i].str)
            put_str(&o, fields[i].str);
        else
            put_num(&o, fields[i].num);
    }
    put(&o, "}\n", 2);
    if (cap) buf[o.len < cap ? o.len : cap - 1] = 0;
    return o.len;
}

int tl_metrics_open(TlMetrics *m, const char *path, int append, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    m->fd = -1;
    const char *slash = strrchr(path, '/');
    if (slash && slash != path) {
        char *dir = strndup(path, (size_t)(slash - path));
        if (dir) {
            (void)mkdir(dir, 0755); /* an error shows up in open below */
            free(dir);
        }
    }
    int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (append ? 0 : O_TRUNC);
    m->fd = open(path, flags, 0644);
    if (m->fd < 0) {
        set_err(err, errlen, "%s: error: cannot open the metrics file: %s", path,
                strerror(errno));
        return -1;
    }
    m->path = strdup(path);
    m->cap = 512;
    m->buf = malloc(m->cap);
    if (!m->path || !m->buf) {
        set_err(err, errlen, "%s: error: out of memory", path);
        tl_metrics_close(m);
        return -1;
    }
    return 0;
}

int tl_metrics_write(TlMetrics *m, const TlMetric *fields, int n, char *err, size_t errlen) {
    size_t len = tl_metrics_format(m->buf, m->cap, fields, n);
    if (len >= m->cap) {
        char *nb = realloc(m->buf, len + 1);
        if (!nb) {
            set_err(err, errlen, "%s: error: out of memory", m->path);
            return -1;
        }
        m->buf = nb;
        m->cap = len + 1;
        tl_metrics_format(m->buf, m->cap, fields, n);
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(m->fd, m->buf + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            set_err(err, errlen, "%s: error: write failed: %s", m->path, strerror(errno));
            return -1;
        }
        done += (size_t)w;
    }
    return 0;
}

void tl_metrics_close(TlMetrics *m) {
    if (m->fd >= 0) close(m->fd);
    free(m->path);
    free(m->buf);
    memset(m, 0, sizeof *m);
    m->fd = -1;
}

cJSON *tl_metrics_read(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "%s: error: cannot open the metrics file: %s", path,
                strerror(errno));
        return NULL;
    }
    cJSON *arr = cJSON_CreateArray();
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    while (arr && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len == 0 || line[len - 1] != '\n') break; /* cut off by a kill */
        line[len - 1] = 0;
        if (!line[0]) continue;
        cJSON *obj = cJSON_Parse(line);
        if (!obj || !cJSON_IsObject(obj)) {
            set_err(err, errlen, "%s:%d: error: not a JSON object", path, lineno);
            cJSON_Delete(obj);
            cJSON_Delete(arr);
            arr = NULL;
            break;
        }
        cJSON_AddItemToArray(arr, obj);
    }
    free(line);
    fclose(f);
    return arr;
}

int tl_metrics_series(const char *path, const char *xkey, const char *ykey,
                      const char *split_key, const char *split_value, double **xs,
                      double **ys, int *n, char *err, size_t errlen) {
    *xs = *ys = NULL;
    *n = 0;
    cJSON *arr = tl_metrics_read(path, err, errlen);
    if (!arr) return -1;
    int total = cJSON_GetArraySize(arr);
    *xs = malloc((size_t)(total ? total : 1) * sizeof **xs);
    *ys = malloc((size_t)(total ? total : 1) * sizeof **ys);
    if (!*xs || !*ys) {
        free(*xs);
        free(*ys);
        *xs = *ys = NULL;
        cJSON_Delete(arr);
        set_err(err, errlen, "%s: error: out of memory", path);
        return -1;
    }
    const cJSON *row;
    cJSON_ArrayForEach(row, arr) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(row, xkey);
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(row, ykey);
        if (!cJSON_IsNumber(x) || !cJSON_IsNumber(y)) continue;
        if (split_key) {
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(row, split_key);
            if (!cJSON_IsString(s) || strcmp(s->valuestring, split_value) != 0) continue;
        }
        (*xs)[*n] = x->valuedouble;
        (*ys)[*n] = y->valuedouble;
        (*n)++;
    }
    cJSON_Delete(arr);
    return 0;
}
