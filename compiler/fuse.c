/* fuse.c — partition a Graph IR into kernels (docs/fusion.md).
 *
 * Greedy, from the outputs up (reverse id order, so every user of a node is placed before
 * the node): a node joins the group of its users when that group can compute it in place,
 * else it starts a group of its own and is materialized.
 *
 * To decide "in place", each member records its *sites*: where the root's loop nest
 * evaluates it, as (context, index). The context is the loop the value is computed in:
 * CTX_FINAL (the loops over the whole domain), CTX_OUTER (the kept axes only, for a root
 * of the kept shape) or the id of a reduction (that reduction's inner loop). The index is
 * one tag per axis of the node: AXIS(k) (exactly the domain's loop variable k), C0 (the
 * constant 0) or MIXED(mask) (some function of the variables in mask). Tags follow the
 * index arithmetic of the lowering (loops.c) op by op. A reduction can live inside a
 * group only when its kept index is exactly the outer loop variables, so that its
 * accumulator (a local) is the value at every site. */
#include "fuse.h"

#include <stdlib.h>
#include <string.h>

#define CTX_FINAL (-1)
#define CTX_OUTER (-2)
#define TAG_C0 (-1)
#define TAG_MIXED(m) (-2 - (int)(m))
#define MAX_PATHS 16

typedef struct Site { int ctx; int8_t rank; int tag[TL_MAX_RANK]; } Site;

typedef struct Group {
    int root;
    TlFuseKind kind;
    TlGShape domain;
    uint32_t axes;
    int kept_root;
    int contract;      /* gemm: the contraction member, else -1 */
} Group;

typedef struct Fuser {
    const TlGraph *g;
    const TlFuseOptions *o;
    int max_sites;
    int *ustart, *users, *uslot; /* CSR: users of each node with the operand slot */
    char *is_out;
    int *group_of;
    Group *grp;
    int ngrp, grpcap;
    Site **sites;                /* per node: up to max_sites */
    int *nsites;
    int *paths;                  /* expression-tree copies of the node in its group */
    int *depth;                  /* recomputed (INLINED) nodes: links of arithmetic down
                                    from the nearest group that computes them */
} Fuser;

static void *xcalloc(size_t n, size_t s) {
    void *p = calloc(n ? n : 1, s);
    if (!p) { fputs("tl: out of memory\n", stderr); abort(); }
    return p;
}

static uint32_t tag_mask(int t) {
    if (t >= 0) return 1u << t;
    if (t == TAG_C0) return 0;
    return (uint32_t)(-t - 2);
}

static int is_const_one(const TlGraph *g, TlGDim d) {
    int64_t v;
    return tl_gdim_is_const(g, d, &v) && v == 1;
}

int tl_fuse_reshape_remap(const TlGraph *g, const TlGShape *x, const TlGShape *to, int *squeeze) {
    TlGDim a[TL_MAX_RANK], b[TL_MAX_RANK];
    int na = 0, nb = 0;
    for (int i = 0; i < x->rank; i++)
        if (!is_const_one(g, x->dim[i])) a[na++] = x->dim[i];
    for (int i = 0; i < to->rank; i++)
        if (!is_const_one(g, to->dim[i])) b[nb++] = to->dim[i];
    if (na == nb && memcmp(a, b, sizeof(TlGDim) * (size_t)na) == 0) {
        *squeeze = 1;
        return 1;
    }
    *squeeze = 0;
    int64_t v;
    for (int i = 0; i < x->rank; i++)
        if (!tl_gdim_is_const(g, x->dim[i], &v)) return 0;
    for (int i = 0; i < to->rank; i++)
        if (!tl_gdim_is_const(g, to->dim[i], &v)) return 0;
    return 1;
}

/* Ops computed in place of a load: elementwise, index remappings, reductions, generators. */
static int fusible_op(const TlGraph *g, int n) {
    const TlGNode *x = &g->nodes[n];
    int sq;
    switch (x->op) {
    case TL_GOP_CONST: return x->data == NULL;
    case TL_GOP_SUM: case TL_GOP_RMAX: return x->axes != 0;
    case TL_GOP_IOTA: case TL_GOP_RANDOM:
    case TL_GOP_BROADCAST: case TL_GOP_PERMUTE: case TL_GOP_SLICE:
        return 1;
    case TL_GOP_RESHAPE: return tl_fuse_reshape_remap(g, &g->nodes[x->in[0]].shape, &x->shape, &sq);
    default: return tl_gop_is_elementwise(x->op);
    }
}

/* Can user u compute its operand in slot s in place? (random's seed is a load) */
static int fusible_edge(const TlGraph *g, int u, int s) {
    (void)s;
    return g->nodes[u].op != TL_GOP_RANDOM && g->nodes[u].op != TL_GOP_CONST && fusible_op(g, u);
}

static int is_reduce(const TlGraph *g, int n) {
    return g->nodes[n].op == TL_GOP_SUM || g->nodes[n].op == TL_GOP_RMAX;
}

/* The site of operand x of user u (not a reduction) given u's site. */
static void propagate(const TlGraph *g, int u, int x, const Site *su, Site *sx) {
    const TlGNode *n = &g->nodes[u];
    const TlGNode *xn = &g->nodes[x];
    int r = n->shape.rank, xr = xn->shape.rank;
    sx->ctx = su->ctx, sx->rank = (int8_t)xr;
    switch (n->op) {
    case TL_GOP_BROADCAST:
        for (int j = 0; j < xr; j++) sx->tag[j] = is_const_one(g, xn->shape.dim[j]) ? TAG_C0 : su->tag[r - xr + j];
        return;
    case TL_GOP_PERMUTE:
        for (int k = 0; k < r; k++) sx->tag[n->perm[k]] = su->tag[k];
        return;
    case TL_GOP_SLICE:
        for (int k = 0; k < r; k++) {
            int64_t lo;
            int plain = tl_gdim_is_const(g, n->lo[k], &lo) && lo == 0 && n->step[k] == 1;
            sx->tag[k] = plain ? su->tag[k] : TAG_MIXED(tag_mask(su->tag[k]));
        }
        return;
    case TL_GOP_RESHAPE: {
        int sq;
        tl_fuse_reshape_remap(g, &xn->shape, &n->shape, &sq);
        if (sq) { /* the axes that are not 1 correspond in order */
            int j = 0;
            for (int k = 0; k < xr; k++) {
                if (is_const_one(g, xn->shape.dim[k])) { sx->tag[k] = TAG_C0; continue; }
                while (j < r && is_const_one(g, n->shape.dim[j])) j++;
                sx->tag[k] = su->tag[j++];
            }
        } else {
            uint32_t m = 0;
            for (int k = 0; k < r; k++) m |= tag_mask(su->tag[k]);
            for (int k = 0; k < xr; k++) sx->tag[k] = TAG_MIXED(m);
        }
        return;
    }
    default: /* elementwise: the same index */
        for (int k = 0; k < xr; k++) sx->tag[k] = su->tag[k];
        return;
    }
}

static int site_eq(const Site *a, const Site *b) {
    if (a->ctx != b->ctx || a->rank != b->rank) return 0;
    for (int k = 0; k < a->rank; k++)
        if (a->tag[k] != b->tag[k]) return 0;
    return 1;
}

static int add_site(Site *s, int *n, int max, const Site *x) {
    for (int i = 0; i < *n; i++)
        if (site_eq(&s[i], x)) return 0;
    if (*n >= max) return -1;
    s[(*n)++] = *x;
    return 0;
}

/* A site in the outer context may only use the kept axes. */
static int site_valid(const Site *s, uint32_t axes) {
    if (s->ctx != CTX_OUTER) return 1;
    for (int k = 0; k < s->rank; k++)
        if (tag_mask(s->tag[k]) & axes) return 0;
    return 1;
}

/* Reduction n's kept index at site s is exactly the outer loop variables. */
static int kept_is_outer(const TlGraph *g, int n, const Site *s) {
    const TlGNode *r = &g->nodes[n];
    int xr = g->nodes[r->in[0]].shape.rank, j = 0;
    for (int k = 0; k < xr; k++) {
        if (r->axes >> k & 1) {
            if (r->keepdims) j++;
            continue;
        }
        if (s->tag[j++] != k) return 0;
    }
    return 1;
}

/* Axis map from a pointwise root of shape S (== reduction n's shape) to n's input domain. */
static void redomain_map(const TlGraph *g, int n, int *map) {
    const TlGNode *r = &g->nodes[n];
    int xr = g->nodes[r->in[0]].shape.rank, j = 0;
    for (int k = 0; k < xr; k++) {
        if (r->axes >> k & 1) {
            if (r->keepdims) map[j++] = TAG_C0;
            continue;
        }
        map[j++] = k;
    }
}

static int map_tag(int t, const int *map) {
    if (t >= 0) return map[t];
    if (t == TAG_C0) return t;
    uint32_t m = tag_mask(t), o = 0;
    for (int k = 0; k < TL_MAX_RANK; k++)
        if ((m >> k & 1) && map[k] >= 0) o |= 1u << map[k];
    return TAG_MIXED(o);
}

static void map_site(Site *s, const int *map) {
    s->ctx = CTX_OUTER;
    for (int k = 0; k < s->rank; k++) s->tag[k] = map_tag(s->tag[k], map);
}

static void full_site(Site *s, int ctx, int rank) {
    s->ctx = ctx, s->rank = (int8_t)rank;
    for (int k = 0; k < rank; k++) s->tag[k] = k;
}

/* A contraction that may carry its consumers as a GEMM epilogue: two f32 operands, f32. */
static int epilogue_contract(const TlGraph *g, int n) {
    const TlGNode *x = &g->nodes[n];
    return x->op == TL_GOP_CONTRACT && x->nin == 2 && x->dtype == TL_F32 && x->shape.rank > 0 &&
           g->nodes[x->in[0]].dtype == TL_F32 && g->nodes[x->in[1]].dtype == TL_F32;
}

/* Contraction n joins the pointwise group of its users as the GEMM's accumulator when every
 * user computes it in place at exactly the domain index (so each C element is read once, in
 * the tile just summed) and the group has no contraction yet: the group becomes `gemm`. */
static int try_join_contract(Fuser *F, int n) {
    const TlGraph *g = F->g;
    int G = F->group_of[F->users[F->ustart[n]]];
    if (G < 0 || F->grp[G].kind != TL_FUSE_POINTWISE || F->grp[G].axes) return 0;
    Group *gr = &F->grp[G];
    /* the GEMM sums into the root's buffer: it must hold f32 (bf16/f16 are stored as f32) */
    TlDType rt = g->nodes[gr->root].dtype;
    if (rt != TL_F32 && rt != TL_BF16 && rt != TL_F16) return 0;
    if (!tl_gshape_eq(g->nodes[n].shape, gr->domain)) return 0;
    Site id;
    full_site(&id, CTX_FINAL, gr->domain.rank);
    int paths = 0;
    for (int e = F->ustart[n]; e < F->ustart[n + 1]; e++) {
        int u = F->users[e];
        if (F->group_of[u] != G || !fusible_edge(g, u, F->uslot[e])) return 0;
        for (int i = 0; i < F->nsites[u]; i++) {
            Site s;
            propagate(g, u, n, &F->sites[u][i], &s);
            if (!site_eq(&s, &id)) return 0;
        }
        paths += F->paths[u];
    }
    Site *ns = xcalloc((size_t)F->max_sites, sizeof *ns);
    ns[0] = id;
    F->sites[n] = ns, F->nsites[n] = 1, F->paths[n] = paths;
    F->group_of[n] = G;
    gr->kind = TL_FUSE_GEMM, gr->contract = n;
    return 1;
}

/* Try to put node n into the group of its users. 1 when it joined. */
static int try_join(Fuser *F, int n) {
    const TlGraph *g = F->g;
    if (F->is_out[n] || F->ustart[n] == F->ustart[n + 1]) return 0;
    if (!F->o->no_epilogue && epilogue_contract(g, n)) return try_join_contract(F, n);
    if (!fusible_op(g, n)) return 0;
    int G = F->group_of[F->users[F->ustart[n]]];
    if (G < 0 || F->grp[G].kind == TL_FUSE_OP) return 0;
    /* a gemm group's loop nest is the GEMM's: no reduction inside it */
    if (F->grp[G].kind == TL_FUSE_GEMM && is_reduce(g, n)) return 0;
    Group *gr = &F->grp[G];
    Site *ns = xcalloc((size_t)F->max_sites, sizeof *ns);
    int nn = 0, paths = 0, ok = 1;
    for (int e = F->ustart[n]; e < F->ustart[n + 1] && ok; e++) {
        int u = F->users[e];
        if (F->group_of[u] != G || !fusible_edge(g, u, F->uslot[e])) { ok = 0; break; }
        if (is_reduce(g, u)) {
            Site s;
            full_site(&s, u, g->nodes[n].shape.rank);
            ok = add_site(ns, &nn, F->max_sites, &s) == 0;
            paths += 1;
            continue;
        }
        paths += F->paths[u];
        for (int i = 0; i < F->nsites[u] && ok; i++) {
            Site s;
            propagate(g, u, n, &F->sites[u][i], &s);
            ok = site_valid(&s, gr->axes) && add_site(ns, &nn, F->max_sites, &s) == 0;
        }
    }
    if (ok && paths > MAX_PATHS) ok = 0;
    if (ok && is_reduce(g, n)) {
        const TlGNode *r = &g->nodes[n];
        const TlGShape *in = &g->nodes[r->in[0]].shape;
        int redomain = 0, map[TL_MAX_RANK];
        if (gr->axes) ok = tl_gshape_eq(*in, gr->domain) && r->axes == gr->axes;
        else if (tl_gshape_eq(*in, gr->domain)) ok = 1;
        else if (tl_gshape_eq(r->shape, gr->domain)) redomain = 1;
        else ok = 0;
        if (ok && redomain) {
            redomain_map(g, n, map);
            for (int i = 0; i < nn; i++) map_site(&ns[i], map);
        }
        for (int i = 0; i < nn && ok; i++) ok = kept_is_outer(g, n, &ns[i]);
        if (ok) {
            if (redomain) { /* the group now loops over n's input; its root has the kept shape */
                for (int m = n + 1; m <= gr->root; m++)
                    if (F->group_of[m] == G)
                        for (int i = 0; i < F->nsites[m]; i++) map_site(&F->sites[m][i], map);
                gr->domain = *in;
                gr->kept_root = 1;
            }
            gr->axes = r->axes;
            if (gr->kind == TL_FUSE_POINTWISE) gr->kind = TL_FUSE_ROW;
        }
    }
    if (!ok) { free(ns); return 0; }
    F->sites[n] = ns, F->nsites[n] = nn, F->paths[n] = paths;
    F->group_of[n] = G;
    if (gr->kind == TL_FUSE_REDUCE && is_reduce(g, n)) gr->kind = TL_FUSE_ROW;
    return 1;
}

static int new_group(Fuser *F, int n) {
    const TlGraph *g = F->g;
    if (F->ngrp == F->grpcap) {
        F->grpcap = F->grpcap ? 2 * F->grpcap : 64;
        F->grp = realloc(F->grp, sizeof *F->grp * (size_t)F->grpcap);
        if (!F->grp) abort();
    }
    Group *gr = &F->grp[F->ngrp];
    memset(gr, 0, sizeof *gr);
    gr->root = n, gr->contract = -1;
    const TlGNode *x = &g->nodes[n];
    F->paths[n] = 1;
    if (F->o->enabled && is_reduce(g, n)) {
        gr->kind = TL_FUSE_REDUCE;
        gr->domain = g->nodes[x->in[0]].shape;
        gr->axes = x->axes, gr->kept_root = 1;
    } else if (F->o->enabled && fusible_op(g, n)) {
        gr->kind = TL_FUSE_POINTWISE;
        gr->domain = x->shape;
        F->sites[n] = xcalloc((size_t)F->max_sites, sizeof(Site));
        full_site(&F->sites[n][0], CTX_FINAL, x->shape.rank);
        F->nsites[n] = 1;
    } else {
        gr->kind = TL_FUSE_OP;
        gr->domain = x->op == TL_GOP_SCAN ? tl_gshape_dims(0, NULL) : x->shape;
    }
    F->group_of[n] = F->ngrp;
    return F->ngrp++;
}

/* Free to recompute in every group that uses it: constants, positions, and index
 * remappings (a broadcast of a stored value is a load at another index, never a copy). */
static int duplicable(const TlGraph *g, int n) {
    TlGOp op = g->nodes[n].op;
    if (op == TL_GOP_IOTA || op == TL_GOP_CONST) return 1;
    return (op == TL_GOP_BROADCAST || op == TL_GOP_PERMUTE || op == TL_GOP_SLICE || op == TL_GOP_RESHAPE) && fusible_op(g, n);
}

/* Cheap enough to recompute in every group that reads it rather than store it: one
 * arithmetic instruction on each element (no transcendental, no random, no reduction).
 * Autodiff keeps many such values for the backward (x * x, 1 + t, 0.5 x of GELU):
 * stored, each was a kernel of its own and a round trip through memory. Not a direct
 * consumer of a contraction: stored, it is that GEMM's epilogue (x W + bias), and
 * recomputing it would store the bare product instead, no fewer bytes (and measured
 * slower: GPT step 7,060 tokens/s with those recomputed too, 7,432 without, 6,974 with
 * no recomputation, 2 threads, same run). */
static int cheap_arith(const TlGraph *g, int n) {
    const TlGNode *x = &g->nodes[n];
    for (int i = 0; i < x->nin; i++)
        if (g->nodes[x->in[i]].op == TL_GOP_CONTRACT) return 0;
    switch (x->op) {
    case TL_GOP_NEG: case TL_GOP_ABS: case TL_GOP_ADD: case TL_GOP_SUB: case TL_GOP_MUL: case TL_GOP_DIV:
    case TL_GOP_MAX: case TL_GOP_MIN: case TL_GOP_SELECT:
    case TL_GOP_EQ: case TL_GOP_NE: case TL_GOP_LT: case TL_GOP_LE: case TL_GOP_GT: case TL_GOP_GE:
        return fusible_op(g, n);
    default: return 0;
    }
}

static int no_kernel(const TlGNode *x) {
    return x->op == TL_GOP_INPUT || x->op == TL_GOP_PARAM || (x->op == TL_GOP_CONST && x->data) ||
           x->op == TL_GOP_SCAN || x->op == TL_GOP_PROJ;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

TlFusion *tl_fuse(const TlGraph *g, const TlFuseOptions *o) {
    const char *rc = getenv("TL_FUSE_RECOMPUTE");
    TlFuseOptions defaults = {1, 0, 0, rc && strcmp(rc, "0") == 0};
    if (!o) o = &defaults;
    int N = g->nnodes;
    Fuser F = {0};
    F.g = g, F.o = o, F.max_sites = o->max_sites > 0 ? o->max_sites : TL_FUSE_MAX_SITES;
    if (F.max_sites > 64) F.max_sites = 64;
    F.ustart = xcalloc((size_t)N + 2, sizeof(int));
    for (int i = 0; i < N; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) F.ustart[g->nodes[i].in[k] + 1]++;
    for (int i = 0; i < N; i++) F.ustart[i + 1] += F.ustart[i];
    int E = F.ustart[N];
    F.users = xcalloc((size_t)E, sizeof(int)), F.uslot = xcalloc((size_t)E, sizeof(int));
    int *fill = xcalloc((size_t)N + 1, sizeof(int));
    for (int i = 0; i < N; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) {
            int x = g->nodes[i].in[k], at = F.ustart[x] + fill[x]++;
            F.users[at] = i, F.uslot[at] = k;
        }
    free(fill);
    F.is_out = xcalloc((size_t)N + 1, 1);
    for (int i = 0; i < g->noutputs; i++) F.is_out[g->outputs[i]] = 1;
    F.group_of = xcalloc((size_t)N + 1, sizeof(int));
    F.sites = xcalloc((size_t)N + 1, sizeof(Site *));
    F.nsites = xcalloc((size_t)N + 1, sizeof(int));
    F.paths = xcalloc((size_t)N + 1, sizeof(int));
    F.depth = xcalloc((size_t)N + 1, sizeof(int));

    for (int n = N - 1; n >= 0; n--) {
        const TlGNode *x = &g->nodes[n];
        if (no_kernel(x)) { F.group_of[n] = TL_FUSE_NONE; continue; }
        int arith = o->enabled && !o->no_recompute && cheap_arith(g, n);
        if (o->enabled && (duplicable(g, n) || arith) && !F.is_out[n] && F.ustart[n] < F.ustart[n + 1]) {
            int all = 1, depth = 0; /* every user computes it in place: recompute it there */
            for (int e = F.ustart[n]; e < F.ustart[n + 1]; e++) {
                int u = F.users[e];
                int in_place = F.group_of[u] == TL_FUSE_INLINED || (F.group_of[u] >= 0 && F.grp[F.group_of[u]].kind != TL_FUSE_OP);
                all &= in_place && fusible_edge(g, u, F.uslot[e]);
                if (F.group_of[u] == TL_FUSE_INLINED && F.depth[u] > depth) depth = F.depth[u];
            }
            /* arithmetic: one more link of recomputation, bounded (remappings are free) */
            if (arith && !duplicable(g, n)) {
                depth++;
                if (depth > TL_FUSE_RECOMPUTE_DEPTH) all = 0;
            }
            F.depth[n] = depth;
            /* a remapping used by one group only joins it (below), which lets the value it
             * reads be computed in that group too */
            int one = x->op == TL_GOP_IOTA || x->op == TL_GOP_CONST ? 0 : F.group_of[F.users[F.ustart[n]]] >= 0;
            for (int e = F.ustart[n] + 1; e < F.ustart[n + 1] && one; e++)
                one = F.group_of[F.users[e]] == F.group_of[F.users[F.ustart[n]]];
            if (all && !one) { F.group_of[n] = TL_FUSE_INLINED; continue; }
        }
        if (o->enabled && try_join(&F, n)) continue;
        new_group(&F, n);
    }

    /* groups in root order */
    TlFusion *f = xcalloc(1, sizeof *f);
    f->g = g;
    f->group_of = F.group_of;
    f->ngroups = F.ngrp;
    f->groups = xcalloc((size_t)F.ngrp, sizeof *f->groups);
    int *order = xcalloc((size_t)F.ngrp, sizeof(int)), *renum = xcalloc((size_t)F.ngrp, sizeof(int));
    for (int i = 0; i < F.ngrp; i++) order[i] = F.grp[i].root;
    qsort(order, (size_t)F.ngrp, sizeof(int), cmp_int);
    for (int i = 0; i < F.ngrp; i++) renum[F.group_of[order[i]]] = i;
    for (int i = 0; i < N; i++)
        if (f->group_of[i] >= 0) f->group_of[i] = renum[f->group_of[i]];
    for (int i = 0; i < F.ngrp; i++) {
        const Group *gr = &F.grp[i];
        TlFuseGroup *t = &f->groups[renum[i]];
        t->kind = gr->kind, t->root = gr->root, t->domain = gr->domain, t->axes = gr->axes;
        t->kept_root = gr->kept_root, t->contract = gr->contract;
    }
    /* members and inputs */
    int *cnt = xcalloc((size_t)F.ngrp, sizeof(int));
    for (int i = 0; i < N; i++)
        if (f->group_of[i] >= 0) cnt[f->group_of[i]]++;
    for (int k = 0; k < F.ngrp; k++) f->groups[k].nodes = xcalloc((size_t)cnt[k], sizeof(int));
    for (int i = 0; i < N; i++)
        if (f->group_of[i] >= 0) {
            TlFuseGroup *t = &f->groups[f->group_of[i]];
            t->nodes[t->nnodes++] = i;
        }
    char *seen = xcalloc((size_t)N + 1, 1);
    for (int k = 0; k < F.ngrp; k++) {
        TlFuseGroup *t = &f->groups[k];
        int cap = 0;
        for (int j = 0; j < t->nnodes; j++) cap += g->nodes[t->nodes[j]].nin;
        t->inputs = xcalloc((size_t)cap, sizeof(int));
        for (int j = 0; j < t->nnodes; j++) {
            const TlGNode *x = &g->nodes[t->nodes[j]];
            for (int s = 0; s < x->nin; s++) {
                int in = x->in[s];
                if (f->group_of[in] == k || f->group_of[in] == TL_FUSE_INLINED || seen[in]) continue;
                seen[in] = 1;
                t->inputs[t->ninputs++] = in;
            }
        }
        for (int j = 0; j < t->ninputs; j++) seen[t->inputs[j]] = 0;
        qsort(t->inputs, (size_t)t->ninputs, sizeof(int), cmp_int);
    }
    free(seen), free(cnt), free(order), free(renum);
    for (int i = 0; i < N; i++) free(F.sites[i]);
    free(F.sites), free(F.nsites), free(F.paths), free(F.depth), free(F.grp), free(F.is_out);
    free(F.ustart), free(F.users), free(F.uslot);
    return f;
}

void tl_fuse_free(TlFusion *f) {
    if (!f) return;
    for (int k = 0; k < f->ngroups; k++) free(f->groups[k].nodes), free(f->groups[k].inputs);
    free(f->groups), free(f->group_of), free(f);
}

int tl_fuse_is_inlined(const TlFusion *f, int n) {
    int k = f->group_of[n];
    return k == TL_FUSE_INLINED || (k >= 0 && f->groups[k].root != n);
}

int tl_fuse_primitive_count(const TlGraph *g) {
    int n = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const TlGNode *x = &g->nodes[i];
        n += !(x->op == TL_GOP_INPUT || x->op == TL_GOP_PARAM || (x->op == TL_GOP_CONST && x->data));
    }
    return n;
}

static const char *kind_name(TlFuseKind k) {
    static const char *n[] = {"op", "pointwise", "reduce", "row", "gemm"};
    return n[k];
}

void tl_fuse_print(FILE *out, const TlFusion *fz) {
    const TlGraph *g = fz->g;
    char buf[256];
    for (int k = 0; k < fz->ngroups; k++) {
        const TlFuseGroup *t = &fz->groups[k];
        const TlGNode *r = &g->nodes[t->root];
        tl_gshape_str(g, r->dtype, r->shape, buf, sizeof buf);
        fprintf(out, "group %d %s: %%%d = %s : %s", k, kind_name(t->kind), t->root, tl_gop_name(r->op), buf);
        if (t->kind == TL_FUSE_ROW || t->kind == TL_FUSE_REDUCE) {
            tl_gshape_str(g, r->dtype, t->domain, buf, sizeof buf);
            fprintf(out, "  over %s reducing [", buf);
            int first = 1;
            for (int a = 0; a < t->domain.rank; a++)
                if (t->axes >> a & 1) fprintf(out, "%s%d", first ? "" : ", ", a), first = 0;
            fputc(']', out);
        }
        fputs("\n    nodes", out);
        for (int j = 0; j < t->nnodes; j++) fprintf(out, " %%%d:%s", t->nodes[j], tl_gop_name(g->nodes[t->nodes[j]].op));
        fputs("\n    reads", out);
        for (int j = 0; j < t->ninputs; j++) fprintf(out, " %%%d", t->inputs[j]);
        fputc('\n', out);
    }
    fprintf(out, "# %d groups for %d primitives\n", fz->ngroups, tl_fuse_primitive_count(g));
}
