/* sema_expr.c — typing of expressions: literals, names, operators with NumPy broadcasting,
 * `@` contraction, indexing and slicing, fields, calls of functions, methods, models and
 * kernels (unifying the signature's dimension variables), casts, lists and ranges. */
#include <math.h>
#include <string.h>
#include "diag.h"
#include "sema_internal.h"

#define FMT(buf, t) char buf[512]; tl_type_format(buf, sizeof buf, (t))

static const TlType *set(TlNode *e, const TlType *t) {
    e->type = (struct TlType *)t;
    return t;
}

static const TlType *produced(Sema *S, const TlType *t, TlNode *e) {
    return tl_type_with_origin(S->arena, t, e->loc, NULL, 3);
}

int sema_is_compile_time(const TlType *t) {
    return t && (t->kind == TL_T_BOOL || (t->kind == TL_T_INT && t->val) || t->kind == TL_T_FLOAT);
}

/* ---- names ---- */

static const TlType *check_ident(Sema *S, TlNode *e) {
    if (!e->name) return tl_type_error();
    if (strcmp(e->name, "_") == 0) {
        tl_error(e->loc, "'_' is a placeholder and has no value");
        return tl_type_error();
    }
    const TlType *kt;
    if (S->k && sema_kernel_ident(S, e, &kt)) return kt;
    Sym *s = sema_lookup(S, e->name);
    if (!s) {
        const Builtin *b = sema_builtin_find(e->name);
        if (b) {
            TlType *t = tl_type_new(S->arena, TL_T_BUILTIN);
            t->index = sema_builtin_index(b);
            t->what = e->name;
            return t;
        }
        sema_undefined(S, e->loc, "name", e->name, S->scope);
        return tl_type_error();
    }
    s->used = 1;
    e->sema = s;
    if (s->kind == SYM_TRAIN) {
        tl_error(e->loc, "'%s' is a train block, not a value", e->name);
        return tl_type_error();
    }
    if (s->kind == SYM_INDEX && !S->k) {
        return tl_type_tensor(S->arena, TL_I32, 0, NULL);
    }
    return sema_sym_type(S, s, e->loc);
}

/* ---- operators ---- */

static const char *op_verb(TlOp op) {
    switch (op) {
    case TL_OP_ADD: return "add";
    case TL_OP_SUB: return "subtract";
    case TL_OP_MUL: return "multiply";
    case TL_OP_DIV: return "divide";
    case TL_OP_MOD: return "take the remainder of";
    case TL_OP_POW: return "raise";
    case TL_OP_AND: case TL_OP_OR: return "combine";
    default: return "compare";
    }
}

static int is_cmp(TlOp op) { return op >= TL_OP_EQ && op <= TL_OP_GE; }

const TlType *sema_broadcast(Sema *S, TlNode *e, const char *verb, const TlType *x, const TlType *y,
                             TlNode *xe, TlNode *ye) {
    const TlDim **out;
    int n, bx, by;
    if (tl_shape_broadcast(S->arena, x->dims, x->rank, y->dims, y->rank, &out, &n, &bx, &by))
        return tl_type_tensor(S->arena, x->dtype, n, out);
    FMT(a, x);
    FMT(b, y);
    char da[128], db[128];
    tl_dim_format(da, sizeof da, x->dims[bx]);
    tl_dim_format(db, sizeof db, y->dims[by]);
    int nmax = x->rank > y->rank ? x->rank : y->rank;
    int axis = nmax - (x->rank - bx) + 1;
    tl_error(e->loc, "cannot %s %s and %s: dimension %d differs (%s vs %s)", verb, a, b, axis, da, db);
    if (!(xe && ye && xe->kind == TL_N_IDENT && ye->kind == TL_N_IDENT && xe->name && ye->name &&
          strcmp(xe->name, ye->name) == 0))
        sema_type_note(S, x);
    sema_type_note(S, y);
    return tl_type_error();
}

static const TlType *int_arith(Sema *S, TlNode *e, TlOp op, const TlType *x, const TlType *y) {
    if (is_cmp(op)) {
        if (x->val && y->val && tl_dim_is_poly(x->val) && tl_dim_is_poly(y->val)) {
            int64_t a, b;
            if (tl_dim_is_const(x->val, &a) && tl_dim_is_const(y->val, &b)) {
                int r = op == TL_OP_EQ ? a == b : op == TL_OP_NE ? a != b : op == TL_OP_LT ? a < b
                      : op == TL_OP_LE ? a <= b : op == TL_OP_GT ? a > b : a >= b;
                return tl_type_bool(S->arena, 1, r);
            }
        }
        return tl_type_bool(S->arena, 0, 0);
    }
    if (!x->val || !y->val) return tl_type_int(S->arena, NULL);
    int err = 0;
    const TlDim *r;
    switch (op) {
    case TL_OP_ADD: r = tl_dim_add(S->arena, x->val, y->val); break;
    case TL_OP_SUB: r = tl_dim_sub(S->arena, x->val, y->val); break;
    case TL_OP_MUL: r = tl_dim_mul(S->arena, x->val, y->val); break;
    case TL_OP_DIV: r = tl_dim_div(S->arena, x->val, y->val, &err); break;
    case TL_OP_MOD: r = tl_dim_mod(S->arena, x->val, y->val, &err); break;
    case TL_OP_POW: {
        int64_t a, b;
        r = tl_dim_any();
        if (tl_dim_is_const(y->val, &b) && b >= 0 && b <= 64) {
            r = tl_dim_const(S->arena, 1);
            for (int64_t i = 0; i < b; i++) r = tl_dim_mul(S->arena, r, x->val);
        }
        (void)a;
        break;
    }
    default: return tl_type_error();
    }
    if (err) {
        char a[128], b[128];
        tl_dim_format(a, sizeof a, x->val);
        tl_dim_format(b, sizeof b, y->val);
        if (err == 1) tl_error(e->loc, "division by zero: %s / %s", a, b);
        else tl_error(e->loc, "%s / %s is not an integer: %s is not divisible by %s", a, b, a, b);
        return tl_type_error();
    }
    return tl_type_int(S->arena, r);
}

static double num_value(const TlType *t, int *known) {
    int64_t v;
    if (t->kind == TL_T_FLOAT) { *known = t->known; return t->fval; }
    if (t->kind == TL_T_INT && t->val && tl_dim_is_const(t->val, &v)) { *known = 1; return (double)v; }
    *known = 0;
    return 0;
}

static const TlType *float_arith(Sema *S, TlOp op, const TlType *x, const TlType *y) {
    int kx, ky;
    double a = num_value(x, &kx), b = num_value(y, &ky);
    if (is_cmp(op)) {
        if (!kx || !ky) return tl_type_bool(S->arena, 0, 0);
        int r = op == TL_OP_EQ ? a == b : op == TL_OP_NE ? a != b : op == TL_OP_LT ? a < b
              : op == TL_OP_LE ? a <= b : op == TL_OP_GT ? a > b : a >= b;
        return tl_type_bool(S->arena, 1, r);
    }
    if (!kx || !ky) return tl_type_float(S->arena, 0, 0);
    double r = 0;
    switch (op) {
    case TL_OP_ADD: r = a + b; break;
    case TL_OP_SUB: r = a - b; break;
    case TL_OP_MUL: r = a * b; break;
    case TL_OP_DIV: r = a / b; break;
    case TL_OP_MOD: r = fmod(a, b); break;
    case TL_OP_POW: r = pow(a, b); break;
    default: break;
    }
    return tl_type_float(S->arena, 1, r);
}

static const TlType *matmul(Sema *S, TlNode *e, const TlType *x, const TlType *y) {
    if (x->rank == 0 || y->rank == 0) {
        FMT(a, x);
        FMT(b, y);
        tl_error(e->loc, "cannot multiply %s @ %s: '@' needs operands of rank 1 or more; use '*' "
                         "for scalars", a, b);
        return tl_type_error();
    }
    if (x->dtype != y->dtype) {
        FMT(a, x);
        FMT(b, y);
        tl_error(e->loc, "cannot multiply %s @ %s: different dtypes", a, b);
        return tl_type_error();
    }
    const TlDim *kx = x->dims[x->rank - 1];
    const TlDim *ky = y->rank >= 2 ? y->dims[y->rank - 2] : y->dims[0];
    if (kx->kind != TL_DIM_ELLIPSIS && ky->kind != TL_DIM_ELLIPSIS && tl_dim_cmp(kx, ky) == TL_DIM_NE) {
        FMT(a, x);
        FMT(b, y);
        char da[128], db[128];
        tl_dim_format(da, sizeof da, kx);
        tl_dim_format(db, sizeof db, ky);
        tl_error(e->loc, "cannot multiply %s @ %s: inner dimensions differ (%s vs %s)", a, b, da, db);
        sema_type_note(S, x);
        sema_type_note(S, y);
        return tl_type_error();
    }
    const TlDim **dims = tl_arena_alloc(S->arena, sizeof *dims * (size_t)(x->rank + y->rank + 2));
    int n = 0;
    if (y->rank == 1) {
        for (int i = 0; i < x->rank - 1; i++) dims[n++] = x->dims[i];
    } else if (x->rank == 1) {
        for (int i = 0; i < y->rank - 2; i++) dims[n++] = y->dims[i];
        dims[n++] = y->dims[y->rank - 1];
    } else {
        /* batch dims broadcast; [.., M, K] @ [.., K, N] -> [.., M, N] */
        const TlDim **bd;
        int nb, bx, by;
        if (x->dims[x->rank - 2]->kind == TL_DIM_ELLIPSIS) {
            dims[n++] = tl_dim_ellipsis();
        } else {
            if (!tl_shape_broadcast(S->arena, x->dims, x->rank - 2, y->dims, y->rank - 2, &bd, &nb, &bx, &by)) {
                FMT(a, x);
                FMT(b, y);
                tl_error(e->loc, "cannot multiply %s @ %s: batch dimensions do not broadcast", a, b);
                return tl_type_error();
            }
            for (int i = 0; i < nb; i++) dims[n++] = bd[i];
            dims[n++] = x->dims[x->rank - 2];
        }
        dims[n++] = y->dims[y->rank - 1];
    }
    return tl_type_tensor(S->arena, x->dtype, n, dims);
}

static const TlType *binary_types(Sema *S, TlNode *e, TlOp op, const TlType *x, const TlType *y) {
    if (tl_type_is_error(x) || tl_type_is_error(y)) return tl_type_error();
    if (x->kind == TL_T_HOST || y->kind == TL_T_HOST) return tl_type_host(S->arena, "host value");
    if (op == TL_OP_AND || op == TL_OP_OR) {
        if (x->kind == TL_T_BOOL && y->kind == TL_T_BOOL) {
            if (x->known && y->known)
                return tl_type_bool(S->arena, 1, op == TL_OP_AND ? x->bval && y->bval : x->bval || y->bval);
            return tl_type_bool(S->arena, 0, 0);
        }
        if (x->kind == TL_T_TENSOR && y->kind == TL_T_TENSOR && x->dtype == TL_BOOL && y->dtype == TL_BOOL)
            return sema_broadcast(S, e, "combine", x, y, e->a, e->b);
        FMT(a, x);
        FMT(b, y);
        tl_error(e->loc, "'%s' needs bool operands, not %s and %s", tl_op_name(op), a, b);
        return tl_type_error();
    }
    if (op == TL_OP_MATMUL) {
        if (x->kind != TL_T_TENSOR || y->kind != TL_T_TENSOR) {
            FMT(a, x);
            FMT(b, y);
            tl_error(e->loc, "'@' needs tensor operands, not %s and %s", a, b);
            return tl_type_error();
        }
        return matmul(S, e, x, y);
    }
    int xs = tl_type_is_scalar_number(x), ys = tl_type_is_scalar_number(y);
    if (xs && ys) {
        if (x->kind == TL_T_INT && y->kind == TL_T_INT) return int_arith(S, e, op, x, y);
        return float_arith(S, op, x, y);
    }
    if (op == TL_OP_ADD && x->kind == TL_T_LIST && y->kind == TL_T_LIST) {
        /* list concatenation (ks = ks + [k] in an unrolled loop): the element type of the
         * non-empty side; the length is not tracked, since a loop body is checked once */
        const TlType *el = tl_type_is_error(x->elems[0]) ? y->elems[0] : x->elems[0];
        return tl_type_list(S->arena, el, NULL);
    }
    if (x->kind == TL_T_STR && y->kind == TL_T_STR) {
        if (op == TL_OP_ADD) return tl_type_str(S->arena, NULL);
        if (op == TL_OP_EQ || op == TL_OP_NE) return tl_type_bool(S->arena, 0, 0);
    }
    if (x->kind == TL_T_BOOL && y->kind == TL_T_BOOL && (op == TL_OP_EQ || op == TL_OP_NE))
        return tl_type_bool(S->arena, 0, 0);
    if (x->kind == TL_T_TENSOR && y->kind == TL_T_TENSOR) {
        if (x->dtype != y->dtype) {
            FMT(a, x);
            FMT(b, y);
            tl_error(e->loc, "cannot %s %s and %s: different dtypes (cast one with 'as')", op_verb(op), a, b);
            return tl_type_error();
        }
        const TlType *r = sema_broadcast(S, e, op_verb(op), x, y, e->a, e->b);
        if (!tl_type_is_error(r) && is_cmp(op)) ((TlType *)r)->dtype = TL_BOOL;
        return r;
    }
    if ((x->kind == TL_T_TENSOR && ys) || (xs && y->kind == TL_T_TENSOR)) {
        const TlType *t = x->kind == TL_T_TENSOR ? x : y, *s = xs ? x : y;
        TlType *r = tl_type_copy(S->arena, t);
        if (s->kind == TL_T_FLOAT && !tl_dtype_is_float(t->dtype)) r->dtype = TL_F32;
        if (is_cmp(op)) r->dtype = TL_BOOL;
        return r;
    }
    FMT(a, x);
    FMT(b, y);
    tl_error(e->loc, "cannot %s %s and %s", op_verb(op), a, b);
    return tl_type_error();
}

static const TlType *check_binary(Sema *S, TlNode *e) {
    if (e->op == TL_OP_PIPE) {
        /* a | f(b) is f(a, b); a | f is f(a) */
        TlNode *rhs = e->b;
        if (!rhs) return tl_type_error();
        if (rhs->kind == TL_N_CALL) return sema_call(S, rhs, e->a);
        TlNode call = {0};
        call.kind = TL_N_CALL;
        call.loc = rhs->loc;
        call.a = rhs;
        return sema_call(S, &call, e->a);
    }
    const TlType *x = sema_expr(S, e->a), *y = sema_expr(S, e->b);
    const TlType *r = binary_types(S, e, e->op, x, y);
    return produced(S, r, e);
}

static const TlType *check_unary(Sema *S, TlNode *e) {
    const TlType *x = sema_expr(S, e->a);
    if (tl_type_is_error(x) || x->kind == TL_T_HOST) return x;
    if (e->op == TL_OP_NOT) {
        if (x->kind == TL_T_BOOL) return x->known ? tl_type_bool(S->arena, 1, !x->bval) : x;
        if (x->kind == TL_T_TENSOR && x->dtype == TL_BOOL) return x;
        FMT(a, x);
        tl_error(e->loc, "'not' needs a bool, not %s", a);
        return tl_type_error();
    }
    if (x->kind == TL_T_INT) {
        if (e->op == TL_OP_NEG && x->val) return tl_type_int(S->arena, tl_dim_neg(S->arena, x->val));
        return x;
    }
    if (x->kind == TL_T_FLOAT) return e->op == TL_OP_NEG && x->known ? tl_type_float(S->arena, 1, -x->fval) : x;
    if (x->kind == TL_T_TENSOR && x->dtype != TL_BOOL) return produced(S, x, e);
    FMT(a, x);
    tl_error(e->loc, "cannot negate %s", a);
    return tl_type_error();
}

static const TlType *check_transpose(Sema *S, TlNode *e) {
    const TlType *x = sema_expr(S, e->a);
    if (tl_type_is_error(x) || x->kind == TL_T_HOST) return x;
    if (x->kind != TL_T_TENSOR || x->rank < 2 || x->dims[x->rank - 2]->kind == TL_DIM_ELLIPSIS) {
        FMT(a, x);
        tl_error(e->loc, "'^T' swaps the last two axes and needs a tensor of rank 2 or more, not %s", a);
        return tl_type_error();
    }
    TlType *r = tl_type_tensor(S->arena, x->dtype, x->rank, x->dims);
    r->dims[x->rank - 1] = x->dims[x->rank - 2];
    r->dims[x->rank - 2] = x->dims[x->rank - 1];
    return produced(S, r, e);
}

static const TlType *check_cast(Sema *S, TlNode *e) {
    const TlType *x = sema_expr(S, e->a);
    const TlType *to = sema_resolve_type(S, e->b, 0);
    if (tl_type_is_error(x) || tl_type_is_error(to) || x->kind == TL_T_HOST) return tl_type_error();
    if (to->kind == TL_T_TENSOR && to->rank == 0 && x->kind == TL_T_TENSOR) {
        TlType *r = tl_type_copy(S->arena, x);
        r->dtype = to->dtype;
        return produced(S, r, e);
    }
    if (to->kind == TL_T_TENSOR && to->rank == 0 && (tl_type_is_scalar_number(x) || x->kind == TL_T_BOOL))
        return tl_type_tensor(S->arena, to->dtype, 0, NULL);
    if (to->kind == TL_T_FLOAT && tl_type_is_scalar_number(x)) {
        int k;
        double v = num_value(x, &k);
        return tl_type_float(S->arena, k, v);
    }
    if (to->kind == TL_T_INT && (x->kind == TL_T_INT || x->kind == TL_T_FLOAT))
        return x->kind == TL_T_INT ? x : tl_type_int(S->arena, NULL);
    FMT(a, x);
    FMT(b, to);
    tl_error(e->loc, "cannot cast %s to %s", a, b);
    return tl_type_error();
}

/* ---- indexing ---- */

static int item_is_int(const TlType *t) {
    return t && (t->kind == TL_T_INT || (t->kind == TL_T_TENSOR && t->rank == 0 && tl_dtype_is_int(t->dtype)));
}

static const TlType *index_tensor(Sema *S, TlNode *e, const TlType *x) {
    int nitems = 0, has_ell = 0;
    for (int i = 0; i < e->list.n; i++) {
        TlNode *it = e->list.v[i];
        if (it && it->kind == TL_N_ELLIPSIS) has_ell++;
        else nitems++;
    }
    if (has_ell > 1) {
        tl_error(e->loc, "'...' may appear only once in an index");
        return tl_type_error();
    }
    int base_ell = 0;
    for (int i = 0; i < x->rank; i++) if (x->dims[i]->kind == TL_DIM_ELLIPSIS) base_ell = 1;
    if (nitems > x->rank && !base_ell) {
        FMT(a, x);
        tl_error(e->loc, "too many indices for %s: %d indices for rank %d", a, nitems, x->rank);
        sema_type_note(S, x);
        return tl_type_error();
    }
    const TlDim **dims = tl_arena_alloc(S->arena, sizeof *dims * (size_t)(x->rank + 64));
    int n = 0, axis = 0, cap = x->rank + 60;
    for (int i = 0; i < e->list.n; i++) {
        TlNode *it = e->list.v[i];
        if (!it) continue;
        if (it->kind == TL_N_ELLIPSIS) {
            int skip = x->rank - nitems;
            for (int k = 0; k < skip && axis < x->rank; k++) dims[n++] = x->dims[axis++];
            continue;
        }
        const TlDim *d = axis < x->rank ? x->dims[axis] : tl_dim_any();
        if (d->kind == TL_DIM_ELLIPSIS) {
            /* indexing into an unknown group of leading dims: keep the group */
            for (int k = i; k < e->list.n; k++) if (e->list.v[k] && e->list.v[k]->kind != TL_N_ELLIPSIS) {
                if (e->list.v[k]->kind == TL_N_SLICE) {
                    if (e->list.v[k]->a) sema_expr(S, e->list.v[k]->a);
                    if (e->list.v[k]->b) sema_expr(S, e->list.v[k]->b);
                } else sema_expr(S, e->list.v[k]);
            }
            while (axis < x->rank && n < cap) dims[n++] = x->dims[axis++];
            return tl_type_tensor(S->arena, x->dtype, n, dims);
        }
        if (it->kind == TL_N_SLICE || it->kind == TL_N_RANGE) {
            const TlDim *lo = tl_dim_const(S->arena, 0), *hi = d;
            if (it->a) {
                const TlType *t = sema_expr(S, it->a);
                if (!tl_type_is_error(t) && !item_is_int(t)) {
                    FMT(a, t);
                    tl_error(it->a->loc, "slice bounds must be integers, not %s", a);
                } else if (t->kind == TL_T_INT) lo = t->val ? t->val : tl_dim_dyn();
                else lo = tl_dim_dyn();
            }
            if (it->b) {
                const TlType *t = sema_expr(S, it->b);
                if (!tl_type_is_error(t) && !item_is_int(t)) {
                    FMT(a, t);
                    tl_error(it->b->loc, "slice bounds must be integers, not %s", a);
                } else if (t->kind == TL_T_INT) hi = t->val ? t->val : tl_dim_dyn();
                else hi = tl_dim_dyn();
            }
            int64_t lv, hv, dv;
            if (tl_dim_is_const(lo, &lv) && tl_dim_is_const(hi, &hv) && hv < lv)
                tl_error(it->loc, "empty slice %lld..%lld", (long long)lv, (long long)hv);
            else if (tl_dim_is_const(hi, &hv) && tl_dim_is_const(d, &dv) && hv > dv) {
                FMT(a, x);
                tl_error(it->loc, "slice end %lld is past the end of axis %d of %s (size %lld)",
                         (long long)hv, axis + 1, a, (long long)dv);
            }
            dims[n++] = tl_dim_sub(S->arena, hi, lo);
            axis++;
            continue;
        }
        const TlType *t = sema_expr(S, it);
        if (tl_type_is_error(t) || t->kind == TL_T_HOST) {
            dims[n++] = tl_dim_any();
            axis++;
            continue;
        }
        if (item_is_int(t)) {
            int64_t v, dv;
            if (t->kind == TL_T_INT && t->val && tl_dim_is_const(t->val, &v) && tl_dim_is_const(d, &dv) &&
                (v >= dv || v < -dv)) {
                FMT(a, x);
                tl_error(it->loc, "index %lld is out of range for axis %d of %s (size %lld)", (long long)v,
                         axis + 1, a, (long long)dv);
            }
            axis++;
            continue;
        }
        if (t->kind == TL_T_TENSOR && tl_dtype_is_int(t->dtype)) {
            for (int k = 0; k < t->rank && n < cap; k++) dims[n++] = t->dims[k];
            axis++;
            continue;
        }
        FMT(a, t);
        tl_error(it->loc, "an index must be an integer or an integer tensor, not %s", a);
        axis++;
    }
    while (axis < x->rank && n < cap) dims[n++] = x->dims[axis++];
    return tl_type_tensor(S->arena, x->dtype, n, dims);
}

static const TlType *check_index(Sema *S, TlNode *e) {
    const TlType *x = sema_expr(S, e->a);
    if (S->k && x->kind == TL_T_TENSOR) return sema_kernel_access(S, e, x);
    if (tl_type_is_error(x) || x->kind == TL_T_HOST) {
        for (int i = 0; i < e->list.n; i++) {
            TlNode *it = e->list.v[i];
            if (!it || it->kind == TL_N_ELLIPSIS) continue;
            if (it->kind == TL_N_SLICE) {
                if (it->a) sema_expr(S, it->a);
                if (it->b) sema_expr(S, it->b);
            } else sema_expr(S, it);
        }
        return x;
    }
    if (x->kind == TL_T_TENSOR) return produced(S, index_tensor(S, e, x), e);
    if ((x->kind == TL_T_LIST || x->kind == TL_T_TUPLE) && e->list.n == 1 && e->list.v[0]) {
        TlNode *it = e->list.v[0];
        if (it->kind == TL_N_SLICE) {
            if (it->a) sema_expr(S, it->a);
            if (it->b) sema_expr(S, it->b);
            return x->kind == TL_T_LIST ? tl_type_list(S->arena, x->elems[0], NULL) : tl_type_error();
        }
        const TlType *t = sema_expr(S, it);
        if (!tl_type_is_error(t) && t->kind != TL_T_INT) {
            FMT(a, t);
            tl_error(it->loc, "a list index must be an int, not %s", a);
            return tl_type_error();
        }
        if (x->kind == TL_T_LIST) return x->elems[0];
        int64_t v;
        if (t->kind == TL_T_INT && t->val && tl_dim_is_const(t->val, &v)) {
            if (v < 0) v += x->n;
            if (v >= 0 && v < x->n) return x->elems[v];
            FMT(a, x);
            tl_error(it->loc, "index %lld is out of range for %s", (long long)v, a);
            return tl_type_error();
        }
        tl_error(it->loc, "a tuple index must be a constant");
        return tl_type_error();
    }
    FMT(a, x);
    tl_error(e->loc, "cannot index %s", a);
    return tl_type_error();
}

/* ---- fields ---- */

const TlType *sema_member_type(Sema *S, const TlType *inst, const char *name, TlLoc loc, int report) {
    TlNode *model = inst->decl;
    if (!model || !name) return tl_type_error();
    if (strcmp(name, "params") == 0) return tl_type_host(S->arena, "params");
    sema_ensure_model(S, model);
    DeclInfo *info = sema_info(S, model);
    Sym *s = sema_lookup_in(info->scope, name);
    if (!s) {
        if (report) {
            const char *sug = sema_suggest(S, name, info->scope, NULL, 0);
            if (sug) tl_error(loc, "model '%s' has no member '%s'; did you mean '%s'?", model->name, name, sug);
            else tl_error(loc, "model '%s' has no member '%s'", model->name, name);
        }
        return NULL;
    }
    s->used = 1;
    if (s->kind == SYM_FN) {
        TlType *f = tl_type_new(S->arena, TL_T_FN);
        f->decl = s->decl;
        f->self = inst;
        return f;
    }
    if (s->kind == SYM_HYPER) {
        for (int i = 0; i < inst->nh; i++)
            if (inst->hnames[i] && strcmp(inst->hnames[i], name) == 0) return inst->hvals[i];
    }
    return sema_type_subst(S, s->type ? s->type : tl_type_error(), inst->env);
}

static const TlType *check_field(Sema *S, TlNode *e) {
    if (!e->name) return tl_type_error();
    const TlType *x = sema_expr(S, e->a);
    if (tl_type_is_error(x)) return x;
    switch (x->kind) {
    case TL_T_MODULE: {
        if (x->index < 0 || x->index >= S->nmods) return tl_type_error();
        Module *m = S->mods[x->index];
        Sym *s = sema_lookup_in(m->scope, e->name);
        if (!s || s->kind == SYM_IMPORT) {
            const char *sug = sema_suggest(S, e->name, m->scope, NULL, 0);
            if (sug) tl_error(e->loc, "module '%s' has no member '%s'; did you mean '%s'?", x->what, e->name, sug);
            else tl_error(e->loc, "module '%s' has no member '%s'", x->what, e->name);
            return tl_type_error();
        }
        s->used = 1;
        e->sema = s;
        return sema_sym_type(S, s, e->loc);
    }
    case TL_T_INSTANCE: {
        const TlType *t = sema_member_type(S, x, e->name, e->loc, 1);
        return t ? t : tl_type_error();
    }
    case TL_T_TOKENIZER:
        if (strcmp(e->name, "size") == 0) {
            if (x->decl && x->decl->type && x->decl->type->kind == TL_T_INT) return x->decl->type;
            return tl_type_int(S->arena, tl_dim_sym(S->arena, tl_arena_printf(S->arena, "%s.size",
                                                                               x->decl && x->decl->name ? x->decl->name : "tokenizer")));
        }
        tl_error(e->loc, "a tokenizer has no field '%s' (it has 'size')", e->name);
        return tl_type_error();
    case TL_T_HOST: return tl_type_host(S->arena, "host value");
    case TL_T_TENSOR:
        if (strcmp(e->name, "T") == 0 && x->rank >= 2) {
            tl_error(e->loc, "use 'x^T' to transpose");
            return tl_type_error();
        }
        /* fallthrough */
    default: {
        FMT(a, x);
        tl_error(e->loc, "%s has no field '%s'", a, e->name);
        return tl_type_error();
    }
    }
}

/* ---- calls ---- */

typedef struct Args {
    TlNode **pos;
    int npos;
    TlNode **kw;
    int nkw;
} Args;

static Args gather_args(Sema *S, TlNode *call, TlNode *first) {
    Args a = {0};
    int n = call->list.n + 1;
    a.pos = tl_arena_alloc(S->arena, sizeof *a.pos * (size_t)n);
    a.kw = tl_arena_alloc(S->arena, sizeof *a.kw * (size_t)n);
    if (first) a.pos[a.npos++] = first;
    for (int i = 0; i < call->list.n; i++) {
        TlNode *x = call->list.v[i];
        if (!x) continue;
        if (x->kind == TL_N_KWARG) a.kw[a.nkw++] = x;
        else a.pos[a.npos++] = x;
    }
    return a;
}

static void eval_args(Sema *S, Args *a) {
    for (int i = 0; i < a->npos; i++) sema_expr(S, a->pos[i]);
    for (int i = 0; i < a->nkw; i++) sema_expr(S, a->kw[i]->a);
}

static const TlType *arg_type(TlNode *n) {
    return n && n->type ? (const TlType *)n->type : tl_type_error();
}

/* Checks an argument against a parameter's type, unifying shapes into env. */
static int check_arg(Sema *S, TlNode *argn, const TlType *want, const TlType *got, TlDimEnv *env,
                     const char *pname, const char *fname) {
    if (tl_type_is_error(want) || tl_type_is_error(got) || got->kind == TL_T_HOST) return 1;
    int ok = 1;
    TlUnifyErr ue = {0};
    if (want->kind == TL_T_TENSOR && got->kind == TL_T_TENSOR) {
        ok = want->dtype == got->dtype &&
             tl_shape_unify(S->arena, want->dims, want->rank, got->dims, got->rank, env, &ue);
        if (ok) return 1;
        if (want->dtype != got->dtype) ue.kind = 0;
    } else if (want->kind == TL_T_TENSOR && (tl_type_is_scalar_number(got) || got->kind == TL_T_BOOL) &&
               want->rank == 0) {
        return 1;
    } else if (want->kind == TL_T_INT && got->kind == TL_T_INT) {
        if (pname && got->val) {
            const TlDim *b = tl_dim_env_get(env, pname);
            if (!b) tl_dim_env_bind(S->arena, env, pname, got->val);
        }
        return 1;
    } else if (want->kind == TL_T_INSTANCE && got->kind == TL_T_INSTANCE) {
        return want->decl == got->decl || !want->decl;
    } else {
        ok = sema_types_match(S, want, got);
        if (ok) return 1;
    }
    const TlType *exp = sema_type_subst(S, want, env);
    FMT(w, exp);
    FMT(g, got);
    if (ue.kind == 2 && ue.expected && ue.actual && ue.expected->kind != TL_DIM_ELLIPSIS) {
        char de[128], da[128];
        tl_dim_format(de, sizeof de, ue.expected);
        tl_dim_format(da, sizeof da, ue.actual);
        tl_error(argn->loc, "argument '%s' of '%s' has type %s, expected %s: dimension %d differs (%s vs %s)",
                 pname, fname, g, w, ue.act_axis + 1, da, de);
    } else {
        tl_error(argn->loc, "argument '%s' of '%s' has type %s, expected %s", pname, fname, g, w);
    }
    sema_type_note(S, got);
    if (want->kind == TL_T_TENSOR && want->origin.file) {
        FMT(p, want);
        tl_note(want->origin, "parameter '%s' is declared here as %s", pname, p);
    }
    return 0;
}

/* Matches positional and keyword arguments to named parameters. Returns the argument node
 * of each parameter (NULL: not given) or NULL after an error. */
TlNode **sema_bind_params(Sema *S, TlNode *call, const char *fname, const char *const *pnames,
                          int np, int variadic, TlNode **pos, int npos, TlNode **kw, int nkw) {
    TlNode **slot = tl_arena_alloc(S->arena, sizeof *slot * (size_t)(np + 1));
    int ok = 1;
    if (npos > np && !variadic) {
        tl_error(pos[np]->loc, "too many arguments to '%s': it takes %d, got %d", fname, np, npos);
        ok = 0;
    }
    for (int i = 0; i < npos && i < np; i++) slot[i] = pos[i];
    for (int i = 0; i < nkw; i++) {
        TlNode *k = kw[i];
        int found = -1;
        for (int j = 0; j < np; j++)
            if (pnames[j] && k->name && strcmp(pnames[j], k->name) == 0) found = j;
        if (found < 0) {
            const char *best = NULL;
            int bestd = 99;
            for (int j = 0; j < np; j++) {
                if (!pnames[j] || !k->name) continue;
                int d = sema_edit_distance(k->name, pnames[j]);
                if (d < bestd && d <= ((int)strlen(k->name) / 3 > 0 ? (int)strlen(k->name) / 3 : 1)) {
                    bestd = d;
                    best = pnames[j];
                }
            }
            if (best) tl_error(k->loc, "'%s' has no parameter named '%s'; did you mean '%s'?", fname, k->name, best);
            else tl_error(k->loc, "'%s' has no parameter named '%s'", fname, k->name ? k->name : "?");
            ok = 0;
            continue;
        }
        if (slot[found]) {
            tl_error(k->loc, "argument '%s' of '%s' is given twice", k->name, fname);
            ok = 0;
            continue;
        }
        slot[found] = k->a;
    }
    (void)call;
    return ok ? slot : NULL;
}

const TlType *sema_call_fn(Sema *S, TlNode *call, TlNode *fn, const TlType *self, TlNode **pos,
                           int npos, TlNode **kw, int nkw, const char *what) {
    if (!fn) return tl_type_error();
    sema_ensure_fn(S, fn);
    DeclInfo *info = sema_info(S, fn);
    if (info->state != 2) return tl_type_error();
    if (S->fn && S->fn->decl == fn) {
        tl_error(call->loc, "'%s' calls itself; recursion is not allowed (use scan for recurrences)", fn->name);
        return tl_type_error();
    }
    const char *fname = what ? what : fn->name ? fn->name : "?";
    int np = fn->list.n;
    const char **pn = tl_arena_alloc(S->arena, sizeof *pn * (size_t)(np + 1));
    for (int i = 0; i < np; i++) pn[i] = fn->list.v[i] ? fn->list.v[i]->name : NULL;
    TlNode **slot = sema_bind_params(S, call, fname, pn, np, 0, pos, npos, kw, nkw);
    TlDimEnv *env = tl_arena_alloc(S->arena, sizeof *env);
    if (self && self->env)
        for (int i = 0; i < self->env->n; i++) tl_dim_env_bind(S->arena, env, self->env->names[i], self->env->dims[i]);
    if (!slot) return info->type ? tl_type_error() : tl_type_void();
    int ok = 1;
    for (int i = 0; i < np; i++) {
        TlNode *p = fn->list.v[i];
        if (!p) continue;
        if (!slot[i]) {
            if (!p->b) {
                tl_error(call->loc, "missing argument '%s' in call to '%s'", p->name, fname);
                ok = 0;
            }
            continue;
        }
        if (!check_arg(S, slot[i], info->ptypes[i], arg_type(slot[i]), env, p->name, fname)) ok = 0;
    }
    if (!info->type) return tl_type_void();
    if (!ok) return tl_type_error();
    return produced(S, sema_type_subst(S, info->type, env), call);
}

static const TlType *construct(Sema *S, TlNode *call, TlNode *model, Args *a) {
    sema_ensure_model(S, model);
    DeclInfo *info = sema_info(S, model);
    if (info->state != 2) return tl_type_error();
    int np = model->list.n;
    const char **pn = tl_arena_alloc(S->arena, sizeof *pn * (size_t)(np + 1));
    for (int i = 0; i < np; i++) pn[i] = model->list.v[i] ? model->list.v[i]->name : NULL;
    TlNode **slot = sema_bind_params(S, call, model->name, pn, np, 0, a->pos, a->npos, a->kw, a->nkw);
    if (!slot) return tl_type_error();
    TlType *it = tl_type_new(S->arena, TL_T_INSTANCE);
    it->decl = model;
    it->env = tl_arena_alloc(S->arena, sizeof *it->env);
    it->nh = np;
    it->hnames = pn;
    it->hvals = tl_arena_alloc(S->arena, sizeof *it->hvals * (size_t)(np + 1));
    int ok = 1;
    for (int i = 0; i < np; i++) {
        TlNode *p = model->list.v[i];
        if (!p) { it->hvals[i] = tl_type_error(); continue; }
        const TlType *want = p->type ? (const TlType *)p->type : tl_type_error();
        const TlType *v;
        if (!slot[i]) {
            if (!p->b) {
                tl_error(call->loc, "missing hyper-parameter '%s' in '%s(...)'", p->name, model->name);
                ok = 0;
                v = tl_type_error();
            } else {
                v = p->b->type ? (const TlType *)p->b->type : tl_type_error();
            }
        } else {
            v = arg_type(slot[i]);
            int loose = !p->a && !p->b && want->kind == TL_T_INT && sema_is_compile_time(v);
            if (!loose && !sema_types_match(S, want, v) && !(want->kind == TL_T_FLOAT && v->kind == TL_T_INT)) {
                char w[64];
                snprintf(w, sizeof w, "%s", tl_type_kind_name(want->kind));
                FMT(g, v);
                tl_error(slot[i]->loc, "hyper-parameter '%s' of '%s' is %s, but the argument is %s",
                         p->name, model->name, w, g);
                ok = 0;
            }
        }
        if (want->kind == TL_T_INT)
            tl_dim_env_bind(S->arena, it->env, p->name,
                            v->kind == TL_T_INT && v->val ? v->val : tl_dim_dyn());
        it->hvals[i] = v;
    }
    return ok ? it : tl_type_error();
}

const TlType *sema_call(Sema *S, TlNode *call, TlNode *first) {
    Args a = gather_args(S, call, first);
    TlNode *callee = call->a;
    if (!callee) return set(call, tl_type_error());
    const TlType *ft = sema_expr(S, callee);
    eval_args(S, &a);
    const TlType *r;
    switch (ft->kind) {
    case TL_T_BUILTIN:
        r = sema_builtin_call(S, call, ft->index, a.pos, a.npos, a.kw, a.nkw);
        break;
    case TL_T_FN:
        r = sema_call_fn(S, call, ft->decl, ft->self, a.pos, a.npos, a.kw, a.nkw, NULL);
        break;
    case TL_T_KERNEL:
        r = sema_call_fn(S, call, ft->decl, NULL, a.pos, a.npos, a.kw, a.nkw, NULL);
        break;
    case TL_T_MODEL:
        r = construct(S, call, ft->decl, &a);
        break;
    case TL_T_INSTANCE: {
        const TlType *f = sema_member_type(S, ft, "forward", call->loc, 0);
        if (!f || f->kind != TL_T_FN) {
            tl_error(call->loc, "model '%s' has no 'forward' method, so it cannot be called",
                     ft->decl && ft->decl->name ? ft->decl->name : "?");
            r = tl_type_error();
            break;
        }
        r = sema_call_fn(S, call, f->decl, ft, a.pos, a.npos, a.kw, a.nkw,
                         tl_arena_printf(S->arena, "%s.forward", ft->decl->name));
        break;
    }
    case TL_T_ERROR: r = tl_type_error(); break;
    case TL_T_HOST: r = tl_type_host(S->arena, "host value"); break;
    default: {
        FMT(b, ft);
        tl_error(callee->loc, "%s is not callable", b);
        r = tl_type_error();
    }
    }
    return set(call, r);
}

/* ---- collections ---- */

static const TlType *check_list(Sema *S, TlNode *e) {
    const TlType *elem = NULL;
    for (int i = 0; i < e->list.n; i++) {
        if (!e->list.v[i]) continue;
        const TlType *t = sema_expr(S, e->list.v[i]);
        if (!elem || tl_type_is_error(elem)) elem = t;
    }
    return tl_type_list(S->arena, elem ? elem : tl_type_error(), tl_dim_const(S->arena, e->list.n));
}

static const TlDim *iter_len(Sema *S, const TlType *it) {
    if (!it) return NULL;
    if (it->kind == TL_T_RANGE) return tl_dim_sub(S->arena, it->hi, it->val);
    if (it->kind == TL_T_LIST) return it->val;
    return NULL;
}

static const TlType *check_listcomp(Sema *S, TlNode *e) {
    const TlType *it = sema_expr(S, e->b);
    sema_push(S, SC_LOOP);
    const TlType *elem = tl_type_error();
    if (it->kind == TL_T_RANGE) elem = tl_type_int(S->arena, NULL);
    else if (it->kind == TL_T_LIST) elem = it->elems[0];
    else if (!tl_type_is_error(it) && it->kind != TL_T_HOST) {
        FMT(b, it);
        tl_error(e->b->loc, "cannot iterate over %s", b);
    }
    for (int i = 0; i < e->list.n; i++) {
        TlNode *v = e->list.v[i];
        if (!v) continue;
        Sym *s = sema_declare(S, S->scope, v->name, SYM_LOOPVAR, v, v->loc, e->list.n == 1 ? elem : tl_type_error());
        if (s) s->warn = 1;
    }
    const TlType *t = sema_expr(S, e->a);
    sema_pop(S);
    return tl_type_list(S->arena, t, iter_len(S, it));
}

static const TlType *check_range(Sema *S, TlNode *e) {
    const TlType *lo = e->a ? sema_expr(S, e->a) : tl_type_int(S->arena, tl_dim_const(S->arena, 0));
    const TlType *hi = e->b ? sema_expr(S, e->b) : tl_type_int(S->arena, NULL);
    if (tl_type_is_error(lo) || tl_type_is_error(hi)) return tl_type_error();
    if (lo->kind == TL_T_HOST || hi->kind == TL_T_HOST) return tl_type_host(S->arena, "range");
    if (lo->kind != TL_T_INT || hi->kind != TL_T_INT) {
        FMT(a, lo);
        FMT(b, hi);
        tl_error(e->loc, "a range needs int bounds, not %s and %s", a, b);
        return tl_type_error();
    }
    TlType *r = tl_type_new(S->arena, TL_T_RANGE);
    r->val = lo->val ? lo->val : tl_dim_dyn();
    r->hi = hi->val ? hi->val : tl_dim_dyn();
    return r;
}

/* ---- dispatch ---- */

static const TlType *expr1(Sema *S, TlNode *e) {
    switch (e->kind) {
    case TL_N_INT: return tl_type_int(S->arena, tl_dim_const(S->arena, e->ival));
    case TL_N_FLOAT: return tl_type_float(S->arena, 1, e->fval);
    case TL_N_STRING: return tl_type_str(S->arena, e->str ? e->str : "");
    case TL_N_BOOL: return tl_type_bool(S->arena, 1, e->ival != 0);
    case TL_N_IDENT: return check_ident(S, e);
    case TL_N_UNARY: return check_unary(S, e);
    case TL_N_BINARY: return check_binary(S, e);
    case TL_N_TRANSPOSE: return check_transpose(S, e);
    case TL_N_CAST: return check_cast(S, e);
    case TL_N_CALL: return sema_call(S, e, NULL);
    case TL_N_INDEX: return check_index(S, e);
    case TL_N_FIELD: return check_field(S, e);
    case TL_N_TUPLE: {
        const TlType **el = tl_arena_alloc(S->arena, sizeof *el * (size_t)(e->list.n + 1));
        for (int i = 0; i < e->list.n; i++) el[i] = e->list.v[i] ? sema_expr(S, e->list.v[i]) : tl_type_error();
        return tl_type_tuple(S->arena, e->list.n, el);
    }
    case TL_N_LIST: return check_list(S, e);
    case TL_N_LISTCOMP: return check_listcomp(S, e);
    case TL_N_RANGE: return check_range(S, e);
    case TL_N_SLICE:
        if (e->a && e->b) return check_range(S, e);
        tl_error(e->loc, "a slice is only allowed inside [ ]");
        return tl_type_error();
    case TL_N_REDUCE:
        if (S->k) return sema_kernel_reduce(S, e);
        tl_error(e->loc, "'%s(...)' with index names is a reduction of kernel index notation; "
                         "in tensor code call %s(x, axis = ...)", tl_op_name(e->op), tl_op_name(e->op));
        if (e->a) sema_expr(S, e->a);
        return tl_type_error();
    case TL_N_SCAN: return sema_scan(S, e);
    case TL_N_KWARG:
        tl_error(e->loc, "a keyword argument is only allowed in a call");
        if (e->a) sema_expr(S, e->a);
        return tl_type_error();
    case TL_N_ELLIPSIS: case TL_N_WILDCARD: case TL_N_DYNAMIC:
        tl_error(e->loc, "'%s' is only allowed in a shape or an index",
                 e->kind == TL_N_ELLIPSIS ? "..." : e->kind == TL_N_WILDCARD ? "_" : "?");
        return tl_type_error();
    default:
        tl_error(e->loc, "expected an expression, found %s", tl_node_kind_name(e->kind));
        return tl_type_error();
    }
}

const TlType *sema_expr(Sema *S, TlNode *e) {
    if (!e) return tl_type_error();
    if (S->depth > 400) {
        if (S->depth == 401) tl_error(e->loc, "expression nested too deeply");
        S->depth++;
        return tl_type_error();
    }
    S->depth++;
    const TlType *t = expr1(S, e);
    S->depth--;
    if (!t) t = tl_type_error();
    return set(e, t);
}
