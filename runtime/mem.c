/* mem.c — aligned allocation and the bump-pointer workspace. */
#include "mem.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *tl_mem_alloc(size_t n) {
    /* aligned_alloc wants a size that is a multiple of the alignment. */
    if (n > SIZE_MAX - TL_MEM_ALIGN) return NULL;
    size_t rounded = (n + TL_MEM_ALIGN - 1) / TL_MEM_ALIGN * TL_MEM_ALIGN;
    if (rounded == 0) rounded = TL_MEM_ALIGN;
    return aligned_alloc(TL_MEM_ALIGN, rounded);
}

void *tl_mem_calloc(size_t n) {
    void *p = tl_mem_alloc(n);
    if (p) memset(p, 0, n);
    return p;
}

void tl_mem_free(void *p) { free(p); }

int tl_mem_ws_init(TlWorkspace *ws, size_t cap, char *err, size_t errlen) {
    memset(ws, 0, sizeof *ws);
    ws->base = tl_mem_alloc(cap);
    if (!ws->base) {
        if (err && errlen)
            snprintf(err, errlen, "error: cannot reserve a workspace of %zu bytes: %s", cap,
                     strerror(ENOMEM));
        return -1;
    }
    ws->cap = cap;
    return 0;
}

void *tl_mem_ws_alloc(TlWorkspace *ws, size_t n) {
    size_t start = ws->used; /* always a multiple of TL_MEM_ALIGN */
    if (n > ws->cap - start) return NULL;
    size_t rounded = (n + TL_MEM_ALIGN - 1) / TL_MEM_ALIGN * TL_MEM_ALIGN;
    if (rounded < n || rounded > ws->cap - start) rounded = ws->cap - start;
    ws->used = start + rounded;
    if (ws->used > ws->high) ws->high = ws->used;
    return ws->base + start;
}

void tl_mem_ws_reset(TlWorkspace *ws) { ws->used = 0; }

size_t tl_mem_ws_mark(const TlWorkspace *ws) { return ws->used; }

void tl_mem_ws_rewind(TlWorkspace *ws, size_t mark) {
    if (mark <= ws->used) ws->used = mark;
}

void tl_mem_ws_release(TlWorkspace *ws) {
    tl_mem_free(ws->base);
    memset(ws, 0, sizeof *ws);
}
