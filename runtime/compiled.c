/* compiled.c — running ahead-of-time compiled programs (see compiled.h). */
#include "compiled.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

typedef struct ParCtx {
    TlRtKernelFn k;
    void **bufs;
    const int64_t *syms;
} ParCtx;

static void par_body(void *ctx, int64_t begin, int64_t end, int tid) {
    (void)tid;
    ParCtx *c = ctx;
    c->k(c->bufs, c->syms, begin, end);
}

void tl_rt_parfor(void *pool, TlRtKernelFn k, void **bufs, const int64_t *syms, int64_t n) {
    if (n <= 0) return;
    ParCtx c = {k, bufs, syms};
    tl_pool_for(pool, n, par_body, &c);
}

int tl_rt_program_init(TlRtProgram *p, const TlRtProgramDesc *d, TlPool *pool, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    if (d->nsyms > 16) {
        snprintf(err, errlen, "program %s: %d dim symbols, at most 16", d->name, d->nsyms);
        return -1;
    }
    p->d = d;
    p->pool = pool;
    p->slots = calloc((size_t)d->nbuf + 1, sizeof(void *));
    p->own = calloc((size_t)d->nbuf + 1, sizeof(void *));
    p->numel = calloc((size_t)d->nbuf + 1, sizeof(int64_t));
    if (!p->slots || !p->own || !p->numel) {
        snprintf(err, errlen, "program %s: out of memory", d->name);
        return -1;
    }
    return 0;
}

void tl_rt_program_free(TlRtProgram *p) {
    if (!p->d) return;
    for (int i = 0; i < p->d->nbuf; i++) tl_mem_free(p->own[i]);
    tl_mem_free(p->arena);
    free(p->own);
    free(p->slots);
    free(p->numel);
    memset(p, 0, sizeof *p);
}

void tl_rt_set(TlRtProgram *p, int buf, void *data) {
    if (buf >= 0 && buf < p->d->nbuf) p->slots[buf] = data;
}

int tl_rt_run(TlRtProgram *p, char *err, size_t errlen) {
    const TlRtProgramDesc *d = p->d;
    if (!p->ready) {
        d->sizes(p->syms, p->numel);
        if (d->offset) {
            p->arena = tl_mem_calloc((size_t)(d->arena > 0 ? d->arena : 1));
            if (!p->arena) {
                snprintf(err, errlen, "program %s: out of memory (%lld bytes)", d->name, (long long)d->arena);
                return -1;
            }
        }
        for (int i = 0; i < d->nbuf; i++) {
            if (d->kind[i] != TL_RT_TEMP && d->kind[i] != TL_RT_STATE) continue;
            if (d->offset) {
                p->slots[i] = (unsigned char *)p->arena + d->offset[i];
                continue;
            }
            size_t bytes = (size_t)(p->numel[i] > 0 ? p->numel[i] : 1) * d->elem[i];
            p->own[i] = tl_mem_calloc(bytes);
            if (!p->own[i]) {
                snprintf(err, errlen, "program %s: out of memory (%zu bytes)", d->name, bytes);
                return -1;
            }
            p->slots[i] = p->own[i];
        }
        p->ready = 1;
    }
    for (int i = 0; i < d->nbuf; i++) {
        if ((d->kind[i] == TL_RT_INPUT || d->kind[i] == TL_RT_PARAM) && !p->slots[i]) {
            snprintf(err, errlen, "program %s: input buffer b%d was not set", d->name, i);
            return -1;
        }
        if (d->kind[i] == TL_RT_STATE) memset(d->offset ? (unsigned char *)p->arena + d->offset[i] : p->own[i], 0, (size_t)(p->numel[i] > 0 ? p->numel[i] : 1) * d->elem[i]);
    }
    d->main(p->slots, p->syms, tl_rt_parfor, p->pool);
    return 0;
}

void *tl_rt_buf(const TlRtProgram *p, int buf) { return buf >= 0 && buf < p->d->nbuf ? p->slots[buf] : NULL; }
int64_t tl_rt_numel(const TlRtProgram *p, int buf) { return buf >= 0 && buf < p->d->nbuf ? p->numel[buf] : 0; }
