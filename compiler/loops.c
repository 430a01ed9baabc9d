/* loops.c — Loop IR: construction, lowering from Graph IR (one kernel per op), schedule
 * transformations and evaluation. Printing is in loops_print.c. */
#include "loops.h"
#include "schedule_source.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_detect.h"
#include "fuse.h"
#include "interp.h"

#define GROW(arr, n, cap)                                                           \
    do {                                                                            \
        if ((n) == (cap)) {                                                         \
            (cap) = (cap) ? 2 * (cap) : 64;                                         \
            void *np_ = realloc((arr), sizeof *(arr) * (size_t)(cap));              \
            if (!np_) { fputs("tl: out of memory\n", stderr); abort(); }            \
            (arr) = np_;                                                            \
        }                                                                           \
    } while (0)

/* ---- types ---- */

TlLType tl_loops_storage_type(TlDType t) {
    switch (t) {
    case TL_F64: return TL_LT_F64;
    case TL_I32: return TL_LT_I32;
    case TL_I64: return TL_LT_I64;
    case TL_BOOL: return TL_LT_I8;
    default: return TL_LT_F32;
    }
}

TlLType tl_loops_compute_type(TlDType t) {
    switch (t) {
    case TL_F64: return TL_LT_F64;
    case TL_I32: case TL_I64: case TL_BOOL: return TL_LT_I64;
    default: return TL_LT_F32;
    }
}

const char *tl_ltype_name(TlLType t) {
    static const char *n[] = {"void", "i1", "i8", "i32", "i64", "f32", "f64"};
    return (unsigned)t < sizeof n / sizeof *n ? n[t] : "?";
}

int tl_ltype_is_float(TlLType t) { return t == TL_LT_F32 || t == TL_LT_F64; }

size_t tl_ltype_size(TlLType t) {
    switch (t) {
    case TL_LT_I1: case TL_LT_I8: return 1;
    case TL_LT_I32: case TL_LT_F32: return 4;
    case TL_LT_I64: case TL_LT_F64: return 8;
    default: return 0;
    }
}

/* ---- expressions ---- */

static int new_expr(TlLProgram *p, TlLExprKind k, TlLType t) {
    GROW(p->ex, p->nex, p->excap);
    TlLExpr *e = &p->ex[p->nex];
    memset(e, 0, sizeof *e);
    e->kind = k, e->type = t, e->a = e->b = e->c = -1, e->var = e->sym = e->buf = -1;
    return p->nex++;
}

int tl_loops_int(TlLProgram *p, TlLType t, int64_t v) {
    int e = new_expr(p, TL_LE_INT, t);
    p->ex[e].ival = v;
    return e;
}

int tl_loops_flt(TlLProgram *p, TlLType t, double v) {
    int e = new_expr(p, TL_LE_FLT, t);
    p->ex[e].fval = v;
    return e;
}

int tl_loops_var(TlLProgram *p, int var) {
    int e = new_expr(p, TL_LE_VAR, TL_LT_I64);
    p->ex[e].var = var;
    return e;
}

/* e's value when it is a constant, else -1 */
static int64_t const_or(const TlLProgram *p, int e) { return p->ex[e].kind == TL_LE_INT ? p->ex[e].ival : -1; }

int tl_loops_gemm_extent(TlLProgram *p, const TlLGemm *g) {
    int mr = tl_loops_int(p, TL_LT_I64, g->mr);
    int panels = tl_loops_bin(p, TL_LOP_IDIV, tl_loops_bin(p, TL_LOP_ADD, g->m, tl_loops_int(p, TL_LT_I64, g->mr - 1)), mr);
    int segs = g->nsplit > 1 ? tl_loops_bin(p, TL_LOP_MUL, g->batch, tl_loops_int(p, TL_LT_I64, g->nsplit)) : g->batch;
    return tl_loops_bin(p, TL_LOP_MUL, segs, panels);
}

static int is_int(const TlLProgram *p, int e, int64_t v) {
    return p->ex[e].kind == TL_LE_INT && p->ex[e].ival == v;
}

int tl_loops_bin(TlLProgram *p, TlLOp op, int a, int b) {
    TlLType t = op >= TL_LOP_EQ || op == TL_LOP_AND || op == TL_LOP_OR ? TL_LT_I1 : p->ex[a].type;
    /* fold the index arithmetic that loop nests produce most (x*1, x+0, constants) */
    if (t == TL_LT_I64 && p->ex[a].kind == TL_LE_INT && p->ex[b].kind == TL_LE_INT) {
        int64_t x = p->ex[a].ival, y = p->ex[b].ival;
        switch (op) {
        case TL_LOP_ADD: return tl_loops_int(p, t, x + y);
        case TL_LOP_SUB: return tl_loops_int(p, t, x - y);
        case TL_LOP_MUL: return tl_loops_int(p, t, x * y);
        case TL_LOP_IDIV: if (y > 0 && x >= 0) return tl_loops_int(p, t, x / y); break;
        case TL_LOP_MIN: return tl_loops_int(p, t, x < y ? x : y);
        case TL_LOP_MAX: return tl_loops_int(p, t, x > y ? x : y);
        default: break;
        }
    }
    if (t == TL_LT_I64) {
        if (op == TL_LOP_ADD && is_int(p, a, 0)) return b;
        if ((op == TL_LOP_ADD || op == TL_LOP_SUB) && is_int(p, b, 0)) return a;
        if (op == TL_LOP_MUL && (is_int(p, a, 0) || is_int(p, b, 1))) return a;
        if (op == TL_LOP_MUL && (is_int(p, b, 0) || is_int(p, a, 1))) return b;
        if (op == TL_LOP_IDIV && is_int(p, b, 1)) return a;
    }
    int e = new_expr(p, TL_LE_BIN, t);
    p->ex[e].op = op, p->ex[e].a = a, p->ex[e].b = b;
    return e;
}

int tl_loops_un(TlLProgram *p, TlLOp op, int a) {
    int e = new_expr(p, TL_LE_UN, p->ex[a].type);
    p->ex[e].op = op, p->ex[e].a = a;
    return e;
}

int tl_loops_cast(TlLProgram *p, int a, TlLType t) {
    if (p->ex[a].type == t) return a;
    int e = new_expr(p, TL_LE_CAST, t);
    p->ex[e].a = a;
    return e;
}

int tl_loops_select(TlLProgram *p, int c, int a, int b) {
    int e = new_expr(p, TL_LE_SELECT, p->ex[a].type);
    p->ex[e].a = c, p->ex[e].b = a, p->ex[e].c = b;
    return e;
}

int tl_loops_load(TlLProgram *p, int buf, int index) {
    int e = new_expr(p, TL_LE_LOAD, p->buf[buf].elem);
    p->ex[e].buf = buf, p->ex[e].a = index;
    return e;
}

static int local_ref(TlLProgram *p, TlLKernel *k, int local) {
    int e = new_expr(p, TL_LE_LOCAL, k->local_type[local]);
    p->ex[e].var = local;
    return e;
}

int tl_loops_new_var(TlLProgram *p) { return p->nvars++; }

/* ---- statements ---- */

static int new_stmt(TlLProgram *p, TlLStmtKind k) {
    GROW(p->st, p->nst, p->stcap);
    TlLStmt *s = &p->st[p->nst];
    memset(s, 0, sizeof *s);
    s->kind = k, s->var = -1, s->lo = s->hi = -1, s->buf = s->index = s->value = -1;
    s->cond = -1, s->body = s->els = s->next = -1;
    return p->nst++;
}

int tl_loops_loop(TlLProgram *p, int var, int lo, int hi) {
    int s = new_stmt(p, TL_LS_LOOP);
    p->st[s].var = var, p->st[s].lo = lo, p->st[s].hi = hi, p->st[s].axis = -1;
    return s;
}

int tl_loops_store(TlLProgram *p, int buf, int index, int value) {
    int s = new_stmt(p, TL_LS_STORE);
    p->st[s].buf = buf, p->st[s].index = index, p->st[s].value = value;
    return s;
}

static int set_stmt(TlLProgram *p, int local, int value) {
    int s = new_stmt(p, TL_LS_SET);
    p->st[s].var = local, p->st[s].value = value;
    return s;
}

/* Append statement s to the list starting at *head. */
static void append(TlLProgram *p, int *head, int s) {
    if (*head < 0) { *head = s; return; }
    int t = *head;
    while (p->st[t].next >= 0) t = p->st[t].next;
    p->st[t].next = s;
}

/* ---- host ops ---- */

static int new_host(TlLProgram *p, TlLHostKind k) {
    GROW(p->host, p->nhost, p->hostcap);
    TlLHost *h = &p->host[p->nhost];
    memset(h, 0, sizeof *h);
    h->kind = k, h->kernel = h->dst = h->src = -1, h->dst_off = h->src_off = h->nbytes = -1;
    h->var = h->count = -1, h->body = h->next = -1;
    return p->nhost++;
}

/* Append host op h to the body of host loop `parent` (-1: the program's entry list). */
static void host_append(TlLProgram *p, int parent, int h) {
    int *head = parent >= 0 ? &p->host[parent].body : &p->entry;
    if (*head < 0) { *head = h; return; }
    int t = *head;
    while (p->host[t].next >= 0) t = p->host[t].next;
    p->host[t].next = h;
}

/* ---- evaluation ---- */

int64_t tl_loops_eval(const TlLProgram *p, int e, const int64_t *syms) {
    const TlLExpr *x = &p->ex[e];
    switch (x->kind) {
    case TL_LE_INT: return x->ival;
    case TL_LE_SYM: return syms[x->sym];
    case TL_LE_BIN: {
        int64_t a = tl_loops_eval(p, x->a, syms), b = tl_loops_eval(p, x->b, syms);
        switch (x->op) {
        case TL_LOP_ADD: return a + b;
        case TL_LOP_SUB: return a - b;
        case TL_LOP_MUL: return a * b;
        case TL_LOP_IDIV: case TL_LOP_DIV: return b ? a / b : 0;
        case TL_LOP_IMOD: return b ? a % b : 0;
        case TL_LOP_MIN: return a < b ? a : b;
        case TL_LOP_MAX: return a > b ? a : b;
        default: return 0;
        }
    }
    default: return 0;
    }
}

/* ---- lowering ---- */

typedef struct Lower {
    TlLProgram *p;
    const TlGraph *g;   /* the graph being lowered (top or a body) */
    int *nbuf;          /* node -> buffer of this graph */
    int depth;
    int host;           /* the host loop being appended to (-1: the entry list) */
    TlLKernel *k;       /* the kernel being built */
    const TlFusion *fz; /* the partition of g when lowering with fusion, else NULL */
} Lower;

static int lerr(Lower *L, int node, const char *fmt, ...) {
    if (L->p->err[0]) return -1;
    int n = snprintf(L->p->err, sizeof L->p->err, "%%%d (%s): ", node, tl_gop_name(L->g->nodes[node].op));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->p->err + n, sizeof L->p->err - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int sym_id(TlLProgram *p, const char *name) {
    for (int i = 0; i < p->nsyms; i++)
        if (strcmp(p->syms[i], name) == 0) return i;
    GROW(p->syms, p->nsyms, p->symcap);
    p->syms[p->nsyms] = name;
    return p->nsyms++;
}

/* A Graph IR dim as an i64 expression over the syms. */
static int dim_expr(Lower *L, TlGDim d) {
    const TlGDimExpr *x = tl_gdim_expr(L->g, d);
    switch (x->kind) {
    case TL_GDIM_CONST: return tl_loops_int(L->p, TL_LT_I64, x->value);
    case TL_GDIM_SYM: {
        int e = new_expr(L->p, TL_LE_SYM, TL_LT_I64);
        L->p->ex[e].sym = sym_id(L->p, x->name);
        return e;
    }
    case TL_GDIM_ADD: return tl_loops_bin(L->p, TL_LOP_ADD, dim_expr(L, x->a), dim_expr(L, x->b));
    case TL_GDIM_MUL: return tl_loops_bin(L->p, TL_LOP_MUL, dim_expr(L, x->a), dim_expr(L, x->b));
    case TL_GDIM_DIV: return tl_loops_bin(L->p, TL_LOP_IDIV, dim_expr(L, x->a), dim_expr(L, x->b));
    }
    return tl_loops_int(L->p, TL_LT_I64, 0);
}

static int numel_expr(Lower *L, const TlGShape *s) {
    int e = tl_loops_int(L->p, TL_LT_I64, 1);
    for (int i = 0; i < s->rank; i++) e = tl_loops_bin(L->p, TL_LOP_MUL, e, dim_expr(L, s->dim[i]));
    return e;
}

static int new_buf(Lower *L, TlLBufKind kind, TlDType dt, int numel, int node) {
    TlLProgram *p = L->p;
    GROW(p->buf, p->nbuf, p->bufcap);
    TlLBuf *b = &p->buf[p->nbuf];
    memset(b, 0, sizeof *b);
    b->kind = kind, b->dtype = dt, b->elem = tl_loops_storage_type(dt), b->numel = numel;
    b->node = node, b->depth = L->depth;
    return p->nbuf++;
}

static TlLKernel *new_kernel(Lower *L, int node, const char *what) {
    TlLProgram *p = L->p;
    GROW(p->kern, p->nkern, p->kerncap);
    TlLKernel *k = &p->kern[p->nkern];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "tl_k%d_%s", p->nkern, what);
    k->node = node, k->body = -1, k->par_extent = -1;
    k->sched = node >= 0 ? L->g->nodes[node].sched : NULL;
    k->sched_kernel = node >= 0 ? L->g->nodes[node].sched_kernel : NULL;
    for (int i = 0; i < TL_SCHED_MAX_SHARED; i++) { /* the arguments are lowered before their consumer */
        int a = node >= 0 ? L->g->nodes[node].sched_shared[i] - 1 : -1;
        k->sched_shared_buf[i] = a >= 0 && a < L->g->nnodes ? L->nbuf[a] : -1;
    }
    int h = new_host(p, TL_LH_KERNEL);
    p->host[h].kernel = p->nkern++;
    host_append(p, L->host, h);
    L->k = k;
    return k;
}

static int new_local(TlLKernel *k, TlLType t) {
    TlLType *nt = realloc(k->local_type, sizeof *nt * (size_t)(k->nlocals + 1));
    if (!nt) abort();
    k->local_type = nt;
    nt[k->nlocals] = t;
    return k->nlocals++;
}

/* A loop nest over dims[0..rank): vars[i] are its variables, nested in loop statement
 * `parent` (-1: at the top of the kernel body). The outermost loop of the kernel is the
 * parallel one. Statements are referred to by id, never by pointer: the pools grow. */
typedef struct Nest { int outer, innermost, parent; } Nest;

static void add_to(Lower *L, int parent, int s) {
    if (parent >= 0) append(L->p, &L->p->st[parent].body, s);
    else append(L->p, &L->k->body, s);
}

/* Append s inside the innermost loop of n (or where the nest would be, when empty). */
static void nest_add(Lower *L, Nest n, int s) { add_to(L, n.innermost >= 0 ? n.innermost : n.parent, s); }

/* axes: each loop's TlLStmt.axis (NULL: 0, 1, ... the result's axes in order). */
static Nest open_nest_axes(Lower *L, int parent, int rank, const int *dims, int *vars, int parallel, const int *axes) {
    Nest n = {-1, -1, parent};
    int at = parent;
    for (int i = 0; i < rank; i++) {
        vars[i] = tl_loops_new_var(L->p);
        int s = tl_loops_loop(L->p, vars[i], tl_loops_int(L->p, TL_LT_I64, 0), dims[i]);
        L->p->st[s].axis = axes ? axes[i] : i;
        add_to(L, at, s);
        if (i == 0) {
            n.outer = s;
            if (parallel && parent < 0 && L->k->par_extent < 0) {
                L->p->st[s].sched.parallel = 1;
                L->k->par_extent = dims[i];
            }
        }
        n.innermost = at = s;
    }
    return n;
}

static Nest open_nest(Lower *L, int parent, int rank, const int *dims, int *vars, int parallel) {
    return open_nest_axes(L, parent, rank, dims, vars, parallel, NULL);
}

/* Axis labels for reduced loops: -2, -3, ... */
static const int *reduced_axes(int *buf, int n) {
    for (int i = 0; i < n; i++) buf[i] = -2 - i;
    return buf;
}

static void mark_vector(Lower *L, Nest n) {
    if (n.innermost >= 0) L->p->st[n.innermost].sched.vectorize = 1;
}

/* Row-major offset of the index vars[0..rank) in dims[0..rank). */
static int ravel(Lower *L, int rank, const int *idx, const int *dims) {
    int e = tl_loops_int(L->p, TL_LT_I64, 0);
    for (int i = 0; i < rank; i++)
        e = tl_loops_bin(L->p, TL_LOP_ADD, tl_loops_bin(L->p, TL_LOP_MUL, e, dims[i]), idx[i]);
    return e;
}

static void shape_dims(Lower *L, const TlGShape *s, int *dims) {
    for (int i = 0; i < s->rank; i++) dims[i] = dim_expr(L, s->dim[i]);
}

static int vars_exprs(Lower *L, int n, const int *vars, int *out) {
    for (int i = 0; i < n; i++) out[i] = tl_loops_var(L->p, vars[i]);
    return n;
}

/* Load operand `node` at index, converted to the compute type of `as`. */
static int load_as(Lower *L, int node, int index, TlDType as) {
    const TlGNode *x = &L->g->nodes[node];
    int v = tl_loops_load(L->p, L->nbuf[node], index);
    TlLType ct = tl_loops_compute_type(as);
    if (x->dtype == TL_BOOL && tl_ltype_is_float(ct)) v = tl_loops_cast(L->p, v, TL_LT_I64);
    return tl_loops_cast(L->p, v, ct);
}

/* Convert a compute value to the storage of dtype dt (rounding bf16/f16). */
static int to_storage(Lower *L, int v, TlDType dt) {
    TlLType st = tl_loops_storage_type(dt);
    if (dt == TL_BOOL) return tl_loops_cast(L->p, v, TL_LT_I8);
    if (tl_ltype_is_float(st) && !tl_ltype_is_float(L->p->ex[v].type)) v = tl_loops_cast(L->p, v, st);
    v = tl_loops_cast(L->p, v, st);
    if (dt == TL_BF16 || dt == TL_F16) {
        int e = new_expr(L->p, TL_LE_ROUND, TL_LT_F32);
        L->p->ex[e].a = v, L->p->ex[e].dtype = dt;
        v = e;
    }
    return v;
}

/* A constant of the storage type of dt holding v as the interpreter stores it. */
static int const_storage(Lower *L, double v, TlDType dt) {
    double r = tl_interp_round(dt, v);
    TlLType st = tl_loops_storage_type(dt);
    if (tl_ltype_is_float(st)) return tl_loops_flt(L->p, st, r);
    if (dt == TL_BOOL) return tl_loops_int(L->p, st, v != 0);
    return tl_loops_int(L->p, st, (int64_t)r);
}

static TlLOp lop_of(TlGOp op) {
    switch (op) {
    case TL_GOP_NEG: return TL_LOP_NEG; case TL_GOP_EXP: return TL_LOP_EXP;
    case TL_GOP_LOG: return TL_LOP_LOG; case TL_GOP_SQRT: return TL_LOP_SQRT;
    case TL_GOP_RSQRT: return TL_LOP_RSQRT; case TL_GOP_TANH: return TL_LOP_TANH;
    case TL_GOP_ERF: return TL_LOP_ERF; case TL_GOP_SIN: return TL_LOP_SIN;
    case TL_GOP_COS: return TL_LOP_COS; case TL_GOP_ABS: return TL_LOP_ABS;
    case TL_GOP_ADD: return TL_LOP_ADD; case TL_GOP_SUB: return TL_LOP_SUB;
    case TL_GOP_MUL: return TL_LOP_MUL; case TL_GOP_DIV: return TL_LOP_DIV;
    case TL_GOP_POW: return TL_LOP_POW; case TL_GOP_MAX: return TL_LOP_MAX;
    case TL_GOP_MIN: return TL_LOP_MIN; case TL_GOP_EQ: return TL_LOP_EQ;
    case TL_GOP_NE: return TL_LOP_NE; case TL_GOP_LT: return TL_LOP_LT;
    case TL_GOP_LE: return TL_LOP_LE; case TL_GOP_GT: return TL_LOP_GT;
    case TL_GOP_GE: return TL_LOP_GE;
    default: return TL_LOP_COUNT;
    }
}

/* The value of an elementwise node at flat index `flat`, in its compute type. */
static int elementwise_value(Lower *L, int id, int flat, const int *vars) {
    const TlGNode *n = &L->g->nodes[id];
    TlLProgram *p = L->p;
    switch (n->op) {
    case TL_GOP_CONST: {
        TlLType ct = tl_loops_compute_type(n->dtype);
        double v = tl_interp_round(n->dtype, n->fill);
        return tl_ltype_is_float(ct) ? tl_loops_flt(p, ct, v) : tl_loops_int(p, ct, n->dtype == TL_BOOL ? v != 0 : (int64_t)v);
    }
    case TL_GOP_IOTA: {
        int v = tl_loops_var(p, vars[n->axis]);
        return tl_loops_cast(p, v, tl_loops_compute_type(n->dtype));
    }
    case TL_GOP_RANDOM: {
        int e = new_expr(p, TL_LE_RANDOM, TL_LT_F64);
        p->ex[e].a = flat;
        p->ex[e].b = n->nin ? load_as(L, n->in[0], tl_loops_int(p, TL_LT_I64, 0), TL_I64)
                            : tl_loops_int(p, TL_LT_I64, (int64_t)n->seed);
        p->ex[e].offset = n->offset, p->ex[e].dist = n->dist;
        TlLType ct = tl_loops_compute_type(n->dtype);
        return tl_loops_cast(p, e, ct);
    }
    case TL_GOP_SELECT: {
        int c = tl_loops_cast(p, tl_loops_load(p, L->nbuf[n->in[0]], flat), TL_LT_I1);
        return tl_loops_select(p, c, load_as(L, n->in[1], flat, n->dtype), load_as(L, n->in[2], flat, n->dtype));
    }
    case TL_GOP_CAST: {
        TlDType from = L->g->nodes[n->in[0]].dtype;
        int x = load_as(L, n->in[0], flat, from);
        if (n->dtype == TL_BOOL) return tl_loops_cast(p, tl_loops_cast(p, x, TL_LT_I1), TL_LT_I64);
        return tl_loops_cast(p, x, tl_loops_compute_type(n->dtype));
    }
    default: break;
    }
    if (tl_gop_is_unary(n->op)) return tl_loops_un(p, lop_of(n->op), load_as(L, n->in[0], flat, n->dtype));
    TlDType od = L->g->nodes[n->in[0]].dtype;
    int a = load_as(L, n->in[0], flat, od), b = load_as(L, n->in[1], flat, od);
    int v = tl_loops_bin(p, lop_of(n->op), a, b);
    if (tl_gop_is_compare(n->op)) v = tl_loops_cast(p, v, TL_LT_I64);
    return v;
}

/* out[i..] = f(operands[i..]) over the output's shape. */
static int lower_pointwise(Lower *L, int id) {
    const TlGNode *n = &L->g->nodes[id];
    new_kernel(L, id, tl_gop_name(n->op));
    int dims[TL_MAX_RANK], vars[TL_MAX_RANK], ix[TL_MAX_RANK];
    shape_dims(L, &n->shape, dims);
    Nest nest = open_nest(L, -1, n->shape.rank, dims, vars, 1);
    mark_vector(L, nest);
    int flat = ravel(L, n->shape.rank, (vars_exprs(L, n->shape.rank, vars, ix), ix), dims);
    int v = to_storage(L, elementwise_value(L, id, flat, vars), n->dtype);
    nest_add(L, nest, tl_loops_store(L->p, L->nbuf[id], flat, v));
    return 0;
}

/* acc = init; for reduced axes: acc = acc (+|max) x[..]; out[o] = acc. */
static int lower_reduce(Lower *L, int id) {
    const TlGNode *n = &L->g->nodes[id];
    const TlGNode *x = &L->g->nodes[n->in[0]];
    TlLProgram *p = L->p;
    TlLKernel *k = new_kernel(L, id, tl_gop_name(n->op));
    int xd[TL_MAX_RANK], kept[TL_MAX_RANK], red[TL_MAX_RANK], kv[TL_MAX_RANK], rv[TL_MAX_RANK];
    int nk = 0, nr = 0;
    shape_dims(L, &x->shape, xd);
    for (int i = 0; i < x->shape.rank; i++)
        if (n->axes >> i & 1) red[nr++] = xd[i];
        else kept[nk++] = xd[i];
    int kax[TL_MAX_RANK], rax[TL_MAX_RANK];
    for (int i = 0, j = 0; i < x->shape.rank; i++)
        if (!(n->axes >> i & 1)) kax[j] = n->keepdims ? i : j, j++;
    Nest outer = open_nest_axes(L, -1, nk, kept, kv, 1, kax);
    int isf = tl_dtype_is_float(x->dtype);
    TlLType at = isf ? TL_LT_F64 : TL_LT_I64;
    int acc = new_local(k, at);
    int sum = n->op == TL_GOP_SUM;
    int init = isf ? tl_loops_flt(p, at, sum ? 0.0 : -INFINITY) : tl_loops_int(p, at, sum ? 0 : INT64_MIN);
    nest_add(L, outer, set_stmt(p, acc, init));
    Nest inner = open_nest_axes(L, outer.innermost >= 0 ? outer.innermost : -1, nr, red, rv, 0, reduced_axes(rax, nr));
    mark_vector(L, inner.innermost >= 0 ? inner : outer);
    int xi[TL_MAX_RANK], a = 0, b = 0;
    for (int i = 0; i < x->shape.rank; i++)
        xi[i] = tl_loops_var(p, (n->axes >> i & 1) ? rv[a++] : kv[b++]);
    int v = tl_loops_cast(p, load_as(L, n->in[0], ravel(L, x->shape.rank, xi, xd), x->dtype), at);
    int cur = local_ref(p, k, acc), upd;
    if (sum) upd = tl_loops_bin(p, TL_LOP_ADD, cur, v);
    else if (isf) /* v > acc || isnan(v) */
        upd = tl_loops_select(p, tl_loops_bin(p, TL_LOP_OR, tl_loops_bin(p, TL_LOP_GT, v, cur), tl_loops_bin(p, TL_LOP_NE, v, v)), v, cur);
    else upd = tl_loops_bin(p, TL_LOP_MAX, cur, v);
    nest_add(L, inner, set_stmt(p, acc, upd));
    int ki[TL_MAX_RANK];
    int o = ravel(L, nk, (vars_exprs(L, nk, kv, ki), ki), kept);
    int out = tl_loops_cast(p, local_ref(p, k, acc), tl_loops_compute_type(n->dtype));
    nest_add(L, outer, tl_loops_store(p, L->nbuf[id], o, to_storage(L, out, n->dtype)));
    return 0;
}

/* ---- matmul contractions as TlLGemm ----
 * Letters of a two-operand contraction fall in four classes: batch (in a, b and out), m (a
 * and out), n (b and out), k (a and b). The contraction is a batched matmul when each
 * class's letters form one contiguous run, in one order, in every tensor holding them
 * (so the run is one merged axis with one stride: the tensors are row-major), k is not
 * empty, and out's last letter is an n letter (or an m one: then A and B swap roles). */
enum { GB, GM, GN, GK };

static int letter_class(const TlContractSpec *cs, char l) {
    int ia = memchr(cs->in[0], l, (size_t)cs->rank[0]) != NULL, ib = memchr(cs->in[1], l, (size_t)cs->rank[1]) != NULL;
    int io = memchr(cs->out, l, (size_t)cs->out_rank) != NULL;
    if (ia && ib) return io ? GB : GK;
    if (io) return ia ? GM : GN;
    return -1; /* summed over one operand only */
}

typedef struct GemmView { const char *let; int rank; int dims[TL_MAX_RANK]; } GemmView;

/* The merged axis of letters run[0..n) in view v: its stride (an expr; 0 when the class is
 * absent from v), or -1 when the letters are not one contiguous run in that order. */
static int run_stride(Lower *L, const GemmView *v, const char *run, int n) {
    int pos = -1, found = 0;
    for (int j = 0; j < n; j++) {
        const char *q = memchr(v->let, run[j], (size_t)v->rank);
        if (!q) continue;
        int at = (int)(q - v->let);
        if (found && at != pos + 1) return -1;
        pos = at, found++;
    }
    if (!found) return tl_loops_int(L->p, TL_LT_I64, 0);
    if (found != n) return -1;
    int s = tl_loops_int(L->p, TL_LT_I64, 1);
    for (int j = pos + 1; j < v->rank; j++) s = tl_loops_bin(L->p, TL_LOP_MUL, s, v->dims[j]);
    return s;
}

/* A fused `gemm` group's epilogue for match_gemm: C is the root's buffer, value the root's
 * stored value over the domain variables dvar (one per output axis) and the local acc. */
typedef struct GemmEpi { int c, value, acc; const int *dvar; } GemmEpi;

static int subst(TlLProgram *p, int e, int var, int r);

/* Output axis j's index in terms of its class's merged GEMM coordinate cv:
 * (cv / product of the dims after it in the run) % its dim (dropping what is trivial). */
static int unmerge(Lower *L, int cv, const char *run, int nrun, const GemmView *out, int j) {
    TlLProgram *p = L->p;
    int q = (int)((const char *)memchr(run, out->let[j], (size_t)nrun) - run);
    int e = tl_loops_var(p, cv);
    int after = tl_loops_int(p, TL_LT_I64, 1);
    for (int r = q + 1; r < nrun; r++) {
        int at = (int)((const char *)memchr(out->let, run[r], (size_t)out->rank) - out->let);
        after = tl_loops_bin(p, TL_LOP_MUL, after, out->dims[at]);
    }
    if (q + 1 < nrun) e = tl_loops_bin(p, TL_LOP_IDIV, e, after);
    if (q > 0) e = tl_loops_bin(p, TL_LOP_IMOD, e, out->dims[j]);
    return e;
}

static void match_gemm(Lower *L, int id, TlLKernel *k, const TlContractSpec *cs, const GemmEpi *epi) {
    const TlGNode *n = &L->g->nodes[id];
    TlLProgram *p = L->p;
    if (cs->nin != 2 || cs->out_rank == 0 || (n->dtype != TL_F32 && n->dtype != TL_BF16 && n->dtype != TL_F16)) return;
    const TlGNode *x[2] = {&L->g->nodes[n->in[0]], &L->g->nodes[n->in[1]]};
    if (x[0]->dtype != n->dtype || x[1]->dtype != n->dtype) return;
    char run[4][2 * TL_MAX_RANK];
    int nrun[4] = {0, 0, 0, 0}, size[4];
    for (int c = 0; c < 4; c++) size[c] = tl_loops_int(p, TL_LT_I64, 1);
    GemmView v[3] = {{cs->in[0], cs->rank[0], {0}}, {cs->in[1], cs->rank[1], {0}}, {cs->out, cs->out_rank, {0}}};
    shape_dims(L, &x[0]->shape, v[0].dims);
    shape_dims(L, &x[1]->shape, v[1].dims);
    shape_dims(L, &n->shape, v[2].dims);
    for (int t = 0; t < 2; t++)
        for (int j = 0; j < cs->rank[t]; j++) {
            char l = cs->in[t][j];
            int c = letter_class(cs, l);
            if (c < 0) return;
            if (memchr(run[c], l, (size_t)nrun[c])) continue;
            run[c][nrun[c]++] = l;
            size[c] = tl_loops_bin(p, TL_LOP_MUL, size[c], v[t].dims[j]);
        }
    if (!nrun[GK]) return;
    int last = letter_class(cs, cs->out[cs->out_rank - 1]);
    if (last != GM && last != GN) return;
    int st[3][4]; /* per view, per class */
    for (int t = 0; t < 3; t++)
        for (int c = 0; c < 4; c++)
            if ((st[t][c] = run_stride(L, &v[t], run[c], nrun[c])) < 0) return;
    int A = last == GN ? 0 : 1, B = 1 - A, M = last == GN ? GM : GN, N = last == GN ? GN : GM;
    TlGemmBlocking bl = tl_host_gemm_blocking(tl_host_cpu());
    TlLGemm *g = &k->gemm;
    g->on = 1;
    g->dtype = n->dtype;
    g->a = L->nbuf[n->in[A]], g->b = L->nbuf[n->in[B]], g->c = L->nbuf[id];
    g->batch = size[GB], g->m = size[M], g->n = size[N], g->k = size[GK];
    g->sa_b = st[A][GB], g->sa_m = st[A][M], g->sa_k = st[A][GK];
    g->sb_b = st[B][GB], g->sb_k = st[B][GK], g->sb_n = st[B][N];
    g->sc_b = st[2][GB], g->sc_m = st[2][M];
    g->mr = bl.mr, g->nr = bl.nr, g->kc = bl.kc, g->mc = bl.mc, g->nc = bl.nc, g->ku = bl.ku;
    /* bf16 (vdpbf16ps, k in pairs of 2-byte values): 4x the f32 depth, the best measured on
     * Zen 4 (1024: 1024^3 164 -> ~185 GFLOPS, K = 1024 GPT shapes +20-30%; docs/performance.md);
     * an explicit TL_GEMM_BLOCKING is taken as given */
    if (n->dtype == TL_BF16 && !getenv("TL_GEMM_BLOCKING")) g->kc = 4 * bl.kc;
    g->prefetch = bl.prefetch;
    /* column strips: the f32 generator's (the bf16 one has row panels only) */
    g->nsplit = n->dtype != TL_F32 ? 1
                : tl_host_gemm_nsplit(tl_host_cpu(), &bl, const_or(p, g->batch), const_or(p, g->m), const_or(p, g->n), const_or(p, g->k));
    g->par_extent = tl_loops_gemm_extent(p, g);
    if (!epi) return;
    /* C is the group's root (same shape as the contraction); the domain variables become
     * functions of the GEMM's (b, i, j) */
    g->c = epi->c, g->has_epi = 1, g->epi_acc = epi->acc;
    g->ev_b = tl_loops_new_var(p), g->ev_i = tl_loops_new_var(p), g->ev_j = tl_loops_new_var(p);
    int e = epi->value;
    for (int j = 0; j < cs->out_rank; j++) {
        int c = letter_class(cs, cs->out[j]);
        int cv = c == GB ? g->ev_b : c == M ? g->ev_i : g->ev_j;
        e = subst(p, e, epi->dvar[j], unmerge(L, cv, run[c], nrun[c], &v[2], j));
    }
    g->epi = e;
}

/* out[o..] = sum over the summed letters of a[..] * b[..] (accumulated in f64 / i64). A
 * matmul also gets a TlLGemm (match_gemm) that fast back ends compile instead. */
static int lower_contract(Lower *L, int id) {
    const TlGNode *n = &L->g->nodes[id];
    TlLProgram *p = L->p;
    TlContractSpec cs;
    if (tl_contract_parse(n->spec, &cs, NULL, 0)) return lerr(L, id, "bad spec");
    TlLKernel *k = new_kernel(L, id, "contract");
    char letters[2 * TL_MAX_RANK];
    int size[2 * TL_MAX_RANK], var[2 * TL_MAX_RANK], nl = 0;
    for (int j = 0; j < cs.out_rank; j++) letters[nl++] = cs.out[j];
    int nout = nl;
    for (int t = 0; t < cs.nin; t++)
        for (int j = 0; j < cs.rank[t]; j++)
            if (!memchr(letters, cs.in[t][j], (size_t)nl)) letters[nl++] = cs.in[t][j];
    for (int l = 0; l < nl; l++)
        for (int t = 0; t < cs.nin; t++)
            for (int j = 0; j < cs.rank[t]; j++)
                if (cs.in[t][j] == letters[l]) size[l] = dim_expr(L, L->g->nodes[n->in[t]].shape.dim[j]);
    Nest outer = open_nest(L, -1, nout, size, var, 1);
    int isf = tl_dtype_is_float(n->dtype);
    TlLType at = isf ? TL_LT_F64 : TL_LT_I64;
    int acc = new_local(k, at);
    nest_add(L, outer, set_stmt(p, acc, isf ? tl_loops_flt(p, at, 0) : tl_loops_int(p, at, 0)));
    int rax[2 * TL_MAX_RANK];
    Nest inner = open_nest_axes(L, outer.innermost >= 0 ? outer.innermost : -1, nl - nout, size + nout, var + nout, 0,
                                reduced_axes(rax, nl - nout));
    mark_vector(L, inner.innermost >= 0 ? inner : outer);
    int prod = -1;
    for (int t = 0; t < cs.nin; t++) {
        const TlGNode *x = &L->g->nodes[n->in[t]];
        int xi[TL_MAX_RANK], xd[TL_MAX_RANK];
        shape_dims(L, &x->shape, xd);
        for (int j = 0; j < cs.rank[t]; j++)
            for (int l = 0; l < nl; l++)
                if (letters[l] == cs.in[t][j]) xi[j] = tl_loops_var(p, var[l]);
        int v = tl_loops_cast(p, load_as(L, n->in[t], ravel(L, x->shape.rank, xi, xd), x->dtype), at);
        prod = prod < 0 ? v : tl_loops_bin(p, TL_LOP_MUL, prod, v);
    }
    nest_add(L, inner, set_stmt(p, acc, tl_loops_bin(p, TL_LOP_ADD, local_ref(p, k, acc), prod)));
    int oi[TL_MAX_RANK];
    int o = ravel(L, nout, (vars_exprs(L, nout, var, oi), oi), size);
    int out = tl_loops_cast(p, local_ref(p, k, acc), tl_loops_compute_type(n->dtype));
    nest_add(L, outer, tl_loops_store(p, L->nbuf[id], o, to_storage(L, out, n->dtype)));
    match_gemm(L, id, k, &cs, NULL);
    return 0;
}

/* reshape, permute, broadcast, slice: out[o..] = x[f(o..)] (copied bits, exact). */
static int lower_movement(Lower *L, int id) {
    const TlGNode *n = &L->g->nodes[id];
    const TlGNode *x = &L->g->nodes[n->in[0]];
    TlLProgram *p = L->p;
    new_kernel(L, id, tl_gop_name(n->op));
    int od[TL_MAX_RANK], xd[TL_MAX_RANK], ov[TL_MAX_RANK], oi[TL_MAX_RANK], xi[TL_MAX_RANK];
    shape_dims(L, &n->shape, od);
    shape_dims(L, &x->shape, xd);
    int r = n->shape.rank, xr = x->shape.rank;
    Nest nest = open_nest(L, -1, r, od, ov, 1);
    mark_vector(L, nest);
    vars_exprs(L, r, ov, oi);
    int flat = ravel(L, r, oi, od), src;
    if (n->op == TL_GOP_RESHAPE) {
        src = flat;
    } else {
        for (int k = 0; k < xr; k++) {
            int64_t one;
            if (n->op == TL_GOP_PERMUTE) xi[n->perm[k]] = oi[k];
            else if (n->op == TL_GOP_BROADCAST)
                xi[k] = tl_gdim_is_const(L->g, x->shape.dim[k], &one) && one == 1 ? tl_loops_int(p, TL_LT_I64, 0) : oi[r - xr + k];
            else /* slice */
                xi[k] = tl_loops_bin(p, TL_LOP_ADD, dim_expr(L, n->lo[k]), tl_loops_bin(p, TL_LOP_MUL, oi[k], tl_loops_int(p, TL_LT_I64, n->step[k])));
        }
        src = ravel(L, xr, xi, xd);
    }
    nest_add(L, nest, tl_loops_store(p, L->nbuf[id], flat, tl_loops_load(p, L->nbuf[n->in[0]], src)));
    return 0;
}

/* out[o] = x[(o - lo) / (interior+1)] where that lands on an element, else fill. */
static int lower_pad(Lower *L, int id) {
    const TlGNode *n = &L->g->nodes[id];
    const TlGNode *x = &L->g->nodes[n->in[0]];
    TlLProgram *p = L->p;
    new_kernel(L, id, "pad");
    int od[TL_MAX_RANK], xd[TL_MAX_RANK], ov[TL_MAX_RANK], oi[TL_MAX_RANK] = {0}, xi[TL_MAX_RANK];
    shape_dims(L, &n->shape, od);
    shape_dims(L, &x->shape, xd);
    int r = n->shape.rank;
    Nest nest = open_nest(L, -1, r, od, ov, 1);
    mark_vector(L, nest);
    vars_exprs(L, r, ov, oi);
    int flat = ravel(L, r, oi, od);
    int ok = tl_loops_int(p, TL_LT_I1, 1);
    for (int k = 0; k < r; k++) {
        int d = tl_loops_bin(p, TL_LOP_SUB, oi[k], dim_expr(L, n->lo[k]));
        int st = tl_loops_int(p, TL_LT_I64, n->step[k] + 1);
        int zero = tl_loops_int(p, TL_LT_I64, 0);
        int c = tl_loops_bin(p, TL_LOP_GE, d, zero);
        int q = tl_loops_bin(p, TL_LOP_IDIV, d, st);
        if (n->step[k] > 0) c = tl_loops_bin(p, TL_LOP_AND, c, tl_loops_bin(p, TL_LOP_EQ, tl_loops_bin(p, TL_LOP_IMOD, d, st), zero));
        c = tl_loops_bin(p, TL_LOP_AND, c, tl_loops_bin(p, TL_LOP_LT, q, xd[k]));
        ok = k == 0 ? c : tl_loops_bin(p, TL_LOP_AND, ok, c);
        xi[k] = q;
    }
    int then = tl_loops_store(p, L->nbuf[id], flat, tl_loops_load(p, L->nbuf[n->in[0]], ravel(L, r, xi, xd)));
    int els = tl_loops_store(p, L->nbuf[id], flat, const_storage(L, n->fill, n->dtype));
    int s = new_stmt(p, TL_LS_IF);
    p->st[s].cond = ok, p->st[s].body = then, p->st[s].els = els;
    nest_add(L, nest, s);
    return 0;
}

/* One kernel per operand: out[.., base_k + i, ..] = x_k[.., i, ..]. */
static int lower_concat(Lower *L, int id) {
    const TlGNode *n = &L->g->nodes[id];
    TlLProgram *p = L->p;
    int od[TL_MAX_RANK];
    shape_dims(L, &n->shape, od);
    int base = tl_loops_int(p, TL_LT_I64, 0);
    for (int t = 0; t < n->nin; t++) {
        const TlGNode *x = &L->g->nodes[n->in[t]];
        new_kernel(L, id, "concat");
        int xd[TL_MAX_RANK], xv[TL_MAX_RANK], xi[TL_MAX_RANK];
        shape_dims(L, &x->shape, xd);
        Nest nest = open_nest(L, -1, x->shape.rank, xd, xv, 1);
        mark_vector(L, nest);
        vars_exprs(L, x->shape.rank, xv, xi);
        int src = ravel(L, x->shape.rank, xi, xd);
        xi[n->axis] = tl_loops_bin(p, TL_LOP_ADD, xi[n->axis], base);
        nest_add(L, nest, tl_loops_store(p, L->nbuf[id], ravel(L, n->shape.rank, xi, od), tl_loops_load(p, L->nbuf[n->in[t]], src)));
        base = tl_loops_bin(p, TL_LOP_ADD, base, xd[n->axis]);
    }
    return 0;
}

/* The index idx[j..] read as i64 and clamped into [0, dim): compiled code never reads or
 * writes out of bounds (the interpreter reports such an index as an error). */
static int clamped_index(Lower *L, int idxnode, int jflat, int dim) {
    TlLProgram *p = L->p;
    int v = tl_loops_cast(p, tl_loops_load(p, L->nbuf[idxnode], jflat), TL_LT_I64);
    int hi = tl_loops_bin(p, TL_LOP_SUB, dim, tl_loops_int(p, TL_LT_I64, 1));
    return tl_loops_bin(p, TL_LOP_MAX, tl_loops_bin(p, TL_LOP_MIN, v, hi), tl_loops_int(p, TL_LT_I64, 0));
}

/* gather: out[p, j.., s] = table[p, idx[j..], s].
 * scatter_add: out = 0; then for each src element out[p, idx[j..], s] += src[p, j.., s]
 * (serial over the indexed axes: two j may hit one row; parallel over p only). */
static int lower_gather_scatter(Lower *L, int id) {
    const TlGNode *n = &L->g->nodes[id];
    const TlGNode *x = &L->g->nodes[n->in[0]], *ix = &L->g->nodes[n->in[1]];
    TlLProgram *p = L->p;
    int gather = n->op == TL_GOP_GATHER;
    const TlGNode *big = gather ? n : x, *small = gather ? x : n;
    int bd[TL_MAX_RANK], sd[TL_MAX_RANK], id_[TL_MAX_RANK], bv[TL_MAX_RANK], bi[TL_MAX_RANK], si[TL_MAX_RANK];
    shape_dims(L, &big->shape, bd);
    shape_dims(L, &small->shape, sd);
    shape_dims(L, &ix->shape, id_);
    int ax = n->axis, ir = ix->shape.rank;
    if (!gather) { /* zero the output */
        new_kernel(L, id, "scatter_zero");
        int ov[TL_MAX_RANK], oi[TL_MAX_RANK];
        Nest z = open_nest(L, -1, n->shape.rank, sd, ov, 1);
        mark_vector(L, z);
        int flat = ravel(L, n->shape.rank, (vars_exprs(L, n->shape.rank, ov, oi), oi), sd);
        nest_add(L, z, tl_loops_store(p, L->nbuf[id], flat, const_storage(L, 0, n->dtype)));
    }
    new_kernel(L, id, gather ? "gather" : "scatter_add");
    int unknown[TL_MAX_RANK + TL_MAX_RANK] = {0};
    for (int i = 0; i < big->shape.rank; i++) unknown[i] = -1;
    Nest nest = open_nest_axes(L, -1, big->shape.rank, bd, bv, gather || ax > 0, unknown);
    if (gather) mark_vector(L, nest);
    vars_exprs(L, big->shape.rank, bv, bi);
    int j = ravel(L, ir, bi + ax, id_);
    int v = clamped_index(L, n->in[1], j, sd[ax]);
    for (int k = 0; k < ax; k++) si[k] = bi[k];
    si[ax] = v;
    for (int k = ax + 1; k < small->shape.rank; k++) si[k] = bi[k - 1 + ir];
    int s = ravel(L, small->shape.rank, si, sd);
    int bflat = ravel(L, big->shape.rank, bi, bd);
    if (gather) {
        nest_add(L, nest, tl_loops_store(p, L->nbuf[id], bflat, tl_loops_load(p, L->nbuf[n->in[0]], s)));
    } else {
        int cur = load_as(L, id, s, n->dtype);
        int add = tl_loops_bin(p, TL_LOP_ADD, cur, load_as(L, n->in[0], bflat, n->dtype));
        nest_add(L, nest, tl_loops_store(p, L->nbuf[id], s, to_storage(L, add, n->dtype)));
    }
    return 0;
}

/* ---- causal attention (attn, attn_grad) ----
 * The reference loop nests: one parallel item per row r = (head b, position i) of the
 * [BH*T] rows; dot products are recomputed where they are needed, so no T x T value is
 * ever stored. The output buffer doubles as the accumulator of its row. */

typedef struct AttnNest { Lower *L; int dt, K, T, scale; TlLType ct; } AttnNest;

static int attn_i64(AttnNest *A, int64_t v) { return tl_loops_int(A->L->p, TL_LT_I64, v); }
static int attn_add(AttnNest *A, int a, int b) { return tl_loops_bin(A->L->p, TL_LOP_ADD, a, b); }
static int attn_mul(AttnNest *A, int a, int b) { return tl_loops_bin(A->L->p, TL_LOP_MUL, a, b); }
static int attn_ld(AttnNest *A, int node, int idx) { return load_as(A->L, node, idx, (TlDType)A->dt); }

/* In `parent`: acc = sum_{c<K} x[xo + c] * y[yo + c] (x, y graph nodes). */
static void attn_dot(AttnNest *A, int parent, int acc, int x, int xo, int y, int yo) {
    TlLProgram *p = A->L->p;
    add_to(A->L, parent, set_stmt(p, acc, tl_loops_flt(p, A->ct, 0)));
    int c = tl_loops_new_var(p), cl = tl_loops_loop(p, c, attn_i64(A, 0), A->K);
    p->st[cl].sched.vectorize = 1;
    add_to(A->L, parent, cl);
    int cv = tl_loops_var(p, c);
    int prod = tl_loops_bin(p, TL_LOP_MUL, attn_ld(A, x, attn_add(A, xo, cv)), attn_ld(A, y, attn_add(A, yo, cv)));
    add_to(A->L, cl, set_stmt(p, acc, tl_loops_bin(p, TL_LOP_ADD, local_ref(p, A->L->k, acc), prod)));
}

/* In `parent`: for c < K: buf[bo + c] (node `id`'s storage) = init ? value : buf[bo + c] + w * y[yo + c]. */
static void attn_axpy(AttnNest *A, int parent, int id, int bo, int w, int y, int yo, int init) {
    TlLProgram *p = A->L->p;
    int c = tl_loops_new_var(p), cl = tl_loops_loop(p, c, attn_i64(A, 0), A->K);
    p->st[cl].sched.vectorize = 1;
    add_to(A->L, parent, cl);
    int cv = tl_loops_var(p, c), at = attn_add(A, bo, cv);
    int v = init ? tl_loops_flt(p, A->ct, 0)
                 : tl_loops_bin(p, TL_LOP_ADD, attn_ld(A, id, at), tl_loops_bin(p, TL_LOP_MUL, w, attn_ld(A, y, attn_add(A, yo, cv))));
    add_to(A->L, cl, tl_loops_store(p, A->L->nbuf[id], at, to_storage(A->L, v, (TlDType)A->dt)));
}

/* A loop var in [lo, hi) appended to parent; returns the loop statement. */
static int attn_loop(AttnNest *A, int parent, int *var, int lo, int hi) {
    *var = tl_loops_new_var(A->L->p);
    int s = tl_loops_loop(A->L->p, *var, lo, hi);
    add_to(A->L, parent, s);
    return s;
}

static void attn_desc(Lower *L, TlLKernel *k, int id, int grad, int bh, int T, int K) {
    const TlGNode *n = &L->g->nodes[id];
    TlLAttn *a = &k->attn;
    a->on = n->dtype == TL_F32, a->grad = grad;
    a->q = L->nbuf[n->in[0]], a->k = L->nbuf[n->in[1]], a->v = L->nbuf[n->in[2]];
    a->o = grad ? L->nbuf[n->in[3]] : L->nbuf[id], a->g = grad ? L->nbuf[n->in[4]] : -1;
    a->out = L->nbuf[id];
    a->bh = bh, a->t = T, a->kd = K, a->scale = n->fill;
    /* measured (K = 64, T = 512 and 2048, Zen 4): 32 query rows x 64-key tiles forward,
     * 64-key blocks x 64-query tiles backward; 16..96 are all within ~10% */
    a->bq = grad ? 64 : 32, a->bk = 64;
}

/* What attn and attn_grad share: their kernel, the head count bh (every leading dim of q),
 * and the nest's sizes, compute type and scale. */
static TlLKernel *attn_begin(Lower *L, int id, const char *name, AttnNest *A, int *bh) {
    const TlGNode *n = &L->g->nodes[id];
    const TlGNode *qn = &L->g->nodes[n->in[0]];
    TlLProgram *p = L->p;
    TlLKernel *k = new_kernel(L, id, name);
    int r = qn->shape.rank;
    int T = dim_expr(L, qn->shape.dim[r - 2]), K = dim_expr(L, qn->shape.dim[r - 1]);
    *bh = tl_loops_int(p, TL_LT_I64, 1);
    for (int a = 0; a < r - 2; a++) *bh = tl_loops_bin(p, TL_LOP_MUL, *bh, dim_expr(L, qn->shape.dim[a]));
    *A = (AttnNest){L, n->dtype, K, T, -1, tl_loops_compute_type(n->dtype)};
    A->scale = tl_loops_flt(p, A->ct, n->fill);
    return k;
}

/* attn, per row r = (b, i): m = max_{j<=i} s_ij; l = sum_j exp(s_ij - m);
 * o_r = sum_j exp(s_ij - m) / l v_j; o_rK = m + log l.   s_ij = scale q_i.k_j */
static int lower_attn(Lower *L, int id) {
    const TlGNode *n = &L->g->nodes[id];
    TlLProgram *p = L->p;
    int bh;
    AttnNest A;
    TlLKernel *k = attn_begin(L, id, "attn", &A, &bh);
    int T = A.T, K = A.K;
    int rows = attn_mul(&A, bh, T), rv;
    Nest outer = open_nest(L, -1, 1, &rows, &rv, 1);
    int row = outer.outer, re = tl_loops_var(p, rv);
    int i = tl_loops_bin(p, TL_LOP_IMOD, re, T);
    int base = attn_mul(&A, tl_loops_bin(p, TL_LOP_SUB, re, i), K); /* (b*T) * K */
    int qo = attn_mul(&A, re, K), K1 = attn_add(&A, K, attn_i64(&A, 1)), oo = attn_mul(&A, re, K1);
    int m = new_local(k, A.ct), l = new_local(k, A.ct), s = new_local(k, A.ct), w = new_local(k, A.ct);
    int ip1 = attn_add(&A, i, attn_i64(&A, 1)), j, jl;
    #define SJ(parent) (attn_dot(&A, parent, s, n->in[0], qo, n->in[1], attn_add(&A, base, attn_mul(&A, tl_loops_var(p, j), K))), \
                        tl_loops_bin(p, TL_LOP_MUL, local_ref(p, k, s), A.scale))
    add_to(L, row, set_stmt(p, m, tl_loops_flt(p, A.ct, -INFINITY)));
    jl = attn_loop(&A, row, &j, attn_i64(&A, 0), ip1);
    add_to(L, jl, set_stmt(p, m, tl_loops_bin(p, TL_LOP_MAX, local_ref(p, k, m), SJ(jl))));
    add_to(L, row, set_stmt(p, l, tl_loops_flt(p, A.ct, 0)));
    jl = attn_loop(&A, row, &j, attn_i64(&A, 0), ip1);
    int e = tl_loops_un(p, TL_LOP_EXP, tl_loops_bin(p, TL_LOP_SUB, SJ(jl), local_ref(p, k, m)));
    add_to(L, jl, set_stmt(p, l, tl_loops_bin(p, TL_LOP_ADD, local_ref(p, k, l), e)));
    attn_axpy(&A, row, id, oo, -1, -1, -1, 1);
    jl = attn_loop(&A, row, &j, attn_i64(&A, 0), ip1);
    e = tl_loops_un(p, TL_LOP_EXP, tl_loops_bin(p, TL_LOP_SUB, SJ(jl), local_ref(p, k, m)));
    add_to(L, jl, set_stmt(p, w, tl_loops_bin(p, TL_LOP_DIV, e, local_ref(p, k, l))));
    attn_axpy(&A, jl, id, oo, local_ref(p, k, w), n->in[2], attn_add(&A, base, attn_mul(&A, tl_loops_var(p, j), K)), 0);
    int lse = tl_loops_bin(p, TL_LOP_ADD, local_ref(p, k, m), tl_loops_un(p, TL_LOP_LOG, local_ref(p, k, l)));
    add_to(L, row, tl_loops_store(p, L->nbuf[id], attn_add(&A, oo, K), to_storage(L, lse, n->dtype)));
    #undef SJ
    attn_desc(L, k, id, 0, bh, T, K);
    return 0;
}

/* attn_grad, per row r = (b, i), race-free because a row writes only its own dq, dk, dv:
 *   dq_i = scale sum_{j<=i} ds_ij k_j                     (row i as the query)
 *   dk_i = scale sum_{j>=i} ds_ji q_j, dv_i = sum_{j>=i} P_ji g_j   (row i as the key)
 * with P_ij = exp(s_ij - L_i), ds_ij = P_ij (g_i.v_j - D_i), D_i = g_i.o_i - g_iK. */
static int lower_attn_grad(Lower *L, int id) {
    const TlGNode *n = &L->g->nodes[id];
    TlLProgram *p = L->p;
    int bh;
    AttnNest A;
    TlLKernel *k = attn_begin(L, id, "attn_grad", &A, &bh);
    int T = A.T, K = A.K;
    int Q = n->in[0], Kn = n->in[1], V = n->in[2], O = n->in[3], G = n->in[4];
    int rows = attn_mul(&A, bh, T), rv;
    Nest outer = open_nest(L, -1, 1, &rows, &rv, 1);
    int row = outer.outer, re = tl_loops_var(p, rv);
    int i = tl_loops_bin(p, TL_LOP_IMOD, re, T), b0 = tl_loops_bin(p, TL_LOP_SUB, re, i); /* b*T */
    int K1 = attn_add(&A, K, attn_i64(&A, 1)), N = attn_mul(&A, rows, K);
    int ro = attn_mul(&A, re, K), oo = attn_mul(&A, re, K1);
    int s = new_local(k, A.ct), dp = new_local(k, A.ct), D = new_local(k, A.ct), w = new_local(k, A.ct);
    int j, jl;
    /* row i as the query: dq_i */
    attn_dot(&A, row, D, G, oo, O, oo);
    add_to(L, row, set_stmt(p, D, tl_loops_bin(p, TL_LOP_SUB, local_ref(p, k, D), attn_ld(&A, G, attn_add(&A, oo, K)))));
    attn_axpy(&A, row, id, ro, -1, -1, -1, 1);
    jl = attn_loop(&A, row, &j, attn_i64(&A, 0), attn_add(&A, i, attn_i64(&A, 1)));
    int jo = attn_mul(&A, attn_add(&A, b0, tl_loops_var(p, j)), K);
    attn_dot(&A, jl, s, Q, ro, Kn, jo);
    attn_dot(&A, jl, dp, G, oo, V, jo);
    int P = tl_loops_un(p, TL_LOP_EXP, tl_loops_bin(p, TL_LOP_SUB, tl_loops_bin(p, TL_LOP_MUL, local_ref(p, k, s), A.scale),
                                                   attn_ld(&A, O, attn_add(&A, oo, K))));
    int ds = tl_loops_bin(p, TL_LOP_MUL, P, tl_loops_bin(p, TL_LOP_SUB, local_ref(p, k, dp), local_ref(p, k, D)));
    add_to(L, jl, set_stmt(p, w, tl_loops_bin(p, TL_LOP_MUL, ds, A.scale)));
    attn_axpy(&A, jl, id, ro, local_ref(p, k, w), Kn, jo, 0);
    /* row i as the key: dk_i, dv_i over the queries j >= i */
    int dko = attn_add(&A, N, ro), dvo = attn_add(&A, attn_add(&A, N, N), ro);
    attn_axpy(&A, row, id, dko, -1, -1, -1, 1);
    attn_axpy(&A, row, id, dvo, -1, -1, -1, 1);
    jl = attn_loop(&A, row, &j, i, T);
    int jr = attn_add(&A, b0, tl_loops_var(p, j));
    jo = attn_mul(&A, jr, K);
    int joo = attn_mul(&A, jr, K1);
    attn_dot(&A, jl, s, Q, jo, Kn, ro);
    P = tl_loops_un(p, TL_LOP_EXP, tl_loops_bin(p, TL_LOP_SUB, tl_loops_bin(p, TL_LOP_MUL, local_ref(p, k, s), A.scale),
                                               attn_ld(&A, O, attn_add(&A, joo, K))));
    add_to(L, jl, set_stmt(p, w, P));
    attn_axpy(&A, jl, id, dvo, local_ref(p, k, w), G, joo, 0);
    attn_dot(&A, jl, dp, G, joo, V, ro);
    attn_dot(&A, jl, D, G, joo, O, joo);
    int Dj = tl_loops_bin(p, TL_LOP_SUB, local_ref(p, k, D), attn_ld(&A, G, attn_add(&A, joo, K)));
    ds = tl_loops_bin(p, TL_LOP_MUL, local_ref(p, k, w), tl_loops_bin(p, TL_LOP_SUB, local_ref(p, k, dp), Dj));
    add_to(L, jl, set_stmt(p, w, tl_loops_bin(p, TL_LOP_MUL, ds, A.scale)));
    attn_axpy(&A, jl, id, dko, local_ref(p, k, w), Q, jo, 0);
    attn_desc(L, k, id, 1, bh, T, K);
    return 0;
}

static int host_copy(Lower *L, int dst, int dst_off, int src, int src_off, int nbytes) {
    int h = new_host(L->p, TL_LH_COPY);
    TlLHost *o = &L->p->host[h];
    o->dst = dst, o->src = src, o->dst_off = dst_off, o->src_off = src_off, o->nbytes = nbytes;
    host_append(L->p, L->host, h);
    return h;
}

static int bytes_of(Lower *L, int buf) {
    return tl_loops_bin(L->p, TL_LOP_MUL, L->p->buf[buf].numel, tl_loops_int(L->p, TL_LT_I64, (int64_t)tl_ltype_size(L->p->buf[buf].elem)));
}

static int lower_graph(Lower *L);

/* A scan: state buffers hold the carries and the stacked per-step outputs.
 *   state_c = carry_init
 *   for s in [0, T): t = reverse ? T-1-s : s
 *     body carry inputs = copy of state_c; seq inputs alias seq + t*slice; invariants alias
 *     run the body's host program
 *     state_c = body carry outputs; state_y[t] = body per-step outputs
 * Each proj then copies its state buffer. */
static int lower_scan(Lower *L, int id, int **scan_state) {
    const TlGNode *n = &L->g->nodes[id];
    const TlGraph *body = n->body;
    TlLProgram *p = L->p;
    int nc = n->ncarry, ns = n->nseq, nout = body->noutputs;
    int *state = calloc((size_t)nout, sizeof *state);
    if (!state) abort();
    scan_state[id] = state;
    int T = dim_expr(L, L->g->nodes[n->in[nc]].shape.dim[0]);
    int zero = tl_loops_int(p, TL_LT_I64, 0);
    Lower B = {p, body, malloc(sizeof(int) * (size_t)(body->nnodes + 1)), L->depth + 1, -1, NULL, NULL};
    if (!B.nbuf) abort();
    for (int i = 0; i < body->nnodes; i++) B.nbuf[i] = -1;
    for (int k = 0; k < nout; k++) {
        const TlGNode *y = &body->nodes[body->outputs[k]];
        int numel = numel_expr(L, &y->shape);
        if (k >= nc) numel = tl_loops_bin(p, TL_LOP_MUL, numel, T);
        state[k] = new_buf(L, TL_LB_STATE, y->dtype, numel, id);
        if (k < nc) host_copy(L, state[k], zero, L->nbuf[n->in[k]], zero, bytes_of(L, state[k]));
    }
    int loop = new_host(p, TL_LH_LOOP);
    p->host[loop].var = tl_loops_new_var(p), p->host[loop].count = T, p->host[loop].reverse = n->reverse;
    host_append(p, L->host, loop);
    int tvar = tl_loops_var(p, p->host[loop].var);
    B.host = loop;
    /* buffers of the body's arguments */
    for (int i = 0; i < body->ninputs && i < n->nin; i++) {
        int in = body->inputs[i];
        const TlGNode *bn = &body->nodes[in];
        int numel = numel_expr(&B, &bn->shape);
        if (i < nc) {
            B.nbuf[in] = new_buf(&B, TL_LB_TEMP, bn->dtype, numel, in);
            host_copy(&B, B.nbuf[in], zero, state[i], zero, bytes_of(&B, B.nbuf[in]));
        } else {
            B.nbuf[in] = new_buf(&B, TL_LB_ALIAS, bn->dtype, numel, in);
            int off = i < nc + ns ? tl_loops_bin(p, TL_LOP_MUL, tvar, bytes_of(&B, B.nbuf[in])) : zero;
            int h = new_host(p, TL_LH_ALIAS);
            p->host[h].dst = B.nbuf[in], p->host[h].src = L->nbuf[n->in[i]], p->host[h].src_off = off;
            host_append(p, B.host, h);
        }
    }
    if (lower_graph(&B)) { free(B.nbuf); return -1; }
    for (int k = 0; k < nout; k++) {
        int src = B.nbuf[body->outputs[k]];
        int nb = bytes_of(&B, src);
        host_copy(&B, state[k], k < nc ? zero : tl_loops_bin(p, TL_LOP_MUL, tvar, nb), src, zero, nb);
    }
    free(B.nbuf);
    return 0;
}

static int lower_node(Lower *L, int id, int **scan_state) {
    const TlGNode *n = &L->g->nodes[id];
    TlLProgram *p = L->p;
    int numel = n->op == TL_GOP_SCAN ? -1 : numel_expr(L, &n->shape);
    switch (n->op) {
    case TL_GOP_INPUT:
        if (L->nbuf[id] < 0) { /* top-level input (body arguments were made by the scan) */
            L->nbuf[id] = new_buf(L, TL_LB_INPUT, n->dtype, numel, id);
            p->buf[L->nbuf[id]].name = n->name;
        }
        return 0;
    case TL_GOP_PARAM:
        L->nbuf[id] = new_buf(L, TL_LB_PARAM, n->dtype, numel, id);
        p->buf[L->nbuf[id]].name = n->name;
        return 0;
    case TL_GOP_SCAN: return lower_scan(L, id, scan_state);
    default: break;
    }
    if (n->op == TL_GOP_CONST && n->data) {
        L->nbuf[id] = new_buf(L, TL_LB_CONST, n->dtype, numel, id);
        p->buf[L->nbuf[id]].init = n->data;
        return 0;
    }
    L->nbuf[id] = new_buf(L, TL_LB_TEMP, n->dtype, numel, id);
    switch (n->op) {
    case TL_GOP_CONST: case TL_GOP_IOTA: case TL_GOP_RANDOM: return lower_pointwise(L, id);
    case TL_GOP_SUM: case TL_GOP_RMAX: return lower_reduce(L, id);
    case TL_GOP_CONTRACT: return lower_contract(L, id);
    case TL_GOP_RESHAPE: case TL_GOP_PERMUTE: case TL_GOP_BROADCAST: case TL_GOP_SLICE:
        return lower_movement(L, id);
    case TL_GOP_PAD: return lower_pad(L, id);
    case TL_GOP_CONCAT: return lower_concat(L, id);
    case TL_GOP_GATHER: case TL_GOP_SCATTER_ADD: return lower_gather_scatter(L, id);
    case TL_GOP_ATTN: return lower_attn(L, id);
    case TL_GOP_ATTN_GRAD: return lower_attn_grad(L, id);
    case TL_GOP_PROJ: {
        int state = scan_state[n->in[0]][n->axis];
        int zero = tl_loops_int(p, TL_LT_I64, 0);
        host_copy(L, L->nbuf[id], zero, state, zero, bytes_of(L, L->nbuf[id]));
        return 0;
    }
    default:
        if (tl_gop_is_elementwise(n->op)) return lower_pointwise(L, id);
        return lerr(L, id, "no lowering to Loop IR");
    }
}

static int lower_group(Lower *L, int gi);

/* With fusion: a group's root gets a buffer and one kernel for the group; its other
 * members get neither; nodes outside groups and unfused ops lower as above. */
static int lower_fused_node(Lower *L, int id, int **scan_state) {
    int k = L->fz->group_of[id];
    if (k == TL_FUSE_NONE || (k >= 0 && L->fz->groups[k].kind == TL_FUSE_OP)) return lower_node(L, id, scan_state);
    if (tl_fuse_is_inlined(L->fz, id)) return 0;
    const TlGNode *n = &L->g->nodes[id];
    L->nbuf[id] = new_buf(L, TL_LB_TEMP, n->dtype, numel_expr(L, &n->shape), id);
    return lower_group(L, k);
}

static int lower_graph(Lower *L) {
    int **scan_state = calloc((size_t)L->g->nnodes + 1, sizeof *scan_state);
    if (!scan_state) abort();
    const char *recompute = getenv("TL_FUSE_RECOMPUTE");
    TlFuseOptions fo = {1, 0, !L->p->epilogue, recompute && strcmp(recompute, "0") == 0};
    TlFusion *fz = L->p->fuse ? tl_fuse(L->g, &fo) : NULL;
    L->fz = fz;
    int rc = 0;
    for (int i = 0; i < L->g->nnodes && !rc; i++)
        rc = fz ? lower_fused_node(L, i, scan_state) : lower_node(L, i, scan_state);
    L->fz = NULL;
    tl_fuse_free(fz);
    for (int i = 0; i < L->g->nnodes; i++) free(scan_state[i]);
    free(scan_state);
    return rc;
}

int tl_loops_fuse_default(void) {
    const char *e = getenv("TL_FUSE");
    if (e && *e) return strcmp(e, "0") != 0;
    return 1;
}

TlLProgram *tl_loops_lower(const TlGraph *g, char *err, int errn) { return tl_loops_lower_opts(g, NULL, err, errn); }

TlLProgram *tl_loops_lower_opts(const TlGraph *g, const TlLoopsOptions *o, char *err, int errn) {
    if (tl_graph_error(g)) {
        if (err) snprintf(err, (size_t)errn, "graph has an error: %s", tl_graph_error(g));
        return NULL;
    }
    TlLProgram *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->g = g, p->entry = -1;
    p->fuse = o && o->fuse >= 0 ? o->fuse : tl_loops_fuse_default();
    {
        const char *e = getenv("TL_GEMM_EPILOGUE");
        p->epilogue = p->fuse && !(o && o->no_epilogue) && !(e && strcmp(e, "0") == 0);
    }
    p->node_buf = malloc(sizeof(int) * (size_t)(g->nnodes + 1));
    if (!p->node_buf) abort();
    for (int i = 0; i < g->nnodes; i++) p->node_buf[i] = -1;
    Lower L = {p, g, p->node_buf, 0, -1, NULL, NULL};
    if (lower_graph(&L)) {
        if (err) snprintf(err, (size_t)errn, "%s", p->err);
        tl_loops_free(p);
        return NULL;
    }
    if (!(o && o->no_source_schedules) && tl_schedule_source_apply(p, err, errn)) {
        tl_loops_free(p);
        return NULL;
    }
    return p;
}

void tl_loops_free(TlLProgram *p) {
    if (!p) return;
    for (int i = 0; i < p->nkern; i++) free(p->kern[i].local_type);
    free(p->ex), free(p->st), free(p->buf), free(p->kern), free(p->host), free(p->syms);
    free(p->node_buf);
    free(p);
}

/* ---- schedule transformations ---- */

static void collect_loops(const TlLProgram *p, int s, int *loops, int *n, int max) {
    for (; s >= 0; s = p->st[s].next) {
        if (p->st[s].kind == TL_LS_LOOP && *n < max) loops[(*n)++] = s;
        collect_loops(p, p->st[s].body, loops, n, max);
        collect_loops(p, p->st[s].els, loops, n, max);
    }
}

int tl_loops_kernel_loops(const TlLProgram *p, int k, int *loops, int max) {
    int n = 0;
    collect_loops(p, p->kern[k].body, loops, &n, max);
    return n;
}

/* A copy of expression e with loop variable `var` replaced by expression r (shared
 * subtrees that do not mention var are kept). */
static int subst(TlLProgram *p, int e, int var, int r) {
    if (e < 0) return e;
    TlLExpr x = p->ex[e];
    if (x.kind == TL_LE_VAR) return x.var == var ? r : e;
    int a = subst(p, x.a, var, r), b = subst(p, x.b, var, r), c = subst(p, x.c, var, r);
    if (a == x.a && b == x.b && c == x.c) return e;
    int n = new_expr(p, x.kind, x.type);
    p->ex[n] = x;
    p->ex[n].a = a, p->ex[n].b = b, p->ex[n].c = c;
    return n;
}

static void subst_stmts(TlLProgram *p, int s, int var, int r) {
    for (; s >= 0; s = p->st[s].next) {
        TlLStmt *t = &p->st[s];
        t->lo = subst(p, t->lo, var, r);
        t->hi = subst(p, p->st[s].hi, var, r);
        p->st[s].index = subst(p, p->st[s].index, var, r);
        p->st[s].value = subst(p, p->st[s].value, var, r);
        p->st[s].cond = subst(p, p->st[s].cond, var, r);
        subst_stmts(p, p->st[s].body, var, r);
        subst_stmts(p, p->st[s].els, var, r);
    }
}

static int contains(const TlLProgram *p, int list, int s) {
    for (; list >= 0; list = p->st[list].next)
        if (list == s || contains(p, p->st[list].body, s) || contains(p, p->st[list].els, s)) return 1;
    return 0;
}

int tl_loops_tile(TlLProgram *p, int k, int loop, int64_t size) {
    if (size < 1 || loop < 0 || loop >= p->nst || p->st[loop].kind != TL_LS_LOOP ||
        !contains(p, p->kern[k].body, loop))
        return -1;
    TlLStmt o = p->st[loop];
    int vo = tl_loops_new_var(p), vi = tl_loops_new_var(p);
    int sz = tl_loops_int(p, TL_LT_I64, size);
    int extent = tl_loops_bin(p, TL_LOP_SUB, o.hi, o.lo);
    int ntiles = tl_loops_bin(p, TL_LOP_IDIV, tl_loops_bin(p, TL_LOP_ADD, extent, tl_loops_int(p, TL_LT_I64, size - 1)), sz);
    int base = tl_loops_bin(p, TL_LOP_MUL, tl_loops_var(p, vo), sz);
    int inner_hi = tl_loops_bin(p, TL_LOP_MIN, sz, tl_loops_bin(p, TL_LOP_SUB, extent, base));
    int inner = tl_loops_loop(p, vi, tl_loops_int(p, TL_LT_I64, 0), inner_hi);
    int v = tl_loops_bin(p, TL_LOP_ADD, o.lo, tl_loops_bin(p, TL_LOP_ADD, base, tl_loops_var(p, vi)));
    subst_stmts(p, o.body, o.var, v);
    p->st[inner].body = o.body;
    p->st[inner].sched.vectorize = o.sched.vectorize, p->st[inner].sched.unroll = o.sched.unroll;
    TlLStmt *t = &p->st[loop]; /* the outer loop keeps its id, so parents stay linked */
    t->var = vo, t->lo = tl_loops_int(p, TL_LT_I64, 0), t->hi = ntiles, t->body = inner;
    t->sched.vectorize = 0, t->sched.unroll = 0, t->sched.tile = size;
    if (t->sched.parallel) p->kern[k].par_extent = ntiles;
    return 0;
}

static int uses_var(const TlLProgram *p, int e, int var) {
    if (e < 0) return 0;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_VAR && x->var == var) return 1;
    return uses_var(p, x->a, var) || uses_var(p, x->b, var) || uses_var(p, x->c, var);
}

int tl_loops_reorder(TlLProgram *p, int k, const int *loops, int n, const int *perm) {
    if (n < 1 || n > 64) return -1;
    for (int i = 0; i < n; i++) {
        const TlLStmt *t = &p->st[loops[i]];
        if (t->kind != TL_LS_LOOP || t->sched.tile) return -1;
        if (i == 0 ? p->kern[k].body != loops[0] || t->next >= 0 : p->st[loops[i - 1]].body != loops[i] || t->next >= 0)
            return -1; /* not a perfect nest from the top of the kernel */
        for (int j = 0; j < n; j++)
            if (uses_var(p, t->lo, p->st[loops[j]].var) || uses_var(p, t->hi, p->st[loops[j]].var)) return -1;
    }
    TlLStmt hdr[64];
    for (int i = 0; i < n; i++) hdr[i] = p->st[loops[i]];
    int par = hdr[0].sched.parallel;
    for (int i = 0; i < n; i++) {
        TlLStmt *t = &p->st[loops[i]];
        const TlLStmt *h = &hdr[perm[i]];
        t->var = h->var, t->lo = h->lo, t->hi = h->hi, t->axis = h->axis; /* hints stay by position */
        t->sched.parallel = i == 0 ? par : 0;
    }
    if (par) p->kern[k].par_extent = p->st[loops[0]].hi;
    return 0;
}

/* ---- fused groups (compiler/fuse.h, docs/fusion.md) ----
 * A group's kernel evaluates its members in place of loads. Every member's value goes
 * through its storage type exactly as if it had been stored and loaded (to_storage, then
 * load_as's conversions), so a fused kernel computes the same bits as the unfused ones.
 *
 *   parallel for the kept axes of the domain (all axes for a pointwise group) {
 *     per reduction of the group, in id order: acc = init; for the reduced axes { acc op= x }
 *     root[kept index] = value            (a root of the kept shape), or
 *     for the reduced axes { root[i] = value(i) }
 *   } */

typedef struct FG {
    Lower *L;
    const TlFuseGroup *t;
    int gi;
    int dvar[TL_MAX_RANK]; /* loop variable of each domain axis, -1 when not in scope */
    int *local;            /* node -> accumulator local of a reduction of this kernel, -1 */
    int bad;
} FG;

static int fg_stored(FG *F, int n, const int *idx);

static int fg_zero(FG *F) { return tl_loops_int(F->L->p, TL_LT_I64, 0); }

/* Operand x at idx converted as load_as converts a loaded value. */
static int fg_operand(FG *F, int x, const int *idx, TlDType as) {
    int v = fg_stored(F, x, idx);
    TlLType ct = tl_loops_compute_type(as);
    if (F->L->g->nodes[x].dtype == TL_BOOL && tl_ltype_is_float(ct)) v = tl_loops_cast(F->L->p, v, TL_LT_I64);
    return tl_loops_cast(F->L->p, v, ct);
}

/* An elementwise node's value at idx in its compute type (elementwise_value, in place). */
static int fg_compute(FG *F, int id, const int *idx) {
    Lower *L = F->L;
    const TlGNode *n = &L->g->nodes[id];
    TlLProgram *p = L->p;
    switch (n->op) {
    case TL_GOP_CONST: {
        TlLType ct = tl_loops_compute_type(n->dtype);
        double v = tl_interp_round(n->dtype, n->fill);
        return tl_ltype_is_float(ct) ? tl_loops_flt(p, ct, v) : tl_loops_int(p, ct, n->dtype == TL_BOOL ? v != 0 : (int64_t)v);
    }
    case TL_GOP_IOTA: return tl_loops_cast(p, idx[n->axis], tl_loops_compute_type(n->dtype));
    case TL_GOP_RANDOM: {
        int d[TL_MAX_RANK];
        shape_dims(L, &n->shape, d);
        int e = new_expr(p, TL_LE_RANDOM, TL_LT_F64);
        p->ex[e].a = ravel(L, n->shape.rank, idx, d);
        p->ex[e].b = n->nin ? load_as(L, n->in[0], tl_loops_int(p, TL_LT_I64, 0), TL_I64)
                            : tl_loops_int(p, TL_LT_I64, (int64_t)n->seed);
        p->ex[e].offset = n->offset, p->ex[e].dist = n->dist;
        return tl_loops_cast(p, e, tl_loops_compute_type(n->dtype));
    }
    case TL_GOP_SELECT: {
        int c = tl_loops_cast(p, fg_stored(F, n->in[0], idx), TL_LT_I1);
        return tl_loops_select(p, c, fg_operand(F, n->in[1], idx, n->dtype), fg_operand(F, n->in[2], idx, n->dtype));
    }
    case TL_GOP_CAST: {
        int x = fg_operand(F, n->in[0], idx, L->g->nodes[n->in[0]].dtype);
        if (n->dtype == TL_BOOL) return tl_loops_cast(p, tl_loops_cast(p, x, TL_LT_I1), TL_LT_I64);
        return tl_loops_cast(p, x, tl_loops_compute_type(n->dtype));
    }
    default: break;
    }
    if (tl_gop_is_unary(n->op)) return tl_loops_un(p, lop_of(n->op), fg_operand(F, n->in[0], idx, n->dtype));
    TlDType od = L->g->nodes[n->in[0]].dtype;
    int v = tl_loops_bin(p, lop_of(n->op), fg_operand(F, n->in[0], idx, od), fg_operand(F, n->in[1], idx, od));
    return tl_gop_is_compare(n->op) ? tl_loops_cast(p, v, TL_LT_I64) : v;
}

/* The operand index of a movement node at output index idx (lower_movement's f). */
static void fg_move_index(FG *F, int id, const int *idx, int *xi) {
    Lower *L = F->L;
    TlLProgram *p = L->p;
    const TlGNode *n = &L->g->nodes[id], *x = &L->g->nodes[n->in[0]];
    int r = n->shape.rank, xr = x->shape.rank;
    int64_t one;
    switch (n->op) {
    case TL_GOP_BROADCAST:
        for (int k = 0; k < xr; k++)
            xi[k] = tl_gdim_is_const(L->g, x->shape.dim[k], &one) && one == 1 ? fg_zero(F) : idx[r - xr + k];
        return;
    case TL_GOP_PERMUTE:
        for (int k = 0; k < r; k++) xi[n->perm[k]] = idx[k];
        return;
    case TL_GOP_SLICE:
        for (int k = 0; k < r; k++)
            xi[k] = tl_loops_bin(p, TL_LOP_ADD, dim_expr(L, n->lo[k]), tl_loops_bin(p, TL_LOP_MUL, idx[k], tl_loops_int(p, TL_LT_I64, n->step[k])));
        return;
    default: { /* reshape */
        int sq;
        tl_fuse_reshape_remap(L->g, &x->shape, &n->shape, &sq);
        if (sq) {
            for (int k = 0, j = 0; k < xr; k++) {
                if (tl_gdim_is_const(L->g, x->shape.dim[k], &one) && one == 1) { xi[k] = fg_zero(F); continue; }
                while (j < r && tl_gdim_is_const(L->g, n->shape.dim[j], &one) && one == 1) j++;
                xi[k] = idx[j++];
            }
            return;
        }
        int od[TL_MAX_RANK], xd[TL_MAX_RANK];
        shape_dims(L, &n->shape, od);
        shape_dims(L, &x->shape, xd);
        int flat = ravel(L, r, idx, od);
        for (int k = xr - 1; k >= 0; k--) {
            xi[k] = k ? tl_loops_bin(p, TL_LOP_IMOD, flat, xd[k]) : flat;
            flat = tl_loops_bin(p, TL_LOP_IDIV, flat, xd[k]);
        }
        return;
    }
    }
}

/* A member's value at idx in its storage type. */
static int fg_value(FG *F, int id, const int *idx) {
    Lower *L = F->L;
    const TlGNode *n = &L->g->nodes[id];
    switch (n->op) {
    case TL_GOP_BROADCAST: case TL_GOP_PERMUTE: case TL_GOP_SLICE: case TL_GOP_RESHAPE: {
        int xi[TL_MAX_RANK];
        fg_move_index(F, id, idx, xi);
        return fg_stored(F, n->in[0], xi);
    }
    case TL_GOP_SUM: case TL_GOP_RMAX: {
        /* the accumulator of this outer index: the kept coordinates must be the outer
         * loop variables (fuse.c only groups reductions for which they are) */
        int xr = L->g->nodes[n->in[0]].shape.rank;
        for (int k = 0, j = 0; k < xr; k++) {
            if (n->axes >> k & 1) { j += n->keepdims; continue; }
            const TlLExpr *e = &L->p->ex[idx[j++]];
            if (e->kind != TL_LE_VAR || e->var != F->dvar[k]) F->bad = 1;
        }
        if (F->local[id] < 0) F->bad = 1;
        if (F->bad) return const_storage(L, 0, n->dtype);
        int acc = local_ref(L->p, L->k, F->local[id]);
        return to_storage(L, tl_loops_cast(L->p, acc, tl_loops_compute_type(n->dtype)), n->dtype);
    }
    case TL_GOP_CONTRACT: {
        /* the sum of this domain element (fuse.c only fuses it at the domain index) */
        for (int j = 0; j < n->shape.rank; j++) {
            const TlLExpr *e = &L->p->ex[idx[j]];
            if (e->kind != TL_LE_VAR || e->var != F->dvar[j]) F->bad = 1;
        }
        if (F->local[id] < 0) F->bad = 1;
        if (F->bad) return const_storage(L, 0, n->dtype);
        return to_storage(L, tl_loops_cast(L->p, local_ref(L->p, L->k, F->local[id]), TL_LT_F32), n->dtype);
    }
    default: return to_storage(L, fg_compute(F, id, idx), n->dtype);
    }
}

static int fg_stored(FG *F, int n, const int *idx) {
    Lower *L = F->L;
    int k = L->fz->group_of[n];
    if (k == TL_FUSE_INLINED || (k == F->gi && n != F->t->root)) return fg_value(F, n, idx);
    const TlGNode *x = &L->g->nodes[n];
    int d[TL_MAX_RANK];
    shape_dims(L, &x->shape, d);
    return tl_loops_load(L->p, L->nbuf[n], ravel(L, x->shape.rank, idx, d));
}

static void fg_domain_index(FG *F, int *idx) {
    for (int a = 0; a < F->t->domain.rank; a++) idx[a] = tl_loops_var(F->L->p, F->dvar[a]);
}

/* acc = init; for the reduced axes { acc = acc (+|max) x[i] }, inside the outer loops. */
static void fg_reduction(FG *F, Nest outer, const int *dd, int id) {
    Lower *L = F->L;
    TlLProgram *p = L->p;
    const TlGNode *n = &L->g->nodes[id], *x = &L->g->nodes[n->in[0]];
    int R = F->t->domain.rank, ad[TL_MAX_RANK] = {0}, av[TL_MAX_RANK] = {0}, ax[TL_MAX_RANK] = {0}, na = 0;
    for (int a = 0; a < R; a++)
        if (F->t->axes >> a & 1) ad[na] = dd[a], ax[na++] = a;
    int isf = tl_dtype_is_float(x->dtype), sum = n->op == TL_GOP_SUM;
    TlLType at = isf ? TL_LT_F64 : TL_LT_I64;
    int acc = new_local(L->k, at);
    int init = isf ? tl_loops_flt(p, at, sum ? 0.0 : -INFINITY) : tl_loops_int(p, at, sum ? 0 : INT64_MIN);
    nest_add(L, outer, set_stmt(p, acc, init));
    /* a root over the whole domain (row) names the reduced axes as its own; a root of the
     * kept shape (reduce) has them as reduced axes */
    int lab[TL_MAX_RANK];
    for (int j = 0; j < na; j++) lab[j] = F->t->kept_root || F->L->g->nodes[F->t->root].shape.rank != R ? -2 - j : ax[j];
    Nest inner = open_nest_axes(L, outer.innermost >= 0 ? outer.innermost : -1, na, ad, av, 0, lab);
    mark_vector(L, inner.innermost >= 0 ? inner : outer);
    for (int j = 0; j < na; j++) F->dvar[ax[j]] = av[j];
    int idx[TL_MAX_RANK];
    fg_domain_index(F, idx);
    int v = tl_loops_cast(p, fg_operand(F, n->in[0], idx, x->dtype), at);
    int cur = local_ref(p, L->k, acc), upd;
    if (sum) upd = tl_loops_bin(p, TL_LOP_ADD, cur, v);
    else if (isf)
        upd = tl_loops_select(p, tl_loops_bin(p, TL_LOP_OR, tl_loops_bin(p, TL_LOP_GT, v, cur), tl_loops_bin(p, TL_LOP_NE, v, v)), v, cur);
    else upd = tl_loops_bin(p, TL_LOP_MAX, cur, v);
    nest_add(L, inner, set_stmt(p, acc, upd));
    for (int j = 0; j < na; j++) F->dvar[ax[j]] = -1;
    F->local[id] = acc;
}

/* A gemm group's contraction at the domain index: acc = 0; for the summed letters
 * { acc += a * b } (lower_contract's loop, f64 accumulation), inside the domain loops. */
static void fg_contract(FG *F, Nest outer, int id, TlContractSpec *cs) {
    Lower *L = F->L;
    TlLProgram *p = L->p;
    const TlGNode *n = &L->g->nodes[id];
    char letters[2 * TL_MAX_RANK];
    int size[2 * TL_MAX_RANK], var[2 * TL_MAX_RANK], nl = 0;
    for (int j = 0; j < cs->out_rank; j++) letters[nl] = cs->out[j], var[nl++] = F->dvar[j];
    int nout = nl;
    for (int t = 0; t < cs->nin; t++)
        for (int j = 0; j < cs->rank[t]; j++)
            if (!memchr(letters, cs->in[t][j], (size_t)nl)) letters[nl++] = cs->in[t][j];
    for (int l = 0; l < nl; l++)
        for (int t = 0; t < cs->nin; t++)
            for (int j = 0; j < cs->rank[t]; j++)
                if (cs->in[t][j] == letters[l]) size[l] = dim_expr(L, L->g->nodes[n->in[t]].shape.dim[j]);
    int acc = new_local(L->k, TL_LT_F64);
    nest_add(L, outer, set_stmt(p, acc, tl_loops_flt(p, TL_LT_F64, 0)));
    Nest inner = open_nest(L, outer.innermost >= 0 ? outer.innermost : -1, nl - nout, size + nout, var + nout, 0);
    mark_vector(L, inner);
    int prod = -1;
    for (int t = 0; t < cs->nin; t++) {
        const TlGNode *x = &L->g->nodes[n->in[t]];
        int xi[TL_MAX_RANK], xd[TL_MAX_RANK];
        shape_dims(L, &x->shape, xd);
        for (int j = 0; j < cs->rank[t]; j++)
            for (int l = 0; l < nl; l++)
                if (letters[l] == cs->in[t][j]) xi[j] = tl_loops_var(p, var[l]);
        int v = tl_loops_cast(p, load_as(L, n->in[t], ravel(L, x->shape.rank, xi, xd), x->dtype), TL_LT_F64);
        prod = prod < 0 ? v : tl_loops_bin(p, TL_LOP_MUL, prod, v);
    }
    nest_add(L, inner, set_stmt(p, acc, tl_loops_bin(p, TL_LOP_ADD, local_ref(p, L->k, acc), prod)));
    F->local[id] = acc;
}

static int lower_group(Lower *L, int gi) {
    const TlFuseGroup *t = &L->fz->groups[gi];
    const TlGNode *n = &L->g->nodes[t->root];
    TlLProgram *p = L->p;
    char what[48];
    snprintf(what, sizeof what, t->nnodes > 1 ? "fused_%s" : "%s", tl_gop_name(n->op));
    new_kernel(L, t->root, what);
    FG F = {L, t, gi, {0}, calloc((size_t)L->g->nnodes + 1, sizeof(int)), 0};
    if (!F.local) abort();
    for (int i = 0; i < L->g->nnodes; i++) F.local[i] = -1;
    int R = t->domain.rank, dd[TL_MAX_RANK] = {0}, od[TL_MAX_RANK] = {0}, ov[TL_MAX_RANK] = {0}, oax[TL_MAX_RANK] = {0}, no = 0;
    for (int a = 0; a < R; a++) F.dvar[a] = -1;
    for (int a = 0; a < R; a++) dd[a] = dim_expr(L, t->domain.dim[a]);
    for (int a = 0; a < R; a++)
        if (!(t->axes >> a & 1)) od[no] = dd[a], oax[no++] = a;
    int olab[TL_MAX_RANK] = {0};
    for (int j = 0; j < no; j++) olab[j] = n->shape.rank == R ? oax[j] : j;
    Nest outer = open_nest_axes(L, -1, no, od, ov, 1, olab);
    for (int j = 0; j < no; j++) F.dvar[oax[j]] = ov[j];
    for (int j = 0; j < t->nnodes; j++)
        if (t->nodes[j] != t->root && L->g->nodes[t->nodes[j]].sched) L->k->sched_fused = L->g->nodes[t->nodes[j]].sched;
    for (int j = 0; j < t->nnodes; j++) {
        int m = t->nodes[j];
        if (L->g->nodes[m].op == TL_GOP_SUM || L->g->nodes[m].op == TL_GOP_RMAX) fg_reduction(&F, outer, dd, m);
    }
    TlContractSpec cs;
    if (t->kind == TL_FUSE_GEMM) {
        if (tl_contract_parse(L->g->nodes[t->contract].spec, &cs, NULL, 0)) {
            free(F.local);
            return lerr(L, t->contract, "bad spec");
        }
        fg_contract(&F, outer, t->contract, &cs);
    }
    int idx[TL_MAX_RANK], rd[TL_MAX_RANK], r = n->shape.rank;
    shape_dims(L, &n->shape, rd);
    if (t->kept_root) { /* the root has the kept shape: one store per outer index */
        if (r == R)
            for (int a = 0; a < R; a++) idx[a] = (t->axes >> a & 1) ? fg_zero(&F) : tl_loops_var(p, F.dvar[a]);
        else
            for (int j = 0; j < no; j++) idx[j] = tl_loops_var(p, ov[j]);
        nest_add(L, outer, tl_loops_store(p, L->nbuf[t->root], ravel(L, r, idx, rd), fg_value(&F, t->root, idx)));
    } else {
        Nest at = outer;
        if (t->axes) {
            int ad[TL_MAX_RANK] = {0}, av[TL_MAX_RANK] = {0}, ax[TL_MAX_RANK] = {0}, na = 0;
            for (int a = 0; a < R; a++)
                if (t->axes >> a & 1) ad[na] = dd[a], ax[na++] = a;
            at = open_nest_axes(L, outer.innermost >= 0 ? outer.innermost : -1, na, ad, av, 0, ax);
            for (int j = 0; j < na; j++) F.dvar[ax[j]] = av[j];
        }
        if (t->kind != TL_FUSE_GEMM) mark_vector(L, at.innermost >= 0 ? at : outer);
        fg_domain_index(&F, idx);
        int value = fg_value(&F, t->root, idx);
        nest_add(L, at, tl_loops_store(p, L->nbuf[t->root], ravel(L, R, idx, dd), value));
        if (t->kind == TL_FUSE_GEMM && !F.bad) {
            GemmEpi e = {L->nbuf[t->root], value, F.local[t->contract], F.dvar};
            match_gemm(L, t->contract, L->k, &cs, &e);
        }
    }
    free(F.local);
    if (F.bad) return lerr(L, t->root, "fusion: a reduction's index in its group is not the outer index");
    return 0;
}
