/* tune_bench.c — measuring one kernel on its own (tune.h: TlTuneBench).
 *
 * A bench program is the kernel's Loop IR program cut down to that kernel:
 *   host {
 *     loop [0, __tune_fill) { run fill kernels }   every buffer the kernel reads or writes
 *                                                   gets deterministic values
 *     loop [0, __tune_reps) { run K }              the kernel, R times per timed sample
 *   }
 * Inputs, params and every buffer the kernel touches become plain temporaries of the
 * bench, so it needs no caller data; buffers it does not touch get size 0. Binding
 * __tune_fill = 1, __tune_reps = 1 gives one checked run; __tune_fill = 0 and
 * __tune_reps = R a timed sample of R runs, with nothing else in the measurement. */
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/cpu.h"
#include "tune.h"

#define FILL_SYM "__tune_fill"
#define REPS_SYM "__tune_reps"

struct TlTuneBench {
    const TlGraph *g;
    TlLProgram *tmpl;        /* the bench program (kernel 0 = the kernel), default schedule */
    int64_t *syms;           /* values of tmpl's syms (with fill/reps last) */
    int nsyms;
    int *outs;               /* buffers the kernel writes */
    int nouts;
    void **ref;              /* the default schedule's output per out buffer */
    size_t *refbytes;
    TlTuneMeasureOpts o;
    int pinned;
    cpu_set_t saved;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

static void *dup_array(const void *a, size_t n) {
    void *p = xmalloc(n);
    if (n) memcpy(p, a, n);
    return p;
}

/* A deep copy of p's pools with kernel k as the only kernel (index 0) and no host ops. */
static TlLProgram *clone_one(const TlLProgram *p, int k) {
    TlLProgram *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->ex = dup_array(p->ex, sizeof *p->ex * (size_t)p->nex), c->nex = c->excap = p->nex;
    c->st = dup_array(p->st, sizeof *p->st * (size_t)p->nst), c->nst = c->stcap = p->nst;
    c->buf = dup_array(p->buf, sizeof *p->buf * (size_t)p->nbuf), c->nbuf = c->bufcap = p->nbuf;
    c->syms = xmalloc(sizeof *p->syms * (size_t)(p->nsyms + 2)), c->nsyms = p->nsyms;
    if (p->nsyms) memcpy(c->syms, p->syms, sizeof *p->syms * (size_t)p->nsyms);
    c->symcap = p->nsyms + 2;
    int nn = p->g ? p->g->nnodes : 0;
    c->node_buf = p->node_buf ? dup_array(p->node_buf, sizeof(int) * (size_t)nn) : NULL;
    c->kern = xmalloc(sizeof *c->kern * 4), c->kerncap = 4, c->nkern = 1;
    c->kern[0] = p->kern[k];
    c->kern[0].local_type = dup_array(p->kern[k].local_type, sizeof(TlLType) * (size_t)p->kern[k].nlocals);
    c->host = NULL, c->nhost = c->hostcap = 0;
    c->nvars = p->nvars, c->entry = -1, c->fuse = p->fuse, c->g = p->g;
    return c;
}

/* Deep copy of a whole program (for tl_tune_graph's final whole-program timing). */
TlLProgram *tl_tune_clone_program(const TlLProgram *p);
TlLProgram *tl_tune_clone_program(const TlLProgram *p) {
    TlLProgram *c = clone_one(p, 0);
    free(c->kern[0].local_type);
    free(c->kern);
    c->kern = dup_array(p->kern, sizeof *p->kern * (size_t)p->nkern), c->nkern = c->kerncap = p->nkern;
    for (int i = 0; i < p->nkern; i++)
        c->kern[i].local_type = dup_array(p->kern[i].local_type, sizeof(TlLType) * (size_t)p->kern[i].nlocals);
    c->host = dup_array(p->host, sizeof *p->host * (size_t)p->nhost), c->nhost = c->hostcap = p->nhost;
    c->entry = p->entry;
    return c;
}

static int push_expr(TlLProgram *p, TlLExpr e) {
    if (p->nex == p->excap) {
        p->excap = p->excap ? 2 * p->excap : 64;
        p->ex = realloc(p->ex, sizeof *p->ex * (size_t)p->excap);
        if (!p->ex) abort();
    }
    p->ex[p->nex] = e;
    return p->nex++;
}

static int sym_expr(TlLProgram *p, int sym) {
    TlLExpr e = {.kind = TL_LE_SYM, .type = TL_LT_I64, .a = -1, .b = -1, .c = -1, .var = -1, .sym = sym, .buf = -1};
    return push_expr(p, e);
}

static int push_host(TlLProgram *p, TlLHost h) {
    if (p->nhost == p->hostcap) {
        p->hostcap = p->hostcap ? 2 * p->hostcap : 16;
        p->host = realloc(p->host, sizeof *p->host * (size_t)p->hostcap);
        if (!p->host) abort();
    }
    p->host[p->nhost] = h;
    return p->nhost++;
}

static int push_kernel(TlLProgram *p, const char *name, int body) {
    if (p->nkern == p->kerncap) {
        p->kerncap *= 2;
        p->kern = realloc(p->kern, sizeof *p->kern * (size_t)p->kerncap);
        if (!p->kern) abort();
    }
    TlLKernel *k = &p->kern[p->nkern];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    k->node = -1, k->body = body, k->par_extent = -1;
    return p->nkern++;
}

/* ---- what a kernel reads and writes ---- */

static void mark_expr(const TlLProgram *p, int e, char *rd) {
    for (; e >= 0;) {
        const TlLExpr *x = &p->ex[e];
        if (x->kind == TL_LE_LOAD) rd[x->buf] = 1;
        mark_expr(p, x->b, rd), mark_expr(p, x->c, rd);
        e = x->a;
    }
}

static void mark_stmts(const TlLProgram *p, int s, char *rd, char *wr) {
    for (; s >= 0; s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        if (t->kind == TL_LS_STORE) wr[t->buf] = 1, mark_expr(p, t->index, rd), mark_expr(p, t->value, rd);
        if (t->kind == TL_LS_SET) mark_expr(p, t->value, rd);
        if (t->kind == TL_LS_LOOP) mark_expr(p, t->lo, rd), mark_expr(p, t->hi, rd);
        if (t->kind == TL_LS_IF) mark_expr(p, t->cond, rd);
        mark_stmts(p, t->body, rd, wr), mark_stmts(p, t->els, rd, wr);
    }
}

/* b[i] = f(i): floats 0.05 + 0.9 * ((i * 7919) mod 2003) / 2003, integers (i * 7) mod 5 */
static int fill_kernel(TlLProgram *p, int b, int n) {
    int var = tl_loops_new_var(p);
    int i = tl_loops_var(p, var);
    TlLType el = p->buf[b].elem;
    int v;
    if (tl_ltype_is_float(el)) {
        int h = tl_loops_bin(p, TL_LOP_IMOD, tl_loops_bin(p, TL_LOP_MUL, i, tl_loops_int(p, TL_LT_I64, 7919)),
                             tl_loops_int(p, TL_LT_I64, 2003));
        v = tl_loops_bin(p, TL_LOP_MUL, tl_loops_cast(p, h, TL_LT_F64), tl_loops_flt(p, TL_LT_F64, 0.9 / 2003.0));
        v = tl_loops_bin(p, TL_LOP_ADD, v, tl_loops_flt(p, TL_LT_F64, 0.05));
    } else {
        v = tl_loops_bin(p, TL_LOP_IMOD, tl_loops_bin(p, TL_LOP_MUL, i, tl_loops_int(p, TL_LT_I64, 7)),
                         tl_loops_int(p, TL_LT_I64, 5));
    }
    if (el != TL_LT_I64 && el != TL_LT_F64) v = tl_loops_cast(p, v, el);
    int loop = tl_loops_loop(p, var, tl_loops_int(p, TL_LT_I64, 0), p->buf[b].numel);
    p->st[loop].body = tl_loops_store(p, b, i, v);
    char name[64];
    snprintf(name, sizeof name, "tl_tune_fill%d", n);
    return push_kernel(p, name, loop);
}

/* Turns kernel k of p into a bench program (see the top of the file). */
static TlLProgram *bench_program(const TlLProgram *p, int k, int **outs, int *nouts) {
    TlLProgram *c = clone_one(p, k);
    char *rd = calloc((size_t)c->nbuf + 1, 1), *wr = calloc((size_t)c->nbuf + 1, 1);
    if (!rd || !wr) abort();
    mark_stmts(c, c->kern[0].body, rd, wr);
    const TlLGemm *g = &c->kern[0].gemm;
    if (g->on) rd[g->a] = rd[g->b] = 1, wr[g->c] = 1;
    *outs = xmalloc(sizeof(int) * (size_t)(c->nbuf + 1));
    *nouts = 0;
    int zero = tl_loops_int(c, TL_LT_I64, 0);
    int fill_sym = c->nsyms++, reps_sym = c->nsyms++;
    c->syms[fill_sym] = FILL_SYM, c->syms[reps_sym] = REPS_SYM;
    int first_fill = -1, last = -1, nfill = 0;
    for (int b = 0; b < c->nbuf; b++) {
        TlLBuf *B = &c->buf[b];
        if (B->kind == TL_LB_CONST) continue;
        if (!rd[b] && !wr[b]) {
            B->kind = TL_LB_TEMP, B->numel = zero;
            continue;
        }
        B->kind = TL_LB_TEMP;
        if (wr[b]) (*outs)[(*nouts)++] = b;
        int fk = fill_kernel(c, b, nfill++);
        int h = push_host(c, (TlLHost){.kind = TL_LH_KERNEL, .kernel = fk, .dst = -1, .src = -1, .body = -1, .next = -1});
        if (last >= 0) c->host[last].next = h;
        else first_fill = h;
        last = h;
    }
    int run = push_host(c, (TlLHost){.kind = TL_LH_KERNEL, .kernel = 0, .dst = -1, .src = -1, .body = -1, .next = -1});
    int lf = push_host(c, (TlLHost){.kind = TL_LH_LOOP, .var = tl_loops_new_var(c), .count = sym_expr(c, fill_sym),
                                    .dst = -1, .src = -1, .body = first_fill, .next = -1});
    int lr = push_host(c, (TlLHost){.kind = TL_LH_LOOP, .var = tl_loops_new_var(c), .count = sym_expr(c, reps_sym),
                                    .dst = -1, .src = -1, .body = run, .next = -1});
    c->host[lf].next = lr;
    c->entry = first_fill >= 0 ? lf : lr;
    free(rd), free(wr);
    return c;
}

static void pin_to_idle_core(TlTuneBench *b) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set)) return;
    b->saved = set;
    int last = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) last = c;
    if (last < 0 || CPU_COUNT(&set) < 2) return;
    /* the highest allowed core: the one the OS fills last, so usually the idlest */
    CPU_ZERO(&set);
    CPU_SET(last, &set);
    if (sched_setaffinity(0, sizeof set, &set) == 0) b->pinned = 1;
}

TlTuneBench *tl_tune_bench_new(const TlGraph *g, const TlLProgram *p, int k, const int64_t *syms,
                               const TlTuneMeasureOpts *o, char *err, int errn) {
    if (k < 0 || k >= p->nkern || !tl_kernel_tunable(p, k)) {
        snprintf(err, (size_t)errn, "kernel %d cannot be measured on its own", k);
        return NULL;
    }
    TlTuneBench *b = calloc(1, sizeof *b);
    if (!b) abort();
    b->g = g;
    if (o) b->o = *o;
    if (b->o.repeats < 1) b->o.repeats = 5;
    if (b->o.min_sample_s <= 0) b->o.min_sample_s = 1e-3;
    b->tmpl = bench_program(p, k, &b->outs, &b->nouts);
    b->nsyms = b->tmpl->nsyms;
    b->syms = xmalloc(sizeof(int64_t) * (size_t)b->nsyms);
    for (int i = 0; i < p->nsyms; i++) b->syms[i] = syms ? syms[i] : 1;
    b->ref = calloc((size_t)b->nouts + 1, sizeof *b->ref);
    b->refbytes = calloc((size_t)b->nouts + 1, sizeof *b->refbytes);
    if (!b->ref || !b->refbytes) abort();
    if (b->o.threads == 1) pin_to_idle_core(b);
    return b;
}

void tl_tune_bench_free(TlTuneBench *b) {
    if (!b) return;
    if (b->pinned) sched_setaffinity(0, sizeof b->saved, &b->saved);
    for (int i = 0; i < b->nouts; i++) free(b->ref[i]);
    free(b->ref), free(b->refbytes), free(b->outs), free(b->syms);
    tl_loops_free(b->tmpl);
    free(b);
}

static void bind_all(TlTuneBench *b, TlCpuProgram *cp, int64_t fill, int64_t reps) {
    const TlLProgram *t = b->tmpl;
    for (int i = 0; i < t->nsyms - 2; i++) tl_cpu_bind(cp, t->syms[i], b->syms[i]);
    tl_cpu_bind(cp, FILL_SYM, fill);
    tl_cpu_bind(cp, REPS_SYM, reps);
}

/* Compares out buffer i of the candidate (a) with the reference (r): floats within an
 * f32 (or f64) reassociation tolerance, everything else bitwise. */
static int compare_out(TlTuneBench *b, int i, const TlTensor *a, char *err, int errn) {
    const TlLBuf *B = &b->tmpl->buf[b->outs[i]];
    size_t bytes = (size_t)a->numel * tl_ltype_size(B->elem);
    if (bytes != b->refbytes[i]) {
        snprintf(err, (size_t)errn, "b%d: size differs", b->outs[i]);
        return 1;
    }
    if (!tl_ltype_is_float(B->elem)) {
        if (memcmp(a->data, b->ref[i], bytes)) {
            snprintf(err, (size_t)errn, "b%d: integer output differs", b->outs[i]);
            return 1;
        }
        return 0;
    }
    int f64 = B->elem == TL_LT_F64;
    double rtol = f64 ? 1e-10 : B->dtype == TL_F32 ? 1e-4 : 1e-2, atol = f64 ? 1e-12 : B->dtype == TL_F32 ? 1e-5 : 1e-2;
    double maxabs = 0;
    for (int64_t j = 0; j < a->numel; j++) {
        double r = f64 ? ((const double *)b->ref[i])[j] : ((const float *)b->ref[i])[j];
        if (isfinite(r) && fabs(r) > maxabs) maxabs = fabs(r);
    }
    for (int64_t j = 0; j < a->numel; j++) {
        double r = f64 ? ((const double *)b->ref[i])[j] : ((const float *)b->ref[i])[j];
        double x = f64 ? ((const double *)a->data)[j] : ((const float *)a->data)[j];
        if (isnan(r) && isnan(x)) continue;
        if (isinf(r) || isinf(x) ? r != x : !(fabs(x - r) <= atol * fmax(1, maxabs) + rtol * fabs(r))) {
            snprintf(err, (size_t)errn, "b%d[%lld] = %.9g, the default schedule gives %.9g", b->outs[i], (long long)j, x, r);
            return 1;
        }
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int tl_tune_bench_measure(TlTuneBench *b, const TlKSched *s, double *seconds, char *err, int errn) {
    *seconds = INFINITY;
    TlLProgram *lp = tl_tune_clone_program(b->tmpl);
    if (s && tl_ksched_apply(lp, 0, s, err, errn)) {
        tl_loops_free(lp);
        return -1;
    }
    TlCpuOptions co = {.cpu = b->o.cpu, .opt_level = 3, .threads = b->o.threads};
    TlCpuProgram *cp = tl_cpu_compile_loops(b->g, lp, &co, err, errn);
    if (!cp) return -1;
    int status = 0;
    bind_all(b, cp, 1, 1);
    if (tl_cpu_run(cp)) {
        snprintf(err, (size_t)errn, "%s", tl_cpu_error(cp));
        status = -1;
        goto done;
    }
    /* the outputs: the first measured schedule is the reference */
    for (int i = 0; i < b->nouts && status == 0; i++) {
        const TlTensor *t = tl_cpu_value(cp, b->tmpl->buf[b->outs[i]].node);
        if (!t) {
            snprintf(err, (size_t)errn, "cannot read b%d", b->outs[i]);
            status = -1;
        } else if (!b->ref[i]) {
            b->refbytes[i] = (size_t)t->numel * tl_ltype_size(b->tmpl->buf[b->outs[i]].elem);
            b->ref[i] = dup_array(t->data, b->refbytes[i]);
        } else {
            status = compare_out(b, i, t, err, errn);
        }
    }
    if (status) goto done;
    /* time: warm up, calibrate R so a sample lasts min_sample_s, then the median */
    bind_all(b, cp, 0, 1);
    tl_cpu_run(cp);
    double t0 = now_s();
    tl_cpu_run(cp);
    double one = now_s() - t0;
    int64_t reps = one > 0 ? (int64_t)(b->o.min_sample_s / one) : 1000;
    if (reps < 1) reps = 1;
    if (reps > 10000) reps = 10000;
    bind_all(b, cp, 0, reps);
    double samples[64];
    int n = b->o.repeats < 64 ? b->o.repeats : 64;
    for (int i = 0; i < n; i++) {
        t0 = now_s();
        tl_cpu_run(cp);
        samples[i] = (now_s() - t0) / (double)reps;
    }
    qsort(samples, (size_t)n, sizeof *samples, cmp_double);
    *seconds = n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
done:
    tl_cpu_free(cp);
    return status;
}
