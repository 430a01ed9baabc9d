/* nvptx.c — the NVPTX back end's driver: PTX emission (--emit=ptx), the plain-data
 * description of a compiled program (runtime/gpuprog.h: PTX, launches, buffers, host
 * program), and GPU programs over a graph that the runtime's executor runs through
 * runtime/cuda. Code generation is nvptx_codegen.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"
#include "nvptx_internal.h"

/* ---- emission ---- */

/* The PTX of one kernel: the module header (up to the first entry) and that entry. */
static char *ptx_kernel(const char *all, const char *name) {
    char pat[128];
    snprintf(pat, sizeof pat, ".entry %s(", name);
    const char *s = strstr(all, pat);
    if (!s) return NULL;
    while (s > all && s[-1] != '\n') s--;
    const char *first = strstr(all, ".visible .entry");
    const char *hdr_end = first ? first : s;
    while (hdr_end > all && hdr_end[-1] != '\n') hdr_end--;
    const char *e = strstr(s, "\n}\n");
    e = e ? e + 3 : s + strlen(s);
    size_t nh = (size_t)(hdr_end - all), nb = (size_t)(e - s);
    char *out = malloc(nh + nb + 1);
    if (!out) abort();
    memcpy(out, all, nh), memcpy(out + nh, s, nb);
    out[nh + nb] = 0;
    return out;
}

static char *emit(const TlLProgram *lp, const TlNvptxOptions *o, const char *kernel, int llvm, char *err, int errn) {
    NvTarget t;
    tl_nvptx_target(&t, o);
    LLVMTargetMachineRef tm = tl_nvptx_target_machine(&t, err, errn);
    if (!tm) return NULL;
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef m = tl_nvptx_build(ctx, lp, &t, tm, err, errn);
    char *out = NULL;
    if (m && llvm) {
        char *s = NULL;
        if (kernel) {
            LLVMValueRef f = LLVMGetNamedFunction(m, kernel);
            if (f) s = LLVMPrintValueToString(f);
            else if (err) snprintf(err, (size_t)errn, "no kernel named '%s'", kernel);
        } else {
            s = LLVMPrintModuleToString(m);
        }
        if (s) out = strdup(s), LLVMDisposeMessage(s);
    } else if (m) {
        char *all = tl_nvptx_module_ptx(tm, m, err, errn);
        if (all && kernel) {
            out = ptx_kernel(all, kernel);
            if (!out && err) snprintf(err, (size_t)errn, "no kernel named '%s'", kernel);
            free(all);
        } else {
            out = all;
        }
    }
    if (m) LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
    return out;
}

char *tl_nvptx_emit_ptx_loops(const TlLProgram *lp, const TlNvptxOptions *o, char *err, int errn) {
    return emit(lp, o, NULL, 0, err, errn);
}

static char *emit_graph(const TlGraph *g, const TlNvptxOptions *o, const char *kernel, int llvm, char *err, int errn) {
    TlLProgram *lp = tl_loops_lower(g, err, errn);
    if (!lp) return NULL;
    char *out = emit(lp, o, kernel, llvm, err, errn);
    tl_loops_free(lp);
    return out;
}

char *tl_nvptx_emit_ptx(const TlGraph *g, const TlNvptxOptions *o, const char *kernel, char *err, int errn) {
    return emit_graph(g, o, kernel, 0, err, errn);
}

char *tl_nvptx_emit_llvm(const TlGraph *g, const TlNvptxOptions *o, const char *kernel, char *err, int errn) {
    return emit_graph(g, o, kernel, 1, err, errn);
}

/* ---- descriptions (runtime/gpuprog.h) ---- */

typedef struct Describe {
    const TlLProgram *lp;
    TlGpuDesc *d;
    int *map;    /* Loop IR expression -> description expression, -2: not yet */
    int excap;
    char *err;
    int errn;
} Describe;

static int dfail(Describe *b, const char *fmt, int e) {
    if (b->err && b->err[0] == 0) snprintf(b->err, (size_t)b->errn, fmt, e);
    return -1;
}

/* The host expression e, its operands first (the description's order invariant). */
static int dpush(Describe *b, TlGpuExpr t);

static int dex(Describe *b, int e) {
    if (e < 0) return -1;
    if (b->map[e] != -2) return b->map[e];
    const TlLExpr *x = &b->lp->ex[e];
    TlGpuExpr t = {.a = -1, .b = -1, .c = -1};
    switch (x->kind) {
    case TL_LE_INT: t.kind = TL_GPX_INT, t.v = x->ival; break;
    case TL_LE_SYM: t.kind = TL_GPX_SYM, t.v = x->sym; break;
    case TL_LE_VAR: t.kind = TL_GPX_VAR, t.v = x->var; break;
    case TL_LE_CAST: return b->map[e] = dex(b, x->a);
    case TL_LE_SELECT:
        t.kind = TL_GPX_SELECT, t.a = dex(b, x->a), t.b = dex(b, x->b), t.c = dex(b, x->c);
        if (t.a < 0 || t.b < 0 || t.c < 0) return -1;
        break;
    case TL_LE_UN:
        if (x->op != TL_LOP_NEG && x->op != TL_LOP_ABS) return dfail(b, "host expression e%d: a unary op the host cannot evaluate", e);
        t.kind = x->op == TL_LOP_NEG ? TL_GPX_NEG : TL_GPX_ABS, t.a = dex(b, x->a);
        if (t.a < 0) return -1;
        break;
    case TL_LE_BIN: {
        static const struct { TlLOp l; int g; } ops[] = {
            {TL_LOP_ADD, TL_GPO_ADD}, {TL_LOP_SUB, TL_GPO_SUB}, {TL_LOP_MUL, TL_GPO_MUL}, {TL_LOP_DIV, TL_GPO_DIV},
            {TL_LOP_IDIV, TL_GPO_DIV}, {TL_LOP_IMOD, TL_GPO_MOD}, {TL_LOP_MIN, TL_GPO_MIN}, {TL_LOP_MAX, TL_GPO_MAX},
            {TL_LOP_EQ, TL_GPO_EQ}, {TL_LOP_NE, TL_GPO_NE}, {TL_LOP_LT, TL_GPO_LT}, {TL_LOP_LE, TL_GPO_LE},
            {TL_LOP_GT, TL_GPO_GT}, {TL_LOP_GE, TL_GPO_GE}, {TL_LOP_AND, TL_GPO_AND}, {TL_LOP_OR, TL_GPO_OR}};
        t.kind = TL_GPX_BIN, t.op = -1;
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
            if (ops[i].l == x->op) t.op = ops[i].g;
        if (t.op < 0) return dfail(b, "host expression e%d: a binary op the host cannot evaluate", e);
        t.a = dex(b, x->a), t.b = dex(b, x->b);
        if (t.a < 0 || t.b < 0) return -1;
        break;
    }
    default: return dfail(b, "host expression e%d is not an integer expression over sizes and loop counters", e);
    }
    return b->map[e] = dpush(b, t);
}

/* A new expression of the description (operands already in it). */
static int dpush(Describe *b, TlGpuExpr t) {
    TlGpuDesc *d = b->d;
    if (d->nex == b->excap) {
        b->excap = b->excap ? 2 * b->excap : 256;
        d->ex = realloc(d->ex, sizeof *d->ex * (size_t)b->excap);
        if (!d->ex) abort();
    }
    d->ex[d->nex] = t;
    return d->nex++;
}

/* The extent of kernel k's launch: the product of the trip counts of its collapsed loops
 * (tl_nvptx_collapse), each max(hi - lo, 0); the parallel loop's extent when none are. */
static int launch_extent(Describe *b, const NvTarget *t, int k, TlGpuLaunchKind kind) {
    const TlLProgram *lp = b->lp;
    int loops[TL_NVPTX_MAX_COLLAPSE];
    int n = tl_nvptx_collapse(lp, k, t, kind, loops, TL_NVPTX_MAX_COLLAPSE);
    int ip = tl_nvptx_inner_parallel(lp, k, t, kind);
    if (ip >= 0) { /* the iterations of that loop */
        int hi = dex(b, lp->st[ip].hi), lo = dex(b, lp->st[ip].lo);
        return hi < 0 || lo < 0 ? -1 : dpush(b, (TlGpuExpr){TL_GPX_BIN, TL_GPO_SUB, hi, lo, -1, 0});
    }
    int e = dex(b, lp->kern[k].par_extent);
    if (e >= 0 && tl_nvptx_blocks_loop(lp, k) >= 0) { /* a block of gpu_block threads per iteration */
        int threads = dpush(b, (TlGpuExpr){TL_GPX_INT, 0, -1, -1, -1, lp->kern[k].gpu_block});
        return dpush(b, (TlGpuExpr){TL_GPX_BIN, TL_GPO_MUL, e, threads, -1, 0});
    }
    for (int j = 1; j < n && e >= 0; j++) {
        const TlLStmt *l = &lp->st[loops[j]];
        int hi = dex(b, l->hi), lo = dex(b, l->lo);
        if (hi < 0 || lo < 0) return -1;
        int trip = dpush(b, (TlGpuExpr){TL_GPX_BIN, TL_GPO_SUB, hi, lo, -1, 0});
        int zero = dpush(b, (TlGpuExpr){TL_GPX_INT, 0, -1, -1, -1, 0});
        trip = dpush(b, (TlGpuExpr){TL_GPX_BIN, TL_GPO_MAX, trip, zero, -1, 0});
        e = dpush(b, (TlGpuExpr){TL_GPX_BIN, TL_GPO_MUL, e, trip, -1, 0});
    }
    return e;
}

/* A constant buffer's element count: no symbols, no loop variables. */
static int const_numel(const TlLProgram *lp, int e, int64_t *v) {
    const TlLExpr *x = &lp->ex[e];
    int64_t a, c;
    switch (x->kind) {
    case TL_LE_INT: *v = x->ival; return 0;
    case TL_LE_CAST: return const_numel(lp, x->a, v);
    case TL_LE_BIN:
        if (const_numel(lp, x->a, &a) || const_numel(lp, x->b, &c)) return -1;
        if (x->op == TL_LOP_MUL) *v = a * c;
        else if (x->op == TL_LOP_ADD) *v = a + c;
        else return -1;
        return 0;
    default: return -1;
    }
}

static char *xstrdup(const char *s) {
    char *r = strdup(s ? s : "");
    if (!r) abort();
    return r;
}

/* Everything but the PTX. */
static TlGpuDesc *describe(const TlLProgram *lp, const NvTarget *t, const char *name, char *err, int errn) {
    TlGpuDesc *d = calloc(1, sizeof *d);
    int *map = malloc(sizeof *map * (size_t)(lp->nex + 1));
    if (!d || !map) abort();
    for (int i = 0; i < lp->nex; i++) map[i] = -2;
    if (err && errn > 0) err[0] = 0;
    Describe b = {lp, d, map, 0, err, errn};
    d->name = xstrdup(name), d->arch = xstrdup(t->arch);
    d->block = TL_GPU_BLOCK, d->gemm_bm = TL_GEMM_BM, d->gemm_bn = TL_GEMM_BN;
    d->nsyms = lp->nsyms;
    d->syms = calloc((size_t)lp->nsyms + 1, sizeof *d->syms);
    if (!d->syms) abort();
    for (int i = 0; i < lp->nsyms; i++) d->syms[i] = xstrdup(lp->syms[i]);
    d->nvars = lp->nvars;
    int ok = 1;
    d->nbuf = lp->nbuf;
    d->buf = calloc((size_t)lp->nbuf + 1, sizeof *d->buf);
    if (!d->buf) abort();
    for (int i = 0; i < lp->nbuf && ok; i++) {
        const TlLBuf *lb = &lp->buf[i];
        TlGpuBuf *g = &d->buf[i];
        g->kind = (int)lb->kind, g->elem = (int)tl_ltype_size(lb->elem), g->node = lb->node;
        g->numel = dex(&b, lb->numel);
        g->name = lb->name ? xstrdup(lb->name) : NULL;
        ok = g->numel >= 0;
        if (ok && lb->kind == TL_LB_CONST) {
            if (const_numel(lp, lb->numel, &g->ninit) || g->ninit < 0) {
                snprintf(err, (size_t)errn, "%s: constant buffer b%d has a size known only at run time", name, i);
                ok = 0;
                break;
            }
            g->init = malloc((size_t)(g->ninit > 0 ? g->ninit : 1) * (size_t)g->elem);
            if (!g->init) abort();
            for (int64_t j = 0; j < g->ninit; j++) {
                double v = tl_interp_round(lb->dtype, lb->init[j]);
                switch (lb->elem) {
                case TL_LT_F64: ((double *)g->init)[j] = v; break;
                case TL_LT_F32: ((float *)g->init)[j] = (float)v; break;
                case TL_LT_I32: ((int32_t *)g->init)[j] = (int32_t)v; break;
                case TL_LT_I64: ((int64_t *)g->init)[j] = (int64_t)v; break;
                default: ((uint8_t *)g->init)[j] = v != 0; break;
                }
            }
        }
    }
    d->nkern = lp->nkern;
    d->kern = calloc((size_t)lp->nkern + 1, sizeof *d->kern);
    char *used = malloc((size_t)lp->nbuf + 1);
    if (!d->kern || !used) abort();
    for (int k = 0; k < lp->nkern && ok; k++) {
        const TlLKernel *lk = &lp->kern[k];
        TlGpuKernel *g = &d->kern[k];
        g->name = xstrdup(lk->name);
        g->launch = (int)tl_nvptx_plan(lp, k, t, used);
        g->par_extent = launch_extent(&b, t, k, (TlGpuLaunchKind)g->launch);
        g->gemm_m = g->gemm_n = g->gemm_batch = g->gemm_k = -1;
        if (g->launch == TL_GPL_FLAT && lk->gpu_block > 0 && lk->gpu_block <= (lk->gpu_sched ? TL_GPU_MAX_BLOCK : TL_GPU_BLOCK))
            g->block = lk->gpu_block;
        if (g->launch == TL_GPL_GEMM)
            g->gemm_m = dex(&b, lk->gemm.m), g->gemm_n = dex(&b, lk->gemm.n), g->gemm_batch = dex(&b, lk->gemm.batch);
        if (g->launch == TL_GPL_ATTN) {
            g->gemm_m = dex(&b, lk->attn.t), g->gemm_batch = dex(&b, lk->attn.bh);
            g->gemm_n = dpush(&b, (TlGpuExpr){TL_GPX_INT, 0, -1, -1, -1, lk->attn.grad ? 2 : 1});
        }
        if (g->launch == TL_GPL_GEMM && tl_nvptx_mma_packed(lp, k, t)) g->mma_pack = 1, g->gemm_k = dex(&b, lk->gemm.k);
        g->used = malloc(sizeof *g->used * (size_t)(lp->nbuf + 1));
        if (!g->used) abort();
        for (int i = 0; i < lp->nbuf; i++)
            if (used[i]) g->used[g->nused++] = i;
        ok = (lk->par_extent < 0 || g->par_extent >= 0) &&
             ((g->launch != TL_GPL_GEMM && g->launch != TL_GPL_ATTN) || (g->gemm_m >= 0 && g->gemm_n >= 0 && g->gemm_batch >= 0)) &&
             (!g->mma_pack || g->gemm_k >= 0);
    }
    free(used);
    d->nhost = lp->nhost;
    d->host = calloc((size_t)lp->nhost + 1, sizeof *d->host);
    if (!d->host) abort();
    for (int h = 0; h < lp->nhost && ok; h++) {
        const TlLHost *o = &lp->host[h];
        TlGpuHostOp *g = &d->host[h];
        *g = (TlGpuHostOp){(int)o->kind, o->kernel, o->dst, o->src, -1, -1, -1, o->var, -1, o->reverse, o->body, o->next};
        switch (o->kind) {
        case TL_LH_COPY:
            g->dst_off = dex(&b, o->dst_off), g->nbytes = dex(&b, o->nbytes);
            ok = g->dst_off >= 0 && g->nbytes >= 0; /* fall through */
        case TL_LH_ALIAS: g->src_off = dex(&b, o->src_off), ok = ok && g->src_off >= 0; break;
        case TL_LH_LOOP: g->count = dex(&b, o->count), ok = g->count >= 0; break;
        default: break;
        }
    }
    d->entry = lp->entry;
    free(map);
    if (!ok) {
        if (err && errn > 0 && !err[0]) snprintf(err, (size_t)errn, "%s: cannot describe the program for the GPU", name);
        tl_gpudesc_free(d);
        return NULL;
    }
    return d;
}

TlGpuDesc *tl_nvptx_describe(const TlLProgram *lp, const TlNvptxOptions *o, const char *name, char *err, int errn) {
    NvTarget t;
    tl_nvptx_target(&t, o);
    TlGpuDesc *d = describe(lp, &t, name, err, errn);
    if (!d) return NULL;
    d->ptx = emit(lp, o, NULL, 0, err, errn);
    if (!d->ptx || tl_gpudesc_check(d, err, errn)) {
        tl_gpudesc_free(d);
        return NULL;
    }
    return d;
}

/* ---- programs over a graph: a description and the runtime's executor ---- */

typedef struct Binding { char *name; int64_t value; } Binding;

struct TlGpuProgram {
    const TlGraph *g;
    TlLProgram *lp;
    TlGpuDesc *desc;
    TlGpuExec *x;
    Binding *bind; int nbind;
    void **host;           /* per top node: downloaded value */
    size_t *host_cap;
    TlTensor *views;
    int ran;
    char err[512];
};

static int perr(TlGpuProgram *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    return -1;
}

static int xfail(TlGpuProgram *p) { return perr(p, "%s", tl_gpuexec_error(p->x) ? tl_gpuexec_error(p->x) : "GPU error"); }

TlGpuProgram *tl_gpu_compile(const TlGraph *g, const TlNvptxOptions *o, char *err, int errn) {
    if (tl_cuda_open(err, errn)) return NULL; /* fail fast: no driver or no GPU */
    TlLProgram *lp = tl_loops_lower(g, err, errn);
    if (!lp) return NULL;
    return tl_gpu_compile_loops(g, lp, o, err, errn);
}

TlGpuProgram *tl_gpu_compile_loops(const TlGraph *g, TlLProgram *lp, const TlNvptxOptions *o, char *err, int errn) {
    if (tl_cuda_open(err, errn)) {
        tl_loops_free(lp);
        return NULL;
    }
    TlGpuProgram *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->g = g, p->lp = lp;
    TlNvptxOptions oo = o ? *o : (TlNvptxOptions){.opt_level = 3};
    char arch[16];
    if (!oo.arch || !oo.arch[0]) { /* the device's own architecture */
        int major, minor;
        tl_cuda_capability(&major, &minor);
        snprintf(arch, sizeof arch, "sm_%d%d", major >= 9 ? 9 : major, major >= 9 ? 0 : minor);
        oo.arch = major >= 5 ? arch : NULL;
    }
    size_t nn = (size_t)g->nnodes + 1;
    p->host = calloc(nn, sizeof *p->host), p->host_cap = calloc(nn, sizeof *p->host_cap);
    p->views = calloc(nn, sizeof *p->views);
    if (!p->host || !p->host_cap || !p->views) abort();
    p->desc = tl_nvptx_describe(lp, &oo, "program", err, errn);
    if (!p->desc || !(p->x = tl_gpuexec_new(p->desc, err, errn))) {
        tl_gpu_free(p);
        return NULL;
    }
    return p;
}

void tl_gpu_free(TlGpuProgram *p) {
    if (!p) return;
    for (int i = 0; i < p->g->nnodes; i++) free(p->host[i]);
    tl_gpuexec_free(p->x);
    tl_gpudesc_free(p->desc);
    for (int i = 0; i < p->nbind; i++) free(p->bind[i].name);
    free(p->bind), free(p->host), free(p->host_cap), free(p->views);
    tl_loops_free(p->lp);
    free(p);
}

const TlLProgram *tl_gpu_loops(const TlGpuProgram *p) { return p->lp; }
const char *tl_gpu_ptx(const TlGpuProgram *p) { return p->desc->ptx; }
const TlGpuDesc *tl_gpu_desc(const TlGpuProgram *p) { return p->desc; }
TlGpuExec *tl_gpu_exec(TlGpuProgram *p) { return p->x; }
const char *tl_gpu_error(const TlGpuProgram *p) { return p->err[0] ? p->err : NULL; }

void tl_gpu_bind(TlGpuProgram *p, const char *sym, int64_t value) {
    tl_gpuexec_bind(p->x, sym, value);
    for (int i = 0; i < p->nbind; i++)
        if (strcmp(p->bind[i].name, sym) == 0) { p->bind[i].value = value; return; }
    Binding *nb = realloc(p->bind, sizeof *nb * (size_t)(p->nbind + 1));
    if (!nb) abort();
    p->bind = nb;
    nb[p->nbind].name = strdup(sym), nb[p->nbind].value = value;
    if (!nb[p->nbind].name) abort();
    p->nbind++;
}

static int settable(TlGpuProgram *p, int node) {
    if (node < 0 || node >= p->g->nnodes) return perr(p, "no node %d", node);
    TlGOp op = p->g->nodes[node].op;
    if (op != TL_GOP_INPUT && op != TL_GOP_PARAM) return perr(p, "%%%d: only inputs and params can be set", node);
    return 0;
}

static void store_double(TlDType t, void *dst, int64_t i, double v) {
    switch (t) {
    case TL_F64: ((double *)dst)[i] = v; break;
    case TL_I32: ((int32_t *)dst)[i] = (int32_t)v; break;
    case TL_I64: ((int64_t *)dst)[i] = (int64_t)v; break;
    case TL_BOOL: ((uint8_t *)dst)[i] = v != 0; break;
    default: ((float *)dst)[i] = (float)tl_interp_round(t, v); break;
    }
}

int tl_gpu_set_raw(TlGpuProgram *p, int node, const void *data, int64_t n) {
    if (settable(p, node)) return -1;
    int b = p->lp->node_buf[node];
    if (b < 0) return 0; /* an input nothing reads */
    return tl_gpuexec_set(p->x, b, data, n) ? xfail(p) : 0;
}

int tl_gpu_set(TlGpuProgram *p, int node, const double *values, int64_t n) {
    if (settable(p, node)) return -1;
    TlDType t = p->g->nodes[node].dtype;
    char *tmp = malloc((size_t)(n > 0 ? n : 1) * tl_interp_storage_size(t));
    if (!tmp) abort();
    for (int64_t i = 0; i < n; i++) store_double(t, tmp, i, values[i]);
    int rc = tl_gpu_set_raw(p, node, tmp, n);
    free(tmp);
    return rc;
}

int tl_gpu_set_named(TlGpuProgram *p, const char *name, const double *values, int64_t n) {
    int id = tl_graph_find(p->g, TL_GOP_INPUT, name);
    if (id < 0) id = tl_graph_find(p->g, TL_GOP_PARAM, name);
    if (id < 0) return perr(p, "no input or param named '%s'", name);
    return tl_gpu_set(p, id, values, n);
}

int tl_gpu_run(TlGpuProgram *p) {
    p->err[0] = 0;
    p->ran = 0;
    if (tl_gpuexec_run(p->x)) return xfail(p);
    p->ran = 1;
    return 0;
}

int tl_gpu_rerun(TlGpuProgram *p) {
    p->err[0] = 0;
    if (tl_gpuexec_rerun(p->x)) return xfail(p);
    p->ran = 1;
    return 0;
}

int tl_gpu_profile(TlGpuProgram *p, int on) {
    if (on) tl_gpuexec_profile(p->x, 0, p->err, sizeof p->err); /* from zero */
    return tl_gpuexec_profile(p->x, on, p->err, sizeof p->err);
}

int tl_gpu_kernel_ms(const TlGpuProgram *p, double *ms) {
    int n = p->desc->nkern;
    int64_t *l = calloc((size_t)n + 1, sizeof *l);
    if (!l) abort();
    int rc = tl_gpuexec_profile_times(p->x, ms, l);
    for (int k = 0; rc == 0 && k < n; k++) ms[k] = l[k] ? ms[k] / (double)l[k] : 0;
    free(l);
    return rc;
}

TlGpuLaunchKind tl_gpu_kernel_launch(const TlGpuProgram *p, int k) { return (TlGpuLaunchKind)p->desc->kern[k].launch; }

uint64_t tl_gpu_device_ptr(TlGpuProgram *p, int node) {
    if (!p->ran || node < 0 || node >= p->g->nnodes) return 0;
    int b = p->lp->node_buf[node];
    return b < 0 ? 0 : tl_gpuexec_ptr(p->x, b);
}

const TlTensor *tl_gpu_value(TlGpuProgram *p, int node) {
    if (!p->ran || node < 0 || node >= p->g->nnodes) return NULL;
    int b = p->lp->node_buf[node];
    if (b < 0 || !tl_gpuexec_ptr(p->x, b)) return NULL;
    const TlGNode *n = &p->g->nodes[node];
    TlTensor *t = &p->views[node];
    TlGDimBinding bind[64];
    int nb = p->nbind < 64 ? p->nbind : 64;
    for (int i = 0; i < nb; i++) bind[i].name = p->bind[i].name, bind[i].value = p->bind[i].value;
    t->dtype = n->dtype, t->rank = n->shape.rank, t->numel = 1;
    for (int i = 0; i < n->shape.rank; i++) {
        if (tl_gdim_eval(p->g, n->shape.dim[i], bind, nb, &t->dim[i])) return NULL;
        t->numel *= t->dim[i];
    }
    size_t bytes = (size_t)t->numel * tl_interp_storage_size(n->dtype);
    if (bytes + 1 > p->host_cap[node]) {
        free(p->host[node]);
        p->host[node] = malloc(bytes + 1);
        if (!p->host[node]) abort();
        p->host_cap[node] = bytes + 1;
    }
    if (tl_gpuexec_read(p->x, b, p->host[node], t->numel)) {
        xfail(p);
        return NULL;
    }
    t->data = p->host[node];
    return t;
}

const TlTensor *tl_gpu_output(TlGpuProgram *p, int k) {
    if (k < 0 || k >= p->g->noutputs) return NULL;
    return tl_gpu_value(p, p->g->outputs[k]);
}
