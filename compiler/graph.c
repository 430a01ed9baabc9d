/* graph.c — Graph IR: arena, dim table, builders with shape inference, printing. */
#include "graph.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#if __has_include("source.h")
#include "source.h"
#define TL_HAVE_SOURCE_PATH 1
#endif

/* ---- arena ---- */

typedef struct TlGArenaBlock {
    struct TlGArenaBlock *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} TlGArenaBlock;

struct TlGArena { TlGArenaBlock *head; };

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fputs("tl: out of memory\n", stderr); abort(); }
    return p;
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) { fputs("tl: out of memory\n", stderr); abort(); }
    return p;
}

void *tl_graph_alloc(TlGraph *g, size_t n) {
    struct TlGArena *a = g->arena;
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->used + n > a->head->cap) {
        size_t cap = n > 65536 ? n : 65536;
        TlGArenaBlock *b = xmalloc(sizeof *b + cap);
        b->next = a->head, b->used = 0, b->cap = cap;
        a->head = b;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    memset(p, 0, n);
    return p;
}

static char *arena_strdup(TlGraph *g, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = tl_graph_alloc(g, n);
    memcpy(p, s, n);
    return p;
}

/* ---- dim table ---- */

struct TlGDims {
    TlGDimExpr *e;
    int n, cap;
    int *slot; /* open addressing, -1 = empty */
    int nslot;
    TlGraph *owner; /* names live in the owner's arena */
};

static uint64_t dim_hash(TlGDimKind k, int64_t v, const char *name, TlGDim a, TlGDim b) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)k;
    h = (h ^ (uint64_t)v) * 1099511628211ull;
    if (name)
        for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h = (h ^ (uint32_t)a) * 1099511628211ull;
    h = (h ^ (uint32_t)b) * 1099511628211ull;
    return h ^ (h >> 29);
}

static int dim_same(const TlGDimExpr *e, TlGDimKind k, int64_t v, const char *name, TlGDim a,
                    TlGDim b) {
    if (e->kind != k) return 0;
    switch (k) {
    case TL_GDIM_CONST: return e->value == v;
    case TL_GDIM_SYM: return strcmp(e->name, name) == 0;
    default: return e->a == a && e->b == b;
    }
}

/* Find or create the expression (no normalization: callers pass canonical forms). */
static TlGDim dim_intern(TlGDims *t, TlGDimKind k, int64_t v, const char *name, TlGDim a, TlGDim b) {
    if (k != TL_GDIM_CONST) v = 0;
    if (k == TL_GDIM_CONST || k == TL_GDIM_SYM) a = b = 0;
    if (t->n * 2 >= t->nslot) {
        int ns = t->nslot ? t->nslot * 2 : 256;
        int *slot = xmalloc(sizeof(int) * (size_t)ns);
        for (int i = 0; i < ns; i++) slot[i] = -1;
        for (int i = 0; i < t->n; i++) {
            TlGDimExpr *e = &t->e[i];
            uint64_t h = dim_hash(e->kind, e->value, e->name, e->a, e->b);
            int s = (int)(h & (uint64_t)(ns - 1));
            while (slot[s] >= 0) s = (s + 1) & (ns - 1);
            slot[s] = i;
        }
        free(t->slot);
        t->slot = slot, t->nslot = ns;
    }
    uint64_t h = dim_hash(k, v, name, a, b);
    int s = (int)(h & (uint64_t)(t->nslot - 1));
    while (t->slot[s] >= 0) {
        if (dim_same(&t->e[t->slot[s]], k, v, name, a, b)) return t->slot[s];
        s = (s + 1) & (t->nslot - 1);
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->e = xrealloc(t->e, sizeof(TlGDimExpr) * (size_t)t->cap);
    }
    TlGDimExpr *e = &t->e[t->n];
    e->kind = k, e->value = v, e->a = a, e->b = b;
    e->name = k == TL_GDIM_SYM ? arena_strdup(t->owner, name) : NULL;
    t->slot[s] = t->n;
    return t->n++;
}

/* Canonical form: a sum of monomials coef * atom1 * atom2 ..., where atoms are symbols and
 * floor-divisions. Monomials are sorted (constant last) and built left-associatively, so two
 * expressions equal as polynomials get the same id. */
#define POLY_MONOS 16
#define POLY_ATOMS 6
typedef struct { int64_t coef; int natoms; TlGDim atom[POLY_ATOMS]; } Mono;
typedef struct { int n; Mono m[POLY_MONOS]; } Poly;

static int atoms_cmp(const Mono *x, const Mono *y) {
    for (int i = 0; i < x->natoms && i < y->natoms; i++)
        if (x->atom[i] != y->atom[i]) return x->atom[i] < y->atom[i] ? -1 : 1;
    return x->natoms - y->natoms;
}

/* Print order (any fixed order makes the form canonical): positive terms, then negative
 * ones, then the constant, so dims read "C - T", "T + 1". */
static int mono_cmp(const Mono *x, const Mono *y) {
    if ((x->natoms == 0) != (y->natoms == 0)) return x->natoms == 0 ? 1 : -1;
    if ((x->coef < 0) != (y->coef < 0)) return x->coef < 0 ? 1 : -1;
    return atoms_cmp(x, y);
}

static int poly_add_mono(Poly *p, const Mono *m) {
    if (m->coef == 0) return 0;
    for (int i = 0; i < p->n; i++)
        if (atoms_cmp(&p->m[i], m) == 0) {
            p->m[i].coef += m->coef;
            if (p->m[i].coef == 0) p->m[i] = p->m[--p->n];
            return 0;
        }
    if (p->n == POLY_MONOS) return -1;
    p->m[p->n++] = *m;
    return 0;
}

static int dim_poly(const TlGDims *t, TlGDim d, Poly *p) {
    const TlGDimExpr *e = &t->e[d];
    p->n = 0;
    switch (e->kind) {
    case TL_GDIM_CONST:
        if (e->value) p->n = 1, p->m[0].coef = e->value, p->m[0].natoms = 0;
        return 0;
    case TL_GDIM_SYM:
    case TL_GDIM_DIV: p->n = 1, p->m[0].coef = 1, p->m[0].natoms = 1, p->m[0].atom[0] = d; return 0;
    case TL_GDIM_ADD: {
        Poly q;
        if (dim_poly(t, e->a, p) || dim_poly(t, e->b, &q)) return -1;
        for (int i = 0; i < q.n; i++)
            if (poly_add_mono(p, &q.m[i])) return -1;
        return 0;
    }
    case TL_GDIM_MUL: {
        Poly x, y;
        if (dim_poly(t, e->a, &x) || dim_poly(t, e->b, &y)) return -1;
        for (int i = 0; i < x.n; i++)
            for (int j = 0; j < y.n; j++) {
                Mono m = {x.m[i].coef * y.m[j].coef, 0, {0}};
                if (x.m[i].natoms + y.m[j].natoms > POLY_ATOMS) return -1;
                for (int k = 0; k < x.m[i].natoms; k++) m.atom[m.natoms++] = x.m[i].atom[k];
                for (int k = 0; k < y.m[j].natoms; k++) m.atom[m.natoms++] = y.m[j].atom[k];
                for (int a = 1; a < m.natoms; a++) /* sort atoms */
                    for (int b = a; b > 0 && m.atom[b - 1] > m.atom[b]; b--) {
                        TlGDim tmp = m.atom[b];
                        m.atom[b] = m.atom[b - 1], m.atom[b - 1] = tmp;
                    }
                if (poly_add_mono(p, &m)) return -1;
            }
        return 0;
    }
    }
    return -1;
}

static TlGDim poly_build(TlGDims *t, Poly *p) {
    for (int a = 1; a < p->n; a++)
        for (int b = a; b > 0 && mono_cmp(&p->m[b - 1], &p->m[b]) > 0; b--) {
            Mono tmp = p->m[b];
            p->m[b] = p->m[b - 1], p->m[b - 1] = tmp;
        }
    if (p->n == 0) return dim_intern(t, TL_GDIM_CONST, 0, NULL, 0, 0);
    TlGDim sum = -1;
    for (int i = 0; i < p->n; i++) {
        Mono *m = &p->m[i];
        TlGDim term = -1;
        for (int k = 0; k < m->natoms; k++)
            term = term < 0 ? m->atom[k] : dim_intern(t, TL_GDIM_MUL, 0, NULL, term, m->atom[k]);
        if (term < 0) term = dim_intern(t, TL_GDIM_CONST, m->coef, NULL, 0, 0);
        else if (m->coef != 1)
            term = dim_intern(t, TL_GDIM_MUL, 0, NULL, term,
                              dim_intern(t, TL_GDIM_CONST, m->coef, NULL, 0, 0));
        sum = sum < 0 ? term : dim_intern(t, TL_GDIM_ADD, 0, NULL, sum, term);
    }
    return sum;
}

static TlGDim dim_arith(TlGraph *g, TlGDimKind k, TlGDim a, TlGDim b) {
    TlGDims *t = g->dims;
    if (a < 0 || b < 0 || a >= t->n || b >= t->n) return -1;
    TlGDim raw = dim_intern(t, k, 0, NULL, a, b);
    Poly p;
    if (dim_poly(t, raw, &p)) return raw; /* too big to normalize: keep it as written */
    return poly_build(t, &p);
}

TlGDim tl_gdim_const(TlGraph *g, int64_t v) { return dim_intern(g->dims, TL_GDIM_CONST, v, NULL, 0, 0); }
TlGDim tl_gdim_sym(TlGraph *g, const char *name) { return dim_intern(g->dims, TL_GDIM_SYM, 0, name, 0, 0); }
TlGDim tl_gdim_add(TlGraph *g, TlGDim a, TlGDim b) { return dim_arith(g, TL_GDIM_ADD, a, b); }
TlGDim tl_gdim_mul(TlGraph *g, TlGDim a, TlGDim b) { return dim_arith(g, TL_GDIM_MUL, a, b); }
TlGDim tl_gdim_sub(TlGraph *g, TlGDim a, TlGDim b) {
    return tl_gdim_add(g, a, tl_gdim_mul(g, tl_gdim_const(g, -1), b));
}

static int64_t floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

TlGDim tl_gdim_div(TlGraph *g, TlGDim a, TlGDim b) {
    int64_t va, vb;
    int ca = tl_gdim_is_const(g, a, &va), cb = tl_gdim_is_const(g, b, &vb);
    if (cb && vb == 0) return -1;
    if (ca && cb) return tl_gdim_const(g, floordiv(va, vb));
    if (cb && vb == 1) return a;
    if (cb && vb > 0) { /* every coefficient divisible: divide exactly */
        Poly p;
        if (dim_poly(g->dims, a, &p) == 0) {
            int ok = 1;
            for (int i = 0; i < p.n; i++) ok &= p.m[i].coef % vb == 0;
            if (ok) {
                for (int i = 0; i < p.n; i++) p.m[i].coef /= vb;
                return poly_build(g->dims, &p);
            }
        }
    }
    if (a == b) return tl_gdim_const(g, 1);
    return dim_intern(g->dims, TL_GDIM_DIV, 0, NULL, a, b);
}

const TlGDimExpr *tl_gdim_expr(const TlGraph *g, TlGDim d) {
    return d >= 0 && d < g->dims->n ? &g->dims->e[d] : NULL;
}

int tl_gdim_is_const(const TlGraph *g, TlGDim d, int64_t *v) {
    const TlGDimExpr *e = tl_gdim_expr(g, d);
    if (!e || e->kind != TL_GDIM_CONST) return 0;
    if (v) *v = e->value;
    return 1;
}

int tl_gdim_eval(const TlGraph *g, TlGDim d, const TlGDimBinding *b, int nb, int64_t *out) {
    const TlGDimExpr *e = tl_gdim_expr(g, d);
    int64_t x, y;
    if (!e) return -1;
    switch (e->kind) {
    case TL_GDIM_CONST: *out = e->value; return 0;
    case TL_GDIM_SYM:
        for (int i = nb - 1; i >= 0; i--)
            if (strcmp(b[i].name, e->name) == 0) { *out = b[i].value; return 0; }
        return -1;
    case TL_GDIM_ADD:
    case TL_GDIM_MUL:
    case TL_GDIM_DIV:
        if (tl_gdim_eval(g, e->a, b, nb, &x) || tl_gdim_eval(g, e->b, b, nb, &y)) return -1;
        if (e->kind == TL_GDIM_ADD) *out = x + y;
        else if (e->kind == TL_GDIM_MUL) *out = x * y;
        else if (y == 0) return -1;
        else *out = floordiv(x, y);
        return 0;
    }
    return -1;
}

/* Printing: ADD chains print "a + b", with a negative coefficient as "a - k*b". */
static int dim_fmt(const TlGraph *g, TlGDim d, char *buf, int n, int paren) {
    const TlGDimExpr *e = tl_gdim_expr(g, d);
    if (!e) return snprintf(buf, (size_t)n, "?");
    int len = 0;
#define EMIT(...) len += snprintf(buf + (len < n ? len : n), (size_t)(len < n ? n - len : 0), __VA_ARGS__)
#define SUB(x, p) len += dim_fmt(g, x, buf + (len < n ? len : n), len < n ? n - len : 0, p)
    switch (e->kind) {
    case TL_GDIM_CONST: EMIT("%lld", (long long)e->value); break;
    case TL_GDIM_SYM: EMIT("%s", e->name); break;
    case TL_GDIM_ADD: {
        if (paren) EMIT("(");
        SUB(e->a, 0);
        const TlGDimExpr *r = tl_gdim_expr(g, e->b);
        const TlGDimExpr *c = r->kind == TL_GDIM_MUL ? tl_gdim_expr(g, r->b) : NULL;
        if (r->kind == TL_GDIM_CONST && r->value < 0) EMIT(" - %lld", -(long long)r->value);
        else if (c && c->kind == TL_GDIM_CONST && c->value < 0) {
            EMIT(" - ");
            SUB(r->a, 1);
            if (c->value != -1) EMIT("*%lld", -(long long)c->value);
        } else {
            EMIT(" + ");
            SUB(e->b, 0);
        }
        if (paren) EMIT(")");
        break;
    }
    case TL_GDIM_MUL: SUB(e->a, 1); EMIT("*"); SUB(e->b, 1); break;
    case TL_GDIM_DIV: SUB(e->a, 1); EMIT("/"); SUB(e->b, 1); break;
    }
#undef EMIT
#undef SUB
    return len;
}

int tl_gdim_str(const TlGraph *g, TlGDim d, char *buf, int n) { return dim_fmt(g, d, buf, n, 0); }

/* ---- shapes ---- */

TlGShape tl_gshape_make(TlGraph *g, int rank, const int64_t *dims) {
    TlGShape s = {rank, {0}};
    for (int i = 0; i < rank && i < TL_MAX_RANK; i++) s.dim[i] = tl_gdim_const(g, dims[i]);
    return s;
}

TlGShape tl_gshape_dims(int rank, const TlGDim *dims) {
    TlGShape s = {rank, {0}};
    for (int i = 0; i < rank && i < TL_MAX_RANK; i++) s.dim[i] = dims[i];
    return s;
}

int tl_gshape_eq(TlGShape a, TlGShape b) {
    if (a.rank != b.rank) return 0;
    for (int i = 0; i < a.rank; i++)
        if (a.dim[i] != b.dim[i]) return 0;
    return 1;
}

TlGDim tl_gshape_numel(TlGraph *g, TlGShape s) {
    TlGDim n = tl_gdim_const(g, 1);
    for (int i = 0; i < s.rank; i++) n = tl_gdim_mul(g, n, s.dim[i]);
    return n;
}

int tl_gshape_str(const TlGraph *g, TlDType t, TlGShape s, char *buf, int n) {
    int len = snprintf(buf, (size_t)n, "%s[", tl_dtype_name(t));
    for (int i = 0; i < s.rank; i++) {
        if (i) len += snprintf(buf + (len < n ? len : n), (size_t)(len < n ? n - len : 0), ", ");
        len += tl_gdim_str(g, s.dim[i], buf + (len < n ? len : n), len < n ? n - len : 0);
    }
    len += snprintf(buf + (len < n ? len : n), (size_t)(len < n ? n - len : 0), "]");
    return len;
}

/* ---- graphs ---- */

static TlGraph *graph_alloc(void) {
    TlGraph *g = xmalloc(sizeof *g);
    memset(g, 0, sizeof *g);
    g->arena = xmalloc(sizeof *g->arena);
    g->arena->head = NULL;
    return g;
}

TlGraph *tl_graph_new(void) {
    TlGraph *g = graph_alloc();
    g->dims = xmalloc(sizeof *g->dims);
    memset(g->dims, 0, sizeof *g->dims);
    g->dims->owner = g;
    return g;
}

TlGraph *tl_graph_new_body(TlGraph *parent) {
    TlGraph *g = graph_alloc();
    g->dims = parent->dims;
    g->parent = parent;
    if (parent->nbodies == parent->bodycap) {
        parent->bodycap = parent->bodycap ? parent->bodycap * 2 : 4;
        parent->bodies = xrealloc(parent->bodies, sizeof(TlGraph *) * (size_t)parent->bodycap);
    }
    parent->bodies[parent->nbodies++] = g;
    return g;
}

static void graph_release(TlGraph *g) {
    for (int i = 0; i < g->nbodies; i++) graph_release(g->bodies[i]);
    for (TlGArenaBlock *b = g->arena->head, *nx; b; b = nx) nx = b->next, free(b);
    free(g->arena);
    free(g->bodies);
    free(g->nodes);
    free(g->outputs);
    free(g->inputs);
    if (!g->parent) {
        free(g->dims->e);
        free(g->dims->slot);
        free(g->dims);
    }
    free(g);
}

void tl_graph_free(TlGraph *g) {
    if (g) graph_release(g);
}

void tl_graph_free_body(TlGraph *body) {
    TlGraph *p = body ? body->parent : NULL;
    if (!p) return;
    for (int i = 0; i < p->nbodies; i++)
        if (p->bodies[i] == body) {
            p->bodies[i] = p->bodies[--p->nbodies];
            graph_release(body);
            return;
        }
}

const char *tl_graph_error(const TlGraph *g) { return g->err[0] ? g->err : NULL; }

void tl_graph_add_output(TlGraph *g, int node) {
    if (g->noutputs == g->outcap) {
        g->outcap = g->outcap ? g->outcap * 2 : 8;
        g->outputs = xrealloc(g->outputs, sizeof(int) * (size_t)g->outcap);
    }
    g->outputs[g->noutputs++] = node;
}

int tl_graph_find(const TlGraph *g, TlGOp op, const char *name) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == op && g->nodes[i].name && strcmp(g->nodes[i].name, name) == 0)
            return i;
    return -1;
}

int *tl_graph_use_counts(const TlGraph *g) {
    int *uses = xmalloc(sizeof(int) * (size_t)(g->nnodes + 1));
    memset(uses, 0, sizeof(int) * (size_t)(g->nnodes + 1));
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) uses[g->nodes[i].in[k]]++;
    for (int i = 0; i < g->noutputs; i++) uses[g->outputs[i]]++;
    return uses;
}

static const char *const op_names[TL_GOP_COUNT] = {
    "input", "param", "const", "random", "iota", "neg", "exp", "log", "sqrt", "rsqrt", "tanh", "erf",
    "sin", "cos", "abs", "add", "sub", "mul", "div", "pow", "max", "min", "eq", "ne", "lt",
    "le", "gt", "ge", "select", "cast", "sum", "rmax", "contract", "reshape", "permute",
    "broadcast", "slice", "pad", "concat", "gather", "scatter_add", "attn",
    "attn_grad", "scan", "proj",
};

const char *tl_gop_name(TlGOp op) { return op >= 0 && op < TL_GOP_COUNT ? op_names[op] : "?"; }
int tl_gop_is_unary(TlGOp op) { return op >= TL_GOP_NEG && op <= TL_GOP_ABS; }
int tl_gop_is_binary(TlGOp op) { return op >= TL_GOP_ADD && op <= TL_GOP_MIN; }
int tl_gop_is_compare(TlGOp op) { return op >= TL_GOP_EQ && op <= TL_GOP_GE; }
int tl_gop_is_elementwise(TlGOp op) {
    return tl_gop_is_unary(op) || tl_gop_is_binary(op) || tl_gop_is_compare(op) ||
           op == TL_GOP_SELECT || op == TL_GOP_CAST;
}

/* ---- node creation ---- */

static int fail(TlGraph *g, TlLoc loc, const char *fmt, ...) {
    if (g->err[0]) return -1;
    int n = 0;
    if (loc.line) n = snprintf(g->err, sizeof g->err, "%d:%d: ", loc.line, loc.col);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err + n, sizeof g->err - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int valid(const TlGraph *g, int id) { return id >= 0 && id < g->nnodes; }

int tl_graph_add_node(TlGraph *g, const TlGNode *proto) {
    if (g->nnodes == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->nodes = xrealloc(g->nodes, sizeof(TlGNode) * (size_t)g->cap);
    }
    TlGNode *n = &g->nodes[g->nnodes];
    *n = *proto;
    if (proto->nin) {
        n->in = tl_graph_alloc(g, sizeof(int) * (size_t)proto->nin);
        memcpy(n->in, proto->in, sizeof(int) * (size_t)proto->nin);
    } else {
        n->in = NULL;
    }
    if (proto->name) n->name = arena_strdup(g, proto->name);
    if (proto->spec) n->spec = arena_strdup(g, proto->spec);
    if (proto->data) {
        /* const data has constant shape by construction */
        int64_t numel = 1, v;
        for (int i = 0; i < proto->shape.rank; i++)
            numel *= tl_gdim_is_const(g, proto->shape.dim[i], &v) ? v : 0;
        double *d = tl_graph_alloc(g, sizeof(double) * (size_t)(numel ? numel : 1));
        memcpy(d, proto->data, sizeof(double) * (size_t)numel);
        n->data = d;
    }
    if (n->op == TL_GOP_INPUT) {
        if (g->ninputs == g->incap) {
            g->incap = g->incap ? g->incap * 2 : 8;
            g->inputs = xrealloc(g->inputs, sizeof(int) * (size_t)g->incap);
        }
        g->inputs[g->ninputs++] = g->nnodes;
    }
    return g->nnodes++;
}

static TlGNode proto(TlGOp op, TlDType t, TlGShape s, TlLoc loc) {
    TlGNode n;
    memset(&n, 0, sizeof n);
    n.op = op, n.dtype = t, n.shape = s, n.loc = loc;
    return n;
}

static int check_shape(TlGraph *g, TlGShape s, TlLoc loc) {
    if (s.rank < 0 || s.rank > TL_MAX_RANK) return fail(g, loc, "rank %d out of range", s.rank);
    for (int i = 0; i < s.rank; i++)
        if (!tl_gdim_expr(g, s.dim[i])) return fail(g, loc, "invalid dim in shape");
    return 0;
}

static int leaf(TlGraph *g, TlGOp op, const char *name, TlDType t, TlGShape s, TlLoc loc) {
    if (check_shape(g, s, loc)) return -1;
    if (t <= TL_DT_INVALID || t >= TL_DT_COUNT) return fail(g, loc, "invalid dtype");
    TlGNode n = proto(op, t, s, loc);
    n.name = name;
    return tl_graph_add_node(g, &n);
}

int tl_g_input(TlGraph *g, const char *name, TlDType t, TlGShape s, TlLoc loc) {
    return leaf(g, TL_GOP_INPUT, name ? name : "", t, s, loc);
}

int tl_g_param(TlGraph *g, const char *name, TlDType t, TlGShape s, TlLoc loc) {
    return leaf(g, TL_GOP_PARAM, name ? name : "", t, s, loc);
}

int tl_g_const(TlGraph *g, double fill, TlDType t, TlGShape s, TlLoc loc) {
    if (check_shape(g, s, loc)) return -1;
    TlGNode n = proto(TL_GOP_CONST, t, s, loc);
    n.fill = fill;
    return tl_graph_add_node(g, &n);
}

int tl_g_const_data(TlGraph *g, const double *data, TlDType t, TlGShape s, TlLoc loc) {
    if (check_shape(g, s, loc)) return -1;
    for (int i = 0; i < s.rank; i++)
        if (!tl_gdim_is_const(g, s.dim[i], NULL)) return fail(g, loc, "literal tensor needs a constant shape");
    TlGNode n = proto(TL_GOP_CONST, t, s, loc);
    n.data = data;
    return tl_graph_add_node(g, &n);
}

int tl_g_random(TlGraph *g, TlRandomDist dist, int seed_node, uint64_t seed, uint64_t offset,
                TlDType t, TlGShape s, TlLoc loc) {
    if (check_shape(g, s, loc)) return -1;
    if (!tl_dtype_is_float(t)) return fail(g, loc, "random needs a float dtype");
    TlGNode n = proto(TL_GOP_RANDOM, t, s, loc);
    n.dist = dist, n.seed = seed, n.offset = offset;
    if (seed_node >= 0) {
        if (!valid(g, seed_node)) return -1;
        const TlGNode *sn = &g->nodes[seed_node];
        if (sn->shape.rank != 0 || !tl_dtype_is_int(sn->dtype))
            return fail(g, loc, "random seed must be an integer scalar");
        n.nin = 1, n.in = &seed_node;
    }
    return tl_graph_add_node(g, &n);
}

int tl_g_iota(TlGraph *g, TlDType t, TlGShape s, int axis, TlLoc loc) {
    if (check_shape(g, s, loc)) return -1;
    if (axis < 0 || axis >= s.rank) return fail(g, loc, "iota axis out of range");
    if (t <= TL_DT_INVALID || t >= TL_DT_COUNT || t == TL_BOOL) return fail(g, loc, "iota of %s", tl_dtype_name(t));
    TlGNode n = proto(TL_GOP_IOTA, t, s, loc);
    n.axis = axis;
    return tl_graph_add_node(g, &n);
}

int tl_g_unary(TlGraph *g, TlGOp op, int x, TlLoc loc) {
    if (!valid(g, x)) return -1;
    if (!tl_gop_is_unary(op)) return fail(g, loc, "%s is not a unary op", tl_gop_name(op));
    const TlGNode *a = &g->nodes[x];
    if (!tl_dtype_is_float(a->dtype) && !((op == TL_GOP_NEG || op == TL_GOP_ABS) && tl_dtype_is_int(a->dtype)))
        return fail(g, loc, "%s of %s", tl_gop_name(op), tl_dtype_name(a->dtype));
    TlGNode n = proto(op, a->dtype, a->shape, loc);
    n.nin = 1, n.in = &x;
    return tl_graph_add_node(g, &n);
}

int tl_g_binary(TlGraph *g, TlGOp op, int a, int b, TlLoc loc) {
    if (!valid(g, a) || !valid(g, b)) return -1;
    const TlGNode *x = &g->nodes[a], *y = &g->nodes[b];
    if (!tl_gop_is_binary(op) && !tl_gop_is_compare(op))
        return fail(g, loc, "%s is not a binary op", tl_gop_name(op));
    if (x->dtype != y->dtype)
        return fail(g, loc, "%s of %s and %s", tl_gop_name(op), tl_dtype_name(x->dtype), tl_dtype_name(y->dtype));
    if (!tl_gshape_eq(x->shape, y->shape)) {
        char s1[128], s2[128];
        tl_gshape_str(g, x->dtype, x->shape, s1, sizeof s1);
        tl_gshape_str(g, y->dtype, y->shape, s2, sizeof s2);
        return fail(g, loc, "%s of different shapes %s and %s", tl_gop_name(op), s1, s2);
    }
    if (x->dtype == TL_BOOL && !tl_gop_is_compare(op) && op != TL_GOP_MAX && op != TL_GOP_MIN)
        return fail(g, loc, "%s of bool", tl_gop_name(op));
    if (op == TL_GOP_POW && !tl_dtype_is_float(x->dtype)) return fail(g, loc, "pow of integers");
    int ins[2] = {a, b};
    TlGNode n = proto(op, tl_gop_is_compare(op) ? TL_BOOL : x->dtype, x->shape, loc);
    n.nin = 2, n.in = ins;
    return tl_graph_add_node(g, &n);
}

/* numpy broadcasting of two shapes: align right; each pair equal, or one is 1. */
static int broadcast_shape(TlGraph *g, TlGShape a, TlGShape b, TlGShape *out) {
    int r = a.rank > b.rank ? a.rank : b.rank;
    TlGDim one = tl_gdim_const(g, 1);
    out->rank = r;
    for (int i = 0; i < r; i++) {
        int ia = a.rank - r + i, ib = b.rank - r + i;
        TlGDim da = ia >= 0 ? a.dim[ia] : one, db = ib >= 0 ? b.dim[ib] : one;
        if (da == db || db == one) out->dim[i] = da;
        else if (da == one) out->dim[i] = db;
        else return -1;
    }
    return 0;
}

int tl_g_broadcast_binary(TlGraph *g, TlGOp op, int a, int b, TlLoc loc) {
    if (!valid(g, a) || !valid(g, b)) return -1;
    TlGShape s;
    if (broadcast_shape(g, g->nodes[a].shape, g->nodes[b].shape, &s)) {
        char s1[128], s2[128];
        tl_gshape_str(g, g->nodes[a].dtype, g->nodes[a].shape, s1, sizeof s1);
        tl_gshape_str(g, g->nodes[b].dtype, g->nodes[b].shape, s2, sizeof s2);
        return fail(g, loc, "cannot broadcast %s and %s", s1, s2);
    }
    if (!tl_gshape_eq(g->nodes[a].shape, s)) a = tl_g_broadcast(g, a, s, loc);
    if (!tl_gshape_eq(g->nodes[b].shape, s)) b = tl_g_broadcast(g, b, s, loc);
    return tl_g_binary(g, op, a, b, loc);
}

int tl_g_select(TlGraph *g, int c, int a, int b, TlLoc loc) {
    if (!valid(g, c) || !valid(g, a) || !valid(g, b)) return -1;
    const TlGNode *nc = &g->nodes[c], *x = &g->nodes[a], *y = &g->nodes[b];
    if (nc->dtype != TL_BOOL) return fail(g, loc, "select condition must be bool");
    if (x->dtype != y->dtype) return fail(g, loc, "select of different dtypes");
    if (!tl_gshape_eq(x->shape, y->shape) || !tl_gshape_eq(x->shape, nc->shape))
        return fail(g, loc, "select of different shapes");
    int ins[3] = {c, a, b};
    TlGNode n = proto(TL_GOP_SELECT, x->dtype, x->shape, loc);
    n.nin = 3, n.in = ins;
    return tl_graph_add_node(g, &n);
}

int tl_g_cast(TlGraph *g, int x, TlDType t, TlLoc loc) {
    if (!valid(g, x)) return -1;
    if (t <= TL_DT_INVALID || t >= TL_DT_COUNT) return fail(g, loc, "cast to invalid dtype");
    TlGNode n = proto(TL_GOP_CAST, t, g->nodes[x].shape, loc);
    n.nin = 1, n.in = &x;
    return tl_graph_add_node(g, &n);
}

int tl_g_reduce(TlGraph *g, TlGOp op, int x, uint32_t axes, int keepdims, TlLoc loc) {
    if (!valid(g, x)) return -1;
    const TlGNode *a = &g->nodes[x];
    if (op != TL_GOP_SUM && op != TL_GOP_RMAX) return fail(g, loc, "%s is not a reduction", tl_gop_name(op));
    if (axes >> a->shape.rank) return fail(g, loc, "reduction axis out of range");
    if (a->dtype == TL_BOOL) return fail(g, loc, "reduction of bool");
    TlGShape s = {0, {0}};
    for (int i = 0; i < a->shape.rank; i++) {
        if (!(axes >> i & 1)) s.dim[s.rank++] = a->shape.dim[i];
        else if (keepdims) s.dim[s.rank++] = tl_gdim_const(g, 1);
    }
    TlGNode n = proto(op, a->dtype, s, loc);
    n.nin = 1, n.in = &x, n.axes = axes, n.keepdims = keepdims ? 1 : 0;
    return tl_graph_add_node(g, &n);
}

int tl_contract_parse(const char *spec, TlContractSpec *cs, char *err, int errn) {
    memset(cs, 0, sizeof *cs);
    const char *p = spec;
    int which = 0, *rank = &cs->rank[0];
    char *dst = cs->in[0];
    for (;; p++) {
        char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            if (*rank == TL_MAX_RANK) goto bad;
            for (int i = 0; i < *rank; i++)
                if (dst[i] == c) goto bad; /* repeated letter in one operand */
            dst[(*rank)++] = c;
        } else if (c == ',' && which == 0) {
            which = 1, rank = &cs->rank[1], dst = cs->in[1];
        } else if (c == '-' && p[1] == '>' && which <= 1 && dst != cs->out) {
            cs->nin = which + 1;
            which = 2, rank = &cs->out_rank, dst = cs->out;
            p++;
        } else if (c == ' ') {
            continue;
        } else if (c == 0 && which == 2) {
            break;
        } else {
            goto bad;
        }
    }
    for (int i = 0; i < cs->out_rank; i++) { /* output letters must come from an operand */
        int found = 0;
        for (int k = 0; k < cs->nin; k++)
            for (int j = 0; j < cs->rank[k]; j++) found |= cs->in[k][j] == cs->out[i];
        if (!found) goto bad;
    }
    return 0;
bad:
    if (err) snprintf(err, (size_t)errn, "malformed contraction spec \"%s\"", spec);
    return -1;
}

int tl_g_contract(TlGraph *g, const char *spec, int a, int b, TlLoc loc) {
    if (!valid(g, a) || (b != -1 && !valid(g, b))) return -1;
    TlContractSpec cs;
    char err[160];
    if (tl_contract_parse(spec, &cs, err, sizeof err)) return fail(g, loc, "%s", err);
    if (cs.nin != (b == -1 ? 1 : 2)) return fail(g, loc, "contraction \"%s\" needs %d operands", spec, cs.nin);
    int ops[2] = {a, b};
    TlGDim dimof[128];
    for (int i = 0; i < 128; i++) dimof[i] = -1;
    for (int k = 0; k < cs.nin; k++) {
        const TlGNode *x = &g->nodes[ops[k]];
        if (!tl_dtype_is_float(x->dtype)) return fail(g, loc, "contraction of %s", tl_dtype_name(x->dtype));
        if (x->dtype != g->nodes[a].dtype) return fail(g, loc, "contraction of different dtypes");
        if (x->shape.rank != cs.rank[k])
            return fail(g, loc, "contraction \"%s\": operand %d has rank %d", spec, k, x->shape.rank);
        for (int j = 0; j < cs.rank[k]; j++) {
            int c = cs.in[k][j];
            if (dimof[c] >= 0 && dimof[c] != x->shape.dim[j]) {
                char d1[64], d2[64];
                tl_gdim_str(g, dimof[c], d1, sizeof d1);
                tl_gdim_str(g, x->shape.dim[j], d2, sizeof d2);
                return fail(g, loc, "contraction \"%s\": axis '%c' is %s and %s", spec, c, d1, d2);
            }
            dimof[c] = x->shape.dim[j];
        }
    }
    TlGShape s = {cs.out_rank, {0}};
    for (int i = 0; i < cs.out_rank; i++) s.dim[i] = dimof[(int)cs.out[i]];
    TlGNode n = proto(TL_GOP_CONTRACT, g->nodes[a].dtype, s, loc);
    n.nin = cs.nin, n.in = ops, n.spec = spec;
    return tl_graph_add_node(g, &n);
}

int tl_g_reshape(TlGraph *g, int x, TlGShape s, TlLoc loc) {
    if (!valid(g, x) || check_shape(g, s, loc)) return -1;
    const TlGNode *a = &g->nodes[x];
    if (tl_gshape_numel(g, a->shape) != tl_gshape_numel(g, s)) {
        char s1[128], s2[128];
        tl_gshape_str(g, a->dtype, a->shape, s1, sizeof s1);
        tl_gshape_str(g, a->dtype, s, s2, sizeof s2);
        return fail(g, loc, "reshape of %s to %s changes the element count", s1, s2);
    }
    TlGNode n = proto(TL_GOP_RESHAPE, a->dtype, s, loc);
    n.nin = 1, n.in = &x;
    return tl_graph_add_node(g, &n);
}

int tl_g_permute(TlGraph *g, int x, const int *perm, TlLoc loc) {
    if (!valid(g, x)) return -1;
    const TlGNode *a = &g->nodes[x];
    TlGNode n = proto(TL_GOP_PERMUTE, a->dtype, a->shape, loc);
    uint32_t seen = 0;
    for (int i = 0; i < a->shape.rank; i++) {
        if (perm[i] < 0 || perm[i] >= a->shape.rank || (seen >> perm[i] & 1))
            return fail(g, loc, "invalid permutation");
        seen |= 1u << perm[i];
        n.perm[i] = perm[i];
        n.shape.dim[i] = a->shape.dim[perm[i]];
    }
    n.nin = 1, n.in = &x;
    return tl_graph_add_node(g, &n);
}

int tl_g_broadcast(TlGraph *g, int x, TlGShape s, TlLoc loc) {
    if (!valid(g, x) || check_shape(g, s, loc)) return -1;
    const TlGNode *a = &g->nodes[x];
    TlGDim one = tl_gdim_const(g, 1);
    int ok = a->shape.rank <= s.rank;
    for (int i = 0; ok && i < a->shape.rank; i++) {
        TlGDim d = a->shape.dim[i], t = s.dim[s.rank - a->shape.rank + i];
        ok = d == t || d == one;
    }
    if (!ok) {
        char s1[128], s2[128];
        tl_gshape_str(g, a->dtype, a->shape, s1, sizeof s1);
        tl_gshape_str(g, a->dtype, s, s2, sizeof s2);
        return fail(g, loc, "cannot broadcast %s to %s", s1, s2);
    }
    TlGNode n = proto(TL_GOP_BROADCAST, a->dtype, s, loc);
    n.nin = 1, n.in = &x;
    return tl_graph_add_node(g, &n);
}

/* Both a sanity check of constant bounds and the output dim ceil((stop-start)/step). */
int tl_g_slice(TlGraph *g, int x, const TlGDim *start, const TlGDim *stop, const int64_t *step,
               TlLoc loc) {
    if (!valid(g, x)) return -1;
    const TlGNode *a = &g->nodes[x];
    TlGNode n = proto(TL_GOP_SLICE, a->dtype, a->shape, loc);
    for (int i = 0; i < a->shape.rank; i++) {
        int64_t s0, s1, d;
        if (step[i] < 1) return fail(g, loc, "slice step must be >= 1");
        if (!tl_gdim_expr(g, start[i]) || !tl_gdim_expr(g, stop[i])) return fail(g, loc, "invalid slice bound");
        if (tl_gdim_is_const(g, start[i], &s0) && tl_gdim_is_const(g, stop[i], &s1) &&
            (s0 < 0 || s1 < s0 || (tl_gdim_is_const(g, a->shape.dim[i], &d) && s1 > d)))
            return fail(g, loc, "slice [%lld:%lld] out of range on axis %d", (long long)s0, (long long)s1, i);
        n.lo[i] = start[i], n.hi[i] = stop[i], n.step[i] = step[i];
        TlGDim len = tl_gdim_sub(g, stop[i], start[i]);
        n.shape.dim[i] = tl_gdim_div(g, tl_gdim_add(g, len, tl_gdim_const(g, step[i] - 1)),
                                    tl_gdim_const(g, step[i]));
    }
    n.nin = 1, n.in = &x;
    return tl_graph_add_node(g, &n);
}

int tl_g_slice_axis(TlGraph *g, int x, int axis, TlGDim start, TlGDim stop, int64_t step, TlLoc loc) {
    if (!valid(g, x)) return -1;
    const TlGNode *a = &g->nodes[x];
    if (axis < 0 || axis >= a->shape.rank) return fail(g, loc, "slice axis out of range");
    TlGDim st[TL_MAX_RANK], sp[TL_MAX_RANK];
    int64_t sz[TL_MAX_RANK];
    for (int i = 0; i < a->shape.rank; i++)
        st[i] = tl_gdim_const(g, 0), sp[i] = a->shape.dim[i], sz[i] = 1;
    st[axis] = start, sp[axis] = stop, sz[axis] = step;
    return tl_g_slice(g, x, st, sp, sz, loc);
}

int tl_g_pad(TlGraph *g, int x, const TlGDim *lo, const TlGDim *hi, const int64_t *interior,
             double fill, TlLoc loc) {
    if (!valid(g, x)) return -1;
    const TlGNode *a = &g->nodes[x];
    TlGNode n = proto(TL_GOP_PAD, a->dtype, a->shape, loc);
    for (int i = 0; i < a->shape.rank; i++) {
        int64_t v;
        if (!tl_gdim_expr(g, lo[i]) || !tl_gdim_expr(g, hi[i])) return fail(g, loc, "invalid pad amount");
        if ((tl_gdim_is_const(g, lo[i], &v) && v < 0) || (tl_gdim_is_const(g, hi[i], &v) && v < 0) ||
            interior[i] < 0)
            return fail(g, loc, "negative padding");
        n.lo[i] = lo[i], n.hi[i] = hi[i], n.step[i] = interior[i];
        TlGDim d = a->shape.dim[i];
        TlGDim inner = tl_gdim_mul(g, tl_gdim_sub(g, d, tl_gdim_const(g, 1)), tl_gdim_const(g, interior[i]));
        if (tl_gdim_is_const(g, d, &v) && v == 0) inner = tl_gdim_const(g, 0);
        n.shape.dim[i] = tl_gdim_add(g, tl_gdim_add(g, tl_gdim_add(g, lo[i], d), inner), hi[i]);
    }
    n.fill = fill;
    n.nin = 1, n.in = &x;
    return tl_graph_add_node(g, &n);
}

int tl_g_concat(TlGraph *g, int nx, const int *xs, int axis, TlLoc loc) {
    if (nx < 1) return fail(g, loc, "concat of nothing");
    for (int i = 0; i < nx; i++)
        if (!valid(g, xs[i])) return -1;
    const TlGNode *a = &g->nodes[xs[0]];
    if (axis < 0 || axis >= a->shape.rank) return fail(g, loc, "concat axis out of range");
    TlGNode n = proto(TL_GOP_CONCAT, a->dtype, a->shape, loc);
    TlGDim total = tl_gdim_const(g, 0);
    for (int i = 0; i < nx; i++) {
        const TlGNode *b = &g->nodes[xs[i]];
        if (b->dtype != a->dtype || b->shape.rank != a->shape.rank) return fail(g, loc, "concat of mismatched tensors");
        for (int k = 0; k < a->shape.rank; k++)
            if (k != axis && b->shape.dim[k] != a->shape.dim[k])
                return fail(g, loc, "concat: operand %d differs on axis %d", i, k);
        total = tl_gdim_add(g, total, b->shape.dim[axis]);
    }
    n.shape.dim[axis] = total;
    n.axis = axis;
    n.nin = nx, n.in = (int *)xs;
    return tl_graph_add_node(g, &n);
}

int tl_g_gather(TlGraph *g, int table, int idx, int axis, TlLoc loc) {
    if (!valid(g, table) || !valid(g, idx)) return -1;
    const TlGNode *t = &g->nodes[table], *ix = &g->nodes[idx];
    if (!tl_dtype_is_int(ix->dtype)) return fail(g, loc, "gather index must be an integer tensor");
    if (axis < 0 || axis >= t->shape.rank) return fail(g, loc, "gather axis out of range");
    if (t->shape.rank - 1 + ix->shape.rank > TL_MAX_RANK) return fail(g, loc, "gather result rank too large");
    TlGNode n = proto(TL_GOP_GATHER, t->dtype, t->shape, loc);
    n.shape.rank = 0;
    for (int i = 0; i < axis; i++) n.shape.dim[n.shape.rank++] = t->shape.dim[i];
    for (int i = 0; i < ix->shape.rank; i++) n.shape.dim[n.shape.rank++] = ix->shape.dim[i];
    for (int i = axis + 1; i < t->shape.rank; i++) n.shape.dim[n.shape.rank++] = t->shape.dim[i];
    int ins[2] = {table, idx};
    n.axis = axis, n.nin = 2, n.in = ins;
    return tl_graph_add_node(g, &n);
}

int tl_g_scatter_add(TlGraph *g, int src, int idx, int axis, TlGDim size, TlLoc loc) {
    if (!valid(g, src) || !valid(g, idx)) return -1;
    const TlGNode *s = &g->nodes[src], *ix = &g->nodes[idx];
    if (!tl_dtype_is_int(ix->dtype)) return fail(g, loc, "scatter_add index must be an integer tensor");
    if (axis < 0 || axis + ix->shape.rank > s->shape.rank) return fail(g, loc, "scatter_add axis out of range");
    for (int i = 0; i < ix->shape.rank; i++)
        if (s->shape.dim[axis + i] != ix->shape.dim[i]) return fail(g, loc, "scatter_add index shape mismatch");
    if (!tl_gdim_expr(g, size)) return fail(g, loc, "invalid scatter_add size");
    TlGNode n = proto(TL_GOP_SCATTER_ADD, s->dtype, s->shape, loc);
    n.shape.rank = 0;
    for (int i = 0; i < axis; i++) n.shape.dim[n.shape.rank++] = s->shape.dim[i];
    n.shape.dim[n.shape.rank++] = size;
    for (int i = axis + ix->shape.rank; i < s->shape.rank; i++) n.shape.dim[n.shape.rank++] = s->shape.dim[i];
    int ins[2] = {src, idx};
    n.axis = axis, n.size = size, n.nin = 2, n.in = ins;
    return tl_graph_add_node(g, &n);
}

/* attn and attn_grad: q, k, v of one float shape [.., T, K] (rank >= 2). */
static int attn_check(TlGraph *g, int q, int k, int v, TlLoc loc) {
    const TlGNode *a = &g->nodes[q], *b = &g->nodes[k], *c = &g->nodes[v];
    if (!tl_dtype_is_float(a->dtype)) return fail(g, loc, "attention needs float operands");
    if (a->shape.rank < 2 || a->shape.rank >= TL_MAX_RANK)
        return fail(g, loc, "attention operands must be [.., T, K]");
    if (a->dtype != b->dtype || a->dtype != c->dtype || !tl_gshape_eq(a->shape, b->shape) ||
        !tl_gshape_eq(a->shape, c->shape))
        return fail(g, loc, "attention: q, k and v must have one dtype and shape");
    return 0;
}

int tl_g_attn(TlGraph *g, int q, int k, int v, double scale, TlLoc loc) {
    if (!valid(g, q) || !valid(g, k) || !valid(g, v)) return -1;
    if (attn_check(g, q, k, v, loc)) return -1;
    TlGNode n = proto(TL_GOP_ATTN, g->nodes[q].dtype, g->nodes[q].shape, loc);
    int r = n.shape.rank;
    n.shape.dim[r - 1] = tl_gdim_add(g, n.shape.dim[r - 1], tl_gdim_const(g, 1));
    int ins[3] = {q, k, v};
    n.fill = scale, n.nin = 3, n.in = ins;
    return tl_graph_add_node(g, &n);
}

int tl_g_attn_grad(TlGraph *g, int q, int k, int v, int o, int gy, double scale, TlLoc loc) {
    if (!valid(g, q) || !valid(g, k) || !valid(g, v) || !valid(g, o) || !valid(g, gy)) return -1;
    if (attn_check(g, q, k, v, loc)) return -1;
    const TlGNode *a = &g->nodes[q];
    TlGShape os = a->shape;
    os.dim[os.rank - 1] = tl_gdim_add(g, os.dim[os.rank - 1], tl_gdim_const(g, 1));
    if (!tl_gshape_eq(g->nodes[o].shape, os) || !tl_gshape_eq(g->nodes[gy].shape, os) ||
        g->nodes[o].dtype != a->dtype || g->nodes[gy].dtype != a->dtype)
        return fail(g, loc, "attn_grad: o and its adjoint must have attn's result shape");
    TlGNode n = proto(TL_GOP_ATTN_GRAD, a->dtype, a->shape, loc);
    n.shape.rank = a->shape.rank + 1;
    n.shape.dim[0] = tl_gdim_const(g, 3);
    for (int i = 0; i < a->shape.rank; i++) n.shape.dim[i + 1] = a->shape.dim[i];
    int ins[5] = {q, k, v, o, gy};
    n.fill = scale, n.nin = 5, n.in = ins;
    return tl_graph_add_node(g, &n);
}

int tl_g_proj(TlGraph *g, int scan, int index, TlLoc loc) {
    if (!valid(g, scan)) return -1;
    const TlGNode *s = &g->nodes[scan];
    if (s->op != TL_GOP_SCAN) return fail(g, loc, "proj of a non-scan node");
    const TlGraph *b = s->body;
    if (index < 0 || index >= b->noutputs) return fail(g, loc, "proj index out of range");
    const TlGNode *o = &b->nodes[b->outputs[index]];
    TlGNode n = proto(TL_GOP_PROJ, o->dtype, o->shape, loc);
    if (index >= s->ncarry) { /* stacked: prepend the sequence length */
        if (o->shape.rank == TL_MAX_RANK) return fail(g, loc, "scan output rank too large");
        n.shape.rank = o->shape.rank + 1;
        n.shape.dim[0] = g->nodes[s->in[s->ncarry]].shape.dim[0];
        for (int i = 0; i < o->shape.rank; i++) n.shape.dim[i + 1] = o->shape.dim[i];
    }
    n.axis = index, n.nin = 1, n.in = &scan;
    return tl_graph_add_node(g, &n);
}

int tl_g_scan(TlGraph *g, TlGraph *body, int ncarry, const int *carries, int nseq,
              const int *seqs, int ninv, const int *invs, int reverse, int *results, TlLoc loc) {
    int nin = ncarry + nseq + ninv;
    int *ins = tl_graph_alloc(g, sizeof(int) * (size_t)(nin ? nin : 1));
    for (int i = 0; i < ncarry; i++) ins[i] = carries[i];
    for (int i = 0; i < nseq; i++) ins[ncarry + i] = seqs[i];
    for (int i = 0; i < ninv; i++) ins[ncarry + nseq + i] = invs[i];
    for (int i = 0; i < nin; i++)
        if (!valid(g, ins[i])) return -1;
    if (!body || body->parent != g) return fail(g, loc, "scan body must be made by tl_graph_new_body");
    if (body->err[0]) return fail(g, loc, "scan body: %s", body->err);
    if (nseq < 1) return fail(g, loc, "scan needs at least one sequence");
    if (body->ninputs != nin) return fail(g, loc, "scan body takes %d arguments, given %d", body->ninputs, nin);
    if (body->noutputs < ncarry) return fail(g, loc, "scan body returns fewer values than carries");
    TlGDim len = g->nodes[seqs[0]].shape.dim[0];
    for (int i = 0; i < nin; i++) {
        const TlGNode *x = &g->nodes[ins[i]], *p = &body->nodes[body->inputs[i]];
        TlGShape want = x->shape;
        if (i >= ncarry && i < ncarry + nseq) {
            if (x->shape.rank < 1 || x->shape.dim[0] != len) return fail(g, loc, "scan sequences differ in length");
            want.rank--;
            for (int k = 0; k < want.rank; k++) want.dim[k] = x->shape.dim[k + 1];
        }
        if (x->dtype != p->dtype || !tl_gshape_eq(want, p->shape))
            return fail(g, loc, "scan argument %d does not match the body's input", i);
    }
    for (int i = 0; i < ncarry; i++) {
        const TlGNode *x = &g->nodes[ins[i]], *o = &body->nodes[body->outputs[i]];
        if (x->dtype != o->dtype || !tl_gshape_eq(x->shape, o->shape))
            return fail(g, loc, "scan carry %d changes type in the body", i);
    }
    TlGNode n = proto(TL_GOP_SCAN, TL_DT_INVALID, (TlGShape){0, {0}}, loc);
    n.nin = nin, n.in = ins, n.body = body, n.ncarry = ncarry, n.nseq = nseq, n.reverse = reverse ? 1 : 0;
    int id = tl_graph_add_node(g, &n);
    for (int i = 0; i < body->noutputs; i++) {
        int r = tl_g_proj(g, id, i, loc);
        if (results) results[i] = r;
    }
    return id;
}

/* ---- printing ---- */

static void print_dims(FILE *f, const TlGraph *g, const char *label, int rank, const TlGDim *d) {
    char buf[128];
    fprintf(f, "%s=[", label);
    for (int i = 0; i < rank; i++) {
        tl_gdim_str(g, d[i], buf, sizeof buf);
        fprintf(f, "%s%s", i ? ", " : "", buf);
    }
    fprintf(f, "]");
}

static void print_attrs(FILE *f, const TlGraph *g, const TlGNode *n) {
    int r = g->nodes[n->nin ? n->in[0] : 0].shape.rank;
    switch (n->op) {
    case TL_GOP_INPUT:
    case TL_GOP_PARAM: fprintf(f, " \"%s\"", n->name); break;
    case TL_GOP_CONST:
        if (!n->data) fprintf(f, " %.17g", n->fill);
        else fprintf(f, " {literal}");
        break;
    case TL_GOP_RANDOM:
        fprintf(f, " {%s, seed=%llu, offset=%llu}", n->dist == TL_RANDOM_NORMAL ? "normal" : "uniform",
                (unsigned long long)n->seed, (unsigned long long)n->offset);
        break;
    case TL_GOP_SUM:
    case TL_GOP_RMAX:
        fprintf(f, " {axes=[");
        for (int i = 0, k = 0; i < r; i++)
            if (n->axes >> i & 1) fprintf(f, "%s%d", k++ ? ", " : "", i);
        fprintf(f, "]%s}", n->keepdims ? ", keepdims" : "");
        break;
    case TL_GOP_CONTRACT: fprintf(f, " {\"%s\"}", n->spec); break;
    case TL_GOP_PERMUTE:
        fprintf(f, " {perm=[");
        for (int i = 0; i < n->shape.rank; i++) fprintf(f, "%s%d", i ? ", " : "", n->perm[i]);
        fprintf(f, "]}");
        break;
    case TL_GOP_SLICE:
    case TL_GOP_PAD:
        fprintf(f, " {");
        print_dims(f, g, n->op == TL_GOP_SLICE ? "start" : "lo", r, n->lo);
        fprintf(f, ", ");
        print_dims(f, g, n->op == TL_GOP_SLICE ? "stop" : "hi", r, n->hi);
        fprintf(f, ", %s=[", n->op == TL_GOP_SLICE ? "step" : "interior");
        for (int i = 0; i < r; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)n->step[i]);
        fprintf(f, "]");
        if (n->op == TL_GOP_PAD) fprintf(f, ", fill=%g", n->fill);
        fprintf(f, "}");
        break;
    case TL_GOP_IOTA:
    case TL_GOP_CONCAT:
    case TL_GOP_GATHER: fprintf(f, " {axis=%d}", n->axis); break;
    case TL_GOP_SCATTER_ADD: {
        char buf[64];
        tl_gdim_str(g, n->size, buf, sizeof buf);
        fprintf(f, " {axis=%d, size=%s}", n->axis, buf);
        break;
    }
    case TL_GOP_PROJ: fprintf(f, " {%d}", n->axis); break;
    case TL_GOP_ATTN: case TL_GOP_ATTN_GRAD: fprintf(f, " {scale=%.9g}", n->fill); break;
    case TL_GOP_SCAN: fprintf(f, " {ncarry=%d, nseq=%d%s}", n->ncarry, n->nseq, n->reverse ? ", reverse" : ""); break;
    default: break;
    }
}

static void print_loc(FILE *f, TlLoc loc) {
    if (!loc.line) return;
    const char *path = NULL;
#ifdef TL_HAVE_SOURCE_PATH
    if (loc.file) path = tl_source_path(loc.file);
#endif
    fprintf(f, "   # %s%s%d:%d", path ? path : "", path ? ":" : "", loc.line, loc.col);
}

static void print_graph(FILE *f, const TlGraph *g, int indent);

static void print_node(FILE *f, const TlGraph *g, int id, int indent) {
    const TlGNode *n = &g->nodes[id];
    char buf[256];
    fprintf(f, "%*s%%%d = %s", indent, "", id, tl_gop_name(n->op));
    for (int k = 0; k < n->nin; k++) fprintf(f, "%s %%%d", k ? "," : "", n->in[k]);
    print_attrs(f, g, n);
    if (n->op != TL_GOP_SCAN) {
        tl_gshape_str(g, n->dtype, n->shape, buf, sizeof buf);
        fprintf(f, " : %s", buf);
    }
    print_loc(f, n->loc);
    fprintf(f, "\n");
    if (n->op == TL_GOP_SCAN) {
        fprintf(f, "%*s{\n", indent, "");
        print_graph(f, n->body, indent + 4);
        fprintf(f, "%*s}\n", indent, "");
    }
}

void tl_node_print(FILE *f, const TlGraph *g, int id) { print_node(f, g, id, 0); }

static void print_graph(FILE *f, const TlGraph *g, int indent) {
    for (int i = 0; i < g->nnodes; i++) print_node(f, g, i, indent);
    fprintf(f, "%*sreturn", indent, "");
    for (int i = 0; i < g->noutputs; i++) fprintf(f, "%s %%%d", i ? "," : "", g->outputs[i]);
    fprintf(f, "\n");
}

void tl_graph_print(FILE *f, const TlGraph *g) { print_graph(f, g, 0); }

static void dot_graph(FILE *f, const TlGraph *g, const char *prefix, int depth) {
    char buf[256];
    for (int i = 0; i < g->nnodes; i++) {
        const TlGNode *n = &g->nodes[i];
        if (n->op == TL_GOP_SCAN) {
            fprintf(f, "  subgraph cluster_%s%d {\n  label=\"scan %%%d\"; style=rounded;\n", prefix, i, i);
            char sub[64];
            snprintf(sub, sizeof sub, "s%s%d_", prefix, i);
            fprintf(f, "  %sn%d [label=\"scan\", shape=box];\n", prefix, i);
            if (depth < 8) dot_graph(f, n->body, sub, depth + 1);
            fprintf(f, "  }\n");
        } else {
            tl_gshape_str(g, n->dtype, n->shape, buf, sizeof buf);
            const char *shape = n->op == TL_GOP_INPUT || n->op == TL_GOP_PARAM ? "box"
                                : n->op == TL_GOP_CONST                       ? "plaintext"
                                                                             : "ellipse";
            const char *extra = n->name ? n->name : n->spec ? n->spec : "";
            fprintf(f, "  %sn%d [shape=%s, label=\"%%%d %s%s%s\\n%s\"];\n", prefix, i, shape, i,
                    tl_gop_name(n->op), *extra ? " " : "", extra, buf);
        }
        for (int k = 0; k < n->nin; k++) fprintf(f, "  %sn%d -> %sn%d;\n", prefix, n->in[k], prefix, i);
    }
    for (int i = 0; i < g->noutputs; i++) {
        fprintf(f, "  %sout%d [shape=doublecircle, label=\"out %d\"];\n", prefix, i, i);
        fprintf(f, "  %sn%d -> %sout%d;\n", prefix, g->outputs[i], prefix, i);
    }
}

void tl_graph_dot(FILE *f, const TlGraph *g) {
    fprintf(f, "digraph tl {\n  rankdir=TB;\n  node [fontname=\"monospace\", fontsize=10];\n");
    dot_graph(f, g, "", 0);
    fprintf(f, "}\n");
}
