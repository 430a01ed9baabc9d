/* schedule_source.c — source `schedule` blocks applied to Loop IR kernels (see
 * schedule_source.h for the mapping from index names to loops and the checks). */
#include "schedule_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "diag.h"
#include "tune.h"
#include "types.h"

#define MAXL 64

/* A program is often lowered more than once (a train step and its eval graph, the
 * tuner's copies): each problem is reported once per place, and still fails each time. */
static struct { const void *at; int line, col, file; } reported[256];
static int nreported;

static int first_report(const TlNode *at) {
    for (int i = 0; i < nreported; i++)
        if (reported[i].at == at && reported[i].line == at->loc.line && reported[i].col == at->loc.col &&
            reported[i].file == at->loc.file)
            return 0;
    if (nreported < (int)(sizeof reported / sizeof *reported)) {
        reported[nreported].at = at, reported[nreported].line = at->loc.line;
        reported[nreported].col = at->loc.col, reported[nreported].file = at->loc.file;
        nreported++;
    }
    return 1;
}

typedef struct Ctx {
    TlLProgram *p;
    int k;
    const TlNode *block, *kernel;
    const char *res[TL_MAX_RANK];     /* names of the result's axes */
    int nres;
    const char *red[TL_MAX_RANK * 2]; /* names of the top-level reduction's axes, in order */
    int nred;
    int loops[MAXL], nloops;
    int errors;
} Ctx;

#define DERR(at, ...) do { c->errors++; if (first_report(at)) tl_error((at)->loc, __VA_ARGS__); } while (0)

/* Reduction names of `sum(k, l) body` in order of first use in body (the order the
 * lowering gives the reduced axes). */
static void first_use(const TlNode *e, const TlNode *red, const char **out, int *n, int depth) {
    if (!e || depth > 200) return;
    if (e->kind == TL_N_IDENT && e->name)
        for (int i = 0; i < red->list.n; i++) {
            const TlNode *r = red->list.v[i];
            if (!r || !r->name || strcmp(r->name, e->name)) continue;
            int seen = 0;
            for (int j = 0; j < *n; j++) seen |= !strcmp(out[j], e->name);
            if (!seen && *n < TL_MAX_RANK * 2) out[(*n)++] = r->name;
        }
    first_use(e->a, red, out, n, depth + 1);
    first_use(e->b, red, out, n, depth + 1);
    first_use(e->c, red, out, n, depth + 1);
    for (int i = 0; i < e->list.n; i++) first_use(e->list.v[i], red, out, n, depth + 1);
}

static void collect_names(Ctx *c) {
    const TlNode *body = c->kernel->b;
    const TlNode *last = body && body->list.n ? body->list.v[body->list.n - 1] : NULL;
    if (!last || last->kind != TL_N_KSTMT) return;
    for (int i = 0; i < last->list.n && c->nres < TL_MAX_RANK; i++)
        c->res[c->nres++] = last->list.v[i] ? last->list.v[i]->name : NULL;
    const TlNode *r = last->a;
    if (r && r->kind == TL_N_REDUCE) {
        first_use(r->a, r, c->red, &c->nred, 0);
        for (int i = 0; i < r->list.n; i++) { /* names the body never uses: list order */
            const char *nm = r->list.v[i] ? r->list.v[i]->name : NULL;
            int seen = !nm;
            for (int j = 0; j < c->nred && !seen; j++) seen = !strcmp(c->red[j], nm);
            if (!seen && c->nred < TL_MAX_RANK * 2) c->red[c->nred++] = nm;
        }
    }
}

/* The index name loop s runs over, or NULL. */
static const char *loop_name(const Ctx *c, int s) {
    int a = c->p->st[s].axis;
    if (a >= 0) return a < c->nres ? c->res[a] : NULL;
    if (a <= -2) return -2 - a < c->nred ? c->red[-2 - a] : NULL;
    return NULL;
}

static void refresh(Ctx *c) { c->nloops = tl_loops_kernel_loops(c->p, c->k, c->loops, MAXL); }

static int has_loop(const TlLProgram *p, int s) {
    for (; s >= 0; s = p->st[s].next)
        if (p->st[s].kind == TL_LS_LOOP || has_loop(p, p->st[s].body) || has_loop(p, p->st[s].els)) return 1;
    return 0;
}

/* The perfect nest of loops over the result at the top of the kernel. */
static int result_nest(const Ctx *c, int *out) {
    int n = 0, s = c->p->kern[c->k].body;
    while (s >= 0 && n < TL_MAX_RANK && c->p->st[s].kind == TL_LS_LOOP && c->p->st[s].next < 0 && c->p->st[s].axis >= 0) {
        out[n++] = s;
        s = c->p->st[s].body;
    }
    return n;
}

static const char *ident_of(const TlNode *a) { return a && a->kind == TL_N_IDENT ? a->name : NULL; }
/* The index a directive argument names: `j` or `j = 128` (gpu_threads). */
static const char *arg_name(const TlNode *a) { return a && (a->kind == TL_N_IDENT || a->kind == TL_N_KWARG) ? a->name : NULL; }

/* The block's directive named dn (the last one), or NULL. */
static const TlNode *directive(const Ctx *c, const char *dn) {
    const TlNode *r = NULL;
    for (int d = 0; d < c->block->list.n; d++) {
        const TlNode *dir = c->block->list.v[d];
        const char *nm = dir && dir->kind == TL_N_CALL ? ident_of(dir->a) : NULL;
        if (nm && !strcmp(nm, dn)) r = dir;
    }
    return r;
}

static int is_result_name(const Ctx *c, const char *nm) {
    for (int i = 0; i < c->nres; i++)
        if (c->res[i] && !strcmp(c->res[i], nm)) return 1;
    return 0;
}

/* order(...) and parallel(...): a permutation of the result nest. 0 ok. */
static void apply_order(Ctx *c, char *text, size_t tn) {
    int nest[TL_MAX_RANK], n = result_nest(c, nest);
    int perm[TL_MAX_RANK];
    for (int i = 0; i < n; i++) perm[i] = i;
    const TlNode *order = directive(c, "order"), *par = directive(c, "parallel");
    /* the loop over the grid's blocks, or (without one) over a flat launch's threads, is
     * the parallel one */
    const TlNode *gpar = directive(c, "gpu_blocks") ? directive(c, "gpu_blocks") : directive(c, "gpu_threads");
    if (gpar && par && gpar->list.n && par->list.n && arg_name(gpar->list.v[0]) && ident_of(par->list.v[0]) &&
        strcmp(arg_name(gpar->list.v[0]), ident_of(par->list.v[0]))) {
        DERR(gpar->list.v[0], "%s(%s): parallel(%s) makes another loop the parallel one; the GPU runs the parallel loop "
                              "over its %s", ident_of(gpar->a), arg_name(gpar->list.v[0]), ident_of(par->list.v[0]),
             gpar == directive(c, "gpu_blocks") ? "blocks" : "threads");
        return;
    }
    if (!par) par = gpar;
    /* where each result name sits in the nest, -1 when it has no loop there */
    const TlNode *dirs[2] = {order, par};
    for (int w = 0; w < 2; w++) {
        const TlNode *dir = dirs[w];
        if (!dir) continue;
        const char *dn = ident_of(dir->a);
        for (int i = 0; i < dir->list.n; i++) {
            const TlNode *a = dir->list.v[i];
            const char *nm = arg_name(a);
            if (!nm) continue;
            int at = -1;
            for (int j = 0; j < n; j++)
                if (loop_name(c, nest[j]) && !strcmp(loop_name(c, nest[j]), nm)) at = j;
            if (at >= 0) continue;
            if (!is_result_name(c, nm))
                DERR(a, "%s: '%s' is a reduction index of kernel '%s'; only the loops over its result can be %s", dn,
                     nm, c->kernel->name, !w ? "reordered" : strcmp(dn, "gpu_threads") ? "parallel"
                                                         : "the threads of a launch without gpu_blocks");
            else if (w && !strcmp(dn, "gpu_threads"))
                DERR(a, "gpu_threads(%s): without gpu_blocks(...) the threads of a flat launch run the parallel loop, but the "
                        "loop over '%s' is not in the nest of loops over the result that starts kernel %s; map an outer "
                        "loop with gpu_blocks(...) (see --emit=loops)", nm, nm, c->p->kern[c->k].name);
            else
                DERR(a, "%s: the loop over '%s' is not in the nest of loops over the result that starts kernel %s "
                        "(a row kernel keeps its reduced axis inside: see --emit=loops)",
                     dn, nm, c->p->kern[c->k].name);
        }
    }
    if (c->errors) return;
    if (order) {
        int pos[TL_MAX_RANK], who[TL_MAX_RANK], m = 0;
        for (int i = 0; i < order->list.n && m < TL_MAX_RANK; i++) {
            const char *nm = ident_of(order->list.v[i]);
            for (int j = 0; nm && j < n; j++)
                if (!strcmp(loop_name(c, nest[j]), nm)) who[m++] = j;
        }
        for (int j = 0; j < m; j++) pos[j] = who[j];
        for (int a = 0; a < m; a++) /* the listed loops' positions, ascending */
            for (int b = a + 1; b < m; b++)
                if (pos[b] < pos[a]) { int t = pos[a]; pos[a] = pos[b]; pos[b] = t; }
        for (int j = 0; j < m; j++) perm[pos[j]] = who[j];
    }
    if (par) {
        const char *nm = arg_name(par->list.n ? par->list.v[0] : NULL);
        int at = -1;
        for (int j = 0; nm && j < n; j++)
            if (!strcmp(loop_name(c, nest[perm[j]]), nm)) at = j;
        if (at > 0 && order) {
            DERR(par, "%s(%s): the parallel loop is the outermost one, but order(...) puts '%s' first", ident_of(par->a), nm,
                 loop_name(c, nest[perm[0]]));
            return;
        }
        if (at > 0) { /* move it to the front, keep the rest in order */
            int moved = perm[at];
            for (int j = at; j > 0; j--) perm[j] = perm[j - 1];
            perm[0] = moved;
        }
    }
    int identity = 1;
    for (int i = 0; i < n; i++) identity &= perm[i] == i;
    TlLKernel *K = &c->p->kern[c->k];
    if (!identity) {
        if (tl_loops_reorder(c->p, c->k, nest, n, perm)) {
            DERR(order ? order : par, "cannot reorder the loops of kernel %s: they are not a perfect nest", K->name);
            return;
        }
        size_t o = strlen(text);
        o += (size_t)snprintf(text + o, tn > o ? tn - o : 0, "order(");
        for (int i = 0; i < n; i++)
            o += (size_t)snprintf(text + o, tn > o ? tn - o : 0, "%s%s", i ? "," : "", loop_name(c, nest[i]));
        snprintf(text + o, tn > o ? tn - o : 0, ") ");
    }
    if (par && K->par_extent < 0 && n > 0) { /* a kernel lowered without a parallel loop */
        c->p->st[nest[0]].sched.parallel = 1;
        K->par_extent = c->p->st[nest[0]].hi;
    }
}

/* The loops named nm (positions into c->loops); reports a name with none. */
static int named(Ctx *c, const TlNode *at, const char *dn, const char *nm, int *pos) {
    int n = 0;
    for (int i = 0; i < c->nloops; i++) {
        const char *ln = loop_name(c, c->loops[i]);
        if (ln && !strcmp(ln, nm)) pos[n++] = i;
    }
    if (!n) DERR(at, "%s: kernel %s (what '%s' lowers to) has no loop over '%s'; see --emit=loops", dn, c->p->kern[c->k].name,
                 c->kernel->name, nm);
    return n;
}

/* A directive's constant (sema checked it is a positive integer constant: a literal or a
 * named constant, whose type carries the value). */
static int64_t const_arg(const TlNode *e) {
    if (!e) return 0;
    if (e->kind == TL_N_INT) return e->ival;
    int64_t v;
    const TlType *t = e->type;
    if (t && t->kind == TL_T_INT && t->val && tl_dim_is_const(t->val, &v)) return v;
    return 0;
}

/* ---- the GPU directives (docs/nvptx.md "Source schedules") ----
 *
 * gpu_blocks(i) gpu_threads(j [= T]): block b runs the iterations b, b + grid, ... of the
 * loop over i (made the parallel, outermost loop); its T threads (256 by default) share
 * each loop over j inside it: thread t runs j = lo + t, lo + t + T, ... of a loop whose
 * iterations are independent, and a part of a sum or max over j that the block then
 * combines. The rest of the loop body runs in every thread (its stores in thread 0).
 * gpu_threads(j [= T]) alone: the loop over j is the parallel one, over all threads of a
 * flat launch of T-thread blocks. shared(t): the block first copies the part of t it
 * reads, a row t[i * ROW + 0 .. LEN), into shared memory. What cannot be mapped so is an
 * error here, at the directive. */

#define SHARED_MAX 49152 /* bytes of static shared memory a block may use */

static int ex_uses_var(const TlLProgram *p, int e, int var) {
    if (e < 0) return 0;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_VAR && x->var == var) return 1;
    return ex_uses_var(p, x->a, var) || ex_uses_var(p, x->b, var) || ex_uses_var(p, x->c, var);
}

static int ex_has_load(const TlLProgram *p, int e) {
    if (e < 0) return 0;
    const TlLExpr *x = &p->ex[e];
    return x->kind == TL_LE_LOAD || ex_has_load(p, x->a) || ex_has_load(p, x->b) || ex_has_load(p, x->c);
}

/* Does e read a local whose flag in `pending` is set? */
static int ex_reads(const TlLProgram *p, int e, const char *pending) {
    if (e < 0) return 0;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_LOCAL && pending[x->var]) return 1;
    return ex_reads(p, x->a, pending) || ex_reads(p, x->b, pending) || ex_reads(p, x->c, pending);
}

static void sets_of(const TlLProgram *p, int s, char *set) {
    for (; s >= 0; s = p->st[s].next) {
        if (p->st[s].kind == TL_LS_SET) set[p->st[s].var] = 1;
        sets_of(p, p->st[s].body, set), sets_of(p, p->st[s].els, set);
    }
}

/* Walks s in order; pending[l]: local l is set in the loop body but not yet in this
 * iteration. 1 when s reads such a local (a value from the previous iteration). */
static int reads_pending(const TlLProgram *p, int s, char *pending, int nl) {
    for (; s >= 0; s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        int e[4] = {t->lo, t->hi, t->index, t->cond};
        for (int i = 0; i < 4; i++)
            if (t->kind != TL_LS_SET && ex_reads(p, e[i], pending)) return 1;
        if ((t->kind == TL_LS_STORE || t->kind == TL_LS_SET) && ex_reads(p, t->value, pending)) return 1;
        if (t->kind == TL_LS_SET) pending[t->var] = 0;
        if (t->kind == TL_LS_LOOP && reads_pending(p, t->body, pending, nl)) return 1;
        if (t->kind == TL_LS_IF) { /* set after the if only when both branches set it */
            char a[256], b[256];
            memcpy(a, pending, (size_t)nl), memcpy(b, pending, (size_t)nl);
            if (reads_pending(p, t->body, a, nl) || reads_pending(p, t->els, b, nl)) return 1;
            for (int l = 0; l < nl; l++) pending[l] = a[l] || b[l];
        }
    }
    return 0;
}

static int stores_follow(const TlLProgram *p, int s, int var) {
    for (; s >= 0; s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        if (t->kind == TL_LS_STORE && (!ex_uses_var(p, t->index, var) || ex_has_load(p, t->index))) return 0;
        if (!stores_follow(p, t->body, var) || !stores_follow(p, t->els, var)) return 0;
    }
    return 1;
}

/* Can threads run the iterations of loop s in any order, each its own? Every store
 * writes an element of its own iteration, no local carries a value from one iteration
 * to the next, and none set inside is read after the loop (by the statements after s). */
static int independent(const TlLProgram *p, const TlLKernel *K, int s) {
    const TlLStmt *l = &p->st[s];
    if (!stores_follow(p, l->body, l->var) || K->nlocals > 256) return 0;
    char set[256] = {0}, pending[256];
    sets_of(p, l->body, set);
    memcpy(pending, set, sizeof set);
    if (reads_pending(p, l->body, pending, K->nlocals)) return 0;
    memcpy(pending, set, sizeof set);
    return !reads_pending(p, l->next, pending, K->nlocals);
}

/* A sum or max over loop s (after statement prev) that a block can split and combine:
 *   acc = init; for j { [for ... {] acc = U(acc, x) [}] }
 * with U an addition and init 0, or a select (max, min) and init +-inf. */
static int reduction(const TlLProgram *p, int prev, int s) {
    if (prev < 0 || p->st[prev].kind != TL_LS_SET) return 0;
    const TlLStmt *init = &p->st[prev];
    int b = p->st[s].body;
    while (b >= 0 && p->st[b].kind == TL_LS_LOOP && p->st[b].next < 0) b = p->st[b].body;
    if (b < 0 || p->st[b].kind != TL_LS_SET || p->st[b].next >= 0 || p->st[b].var != init->var) return 0;
    const TlLExpr *i0 = &p->ex[init->value], *u = &p->ex[p->st[b].value];
    char acc[256] = {0};
    if (init->var >= 256) return 0;
    acc[init->var] = 1;
    if (!ex_reads(p, p->st[b].value, acc)) return 0;
    if (u->kind == TL_LE_BIN && u->op == TL_LOP_ADD)
        return (i0->kind == TL_LE_FLT && i0->fval == 0) || (i0->kind == TL_LE_INT && i0->ival == 0);
    return u->kind == TL_LE_SELECT && i0->kind == TL_LE_FLT && (i0->fval > 1e308 || i0->fval < -1e308);
}

/* Marks the loops over nm in list s for the block's threads; reports one that cannot be. */
static void mark_threads(Ctx *c, int s, const char *nm, const TlNode *at, int *n) {
    TlLProgram *p = c->p;
    for (int prev = -1; s >= 0; prev = s, s = p->st[s].next) {
        TlLStmt *t = &p->st[s];
        const char *ln = t->kind == TL_LS_LOOP ? loop_name(c, s) : NULL;
        if (ln && !strcmp(ln, nm)) {
            if (reduction(p, prev, s)) t->sched.gpu = TL_LGPU_THREADS_REDUCE, (*n)++;
            else if (independent(p, &p->kern[c->k], s)) t->sched.gpu = TL_LGPU_THREADS, (*n)++;
            else DERR(at, "gpu_threads(%s): a loop over '%s' in kernel %s passes values from one iteration to the next "
                          "(not a sum or a max the block can combine); its iterations cannot be split across threads",
                      nm, nm, p->kern[c->k].name);
            continue;
        }
        mark_threads(c, t->body, nm, at, n);
        mark_threads(c, t->els, nm, at, n);
    }
}

static void mark_bufs(const TlLProgram *p, int e, char *loaded) {
    for (; e >= 0; e = p->ex[e].a) {
        if (p->ex[e].kind == TL_LE_LOAD) loaded[p->ex[e].buf] = 1;
        mark_bufs(p, p->ex[e].b, loaded), mark_bufs(p, p->ex[e].c, loaded);
    }
}

static void kernel_bufs(const TlLProgram *p, int s, char *loaded, char *stored) {
    for (; s >= 0; s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        if (t->kind == TL_LS_STORE) stored[t->buf] = 1;
        int e[5] = {t->lo, t->hi, t->index, t->value, t->cond};
        for (int i = 0; i < 5; i++) mark_bufs(p, e[i], loaded);
        kernel_bufs(p, t->body, loaded, stored), kernel_bufs(p, t->els, loaded, stored);
    }
}

/* The loop statement of variable v in the kernel, or -1. */
static int loop_of_var(const Ctx *c, int v) {
    for (int i = 0; i < c->nloops; i++)
        if (c->p->st[c->loops[i]].var == v) return c->loops[i];
    return -1;
}

static int strip(const TlLProgram *p, int e) {
    while (p->ex[e].kind == TL_LE_CAST) e = p->ex[e].a;
    return e;
}

/* Is index e iv * row + w with 0 <= w < *len <= row (row a constant)? Updates *row (0:
 * not yet known) and *len. */
static int row_index(const Ctx *c, int e, int iv, int64_t *row, int64_t *len) {
    const TlLProgram *p = c->p;
    e = strip(p, e);
    int64_t r = 1, hi = 1;
    const TlLExpr *x = &p->ex[e];
    if (!(x->kind == TL_LE_VAR && x->var == iv)) {
        if (x->kind != TL_LE_BIN || x->op != TL_LOP_ADD) return 0;
        int ok = 0;
        for (int side = 0; side < 2 && !ok; side++) {
            const TlLExpr *m = &p->ex[strip(p, side ? x->b : x->a)], *w = &p->ex[strip(p, side ? x->a : x->b)];
            if (m->kind != TL_LE_BIN || m->op != TL_LOP_MUL) continue;
            for (int o = 0; o < 2 && !ok; o++) {
                const TlLExpr *v = &p->ex[strip(p, o ? m->b : m->a)], *k = &p->ex[strip(p, o ? m->a : m->b)];
                if (v->kind != TL_LE_VAR || v->var != iv || k->kind != TL_LE_INT || k->ival < 1) continue;
                r = k->ival;
                if (w->kind == TL_LE_INT && w->ival >= 0) ok = 1, hi = w->ival + 1;
                int l = w->kind == TL_LE_VAR ? loop_of_var(c, w->var) : -1;
                if (l >= 0 && p->ex[p->st[l].lo].kind == TL_LE_INT && p->ex[p->st[l].lo].ival == 0 &&
                    p->ex[p->st[l].hi].kind == TL_LE_INT)
                    ok = 1, hi = p->ex[p->st[l].hi].ival;
            }
        }
        if (!ok) return 0;
    }
    if (hi > r || (*row && *row != r)) return 0;
    *row = r;
    if (hi > *len) *len = hi;
    return 1;
}

static int row_loads(const Ctx *c, int e, int buf, int iv, int64_t *row, int64_t *len) {
    for (; e >= 0; e = c->p->ex[e].a) {
        const TlLExpr *x = &c->p->ex[e];
        if (x->kind == TL_LE_LOAD && x->buf == buf && !row_index(c, x->a, iv, row, len)) return 0;
        if (!row_loads(c, x->b, buf, iv, row, len) || !row_loads(c, x->c, buf, iv, row, len)) return 0;
    }
    return 1;
}

static int row_reads(const Ctx *c, int s, int buf, int iv, int64_t *row, int64_t *len) {
    for (; s >= 0; s = c->p->st[s].next) {
        const TlLStmt *t = &c->p->st[s];
        int e[5] = {t->lo, t->hi, t->index, t->value, t->cond};
        for (int i = 0; i < 5; i++)
            if (!row_loads(c, e[i], buf, iv, row, len)) return 0;
        if (!row_reads(c, t->body, buf, iv, row, len) || !row_reads(c, t->els, buf, iv, row, len)) return 0;
    }
    return 1;
}

/* A tile directive naming index nm, or NULL. */
static const TlNode *tiled(const Ctx *c, const char *nm) {
    const TlNode *tile = directive(c, "tile");
    for (int j = 0; tile && j < tile->list.n; j++)
        if (tile->list.v[j] && tile->list.v[j]->name && !strcmp(tile->list.v[j]->name, nm)) return tile->list.v[j];
    return NULL;
}

static void apply_gpu(Ctx *c) {
    TlLProgram *p = c->p;
    TlLKernel *K = &p->kern[c->k];
    const TlNode *gb = directive(c, "gpu_blocks"), *gt = directive(c, "gpu_threads");
    const TlNode *ba = gb && gb->list.n == 1 ? gb->list.v[0] : NULL, *ta = gt && gt->list.n == 1 ? gt->list.v[0] : NULL;
    const char *bi = arg_name(ba), *ti = arg_name(ta);
    int64_t threads = ta && ta->kind == TL_N_KWARG ? const_arg(ta->a) : 0;
    K->gpu_sched = 0, K->ngpu_shared = 0, K->sched_gpu[0] = 0;
    for (int w = 0; w < 2; w++) {
        const TlNode *a = w ? ta : ba;
        const TlNode *tile = a ? tiled(c, arg_name(a)) : NULL;
        if (tile)
            DERR(a, "%s(%s): tile(%s = %lld) splits that loop; a loop mapped to the GPU's %s is not tiled", w ? "gpu_threads" : "gpu_blocks",
                 arg_name(a), arg_name(a), (long long)const_arg(tile->a), w ? "threads" : "blocks");
    }
    if (bi && !ti) DERR(gb, "gpu_blocks(%s) needs gpu_threads(...): the loop whose iterations the threads of a block share", bi);
    if (bi && ti && !strcmp(bi, ti))
        DERR(ta, "gpu_threads(%s): the loop over '%s' already runs over the blocks (gpu_blocks); name a loop inside it", ti, ti);
    if (c->errors) return;
    int nest[TL_MAX_RANK], nn = result_nest(c, nest);
    char text[96] = "";
    size_t o = 0;
    if (bi) {
        int top = nn ? nest[0] : -1;
        if (top < 0 || !loop_name(c, top) || strcmp(loop_name(c, top), bi) || !p->st[top].sched.parallel) {
            DERR(ba, "gpu_blocks(%s): kernel %s does not start with the parallel loop over '%s' (see --emit=loops)", bi, K->name, bi);
            return;
        }
        char *loaded = calloc((size_t)p->nbuf + 1, 1), *stored = calloc((size_t)p->nbuf + 1, 1);
        if (!loaded || !stored) abort();
        kernel_bufs(p, K->body, loaded, stored);
        int rw = -1;
        for (int b = 0; b < p->nbuf && rw < 0; b++)
            if (loaded[b] && stored[b]) rw = b;
        if (rw >= 0)
            DERR(gb, "gpu_blocks(%s): kernel %s reads buffer b%d, which it also writes; a block's threads could read an element "
                     "before another thread writes it", bi, K->name, rw);
        int marked = 0;
        if (rw < 0) mark_threads(c, p->st[top].body, ti, ta, &marked);
        if (!c->errors && !marked)
            DERR(ta, "gpu_threads(%s): kernel %s has no loop over '%s' inside the loop over '%s' (see --emit=loops)", ti, K->name, ti, bi);
        /* shared(t): t's row of this block */
        int ns = 0;
        int64_t bytes = 0;
        for (int d = 0; d < c->block->list.n && !c->errors; d++) {
            const TlNode *dir = c->block->list.v[d];
            if (!dir || dir->kind != TL_N_CALL || !ident_of(dir->a) || strcmp(ident_of(dir->a), "shared")) continue;
            const TlNode *a = dir->list.n == 1 ? dir->list.v[0] : NULL;
            const char *tn = a && a->name ? a->name : "?";
            int b = ns < TL_SCHED_MAX_SHARED ? K->sched_shared_buf[ns] : -1;
            ns++;
            int64_t row = 0, len = 0;
            if (ns > TL_SCHED_MAX_SHARED) {
                DERR(a, "shared(%s): a schedule stages at most %d tensors", tn, TL_SCHED_MAX_SHARED);
            } else if (b < 0 || !loaded[b]) {
                DERR(a, "shared(%s): kernel %s does not read '%s' from memory (it is computed there, fused with its "
                        "consumer, or not an argument of '%s')", tn, K->name, tn, c->kernel->name);
            } else if (stored[b]) {
                DERR(a, "shared(%s): kernel %s writes '%s'; only a tensor it reads can be staged", tn, K->name, tn);
            } else if (!row_reads(c, K->body, b, p->st[top].var, &row, &len) || !row) {
                DERR(a, "shared(%s): kernel %s reads '%s' other than as a row of the block: staging needs every read at "
                        "%s * ROW + j, ROW a constant and 0 <= j < ROW (a loop from 0 or a constant)", tn, K->name, tn, bi);
            } else {
                int64_t sz = len * (int64_t)tl_ltype_size(p->buf[b].elem);
                bytes += sz;
                if (bytes > SHARED_MAX) {
                    DERR(a, "shared(%s): a block's part of '%s' is %lld bytes, %lld with the tensors staged before it; "
                            "shared memory holds %d per block", tn, tn, (long long)sz, (long long)bytes, SHARED_MAX);
                } else {
                    int i = K->ngpu_shared++;
                    K->gpu_shared[i] = b, K->gpu_shared_row[i] = row, K->gpu_shared_len[i] = len;
                    o += (size_t)snprintf(text + o, o < sizeof text ? sizeof text - o : 0, " shared(%s:%lld)", tn, (long long)len);
                }
            }
        }
        free(loaded), free(stored);
    } else if (directive(c, "shared")) {
        const TlNode *sh = directive(c, "shared");
        DERR(sh, "shared(%s): staging is per block of a gpu_blocks(...) loop; this schedule has none",
             sh->list.n && sh->list.v[0] && sh->list.v[0]->name ? sh->list.v[0]->name : "?");
    }
    if (c->errors || !ti) return;
    if (bi) p->st[nest[0]].sched.gpu = TL_LGPU_BLOCKS;
    K->gpu_sched = 1;
    K->gpu_block = threads ? (int)threads : 256;
    char head[64];
    if (bi) snprintf(head, sizeof head, "gpu_blocks(%.16s) gpu_threads(%.16s=%d)", bi, ti, K->gpu_block);
    else snprintf(head, sizeof head, "gpu_threads(%.16s=%d)", ti, K->gpu_block);
    snprintf(K->sched_gpu, sizeof K->sched_gpu, "%s%s", head, text);
}

static int apply_one(TlLProgram *p, int k) {
    TlLKernel *K = &p->kern[k];
    Ctx c0 = {0}, *c = &c0;
    c->p = p, c->k = k, c->block = K->sched, c->kernel = K->sched_kernel;
    if (!c->kernel) return 0;
    collect_names(c);
    char text[192] = "";
    int gemm_was = K->gemm.on, uses_loops = 0;
    for (int d = 0; d < c->block->list.n; d++) {
        const TlNode *dir = c->block->list.v[d];
        const char *dn = dir && dir->kind == TL_N_CALL ? ident_of(dir->a) : NULL;
        /* the GPU directives leave the CPU's GEMM alone; the NVPTX back end runs a kernel
         * with them (gpu_sched) as its loops */
        if (dn && strcmp(dn, "gpu_blocks") && strcmp(dn, "gpu_threads") && strcmp(dn, "shared")) uses_loops = 1;
    }
    if (uses_loops) K->gemm.on = 0; /* the source asked for these loops */
    apply_order(c, text, sizeof text);
    if (c->errors) return c->errors;
    refresh(c);
    if (c->nloops > TL_KSCHED_MAX_LOOPS) {
        DERR(c->block, "kernel %s has %d loops; a schedule can address at most %d", K->name, c->nloops, TL_KSCHED_MAX_LOOPS);
        return c->errors;
    }
    TlKSched s;
    tl_ksched_default(p, k, &s);
    for (int d = 0; d < c->block->list.n; d++) {
        const TlNode *dir = c->block->list.v[d];
        const char *dn = dir && dir->kind == TL_N_CALL ? ident_of(dir->a) : NULL;
        if (!dn) continue;
        int pos[MAXL], n;
        if (!strcmp(dn, "tile")) {
            for (int j = 0; j < dir->list.n; j++) {
                const TlNode *a = dir->list.v[j];
                if (!a || a->kind != TL_N_KWARG || !a->name) continue;
                int64_t size = const_arg(a->a);
                n = named(c, a, dn, a->name, pos);
                for (int q = 0; q < n; q++) {
                    const TlLStmt *L = &p->st[c->loops[pos[q]]];
                    int64_t ext = 0;
                    const TlLExpr *lo = &p->ex[L->lo], *hi = &p->ex[L->hi];
                    if (lo->kind == TL_LE_INT && hi->kind == TL_LE_INT) ext = hi->ival - lo->ival;
                    if (ext && size >= ext) {
                        DERR(a, "tile(%s = %lld): the loop over '%s' in kernel %s runs %lld times; a tile must be smaller",
                             a->name, (long long)size, a->name, K->name, (long long)ext);
                        break;
                    }
                    s.loop[pos[q]].tile = size;
                }
            }
        } else if (!strcmp(dn, "vectorize") || !strcmp(dn, "unroll")) {
            if (dir->list.n != 2) continue;
            const char *nm = ident_of(dir->list.v[0]);
            int64_t v = const_arg(dir->list.v[1]);
            if (!nm) continue;
            n = named(c, dir->list.v[0], dn, nm, pos);
            for (int q = 0; q < n; q++) {
                if (dn[0] == 'v') {
                    if (has_loop(p, p->st[c->loops[pos[q]]].body)) {
                        DERR(dir->list.v[0], "vectorize(%s, %lld): a loop over '%s' in kernel %s has loops inside it; "
                                             "only innermost loops vectorize", nm, (long long)v, nm, K->name);
                        break;
                    }
                    s.loop[pos[q]].vec = (int)v;
                } else {
                    s.loop[pos[q]].unroll = (int)v;
                }
            }
        }
    }
    if (c->errors) return c->errors;
    char e[256];
    if (tl_ksched_apply(p, k, &s, e, sizeof e)) {
        DERR(c->block, "the schedule of '%s' does not fit kernel %s: %s", c->kernel->name, K->name, e);
        return c->errors;
    }

    /* the knobs by index name: "i:tile=16 j:vec=8,unroll=2(x3)" */
    char items[TL_KSCHED_MAX_LOOPS][96];
    int count[TL_KSCHED_MAX_LOOPS], ni = 0;
    for (int i = 0; i < s.nloops; i++) {
        const TlKLoopSched *l = &s.loop[i];
        if (!l->tile && !l->vec && l->unroll <= 1) continue;
        char it[96], tl[32] = "", vc[24] = "", ur[24] = "";
        const char *nm = loop_name(c, c->loops[i]);
        if (l->tile) snprintf(tl, sizeof tl, ",tile=%lld", (long long)l->tile);
        if (l->vec) snprintf(vc, sizeof vc, ",vec=%d", l->vec);
        if (l->unroll > 1) snprintf(ur, sizeof ur, ",unroll=%d", l->unroll);
        snprintf(it, sizeof it, "%.24s:%s%s%s", nm ? nm : "?", tl + 1, vc + !tl[0], ur + !(tl[0] || vc[0]));
        int j = 0;
        while (j < ni && strcmp(items[j], it)) j++;
        if (j == ni) snprintf(items[ni], sizeof items[ni], "%s", it), count[ni++] = 0;
        count[j]++;
    }
    size_t o = strlen(text);
    for (int j = 0; j < ni && o < sizeof text; j++) {
        if (count[j] > 1) o += (size_t)snprintf(text + o, sizeof text - o, "%s(x%d) ", items[j], count[j]);
        else o += (size_t)snprintf(text + o, sizeof text - o, "%s ", items[j]);
    }
    if (o < sizeof text && gemm_was && !K->gemm.on) o += (size_t)snprintf(text + o, sizeof text - o, "(loop nest: no GEMM generator)");
    if (o >= sizeof text) o = sizeof text - 1;
    if (!o) o = (size_t)snprintf(text, sizeof text, "default");
    while (o > 0 && text[o - 1] == ' ') text[--o] = 0;
    snprintf(K->sched_text, sizeof K->sched_text, "%s", text);
    refresh(c);
    apply_gpu(c);
    return c->errors;
}

int tl_schedule_source_apply(TlLProgram *p, char *err, int errn) {
    int errors = 0;
    const char *bad = NULL;
    for (int k = 0; k < p->nkern; k++) {
        TlLKernel *K = &p->kern[k];
        if (K->sched_fused && !K->sched && first_report(K->sched_fused))
            tl_warning(K->sched_fused->loc, "the schedule of '%s' is not applied: its result is fused into kernel %s "
                                            "with the code that uses it (see tlc kernels)", K->sched_fused->name, K->name);
        if (!K->sched) continue;
        if (apply_one(p, k)) { /* reported now, or at an earlier lowering of the same program */
            errors++;
            bad = K->sched->name;
        }
    }
    if (errors) {
        if (err) snprintf(err, (size_t)errn, "invalid schedule for kernel '%s' (see the errors above)", bad ? bad : "?");
        return -1;
    }
    return 0;
}
