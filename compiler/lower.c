/* lower.c — staged evaluation of the checked AST into Graph IR (see lower.h).
 *
 * The evaluator walks the AST like an interpreter whose tensor values are graph nodes:
 * calls are inlined, models instantiated, compile-time loops unrolled. This file holds
 * values, environments, statements, expressions, calls and model instantiation; builtins
 * are in lower_builtins.c, index-notation kernels in lower_kernel.c, scan in lower_scan.c.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lower_internal.h"
#include "source.h"
#include "tokdecl.h"

#define MAX_DEPTH 200

/* ---- values ---------------------------------------------------------------------------- */

Value *lv_new(Lower *L, ValueKind k) {
    Value *v = tl_arena_alloc(L->arena, sizeof *v);
    v->kind = k;
    v->id = -1;
    return v;
}

Value *lv_int(Lower *L, TlGDim d) {
    Value *v = lv_new(L, V_INT);
    v->dim = d;
    return v;
}

Value *lv_int_c(Lower *L, int64_t x) { return lv_int(L, tl_gdim_const(L->g, x)); }

Value *lv_float(Lower *L, double f) {
    Value *v = lv_new(L, V_FLOAT);
    v->f = f;
    return v;
}

Value *lv_bool(Lower *L, int b) {
    Value *v = lv_new(L, V_BOOL);
    v->b = b != 0;
    return v;
}

Value *lv_tensor(Lower *L, int id) {
    if (id < 0) {
        L->failed = 1;
        return NULL;
    }
    Value *v = lv_new(L, V_TENSOR);
    v->g = L->cur;
    v->id = id;
    return v;
}

int lv_is_number(const Value *v) {
    return v && (v->kind == V_INT || v->kind == V_FLOAT || v->kind == V_BOOL);
}

int lv_const_int(Lower *L, const Value *v, int64_t *out) {
    if (!v) return 0;
    if (v->kind == V_BOOL) {
        *out = v->b;
        return 1;
    }
    return v->kind == V_INT && tl_gdim_is_const(L->g, v->dim, out);
}

const char *lv_kind_name(ValueKind k) {
    static const char *names[] = {"nothing", "int", "float", "bool", "string", "tensor",
                                  "tuple", "list", "dims", "model", "function", "model type",
                                  "module", "builtin", "tokenizer", "type", "scan index",
                                  "range"};
    return k < sizeof names / sizeof names[0] ? names[k] : "value";
}

Value *lower_error(Lower *L, TlLoc loc, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!L->failed || tl_diag_error_count() == 0) tl_error(loc, "%s", buf);
    L->failed = 1;
    return NULL;
}

const TlGNode *lower_node(Lower *L, int id) { return &L->cur->nodes[id]; }

/* ---- environments ---------------------------------------------------------------------- */

Env *env_new(Lower *L, Env *parent) {
    Env *e = tl_arena_alloc(L->arena, sizeof *e);
    e->parent = parent;
    return e;
}

void env_set(Lower *L, Env *e, const char *name, Value *v) {
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->names[i], name) == 0) {
            e->vals[i] = v;
            return;
        }
    int cap = e->cap;
    e->names = tl_arena_grow(L->arena, e->names, &cap, e->n + 1, sizeof *e->names);
    cap = e->cap;
    e->vals = tl_arena_grow(L->arena, e->vals, &cap, e->n + 1, sizeof *e->vals);
    e->cap = cap;
    e->names[e->n] = name;
    e->vals[e->n++] = v;
}

static Value **env_find(Env *e, const char *name) {
    for (; e; e = e->parent)
        for (int i = 0; i < e->n; i++)
            if (strcmp(e->names[i], name) == 0) return &e->vals[i];
    return NULL;
}

Value *env_get(Env *e, const char *name) {
    Value **p = env_find(e, name);
    return p ? *p : NULL;
}

/* A scope boundary: assignments inside a function or scan body never rebind names outside
 * it. Marked by a NULL-named entry. */
Env *env_frame(Lower *L, Env *parent) {
    Env *e = env_new(L, parent);
    env_set(L, e, "", NULL);
    return e;
}

/* Rebinding: update the nearest binding within the current frame, else define here. */
static void env_assign(Lower *L, Env *e, const char *name, Value *v) {
    for (Env *s = e; s; s = s->parent) {
        int boundary = 0;
        for (int i = 0; i < s->n; i++) {
            if (s->names[i][0] == 0) boundary = 1;
            else if (strcmp(s->names[i], name) == 0) {
                s->vals[i] = v;
                return;
            }
        }
        if (boundary) break;
    }
    env_set(L, e, name, v);
}

/* ---- tensors ----------------------------------------------------------------------------- */

static int import_value(Lower *L, ScanFrame *f, TlGraph *g, int id);

/* Brings node `id` of graph `g` (the current graph or an enclosing one) into the current
 * graph: a scan body sees values from outside as invariant inputs. */
int lower_import(Lower *L, ScanFrame *f, TlGraph *g, int id) {
    if (!f || f->body == g) return id;
    int outer = f->parent == g ? id : lower_import(L, f->outer, g, id);
    if (outer < 0) return -1;
    for (int i = 0; i < f->ninv; i++)
        if (f->inv_outer[i] == outer) return f->inv_inner[i];
    const TlGNode *n = &f->parent->nodes[outer];
    char name[32];
    snprintf(name, sizeof name, "inv%d", f->ninv);
    int inner = tl_g_input(f->body, tl_arena_strdup(L->arena, name), n->dtype, n->shape, n->loc);
    int cap = f->invcap;
    f->inv_outer = tl_arena_grow(L->arena, f->inv_outer, &cap, f->ninv + 1, sizeof(int));
    cap = f->invcap;
    f->inv_inner = tl_arena_grow(L->arena, f->inv_inner, &cap, f->ninv + 1, sizeof(int));
    f->invcap = cap;
    f->inv_outer[f->ninv] = outer;
    f->inv_inner[f->ninv++] = inner;
    return inner;
}

static int import_value(Lower *L, ScanFrame *f, TlGraph *g, int id) { return lower_import(L, f, g, id); }

Value *lower_dim_tensor(Lower *L, TlGDim d, TlDType t, TlLoc loc) {
    int64_t c;
    if (tl_gdim_is_const(L->g, d, &c)) return lv_tensor(L, tl_g_const(L->cur, (double)c, t, tl_gshape_dims(0, NULL), loc));
    /* a symbolic size as a value: the sum of d ones (folded once the size is known) */
    TlGDim dims[1] = {d};
    int ones = tl_g_const(L->cur, 1.0, t, tl_gshape_dims(1, dims), loc);
    return lv_tensor(L, tl_g_reduce(L->cur, TL_GOP_SUM, ones, 1u, 0, loc));
}

int lower_tensor(Lower *L, Value *v, TlDType want, TlLoc loc) {
    if (!v) return -1;
    TlDType t = want ? want : TL_F32;
    switch (v->kind) {
    case V_TENSOR: {
        int id = import_value(L, L->scan, v->g, v->id);
        if (id >= 0 && want && L->cur->nodes[id].dtype != want) id = tl_g_cast(L->cur, id, want, loc);
        return id;
    }
    case V_INT: {
        if (!want) t = TL_I32;
        Value *r = lower_dim_tensor(L, v->dim, t, loc);
        return r ? r->id : -1;
    }
    case V_FLOAT:
        return tl_g_const(L->cur, v->f, t, tl_gshape_dims(0, NULL), loc);
    case V_BOOL:
        return tl_g_const(L->cur, v->b, want ? want : TL_BOOL, tl_gshape_dims(0, NULL), loc);
    default:
        lower_error(L, loc, "expected a tensor, found a %s", lv_kind_name(v->kind));
        return -1;
    }
}

static TlDType tensor_dtype(Lower *L, Value *v) {
    (void)L;
    if (v->kind != V_TENSOR) return TL_DT_INVALID;
    return v->g->nodes[v->id].dtype;
}

/* ---- compile-time arithmetic ------------------------------------------------------------ */

static double num_f(const Value *v) {
    return v->kind == V_FLOAT ? v->f : v->kind == V_BOOL ? v->b : 0.0;
}

static Value *fold_numbers(Lower *L, TlOp op, Value *a, Value *b, TlLoc loc) {
    if (a->kind == V_INT && b->kind == V_INT) {
        TlGDim x = a->dim, y = b->dim;
        int64_t cx, cy;
        int kx = tl_gdim_is_const(L->g, x, &cx), ky = tl_gdim_is_const(L->g, y, &cy);
        switch (op) {
        case TL_OP_ADD: return lv_int(L, tl_gdim_add(L->g, x, y));
        case TL_OP_SUB: return lv_int(L, tl_gdim_sub(L->g, x, y));
        case TL_OP_MUL: return lv_int(L, tl_gdim_mul(L->g, x, y));
        case TL_OP_DIV:
            if (ky && cy == 0) return lower_error(L, loc, "division by zero");
            if (kx && ky && cx % cy != 0)
                return lower_error(L, loc, "%lld / %lld is not a whole number", (long long)cx, (long long)cy);
            return lv_int(L, tl_gdim_div(L->g, x, y));
        case TL_OP_MOD:
            if (kx && ky && cy != 0) return lv_int_c(L, ((cx % cy) + cy) % cy);
            return lower_error(L, loc, "`%%` needs sizes known at compile time here");
        case TL_OP_POW:
            if (kx && ky && cy >= 0) {
                int64_t r = 1;
                for (int64_t i = 0; i < cy; i++) r *= cx;
                return lv_int_c(L, r);
            }
            return lower_error(L, loc, "`**` needs integers known at compile time here");
        case TL_OP_EQ: case TL_OP_NE: case TL_OP_LT: case TL_OP_LE: case TL_OP_GT: case TL_OP_GE: {
            if (!(kx && ky)) {
                if (op == TL_OP_EQ || op == TL_OP_NE) {
                    /* canonical forms: equal ids are equal; different ones may still be */
                    if (x == y) return lv_bool(L, op == TL_OP_EQ);
                }
                return lower_error(L, loc, "comparison of sizes not known at compile time");
            }
            int r = op == TL_OP_EQ ? cx == cy : op == TL_OP_NE ? cx != cy : op == TL_OP_LT ? cx < cy
                  : op == TL_OP_LE ? cx <= cy : op == TL_OP_GT ? cx > cy : cx >= cy;
            return lv_bool(L, r);
        }
        default: break;
        }
    }
    if (a->kind == V_BOOL && b->kind == V_BOOL) {
        if (op == TL_OP_AND) return lv_bool(L, a->b && b->b);
        if (op == TL_OP_OR) return lv_bool(L, a->b || b->b);
        if (op == TL_OP_EQ) return lv_bool(L, a->b == b->b);
        if (op == TL_OP_NE) return lv_bool(L, a->b != b->b);
    }
    /* floats (an int operand converts when it is known) */
    double x, y;
    int64_t c;
    if (a->kind == V_INT) {
        if (!tl_gdim_is_const(L->g, a->dim, &c)) return NULL; /* needs a tensor */
        x = (double)c;
    } else x = num_f(a);
    if (b->kind == V_INT) {
        if (!tl_gdim_is_const(L->g, b->dim, &c)) return NULL;
        y = (double)c;
    } else y = num_f(b);
    switch (op) {
    case TL_OP_ADD: return lv_float(L, x + y);
    case TL_OP_SUB: return lv_float(L, x - y);
    case TL_OP_MUL: return lv_float(L, x * y);
    case TL_OP_DIV: return lv_float(L, x / y);
    case TL_OP_MOD: return lv_float(L, fmod(x, y));
    case TL_OP_POW: return lv_float(L, pow(x, y));
    case TL_OP_EQ: return lv_bool(L, x == y);
    case TL_OP_NE: return lv_bool(L, x != y);
    case TL_OP_LT: return lv_bool(L, x < y);
    case TL_OP_LE: return lv_bool(L, x <= y);
    case TL_OP_GT: return lv_bool(L, x > y);
    case TL_OP_GE: return lv_bool(L, x >= y);
    case TL_OP_AND: return lv_bool(L, x != 0 && y != 0);
    case TL_OP_OR: return lv_bool(L, x != 0 || y != 0);
    default: return lower_error(L, loc, "operator `%s` does not apply to numbers", tl_op_name(op));
    }
}

static TlGOp graph_binop(TlOp op) {
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

/* numpy matmul through a contraction: batch dims broadcast, 1-D operands promoted */
static Value *lower_matmul(Lower *L, int a, int b, TlLoc loc) {
    TlGraph *g = L->cur;
    TlGShape sa = g->nodes[a].shape, sb = g->nodes[b].shape;
    if (sa.rank == 0 || sb.rank == 0) return lower_error(L, loc, "`@` needs operands of rank 1 or more");
    static const char letters[] = "abcdefgh";
    char spec[64];
    if (sa.rank == 1 && sb.rank == 1) return lv_tensor(L, tl_g_contract(g, "k,k->", a, b, loc));
    if (sb.rank == 1) { /* [..., M, K] @ [K] -> [..., M] */
        char in[TL_MAX_RANK + 1] = {0};
        for (int i = 0; i < sa.rank - 1; i++) in[i] = letters[i];
        snprintf(spec, sizeof spec, "%sz,z->%s", in, in);
        return lv_tensor(L, tl_g_contract(g, spec, a, b, loc));
    }
    if (sa.rank == 1) { /* [K] @ [..., K, N] -> [..., N] */
        char bb[TL_MAX_RANK + 1] = {0};
        for (int i = 0; i < sb.rank - 2; i++) bb[i] = letters[i];
        snprintf(spec, sizeof spec, "z,%szy->%sy", bb, bb);
        return lv_tensor(L, tl_g_contract(g, spec, a, b, loc));
    }
    int ba = sa.rank - 2, bbn = sb.rank - 2;
    if (ba > 0 && bbn > 0) {
        /* broadcast the batch dims of both to a common shape */
        int nb = ba > bbn ? ba : bbn;
        TlGDim batch[TL_MAX_RANK];
        for (int i = 0; i < nb; i++) {
            int ia = i - (nb - ba), ib = i - (nb - bbn);
            TlGDim da = ia >= 0 ? sa.dim[ia] : -1, db = ib >= 0 ? sb.dim[ib] : -1;
            int64_t c;
            if (da < 0) batch[i] = db;
            else if (db < 0) batch[i] = da;
            else if (da == db) batch[i] = da;
            else if (tl_gdim_is_const(g, da, &c) && c == 1) batch[i] = db;
            else if (tl_gdim_is_const(g, db, &c) && c == 1) batch[i] = da;
            else {
                char x[64], y[64];
                tl_gdim_str(g, da, x, sizeof x);
                tl_gdim_str(g, db, y, sizeof y);
                return lower_error(L, loc, "`@`: batch dimensions %s and %s differ", x, y);
            }
        }
        TlGDim da[TL_MAX_RANK], db[TL_MAX_RANK];
        memcpy(da, batch, sizeof(TlGDim) * nb);
        memcpy(db, batch, sizeof(TlGDim) * nb);
        da[nb] = sa.dim[sa.rank - 2];
        da[nb + 1] = sa.dim[sa.rank - 1];
        db[nb] = sb.dim[sb.rank - 2];
        db[nb + 1] = sb.dim[sb.rank - 1];
        TlGShape na = tl_gshape_dims(nb + 2, da), nbs = tl_gshape_dims(nb + 2, db);
        if (!tl_gshape_eq(na, sa)) a = tl_g_broadcast(g, a, na, loc);
        if (!tl_gshape_eq(nbs, sb)) b = tl_g_broadcast(g, b, nbs, loc);
        char bt[TL_MAX_RANK + 1] = {0};
        for (int i = 0; i < nb; i++) bt[i] = letters[i];
        snprintf(spec, sizeof spec, "%sxz,%szy->%sxy", bt, bt, bt);
        return lv_tensor(L, tl_g_contract(g, spec, a, b, loc));
    }
    if (bbn == 0) { /* [..., M, K] @ [K, N] */
        char bt[TL_MAX_RANK + 1] = {0};
        for (int i = 0; i < ba; i++) bt[i] = letters[i];
        snprintf(spec, sizeof spec, "%sxz,zy->%sxy", bt, bt);
        return lv_tensor(L, tl_g_contract(g, spec, a, b, loc));
    }
    /* [M, K] @ [..., K, N] */
    char bt[TL_MAX_RANK + 1] = {0};
    for (int i = 0; i < bbn; i++) bt[i] = letters[i];
    snprintf(spec, sizeof spec, "xz,%szy->%sxy", bt, bt);
    return lv_tensor(L, tl_g_contract(g, spec, a, b, loc));
}

Value *lower_binary(Lower *L, TlOp op, Value *a, Value *b, TlLoc loc) {
    if (!a || !b) return NULL;
    if (a->kind == V_STR && b->kind == V_STR && (op == TL_OP_EQ || op == TL_OP_NE))
        return lv_bool(L, (strcmp(a->s, b->s) == 0) == (op == TL_OP_EQ));
    if (lv_is_number(a) && lv_is_number(b)) {
        Value *r = fold_numbers(L, op, a, b, loc);
        if (r || L->failed) return r;
        /* symbolic size in float arithmetic: continue with tensors */
    }
    if ((a->kind != V_TENSOR && !lv_is_number(a)) || (b->kind != V_TENSOR && !lv_is_number(b))) {
        if (op == TL_OP_ADD && a->kind == V_LIST && b->kind == V_LIST) {
            Value *r = lv_new(L, V_LIST);
            r->n = a->n + b->n;
            r->items = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(r->n + 1));
            if (a->n) memcpy(r->items, a->items, sizeof(Value *) * (size_t)a->n);
            if (b->n) memcpy(r->items + a->n, b->items, sizeof(Value *) * (size_t)b->n);
            return r;
        }
        return lower_error(L, loc, "operator `%s` does not apply to a %s and a %s", tl_op_name(op),
                           lv_kind_name(a->kind), lv_kind_name(b->kind));
    }
    /* x ** 2, x ** 3, x ** 0.5 as cheaper ops with exact gradients */
    if (op == TL_OP_POW && a->kind == V_TENSOR && lv_is_number(b)) {
        double e = b->kind == V_FLOAT ? b->f : 0;
        int64_t c;
        if (b->kind == V_INT && tl_gdim_is_const(L->g, b->dim, &c)) e = (double)c;
        int x = lower_tensor(L, a, 0, loc);
        if (e == 1.0) return a;
        if (e == 2.0) return lv_tensor(L, tl_g_mul(L->cur, x, x, loc));
        if (e == 3.0) return lv_tensor(L, tl_g_mul(L->cur, tl_g_mul(L->cur, x, x, loc), x, loc));
        if (e == 0.5) return lv_tensor(L, tl_g_sqrt(L->cur, x, loc));
    }
    if (op == TL_OP_MATMUL) {
        if (a->kind != V_TENSOR || b->kind != V_TENSOR) return lower_error(L, loc, "`@` needs two tensors");
        int x = lower_tensor(L, a, 0, loc), y = lower_tensor(L, b, 0, loc);
        if (x < 0 || y < 0) return NULL;
        return lower_matmul(L, x, y, loc);
    }
    /* the dtype of the operation: that of the tensor operand(s); a float number with an
     * integer tensor makes it f32 */
    TlDType ta = tensor_dtype(L, a), tb = tensor_dtype(L, b), t;
    if (ta && tb) {
        if (ta != tb)
            return lower_error(L, loc, "cannot combine %s and %s tensors with `%s`; convert one with `as`",
                               tl_dtype_name(ta), tl_dtype_name(tb), tl_op_name(op));
        t = ta;
    } else {
        t = ta ? ta : tb;
        Value *num = ta ? b : a;
        if (tl_dtype_is_int(t) && num->kind == V_FLOAT) t = TL_F32;
        if (t == TL_BOOL && num->kind != V_BOOL && op != TL_OP_AND && op != TL_OP_OR) t = num->kind == V_FLOAT ? TL_F32 : TL_I32;
    }
    if (op == TL_OP_DIV && tl_dtype_is_int(t) && (a->kind == V_FLOAT || b->kind == V_FLOAT)) t = TL_F32;
    int x = lower_tensor(L, a, t, loc), y = lower_tensor(L, b, t, loc);
    if (x < 0 || y < 0) return NULL;
    if (op == TL_OP_AND || op == TL_OP_OR) {
        if (t != TL_BOOL) return lower_error(L, loc, "`%s` needs bool tensors", tl_op_name(op));
        /* a and b = a ? b : false;  a or b = a ? true : b */
        TlGraph *g = L->cur;
        int xb = x, yb = y;
        if (!tl_gshape_eq(g->nodes[x].shape, g->nodes[y].shape)) {
            int z = tl_g_broadcast_binary(g, TL_GOP_EQ, x, y, loc); /* just for the shape */
            if (z < 0) return NULL;
            xb = tl_g_broadcast(g, x, g->nodes[z].shape, loc);
            yb = tl_g_broadcast(g, y, g->nodes[z].shape, loc);
        }
        int k = tl_g_const(g, op == TL_OP_OR, TL_BOOL, g->nodes[xb].shape, loc);
        return lv_tensor(L, op == TL_OP_AND ? tl_g_select(g, xb, yb, k, loc) : tl_g_select(g, xb, k, yb, loc));
    }
    if (op == TL_OP_MOD) {
        if (!tl_dtype_is_int(t)) return lower_error(L, loc, "`%%` on float tensors is not supported yet");
        /* a - (a / b) * b with truncating division */
        int q = tl_g_broadcast_binary(L->cur, TL_GOP_DIV, x, y, loc);
        int m = tl_g_broadcast_binary(L->cur, TL_GOP_MUL, q, y, loc);
        return lv_tensor(L, tl_g_broadcast_binary(L->cur, TL_GOP_SUB, x, m, loc));
    }
    TlGOp gop = graph_binop(op);
    if (gop == TL_GOP_COUNT) return lower_error(L, loc, "operator `%s` does not apply to tensors", tl_op_name(op));
    return lv_tensor(L, tl_g_broadcast_binary(L->cur, gop, x, y, loc));
}

/* ---- statements -------------------------------------------------------------------------- */

typedef enum { ST_NEXT, ST_RETURN, ST_ERROR } Status;

static Status exec_block(Lower *L, Env *env, TlNode *block, Value **ret);

static int bind_targets(Lower *L, Env *env, TlList *targets, Value *v, TlLoc loc) {
    if (!v) return -1;
    if (targets->n == 1) {
        TlNode *t = targets->v[0];
        if (t->kind != TL_N_IDENT) {
            lower_error(L, t->loc, "tensor code can only assign to names");
            return -1;
        }
        if (strcmp(t->name, "_") != 0) env_assign(L, env, t->name, v);
        return 0;
    }
    if (v->kind != V_TUPLE && v->kind != V_LIST) {
        lower_error(L, loc, "cannot unpack a %s into %d names", lv_kind_name(v->kind), targets->n);
        return -1;
    }
    if (v->n != targets->n) {
        lower_error(L, loc, "cannot unpack %d values into %d names", v->n, targets->n);
        return -1;
    }
    for (int i = 0; i < targets->n; i++) {
        TlNode *t = targets->v[i];
        if (t->kind != TL_N_IDENT) {
            lower_error(L, t->loc, "tensor code can only assign to names");
            return -1;
        }
        if (strcmp(t->name, "_") != 0) env_assign(L, env, t->name, v->items[i]);
    }
    return 0;
}

/* The values a compile-time `for` iterates over. */
static int iterate_values(Lower *L, Value *it, Value ***items, int *n, TlLoc loc) {
    if (!it) return -1;
    if (it->kind == V_LIST || it->kind == V_TUPLE) {
        *items = it->items;
        *n = it->n;
        return 0;
    }
    if (it->kind == V_RANGE) {
        int64_t lo, hi;
        if (!lv_const_int(L, it->items[0], &lo) || !lv_const_int(L, it->items[1], &hi)) {
            lower_error(L, loc, "a loop in tensor code needs bounds known at compile time (use scan for a loop over time)");
            return -1;
        }
        if (hi - lo > 100000) {
            lower_error(L, loc, "loop of %lld iterations is too long to unroll", (long long)(hi - lo));
            return -1;
        }
        *n = hi > lo ? (int)(hi - lo) : 0;
        *items = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(*n + 1));
        for (int i = 0; i < *n; i++) (*items)[i] = lv_int_c(L, lo + i);
        return 0;
    }
    lower_error(L, loc, "cannot iterate over a %s", lv_kind_name(it->kind));
    return -1;
}

static int truth(Lower *L, Value *c, TlLoc loc) {
    if (!c) return -1;
    int64_t v;
    if (c->kind == V_BOOL) return c->b;
    if (c->kind == V_INT && lv_const_int(L, c, &v)) return v != 0;
    if (c->kind == V_FLOAT) return c->f != 0;
    lower_error(L, loc, "the condition of `if` in tensor code must be known at compile time (found a %s); use where(c, a, b) for a tensor condition",
                lv_kind_name(c->kind));
    return -1;
}


static Status exec_stmt(Lower *L, Env *env, TlNode *s, Value **ret) {
    if (!s) return ST_NEXT;
    switch (s->kind) {
    case TL_N_ASSIGN: {
        Value *v = lower_expr(L, env, s->a);
        if (!v) return ST_ERROR;
        if (s->op != TL_OP_NONE) {
            if (s->list.n != 1 || s->list.v[0]->kind != TL_N_IDENT) {
                lower_error(L, s->loc, "compound assignment needs one name");
                return ST_ERROR;
            }
            Value *old = env_get(env, s->list.v[0]->name);
            v = lower_binary(L, s->op, old, v, s->loc);
            if (!v) return ST_ERROR;
        }
        return bind_targets(L, env, &s->list, v, s->loc) < 0 ? ST_ERROR : ST_NEXT;
    }
    case TL_N_EXPR_STMT:
        return lower_expr(L, env, s->a) || !L->failed ? ST_NEXT : ST_ERROR;
    case TL_N_RETURN:
        *ret = s->a ? lower_expr(L, env, s->a) : lv_new(L, V_NONE);
        return *ret ? ST_RETURN : ST_ERROR;
    case TL_N_YIELD: {
        ScanFrame *f = L->scan;
        if (!f) {
            lower_error(L, s->loc, "`yield` outside of a scan");
            return ST_ERROR;
        }
        Value *v = lower_expr(L, env, s->a);
        if (!v) return ST_ERROR;
        Value **slot = env_find(env, "\x01yields");
        if (!slot) {
            lower_error(L, s->loc, "`yield` outside of a scan body");
            return ST_ERROR;
        }
        Value *list = *slot;
        Value **items = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(list->n + 1));
        if (list->n) memcpy(items, list->items, sizeof(Value *) * (size_t)list->n);
        items[list->n] = v;
        list->items = items;
        list->n++;
        return ST_NEXT;
    }
    case TL_N_FOR: {
        Value *it = lower_expr(L, env, s->a);
        Value **items;
        int n;
        if (iterate_values(L, it, &items, &n, s->a ? s->a->loc : s->loc) < 0) return ST_ERROR;
        for (int i = 0; i < n; i++) {
            Env *body = env_new(L, env);
            Value *item = items[i];
            if (s->list.n == 1) {
                if (strcmp(s->list.v[0]->name, "_") != 0) env_set(L, body, s->list.v[0]->name, item);
            } else {
                if ((item->kind != V_TUPLE && item->kind != V_LIST) || item->n != s->list.n) {
                    lower_error(L, s->loc, "cannot unpack the loop value into %d names", s->list.n);
                    return ST_ERROR;
                }
                for (int k = 0; k < s->list.n; k++)
                    if (strcmp(s->list.v[k]->name, "_") != 0) env_set(L, body, s->list.v[k]->name, item->items[k]);
            }
            Status st = exec_block(L, body, s->b, ret);
            if (st != ST_NEXT) return st;
        }
        return ST_NEXT;
    }
    case TL_N_IF: {
        int c = truth(L, lower_expr(L, env, s->a), s->a ? s->a->loc : s->loc);
        if (c < 0) return ST_ERROR;
        if (c) return exec_block(L, env_new(L, env), s->b, ret);
        if (s->c) {
            if (s->c->kind == TL_N_IF) return exec_stmt(L, env, s->c, ret);
            return exec_block(L, env_new(L, env), s->c, ret);
        }
        return ST_NEXT;
    }
    case TL_N_BLOCK:
        return exec_block(L, env_new(L, env), s, ret);
    case TL_N_WHILE:
    case TL_N_BREAK:
    case TL_N_CONTINUE:
        lower_error(L, s->loc, "`%s` is host code; tensor code has no runtime control flow",
                    s->kind == TL_N_WHILE ? "while" : s->kind == TL_N_BREAK ? "break" : "continue");
        return ST_ERROR;
    case TL_N_FN:
        env_set(L, env, s->name, NULL);
        return ST_NEXT;
    default:
        lower_error(L, s->loc, "unexpected %s in tensor code", tl_node_kind_name(s->kind));
        return ST_ERROR;
    }
}

static Status exec_block(Lower *L, Env *env, TlNode *block, Value **ret) {
    if (!block) return ST_NEXT;
    if (block->kind != TL_N_BLOCK) return exec_stmt(L, env, block, ret);
    for (int i = 0; i < block->list.n; i++) {
        Status st = exec_stmt(L, env, block->list.v[i], ret);
        if (st != ST_NEXT) return st;
    }
    return ST_NEXT;
}

int lower_exec_stmt(Lower *L, Env *env, TlNode *stmt) {
    Value *ret = NULL;
    Status st = exec_stmt(L, env, stmt, &ret);
    if (st == ST_RETURN) {
        lower_error(L, stmt->loc, "`return` is not allowed here");
        return -1;
    }
    return st == ST_ERROR ? -1 : 0;
}

/* ---- types: binding a value to a declared type ------------------------------------------ */

static int dim_of_expr(Lower *L, Env *env, TlNode *d, TlGDim *out) {
    Value *v = lower_expr(L, env, d);
    if (!v) return -1;
    if (v->kind != V_INT) {
        lower_error(L, d->loc, "a dimension must be an integer, found a %s", lv_kind_name(v->kind));
        return -1;
    }
    *out = v->dim;
    return 0;
}

static int dims_conflict(Lower *L, TlGDim a, TlGDim b) {
    int64_t x, y;
    return a != b && tl_gdim_is_const(L->g, a, &x) && tl_gdim_is_const(L->g, b, &y) && x != y;
}

/* Unifies a declared tensor type with a value's shape, binding dimension variables in env.
 * Names already bound are checked; compound dims are checked once all names are bound. */
static int bind_tensor_type(Lower *L, Env *env, TlNode *ty, Value *v, const char *what) {
    TlGraph *g = v->g;
    const TlGNode *n = &g->nodes[v->id];
    if (ty->dtype && n->dtype != ty->dtype) {
        lower_error(L, ty->loc, "%s: expected %s, found a %s tensor", what, tl_dtype_name(ty->dtype), tl_dtype_name(n->dtype));
        return -1;
    }
    if (!(ty->flags & TL_F_SHAPED) && ty->list.n == 0) {
        if (n->shape.rank != 0) {
            lower_error(L, ty->loc, "%s: expected a scalar, found rank %d", what, n->shape.rank);
            return -1;
        }
        return 0;
    }
    int nd = ty->list.n, ell = -1;
    for (int i = 0; i < nd; i++)
        if (ty->list.v[i]->kind == TL_N_ELLIPSIS) ell = i;
    int rank = n->shape.rank;
    if ((ell < 0 && rank != nd) || (ell >= 0 && rank < nd - 1)) {
        lower_error(L, ty->loc, "%s: expected rank %s%d, found rank %d", what, ell >= 0 ? "at least " : "",
                    ell >= 0 ? nd - 1 : nd, rank);
        return -1;
    }
    int nell = ell >= 0 ? rank - (nd - 1) : 0;
    for (int pass = 0; pass < 2; pass++) {
        int ax = 0;
        for (int i = 0; i < nd; i++) {
            TlNode *d = ty->list.v[i];
            if (d->kind == TL_N_ELLIPSIS) {
                if (pass == 0) {
                    Value *prev = env_get(env, "...");
                    if (prev && prev->kind == V_DIMS) {
                        int bad = prev->n != nell;
                        for (int k = 0; !bad && k < nell; k++)
                            if (dims_conflict(L, prev->items[k]->dim, n->shape.dim[ax + k])) bad = 1;
                        if (bad) {
                            lower_error(L, d->loc, "%s: the dimensions matched by `...` differ from an earlier argument's", what);
                            return -1;
                        }
                    } else {
                        Value *dv = lv_new(L, V_DIMS);
                        dv->n = nell;
                        dv->items = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(nell + 1));
                        for (int k = 0; k < nell; k++) dv->items[k] = lv_int(L, n->shape.dim[ax + k]);
                        env_set(L, env, "...", dv);
                    }
                }
                ax += nell;
                continue;
            }
            TlGDim actual = n->shape.dim[ax++];
            if (d->kind == TL_N_WILDCARD || d->kind == TL_N_DYNAMIC) continue;
            if (d->kind == TL_N_IDENT) {
                if (pass == 1) continue;
                Value *b = env_get(env, d->name);
                if (!b) {
                    env_set(L, env, d->name, lv_int(L, actual));
                    continue;
                }
                if (b->kind == V_INT && dims_conflict(L, b->dim, actual)) {
                    char x[64], y[64];
                    tl_gdim_str(L->g, b->dim, x, sizeof x);
                    tl_gdim_str(L->g, actual, y, sizeof y);
                    lower_error(L, d->loc, "%s: dimension %s is %s here but %s in the argument", what, d->name, x, y);
                    return -1;
                }
                continue;
            }
            if (pass == 0) continue;
            TlGDim want;
            if (dim_of_expr(L, env, d, &want) < 0) return -1;
            if (dims_conflict(L, want, actual)) {
                char x[64], y[64];
                tl_gdim_str(L->g, want, x, sizeof x);
                tl_gdim_str(L->g, actual, y, sizeof y);
                lower_error(L, d->loc, "%s: expected dimension %s, found %s", what, x, y);
                return -1;
            }
        }
    }
    return 0;
}

static int bind_type(Lower *L, Env *env, TlNode *ty, Value *v, const char *what) {
    if (!ty || !v) return v ? 0 : -1;
    switch (ty->kind) {
    case TL_N_TYPE_TENSOR:
        if (v->kind != V_TENSOR) {
            if (lv_is_number(v) && ty->list.n == 0) return 0; /* a number passed as a scalar */
            lower_error(L, ty->loc, "%s: expected a tensor, found a %s", what, lv_kind_name(v->kind));
            return -1;
        }
        return bind_tensor_type(L, env, ty, v, what);
    case TL_N_TYPE_TUPLE:
        if (v->kind != V_TUPLE || v->n != ty->list.n) {
            lower_error(L, ty->loc, "%s: expected a tuple of %d", what, ty->list.n);
            return -1;
        }
        for (int i = 0; i < v->n; i++)
            if (bind_type(L, env, ty->list.v[i], v->items[i], what) < 0) return -1;
        return 0;
    default:
        return 0; /* int, float, str, model types: checked by sema */
    }
}

/* ---- calls ------------------------------------------------------------------------------ */

/* Matches arguments to declared parameters (positional, then keyword, then defaults). */
static int match_params(Lower *L, TlList *params, Env *def_env, Env *call_env, Value **args, int nargs,
                        const char **kwnames, Value **kwvals, int nkw, TlLoc loc, const char *what,
                        Value **out) {
    if (nargs > params->n) {
        lower_error(L, loc, "%s takes %d arguments, %d given", what, params->n, nargs);
        return -1;
    }
    for (int i = 0; i < params->n; i++) out[i] = i < nargs ? args[i] : NULL;
    for (int k = 0; k < nkw; k++) {
        int found = -1;
        for (int i = 0; i < params->n; i++)
            if (strcmp(params->v[i]->name, kwnames[k]) == 0) found = i;
        if (found < 0) {
            lower_error(L, loc, "%s has no parameter named '%s'", what, kwnames[k]);
            return -1;
        }
        if (out[found]) {
            lower_error(L, loc, "%s: '%s' given twice", what, kwnames[k]);
            return -1;
        }
        out[found] = kwvals[k];
    }
    for (int i = 0; i < params->n; i++) {
        if (out[i]) continue;
        TlNode *p = params->v[i];
        if (!p->b) {
            lower_error(L, loc, "%s: missing argument '%s'", what, p->name);
            return -1;
        }
        /* defaults see earlier parameters */
        Env *e = env_new(L, def_env);
        for (int j = 0; j < i; j++) env_set(L, e, params->v[j]->name, out[j]);
        (void)call_env;
        out[i] = lower_expr(L, e, p->b);
        if (!out[i]) return -1;
    }
    return 0;
}

static Value *call_fn(Lower *L, TlNode *fn, Module *mod, Instance *self, Value **args, int nargs,
                      const char **kwnames, Value **kwvals, int nkw, TlLoc loc) {
    if (fn->flags & TL_F_HOST) return lower_error(L, loc, "'%s' is a host function; tensor code cannot call it", fn->name);
    if (++L->depth > MAX_DEPTH) {
        L->depth--;
        return lower_error(L, loc, "calls nested more than %d deep (recursion is not allowed)", MAX_DEPTH);
    }
    Env *def = self ? self->env : mod->globals;
    Env *env = env_frame(L, def);
    Value **vals = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(fn->list.n + 1));
    char what[128];
    snprintf(what, sizeof what, "'%s'", fn->name);
    Value *result = NULL;
    if (match_params(L, &fn->list, def, env, args, nargs, kwnames, kwvals, nkw, loc, what, vals) == 0) {
        int ok = 1;
        for (int i = 0; i < fn->list.n && ok; i++) {
            TlNode *p = fn->list.v[i];
            env_set(L, env, p->name, vals[i]);
            char pw[160];
            snprintf(pw, sizeof pw, "argument '%s' of '%s'", p->name, fn->name);
            if (bind_type(L, env, p->a, vals[i], pw) < 0) ok = 0;
        }
        if (ok) {
            Value *ret = NULL;
            Status st = exec_block(L, env, fn->b, &ret);
            if (st == ST_RETURN) {
                result = ret;
                if (fn->a && bind_type(L, env, fn->a, ret, "the result") < 0) result = NULL;
            } else if (st == ST_NEXT) {
                result = lv_new(L, V_NONE);
                if (fn->a) result = lower_error(L, fn->loc, "'%s' ends without returning a value", fn->name);
            }
        }
    }
    L->depth--;
    return result;
}

static const char *join_path(Lower *L, const char *base, const char *name) {
    if (!base || !*base) return tl_arena_strdup(L->arena, name);
    return tl_arena_printf(L->arena, "%s.%s", base, name);
}

static int init_from_expr(Lower *L, Env *env, TlNode *e, TlParamInfo *pi) {
    pi->init = TL_INIT_ZEROS;
    if (!e) return 0;
    if (e->kind != TL_N_CALL || !e->a || e->a->kind != TL_N_IDENT) {
        lower_error(L, e->loc, "a parameter initializer must be normal(), uniform(), zeros(), ones(), xavier_uniform() or kaiming_uniform() (tensor-valued initializers are not supported yet)");
        return -1;
    }
    const char *f = e->a->name;
    double nums[2] = {0, 0};
    int nn = 0;
    for (int i = 0; i < e->list.n && nn < 2; i++) {
        TlNode *a = e->list.v[i];
        Value *v = lower_expr(L, env, a->kind == TL_N_KWARG ? a->a : a);
        if (!v) return -1;
        int64_t c;
        if (v->kind == V_FLOAT) nums[nn++] = v->f;
        else if (lv_const_int(L, v, &c)) nums[nn++] = (double)c;
        else {
            lower_error(L, a->loc, "initializer arguments must be numbers known at compile time");
            return -1;
        }
    }
    if (strcmp(f, "zeros") == 0) pi->init = TL_INIT_ZEROS;
    else if (strcmp(f, "ones") == 0) pi->init = TL_INIT_ONES;
    else if (strcmp(f, "normal") == 0) {
        pi->init = TL_INIT_NORMAL;
        pi->a = nn > 0 ? nums[0] : 0.0;
        pi->b = nn > 1 ? nums[1] : 1.0;
    } else if (strcmp(f, "uniform") == 0) {
        pi->init = TL_INIT_UNIFORM;
        pi->a = nn > 0 ? nums[0] : 0.0;
        pi->b = nn > 1 ? nums[1] : 1.0;
    } else if (strcmp(f, "xavier_uniform") == 0) pi->init = TL_INIT_XAVIER;
    else if (strcmp(f, "kaiming_uniform") == 0) pi->init = TL_INIT_KAIMING;
    else {
        lower_error(L, e->loc, "unknown initializer '%s'", f);
        return -1;
    }
    return 0;
}

static int add_members(Lower *L, Instance *inst, TlList *members);

static int add_member(Lower *L, Instance *inst, TlNode *m) {
    Env *env = inst->env;
    switch (m->kind) {
    case TL_N_MEMBER: {
        TlNode *ty = m->a;
        if (!ty || ty->kind != TL_N_TYPE_TENSOR) {
            lower_error(L, m->loc, "a param must have a tensor type");
            return -1;
        }
        TlGDim dims[TL_MAX_RANK];
        if (ty->list.n > TL_MAX_RANK) {
            lower_error(L, ty->loc, "rank %d is more than the %d supported", ty->list.n, TL_MAX_RANK);
            return -1;
        }
        for (int i = 0; i < ty->list.n; i++) {
            TlNode *d = ty->list.v[i];
            if (d->kind == TL_N_ELLIPSIS || d->kind == TL_N_WILDCARD || d->kind == TL_N_DYNAMIC) {
                lower_error(L, d->loc, "a param's shape must be fully given");
                return -1;
            }
            if (dim_of_expr(L, env, d, &dims[i]) < 0) return -1;
        }
        const char *name = join_path(L, inst->path, m->name);
        TlGShape shape = tl_gshape_dims(ty->list.n, dims);
        int id = tl_g_param(L->g, name, ty->dtype ? ty->dtype : TL_F32, shape, m->loc);
        if (id < 0) {
            lower_error(L, m->loc, "%s", tl_graph_error(L->g) ? tl_graph_error(L->g) : "cannot create the param");
            return -1;
        }
        int cap = L->paramcap;
        L->params = tl_arena_grow(L->arena, L->params, &cap, L->nparams + 1, sizeof *L->params);
        L->paramcap = cap;
        TlParamInfo *pi = &L->params[L->nparams++];
        memset(pi, 0, sizeof *pi);
        pi->name = name;
        pi->node = id;
        pi->loc = m->loc;
        pi->buffer = (m->flags & TL_F_BUFFER) != 0;
        int64_t c;
        pi->fan_in = ty->list.n >= 2 && tl_gdim_is_const(L->g, dims[ty->list.n - 2], &c) ? (int)c : 1;
        pi->fan_out = ty->list.n >= 1 && tl_gdim_is_const(L->g, dims[ty->list.n - 1], &c) ? (int)c : 1;
        if (init_from_expr(L, env, m->b, pi) < 0) return -1;
        Value *v = lv_new(L, V_TENSOR);
        v->g = L->g;
        v->id = id;
        env_set(L, env, m->name, v);
        return 0;
    }
    case TL_N_ASSIGN: {
        if (m->list.n != 1 || m->list.v[0]->kind != TL_N_IDENT) {
            lower_error(L, m->loc, "a model member is one name");
            return -1;
        }
        const char *saved = L->member_path;
        L->member_path = join_path(L, inst->path, m->list.v[0]->name);
        Value *v = lower_expr(L, env, m->a);
        L->member_path = saved;
        if (!v) return -1;
        env_set(L, env, m->list.v[0]->name, v);
        return 0;
    }
    case TL_N_FN: {
        Value *v = lv_new(L, V_FUNC);
        v->decl = m;
        v->mod = inst->mod;
        v->inst = inst;
        env_set(L, env, m->name, v);
        return 0;
    }
    case TL_N_IF: {
        int c = truth(L, lower_expr(L, env, m->a), m->a ? m->a->loc : m->loc);
        if (c < 0) return -1;
        TlNode *branch = c ? m->b : m->c;
        if (!branch) return 0;
        if (branch->kind == TL_N_IF) return add_member(L, inst, branch);
        return add_members(L, inst, &branch->list);
    }
    default:
        lower_error(L, m->loc, "unexpected %s in a model", tl_node_kind_name(m->kind));
        return -1;
    }
}

static int add_members(Lower *L, Instance *inst, TlList *members) {
    for (int i = 0; i < members->n; i++)
        if (add_member(L, inst, members->v[i]) < 0) return -1;
    return 0;
}

static Value *instantiate(Lower *L, TlNode *decl, Module *mod, Value **args, int nargs, const char **kwnames,
                          Value **kwvals, int nkw, TlLoc loc) {
    Instance *inst = tl_arena_alloc(L->arena, sizeof *inst);
    inst->decl = decl;
    inst->mod = mod;
    inst->path = L->member_path ? L->member_path : "";
    L->member_path = NULL;
    inst->env = env_frame(L, mod->globals);
    Value **vals = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(decl->list.n + 1));
    char what[128];
    snprintf(what, sizeof what, "model '%s'", decl->name);
    if (match_params(L, &decl->list, mod->globals, inst->env, args, nargs, kwnames, kwvals, nkw, loc, what, vals) < 0)
        return NULL;
    for (int i = 0; i < decl->list.n; i++) env_set(L, inst->env, decl->list.v[i]->name, vals[i]);
    if (++L->depth > MAX_DEPTH) {
        L->depth--;
        return lower_error(L, loc, "models nested more than %d deep", MAX_DEPTH);
    }
    int r = add_members(L, inst, &decl->list2);
    L->depth--;
    if (r < 0) return NULL;
    Value *v = lv_new(L, V_MODEL);
    v->inst = inst;
    return v;
}

Value *lower_call_value(Lower *L, Value *callee, Value **args, const char **kwnames, Value **kwvals, int nargs,
                        int nkw, TlLoc loc) {
    if (!callee) return NULL;
    switch (callee->kind) {
    case V_FUNC:
        if (callee->decl->kind == TL_N_KERNEL) {
            /* keyword arguments by parameter name, then positional */
            TlList *ps = &callee->decl->list;
            Value **all = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(ps->n + 1));
            if (nargs + nkw != ps->n)
                return lower_error(L, loc, "kernel '%s' takes %d arguments, %d given", callee->decl->name, ps->n, nargs + nkw);
            for (int i = 0; i < nargs; i++) all[i] = args[i];
            for (int k = 0; k < nkw; k++) {
                int at = -1;
                for (int i = 0; i < ps->n; i++)
                    if (strcmp(ps->v[i]->name, kwnames[k]) == 0) at = i;
                if (at < 0) return lower_error(L, loc, "kernel '%s' has no parameter named '%s'", callee->decl->name, kwnames[k]);
                if (all[at]) return lower_error(L, loc, "kernel '%s': '%s' given twice", callee->decl->name, kwnames[k]);
                all[at] = kwvals[k];
            }
            return lower_kernel_call(L, callee->decl, callee->mod, all, ps->n, loc);
        }
        return call_fn(L, callee->decl, callee->mod, callee->inst, args, nargs, kwnames, kwvals, nkw, loc);
    case V_MODELDEF:
        return instantiate(L, callee->decl, callee->mod, args, nargs, kwnames, kwvals, nkw, loc);
    case V_MODEL: {
        Value *fwd = env_get(callee->inst->env, "forward");
        if (!fwd || fwd->kind != V_FUNC)
            return lower_error(L, loc, "model '%s' has no forward method", callee->inst->decl->name);
        return call_fn(L, fwd->decl, fwd->mod, callee->inst, args, nargs, kwnames, kwvals, nkw, loc);
    }
    case V_BUILTIN:
        return lower_builtin(L, callee->s, args, nargs, kwnames, kwvals, nkw, loc);
    default:
        return lower_error(L, loc, "a %s cannot be called", lv_kind_name(callee->kind));
    }
}

/* ---- expressions -------------------------------------------------------------------------- */

static Value *lookup(Lower *L, Env *env, const char *name, TlLoc loc) {
    Value *v = env_get(env, name);
    if (v) return v;
    TlDType t = tl_dtype_from_name(name);
    if (t) {
        Value *tv = lv_new(L, V_TYPE);
        tv->dtype = t;
        return tv;
    }
    if (lower_is_builtin(name)) {
        Value *b = lv_new(L, V_BUILTIN);
        b->s = name;
        return b;
    }
    return lower_error(L, loc, "'%s' is not defined here", name);
}


static Value *lower_call_expr(Lower *L, Env *env, TlNode *e) {
    Value *callee = lower_expr(L, env, e->a);
    if (!callee) return NULL;
    int n = e->list.n;
    Value **args = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(n + 1));
    Value **kwvals = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(n + 1));
    const char **kwnames = tl_arena_alloc(L->arena, sizeof(char *) * (size_t)(n + 1));
    int na = 0, nk = 0;
    for (int i = 0; i < n; i++) {
        TlNode *a = e->list.v[i];
        if (a->kind == TL_N_KWARG) {
            kwnames[nk] = a->name;
            kwvals[nk] = lower_expr(L, env, a->a);
            if (!kwvals[nk++]) return NULL;
        } else {
            args[na] = lower_expr(L, env, a);
            if (!args[na++]) return NULL;
        }
    }
    return lower_call_value(L, callee, args, kwnames, kwvals, na, nk, e->loc);
}

static Value *lower_field(Lower *L, Value *base, TlNode *e) {
    if (!base) return NULL;
    switch (base->kind) {
    case V_MODULE: {
        Value *v = env_get(base->mod->globals, e->name);
        if (!v) return lower_error(L, e->loc, "module '%s' has no '%s'", base->mod->m->name, e->name);
        return v;
    }
    case V_MODEL: {
        for (int i = 0; i < base->inst->env->n; i++)
            if (strcmp(base->inst->env->names[i], e->name) == 0) return base->inst->env->vals[i];
        return lower_error(L, e->loc, "model '%s' has no member '%s'", base->inst->decl->name, e->name);
    }
    case V_TOKENIZER:
        if (strcmp(e->name, "size") == 0) {
            if (base->ival < 0 && base->decl && base->mod && base->mod->index == 0) {
                /* build it (loads its files, or trains it) to know its vocabulary */
                char err[512];
                TlTokenizer *t = tl_tokdecl_build(L->prog, base->decl->name, err, sizeof err);
                if (!t) {
                    L->failed = 1;
                    return NULL;
                }
                base->ival = (int64_t)tl_tok_vocab_size(t);
                tl_tok_free(t);
            }
            if (base->ival < 0) return lower_error(L, e->loc, "the size of this tokenizer is known only when it is built");
            return lv_int_c(L, base->ival);
        }
        return lower_error(L, e->loc, "a tokenizer has no '%s'", e->name);
    default:
        return lower_error(L, e->loc, "a %s has no field '%s'", lv_kind_name(base->kind), e->name);
    }
}

static Value *make_seq(Lower *L, ValueKind k, Env *env, TlList *items) {
    Value *v = lv_new(L, k);
    v->n = items->n;
    v->items = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(items->n + 1));
    for (int i = 0; i < items->n; i++) {
        v->items[i] = lower_expr(L, env, items->v[i]);
        if (!v->items[i]) return NULL;
    }
    return v;
}

static Value *lower_listcomp(Lower *L, Env *env, TlNode *e) {
    Value *it = lower_expr(L, env, e->b);
    Value **items;
    int n;
    if (iterate_values(L, it, &items, &n, e->b ? e->b->loc : e->loc) < 0) return NULL;
    const char *base = L->member_path;
    Value *v = lv_new(L, V_LIST);
    v->n = n;
    v->items = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        Env *scope = env_new(L, env);
        if (e->list.n == 1) {
            if (strcmp(e->list.v[0]->name, "_") != 0) env_set(L, scope, e->list.v[0]->name, items[i]);
        } else {
            for (int k = 0; k < e->list.n && k < items[i]->n; k++)
                env_set(L, scope, e->list.v[k]->name, items[i]->items[k]);
        }
        L->member_path = base ? tl_arena_printf(L->arena, "%s.%d", base, i) : NULL;
        v->items[i] = lower_expr(L, scope, e->a);
        if (!v->items[i]) {
            L->member_path = base;
            return NULL;
        }
    }
    L->member_path = base;
    return v;
}

static Value *lower_unary(Lower *L, TlNode *e, Value *x) {
    if (!x) return NULL;
    switch (e->op) {
    case TL_OP_POS:
        return x;
    case TL_OP_NEG:
        if (x->kind == V_INT) return lv_int(L, tl_gdim_sub(L->g, tl_gdim_const(L->g, 0), x->dim));
        if (x->kind == V_FLOAT) return lv_float(L, -x->f);
        if (x->kind == V_TENSOR) return lv_tensor(L, tl_g_neg(L->cur, lower_tensor(L, x, 0, e->loc), e->loc));
        break;
    case TL_OP_NOT:
        if (x->kind == V_BOOL) return lv_bool(L, !x->b);
        if (x->kind == V_TENSOR && tensor_dtype(L, x) == TL_BOOL) {
            int id = lower_tensor(L, x, 0, e->loc);
            int f = tl_g_const(L->cur, 0, TL_BOOL, L->cur->nodes[id].shape, e->loc);
            return lv_tensor(L, tl_g_binary(L->cur, TL_GOP_EQ, id, f, e->loc));
        }
        break;
    default:
        break;
    }
    return lower_error(L, e->loc, "operator `%s` does not apply to a %s", tl_op_name(e->op), lv_kind_name(x->kind));
}

Value *lower_expr(Lower *L, Env *env, TlNode *e) {
    if (!e) return lower_error(L, (TlLoc){0}, "missing expression");
    if (L->failed) return NULL;
    switch (e->kind) {
    case TL_N_INT:
        return lv_int_c(L, e->ival);
    case TL_N_FLOAT:
        return lv_float(L, e->fval);
    case TL_N_BOOL:
        return lv_bool(L, (int)e->ival);
    case TL_N_STRING: {
        Value *v = lv_new(L, V_STR);
        v->s = e->str;
        return v;
    }
    case TL_N_IDENT:
        return lookup(L, env, e->name, e->loc);
    case TL_N_UNARY:
        return lower_unary(L, e, lower_expr(L, env, e->a));
    case TL_N_BINARY: {
        if (e->op == TL_OP_PIPE) return lower_error(L, e->loc, "`|` pipelines are host code");
        Value *a = lower_expr(L, env, e->a);
        Value *b = a ? lower_expr(L, env, e->b) : NULL;
        return lower_binary(L, e->op, a, b, e->loc);
    }
    case TL_N_RANGE: {
        Value *v = lv_new(L, V_RANGE);
        v->n = 2;
        v->items = tl_arena_alloc(L->arena, sizeof(Value *) * 2);
        v->items[0] = e->a ? lower_expr(L, env, e->a) : lv_int_c(L, 0);
        v->items[1] = e->b ? lower_expr(L, env, e->b) : NULL;
        if (!v->items[0] || !v->items[1] || v->items[0]->kind != V_INT || v->items[1]->kind != V_INT)
            return L->failed ? NULL : lower_error(L, e->loc, "a range needs integer bounds");
        return v;
    }
    case TL_N_TRANSPOSE: {
        Value *x = lower_expr(L, env, e->a);
        if (!x) return NULL;
        int id = lower_tensor(L, x, 0, e->loc);
        if (id < 0) return NULL;
        int r = L->cur->nodes[id].shape.rank;
        if (r < 2) return lower_error(L, e->loc, "`^T` needs rank 2 or more, found rank %d", r);
        int perm[TL_MAX_RANK];
        for (int i = 0; i < r; i++) perm[i] = i;
        perm[r - 2] = r - 1;
        perm[r - 1] = r - 2;
        return lv_tensor(L, tl_g_permute(L->cur, id, perm, e->loc));
    }
    case TL_N_CAST: {
        Value *x = lower_expr(L, env, e->a);
        if (!x) return NULL;
        TlDType t = e->b ? e->b->dtype : TL_DT_INVALID;
        if (!t) {
            if (e->b && e->b->kind == TL_N_TYPE_NAME && strcmp(e->b->name, "float") == 0 && lv_is_number(x)) {
                int64_t c;
                if (x->kind == V_FLOAT) return x;
                if (lv_const_int(L, x, &c)) return lv_float(L, (double)c);
            }
            return lower_error(L, e->loc, "`as` needs a dtype such as f32");
        }
        if (x->kind == V_TENSOR) return lv_tensor(L, tl_g_cast(L->cur, lower_tensor(L, x, 0, e->loc), t, e->loc));
        return lv_tensor(L, lower_tensor(L, x, t, e->loc));
    }
    case TL_N_CALL:
        return lower_call_expr(L, env, e);
    case TL_N_INDEX:
        return lower_index(L, env, e, lower_expr(L, env, e->a));
    case TL_N_FIELD:
        return lower_field(L, lower_expr(L, env, e->a), e);
    case TL_N_TUPLE:
        return make_seq(L, V_TUPLE, env, &e->list);
    case TL_N_LIST: {
        const char *base = L->member_path;
        Value *v = lv_new(L, V_LIST);
        v->n = e->list.n;
        v->items = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(e->list.n + 1));
        for (int i = 0; i < e->list.n; i++) {
            L->member_path = base ? tl_arena_printf(L->arena, "%s.%d", base, i) : NULL;
            v->items[i] = lower_expr(L, env, e->list.v[i]);
            if (!v->items[i]) break;
        }
        L->member_path = base;
        return L->failed ? NULL : v;
    }
    case TL_N_LISTCOMP:
        return lower_listcomp(L, env, e);
    case TL_N_SCAN:
        return lower_scan(L, env, e);
    case TL_N_REDUCE:
        return lower_error(L, e->loc, "index-notation reductions belong in a kernel");
    default:
        return lower_error(L, e->loc, "unexpected %s in an expression", tl_node_kind_name(e->kind));
    }
}

/* ---- modules and entry points ------------------------------------------------------------ */

static Module *module_for_import(Lower *L, Module *from, TlNode *imp) {
    if (imp->name) {
        for (int i = 0; i < L->nmods; i++)
            if (L->mods[i]->m->name && strcmp(L->mods[i]->m->name, imp->name) == 0) return L->mods[i];
        return NULL;
    }
    /* a local file: compare resolved paths */
    char want[8400], dir[4096];
    const char *p = from->m->path ? from->m->path : "";
    const char *slash = strrchr(p, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - p) : 1, slash ? p : ".");
    snprintf(want, sizeof want, "%s/%s", dir, imp->str ? imp->str : "");
    char *rw = realpath(want, NULL);
    Module *found = NULL;
    for (int i = 0; i < L->nmods && rw && !found; i++) {
        char *rp = L->mods[i]->m->path ? realpath(L->mods[i]->m->path, NULL) : NULL;
        if (rp && strcmp(rp, rw) == 0) found = L->mods[i];
        free(rp);
    }
    free(rw);
    return found;
}

static const char *import_alias(Lower *L, TlNode *imp) {
    if (imp->alias) return imp->alias;
    if (imp->name) {
        const char *dot = strrchr(imp->name, '.');
        return dot ? dot + 1 : imp->name;
    }
    const char *s = imp->str ? imp->str : "";
    const char *slash = strrchr(s, '/');
    s = slash ? slash + 1 : s;
    size_t n = strlen(s);
    if (n > 3 && strcmp(s + n - 3, ".tl") == 0) n -= 3;
    return tl_arena_strndup(L->arena, s, n);
}

static int64_t tokenizer_size(TlNode *t) {
    TlNode *e = t->a;
    if (e && e->kind == TL_N_CALL && e->a && e->a->kind == TL_N_IDENT && strcmp(e->a->name, "bytes") == 0) return 256;
    return -1;
}

static void setup_module(Lower *L, Module *M) {
    TlAst *ast = M->m->ast;
    if (!ast || !ast->root) return;
    TlList *items = &ast->root->list;
    for (int i = 0; i < items->n; i++) {
        TlNode *it = items->v[i];
        Value *v = NULL;
        switch (it->kind) {
        case TL_N_IMPORT: {
            Module *m = module_for_import(L, M, it);
            if (!m) continue;
            v = lv_new(L, V_MODULE);
            v->mod = m;
            env_set(L, M->globals, import_alias(L, it), v);
            continue;
        }
        case TL_N_FN:
        case TL_N_KERNEL:
            v = lv_new(L, V_FUNC);
            v->decl = it;
            v->mod = M;
            break;
        case TL_N_MODEL:
            v = lv_new(L, V_MODELDEF);
            v->decl = it;
            v->mod = M;
            break;
        case TL_N_TOKENIZER:
            v = lv_new(L, V_TOKENIZER);
            v->decl = it;
            v->mod = M;
            v->ival = tokenizer_size(it);
            break;
        case TL_N_DIM:
            v = it->a ? lower_expr(L, M->globals, it->a) : lv_int(L, tl_gdim_sym(L->g, it->name));
            break;
        case TL_N_CONST:
            v = lower_expr(L, M->globals, it->b);
            break;
        default:
            continue;
        }
        if (v && it->name) env_set(L, M->globals, it->name, v);
    }
}

Lower *lower_new(TlProgram *prog) {
    Lower *L = calloc(1, sizeof *L);
    L->prog = prog;
    L->arena = tl_arena_new();
    L->g = tl_graph_new();
    L->cur = L->g;
    L->seed_input = -1;
    L->nmods = prog->nmodules;
    L->mods = tl_arena_alloc(L->arena, sizeof(Module *) * (size_t)(prog->nmodules + 1));
    for (int i = 0; i < prog->nmodules; i++) {
        Module *M = tl_arena_alloc(L->arena, sizeof *M);
        M->m = prog->modules[i];
        M->index = i;
        M->globals = env_new(L, NULL);
        L->mods[i] = M;
    }
    /* imports first (so constants may use imported names), then definitions; stdlib
     * modules come after the main file in prog->modules, so set up in reverse */
    for (int i = prog->nmodules - 1; i >= 0; i--) setup_module(L, L->mods[i]);
    return L;
}

static Value *arg_value(Lower *L, const TlLowerArg *a, int index) {
    switch (a->kind) {
    case TL_LARG_INT:
        return lv_int_c(L, a->ival);
    case TL_LARG_FLOAT:
        return lv_float(L, a->fval);
    case TL_LARG_TENSOR: {
        TlGDim dims[TL_MAX_RANK];
        for (int i = 0; i < a->rank; i++) dims[i] = a->sym[i] ? tl_gdim_sym(L->g, a->sym[i]) : tl_gdim_const(L->g, a->dim[i]);
        const char *name = a->name ? tl_arena_strdup(L->arena, a->name) : tl_arena_printf(L->arena, "arg%d", index);
        int id = tl_g_input(L->g, name, a->dtype ? a->dtype : TL_F32, tl_gshape_dims(a->rank, dims), (TlLoc){0});
        return lv_tensor(L, id);
    }
    }
    return NULL;
}

static void add_results(Lower *L, TlLowered *out, Value *r, TlLoc loc) {
    if (!r) return;
    if (r->kind == V_TUPLE) {
        for (int i = 0; i < r->n; i++) add_results(L, out, r->items[i], loc);
        return;
    }
    int id = lower_tensor(L, r, 0, loc);
    if (id >= 0) {
        tl_graph_add_output(L->g, id);
        out->nresults++;
    }
}

TlLowered *tl_lower_call(TlProgram *prog, const char *callee, const TlLowerArg *ctor, int nctor, const char *method,
                         const TlLowerArg *args, int nargs) {
    Lower *L = lower_new(prog);
    TlLowered *out = calloc(1, sizeof *out);
    TlLoc noloc = {0};
    Value *f = NULL;
    if (prog->nmodules > 0) {
        char *name = tl_arena_strdup(L->arena, callee);
        char *dot = strchr(name, '.');
        if (dot) {
            *dot = 0;
            Value *m = env_get(L->mods[0]->globals, name);
            if (m && m->kind == V_MODULE) f = env_get(m->mod->globals, dot + 1);
            for (int i = 0; !f && i < L->nmods; i++) { /* a module by its own name: nn.layer_norm */
                const char *mn = L->mods[i]->m->path ? L->mods[i]->m->path : "";
                const char *base = strrchr(mn, '/') ? strrchr(mn, '/') + 1 : mn;
                size_t bl = strlen(name);
                if ((L->mods[i]->m->name && strcmp(L->mods[i]->m->name, name) == 0) ||
                    (strncmp(base, name, bl) == 0 && strcmp(base + bl, ".tl") == 0))
                    f = env_get(L->mods[i]->globals, dot + 1);
            }
        } else {
            f = env_get(L->mods[0]->globals, name);
        }
    }
    if (!f) {
        const char *where = prog->nmodules && prog->modules[0]->ast ? tl_source_path(prog->modules[0]->ast->file) : "the program";
        lower_error(L, noloc, "'%s' is not defined in %s", callee, where);
    }
    Value **av = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(nargs + nctor + 1));
    Value **kv = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(nargs + nctor + 1));
    const char **kn = tl_arena_alloc(L->arena, sizeof(char *) * (size_t)(nargs + nctor + 1));
    Value *result = NULL;
    if (f && f->kind == V_MODELDEF) {
        int na = 0, nk = 0;
        for (int i = 0; i < nctor; i++) {
            Value *v = arg_value(L, &ctor[i], i);
            if (ctor[i].name) {
                kn[nk] = ctor[i].name;
                kv[nk++] = v;
            } else av[na++] = v;
        }
        f = instantiate(L, f->decl, f->mod, av, na, kn, kv, nk, noloc);
        if (f) {
            Value *m = env_get(f->inst->env, method ? method : "forward");
            if (!m || m->kind != V_FUNC) lower_error(L, noloc, "model '%s' has no method '%s'", f->inst->decl->name, method ? method : "forward");
            f = m;
        }
    }
    if (f && !L->failed) {
        int na = 0, nk = 0;
        out->inputs = calloc((size_t)nargs + 1, sizeof(int));
        for (int i = 0; i < nargs; i++) {
            Value *v = arg_value(L, &args[i], i);
            if (v && v->kind == V_TENSOR) out->inputs[out->ninputs++] = v->id;
            if (args[i].name) {
                kn[nk] = args[i].name;
                kv[nk++] = v;
            } else av[na++] = v;
        }
        result = lower_call_value(L, f, av, kn, kv, na, nk, noloc);
    }
    if (result && !L->failed) add_results(L, out, result, noloc);
    if (L->failed || !result || tl_graph_error(L->g)) {
        if (tl_graph_error(L->g) && !L->failed) tl_error(noloc, "internal: graph builder: %s", tl_graph_error(L->g));
        tl_graph_free(L->g);
        free(out->inputs);
        free(out);
        tl_arena_free(L->arena);
        free(L);
        return NULL;
    }
    out->g = L->g;
    out->nparams = L->nparams;
    out->params = calloc((size_t)L->nparams + 1, sizeof *out->params);
    for (int i = 0; i < L->nparams; i++) {
        out->params[i] = L->params[i];
        out->params[i].name = strdup(L->params[i].name);
    }
    tl_arena_free(L->arena);
    free(L);
    return out;
}

void tl_lowered_free(TlLowered *l) {
    if (!l) return;
    for (int i = 0; i < l->nparams; i++) free((char *)l->params[i].name);
    free(l->params);
    free(l->inputs);
    tl_graph_free(l->g);
    free(l);
}

/* "x:f32[B,8,16] y:i32[B] eps=1e-5 H=4" */
int tl_lower_parse_args(const char *text, TlLowerArg *args, int max, char *err, int errlen) {
    int n = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        if (n == max) {
            snprintf(err, (size_t)errlen, "too many arguments (at most %d)", max);
            tl_lower_args_free(args, n);
            return -1;
        }
        TlLowerArg *a = &args[n];
        memset(a, 0, sizeof *a);
        const char *s = p;
        while (*p && *p != ':' && *p != '=' && *p != ' ') p++;
        if (p == s || (*p != ':' && *p != '=')) {
            snprintf(err, (size_t)errlen, "expected name:dtype[dims] or name=value at '%.20s'", s);
            tl_lower_args_free(args, n + 1);
            return -1;
        }
        a->name = strndup(s, (size_t)(p - s));
        if (*p == '=') {
            p++;
            char *end;
            long long iv = strtoll(p, &end, 10);
            if (end != p && (*end == 0 || *end == ' ' || *end == ',')) {
                a->kind = TL_LARG_INT;
                a->ival = iv;
            } else {
                double fv = strtod(p, &end);
                if (end == p || (*end && *end != ' ' && *end != ',')) {
                    snprintf(err, (size_t)errlen, "'%s': expected a number", a->name);
                    tl_lower_args_free(args, n + 1);
            return -1;
                }
                a->kind = TL_LARG_FLOAT;
                a->fval = fv;
            }
            p = end;
            n++;
            continue;
        }
        p++;
        const char *d = p;
        while (*p && *p != '[' && *p != ' ') p++;
        char dt[16];
        snprintf(dt, sizeof dt, "%.*s", (int)(p - d), d);
        a->kind = TL_LARG_TENSOR;
        a->dtype = tl_dtype_from_name(dt);
        if (!a->dtype) {
            snprintf(err, (size_t)errlen, "'%s': unknown dtype '%s'", a->name, dt);
            tl_lower_args_free(args, n + 1);
            return -1;
        }
        if (*p == '[') {
            p++;
            while (*p && *p != ']') {
                while (*p == ' ' || *p == ',') p++;
                if (*p == ']') break;
                if (a->rank == TL_MAX_RANK) {
                    snprintf(err, (size_t)errlen, "'%s': rank above %d", a->name, TL_MAX_RANK);
                    tl_lower_args_free(args, n + 1);
            return -1;
                }
                const char *q = p;
                while (*p && *p != ',' && *p != ']' && *p != ' ') p++;
                char tok[64];
                snprintf(tok, sizeof tok, "%.*s", (int)(p - q), q);
                char *end;
                long long v = strtoll(tok, &end, 10);
                if (*end == 0 && end != tok) a->dim[a->rank++] = v;
                else a->sym[a->rank++] = strdup(tok);
            }
            if (*p != ']') {
                snprintf(err, (size_t)errlen, "'%s': missing ']'", a->name);
                tl_lower_args_free(args, n + 1);
            return -1;
            }
            p++;
        }
        n++;
    }
    return n;
}

void tl_lower_args_free(TlLowerArg *args, int n) {
    for (int i = 0; i < n; i++) {
        free((char *)args[i].name);
        for (int k = 0; k < TL_MAX_RANK; k++) free((char *)args[i].sym[k]);
        memset(&args[i], 0, sizeof args[i]);
    }
}
