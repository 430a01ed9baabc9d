/* gpuprog.c — GPU program descriptions, their byte form, and the executor (gpuprog.h). */
#include "gpuprog.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) abort();
    return p;
}

/* ---- checking ---- */

static int bad(char *err, int errn, const char *fmt, ...) {
    if (err && errn > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, (size_t)errn, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int tl_gpudesc_check(const TlGpuDesc *d, char *err, int errn) {
    if (d->block <= 0 || d->gemm_bm <= 0 || d->gemm_bn <= 0 || !d->ptx) return bad(err, errn, "%s: no PTX or launch sizes", d->name);
    if (d->nsyms < 0 || d->nvars < 0 || d->nex < 0 || d->nbuf < 0 || d->nkern < 0 || d->nhost < 0)
        return bad(err, errn, "%s: negative counts", d->name);
#define EX_OK(e, opt) ((e) >= ((opt) ? -1 : 0) && (e) < d->nex)
    for (int i = 0; i < d->nex; i++) {
        const TlGpuExpr *e = &d->ex[i];
        /* operands come before their users: evaluation recursion always terminates */
        int ok = 1;
        switch (e->kind) {
        case TL_GPX_INT: break;
        case TL_GPX_SYM: ok = e->v >= 0 && e->v < d->nsyms; break;
        case TL_GPX_VAR: ok = e->v >= 0 && e->v < d->nvars; break;
        case TL_GPX_SELECT: ok = e->c >= 0 && e->c < i; /* fall through */
        case TL_GPX_BIN: ok = ok && e->b >= 0 && e->b < i && (e->kind != TL_GPX_BIN || (e->op >= TL_GPO_ADD && e->op <= TL_GPO_OR)); /* fall through */
        case TL_GPX_NEG: case TL_GPX_ABS: ok = ok && e->a >= 0 && e->a < i; break;
        default: ok = 0;
        }
        if (!ok) return bad(err, errn, "%s: malformed expression %d", d->name, i);
    }
    for (int i = 0; i < d->nbuf; i++) {
        const TlGpuBuf *b = &d->buf[i];
        if (b->kind < TL_GPB_TEMP || b->kind > TL_GPB_STATE || b->elem <= 0 || b->elem > 8 || !EX_OK(b->numel, 0) ||
            (b->kind == TL_GPB_CONST && (b->ninit < 0 || (b->ninit > 0 && !b->init))))
            return bad(err, errn, "%s: malformed buffer b%d", d->name, i);
    }
    for (int k = 0; k < d->nkern; k++) {
        const TlGpuKernel *g = &d->kern[k];
        int ok = g->name && g->launch >= TL_GPL_FLAT && g->launch <= TL_GPL_ATTN && EX_OK(g->par_extent, 1) && g->nused >= 0;
        if (ok) ok = g->block == 0 || (g->launch == TL_GPL_FLAT && g->block >= 1 && g->block <= 1024); /* CUDA's limit */
        if (ok && (g->launch == TL_GPL_GEMM || g->launch == TL_GPL_ATTN)) ok = EX_OK(g->gemm_m, 0) && EX_OK(g->gemm_n, 0) && EX_OK(g->gemm_batch, 0);
        if (ok) ok = g->mma_pack == 0 || (g->mma_pack == 1 && g->launch == TL_GPL_GEMM && EX_OK(g->gemm_k, 0));
        for (int u = 0; ok && u < g->nused; u++) ok = g->used[u] >= 0 && g->used[u] < d->nbuf;
        if (!ok) return bad(err, errn, "%s: malformed kernel %d", d->name, k);
    }
    for (int h = 0; h < d->nhost; h++) {
        const TlGpuHostOp *o = &d->host[h];
        int ok = o->next >= -1 && o->next < d->nhost && o->next != h;
        switch (o->kind) {
        case TL_GPH_KERNEL: ok = ok && o->kernel >= 0 && o->kernel < d->nkern; break;
        case TL_GPH_COPY:
            ok = ok && EX_OK(o->dst_off, 0) && EX_OK(o->nbytes, 0); /* fall through */
        case TL_GPH_ALIAS:
            ok = ok && o->dst >= 0 && o->dst < d->nbuf && o->src >= 0 && o->src < d->nbuf && EX_OK(o->src_off, 0);
            break;
        case TL_GPH_LOOP:
            ok = ok && o->var >= 0 && o->var < d->nvars && EX_OK(o->count, 0) && o->body >= -1 && o->body < d->nhost;
            break;
        default: ok = 0;
        }
        if (!ok) return bad(err, errn, "%s: malformed host op %d", d->name, h);
    }
    if (d->entry < -1 || d->entry >= d->nhost) return bad(err, errn, "%s: malformed entry", d->name);
#undef EX_OK
    return 0;
}

void tl_gpudesc_free(TlGpuDesc *d) {
    if (!d) return;
    for (int i = 0; i < d->nsyms; i++) free(d->syms[i]);
    for (int i = 0; i < d->nbuf; i++) free(d->buf[i].name), free(d->buf[i].init);
    for (int k = 0; k < d->nkern; k++) free(d->kern[k].name), free(d->kern[k].used);
    free(d->syms), free(d->ex), free(d->buf), free(d->kern), free(d->host);
    free(d->name), free(d->arch), free(d->ptx);
    free(d);
}

/* ---- byte form: "TLGPUD3\n", then fields in order; integers little-endian i64, strings
 * and byte arrays as a length and their bytes ---- */

static const char MAGIC[8] = "TLGPUD3\n";

typedef struct Out { unsigned char *p; size_t n, cap; } Out;

static void put(Out *o, const void *src, size_t n) {
    if (o->n + n > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->n + n) cap *= 2;
        o->p = realloc(o->p, cap);
        if (!o->p) abort();
        o->cap = cap;
    }
    memcpy(o->p + o->n, src, n);
    o->n += n;
}

static void put_i(Out *o, int64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)v >> (8 * i));
    put(o, b, 8);
}

static void put_bytes(Out *o, const void *s, int64_t n) {
    put_i(o, s ? n : -1);
    if (s && n > 0) put(o, s, (size_t)n);
}

static void put_s(Out *o, const char *s) { put_bytes(o, s, s ? (int64_t)strlen(s) : 0); }

int tl_gpudesc_write(const TlGpuDesc *d, unsigned char **out, size_t *n) {
    Out o = {0};
    put(&o, MAGIC, 8);
    put_s(&o, d->name), put_s(&o, d->arch), put_s(&o, d->ptx);
    put_i(&o, d->block), put_i(&o, d->gemm_bm), put_i(&o, d->gemm_bn);
    put_i(&o, d->nsyms);
    for (int i = 0; i < d->nsyms; i++) put_s(&o, d->syms[i]);
    put_i(&o, d->nvars);
    put_i(&o, d->nex);
    for (int i = 0; i < d->nex; i++) {
        const TlGpuExpr *e = &d->ex[i];
        put_i(&o, e->kind), put_i(&o, e->op), put_i(&o, e->a), put_i(&o, e->b), put_i(&o, e->c), put_i(&o, e->v);
    }
    put_i(&o, d->nbuf);
    for (int i = 0; i < d->nbuf; i++) {
        const TlGpuBuf *b = &d->buf[i];
        put_i(&o, b->kind), put_i(&o, b->elem), put_i(&o, b->numel), put_i(&o, b->node), put_s(&o, b->name);
        put_i(&o, b->ninit);
        put_bytes(&o, b->init, b->init ? b->ninit * b->elem : 0);
    }
    put_i(&o, d->nkern);
    for (int k = 0; k < d->nkern; k++) {
        const TlGpuKernel *g = &d->kern[k];
        put_s(&o, g->name);
        put_i(&o, g->launch), put_i(&o, g->par_extent), put_i(&o, g->gemm_m), put_i(&o, g->gemm_n), put_i(&o, g->gemm_batch);
        put_i(&o, g->block);
        put_i(&o, g->mma_pack), put_i(&o, g->gemm_k);
        put_i(&o, g->nused);
        for (int u = 0; u < g->nused; u++) put_i(&o, g->used[u]);
    }
    put_i(&o, d->nhost);
    for (int h = 0; h < d->nhost; h++) {
        const TlGpuHostOp *x = &d->host[h];
        int64_t f[] = {x->kind, x->kernel, x->dst, x->src, x->dst_off, x->src_off, x->nbytes, x->var, x->count, x->reverse, x->body, x->next};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) put_i(&o, f[i]);
    }
    put_i(&o, d->entry);
    put(&o, MAGIC, 8); /* the end: a truncated blob is caught */
    *out = o.p, *n = o.n;
    return 0;
}

typedef struct In { const unsigned char *p; size_t n, at; int bad; } In;

static int64_t get_i(In *in) {
    if (in->bad || in->n - in->at < 8) { in->bad = 1; return 0; }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)in->p[in->at + (size_t)i] << (8 * i);
    in->at += 8;
    return (int64_t)v;
}

/* A count that fits what is left of the blob (each item at least `min` bytes). */
static int32_t get_count(In *in, size_t min) {
    int64_t v = get_i(in);
    if (v < 0 || v > INT32_MAX || (size_t)v > (in->n - in->at) / (min ? min : 1)) { in->bad = 1; return 0; }
    return (int32_t)v;
}

static int32_t get_i32(In *in) {
    int64_t v = get_i(in);
    if (v < INT32_MIN || v > INT32_MAX) in->bad = 1;
    return (int32_t)v;
}

/* bytes (NUL-terminated, so strings come out as C strings); NULL for a null string */
static void *get_bytes(In *in, int64_t *len) {
    int64_t n = get_i(in);
    if (len) *len = n < 0 ? 0 : n;
    if (in->bad || n < 0) return NULL;
    if ((uint64_t)n > in->n - in->at) { in->bad = 1; return NULL; }
    char *s = xcalloc((size_t)n + 1, 1);
    memcpy(s, in->p + in->at, (size_t)n);
    in->at += (size_t)n;
    return s;
}

TlGpuDesc *tl_gpudesc_read(const unsigned char *blob, size_t n, char *err, int errn) {
    if (n < 16 || memcmp(blob, MAGIC, 8) != 0) {
        bad(err, errn, "not a GPU program description (bad header)");
        return NULL;
    }
    In in = {blob, n, 8, 0};
    TlGpuDesc *d = xcalloc(1, sizeof *d);
    d->name = get_bytes(&in, NULL), d->arch = get_bytes(&in, NULL), d->ptx = get_bytes(&in, NULL);
    d->block = get_i32(&in), d->gemm_bm = get_i32(&in), d->gemm_bn = get_i32(&in);
    d->nsyms = get_count(&in, 8);
    d->syms = xcalloc((size_t)d->nsyms, sizeof *d->syms);
    for (int i = 0; i < d->nsyms && !in.bad; i++) d->syms[i] = get_bytes(&in, NULL);
    d->nvars = get_i32(&in);
    d->nex = get_count(&in, 48);
    d->ex = xcalloc((size_t)d->nex, sizeof *d->ex);
    for (int i = 0; i < d->nex && !in.bad; i++) {
        TlGpuExpr *e = &d->ex[i];
        e->kind = get_i32(&in), e->op = get_i32(&in), e->a = get_i32(&in), e->b = get_i32(&in), e->c = get_i32(&in);
        e->v = get_i(&in);
    }
    d->nbuf = get_count(&in, 56);
    d->buf = xcalloc((size_t)d->nbuf, sizeof *d->buf);
    for (int i = 0; i < d->nbuf && !in.bad; i++) {
        TlGpuBuf *b = &d->buf[i];
        b->kind = get_i32(&in), b->elem = get_i32(&in), b->numel = get_i32(&in), b->node = get_i32(&in);
        b->name = get_bytes(&in, NULL);
        b->ninit = get_i(&in);
        int64_t len = 0;
        b->init = get_bytes(&in, &len);
        if (b->init && (b->elem <= 0 || len != b->ninit * b->elem)) in.bad = 1;
    }
    d->nkern = get_count(&in, 56);
    d->kern = xcalloc((size_t)d->nkern, sizeof *d->kern);
    for (int k = 0; k < d->nkern && !in.bad; k++) {
        TlGpuKernel *g = &d->kern[k];
        g->name = get_bytes(&in, NULL);
        g->launch = get_i32(&in), g->par_extent = get_i32(&in), g->gemm_m = get_i32(&in), g->gemm_n = get_i32(&in);
        g->gemm_batch = get_i32(&in);
        g->block = get_i32(&in);
        g->mma_pack = get_i32(&in), g->gemm_k = get_i32(&in);
        g->nused = get_count(&in, 8);
        g->used = xcalloc((size_t)g->nused, sizeof *g->used);
        for (int u = 0; u < g->nused; u++) g->used[u] = get_i32(&in);
    }
    d->nhost = get_count(&in, 96);
    d->host = xcalloc((size_t)d->nhost, sizeof *d->host);
    for (int h = 0; h < d->nhost && !in.bad; h++) {
        TlGpuHostOp *x = &d->host[h];
        x->kind = get_i32(&in), x->kernel = get_i32(&in), x->dst = get_i32(&in), x->src = get_i32(&in);
        x->dst_off = get_i32(&in), x->src_off = get_i32(&in), x->nbytes = get_i32(&in), x->var = get_i32(&in);
        x->count = get_i32(&in), x->reverse = get_i32(&in), x->body = get_i32(&in), x->next = get_i32(&in);
    }
    d->entry = get_i32(&in);
    if (!in.bad && (in.n - in.at != 8 || memcmp(in.p + in.at, MAGIC, 8) != 0)) in.bad = 1;
    if (in.bad) {
        bad(err, errn, "GPU program description: truncated or corrupt at byte %zu of %zu", in.at, n);
        tl_gpudesc_free(d);
        return NULL;
    }
    if (tl_gpudesc_check(d, err, errn)) {
        tl_gpudesc_free(d);
        return NULL;
    }
    return d;
}

/* ---- the executor ---- */

/* TL_GPU_PROFILE=1: every launch is timed by a pair of events around it (the end event is
 * waited for, so launches no longer overlap the host: the step gets slower, the per-kernel
 * times are the GPU's). Per kernel: launches and milliseconds; printed at tl_gpuexec_free. */
typedef struct TlGpuProfile {
    int64_t *launches;
    double *ms;
    TlCuEvent start, end;
    int print;   /* TL_GPU_PROFILE=1: the table goes to stderr when the executor is freed */
} TlGpuProfile;

struct TlGpuExec {
    const TlGpuDesc *d;
    TlCuModule mod;
    TlCuFunction *fn, *packfn; /* per kernel; packfn: the packed GEMM's `<name>_pack` */
    int64_t *syms, *vars;
    char *bound;
    TlCuPtr *slots, *own;      /* per buffer: current address / own allocation */
    size_t *cap;
    int64_t *numel;
    void **given;              /* per buffer: staged host values (INPUT, PARAM) */
    int64_t *given_n;
    char *dirty, *resident;
    TlGpuExec **share_from;    /* per buffer: read another executor's buffer */
    int *share_buf;
    int *feeds;                /* scratch for tl_gpuexec_feed */
    int consts_ready, ran;
    TlCuPtr scratch;
    size_t scratch_cap;
    TlGpuProfile *prof;        /* TL_GPU_PROFILE=1: per kernel launches and time; else NULL */
    TlCuPtr panels;            /* the packed GEMMs' operand panels (grown, shared by all) */
    size_t panels_cap;
    char err[512];
};

static int xerr(TlGpuExec *x, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, sizeof x->err, fmt, ap);
    va_end(ap);
    return -1;
}

int64_t tl_gpudesc_eval(const TlGpuDesc *d, int e, const int64_t *syms, const int64_t *vars) {
    const TlGpuExpr *t = &d->ex[e];
    switch (t->kind) {
    case TL_GPX_INT: return t->v;
    case TL_GPX_SYM: return syms[t->v];
    case TL_GPX_VAR: return vars[t->v];
    case TL_GPX_SELECT: return tl_gpudesc_eval(d, t->a, syms, vars) ? tl_gpudesc_eval(d, t->b, syms, vars) : tl_gpudesc_eval(d, t->c, syms, vars);
    case TL_GPX_NEG: return -tl_gpudesc_eval(d, t->a, syms, vars);
    case TL_GPX_ABS: {
        int64_t a = tl_gpudesc_eval(d, t->a, syms, vars);
        return a < 0 ? -a : a;
    }
    default: break;
    }
    int64_t a = tl_gpudesc_eval(d, t->a, syms, vars), b = tl_gpudesc_eval(d, t->b, syms, vars);
    switch (t->op) {
    case TL_GPO_ADD: return a + b;
    case TL_GPO_SUB: return a - b;
    case TL_GPO_MUL: return a * b;
    case TL_GPO_DIV: return b ? a / b : 0;
    case TL_GPO_MOD: return b ? a % b : 0;
    case TL_GPO_MIN: return a < b ? a : b;
    case TL_GPO_MAX: return a > b ? a : b;
    case TL_GPO_EQ: return a == b;
    case TL_GPO_NE: return a != b;
    case TL_GPO_LT: return a < b;
    case TL_GPO_LE: return a <= b;
    case TL_GPO_GT: return a > b;
    case TL_GPO_GE: return a >= b;
    case TL_GPO_AND: return a && b;
    default: return a || b;
    }
}

static int64_t heval(const TlGpuExec *x, int e) { return tl_gpudesc_eval(x->d, e, x->syms, x->vars); }

static void profile_free(TlGpuExec *x);

TlGpuExec *tl_gpuexec_new(const TlGpuDesc *d, char *err, int errn) {
    if (tl_cuda_open(err, errn)) return NULL; /* fail fast: no driver or no GPU */
    TlGpuExec *x = xcalloc(1, sizeof *x);
    size_t nb = (size_t)d->nbuf;
    x->d = d;
    x->fn = xcalloc((size_t)d->nkern, sizeof *x->fn), x->packfn = xcalloc((size_t)d->nkern, sizeof *x->packfn);
    x->syms = xcalloc((size_t)d->nsyms, sizeof *x->syms), x->bound = xcalloc((size_t)d->nsyms, 1);
    x->vars = xcalloc((size_t)d->nvars, sizeof *x->vars);
    x->slots = xcalloc(nb, sizeof *x->slots), x->own = xcalloc(nb, sizeof *x->own);
    x->cap = xcalloc(nb, sizeof *x->cap), x->numel = xcalloc(nb, sizeof *x->numel);
    x->given = xcalloc(nb, sizeof *x->given), x->given_n = xcalloc(nb, sizeof *x->given_n);
    x->dirty = xcalloc(nb, 1), x->resident = xcalloc(nb, 1);
    x->share_from = xcalloc(nb, sizeof *x->share_from), x->share_buf = xcalloc(nb, sizeof *x->share_buf);
    x->feeds = xcalloc(nb, sizeof *x->feeds);
    if (tl_cuda_module_load(d->ptx, &x->mod, err, errn)) {
        tl_gpuexec_free(x);
        return NULL;
    }
    for (int k = 0; k < d->nkern; k++)
        if (tl_cuda_function(x->mod, d->kern[k].name, &x->fn[k], err, errn)) {
            tl_gpuexec_free(x);
            return NULL;
        } else if (d->kern[k].mma_pack) {
            char name[512];
            snprintf(name, sizeof name, "%s_pack", d->kern[k].name);
            if (tl_cuda_function(x->mod, name, &x->packfn[k], err, errn)) {
                tl_gpuexec_free(x);
                return NULL;
            }
        }
    const char *prof = getenv("TL_GPU_PROFILE");
    if (prof && prof[0] && strcmp(prof, "0") != 0 && tl_gpuexec_profile(x, 1, err, errn)) {
        tl_gpuexec_free(x);
        return NULL;
    }
    return x;
}

int tl_gpuexec_profile(TlGpuExec *x, int on, char *err, int errn) {
    if (!on) {
        profile_free(x);
        return 0;
    }
    if (x->prof) return 0;
    TlGpuProfile *p = xcalloc(1, sizeof *p);
    p->launches = xcalloc((size_t)x->d->nkern + 1, sizeof *p->launches);
    p->ms = xcalloc((size_t)x->d->nkern + 1, sizeof *p->ms);
    x->prof = p;
    if (tl_cuda_event_create(&p->start, err, errn) || tl_cuda_event_create(&p->end, err, errn)) {
        profile_free(x);
        return -1;
    }
    const char *env = getenv("TL_GPU_PROFILE");
    p->print = env && env[0] && strcmp(env, "0") != 0; /* printed at free only when asked for */
    return 0;
}

int tl_gpuexec_profile_times(const TlGpuExec *x, double *ms, int64_t *launches) {
    const TlGpuProfile *p = x->prof;
    if (!p) return -1;
    for (int k = 0; k < x->d->nkern; k++) {
        if (ms) ms[k] = p->ms[k];
        if (launches) launches[k] = p->launches[k];
    }
    return 0;
}

void tl_gpuexec_profile_print(const TlGpuExec *x, FILE *f, int top) {
    const TlGpuProfile *p = x->prof;
    if (!p) return;
    const TlGpuDesc *d = x->d;
    int *order = xcalloc((size_t)d->nkern + 1, sizeof *order);
    double total = 0;
    int64_t launches = 0;
    int n = 0;
    for (int k = 0; k < d->nkern; k++) {
        total += p->ms[k], launches += p->launches[k];
        if (p->launches[k]) order[n++] = k;
    }
    for (int i = 1; i < n; i++) /* by total time, longest first (stable: kernel order) */
        for (int j = i; j > 0 && p->ms[order[j]] > p->ms[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    static const char *kinds[] = {"flat", "warp", "gemm", "block", "attn"};
    fprintf(f, "GPU profile (%s): %lld launches of %d kernels, %.3f ms in kernels (TL_GPU_PROFILE)\n", d->name ? d->name : "?",
            (long long)launches, n, total);
    fprintf(f, "%4s  %-34s %-5s %9s %11s %10s %6s\n", "rank", "kernel", "launch", "launches", "total ms", "mean us", "%");
    for (int i = 0; i < n && (top <= 0 || i < top); i++) {
        int k = order[i];
        int kind = d->kern[k].launch >= 0 && d->kern[k].launch <= TL_GPL_ATTN ? d->kern[k].launch : 0;
        fprintf(f, "%4d  %-34s %-5s %9lld %11.3f %10.1f %6.2f\n", i + 1, d->kern[k].name, kinds[kind], (long long)p->launches[k],
                p->ms[k], 1000 * p->ms[k] / (double)p->launches[k], total > 0 ? 100 * p->ms[k] / total : 0);
    }
    free(order);
}

static void profile_free(TlGpuExec *x) {
    TlGpuProfile *p = x->prof;
    if (!p) return;
    tl_cuda_event_destroy(p->start), tl_cuda_event_destroy(p->end);
    free(p->launches), free(p->ms), free(p);
    x->prof = NULL;
}

void tl_gpuexec_free(TlGpuExec *x) {
    if (!x) return;
    if (x->prof && x->prof->print) tl_gpuexec_profile_print(x, stderr, 20);
    profile_free(x);
    for (int i = 0; i < x->d->nbuf; i++) tl_cuda_free(x->own[i]), free(x->given[i]);
    tl_cuda_free(x->scratch), tl_cuda_free(x->panels);
    if (x->mod) tl_cuda_module_unload(x->mod);
    free(x->fn), free(x->packfn), free(x->syms), free(x->bound), free(x->vars), free(x->slots), free(x->own), free(x->cap), free(x->numel);
    free(x->given), free(x->given_n), free(x->dirty), free(x->resident), free(x->share_from), free(x->share_buf);
    free(x->feeds);
    free(x);
}

const char *tl_gpuexec_error(const TlGpuExec *x) { return x->err[0] ? x->err : NULL; }
const TlGpuDesc *tl_gpuexec_desc(const TlGpuExec *x) { return x->d; }

void tl_gpuexec_bind(TlGpuExec *x, const char *sym, int64_t value) {
    for (int i = 0; i < x->d->nsyms; i++)
        if (strcmp(x->d->syms[i], sym) == 0) x->syms[i] = value, x->bound[i] = 1;
}

static const char *buf_name(const TlGpuExec *x, int buf) { return x->d->buf[buf].name ? x->d->buf[buf].name : "?"; }

int tl_gpuexec_set(TlGpuExec *x, int buf, const void *data, int64_t n) {
    if (buf < 0 || buf >= x->d->nbuf) return xerr(x, "%s: no buffer b%d", x->d->name, buf);
    const TlGpuBuf *b = &x->d->buf[buf];
    if (b->kind != TL_GPB_INPUT && b->kind != TL_GPB_PARAM)
        return xerr(x, "%s: b%d is not an input or a param", x->d->name, buf);
    if (n < 0) return xerr(x, "%s: input '%s': negative size", x->d->name, buf_name(x, buf));
    size_t bytes = (size_t)n * (size_t)b->elem;
    if (!x->given[buf] || x->given_n[buf] != n) {
        free(x->given[buf]);
        x->given[buf] = xcalloc(bytes ? bytes : 1, 1);
        x->given_n[buf] = n;
    }
    memcpy(x->given[buf], data, bytes);
    x->dirty[buf] = 1, x->resident[buf] = 0, x->share_from[buf] = NULL;
    return 0;
}

int tl_gpuexec_share(TlGpuExec *x, int buf, TlGpuExec *from, int from_buf) {
    if (buf < 0 || buf >= x->d->nbuf || from_buf < 0 || from_buf >= from->d->nbuf)
        return xerr(x, "%s: sharing: no buffer b%d / b%d", x->d->name, buf, from_buf);
    const TlGpuBuf *b = &x->d->buf[buf], *f = &from->d->buf[from_buf];
    if ((b->kind != TL_GPB_INPUT && b->kind != TL_GPB_PARAM) || b->elem != f->elem)
        return xerr(x, "%s: input '%s' cannot read %s's b%d (kinds or element types differ)", x->d->name, buf_name(x, buf),
                    from->d->name, from_buf);
    x->share_from[buf] = from, x->share_buf[buf] = from_buf;
    x->dirty[buf] = 0;
    return 0;
}

/* The device allocation of buffer i, at least `bytes` long. */
static int ensure(TlGpuExec *x, int i, size_t bytes) {
    bytes = (bytes + 255) / 256 * 256;
    if (bytes == 0) bytes = 256;
    if (bytes <= x->cap[i]) return 0;
    tl_cuda_free(x->own[i]);
    x->own[i] = 0, x->cap[i] = 0;
    if (tl_cuda_alloc(&x->own[i], bytes, x->err, sizeof x->err)) return -1;
    x->cap[i] = bytes;
    return 0;
}

static int upload_consts(TlGpuExec *x) {
    for (int i = 0; i < x->d->nbuf; i++) {
        const TlGpuBuf *b = &x->d->buf[i];
        if (b->kind != TL_GPB_CONST) continue;
        size_t bytes = (size_t)b->ninit * (size_t)b->elem;
        if (heval(x, b->numel) != b->ninit)
            return xerr(x, "%s: constant b%d has %lld values, its size says %lld", x->d->name, i, (long long)b->ninit,
                        (long long)heval(x, b->numel));
        if (ensure(x, i, bytes) || (bytes && tl_cuda_htod(x->own[i], b->init, bytes, x->err, sizeof x->err))) return -1;
    }
    x->consts_ready = 1;
    return 0;
}

static unsigned blocks_for(int64_t threads, int64_t block) {
    int64_t b = (threads + block - 1) / block;
    return (unsigned)(b > (1 << 20) ? (1 << 20) : b < 1 ? 1 : b);
}

static int launch(TlGpuExec *x, int ki) {
    const TlGpuDesc *d = x->d;
    const TlGpuKernel *k = &d->kern[ki];
    int64_t n = k->par_extent >= 0 ? heval(x, k->par_extent) : 1;
    TlCuDim grid = {1, 1, 1}, block = {(unsigned)d->block, 1, 1};
    switch (k->launch) {
    case TL_GPL_FLAT:
        if (n <= 0) return 0;
        if (k->block > 0) block.x = (unsigned)k->block; /* schedule data (tune --target cuda) */
        if (k->par_extent < 0) block.x = 1;
        grid.x = blocks_for(n, block.x);
        break;
    case TL_GPL_WARP:
        if (n <= 0) return 0;
        grid.x = blocks_for(n * 32, block.x);
        break;
    case TL_GPL_BLOCK: /* one block of d->block threads (the kernel reads its size) */
        break;
    case TL_GPL_ATTN: { /* (query or key tile, head, pass) blocks of TL_GPU_ATTN_ROWS threads */
        int64_t t = heval(x, k->gemm_m), passes = heval(x, k->gemm_n), bh = heval(x, k->gemm_batch);
        if (t <= 0 || bh <= 0 || passes <= 0) return 0;
        if (bh > 65535) return xerr(x, "%s: %lld attention heads exceed the grid's y limit", k->name, (long long)bh);
        grid.x = (unsigned)((t + TL_GPU_ATTN_ROWS - 1) / TL_GPU_ATTN_ROWS), grid.y = (unsigned)bh, grid.z = (unsigned)passes;
        block.x = TL_GPU_ATTN_ROWS;
        break;
    }
    default: {
        int64_t m = heval(x, k->gemm_m), nn = heval(x, k->gemm_n), b = heval(x, k->gemm_batch);
        if (m <= 0 || nn <= 0 || b <= 0) return 0;
        if (b > 65535) return xerr(x, "%s: batch of %lld matmuls exceeds the grid's z limit", k->name, (long long)b);
        grid.x = (unsigned)((nn + d->gemm_bn - 1) / d->gemm_bn), grid.y = (unsigned)((m + d->gemm_bm - 1) / d->gemm_bm);
        grid.z = (unsigned)b;
        break;
    }
    }
    void *args[512];
    int na = 0;
    if (k->nused + d->nsyms + 2 > 512) return xerr(x, "%s: too many kernel parameters", k->name);
    for (int i = 0; i < k->nused; i++) args[na++] = &x->slots[k->used[i]];
    if (k->mma_pack) { /* the panels, then `<name>_pack` writes them (same parameters) */
        int64_t m = heval(x, k->gemm_m), nn = heval(x, k->gemm_n), b = heval(x, k->gemm_batch), kk = heval(x, k->gemm_k);
        int64_t mp = (m + d->gemm_bm - 1) / d->gemm_bm * d->gemm_bm, np = (nn + d->gemm_bn - 1) / d->gemm_bn * d->gemm_bn;
        int64_t kp = kk > 0 ? (kk + TL_GPU_MMA_PACK_K - 1) / TL_GPU_MMA_PACK_K * TL_GPU_MMA_PACK_K : 0;
        size_t bytes = (size_t)(2 * b * kp * (mp + np));
        if (bytes > x->panels_cap) {
            tl_cuda_free(x->panels);
            x->panels = 0, x->panels_cap = 0;
            if (tl_cuda_alloc(&x->panels, bytes, x->err, sizeof x->err)) return -1;
            x->panels_cap = bytes;
        }
        args[na++] = &x->panels;
        for (int i = 0; i < d->nsyms; i++) args[na + i] = &x->syms[i];
        args[na + d->nsyms] = &n;
        int64_t items = b * (mp + np) * (kp / 8);
        TlCuDim pgrid = {blocks_for(items, d->block), 1, 1};
        if (items > 0 && tl_cuda_launch(x->packfn[ki], pgrid, block, 0, args, x->err, sizeof x->err)) return -1;
    }
    for (int i = 0; i < d->nsyms; i++) args[na++] = &x->syms[i];
    args[na++] = &n;
    if (!x->prof) return tl_cuda_launch(x->fn[ki], grid, block, 0, args, x->err, sizeof x->err);
    TlGpuProfile *p = x->prof;
    float ms = 0;
    if (tl_cuda_event_record(p->start, x->err, sizeof x->err) ||
        tl_cuda_launch(x->fn[ki], grid, block, 0, args, x->err, sizeof x->err) ||
        tl_cuda_event_record(p->end, x->err, sizeof x->err) || tl_cuda_event_elapsed(p->start, p->end, &ms, x->err, sizeof x->err))
        return -1;
    p->launches[ki]++, p->ms[ki] += ms;
    return 0;
}

/* cuMemcpyDtoD through scratch memory when the ranges overlap (memmove). */
static int dcopy(TlGpuExec *x, TlCuPtr dst, TlCuPtr src, size_t nbytes) {
    if (nbytes == 0 || dst == src) return 0;
    if ((dst < src && dst + nbytes > src) || (src < dst && src + nbytes > dst)) {
        if (nbytes > x->scratch_cap) {
            tl_cuda_free(x->scratch);
            x->scratch = 0, x->scratch_cap = 0;
            if (tl_cuda_alloc(&x->scratch, nbytes, x->err, sizeof x->err)) return -1;
            x->scratch_cap = nbytes;
        }
        if (tl_cuda_dtod(x->scratch, src, nbytes, x->err, sizeof x->err)) return -1;
        src = x->scratch;
    }
    return tl_cuda_dtod(dst, src, nbytes, x->err, sizeof x->err);
}

static int exec_host(TlGpuExec *x, int h) {
    for (; h >= 0; h = x->d->host[h].next) {
        const TlGpuHostOp *o = &x->d->host[h];
        switch (o->kind) {
        case TL_GPH_KERNEL:
            if (launch(x, o->kernel)) return -1;
            break;
        case TL_GPH_COPY: {
            int64_t nbytes = heval(x, o->nbytes);
            if (nbytes > 0 && dcopy(x, x->slots[o->dst] + (TlCuPtr)heval(x, o->dst_off),
                                    x->slots[o->src] + (TlCuPtr)heval(x, o->src_off), (size_t)nbytes))
                return -1;
            break;
        }
        case TL_GPH_ALIAS: x->slots[o->dst] = x->slots[o->src] + (TlCuPtr)heval(x, o->src_off); break;
        default: {
            int64_t cnt = heval(x, o->count);
            for (int64_t s = 0; s < cnt; s++) {
                x->vars[o->var] = o->reverse ? cnt - 1 - s : s;
                if (exec_host(x, o->body)) return -1;
            }
            break;
        }
        }
    }
    return 0;
}

static int prepare(TlGpuExec *x) {
    const TlGpuDesc *d = x->d;
    x->err[0] = 0;
    if (tl_cuda_open(x->err, sizeof x->err)) return -1;
    for (int s = 0; s < d->nsyms; s++)
        if (!x->bound[s]) return xerr(x, "%s: dim symbol '%s' is not bound", d->name, d->syms[s]);
    if (!x->consts_ready && upload_consts(x)) return -1;
    for (int i = 0; i < d->nbuf; i++) {
        const TlGpuBuf *b = &d->buf[i];
        int64_t n = heval(x, b->numel);
        if (n < 0) return xerr(x, "%s: negative size for buffer b%d", d->name, i);
        x->numel[i] = n;
        if (b->kind == TL_GPB_ALIAS) continue;
        size_t bytes = (size_t)n * (size_t)b->elem;
        if (b->kind == TL_GPB_INPUT || b->kind == TL_GPB_PARAM) {
            if (x->share_from[i]) {
                TlGpuExec *f = x->share_from[i];
                int fb = x->share_buf[i];
                if (!f->own[fb] || f->cap[fb] < bytes)
                    return xerr(x, "%s: input '%s': the shared buffer of %s is not there or is smaller (%zu bytes needed)",
                                d->name, buf_name(x, i), f->d->name, bytes);
                x->slots[i] = f->own[fb];
                continue;
            }
            if (!x->given[i] && !x->resident[i]) return xerr(x, "%s: input '%s' (%%%d) was not set", d->name, buf_name(x, i), b->node);
            if (!x->resident[i] && x->given_n[i] != n)
                return xerr(x, "%s: input '%s': value has %lld elements, shape needs %lld", d->name, buf_name(x, i),
                            (long long)x->given_n[i], (long long)n);
            size_t old = x->cap[i];
            if (x->resident[i] && bytes > old)
                return xerr(x, "%s: input '%s' lives on the device and its size grew; set it again", d->name, buf_name(x, i));
            if (ensure(x, i, bytes)) return -1;
            if (x->dirty[i] || old != x->cap[i]) {
                if (bytes && tl_cuda_htod(x->own[i], x->given[i], bytes, x->err, sizeof x->err)) return -1;
                x->dirty[i] = 0;
            }
        } else if (b->kind != TL_GPB_CONST) {
            if (ensure(x, i, bytes)) return -1;
            if (b->kind == TL_GPB_STATE && tl_cuda_memset(x->own[i], 0, x->cap[i], x->err, sizeof x->err)) return -1;
        }
        x->slots[i] = x->own[i];
    }
    return 0;
}

int tl_gpuexec_run(TlGpuExec *x) {
    x->ran = 0;
    if (prepare(x) || exec_host(x, x->d->entry) || tl_cuda_sync(x->err, sizeof x->err)) return -1;
    x->ran = 1;
    return 0;
}

int tl_gpuexec_rerun(TlGpuExec *x) {
    if (!x->ran) return tl_gpuexec_run(x);
    x->err[0] = 0;
    for (int i = 0; i < x->d->nbuf; i++)
        if (x->d->buf[i].kind != TL_GPB_ALIAS && !x->share_from[i]) x->slots[i] = x->own[i];
    return exec_host(x, x->d->entry);
}

int tl_gpuexec_feed(TlGpuExec *x, const int *out, const int *in, int n) {
    const TlGpuDesc *d = x->d;
    if (!x->ran) return xerr(x, "%s: feeding outputs to inputs before a run", d->name);
    memset(x->feeds, 0, sizeof *x->feeds * (size_t)d->nbuf);
    for (int k = 0; k < n; k++) {
        if (out[k] < 0 || out[k] >= d->nbuf || in[k] < 0 || in[k] >= d->nbuf)
            return xerr(x, "%s: feeding b%d to b%d: no such buffer", d->name, out[k], in[k]);
        const TlGpuBuf *bo = &d->buf[out[k]], *bi = &d->buf[in[k]];
        if ((bi->kind != TL_GPB_INPUT && bi->kind != TL_GPB_PARAM) || x->share_from[in[k]] || bo->elem != bi->elem ||
            x->numel[out[k]] != x->numel[in[k]])
            return xerr(x, "%s: output b%d cannot feed input '%s' (kind, type or size differ)", d->name, out[k], buf_name(x, in[k]));
        x->feeds[out[k]]++;
    }
    /* copies first (they read outputs whose allocations a swap below would hand over) */
    for (int k = 0; k < n; k++) {
        int o = out[k], i = in[k];
        if (o == i) continue;
        int swap = x->feeds[o] == 1 && d->buf[o].kind == TL_GPB_TEMP && x->slots[o] == x->own[o];
        if (!swap && dcopy(x, x->own[i], x->slots[o], (size_t)x->numel[i] * (size_t)d->buf[i].elem)) return -1;
    }
    for (int k = 0; k < n; k++) {
        int o = out[k], i = in[k];
        if (o != i && x->feeds[o] == 1 && d->buf[o].kind == TL_GPB_TEMP && x->slots[o] == x->own[o]) {
            TlCuPtr p = x->own[o];
            size_t c = x->cap[o];
            x->own[o] = x->own[i], x->cap[o] = x->cap[i];
            x->own[i] = p, x->cap[i] = c;
            x->slots[o] = x->own[o], x->slots[i] = x->own[i];
        }
        x->resident[i] = 1, x->dirty[i] = 0;
    }
    return 0;
}

int tl_gpuexec_read(TlGpuExec *x, int buf, void *host, int64_t n) {
    const TlGpuDesc *d = x->d;
    if (buf < 0 || buf >= d->nbuf) return xerr(x, "%s: no buffer b%d", d->name, buf);
    TlCuPtr p = x->slots[buf];
    if (d->buf[buf].kind == TL_GPB_INPUT || d->buf[buf].kind == TL_GPB_PARAM)
        p = x->share_from[buf] ? x->share_from[buf]->own[x->share_buf[buf]] : x->own[buf];
    if (!p) return xerr(x, "%s: buffer b%d is not on the device yet", d->name, buf);
    if (n > x->numel[buf])
        return xerr(x, "%s: reading %lld elements of b%d, which has %lld", d->name, (long long)n, buf, (long long)x->numel[buf]);
    return n > 0 ? tl_cuda_dtoh(host, p, (size_t)n * (size_t)d->buf[buf].elem, x->err, sizeof x->err) : 0;
}

int64_t tl_gpuexec_numel(const TlGpuExec *x, int buf) { return buf >= 0 && buf < x->d->nbuf ? x->numel[buf] : 0; }
TlCuPtr tl_gpuexec_ptr(const TlGpuExec *x, int buf) { return x->ran && buf >= 0 && buf < x->d->nbuf ? x->slots[buf] : 0; }
