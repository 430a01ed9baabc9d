/* lower_kernel.c — index-notation kernels lowered to Graph IR primitives.
 *
 *   kernel softmax(x: f32[N, C]) -> f32[N, C] {
 *       m[i]      = max(j) x[i, j]
 *       e[i, j]   = exp(x[i, j] - m[i])
 *       s[i]      = sum(j) e[i, j]
 *       out[i, j] = e[i, j] / s[i]
 *   }
 *
 * Every subexpression is a tensor whose axes are named by indices. An access x[i, j] is x
 * with axes (i, j); an operation aligns its operands' axes (union, in order of first use) by
 * permute + reshape, and broadcasts; a reduction reduces the axes of its indices; a
 * sum of a product of two accesses becomes one contraction (einsum). An index used as a
 * value is its position (iota). So a kernel is an ordinary subgraph: it differentiates with
 * the primitives' own gradient rules, and fusion later turns it back into one loop nest.
 */
#include <string.h>

#include "lower_internal.h"

#define MAXIDX 16

typedef struct IVal {
    int id; /* node, or -1 */
    int n;
    const char *idx[TL_MAX_RANK];
} IVal;

typedef struct KCtx {
    Lower *L;
    Env *env;         /* parameters and statement results (as V_TENSOR) */
    const char *names[MAXIDX];
    TlGDim sizes[MAXIDX];
    int nnames;
    /* the axis names of each statement result, by name */
    const char *tnames[64];
    IVal tvals[64];
    int ntensors;
} KCtx;

static int idx_find(KCtx *k, const char *name) {
    for (int i = 0; i < k->nnames; i++)
        if (strcmp(k->names[i], name) == 0) return i;
    return -1;
}

static int idx_size(KCtx *k, const char *name, TlGDim size, TlLoc loc) {
    int i = idx_find(k, name);
    if (i >= 0) {
        int64_t a, b;
        if (k->sizes[i] != size && tl_gdim_is_const(k->L->g, k->sizes[i], &a) && tl_gdim_is_const(k->L->g, size, &b) && a != b) {
            lower_error(k->L, loc, "index %s ranges over %lld here but over %lld elsewhere", name, (long long)b, (long long)a);
            return -1;
        }
        return 0;
    }
    if (k->nnames == MAXIDX) {
        lower_error(k->L, loc, "too many indices in one kernel (at most %d)", MAXIDX);
        return -1;
    }
    k->names[k->nnames] = name;
    k->sizes[k->nnames++] = size;
    return 0;
}

static int has(const IVal *v, const char *name) {
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->idx[i], name) == 0) return 1;
    return 0;
}

/* Permutes/reshapes v so its axes follow `order` (v's indices must be a subset), with size-1
 * axes for the indices it lacks. */
static int align(KCtx *k, const IVal *v, const char *const *order, int n, TlLoc loc) {
    Lower *L = k->L;
    TlGraph *g = L->cur;
    int perm[TL_MAX_RANK], np = 0, identity = 1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < v->n; j++)
            if (strcmp(order[i], v->idx[j]) == 0) {
                if (j != np) identity = 0;
                perm[np++] = j;
            }
    int id = v->id;
    if (!identity) id = tl_g_permute(g, id, perm, loc);
    if (n == v->n) return id;
    TlGDim d[TL_MAX_RANK];
    for (int i = 0, j = 0; i < n; i++) {
        if (has(v, order[i])) d[i] = g->nodes[id].shape.dim[j++];
        else d[i] = tl_gdim_const(L->g, 1);
    }
    return tl_g_reshape(g, id, tl_gshape_dims(n, d), loc);
}

static int union_idx(const IVal *a, const IVal *b, const char **out) {
    int n = 0;
    for (int i = 0; i < a->n; i++) out[n++] = a->idx[i];
    for (int i = 0; i < b->n; i++)
        if (!has(a, b->idx[i])) {
            if (n == TL_MAX_RANK) return -1;
            out[n++] = b->idx[i];
        }
    return n;
}

static IVal kexpr(KCtx *k, TlNode *e);

static IVal fail(void) {
    IVal v = {.id = -1};
    return v;
}

static IVal binary(KCtx *k, TlGOp op, IVal a, IVal b, TlLoc loc) {
    if (a.id < 0 || b.id < 0) return fail();
    IVal r = {0};
    r.n = union_idx(&a, &b, r.idx);
    if (r.n < 0) {
        lower_error(k->L, loc, "more than %d indices in one expression", TL_MAX_RANK);
        return fail();
    }
    int x = align(k, &a, r.idx, r.n, loc), y = align(k, &b, r.idx, r.n, loc);
    TlGraph *g = k->L->cur;
    if (g->nodes[x].dtype != g->nodes[y].dtype) {
        lower_error(k->L, loc, "cannot combine %s and %s values", tl_dtype_name(g->nodes[x].dtype), tl_dtype_name(g->nodes[y].dtype));
        return fail();
    }
    r.id = tl_g_broadcast_binary(g, op, x, y, loc);
    return r;
}

static IVal number(KCtx *k, double v, TlDType t, TlLoc loc) {
    IVal r = {0};
    r.id = tl_g_const(k->L->cur, v, t, tl_gshape_dims(0, NULL), loc);
    return r;
}

/* A number operand takes the dtype of the other operand. */
static IVal operand(KCtx *k, TlNode *e, TlDType like) {
    if (e->kind == TL_N_INT) return number(k, (double)e->ival, like ? like : TL_F32, e->loc);
    if (e->kind == TL_N_FLOAT) return number(k, e->fval, like ? like : TL_F32, e->loc);
    return kexpr(k, e);
}

static TlDType dtype_of(KCtx *k, IVal v) { return v.id >= 0 ? k->L->cur->nodes[v.id].dtype : TL_F32; }

static IVal access(KCtx *k, TlNode *e) {
    Lower *L = k->L;
    if (!e->a || e->a->kind != TL_N_IDENT) {
        lower_error(L, e->loc, "in a kernel, only named tensors are indexed");
        return fail();
    }
    const char *name = e->a->name;
    IVal base = fail();
    for (int i = 0; i < k->ntensors; i++)
        if (strcmp(k->tnames[i], name) == 0) base = k->tvals[i];
    if (base.id < 0) {
        Value *v = env_get(k->env, name);
        if (!v || v->kind != V_TENSOR) {
            lower_error(L, e->a->loc, "'%s' is not a tensor of this kernel", name);
            return fail();
        }
        base.id = lower_tensor(L, v, 0, e->loc);
        base.n = 0;
    }
    TlGShape s = L->cur->nodes[base.id].shape;
    if (e->list.n != s.rank) {
        lower_error(L, e->loc, "'%s' has rank %d but is indexed with %d indices", name, s.rank, e->list.n);
        return fail();
    }
    IVal r = {0};
    r.id = base.id;
    r.n = e->list.n;
    for (int i = 0; i < e->list.n; i++) {
        TlNode *it = e->list.v[i];
        if (it->kind != TL_N_IDENT) {
            lower_error(L, it->loc, "kernel indices are plain index names (affine indices like t - 1 are not supported yet)");
            return fail();
        }
        for (int j = 0; j < i; j++)
            if (strcmp(r.idx[j], it->name) == 0) {
                lower_error(L, it->loc, "index %s is used twice in one access", it->name);
                return fail();
            }
        if (idx_size(k, it->name, s.dim[i], it->loc) < 0) return fail();
        r.idx[i] = it->name;
    }
    /* statement results are stored in the order of their own index list; the access
     * renames those axes */
    return r;
}

static IVal reduce(KCtx *k, TlNode *e) {
    Lower *L = k->L;
    TlNode *body = e->a;
    /* sum(k) a[..] * b[..]: one contraction */
    if (e->op == TL_OP_SUM && body && body->kind == TL_N_BINARY && body->op == TL_OP_MUL &&
        body->a->kind == TL_N_INDEX && body->b->kind == TL_N_INDEX) {
        IVal a = access(k, body->a), b = access(k, body->b);
        if (a.id < 0 || b.id < 0) return fail();
        if (dtype_of(k, a) == dtype_of(k, b)) {
            char letters[MAXIDX];
            const char *all[2 * TL_MAX_RANK];
            int nall = 0;
            IVal r = {0};
            for (int pass = 0; pass < 2; pass++) {
                const IVal *v = pass ? &b : &a;
                for (int i = 0; i < v->n; i++) {
                    int seen = 0;
                    for (int j = 0; j < nall; j++)
                        if (strcmp(all[j], v->idx[i]) == 0) seen = 1;
                    if (!seen) all[nall++] = v->idx[i];
                }
            }
            for (int j = 0; j < nall; j++) letters[j] = (char)('a' + j);
            char spec[64];
            int p = 0;
            for (int pass = 0; pass < 3; pass++) {
                if (pass == 1) spec[p++] = ',';
                if (pass == 2) {
                    spec[p++] = '-';
                    spec[p++] = '>';
                }
                for (int j = 0; j < (pass == 2 ? nall : (pass ? b.n : a.n)); j++) {
                    const char *nm = pass == 2 ? all[j] : pass ? b.idx[j] : a.idx[j];
                    if (pass == 2) {
                        int red = 0;
                        for (int q = 0; q < e->list.n; q++)
                            if (strcmp(e->list.v[q]->name, nm) == 0) red = 1;
                        if (red) continue;
                        r.idx[r.n++] = nm;
                    }
                    for (int q = 0; q < nall; q++)
                        if (strcmp(all[q], nm) == 0) spec[p++] = letters[q];
                }
            }
            spec[p] = 0;
            for (int q = 0; q < e->list.n; q++)
                if (!has(&a, e->list.v[q]->name) && !has(&b, e->list.v[q]->name)) {
                    lower_error(L, e->list.v[q]->loc, "reduction index %s does not appear in the reduced expression", e->list.v[q]->name);
                    return fail();
                }
            r.id = tl_g_contract(L->cur, spec, a.id, b.id, e->loc);
            return r;
        }
    }
    IVal v = kexpr(k, body);
    if (v.id < 0) return fail();
    uint32_t axes = 0;
    for (int q = 0; q < e->list.n; q++) {
        int found = -1;
        for (int i = 0; i < v.n; i++)
            if (strcmp(v.idx[i], e->list.v[q]->name) == 0) found = i;
        if (found < 0) {
            lower_error(L, e->list.v[q]->loc, "reduction index %s does not appear in the reduced expression", e->list.v[q]->name);
            return fail();
        }
        axes |= 1u << found;
    }
    IVal r = {0};
    for (int i = 0; i < v.n; i++)
        if (!(axes & (1u << i))) r.idx[r.n++] = v.idx[i];
    TlGraph *g = L->cur;
    int x = v.id;
    switch (e->op) {
    case TL_OP_SUM: r.id = tl_g_reduce(g, TL_GOP_SUM, x, axes, 0, e->loc); break;
    case TL_OP_MAX: r.id = tl_g_reduce(g, TL_GOP_RMAX, x, axes, 0, e->loc); break;
    case TL_OP_MIN: r.id = tl_g_neg(g, tl_g_reduce(g, TL_GOP_RMAX, tl_g_neg(g, x, e->loc), axes, 0, e->loc), e->loc); break;
    case TL_OP_PROD: /* prod = exp(sum(log x)) is wrong for x <= 0: not offered */
    default: lower_error(L, e->loc, "prod() reductions are not supported yet"); return fail();
    }
    return r;
}

static IVal kcall(KCtx *k, TlNode *e) {
    Lower *L = k->L;
    if (!e->a || e->a->kind != TL_N_IDENT) {
        lower_error(L, e->loc, "in a kernel, only built-in elementwise functions are called");
        return fail();
    }
    const char *f = e->a->name;
    static const struct { const char *name; TlGOp op; } un[] = {
        {"exp", TL_GOP_EXP}, {"log", TL_GOP_LOG}, {"sqrt", TL_GOP_SQRT}, {"rsqrt", TL_GOP_RSQRT},
        {"tanh", TL_GOP_TANH}, {"erf", TL_GOP_ERF}, {"sin", TL_GOP_SIN}, {"cos", TL_GOP_COS}, {"abs", TL_GOP_ABS},
    };
    for (size_t i = 0; i < sizeof un / sizeof un[0]; i++)
        if (!strcmp(f, un[i].name)) {
            if (e->list.n != 1) break;
            IVal v = kexpr(k, e->list.v[0]);
            if (v.id < 0) return v;
            v.id = tl_g_unary(L->cur, un[i].op, v.id, e->loc);
            return v;
        }
    if ((!strcmp(f, "maximum") || !strcmp(f, "minimum")) && e->list.n == 2) {
        IVal a = kexpr(k, e->list.v[0]);
        IVal b = operand(k, e->list.v[1], dtype_of(k, a));
        return binary(k, f[1] == 'a' ? TL_GOP_MAX : TL_GOP_MIN, a, b, e->loc);
    }
    if (!strcmp(f, "where") && e->list.n == 3) {
        IVal c = kexpr(k, e->list.v[0]);
        IVal a = kexpr(k, e->list.v[1]);
        IVal b = operand(k, e->list.v[2], dtype_of(k, a));
        if (c.id < 0 || a.id < 0 || b.id < 0) return fail();
        /* select over the union of all three index sets */
        IVal ab = binary(k, TL_GOP_ADD, a, b, e->loc);
        if (ab.id < 0) return fail();
        IVal u = {0};
        u.n = union_idx(&ab, &c, u.idx);
        TlGraph *g = L->cur;
        int cc = align(k, &c, u.idx, u.n, e->loc), aa = align(k, &a, u.idx, u.n, e->loc), bb = align(k, &b, u.idx, u.n, e->loc);
        TlGDim d[TL_MAX_RANK];
        for (int i = 0; i < u.n; i++) d[i] = k->sizes[idx_find(k, u.idx[i])];
        TlGShape s = tl_gshape_dims(u.n, d);
        if (!tl_gshape_eq(g->nodes[cc].shape, s)) cc = tl_g_broadcast(g, cc, s, e->loc);
        if (!tl_gshape_eq(g->nodes[aa].shape, s)) aa = tl_g_broadcast(g, aa, s, e->loc);
        if (!tl_gshape_eq(g->nodes[bb].shape, s)) bb = tl_g_broadcast(g, bb, s, e->loc);
        u.id = tl_g_select(g, cc, aa, bb, e->loc);
        return u;
    }
    lower_error(L, e->loc, "%s() cannot be used in a kernel", f);
    return fail();
}

static TlGOp kop(TlOp op) {
    switch (op) {
    case TL_OP_ADD: return TL_GOP_ADD;
    case TL_OP_SUB: return TL_GOP_SUB;
    case TL_OP_MUL: return TL_GOP_MUL;
    case TL_OP_DIV: return TL_GOP_DIV;
    case TL_OP_POW: return TL_GOP_POW;
    case TL_OP_EQ: return TL_GOP_EQ;
    case TL_OP_NE: return TL_GOP_NE;
    case TL_OP_LT: return TL_GOP_LT;
    case TL_OP_LE: return TL_GOP_LE;
    case TL_OP_GT: return TL_GOP_GT;
    case TL_OP_GE: return TL_GOP_GE;
    default: return TL_GOP_COUNT;
    }
}

static IVal kexpr(KCtx *k, TlNode *e) {
    Lower *L = k->L;
    if (!e || L->failed) return fail();
    switch (e->kind) {
    case TL_N_INDEX:
        return access(k, e);
    case TL_N_REDUCE:
        return reduce(k, e);
    case TL_N_INT:
        return number(k, (double)e->ival, TL_F32, e->loc);
    case TL_N_FLOAT:
        return number(k, e->fval, TL_F32, e->loc);
    case TL_N_IDENT: {
        int i = idx_find(k, e->name);
        if (i >= 0) { /* an index as a value: its position */
            IVal r = {0};
            TlGDim d[1] = {k->sizes[i]};
            r.id = tl_g_iota(L->cur, TL_I32, tl_gshape_dims(1, d), 0, e->loc);
            r.n = 1;
            r.idx[0] = k->names[i];
            return r;
        }
        Value *v = env_get(k->env, e->name);
        if (v && lv_is_number(v)) {
            IVal r = {0};
            r.id = lower_tensor(L, v, v->kind == V_FLOAT ? TL_F32 : 0, e->loc);
            return r;
        }
        lower_error(L, e->loc, "'%s' is not an index or a number here (index a tensor with [..])", e->name);
        return fail();
    }
    case TL_N_UNARY: {
        IVal v = kexpr(k, e->a);
        if (v.id < 0) return v;
        if (e->op == TL_OP_NEG) v.id = tl_g_neg(L->cur, v.id, e->loc);
        else if (e->op != TL_OP_POS) {
            lower_error(L, e->loc, "operator `%s` in a kernel", tl_op_name(e->op));
            return fail();
        }
        return v;
    }
    case TL_N_BINARY: {
        TlGOp op = kop(e->op);
        if (op == TL_GOP_COUNT) {
            lower_error(L, e->loc, "operator `%s` cannot be used in a kernel", tl_op_name(e->op));
            return fail();
        }
        int anum = e->a->kind == TL_N_INT || e->a->kind == TL_N_FLOAT;
        IVal a = anum ? fail() : kexpr(k, e->a);
        IVal b = operand(k, e->b, anum ? TL_DT_INVALID : dtype_of(k, a));
        if (anum) a = operand(k, e->a, dtype_of(k, b));
        return binary(k, op, a, b, e->loc);
    }
    case TL_N_CALL:
        return kcall(k, e);
    default:
        lower_error(L, e->loc, "unexpected %s in a kernel", tl_node_kind_name(e->kind));
        return fail();
    }
}

static int kstmt(KCtx *k, TlNode *s, IVal *out) {
    Lower *L = k->L;
    if (s->kind != TL_N_KSTMT) {
        lower_error(L, s->loc, "a kernel body holds index statements `name[i, j] = ...`");
        return -1;
    }
    IVal v = kexpr(k, s->a);
    if (v.id < 0) return -1;
    IVal lhs = {0};
    for (int i = 0; i < s->list.n; i++) {
        const char *nm = s->list.v[i]->name;
        for (int j = 0; j < lhs.n; j++)
            if (!strcmp(lhs.idx[j], nm)) {
                lower_error(L, s->list.v[i]->loc, "index %s appears twice on the left", nm);
                return -1;
            }
        if (idx_find(k, nm) < 0) {
            lower_error(L, s->list.v[i]->loc, "the range of index %s is not known: no tensor on the right is indexed by it", nm);
            return -1;
        }
        lhs.idx[lhs.n++] = nm;
    }
    for (int i = 0; i < v.n; i++)
        if (!has(&lhs, v.idx[i])) {
            lower_error(L, s->loc, "index %s is used on the right but not bound on the left; reduce it with sum(%s) or another reduction",
                        v.idx[i], v.idx[i]);
            return -1;
        }
    int id = align(k, &v, lhs.idx, lhs.n, s->loc);
    TlGDim d[TL_MAX_RANK];
    for (int i = 0; i < lhs.n; i++) d[i] = k->sizes[idx_find(k, lhs.idx[i])];
    TlGShape full = tl_gshape_dims(lhs.n, d);
    if (!tl_gshape_eq(L->cur->nodes[id].shape, full)) id = tl_g_broadcast(L->cur, id, full, s->loc);
    lhs.id = id;
    if (k->ntensors == 64) {
        lower_error(L, s->loc, "too many statements in one kernel");
        return -1;
    }
    k->tnames[k->ntensors] = s->name;
    k->tvals[k->ntensors++] = lhs;
    *out = lhs;
    return 0;
}

/* The arguments that the block's shared(t) directives name, in order (graph.h). */
static void sched_shared_args(TlGNode *res, const TlNode *block, const TlNode *kernel, Value **args, int nargs) {
    int ns = 0;
    for (int d = 0; d < block->list.n && ns < TL_SCHED_MAX_SHARED; d++) {
        const TlNode *dir = block->list.v[d];
        if (!dir || dir->kind != TL_N_CALL || !dir->a || !dir->a->name || strcmp(dir->a->name, "shared")) continue;
        const TlNode *t = dir->list.n == 1 ? dir->list.v[0] : NULL;
        int node = -1;
        for (int i = 0; t && t->name && i < nargs && i < kernel->list.n; i++)
            if (kernel->list.v[i] && kernel->list.v[i]->name && !strcmp(kernel->list.v[i]->name, t->name) &&
                args[i]->kind == V_TENSOR)
                node = args[i]->id;
        res->sched_shared[ns++] = node + 1;
    }
}

Value *lower_kernel_call(Lower *L, TlNode *kernel, Module *mod, Value **args, int nargs, TlLoc loc) {
    if (nargs != kernel->list.n)
        return lower_error(L, loc, "kernel '%s' takes %d arguments, %d given", kernel->name, kernel->list.n, nargs);
    KCtx k = {0};
    k.L = L;
    k.env = env_new(L, mod->globals);
    for (int i = 0; i < nargs; i++) {
        if (args[i]->kind != V_TENSOR && !lv_is_number(args[i]))
            return lower_error(L, loc, "argument %d of kernel '%s' must be a tensor", i + 1, kernel->name);
        env_set(L, k.env, kernel->list.v[i]->name, args[i]);
    }
    IVal last = fail();
    int first = L->cur->nnodes;
    TlNode *body = kernel->b;
    for (int i = 0; body && i < body->list.n; i++)
        if (kstmt(&k, body->list.v[i], &last) < 0) return NULL;
    if (last.id < 0) return lower_error(L, kernel->loc, "kernel '%s' computes nothing", kernel->name);
    /* the kernel's `schedule` block (in its module) goes on its result, for the Loop IR
     * stage (schedule_source.c); only on a node this call made */
    TlGNode *res = &L->cur->nodes[last.id];
    if (last.id >= first && res->op != TL_GOP_INPUT && res->op != TL_GOP_PARAM && mod->m->ast && mod->m->ast->root) {
        const TlList *items = &mod->m->ast->root->list;
        for (int i = 0; i < items->n; i++)
            if (items->v[i] && items->v[i]->kind == TL_N_SCHEDULE && items->v[i]->name && !strcmp(items->v[i]->name, kernel->name)) {
                res->sched = items->v[i], res->sched_kernel = kernel;
                sched_shared_args(res, items->v[i], kernel, args, nargs);
            }
    }
    return lv_tensor(L, last.id);
}
