/* simplify.c — CSE, constant folding, algebraic identities, DCE.
 *
 * Every pass is one walk that rebuilds the node array in topological order: each old node
 * is copied with its operands renamed, unless a rule replaces it by an existing node or by
 * new nodes made with the builder. Rebuilding (rather than patching in place) keeps id order
 * topological without a separate sort. */
#include "simplify.h"

#include <stdlib.h>
#include <string.h>

#include "interp.h"

/* ---- node identity for CSE ---- */

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ull; }

static uint64_t node_hash(const TlGNode *n) {
    uint64_t h = mix(0xcbf29ce484222325ull, (uint64_t)n->op);
    h = mix(h, (uint64_t)n->dtype);
    for (int i = 0; i < n->shape.rank; i++) h = mix(h, (uint64_t)n->shape.dim[i]);
    for (int i = 0; i < n->nin; i++) h = mix(h, (uint64_t)n->in[i]);
    h = mix(h, (uint64_t)n->axis);
    h = mix(h, n->axes);
    return h ^ (h >> 31);
}

static int attrs_equal(const TlGraph *g, const TlGNode *a, const TlGNode *b) {
    if (a->op != b->op || a->dtype != b->dtype || !tl_gshape_eq(a->shape, b->shape) || a->nin != b->nin)
        return 0;
    for (int i = 0; i < a->nin; i++)
        if (a->in[i] != b->in[i]) return 0;
    if (a->axis != b->axis || a->keepdims != b->keepdims || a->axes != b->axes) return 0;
    int r = a->nin ? g->nodes[a->in[0]].shape.rank : 0;
    switch (a->op) {
    case TL_GOP_INPUT: case TL_GOP_PARAM: return 0; /* distinct by identity */
    case TL_GOP_CONST: {
        if ((a->data == NULL) != (b->data == NULL)) return 0;
        if (!a->data) return memcmp(&a->fill, &b->fill, sizeof a->fill) == 0;
        int64_t n = 1, v;
        for (int i = 0; i < a->shape.rank; i++) n *= tl_gdim_is_const(g, a->shape.dim[i], &v) ? v : 0;
        return memcmp(a->data, b->data, sizeof(double) * (size_t)n) == 0;
    }
    case TL_GOP_RANDOM: return a->dist == b->dist && a->seed == b->seed && a->offset == b->offset;
    case TL_GOP_CONTRACT: return strcmp(a->spec, b->spec) == 0;
    case TL_GOP_PERMUTE: return memcmp(a->perm, b->perm, sizeof(int) * (size_t)a->shape.rank) == 0;
    case TL_GOP_SLICE: case TL_GOP_PAD:
        for (int i = 0; i < r; i++)
            if (a->lo[i] != b->lo[i] || a->hi[i] != b->hi[i] || a->step[i] != b->step[i]) return 0;
        return a->op == TL_GOP_SLICE || memcmp(&a->fill, &b->fill, sizeof a->fill) == 0;
    case TL_GOP_SCATTER_ADD: return a->size == b->size;
    case TL_GOP_ATTN: case TL_GOP_ATTN_GRAD: return memcmp(&a->fill, &b->fill, sizeof a->fill) == 0;
    case TL_GOP_SCAN:
        return a->body == b->body && a->ncarry == b->ncarry && a->nseq == b->nseq && a->reverse == b->reverse;
    default: return 1;
    }
}

typedef struct Cse { int *slot; int nslot; } Cse;

static int cse_find_or_add(Cse *t, TlGraph *g, int id) {
    if (!t->nslot) return -1;
    const TlGNode *n = &g->nodes[id];
    int s = (int)(node_hash(n) & (uint64_t)(t->nslot - 1));
    while (t->slot[s] >= 0) {
        if (attrs_equal(g, &g->nodes[t->slot[s]], n)) return t->slot[s];
        s = (s + 1) & (t->nslot - 1);
    }
    t->slot[s] = id;
    return -1;
}

/* ---- helpers ---- */

static int is_fill(const TlGraph *g, int id, double v) {
    const TlGNode *n = &g->nodes[id];
    return n->op == TL_GOP_CONST && !n->data && n->fill == v;
}

static int const_numel(const TlGraph *g, TlGShape s, int64_t *numel) {
    int64_t n = 1, v;
    for (int i = 0; i < s.rank; i++) {
        if (!tl_gdim_is_const(g, s.dim[i], &v)) return 0;
        n *= v;
    }
    *numel = n;
    return 1;
}

/* Evaluate node p (operands are const nodes of g) on a scratch graph. With `scalar`, every
 * operand is a fill constant and the op elementwise: evaluate at rank 0. Returns the new
 * const node in g, or -1 when not foldable. */
static int fold_eval(TlGraph *g, const TlGNode *p, int scalar) {
    TlGraph *s = tl_graph_new_body(g);
    int ins[TL_MAX_RANK * 4], ok = p->nin <= (int)(sizeof ins / sizeof ins[0]);
    for (int k = 0; ok && k < p->nin; k++) {
        TlGNode c = g->nodes[p->in[k]];
        if (scalar) c.shape.rank = 0;
        ins[k] = tl_graph_add_node(s, &c);
    }
    int result = -1;
    if (ok) {
        TlGNode q = *p;
        q.in = ins;
        if (scalar) q.shape.rank = 0;
        int id = tl_graph_add_node(s, &q);
        TlInterp *it = tl_interp_new(s);
        if (tl_interp_run(it) == 0) {
            const TlTensor *t = tl_interp_value(it, id);
            int uniform = 1;
            for (int64_t i = 1; i < t->numel; i++) uniform &= tl_tensor_get(t, i) == tl_tensor_get(t, 0);
            if (uniform && t->numel > 0) {
                result = tl_g_const(g, tl_tensor_get(t, 0), p->dtype, p->shape, p->loc);
            } else {
                double *d = malloc(sizeof(double) * (size_t)(t->numel + 1));
                for (int64_t i = 0; i < t->numel; i++) d[i] = tl_tensor_get(t, i);
                result = tl_g_const_data(g, d, p->dtype, p->shape, p->loc);
                free(d);
            }
        }
        tl_interp_free(it);
    }
    tl_graph_free_body(s);
    return result;
}

#define FOLD_MAX_ELEMS 4096

static int try_fold(TlGraph *g, const TlGNode *p, TlSimplifyStats *st) {
    if (p->op == TL_GOP_INPUT || p->op == TL_GOP_PARAM || p->op == TL_GOP_CONST || p->op == TL_GOP_RANDOM ||
        p->op == TL_GOP_SCAN || p->op == TL_GOP_PROJ || p->nin == 0)
        return -1;
    int allfill = 1;
    for (int k = 0; k < p->nin; k++) {
        const TlGNode *c = &g->nodes[p->in[k]];
        if (c->op != TL_GOP_CONST) return -1;
        allfill &= c->data == NULL;
    }
    int r = -1;
    if (allfill && tl_gop_is_elementwise(p->op)) {
        r = fold_eval(g, p, 1);
    } else if (allfill && (p->op == TL_GOP_RESHAPE || p->op == TL_GOP_PERMUTE || p->op == TL_GOP_SLICE)) {
        r = tl_g_const(g, g->nodes[p->in[0]].fill, p->dtype, p->shape, p->loc);
    } else {
        int64_t n;
        if (!const_numel(g, p->shape, &n) || n > FOLD_MAX_ELEMS) return -1;
        for (int k = 0; k < p->nin; k++)
            if (!const_numel(g, g->nodes[p->in[k]].shape, &n) || n > FOLD_MAX_ELEMS) return -1;
        r = fold_eval(g, p, 0);
    }
    if (r >= 0) st->fold++;
    return r;
}

/* Algebraic identities. p's operands are already ids in the rebuilt graph. */
static int try_algebra(TlGraph *g, const TlGNode *p, TlSimplifyStats *st) {
    int a = p->nin > 0 ? p->in[0] : -1, b = p->nin > 1 ? p->in[1] : -1;
    switch (p->op) {
    case TL_GOP_MUL:
        if (is_fill(g, b, 1)) return st->mul_one++, a;
        if (is_fill(g, a, 1)) return st->mul_one++, b;
        return -1;
    case TL_GOP_ADD:
        if (is_fill(g, b, 0)) return st->add_zero++, a;
        if (is_fill(g, a, 0)) return st->add_zero++, b;
        return -1;
    case TL_GOP_SUB: return is_fill(g, b, 0) ? (st->sub_zero++, a) : -1;
    case TL_GOP_DIV: return is_fill(g, b, 1) ? (st->div_one++, a) : -1;
    case TL_GOP_NEG: return g->nodes[a].op == TL_GOP_NEG ? (st->neg_neg++, g->nodes[a].in[0]) : -1;
    case TL_GOP_PERMUTE: {
        int perm[TL_MAX_RANK], x = a, id = 1, r = p->shape.rank;
        memcpy(perm, p->perm, sizeof perm);
        if (g->nodes[a].op == TL_GOP_PERMUTE) { /* out[i] = in[p2[i]] = x[p1[p2[i]]] */
            for (int i = 0; i < r; i++) perm[i] = g->nodes[a].perm[p->perm[i]];
            x = g->nodes[a].in[0];
        }
        for (int i = 0; i < r; i++) id &= perm[i] == i;
        if (x != a) {
            st->permute_permute++;
            return id ? x : tl_g_permute(g, x, perm, p->loc);
        }
        return id ? (st->permute_identity++, a) : -1;
    }
    case TL_GOP_RESHAPE:
        if (tl_gshape_eq(g->nodes[a].shape, p->shape)) return st->reshape_identity++, a;
        if (g->nodes[a].op == TL_GOP_RESHAPE) {
            st->reshape_reshape++;
            int x = g->nodes[a].in[0];
            return tl_gshape_eq(g->nodes[x].shape, p->shape) ? x : tl_g_reshape(g, x, p->shape, p->loc);
        }
        return -1;
    case TL_GOP_BROADCAST:
        if (tl_gshape_eq(g->nodes[a].shape, p->shape)) return st->broadcast_identity++, a;
        if (g->nodes[a].op == TL_GOP_CONST && !g->nodes[a].data)
            return st->broadcast_const++, tl_g_const(g, g->nodes[a].fill, p->dtype, p->shape, p->loc);
        return -1;
    default: return -1;
    }
}

/* ---- the rebuild walk ---- */

static int pass(TlGraph *g, int which, TlSimplifyStats *st, int *remap);

static int rebuild(TlGraph *g, int which, TlSimplifyStats *st, int *map) {
    int oldn = g->nnodes;
    TlGNode *old = g->nodes;
    char *live = NULL;
    if (which & TL_SIMPLIFY_DCE) { /* live = reachable from an output, or an input/param */
        live = calloc((size_t)oldn + 1, 1);
        for (int i = 0; i < g->noutputs; i++) live[g->outputs[i]] = 1;
        for (int i = oldn - 1; i >= 0; i--) {
            if (old[i].op == TL_GOP_INPUT || old[i].op == TL_GOP_PARAM) live[i] = 1;
            if (live[i])
                for (int k = 0; k < old[i].nin; k++) live[old[i].in[k]] = 1;
        }
    }
    g->nodes = NULL, g->nnodes = 0, g->cap = 0, g->ninputs = 0;
    Cse cse = {NULL, 0};
    if (which & TL_SIMPLIFY_CSE) {
        cse.nslot = 64;
        while (cse.nslot < 4 * oldn) cse.nslot *= 2;
        cse.slot = malloc(sizeof(int) * (size_t)cse.nslot);
        for (int i = 0; i < cse.nslot; i++) cse.slot[i] = -1;
    }
    int rc = 0, *ins = NULL, inscap = 0;
    for (int i = 0; i < oldn && rc == 0; i++) {
        if (live && !live[i]) {
            map[i] = -1, st->dce++;
            continue;
        }
        TlGNode p = old[i];
        if (p.nin > inscap) inscap = p.nin * 2, ins = realloc(ins, sizeof(int) * (size_t)inscap);
        for (int k = 0; k < p.nin; k++) ins[k] = map[p.in[k]];
        p.in = ins;
        if (p.op == TL_GOP_SCAN && (rc = pass(p.body, which, st, NULL))) break;
        int start = g->nnodes, r = -1;
        if (which & TL_SIMPLIFY_ALGEBRA) r = try_algebra(g, &p, st);
        if (r < 0 && (which & TL_SIMPLIFY_FOLD)) r = try_fold(g, &p, st);
        if (r < 0 && g->err[0]) { rc = -1; break; }
        if (r < 0) {
            r = tl_graph_add_node(g, &p);
            int same = cse_find_or_add(&cse, g, r);
            if (same >= 0) { /* drop the copy just made */
                g->nnodes--;
                if (p.op == TL_GOP_INPUT) g->ninputs--;
                st->cse++;
                r = same;
            }
        } else {
            for (int k = start; k < g->nnodes; k++) { /* nodes a rule made join the table */
                int same = cse_find_or_add(&cse, g, k);
                if (same >= 0 && k == g->nnodes - 1 && k == r) g->nnodes--, r = same, st->cse++;
            }
        }
        map[i] = r;
    }
    for (int i = 0; i < g->noutputs && rc == 0; i++) g->outputs[i] = map[g->outputs[i]];
    free(ins);
    free(cse.slot);
    free(live);
    free(old);
    return rc;
}

/* One rebuild per pass kind, repeated while anything changes. */
static int pass(TlGraph *g, int which, TlSimplifyStats *st, int *remap) {
    int n = g->nnodes;
    int *total = malloc(sizeof(int) * (size_t)(n + 1)), *map = malloc(sizeof(int) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) total[i] = i;
    int rc = 0;
    for (int round = 0; round < 8 && rc == 0; round++) {
        TlSimplifyStats before = *st;
        int cur = g->nnodes;
        map = realloc(map, sizeof(int) * (size_t)(cur + 1));
        rc = rebuild(g, which & ~TL_SIMPLIFY_DCE, st, map);
        for (int i = 0; i < n; i++) total[i] = total[i] < 0 ? -1 : map[total[i]];
        if (rc == 0 && (which & TL_SIMPLIFY_DCE)) {
            map = realloc(map, sizeof(int) * (size_t)(g->nnodes + 1));
            rc = rebuild(g, TL_SIMPLIFY_DCE, st, map);
            for (int i = 0; i < n; i++) total[i] = total[i] < 0 ? -1 : map[total[i]];
        }
        if (memcmp(&before, st, sizeof before) == 0) break;
    }
    if (remap) memcpy(remap, total, sizeof(int) * (size_t)n);
    free(total);
    free(map);
    return rc;
}

int tl_simplify(TlGraph *g, int which, TlSimplifyStats *stats, int *remap) {
    TlSimplifyStats local;
    memset(&local, 0, sizeof local);
    if (tl_graph_error(g)) return -1;
    int rc = pass(g, which, stats ? stats : &local, remap);
    return rc || tl_graph_error(g) ? -1 : 0;
}

void tl_simplify_stats_print(FILE *f, const TlSimplifyStats *s) {
    fprintf(f, "cse %d, fold %d, dce %d, x*1 %d, x+0 %d, x-0 %d, x/1 %d, --x %d, permute-permute %d, "
               "permute-identity %d, reshape-reshape %d, reshape-identity %d, broadcast-const %d, "
               "broadcast-identity %d\n",
            s->cse, s->fold, s->dce, s->mul_one, s->add_zero, s->sub_zero, s->div_one, s->neg_neg,
            s->permute_permute, s->permute_identity, s->reshape_reshape, s->reshape_identity,
            s->broadcast_const, s->broadcast_identity);
}
