/* interp.c — evaluates a Graph IR with naive loops (see interp.h for the conventions). */
#include "interp.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "philox.h"

struct TlInterp {
    const TlGraph *g;
    TlGDimBinding *bind;
    int nbind, bindcap;
    TlTensor *val;     /* one per node */
    TlTensor *given;   /* values set for input/param nodes (data NULL when unset) */
    TlTensor **scan_results; /* per scan node: body->noutputs tensors */
    char err[512];
};

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) { fputs("tl: out of memory\n", stderr); abort(); }
    return p;
}

static int ierr(TlInterp *it, int node, const char *fmt, ...) {
    if (it->err[0]) return -1;
    int n = 0;
    if (node >= 0) {
        const TlGNode *nd = &it->g->nodes[node];
        n = snprintf(it->err, sizeof it->err, "%%%d (%s%s%s", node, tl_gop_name(nd->op),
                     nd->name ? " " : "", nd->name ? nd->name : "");
        if (nd->loc.line) n += snprintf(it->err + n, sizeof it->err - (size_t)n, " at %d:%d", nd->loc.line, nd->loc.col);
        n += snprintf(it->err + n, sizeof it->err - (size_t)n, "): ");
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->err + n, sizeof it->err - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- storage ---- */

size_t tl_interp_storage_size(TlDType t) {
    switch (t) {
    case TL_F64: case TL_I64: return 8;
    case TL_BOOL: return 1;
    default: return 4;
    }
}

/* Round to a binary float with `bits` significand bits, min normal exponent emin. */
static double round_sig(double v, int bits, int emin, double maxval) {
    if (v == 0 || isnan(v) || isinf(v)) return v;
    int e;
    frexp(v, &e); /* |v| = m * 2^e, m in [0.5, 1): the leading bit is 2^(e-1) */
    if (e - 1 < emin) e = emin + 1;
    double ulp = ldexp(1.0, e - bits);
    double r = nearbyint(v / ulp) * ulp;
    if (fabs(r) > maxval) return v > 0 ? INFINITY : -INFINITY;
    return r;
}

double tl_interp_round(TlDType t, double v) {
    switch (t) {
    case TL_F32: return (double)(float)v;
    case TL_BF16: return round_sig(v, 8, -126, 3.3895313892515355e38);
    case TL_F16: return round_sig(v, 11, -14, 65504.0);
    case TL_F64: return v;
    case TL_I32: return (double)(int32_t)v;
    case TL_I64: return (double)(int64_t)v;
    case TL_BOOL: return v != 0;
    default: return v;
    }
}

double tl_tensor_get(const TlTensor *t, int64_t i) {
    switch (t->dtype) {
    case TL_F64: return ((const double *)t->data)[i];
    case TL_I32: return ((const int32_t *)t->data)[i];
    case TL_I64: return (double)((const int64_t *)t->data)[i];
    case TL_BOOL: return ((const uint8_t *)t->data)[i];
    default: return ((const float *)t->data)[i];
    }
}

static int64_t geti(const TlTensor *t, int64_t i) {
    switch (t->dtype) {
    case TL_I32: return ((const int32_t *)t->data)[i];
    case TL_I64: return ((const int64_t *)t->data)[i];
    case TL_BOOL: return ((const uint8_t *)t->data)[i];
    default: return (int64_t)tl_tensor_get(t, i);
    }
}

static void setf(TlTensor *t, int64_t i, double v) {
    switch (t->dtype) {
    case TL_F64: ((double *)t->data)[i] = v; break;
    case TL_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case TL_I64: ((int64_t *)t->data)[i] = (int64_t)v; break;
    case TL_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    case TL_F32: ((float *)t->data)[i] = (float)v; break;
    default: ((float *)t->data)[i] = (float)tl_interp_round(t->dtype, v); break;
    }
}

static void seti(TlTensor *t, int64_t i, int64_t v) {
    switch (t->dtype) {
    case TL_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case TL_I64: ((int64_t *)t->data)[i] = v; break;
    case TL_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    default: setf(t, i, (double)v); break;
    }
}

static void tensor_alloc(TlTensor *t, TlDType dt, int rank, const int64_t *dim) {
    t->dtype = dt, t->rank = rank, t->numel = 1;
    for (int i = 0; i < rank; i++) t->dim[i] = dim[i], t->numel *= dim[i];
    t->data = xcalloc((size_t)t->numel, tl_interp_storage_size(dt));
}

static void tensor_free(TlTensor *t) {
    free(t->data);
    t->data = NULL;
}

/* Multi-index <-> flat offset, row-major. */
static void unravel(int64_t flat, int rank, const int64_t *dim, int64_t *idx) {
    for (int i = rank - 1; i >= 0; i--) {
        idx[i] = dim[i] ? flat % dim[i] : 0;
        flat = dim[i] ? flat / dim[i] : 0;
    }
}

static int64_t ravel(int rank, const int64_t *dim, const int64_t *idx) {
    int64_t off = 0;
    for (int i = 0; i < rank; i++) off = off * dim[i] + idx[i];
    return off;
}

/* ---- API ---- */

TlInterp *tl_interp_new(const TlGraph *g) {
    TlInterp *it = xcalloc(1, sizeof *it);
    it->g = g;
    it->val = xcalloc((size_t)g->nnodes, sizeof(TlTensor));
    it->given = xcalloc((size_t)g->nnodes, sizeof(TlTensor));
    it->scan_results = xcalloc((size_t)g->nnodes, sizeof(TlTensor *));
    return it;
}

static void clear_values(TlInterp *it) {
    for (int i = 0; i < it->g->nnodes; i++) {
        tensor_free(&it->val[i]);
        if (it->scan_results[i]) {
            for (int k = 0; k < it->g->nodes[i].body->noutputs; k++) tensor_free(&it->scan_results[i][k]);
            free(it->scan_results[i]);
            it->scan_results[i] = NULL;
        }
    }
}

void tl_interp_free(TlInterp *it) {
    if (!it) return;
    clear_values(it);
    for (int i = 0; i < it->g->nnodes; i++) tensor_free(&it->given[i]);
    for (int i = 0; i < it->nbind; i++) free((char *)it->bind[i].name);
    free(it->bind);
    free(it->val);
    free(it->given);
    free(it->scan_results);
    free(it);
}

void tl_interp_bind(TlInterp *it, const char *sym, int64_t value) {
    for (int i = 0; i < it->nbind; i++)
        if (strcmp(it->bind[i].name, sym) == 0) { it->bind[i].value = value; return; }
    if (it->nbind == it->bindcap) {
        it->bindcap = it->bindcap ? it->bindcap * 2 : 8;
        it->bind = realloc(it->bind, sizeof(TlGDimBinding) * (size_t)it->bindcap);
        if (!it->bind) abort();
    }
    size_t n = strlen(sym) + 1;
    char *s = xcalloc(n, 1);
    memcpy(s, sym, n);
    it->bind[it->nbind].name = s, it->bind[it->nbind].value = value;
    it->nbind++;
}

static int settable(TlInterp *it, int node) {
    if (node < 0 || node >= it->g->nnodes) return ierr(it, -1, "no node %d", node);
    TlGOp op = it->g->nodes[node].op;
    if (op != TL_GOP_INPUT && op != TL_GOP_PARAM) return ierr(it, node, "only inputs and params can be set");
    return 0;
}

int tl_interp_set(TlInterp *it, int node, const double *values, int64_t n) {
    if (settable(it, node)) return -1;
    TlTensor *t = &it->given[node];
    tensor_free(t);
    tensor_alloc(t, it->g->nodes[node].dtype, 1, &n);
    for (int64_t i = 0; i < n; i++) setf(t, i, values[i]);
    return 0;
}

int tl_interp_set_named(TlInterp *it, const char *name, const double *values, int64_t n) {
    int id = tl_graph_find(it->g, TL_GOP_INPUT, name);
    if (id < 0) id = tl_graph_find(it->g, TL_GOP_PARAM, name);
    if (id < 0) return ierr(it, -1, "no input or param named '%s'", name);
    return tl_interp_set(it, id, values, n);
}

int tl_interp_set_raw(TlInterp *it, int node, const void *data, int64_t n) {
    if (settable(it, node)) return -1;
    TlTensor *t = &it->given[node];
    tensor_free(t);
    tensor_alloc(t, it->g->nodes[node].dtype, 1, &n);
    memcpy(t->data, data, (size_t)n * tl_interp_storage_size(t->dtype));
    return 0;
}

const char *tl_interp_error(const TlInterp *it) { return it->err[0] ? it->err : NULL; }

const TlTensor *tl_interp_value(const TlInterp *it, int node) {
    if (node < 0 || node >= it->g->nnodes || !it->val[node].data) return NULL;
    return &it->val[node];
}

const TlTensor *tl_interp_output(const TlInterp *it, int k) {
    if (k < 0 || k >= it->g->noutputs) return NULL;
    return tl_interp_value(it, it->g->outputs[k]);
}

/* ---- evaluation, one function per op family ---- */

static int eval_dim(TlInterp *it, int node, TlGDim d, int64_t *v) {
    if (tl_gdim_eval(it->g, d, it->bind, it->nbind, v)) {
        char buf[128];
        tl_gdim_str(it->g, d, buf, sizeof buf);
        return ierr(it, node, "cannot evaluate dim %s (unbound symbol?)", buf);
    }
    if (*v < 0) return ierr(it, node, "negative dim %lld", (long long)*v);
    return 0;
}

static int alloc_result(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    int64_t dim[TL_MAX_RANK];
    for (int i = 0; i < n->shape.rank; i++)
        if (eval_dim(it, id, n->shape.dim[i], &dim[i])) return -1;
    tensor_alloc(&it->val[id], n->dtype, n->shape.rank, dim);
    return 0;
}

static double unary_f(TlGOp op, double x) {
    switch (op) {
    case TL_GOP_NEG: return -x;
    case TL_GOP_EXP: return exp(x);
    case TL_GOP_LOG: return log(x);
    case TL_GOP_SQRT: return sqrt(x);
    case TL_GOP_RSQRT: return 1.0 / sqrt(x);
    case TL_GOP_TANH: return tanh(x);
    case TL_GOP_ERF: return erf(x);
    case TL_GOP_SIN: return sin(x);
    case TL_GOP_COS: return cos(x);
    case TL_GOP_ABS: return fabs(x);
    default: return NAN;
    }
}

static double binary_f(TlGOp op, double a, double b) {
    switch (op) {
    case TL_GOP_ADD: return a + b;
    case TL_GOP_SUB: return a - b;
    case TL_GOP_MUL: return a * b;
    case TL_GOP_DIV: return a / b;
    case TL_GOP_POW: return pow(a, b);
    case TL_GOP_MAX: return isnan(a) || a >= b ? a : b; /* NaN propagates from a */
    case TL_GOP_MIN: return isnan(a) || a <= b ? a : b;
    default: return NAN;
    }
}

static int binary_i(TlGOp op, int64_t a, int64_t b, int64_t *r) {
    switch (op) {
    case TL_GOP_ADD: *r = (int64_t)((uint64_t)a + (uint64_t)b); return 0;
    case TL_GOP_SUB: *r = (int64_t)((uint64_t)a - (uint64_t)b); return 0;
    case TL_GOP_MUL: *r = (int64_t)((uint64_t)a * (uint64_t)b); return 0;
    case TL_GOP_DIV: if (b == 0) return -1; *r = a / b; return 0;
    case TL_GOP_MAX: *r = a > b ? a : b; return 0;
    case TL_GOP_MIN: *r = a < b ? a : b; return 0;
    default: return -1;
    }
}

static int compare(TlGOp op, double a, double b) {
    switch (op) {
    case TL_GOP_EQ: return a == b;
    case TL_GOP_NE: return a != b;
    case TL_GOP_LT: return a < b;
    case TL_GOP_LE: return a <= b;
    case TL_GOP_GT: return a > b;
    case TL_GOP_GE: return a >= b;
    default: return 0;
    }
}

static int eval_elementwise(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    TlTensor *out = &it->val[id];
    const TlTensor *a = &it->val[n->in[0]];
    const TlTensor *b = n->nin > 1 ? &it->val[n->in[1]] : NULL;
    int isint = tl_dtype_is_int(a->dtype) || a->dtype == TL_BOOL;
    for (int64_t i = 0; i < out->numel; i++) {
        if (tl_gop_is_unary(n->op)) {
            if (isint) seti(out, i, n->op == TL_GOP_NEG ? -geti(a, i) : llabs(geti(a, i)));
            else setf(out, i, unary_f(n->op, tl_tensor_get(a, i)));
        } else if (tl_gop_is_binary(n->op)) {
            int64_t r;
            if (!isint) setf(out, i, binary_f(n->op, tl_tensor_get(a, i), tl_tensor_get(b, i)));
            else if (binary_i(n->op, geti(a, i), geti(b, i), &r)) return ierr(it, id, "integer division by zero");
            else seti(out, i, r);
        } else if (tl_gop_is_compare(n->op)) {
            if (isint) {
                int64_t x = geti(a, i), y = geti(b, i);
                seti(out, i, compare(n->op, x < y ? -1 : x > y, 0));
            } else {
                seti(out, i, compare(n->op, tl_tensor_get(a, i), tl_tensor_get(b, i)));
            }
        } else if (n->op == TL_GOP_SELECT) {
            const TlTensor *x = &it->val[n->in[1]], *y = &it->val[n->in[2]];
            const TlTensor *src = geti(a, i) ? x : y;
            if (tl_dtype_is_float(out->dtype)) setf(out, i, tl_tensor_get(src, i));
            else seti(out, i, geti(src, i));
        } else if (n->op == TL_GOP_CAST) {
            if (isint) seti(out, i, geti(a, i));
            else if (out->dtype == TL_BOOL) seti(out, i, tl_tensor_get(a, i) != 0);
            else if (tl_dtype_is_int(out->dtype)) seti(out, i, (int64_t)trunc(tl_tensor_get(a, i)));
            else setf(out, i, tl_tensor_get(a, i));
        }
    }
    return 0;
}

static int eval_reduce(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    TlTensor *out = &it->val[id];
    const TlTensor *x = &it->val[n->in[0]];
    int isint = tl_dtype_is_int(x->dtype);
    double *acc = xcalloc((size_t)out->numel, sizeof(double));
    int64_t *iacc = xcalloc((size_t)out->numel, sizeof(int64_t));
    for (int64_t o = 0; o < out->numel; o++)
        acc[o] = n->op == TL_GOP_SUM ? 0 : -INFINITY, iacc[o] = n->op == TL_GOP_SUM ? 0 : INT64_MIN;
    /* the output index of an input element: its index with the reduced axes dropped */
    int64_t idx[TL_MAX_RANK], odim[TL_MAX_RANK], oidx[TL_MAX_RANK];
    int orank = 0;
    for (int k = 0; k < x->rank; k++)
        if (!(n->axes >> k & 1)) odim[orank++] = x->dim[k];
    for (int64_t i = 0; i < x->numel; i++) {
        unravel(i, x->rank, x->dim, idx);
        int r = 0;
        for (int k = 0; k < x->rank; k++)
            if (!(n->axes >> k & 1)) oidx[r++] = idx[k];
        int64_t o = ravel(orank, odim, oidx); /* keepdims does not change the offset */
        if (isint) { /* exact integer accumulation; a float never goes through geti */
            int64_t v = geti(x, i);
            if (n->op == TL_GOP_SUM) iacc[o] += v;
            else if (v > iacc[o]) iacc[o] = v;
        } else {
            double v = tl_tensor_get(x, i);
            if (n->op == TL_GOP_SUM) acc[o] += v;
            else if (v > acc[o] || isnan(v)) acc[o] = v;
        }
    }
    for (int64_t o = 0; o < out->numel; o++) isint ? seti(out, o, iacc[o]) : setf(out, o, acc[o]);
    free(acc);
    free(iacc);
    return 0;
}

/* out[o..] = sum over the summed letters of a[..] * b[..]: one loop over every letter. */
static int eval_contract(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    TlTensor *out = &it->val[id];
    TlContractSpec cs;
    tl_contract_parse(n->spec, &cs, NULL, 0);
    char letters[2 * TL_MAX_RANK];
    int64_t size[2 * TL_MAX_RANK];
    int nl = 0;
    for (int k = 0; k < cs.nin; k++)
        for (int j = 0; j < cs.rank[k]; j++) {
            int found = 0;
            for (int l = 0; l < nl; l++) found |= letters[l] == cs.in[k][j];
            if (!found) letters[nl] = cs.in[k][j], size[nl++] = it->val[n->in[k]].dim[j];
        }
    int pos[3][TL_MAX_RANK]; /* letter slot of each axis of a, b, out */
    for (int k = 0; k < 3; k++) {
        int r = k < 2 ? cs.rank[k] : cs.out_rank;
        const char *s = k < 2 ? cs.in[k] : cs.out;
        for (int j = 0; j < (k < cs.nin || k == 2 ? r : 0); j++)
            for (int l = 0; l < nl; l++)
                if (letters[l] == s[j]) pos[k][j] = l;
    }
    double *acc = xcalloc((size_t)out->numel, sizeof(double));
    int64_t total = 1, idx[2 * TL_MAX_RANK], sub[TL_MAX_RANK];
    for (int l = 0; l < nl; l++) total *= size[l];
    for (int64_t f = 0; f < total; f++) {
        unravel(f, nl, size, idx);
        double prod = 1;
        for (int k = 0; k < cs.nin; k++) {
            const TlTensor *x = &it->val[n->in[k]];
            for (int j = 0; j < cs.rank[k]; j++) sub[j] = idx[pos[k][j]];
            prod *= tl_tensor_get(x, ravel(x->rank, x->dim, sub));
        }
        for (int j = 0; j < cs.out_rank; j++) sub[j] = idx[pos[2][j]];
        acc[ravel(out->rank, out->dim, sub)] += prod;
    }
    for (int64_t o = 0; o < out->numel; o++) setf(out, o, acc[o]);
    free(acc);
    return 0;
}

static void copy_elem(TlTensor *dst, int64_t i, const TlTensor *src, int64_t j) {
    size_t es = tl_interp_storage_size(dst->dtype);
    memcpy((char *)dst->data + (size_t)i * es, (const char *)src->data + (size_t)j * es, es);
}

/* reshape, permute, broadcast, slice: each output element reads one input element. */
static int eval_movement(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    TlTensor *out = &it->val[id];
    const TlTensor *x = &it->val[n->in[0]];
    int64_t oi[TL_MAX_RANK], xi[TL_MAX_RANK], start[TL_MAX_RANK];
    if (n->op == TL_GOP_RESHAPE) {
        memcpy(out->data, x->data, (size_t)x->numel * tl_interp_storage_size(x->dtype));
        return 0;
    }
    if (n->op == TL_GOP_SLICE)
        for (int k = 0; k < x->rank; k++) {
            int64_t stop;
            if (eval_dim(it, id, n->lo[k], &start[k]) || eval_dim(it, id, n->hi[k], &stop)) return -1;
            if (start[k] > stop || stop > x->dim[k]) return ierr(it, id, "slice out of range on axis %d", k);
        }
    for (int64_t i = 0; i < out->numel; i++) {
        unravel(i, out->rank, out->dim, oi);
        for (int k = 0; k < x->rank; k++) {
            if (n->op == TL_GOP_PERMUTE) xi[n->perm[k]] = oi[k];
            else if (n->op == TL_GOP_BROADCAST) xi[k] = x->dim[k] == 1 ? 0 : oi[out->rank - x->rank + k];
            else xi[k] = start[k] + oi[k] * n->step[k]; /* slice */
        }
        copy_elem(out, i, x, ravel(x->rank, x->dim, xi));
    }
    return 0;
}

static int eval_pad(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    TlTensor *out = &it->val[id];
    const TlTensor *x = &it->val[n->in[0]];
    int64_t lo[TL_MAX_RANK], xi[TL_MAX_RANK], oi[TL_MAX_RANK];
    for (int k = 0; k < x->rank; k++)
        if (eval_dim(it, id, n->lo[k], &lo[k])) return -1;
    for (int64_t i = 0; i < out->numel; i++) setf(out, i, n->fill);
    for (int64_t j = 0; j < x->numel; j++) {
        unravel(j, x->rank, x->dim, xi);
        for (int k = 0; k < x->rank; k++) oi[k] = lo[k] + xi[k] * (n->step[k] + 1);
        copy_elem(out, ravel(out->rank, out->dim, oi), x, j);
    }
    return 0;
}

static int eval_concat(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    TlTensor *out = &it->val[id];
    int64_t xi[TL_MAX_RANK], base = 0;
    for (int k = 0; k < n->nin; k++) {
        const TlTensor *x = &it->val[n->in[k]];
        for (int64_t j = 0; j < x->numel; j++) {
            unravel(j, x->rank, x->dim, xi);
            xi[n->axis] += base;
            copy_elem(out, ravel(out->rank, out->dim, xi), x, j);
        }
        base += x->dim[n->axis];
    }
    return 0;
}

/* gather: out[p, j.., s] = table[p, idx[j..], s].  scatter_add: out[p, idx[j..], s] += src[p, j.., s]. */
static int eval_gather_scatter(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    TlTensor *out = &it->val[id];
    const TlTensor *x = &it->val[n->in[0]], *ix = &it->val[n->in[1]];
    int ax = n->axis, ir = ix->rank;
    int64_t a[TL_MAX_RANK], b[TL_MAX_RANK];
    int gather = n->op == TL_GOP_GATHER;
    const TlTensor *big = gather ? out : x;   /* indexed by (p, j.., s) */
    const TlTensor *small = gather ? x : out; /* indexed by (p, idx, s) */
    double *acc = gather ? NULL : xcalloc((size_t)out->numel, sizeof(double));
    for (int64_t i = 0; i < big->numel; i++) {
        unravel(i, big->rank, big->dim, a);
        int64_t j = ravel(ir, ix->dim, a + ax);
        int64_t v = geti(ix, j);
        if (v < 0 || v >= small->dim[ax])
            return free(acc), ierr(it, id, "index %lld out of range [0, %lld)", (long long)v, (long long)small->dim[ax]);
        for (int k = 0; k < ax; k++) b[k] = a[k];
        b[ax] = v;
        for (int k = ax + 1; k < small->rank; k++) b[k] = a[k - 1 + ir];
        int64_t s = ravel(small->rank, small->dim, b);
        if (gather) copy_elem(out, i, x, s);
        else acc[s] += tl_tensor_get(x, i);
    }
    if (!gather)
        for (int64_t o = 0; o < out->numel; o++) setf(out, o, acc[o]);
    free(acc);
    return 0;
}

/* attn: naive causal attention in double, row by row (graph.h defines it):
 *   s_ij = scale q_i.k_j (j <= i), out_i = sum_j softmax_j(s_i) v_j, out_iK = logsumexp_j s_ij */
static int eval_attn(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    TlTensor *out = &it->val[id];
    const TlTensor *q = &it->val[n->in[0]], *k = &it->val[n->in[1]], *v = &it->val[n->in[2]];
    int64_t T = q->dim[q->rank - 2], K = q->dim[q->rank - 1], BH = T > 0 && K > 0 ? q->numel / (T * K) : 0;
    double *s = xcalloc((size_t)T + 1, sizeof(double));
    for (int64_t b = 0; b < BH; b++) {
        int64_t base = b * T * K, obase = b * T * (K + 1);
        for (int64_t i = 0; i < T; i++) {
            double m = -INFINITY, l = 0;
            for (int64_t j = 0; j <= i; j++) {
                double d = 0;
                for (int64_t c = 0; c < K; c++) d += tl_tensor_get(q, base + i * K + c) * tl_tensor_get(k, base + j * K + c);
                s[j] = d * n->fill;
                m = fmax(m, s[j]);
            }
            for (int64_t j = 0; j <= i; j++) l += exp(s[j] - m);
            for (int64_t c = 0; c < K; c++) {
                double o = 0;
                for (int64_t j = 0; j <= i; j++) o += exp(s[j] - m) / l * tl_tensor_get(v, base + j * K + c);
                setf(out, obase + i * (K + 1) + c, o);
            }
            setf(out, obase + i * (K + 1) + K, m + log(l));
        }
    }
    free(s);
    return 0;
}

/* attn_grad: the FlashAttention backward, naively in double (graph.h defines it):
 *   P_ij = exp(s_ij - L_i), D_i = g_i.o_i - g_iK, ds_ij = P_ij (g_i.v_j - D_i),
 *   dq_i = scale sum_j ds_ij k_j, dk_j = scale sum_i ds_ij q_i, dv_j = sum_i P_ij g_i */
static int eval_attn_grad(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    TlTensor *out = &it->val[id];
    const TlTensor *q = &it->val[n->in[0]], *k = &it->val[n->in[1]], *v = &it->val[n->in[2]];
    const TlTensor *o = &it->val[n->in[3]], *gy = &it->val[n->in[4]];
    int64_t T = q->dim[q->rank - 2], K = q->dim[q->rank - 1], BH = T > 0 && K > 0 ? q->numel / (T * K) : 0;
    int64_t K1 = K + 1, N = q->numel;
    double *acc = xcalloc((size_t)(3 * N) + 1, sizeof(double));
    for (int64_t b = 0; b < BH; b++) {
        int64_t base = b * T * K, ob = b * T * K1;
        for (int64_t i = 0; i < T; i++) {
            double D = -tl_tensor_get(gy, ob + i * K1 + K), L = tl_tensor_get(o, ob + i * K1 + K);
            for (int64_t c = 0; c < K; c++) D += tl_tensor_get(gy, ob + i * K1 + c) * tl_tensor_get(o, ob + i * K1 + c);
            for (int64_t j = 0; j <= i; j++) {
                double sd = 0, dp = 0;
                for (int64_t c = 0; c < K; c++) {
                    sd += tl_tensor_get(q, base + i * K + c) * tl_tensor_get(k, base + j * K + c);
                    dp += tl_tensor_get(gy, ob + i * K1 + c) * tl_tensor_get(v, base + j * K + c);
                }
                double p = exp(sd * n->fill - L), ds = p * (dp - D);
                for (int64_t c = 0; c < K; c++) {
                    acc[base + i * K + c] += n->fill * ds * tl_tensor_get(k, base + j * K + c);
                    acc[N + base + j * K + c] += n->fill * ds * tl_tensor_get(q, base + i * K + c);
                    acc[2 * N + base + j * K + c] += p * tl_tensor_get(gy, ob + i * K1 + c);
                }
            }
        }
    }
    for (int64_t i = 0; i < 3 * N; i++) setf(out, i, acc[i]);
    free(acc);
    return 0;
}

static int eval_random(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    TlTensor *out = &it->val[id];
    uint64_t seed = n->nin ? (uint64_t)geti(&it->val[n->in[0]], 0) : n->seed;
    for (int64_t i = 0; i < out->numel; i++)
        setf(out, i, n->dist == TL_RANDOM_NORMAL ? tl_philox_normal_at(seed, n->offset, (uint64_t)i)
                                                 : tl_philox_uniform_at(seed, n->offset, (uint64_t)i));
    return 0;
}

static int run_graph(TlInterp *it);

/* scan: run the body once per step with a sub-interpreter; carries flow between steps,
 * sequence inputs are sliced along axis 0, per-step outputs are stacked along axis 0. */
static int eval_scan(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    const TlGraph *body = n->body;
    int nc = n->ncarry, nseq = n->nseq, nout = body->noutputs;
    int64_t T = it->val[n->in[nc]].dim[0];
    TlTensor *res = xcalloc((size_t)nout, sizeof(TlTensor));
    it->scan_results[id] = res;
    TlInterp *sub = tl_interp_new(body);
    for (int i = 0; i < it->nbind; i++) tl_interp_bind(sub, it->bind[i].name, it->bind[i].value);
    for (int i = 0; i < nc; i++) {
        const TlTensor *c = &it->val[n->in[i]];
        tensor_alloc(&res[i], c->dtype, c->rank, c->dim);
        memcpy(res[i].data, c->data, (size_t)c->numel * tl_interp_storage_size(c->dtype));
    }
    int rc = 0;
    for (int64_t s = 0; s < T && rc == 0; s++) {
        int64_t t = n->reverse ? T - 1 - s : s;
        for (int i = 0; i < n->nin; i++) {
            const TlTensor *x = i < nc ? &res[i] : &it->val[n->in[i]];
            int64_t cnt = x->numel, off = 0;
            if (i >= nc && i < nc + nseq) cnt = T ? x->numel / T : 0, off = t * cnt;
            tl_interp_set_raw(sub, body->inputs[i], (const char *)x->data + (size_t)off * tl_interp_storage_size(x->dtype), cnt);
        }
        if (run_graph(sub)) {
            rc = ierr(it, id, "step %lld: %s", (long long)t, sub->err);
            break;
        }
        for (int k = 0; k < nout; k++) {
            const TlTensor *y = &sub->val[body->outputs[k]];
            if (k < nc) {
                memcpy(res[k].data, y->data, (size_t)y->numel * tl_interp_storage_size(y->dtype));
                continue;
            }
            if (!res[k].data) {
                int64_t dim[TL_MAX_RANK];
                dim[0] = T;
                for (int d = 0; d < y->rank; d++) dim[d + 1] = y->dim[d];
                tensor_alloc(&res[k], y->dtype, y->rank + 1, dim);
            }
            size_t es = tl_interp_storage_size(y->dtype);
            memcpy((char *)res[k].data + (size_t)(t * y->numel) * es, y->data, (size_t)y->numel * es);
        }
    }
    tl_interp_free(sub);
    return rc;
}

static int eval_proj(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    const TlTensor *r = &it->scan_results[n->in[0]][n->axis];
    TlTensor *out = &it->val[id];
    if (!r->data) return 0; /* zero steps: the stacked output stays empty (all zero) */
    if (r->numel != out->numel) return ierr(it, id, "scan result has %lld elements, expected %lld", (long long)r->numel, (long long)out->numel);
    memcpy(out->data, r->data, (size_t)r->numel * tl_interp_storage_size(r->dtype));
    return 0;
}

static int eval_node(TlInterp *it, int id) {
    const TlGNode *n = &it->g->nodes[id];
    if (n->op == TL_GOP_SCAN) return eval_scan(it, id);
    if (alloc_result(it, id)) return -1;
    TlTensor *out = &it->val[id];
    switch (n->op) {
    case TL_GOP_INPUT:
    case TL_GOP_PARAM: {
        const TlTensor *gv = &it->given[id];
        if (!gv->data) return ierr(it, id, "no value was set");
        if (gv->numel != out->numel)
            return ierr(it, id, "value has %lld elements, shape needs %lld", (long long)gv->numel, (long long)out->numel);
        memcpy(out->data, gv->data, (size_t)out->numel * tl_interp_storage_size(out->dtype));
        return 0;
    }
    case TL_GOP_CONST:
        for (int64_t i = 0; i < out->numel; i++) setf(out, i, n->data ? n->data[i] : n->fill);
        return 0;
    case TL_GOP_RANDOM: return eval_random(it, id);
    case TL_GOP_IOTA: {
        int64_t idx[TL_MAX_RANK];
        for (int64_t i = 0; i < out->numel; i++) {
            unravel(i, out->rank, out->dim, idx);
            seti(out, i, idx[n->axis]);
        }
        return 0;
    }
    case TL_GOP_SUM:
    case TL_GOP_RMAX: return eval_reduce(it, id);
    case TL_GOP_CONTRACT: return eval_contract(it, id);
    case TL_GOP_RESHAPE:
    case TL_GOP_PERMUTE:
    case TL_GOP_BROADCAST:
    case TL_GOP_SLICE: return eval_movement(it, id);
    case TL_GOP_PAD: return eval_pad(it, id);
    case TL_GOP_CONCAT: return eval_concat(it, id);
    case TL_GOP_GATHER:
    case TL_GOP_SCATTER_ADD: return eval_gather_scatter(it, id);
    case TL_GOP_ATTN: return eval_attn(it, id);
    case TL_GOP_ATTN_GRAD: return eval_attn_grad(it, id);
    case TL_GOP_PROJ: return eval_proj(it, id);
    default:
        if (tl_gop_is_elementwise(n->op)) return eval_elementwise(it, id);
        return ierr(it, id, "the interpreter does not know this op");
    }
}

static int run_graph(TlInterp *it) {
    clear_values(it);
    it->err[0] = 0;
    for (int i = 0; i < it->g->nnodes; i++)
        if (eval_node(it, i)) return -1;
    return 0;
}

int tl_interp_run(TlInterp *it) {
    if (tl_graph_error(it->g)) return ierr(it, -1, "graph has an error: %s", tl_graph_error(it->g));
    return run_graph(it);
}
