/* sema_builtins.c — the built-in functions of tl and their typing rules, one table row
 * per function (docs/language.md, "Built-in functions"). Arguments are matched to the
 * row's parameter names (positional, keyword, or a trailing variadic list), then the
 * rule computes the result type. */
#include <math.h>
#include <string.h>
#include "diag.h"
#include "sema_internal.h"

#define FMT(buf, t) char buf[512]; tl_type_format(buf, sizeof buf, (t))

TlNode **sema_bind_params(Sema *S, TlNode *call, const char *fname, const char *const *pnames,
                          int np, int variadic, TlNode **pos, int npos, TlNode **kw, int nkw);

typedef enum Rule {
    R_UNARY, R_BINARY, R_WHERE, R_REDUCE, R_ARGMAX, R_RESHAPE, R_PERMUTE, R_BROADCAST_TO,
    R_CONCAT, R_STACK, R_PAD, R_CREATE, R_FULL, R_LIKE, R_ARANGE, R_TRIL, R_TAKE, R_ONE_HOT,
    R_GRAD, R_ARG, R_PRINT, R_TEXT, R_TOKENIZE, R_HOST, R_ZIP, R_ENUMERATE, R_LEN, R_TOPK,
    R_INIT, R_SAMPLE, R_ATTN
} Rule;

struct Builtin {
    const char *name;
    Rule rule;
    int nreq;              /* required leading parameters */
    int variadic;          /* extra positional arguments are collected (dims, axes, ...) */
    const char *params[6]; /* parameter names, NULL-terminated */
};

static const Builtin builtins[] = {
    /* elementwise */
    {"exp", R_UNARY, 1, 0, {"x"}}, {"log", R_UNARY, 1, 0, {"x"}},
    {"sqrt", R_UNARY, 1, 0, {"x"}}, {"rsqrt", R_UNARY, 1, 0, {"x"}},
    {"tanh", R_UNARY, 1, 0, {"x"}}, {"erf", R_UNARY, 1, 0, {"x"}},
    {"sin", R_UNARY, 1, 0, {"x"}}, {"cos", R_UNARY, 1, 0, {"x"}},
    {"abs", R_UNARY, 1, 0, {"x"}},
    {"maximum", R_BINARY, 2, 0, {"a", "b"}}, {"minimum", R_BINARY, 2, 0, {"a", "b"}},
    {"where", R_WHERE, 3, 0, {"cond", "a", "b"}},
    /* fused attention */
    {"flash_attention", R_ATTN, 3, 0, {"q", "k", "v", "scale"}},
    /* reductions */
    {"sum", R_REDUCE, 1, 0, {"x", "axis", "keepdim"}}, {"max", R_REDUCE, 1, 0, {"x", "axis", "keepdim"}},
    {"min", R_REDUCE, 1, 0, {"x", "axis", "keepdim"}}, {"mean", R_REDUCE, 1, 0, {"x", "axis", "keepdim"}},
    {"prod", R_REDUCE, 1, 0, {"x", "axis", "keepdim"}},
    {"argmax", R_ARGMAX, 1, 0, {"x", "axis"}},
    /* shape */
    {"reshape", R_RESHAPE, 1, 1, {"x"}}, {"permute", R_PERMUTE, 1, 1, {"x"}},
    {"broadcast_to", R_BROADCAST_TO, 1, 1, {"x"}},
    {"concat", R_CONCAT, 1, 0, {"xs", "axis"}}, {"stack", R_STACK, 1, 0, {"xs", "axis"}},
    {"pad", R_PAD, 3, 0, {"x", "before", "after", "axis", "value"}},
    /* creation */
    {"zeros", R_CREATE, 0, 1, {"dtype"}}, {"ones", R_CREATE, 0, 1, {"dtype"}},
    {"full", R_FULL, 1, 1, {"value", "dtype"}},
    {"rand", R_CREATE, 0, 1, {"dtype"}}, {"randn", R_CREATE, 0, 1, {"dtype"}},
    {"zeros_like", R_LIKE, 1, 0, {"x"}}, {"ones_like", R_LIKE, 1, 0, {"x"}},
    {"rand_like", R_LIKE, 1, 0, {"x"}}, {"randn_like", R_LIKE, 1, 0, {"x"}},
    {"arange", R_ARANGE, 1, 0, {"n"}}, {"tril", R_TRIL, 2, 0, {"n", "m"}},
    /* gather */
    {"take", R_TAKE, 2, 0, {"x", "idx", "axis"}}, {"one_hot", R_ONE_HOT, 2, 0, {"idx", "n"}},
    {"topk", R_TOPK, 2, 0, {"x", "k"}}, {"sample", R_SAMPLE, 1, 0, {"probs", "top_k"}},
    /* training */
    {"grad", R_GRAD, 2, 0, {"loss", "params"}},
    /* host */
    {"arg", R_ARG, 2, 0, {"name", "default"}}, {"print", R_PRINT, 0, 1, {NULL}},
    {"text", R_TEXT, 1, 0, {"path"}}, {"tsv", R_TEXT, 1, 0, {"path"}},
    {"lines", R_TEXT, 1, 0, {"path"}},
    {"pairs", R_HOST, 2, 0, {"src", "tgt"}},
    {"tokenize", R_TOKENIZE, 2, 0, {"data", "tokenizer"}},
    {"batches", R_HOST, 3, 0, {"data", "batch", "seq"}},
    {"pad_batches", R_HOST, 4, 0, {"data", "batch", "seq", "pad"}},
    {"skipgrams", R_HOST, 1, 0, {"data", "window", "negatives", "batch"}},
    {"mask_tokens", R_HOST, 3, 0, {"data", "prob", "mask_id"}},
    {"zip", R_ZIP, 0, 1, {NULL}}, {"enumerate", R_ENUMERATE, 1, 0, {"xs"}},
    {"len", R_LEN, 1, 0, {"x"}},
    /* initializers (param and buffer members) */
    {"normal", R_INIT, 2, 0, {"mean", "std"}}, {"uniform", R_INIT, 2, 0, {"lo", "hi"}},
    {"xavier_uniform", R_INIT, 0, 0, {"gain"}}, {"kaiming_uniform", R_INIT, 0, 0, {"a"}},
};
#define NBUILTINS ((int)(sizeof builtins / sizeof builtins[0]))

const Builtin *sema_builtin_find(const char *name) {
    for (int i = 0; i < NBUILTINS; i++)
        if (strcmp(builtins[i].name, name) == 0) return &builtins[i];
    return NULL;
}
const char *sema_builtin_name(int index) { return index >= 0 && index < NBUILTINS ? builtins[index].name : "?"; }
int sema_builtin_index(const Builtin *b) { return (int)(b - builtins); }
int sema_builtin_count(void) { return NBUILTINS; }

static const TlType *ty(TlNode *n) { return n && n->type ? (const TlType *)n->type : tl_type_error(); }
static int bad(const TlType *t) { return tl_type_is_error(t) || t->kind == TL_T_HOST; }

/* ---- helpers ---- */

static int is_tensor(const TlType *t) { return t && t->kind == TL_T_TENSOR; }

static int const_int(const TlType *t, int64_t *v) {
    return t && t->kind == TL_T_INT && t->val && tl_dim_is_const(t->val, v);
}

/* Reads a list of dims: from variadic int args, or from one tuple/list argument. */
static int read_dims(Sema *S, const char *fname, TlNode **xs, int n, const TlDim ***out) {
    const TlDim **d = tl_arena_alloc(S->arena, sizeof *d * (size_t)(n + 1));
    int k = 0, ok = 1;
    for (int i = 0; i < n; i++) {
        const TlType *t = ty(xs[i]);
        if (bad(t)) { d[k++] = tl_dim_any(); continue; }
        if (t->kind == TL_T_INT) { d[k++] = t->val ? t->val : tl_dim_dyn(); continue; }
        if (is_tensor(t) && t->rank == 0 && tl_dtype_is_int(t->dtype)) { d[k++] = tl_dim_dyn(); continue; }
        FMT(b, t);
        tl_error(xs[i]->loc, "a dimension of '%s' must be an int, not %s", fname, b);
        d[k++] = tl_dim_any();
        ok = 0;
    }
    *out = d;
    return ok ? k : -1;
}

/* Normalizes an axis for a tensor of the given rank; counts from the right through a
 * leading `...`. Returns -1 (reported) when out of range. */
static int norm_axis(const TlType *x, int64_t axis, TlNode *at, const char *fname, int extra) {
    int rank = x->rank + extra;
    int ell = -1;
    for (int i = 0; i < x->rank; i++) if (x->dims[i]->kind == TL_DIM_ELLIPSIS) ell = i;
    if (axis < 0) {
        if (ell >= 0 && -axis > x->rank - 1 - ell + extra) goto bad;
        if (-axis > rank) goto bad;
        return (int)(rank + axis);
    }
    if (axis >= rank || (ell >= 0 && axis >= ell)) goto bad;
    return (int)axis;
bad:;
    FMT(b, x);
    tl_error(at->loc, "axis %lld is out of range for %s in '%s'", (long long)axis, b, fname);
    return -1;
}

static const TlType *ew2(Sema *S, TlNode *call, const char *fname, const TlType *x, const TlType *y) {
    if (tl_type_is_error(x) || tl_type_is_error(y)) return tl_type_error();
    if (x->kind == TL_T_HOST || y->kind == TL_T_HOST) return tl_type_host(S->arena, "host value");
    int xs = tl_type_is_scalar_number(x), ys = tl_type_is_scalar_number(y);
    if (xs && ys) {
        if (x->kind == TL_T_INT && y->kind == TL_T_INT) return tl_type_int(S->arena, NULL);
        return tl_type_float(S->arena, 0, 0);
    }
    if (is_tensor(x) && is_tensor(y)) {
        if (x->dtype != y->dtype) {
            FMT(a, x);
            FMT(b, y);
            tl_error(call->loc, "'%s' of %s and %s: different dtypes (cast one with 'as')", fname, a, b);
            return tl_type_error();
        }
        char verb[64];
        snprintf(verb, sizeof verb, "apply '%s' to", fname);
        return sema_broadcast(S, call, verb, x, y, NULL, NULL);
    }
    if (is_tensor(x) && ys) return x;
    if (xs && is_tensor(y)) return y;
    FMT(a, x);
    FMT(b, y);
    tl_error(call->loc, "'%s' needs numbers or tensors, not %s and %s", fname, a, b);
    return tl_type_error();
}

static const TlType *reduce(Sema *S, const char *fname, TlNode **slot, TlDType out_dt) {
    const TlType *x = ty(slot[0]);
    if (bad(x)) return x;
    if (tl_type_is_scalar_number(x)) return x;
    if (!is_tensor(x)) {
        FMT(b, x);
        tl_error(slot[0]->loc, "'%s' needs a tensor, not %s", fname, b);
        return tl_type_error();
    }
    int keep = 0;
    if (slot[2]) {
        const TlType *k = ty(slot[2]);
        if (!bad(k) && (k->kind != TL_T_BOOL || !k->known))
            tl_error(slot[2]->loc, "'keepdim' of '%s' must be true or false", fname);
        else if (k->kind == TL_T_BOOL) keep = k->bval;
    }
    char *axes = tl_arena_alloc(S->arena, (size_t)x->rank + 1);
    if (!slot[1]) {
        memset(axes, 1, (size_t)x->rank);
    } else {
        const TlType *a = ty(slot[1]);
        if (bad(a)) return tl_type_error();
        int n = a->kind == TL_T_TUPLE ? a->n : 1;
        for (int i = 0; i < n; i++) {
            const TlType *ai = a->kind == TL_T_TUPLE ? a->elems[i] : a;
            int64_t v;
            if (!const_int(ai, &v)) {
                FMT(b, ai);
                tl_error(slot[1]->loc, "'axis' of '%s' must be a constant int, not %s", fname, b);
                return tl_type_error();
            }
            int ax = norm_axis(x, v, slot[1], fname, 0);
            if (ax < 0) return tl_type_error();
            axes[ax] = 1;
        }
    }
    const TlDim **dims = tl_arena_alloc(S->arena, sizeof *dims * (size_t)(x->rank + 1));
    int n = 0;
    for (int i = 0; i < x->rank; i++) {
        if (!axes[i]) dims[n++] = x->dims[i];
        else if (keep) dims[n++] = x->dims[i]->kind == TL_DIM_ELLIPSIS ? x->dims[i] : tl_dim_const(S->arena, 1);
    }
    return tl_type_tensor(S->arena, out_dt ? out_dt : x->dtype, n, dims);
}

static const TlDim *numel(Sema *S, const TlDim *const *d, int n) {
    const TlDim *p = tl_dim_const(S->arena, 1);
    for (int i = 0; i < n; i++) {
        if (d[i]->kind != TL_DIM_POLY) return NULL;
        p = tl_dim_mul(S->arena, p, d[i]);
    }
    return p;
}

static const TlType *need_tensor(TlNode *n, const char *fname, const char *pname) {
    const TlType *t = ty(n);
    if (bad(t) || is_tensor(t)) return t;
    FMT(b, t);
    tl_error(n->loc, "argument '%s' of '%s' must be a tensor, not %s", pname, fname, b);
    return tl_type_error();
}

static const TlType *list_elems(Sema *S, TlNode *n, const char *fname, int *count, const TlType ***elems) {
    const TlType *t = ty(n);
    if (bad(t)) return NULL;
    if (n->kind == TL_N_LIST || n->kind == TL_N_TUPLE) {
        *count = n->list.n;
        const TlType **el = tl_arena_alloc(S->arena, sizeof *el * (size_t)(n->list.n + 1));
        for (int i = 0; i < n->list.n; i++) el[i] = ty(n->list.v[i]);
        *elems = el;
        return t;
    }
    if (t->kind == TL_T_TUPLE) {
        *count = t->n;
        *elems = t->elems;
        return t;
    }
    if (t->kind == TL_T_LIST) {
        /* a list value: its element type stands for every element (the caller takes the
         * length from t->val); an unknown one (after an error) stays quiet */
        if (bad(t->elems[0])) return NULL;
        *count = 1;
        *elems = t->elems;
        return t;
    }
    FMT(b, t);
    tl_error(n->loc, "'%s' needs a list of tensors, like [a, b], not %s", fname, b);
    return NULL;
}

static const TlType *concat_stack(Sema *S, TlNode *call, const char *fname, TlNode **slot, int stack) {
    int n = 0;
    const TlType **el = NULL;
    const TlType *lt = list_elems(S, slot[0], fname, &n, &el);
    if (!lt || n == 0) return tl_type_error();
    /* a list value (not a literal) of unknown length gives an unknown size on the axis */
    const TlDim *listlen = slot[0]->kind != TL_N_LIST && lt->kind == TL_T_LIST ? (lt->val ? lt->val : tl_dim_dyn()) : NULL;
    const TlType *first = NULL;
    for (int i = 0; i < n; i++) {
        if (bad(el[i])) return el[i];
        if (!is_tensor(el[i])) {
            FMT(b, el[i]);
            tl_error(slot[0]->loc, "'%s' needs tensors, not %s", fname, b);
            return tl_type_error();
        }
        if (!first) first = el[i];
    }
    int64_t axis = 0;
    if (slot[1] && !const_int(ty(slot[1]), &axis)) {
        if (!bad(ty(slot[1]))) tl_error(slot[1]->loc, "'axis' of '%s' must be a constant int", fname);
        return tl_type_error();
    }
    int ax = norm_axis(first, axis, slot[1] ? slot[1] : call, fname, stack);
    if (ax < 0) return tl_type_error();
    const TlDim **dims = tl_arena_alloc(S->arena, sizeof *dims * (size_t)(first->rank + 2));
    const TlDim *total = tl_dim_const(S->arena, 0);
    for (int i = 0; i < n; i++) {
        const TlType *t = el[i];
        if (t->dtype != first->dtype || t->rank != first->rank) {
            FMT(a, first);
            FMT(b, t);
            tl_error(call->loc, "cannot %s %s and %s: %s differ", fname, a, b,
                     t->dtype != first->dtype ? "dtypes" : "ranks");
            return tl_type_error();
        }
        for (int k = 0; k < t->rank; k++) {
            if (!stack && k == ax) continue;
            if (tl_dim_cmp(t->dims[k], first->dims[k]) == TL_DIM_NE) {
                FMT(a, first);
                FMT(b, t);
                char da[128], db[128];
                tl_dim_format(da, sizeof da, first->dims[k]);
                tl_dim_format(db, sizeof db, t->dims[k]);
                tl_error(call->loc, "cannot %s %s and %s: dimension %d differs (%s vs %s)", fname, a, b,
                         k + 1, da, db);
                return tl_type_error();
            }
        }
        if (!stack) total = tl_dim_add(S->arena, total, t->dims[ax]);
    }
    int m = 0;
    for (int k = 0; k <= first->rank; k++) {
        if (k == ax) dims[m++] = stack ? (listlen ? listlen : tl_dim_const(S->arena, n)) : listlen ? tl_dim_dyn() : total;
        if (k < first->rank && !(k == ax && !stack)) dims[m++] = first->dims[k];
    }
    return tl_type_tensor(S->arena, first->dtype, m, dims);
}

/* Math on compile-time numbers is evaluated at compile time: sqrt(64) is 8.0. */
static const TlType *fold_math(Sema *S, const char *fn, const TlType *x) {
    double v;
    int64_t iv;
    if (x->kind == TL_T_FLOAT && x->known) v = x->fval;
    else if (x->kind == TL_T_INT && x->val && tl_dim_is_const(x->val, &iv)) v = (double)iv;
    else return tl_type_float(S->arena, 0, 0);
    double r;
    if (!strcmp(fn, "exp")) r = exp(v);
    else if (!strcmp(fn, "log")) r = log(v);
    else if (!strcmp(fn, "sqrt")) r = sqrt(v);
    else if (!strcmp(fn, "rsqrt")) r = 1.0 / sqrt(v);
    else if (!strcmp(fn, "tanh")) r = tanh(v);
    else if (!strcmp(fn, "erf")) r = erf(v);
    else if (!strcmp(fn, "sin")) r = sin(v);
    else if (!strcmp(fn, "cos")) r = cos(v);
    else r = fabs(v);
    return tl_type_float(S->arena, 1, r);
}

/* ---- the rules ---- */

static const TlType *apply(Sema *S, TlNode *call, const Builtin *b, TlNode **slot, TlNode **var, int nvar) {
    const char *fn = b->name;
    switch (b->rule) {
    case R_UNARY: {
        const TlType *x = ty(slot[0]);
        if (bad(x)) return x;
        if (tl_type_is_scalar_number(x)) {
            if (b->name[0] == 'a' && x->kind == TL_T_INT) return tl_type_int(S->arena, NULL);
            return fold_math(S, fn, x);
        }
        if (is_tensor(x)) {
            if (!tl_dtype_is_float(x->dtype) && strcmp(fn, "abs") != 0) {
                FMT(t, x);
                tl_error(call->loc, "'%s' needs a floating-point tensor, not %s (cast with 'as f32')", fn, t);
                return tl_type_error();
            }
            return x;
        }
        FMT(t, x);
        tl_error(slot[0]->loc, "'%s' needs a number or a tensor, not %s", fn, t);
        return tl_type_error();
    }
    case R_BINARY: return ew2(S, call, fn, ty(slot[0]), ty(slot[1]));
    case R_WHERE: {
        const TlType *c = ty(slot[0]), *x = ty(slot[1]), *y = ty(slot[2]);
        if (bad(c) || bad(x) || bad(y)) return bad(x) ? x : bad(y) ? y : tl_type_error();
        if (!(c->kind == TL_T_BOOL || (is_tensor(c) && c->dtype == TL_BOOL))) {
            FMT(t, c);
            tl_error(slot[0]->loc, "the condition of 'where' must be a bool tensor, not %s", t);
            return tl_type_error();
        }
        const TlType *r = ew2(S, call, fn, x, y);
        if (bad(r) || !is_tensor(c)) return r;
        if (!is_tensor(r)) return tl_type_tensor(S->arena, x->kind == TL_T_INT && y->kind == TL_T_INT ? TL_I32 : TL_F32, c->rank, c->dims);
        const TlType *cb = tl_type_copy(S->arena, c);
        ((TlType *)cb)->dtype = r->dtype;
        const TlType *out = sema_broadcast(S, call, "apply 'where' to", cb, r, NULL, NULL);
        return out;
    }
    case R_REDUCE: return reduce(S, fn, slot, 0);
    case R_ARGMAX: {
        /* argmax(x, axis = -1): i32, the axis removed */
        TlNode minus1 = {0}, *args[3] = {slot[0], slot[1], NULL};
        if (!slot[1]) {
            minus1.kind = TL_N_INT;
            minus1.loc = call->loc;
            minus1.type = (struct TlType *)tl_type_int(S->arena, tl_dim_const(S->arena, -1));
            args[1] = &minus1;
        }
        return reduce(S, fn, args, TL_I32);
    }
    case R_SAMPLE: {
        const TlType *p = need_tensor(slot[0], fn, "probs");
        if (bad(p)) return p;
        if (p->rank == 0) {
            tl_error(slot[0]->loc, "'sample' needs probabilities over a last axis, not a scalar");
            return tl_type_error();
        }
        return tl_type_tensor(S->arena, TL_I32, p->rank - 1, p->dims);
    }
    case R_RESHAPE: case R_BROADCAST_TO: {
        const TlType *x = need_tensor(slot[0], fn, "x");
        const TlDim **dims;
        int n = read_dims(S, fn, var, nvar, &dims);
        if (bad(x) || n < 0) return tl_type_error();
        int xell = 0;
        for (int i = 0; i < x->rank; i++) if (x->dims[i]->kind == TL_DIM_ELLIPSIS) xell = 1;
        if (b->rule == R_RESHAPE && !xell) {
            const TlDim *a = numel(S, x->dims, x->rank), *c = numel(S, dims, n);
            if (a && c && tl_dim_cmp(a, c) == TL_DIM_NE) {
                FMT(t, x);
                char s[512], da[128], dc[128];
                tl_shape_format(s, sizeof s, dims, n);
                tl_dim_format(da, sizeof da, a);
                tl_dim_format(dc, sizeof dc, c);
                tl_error(call->loc, "cannot reshape %s (%s elements) to %s (%s elements)", t, da, s, dc);
                sema_type_note(S, x);
                return tl_type_error();
            }
        }
        if (b->rule == R_BROADCAST_TO && !xell) {
            const TlDim **o;
            int no, bx, by;
            if (x->rank > n || !tl_shape_broadcast(S->arena, x->dims, x->rank, dims, n, &o, &no, &bx, &by) || no != n) {
                FMT(t, x);
                char s[512];
                tl_shape_format(s, sizeof s, dims, n);
                tl_error(call->loc, "cannot broadcast %s to %s", t, s);
                return tl_type_error();
            }
        }
        return tl_type_tensor(S->arena, x->dtype, n, dims);
    }
    case R_PERMUTE: {
        const TlType *x = need_tensor(slot[0], fn, "x");
        if (bad(x)) return x;
        if (nvar != x->rank) {
            FMT(t, x);
            tl_error(call->loc, "'permute' of %s needs %d axes, got %d", t, x->rank, nvar);
            return tl_type_error();
        }
        const TlDim **dims = tl_arena_alloc(S->arena, sizeof *dims * (size_t)(nvar + 1));
        char *seen = tl_arena_alloc(S->arena, (size_t)nvar + 1);
        for (int i = 0; i < nvar; i++) {
            int64_t v;
            if (!const_int(ty(var[i]), &v)) {
                if (!bad(ty(var[i]))) tl_error(var[i]->loc, "an axis of 'permute' must be a constant int");
                return tl_type_error();
            }
            if (v < 0) v += nvar;
            if (v < 0 || v >= nvar || seen[v]) {
                tl_error(var[i]->loc, "the axes of 'permute' must be a permutation of 0..%d", nvar);
                return tl_type_error();
            }
            seen[v] = 1;
            dims[i] = x->dims[v];
        }
        return tl_type_tensor(S->arena, x->dtype, nvar, dims);
    }
    case R_CONCAT: return concat_stack(S, call, fn, slot, 0);
    case R_STACK: return concat_stack(S, call, fn, slot, 1);
    case R_PAD: {
        const TlType *x = need_tensor(slot[0], fn, "x"), *lo = ty(slot[1]), *hi = ty(slot[2]);
        if (bad(x) || bad(lo) || bad(hi)) return tl_type_error();
        if (lo->kind != TL_T_INT || hi->kind != TL_T_INT) {
            tl_error(call->loc, "the padding of 'pad' must be ints");
            return tl_type_error();
        }
        int64_t axis = -1;
        if (slot[3] && !const_int(ty(slot[3]), &axis)) {
            tl_error(slot[3]->loc, "'axis' of 'pad' must be a constant int");
            return tl_type_error();
        }
        int ax = norm_axis(x, axis, slot[3] ? slot[3] : call, fn, 0);
        if (ax < 0) return tl_type_error();
        TlType *r = tl_type_tensor(S->arena, x->dtype, x->rank, x->dims);
        r->dims[ax] = tl_dim_add(S->arena, x->dims[ax],
                                 tl_dim_add(S->arena, lo->val ? lo->val : tl_dim_dyn(), hi->val ? hi->val : tl_dim_dyn()));
        return r;
    }
    case R_CREATE: case R_FULL: {
        const TlDim **dims;
        int n = read_dims(S, fn, var, nvar, &dims);
        if (n < 0) return tl_type_error();
        TlDType dt = TL_F32;
        if (b->rule == R_FULL) {
            const TlType *v = ty(slot[0]);
            if (!bad(v) && !tl_type_is_scalar_number(v) && v->kind != TL_T_BOOL) {
                FMT(t, v);
                tl_error(slot[0]->loc, "the value of 'full' must be a number, not %s", t);
            }
            if (v->kind == TL_T_BOOL) dt = TL_BOOL;
        }
        TlNode *dn = slot[b->rule == R_FULL ? 1 : 0];
        if (dn) {
            if (dn->kind == TL_N_IDENT && dn->name && tl_dtype_from_name(dn->name)) {
                dt = tl_dtype_from_name(dn->name);
            } else {
                tl_error(dn->loc, "'dtype' of '%s' must be a dtype name such as f32 or i32", fn);
            }
        }
        return tl_type_tensor(S->arena, dt, n, dims);
    }
    case R_ATTN: { /* q, k, v: one float type [.., T, K]; the lowering checks the dims */
        const TlType *q = need_tensor(slot[0], fn, "q"), *k = need_tensor(slot[1], fn, "k"),
                     *v = need_tensor(slot[2], fn, "v");
        if (bad(q) || bad(k) || bad(v)) return tl_type_error();
        if (!tl_dtype_is_float(q->dtype) || q->rank < 2 || k->rank != q->rank || v->rank != q->rank ||
            k->dtype != q->dtype || v->dtype != q->dtype) {
            FMT(t, q);
            tl_error(call->loc, "'flash_attention' needs q, k and v of one float type [.., T, K], not %s", t);
            return tl_type_error();
        }
        if (slot[3]) {
            const TlType *sc = ty(slot[3]);
            if (bad(sc)) return sc;
            if (!tl_type_is_scalar_number(sc)) {
                FMT(t, sc);
                tl_error(slot[3]->loc, "the scale of 'flash_attention' must be a number, not %s", t);
                return tl_type_error();
            }
        }
        return tl_type_copy(S->arena, q);
    }
    case R_LIKE: {
        const TlType *x = need_tensor(slot[0], fn, "x");
        return bad(x) ? x : tl_type_copy(S->arena, x);
    }
    case R_ARANGE: {
        const TlType *n = ty(slot[0]);
        if (bad(n)) return tl_type_error();
        if (n->kind != TL_T_INT) {
            FMT(t, n);
            tl_error(slot[0]->loc, "'arange' needs an int, not %s", t);
            return tl_type_error();
        }
        const TlDim *d = n->val ? n->val : tl_dim_dyn();
        return tl_type_tensor(S->arena, TL_I32, 1, &d);
    }
    case R_TRIL: {
        const TlDim **dims;
        TlNode *xs[2] = {slot[0], slot[1]};
        if (read_dims(S, fn, xs, 2, &dims) < 0) return tl_type_error();
        return tl_type_tensor(S->arena, TL_BOOL, 2, dims);
    }
    case R_TAKE: {
        const TlType *x = need_tensor(slot[0], fn, "x"), *idx = ty(slot[1]);
        if (bad(x) || bad(idx)) return tl_type_error();
        int64_t axis = -1;
        if (slot[2] && !const_int(ty(slot[2]), &axis)) {
            tl_error(slot[2]->loc, "'axis' of 'take' must be a constant int");
            return tl_type_error();
        }
        int ax = norm_axis(x, axis, slot[2] ? slot[2] : call, fn, 0);
        if (ax < 0) return tl_type_error();
        if (idx->kind == TL_T_INT) {
            TlType *r = tl_type_tensor(S->arena, x->dtype, x->rank - 1, NULL);
            for (int i = 0, k = 0; i < x->rank; i++) if (i != ax) r->dims[k++] = x->dims[i];
            return r;
        }
        if (!is_tensor(idx) || !tl_dtype_is_int(idx->dtype)) {
            FMT(t, idx);
            tl_error(slot[1]->loc, "the indices of 'take' must be an integer tensor, not %s", t);
            return tl_type_error();
        }
        /* one element along the axis per position: idx has x's shape without the axis */
        TlType *want = tl_type_tensor(S->arena, idx->dtype, x->rank - 1, NULL);
        for (int i = 0, k = 0; i < x->rank; i++) if (i != ax) want->dims[k++] = x->dims[i];
        if (!sema_types_match(S, want, idx)) {
            FMT(a, x);
            FMT(c, idx);
            FMT(w, want);
            tl_error(slot[1]->loc, "the indices of 'take' must have the shape of x without axis %d: "
                                   "x is %s, so the indices should be %s, not %s", ax, a, w, c);
            return tl_type_error();
        }
        TlType *r = tl_type_copy(S->arena, idx);
        r->dtype = x->dtype;
        return r;
    }
    case R_ONE_HOT: {
        const TlType *idx = ty(slot[0]), *n = ty(slot[1]);
        if (bad(idx) || bad(n)) return tl_type_error();
        if (!is_tensor(idx) || !tl_dtype_is_int(idx->dtype)) {
            FMT(t, idx);
            tl_error(slot[0]->loc, "'one_hot' needs an integer tensor, not %s", t);
            return tl_type_error();
        }
        if (n->kind != TL_T_INT) {
            tl_error(slot[1]->loc, "the size of 'one_hot' must be an int");
            return tl_type_error();
        }
        TlType *r = tl_type_tensor(S->arena, TL_F32, idx->rank + 1, NULL);
        for (int i = 0; i < idx->rank; i++) r->dims[i] = idx->dims[i];
        r->dims[idx->rank] = n->val ? n->val : tl_dim_dyn();
        return r;
    }
    case R_TOPK: {
        const TlType *x = need_tensor(slot[0], fn, "x"), *k = ty(slot[1]);
        if (bad(x) || bad(k) || x->rank == 0) return tl_type_error();
        TlType *v = tl_type_tensor(S->arena, x->dtype, x->rank, x->dims);
        v->dims[x->rank - 1] = k->kind == TL_T_INT && k->val ? k->val : tl_dim_dyn();
        TlType *i = tl_type_copy(S->arena, v);
        i->dtype = TL_I32;
        const TlType *el[2] = {v, i};
        return tl_type_tuple(S->arena, 2, el);
    }
    case R_GRAD: {
        const TlType *l = ty(slot[0]), *p = ty(slot[1]);
        if (bad(l)) return p && is_tensor(p) ? p : tl_type_host(S->arena, "gradients");
        if (!is_tensor(l) || l->rank != 0 || !tl_dtype_is_float(l->dtype)) {
            FMT(t, l);
            tl_error(slot[0]->loc, "grad needs a scalar floating-point loss (f32[]), but the loss is %s", t);
            sema_type_note(S, l);
            tl_note(slot[0]->loc, "reduce it first, e.g. with mean(...) or sum(...)");
            return tl_type_error();
        }
        if (is_tensor(p) || (p && p->kind == TL_T_TUPLE)) return p;
        return tl_type_host(S->arena, "gradients");
    }
    case R_ARG: {
        const TlType *n = ty(slot[0]), *d = ty(slot[1]);
        if (!bad(n) && n->kind != TL_T_STR) tl_error(slot[0]->loc, "the name of 'arg' must be a string");
        if (bad(d)) return d;
        switch (d->kind) {
        case TL_T_INT: return tl_type_int(S->arena, NULL);
        case TL_T_FLOAT: return tl_type_float(S->arena, 0, 0);
        case TL_T_BOOL: return tl_type_bool(S->arena, 0, 0);
        case TL_T_STR: return tl_type_str(S->arena, NULL);
        default: {
            FMT(t, d);
            tl_error(slot[1]->loc, "the default of 'arg' must be an int, float, bool or str, not %s", t);
            return tl_type_error();
        }
        }
    }
    case R_PRINT: return tl_type_void();
    case R_TEXT: {
        const TlType *p = ty(slot[0]);
        if (!bad(p) && p->kind != TL_T_STR) tl_error(slot[0]->loc, "the path of '%s' must be a string", fn);
        return tl_type_host(S->arena, "text");
    }
    case R_TOKENIZE: {
        const TlType *t = ty(slot[1]);
        if (!bad(t) && t->kind != TL_T_TOKENIZER) {
            FMT(s, t);
            tl_error(slot[1]->loc, "'tokenize' needs a tokenizer, not %s", s);
        }
        return tl_type_host(S->arena, "token stream");
    }
    case R_HOST: return tl_type_host(S->arena, "data pipeline");
    case R_ZIP: {
        const TlType **el = tl_arena_alloc(S->arena, sizeof *el * (size_t)(nvar + 1));
        int all_lists = nvar > 0;
        for (int i = 0; i < nvar; i++) {
            const TlType *t = ty(var[i]);
            if (t->kind == TL_T_LIST) el[i] = t->elems[0];
            else all_lists = 0;
        }
        if (!all_lists) return tl_type_host(S->arena, "zip");
        return tl_type_list(S->arena, tl_type_tuple(S->arena, nvar, el), NULL);
    }
    case R_ENUMERATE: {
        const TlType *t = ty(slot[0]);
        if (t->kind != TL_T_LIST) return tl_type_host(S->arena, "enumerate");
        const TlType *el[2] = {tl_type_int(S->arena, NULL), t->elems[0]};
        return tl_type_list(S->arena, tl_type_tuple(S->arena, 2, el), t->val);
    }
    case R_LEN: {
        const TlType *t = ty(slot[0]);
        if (t->kind == TL_T_LIST && t->val) return tl_type_int(S->arena, t->val);
        if (t->kind == TL_T_TUPLE) return tl_type_int(S->arena, tl_dim_const(S->arena, t->n));
        if (is_tensor(t) && t->rank >= 1 && t->dims[0]->kind == TL_DIM_POLY) return tl_type_int(S->arena, t->dims[0]);
        return tl_type_int(S->arena, NULL);
    }
    case R_INIT:
        tl_error(call->loc, "'%s' is an initializer: it can only initialize a param or buffer member", fn);
        return tl_type_error();
    }
    return tl_type_error();
}

const TlType *sema_builtin_call(Sema *S, TlNode *call, int index, TlNode **pos, int npos, TlNode **kw, int nkw) {
    if (index < 0 || index >= NBUILTINS) return tl_type_error();
    const Builtin *b = &builtins[index];
    /* log(x) is the elementwise logarithm; log("text", ...) writes to the training log */
    if (b->rule == R_UNARY && strcmp(b->name, "log") == 0 &&
        (npos != 1 || nkw > 0 || (npos == 1 && ty(pos[0])->kind == TL_T_STR)))
        return tl_type_void();
    if (b->rule == R_PRINT) return tl_type_void();
    int np = 0;
    while (np < 6 && b->params[np]) np++;
    /* variadic rows: the fixed leading parameters are positional, the rest collect */
    int nfixed = b->variadic ? b->nreq : np;
    TlNode **var = pos + (npos > nfixed ? nfixed : npos);
    int nvar = b->variadic && npos > nfixed ? npos - nfixed : 0;
    TlNode **slot = sema_bind_params(S, call, b->name, b->params, np, b->variadic,
                                     pos, npos - nvar, kw, nkw);
    if (!slot) return tl_type_error();
    int ok = 1;
    for (int i = 0; i < b->nreq; i++)
        if (!slot[i]) {
            tl_error(call->loc, "missing argument '%s' in call to '%s'", b->params[i], b->name);
            ok = 0;
        }
    if (!ok) return tl_type_error();
    const TlType *r = apply(S, call, b, slot, var, nvar);
    return r ? tl_type_with_origin(S->arena, r, call->loc, NULL, 3) : tl_type_error();
}

/* ---- member initializers ---- */

int sema_check_initializer(Sema *S, TlNode *init, const TlType *want) {
    if (init->kind == TL_N_CALL && init->a && init->a->kind == TL_N_IDENT && init->a->name &&
        !sema_lookup(S, init->a->name)) {
        const char *nm = init->a->name;
        const Builtin *b = sema_builtin_find(nm);
        int is_init = b && (b->rule == R_INIT || strcmp(nm, "zeros") == 0 || strcmp(nm, "ones") == 0);
        if (is_init) {
            int npos = 0, nkw = 0;
            TlNode **pos = tl_arena_alloc(S->arena, sizeof *pos * (size_t)(init->list.n + 1));
            TlNode **kw = tl_arena_alloc(S->arena, sizeof *kw * (size_t)(init->list.n + 1));
            for (int i = 0; i < init->list.n; i++) {
                TlNode *x = init->list.v[i];
                if (!x) continue;
                if (x->kind == TL_N_KWARG) { kw[nkw++] = x; sema_expr(S, x->a); }
                else { pos[npos++] = x; sema_expr(S, x); }
            }
            if (b->rule == R_INIT) {
                int np = 0;
                while (np < 6 && b->params[np]) np++;
                TlNode **slot = sema_bind_params(S, init, nm, b->params, np, 0, pos, npos, kw, nkw);
                for (int i = 0; slot && i < b->nreq; i++)
                    if (!slot[i]) tl_error(init->loc, "missing argument '%s' in call to '%s'", b->params[i], nm);
                for (int i = 0; slot && i < np; i++) {
                    const TlType *t = ty(slot[i]);
                    if (slot[i] && !bad(t) && !tl_type_is_scalar_number(t)) {
                        FMT(s, t);
                        tl_error(slot[i]->loc, "argument '%s' of '%s' must be a number, not %s", b->params[i], nm, s);
                    }
                }
            } else if (npos || nkw) {
                /* zeros(d...) with explicit dims must give the declared shape */
                const TlType *t = sema_builtin_call(S, init, sema_builtin_index(b), pos, npos, kw, nkw);
                if (!sema_types_match(S, want, t)) {
                    FMT(w, want);
                    FMT(g, t);
                    tl_error(init->loc, "initializer has type %s, but the member is %s", g, w);
                }
            }
            init->type = (struct TlType *)want;
            return 1;
        }
    }
    const TlType *t = sema_expr(S, init);
    if (!sema_types_match(S, want, t)) {
        FMT(w, want);
        FMT(g, t);
        tl_error(init->loc, "initializer has type %s, but the member is %s", g, w);
        sema_type_note(S, t);
    }
    return 0;
}
