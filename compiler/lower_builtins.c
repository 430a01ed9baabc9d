/* lower_builtins.c — the built-in functions of tensor code, each as Graph IR primitives.
 * Applied to compile-time numbers, the math functions are evaluated here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "lower_internal.h"

static const char *const builtin_names[] = {
    "exp", "log", "sqrt", "rsqrt", "tanh", "erf", "sin", "cos", "abs",
    "maximum", "minimum", "where", "flash_attention",
    "sum", "max", "min", "mean", "argmax",
    "reshape", "permute", "broadcast_to", "concat", "stack", "pad",
    "zeros", "ones", "full", "arange", "tril", "zeros_like", "ones_like",
    "rand", "randn", "rand_like", "randn_like",
    "take", "one_hot",
    "normal", "uniform", "xavier_uniform", "kaiming_uniform",
    "grad", "zip", "enumerate", "len",
    "arg", "print", "log_metrics", "text", "lines", "tsv", "tokenize", "batches", "pad_batches",
    "skipgrams", "mask_tokens", "pairs", "sample", "topk",
    "bytes", "chars", "bpe", "wordpiece",
    NULL,
};

int lower_is_builtin(const char *name) {
    for (int i = 0; builtin_names[i]; i++)
        if (strcmp(builtin_names[i], name) == 0) return 1;
    return 0;
}

/* ---- argument helpers ---- */

static Value *kw(const char **names, Value **vals, int n, const char *want) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], want) == 0) return vals[i];
    return NULL;
}

static int check_kws(Lower *L, const char *fn, const char **names, int n, const char *const *allowed, TlLoc loc) {
    for (int i = 0; i < n; i++) {
        int ok = 0;
        for (int k = 0; allowed && allowed[k]; k++)
            if (strcmp(allowed[k], names[i]) == 0) ok = 1;
        if (!ok) {
            lower_error(L, loc, "%s() has no parameter named '%s'", fn, names[i]);
            return -1;
        }
    }
    return 0;
}

static int want_args(Lower *L, const char *fn, int n, int lo, int hi, TlLoc loc) {
    if (n < lo || n > hi) {
        if (lo == hi) lower_error(L, loc, "%s() takes %d argument%s, %d given", fn, lo, lo == 1 ? "" : "s", n);
        else lower_error(L, loc, "%s() takes %d to %d arguments, %d given", fn, lo, hi, n);
        return -1;
    }
    return 0;
}

static int get_int(Lower *L, Value *v, int64_t *out, const char *what, TlLoc loc) {
    if (lv_const_int(L, v, out)) return 0;
    lower_error(L, loc, "%s must be an integer known at compile time", what);
    return -1;
}

static int get_double(Lower *L, Value *v, double *out, const char *what, TlLoc loc) {
    int64_t c;
    if (v && v->kind == V_FLOAT) {
        *out = v->f;
        return 0;
    }
    if (lv_const_int(L, v, &c)) {
        *out = (double)c;
        return 0;
    }
    lower_error(L, loc, "%s must be a number known at compile time", what);
    return -1;
}

/* TL_FLASH=0 lowers flash_attention to the unfused primitives (for comparisons). */
static int flash_enabled(void) {
    const char *e = getenv("TL_FLASH");
    return !e || strcmp(e, "0") != 0;
}

/* softmax(mask(q k^T scale)) v with contractions and a materialized [.., T, T] score. */
static int attention_unfused(TlGraph *g, int q, int k, int v, double scale, TlLoc loc) {
    const TlGNode *qn = &g->nodes[q];
    int r = qn->shape.rank;
    char spec[64], spec2[64], lead[TL_MAX_RANK + 1];
    for (int i = 0; i < r - 2; i++) lead[i] = (char)('a' + i);
    lead[r - 2] = 0;
    snprintf(spec, sizeof spec, "%sik,%sjk->%sij", lead, lead, lead);
    snprintf(spec2, sizeof spec2, "%sij,%sjk->%sik", lead, lead, lead);
    int s = tl_g_contract(g, spec, q, k, loc);
    if (s < 0) return -1;
    TlGShape ss = g->nodes[s].shape;
    s = tl_g_mul(g, s, tl_g_const(g, scale, qn->dtype, ss, loc), loc);
    int causal = tl_g_binary(g, TL_GOP_GE, tl_g_iota(g, TL_I32, ss, r - 2, loc), tl_g_iota(g, TL_I32, ss, r - 1, loc), loc);
    s = tl_g_select(g, causal, s, tl_g_const(g, -1e30, qn->dtype, ss, loc), loc);
    uint32_t last = 1u << (r - 1);
    int m = tl_g_broadcast(g, tl_g_reduce(g, TL_GOP_RMAX, s, last, 1, loc), ss, loc);
    int e = tl_g_exp(g, tl_g_sub(g, s, m, loc), loc);
    int p = tl_g_div(g, e, tl_g_broadcast(g, tl_g_sum(g, e, last, 1, loc), ss, loc), loc);
    return tl_g_contract(g, spec2, p, v, loc);
}

/* flash_attention(q, k, v, scale = 1/sqrt(K)): causal attention as one attn primitive
 * (its result's last column, the row logsumexp, is for the backward and sliced off). */
static Value *flash_attention(Lower *L, Value **args, int nargs, const char **kn, Value **kv, int nk, TlLoc loc) {
    static const char *const allowed[] = {"scale", NULL};
    TlGraph *g = L->cur;
    if (want_args(L, "flash_attention", nargs, 3, 4, loc) < 0 || check_kws(L, "flash_attention", kn, nk, allowed, loc) < 0)
        return NULL;
    int q = lower_tensor(L, args[0], 0, loc), k = lower_tensor(L, args[1], 0, loc), v = lower_tensor(L, args[2], 0, loc);
    if (q < 0 || k < 0 || v < 0) return NULL;
    const TlGNode *qn = &g->nodes[q];
    if (qn->shape.rank < 2) return lower_error(L, loc, "flash_attention(): q must be [.., T, K]");
    Value *sv = nargs > 3 ? args[3] : kw(kn, kv, nk, "scale");
    double scale;
    int64_t K;
    if (sv) {
        if (get_double(L, sv, &scale, "the scale", loc) < 0) return NULL;
    } else if (tl_gdim_is_const(g, qn->shape.dim[qn->shape.rank - 1], &K) && K > 0) {
        scale = 1.0 / sqrt((double)K);
    } else {
        return lower_error(L, loc, "flash_attention(): the head size is not known at compile time; pass scale");
    }
    if (!flash_enabled()) return lv_tensor(L, attention_unfused(g, q, k, v, scale, loc));
    int o = tl_g_attn(g, q, k, v, scale, loc);
    if (o < 0) return lv_tensor(L, -1);
    int r = g->nodes[o].shape.rank;
    return lv_tensor(L, tl_g_slice_axis(g, o, r - 1, tl_gdim_const(g, 0), g->nodes[q].shape.dim[r - 1], 1, loc));
}


/* The dims of a shape given as arguments: zeros(B, T, D). */
static int shape_args(Lower *L, Value **args, int n, TlGShape *s, TlLoc loc) {
    if (n > TL_MAX_RANK) {
        lower_error(L, loc, "rank %d is more than the %d supported", n, TL_MAX_RANK);
        return -1;
    }
    TlGDim d[TL_MAX_RANK];
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (args[i]->kind == V_DIMS) {
            for (int j = 0; j < args[i]->n && k < TL_MAX_RANK; j++) d[k++] = args[i]->items[j]->dim;
            continue;
        }
        if (args[i]->kind != V_INT) {
            lower_error(L, loc, "a dimension must be an integer, found a %s", lv_kind_name(args[i]->kind));
            return -1;
        }
        d[k++] = args[i]->dim;
    }
    *s = tl_gshape_dims(k, d);
    return 0;
}

static int norm_axis(Lower *L, int64_t a, int rank, TlLoc loc) {
    if (a < 0) a += rank;
    if (a < 0 || a >= rank) {
        lower_error(L, loc, "axis out of range for a tensor of rank %d", rank);
        return -1;
    }
    return (int)a;
}

static TlDType dtype_kw(Value *v, TlDType def) { return v && v->kind == V_TYPE ? v->dtype : def; }

static TlGShape shape_of(Lower *L, int id) { return L->cur->nodes[id].shape; }

/* ---- groups ---- */

static Value *unary_math(Lower *L, const char *name, Value *x, TlLoc loc) {
    static const struct { const char *name; TlGOp op; double (*f)(double); } tab[] = {
        {"exp", TL_GOP_EXP, exp}, {"log", TL_GOP_LOG, log},   {"sqrt", TL_GOP_SQRT, sqrt},
        {"rsqrt", TL_GOP_RSQRT, NULL}, {"tanh", TL_GOP_TANH, tanh}, {"erf", TL_GOP_ERF, erf},
        {"sin", TL_GOP_SIN, sin}, {"cos", TL_GOP_COS, cos},   {"abs", TL_GOP_ABS, fabs},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (strcmp(tab[i].name, name) != 0) continue;
        int64_t c;
        if (x->kind == V_FLOAT || lv_const_int(L, x, &c)) {
            double v = x->kind == V_FLOAT ? x->f : (double)c;
            return lv_float(L, tab[i].f ? tab[i].f(v) : 1.0 / sqrt(v));
        }
        TlDType t = x->kind == V_TENSOR ? 0 : TL_F32;
        int id = lower_tensor(L, x, t, loc);
        if (id < 0) return NULL;
        if (!tl_dtype_is_float(L->cur->nodes[id].dtype) && tab[i].op != TL_GOP_ABS)
            id = tl_g_cast(L->cur, id, TL_F32, loc);
        return lv_tensor(L, tl_g_unary(L->cur, tab[i].op, id, loc));
    }
    return NULL;
}

/* Tensors of a common dtype for elementwise builtins (numbers take the tensors' dtype). */
static int common_operands(Lower *L, Value **v, int n, int *ids, TlLoc loc) {
    TlDType t = TL_DT_INVALID;
    int anyfloat = 0;
    for (int i = 0; i < n; i++) {
        if (v[i]->kind == V_TENSOR) {
            TlDType d = v[i]->g->nodes[v[i]->id].dtype;
            if (t && d != t) {
                lower_error(L, loc, "cannot combine %s and %s tensors; convert one with `as`", tl_dtype_name(t), tl_dtype_name(d));
                return -1;
            }
            t = d;
        } else if (v[i]->kind == V_FLOAT) anyfloat = 1;
    }
    if (!t) t = anyfloat ? TL_F32 : TL_I32;
    if (tl_dtype_is_int(t) && anyfloat) t = TL_F32;
    for (int i = 0; i < n; i++) {
        ids[i] = lower_tensor(L, v[i], t, loc);
        if (ids[i] < 0) return -1;
    }
    return 0;
}

static Value *reduce(Lower *L, const char *name, Value **args, int nargs, const char **kn, Value **kv, int nk, TlLoc loc) {
    static const char *const allowed[] = {"axis", "keepdim", NULL};
    if (want_args(L, name, nargs, 1, 1, loc) < 0 || check_kws(L, name, kn, nk, allowed, loc) < 0) return NULL;
    int x = lower_tensor(L, args[0], 0, loc);
    if (x < 0) return NULL;
    TlDType t = L->cur->nodes[x].dtype;
    int rank = shape_of(L, x).rank;
    uint32_t axes = 0;
    Value *ax = kw(kn, kv, nk, "axis");
    if (!ax) axes = rank ? (uint32_t)((1u << rank) - 1) : 0;
    else {
        Value **list = &ax;
        int n = 1;
        if (ax->kind == V_TUPLE || ax->kind == V_LIST) {
            list = ax->items;
            n = ax->n;
        }
        for (int i = 0; i < n; i++) {
            int64_t a;
            if (get_int(L, list[i], &a, "axis", loc) < 0) return NULL;
            int k = norm_axis(L, a, rank, loc);
            if (k < 0) return NULL;
            axes |= 1u << k;
        }
    }
    int keep = 0;
    Value *kd = kw(kn, kv, nk, "keepdim");
    if (kd) {
        if (kd->kind != V_BOOL) return lower_error(L, loc, "keepdim must be true or false");
        keep = kd->b;
    }
    if (strcmp(name, "argmax") == 0) return lower_error(L, loc, "argmax is not differentiable and is available in host code only");
    if (t == TL_BOOL) {
        x = tl_g_cast(L->cur, x, TL_I32, loc);
        t = TL_I32;
    }
    if (strcmp(name, "sum") == 0) return lv_tensor(L, tl_g_reduce(L->cur, TL_GOP_SUM, x, axes, keep, loc));
    if (strcmp(name, "max") == 0) return lv_tensor(L, tl_g_reduce(L->cur, TL_GOP_RMAX, x, axes, keep, loc));
    if (strcmp(name, "min") == 0) {
        /* min = -max(-x) */
        int n = tl_g_neg(L->cur, x, loc);
        return lv_tensor(L, tl_g_neg(L->cur, tl_g_reduce(L->cur, TL_GOP_RMAX, n, axes, keep, loc), loc));
    }
    /* mean = sum / (product of the reduced sizes) */
    if (!tl_dtype_is_float(t)) {
        x = tl_g_cast(L->cur, x, TL_F32, loc);
        t = TL_F32;
    }
    TlGShape s = shape_of(L, x);
    TlGDim count = tl_gdim_const(L->g, 1);
    for (int i = 0; i < s.rank; i++)
        if (axes & (1u << i)) count = tl_gdim_mul(L->g, count, s.dim[i]);
    int sum = tl_g_reduce(L->cur, TL_GOP_SUM, x, axes, keep, loc);
    Value *n = lower_dim_tensor(L, count, t, loc);
    if (!n) return NULL;
    return lv_tensor(L, tl_g_broadcast_binary(L->cur, TL_GOP_DIV, sum, n->id, loc));
}

static Value *iota(Lower *L, TlGShape s, int axis, TlDType t, TlLoc loc) {
    return lv_tensor(L, tl_g_iota(L->cur, t, s, axis, loc));
}

/* take(x, idx, axis): for each position, the element of x at idx along axis (the axis is
 * removed): a one-hot select and a sum, so its gradient is an ordinary select. */
static Value *take(Lower *L, Value **args, int nargs, const char **kn, Value **kv, int nk, TlLoc loc) {
    static const char *const allowed[] = {"axis", NULL};
    if (want_args(L, "take", nargs, 2, 2, loc) < 0 || check_kws(L, "take", kn, nk, allowed, loc) < 0) return NULL;
    int x = lower_tensor(L, args[0], 0, loc), idx = lower_tensor(L, args[1], 0, loc);
    if (x < 0 || idx < 0) return NULL;
    TlGShape sx = shape_of(L, x), si = shape_of(L, idx);
    int64_t a = -1;
    Value *ax = kw(kn, kv, nk, "axis");
    if (ax && get_int(L, ax, &a, "axis", loc) < 0) return NULL;
    int axis = norm_axis(L, a, sx.rank, loc);
    if (axis < 0) return NULL;
    if (axis != sx.rank - 1) return lower_error(L, loc, "take() supports the last axis only for now");
    if (si.rank != sx.rank - 1) return lower_error(L, loc, "take(): the index must have one dimension less than the tensor");
    if (!tl_dtype_is_int(L->cur->nodes[idx].dtype)) return lower_error(L, loc, "take(): the index must be an integer tensor");
    /* mask[..., v] = (v == idx[...]) */
    TlGDim d[TL_MAX_RANK];
    for (int i = 0; i < si.rank; i++) d[i] = si.dim[i];
    d[si.rank] = tl_gdim_const(L->g, 1);
    int idx1 = tl_g_reshape(L->cur, idx, tl_gshape_dims(si.rank + 1, d), loc);
    Value *io = iota(L, sx, sx.rank - 1, L->cur->nodes[idx].dtype, loc);
    if (!io) return NULL;
    int mask = tl_g_broadcast_binary(L->cur, TL_GOP_EQ, io->id, idx1, loc);
    int zero = tl_g_const(L->cur, 0.0, L->cur->nodes[x].dtype, sx, loc);
    int sel = tl_g_select(L->cur, mask, x, zero, loc);
    return lv_tensor(L, tl_g_reduce(L->cur, TL_GOP_SUM, sel, 1u << (sx.rank - 1), 0, loc));
}

static Value *one_hot(Lower *L, Value **args, int nargs, TlLoc loc) {
    if (want_args(L, "one_hot", nargs, 2, 2, loc) < 0) return NULL;
    int idx = lower_tensor(L, args[0], 0, loc);
    if (idx < 0) return NULL;
    if (args[1]->kind != V_INT) return lower_error(L, loc, "one_hot(): the class count must be an integer");
    TlGShape si = shape_of(L, idx);
    if (si.rank + 1 > TL_MAX_RANK) return lower_error(L, loc, "one_hot(): rank too large");
    TlGDim d[TL_MAX_RANK], d1[TL_MAX_RANK];
    for (int i = 0; i < si.rank; i++) d[i] = d1[i] = si.dim[i];
    d[si.rank] = args[1]->dim;
    d1[si.rank] = tl_gdim_const(L->g, 1);
    int idx1 = tl_g_reshape(L->cur, idx, tl_gshape_dims(si.rank + 1, d1), loc);
    Value *io = iota(L, tl_gshape_dims(si.rank + 1, d), si.rank, L->cur->nodes[idx].dtype, loc);
    if (!io) return NULL;
    int eq = tl_g_broadcast_binary(L->cur, TL_GOP_EQ, io->id, idx1, loc);
    return lv_tensor(L, tl_g_cast(L->cur, eq, TL_F32, loc));
}

static Value *random_op(Lower *L, TlRandomDist dist, TlGShape s, TlDType t, TlLoc loc) {
    if (L->seed_input < 0) {
        L->seed_input = tl_g_input(L->g, "__seed", TL_I64, tl_gshape_dims(0, NULL), loc);
        if (L->seed_input < 0) return NULL;
    }
    Value sv = {0};
    sv.kind = V_TENSOR;
    sv.g = L->g;
    sv.id = L->seed_input;
    int seed = lower_tensor(L, &sv, 0, loc);
    return lv_tensor(L, tl_g_random(L->cur, dist, seed, 0, ++L->random_ops, t, s, loc));
}

static Value *pad(Lower *L, Value **args, int nargs, const char **kn, Value **kv, int nk, TlLoc loc) {
    static const char *const allowed[] = {"axis", "value", NULL};
    if (want_args(L, "pad", nargs, 3, 3, loc) < 0 || check_kws(L, "pad", kn, nk, allowed, loc) < 0) return NULL;
    int x = lower_tensor(L, args[0], 0, loc);
    if (x < 0) return NULL;
    TlGShape s = shape_of(L, x);
    int64_t a = -1;
    double fill = 0;
    Value *ax = kw(kn, kv, nk, "axis"), *val = kw(kn, kv, nk, "value");
    if (ax && get_int(L, ax, &a, "axis", loc) < 0) return NULL;
    if (val && get_double(L, val, &fill, "value", loc) < 0) return NULL;
    int axis = norm_axis(L, a, s.rank, loc);
    if (axis < 0) return NULL;
    if (args[1]->kind != V_INT || args[2]->kind != V_INT) return lower_error(L, loc, "pad(): the amounts must be integers");
    TlGDim lo[TL_MAX_RANK], hi[TL_MAX_RANK];
    int64_t interior[TL_MAX_RANK] = {0};
    for (int i = 0; i < s.rank; i++) lo[i] = hi[i] = tl_gdim_const(L->g, 0);
    lo[axis] = args[1]->dim;
    hi[axis] = args[2]->dim;
    return lv_tensor(L, tl_g_pad(L->cur, x, lo, hi, interior, fill, loc));
}

static Value *join(Lower *L, int stack, Value **args, int nargs, const char **kn, Value **kv, int nk, TlLoc loc) {
    const char *fn = stack ? "stack" : "concat";
    static const char *const allowed[] = {"axis", NULL};
    if (want_args(L, fn, nargs, 1, 1, loc) < 0 || check_kws(L, fn, kn, nk, allowed, loc) < 0) return NULL;
    Value *list = args[0];
    if (list->kind != V_LIST && list->kind != V_TUPLE) return lower_error(L, loc, "%s() takes a list of tensors", fn);
    if (list->n == 0) return lower_error(L, loc, "%s() of an empty list", fn);
    int *ids = tl_arena_alloc(L->arena, sizeof(int) * (size_t)list->n);
    if (common_operands(L, list->items, list->n, ids, loc) < 0) return NULL;
    int64_t a = stack ? 0 : -1;
    Value *ax = kw(kn, kv, nk, "axis");
    if (ax && get_int(L, ax, &a, "axis", loc) < 0) return NULL;
    int rank = shape_of(L, ids[0]).rank + (stack ? 1 : 0);
    int axis = norm_axis(L, a, rank, loc);
    if (axis < 0) return NULL;
    if (stack) {
        for (int i = 0; i < list->n; i++) {
            TlGShape s = shape_of(L, ids[i]);
            TlGDim d[TL_MAX_RANK];
            int k = 0;
            for (int j = 0; j < s.rank + 1; j++) d[j] = j == axis ? tl_gdim_const(L->g, 1) : s.dim[k++];
            ids[i] = tl_g_reshape(L->cur, ids[i], tl_gshape_dims(s.rank + 1, d), loc);
        }
    }
    return lv_tensor(L, tl_g_concat(L->cur, list->n, ids, axis, loc));
}

Value *lower_builtin(Lower *L, const char *name, Value **args, int nargs, const char **kn, Value **kv, int nk,
                     TlLoc loc) {
    TlGraph *g = L->cur;
    Value *r = NULL;
    if (nk == 0 && nargs == 1 && (r = unary_math(L, name, args[0], loc)) != NULL) return r;
    if (L->failed) return NULL;
    if (!strcmp(name, "sum") || !strcmp(name, "max") || !strcmp(name, "min") || !strcmp(name, "mean") ||
        !strcmp(name, "argmax"))
        return reduce(L, name, args, nargs, kn, kv, nk, loc);
    if (!strcmp(name, "maximum") || !strcmp(name, "minimum")) {
        if (want_args(L, name, nargs, 2, 2, loc) < 0 || check_kws(L, name, kn, nk, NULL, loc) < 0) return NULL;
        if (lv_is_number(args[0]) && lv_is_number(args[1])) {
            double a, b;
            if (get_double(L, args[0], &a, "argument", loc) < 0 || get_double(L, args[1], &b, "argument", loc) < 0) return NULL;
            return lv_float(L, name[1] == 'a' ? fmax(a, b) : fmin(a, b));
        }
        int ids[2];
        if (common_operands(L, args, 2, ids, loc) < 0) return NULL;
        return lv_tensor(L, tl_g_broadcast_binary(g, name[1] == 'a' ? TL_GOP_MAX : TL_GOP_MIN, ids[0], ids[1], loc));
    }
    if (!strcmp(name, "flash_attention")) return flash_attention(L, args, nargs, kn, kv, nk, loc);
    if (!strcmp(name, "where")) {
        if (want_args(L, name, nargs, 3, 3, loc) < 0 || check_kws(L, name, kn, nk, NULL, loc) < 0) return NULL;
        int c = lower_tensor(L, args[0], 0, loc);
        int ids[2];
        if (c < 0 || common_operands(L, args + 1, 2, ids, loc) < 0) return NULL;
        if (g->nodes[c].dtype != TL_BOOL) return lower_error(L, loc, "where(): the condition must be a bool tensor");
        /* broadcast all three to one shape */
        int ab = tl_g_broadcast_binary(g, TL_GOP_ADD, ids[0], ids[1], loc);
        if (ab < 0) return NULL;
        int cf = tl_g_cast(g, c, g->nodes[ab].dtype, loc);
        int full = tl_g_broadcast_binary(g, TL_GOP_ADD, ab, cf, loc);
        if (full < 0) return NULL;
        TlGShape s = g->nodes[full].shape;
        int cc = tl_gshape_eq(g->nodes[c].shape, s) ? c : tl_g_broadcast(g, c, s, loc);
        int a = tl_gshape_eq(g->nodes[ids[0]].shape, s) ? ids[0] : tl_g_broadcast(g, ids[0], s, loc);
        int b = tl_gshape_eq(g->nodes[ids[1]].shape, s) ? ids[1] : tl_g_broadcast(g, ids[1], s, loc);
        return lv_tensor(L, tl_g_select(g, cc, a, b, loc));
    }
    if (!strcmp(name, "reshape") || !strcmp(name, "broadcast_to")) {
        if (nargs < 1) return lower_error(L, loc, "%s() needs a tensor", name);
        int x = lower_tensor(L, args[0], 0, loc);
        TlGShape s;
        if (x < 0 || shape_args(L, args + 1, nargs - 1, &s, loc) < 0) return NULL;
        int y = name[0] == 'r' ? tl_g_reshape(g, x, s, loc) : tl_g_broadcast(g, x, s, loc);
        if (y < 0) return lower_error(L, loc, "%s(): %s", name, tl_graph_error(g) ? tl_graph_error(g) : "bad shape");
        return lv_tensor(L, y);
    }
    if (!strcmp(name, "permute")) {
        if (nargs < 1) return lower_error(L, loc, "permute() needs a tensor");
        int x = lower_tensor(L, args[0], 0, loc);
        if (x < 0) return NULL;
        int rank = g->nodes[x].shape.rank, perm[TL_MAX_RANK];
        if (nargs - 1 != rank) return lower_error(L, loc, "permute() of a rank-%d tensor needs %d axes, %d given", rank, rank, nargs - 1);
        for (int i = 0; i < rank; i++) {
            int64_t a;
            if (get_int(L, args[i + 1], &a, "an axis", loc) < 0) return NULL;
            if ((perm[i] = norm_axis(L, a, rank, loc)) < 0) return NULL;
        }
        return lv_tensor(L, tl_g_permute(g, x, perm, loc));
    }
    if (!strcmp(name, "concat") || !strcmp(name, "stack")) return join(L, name[0] == 's', args, nargs, kn, kv, nk, loc);
    if (!strcmp(name, "pad")) return pad(L, args, nargs, kn, kv, nk, loc);
    if (!strcmp(name, "zeros") || !strcmp(name, "ones") || !strcmp(name, "full") || !strcmp(name, "rand") ||
        !strcmp(name, "randn")) {
        static const char *const allowed[] = {"dtype", NULL};
        if (check_kws(L, name, kn, nk, allowed, loc) < 0) return NULL;
        int skip = !strcmp(name, "full");
        double fill = name[0] == 'o' ? 1.0 : 0.0;
        if (skip) {
            if (nargs < 1) return lower_error(L, loc, "full() needs a value");
            if (get_double(L, args[0], &fill, "the fill value", loc) < 0) return NULL;
        }
        TlGShape s;
        if (shape_args(L, args + skip, nargs - skip, &s, loc) < 0) return NULL;
        TlDType t = dtype_kw(kw(kn, kv, nk, "dtype"), TL_F32);
        if (name[0] == 'r') return random_op(L, name[4] == 'n' ? TL_RANDOM_NORMAL : TL_RANDOM_UNIFORM, s, t, loc);
        return lv_tensor(L, tl_g_const(g, fill, t, s, loc));
    }
    if (!strcmp(name, "zeros_like") || !strcmp(name, "ones_like") || !strcmp(name, "rand_like") ||
        !strcmp(name, "randn_like")) {
        if (want_args(L, name, nargs, 1, 1, loc) < 0) return NULL;
        int x = lower_tensor(L, args[0], 0, loc);
        if (x < 0) return NULL;
        TlGShape s = g->nodes[x].shape;
        TlDType t = g->nodes[x].dtype;
        if (name[0] == 'r') return random_op(L, name[4] == 'n' ? TL_RANDOM_NORMAL : TL_RANDOM_UNIFORM, s, tl_dtype_is_float(t) ? t : TL_F32, loc);
        return lv_tensor(L, tl_g_const(g, name[0] == 'o' ? 1.0 : 0.0, t, s, loc));
    }
    if (!strcmp(name, "arange")) {
        if (want_args(L, name, nargs, 1, 1, loc) < 0) return NULL;
        if (args[0]->kind != V_INT) return lower_error(L, loc, "arange() takes an integer size");
        TlGDim d[1] = {args[0]->dim};
        return iota(L, tl_gshape_dims(1, d), 0, dtype_kw(kw(kn, kv, nk, "dtype"), TL_I32), loc);
    }
    if (!strcmp(name, "tril")) {
        /* true on and below the diagonal: i >= j */
        if (want_args(L, name, nargs, 2, 2, loc) < 0) return NULL;
        if (args[0]->kind != V_INT || args[1]->kind != V_INT) return lower_error(L, loc, "tril() takes two integer sizes");
        TlGDim d[2] = {args[0]->dim, args[1]->dim};
        TlGShape s = tl_gshape_dims(2, d);
        Value *i = iota(L, s, 0, TL_I32, loc), *j = iota(L, s, 1, TL_I32, loc);
        if (!i || !j) return NULL;
        return lv_tensor(L, tl_g_binary(g, TL_GOP_GE, i->id, j->id, loc));
    }
    if (!strcmp(name, "take")) return take(L, args, nargs, kn, kv, nk, loc);
    if (!strcmp(name, "one_hot")) return one_hot(L, args, nargs, loc);
    if (!strcmp(name, "len")) {
        if (want_args(L, name, nargs, 1, 1, loc) < 0) return NULL;
        if (args[0]->kind == V_LIST || args[0]->kind == V_TUPLE) return lv_int_c(L, args[0]->n);
        if (args[0]->kind == V_TENSOR) {
            TlGShape s = args[0]->g->nodes[args[0]->id].shape;
            if (s.rank == 0) return lower_error(L, loc, "len() of a scalar");
            return lv_int(L, s.dim[0]);
        }
        return lower_error(L, loc, "len() of a %s", lv_kind_name(args[0]->kind));
    }
    if (!strcmp(name, "zip") || !strcmp(name, "enumerate")) {
        int en = name[0] == 'e';
        if (en ? want_args(L, name, nargs, 1, 1, loc) < 0 : nargs < 1) return NULL;
        int n = -1;
        for (int i = 0; i < nargs; i++) {
            if (args[i]->kind != V_LIST && args[i]->kind != V_TUPLE) return lower_error(L, loc, "%s() takes lists", name);
            if (n < 0 || args[i]->n < n) n = args[i]->n;
        }
        Value *out = lv_new(L, V_LIST);
        out->n = n;
        out->items = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(n + 1));
        for (int k = 0; k < n; k++) {
            Value *t = lv_new(L, V_TUPLE);
            t->n = en ? 2 : nargs;
            t->items = tl_arena_alloc(L->arena, sizeof(Value *) * (size_t)(t->n + 1));
            if (en) {
                t->items[0] = lv_int_c(L, k);
                t->items[1] = args[0]->items[k];
            } else {
                for (int i = 0; i < nargs; i++) t->items[i] = args[i]->items[k];
            }
            out->items[k] = t;
        }
        return out;
    }
    if (!strcmp(name, "normal") || !strcmp(name, "uniform") || !strcmp(name, "xavier_uniform") ||
        !strcmp(name, "kaiming_uniform"))
        return lower_error(L, loc, "%s() is an initializer: use it as `name: param T = %s(...)`", name, name);
    if (!strcmp(name, "grad")) return lower_error(L, loc, "grad() belongs in a train block or host code");
    if (!strcmp(name, "arg")) {
        /* arg(name, default): the value of the flag --name */
        if (want_args(L, name, nargs, 2, 2, loc) < 0) return NULL;
        if (args[0]->kind != V_STR) return lower_error(L, loc, "arg(): the name must be a string");
        if (!L->args) return args[1];
        const char *flag = args[0]->s;
        Value *v = NULL;
        switch (args[1]->kind) {
        case V_INT: v = lv_int_c(L, tl_args_int(L->args, flag)); break;
        case V_FLOAT: v = lv_float(L, tl_args_float(L->args, flag)); break;
        case V_BOOL: v = lv_bool(L, tl_args_bool(L->args, flag)); break;
        case V_STR:
            v = lv_new(L, V_STR);
            v->s = tl_arena_strdup(L->arena, tl_args_string(L->args, flag));
            break;
        default: return lower_error(L, loc, "arg(): the default must be a number, a bool or a string");
        }
        v->flag = tl_arena_strdup(L->arena, flag);
        return v;
    }
    return lower_error(L, loc, "%s() is host code and cannot be used in tensor code", name);
}
