/* schedule_source.c — source `schedule` blocks applied to Loop IR kernels (see
 * schedule_source.h for the mapping from index names to loops and the checks). */
#include "schedule_source.h"

#include <stdio.h>
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
    const TlNode *order = NULL, *par = NULL;
    for (int d = 0; d < c->block->list.n; d++) {
        const TlNode *dir = c->block->list.v[d];
        const char *dn = dir && dir->kind == TL_N_CALL ? ident_of(dir->a) : NULL;
        if (!dn) continue;
        if (!strcmp(dn, "order")) order = dir;
        if (!strcmp(dn, "parallel")) par = dir;
    }
    /* where each result name sits in the nest, -1 when it has no loop there */
    const TlNode *dirs[2] = {order, par};
    for (int w = 0; w < 2; w++) {
        const TlNode *dir = dirs[w];
        if (!dir) continue;
        for (int i = 0; i < dir->list.n; i++) {
            const TlNode *a = dir->list.v[i];
            const char *nm = ident_of(a);
            if (!nm) continue;
            int at = -1;
            for (int j = 0; j < n; j++)
                if (loop_name(c, nest[j]) && !strcmp(loop_name(c, nest[j]), nm)) at = j;
            if (at >= 0) continue;
            if (!is_result_name(c, nm))
                DERR(a, "%s: '%s' is a reduction index of kernel '%s'; only the loops over its result can be %s", w ? "parallel" : "order",
                     nm, c->kernel->name, w ? "parallel" : "reordered");
            else
                DERR(a, "%s: the loop over '%s' is not in the nest of loops over the result that starts kernel %s "
                        "(a row kernel keeps its reduced axis inside: see --emit=loops)",
                     w ? "parallel" : "order", nm, c->p->kern[c->k].name);
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
        const char *nm = ident_of(par->list.n ? par->list.v[0] : NULL);
        int at = -1;
        for (int j = 0; nm && j < n; j++)
            if (!strcmp(loop_name(c, nest[perm[j]]), nm)) at = j;
        if (at > 0 && order) {
            DERR(par, "parallel(%s): the parallel loop is the outermost one, but order(...) puts '%s' first", nm,
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
        if (dn && (!strcmp(dn, "gpu_blocks") || !strcmp(dn, "gpu_threads") || !strcmp(dn, "shared"))) {
            if (first_report(dir))
                tl_warning(dir->loc, "'%s' is not applied: the NVPTX back end picks its launch shape and shared-memory "
                                     "tiles itself (docs/nvptx.md)", dn);
        } else if (dn) {
            uses_loops = 1;
        }
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
    return 0;
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
