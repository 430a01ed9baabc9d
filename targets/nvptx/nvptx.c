/* nvptx.c — the NVPTX back end's driver: PTX emission (--emit=ptx) and GPU programs that
 * keep their buffers on the device and run the Loop IR host program (launches in order,
 * copies, aliases, scan loops) through runtime/cuda. Code generation is nvptx_codegen.c. */
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

/* ---- programs ---- */

typedef struct Binding { char *name; int64_t value; } Binding;

typedef struct GpuKernel {
    TlCuFunction fn;
    TlGpuLaunchKind kind;
    int nused;
    int *used;   /* buffer ids, in parameter order */
} GpuKernel;

struct TlGpuProgram {
    const TlGraph *g;
    TlLProgram *lp;
    NvTarget target;
    char *ptx;
    TlCuModule mod;
    GpuKernel *kern;
    Binding *bind; int nbind;
    int64_t *syms, *vars;
    TlCuPtr *slots, *own;  /* per buffer: current address / own allocation */
    size_t *cap;
    int64_t *numel;
    int consts_ready;
    void **given;          /* per top node: value set by the caller (storage form) */
    int64_t *given_n;
    char *dirty;           /* per top node: given changed since the last upload */
    void **host;           /* per top node: downloaded value */
    size_t *host_cap;
    TlTensor *views;
    TlCuPtr scratch; size_t scratch_cap;
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

/* An i64 host expression over dim symbols and host loop variables. */
static int64_t heval(const TlGpuProgram *p, int e) {
    const TlLExpr *x = &p->lp->ex[e];
    switch (x->kind) {
    case TL_LE_INT: return x->ival;
    case TL_LE_SYM: return p->syms[x->sym];
    case TL_LE_VAR: return p->vars[x->var];
    case TL_LE_CAST: return heval(p, x->a);
    case TL_LE_SELECT: return heval(p, x->a) ? heval(p, x->b) : heval(p, x->c);
    case TL_LE_UN: return x->op == TL_LOP_NEG ? -heval(p, x->a) : heval(p, x->a) < 0 ? -heval(p, x->a) : heval(p, x->a);
    case TL_LE_BIN: {
        int64_t a = heval(p, x->a), b = heval(p, x->b);
        switch (x->op) {
        case TL_LOP_ADD: return a + b;
        case TL_LOP_SUB: return a - b;
        case TL_LOP_MUL: return a * b;
        case TL_LOP_IDIV: case TL_LOP_DIV: return b ? a / b : 0;
        case TL_LOP_IMOD: return b ? a % b : 0;
        case TL_LOP_MIN: return a < b ? a : b;
        case TL_LOP_MAX: return a > b ? a : b;
        case TL_LOP_EQ: return a == b;
        case TL_LOP_NE: return a != b;
        case TL_LOP_LT: return a < b;
        case TL_LOP_LE: return a <= b;
        case TL_LOP_GT: return a > b;
        case TL_LOP_GE: return a >= b;
        case TL_LOP_AND: return a && b;
        case TL_LOP_OR: return a || b;
        default: return 0;
        }
    }
    default: return 0;
    }
}

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
    tl_nvptx_target(&p->target, o);
    if (!o || !o->arch || !o->arch[0]) { /* the device's own architecture */
        int major, minor;
        tl_cuda_capability(&major, &minor);
        if (major >= 9) snprintf(p->target.arch, sizeof p->target.arch, "sm_90");
        else if (major >= 5) snprintf(p->target.arch, sizeof p->target.arch, "sm_%d%d", major, minor);
    }
    size_t nb = (size_t)lp->nbuf + 1, nn = (size_t)g->nnodes + 1;
    p->syms = calloc((size_t)lp->nsyms + 1, sizeof *p->syms);
    p->vars = calloc((size_t)lp->nvars + 1, sizeof *p->vars);
    p->slots = calloc(nb, sizeof *p->slots), p->own = calloc(nb, sizeof *p->own);
    p->cap = calloc(nb, sizeof *p->cap), p->numel = calloc(nb, sizeof *p->numel);
    p->given = calloc(nn, sizeof *p->given), p->given_n = calloc(nn, sizeof *p->given_n);
    p->dirty = calloc(nn, 1), p->host = calloc(nn, sizeof *p->host), p->host_cap = calloc(nn, sizeof *p->host_cap);
    p->views = calloc(nn, sizeof *p->views);
    p->kern = calloc((size_t)lp->nkern + 1, sizeof *p->kern);
    if (!p->syms || !p->vars || !p->slots || !p->own || !p->cap || !p->numel || !p->given || !p->given_n || !p->dirty ||
        !p->host || !p->host_cap || !p->views || !p->kern)
        abort();
    LLVMTargetMachineRef tm = tl_nvptx_target_machine(&p->target, err, errn);
    if (!tm) { tl_gpu_free(p); return NULL; }
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef m = tl_nvptx_build(ctx, lp, &p->target, tm, err, errn);
    if (m) p->ptx = tl_nvptx_module_ptx(tm, m, err, errn), LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
    if (!p->ptx || tl_cuda_module_load(p->ptx, &p->mod, err, errn)) { tl_gpu_free(p); return NULL; }
    char *used = malloc(nb);
    if (!used) abort();
    for (int k = 0; k < lp->nkern; k++) {
        GpuKernel *gk = &p->kern[k];
        gk->kind = tl_nvptx_plan(lp, k, &p->target, used);
        gk->used = malloc(sizeof *gk->used * nb);
        if (!gk->used) abort();
        for (int i = 0; i < lp->nbuf; i++)
            if (used[i]) gk->used[gk->nused++] = i;
        if (tl_cuda_function(p->mod, lp->kern[k].name, &gk->fn, err, errn)) {
            free(used);
            tl_gpu_free(p);
            return NULL;
        }
    }
    free(used);
    return p;
}

void tl_gpu_free(TlGpuProgram *p) {
    if (!p) return;
    if (p->lp) {
        for (int i = 0; i < p->lp->nbuf; i++) tl_cuda_free(p->own[i]);
        for (int k = 0; k < p->lp->nkern; k++) free(p->kern[k].used);
        for (int i = 0; i < p->g->nnodes; i++) free(p->given[i]), free(p->host[i]);
    }
    tl_cuda_free(p->scratch);
    tl_cuda_module_unload(p->mod);
    for (int i = 0; i < p->nbind; i++) free(p->bind[i].name);
    free(p->bind), free(p->syms), free(p->vars), free(p->slots), free(p->own), free(p->cap), free(p->numel);
    free(p->given), free(p->given_n), free(p->dirty), free(p->host), free(p->host_cap), free(p->views), free(p->kern);
    free(p->ptx);
    tl_loops_free(p->lp);
    free(p);
}

const TlLProgram *tl_gpu_loops(const TlGpuProgram *p) { return p->lp; }
const char *tl_gpu_ptx(const TlGpuProgram *p) { return p->ptx; }
const char *tl_gpu_error(const TlGpuProgram *p) { return p->err[0] ? p->err : NULL; }

void tl_gpu_bind(TlGpuProgram *p, const char *sym, int64_t value) {
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

static void *given_buf(TlGpuProgram *p, int node, int64_t n) {
    size_t es = tl_interp_storage_size(p->g->nodes[node].dtype);
    free(p->given[node]);
    p->given[node] = malloc((size_t)(n > 0 ? n : 1) * es);
    if (!p->given[node]) abort();
    p->given_n[node] = n;
    p->dirty[node] = 1;
    return p->given[node];
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

int tl_gpu_set(TlGpuProgram *p, int node, const double *values, int64_t n) {
    if (settable(p, node)) return -1;
    void *d = given_buf(p, node, n);
    for (int64_t i = 0; i < n; i++) store_double(p->g->nodes[node].dtype, d, i, values[i]);
    return 0;
}

int tl_gpu_set_named(TlGpuProgram *p, const char *name, const double *values, int64_t n) {
    int id = tl_graph_find(p->g, TL_GOP_INPUT, name);
    if (id < 0) id = tl_graph_find(p->g, TL_GOP_PARAM, name);
    if (id < 0) return perr(p, "no input or param named '%s'", name);
    return tl_gpu_set(p, id, values, n);
}

int tl_gpu_set_raw(TlGpuProgram *p, int node, const void *data, int64_t n) {
    if (settable(p, node)) return -1;
    memcpy(given_buf(p, node, n), data, (size_t)n * tl_interp_storage_size(p->g->nodes[node].dtype));
    return 0;
}

/* The device allocation of buffer i, at least `bytes` long. */
static int ensure(TlGpuProgram *p, int i, size_t bytes) {
    bytes = (bytes + 255) / 256 * 256;
    if (bytes == 0) bytes = 256;
    if (bytes <= p->cap[i]) return 0;
    tl_cuda_free(p->own[i]);
    p->own[i] = 0, p->cap[i] = 0;
    if (tl_cuda_alloc(&p->own[i], bytes, p->err, sizeof p->err)) return -1;
    p->cap[i] = bytes;
    return 0;
}

static int upload_consts(TlGpuProgram *p) {
    const TlLProgram *lp = p->lp;
    for (int i = 0; i < lp->nbuf; i++) {
        const TlLBuf *b = &lp->buf[i];
        if (b->kind != TL_LB_CONST) continue;
        int64_t n = heval(p, b->numel);
        size_t es = tl_ltype_size(b->elem);
        char *tmp = malloc((size_t)(n > 0 ? n : 1) * es);
        if (!tmp) abort();
        for (int64_t j = 0; j < n; j++) {
            double v = tl_interp_round(b->dtype, b->init[j]);
            switch (b->elem) {
            case TL_LT_F64: ((double *)tmp)[j] = v; break;
            case TL_LT_F32: ((float *)tmp)[j] = (float)v; break;
            case TL_LT_I32: ((int32_t *)tmp)[j] = (int32_t)v; break;
            case TL_LT_I64: ((int64_t *)tmp)[j] = (int64_t)v; break;
            default: ((uint8_t *)tmp)[j] = v != 0; break;
            }
        }
        int rc = ensure(p, i, (size_t)n * es) || tl_cuda_htod(p->own[i], tmp, (size_t)n * es, p->err, sizeof p->err);
        free(tmp);
        if (rc) return -1;
    }
    p->consts_ready = 1;
    return 0;
}

static unsigned blocks_for(int64_t threads, int64_t block) {
    int64_t b = (threads + block - 1) / block;
    return (unsigned)(b > (1 << 20) ? (1 << 20) : b < 1 ? 1 : b);
}

static int launch(TlGpuProgram *p, int ki) {
    const TlLKernel *k = &p->lp->kern[ki];
    GpuKernel *gk = &p->kern[ki];
    int64_t n = k->par_extent >= 0 ? heval(p, k->par_extent) : 1;
    TlCuDim grid = {1, 1, 1}, block = {TL_GPU_BLOCK, 1, 1};
    switch (gk->kind) {
    case TL_GPU_LAUNCH_FLAT: /* the block is schedule data (<= maxntidx: tune_space.c checks) */
        if (n <= 0) return 0;
        if (k->gpu_block > 0 && k->gpu_block <= TL_GPU_BLOCK) block.x = (unsigned)k->gpu_block;
        if (k->par_extent < 0) block.x = 1;
        grid.x = blocks_for(n, block.x);
        break;
    case TL_GPU_LAUNCH_WARP:
        if (n <= 0) return 0;
        grid.x = blocks_for(n * 32, TL_GPU_BLOCK);
        break;
    case TL_GPU_LAUNCH_GEMM: {
        int64_t m = heval(p, k->gemm.m), nn = heval(p, k->gemm.n), b = heval(p, k->gemm.batch);
        if (m <= 0 || nn <= 0 || b <= 0) return 0;
        if (b > 65535) return perr(p, "%s: batch of %lld matmuls exceeds the grid's z limit", k->name, (long long)b);
        grid.x = (unsigned)((nn + TL_GEMM_BN - 1) / TL_GEMM_BN), grid.y = (unsigned)((m + TL_GEMM_BM - 1) / TL_GEMM_BM);
        grid.z = (unsigned)b;
        break;
    }
    }
    void *args[512];
    int na = 0;
    if (gk->nused + p->lp->nsyms + 1 > 512) return perr(p, "%s: too many kernel parameters", k->name);
    for (int i = 0; i < gk->nused; i++) args[na++] = &p->slots[gk->used[i]];
    for (int i = 0; i < p->lp->nsyms; i++) args[na++] = &p->syms[i];
    args[na++] = &n;
    if (tl_cuda_launch(gk->fn, grid, block, 0, args, p->err, sizeof p->err)) return -1;
    return 0;
}

static int copy(TlGpuProgram *p, const TlLHost *o) {
    int64_t nbytes = heval(p, o->nbytes);
    if (nbytes <= 0) return 0;
    TlCuPtr d = p->slots[o->dst] + (TlCuPtr)heval(p, o->dst_off), s = p->slots[o->src] + (TlCuPtr)heval(p, o->src_off);
    if (d == s) return 0;
    if ((d < s && d + (TlCuPtr)nbytes > s) || (s < d && s + (TlCuPtr)nbytes > d)) { /* overlapping: memmove */
        if ((size_t)nbytes > p->scratch_cap) {
            tl_cuda_free(p->scratch);
            p->scratch = 0, p->scratch_cap = 0;
            if (tl_cuda_alloc(&p->scratch, (size_t)nbytes, p->err, sizeof p->err)) return -1;
            p->scratch_cap = (size_t)nbytes;
        }
        if (tl_cuda_dtod(p->scratch, s, (size_t)nbytes, p->err, sizeof p->err)) return -1;
        s = p->scratch;
    }
    return tl_cuda_dtod(d, s, (size_t)nbytes, p->err, sizeof p->err);
}

static int exec_host(TlGpuProgram *p, int h) {
    for (; h >= 0; h = p->lp->host[h].next) {
        const TlLHost *o = &p->lp->host[h];
        switch (o->kind) {
        case TL_LH_KERNEL:
            if (launch(p, o->kernel)) return -1;
            break;
        case TL_LH_COPY:
            if (copy(p, o)) return -1;
            break;
        case TL_LH_ALIAS: p->slots[o->dst] = p->slots[o->src] + (TlCuPtr)heval(p, o->src_off); break;
        case TL_LH_LOOP: {
            int64_t cnt = heval(p, o->count);
            for (int64_t s = 0; s < cnt; s++) {
                p->vars[o->var] = o->reverse ? cnt - 1 - s : s;
                if (exec_host(p, o->body)) return -1;
            }
            break;
        }
        }
    }
    return 0;
}

static int prepare(TlGpuProgram *p) {
    const TlLProgram *lp = p->lp;
    p->err[0] = 0;
    if (tl_cuda_open(p->err, sizeof p->err)) return -1;
    for (int s = 0; s < lp->nsyms; s++) {
        int found = 0;
        for (int i = 0; i < p->nbind; i++)
            if (strcmp(p->bind[i].name, lp->syms[s]) == 0) p->syms[s] = p->bind[i].value, found = 1;
        if (!found) return perr(p, "dim symbol '%s' is not bound", lp->syms[s]);
    }
    if (!p->consts_ready && upload_consts(p)) return -1;
    for (int i = 0; i < lp->nbuf; i++) {
        const TlLBuf *b = &lp->buf[i];
        int64_t n = heval(p, b->numel);
        if (n < 0) return perr(p, "negative size for buffer b%d", i);
        p->numel[i] = n;
        if (b->kind == TL_LB_ALIAS) continue;
        size_t bytes = (size_t)n * tl_ltype_size(b->elem);
        if (b->kind == TL_LB_CONST) { p->slots[i] = p->own[i]; continue; }
        if (b->kind == TL_LB_INPUT || b->kind == TL_LB_PARAM) {
            if (!p->given[b->node]) return perr(p, "input '%s' (%%%d) was not set", b->name, b->node);
            if (p->given_n[b->node] != n)
                return perr(p, "input '%s': value has %lld elements, shape needs %lld", b->name, (long long)p->given_n[b->node], (long long)n);
            size_t old = p->cap[i];
            if (ensure(p, i, bytes)) return -1;
            if (p->dirty[b->node] || old != p->cap[i]) {
                if (tl_cuda_htod(p->own[i], p->given[b->node], bytes, p->err, sizeof p->err)) return -1;
                p->dirty[b->node] = 0;
            }
        } else {
            if (ensure(p, i, bytes)) return -1;
            if (b->kind == TL_LB_STATE && tl_cuda_memset(p->own[i], 0, p->cap[i], p->err, sizeof p->err)) return -1;
        }
        p->slots[i] = p->own[i];
    }
    return 0;
}

int tl_gpu_run(TlGpuProgram *p) {
    p->ran = 0;
    if (prepare(p) || exec_host(p, p->lp->entry) || tl_cuda_sync(p->err, sizeof p->err)) return -1;
    p->ran = 1;
    return 0;
}

int tl_gpu_rerun(TlGpuProgram *p) {
    if (!p->ran) return tl_gpu_run(p);
    p->err[0] = 0;
    for (int i = 0; i < p->lp->nbuf; i++)
        if (p->lp->buf[i].kind != TL_LB_ALIAS) p->slots[i] = p->own[i];
    return exec_host(p, p->lp->entry);
}

TlGpuLaunchKind tl_gpu_kernel_launch(const TlGpuProgram *p, int k) { return p->kern[k].kind; }

uint64_t tl_gpu_device_ptr(TlGpuProgram *p, int node) {
    if (!p->ran || node < 0 || node >= p->g->nnodes) return 0;
    int b = p->lp->node_buf[node];
    return b < 0 ? 0 : p->slots[b];
}

const TlTensor *tl_gpu_value(TlGpuProgram *p, int node) {
    if (!p->ran || node < 0 || node >= p->g->nnodes) return NULL;
    int b = p->lp->node_buf[node];
    if (b < 0 || !p->slots[b]) return NULL;
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
    if (tl_cuda_dtoh(p->host[node], p->slots[b], bytes, p->err, sizeof p->err)) return NULL;
    t->data = p->host[node];
    return t;
}

const TlTensor *tl_gpu_output(TlGpuProgram *p, int k) {
    if (k < 0 || k >= p->g->noutputs) return NULL;
    return tl_gpu_value(p, p->g->outputs[k]);
}
