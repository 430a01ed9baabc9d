/* cpu.c — the CPU back end's driver: target machine, O3 pipeline, ORC LLJIT, buffers and
 * runs, and the text/object emitters. Code generation itself is in cpu_codegen.c. */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>

#include "cpu_internal.h"
#include "memplan.h"
#include "philox.h"
#include "pool.h"

/* ---- target ---- */

static pthread_once_t llvm_once = PTHREAD_ONCE_INIT;
static void llvm_init(void) {
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    LLVMInitializeNativeAsmParser();
}

static char *llvm_strdup(const char *s) { return LLVMCreateMessage(s ? s : ""); }

int tl_cpu_target_init(TlCpuTarget *t, const TlCpuOptions *o, char *err, int errn) {
    pthread_once(&llvm_once, llvm_init);
    memset(t, 0, sizeof *t);
    t->triple = LLVMGetDefaultTargetTriple();
    int host = !o || !o->cpu || !o->cpu[0];
    t->cpu = host ? LLVMGetHostCPUName() : llvm_strdup(o->cpu);
    char *hostf = host ? LLVMGetHostCPUFeatures() : llvm_strdup("");
    if (o && o->features && o->features[0]) {
        size_t n = strlen(hostf) + strlen(o->features) + 2;
        char *f = malloc(n);
        if (!f) abort();
        snprintf(f, n, "%s%s%s", hostf, hostf[0] ? "," : "", o->features);
        t->features = llvm_strdup(f);
        free(f);
        LLVMDisposeMessage(hostf);
    } else {
        t->features = hostf;
    }
    t->vector_width = o && o->vector_width > 0 ? o->vector_width : 512;
    t->gemm = !(o && o->no_gemm);
    t->opt_level = o && o->opt_level >= 0 && o->opt_level <= 3 ? o->opt_level : 3;
    if (!o) t->opt_level = 3;
    LLVMTargetRef target;
    char *msg = NULL;
    if (LLVMGetTargetFromTriple(t->triple, &target, &msg)) {
        if (err) snprintf(err, (size_t)errn, "no LLVM target for %s: %s", t->triple, msg ? msg : "");
        LLVMDisposeMessage(msg);
        tl_cpu_target_fini(t);
        return -1;
    }
    return 0;
}

void tl_cpu_target_fini(TlCpuTarget *t) {
    if (t->triple) LLVMDisposeMessage(t->triple);
    if (t->cpu) LLVMDisposeMessage(t->cpu);
    if (t->features) LLVMDisposeMessage(t->features);
    memset(t, 0, sizeof *t);
}

LLVMTargetMachineRef tl_cpu_target_machine(const TlCpuTarget *t, int jit, char *err, int errn) {
    LLVMTargetRef target;
    char *msg = NULL;
    if (LLVMGetTargetFromTriple(t->triple, &target, &msg)) {
        if (err) snprintf(err, (size_t)errn, "no LLVM target for %s: %s", t->triple, msg ? msg : "");
        LLVMDisposeMessage(msg);
        return NULL;
    }
    LLVMCodeGenOptLevel lvl = t->opt_level >= 3 ? LLVMCodeGenLevelAggressive : t->opt_level == 0 ? LLVMCodeGenLevelNone : LLVMCodeGenLevelDefault;
    return LLVMCreateTargetMachine(target, t->triple, t->cpu, t->features, lvl, LLVMRelocPIC,
                                   jit ? LLVMCodeModelJITDefault : LLVMCodeModelDefault);
}

/* Lower + generate + optimize a module for program lp in ctx. */
static LLVMModuleRef build_module(LLVMContextRef ctx, const TlLProgram *lp, const TlCpuTarget *t,
                                  LLVMTargetMachineRef tm, char *err, int errn) {
    LLVMModuleRef m = tl_cpu_codegen(ctx, lp, t, tm, err, errn);
    if (!m) return NULL;
    if (tl_cpu_optimize(m, tm, t->opt_level, err, errn)) {
        LLVMDisposeModule(m);
        return NULL;
    }
    return m;
}

/* ---- the parallel-for of JIT-run programs ---- */

typedef struct ParCtx { TlCpuKernelFn k; void **bufs; const int64_t *syms; } ParCtx;

static void par_body(void *ctx, int64_t begin, int64_t end, int tid) {
    (void)tid;
    ParCtx *c = ctx;
    c->k(c->bufs, c->syms, begin, end);
}

void tl_cpu_parfor(void *pool, TlCpuKernelFn k, void **bufs, const int64_t *syms, int64_t n) {
    if (n <= 0) return;
    ParCtx c = {k, bufs, syms};
    tl_pool_for(pool, n, par_body, &c);
}

/* ---- programs ---- */

typedef struct Binding { char *name; int64_t value; } Binding;

struct TlCpuProgram {
    const TlGraph *g;
    TlLProgram *lp;
    TlCpuTarget target;
    LLVMOrcLLJITRef jit;
    TlCpuMainFn main;
    TlPool *pool;
    Binding *bind; int nbind;
    int64_t *syms;
    void **slots;      /* the bufs array passed to tl_main */
    TlMemPlan *plan;   /* TEMP and STATE buffers in one arena (compiler/memplan.h) */
    int64_t *plan_syms;/* the symbol values the plan was made for */
    int reuse;         /* 0 when TL_MEMPLAN=0: every buffer has bytes of its own */
    int *keep, nkeep;  /* the outputs' buffers */
    unsigned char *arena;
    size_t arena_cap;
    int64_t *numel;
    void **given;      /* per top node: value set by the caller (storage form) */
    int64_t *given_n;
    TlTensor *views;   /* per top node */
    char err[512];
};

static int perr(TlCpuProgram *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    return -1;
}

static void set_error(char *err, int errn, const char *what, LLVMErrorRef e) {
    char *msg = LLVMGetErrorMessage(e);
    if (err) snprintf(err, (size_t)errn, "%s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
}

/* Symbols the generated code calls, defined from this process's own addresses (so they
 * resolve even when the executable does not export them dynamically). */
static int define_runtime_symbols(LLVMOrcLLJITRef jit, LLVMOrcJITDylibRef jd, char *err, int errn) {
    static const struct { const char *name; void (*fn)(void); } syms[] = {
#define S(f) {#f, (void (*)(void))f}
        S(tl_philox_uniform_at), S(tl_philox_normal_at),
        S(expf), S(exp), S(logf), S(log), S(tanhf), S(tanh), S(erff), S(erf),
        S(sinf), S(sin), S(cosf), S(cos), S(powf), S(pow),
#undef S
    };
    enum { N = sizeof syms / sizeof *syms };
    LLVMOrcCSymbolMapPair pairs[N];
    for (int i = 0; i < N; i++) {
        pairs[i].Name = LLVMOrcLLJITMangleAndIntern(jit, syms[i].name);
        pairs[i].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)syms[i].fn;
        pairs[i].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
        pairs[i].Sym.Flags.TargetFlags = 0;
    }
    LLVMErrorRef e = LLVMOrcJITDylibDefine(jd, LLVMOrcAbsoluteSymbols(pairs, N));
    if (e) { set_error(err, errn, "JIT", e); return -1; }
    return 0;
}

static int jit_program(TlCpuProgram *p, char *err, int errn) {
    LLVMTargetMachineRef tm = tl_cpu_target_machine(&p->target, 1, err, errn);
    if (!tm) return -1;
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    LLVMModuleRef m = build_module(LLVMOrcThreadSafeContextGetContext(tsc), p->lp, &p->target, tm, err, errn);
    if (!m) {
        LLVMDisposeTargetMachine(tm);
        LLVMOrcDisposeThreadSafeContext(tsc);
        return -1;
    }
    LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&p->jit, jb);
    if (e) {
        set_error(err, errn, "cannot create the JIT", e);
        LLVMDisposeModule(m);
        LLVMOrcDisposeThreadSafeContext(tsc);
        return -1;
    }
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(p->jit);
    LLVMOrcDefinitionGeneratorRef gen = NULL;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(p->jit), NULL, NULL);
    if (e) {
        set_error(err, errn, "JIT", e);
        LLVMDisposeModule(m);
        LLVMOrcDisposeThreadSafeContext(tsc);
        return -1;
    }
    LLVMOrcJITDylibAddGenerator(jd, gen);
    if (define_runtime_symbols(p->jit, jd, err, errn)) {
        LLVMDisposeModule(m);
        LLVMOrcDisposeThreadSafeContext(tsc);
        return -1;
    }
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m, tsc);
    LLVMOrcDisposeThreadSafeContext(tsc);
    e = LLVMOrcLLJITAddLLVMIRModule(p->jit, jd, tsm);
    if (e) {
        set_error(err, errn, "JIT", e);
        LLVMOrcDisposeThreadSafeModule(tsm);
        return -1;
    }
    LLVMOrcExecutorAddress addr = 0;
    e = LLVMOrcLLJITLookup(p->jit, &addr, "tl_main");
    if (e) { set_error(err, errn, "JIT lookup of tl_main", e); return -1; }
    p->main = (TlCpuMainFn)(uintptr_t)addr;
    return 0;
}

TlCpuProgram *tl_cpu_compile(const TlGraph *g, const TlCpuOptions *o, char *err, int errn) {
    TlLProgram *lp = tl_loops_lower(g, err, errn);
    if (!lp) return NULL;
    return tl_cpu_compile_loops(g, lp, o, err, errn);
}

TlCpuProgram *tl_cpu_compile_loops(const TlGraph *g, TlLProgram *lp, const TlCpuOptions *o, char *err, int errn) {
    TlCpuProgram *p = calloc(1, sizeof *p);
    if (!p) abort();
    tl_loops_colsum(lp), tl_loops_rowsum(lp);
    p->g = g, p->lp = lp;
    size_t nb = (size_t)lp->nbuf + 1, nn = (size_t)g->nnodes + 1;
    p->syms = calloc((size_t)lp->nsyms + 1, sizeof *p->syms);
    p->slots = calloc(nb, sizeof *p->slots), p->numel = calloc(nb, sizeof *p->numel);
    p->plan_syms = calloc((size_t)lp->nsyms + 1, sizeof *p->plan_syms);
    p->keep = calloc((size_t)g->noutputs + 1, sizeof *p->keep);
    p->nkeep = tl_memplan_outputs(lp, p->keep, g->noutputs);
    const char *mp = getenv("TL_MEMPLAN");
    p->reuse = !(mp && strcmp(mp, "0") == 0);
    p->given = calloc(nn, sizeof *p->given), p->given_n = calloc(nn, sizeof *p->given_n);
    p->views = calloc(nn, sizeof *p->views);
    if (!p->syms || !p->slots || !p->plan_syms || !p->keep || !p->numel || !p->given || !p->given_n || !p->views) abort();
    if (tl_cpu_target_init(&p->target, o, err, errn) || jit_program(p, err, errn)) {
        tl_cpu_free(p);
        return NULL;
    }
    p->pool = tl_pool_create(o ? o->threads : 0);
    return p;
}

void tl_cpu_free(TlCpuProgram *p) {
    if (!p) return;
    if (p->jit) LLVMOrcDisposeLLJIT(p->jit);
    tl_cpu_target_fini(&p->target);
    tl_pool_destroy(p->pool);
    if (p->lp) {
        for (int i = 0; i < p->g->nnodes; i++) free(p->given[i]);
    }
    for (int i = 0; i < p->nbind; i++) free(p->bind[i].name);
    tl_memplan_free(p->plan);
    free(p->arena), free(p->plan_syms), free(p->keep);
    free(p->bind), free(p->syms), free(p->slots), free(p->numel);
    free(p->given), free(p->given_n), free(p->views);
    tl_loops_free(p->lp);
    free(p);
}

const TlLProgram *tl_cpu_loops(const TlCpuProgram *p) { return p->lp; }
const char *tl_cpu_error(const TlCpuProgram *p) { return p->err[0] ? p->err : NULL; }

void tl_cpu_set_threads(TlCpuProgram *p, int threads) {
    tl_pool_destroy(p->pool);
    p->pool = tl_pool_create(threads);
}

void tl_cpu_bind(TlCpuProgram *p, const char *sym, int64_t value) {
    for (int i = 0; i < p->nbind; i++)
        if (strcmp(p->bind[i].name, sym) == 0) { p->bind[i].value = value; return; }
    Binding *nb = realloc(p->bind, sizeof *nb * (size_t)(p->nbind + 1));
    if (!nb) abort();
    p->bind = nb;
    nb[p->nbind].name = strdup(sym), nb[p->nbind].value = value;
    if (!nb[p->nbind].name) abort();
    p->nbind++;
}

static int settable(TlCpuProgram *p, int node) {
    if (node < 0 || node >= p->g->nnodes) return perr(p, "no node %d", node);
    TlGOp op = p->g->nodes[node].op;
    if (op != TL_GOP_INPUT && op != TL_GOP_PARAM) return perr(p, "%%%d: only inputs and params can be set", node);
    return 0;
}

static void *given_buf(TlCpuProgram *p, int node, int64_t n) {
    size_t es = tl_interp_storage_size(p->g->nodes[node].dtype);
    if (p->given[node] && p->given_n[node] == n) return p->given[node]; /* no malloc per step */
    free(p->given[node]);
    size_t bytes = ((size_t)(n > 0 ? n : 1) * es + 63) / 64 * 64;
    p->given[node] = aligned_alloc(64, bytes);
    if (!p->given[node]) abort();
    p->given_n[node] = n;
    return p->given[node];
}

/* A double in the interpreter's storage form of dtype t. */
static void store_double(TlDType t, void *dst, int64_t i, double v) {
    switch (t) {
    case TL_F64: ((double *)dst)[i] = v; break;
    case TL_I32: ((int32_t *)dst)[i] = (int32_t)v; break;
    case TL_I64: ((int64_t *)dst)[i] = (int64_t)v; break;
    case TL_BOOL: ((uint8_t *)dst)[i] = v != 0; break;
    default: ((float *)dst)[i] = (float)tl_interp_round(t, v); break;
    }
}

int tl_cpu_set(TlCpuProgram *p, int node, const double *values, int64_t n) {
    if (settable(p, node)) return -1;
    void *d = given_buf(p, node, n);
    for (int64_t i = 0; i < n; i++) store_double(p->g->nodes[node].dtype, d, i, values[i]);
    return 0;
}

int tl_cpu_set_named(TlCpuProgram *p, const char *name, const double *values, int64_t n) {
    int id = tl_graph_find(p->g, TL_GOP_INPUT, name);
    if (id < 0) id = tl_graph_find(p->g, TL_GOP_PARAM, name);
    if (id < 0) return perr(p, "no input or param named '%s'", name);
    return tl_cpu_set(p, id, values, n);
}

int tl_cpu_set_raw(TlCpuProgram *p, int node, const void *data, int64_t n) {
    if (settable(p, node)) return -1;
    memcpy(given_buf(p, node, n), data, (size_t)n * tl_interp_storage_size(p->g->nodes[node].dtype));
    return 0;
}

/* Plans the TEMP and STATE buffers into one arena when the symbol values are new: the
 * arena only grows, so runs at the same sizes allocate nothing. */
static int replan(TlCpuProgram *p) {
    const TlLProgram *lp = p->lp;
    size_t ns = sizeof *p->syms * (size_t)lp->nsyms;
    if (p->plan && (ns == 0 || memcmp(p->plan_syms, p->syms, ns) == 0)) return 0;
    for (int i = 0; i < lp->nbuf; i++)
        if (tl_loops_eval(lp, lp->buf[i].numel, p->syms) < 0) return perr(p, "negative size for buffer b%d", i);
    tl_memplan_free(p->plan);
    p->plan = tl_memplan_ex(lp, p->syms, p->keep, p->nkeep, p->reuse);
    if (!p->plan) return perr(p, "cannot plan the buffers");
    if (ns) memcpy(p->plan_syms, p->syms, ns);
    size_t bytes = (size_t)p->plan->arena > 64 ? (size_t)p->plan->arena : 64;
    if (bytes > p->arena_cap) {
        free(p->arena);
        p->arena = aligned_alloc(64, bytes);
        p->arena_cap = p->arena ? bytes : 0;
        if (!p->arena) {
            tl_memplan_free(p->plan);
            p->plan = NULL;
            return perr(p, "out of memory for %zu bytes", bytes);
        }
    }
    return 0;
}

/* The memory plan of the last run (NULL before the first). */
const TlMemPlan *tl_cpu_memplan(const TlCpuProgram *p) { return p->plan; }

int tl_cpu_run(TlCpuProgram *p) {
    const TlLProgram *lp = p->lp;
    p->err[0] = 0;
    for (int s = 0; s < lp->nsyms; s++) {
        int found = 0;
        for (int i = 0; i < p->nbind; i++)
            if (strcmp(p->bind[i].name, lp->syms[s]) == 0) p->syms[s] = p->bind[i].value, found = 1;
        if (!found) return perr(p, "dim symbol '%s' is not bound", lp->syms[s]);
    }
    if (replan(p)) return -1;
    for (int i = 0; i < lp->nbuf; i++) {
        const TlLBuf *b = &lp->buf[i];
        int64_t n = tl_loops_eval(lp, b->numel, p->syms);
        if (n < 0) return perr(p, "negative size for buffer b%d", i);
        p->numel[i] = n;
        if (b->kind == TL_LB_ALIAS || b->kind == TL_LB_CONST) continue;
        if (b->kind == TL_LB_INPUT || b->kind == TL_LB_PARAM) {
            if (!p->given[b->node]) return perr(p, "input '%s' (%%%d) was not set", b->name, b->node);
            if (p->given_n[b->node] != n)
                return perr(p, "input '%s': value has %lld elements, shape needs %lld", b->name, (long long)p->given_n[b->node], (long long)n);
            p->slots[i] = p->given[b->node];
            continue;
        }
        p->slots[i] = p->arena + p->plan->offset[i];
        if (b->kind == TL_LB_STATE) memset(p->slots[i], 0, (size_t)p->plan->bytes[i]);
    }
    p->main(p->slots, p->syms, tl_cpu_parfor, p->pool);
    return 0;
}

const TlTensor *tl_cpu_value(TlCpuProgram *p, int node) {
    if (node < 0 || node >= p->g->nnodes) return NULL;
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
    t->data = p->slots[b];
    return t;
}

const TlTensor *tl_cpu_output(TlCpuProgram *p, int k) {
    if (k < 0 || k >= p->g->noutputs) return NULL;
    return tl_cpu_value(p, p->g->outputs[k]);
}

/* ---- emission ---- */

/* The part of an assembly listing that defines `fn`: from its label to .Lfunc_end. */
static char *asm_function(const char *text, const char *fn) {
    size_t n = strlen(fn);
    const char *s = text;
    while ((s = strstr(s, fn))) {
        if ((s == text || s[-1] == '\n') && s[n] == ':') break;
        s += n;
    }
    if (!s) return NULL;
    const char *e = strstr(s, ".Lfunc_end");
    if (e) e = strchr(e, '\n');
    size_t len = e ? (size_t)(e - s + 1) : strlen(s);
    char *out = malloc(len + 1);
    if (!out) abort();
    memcpy(out, s, len);
    out[len] = 0;
    return out;
}

static char *emit_text(const TlGraph *g, const TlCpuOptions *o, const char *kernel, int as_asm, char *err, int errn) {
    TlLProgram *lp = tl_loops_lower(g, err, errn);
    if (!lp) return NULL;
    tl_loops_colsum(lp), tl_loops_rowsum(lp);
    TlCpuTarget t;
    char *out = NULL;
    if (tl_cpu_target_init(&t, o, err, errn)) { tl_loops_free(lp); return NULL; }
    LLVMTargetMachineRef tm = tl_cpu_target_machine(&t, 0, err, errn);
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef m = tm ? build_module(ctx, lp, &t, tm, err, errn) : NULL;
    if (m && !as_asm) {
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
        LLVMMemoryBufferRef mb = NULL;
        char *msg = NULL;
        if (LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMAssemblyFile, &msg, &mb)) {
            if (err) snprintf(err, (size_t)errn, "LLVM code generation failed: %s", msg ? msg : "");
            LLVMDisposeMessage(msg);
        } else {
            size_t n = LLVMGetBufferSize(mb);
            char *all = malloc(n + 1);
            if (!all) abort();
            memcpy(all, LLVMGetBufferStart(mb), n);
            all[n] = 0;
            LLVMDisposeMemoryBuffer(mb);
            if (kernel) {
                out = asm_function(all, kernel);
                free(all);
                if (!out && err) snprintf(err, (size_t)errn, "no kernel named '%s'", kernel);
            } else {
                out = all;
            }
        }
    }
    if (m) LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
    if (tm) LLVMDisposeTargetMachine(tm);
    tl_cpu_target_fini(&t);
    tl_loops_free(lp);
    return out;
}

char *tl_cpu_emit_llvm(const TlGraph *g, const TlCpuOptions *o, const char *kernel, char *err, int errn) {
    return emit_text(g, o, kernel, 0, err, errn);
}

char *tl_cpu_emit_asm(const TlGraph *g, const TlCpuOptions *o, const char *kernel, char *err, int errn) {
    return emit_text(g, o, kernel, 1, err, errn);
}

/* Prefixes every symbol the module defines for the outside (tl_main -> PREFIXmain with
 * prefix "tl_step_", kernels, constant data), so several programs link into one binary. */
static void prefix_symbols(LLVMModuleRef m, const char *prefix) {
    char name[512];
    for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
        if (LLVMIsDeclaration(f) || LLVMGetLinkage(f) != LLVMExternalLinkage) continue;
        size_t n;
        const char *old = LLVMGetValueName2(f, &n);
        const char *rest = strncmp(old, "tl_", 3) == 0 ? old + 3 : old;
        int len = snprintf(name, sizeof name, "%s%s", prefix, rest);
        LLVMSetValueName2(f, name, (size_t)len);
    }
    for (LLVMValueRef g = LLVMGetFirstGlobal(m); g; g = LLVMGetNextGlobal(g)) {
        if (LLVMIsDeclaration(g) || LLVMGetLinkage(g) != LLVMExternalLinkage) continue;
        size_t n;
        const char *old = LLVMGetValueName2(g, &n);
        int len = snprintf(name, sizeof name, "%s%s", prefix, old);
        LLVMSetValueName2(g, name, (size_t)len);
    }
}

int tl_cpu_emit_object_as(const TlCpuProgram *p, const char *path, const char *prefix, char *err, int errn) {
    LLVMTargetMachineRef tm = tl_cpu_target_machine(&p->target, 0, err, errn);
    if (!tm) return -1;
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef m = build_module(ctx, p->lp, &p->target, tm, err, errn);
    int rc = -1;
    if (m) {
        if (prefix) prefix_symbols(m, prefix);
        char *msg = NULL;
        if (LLVMTargetMachineEmitToFile(tm, m, (char *)path, LLVMObjectFile, &msg)) {
            if (err) snprintf(err, (size_t)errn, "%s: cannot write the object: %s", path, msg ? msg : "");
            LLVMDisposeMessage(msg);
        } else {
            rc = 0;
        }
        LLVMDisposeModule(m);
    }
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
    return rc;
}

int tl_cpu_emit_object(const TlCpuProgram *p, const char *path, char *err, int errn) {
    LLVMTargetMachineRef tm = tl_cpu_target_machine(&p->target, 0, err, errn);
    if (!tm) return -1;
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef m = build_module(ctx, p->lp, &p->target, tm, err, errn);
    int rc = -1;
    if (m) {
        char *msg = NULL;
        if (LLVMTargetMachineEmitToFile(tm, m, path, LLVMObjectFile, &msg)) {
            if (err) snprintf(err, (size_t)errn, "%s: cannot write the object: %s", path, msg ? msg : "");
            LLVMDisposeMessage(msg);
        } else {
            rc = 0;
        }
        LLVMDisposeModule(m);
    }
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
    return rc;
}
