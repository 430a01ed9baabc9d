/* memplan.c — live ranges of a Loop IR program's buffers and their offsets in one arena
 * (memplan.h; docs/memory.md). Greedy by size with best fit, as TFLite's and TVM's static
 * planners do: O(n^2) in the number of buffers, which is a few thousand at most. */
#include "memplan.h"

#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) abort();
    return p;
}

static int planned(const TlLBuf *b) { return b->kind == TL_LB_TEMP || b->kind == TL_LB_STATE; }

/* ---- the buffers a kernel touches ---- */

typedef struct Walk {
    const TlLProgram *p;
    int *exmark, *bufmark, stamp; /* per expression / buffer: visited in this walk */
    int *out, n, max;
} Walk;

static void add_buf(Walk *w, int b) {
    if (b < 0 || b >= w->p->nbuf || w->bufmark[b] == w->stamp) return;
    w->bufmark[b] = w->stamp;
    if (w->n < w->max) w->out[w->n] = b;
    w->n++;
}

static void walk_expr(Walk *w, int e) {
    /* expressions form a DAG; each is visited once per walk */
    while (e >= 0 && e < w->p->nex && w->exmark[e] != w->stamp) {
        w->exmark[e] = w->stamp;
        const TlLExpr *x = &w->p->ex[e];
        if (x->kind == TL_LE_LOAD) add_buf(w, x->buf);
        if (x->kind == TL_LE_INT || x->kind == TL_LE_FLT || x->kind == TL_LE_VAR || x->kind == TL_LE_SYM ||
            x->kind == TL_LE_LOCAL)
            return;
        walk_expr(w, x->b);
        walk_expr(w, x->c);
        e = x->a;
    }
}

static void walk_stmts(Walk *w, int s) {
    for (; s >= 0; s = w->p->st[s].next) {
        const TlLStmt *t = &w->p->st[s];
        switch (t->kind) {
        case TL_LS_LOOP: walk_expr(w, t->lo), walk_expr(w, t->hi), walk_stmts(w, t->body); break;
        case TL_LS_STORE: add_buf(w, t->buf), walk_expr(w, t->index), walk_expr(w, t->value); break;
        case TL_LS_SET: walk_expr(w, t->value); break;
        case TL_LS_IF: walk_expr(w, t->cond), walk_stmts(w, t->body), walk_stmts(w, t->els); break;
        }
    }
}

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

static void kernel_bufs(Walk *w, int k) {
    const TlLKernel *kn = &w->p->kern[k];
    w->stamp++, w->n = 0;
    walk_stmts(w, kn->body);
    if (kn->gemm.on) add_buf(w, kn->gemm.a), add_buf(w, kn->gemm.b), add_buf(w, kn->gemm.c);
    if (w->n <= w->max) qsort(w->out, (size_t)w->n, sizeof *w->out, cmp_int);
}

static Walk walk_new(const TlLProgram *p, int *out, int max) {
    Walk w = {p, xcalloc((size_t)p->nex, sizeof(int)), xcalloc((size_t)p->nbuf, sizeof(int)), 0, out, 0, max};
    return w;
}

static void walk_free(Walk *w) { free(w->exmark), free(w->bufmark); }

int tl_memplan_kernel_bufs(const TlLProgram *p, int k, int *out, int max) {
    if (k < 0 || k >= p->nkern) return 0;
    Walk w = walk_new(p, out, max);
    kernel_bufs(&w, k);
    walk_free(&w);
    return w.n;
}

/* ---- live ranges ---- */

typedef struct Live {
    const TlLProgram *p;
    int *kstart, *kbufs;         /* per kernel: its buffers, kbufs[kstart[k] .. kstart[k+1]) */
    int *hpt, *hend;             /* per host op: its point; the last point of its subtree */
    int *ahead, *anext, *asrc;   /* alias edges dst -> src (ahead per buffer, -1 = none) */
    int *visit, vstamp;
    int *first, *last;
} Live;

/* Buffer b is used over points [lo, hi]; so is every buffer it aliases. */
static void use_rec(Live *l, int b, int lo, int hi) {
    if (b < 0 || b >= l->p->nbuf || l->visit[b] == l->vstamp) return;
    l->visit[b] = l->vstamp;
    if (l->first[b] < 0 || lo < l->first[b]) l->first[b] = lo;
    if (hi > l->last[b]) l->last[b] = hi;
    for (int e = l->ahead[b]; e >= 0; e = l->anext[e]) use_rec(l, l->asrc[e], lo, hi);
}

static void use(Live *l, int b, int lo, int hi) {
    l->vstamp++;
    use_rec(l, b, lo, hi);
}

static void number(Live *l, int h, int *pt) {
    for (; h >= 0; h = l->p->host[h].next) {
        l->hpt[h] = ++*pt;
        if (l->p->host[h].kind == TL_LH_LOOP) number(l, l->p->host[h].body, pt);
        l->hend[h] = *pt;
    }
}

/* lo < 0: outside any host loop; else [lo, hi] is the outermost enclosing loop's range. */
static void live_ranges(Live *l, int h, int lo, int hi) {
    for (; h >= 0; h = l->p->host[h].next) {
        const TlLHost *o = &l->p->host[h];
        int a = lo >= 0 ? lo : l->hpt[h], z = lo >= 0 ? hi : l->hend[h];
        switch (o->kind) {
        case TL_LH_KERNEL:
            if (o->kernel >= 0 && o->kernel < l->p->nkern)
                for (int i = l->kstart[o->kernel]; i < l->kstart[o->kernel + 1]; i++) use(l, l->kbufs[i], a, z);
            break;
        case TL_LH_COPY: use(l, o->dst, a, z), use(l, o->src, a, z); break;
        case TL_LH_ALIAS: use(l, o->src, a, z); break;
        case TL_LH_LOOP: live_ranges(l, o->body, a, z); break;
        }
    }
}

static void collect_aliases(Live *l, int h, int *ne) {
    for (; h >= 0; h = l->p->host[h].next) {
        const TlLHost *o = &l->p->host[h];
        if (o->kind == TL_LH_LOOP) collect_aliases(l, o->body, ne);
        if (o->kind != TL_LH_ALIAS || o->dst < 0 || o->dst >= l->p->nbuf || o->src < 0 || o->src >= l->p->nbuf) continue;
        int e = (*ne)++;
        l->asrc[e] = o->src, l->anext[e] = l->ahead[o->dst], l->ahead[o->dst] = e;
    }
}

/* ---- offsets ---- */

typedef struct Order { int64_t bytes; int first, id; } Order;

static int cmp_order(const void *a_, const void *b_) {
    const Order *a = a_, *b = b_;
    if (a->bytes != b->bytes) return a->bytes > b->bytes ? -1 : 1;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static void place(TlMemPlan *m, const Order *ord, int n) {
    int *pl = xcalloc((size_t)n, sizeof(int)), np = 0; /* placed, by offset */
    for (int i = 0; i < n; i++) {
        int b = ord[i].id;
        int64_t sz = m->bytes[b], prev = 0, best = -1, bestgap = INT64_MAX;
        for (int j = 0; j < np; j++) {
            int x = pl[j];
            if (m->last[x] < m->first[b] || m->last[b] < m->first[x]) continue; /* disjoint in time */
            int64_t gap = m->offset[x] - prev;
            if (gap >= sz && gap < bestgap) best = prev, bestgap = gap;
            if (m->offset[x] + m->bytes[x] > prev) prev = m->offset[x] + m->bytes[x];
        }
        m->offset[b] = best >= 0 ? best : prev;
        int at = np;
        while (at > 0 && m->offset[pl[at - 1]] > m->offset[b]) at--;
        memmove(pl + at + 1, pl + at, sizeof *pl * (size_t)(np - at));
        pl[at] = b, np++;
        if (m->offset[b] + sz > m->arena) m->arena = m->offset[b] + sz;
    }
    free(pl);
}

TlMemPlan *tl_memplan_ex(const TlLProgram *p, const int64_t *syms, const int *keep, int nkeep, int reuse) {
    int nb = p->nbuf;
    TlMemPlan *m = xcalloc(1, sizeof *m);
    m->nbuf = nb, m->reuse = reuse;
    m->offset = xcalloc((size_t)nb, sizeof(int64_t)), m->bytes = xcalloc((size_t)nb, sizeof(int64_t));
    m->first = xcalloc((size_t)nb, sizeof(int)), m->last = xcalloc((size_t)nb, sizeof(int));
    for (int i = 0; i < nb; i++) {
        m->offset[i] = -1, m->first[i] = -1, m->last[i] = -1;
        if (!planned(&p->buf[i])) continue;
        int64_t n = tl_loops_eval(p, p->buf[i].numel, syms);
        if (n < 0) {
            tl_memplan_free(m);
            return NULL;
        }
        int64_t bytes = (n > 0 ? n : 1) * (int64_t)tl_ltype_size(p->buf[i].elem);
        m->bytes[i] = (bytes + TL_MEMPLAN_ALIGN - 1) / TL_MEMPLAN_ALIGN * TL_MEMPLAN_ALIGN;
        m->total += m->bytes[i];
    }

    /* the kernels' buffers, once each */
    Live l = {.p = p};
    l.kstart = xcalloc((size_t)p->nkern + 1, sizeof(int));
    int cap = 1024, nkb = 0;
    l.kbufs = xcalloc((size_t)cap, sizeof(int));
    Walk w = walk_new(p, NULL, 0);
    int *tmp = xcalloc((size_t)nb, sizeof(int));
    w.out = tmp, w.max = nb;
    for (int k = 0; k < p->nkern; k++) {
        kernel_bufs(&w, k);
        if (nkb + w.n > cap) {
            while (nkb + w.n > cap) cap *= 2;
            l.kbufs = realloc(l.kbufs, sizeof(int) * (size_t)cap);
            if (!l.kbufs) abort();
        }
        memcpy(l.kbufs + nkb, tmp, sizeof(int) * (size_t)w.n);
        nkb += w.n;
        l.kstart[k + 1] = nkb;
    }
    walk_free(&w);
    free(tmp);

    l.hpt = xcalloc((size_t)p->nhost, sizeof(int)), l.hend = xcalloc((size_t)p->nhost, sizeof(int));
    l.ahead = xcalloc((size_t)nb, sizeof(int)), l.visit = xcalloc((size_t)nb, sizeof(int));
    l.anext = xcalloc((size_t)p->nhost, sizeof(int)), l.asrc = xcalloc((size_t)p->nhost, sizeof(int));
    for (int i = 0; i < nb; i++) l.ahead[i] = -1;
    l.first = m->first, l.last = m->last;
    int pt = 0, ne = 0;
    number(&l, p->entry, &pt);
    m->npoints = pt;
    collect_aliases(&l, p->entry, &ne);
    live_ranges(&l, p->entry, -1, -1);
    int end = pt + 1;
    for (int i = 0; i < nb; i++)
        if (p->buf[i].kind == TL_LB_STATE) use(&l, i, 0, 0); /* zeroed at the start of a run */
    for (int i = 0; i < nkeep; i++) {
        int b = keep[i];
        if (b < 0 || b >= nb) continue;
        use(&l, b, m->last[b] >= 0 ? m->last[b] : end, end);
    }

    /* offsets */
    Order *ord = xcalloc((size_t)nb, sizeof *ord);
    int n = 0;
    int64_t unused = 0;
    for (int i = 0; i < nb; i++) {
        if (!m->bytes[i]) continue;
        if (m->first[i] < 0) { /* touched by nothing: no storage needed; any address will do */
            m->offset[i] = 0;
            if (m->bytes[i] > unused) unused = m->bytes[i];
            continue;
        }
        if (!reuse) {
            m->offset[i] = m->arena, m->arena += m->bytes[i];
            continue;
        }
        ord[n++] = (Order){m->bytes[i], m->first[i], i};
    }
    if (reuse) {
        qsort(ord, (size_t)n, sizeof *ord, cmp_order);
        place(m, ord, n);
    }
    if (m->arena < unused) m->arena = unused; /* their pointers stay inside the arena */

    /* the most bytes live at one point */
    int64_t *delta = xcalloc((size_t)end + 2, sizeof(int64_t));
    for (int i = 0; i < nb; i++)
        if (m->bytes[i] && m->first[i] >= 0) delta[m->first[i]] += m->bytes[i], delta[m->last[i] + 1] -= m->bytes[i];
    int64_t live = 0;
    for (int t = 0; t <= end; t++) {
        live += delta[t];
        if (live > m->peak) m->peak = live, m->peak_point = t;
    }
    free(delta);
    free(ord);
    free(l.kstart), free(l.kbufs), free(l.hpt), free(l.hend), free(l.ahead), free(l.anext), free(l.asrc), free(l.visit);
    return m;
}

TlMemPlan *tl_memplan(const TlLProgram *p, const int64_t *syms, const int *keep, int nkeep) {
    return tl_memplan_ex(p, syms, keep, nkeep, 1);
}

void tl_memplan_free(TlMemPlan *m) {
    if (!m) return;
    free(m->offset), free(m->bytes), free(m->first), free(m->last);
    free(m);
}

int tl_memplan_outputs(const TlLProgram *p, int *keep, int max) {
    int n = 0;
    if (!p->g || !p->node_buf) return 0;
    for (int k = 0; k < p->g->noutputs; k++) {
        int node = p->g->outputs[k];
        int b = node >= 0 && node < p->g->nnodes ? p->node_buf[node] : -1;
        if (b < 0) continue;
        if (n < max) keep[n] = b;
        n++;
    }
    return n;
}

static void human(char *s, size_t n, int64_t b) {
    if (b >= (int64_t)1 << 30) snprintf(s, n, "%.2f GiB", (double)b / (double)(1 << 30));
    else if (b >= 1 << 20) snprintf(s, n, "%.2f MiB", (double)b / (double)(1 << 20));
    else if (b >= 1 << 10) snprintf(s, n, "%.1f KiB", (double)b / 1024.0);
    else snprintf(s, n, "%lld B", (long long)b);
}

void tl_memplan_print(FILE *f, const TlLProgram *p, const TlMemPlan *m) {
    static const char *kinds[] = {"temp", "input", "param", "const", "alias", "state"};
    fprintf(f, "# memory plan: %d host points\n", m->npoints);
    for (int i = 0; i < m->nbuf; i++) {
        if (!m->bytes[i]) continue;
        const TlLBuf *b = &p->buf[i];
        fprintf(f, "b%-5d %-5s %12lld bytes at %12lld  live [%d, %d]", i, kinds[b->kind], (long long)m->bytes[i],
                (long long)m->offset[i], m->first[i], m->last[i]);
        if (b->node >= 0) fprintf(f, "  %s%%%d", b->depth ? "body " : "", b->node);
        fputc('\n', f);
    }
    char a[32], t[32], k[32];
    human(a, sizeof a, m->arena), human(t, sizeof t, m->total), human(k, sizeof k, m->peak);
    fprintf(f, "# arena %s (%lld bytes), no reuse %s, peak live %s at point %d%s\n", a, (long long)m->arena, t, k,
            m->peak_point, m->reuse ? "" : " (reuse off)");
}
