/* lower_index.c — indexing, slicing and gathering (x[i], x[:, t], x[0..T], wte[idx]), and
 * scan: a loop over time that becomes one Graph IR node with a body graph. */
#include <stdlib.h>
#include <string.h>

#include "lower_internal.h"

/* An index item evaluated: a whole axis, a slice, a single position, a gather by an integer
 * tensor, the scan's step variable, or `...`. */
typedef struct Item {
    enum { IT_ALL, IT_SLICE, IT_POS, IT_TENSOR, IT_STEP, IT_ELLIPSIS } kind;
    Value *lo, *hi; /* IT_SLICE (NULL: open), IT_POS (lo) */
    Value *t;       /* IT_TENSOR */
    TlLoc loc;
} Item;


/* x[t] with t the step variable of the innermost scan: the per-step slice of a sequence. */
static Value *index_step(Lower *L, Value *base, Item *items, int n, int step_at, TlLoc loc) {
    for (int i = 0; i < n; i++)
        if (i != step_at && items[i].kind != IT_ALL)
            return lower_error(L, items[i].loc, "in a scan, a sequence is indexed by the step variable alone, with `:` for the other axes");
    ScanFrame *f = L->scan;
    if (base->kind != V_TENSOR) return lower_error(L, loc, "only a tensor can be indexed by the step variable");
    if (base->g == f->body) return lower_error(L, loc, "the sequence indexed by the step variable must come from outside the scan");
    /* bring the tensor to the scan's parent graph, then move the step axis to the front */
    TlGraph *saved_cur = L->cur;
    ScanFrame *saved_scan = L->scan;
    L->cur = f->parent;
    L->scan = f->outer;
    int outer = lower_tensor(L, base, 0, loc);
    L->cur = saved_cur;
    L->scan = saved_scan;
    if (outer < 0) return NULL;
    int inner = lower_seq_input(L, outer, step_at, loc);
    return inner < 0 ? NULL : lv_tensor(L, inner);
}

int lower_seq_input(Lower *L, int outer, int axis, TlLoc loc) {
    ScanFrame *f = L->scan;
    TlGraph *pg = f->parent;
    int src = outer;
    if (axis != 0) {
        int r = pg->nodes[outer].shape.rank, perm[TL_MAX_RANK], k = 0;
        perm[k++] = axis;
        for (int i = 0; i < r; i++)
            if (i != axis) perm[k++] = i;
        src = tl_g_permute(pg, outer, perm, loc);
        if (src < 0) return -1;
    }
    for (int i = 0; i < f->nseq; i++)
        if (f->seq_outer[i] == src) return f->seq_inner[i];
    const TlGNode *n = &pg->nodes[src];
    TlGShape s = n->shape;
    TlGShape in = tl_gshape_dims(s.rank - 1, s.dim + 1);
    char name[32];
    snprintf(name, sizeof name, "seq%d", f->nseq);
    int inner = tl_g_input(f->body, tl_arena_strdup(L->arena, name), n->dtype, in, loc);
    int cap = f->seqcap;
    f->seq_outer = tl_arena_grow(L->arena, f->seq_outer, &cap, f->nseq + 1, sizeof(int));
    cap = f->seqcap;
    f->seq_inner = tl_arena_grow(L->arena, f->seq_inner, &cap, f->nseq + 1, sizeof(int));
    f->seqcap = cap;
    f->seq_outer[f->nseq] = src;
    f->seq_inner[f->nseq++] = inner;
    return inner;
}

static int eval_items(Lower *L, Env *env, TlList *list, Item *items) {
    for (int i = 0; i < list->n; i++) {
        TlNode *it = list->v[i];
        Item *x = &items[i];
        memset(x, 0, sizeof *x);
        x->loc = it->loc;
        if (it->kind == TL_N_ELLIPSIS) {
            x->kind = IT_ELLIPSIS;
        } else if (it->kind == TL_N_SLICE) {
            if (!it->a && !it->b) {
                x->kind = IT_ALL;
                continue;
            }
            x->kind = IT_SLICE;
            if (it->a && !(x->lo = lower_expr(L, env, it->a))) return -1;
            if (it->b && !(x->hi = lower_expr(L, env, it->b))) return -1;
            if ((x->lo && x->lo->kind != V_INT) || (x->hi && x->hi->kind != V_INT)) {
                lower_error(L, it->loc, "slice bounds must be integers");
                return -1;
            }
        } else {
            Value *v = lower_expr(L, env, it);
            if (!v) return -1;
            if (v->kind == V_INT || v->kind == V_BOOL) {
                x->kind = IT_POS;
                x->lo = v->kind == V_BOOL ? lv_int_c(L, v->b) : v;
            } else if (v->kind == V_SCANIDX) {
                x->kind = IT_STEP;
            } else if (v->kind == V_TENSOR) {
                x->kind = IT_TENSOR;
                x->t = v;
            } else if (v->kind == V_RANGE) {
                x->kind = IT_SLICE;
                x->lo = v->items[0];
                x->hi = v->items[1];
            } else {
                lower_error(L, it->loc, "cannot index with a %s", lv_kind_name(v->kind));
                return -1;
            }
        }
    }
    return 0;
}

Value *lower_index(Lower *L, Env *env, TlNode *e, Value *base) {
    if (!base) return NULL;
    int n = e->list.n;
    Item *items = tl_arena_alloc(L->arena, sizeof(Item) * (size_t)(n + 1));
    if (eval_items(L, env, &e->list, items) < 0) return NULL;
    if (base->kind == V_LIST || base->kind == V_TUPLE) {
        int64_t k;
        if (n != 1 || items[0].kind != IT_POS || !lv_const_int(L, items[0].lo, &k))
            return lower_error(L, e->loc, "a %s is indexed by one integer known at compile time", lv_kind_name(base->kind));
        if (k < 0) k += base->n;
        if (k < 0 || k >= base->n) return lower_error(L, e->loc, "index %lld is out of range for a %s of %d", (long long)k, lv_kind_name(base->kind), base->n);
        return base->items[k];
    }
    if (base->kind != V_TENSOR) return lower_error(L, e->loc, "a %s cannot be indexed", lv_kind_name(base->kind));
    for (int i = 0; i < n; i++)
        if (items[i].kind == IT_STEP) return index_step(L, base, items, n, i, e->loc);
    int x = lower_tensor(L, base, 0, e->loc);
    if (x < 0) return NULL;
    TlGraph *g = L->cur;
    TlGShape s = g->nodes[x].shape;
    /* a gather: table[idx] (idx the only item, or followed by whole axes) */
    for (int i = 0; i < n; i++) {
        if (items[i].kind != IT_TENSOR) continue;
        for (int k = 0; k < n; k++)
            if (k != i && items[k].kind != IT_ALL)
                return lower_error(L, e->loc, "indexing by an integer tensor is supported with `:` on the other axes only");
        int idx = lower_tensor(L, items[i].t, 0, items[i].loc);
        if (idx < 0) return NULL;
        if (!tl_dtype_is_int(g->nodes[idx].dtype))
            return lower_error(L, items[i].loc, "an index tensor must be i32 or i64, not %s", tl_dtype_name(g->nodes[idx].dtype));
        return lv_tensor(L, tl_g_gather(g, x, idx, i, e->loc));
    }
    int nell = 0;
    for (int i = 0; i < n; i++) nell += items[i].kind == IT_ELLIPSIS;
    if (nell > 1) return lower_error(L, e->loc, "at most one `...` in an index");
    int used = n - nell;
    if (used > s.rank) return lower_error(L, e->loc, "%d indices for a tensor of rank %d", used, s.rank);
    TlGDim start[TL_MAX_RANK], stop[TL_MAX_RANK], outd[TL_MAX_RANK];
    int64_t step[TL_MAX_RANK];
    int keep[TL_MAX_RANK], ax = 0, any = 0, nout = 0;
    for (int i = 0; i < s.rank; i++) {
        start[i] = tl_gdim_const(L->g, 0);
        stop[i] = s.dim[i];
        step[i] = 1;
        keep[i] = 1;
    }
    for (int i = 0; i < n; i++) {
        Item *it = &items[i];
        if (it->kind == IT_ELLIPSIS) {
            ax += s.rank - used;
            continue;
        }
        int a = ax++;
        if (it->kind == IT_ALL) continue;
        TlGDim d = s.dim[a];
        if (it->kind == IT_POS) {
            TlGDim p = it->lo->dim;
            int64_t c, dc;
            if (tl_gdim_is_const(L->g, p, &c) && c < 0) p = tl_gdim_add(L->g, d, p);
            if (tl_gdim_is_const(L->g, p, &c) && tl_gdim_is_const(L->g, d, &dc) && (c < 0 || c >= dc))
                return lower_error(L, it->loc, "index %lld is out of range for a dimension of %lld", (long long)c, (long long)dc);
            start[a] = p;
            stop[a] = tl_gdim_add(L->g, p, tl_gdim_const(L->g, 1));
            keep[a] = 0;
            any = 1;
            continue;
        }
        TlGDim lo = it->lo ? it->lo->dim : tl_gdim_const(L->g, 0);
        TlGDim hi = it->hi ? it->hi->dim : d;
        int64_t c;
        if (tl_gdim_is_const(L->g, lo, &c) && c < 0) lo = tl_gdim_add(L->g, d, lo);
        if (tl_gdim_is_const(L->g, hi, &c) && c < 0) hi = tl_gdim_add(L->g, d, hi);
        start[a] = lo;
        stop[a] = hi;
        any = 1;
    }
    if (!any) return lv_tensor(L, x);
    int y = tl_g_slice(g, x, start, stop, step, e->loc);
    if (y < 0) return lower_error(L, e->loc, "%s", tl_graph_error(g) ? tl_graph_error(g) : "bad slice");
    int dropped = 0;
    for (int i = 0; i < s.rank; i++) {
        if (keep[i]) outd[nout++] = g->nodes[y].shape.dim[i];
        else dropped = 1;
    }
    if (dropped) y = tl_g_reshape(g, y, tl_gshape_dims(nout, outd), e->loc);
    return lv_tensor(L, y);
}

/* ---- scan ------------------------------------------------------------------------------ */

/*   hT, cT, hs = scan t in 0..T carry (h = h0, c = c0) { ...; yield h }
 * The body is evaluated once, building a body graph whose arguments are the carries, the
 * per-step slices of the sequences it indexes by t, and the outside values it uses. */
Value *lower_scan(Lower *L, Env *env, TlNode *e) {
    if (!e->a || e->a->kind != TL_N_RANGE)
        return lower_error(L, e->loc, "scan needs a range such as 0..T");
    Value *lo = e->a->a ? lower_expr(L, env, e->a->a) : lv_int_c(L, 0);
    Value *hi = e->a->b ? lower_expr(L, env, e->a->b) : NULL;
    if (!lo || !hi) return L->failed ? NULL : lower_error(L, e->loc, "scan needs a range with an end");
    int64_t c;
    if (!lv_const_int(L, lo, &c) || c != 0) return lower_error(L, e->a->loc, "a scan range starts at 0");
    if (hi->kind != V_INT) return lower_error(L, e->a->loc, "a scan range ends at an integer");
    int nc = e->list.n;
    int *init = tl_arena_alloc(L->arena, sizeof(int) * (size_t)(nc + 1));
    for (int i = 0; i < nc; i++) {
        TlNode *kw = e->list.v[i];
        Value *v = lower_expr(L, env, kw->a);
        if (!v) return NULL;
        init[i] = lower_tensor(L, v, 0, kw->loc);
        if (init[i] < 0) return NULL;
    }
    ScanFrame *f = tl_arena_alloc(L->arena, sizeof *f);
    f->outer = L->scan;
    f->parent = L->cur;
    f->body = tl_graph_new_body(L->cur);
    f->index_name = e->name;
    TlGraph *parent = L->cur;
    L->cur = f->body;
    L->scan = f;
    Env *benv = env_frame(L, env);
    int *carry_in = tl_arena_alloc(L->arena, sizeof(int) * (size_t)(nc + 1));
    for (int i = 0; i < nc; i++) {
        const TlGNode *n = &parent->nodes[init[i]];
        carry_in[i] = tl_g_input(f->body, e->list.v[i]->name, n->dtype, n->shape, e->list.v[i]->loc);
        Value *cv = lv_new(L, V_TENSOR);
        cv->g = f->body;
        cv->id = carry_in[i];
        env_set(L, benv, e->list.v[i]->name, cv);
    }
    Value *step = lv_new(L, V_SCANIDX);
    env_set(L, benv, e->name, step);
    Value *yields = lv_new(L, V_LIST);
    env_set(L, benv, "\x01yields", yields);
    TlNode *body = e->b;
    int failed = 0;
    for (int i = 0; body && i < body->list.n && !failed; i++) {
        TlNode *s = body->list.v[i];
        if (s->kind == TL_N_RETURN) {
            lower_error(L, s->loc, "`return` inside a scan body; the body ends with its carries and `yield`s");
            failed = 1;
            break;
        }
        if (lower_exec_stmt(L, benv, s) < 0) failed = 1;
    }
    int nout = nc + yields->n;
    int *outs = tl_arena_alloc(L->arena, sizeof(int) * (size_t)(nout + 1));
    for (int i = 0; i < nc && !failed; i++) {
        Value *v = env_get(benv, e->list.v[i]->name);
        outs[i] = lower_tensor(L, v, 0, e->list.v[i]->loc);
        if (outs[i] < 0) {
            failed = 1;
            break;
        }
        const TlGNode *a = &f->body->nodes[outs[i]], *b = &parent->nodes[init[i]];
        if (a->dtype != b->dtype || !tl_gshape_eq(a->shape, b->shape)) {
            char x[128], y[128];
            tl_gshape_str(f->body, a->dtype, a->shape, x, sizeof x);
            tl_gshape_str(parent, b->dtype, b->shape, y, sizeof y);
            lower_error(L, e->list.v[i]->loc, "carry '%s' starts as %s but the body makes it %s", e->list.v[i]->name, y, x);
            failed = 1;
        }
    }
    for (int i = 0; i < yields->n && !failed; i++) {
        outs[nc + i] = lower_tensor(L, yields->items[i], 0, e->loc);
        if (outs[nc + i] < 0) failed = 1;
    }
    if (!failed) {
        /* a scan with no sequence still needs its length: iterate over a dummy [T] */
        if (f->nseq == 0) {
            L->cur = parent;
            L->scan = f->outer;
            TlGDim T[1] = {hi->dim};
            int dummy = tl_g_const(parent, 0.0, TL_F32, tl_gshape_dims(1, T), e->loc);
            L->cur = f->body;
            L->scan = f;
            lower_seq_input(L, dummy, 0, e->loc);
        }
        for (int i = 0; i < nout; i++) tl_graph_add_output(f->body, outs[i]);
        /* the body's arguments in the order scan expects: carries, sequences, invariants */
        int k = 0;
        for (int i = 0; i < nc; i++) f->body->inputs[k++] = carry_in[i];
        for (int i = 0; i < f->nseq; i++) f->body->inputs[k++] = f->seq_inner[i];
        for (int i = 0; i < f->ninv; i++) f->body->inputs[k++] = f->inv_inner[i];
        if (k != f->body->ninputs) {
            lower_error(L, e->loc, "internal: scan body has %d inputs, expected %d", f->body->ninputs, k);
            failed = 1;
        }
    }
    L->cur = parent;
    L->scan = f->outer;
    if (failed || L->failed) return NULL;
    for (int i = 0; i < f->nseq; i++) {
        int64_t len, want;
        TlGDim d = parent->nodes[f->seq_outer[i]].shape.dim[0];
        if (tl_gdim_is_const(L->g, d, &len) && tl_gdim_is_const(L->g, hi->dim, &want) && len != want)
            return lower_error(L, e->loc, "scan runs %lld steps but a sequence it indexes has %lld", (long long)want, (long long)len);
    }
    int *results = tl_arena_alloc(L->arena, sizeof(int) * (size_t)(nout + 1));
    int s = tl_g_scan(parent, f->body, nc, init, f->nseq, f->seq_outer, f->ninv, f->inv_outer, 0, results, e->loc);
    if (s < 0) return lower_error(L, e->loc, "%s", tl_graph_error(parent) ? tl_graph_error(parent) : "cannot build the scan");
    Value *t = lv_new(L, V_TUPLE);
    t->n = nout;
    t->items = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(nout + 1));
    for (int i = 0; i < nout; i++) t->items[i] = lv_tensor(L, results[i]);
    return t;
}
