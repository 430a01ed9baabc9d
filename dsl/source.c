#include "source.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static TlSource *sources; /* index 0 unused */
static int nsources, capsources;

static int add_source(char *path, char *text, size_t len) {
    if (nsources + 1 >= capsources) {
        capsources = capsources ? capsources * 2 : 16;
        sources = realloc(sources, sizeof *sources * capsources);
        if (!sources) abort();
        if (nsources == 0) memset(&sources[0], 0, sizeof sources[0]);
    }
    if (nsources == 0) nsources = 1;
    TlSource *s = &sources[nsources];
    s->path = path;
    s->text = text;
    s->len = len;
    int cap = 64, n = 0;
    s->line_start = malloc(sizeof(int) * cap);
    s->line_start[n++] = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            if (n == cap) s->line_start = realloc(s->line_start, sizeof(int) * (cap *= 2));
            s->line_start[n++] = (int)(i + 1);
        }
    }
    s->nlines = n;
    return nsources++;
}

int tl_source_add(const char *path, const char *text, size_t len) {
    char *copy = malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = 0;
    return add_source(strdup(path), copy, len);
}

/* Paths under the working directory are kept relative, so messages stay short and the
 * same on every machine. */
static char *display_path(const char *path) {
    char cwd[4096];
    if (path[0] == '/' && getcwd(cwd, sizeof cwd)) {
        size_t n = strlen(cwd);
        if (n > 1 && strncmp(path, cwd, n) == 0 && path[n] == '/') return strdup(path + n + 1);
    }
    return strdup(path);
}

int tl_source_load(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return 0;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        fclose(f);
        free(buf);
        return 0;
    }
    fclose(f);
    buf[len] = 0;
    return add_source(display_path(path), buf, len);
}

const TlSource *tl_source_get(int file) {
    return file > 0 && file < nsources ? &sources[file] : NULL;
}

const char *tl_source_path(int file) {
    const TlSource *s = tl_source_get(file);
    return s ? s->path : "";
}

const char *tl_source_line(int file, int line, int *len) {
    const TlSource *s = tl_source_get(file);
    *len = 0;
    if (!s || line < 1 || line > s->nlines) return "";
    int start = s->line_start[line - 1];
    int end = line < s->nlines ? s->line_start[line] - 1 : (int)s->len;
    if (end > start && s->text[end - 1] == '\r') end--;
    *len = end - start;
    return s->text + start;
}

void tl_source_linecol(int file, size_t offset, int *line, int *col) {
    const TlSource *s = tl_source_get(file);
    *line = 1;
    *col = 1;
    if (!s) return;
    int lo = 0, hi = s->nlines - 1; /* last line_start <= offset */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if ((size_t)s->line_start[mid] <= offset) lo = mid; else hi = mid - 1;
    }
    *line = lo + 1;
    *col = (int)(offset - (size_t)s->line_start[lo]) + 1;
}

void tl_source_reset(void) {
    for (int i = 1; i < nsources; i++) {
        free(sources[i].path);
        free(sources[i].text);
        free(sources[i].line_start);
    }
    free(sources);
    sources = NULL;
    nsources = capsources = 0;
}
